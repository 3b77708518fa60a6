// A drain: until the outgoing replicas have nothing in flight, counted every poll on their own hosts and where
// nginx runs.
import { isIP } from 'node:net'
import { LIMITS, type Config } from '../config.js'
import * as docker from '../commands/docker.js'
import { byHost, hostPort, type Replica } from '../model.js'
import { run } from '../remote/ssh.js'
import { upstreamAddresses, type Nginx } from '../nginx/nginx.js'
import type { Fleet } from '../remote/fleet.js'
import type { RunProgress } from './progress.js'

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`

/** What a drain needs of the run. */
export interface DrainWorld {
  readonly config: Config
  readonly fleet: Fleet
  readonly nginx: Nginx
  readonly progress: RunProgress
}

/** Waits until the replicas have no connection in flight (at most `max` seconds); says how it ended. */
export async function drainReplicas(w: DrainWorld, replicas: readonly Replica[], max: number): Promise<string> {
  const { config, nginx, progress } = w
  // With keepalive_min_timeout, a reloading worker may still send an idle connection's next request to them.
  const keepalive = config.nginx.scope === 'site' && nginx.state.facts.keepaliveMinTimeout
  const min = keepalive ? Math.min(max, LIMITS.keepaliveMinTimeoutSeconds) : 0
  // Host networking: every replica of a host shares its network namespace, read once per poll.
  const targets = (rs: readonly Replica[]): docker.DrainTarget[] => {
    const each = rs.map((r) => ({
      ref: progress.idOf(r) ?? '',
      pid: progress.pidOf(r),
      ports: [docker.listenPortInside(config, r)],
    }))
    if (config.network !== 'host') return each
    return [{ ...(each.find((t) => t.pid) ?? each[0]), ports: each.flatMap((t) => t.ports) }]
  }
  // Where nginx runs, its own connections to the replicas count too (they show a request whose connection is
  // still being opened); with the replicas of that host, or alone when nginx has a host of its own.
  // Addresses only: ss would look up a name that did not resolve on every poll.
  const servers = replicas.flatMap((r) =>
    upstreamAddresses(nginx.state, r.address)
      .filter((a) => isIP(a) !== 0)
      .map((a) => hostPort(a, r.port)),
  )
  const waits = [...byHost(replicas)].map(([host, rs]) => {
    const remote = w.fleet.app(host)
    return { remote, targets: targets(rs), servers: remote === w.fleet.nginx ? servers : [] }
  })
  if (!waits.some((p) => p.remote === w.fleet.nginx)) waits.push({ remote: w.fleet.nginx, targets: [], servers })
  const outcomes = await Promise.all(
    waits.map(async (p) => {
      const wait = docker.drainWait(p.targets, p.servers, max, min, LIMITS.drainPollMs, LIMITS.drainQuietPolls)
      return docker.parseDrain((await run(p.remote, wait, 'draining')).stdout)
    }),
  )
  const busy = outcomes.flatMap((o) => (o.kind === 'busy' ? [o.inFlight] : []))
  if (busy.length) return `${busy.reduce((n, x) => n + x, 0)} connections still open after drain-seconds ${max}s`
  if (outcomes.some((o) => o.kind === 'unknown'))
    return `waited drain-seconds ${max}s (connections not readable on the host)`
  const slowest = Math.max(...outcomes.map((o) => (o.kind === 'idle' ? o.ms : 0)))
  return `nothing in flight after ${seconds(slowest)}`
}
