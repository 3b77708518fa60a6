// The watch over the replicas a deploy routed to, for the rest of the run: one that exits or restarts (it
// crashed once it had traffic), or stops answering its health probe, fails the deploy while the replicas it
// replaced can still take the traffic back.
import { LIMITS, type Config } from '../config.js'
import type { ReplicaPort } from '../health/gate.js'
import { describeProbe, statusAllowed } from '../health/probe.js'
import { replicaKey, type Replica } from '../model.js'
import type { HttpResult } from '../remote/ssh.js'

interface Watched {
  readonly replica: Replica
  /** Failed probes in a row. */
  failures: number
  /** Docker's restart count when the watch first asked (undefined: not asked yet). */
  restarts?: number
}

/**
 * Probes every watched replica each health-interval, in the background; Docker is asked about one that does
 * not answer, and about every one now and then (a restart between two probes shows only there).
 */
export class Watch {
  private readonly watched = new Map<string, Watched>()
  private seen: string | undefined
  private running = true
  private rounds = 0
  private readonly loop: Promise<void>
  /** Settles with what the watch saw, the moment it sees it. */
  readonly failed: Promise<string>
  private fail: (why: string) => void = () => undefined
  private wake: () => void = () => undefined

  constructor(
    private readonly port: ReplicaPort,
    private readonly config: Config,
    /** Takes evidence still being gathered (the traffic goes back without waiting for it). */
    private readonly keep: (work: Promise<unknown>) => void = (work) => void work.catch(() => undefined),
  ) {
    this.failed = new Promise<string>((resolve) => (this.fail = resolve))
    // Never a rejection nobody waits for: what stops the watch unexpectedly is a reason to go back.
    this.loop = this.run().catch((e: Error) =>
      this.found(undefined, `the watch of the new replicas stopped: ${e.message}`),
    )
  }

  add(replicas: readonly Replica[]): void {
    for (const r of replicas)
      if (!this.watched.has(replicaKey(r))) this.watched.set(replicaKey(r), { replica: r, failures: 0 })
  }

  /** What the watch saw, if anything: why a routed replica is not fit to serve. */
  get failure(): string | undefined {
    return this.seen
  }

  async stop(): Promise<void> {
    this.running = false
    this.wake()
    await this.loop
  }

  /**
   * One round of probes over every watched replica; Docker is asked about any that does not answer, about any
   * it was never asked about (the baseline of its restarts), and, in the background's rounds (`scheduled`),
   * about every one once in a few rounds. A round asked for now (before a route) needs no more: a replica
   * that died does not answer, and a restart shows at the next scheduled round.
   */
  async round(scheduled = false): Promise<void> {
    const everyOne = scheduled && this.rounds++ % LIMITS.watchDockerEveryRounds === 0
    await Promise.all([...this.watched.values()].map((w) => this.look(w, everyOne || w.restarts === undefined)))
  }

  private async look(w: Watched, askDocker: boolean): Promise<void> {
    const r = w.replica
    // A probe that cannot be sent (the host's connection lost) is a probe not answered.
    const probe: HttpResult = await this.port.probe(r).catch((e: Error) => ({ error: e.message, ms: 0 }))
    const answered = statusAllowed(probe.status, this.config.health.status)
    w.failures = answered ? 0 : w.failures + 1
    if (answered && !askDocker) return
    const state = await this.port.state(r).catch(() => undefined)
    if (this.seen) return
    // Failed probes count whether or not Docker can be asked (an app host gone is no better).
    if (!state) {
      if (w.failures >= LIMITS.watchProbeFailures)
        this.found(r, `${r.name}: ${describeProbe(this.config.health.path, probe)}, ${w.failures} times in a row`)
      return
    }
    const first = w.restarts === undefined
    if (first) w.restarts = state.restarts
    if (state.status !== 'running' && state.status !== 'created')
      return this.found(r, `${r.name} stopped (${state.status}, exit code ${state.exitCode}) after it took traffic`)
    if (!first && state.restarts > (w.restarts ?? 0))
      return this.found(r, `${r.name} was restarted by Docker (${state.restarts} restarts) after it took traffic`)
    if (w.failures >= LIMITS.watchProbeFailures)
      return this.found(r, `${r.name}: ${describeProbe(this.config.health.path, probe)}, ${w.failures} times in a row`)
  }

  private found(r: Replica | undefined, why: string): void {
    if (this.seen) return
    this.seen = why
    this.fail(why)
    if (r) this.keep(this.port.evidence(r, why, false))
  }

  private async run(): Promise<void> {
    while (this.running && !this.seen) {
      const tick = Date.now()
      await this.round(true)
      // stop() during the round: no sleep after it (its wake-up is for a sleep already over).
      if (!this.running) break
      // A sleep that stop() cuts short.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(10, this.config.health.intervalMs - (Date.now() - tick)))
        this.wake = () => (clearTimeout(timer), resolve())
      })
    }
  }
}
