// docker command builders: each returns a Command value and runs nothing.
import type { Config } from '../config.js'
import { LABEL } from '../host/state.js'
import { hostPort } from '../nginx/template.js'
import type { Replica } from '../plan/types.js'
import { command, script, withStdin, type Command } from './shell.js'

export const listManaged = (format: string): Command =>
  command('docker', 'ps', '--all', '--no-trunc', '--filter', `label=${LABEL.role}`, '--format', format)

/** The environment every replica gets: PORT first (what the app must listen on), then the env input. */
export function replicaEnv(config: Config, replica: Replica): string {
  const port = config.network === 'host' ? replica.port : config.containerPort
  return [`PORT=${port}`, ...config.env.map((v) => `${v.name}=${v.value}`)].join('\n') + '\n'
}

/**
 * docker run for one replica. The environment travels on standard input as an env file, so values (often
 * secrets) appear neither in this command line nor in the host's process list.
 */
export function runReplica(config: Config, replica: Replica): Command {
  const network =
    config.network === 'host'
      ? ['--network', 'host']
      : [...(config.network ? ['--network', config.network] : []), '--publish', `${hostPort(config.upstreamHost, replica.port)}:${config.containerPort}`]
  const run = command(
    'docker', 'run', '--detach',
    '--name', replica.name,
    '--label', `${LABEL.app}=${config.app}`,
    '--label', `${LABEL.role}=replica`,
    '--label', `${LABEL.image}=${replica.image}`,
    '--label', `${LABEL.port}=${replica.port}`,
    ...(replica.color ? ['--label', `${LABEL.color}=${replica.color}`] : []),
    ...network,
    '--env-file', '/dev/stdin',
    ...config.runArgs,
    replica.image,
  )
  const names = ['PORT', ...config.env.map((v) => v.name)]
  return withStdin(run, replicaEnv(config, replica), `env file: ${names.join(', ')}`)
}

export const startContainers = (names: readonly string[]): Command => command('docker', 'start', ...names)

export const stopContainers = (names: readonly string[], timeoutSeconds: number): Command =>
  command('docker', 'stop', '--time', String(timeoutSeconds), ...names)

// Removal means "removed or already gone" (a rollback removes replicas whose start may have failed), but a
// container that is still there after docker rm is an error.
const REMOVE = `out=$(docker rm --force --volumes "$@" 2>&1) && exit 0
left=$(docker inspect --format '{{.Name}}' "$@" 2>/dev/null)
[ -z "$left" ] && exit 0
printf '%s\\n' "$out" >&2
exit 1`

export const removeContainers = (names: readonly string[]): Command => script(REMOVE, ...names)

export const pullImage = (image: string): Command => command('docker', 'pull', '--quiet', image)

/** Pull only when the host does not have the image (for the nginx image, which is pinned by the user). */
export const ensureImage = (image: string): Command =>
  script('docker image inspect "$1" >/dev/null 2>&1 || docker pull --quiet "$1"', image)

/** The password travels on standard input, never in the command line. */
export const login = (server: string, username: string, password: string): Command =>
  withStdin(command('docker', 'login', '--username', username, '--password-stdin', ...(server ? [server] : [])), password, 'registry password')

/** Status, health status ('none' without a HEALTHCHECK) and exit code, tab-separated. */
export const inspectState = (name: string): Command =>
  command('docker', 'inspect', '--format', '{{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}\t{{.State.ExitCode}}', name)

export const healthLog = (name: string): Command =>
  command('docker', 'inspect', '--format', '{{if .State.Health}}{{range .State.Health.Log}}{{.ExitCode}}: {{.Output}}{{end}}{{end}}', name)

export const containerLogs = (name: string, lines: number): Command => command('docker', 'logs', '--tail', String(lines), name)

export interface ReplicaState {
  readonly status: string
  readonly health: string
  readonly exitCode: number
}

export function parseReplicaState(stdout: string): ReplicaState {
  const [status = 'unknown', health = 'none', exitCode = '0'] = stdout.trim().split('\t')
  return { status, health, exitCode: Number(exitCode) }
}
