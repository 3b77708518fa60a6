// The GitHub side of a run: the deployment it records and the pull request's canary comment. Never fails
// the run: every problem is a warning (see GitHubRecorder).
import type { Config } from '../config.js'
import type { CanaryPush, CanaryState } from '../host/state.js'
import type { Logger } from '../journal.js'
import type { CanaryObservation } from '../model.js'
import type { RecordedDeployment, RunEnd } from '../run-end.js'
import { redact } from '../summary.js'
import { octokitApi } from './api.js'
import { commentMarker, renderCanaryComment } from './comment.js'
import { canaryPullRequest, deploymentTarget, finalStatus, repoName, type RunContext } from './deployment.js'
import { GitHubRecorder } from './report.js'

/** Where a canary's GitHub records live, kept with the canary on the nginx host for the run that ends it. */
export type CanaryLinks = Pick<CanaryState, 'deployment' | 'pullRequest'>

/** The GitHub side of the run, or undefined (with a warning when a deployment was asked for) when it cannot work. */
export function githubRecorder(config: Config, gh: RunContext, log: Logger): GitHubRecorder | undefined {
  const { token, environment, environmentUrl } = config.github
  if (token && gh.repo)
    return new GitHubRecorder(octokitApi(token, gh.repo, gh.apiUrl), log, {
      runUrl: gh.runUrl,
      environmentUrl: environmentUrl || undefined,
    })
  const why = !token ? 'github-token is empty' : 'this is not a GitHub Actions run (GITHUB_REPOSITORY is not set)'
  if (environment && config.operation !== 'status' && !config.dryRun)
    log.warning(`environment is set but ${why}: no GitHub deployment is recorded`)
  return undefined
}

export const beginDeployment = (
  recorder: GitHubRecorder,
  config: Config,
  gh: RunContext,
  canary: CanaryState | undefined,
  image: string,
): Promise<RecordedDeployment | undefined> =>
  recorder.begin(deploymentTarget(config, gh, canary, image), `${config.app}: ${config.operation} ${image} in progress`)

/** The links a paused canary keeps: its deployment, and the pull request it belongs to (a canary paused again keeps its own). */
export function canaryLinks(
  gh: RunContext,
  canary: CanaryState | undefined,
  deployment: RecordedDeployment | undefined,
): CanaryLinks {
  const pr = canaryPullRequest(gh, canary) ?? canary?.pullRequest
  return {
    ...(deployment && gh.repo ? { deployment: { repo: repoName(gh.repo), ...deployment } } : {}),
    ...(pr ? { pullRequest: pr } : {}),
  }
}

/** Finishes the run's deployment, retires a replaced canary's, and rewrites the pull request's canary comment. Never throws. */
export async function recordOnGitHub(
  recorder: GitHubRecorder,
  config: Config,
  gh: RunContext,
  end: RunEnd,
  judged: readonly CanaryObservation[],
  images: { liveImage: string; previousImage: string },
  secrets: readonly string[],
): Promise<void> {
  const { result, state, plan } = end
  const before = state?.canary
  const after = end.canaryAfter ?? undefined
  // (Not when the run was undone before its swap: the old canary is then still live, its record unchanged.)
  const swapped = Boolean(plan?.replaces) && end.canaryAfter !== undefined
  const canaryImage = after?.image ?? (swapped ? (plan?.image ?? '') : (before?.image ?? plan?.image ?? ''))
  if (end.deployment)
    await recorder.finish(
      end.deployment,
      finalStatus({
        operation: config.operation,
        result,
        image: images.liveImage,
        previousImage: images.previousImage,
        canaryImage,
        canaryWeight: end.canaryWeight,
      }),
    )
  // A new push replaced the pull request's canary: its deployment no longer describes anything live.
  const replaced =
    swapped && before?.deployment && end.deployment?.id !== before.deployment.id ? before.deployment : undefined
  if (replaced) await recorder.deactivate(replaced, `Replaced by ${plan?.image} from a new push`)
  const pr = canaryPullRequest(gh, before)
  if (!pr || (config.strategy !== 'canary' && !before)) return
  // The same key on every run of this canary (a promote may leave the environment input empty), so one comment.
  const where = config.github.environment || before?.deployment?.environment || config.appHosts[0].id
  const earlier: CanaryPush[] = after
    ? [...(after.pushes ?? [])]
    : [
        ...(before?.pushes ?? []),
        ...(swapped && before
          ? [
              {
                image: before.image,
                sha: before.sha,
                at: before.at,
                observations: before.observations ?? [],
                outcome: 'replaced' as const,
              },
            ]
          : []),
      ]
  const observations = after
    ? (after.observations ?? [])
    : [...(swapped ? [] : (before?.observations ?? [])), ...judged]
  const body = renderCanaryComment({
    app: config.app,
    where,
    operation: config.operation,
    result,
    canaryImage,
    stableImage: result === 'paused' || result === 'rolled-back' ? images.liveImage : images.previousImage,
    canaryWeight: end.canaryWeight,
    observations,
    pushes: earlier,
    failure: end.failure,
    runUrl: gh.runUrl,
    at: new Date().toISOString(),
  })
  await recorder.comment(pr.number, commentMarker(config.app, where), redact(body, secrets))
}
