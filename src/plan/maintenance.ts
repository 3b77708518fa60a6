// Maintenance and resume: the live replicas (and a paused canary's share) stay as they are; one reload
// switches the app's answers to a 503 with the message, or back to the app. The template decides what the
// file holds from the operation (see maintenanceLocations); the plan only re-routes what is live.
import type { Config } from '../config.js'
import type { HostState } from '../host/state.js'
import { mainImage } from '../model.js'
import { pausedSets, splitFor } from './canary.js'
import { liveReplicas, PlanError, type Plan, type Routes } from './common.js'
import type { Step } from './types.js'

export function planMaintenance(config: Config, state: HostState, routes: Routes): Plan {
  const on = config.operation === 'maintenance'
  const found = state.nginx.facts.maintenance
  const canary = state.canary
  const sets = canary ? pausedSets(config, state.containers, routes, canary) : undefined
  const live = sets?.live ?? liveReplicas(config, state.containers, routes).live
  if (!live.length)
    throw new PlanError(
      `${config.operation}: nothing of ${config.app} is live to ${on ? 'put in maintenance' : 'resume'}; deploy it first`,
    )
  // A paused canary keeps its share (and its pins) through maintenance and back.
  const split = sets?.canary.length && canary ? splitFor(canary.weight, sets.canary, sets.stable.length) : undefined
  const route: Step = { kind: 'route', servers: live, ...(split ? { split } : {}), maintenance: on ? 'on' : 'off' }
  const notes = on
    ? found !== undefined
      ? [`${config.app} is in maintenance already ('${found}'): the message becomes '${config.maintenanceMessage}'`]
      : []
    : []
  return {
    steps: [route],
    image: mainImage(sets?.stable ?? live),
    previous: live,
    next: live,
    onFailure: 'restore',
    leaves: canary ? 'paused' : 'deployed',
    notes,
  }
}
