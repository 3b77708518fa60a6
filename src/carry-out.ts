// Carrying a plan out under the lock: run its steps; on a failure undo them, on a canary step too quiet to
// judge leave the canary live. Returns the result and what becomes of the canary's record.
import * as core from '@actions/core'
import type { Config } from './config.js'
import type { CanaryLinks } from './github/record.js'
import type { RunContext } from './github/deployment.js'
import type { CanaryPush, CanaryState, HostState } from './host/state.js'
import type { Journal } from './journal.js'
import { mainImage, type CanaryObservation, type Replica } from './model.js'
import type { Plan } from './plan/common.js'
import { planUndo } from './plan/rollback.js'
import type { Executor } from './run/executor.js'
import type { Result } from './summary.js'

/** The shares still to go after a canary step that could not be judged. */
function sharesAfter(plan: Plan, percent: number): number[] {
  const shares = plan.steps.flatMap((s) => (s.kind === 'observe' ? [s.split.percent] : [])).filter((p) => p > percent)
  return [...shares, ...(plan.pausesAt ? [] : [100])]
}

export interface Outcome {
  readonly result: Result
  readonly failure?: string
  readonly rollbackFailure?: string
  /** The canary's record after the run: a state, null when it ended, undefined when unchanged. */
  readonly canary?: CanaryState | null
  readonly canaryWeight: string
}

/** The canary's record once the run leaves it live at `percent` with `remaining` shares still to go. */
async function pausedCanary(
  state: HostState,
  plan: Plan,
  gh: RunContext,
  paused: { percent: number; canary: readonly Replica[]; remaining: number[] },
  judged: readonly CanaryObservation[],
  links: () => Promise<CanaryLinks>,
): Promise<CanaryState> {
  const previous = state.canary
  const replaced = plan.replaces && previous
  const pushOf = (p: CanaryState): CanaryPush => ({
    image: p.image,
    sha: p.sha,
    at: p.at,
    observations: p.observations ?? [],
    outcome: 'replaced',
  })
  return {
    image: plan.image,
    stableImage:
      plan.pausesAt?.stableImage ??
      previous?.stableImage ??
      mainImage(plan.previous.filter((x) => x.image !== plan.image)),
    weight: paused.percent,
    remainingSteps: paused.remaining,
    replicas: paused.canary.map((r) => ({ host: r.host, name: r.name })),
    at: new Date().toISOString(),
    ...(gh.pullRequest ? { sha: gh.pullRequest.headSha } : {}),
    observations: [...(replaced ? [] : (previous?.observations ?? [])), ...judged],
    ...(replaced ? { pushes: [...(previous.pushes ?? []), pushOf(previous)] } : {}),
    ...(await links()),
  }
}

/**
 * Runs the plan: on a failure undoes it, on an unjudgeable canary step pauses. Returns the result and what
 * becomes of the canary record.
 */
export async function carryOut(
  config: Config,
  state: HostState,
  plan: Plan,
  ex: Executor,
  journal: Journal,
  links: () => Promise<CanaryLinks>,
  gh: RunContext,
): Promise<Outcome> {
  const title = config.operation === 'deploy' ? 'Deploy' : config.operation.replace(/^./, (c) => c.toUpperCase())
  const outcome = await core.group(title, () => ex.run(plan.steps, 'deploy', plan.image))
  const unchangedCanary = { canaryWeight: state.canary ? String(state.canary.weight) : '' }
  const pause = async (percent: number, canary: readonly Replica[], remaining: number[]): Promise<Outcome> => ({
    result: 'paused',
    canary: await pausedCanary(state, plan, gh, { percent, canary, remaining }, journal.canarySteps, links),
    canaryWeight: String(percent),
  })
  switch (outcome.kind) {
    case 'completed':
      if (plan.pausesAt) return pause(plan.pausesAt.percent, plan.pausesAt.canary, [])
      if (plan.endsCanary)
        return { result: plan.leaves, canary: null, canaryWeight: plan.leaves === 'deployed' ? '100' : '0' }
      return { result: plan.leaves, ...unchangedCanary }
    case 'inconclusive': {
      // Not a pass and not a failure: the canary stays live at this share until promote or abort.
      core.warning(outcome.reason)
      const canary = plan.steps.flatMap((st) =>
        st.kind === 'observe' && st.split.percent === outcome.percent ? st.split.canary : [],
      )
      return pause(outcome.percent, canary, sharesAfter(plan, outcome.percent))
    }
    case 'failed': {
      const failure = outcome.reason
      // What the judgement found bad always goes (a failing canary step takes the canary out: that is what
      // the step gate is for); any other failure is undone unless rollback-on-failure says otherwise.
      if (!config.rollbackOnFailure && !outcome.judged) return { result: 'failed', failure, ...unchangedCanary }
      const undo = planUndo(config, plan, ex.snapshot())
      const back = await core.group('Roll back', () => ex.run(undo.steps, 'rollback', plan.image))
      if (back.kind !== 'completed')
        return { result: 'failed', failure, rollbackFailure: back.reason, ...unchangedCanary }
      if (undo.canary === 'removed') return { result: 'rolled-back', failure, canary: null, canaryWeight: '0' }
      return { result: 'rolled-back', failure, ...unchangedCanary }
    }
  }
}
