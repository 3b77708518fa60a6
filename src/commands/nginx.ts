// nginx command builders for both modes: nginx in a container (docker cp/exec/kill) or on the host.
import { LIMITS, type Config } from '../config.js'
import { LABEL } from '../host/state.js'
import { parseListen } from '../inputs.js'
import { command, script, type Command } from './shell.js'

/** Where a new config waits for validation: beside the live file, so relative includes resolve the same way. */
export const candidatePath = (configPath: string): string => `${configPath}.rollout-new`

/** Where the ssh user's copy is uploaded (relative to its home) before it goes into the container. */
export const stagingPath = (app: string): string => `${LIMITS.stateDir}/${app}/nginx.conf.upload`

/** The file the SFTP upload writes: the staging copy in container mode, the candidate itself on the host. */
export const uploadPath = (config: Config): string =>
  config.nginx.mode === 'container' ? stagingPath(config.app) : candidatePath(config.nginx.configPath)

export const inspectNginxContainer = (name: string): Command =>
  command('docker', 'inspect', '--format', '{{.State.Running}}\t{{.HostConfig.NetworkMode}}', name)

export function readLiveConfig(config: Config): Command {
  const n = config.nginx
  if (n.mode === 'host') return command('cat', n.configPath)
  return script('t=$(mktemp) && docker cp "$1:$2" "$t" && cat "$t"; s=$?; rm -f "$t"; exit $s', n.container, n.configPath)
}

/** Exit codes of applyCandidate(): which stage failed. */
export const APPLY_STAGE: Record<number, string> = {
  10: 'copying the new nginx.conf into the nginx container',
  11: 'validating the new nginx.conf',
  12: 'installing the new nginx.conf',
  13: 'signalling nginx to reload',
}

// $1 staged upload, $2 container, $3 config path. Each step only runs if the one before succeeded, so a
// config that fails nginx -t never replaces the live file.
const APPLY_IN_CONTAINER = `docker cp "$1" "$2:$3.rollout-new" || exit 10
docker exec "$2" nginx -t -q -c "$3.rollout-new" || exit 11
docker cp "$1" "$2:$3" || exit 12
docker kill --signal HUP "$2" >/dev/null || exit 13`

// $1 config path; the upload is already the candidate beside it. The rename is atomic. nginx is often in
// /usr/sbin, which a non-interactive ssh session's PATH may lack.
const APPLY_ON_HOST = `PATH="$PATH:/usr/sbin:/usr/local/sbin:/usr/local/nginx/sbin"
nginx -t -q -c "$1.rollout-new" || exit 11
mv -f "$1.rollout-new" "$1" || exit 12`

/**
 * Validate the uploaded candidate with nginx -t and put it in place of the live file; in a container, also
 * signal the master (its main process) to reload. One remote command: an SSH session costs ~0.1 s.
 * On the host the reload is signalled separately, after findNginxMaster().
 */
export function applyCandidate(config: Config): Command {
  const n = config.nginx
  return n.mode === 'container' ? script(APPLY_IN_CONTAINER, stagingPath(config.app), n.container, n.configPath) : script(APPLY_ON_HOST, n.configPath)
}

/** Copy the staged upload straight to the live path of a container that is not running (nothing to validate against yet). */
export const copyIntoContainer = (config: Config): Command =>
  command('docker', 'cp', stagingPath(config.app), `${config.nginx.container}:${config.nginx.configPath}`)

/**
 * Host mode: this shell's PID namespace, then every process with its namespace. nginx masters inside
 * containers show up in the host's process list too; only those in the host's own namespace count.
 */
export const listProcesses = (): Command => script('readlink /proc/$$/ns/pid; ps -e -o pid=,ppid=,pidns=,comm=')

export const signalPid = (pid: number): Command => command('kill', '-HUP', String(pid))

/** nginx masters of the host: nginx processes whose parent is not nginx, in the host's PID namespace (not a container's). */
export function findNginxMasters(output: string): number[] {
  const [nsLine = '', ...lines] = output.split('\n')
  const hostNs = /\[(\d+)\]/.exec(nsLine)?.[1]
  const procs = lines
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 4)
    .map(([pid, ppid, ns, comm]) => ({ pid: Number(pid), ppid: Number(ppid), ns, comm }))
  const nginx = new Set(procs.filter((p) => p.comm === 'nginx').map((p) => p.pid))
  return procs.filter((p) => p.comm === 'nginx' && !nginx.has(p.ppid) && (hostNs === undefined || p.ns === hostNs)).map((p) => p.pid)
}

export function createNginxContainer(config: Config): Command {
  const n = config.nginx
  const listen = parseListen(n.listen)
  const network =
    config.network === 'host'
      ? ['--network', 'host']
      : [
          ...(config.network ? ['--network', config.network] : []),
          '--publish',
          listen?.address ? `${listen.address.includes(':') ? `[${listen.address}]` : listen.address}:${listen.port}:${listen.port}` : `${listen?.port}:${listen?.port}`,
        ]
  return command(
    'docker', 'create',
    '--name', n.container,
    '--label', `${LABEL.role}=nginx`,
    '--label', `${LABEL.app}=${config.app}`,
    '--restart', 'unless-stopped',
    ...network,
    n.image,
  )
}

export const startContainer = (name: string): Command => command('docker', 'start', name)

export const nginxLogs = (config: Config, lines: number): Command =>
  config.nginx.mode === 'container'
    ? command('docker', 'logs', '--tail', String(lines), config.nginx.container)
    : command('tail', '-n', String(lines), '/var/log/nginx/error.log')

/** The host's clock, in seconds with fractions, as docker logs --since takes it. */
export const hostClock = (): Command => command('date', '+%s.%N')

/** The access log's size in bytes (0 when it does not exist yet). */
export const fileSize = (path: string): Command => script('stat -c %s "$1" 2>/dev/null || echo 0', path)

/** The access log from a byte offset on. */
export const fileFrom = (path: string, offset: number): Command => command('tail', '-c', `+${offset + 1}`, path)

/** What the nginx container logged since a time (its access log goes to standard output). */
export const containerLogsSince = (container: string, since: string): Command => command('docker', 'logs', '--since', since, container)
