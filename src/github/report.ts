// Records a run on GitHub: the deployment and its statuses, and the pull-request comment. Every failure
// here becomes a warning: the deploy on the host is what the job is about, and recording it must never
// fail a deploy that worked (nor hide one that failed).
import { LIMITS } from '../config.js'
import type { Logger } from '../journal.js'
import { code, link, text } from '../report/text.js'
import {
  GitHubApiError,
  type DeploymentState,
  type DeploymentStatus,
  type GitHubApi,
  type IssueComment,
} from './api.js'
import type { RecordedDeployment } from '../run-end.js'
import type { DeploymentTarget } from './deployment.js'
import { isCommentOf, readCommentState, type CommentKey } from './comment.js'

/** The warning for a failed call, naming the permission the workflow needs when that is the likely cause. */
export function apiWarning(what: string, e: unknown, permission: string): string {
  const message = (e as Error).message
  const status = e instanceof GitHubApiError ? e.status : undefined
  if (status === 401 || status === 403 || status === 404)
    return (
      `${what} failed (${message}). The workflow's token needs \`permissions: ${permission}\` (set it on the workflow or the job; ` +
      `a pull request from a fork only ever gets a read-only token). The deploy itself is not affected.`
    )
  return `${what} failed (${message}). The deploy itself is not affected.`
}

export const DEPLOYMENTS_PERMISSION = 'deployments: write'
export const COMMENTS_PERMISSION = 'pull-requests: write'

export class GitHubRecorder {
  /** What happened on GitHub, for the job summary: markdown, every outside text in it escaped. */
  readonly notes: string[] = []

  constructor(
    private readonly api: GitHubApi,
    private readonly log: Logger,
    private readonly links: { readonly runUrl?: string; readonly environmentUrl?: string },
  ) {}

  private warn(what: string, e: unknown, permission: string): void {
    const w = apiWarning(what, e, permission)
    this.log.warning(w)
    this.notes.push(`warning: ${text(w)}`)
  }

  private status(state: DeploymentState, description: string): DeploymentStatus {
    // A deployment that ended inactive or failed has no live URL to show.
    const live = state === 'success' || state === 'in_progress'
    return {
      state,
      description,
      logUrl: this.links.runUrl,
      ...(live && this.links.environmentUrl ? { environmentUrl: this.links.environmentUrl } : {}),
    }
  }

  /** Marks a deployment inactive (a pull request's earlier canary, replaced by a new push). */
  async deactivate(d: { id: number; environment: string }, description: string): Promise<void> {
    try {
      await this.api.setDeploymentStatus(d.id, { state: 'inactive', description, logUrl: this.links.runUrl })
      this.notes.push(
        `Deployment ${d.id} in environment **${text(d.environment)}**: \`inactive\`, ${text(description)}.`,
      )
    } catch (e) {
      this.warn(`Setting GitHub deployment ${d.id} inactive`, e, DEPLOYMENTS_PERMISSION)
    }
  }

  /** Creates (or takes over) the run's deployment and marks it in progress; undefined when there is none. */
  async begin(target: DeploymentTarget, description: string): Promise<RecordedDeployment | undefined> {
    if (target.kind === 'none') return undefined
    let recorded: RecordedDeployment
    try {
      recorded =
        target.kind === 'new'
          ? { id: await this.api.createDeployment(target.deployment), environment: target.deployment.environment }
          : { id: target.id, environment: target.environment }
    } catch (e) {
      this.warn('Recording the GitHub deployment', e, DEPLOYMENTS_PERMISSION)
      return undefined
    }
    this.log.info(
      `GitHub deployment ${recorded.id} in ${recorded.environment}: ${target.kind === 'new' ? 'created' : "the canary's, continued"}`,
    )
    try {
      await this.api.setDeploymentStatus(recorded.id, this.status('in_progress', description))
    } catch (e) {
      this.warn(`Setting GitHub deployment ${recorded.id} in progress`, e, DEPLOYMENTS_PERMISSION)
    }
    return recorded
  }

  /** Sets the final status; after a success, the environment's earlier deployment still marked active becomes inactive. */
  async finish(d: RecordedDeployment, end: { state: DeploymentState; description: string }): Promise<void> {
    try {
      await this.api.setDeploymentStatus(d.id, this.status(end.state, end.description))
      this.log.info(`GitHub deployment ${d.id} in ${d.environment}: ${end.state} (${end.description})`)
      this.notes.push(
        `Deployment ${d.id} in environment **${text(d.environment)}**: ${code(end.state)}, ${text(end.description)}.`,
      )
    } catch (e) {
      this.warn(`Setting GitHub deployment ${d.id} to ${end.state}`, e, DEPLOYMENTS_PERMISSION)
      return
    }
    if (end.state === 'success') await this.deactivateEarlier(d)
  }

  // GitHub's auto_inactive skips production environments, so the earlier ones are marked here as well.
  private async deactivateEarlier(d: RecordedDeployment): Promise<void> {
    try {
      const earlier = (await this.api.recentDeployments(d.environment, LIMITS.githubEarlierDeployments + 1)).filter(
        (id) => id < d.id,
      )
      const active = (
        await Promise.all(
          earlier.map(async (id) => ((await this.api.latestDeploymentState(id)) === 'success' ? [id] : [])),
        )
      ).flat()
      for (const id of active)
        await this.api.setDeploymentStatus(id, {
          state: 'inactive',
          description: `Superseded by deployment ${d.id}`,
          logUrl: this.links.runUrl,
        })
      if (active.length) this.log.info(`GitHub deployments marked inactive: ${active.join(', ')}`)
    } catch (e) {
      this.warn(`Marking the earlier deployments of ${d.environment} inactive`, e, DEPLOYMENTS_PERMISSION)
    }
  }

  /**
   * Writes the comment: updates the action's own one whose hidden state names `key`, or creates it. Anyone
   * can type the state, so only a comment by the token's user (or, for a token that is no user, by a bot)
   * counts. One of ours whose state does not read is passed over with a warning, never taken for another.
   */
  async comment(issue: number, key: CommentKey, body: string): Promise<string | undefined> {
    try {
      const [comments, me] = await Promise.all([this.api.comments(issue), this.api.whoAmI()])
      const ours = (c: IssueComment) => (me ? c.author.login === me : c.author.type === 'Bot')
      for (const c of comments.filter(ours)) {
        const state = readCommentState(c.body)
        if (state.kind === 'unreadable')
          this.log.warning(`pull request #${issue}: comment ${c.id} is passed over: ${state.why}`)
      }
      const mine = comments.find((c) => ours(c) && isCommentOf(c.body, key))
      const c = mine ? await this.api.updateComment(mine.id, body) : await this.api.createComment(issue, body)
      this.log.info(`pull request #${issue}: comment ${mine ? 'updated' : 'created'}: ${c.url}`)
      this.notes.push(`Pull request #${issue}: ${link('comment', c.url)} ${mine ? 'updated' : 'created'}.`)
      return c.url
    } catch (e) {
      this.warn(`Commenting on pull request #${issue}`, e, COMMENTS_PERMISSION)
      return undefined
    }
  }
}
