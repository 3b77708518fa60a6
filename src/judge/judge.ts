// The judgement room: what real traffic and the replicas' lives say of a deploy. It follows nginx's record of
// the app's requests as nginx writes it, watches the replicas a deploy routed to, and answers in verdicts, as
// values; the executor only acts on them. The first thing found wrong fails the deploy at once, whatever
// step is under way (failed settles), while the old replicas can still take the traffic back.
import { LIMITS, type Config } from '../config.js'
import type { ReplicaPort } from '../health/gate.js'
import {
  hostPort,
  names,
  replicaKey,
  type Bake,
  type CanaryObservation,
  type Replica,
  type Split,
  type Verification,
} from '../model.js'
import type { Following } from '../remote/ssh.js'
import {
  compareLately,
  compareTallies,
  compareVersions,
  countAttempts,
  NO_TRAFFIC,
  routesAwaitingBar,
  Tally,
} from './compare.js'
import { HeldOpen, openBar, oldLongestMs, type OpenRequest } from './open.js'
import { TrafficRecord, type AttemptView, type Mark } from './record.js'
import { judgeCanaryCounts } from './traffic.js'
import { Watch } from './watch.js'

// Waits that never keep the process alive: a run that ended (cancelled, failed) while the judgement still
// held a bake or a canary window exits at once.
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref())

/** What nginx sees of the app's requests: its record, followed from empty, and the requests still open. */
export interface TrafficSource {
  follow(onData: (chunk: Buffer) => void): Promise<Following>
  /** The requests nginx is still waiting on from `servers` ('address:port'); none looked at when absent. */
  openRequests?(servers: readonly string[]): Promise<readonly OpenRequest[]>
}

/** What an upstream address is where nginx runs: itself, or for a host name the addresses it resolves to. */
export type Resolve = (address: string) => readonly string[]

export class Judge {
  private watch: Watch | undefined
  private record: TrafficRecord | undefined
  private following: Promise<Following> | undefined
  private ticker: NodeJS.Timeout | undefined
  private looker: NodeJS.Timeout | undefined
  /** Requests the new version held open past the bar, over the run. */
  private readonly held = new HeldOpen()
  /** Why the requests nginx waits on could not be looked at, if they could not (said in the bake's verdict). */
  private openUnwatched: string | undefined
  /** Which replicas are the new version's (the rest are what it is judged against); none before begin(). */
  private isNew: (r: Replica) => boolean = () => false
  /** Servers of the new version and of the old, as routed in this run (a server stays once it was routed). */
  private readonly newServers = new Set<string>()
  private readonly oldServers = new Set<string>()
  /** When each new replica was first routed, by replica, and by server as nginx logs it. */
  private readonly routedAt = new Map<string, { replica: Replica; at: number }>()
  private readonly serverRoutedAt = new Map<string, number>()
  /** Where the record stood when the new version first got traffic, and at the last route. */
  private firstRoute: Mark | undefined
  private lastRoute: Mark | undefined
  /** When the reload that turned nginx's record on took effect (ms since the epoch). */
  private recordLiveAt: number | undefined
  private seen: string | undefined
  private signal: (why: string) => void = () => undefined
  /** Settles with the first thing found wrong, the moment it is found. */
  failed: Promise<string> = new Promise(() => undefined)

  constructor(
    private readonly replicas: ReplicaPort,
    private readonly traffic: TrafficSource,
    private readonly config: Config,
    /** Takes evidence still being gathered: what is found wrong acts at once, its evidence follows. */
    private readonly keep: (work: Promise<unknown>) => void = (work) => void work.catch(() => undefined),
    private readonly resolve: Resolve = (address) => [address],
  ) {}

  /** The keys nginx logs attempts to a replica under ('address:port'; one per address a host name has). */
  private keysOf(r: Replica): string[] {
    return this.resolve(r.address).map((a) => hostPort(a, r.port))
  }

  private keysOfAll(rs: readonly Replica[]): Set<string> {
    return new Set(rs.flatMap((r) => this.keysOf(r)))
  }

  /** A deploy of `newImage` begins: the replicas it routes to are watched until end(). */
  begin(newImage: string, isNew?: (r: Replica) => boolean): void {
    this.isNew = isNew ?? ((r) => r.image === newImage)
    this.seen = undefined
    this.failed = new Promise<string>((resolve) => (this.signal = resolve))
    this.watch = new Watch(this.replicas, this.config, this.keep)
    void this.watch.failed.then((why) => this.fail(why))
  }

  async end(): Promise<void> {
    clearInterval(this.ticker)
    this.ticker = undefined
    clearInterval(this.looker)
    this.looker = undefined
    await this.watch?.stop()
    this.watch = undefined
    const following = this.following
    this.following = undefined
    await (await following?.catch(() => undefined))?.stop()
  }

  /** Whether nginx's record is being followed. */
  get recording(): boolean {
    return this.following !== undefined
  }

  /**
   * Starts following nginx's record of the app's requests (from empty); the route that turns the record on
   * comes after. Idempotent.
   */
  async startRecording(): Promise<void> {
    if (this.following) return this.following.then(() => undefined)
    const record = new TrafficRecord()
    this.record = record
    const following = this.traffic.follow((chunk) => record.add(chunk.toString('utf8')))
    this.following = following
    const f = await following
    // A follow that ends before the run stops it leaves every later route without a record: that is a
    // judgement that cannot run, and says so (the run goes back), never a quiet app.
    void f.ended.then(({ code, stderr }) => {
      if (this.following !== following) return
      const said = stderr.trim().split('\n').slice(-3).join(' / ')
      // No exit status: the channel closed without one, as when the SSH connection is lost.
      const how = code === null ? 'the SSH channel closed without an exit status' : `exit ${code}`
      this.fail(
        `could not judge: following nginx's record of ${this.config.app}'s requests ended (${how}${said ? `: ${said}` : ''})`,
      )
    })
    this.ticker = setInterval(() => this.tick(), LIMITS.judgeTickMs)
    this.ticker.unref()
    if (this.traffic.openRequests && this.config.latencyThreshold.factor > 0) {
      let looking = false
      this.looker = setInterval(() => {
        if (looking) return
        looking = true
        void this.lookAtOpen(record).finally(() => (looking = false))
      }, LIMITS.openLookMs)
      this.looker.unref()
    }
  }

  /**
   * Once a second: the requests nginx is still waiting on. A version that never answers a route is not in
   * nginx's record until its clients give up, so its held requests are counted here, each once; the old
   * version's own long waits raise the bar.
   */
  private async lookAtOpen(record: TrafficRecord): Promise<void> {
    if (this.seen || !this.newServers.size || !this.traffic.openRequests) return
    let open: readonly OpenRequest[]
    try {
      open = await this.traffic.openRequests([...this.newServers, ...this.oldServers])
    } catch (e) {
      // Not a judgement that cannot run: nginx's record still judges every request that ends.
      this.openUnwatched = (e instanceof Error ? e.message : String(e)).split('\n')[0]
      clearInterval(this.looker)
      return
    }
    if (this.seen) return
    const prev = this.wholeRun(record).prev
    // Too little of the old version to know how long its requests take: its record decides alone.
    if (prev.attempts < LIMITS.verifyMinOldRequests) return
    // Taken after the look has seen the old version's own waits in this table.
    const bar = () => openBar(prev, this.held.oldOpenMs, this.config.latencyThreshold)
    const count = this.held.look(
      open,
      (s) => this.newServers.has(s),
      (s) => this.oldServers.has(s),
      bar,
    )
    if (count < LIMITS.verifyMinErrors) return
    const old = Math.max(oldLongestMs(prev), this.held.oldOpenMs)
    const reason =
      `the new version is slower: ${count} of its requests were still unanswered after ${bar()} ms ` +
      `(the longest waited ${this.held.longestMs} ms), where the old version took or held at most ${old} ms on any request`
    this.failOnTraffic(reason)
    this.evidence(
      [...this.routedAt.values()].map((r) => r.replica),
      reason,
    )
  }

  /**
   * Before all traffic moves to the new version: holds while nginx's record of the old version's requests is
   * still gathering each route's latency baseline (a route with fewer than LIMITS.latencyMinOldAttempts of
   * them is not judged for latency: a blue-green switch right after a slow reload left a 10x slower version's
   * slow route 12 of them once, and so unjudged another time). The hold ends once the record has been live
   * for LIMITS.baselineMs, or from LIMITS.baselineMinMs on once no route coming often enough to get its bar by
   * then still lacks it (routesAwaitingBar): under the benchmark's load the routes have theirs a second after
   * the record went live, and the switch need not wait the rest. An app with no request in
   * LIMITS.verifyQuietMs is quiet and not held; nor is a run whose record is not live.
   */
  async baseline(): Promise<void> {
    for (;;) {
      const record = this.record
      if (this.recordLiveAt === undefined || !record) return
      const since = Date.now() - this.recordLiveAt
      if (since >= LIMITS.baselineMs) return
      if (since >= LIMITS.verifyQuietMs && record.total() === 0) return
      if (since >= LIMITS.baselineMinMs && record.total() > 0) {
        // The old version's whole record, as the judgement tallies it (kept up a look at a time).
        if (!routesAwaitingBar(this.wholeRun(record).prev, since, LIMITS.baselineMs).length) return
      }
      await sleep(50)
    }
  }

  /** The reload that turns nginx's record on took effect: from now on, an empty record is a quiet app. */
  recordLive(): void {
    this.recordLiveAt ??= Date.now()
  }

  /**
   * Where nginx's record stands before a reload that routes: taken before it and given to routed(), so that
   * what the new replicas answered between the reload taking effect and the run hearing so counts for them.
   */
  mark(): Mark | undefined {
    return this.record?.mark()
  }

  /**
   * nginx routes to `servers` from now on (since `from`, where the record stood before the reload, else now):
   * those of the new image are watched and judged, the others are what they are judged against. A new
   * server is nginx's only after the reload, so nothing before `from` is counted for it.
   */
  routed(servers: readonly Replica[], from: Mark | undefined = this.mark()): void {
    const fresh = servers.filter((r) => this.isNew(r))
    this.watch?.add(fresh)
    for (const r of servers)
      for (const key of this.keysOf(r)) (this.isNew(r) ? this.newServers : this.oldServers).add(key)
    for (const r of fresh) {
      if (!this.routedAt.has(replicaKey(r))) this.routedAt.set(replicaKey(r), { replica: r, at: Date.now() })
      for (const key of this.keysOf(r)) if (!this.serverRoutedAt.has(key)) this.serverRoutedAt.set(key, Date.now())
    }
    this.lastRoute = from
    if (fresh.length && !this.firstRoute) this.firstRoute = this.lastRoute
  }

  /** What was found wrong so far, if anything. */
  get failure(): string | undefined {
    return this.seen
  }

  /** Probes every watched replica now: before a route takes old replicas out (never leave only dead ones). */
  async verdictNow(): Promise<string | undefined> {
    await this.watch?.round()
    return this.seen
  }

  /**
   * Waits for `work`, unless something is found wrong first: a wait (a gate, a drain, a bake) need not run on
   * while nginx sends traffic to a bad version. `work` must be safe to leave running (it only reads).
   */
  async unlessFailed<T>(work: Promise<T>): Promise<{ readonly done: T } | { readonly failed: string }> {
    if (this.seen) return { failed: this.seen }
    if (!this.watch) return { done: await work }
    work.catch(() => undefined)
    return Promise.race([work.then((done) => ({ done })), this.failed.then((failed) => ({ failed }))])
  }

  private fail(why: string): void {
    if (this.seen) return
    this.seen = why
    this.signal(why)
  }

  /** What real traffic showed (the comparison's words), when that is what failed the deploy. */
  private trafficReason: string | undefined

  /** The canary share being observed, if any: a failure found meanwhile names it. */
  private observing: Split | undefined

  private failOnTraffic(reason: string): void {
    if (this.seen) return
    this.trafficReason = reason
    const share = this.observing ? `canary step at ${this.observing.percent}% failed: ` : ''
    this.fail(`${share}real traffic: ${reason}`)
  }

  /**
   * An attempt of the new version as the latency judgement takes it: untimed while its replica warms up
   * (LIMITS.latencyWarmupMs after its route), so that a start's first slow answers are not a slow version.
   */
  private readonly warmed: AttemptView = (a, at) => {
    const routed = this.serverRoutedAt.get(a.server)
    return routed !== undefined && at - routed < LIMITS.latencyWarmupMs ? { ...a, ms: undefined } : a
  }

  /** The whole run, tallied as it arrives (the judgement reads it many times a second). */
  private tallies: { next: Tally; prev: Tally; upTo: number; newCount: number; oldCount: number } | undefined

  /** Each new server's last attempt (its place in the record, when it arrived) and its 5xx, over the run. */
  private readonly served = new Map<string, { lastIndex: number; lastAt: number; errors: number }>()

  /** The old version over the whole record, and the new one since it first got traffic, route by route. */
  private wholeRun(record: TrafficRecord): { next: Tally; prev: Tally } {
    let t = this.tallies
    // Servers are only ever added (at a route): when they were, the record is tallied again from its start.
    if (!t || t.newCount !== this.newServers.size || t.oldCount !== this.oldServers.size) {
      t = {
        next: new Tally(),
        prev: new Tally(),
        upTo: 0,
        newCount: this.newServers.size,
        oldCount: this.oldServers.size,
      }
      this.tallies = t
      this.served.clear()
    }
    const since = this.firstRoute?.index ?? Infinity
    const { next, prev } = t
    record.forEachSince(t.upTo, (a, index, at) => {
      if (this.newServers.has(a.server)) {
        if (index < since) return
        next.add(this.warmed(a, at), at)
        // Kept in place: this runs for every attempt of the new version.
        let s = this.served.get(a.server)
        if (!s) this.served.set(a.server, (s = { lastIndex: index, lastAt: at, errors: 0 }))
        s.lastIndex = index
        s.lastAt = at
        if (a.status !== undefined && a.status >= 500) s.errors++
      } else if (this.oldServers.has(a.server)) prev.add(a)
    })
    t.upTo = record.total()
    return t
  }

  /** The last burst of slow requests the run's whole record showed that was not judged a slower version. */
  private stall: string | undefined

  /** How many attempts the last tick judged: a tick with nothing new to judge does nothing. */
  private judgedUpTo = -1

  /** A few times a second: is the new version, over the run or over the last seconds, clearly worse? */
  private tick(): void {
    const record = this.record
    if (!record || this.seen || !this.newServers.size) return
    const upTo = record.total()
    if (upTo === this.judgedUpTo) return
    this.judgedUpTo = upTo
    const both = this.wholeRun(record)
    const latency = this.config.latencyThreshold
    const whole = compareTallies(both.next, both.prev, latency)
    if (whole.verdict !== 'fail' && whole.stall) this.stall = whole.stall
    const bad =
      (whole.verdict === 'fail' ? whole : this.judgedTakenOut(record, both)) ??
      compareLately(record.tally(this.newServers, record.since(LIMITS.verifyRecentMs), this.warmed), both.prev)
    if (!bad) return
    this.failOnTraffic(bad.reason)
    this.evidence(
      [...this.routedAt.values()].map((r) => r.replica),
      bad.reason,
    )
  }

  /**
   * The new servers nginx stopped sending requests to after they answered 5xx: nginx takes a server out for
   * fail_timeout once it failed max_fails requests (per worker; while a version is judged 500-504 count), so
   * that no more evidence comes from it, and a route would end *not judged* with fewer than the usual handful
   * of errors while the version fails everything. Seen as: a 5xx or more, then no request for
   * LIMITS.takenOutMs while LIMITS.takenOutOthers of the app's went elsewhere.
   */
  private takenOut(record: TrafficRecord): string[] {
    if (this.config.nginx.maxFails === 0) return []
    const now = Date.now()
    const total = record.total()
    return [...this.served]
      .filter(
        ([, s]) =>
          s.errors > 0 && now - s.lastAt >= LIMITS.takenOutMs && total - s.lastIndex - 1 >= LIMITS.takenOutOthers,
      )
      .map(([server]) => server)
  }

  /**
   * With servers taken out (see takenOut): the new version judged with nginx's own bar for its 5xx (max_fails
   * of them, not the usual handful), on the same comparison with the old version route by route.
   */
  private judgedTakenOut(record: TrafficRecord, both: { next: Tally; prev: Tally }) {
    const out = this.takenOut(record)
    if (!out.length) return undefined
    const max = this.config.nginx.maxFails
    const errors = Math.min(LIMITS.verifyMinErrors, max)
    const floor = { errors, excess: errors - 0.5 }
    const c = compareTallies(both.next, both.prev, this.config.latencyThreshold, LIMITS.verifyWorseZ, floor)
    if (c.verdict !== 'fail') return undefined
    const taken = [...this.routedAt.values()]
      .map((r) => r.replica)
      .filter((r) => this.keysOf(r).some((k) => out.includes(k)))
    const which = taken.length ? names(taken, this.config.appHosts.length > 1) : out.join(', ')
    return {
      ...c,
      reason: `nginx took ${which} out after its failed requests (max-fails ${max}): ${c.reason}`,
    }
  }

  /** The replicas' last log lines, for the summary: gathered while the traffic goes back. */
  private evidence(replicas: readonly Replica[], why: string): void {
    this.keep(Promise.all(replicas.map((r) => this.replicas.evidence(r, why, false))))
  }

  /**
   * Judges a route's new replicas on real traffic against the old version, for at most `seconds`: passes
   * once enough of their requests were judged, fails as soon as they are clearly worse, and is not judged
   * when too few requests came (at once when none at all reached the app).
   */
  async verify(replicas: readonly Replica[], seconds: number, manyHosts: boolean): Promise<Verification> {
    const t0 = Date.now()
    const record = this.record
    const mark = this.lastRoute ?? record?.mark()
    const servers = this.keysOfAll(replicas)
    const judged = names(replicas, manyHosts).split(', ')
    for (;;) {
      const next = record?.tally(servers, mark, this.warmed) ?? new Tally()
      const prev = record ? this.wholeRun(record).prev : new Tally()
      const ms = Date.now() - t0
      // Counted only for the verdict's record: the old version's whole record is long.
      const end = (verdict: Verification['verdict'], reason: string): Verification => ({
        new: next.counts(),
        old: record?.of(this.oldServers) ?? NO_TRAFFIC,
        ms,
        replicas: judged,
        verdict,
        reason,
      })
      if (this.seen) return end('fail', this.trafficReason ?? this.seen)
      if (!record) return end('not judged', 'no record of requests')
      const c = compareTallies(next, prev, this.config.latencyThreshold)
      if (c.verdict === 'fail') {
        this.failOnTraffic(c.reason)
        this.evidence(replicas, c.reason)
        return end('fail', c.reason)
      }
      if (c.verdict === 'pass') return end('pass', c.reason)
      const quiet = this.quietFor(record, mark, ms)
      if (quiet) return end('not judged', quiet)
      if (ms >= seconds * 1000)
        return end(
          'not judged',
          `only ${next.attempts} requests in verify-seconds ${seconds}s (${LIMITS.verifyMinRequests} are needed): ${c.reason}`,
        )
      await sleep(LIMITS.judgeTickMs)
    }
  }

  /**
   * Why a route cannot be judged because the app gets no traffic, if so: no request at all since nginx began
   * recording, a second or more ago (at the first route the record has often been on that long already, and
   * at every later route of a quiet app it has), or none within a second of this route. An app busy enough to
   * judge (LIMITS.verifyMinRequests in verify-seconds) has a request in any second but by rare chance.
   */
  private quietFor(record: TrafficRecord, mark: Mark | undefined, msSinceRoute: number): string | undefined {
    const sinceLive = this.recordLiveAt === undefined ? 0 : Date.now() - this.recordLiveAt
    if (sinceLive >= LIMITS.verifyQuietMs && record.total() === 0)
      return `no request reached ${this.config.app} in the ${sinceLive} ms since nginx began recording its requests`
    if (msSinceRoute >= LIMITS.verifyQuietMs && record.total(mark) === 0)
      return `no request reached ${this.config.app} within ${msSinceRoute} ms of the route`
    return undefined
  }

  /**
   * Holds until every new replica has been routed for `seconds`, judging all along; ends early with what
   * was found wrong.
   */
  async bake(seconds: number): Promise<Bake> {
    const last = Math.max(0, ...[...this.routedAt.values()].map((r) => r.at))
    const until = last + seconds * 1000
    const mark = this.record?.mark()
    while (!this.seen && Date.now() < until) await Promise.race([sleep(until - Date.now()), this.failed])
    const counts = {
      seconds,
      new: this.record?.of(this.newServers, mark) ?? NO_TRAFFIC,
      old: this.record?.of(this.oldServers) ?? NO_TRAFFIC,
    }
    if (this.seen) return { ...counts, verdict: 'fail', reason: this.seen }
    const unwatched = this.openUnwatched ? `; requests held open were not watched (${this.openUnwatched})` : ''
    const stall = this.stall ? `; ${this.stall}` : ''
    return {
      ...counts,
      verdict: 'pass',
      reason: `every new replica served for ${seconds}s: no exit, restart, failed probes or worse error rate${unwatched}${stall}`,
    }
  }

  /**
   * Holds a canary share for `seconds`, judging all along (a clearly worse canary, or one that dies, fails at
   * once), then judges the window: the canary's 5xx rate against canary-max-error-rate and the stable one's.
   */
  async observe(split: Split, stable: readonly Replica[], windowSeconds: number): Promise<CanaryObservation> {
    await this.startRecording()
    const mark = this.lastRoute ?? this.record?.mark()
    const deadline = Date.now() + windowSeconds * 1000
    this.observing = split
    while (!this.seen && Date.now() < deadline) await Promise.race([sleep(deadline - Date.now()), this.failed])
    this.observing = undefined
    const canaryAttempts = this.record?.attempts(this.keysOfAll(split.canary), mark, this.warmed) ?? []
    const stableAttempts = this.record?.attempts(this.keysOfAll(stable), mark) ?? []
    const canary = countAttempts(canaryAttempts)
    const stableCounts = countAttempts(stableAttempts)
    const step = { percent: split.percent, seconds: windowSeconds }
    const compared = compareVersions(canaryAttempts, stableAttempts, this.config.latencyThreshold)
    const judgement = judgeCanaryCounts(canary, stableCounts, this.config.canary.maxErrorRate, undefined, compared)
    // The step's own record: what was found, without the step it names (the caller adds that).
    const found = this.trafficReason === undefined ? this.seen : `real traffic: ${this.trafficReason}`
    if (found) return { ...judgement, ...step, verdict: 'fail', reason: found }
    if (judgement.verdict === 'fail') {
      this.fail(`canary step at ${split.percent}% failed: ${judgement.reason}`)
      this.evidence(split.canary, judgement.reason)
    }
    const quiet = judgement.verdict === 'inconclusive' && !canary.requests && !stableCounts.requests
    const hint = quiet ? `; ${this.quietHint()}` : ''
    return { ...judgement, ...step, reason: judgement.reason + hint }
  }

  /** Why nginx recorded no request of the app: the likeliest cause first. */
  private quietHint(): string {
    const skipped = this.record?.skipped ?? 0
    return skipped
      ? `nginx recorded ${skipped} lines it did not write for this app`
      : `nginx logged no request of ${this.config.nginx.upstreamName} at all: either no request reached the app in the window, or a server block that declares its own access_log does not inherit the app's (see the README, nginx-scope upstream)`
  }
}
