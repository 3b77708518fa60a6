// Blue-green: a full set of the new image in the colour that is not live, started in parallel and gated
// together, then all traffic moves in one reload; the old colour drains and stops (or, with keep-previous,
// stays running out of rotation so that a rollback is one reload).
import type { Config } from '../config.js'
import type { ManagedContainer } from '../host/state.js'
import { allocate, liveColor, liveReplicas, prepare, removeAll, type Plan } from './common.js'
import type { Replica, Step } from './types.js'

export const otherColor = (color: string): 'blue' | 'green' => (color === 'blue' ? 'green' : 'blue')

/** The switch itself: gate the new set, route to it in one reload, drain the old set, then stop it unless kept. */
export function switchTo(config: Config, live: readonly Replica[], next: readonly Replica[]): Step[] {
  const steps: Step[] = [{ kind: 'route', servers: next }]
  if (live.length) {
    steps.push({ kind: 'drain', seconds: config.drainSeconds, replicas: live }, { kind: 'gate', replicas: next, again: true })
    if (!config.keepPrevious) steps.push({ kind: 'stop', replicas: live }, { kind: 'remove', replicas: live })
  }
  return steps
}

export function planBlueGreen(config: Config, containers: readonly ManagedContainer[], liveConfig: string | undefined): Plan {
  const { live, strays } = liveReplicas(config.app, containers, liveConfig)
  // Strays (a colour kept from an earlier deploy, leftovers of a failed run) serve nothing: remove them
  // first, so the new colour can have their ports.
  const next = allocate(config, containers, config.replicas, config.image, strays, otherColor(liveColor(live)))
  return {
    steps: [...prepare(config, config.image), ...removeAll(strays), { kind: 'start', replicas: next }, { kind: 'gate', replicas: next }, ...switchTo(config, live, next)],
    image: config.image,
    previous: live,
    next,
    onFailure: 'restore',
    notes: [],
  }
}
