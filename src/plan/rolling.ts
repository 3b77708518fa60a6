// Rolling deploy, start-first: per batch, start new replicas on free ports, gate them, swap them into the
// upstream and the old ones out in one reload, drain, stop the old ones. Old containers are only removed
// once the whole deploy has succeeded, so a rollback starts them again instead of rebuilding.
import type { Config } from '../config.js'
import type { ManagedContainer } from '../host/state.js'
import {
  allocate,
  everyHost,
  liveReplicas,
  prepare,
  removeAll,
  replaceInBatches,
  retireAll,
  type Plan,
  type Routes,
} from './common.js'

export function planRolling(
  config: Config,
  containers: readonly ManagedContainer[],
  routes: Routes,
  notes: string[] = [],
): Plan {
  const { live, strays } = liveReplicas(config, containers, routes)
  const next = allocate(config, containers, everyHost(config), config.image)
  return {
    // Retirement last: once old replicas are handed to it, nothing can bring them back.
    steps: [
      ...prepare(config, config.image),
      ...replaceInBatches(config, live, next),
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
