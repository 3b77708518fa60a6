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

// nginx is often in /usr/sbin, which a non-interactive ssh session's PATH may lack.
const NGINX_ON_HOST = 'PATH="$PATH:/usr/sbin:/usr/local/sbin:/usr/local/nginx/sbin"; exec nginx "$@"'

export const inspectNginxContainer = (name: string): Command =>
  command('docker', 'inspect', '--format', '{{.State.Running}}\t{{.HostConfig.NetworkMode}}', name)

export function readLiveConfig(config: Config): Command {
  const n = config.nginx
  if (n.mode === 'host') return command('cat', n.configPath)
  return script('t=$(mktemp) && docker cp "$1:$2" "$t" && cat "$t"; s=$?; rm -f "$t"; exit $s', n.container, n.configPath)
}

/** Copy the staged upload to the candidate path (container mode only; on the host the upload is the candidate). */
export const stageCandidate = (config: Config): Command =>
  command('docker', 'cp', stagingPath(config.app), `${config.nginx.container}:${candidatePath(config.nginx.configPath)}`)

export function validateCandidate(config: Config): Command {
  const candidate = candidatePath(config.nginx.configPath)
  return config.nginx.mode === 'container'
    ? command('docker', 'exec', config.nginx.container, 'nginx', '-t', '-q', '-c', candidate)
    : script(NGINX_ON_HOST, '-t', '-q', '-c', candidate)
}

/** Put the validated candidate in place of the live file. On the host, a rename: atomic. */
export function installCandidate(config: Config): Command {
  const n = config.nginx
  return n.mode === 'container'
    ? command('docker', 'cp', stagingPath(config.app), `${n.container}:${n.configPath}`)
    : command('mv', '-f', candidatePath(n.configPath), n.configPath)
}

/** Container mode: the container's main process is nginx's master, whatever pid file it uses. */
export const signalContainerReload = (config: Config): Command => command('docker', 'kill', '--signal', 'HUP', config.nginx.container)

/** Host mode: list processes; findNginxMaster() picks the master from this output. */
export const listProcesses = (): Command => command('ps', '-e', '-o', 'pid=,ppid=,comm=')

export const signalPid = (pid: number): Command => command('kill', '-HUP', String(pid))

/** The nginx master: an nginx process whose parent is not nginx (independent of the pid file's path). */
export function findNginxMaster(psOutput: string): number | undefined {
  const procs = psOutput
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 3)
    .map(([pid, ppid, comm]) => ({ pid: Number(pid), ppid: Number(ppid), comm }))
  const nginx = new Set(procs.filter((p) => p.comm === 'nginx').map((p) => p.pid))
  return procs.find((p) => p.comm === 'nginx' && !nginx.has(p.ppid))?.pid
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
