// Pure: is the new version clearly worse than the old one on the same traffic? nginx's record of upstream
// attempts, counted per version: 5xx answers and nginx's own 502/504 for an attempt it got no answer to are
// server errors; 4xx are judged as a rate against the old version's, never alone (scanners' 404s land on
// both versions alike; a route the new version lost shows as a higher rate than the old one's).
import { LIMITS } from '../config.js'
import type { TrafficCounts } from '../model.js'

export const NO_TRAFFIC: TrafficCounts = { requests: 0, serverErrors: 0, clientErrors: 0, statuses: {} }

export type Comparison =
  | { readonly verdict: 'fail'; readonly reason: string }
  | { readonly verdict: 'pass'; readonly reason: string }
  /** Not enough new requests yet to pass, and nothing clearly wrong. */
  | { readonly verdict: 'pending'; readonly reason: string }

export function addCounts(a: TrafficCounts, b: TrafficCounts): TrafficCounts {
  const statuses: Record<string, number> = { ...a.statuses }
  for (const [s, n] of Object.entries(b.statuses)) statuses[s] = (statuses[s] ?? 0) + n
  return {
    requests: a.requests + b.requests,
    serverErrors: a.serverErrors + b.serverErrors,
    clientErrors: a.clientErrors + b.clientErrors,
    statuses,
  }
}

export function subtractCounts(a: TrafficCounts, b: TrafficCounts): TrafficCounts {
  const statuses: Record<string, number> = {}
  for (const [s, n] of Object.entries(a.statuses))
    if (n - (b.statuses[s] ?? 0) > 0) statuses[s] = n - (b.statuses[s] ?? 0)
  return {
    requests: a.requests - b.requests,
    serverErrors: a.serverErrors - b.serverErrors,
    clientErrors: a.clientErrors - b.clientErrors,
    statuses,
  }
}

/** One-sided two-proportion z statistic: how many standard errors rate a is above rate b. */
export function zAbove(errorsA: number, requestsA: number, errorsB: number, requestsB: number): number {
  if (!requestsA || !requestsB) return 0
  const pooled = (errorsA + errorsB) / (requestsA + requestsB)
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / requestsA + 1 / requestsB))
  const diff = errorsA / requestsA - errorsB / requestsB
  return se === 0 ? (diff > 0 ? Infinity : 0) : diff / se
}

const pct = (part: number, whole: number) => `${whole ? ((100 * part) / whole).toFixed(1) : '0.0'}%`

/** The statuses that count as errors of a class, most frequent first: '500: 41, 502: 2'. */
export function errorStatuses(c: TrafficCounts, cls: 4 | 5): string {
  return Object.entries(c.statuses)
    .filter(([s]) => s.startsWith(String(cls)))
    .sort((a, b) => b[1] - a[1])
    .map(([s, n]) => `${s}: ${n}`)
    .join(', ')
}

type ErrorClass = { readonly cls: 4 | 5; readonly key: 'serverErrors' | 'clientErrors'; readonly floor: number }

/** Server errors count from a small rise; client errors need a larger one (their rate wanders with clients). */
const CLASSES: readonly ErrorClass[] = [
  { cls: 5, key: 'serverErrors', floor: LIMITS.verifyServerErrorFloor },
  { cls: 4, key: 'clientErrors', floor: LIMITS.verifyClientErrorFloor },
]

/**
 * Whether one class of errors of the new version is clearly above the old version's: enough errors to see,
 * a rise that matters (at least the class's floor in percentage points, and half again the old rate), and
 * one that chance does not explain (LIMITS.verifyWorseZ standard errors: the verdict is taken again on
 * every batch of lines, so it must hold under many looks).
 */
function clearlyWorse(next: TrafficCounts, prev: TrafficCounts, c: ErrorClass): string | undefined {
  const a = next[c.key]
  if (a < LIMITS.verifyMinErrors) return undefined
  const rateA = a / next.requests
  const enoughOld = prev.requests >= LIMITS.verifyMinOldRequests
  if (!enoughOld) {
    // Nothing to compare with: only a version that is clearly broken on its own fails.
    if (c.cls === 4 || rateA < LIMITS.verifyAloneErrorRate / 100) return undefined
    return `the new version answered ${c.cls}xx to ${pct(a, next.requests)} of ${next.requests} requests (${errorStatuses(next, c.cls)}); the old one had too little traffic to compare with`
  }
  const b = prev[c.key]
  const rateB = b / prev.requests
  // (With a hair of slack: a rise of exactly the floor is one, whatever floating point makes of 3% - 2%.)
  if (100 * (rateA - rateB) < c.floor - 1e-9 || rateA < 1.5 * rateB - 1e-12) return undefined
  if (zAbove(a, next.requests, b, prev.requests) < LIMITS.verifyWorseZ) return undefined
  const old = b ? ` (${errorStatuses(prev, c.cls)})` : ''
  return `the new version answered ${c.cls}xx to ${pct(a, next.requests)} of ${next.requests} requests (${errorStatuses(next, c.cls)}), the old one to ${pct(b, prev.requests)} of ${prev.requests}${old}`
}

/** The verdict on the new version's traffic against the old version's. */
export function compareVersions(next: TrafficCounts, prev: TrafficCounts): Comparison {
  for (const c of CLASSES) {
    const worse = clearlyWorse(next, prev, c)
    if (worse) return { verdict: 'fail', reason: worse }
  }
  const seen = `${next.requests} requests to the new version (${pct(next.serverErrors, next.requests)} 5xx, ${pct(next.clientErrors, next.requests)} 4xx), ${prev.requests} to the old (${pct(prev.serverErrors, prev.requests)} 5xx, ${pct(prev.clientErrors, prev.requests)} 4xx)`
  if (next.requests >= LIMITS.verifyMinRequests) return { verdict: 'pass', reason: seen }
  return { verdict: 'pending', reason: seen }
}

/** Kullback-Leibler divergence of rate q from rate p (both in 0..1), the exponent of Chernoff's bound. */
function divergence(q: number, p: number): number {
  const term = (a: number, b: number) => (a === 0 ? 0 : a * Math.log(a / b))
  return term(q, p) + term(1 - q, 1 - p)
}

/**
 * Whether the new version's last few seconds are clearly worse than the old version's whole record: a version
 * that turned bad late (a leak, a crash loop behind a restart policy). The window is short and looked at
 * many times, so the bar is higher than for the whole record: at least LIMITS.verifyRecentMinErrors errors
 * of a class, the floors, and a chance below LIMITS.verifyRecentChance of seeing that many errors were the
 * new version as good as the old (Chernoff's bound on the binomial tail, exp(-n D(q||p))).
 */
export function compareLately(recent: TrafficCounts, prev: TrafficCounts): Comparison | undefined {
  if (prev.requests < LIMITS.verifyMinOldRequests) return undefined
  for (const c of CLASSES) {
    const errors = recent[c.key]
    if (errors < LIMITS.verifyRecentMinErrors) continue
    const q = errors / recent.requests
    // A clean old record is taken as a small rate, not zero: zero would make any error impossible.
    const p = Math.max(prev[c.key] / prev.requests, LIMITS.verifyRecentBaseRate / 100)
    if (100 * (q - p) < c.floor - 1e-9 || q < 1.5 * p) continue
    if (Math.exp(-recent.requests * divergence(q, p)) >= LIMITS.verifyRecentChance) continue
    return {
      verdict: 'fail',
      reason: `over the last seconds the new version answered ${c.cls}xx to ${pct(errors, recent.requests)} of ${recent.requests} requests (${errorStatuses(recent, c.cls)}), the old one to ${pct(prev[c.key], prev.requests)} of ${prev.requests}`,
    }
  }
  return undefined
}
