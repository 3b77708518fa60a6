// Reads what the Docker host holds. The commands run in parallel over the one SSH connection.
import type { Config } from '../config.js'
import { listManaged } from '../commands/docker.js'
import { findNginxMasters, inspectNginxContainer, listProcesses, readLiveConfig } from '../commands/nginx.js'
import { parseStateFiles, readStateFiles } from '../remote/history.js'
import { run, type Remote } from '../remote/ssh.js'
import { CONTAINER_FORMAT, parseContainers, type HostState, type NginxState } from './state.js'

export class HostStateError extends Error {}

export async function readHost(remote: Remote, config: Config): Promise<HostState> {
  const [containers, nginx, { history, canary }] = await Promise.all([
    run(remote, listManaged(CONTAINER_FORMAT), `listing containers (is docker usable by ${config.username}?)`).then((r) => parseContainers(r.stdout)),
    readNginx(remote, config),
    run(remote, readStateFiles(config.app), 'reading the deploy history').then((r) => parseStateFiles(r.stdout)),
  ])
  return { containers, nginx, history, ...(canary ? { canary } : {}) }
}

async function readNginx(remote: Remote, config: Config): Promise<NginxState> {
  const n = config.nginx
  if (n.mode === 'host') {
    const [ps, file] = await Promise.all([run(remote, listProcesses(), 'listing processes'), remote.exec(readLiveConfig(config))])
    const masters = findNginxMasters(ps.stdout)
    if (!masters.length)
      throw new HostStateError(`nginx-mode host: no nginx master process runs on ${remote.name}; start nginx there (e.g. systemctl start nginx) or use nginx-mode: container`)
    if (masters.length > 1)
      throw new HostStateError(`nginx-mode host: ${masters.length} nginx master processes run on ${remote.name} (pids ${masters.join(', ')}); nginx-rollout cannot tell which one serves ${config.nginx.configPath}`)
    return { exists: true, running: true, masterPid: masters[0], config: file.code === 0 ? file.stdout : undefined }
  }
  const inspect = await remote.exec(inspectNginxContainer(n.container))
  if (inspect.code !== 0) {
    if (!/no such (object|container)/i.test(inspect.stderr)) await run(remote, inspectNginxContainer(n.container), `inspecting the nginx container ${n.container}`)
    return { exists: false, running: false }
  }
  const [running, networkMode] = inspect.stdout.trim().split('\t')
  const file = await remote.exec(readLiveConfig(config))
  return { exists: true, running: running === 'true', networkMode, config: file.code === 0 ? file.stdout : undefined }
}

const LOOPBACK = /^(127\.|::1$|localhost$)/

/**
 * Problems the host state reveals before anything changes: an nginx container on a Docker network
 * cannot reach replicas at a loopback upstream-host (that address is the container's own).
 */
export function checkHostState(config: Config, state: HostState): string | undefined {
  if (config.nginx.mode !== 'container' || !LOOPBACK.test(config.upstreamHost)) return undefined
  const nginxNetwork = state.nginx.exists ? state.nginx.networkMode : config.network === 'host' ? 'host' : config.network || 'default'
  if (nginxNetwork === 'host') return undefined
  return (
    `upstream-host: nginx container ${config.nginx.container} ${state.nginx.exists ? 'runs' : 'would run'} on Docker network '${nginxNetwork}', ` +
    `where ${config.upstreamHost} is the container itself, so it cannot reach the replicas. Use network: host, or set upstream-host to an address ` +
    'of the Docker host that the container can reach (e.g. the docker0 gateway, often 172.17.0.1).'
  )
}
