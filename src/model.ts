// The words every layer shares, at the bottom of the imports: a replica and the host it runs on, a canary
// split, the labels the action puts on containers, and how nginx writes addresses.
import { isIP } from 'node:net'

/** One container of the app: on an app host, reached by nginx at that host's upstream address and its port. */
export interface Replica {
  /** The app host it runs on, as the run names it (its SSH address, with the port when not 22). */
  readonly host: string
  /** The address nginx reaches this host's replicas at. */
  readonly address: string
  readonly name: string
  readonly port: number
  readonly image: string
  /** blue or green (blue-green only). */
  readonly color?: string
}

/** A share of requests for the canary: nginx weights for each canary and each stable server. */
export interface Split {
  readonly canary: readonly Replica[]
  readonly percent: number
  readonly canaryWeight: number
  readonly stableWeight: number
}

/** Replicas are unique by host and name (two hosts may both run `shop-9201`). */
export const replicaKey = (r: Pick<Replica, 'host' | 'name'>): string => `${r.host}/${r.name}`

/** The container name of a replica: the app and its port, unique on its host. */
export const replicaName = (app: string, port: number): string => `${app}-${port}`

/** The labels nginx-rollout puts on every container it creates, and reads back to know what a host holds. */
export const LABEL = {
  app: 'nginx-rollout.app',
  role: 'nginx-rollout.role',
  image: 'nginx-rollout.image',
  port: 'nginx-rollout.port',
  /** blue or green for blue-green replicas, empty otherwise (set anyway, so an image's own label never shows through). */
  color: 'nginx-rollout.color',
} as const

/** host:port as nginx and its access log write it (IPv6 in brackets). */
export const hostPort = (host: string, port: number): string =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`

/** What nginx-rollout calls an SSH target in logs and outputs: the address, with the port when it is not 22. */
export const sshName = (host: string, port: number): string => (port === 22 ? host : hostPort(host, port))

/** nginx's listen value: a port, address:port or [ipv6]:port. */
export function parseListen(text: string): { address?: string; port: number } | undefined {
  const m =
    /^(\d+)$/.exec(text) ?? /^(\d{1,3}(?:\.\d{1,3}){3}):(\d+)$/.exec(text) ?? /^\[([0-9A-Fa-f:]+)\]:(\d+)$/.exec(text)
  if (!m) return undefined
  const port = Number(m[2] ?? m[1])
  if (port < 1 || port > 65535) return undefined
  if (m[2] !== undefined && !isIP(m[1])) return undefined
  return m[2] === undefined ? { port } : { address: m[1], port }
}

const LOOPBACK = /^(127\.|::1$|localhost$)/

/** A loopback address reaches only its own network namespace: a container on a Docker network cannot use it for the host. */
export const isLoopback = (address: string): boolean => LOOPBACK.test(address)

/** The image most replicas run; '' when none. */
export function mainImage(replicas: readonly Replica[]): string {
  const counts = new Map<string, number>()
  for (const r of replicas) counts.set(r.image, (counts.get(r.image) ?? 0) + 1)
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? ''
}

/** The colour of blue-green replicas serving ('' when they have none). */
export const liveColor = (replicas: readonly Replica[]): string => replicas.find((r) => r.color)?.color ?? ''

/** Groups replicas by their host, hosts in first-seen order. */
export function byHost<T extends Pick<Replica, 'host'>>(replicas: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const r of replicas) groups.set(r.host, [...(groups.get(r.host) ?? []), r])
  return groups
}

export const names = (rs: readonly Pick<Replica, 'name' | 'host'>[], withHost = false): string =>
  rs.map((r) => (withHost ? `${r.name}@${r.host}` : r.name)).join(', ')

// A canary step's judgement: the words the health code decides in, and the journal, the summary, the host's
// canary record and the pull-request comment report in.

export interface TrafficStats {
  readonly requests: number
  readonly errors: number
  /** Percent. */
  readonly rate: number
}

export type Verdict = 'pass' | 'fail' | 'inconclusive'

export interface CanaryJudgement {
  readonly verdict: Verdict
  readonly canary: TrafficStats
  readonly stable: TrafficStats
  readonly reason: string
}

/** One judged canary step: its share of requests, its window, and the judgement. */
export interface CanaryObservation extends CanaryJudgement {
  readonly percent: number
  readonly seconds: number
}

/** What nginx recorded of the attempts to one set of replicas. */
export interface TrafficCounts {
  readonly requests: number
  /** 5xx, including nginx's 502/504 for an attempt that got no answer. */
  readonly serverErrors: number
  /** 4xx. */
  readonly clientErrors: number
  /** Attempts by status, for the summary ('-': no status). */
  readonly statuses: Readonly<Record<string, number>>
}

/** How a route's new replicas did on real traffic against the old ones: the judgement of one route. */
export interface Verification {
  /** The new replicas judged (names, with the host when there are several). */
  readonly replicas: readonly string[]
  readonly verdict: 'pass' | 'fail' | 'not judged'
  readonly reason: string
  /** What nginx recorded of them since the route, and of the old version over the run. */
  readonly new: TrafficCounts
  readonly old: TrafficCounts
  /** From the route to the verdict. */
  readonly ms: number
}

/** How the bake ended: the new replicas held for bake-seconds, or what sent the traffic back. */
export interface Bake {
  readonly seconds: number
  readonly verdict: 'pass' | 'fail'
  readonly reason: string
  readonly new: TrafficCounts
  readonly old: TrafficCounts
}
