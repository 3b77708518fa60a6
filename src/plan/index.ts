// From the operation and strategy asked for, and what the hosts hold, to a plan.
import type { Config } from '../config.js'
import type { CanaryState, HostState } from '../host/state.js'
import { hostPort } from '../model.js'
import { planBlueGreen } from './blue-green.js'
import { pausedCanaryError, planAbort, planCanary, planPromote } from './canary.js'
import { PlanError, type Plan, type Routes } from './common.js'
import { planMaintenance } from './maintenance.js'
import { planRollbackOperation } from './rollback.js'
import { planRolling } from './rolling.js'

/** The pull request a run belongs to (a pull_request event), as the canary record names one. */
export interface PullRequestRef {
  readonly repo: string
  readonly number: number
}

/** The routing the live managed file holds; undefined when there is none to go by (every running replica then counts). */
export const routesOf = (state: HostState): Routes =>
  state.nginx.managed.kind === 'ours' ? state.nginx.routes : undefined

/**
 * Why the recorded canary is stale, or undefined when the hosts agree with it: the hosts are the source of
 * truth, so a record whose containers are not running, or not routed by nginx, describes nothing live.
 */
export function staleCanary(state: HostState): string | undefined {
  const canary = state.canary
  if (!canary) return undefined
  const missing = canary.replicas.filter((r) => !isLive(state, r))
  if (!missing.length) return undefined
  const left = canaryLeftovers(state)
  const still = left.length
    ? `; ${left.map((r) => r.name).join(', ')} still ${left.length === 1 ? 'takes' : 'take'} traffic: abort takes ${left.length === 1 ? 'it' : 'them'} out`
    : ''
  return `the recorded canary of ${canary.image} at ${canary.weight}% is stale: ${missing.map((r) => `${r.name} on ${r.host}`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not running or not routed by nginx (the hosts decide what is live)${still}; the next run that takes the lock clears its record`
}

/** Whether a recorded replica runs and nginx routes to it. */
function isLive(state: HostState, r: { host: string; name: string }): boolean {
  const routes = routesOf(state)
  const c = state.containers.find((x) => x.host === r.host && x.name === r.name)
  return Boolean(c && c.running && (routes === undefined || routes.has(hostPort(c.address, c.port))))
}

/** The replicas of a stale canary record that still run and take traffic: a canary is removed whole. */
export function canaryLeftovers(state: HostState): { host: string; name: string }[] {
  return (state.canary?.replicas ?? []).filter((r) => isLive(state, r))
}

const samePullRequest = (a: PullRequestRef | undefined, b: PullRequestRef | undefined): boolean =>
  Boolean(a && b && a.repo === b.repo && a.number === b.number)

function planDeploy(config: Config, state: HostState, routes: Routes, pullRequest: PullRequestRef | undefined): Plan {
  if (state.canary) {
    // A new push of the pull request whose canary is live replaces it; any other deploy would lose a decision in progress.
    if (config.strategy === 'canary' && samePullRequest(pullRequest, state.canary.pullRequest))
      return planCanary(config, state.containers, routes, state.canary, state.usage)
    throw pausedCanaryError(state.canary)
  }
  switch (config.strategy) {
    case 'rolling':
      return planRolling(config, state.containers, routes, [], state.usage)
    case 'blue-green':
      return planBlueGreen(config, state.containers, routes, state.usage)
    case 'canary':
      return planCanary(config, state.containers, routes, undefined, state.usage)
  }
}

/** Nothing to do, and nothing wrong: a run of a pull request whose canary is not the one live. */
export class NothingToDo extends Error {}

/** `state.canary` must already be checked against the hosts (see staleCanary). */
export function planFor(config: Config, state: HostState, pullRequest?: PullRequestRef): Plan {
  const routes = routesOf(state)
  const canary: CanaryState | undefined = state.canary
  // A pull request's promote or abort (on merge or close) is about its own canary only.
  if (
    (config.operation === 'promote' || config.operation === 'abort') &&
    pullRequest &&
    !samePullRequest(pullRequest, canary?.pullRequest)
  )
    throw new NothingToDo(
      canary
        ? `the live canary of ${config.app} (${canary.image}) belongs to ${canary.pullRequest ? `pull request #${canary.pullRequest.number}` : 'no pull request'}, not #${pullRequest.number}: nothing to ${config.operation}`
        : `no canary of ${config.app} is live for pull request #${pullRequest.number}: nothing to ${config.operation}`,
    )
  switch (config.operation) {
    case 'deploy':
      return planDeploy(config, state, routes, pullRequest)
    case 'promote':
      return planPromote(config, state.containers, routes, canary, state.usage)
    case 'abort':
      return planAbort(config, state.containers, routes, canary)
    case 'rollback':
      return planRollbackOperation(config, state, routes)
    case 'resume':
      if (state.nginx.facts.maintenance === undefined)
        throw new NothingToDo(`${config.app} is not in maintenance: nothing to resume`)
      return planMaintenance(config, state, routes)
    case 'maintenance':
      return planMaintenance(config, state, routes)
    case 'status':
      throw new PlanError('status reads the hosts and plans nothing')
  }
}
