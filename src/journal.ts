// The record of a run, passed to whatever does the work and read by the summary: every step with its
// hosts, timing and outcome, the health gates, canary steps, and the evidence a failure left.
import type { CanaryObservation } from './model.js'

export type Phase = 'deploy' | 'rollback'

/** A part of the run's own work around the steps (node start, connect...), timed. */
export interface RunPhase {
  readonly name: string
  readonly ms: number
}

export interface StepRecord {
  readonly phase: Phase
  readonly description: string
  /** The hosts the step touched. */
  readonly hosts: readonly string[]
  readonly ms: number
  /** When the step ended, in ms since the run started. */
  readonly endedAtMs: number
  readonly outcome: 'ok' | 'failed'
  readonly detail?: string
  /** A route (or restore) that left traffic only on the run's new image. */
  readonly allTrafficNew?: boolean
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
  /** Things the run noticed that the reader should know (stale state, background stops...). */
  readonly notes: string[] = []
  /** The run's own work around the steps, in ms: node start, connect, lock and read, records and unlock. */
  readonly phases: RunPhase[] = []

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

  /** When the last route that left all traffic on the new version ended, in ms since the run started. */
  get trafficSwitchedAtMs(): number | undefined {
    return [...this.steps].reverse().find((s) => s.allTrafficNew && s.outcome === 'ok' && s.phase === 'deploy')
      ?.endedAtMs
  }
}
