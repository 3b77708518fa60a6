// Pure: what the status operation reports, from what the hosts hold.
import type { Config } from './config.js'
import type { HostState } from './host/state.js'
import { hostPort } from './model.js'
import { liveRouting } from './nginx/routing.js'
import { liveReplicas } from './plan/common.js'
import { routesOf } from './plan/index.js'
import type { LiveReport } from './summary.js'

/** Replicas with their host and their weight in the live config, the paused canary, recent history. */
export function liveReport(config: Config, state: HostState): LiveReport {
  const routes = routesOf(state)
  const { live } = liveReplicas(config, state.containers, routes)
  const weightOf = (address: string, port: number) => routes?.get(hostPort(address, port)) ?? config.nginx.weight
  return {
    replicas: live.map((r) => ({ ...r, weight: weightOf(r.address, r.port) })),
    canary: state.canary,
    history: state.history.slice(-5).reverse(),
    routing: [
      ...(state.nginx.managed.kind === 'ours' ? liveRouting(state.nginx.managed.text) : []),
      ...(state.nginx.facts.maintenance !== undefined
        ? [
            `In maintenance: every request but the health path answers 503 '${state.nginx.facts.maintenance}' until operation: resume.`,
          ]
        : []),
    ],
  }
}
