// The watch over the replicas a deploy routed to: one that exits (it crashed once it had traffic) fails the
// deploy while the replicas it replaced can still come back.
import type { Config } from '../config.js'
import type { ReplicaPort } from '../health/gate.js'
import { statusAllowed } from '../health/probe.js'
import { replicaKey, type Replica } from '../model.js'

/**
 * Keeps probing the replicas that took traffic, for the rest of the deploy: one that exits (it crashed once
 * it had traffic) fails the deploy while the replicas it replaced can still come back. Probes go on in the
 * background, every health-interval; only an exit counts (a running replica's bad answers are the canary
 * judgement's business).
 */
export class Watch {
  private readonly watched = new Map<string, Replica>()
  private seen: string | undefined
  private running = true
  private readonly loop: Promise<void>
  /** Settles with what the watch saw, the moment it sees it. */
  readonly failed: Promise<string>
  private fail: (why: string) => void = () => undefined
  private wake: () => void = () => undefined

  constructor(
    private readonly port: ReplicaPort,
    private readonly config: Config,
  ) {
    this.failed = new Promise<string>((resolve) => (this.fail = resolve))
    this.loop = this.run()
  }

  add(replicas: readonly Replica[]): void {
    for (const r of replicas) this.watched.set(replicaKey(r), r)
  }

  /** What the watch saw, if anything: why a routed replica is gone. */
  get failure(): string | undefined {
    return this.seen
  }

  async stop(): Promise<void> {
    this.running = false
    this.wake()
    await this.loop
  }

  /** One round of probes over every watched replica; Docker is asked about any that does not answer. */
  async round(): Promise<void> {
    await Promise.all(
      [...this.watched.values()].map(async (r) => {
        if (statusAllowed((await this.port.probe(r)).status, this.config.health.status)) return
        const state = await this.port.state(r).catch(() => undefined)
        if (!state || state.status === 'running' || state.status === 'created' || this.seen) return
        this.seen = `${r.name} stopped (${state.status}, exit code ${state.exitCode}) after it took traffic`
        this.fail(this.seen)
        await this.port.evidence(r, this.seen, false).catch(() => undefined)
      }),
    )
  }

  private async run(): Promise<void> {
    while (this.running && !this.seen) {
      const tick = Date.now()
      await this.round()
      // A sleep that stop() cuts short.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(10, this.config.health.intervalMs - (Date.now() - tick)))
        this.wake = () => (clearTimeout(timer), resolve())
      })
    }
  }
}
