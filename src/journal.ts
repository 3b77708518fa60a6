// The record of a run, passed to whatever does the work and read by the summary: every step with its
// hosts, timing and outcome, the health gates, canary steps, and the evidence a failure left.
import type { Bake, CanaryObservation, Verification } from './model.js'
import type { Step } from './plan/types.js'

/** deploy: the plan; rollback: an undo; finish: what a run stopped early still does (a paused canary's file). */
export type Phase = 'deploy' | 'rollback' | 'finish'

/** A part of the run's own work around the steps (node start, connect...), timed. */
export interface RunPhase {
  readonly name: string
  readonly ms: number
}

/**
 * How a step ended: ok; failed (its work failed, or the judgement found the new version bad); inconclusive
 * (it ended the run early for lack of evidence: a canary step too quiet to judge); cancelled (the run was
 * cancelled while it ran); not run (the plan stopped before it).
 */
export type StepOutcome = 'ok' | 'failed' | 'inconclusive' | 'cancelled' | 'not run'

export interface StepRecord {
  readonly phase: Phase
  readonly description: string
  /** The hosts the step touched. */
  readonly hosts: readonly string[]
  readonly ms: number
  /** When the step started and ended, in ms since the run started. */
  readonly startedAtMs?: number
  readonly endedAtMs: number
  readonly outcome: StepOutcome
  readonly detail?: string
  /** A route (or restore) that left traffic only on the run's new image. */
  readonly allTrafficNew?: boolean
  /** The step itself (what the timeline draws). */
  readonly step?: Step
}

export interface GateResult {
  readonly replica: string
  readonly host: string
  readonly ok: boolean
  readonly probes: number
  readonly ms: number
  readonly last: string
  readonly dockerHealth: string
}

/** What a failure left to look at: the failing replica's (or nginx's) last log lines. */
export interface Evidence {
  readonly subject: string
  readonly reason: string
  readonly logs: string
}

export interface Logger {
  info(m: string): void
  warning(m: string): void
  debug(m: string): void
}

export class Journal {
  readonly steps: StepRecord[] = []
  readonly gates: GateResult[] = []
  readonly evidence: Evidence[] = []
  readonly canarySteps: CanaryObservation[] = []
  /** Every route's judgement on real traffic. */
  readonly verifications: Verification[] = []
  /** How the bake ended, if there was one. */
  bake: Bake | undefined
  /** Things the run noticed that the reader should know (stale state, background stops...). */
  readonly notes: string[] = []
  /** The run's own work around the steps, in ms: node start, connect, lock and read, records and unlock. */
  readonly phases: RunPhase[] = []
  /** Evidence still being gathered (the undo does not wait for it; the summary does). */
  private readonly pending: Promise<unknown>[] = []

  /** Keeps `work` (gathering evidence) to be waited for before the record is read. */
  later(work: Promise<unknown>): void {
    this.pending.push(work.catch(() => undefined))
  }

  /** Everything kept for later is in. */
  async settled(): Promise<void> {
    while (this.pending.length) await Promise.all(this.pending.splice(0))
  }

  /** Times `work` as one of the run's own phases. */
  async phase<T>(name: string, work: () => Promise<T>): Promise<T> {
    const t0 = Date.now()
    try {
      return await work()
    } finally {
      this.phases.push({ name, ms: Date.now() - t0 })
    }
  }

  constructor(readonly startedAt: number = Date.now()) {}

  /** When all traffic first reached the new version (a route that left it only there), in ms since the run started. */
  get trafficSwitchedAtMs(): number | undefined {
    // The first such route: a later one (the route that ends the judging) changes nothing of who serves.
    return this.steps.find((s) => s.allTrafficNew && s.outcome === 'ok' && s.phase === 'deploy')?.endedAtMs
  }
}
