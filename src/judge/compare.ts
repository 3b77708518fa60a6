// Pure: is the new version clearly worse than the old one on the same traffic? nginx's record of upstream
// attempts, per version. Like is compared with like: every request counts under its route (method and path),
// and each route's new attempts are held against the old version's attempts on that same route (a stratified
// test, Cochran-Mantel-Haenszel), so what a client chooses to ask for cannot move the verdict:
// - a path the old version never served (a scanner's guess) says nothing about a lost route, so its 4xx and
//   its latency are not judged, and its 5xx count once per path, however often it is asked;
// - a flood of cheap requests to a route that works on both versions adds nothing to either side of the test,
//   so it cannot dilute real errors on another route (there is no floor of percentage points to get under);
// - a client that gives up on a request (nginx's 499) says nothing unless the new version had held it longer
//   than the old version holds that route's slowest requests (then it is a slow attempt, as a hang is);
// - slow attempts that all came within a few seconds are not a slow version on their own (see withoutBurst):
//   a host that stalls for a second slows every request in flight, whichever version serves it.
// Four kinds of failure are judged so: 5xx (and nginx's own 502/504 for an attempt it got no answer to), 4xx,
// slow attempts (longer than the old version's p95 on the route times latency-threshold's factor, and its
// milliseconds above it), and, through the same, requests that hang.
import { DEFAULT_LATENCY, LATENCY_OFF, LIMITS, type LatencyThreshold } from '../config.js'
import type { TrafficCounts } from '../model.js'
import type { Attempt } from './traffic.js'

export const NO_TRAFFIC: TrafficCounts = { requests: 0, serverErrors: 0, clientErrors: 0, statuses: {} }

export type Comparison =
  | { readonly verdict: 'fail'; readonly reason: string }
  /** `stall`: slow requests within a few seconds that were not judged a slower version (see withoutBurst). */
  | { readonly verdict: 'pass'; readonly reason: string; readonly stall?: string }
  /** Not enough new requests yet to pass, and nothing clearly wrong. */
  | { readonly verdict: 'pending'; readonly reason: string; readonly stall?: string }

/** The counts of a set of attempts, for the summary ('-': no status). */
export function countAttempts(attempts: readonly Attempt[]): TrafficCounts {
  const statuses: Record<string, number> = {}
  for (const a of attempts) {
    const key = a.status === undefined ? '-' : String(a.status)
    statuses[key] = (statuses[key] ?? 0) + 1
  }
  return countStatuses(statuses, attempts.length)
}

/** The counts of `requests` attempts by status ('-': none). */
function countStatuses(statuses: Record<string, number>, requests: number): TrafficCounts {
  let serverErrors = 0
  let clientErrors = 0
  for (const [key, n] of Object.entries(statuses)) {
    const status = Number(key)
    if (status >= 500) serverErrors += n
    else if (status >= 400) clientErrors += n
  }
  return { requests, serverErrors, clientErrors, statuses: { ...statuses } }
}

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

/** One stratum of the test: trials and failures of each version on one route. */
interface Stratum {
  n: number
  x: number
  N: number
  X: number
}

/**
 * Cochran-Mantel-Haenszel over strata (continuity-corrected): the new version's failures, those expected were it as good as the old
 * on each stratum, and how many standard errors apart. A stratum only one version has, or with no failure on
 * either side, adds nothing (a flood of clean requests changes neither sum).
 */
export function stratifiedExcess(strata: Iterable<Stratum>): { observed: number; expected: number; z: number } {
  let observed = 0
  let expected = 0
  let variance = 0
  for (const { n, x, N, X } of strata) {
    const total = n + N
    if (!n || !N) continue
    const failures = x + X
    observed += x
    expected += (n * failures) / total
    if (total > 1) variance += (n * N * failures * (total - failures)) / (total * total * (total - 1))
  }
  const excess = observed - expected
  // With a continuity correction: failures come in whole numbers, and without it a handful of errors in a
  // short window reads as far less likely than it is (6 of 60 against 2% is 4.1 standard errors uncorrected,
  // while such a window comes about once in a thousand).
  const z = variance > 0 ? (excess - 0.5) / Math.sqrt(variance) : excess > 0 ? Infinity : 0
  return { observed, expected, z }
}

const LN_STEP = Math.log(1.1)

/**
 * Times in ms, in buckets 10% wide (a p95 read from them is within 10% of the true one): a route's latency in
 * a few dozen numbers, however many requests it had.
 */
export class Histogram {
  private readonly buckets = new Map<number, number>()
  /** The buckets in order, kept until a new one appears (a p95 is read many times a second). */
  private sorted: number[] | undefined
  count = 0

  private static bucket(ms: number): number {
    return ms < 1 ? 0 : 1 + Math.floor(Math.log(ms) / LN_STEP)
  }

  /** The middle of a bucket (geometric): within 5% of any time it holds. */
  private static middle(bucket: number): number {
    return bucket === 0 ? 0 : Math.round(Math.exp((bucket - 0.5) * LN_STEP))
  }

  add(ms: number): void {
    const b = Histogram.bucket(ms)
    const had = this.buckets.get(b)
    if (had === undefined) this.sorted = undefined
    this.buckets.set(b, (had ?? 0) + 1)
    this.count++
  }

  /** The time below which a share `q` of the times lie (within 5%), undefined when empty. */
  quantile(q: number): number | undefined {
    if (!this.count) return undefined
    const want = Math.max(1, Math.ceil(q * this.count))
    let seen = 0
    this.sorted ??= [...this.buckets.keys()].sort((x, y) => x - y)
    for (const b of this.sorted) {
      seen += this.buckets.get(b) ?? 0
      if (seen >= want) return Histogram.middle(b)
    }
    return undefined
  }

  /** Adds every time of `other`. */
  merge(other: Histogram): void {
    for (const [b, k] of other.buckets) this.buckets.set(b, (this.buckets.get(b) ?? 0) + k)
    this.count += other.count
    this.sorted = undefined
  }

  /** How many times are above `ms` (whole buckets above the one `ms` falls in). */
  above(ms: number): number {
    const limit = Histogram.bucket(ms)
    let n = 0
    for (const [b, k] of this.buckets) if (b > limit) n += k
    return n
  }
}

/** A version's timed attempts on one route in one second (by when they arrived), for the burst rule. */
interface Span {
  readonly times: Histogram
  abandoned?: Histogram
}

/** One version's attempts on one route. */
export interface RouteTally {
  /** Attempts the replica answered. */
  answered: number
  serverErrors: number
  clientErrors: number
  /** How long the answered attempts took. */
  readonly times: Histogram
  /** How long the replica had the attempts a client gave up on (no status). */
  readonly abandoned: Histogram
  /** The same times second by second, when the tally was given when each attempt arrived (empty otherwise). */
  readonly spans: Map<number, Span>
}

/** One version's attempts, route by route, kept as they arrive (the judgement reads it a few times a second). */
export class Tally {
  readonly routes = new Map<string, RouteTally>()
  /** Attempts by status ('-': none), for the verdict's words. */
  readonly statuses: Record<string, number> = {}
  attempts = 0
  /** Spans kept over all routes: bounded (LIMITS.tallyMaxSpans), past it attempts are kept without one. */
  private spanCount = 0

  /** An attempt, and when it arrived (ms since the epoch) when known: then it also counts in its second. */
  add(a: Attempt, at?: number): void {
    this.attempts++
    const status = a.status === undefined ? '-' : String(a.status)
    this.statuses[status] = (this.statuses[status] ?? 0) + 1
    const route = a.route ?? '(no route)'
    // A client chooses its paths: past LIMITS.tallyMaxRoutes, new ones share one entry.
    const key = this.routes.has(route) || this.routes.size < LIMITS.tallyMaxRoutes ? route : '(other paths)'
    let r = this.routes.get(key)
    if (!r) {
      r = {
        answered: 0,
        serverErrors: 0,
        clientErrors: 0,
        times: new Histogram(),
        abandoned: new Histogram(),
        spans: new Map(),
      }
      this.routes.set(key, r)
    }
    this.addTo(r, a)
    if (at !== undefined && a.ms !== undefined) this.addToSpan(r, Math.floor(at / 1000), a.status, a.ms)
  }

  private addTo(r: RouteTally, a: Attempt): void {
    if (a.status === undefined) {
      if (a.ms !== undefined) r.abandoned.add(a.ms)
      return
    }
    r.answered++
    if (a.status >= 500) r.serverErrors++
    else if (a.status >= 400) r.clientErrors++
    if (a.ms !== undefined) r.times.add(a.ms)
  }

  private addToSpan(r: RouteTally, second: number, status: number | undefined, ms: number): void {
    let span = r.spans.get(second)
    if (!span) {
      if (this.spanCount >= LIMITS.tallyMaxSpans) return
      this.spanCount++
      r.spans.set(second, (span = { times: new Histogram() }))
    }
    if (status !== undefined) span.times.add(ms)
    else (span.abandoned ??= new Histogram()).add(ms)
  }

  /** The counts of the summary (countAttempts) of what was tallied. */
  counts(): TrafficCounts {
    return countStatuses(this.statuses, this.attempts)
  }

  static of(attempts: readonly Attempt[]): Tally {
    const t = new Tally()
    for (const a of attempts) t.add(a)
    return t
  }
}

/** One kind of failure: its trials and failures on a route, for a version, given the old version's route. */
interface FailureKind {
  readonly name: '5xx' | '4xx' | 'slow'
  /** [trials, failures] of `r`, judged against `old` (the old version's same route). */
  readonly count: (r: RouteTally, old: RouteTally) => readonly [number, number]
  /** Whether the old version's route is enough to judge this kind on it. */
  readonly judgeable: (old: RouteTally) => boolean
  /** Given the old version's route, [trials, failures] within one second of the new one's (slow only: see withoutBurst). */
  readonly inSpan?: (old: RouteTally) => (span: Span) => readonly [number, number]
}

/** `latency-threshold` applied to a time of the old version: what the new version must not exceed. */
export const pastThreshold = (ms: number, latency: LatencyThreshold): number =>
  Math.max(ms * latency.factor, ms + latency.ms)

/** The bar above which an attempt on a route is slow, from the old version's p95 there. */
const slowBar = (old: RouteTally, latency: LatencyThreshold): number | undefined => {
  if (old.times.count < LIMITS.latencyMinOldAttempts) return undefined
  return pastThreshold(old.times.quantile(0.95) ?? 0, latency)
}

/**
 * The old version's routes still short of a slow bar (LIMITS.latencyMinOldAttempts timed attempts) that would
 * get one within `fullMs` of its record at the rate they came in its first `liveMs`, counted generously (one
 * more than came): what a wait for the old version's baseline still waits for. A route too rare to get a bar
 * by then (a scanner's path, asked once) is not waited for; one that came often enough already has its bar.
 */
export function routesAwaitingBar(old: Tally, liveMs: number, fullMs: number): string[] {
  const min = LIMITS.latencyMinOldAttempts
  return [...old.routes]
    .filter(([, r]) => r.times.count < min && (r.times.count + 1) * fullMs >= min * liveMs)
    .map(([route]) => route)
}

/**
 * [trials, slow attempts] of answered and abandoned times against a route's bar: a request the client gave up on
 * early says nothing, one the replica held past the bar is slow (a hang).
 */
function slowCount(times: Histogram, abandoned: Histogram | undefined, bar = Infinity): readonly [number, number] {
  const held = abandoned?.above(bar) ?? 0
  return [times.count + held, times.above(bar) + held]
}

function kinds(latency: LatencyThreshold): FailureKind[] {
  const list: FailureKind[] = [
    { name: '5xx', count: (r) => [r.answered, r.serverErrors], judgeable: (o) => o.answered > 0 },
    { name: '4xx', count: (r) => [r.answered, r.clientErrors], judgeable: (o) => o.answered > 0 },
  ]
  if (latency.factor > 0)
    list.push({
      name: 'slow',
      count: (r, old) => slowCount(r.times, r.abandoned, slowBar(old, latency)),
      judgeable: (o) => slowBar(o, latency) !== undefined,
      inSpan: (old) => {
        const bar = slowBar(old, latency)
        return (span) => slowCount(span.times, span.abandoned, bar)
      },
    })
  return list
}

/** The strata of one kind: each route both versions served, plus, for 5xx, paths only the new version was asked. */
function strataOf(kind: FailureKind, next: Tally, prev: Tally): Map<string, Stratum> {
  const strata = new Map<string, Stratum>()
  const unseen = { paths: 0, failed: 0 }
  for (const [route, r] of next.routes) {
    const old = prev.routes.get(route)
    if (!old || !kind.judgeable(old)) {
      // A path the old version was not asked says nothing of 4xx or latency; of 5xx, once per path.
      if (kind.name === '5xx' && r.answered > 0 && !old) {
        unseen.paths++
        if (r.serverErrors > 0) unseen.failed++
      }
      continue
    }
    const [n, x] = kind.count(r, old)
    const [N, X] = kind.count(old, old)
    if (n) strata.set(route, { n, x, N, X })
  }
  if (unseen.paths) {
    let failed = 0
    for (const r of prev.routes.values()) if (r.serverErrors > 0) failed++
    strata.set('(paths the old version was not asked)', {
      n: unseen.paths,
      x: unseen.failed,
      N: prev.routes.size,
      X: failed,
    })
  }
  return strata
}

/**
 * The fewest 5xx that may fail a version, and by how many they must exceed those expected: a handful is noise
 * (LIMITS.verifyMinErrors), unless nginx itself stopped sending a new replica requests after it failed them
 * (see Judge.takenOut), which it does after max_fails of them: no more can come.
 */
export interface ErrorFloor {
  readonly errors: number
  readonly excess: number
}

const USUAL_FLOOR: ErrorFloor = { errors: LIMITS.verifyMinErrors, excess: LIMITS.verifyMinExcess }

/**
 * The strata without the new version's slowest LIMITS.latencyBurstSeconds (the consecutive seconds in which
 * most of its attempts failed this kind), and how many failed in them. A host that stalls for a second slows
 * every request in flight: while only the new version serves (blue-green's bake), nothing of the old version
 * is slowed beside it, and those requests, many and all at once, read as a version clearly slower (a good
 * version was failed so, 21 slow requests against 10.9 expected, in 2 of 19 blue-green runs under the
 * benchmark's load). A slow version is slow in every second. Undefined for a kind without the rule, or when
 * the tally kept no seconds (it was not given when its attempts arrived).
 */
function withoutBurst(kind: FailureKind, next: Tally, prev: Tally, strata: ReadonlyMap<string, Stratum>) {
  const inSpan = kind.inSpan
  if (!inSpan) return undefined
  const bySecond = new Map<string, Map<number, readonly [number, number]>>()
  const failedIn = new Map<number, number>()
  for (const route of strata.keys()) {
    const r = next.routes.get(route)
    const old = prev.routes.get(route)
    if (!r || !old) continue
    const seconds = new Map<number, readonly [number, number]>()
    const count = inSpan(old)
    for (const [second, span] of r.spans) {
      const c = count(span)
      seconds.set(second, c)
      failedIn.set(second, (failedIn.get(second) ?? 0) + c[1])
    }
    bySecond.set(route, seconds)
  }
  if (!failedIn.size) return undefined
  const width = LIMITS.latencyBurstSeconds
  const window = (start: number) => Array.from({ length: width }, (_, k) => start + k)
  // The window with the most failures starts at a second that has some.
  let start = 0
  let inBurst = -1
  for (const s of failedIn.keys()) {
    const n = window(s).reduce((sum, k) => sum + (failedIn.get(k) ?? 0), 0)
    if (n > inBurst) [start, inBurst] = [s, n]
  }
  const rest = new Map<string, Stratum>()
  for (const [route, st] of strata) {
    let { n, x } = st
    for (const k of window(start)) {
      const c = bySecond.get(route)?.get(k)
      if (c) [n, x] = [n - c[0], x - c[1]]
    }
    if (n > 0) rest.set(route, { ...st, n, x })
  }
  return { rest, inBurst }
}

/** What one kind of failure of the new version shows against the old version's. */
type Worse =
  /** Clearly above; `inBurst` of its failures came in its slowest seconds (when the burst rule applies). */
  | { readonly found: ReturnType<typeof stratifiedExcess> & { strata: Map<string, Stratum>; inBurst?: number } }
  /** Clearly above only with the failures of its slowest seconds, `inBurst` of `observed`: a stall, not judged. */
  | { readonly burst: { readonly inBurst: number; readonly observed: number } }

/** Whether one kind of failure of the new version is clearly above the old version's. */
function clearlyWorse(kind: FailureKind, next: Tally, prev: Tally, z: number, floor: ErrorFloor): Worse | undefined {
  const strata = strataOf(kind, next, prev)
  const t = stratifiedExcess(strata.values())
  // nginx's bar (floor) is for 5xx only: max_fails counts nothing else.
  const bar = kind.name === '5xx' ? floor : USUAL_FLOOR
  const least = kind.name === 'slow' ? LIMITS.latencyMinSlow : bar.errors
  const above = (e: typeof t, fewest: number) =>
    e.observed >= fewest && e.observed - e.expected >= bar.excess && e.z >= z
  if (!above(t, least)) return undefined
  const burst = withoutBurst(kind, next, prev, strata)
  if (!burst) return { found: { ...t, strata } }
  // Beyond its slowest seconds, as few as errors need: the many slow answers are counted above already, and a
  // slow version's synchronised clients come in bursts too (18 of 38 in 3 s, 10x slower under the benchmark).
  if (!above(stratifiedExcess(burst.rest.values()), bar.errors))
    return { burst: { inBurst: burst.inBurst, observed: t.observed } }
  return { found: { ...t, strata, inBurst: burst.inBurst } }
}

/** The routes where the new version failed most, for the verdict's words: '"GET /cart" 12 of 40, old 0 of 300'. */
function worstRoutes(strata: Map<string, Stratum>): string {
  const excess = (s: Stratum) => s.x - s.n * (s.X / (s.N || 1))
  return [...strata.entries()]
    .filter(([, s]) => s.x > 0)
    .sort((a, b) => excess(b[1]) - excess(a[1]))
    .slice(0, 3)
    .map(([route, s]) => `${JSON.stringify(route)} ${s.x} of ${s.n}, old ${s.X} of ${s.N}`)
    .join('; ')
}

/** Median and p95 of both versions on the routes where latency was judged (the words of a latency verdict). */
function latencyWords(next: Tally, prev: Tally, latency: LatencyThreshold): string {
  const mine = new Histogram()
  const theirs = new Histogram()
  for (const [route, r] of next.routes) {
    const old = prev.routes.get(route)
    if (!old || slowBar(old, latency) === undefined) continue
    mine.merge(r.times)
    mine.merge(r.abandoned)
    theirs.merge(old.times)
  }
  const ms = (v: number | undefined) => (v === undefined ? '?' : `${v} ms`)
  return `median ${ms(mine.quantile(0.5))} and p95 ${ms(mine.quantile(0.95))} against the old version's ${ms(theirs.quantile(0.5))} and ${ms(theirs.quantile(0.95))} on the same routes`
}

type Found = Extract<Worse, { found: unknown }>['found']

function failureWords(kind: FailureKind, found: Found, next: Tally, prev: Tally, latency: LatencyThreshold): string {
  const expected = found.expected.toFixed(1)
  const where = worstRoutes(found.strata)
  const burst =
    found.inBurst === undefined ? '' : `; ${found.inBurst} of them in its slowest ${LIMITS.latencyBurstSeconds} s`
  if (kind.name === 'slow')
    return `the new version is slower: ${found.observed} of its requests took longer than ${latency.factor}x the old version's p95 and ${latency.ms} ms more on their route (${expected} expected${burst}), ${latencyWords(next, prev, latency)}; worst routes: ${where}`
  const sigma = found.z === Infinity ? 'none on the old' : `${found.z.toFixed(1)} standard errors`
  const statuses = errorStatuses({ ...NO_TRAFFIC, statuses: next.statuses }, kind.name === '5xx' ? 5 : 4)
  return `the new version answered ${kind.name} to ${found.observed} requests where ${expected} were expected from the old version on the same routes (${statuses}; ${sigma}); worst routes: ${where}`
}

/** Attempts the replicas answered, and those with each kind of error, over a tally. */
function totals(t: Tally) {
  let answered = 0
  let serverErrors = 0
  let clientErrors = 0
  for (const r of t.routes.values()) {
    answered += r.answered
    serverErrors += r.serverErrors
    clientErrors += r.clientErrors
  }
  return { answered, serverErrors, clientErrors }
}

/**
 * The verdict on the new version's attempts against the old version's: fails when a kind of failure is clearly
 * above the old version's on the same routes (`z` standard errors: the verdict is taken again on every batch
 * of lines, so it must hold under many looks).
 */
export function compareTallies(
  next: Tally,
  prev: Tally,
  latency: LatencyThreshold = DEFAULT_LATENCY,
  z: number = LIMITS.verifyWorseZ,
  floor: ErrorFloor = USUAL_FLOOR,
): Comparison {
  const mine = totals(next)
  const theirs = totals(prev)
  let burst: { readonly inBurst: number; readonly observed: number } | undefined
  if (prev.attempts < LIMITS.verifyMinOldRequests) {
    // Nothing to compare with: only a version that is clearly broken on its own fails.
    const e = mine.serverErrors
    if (e >= LIMITS.verifyMinErrors && e >= (LIMITS.verifyAloneErrorRate / 100) * next.attempts)
      return {
        verdict: 'fail',
        reason: `the new version answered 5xx to ${pct(e, next.attempts)} of ${next.attempts} requests (${errorStatuses({ ...NO_TRAFFIC, statuses: next.statuses }, 5)}); the old one had too little traffic to compare with`,
      }
  } else {
    for (const kind of kinds(latency)) {
      const worse = clearlyWorse(kind, next, prev, z, floor)
      if (worse && 'found' in worse)
        return { verdict: 'fail', reason: failureWords(kind, worse.found, next, prev, latency) }
      if (worse) burst = worse.burst
    }
  }
  const stall =
    burst &&
    `${burst.inBurst} of the new version's ${burst.observed} slow requests came within ${LIMITS.latencyBurstSeconds} s: a stall, not judged a slower version`
  const seen = `${next.attempts} requests to the new version (${pct(mine.serverErrors, next.attempts)} 5xx, ${pct(mine.clientErrors, next.attempts)} 4xx), ${prev.attempts} to the old (${pct(theirs.serverErrors, prev.attempts)} 5xx, ${pct(theirs.clientErrors, prev.attempts)} 4xx)${stall ? `; ${stall}` : ''}`
  const verdict = next.attempts >= LIMITS.verifyMinRequests ? 'pass' : 'pending'
  return stall ? { verdict, reason: seen, stall } : { verdict, reason: seen }
}

/** compareTallies on lists of attempts. */
export const compareVersions = (
  next: readonly Attempt[],
  prev: readonly Attempt[],
  latency: LatencyThreshold = DEFAULT_LATENCY,
  z: number = LIMITS.verifyWorseZ,
): Comparison => compareTallies(Tally.of(next), Tally.of(prev), latency, z)

/**
 * Whether the new version's last few seconds are clearly worse than the old version's record: a version that
 * turned bad late (a leak, a crash loop behind a restart policy). The window is short and looked at many
 * times, so the bar is higher (LIMITS.verifyRecentZ). Errors only: slowness is judged over the whole run,
 * where a burst can be told from a version slow in every second (withoutBurst); in a window of 3 s a stall's
 * last stragglers beyond its slowest seconds are a handful against a second of answers, and failed a good
 * version so. Undefined while the old version has too little to compare with.
 */
export function compareLately(recent: Tally, prev: Tally): Comparison | undefined {
  if (prev.attempts < LIMITS.verifyMinOldRequests) return undefined
  const c = compareTallies(recent, prev, LATENCY_OFF, LIMITS.verifyRecentZ)
  if (c.verdict !== 'fail') return undefined
  return { verdict: 'fail', reason: `over the last seconds ${c.reason}` }
}
