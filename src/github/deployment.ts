// Pure: which GitHub deployment a run records, and the status it ends with.
import type { Config, Operation } from '../config.js'
import type { CanaryState } from '../host/state.js'
import type { Result } from '../summary.js'
import type { DeploymentState, NewDeployment, Repo } from './api.js'

/** What the run knows of its workflow run, from @actions/github's context. */
export interface RunContext {
  /** Undefined outside GitHub Actions (no GITHUB_REPOSITORY). */
  readonly repo?: Repo
  readonly sha: string
  readonly eventName: string
  /** The pull request of a pull_request or pull_request_target event. */
  readonly pullRequest?: { readonly number: number; readonly headSha: string }
  readonly runUrl?: string
  /** Who started the run (GITHUB_ACTOR), '' outside one. */
  readonly actor: string
  /** The REST API's base URL (GITHUB_API_URL). */
  readonly apiUrl: string
}

export const repoName = (r: Repo): string => `${r.owner}/${r.repo}`

/** The pull request a canary belongs to: this run's, or the one whose run left the canary paused (same repository). */
export function canaryPullRequest(
  run: RunContext,
  canary: CanaryState | undefined,
): { repo: string; number: number } | undefined {
  if (!run.repo) return undefined
  const repo = repoName(run.repo)
  if (run.pullRequest) return { repo, number: run.pullRequest.number }
  return canary?.pullRequest?.repo === repo ? canary.pullRequest : undefined
}

export type DeploymentTarget =
  | { readonly kind: 'none' }
  /** A deployment of its own for this run. */
  | { readonly kind: 'new'; readonly deployment: NewDeployment }
  /** The deployment a canary run recorded: promote and abort finish it rather than adding another. */
  | { readonly kind: 'canary'; readonly id: number; readonly environment: string }

/**
 * Dry runs and status change nothing, so they record nothing. A promote or abort finishes the deployment
 * of the canary it ends; an abort of a canary nobody recorded adds none (what was live before still is).
 */
export function deploymentTarget(
  config: Config,
  run: RunContext,
  canary: CanaryState | undefined,
  image: string,
): DeploymentTarget {
  // Maintenance and resume change what the app answers, not what is deployed: no deployment of their own.
  const deploysNothing = ['status', 'maintenance', 'resume'].includes(config.operation)
  if (config.dryRun || deploysNothing || !run.repo) return { kind: 'none' }
  const recorded = canary?.deployment
  if (
    (config.operation === 'promote' || config.operation === 'abort') &&
    recorded &&
    recorded.repo === repoName(run.repo)
  )
    return { kind: 'canary', id: recorded.id, environment: recorded.environment }
  if (config.operation === 'abort' || !config.github.environment) return { kind: 'none' }
  const what = config.operation === 'deploy' ? `${config.strategy} deploy` : config.operation
  return {
    kind: 'new',
    deployment: {
      // A pull request's run checks out a merge commit; the deployment belongs to the commit pushed.
      ref: run.pullRequest?.headSha ?? run.sha,
      environment: config.github.environment,
      description: `${config.app}: ${what} of ${image}`,
      payload: { app: config.app, image, operation: config.operation, strategy: config.strategy },
    },
  }
}

export interface EndFacts {
  readonly operation: Operation
  readonly result: Result
  /** The image serving after the run, and before it. */
  readonly image: string
  readonly previousImage: string
  readonly canaryImage: string
  readonly canaryWeight: string
}

/** The status a recorded deployment ends the run with. */
export function finalStatus(f: EndFacts): { state: DeploymentState; description: string } {
  switch (f.result) {
    case 'deployed':
      return {
        state: 'success',
        description:
          f.operation === 'promote' ? `Promoted ${f.image} to all requests` : `${f.image} serves all requests`,
      }
    case 'paused':
      // Live for part of the traffic and waiting for a decision: not done, not failed.
      return {
        state: 'in_progress',
        description: `Canary ${f.canaryImage} at ${f.canaryWeight}% of requests: promote or abort it`,
      }
    case 'rolled-back':
      if (f.operation === 'abort')
        return { state: 'inactive', description: `Canary aborted: ${f.image} serves all requests` }
      if (f.operation === 'rollback') return { state: 'success', description: `Rolled back to ${f.image}` }
      return { state: 'failure', description: `Failed and rolled back: ${f.image} serves all requests` }
    case 'failed':
    case 'planned':
      return {
        state: 'failure',
        description: `${f.operation === 'deploy' ? 'Deploy' : f.operation} failed: see the run log`,
      }
    case 'unchanged':
      return { state: 'inactive', description: 'Nothing to do' }
    case 'cancelled':
      // The run went to one consistent state when it was cancelled: the new version fully live (the route
      // finished, the bake cut short), or the previous one back.
      return f.image && f.image !== f.previousImage
        ? {
            state: 'success',
            description: `Cancelled after the switch: ${f.image} serves all requests (bake cut short)`,
          }
        : { state: 'error', description: `Cancelled: ${f.image || f.previousImage} serves all requests` }
  }
}
