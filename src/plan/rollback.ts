// Undoing a failed run, and the rollback operation. Neither has an algorithm of its own: undo puts back
// what the run changed; the operation deploys the previous image again.
import type { Config } from '../config.js'
import type { HostState } from '../host/state.js'
import { mainImage, type Replica, replicaKey } from '../model.js'
import { planBlueGreen, switchTo } from './blue-green.js'
import { judges, liveReplicas, PlanError, recordSteps, removeAll, type Plan, type Routes } from './common.js'
import { planRolling } from './rolling.js'
import type { Step } from './types.js'

/** What a failed run did so far, as the executor recorded it. */
export interface Progress {
  /** New replicas whose containers may exist (started, or whose start was attempted). */
  readonly started: readonly Replica[]
  /** New replicas that were put into the upstream. */
  readonly routed: readonly Replica[]
  /** Previous replicas that were stopped (their containers are kept). */
  readonly stopped: readonly Replica[]
  /** Previous replicas handed to a detached stop and removal: gone, never to be routed to again. */
  readonly retired?: readonly Replica[]
  /** The managed file live now, and the one live before the run (undefined: none). */
  readonly configNow?: string
  readonly configBefore?: string
}

export interface Undo {
  readonly steps: readonly Step[]
  /** What became of a paused canary: taken out, or left live as it was (a replaced canary whose swap never happened). */
  readonly canary: 'removed' | 'kept' | 'untouched'
}

const unique = (rs: readonly Replica[]): Replica[] =>
  rs.filter((r, i) => rs.findIndex((x) => replicaKey(x) === replicaKey(r)) === i)

/**
 * Back to where the run started: the previous replicas still running take the traffic back in one reload,
 * the stopped ones start again and are gated, the previous managed file is put back in one reload, the new
 * replicas drain and are removed. A failed canary whose stable
 * replicas never stopped serving instead leaves the upstream and is removed. Nothing retired comes back:
 * when the previous file routes to a replica already retired, the upstream is rendered without it.
 */
export function planUndo(config: Config, plan: Plan, progress: Progress): Undo {
  const replaced = plan.replaces ?? []
  const swapped = replaced.length > 0 && progress.routed.length > 0
  const retired = progress.retired ?? []
  if (plan.onFailure === 'abort-canary' && !progress.stopped.length && (!replaced.length || swapped))
    return { steps: canaryOut(config, plan, progress, replaced, retired), canary: 'removed' }
  // Never routed to again: what was retired, and a replaced canary once the swap took it out.
  const gone = unique([...retired, ...(swapped ? replaced : [])])
  const canary = replaced.length ? (swapped ? 'removed' : 'kept') : 'untouched'
  return { steps: backToPrevious(config, plan, progress, gone), canary }
}

const within = (rs: readonly Replica[]) => (r: Replica) => rs.some((x) => replicaKey(x) === replicaKey(r))

/** A failed canary whose stable replicas never stopped serving: it leaves the upstream and is removed. */
function canaryOut(
  config: Config,
  plan: Plan,
  progress: Progress,
  replaced: readonly Replica[],
  retired: readonly Replica[],
): Step[] {
  const isNew = within(progress.started)
  const canary = unique([...plan.previous.filter((r) => r.image === plan.image && !isNew(r)), ...replaced])
  const stable = plan.previous.filter((r) => !within(canary)(r))
  const out = unique([...canary.filter((r) => !within(retired)(r)), ...progress.started])
  return [
    { kind: 'route', servers: stable },
    { kind: 'drain', seconds: config.drainSeconds, replicas: out },
    ...removeAll(out),
  ]
}

/** The previous replicas back (started again where stopped) and the previous file, the new replicas out. */
function backToPrevious(config: Config, plan: Plan, progress: Progress, gone: readonly Replica[]): Step[] {
  const back = plan.previous.filter((r) => !within(gone)(r))
  if (gone.length && !back.length)
    throw new PlanError(
      'every replica that served before the run was already retired: the new version stays live and nothing is undone',
    )
  const steps: Step[] = []
  // Previous replicas that still run take the traffic back at once, in one reload, while the stopped ones
  // start again: the new ones may be what failed. (Not for a paused canary's promote: a plain route would
  // give the canary a full share until the paused file is back.)
  const stillRunning = back.filter((r) => !within(progress.stopped)(r))
  const changed = progress.configBefore !== progress.configNow
  if (plan.onFailure === 'restore' && progress.stopped.length && stillRunning.length && changed)
    steps.push({ kind: 'route', servers: stillRunning })
  if (progress.stopped.length)
    steps.push({ kind: 'restart', replicas: progress.stopped }, { kind: 'gate', replicas: progress.stopped })
  // The file as it was, unless it routes to a replica that is gone: then the same upstream without it.
  if (plan.previous.some(within(gone))) steps.push({ kind: 'route', servers: back })
  else if (changed) steps.push({ kind: 'restore-config', text: progress.configBefore, servers: plan.previous })
  if (progress.routed.length && config.drainSeconds > 0)
    steps.push({ kind: 'drain', seconds: config.drainSeconds, replicas: progress.routed })
  steps.push(...removeAll(progress.started))
  return steps
}

/** The image to go back to: the newest deployed entry of the history that is not what is live now. */
export function rollbackTarget(state: HostState, liveImage: string): string | undefined {
  return [...state.history].reverse().find((h) => h.result === 'deployed' && h.image !== liveImage)?.image
}

/**
 * Deploy the previous image with the configured strategy (a canary rollback runs as rolling: going back
 * needs no trial). With blue-green and a kept previous colour running that image, it is one reload.
 */
export function planRollbackOperation(config: Config, state: HostState, routes: Routes): Plan {
  if (state.canary)
    throw new PlanError(
      `rollback: a canary of ${state.canary.image} is paused at ${state.canary.weight}%; use operation: abort to remove it`,
    )
  const { live, strays } = liveReplicas(config, state.containers, routes)
  const current = mainImage(live)
  const target = rollbackTarget(state, current)
  if (!target)
    throw new PlanError(
      `rollback: the deploy history of ${config.app} has no earlier deployed image to go back to; live is ${current || 'nothing'}` +
        `${state.history.length ? ` (history: ${state.history.map((h) => `${h.image} ${h.result}`).join(', ')})` : ''}. Deploy the image you want with operation: deploy`,
    )
  const targetConfig: Config = { ...config, image: target }
  const asRolledBack = (p: Plan): Plan => ({ ...p, leaves: 'rolled-back' })
  if (config.strategy === 'blue-green') {
    const kept = strays.filter((r) => r.image === target && r.color)
    if (kept.length) {
      // The previous colour is still running: check it, then switch in one reload.
      const judged = judges(config, live)
      const steps: Step[] = [
        ...recordSteps(judged, live),
        { kind: 'restart', replicas: kept },
        { kind: 'gate', replicas: kept },
        ...switchTo(config, live, kept, judged),
        ...removeAll(strays.filter((r) => !kept.includes(r))),
      ]
      return {
        steps,
        image: target,
        previous: live,
        next: kept,
        onFailure: 'restore',
        leaves: 'rolled-back',
        notes: [`${kept.map((r) => r.name).join(', ')} still hold ${target}: switching back in one reload`],
      }
    }
    return asRolledBack(planBlueGreen(targetConfig, state.containers, routes, state.usage))
  }
  return asRolledBack(planRolling(targetConfig, state.containers, routes, [], state.usage))
}
