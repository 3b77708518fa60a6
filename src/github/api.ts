// Effects: the GitHub REST calls nginx-rollout makes, behind a small interface. The tests run the real
// client against a local HTTP server that answers these endpoints (__tests__/github-server.ts).
import { getOctokit } from '@actions/github'
import { LIMITS } from '../config.js'

export interface Repo {
  readonly owner: string
  readonly repo: string
}

export type DeploymentState = 'in_progress' | 'success' | 'failure' | 'error' | 'inactive'

export interface DeploymentStatus {
  readonly state: DeploymentState
  readonly description: string
  readonly logUrl?: string
  readonly environmentUrl?: string
}

export interface NewDeployment {
  readonly ref: string
  readonly environment: string
  readonly description: string
  /** Kept with the deployment on GitHub: what was deployed, for whoever reads the API later. */
  readonly payload: Readonly<Record<string, string>>
}

export interface IssueComment {
  readonly id: number
  readonly body: string
  readonly url: string
  /** Who wrote it: a marker anyone can type, so only the token's own comments are taken as the action's. */
  readonly author: { readonly login: string; readonly type: string }
}

export interface GitHubApi {
  createDeployment(d: NewDeployment): Promise<number>
  setDeploymentStatus(id: number, s: DeploymentStatus): Promise<void>
  /** The ids of the environment's most recent deployments, newest first. */
  recentDeployments(environment: string, count: number): Promise<number[]>
  /** The state of a deployment's newest status, or undefined when it has none. */
  latestDeploymentState(id: number): Promise<string | undefined>
  /** Every comment on an issue or pull request, oldest first. */
  comments(issue: number): Promise<IssueComment[]>
  createComment(issue: number, body: string): Promise<IssueComment>
  updateComment(id: number, body: string): Promise<IssueComment>
  /** The token's user, or undefined when the token cannot say (an Actions or app installation token). */
  whoAmI(): Promise<string | undefined>
}

/** A GitHub API call that failed; status is the HTTP status when GitHub answered. */
export class GitHubApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

const clip = (s: string) =>
  s.length > LIMITS.githubDescriptionChars ? `${s.slice(0, LIMITS.githubDescriptionChars - 3)}...` : s

// Longer than a screen on purpose: it is one object, a table of the seven GitHub calls the action makes, each
// a few lines of request fields. Read side by side they show every call's timeout and error wording are alike;
// split into functions, each would need the client, the repository and the helpers passed in.
/** The real client: @actions/github's Octokit, at apiUrl (GITHUB_API_URL: GitHub Enterprise Server works too). */
export function octokitApi(token: string, repo: Repo, apiUrl: string): GitHubApi {
  const octokit = getOctokit(token, { baseUrl: apiUrl })
  // A hung API must not hold the run: every request gives up after a while, and the caller warns.
  const request = () => ({ signal: AbortSignal.timeout(LIMITS.githubRequestTimeoutMs) })
  const call = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f()
    } catch (e) {
      const status =
        typeof (e as { status?: unknown }).status === 'number' ? (e as { status: number }).status : undefined
      throw new GitHubApiError(`${what}: ${status ? `HTTP ${status}: ` : ''}${(e as Error).message}`, status, {
        cause: e,
      })
    }
  }
  const comment = (c: {
    id: number
    body?: string
    html_url: string
    user?: { login?: string; type?: string } | null
  }): IssueComment => ({
    id: c.id,
    body: c.body ?? '',
    url: c.html_url,
    author: { login: c.user?.login ?? '', type: c.user?.type ?? '' },
  })
  return {
    createDeployment: (d) =>
      call('creating the deployment', async () => {
        const res = await octokit.rest.repos.createDeployment({
          ...repo,
          ref: d.ref,
          environment: d.environment,
          description: clip(d.description),
          payload: d.payload,
          // The workflow already decided to deploy this commit: no merging of the default branch and no
          // waiting for commit statuses, which GitHub would otherwise apply to the ref.
          auto_merge: false,
          required_contexts: [],
          request: request(),
        })
        if (!('id' in res.data))
          throw new Error(`GitHub did not create it: ${res.data.message ?? `HTTP ${res.status}`}`)
        return res.data.id
      }),
    setDeploymentStatus: (id, s) =>
      call(`setting deployment ${id} to ${s.state}`, async () => {
        await octokit.rest.repos.createDeploymentStatus({
          ...repo,
          deployment_id: id,
          state: s.state,
          description: clip(s.description),
          ...(s.logUrl ? { log_url: s.logUrl } : {}),
          ...(s.environmentUrl ? { environment_url: s.environmentUrl } : {}),
          auto_inactive: s.state === 'success',
          request: request(),
        })
      }),
    recentDeployments: (environment, count) =>
      call("listing the environment's deployments", async () => {
        const res = await octokit.rest.repos.listDeployments({
          ...repo,
          environment,
          per_page: count,
          request: request(),
        })
        return res.data.map((d) => d.id)
      }),
    latestDeploymentState: (id) =>
      call(`reading deployment ${id}'s status`, async () => {
        const res = await octokit.rest.repos.listDeploymentStatuses({
          ...repo,
          deployment_id: id,
          per_page: 1,
          request: request(),
        })
        return res.data[0]?.state
      }),
    comments: (issue) =>
      call(`reading the comments of #${issue}`, async () => {
        const all = await octokit.paginate(octokit.rest.issues.listComments, {
          ...repo,
          issue_number: issue,
          per_page: 100,
          request: request(),
        })
        return all.map(comment)
      }),
    createComment: (issue, body) =>
      call(`commenting on #${issue}`, async () =>
        comment(
          (await octokit.rest.issues.createComment({ ...repo, issue_number: issue, body, request: request() })).data,
        ),
      ),
    updateComment: (id, body) =>
      call(`updating comment ${id}`, async () =>
        comment((await octokit.rest.issues.updateComment({ ...repo, comment_id: id, body, request: request() })).data),
      ),
    whoAmI: () =>
      call("reading the token's user", async () => {
        try {
          return (await octokit.rest.users.getAuthenticated({ request: request() })).data.login
        } catch (e) {
          // GITHUB_TOKEN and app installation tokens are no user (403): their comments are by a bot. Any
          // other failure must not make the action take another bot's comment for its own.
          if ([401, 403, 404].includes((e as { status?: number }).status ?? 0)) return undefined
          throw e
        }
      }),
  }
}
