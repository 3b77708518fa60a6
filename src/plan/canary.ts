// Canary: a few replicas of the new image, on the first app host(s), take a rising share of requests, set
// through nginx upstream weights; each share is held for canary-interval while the canary's health and its
// real traffic (from nginx's access log) must stay good. At 100 the new image replaces the stable replicas
// start-first on every host and the canary replicas become part of the normal set. A plan that stops short
// of 100 leaves the canary live (result paused) until promote or abort; a new push of the pull request that
// started it replaces it in one run.
import { mainImage, type Replica, type Split } from '../model.js'
import type { Config } from '../config.js'
import type { CanaryState, ManagedContainer } from '../host/state.js'
import {
  allocate,
  endJudging,
  interleave,
  judges,
  liveReplicas,
  type Plan,
  PlanError,
  prepare,
  removeAll,
  replaceInBatches,
  retireAll,
  type Routes,
  type Usage,
} from './common.js'
import { planRolling } from './rolling.js'
import type { Step } from './types.js'

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

/** Route, then observe, for each share below 100; nginx records the app's requests for the judgement. */
function shareSteps(
  config: Config,
  stable: readonly Replica[],
  canary: readonly Replica[],
  shares: readonly number[],
): Step[] {
  return shares
    .filter((p) => p < 100)
    .flatMap((p): Step[] => {
      const split = splitFor(p, canary, stable.length)
      return [
        { kind: 'route', servers: [...stable, ...canary], split, judged: { backup: [] } },
        { kind: 'observe', seconds: config.canary.intervalSeconds, split, stable },
      ]
    })
}

/** canary-steps '0': the canary takes no share of requests, only those canary-match names. */
export const isPreview = (config: Config): boolean => config.canary.steps.length === 1 && config.canary.steps[0] === 0

/** The canary replicas go to the first app host(s), one each in turn. */
function canaryCounts(config: Config): Map<string, number> {
  const counts = new Map<string, number>()
  for (let i = 0; i < config.canary.replicas; i++) {
    const host = config.appHosts[i % config.appHosts.length].id
    counts.set(host, (counts.get(host) ?? 0) + 1)
  }
  return counts
}

/** How many fresh replicas each host needs at 100, beside the canary replicas it already has. */
function freshCounts(config: Config, canary: readonly Replica[]): Map<string, number> {
  return new Map(
    config.appHosts.map((h) => [h.id, Math.max(0, config.replicas - canary.filter((r) => r.host === h.id).length)]),
  )
}

/**
 * At 100: the canary replicas plus fresh ones replace the stable set on every host, start-first. `gone`:
 * replicas already out of the upstream that are retired with the stable ones.
 */
function completeSteps(
  config: Config,
  stable: readonly Replica[],
  canary: readonly Replica[],
  fresh: readonly Replica[],
  strays: readonly Replica[],
  gone: readonly Replica[] = [],
) {
  const keep = config.appHosts.flatMap((h) => canary.filter((r) => r.host === h.id).slice(0, config.replicas))
  const extra = canary.filter((r) => !keep.includes(r))
  const next = interleave([...keep, ...fresh], config.appHosts)
  const judged = judges(config, stable)
  return {
    next,
    steps: [
      ...replaceInBatches(config, stable, next, keep, judged),
      ...(judged ? endJudging(config, next, next) : []),
      ...removeAll(strays),
      ...retireAll([...stable, ...extra, ...gone]),
    ],
  }
}

const whoseCanary = (state: CanaryState): string =>
  state.pullRequest ? ` for pull request #${state.pullRequest.number}` : ''

export function pausedCanaryError(state: CanaryState): PlanError {
  return new PlanError(
    `a canary of ${state.image} is live at ${state.weight}%${whoseCanary(state)} next to ${state.stableImage} (since ${state.at}): ` +
      `finish it first with operation: promote, or remove it with operation: abort${state.pullRequest ? ` (its workflow does either when pull request #${state.pullRequest.number} is merged or closed)` : ''}`,
  )
}

/** The paused canary's replicas and the stable ones, as the hosts hold them. */
export function pausedSets(
  config: Config,
  containers: readonly ManagedContainer[],
  routes: Routes,
  state: CanaryState,
) {
  const { live, strays } = liveReplicas(config, containers, routes)
  const isCanary = (r: Replica) => state.replicas.some((c) => c.host === r.host && c.name === r.name)
  return { live, strays, canary: live.filter(isCanary), stable: live.filter((r) => !isCanary(r)) }
}

/**
 * The canary started and gated, then its shares. `replaced`: an earlier canary that leaves the upstream with
 * the first share, drains while the new one is observed, and is retired.
 */
function startThenShares(
  config: Config,
  canary: readonly Replica[],
  shares: readonly Step[],
  replaced: readonly Replica[],
): Step[] {
  const start: Step[] = [
    ...prepare(config, config.image),
    { kind: 'start', replicas: canary },
    { kind: 'gate', replicas: canary },
  ]
  if (!replaced.length) return [...start, ...shares]
  return [
    ...start,
    shares[0],
    { kind: 'drain', seconds: config.drainSeconds, replicas: replaced },
    ...retireAll(replaced),
    ...shares.slice(1),
  ]
}

/** The last share's route again, without the record of requests: a paused canary's log must not grow. */
function settleAtLastShare(shares: readonly Step[]): Step[] {
  const last = [...shares].reverse().find((st) => st.kind === 'route')
  return last?.kind === 'route' ? [{ ...last, judged: undefined, settle: true }] : []
}

/** The replicas each host needs at 100 beside the canary's, on ports neither in use nor the canary's. */
const freshReplicas = (
  config: Config,
  containers: readonly ManagedContainer[],
  canary: readonly Replica[],
  usage: Usage | undefined,
): Replica[] =>
  allocate(
    config,
    [...containers, ...canaryAsContainers(canary)],
    freshCounts(config, canary),
    config.image,
    [],
    undefined,
    usage,
  )

/** The note of a plan whose canary replaces the one of an earlier push (`image`, its `replicas`). */
const replacesNote = (image: string | undefined, replicas: readonly Replica[]): string =>
  `replaces the canary of ${image} (${replicas.map((r) => r.name).join(', ')}) of the same pull request in the first reload`

/**
 * A new canary. `replacing`: the live canary of the same pull request, which leaves the upstream in the
 * same reload that gives the new one its first share, then drains and is retired.
 */
export function planCanary(
  config: Config,
  containers: readonly ManagedContainer[],
  routes: Routes,
  replacing?: CanaryState,
  usage?: Usage,
): Plan {
  const sets = replacing
    ? pausedSets(config, containers, routes, replacing)
    : { ...liveReplicas(config, containers, routes), canary: [] as Replica[] }
  const old = sets.canary
  const stable = sets.live.filter((r) => !old.includes(r))
  // A preview is for the requests that ask for it: it never becomes what everybody gets.
  if (!stable.length && isPreview(config))
    throw new PlanError(
      `canary-steps: '0' is a preview next to a live version, but nothing of ${config.app} is live; deploy a stable version first (operation: deploy without canary-steps '0')`,
    )
  if (!stable.length)
    return planRolling(
      config,
      containers,
      routes,
      ['nothing is live to compare a canary with: deploying as rolling'],
      usage,
    )
  const canary = allocate(config, containers, canaryCounts(config), config.image, [], undefined, usage)
  const shares = shareSteps(config, stable, canary, config.canary.steps)
  // Replacing: the first route already leaves the old canary out; it drains while the new one is observed.
  const swapped = old.length > 0 && shares.length > 0
  const steps = startThenShares(config, canary, shares, swapped ? old : [])
  const base = {
    image: config.image,
    previous: [...stable, ...old],
    onFailure: 'abort-canary' as const,
    notes: old.length ? [replacesNote(replacing?.image, old)] : [],
    ...(old.length ? { replaces: old } : {}),
  }
  if (!config.canary.steps.includes(100)) {
    const percent = config.canary.steps[config.canary.steps.length - 1]
    const stableImage = replacing?.stableImage ?? mainImage(stable)
    return {
      ...base,
      steps: [...steps, ...settleAtLastShare(shares)],
      next: [...stable, ...canary],
      pausesAt: { percent, canary, stableImage },
      leaves: 'paused',
    }
  }
  const fresh = freshReplicas(config, containers, canary, usage)
  const complete = completeSteps(config, stable, canary, fresh, sets.strays, swapped ? [] : old)
  return { ...base, steps: [...steps, ...complete.steps], next: complete.next, leaves: 'deployed', endsCanary: true }
}

/** The canary replicas about to exist, so that allocating the fresh ones does not hand out their ports. */
const canaryAsContainers = (canary: readonly Replica[]): ManagedContainer[] =>
  canary.map((r) => ({ ...r, id: '', app: '', running: true }))

const noCanary = (config: Config, containers: readonly ManagedContainer[], routes: Routes, op: string) => {
  const { live } = liveReplicas(config, containers, routes)
  return new PlanError(
    `${op}: no canary of ${config.app} is paused; live is ${mainImage(live) || 'nothing'} on ${live.length} replica(s). ` +
      'Start one with operation: deploy and strategy: canary (canary-steps below 100), or use operation: status to see what is live',
  )
}

/** Continue a paused canary through its remaining steps to 100. */
export function planPromote(
  config: Config,
  containers: readonly ManagedContainer[],
  routes: Routes,
  state: CanaryState | undefined,
  usage?: Usage,
): Plan {
  if (!state) throw noCanary(config, containers, routes, 'promote')
  const { canary, stable, strays } = pausedSets(config, containers, routes, state)
  if (!canary.length)
    throw new PlanError(
      `the paused canary's replicas (${state.replicas.map((r) => r.name).join(', ')}) are not live any more; run operation: abort to clear it`,
    )
  const fresh = allocate(config, containers, freshCounts(config, canary), state.image, [], undefined, usage)
  const complete = completeSteps(config, stable, canary, fresh, strays)
  return {
    steps: [...shareSteps(config, stable, canary, state.remainingSteps), ...complete.steps],
    image: state.image,
    previous: [...stable, ...canary],
    next: complete.next,
    onFailure: 'abort-canary',
    leaves: 'deployed',
    endsCanary: true,
    notes: [],
  }
}

/** The canary leaves the upstream in one reload, drains and is retired; all traffic is on the stable replicas. */
export function abortSteps(config: Config, stable: readonly Replica[], canary: readonly Replica[]): Step[] {
  return [
    { kind: 'route', servers: stable },
    { kind: 'drain', seconds: config.drainSeconds, replicas: canary },
    ...retireAll(canary),
  ]
}

export function planAbort(
  config: Config,
  containers: readonly ManagedContainer[],
  routes: Routes,
  state: CanaryState | undefined,
): Plan {
  if (!state) throw noCanary(config, containers, routes, 'abort')
  const { live, canary, stable } = pausedSets(config, containers, routes, state)
  if (!stable.length)
    throw new PlanError(
      `abort: no stable replica of ${config.app} is live to take the traffic back; deploy ${state.stableImage} instead`,
    )
  return {
    steps: abortSteps(config, stable, canary),
    image: state.stableImage,
    previous: live,
    next: stable,
    onFailure: 'restore',
    leaves: 'rolled-back',
    endsCanary: true,
    notes: [],
  }
}
