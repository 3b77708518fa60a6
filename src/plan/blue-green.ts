// Blue-green: a full set of the new image in the colour that is not live, on every host, started in
// parallel and gated together, then all traffic moves in one reload; the old colour drains and is retired
// (or, with keep-previous, stays running out of rotation so that a rollback is one reload).
import { liveColor, type Replica } from '../model.js'
import type { Config } from '../config.js'
import type { ManagedContainer } from '../host/state.js'
import {
  allocate,
  endJudging,
  everyHost,
  judges,
  liveReplicas,
  type Plan,
  prepare,
  recordSteps,
  removeAll,
  retireAll,
  type Routes,
  type Usage,
} from './common.js'
import type { Step } from './types.js'

export const otherColor = (color: string): 'blue' | 'green' => (color === 'blue' ? 'green' : 'blue')

/**
 * The switch itself: route to the gated new set in one reload, drain the old set while checking the new one
 * again (`judged`: and judging it on real traffic against the old set's record, the old set as backup, then
 * the bake), then retire the old set unless kept.
 */
export function switchTo(config: Config, live: readonly Replica[], next: readonly Replica[], judged: boolean): Step[] {
  const steps: Step[] = [{ kind: 'route', servers: next, ...(judged ? { judged: { backup: live } } : {}) }]
  if (!live.length) return steps
  const verify = judged ? { verify: next } : {}
  steps.push({ kind: 'drain', seconds: config.drainSeconds, replicas: live, recheck: next, ...verify })
  if (judged) steps.push(...endJudging(config, next, next))
  if (!config.keepPrevious) steps.push(...retireAll(live))
  return steps
}

export function planBlueGreen(
  config: Config,
  containers: readonly ManagedContainer[],
  routes: Routes,
  usage?: Usage,
): Plan {
  const { live, strays } = liveReplicas(config, containers, routes)
  // Strays (a colour kept from an earlier deploy, leftovers of a failed run) serve nothing: remove them
  // first, so the new colour can have their ports.
  const color = otherColor(liveColor(live))
  const next = allocate(config, containers, everyHost(config), config.image, strays, color, usage)
  const judged = judges(config, live)
  return {
    steps: [
      ...prepare(config, config.image),
      ...recordSteps(judged, live),
      ...removeAll(strays),
      { kind: 'start', replicas: next },
      { kind: 'gate', replicas: next },
      ...switchTo(config, live, next, judged),
    ],
    image: config.image,
    previous: live,
    next,
    onFailure: 'restore',
    leaves: 'deployed',
    notes: [],
  }
}
