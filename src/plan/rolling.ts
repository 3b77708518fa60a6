// Rolling deploy, start-first: per batch, start new replicas on free ports, gate them, swap them into the
// upstream and the old ones out in one reload, drain the old ones while the new ones are judged on real
// traffic. Old containers are only removed once the whole deploy has succeeded (and baked), so going back
// is one reload to replicas still running, or starting them again.
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
  replaceInBatches,
  retireAll,
  type Routes,
  type Usage,
} from './common.js'

export function planRolling(
  config: Config,
  containers: readonly ManagedContainer[],
  routes: Routes,
  notes: string[] = [],
  usage?: Usage,
): Plan {
  const { live, strays } = liveReplicas(config, containers, routes)
  const next = allocate(config, containers, everyHost(config), config.image, [], undefined, usage)
  const judged = judges(config, live)
  return {
    // Retirement last: once old replicas are handed to it, nothing can bring them back.
    steps: [
      ...prepare(config, config.image),
      ...recordSteps(judged, live),
      ...replaceInBatches(config, live, next, [], judged),
      ...(judged ? endJudging(config, next, next) : []),
      ...removeAll(strays),
      ...retireAll(live),
    ],
    image: config.image,
    previous: live,
    next,
    onFailure: 'restore',
    leaves: 'deployed',
    notes,
  }
}
