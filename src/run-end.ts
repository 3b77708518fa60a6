// How a run ended: the one value the last stage (outputs, the job summary, GitHub) is made of.
import type { CanaryState, HostState } from './host/state.js'
import type { Replica } from './model.js'
import type { Plan } from './plan/common.js'
import type { LiveReport, Result } from './summary.js'

/** The GitHub deployment a run recorded. */
export interface RecordedDeployment {
  readonly id: number
  readonly environment: string
}

/** How the run ended: everything the outputs, the summary and GitHub are made of. */
export interface RunEnd {
  readonly result: Result
  readonly plan?: Plan
  readonly state?: HostState
  readonly failure?: string
  /** Why the plan stopped before its end, when it did (its remaining steps did not run). */
  readonly stopped?: string
  readonly rollbackFailure?: string
  /** The canary's share after the run ('' without a canary). */
  readonly canaryWeight: string
  /** The canary's record after the run (null: cleared), for the pull-request comment. */
  readonly canaryAfter?: CanaryState | null
  readonly serving: readonly Replica[]
  readonly configDiff: string
  readonly live?: LiveReport
  readonly deployment?: RecordedDeployment
}
