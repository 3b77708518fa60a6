// Canary: a few replicas of the new image take a rising share of requests, set through nginx upstream
// weights; each share is held for canary-interval while the canary's health and its real traffic (from
// nginx's access log) must stay good. At 100 the new image replaces the stable replicas start-first and the
// canary replicas become part of the normal set. A plan that stops short of 100 leaves the canary live
// (result paused) until promote or abort.
import type { Config } from '../config.js'
import type { CanaryState, ManagedContainer } from '../host/state.js'
import { allocate, liveReplicas, mainImage, PlanError, prepare, removeAll, replaceInBatches, type Plan } from './common.js'
import { planRolling } from './rolling.js'
import type { Replica, Split, Step } from './types.js'

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b))

/**
 * nginx weights that send `percent` of requests to the canary servers: each canary server gets
 * percent * stable, each stable server (100 - percent) * canary, reduced by their common divisor.
 */
export function splitFor(percent: number, canary: readonly Replica[], stableCount: number): Split {
  const c = percent * stableCount
  const s = (100 - percent) * canary.length
  const d = gcd(c, s) || 1
  return { canary, percent, canaryWeight: c / d, stableWeight: s / d }
}

/** Route, then observe, for each share below 100. */
function shareSteps(config: Config, stable: readonly Replica[], canary: readonly Replica[], shares: readonly number[]): Step[] {
  return shares
    .filter((p) => p < 100)
    .flatMap((p): Step[] => {
      const split = splitFor(p, canary, stable.length)
      return [
        { kind: 'route', servers: [...stable, ...canary], split },
        { kind: 'observe', seconds: config.canary.intervalSeconds, split, stable },
      ]
    })
}

/** How many fresh replicas join the canary ones at 100 to make up `replicas`. */
const freshCount = (config: Config, canaryCount: number) => Math.max(0, config.replicas - canaryCount)

/** At 100: the canary replicas plus fresh ones replace the stable set, start-first. */
function completeSteps(config: Config, stable: readonly Replica[], canary: readonly Replica[], fresh: readonly Replica[], strays: readonly Replica[]) {
  const keep = canary.slice(0, config.replicas)
  const next = [...keep, ...fresh]
  const extra = canary.slice(config.replicas)
  return { next, steps: [...replaceInBatches(config, stable, next, keep), ...removeAll([...stable, ...extra, ...strays])] }
}

export function pausedCanaryError(state: CanaryState): PlanError {
  return new PlanError(
    `a canary of ${state.image} is live at ${state.weight}% next to ${state.stableImage} (since ${state.at}): ` +
      "finish it first with operation: promote, or remove it with operation: abort",
  )
}

export function planCanary(config: Config, containers: readonly ManagedContainer[], liveConfig: string | undefined): Plan {
  const { live: stable, strays } = liveReplicas(config.app, containers, liveConfig)
  if (!stable.length)
    return planRolling(config, containers, liveConfig, ['nothing is live to compare a canary with: deploying as rolling'])
  // Ports for the canary and, if the plan reaches 100, for the fresh replicas that join it.
  const complete100 = config.canary.steps.includes(100)
  const ports = allocate(config, containers, config.canary.replicas + (complete100 ? freshCount(config, config.canary.replicas) : 0), config.image)
  const canary = ports.slice(0, config.canary.replicas)
  const steps: Step[] = [...prepare(config, config.image), { kind: 'start', replicas: canary }, { kind: 'gate', replicas: canary }, ...shareSteps(config, stable, canary, config.canary.steps)]
  const stableImage = mainImage(stable)
  if (!complete100) {
    const percent = config.canary.steps[config.canary.steps.length - 1]
    return { steps, image: config.image, previous: stable, next: [...stable, ...canary], onFailure: 'abort-canary', pausesAt: { percent, canary, stableImage }, notes: [] }
  }
  const complete = completeSteps(config, stable, canary, ports.slice(config.canary.replicas), strays)
  return { steps: [...steps, ...complete.steps], image: config.image, previous: stable, next: complete.next, onFailure: 'abort-canary', notes: [] }
}

/** The paused canary's replicas and the stable ones, as the host holds them. */
function pausedSets(config: Config, containers: readonly ManagedContainer[], liveConfig: string | undefined, state: CanaryState) {
  const { live, strays } = liveReplicas(config.app, containers, liveConfig)
  const names = new Set(state.replicas)
  return { live, strays, canary: live.filter((r) => names.has(r.name)), stable: live.filter((r) => !names.has(r.name)) }
}

const noCanary = (config: Config, containers: readonly ManagedContainer[], liveConfig: string | undefined, op: string) => {
  const { live } = liveReplicas(config.app, containers, liveConfig)
  return new PlanError(
    `${op}: no canary of ${config.app} is paused on this host; live is ${mainImage(live) || 'nothing'} on ${live.length} replica(s). ` +
      'Start one with operation: deploy and strategy: canary (canary-steps below 100), or use operation: status to see what is live',
  )
}

/** Continue a paused canary through its remaining steps to 100. */
export function planPromote(config: Config, containers: readonly ManagedContainer[], liveConfig: string | undefined, state: CanaryState | undefined): Plan {
  if (!state) throw noCanary(config, containers, liveConfig, 'promote')
  const { canary, stable, strays } = pausedSets(config, containers, liveConfig, state)
  if (!canary.length) throw new PlanError(`the paused canary's replicas (${state.replicas.join(', ')}) are not live any more; run operation: abort to clear it`)
  const fresh = allocate(config, containers, freshCount(config, canary.length), state.image)
  const complete = completeSteps(config, stable, canary, fresh, strays)
  return {
    steps: [...shareSteps(config, stable, canary, state.remainingSteps), ...complete.steps],
    image: state.image,
    previous: [...stable, ...canary],
    next: complete.next,
    onFailure: 'abort-canary',
    notes: [],
  }
}

/** The canary leaves the upstream in one reload, drains and is removed; all traffic is on the stable replicas. */
export function abortSteps(config: Config, stable: readonly Replica[], canary: readonly Replica[]): Step[] {
  return [{ kind: 'route', servers: stable }, { kind: 'drain', seconds: config.drainSeconds, replicas: canary }, ...removeAll(canary)]
}

export function planAbort(config: Config, containers: readonly ManagedContainer[], liveConfig: string | undefined, state: CanaryState | undefined): Plan {
  if (!state) throw noCanary(config, containers, liveConfig, 'abort')
  const { live, canary, stable } = pausedSets(config, containers, liveConfig, state)
  if (!stable.length) throw new PlanError(`abort: no stable replica of ${config.app} is live to take the traffic back; deploy ${state.stableImage} instead`)
  return { steps: abortSteps(config, stable, canary), image: state.stableImage, previous: live, next: stable, onFailure: 'restore', notes: [] }
}
