// The judgement room: what real traffic and the replicas' lives say of a deploy. It reads nginx's record of
// the app's requests and watches the replicas a deploy routed to, and answers in verdicts, as values; the
// executor only acts on them.
import { LIMITS, type Config } from '../config.js'
import type { ReplicaPort } from '../health/gate.js'
import { describeProbe, statusAllowed } from '../health/probe.js'
import { hostPort, type CanaryObservation, type Replica, type Split } from '../model.js'
import type { CanaryLog } from '../nginx/nginx.js'
import { judgeCanary, parseAccessLog } from './traffic.js'
import { Watch } from './watch.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** nginx's record of the app's requests: start it empty, then read what nginx wrote. */
export interface TrafficLog {
  start(): Promise<void>
  read(): Promise<CanaryLog>
}

/** Why the judgement stopped a deploy: a replica that took traffic died. */
export type WatchVerdict = { readonly failed: false } | { readonly failed: true; readonly reason: string }

export class Judge {
  private watch: Watch | undefined

  constructor(
    private readonly replicas: ReplicaPort,
    private readonly log: TrafficLog,
    private readonly config: Config,
  ) {}

  /** A deploy begins: every replica it routes to is watched until end(). */
  begin(): void {
    this.watch = new Watch(this.replicas, this.config)
  }

  async end(): Promise<void> {
    await this.watch?.stop()
    this.watch = undefined
  }

  /** New replicas that took traffic: watched from now on. */
  routed(replicas: readonly Replica[]): void {
    this.watch?.add(replicas)
  }

  /** What the watch has seen so far. */
  verdict(): WatchVerdict {
    const failure = this.watch?.failure
    return failure ? { failed: true, reason: failure } : { failed: false }
  }

  /**
   * Probes every watched replica now: before a route takes the last old replicas out, so that it never
   * leaves nginx only replicas that have died since the last round.
   */
  async verdictNow(): Promise<WatchVerdict> {
    await this.watch?.round()
    return this.verdict()
  }

  /**
   * Waits for `work`, unless the watch sees a routed replica die first: a wait (a drain) need not run on
   * while nginx sends traffic to a dead replica. `work` must be safe to leave running (it only reads).
   */
  async unlessFailed<T>(work: Promise<T>): Promise<{ readonly done: T } | { readonly failed: string }> {
    if (!this.watch) return { done: await work }
    work.catch(() => undefined)
    return Promise.race([work.then((done) => ({ done })), this.watch.failed.then((failed) => ({ failed }))])
  }

  /**
   * Holds a canary share for `seconds`: the canary is probed every health-interval (consecutive failures fail
   * the step at once), then the window's access log is judged.
   */
  async observe(split: Split, stable: readonly Replica[], windowSeconds: number): Promise<CanaryObservation> {
    const h = this.config.health
    await this.log.start()
    const deadline = Date.now() + windowSeconds * 1000
    let failures = 0
    while (Date.now() < deadline) {
      const tick = Date.now()
      const probes = await Promise.all(split.canary.map((r) => this.replicas.probe(r)))
      const bad = probes
        .map((p, i) => [split.canary[i], p] as const)
        .filter(([, p]) => !statusAllowed(p.status, h.status))
      failures = bad.length ? failures + 1 : 0
      if (failures >= LIMITS.canaryProbeFailures) {
        const [replica, probe] = bad[0]
        const why = `health probe failed ${failures} times in a row during the canary step`
        await this.replicas.evidence(replica, why, false)
        const none = { requests: 0, errors: 0, rate: 0 }
        return {
          verdict: 'fail',
          percent: split.percent,
          seconds: windowSeconds,
          canary: none,
          stable: none,
          reason: `${replica.name}: ${describeProbe(h.path, probe)}, ${failures} times in a row`,
        }
      }
      await sleep(Math.min(Math.max(0, h.intervalMs - (Date.now() - tick)), Math.max(0, deadline - Date.now())))
    }
    return this.judgeWindow(split, stable, windowSeconds, await this.log.read())
  }

  private async judgeWindow(split: Split, stable: readonly Replica[], windowSeconds: number, log: CanaryLog) {
    const { attempts } = parseAccessLog(log.text)
    const key = (r: Replica) => hostPort(r.address, r.port)
    const judgement = judgeCanary(
      attempts,
      new Set(split.canary.map(key)),
      new Set(stable.map(key)),
      this.config.canary.maxErrorRate,
    )
    const sampled = log.newestOnly
      ? ` (judged on the newest ${LIMITS.canaryLogBytes / 1024 / 1024} MiB of ${(log.bytes / 1024 / 1024).toFixed(0)} MiB logged)`
      : ''
    if (judgement.verdict === 'fail')
      for (const r of split.canary) await this.replicas.evidence(r, judgement.reason, false)
    const hint =
      judgement.verdict === 'inconclusive' && judgement.canary.requests === 0 && judgement.stable.requests === 0
        ? `; nginx logged no request of ${this.config.nginx.upstreamName} at all: a server block that declares its own access_log does not inherit the app's, see the README (nginx-scope upstream)`
        : ''
    const reason = judgement.reason + sampled + hint
    return { ...judgement, reason, percent: split.percent, seconds: windowSeconds }
  }
}
