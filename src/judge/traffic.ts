// Pure judgement of a canary step from nginx's own access log: every upstream attempt nginx made in the
// window, counted by the replica's address and port. An attempt is an error when the replica answered 5xx or
// failed to answer (nginx logs 502/504 for that attempt). The log line is a JSON object nginx writes with
// `escape=json` (TRAFFIC_LOG_FORMAT): the one field a client chooses (the path) and the method are escaped by
// nginx, so no client text can end a field or add one, and a line must parse whole, with exactly the fields
// of the format, to count.
import { LIMITS } from '../config.js'

export interface Attempt {
  /** 'address:port' as nginx writes it ('[::1]:9201' for IPv6). */
  readonly server: string
  /** The replica's status; undefined when it gave none (the client gave up first: nginx's 499). */
  readonly status: number | undefined
  /** How long the replica had the attempt, in ms ($upstream_response_time); undefined when nginx gave none. */
  readonly ms?: number
  /** The request's method and path ('GET /cart'): what the judgement compares like with like by. */
  readonly route?: string
}

import type { CanaryJudgement, TrafficCounts, TrafficStats } from '../model.js'
import { compareVersions, countAttempts, zAbove, type Comparison } from './compare.js'

const SERVER = /^(?:\d{1,3}(?:\.\d{1,3}){3}:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5})$/
const STATUS = /^(?:\d{3}|-|)$/
const TIME = /^(?:\d+(?:\.\d+)?|-|)$/
const FIELDS = ['upstream', 'status', 'time', 'method', 'uri'] as const
// Attempts are separated by ", " (next server) or " : " (internal redirect).
const SEP = /, | : /

/** One line of the record, if it is one nginx wrote in the format (every field a string, nothing more). */
function fieldsOf(line: string): Record<(typeof FIELDS)[number], string> | undefined {
  if (!line.startsWith('{') || !line.endsWith('}')) return undefined
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const keys = Object.keys(value)
  const record = value as Record<string, unknown>
  if (keys.length !== FIELDS.length || !FIELDS.every((f) => typeof record[f] === 'string')) return undefined
  return record as Record<(typeof FIELDS)[number], string>
}

/** The route a request counts under: its method and path, cut to a bounded length. */
const routeOf = (method: string, uri: string): string =>
  `${method.slice(0, 16)} ${uri.length > LIMITS.routeMaxChars ? uri.slice(0, LIMITS.routeMaxChars) + '…' : uri}`

/** Upstream attempts in the app's traffic log (TRAFFIC_LOG_FORMAT); lines of any other shape are not counted. */
export function parseAccessLog(text: string): { attempts: Attempt[]; skipped: number } {
  const attempts: Attempt[] = []
  let skipped = 0
  for (const line of text.split('\n')) {
    if (!line) continue
    const f = fieldsOf(line)
    const servers = f?.upstream.split(SEP) ?? []
    const statuses = f?.status.split(SEP) ?? []
    const times = f?.time.split(SEP) ?? []
    if (
      !f ||
      statuses.length !== servers.length ||
      !statuses.every((s) => STATUS.test(s)) ||
      !times.every((t) => TIME.test(t))
    ) {
      skipped++
      continue
    }
    const route = routeOf(f.method, f.uri)
    servers.forEach((server, i) => {
      // The upstream's own name (no server could be chosen) or a unix socket is no replica's attempt.
      if (!SERVER.test(server)) return
      const status = Number(statuses[i])
      const ms = Number(times[i])
      attempts.push({
        server,
        status: statuses[i] && Number.isFinite(status) ? status : undefined,
        ms: times[i] && Number.isFinite(ms) ? Math.round(ms * 1000) : undefined,
        route,
      })
    })
  }
  return { attempts, skipped }
}

const pct = (n: number) => `${n.toFixed(2)}%`

/** How many standard errors the canary's rate is above the stable one (zAbove on their counts). */
export const worseBy = (canary: TrafficStats, stable: TrafficStats): number =>
  zAbove(canary.errors, canary.requests, stable.errors, stable.requests)

export function judgeCanary(
  attempts: readonly Attempt[],
  canaryServers: ReadonlySet<string>,
  stableServers: ReadonlySet<string>,
  maxErrorRate: number,
  minRequests: number = LIMITS.canaryMinRequests,
): CanaryJudgement {
  const inCanary = attempts.filter((a) => canaryServers.has(a.server))
  const inStable = attempts.filter((a) => stableServers.has(a.server))
  const compared = compareVersions(inCanary, inStable)
  return judgeCanaryCounts(countAttempts(inCanary), countAttempts(inStable), maxErrorRate, minRequests, compared)
}

const statsOf = (c: TrafficCounts): TrafficStats => ({
  requests: c.requests,
  errors: c.serverErrors,
  rate: c.requests ? (100 * c.serverErrors) / c.requests : 0,
})

/**
 * A canary step's verdict on what nginx recorded in its window: its 5xx rate above canary-max-error-rate or
 * clearly above the stable replicas' fails it, and so does anything every deploy's judgement finds clearly
 * worse (a 4xx rate the stable replicas do not have: a route the new version lost).
 */
export function judgeCanaryCounts(
  canaryCounts: TrafficCounts,
  stableCounts: TrafficCounts,
  maxErrorRate: number,
  minRequests: number = LIMITS.canaryMinRequests,
  /** Every deploy's judgement of the canary's attempts against the stable ones' (compareVersions). */
  compared?: Comparison,
): CanaryJudgement {
  const canary = statsOf(canaryCounts)
  const stable = statsOf(stableCounts)
  const z = worseBy(canary, stable)
  const verdict = (v: CanaryJudgement['verdict'], reason: string): CanaryJudgement => ({
    verdict: v,
    canary,
    stable,
    reason,
  })
  if (canary.rate > maxErrorRate)
    return verdict(
      'fail',
      `canary error rate ${pct(canary.rate)} (${canary.errors} of ${canary.requests}) is above canary-max-error-rate ${maxErrorRate}%`,
    )
  if (z > LIMITS.canaryWorseZ)
    return verdict(
      'fail',
      `canary error rate ${pct(canary.rate)} is clearly worse than stable ${pct(stable.rate)} (${z.toFixed(1)} standard errors)`,
    )
  if (compared?.verdict === 'fail') return verdict('fail', compared.reason)
  // Judged after the failures: a handful of requests that all failed is still a failure.
  if (canary.requests < minRequests)
    return verdict(
      'inconclusive',
      `only ${canary.requests} requests reached the canary (at least ${minRequests} are needed to judge)`,
    )
  return verdict(
    'pass',
    `canary ${pct(canary.rate)} of ${canary.requests}, stable ${pct(stable.rate)} of ${stable.requests}`,
  )
}
