// Pure judgement of a canary step from nginx's own access log: every upstream attempt nginx made in the
// window, counted by the replica's port (nginx logs the address it resolved, so ports, unique on the host,
// identify replicas). An attempt is an error when the replica answered 5xx or failed to answer (nginx
// logs 502/504 for that attempt).
import { LIMITS } from '../config.js'

export interface Attempt {
  readonly port: number
  readonly status: number | undefined
}

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

/** Upstream attempts in access log lines written with the built-in `rollout` log format. */
export function parseAccessLog(text: string): Attempt[] {
  const attempts: Attempt[] = []
  for (const m of text.matchAll(/ upstream=(.+?) upstream_status=(.+?) request_time=/g)) {
    // Several attempts are separated by ", " (next server) or " : " (internal redirect).
    const addresses = m[1].split(/, | : /)
    const statuses = m[2].split(/, | : /)
    addresses.forEach((address, i) => {
      const port = /:(\d+)$/.exec(address.trim())?.[1]
      if (!port) return
      const status = Number(statuses[i])
      attempts.push({ port: Number(port), status: Number.isFinite(status) ? status : undefined })
    })
  }
  return attempts
}

function stats(attempts: readonly Attempt[], ports: ReadonlySet<number>): TrafficStats {
  const mine = attempts.filter((a) => ports.has(a.port))
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
  canaryPorts: ReadonlySet<number>,
  stablePorts: ReadonlySet<number>,
  maxErrorRate: number,
  minRequests: number = LIMITS.canaryMinRequests,
): CanaryJudgement {
  const canary = stats(attempts, canaryPorts)
  const stable = stats(attempts, stablePorts)
  const z = worseBy(canary, stable)
  if (canary.rate > maxErrorRate)
    return { verdict: 'fail', canary, stable, reason: `canary error rate ${pct(canary.rate)} (${canary.errors} of ${canary.requests}) is above canary-max-error-rate ${maxErrorRate}%` }
  if (z > LIMITS.canaryWorseZ)
    return { verdict: 'fail', canary, stable, reason: `canary error rate ${pct(canary.rate)} is clearly worse than stable ${pct(stable.rate)} (${z.toFixed(1)} standard errors)` }
  // Judged after the failures: a handful of requests that all failed is still a failure.
  if (canary.requests < minRequests)
    return { verdict: 'inconclusive', canary, stable, reason: `only ${canary.requests} requests reached the canary (at least ${minRequests} are needed to judge)` }
  return { verdict: 'pass', canary, stable, reason: `canary ${pct(canary.rate)} of ${canary.requests}, stable ${pct(stable.rate)} of ${stable.requests}` }
}
