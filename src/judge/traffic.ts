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

import type { CanaryJudgement, TrafficStats } from '../model.js'

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

function stats(attempts: readonly Attempt[], servers: ReadonlySet<string>): TrafficStats {
  const mine = attempts.filter((a) => servers.has(a.server))
  const errors = mine.filter((a) => a.status !== undefined && a.status >= 500).length
  return { requests: mine.length, errors, rate: mine.length ? (100 * errors) / mine.length : 0 }
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
  const canary = stats(attempts, canaryServers)
  const stable = stats(attempts, stableServers)
  const z = worseBy(canary, stable)
  if (canary.rate > maxErrorRate)
    return {
      verdict: 'fail',
      canary,
      stable,
      reason: `canary error rate ${pct(canary.rate)} (${canary.errors} of ${canary.requests}) is above canary-max-error-rate ${maxErrorRate}%`,
    }
  if (z > LIMITS.canaryWorseZ)
    return {
      verdict: 'fail',
      canary,
      stable,
      reason: `canary error rate ${pct(canary.rate)} is clearly worse than stable ${pct(stable.rate)} (${z.toFixed(1)} standard errors)`,
    }
  // Judged after the failures: a handful of requests that all failed is still a failure.
  if (canary.requests < minRequests)
    return {
      verdict: 'inconclusive',
      canary,
      stable,
      reason: `only ${canary.requests} requests reached the canary (at least ${minRequests} are needed to judge)`,
    }
  return {
    verdict: 'pass',
    canary,
    stable,
    reason: `canary ${pct(canary.rate)} of ${canary.requests}, stable ${pct(stable.rate)} of ${stable.requests}`,
  }
}
