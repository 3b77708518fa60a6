// Pure judgement of a canary step from nginx's own access log: every upstream attempt nginx made in the
// window, counted by the replica's address and port. An attempt is an error when the replica answered 5xx or
// failed to answer (nginx logs 502/504 for that attempt). The log line holds only what nginx decided
// (CANARY_LOG_FORMAT), and a line must match it whole, so nothing a client sends can count as an attempt.
import { LIMITS } from '../config.js'

export interface Attempt {
  /** 'address:port' as nginx writes it ('[::1]:9201' for IPv6). */
  readonly server: string
  readonly status: number | undefined
}

import type { CanaryJudgement, TrafficCounts, TrafficStats } from '../model.js'
import { compareVersions } from './compare.js'

// One attempt: an address:port (IPv4, [IPv6], or a unix socket), or the upstream's name when no server
// could be chosen; attempts are separated by ", " (next server) or " : " (internal redirect).
const SERVER = String.raw`(?:\d{1,3}(?:\.\d{1,3}){3}:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}|unix:[^\s,]+|[A-Za-z0-9_.-]+)`
const STATUS = String.raw`(?:\d{3}|-)`
const SEP = String.raw`(?:, | : )`
const LINE = new RegExp(
  String.raw`^nginx-rollout upstream=(${SERVER}(?:${SEP}${SERVER})*) status=(${STATUS}(?:${SEP}${STATUS})*)$`,
)

/** Upstream attempts in the canary's access log (CANARY_LOG_FORMAT); lines of any other shape are not counted. */
export function parseAccessLog(text: string): { attempts: Attempt[]; skipped: number } {
  const attempts: Attempt[] = []
  let skipped = 0
  for (const line of text.split('\n')) {
    if (!line) continue
    const m = LINE.exec(line)
    if (!m) {
      skipped++
      continue
    }
    const servers = m[1].split(/, | : /)
    const statuses = m[2].split(/, | : /)
    servers.forEach((server, i) => {
      if (!/:\d+$/.test(server) || server.startsWith('unix:')) return
      const status = Number(statuses[i])
      attempts.push({ server, status: Number.isFinite(status) ? status : undefined })
    })
  }
  return { attempts, skipped }
}

const pct = (n: number) => `${n.toFixed(2)}%`

/** One-sided two-proportion z statistic: how many standard errors the canary's rate is above the stable one. */
export function worseBy(canary: TrafficStats, stable: TrafficStats): number {
  if (!canary.requests || !stable.requests) return 0
  const pooled = (canary.errors + stable.errors) / (canary.requests + stable.requests)
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / canary.requests + 1 / stable.requests))
  const diff = canary.errors / canary.requests - stable.errors / stable.requests
  return se === 0 ? (diff > 0 ? Infinity : 0) : diff / se
}

export function judgeCanary(
  attempts: readonly Attempt[],
  canaryServers: ReadonlySet<string>,
  stableServers: ReadonlySet<string>,
  maxErrorRate: number,
  minRequests: number = LIMITS.canaryMinRequests,
): CanaryJudgement {
  const canary = countsOf(attempts, canaryServers)
  const stable = countsOf(attempts, stableServers)
  return judgeCanaryCounts(canary, stable, maxErrorRate, minRequests)
}

/** What nginx recorded of these servers' attempts. */
export function countsOf(attempts: readonly Attempt[], servers: ReadonlySet<string>): TrafficCounts {
  const statuses: Record<string, number> = {}
  let requests = 0
  for (const a of attempts) {
    if (!servers.has(a.server)) continue
    requests++
    const key = a.status === undefined ? '-' : String(a.status)
    statuses[key] = (statuses[key] ?? 0) + 1
  }
  const count = (cls: string) => Object.entries(statuses).reduce((n, [s, k]) => (s.startsWith(cls) ? n + k : n), 0)
  return { requests, serverErrors: count('5'), clientErrors: count('4'), statuses }
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
  const compared = compareVersions(canaryCounts, stableCounts)
  if (compared.verdict === 'fail') return verdict('fail', compared.reason)
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
