// Pure: what the hosts hold that must stop a run before it changes anything.
import type { Config } from '../config.js'
import { isLoopback } from '../model.js'
import type { HostState } from './state.js'

export function hostProblems(config: Config, state: HostState): string[] {
  // The app hosts' containers whose labels break their rules (read.ts), before anything is planned from them.
  const problems = [...(state.problems ?? []), ...state.nginx.problems]
  // An existing nginx container on a Docker network reaches the host's loopback addresses only as its own.
  const n = state.nginx
  const loopback = config.appHosts.find((h) => isLoopback(h.upstreamAddress))
  if (config.nginx.mode === 'container' && n.exists && loopback && n.networkMode !== 'host')
    problems.push(
      `upstream-host: the nginx container ${config.nginx.container} runs on Docker network '${n.networkMode ?? 'default'}', where ${loopback.upstreamAddress} is the container itself, ` +
        'so it cannot reach the replicas. Recreate it with --network host, or set upstream-host to an address of the Docker host that the container can reach (e.g. the docker0 gateway, often 172.17.0.1)',
    )
  return problems
}
