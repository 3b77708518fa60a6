// A local HTTP server answering the GitHub REST endpoints nginx-rollout calls, with GitHub's status codes
// and shapes, so the real Octokit client is tested without a network. It keeps what was written (like
// GitHub would) and every request it saw, and can refuse a group of endpoints as a token without the
// permission is refused. Every comment carries its author (`user`); GET /user answers as GitHub does for the
// token: a user's token gets its login, an Actions (installation) token is refused with 403.
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Deployment {
  id: number
  ref: string
  environment: string
  description: string
  payload: Record<string, string>
  statuses: Array<{
    state: string
    description: string
    log_url?: string
    environment_url?: string
    auto_inactive?: boolean
  }>
}

/** Who wrote a comment, as GitHub's `user` field shows it. */
export interface GitHubUser {
  login: string
  type: 'User' | 'Bot'
}

/** The identity of the workflow's GITHUB_TOKEN (an app installation token): not a user, writes as this bot. */
export const ACTIONS_BOT: GitHubUser = { login: 'github-actions[bot]', type: 'Bot' }

export interface Comment {
  id: number
  issue: number
  body: string
  /** The author; comments added without one were written by someone else ('octocat'). */
  user?: GitHubUser
}

export interface SeenRequest {
  method: string
  path: string
  authorization?: string
  body?: unknown
}

export interface FakeGitHub {
  /** GITHUB_API_URL for the client. */
  readonly url: string
  readonly token: string
  readonly deployments: Deployment[]
  readonly comments: Comment[]
  readonly requests: SeenRequest[]
  /** Endpoint groups answered 403 'Resource not accessible by integration', as for a token without the permission. */
  readonly forbidden: Set<'deployments' | 'comments'>
  /** Answer every request 500 (GitHub having a bad day). */
  failing: boolean
  /**
   * Who the token is. A 'User' (a personal access token) is answered on GET /user and writes comments as that
   * user; a 'Bot' (GITHUB_TOKEN, an app installation token, the default) is refused on GET /user with 403, as
   * GitHub does, and writes comments as that bot.
   */
  tokenUser: GitHubUser
  close(): Promise<void>
}

/** The author GitHub shows for a comment added to the fake without one. */
export const SOMEONE_ELSE: GitHubUser = { login: 'octocat', type: 'User' }

const PAGE = 30

export async function startFakeGitHub(
  owner = 'acme',
  repo = 'shop',
  token = 'ghs_test-token-0123456789',
): Promise<FakeGitHub> {
  const state = {
    deployments: [] as Deployment[],
    comments: [] as Comment[],
    requests: [] as SeenRequest[],
    forbidden: new Set<'deployments' | 'comments'>(),
    failing: false,
    tokenUser: ACTIONS_BOT,
  }
  let nextId = 1000
  const base = `/repos/${owner}/${repo}`
  const userJson = (u: GitHubUser) => ({ login: u.login, type: u.type })
  const commentJson = (c: Comment) => ({
    id: c.id,
    body: c.body,
    html_url: `https://github.com/${owner}/${repo}/pull/${c.issue}#issuecomment-${c.id}`,
    user: userJson(c.user ?? SOMEONE_ELSE),
  })

  const server = http.createServer((req, res) => {
    let raw = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => (raw += d))
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://localhost')
      const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined
      state.requests.push({
        method: req.method ?? '',
        path: url.pathname + url.search,
        authorization: req.headers.authorization,
        body,
      })
      const send = (status: number, data: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers })
        res.end(JSON.stringify(data))
      }
      const page = <T>(items: T[]): void => {
        const per = Number(url.searchParams.get('per_page') ?? PAGE)
        const n = Number(url.searchParams.get('page') ?? 1)
        const last = Math.max(1, Math.ceil(items.length / per))
        const link: Record<string, string> =
          n < last
            ? { link: `<http://${req.headers.host}${url.pathname}?per_page=${per}&page=${n + 1}>; rel="next"` }
            : {}
        send(200, items.slice((n - 1) * per, n * per), link)
      }
      if (req.headers.authorization !== `token ${token}`) return send(401, { message: 'Bad credentials' })
      if (state.failing) return send(500, { message: 'Server Error' })
      const path = url.pathname
      const group = path.includes('/deployments') ? 'deployments' : path.includes('/comments') ? 'comments' : undefined
      if (group && state.forbidden.has(group))
        return send(403, {
          message: 'Resource not accessible by integration',
          documentation_url: 'https://docs.github.com/rest',
          status: '403',
        })
      let m: RegExpExecArray | null
      if (req.method === 'GET' && path === '/user') {
        // An installation token is no user: GitHub refuses it here.
        if (state.tokenUser.type !== 'User')
          return send(403, {
            message: 'Resource not accessible by integration',
            documentation_url: 'https://docs.github.com/rest/users/users#get-the-authenticated-user',
            status: '403',
          })
        return send(200, { ...userJson(state.tokenUser), id: 1 })
      }
      if (req.method === 'POST' && path === `${base}/deployments`) {
        const b = body as { ref: string; environment: string; description: string; payload: Record<string, string> }
        const d: Deployment = {
          id: ++nextId,
          ref: b.ref,
          environment: b.environment,
          description: b.description,
          payload: b.payload,
          statuses: [],
        }
        state.deployments.push(d)
        return send(201, {
          id: d.id,
          ref: d.ref,
          environment: d.environment,
          description: d.description,
          payload: d.payload,
        })
      }
      if (req.method === 'GET' && path === `${base}/deployments`) {
        const env = url.searchParams.get('environment')
        return page(
          state.deployments
            .filter((d) => !env || d.environment === env)
            .reverse()
            .map(({ id, ref, environment }) => ({ id, ref, environment })),
        )
      }
      if ((m = new RegExp(`^${base}/deployments/(\\d+)/statuses$`).exec(path))) {
        const d = state.deployments.find((x) => x.id === Number(m![1]))
        if (!d) return send(404, { message: 'Not Found' })
        if (req.method === 'POST') {
          d.statuses.push(body as Deployment['statuses'][number])
          return send(201, { id: ++nextId, ...(body as object) })
        }
        return page([...d.statuses].reverse())
      }
      if ((m = new RegExp(`^${base}/issues/(\\d+)/comments$`).exec(path))) {
        const issue = Number(m[1])
        if (req.method === 'POST') {
          const c: Comment = {
            id: ++nextId,
            issue,
            body: (body as { body: string }).body,
            user: { ...state.tokenUser },
          }
          state.comments.push(c)
          return send(201, commentJson(c))
        }
        return page(state.comments.filter((c) => c.issue === issue).map(commentJson))
      }
      if (req.method === 'PATCH' && (m = new RegExp(`^${base}/issues/comments/(\\d+)$`).exec(path))) {
        const c = state.comments.find((x) => x.id === Number(m![1]))
        if (!c) return send(404, { message: 'Not Found' })
        c.body = (body as { body: string }).body
        return send(200, commentJson(c))
      }
      send(404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    deployments: state.deployments,
    comments: state.comments,
    requests: state.requests,
    forbidden: state.forbidden,
    get failing() {
      return state.failing
    },
    set failing(v: boolean) {
      state.failing = v
    },
    get tokenUser() {
      return state.tokenUser
    },
    set tokenUser(v: GitHubUser) {
      state.tokenUser = v
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        // The client keeps connections alive; close() alone would wait for them to idle out.
        server.closeAllConnections()
      }),
  }
}
