// From the operation and strategy asked for, and what the host holds, to a plan.
import type { Config } from '../config.js'
import type { HostState } from '../host/state.js'
import { planBlueGreen } from './blue-green.js'
import { pausedCanaryError, planAbort, planCanary, planPromote } from './canary.js'
import { PlanError, type Plan } from './common.js'
import { planRollbackOperation } from './rollback.js'
import { planRolling } from './rolling.js'

function planDeploy(config: Config, state: HostState): Plan {
  // A paused canary is a decision in progress: a plain deploy on top of it would lose it.
  if (state.canary) throw pausedCanaryError(state.canary)
  switch (config.strategy) {
    case 'rolling':
      return planRolling(config, state.containers, state.nginx.config)
    case 'blue-green':
      return planBlueGreen(config, state.containers, state.nginx.config)
    case 'canary':
      return planCanary(config, state.containers, state.nginx.config)
  }
}

export function planFor(config: Config, state: HostState): Plan {
  const { containers, nginx, canary } = state
  switch (config.operation) {
    case 'deploy':
      return planDeploy(config, state)
    case 'promote':
      return planPromote(config, containers, nginx.config, canary)
    case 'abort':
      return planAbort(config, containers, nginx.config, canary)
    case 'rollback':
      return planRollbackOperation(config, state)
    case 'status':
      throw new PlanError('status reads the host and plans nothing')
  }
}
