// What a run has changed so far, as one record: the replicas it started, routed, stopped and retired, the
// containers' ids, the docker commands it left running in the background, and what nginx serves. The step
// handlers write it; an undo is planned from it and main reads it as a value.
import type { ManagedContainer } from '../host/state.js'
import { replicaKey, type Replica } from '../model.js'
import type { Progress } from '../plan/rollback.js'

const has = (list: readonly Replica[], r: Replica): boolean => list.some((x) => replicaKey(x) === replicaKey(r))

export class RunProgress {
  readonly started: Replica[] = []
  readonly routed: Replica[] = []
  readonly stopped: Replica[] = []
  readonly retired: Replica[] = []
  /** The replicas nginx routes to now. */
  serving: readonly Replica[]
  /** Container ids by replica: commands name exactly the container read, or the one this run created. */
  private readonly ids = new Map<string, string>()
  /** Main process ids of the replicas read running, for counting their connections without asking docker. */
  private readonly pids = new Map<string, number>()
  /**
   * docker stop commands running in the background, by replica: a remove or restart of those replicas waits
   * for theirs, and the end of a phase for all (a retirement takes them over instead).
   */
  private readonly stopping = new Map<string, Promise<unknown>>()
  /** Starts of the next batch running ahead; its gate waits for them. */
  private readonly starting = new Map<string, Promise<void>>()
  /** An nginx change running ahead (the record's reload); the next change waits for it. */
  private nginxAhead: Promise<unknown> = Promise.resolve()

  constructor(
    containers: readonly ManagedContainer[],
    previous: readonly Replica[],
    /** The managed file live when the run began (undefined: none). */
    readonly configBefore: string | undefined,
  ) {
    this.serving = previous
    for (const c of containers) {
      this.ids.set(replicaKey(c), c.id)
      if (c.running && c.pid) this.pids.set(replicaKey(c), c.pid)
    }
  }

  /** The container id of a replica, if this run knows one (read from the host, or returned by docker create). */
  idOf(r: Replica): string | undefined {
    return this.ids.get(replicaKey(r))
  }

  pidOf(r: Replica): number | undefined {
    return this.pids.get(replicaKey(r))
  }

  /** A replica this run is creating (its container may exist from here on). */
  markStarting(r: Replica): void {
    if (!has(this.started, r)) this.started.push(r)
  }

  created(r: Replica, id: string): void {
    this.ids.set(replicaKey(r), id)
  }

  isNew(r: Replica): boolean {
    return has(this.started, r)
  }

  /** nginx now routes to exactly `servers`; the new ones among them count as routed from here on. */
  routedTo(servers: readonly Replica[]): void {
    this.serving = servers
    for (const s of servers) if (this.isNew(s) && !has(this.routed, s)) this.routed.push(s)
  }

  /** A start running ahead of its gate: the gate awaits it. */
  startingAhead(r: Replica, started: Promise<void>): void {
    started.catch(() => undefined) // awaited by the gate
    this.starting.set(replicaKey(r), started)
  }

  async startOf(r: Replica): Promise<void> {
    const started = this.starting.get(replicaKey(r))
    this.starting.delete(replicaKey(r))
    await started
  }

  /** An nginx change left running while the run goes on. */
  changingNginx(change: Promise<unknown>): void {
    change.catch(() => undefined) // met by nginxChanged()
    this.nginxAhead = change
  }

  /** Waits for the nginx change running ahead, if any; its failure is the waiting step's. */
  async nginxChanged(): Promise<void> {
    const ahead = this.nginxAhead
    this.nginxAhead = Promise.resolve()
    await ahead
  }

  /** A docker stop running in the background for these replicas. */
  stoppingInBackground(replicas: readonly Replica[], stop: Promise<unknown>): void {
    stop.catch(() => undefined) // observed by settle()
    for (const r of replicas) this.stopping.set(replicaKey(r), stop)
  }

  /**
   * Waits for the background stops of these replicas (all, without); the first failure among them fails the
   * step that waits. Returns how long it waited.
   */
  async settle(replicas?: readonly Replica[]): Promise<number> {
    const keys = replicas ? replicas.map(replicaKey).filter((k) => this.stopping.has(k)) : [...this.stopping.keys()]
    const waiting = [...new Set(keys.map((k) => this.stopping.get(k)))]
    for (const k of keys) this.stopping.delete(k)
    const t0 = Date.now()
    await Promise.all(waiting)
    return waiting.length ? Date.now() - t0 : 0
  }

  /** The stops still running are now the host's to finish (a retirement joins them). */
  handOverStops(): void {
    this.stopping.clear()
  }

  /**
   * Whatever happened, no docker stop or start this run waits for is left running behind its back; a failed
   * one has failed its phase already and must not fail the next (the rollback) again.
   */
  async quiesce(): Promise<void> {
    const left = [...this.stopping.values(), ...this.starting.values(), this.nginxAhead]
    this.stopping.clear()
    this.starting.clear()
    await Promise.allSettled(left)
  }

  markStopped(replicas: readonly Replica[]): void {
    this.stopped.push(...replicas)
  }

  markRetired(replicas: readonly Replica[]): void {
    this.retired.push(...replicas)
  }

  /** The record an undo is planned from. */
  snapshot(configNow: string | undefined): Progress {
    return {
      started: [...this.started],
      routed: [...this.routed],
      stopped: [...this.stopped],
      retired: [...this.retired],
      configNow,
      configBefore: this.configBefore,
    }
  }
}
