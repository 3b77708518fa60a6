// The GitHub side of a run: the deployment it records and the pull request's canary comment. Never fails
// the run: every problem is a warning (see GitHubRecorder).
import type { Config } from '../config.js'
import type { CanaryPush, CanaryState } from '../host/state.js'
import type { Logger } from '../journal.js'
import type { CanaryObservation } from '../model.js'
import type { RecordedDeployment, RunEnd } from '../run-end.js'
import { previewPath } from '../nginx/routing.js'
import { redact } from '../summary.js'
import { octokitApi } from './api.js'
import { renderCanaryComment } from './comment.js'
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

/** The images a run names on GitHub: what serves at its end, and what served before it. */
interface Images {
  readonly liveImage: string
  readonly previousImage: string
}

/** The pull request's canary before and after the run, and whether this run's took the place of the one before. */
interface CanaryChange {
  readonly before?: CanaryState
  readonly after?: CanaryState
  readonly swapped: boolean
  /** The canary the run is about. */
  readonly image: string
}

function canaryChange(end: RunEnd): CanaryChange {
  const { state, plan } = end
  const before = state?.canary
  const after = end.canaryAfter ?? undefined
  // (Not when the run was undone before its swap: the old canary is then still live, its record unchanged.)
  const swapped = Boolean(plan?.replaces) && end.canaryAfter !== undefined
  const image = after?.image ?? (swapped ? (plan?.image ?? '') : (before?.image ?? plan?.image ?? ''))
  return { before, after, swapped, image }
}

/** The run's deployment gets its final status. */
async function finishDeployment(
  recorder: GitHubRecorder,
  config: Config,
  end: RunEnd,
  images: Images,
  canaryImage: string,
): Promise<void> {
  if (!end.deployment) return
  await recorder.finish(
    end.deployment,
    finalStatus({
      operation: config.operation,
      result: end.result,
      image: images.liveImage,
      previousImage: images.previousImage,
      canaryImage,
      canaryWeight: end.canaryWeight,
    }),
  )
}

/** The pull request's earlier pushes, oldest first: the one this run's canary replaced among them. */
function earlierPushes({ before, after, swapped }: CanaryChange): CanaryPush[] {
  if (after) return [...(after.pushes ?? [])]
  return [
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
}

/** The canary's judged steps: its record's, or (no canary left) the ones before this run's and this run's. */
function canaryObservations(
  { before, after, swapped }: CanaryChange,
  judged: readonly CanaryObservation[],
): readonly CanaryObservation[] {
  if (after) return after.observations ?? []
  return [...(swapped ? [] : (before?.observations ?? [])), ...judged]
}

/** Finishes the run's deployment, retires a replaced canary's, and rewrites the pull request's canary comment. Never throws. */
export async function recordOnGitHub(
  recorder: GitHubRecorder,
  config: Config,
  gh: RunContext,
  end: RunEnd,
  judged: readonly CanaryObservation[],
  images: Images,
  secrets: readonly string[],
): Promise<void> {
  const { result, plan } = end
  const change = canaryChange(end)
  const { before } = change
  await finishDeployment(recorder, config, end, images, change.image)
  // A new push replaced the pull request's canary: its deployment no longer describes anything live.
  const replaced =
    change.swapped && before?.deployment && end.deployment?.id !== before.deployment.id ? before.deployment : undefined
  if (replaced) await recorder.deactivate(replaced, `Replaced by ${plan?.image} from a new push`)
  const pr = canaryPullRequest(gh, before)
  if (!pr || (config.strategy !== 'canary' && !before)) return
  // The same key on every run of this canary (a promote may leave the environment input empty), so one comment.
  const where = config.github.environment || before?.deployment?.environment || config.appHosts[0].id
  const body = renderCanaryComment({
    app: config.app,
    where,
    operation: config.operation,
    result,
    canaryImage: change.image,
    stableImage: result === 'paused' || result === 'rolled-back' ? images.liveImage : images.previousImage,
    canaryWeight: end.canaryWeight,
    observations: canaryObservations(change, judged),
    pushes: earlierPushes(change),
    failure: end.failure,
    runUrl: gh.runUrl,
    at: new Date().toISOString(),
    ...(config.canary.match ? { reach: { match: config.canary.match, ...previewLinkOf(config) } } : {}),
  })
  // The hidden state line is base64: a short secret could match inside it, and it holds no secret.
  const [marker, ...rest] = body.split('\n')
  await recorder.comment(pr.number, { app: config.app, where }, [marker, redact(rest.join('\n'), secrets)].join('\n'))
}

/** The preview link (site scope only: nginx answers it in the server block the action writes). */
function previewLinkOf(config: Config): { link?: string } {
  const match = config.canary.match
  if (!match || config.nginx.scope !== 'site') return {}
  const path = `${previewPath(config.app)}?value=${match.value}`
  // The location is at the root of the app's host, whatever path the environment's URL has.
  const base = config.github.environmentUrl ? new URL(config.github.environmentUrl).origin : ''
  return { link: base ? `${base}${path}` : path }
}
