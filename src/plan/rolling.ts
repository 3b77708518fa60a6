// Rolling deploy, start-first: per batch, start new replicas on free ports, gate them, swap them into the
// upstream and the old ones out in one reload, drain, stop the old ones. Old containers are only removed
// once the whole deploy has succeeded, so a rollback starts them again instead of rebuilding.
import type { Config } from '../config.js'
import type { ManagedContainer } from '../host/state.js'
import { allocate, liveReplicas, prepare, removeAll, replaceInBatches, type Plan } from './common.js'

export function planRolling(config: Config, containers: readonly ManagedContainer[], liveConfig: string | undefined, notes: string[] = []): Plan {
  const { live, strays } = liveReplicas(config.app, containers, liveConfig)
  const next = allocate(config, containers, config.replicas, config.image)
  return {
    steps: [...prepare(config, config.image), ...replaceInBatches(config, live, next), ...removeAll([...live, ...strays])],
    image: config.image,
    previous: live,
    next,
    onFailure: 'restore',
    notes,
  }
}
