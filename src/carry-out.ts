// Carrying a plan out under the lock: run its steps; on a failure undo them, on a canary step too quiet to
// judge leave the canary live. Returns the result and what becomes of the canary's record.
import * as core from '@actions/core'
import { LIMITS, type Config } from './config.js'
import type { CanaryLinks } from './github/record.js'
import type { RunContext } from './github/deployment.js'
import type { CanaryPush, CanaryState, HostState } from './host/state.js'
import type { Journal } from './journal.js'
import { mainImage, replicaKey, type CanaryObservation, type Replica, type Split } from './model.js'
import { PlanError, retireAll, type Plan } from './plan/common.js'
import { planUndo } from './plan/rollback.js'
import type { Step } from './plan/types.js'
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
  /** Why the plan stopped before its end, when it did. */
  readonly stopped?: string
  readonly rollbackFailure?: string
  /** The canary's record after the run: a state, null when it ended, undefined when unchanged. */
  readonly canary?: CanaryState | null
  readonly canaryWeight: string
}

/** The canary's record once the run leaves it live at `percent` with `remaining` shares still to go. */
export async function canaryRecord(
  state: HostState,
  plan: Plan,
  gh: RunContext,
  paused: { percent: number; canary: readonly Replica[]; remaining: number[] },
  judged: readonly CanaryObservation[],
  links?: () => Promise<CanaryLinks>,
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
    ...(links ? await links() : {}),
  }
}

/**
 * Writes the canary's record before nginx gives it a share: a run that dies while the canary is observed
 * leaves it on record, so that abort (or the next push) finds and removes it. (The GitHub links come with
 * the record the run ends with.)
 */
export const recordEveryShare =
  (state: HostState, plan: Plan, gh: RunContext, journal: Journal, write: (record: CanaryState) => Promise<unknown>) =>
  async (split: Split): Promise<void> => {
    const share = { percent: split.percent, canary: split.canary, remaining: sharesAfter(plan, split.percent) }
    await write(await canaryRecord(state, plan, gh, share, journal.canarySteps))
  }

/**
 * A canary left at `percent` before its plan's end: the share stays, nginx's record of its requests goes (a
 * paused canary's log must not grow). A failure here is a warning: the canary is live and recorded either way.
 */
async function settleAt(plan: Plan, percent: number, ex: Executor): Promise<void> {
  const share = plan.steps.find((s) => s.kind === 'route' && s.split?.percent === percent)
  if (share?.kind !== 'route') return
  const settle: Step = { ...share, judged: undefined, settle: true }
  const end = await ex.run([settle], 'finish', plan.image)
  if (end.kind !== 'completed') core.warning(`the paused canary's record of requests stays on: ${end.reason}`)
}

/** What carrying a plan out works with. */
interface Carrying {
  readonly config: Config
  readonly state: HostState
  readonly plan: Plan
  readonly ex: Executor
  readonly journal: Journal
  readonly links: () => Promise<CanaryLinks>
  readonly gh: RunContext
}

/** The canary's share as the run found it: the record stays as it is. */
const weightAsFound = (state: HostState) => ({ canaryWeight: state.canary ? String(state.canary.weight) : '' })

/** The canary left live at `percent`, with `remaining` shares to go, and its record with the GitHub links. */
async function pause(
  carrying: Carrying,
  percent: number,
  canary: readonly Replica[],
  remaining: number[],
): Promise<Outcome> {
  const { state, plan, gh, journal, links } = carrying
  return {
    result: 'paused',
    canary: await canaryRecord(state, plan, gh, { percent, canary, remaining }, journal.canarySteps, links),
    canaryWeight: String(percent),
  }
}

/** Every step ran: the plan leaves what it says, a paused canary, or none once it ends the canary. */
async function completed(carrying: Carrying): Promise<Outcome> {
  const { state, plan } = carrying
  if (plan.pausesAt) return pause(carrying, plan.pausesAt.percent, plan.pausesAt.canary, [])
  if (plan.endsCanary)
    return { result: plan.leaves, canary: null, canaryWeight: plan.leaves === 'deployed' ? '100' : '0' }
  return { result: plan.leaves, ...weightAsFound(state) }
}

/** Not a pass and not a failure: the canary stays live at this share until promote or abort. */
async function inconclusive(carrying: Carrying, percent: number, reason: string): Promise<Outcome> {
  const { plan } = carrying
  core.warning(reason)
  const canary = plan.steps.flatMap((st) =>
    st.kind === 'observe' && st.split.percent === percent ? st.split.canary : [],
  )
  await settleAt(plan, percent, carrying.ex)
  const stopped = `${reason}: the canary stays live at ${percent}% until promote or abort`
  return { ...(await pause(carrying, percent, canary, sharesAfter(plan, percent))), stopped }
}

/**
 * A step failed. What the judgement found bad (`judged`) always goes (a failing canary step takes the canary
 * out: that is what the step gate is for); any other failure is undone unless rollback-on-failure says otherwise.
 */
async function failed(carrying: Carrying, failure: string, judged: boolean): Promise<Outcome> {
  const { config, state, plan, ex } = carrying
  const stopped = failure
  if (!config.rollbackOnFailure && !judged) return { result: 'failed', failure, stopped, ...weightAsFound(state) }
  let undo: ReturnType<typeof planUndo>
  try {
    undo = planUndo(config, plan, ex.snapshot())
  } catch (e) {
    // Nothing to go back to (a retirement refused at the end): the step's own failure stays the news.
    if (!(e instanceof PlanError)) throw e
    return { result: 'failed', failure, stopped, rollbackFailure: e.message, ...weightAsFound(state) }
  }
  const back = await core.group('Roll back', () => ex.run(undo.steps, 'rollback', plan.image))
  if (back.kind !== 'completed')
    return { result: 'failed', failure, stopped, rollbackFailure: back.reason, ...weightAsFound(state) }
  if (undo.canary === 'removed') return { result: 'rolled-back', failure, stopped, canary: null, canaryWeight: '0' }
  return { result: 'rolled-back', failure, stopped, ...weightAsFound(state) }
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
  const carrying: Carrying = { config, state, plan, ex, journal, links, gh }
  switch (outcome.kind) {
    case 'completed':
      return completed(carrying)
    case 'inconclusive':
      return inconclusive(carrying, outcome.percent, outcome.reason)
    case 'failed':
      return failed(carrying, outcome.reason, outcome.judged)
    case 'cancelled':
      return cancelled(config, state, plan, ex, outcome.reason)
  }
}

/**
 * The workflow run was cancelled: nginx goes to one consistent state within the runner's grace period. When
 * every request already reaches the new version, the route is finished (the judging's record off, the old
 * replicas retired: the bake is cut short); otherwise the previous replicas take all traffic back, as an undo
 * does, with short drains.
 */
async function cancelled(config: Config, state: HostState, plan: Plan, ex: Executor, why: string): Promise<Outcome> {
  const progress = ex.snapshot()
  const serving = ex.progress.serving
  const allNew = serving.length > 0 && serving.every((r) => r.image === plan.image) && progress.routed.length > 0
  const failure = `${why}: the run stopped starting new work`
  const stopped = why
  const unchangedCanary = { canaryWeight: state.canary ? String(state.canary.weight) : '' }
  if (allNew) {
    const retired = new Set(progress.retired?.map(replicaKey))
    const old = plan.previous.filter((r) => r.image !== plan.image && !retired.has(replicaKey(r)))
    // The old replicas may still hold requests (a drain the cancel cut short): a short drain before they go.
    const drainSeconds = Math.min(config.drainSeconds, LIMITS.cancelDrainSeconds)
    const steps: Step[] = [
      { kind: 'route', servers: serving, settle: true },
      ...(old.length ? [{ kind: 'drain', seconds: drainSeconds, replicas: old } as const] : []),
      ...retireAll(old),
    ]
    const done = await core.group('Cancelled: finish the route', () => ex.run(steps, 'finish', plan.image))
    const how = done.kind === 'completed' ? 'all traffic was on the new version: the route is finished' : done.reason
    const canary = plan.endsCanary ? { canary: null, canaryWeight: '100' } : unchangedCanary
    return { result: 'cancelled', failure: `${failure}; ${how}`, stopped, ...canary }
  }
  const quick: Config = { ...config, drainSeconds: Math.min(config.drainSeconds, LIMITS.cancelDrainSeconds) }
  const undo = planUndo(quick, plan, progress)
  const back = await core.group('Cancelled: back to the previous version', () =>
    ex.run(undo.steps, 'rollback', plan.image),
  )
  if (back.kind !== 'completed')
    return { result: 'cancelled', failure, stopped, rollbackFailure: back.reason, ...unchangedCanary }
  const how = 'the previous replicas serve all requests again'
  if (undo.canary === 'removed')
    return { result: 'cancelled', failure: `${failure}; ${how}`, stopped, canary: null, canaryWeight: '0' }
  return { result: 'cancelled', failure: `${failure}; ${how}`, stopped, ...unchangedCanary }
}
