import { afterEach, beforeEach, describe, expect, it } from '@jest/globals'
import { LIMITS } from '../../src/config.js'
import { octokitApi } from '../../src/github/api.js'
import { commentMarker, renderCanaryComment, type CanaryCommentView } from '../../src/github/comment.js'
import { canaryPullRequest, deploymentTarget, finalStatus, type RunContext } from '../../src/github/deployment.js'
import { canaryLinks, recordOnGitHub } from '../../src/github/record.js'
import { GitHubRecorder } from '../../src/github/report.js'
import type { CanaryObservation } from '../../src/model.js'
import type { CanaryPush, CanaryState } from '../../src/host/state.js'
import type { RunEnd } from '../../src/run-end.js'
import { planFor } from '../../src/plan/index.js'
import { ACTIONS_BOT, startFakeGitHub, type FakeGitHub } from '../github-server.js'
import { container, hostState, replicaOf, routesTo } from './fakes.js'
import { configFrom } from './fixtures.js'

const run: RunContext = {
  repo: { owner: 'acme', repo: 'shop' },
  sha: 'merge0sha',
  eventName: 'push',
  runUrl: 'https://github.com/acme/shop/actions/runs/42',
  actor: 'alice',
  apiUrl: 'https://api.github.com',
}
const prRun: RunContext = { ...run, eventName: 'pull_request', pullRequest: { number: 7, headSha: 'head7sha' } }
const pausedCanary: CanaryState = {
  image: 'shop:v2',
  stableImage: 'shop:v1',
  weight: 10,
  remainingSteps: [100],
  replicas: [{ host: 'docker.example.com', name: 'shop-9203' }],
  at: '2026-11-25T10:00:00.000Z',
  deployment: { repo: 'acme/shop', environment: 'production', id: 1001 },
}

describe('deploymentTarget', () => {
  it('records a deploy in the environment, for the commit a pull request pushed', () => {
    expect(
      deploymentTarget(configFrom({ environment: 'production', strategy: 'canary' }), prRun, undefined, 'shop:v2'),
    ).toEqual({
      kind: 'new',
      deployment: {
        ref: 'head7sha',
        environment: 'production',
        description: 'shop: canary deploy of shop:v2',
        payload: { app: 'shop', image: 'shop:v2', operation: 'deploy', strategy: 'canary' },
      },
    })
    expect(deploymentTarget(configFrom({ environment: 'production' }), run, undefined, 'shop:v2')).toMatchObject({
      kind: 'new',
      deployment: { ref: 'merge0sha' },
    })
  })

  it('records nothing without an environment, for a dry run, for status, or outside a workflow run', () => {
    expect(deploymentTarget(configFrom(), run, undefined, 'shop:v2')).toEqual({ kind: 'none' })
    expect(
      deploymentTarget(configFrom({ environment: 'production', 'dry-run': 'true' }), run, undefined, 'shop:v2'),
    ).toEqual({ kind: 'none' })
    expect(
      deploymentTarget(configFrom({ environment: 'production', operation: 'status' }), run, undefined, ''),
    ).toEqual({ kind: 'none' })
    expect(
      deploymentTarget(configFrom({ environment: 'production' }), { ...run, repo: undefined }, undefined, 'shop:v2'),
    ).toEqual({ kind: 'none' })
  })

  it("lets promote and abort finish the canary's own deployment, even without the environment input", () => {
    for (const operation of ['promote', 'abort'])
      expect(deploymentTarget(configFrom({ operation }), run, pausedCanary, 'shop:v2')).toEqual({
        kind: 'canary',
        id: 1001,
        environment: 'production',
      })
  })

  it('adds no deployment for an abort of a canary nobody recorded, nor takes over one of another repository', () => {
    expect(
      deploymentTarget(
        configFrom({ operation: 'abort', environment: 'production' }),
        run,
        { ...pausedCanary, deployment: undefined },
        'shop:v1',
      ),
    ).toEqual({ kind: 'none' })
    const other = { ...pausedCanary, deployment: { repo: 'acme/other', environment: 'production', id: 5 } }
    expect(
      deploymentTarget(configFrom({ operation: 'promote', environment: 'production' }), run, other, 'shop:v2'),
    ).toMatchObject({ kind: 'new' })
  })
})

describe('the pull request of a canary', () => {
  it("is this run's pull request, or for a run without one the paused canary's of the same repository", () => {
    expect(canaryPullRequest(prRun, undefined)).toEqual({ repo: 'acme/shop', number: 7 })
    expect(canaryPullRequest(run, { ...pausedCanary, pullRequest: { repo: 'acme/shop', number: 5 } })).toEqual({
      repo: 'acme/shop',
      number: 5,
    })
    expect(canaryPullRequest(run, { ...pausedCanary, pullRequest: { repo: 'acme/other', number: 5 } })).toBeUndefined()
    expect(canaryPullRequest({ ...prRun, repo: undefined }, undefined)).toBeUndefined()
  })

  it('is kept with a paused canary, with the deployment the run recorded', () => {
    expect(canaryLinks(prRun, undefined, { id: 1002, environment: 'production' })).toEqual({
      deployment: { repo: 'acme/shop', environment: 'production', id: 1002 },
      pullRequest: { repo: 'acme/shop', number: 7 },
    })
    // A promote without a pull request that pauses again (inconclusive) keeps the canary's own.
    expect(canaryLinks(run, { ...pausedCanary, pullRequest: { repo: 'acme/shop', number: 7 } }, undefined)).toEqual({
      pullRequest: { repo: 'acme/shop', number: 7 },
    })
  })
})

describe('finalStatus', () => {
  const facts = { image: 'shop:v2', previousImage: 'shop:v1', canaryImage: 'shop:v2', canaryWeight: '' }
  it.each([
    ['deploy', 'deployed', 'success', 'shop:v2 serves all requests'],
    ['promote', 'deployed', 'success', 'Promoted shop:v2 to all requests'],
    ['deploy', 'paused', 'in_progress', 'Canary shop:v2 at 10% of requests: promote or abort it'],
    ['abort', 'rolled-back', 'inactive', 'Canary aborted: shop:v2 serves all requests'],
    ['rollback', 'rolled-back', 'success', 'Rolled back to shop:v2'],
    ['deploy', 'rolled-back', 'failure', 'Failed and rolled back: shop:v2 serves all requests'],
    ['deploy', 'failed', 'failure', 'Deploy failed: see the run log'],
    ['promote', 'failed', 'failure', 'promote failed: see the run log'],
    ['deploy', 'planned', 'failure', 'Deploy failed: see the run log'],
    ['promote', 'unchanged', 'inactive', 'Nothing to do'],
  ] as const)('%s ending %s -> %s', (operation, result, state, description) => {
    expect(finalStatus({ ...facts, operation, result, canaryWeight: result === 'paused' ? '10' : '' })).toEqual({
      state,
      description,
    })
  })
})

describe('renderCanaryComment', () => {
  const view: CanaryCommentView = {
    app: 'shop',
    where: 'production',
    operation: 'deploy',
    result: 'paused',
    canaryImage: 'shop:v2',
    stableImage: 'shop:v1',
    canaryWeight: '10',
    observations: [
      {
        percent: 10,
        seconds: 60,
        verdict: 'pass',
        reason: 'within budget',
        canary: { requests: 1204, errors: 0, rate: 0 },
        stable: { requests: 10833, errors: 2, rate: 0.0185 },
      },
    ],
    runUrl: 'https://github.com/acme/shop/actions/runs/42',
    at: '2026-11-25T10:00:00.000Z',
  }

  it("shows the state, the share, the counts against stable, the canary's chart, and how to promote or abort", () => {
    expect(renderCanaryComment(view)).toBe(
      [
        '<!-- nginx-rollout canary: shop @ production -->',
        '### Canary of `shop` on production: live at 10%',
        '',
        '`shop:v2` serves **10%** of requests; `shop:v1` (stable) serves the rest.',
        '',
        '| Step | Canary requests | Canary errors | Stable requests | Stable errors | Verdict |',
        '|---|---|---|---|---|---|',
        '| 10% for 60 s | 1,204 | 0 (0.00%) | 10,833 | 2 (0.02%) | pass |',
        '',
        '```mermaid',
        '%%{init: {"gantt":{"leftPadding":75,"tickInterval":"5second"}}}%%',
        'gantt',
        'dateFormat x',
        'axisFormat %s s',
        'todayMarker off',
        'section canary',
        'canary 10% for 60 s :active, 0, 60000',
        'canary 10% pass :milestone, 60000, 60000',
        '```',
        '',
        '**Promote** (all requests to the canary): run nginx-rollout with `operation: promote`; the example workflow does it when this pull request merges.',
        '**Abort** (remove the canary): run it with `operation: abort`; the example workflow does it when this pull request closes unmerged.',
        '',
        '<sub>Updated by [this run](https://github.com/acme/shop/actions/runs/42) at 2026-11-25T10:00:00.000Z · nginx-rollout</sub>',
        '',
      ].join('\n'),
    )
  })

  it('says what happened once the canary ends, without the promote and abort instructions', () => {
    const promoted = renderCanaryComment({ ...view, operation: 'promote', result: 'deployed', canaryWeight: '100' })
    expect(promoted).toContain('### Canary of `shop` on production: promoted\n\n`shop:v2` serves all requests.')
    expect(promoted).not.toContain('**Promote**')
    const aborted = renderCanaryComment({ ...view, operation: 'abort', result: 'rolled-back', canaryWeight: '0' })
    expect(aborted).toContain(
      '### Canary of `shop` on production: aborted\n\n`shop:v1` serves all requests again; the canary `shop:v2` is gone.',
    )
    const failed = renderCanaryComment({
      ...view,
      result: 'rolled-back',
      failure: 'canary step 10%: error rate 40.00% > 1%',
    })
    expect(failed).toContain('failed and removed')
    expect(failed).toContain('```\ncanary step 10%: error rate 40.00% > 1%\n```')
  })

  const observation = (percent: number, verdict: CanaryObservation['verdict']): CanaryObservation => ({
    percent,
    seconds: 60,
    verdict,
    reason:
      verdict === 'pass' ? 'within budget' : 'only 3 requests reached the canary (at least 50 are needed to judge)',
    canary: { requests: 3, errors: 0, rate: 0 },
    stable: { requests: 30, errors: 0, rate: 0 },
  })
  const pushes: CanaryPush[] = [
    {
      image: 'shop:pr-7-1',
      sha: 'abcdef0123456789',
      at: '2026-11-24T09:00:00.000Z',
      observations: [observation(10, 'inconclusive')],
      outcome: 'replaced',
    },
    { image: 'shop:pr-7-2', at: '2026-11-24T12:00:00.000Z', observations: [], outcome: 'replaced' },
  ]

  it("draws each step of the canary's share with its verdict, and no chart before any step was judged", () => {
    const quiet = { ...observation(50, 'inconclusive'), seconds: 30 }
    expect(renderCanaryComment({ ...view, observations: [...view.observations, quiet] })).toContain(
      [
        'section canary',
        'canary 10% for 60 s :active, 0, 60000',
        'canary 10% pass :milestone, 60000, 60000',
        'canary 50% for 30 s :active, 60000, 90000',
        'canary 50% inconclusive :active, milestone, 90000, 90000',
        '```',
      ].join('\n'),
    )
    expect(renderCanaryComment({ ...view, observations: [] })).not.toContain('```mermaid')
  })

  it('says a cancelled run left nginx consistent, and ends the pushes with it', () => {
    const cancelled = renderCanaryComment({ ...view, result: 'cancelled', pushes })
    expect(cancelled).toContain(
      '### Canary of `shop` on production: deploy cancelled\n\n' +
        'The run was cancelled and left nginx in one consistent state: check what is live with `operation: status`.',
    )
    expect(cancelled).toContain('| `shop:v2` (this run) | 10% pass | cancelled |\n')
    expect(cancelled).not.toContain('**Promote**')
  })

  it("lists the pull request's earlier pushes with their verdicts, oldest first, and this run's canary last", () => {
    const body = renderCanaryComment({ ...view, pushes })
    expect(body).toContain(
      [
        'canary 10% pass :milestone, 60000, 60000',
        '```',
        '',
        '**Pushes**',
        '',
        '| Canary | Steps | Outcome |',
        '|---|---|---|',
        '| `shop:pr-7-1` (abcdef0) | 10% inconclusive | replaced |',
        '| `shop:pr-7-2` | not judged | replaced |',
        '| `shop:v2` (this run) | 10% pass | live |',
        '',
        '**Promote** (all requests to the canary)',
      ].join('\n'),
    )
    expect(renderCanaryComment(view)).not.toContain('**Pushes**')
  })

  it.each([
    ['promote', 'deployed', 'promoted'],
    ['abort', 'rolled-back', 'aborted'],
    ['deploy', 'rolled-back', 'failed'],
    ['deploy', 'failed', 'failed'],
  ] as const)("ends the pushes with this run's outcome: %s ending %s shows %s", (operation, result, outcome) => {
    expect(renderCanaryComment({ ...view, operation, result, pushes })).toContain(
      `| \`shop:v2\` (this run) | 10% pass | ${outcome} |\n`,
    )
  })

  it(`shows only the last ${LIMITS.canaryPushesShown} pushes`, () => {
    const many = Array.from({ length: LIMITS.canaryPushesShown + 2 }, (_, i): CanaryPush => ({
      image: `shop:pr-7-${i + 1}`,
      at: 't',
      observations: [],
      outcome: 'replaced',
    }))
    const body = renderCanaryComment({ ...view, pushes: many })
    expect(body).not.toContain('`shop:pr-7-2`')
    expect(body).toContain('| `shop:pr-7-3` | not judged | replaced |')
    expect(body.match(/\| replaced \|/g)).toHaveLength(LIMITS.canaryPushesShown)
  })

  it('starts with a marker that tells apps and environments apart', () => {
    expect(renderCanaryComment(view).startsWith(commentMarker('shop', 'production'))).toBe(true)
    expect(commentMarker('shop', 'production')).not.toBe(commentMarker('shop', 'staging'))
    expect(commentMarker('shop', 'a-->b')).not.toContain('-->b')
  })
})

describe('GitHubRecorder against a local GitHub API', () => {
  let gh: FakeGitHub
  let warnings: string[]
  let recorder: GitHubRecorder
  const links = { runUrl: 'https://github.com/acme/shop/actions/runs/42', environmentUrl: 'https://shop.example.com' }
  const newDeployment = (environment = 'production') =>
    ({
      kind: 'new',
      deployment: {
        ref: 'abc123',
        environment,
        description: 'shop: rolling deploy of shop:v2',
        payload: { app: 'shop', image: 'shop:v2' },
      },
    }) as const

  beforeEach(async () => {
    gh = await startFakeGitHub()
    warnings = []
    recorder = new GitHubRecorder(
      octokitApi(gh.token, { owner: 'acme', repo: 'shop' }, gh.url),
      { info: () => {}, debug: () => {}, warning: (m) => warnings.push(m) },
      links,
    )
  })
  afterEach(async () => {
    await gh.close()
  })

  it('creates the deployment for the ref, marks it in progress with the run link, then success with the URL', async () => {
    const d = await recorder.begin(newDeployment(), 'shop: deploy shop:v2 in progress')
    expect(d).toEqual({ id: gh.deployments[0].id, environment: 'production' })
    await recorder.finish(d!, { state: 'success', description: 'shop:v2 serves all requests' })
    expect(gh.deployments).toHaveLength(1)
    expect(gh.deployments[0]).toMatchObject({
      ref: 'abc123',
      environment: 'production',
      payload: { app: 'shop', image: 'shop:v2' },
    })
    expect(gh.deployments[0].statuses).toEqual([
      {
        state: 'in_progress',
        description: 'shop: deploy shop:v2 in progress',
        log_url: links.runUrl,
        environment_url: links.environmentUrl,
        auto_inactive: false,
      },
      {
        state: 'success',
        description: 'shop:v2 serves all requests',
        log_url: links.runUrl,
        environment_url: links.environmentUrl,
        auto_inactive: true,
      },
    ])
    const create = gh.requests.find((r) => r.method === 'POST' && r.path.endsWith('/deployments'))
    expect(create?.body).toMatchObject({ auto_merge: false, required_contexts: [] })
    expect(gh.requests.every((r) => r.authorization === `token ${gh.token}`)).toBe(true)
    expect(warnings).toEqual([])
  })

  it("marks the environment's earlier active deployment inactive after a success, and leaves the rest", async () => {
    const first = (await recorder.begin(newDeployment(), 'v1'))!
    await recorder.finish(first, { state: 'success', description: 'v1 live' })
    const failed = (await recorder.begin(newDeployment(), 'v1.1'))!
    await recorder.finish(failed, { state: 'failure', description: 'v1.1 failed' })
    const staging = (await recorder.begin(newDeployment('staging'), 'staging'))!
    await recorder.finish(staging, { state: 'success', description: 'staging live' })
    const second = (await recorder.begin(newDeployment(), 'v2'))!
    await recorder.finish(second, { state: 'success', description: 'v2 live' })
    const last = (id: number) => gh.deployments.find((d) => d.id === id)!.statuses.at(-1)!.state
    expect([last(first.id), last(failed.id), last(staging.id), last(second.id)]).toEqual([
      'inactive',
      'failure',
      'success',
      'success',
    ])
    expect(gh.deployments.find((d) => d.id === first.id)!.statuses.at(-1)).toMatchObject({
      description: `Superseded by deployment ${second.id}`,
    })
  })

  it("finishes a canary's own deployment instead of adding one; an aborted canary leaves the earlier one active", async () => {
    const stable = (await recorder.begin(newDeployment(), 'v1'))!
    await recorder.finish(stable, { state: 'success', description: 'v1 live' })
    const canary = (await recorder.begin(newDeployment(), 'canary'))!
    await recorder.finish(canary, { state: 'in_progress', description: 'Canary shop:v2 at 10%' })
    const continued = await recorder.begin({ kind: 'canary', id: canary.id, environment: 'production' }, 'abort')
    expect(continued).toEqual(canary)
    await recorder.finish(continued!, { state: 'inactive', description: 'Canary aborted' })
    expect(gh.deployments).toHaveLength(2)
    expect(gh.deployments[1].statuses.at(-1)).toEqual({
      state: 'inactive',
      description: 'Canary aborted',
      log_url: links.runUrl,
      auto_inactive: false,
    })
    expect(gh.deployments[0].statuses.at(-1)?.state).toBe('success')
  })

  it('turns a refused deployment into a warning naming the permission, and never throws', async () => {
    gh.forbidden.add('deployments')
    expect(await recorder.begin(newDeployment(), 'x')).toBeUndefined()
    await recorder.finish({ id: 1, environment: 'production' }, { state: 'success', description: 'x' })
    expect(warnings).toHaveLength(2)
    for (const w of warnings) {
      expect(w).toContain('HTTP 403')
      expect(w).toContain('Resource not accessible by integration')
      expect(w).toContain('`permissions: deployments: write`')
      expect(w).toContain('The deploy itself is not affected.')
    }
    expect(recorder.notes).toHaveLength(2)
  })

  it('warns without a permission hint when GitHub fails for another reason', async () => {
    gh.failing = true
    expect(await recorder.begin(newDeployment(), 'x')).toBeUndefined()
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain('HTTP 500')
    expect(warnings[0]).not.toContain('permissions:')
  })

  it('posts one comment and updates that same comment later, past a page of other comments', async () => {
    for (let i = 0; i < 130; i++) gh.comments.push({ id: i + 1, issue: 7, body: `comment ${i}` })
    const marker = commentMarker('shop', 'production')
    const url = await recorder.comment(7, marker, `${marker}\nfirst`)
    expect(url).toMatch(/^https:\/\/github\.com\/acme\/shop\/pull\/7#issuecomment-\d+$/)
    await recorder.comment(7, marker, `${marker}\nsecond`)
    await recorder.comment(
      7,
      commentMarker('shop', 'staging'),
      `${commentMarker('shop', 'staging')}\nother environment`,
    )
    const mine = gh.comments.filter((c) => c.body.startsWith('<!-- nginx-rollout'))
    expect(mine.map((c) => c.body)).toEqual([
      `${marker}\nsecond`,
      `${commentMarker('shop', 'staging')}\nother environment`,
    ])
    expect(gh.comments.filter((c) => c.issue === 7)).toHaveLength(132)
    expect(warnings).toEqual([])
  })

  it("updates only a marker comment its token's user wrote, and creates its own beside one someone else wrote", async () => {
    gh.tokenUser = { login: 'deploy-bot-user', type: 'User' }
    const marker = commentMarker('shop', 'production')
    gh.comments.push(
      { id: 1, issue: 7, body: `${marker}\nforged by a reviewer`, user: { login: 'mallory', type: 'User' } },
      { id: 2, issue: 7, body: `${marker}\nwritten by another bot`, user: ACTIONS_BOT },
    )
    await recorder.comment(7, marker, `${marker}\nfirst`)
    await recorder.comment(7, marker, `${marker}\nsecond`)
    expect(gh.comments.map((c) => [c.id, c.user?.login, c.body])).toEqual([
      [1, 'mallory', `${marker}\nforged by a reviewer`],
      [2, 'github-actions[bot]', `${marker}\nwritten by another bot`],
      [gh.comments[2].id, 'deploy-bot-user', `${marker}\nsecond`],
    ])
    expect(gh.requests.filter((r) => r.path === '/user')).toHaveLength(2)
    expect(warnings).toEqual([])
  })

  it("with an Actions token (GET /user refused), takes a bot's marker comment as its own and never a user's", async () => {
    const marker = commentMarker('shop', 'production')
    gh.comments.push({
      id: 1,
      issue: 7,
      body: `${marker}\nforged by a reviewer`,
      user: { login: 'mallory', type: 'User' },
    })
    await recorder.comment(7, marker, `${marker}\nfirst`)
    await recorder.comment(7, marker, `${marker}\nsecond`)
    expect(gh.comments.map((c) => [c.user?.login, c.body])).toEqual([
      ['mallory', `${marker}\nforged by a reviewer`],
      ['github-actions[bot]', `${marker}\nsecond`],
    ])
    expect(gh.requests.find((r) => r.path === '/user')).toMatchObject({ method: 'GET' })
    expect(recorder.notes).toEqual([
      `Pull request #7: [comment](https://github.com/acme/shop/pull/7#issuecomment-${gh.comments[1].id}) created.`,
      `Pull request #7: [comment](https://github.com/acme/shop/pull/7#issuecomment-${gh.comments[1].id}) updated.`,
    ])
    expect(warnings).toEqual([])
  })

  it("marks a replaced canary's deployment inactive, with the run link and no environment URL", async () => {
    const d = (await recorder.begin(newDeployment(), 'canary'))!
    await recorder.deactivate(d, 'Replaced by shop:v3 from a new push')
    expect(gh.deployments[0].statuses.at(-1)).toEqual({
      state: 'inactive',
      description: 'Replaced by shop:v3 from a new push',
      log_url: links.runUrl,
      auto_inactive: false,
    })
    expect(recorder.notes).toEqual([
      `Deployment ${d.id} in environment **production**: \`inactive\`, Replaced by shop:v3 from a new push.`,
    ])
    gh.forbidden.add('deployments')
    await recorder.deactivate(d, 'again')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(
      new RegExp(
        `^Setting GitHub deployment ${d.id} inactive failed \\(.*HTTP 403.*\\)\\. The workflow's token needs \`permissions: deployments: write\``,
      ),
    )
  })

  it('turns a refused comment into a warning naming pull-requests: write', async () => {
    gh.forbidden.add('comments')
    expect(await recorder.comment(7, 'm', 'm body')).toBeUndefined()
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain('`permissions: pull-requests: write`')
  })
})

describe("recordOnGitHub for a new push that replaces the pull request's canary", () => {
  let gh: FakeGitHub
  let warnings: string[]
  let recorder: GitHubRecorder
  const runUrl = 'https://github.com/acme/shop/actions/runs/43'
  const pushRun: RunContext = { ...prRun, pullRequest: { number: 7, headSha: 'b2b2b2b2b2b2' }, runUrl }
  const config = configFrom({
    strategy: 'canary',
    image: 'shop:v3',
    'canary-steps': '10',
    environment: 'production',
    'github-token': 'ghs_test-token-0123456789',
  })
  const marker = commentMarker('shop', 'production')
  const obs = (verdict: CanaryObservation['verdict'], requests: number): CanaryObservation => ({
    percent: 10,
    seconds: 60,
    verdict,
    reason: 'r',
    canary: { requests, errors: 0, rate: 0 },
    stable: { requests: 10 * requests, errors: 0, rate: 0 },
  })
  const stable = [container(9201), container(9202)]
  const oldCanary = container(9203, 'shop:v2')
  const earlierPush: CanaryPush = {
    image: 'shop:v1b',
    sha: 'a0a0a0a0a0a0',
    at: '2026-11-24T09:00:00.000Z',
    observations: [obs('inconclusive', 3)],
    outcome: 'replaced',
  }

  /** The previous push's run: its deployment in progress and its comment, as that run left them. */
  async function previousPush() {
    const d = (await recorder.begin(
      {
        kind: 'new',
        deployment: {
          ref: 'a1a1a1a1a1a1',
          environment: 'production',
          description: 'shop: canary deploy of shop:v2',
          payload: {},
        },
      },
      'x',
    ))!
    await recorder.finish(d, {
      state: 'in_progress',
      description: 'Canary shop:v2 at 10% of requests: promote or abort it',
    })
    await recorder.comment(7, marker, `${marker}\nthe previous push's comment`)
    const before: CanaryState = {
      image: 'shop:v2',
      stableImage: 'shop:v1',
      weight: 10,
      remainingSteps: [],
      replicas: [{ host: oldCanary.host, name: oldCanary.name }],
      at: '2026-11-25T10:00:00.000Z',
      sha: 'a1a1a1a1a1a1',
      observations: [obs('pass', 120)],
      deployment: { repo: 'acme/shop', environment: 'production', id: d.id },
      pullRequest: { repo: 'acme/shop', number: 7 },
      pushes: [earlierPush],
    }
    const state = hostState([...stable, oldCanary], routesTo(...stable, oldCanary), { canary: before })
    const plan = planFor(config, state, { repo: 'acme/shop', number: 7 })
    const deployment = (await recorder.begin(
      {
        kind: 'new',
        deployment: {
          ref: 'b2b2b2b2b2b2',
          environment: 'production',
          description: 'shop: canary deploy of shop:v3',
          payload: {},
        },
      },
      'x',
    ))!
    return { before, state, plan, old: d, deployment }
  }

  beforeEach(async () => {
    gh = await startFakeGitHub()
    warnings = []
    recorder = new GitHubRecorder(
      octokitApi(gh.token, { owner: 'acme', repo: 'shop' }, gh.url),
      { info: () => {}, debug: () => {}, warning: (m) => warnings.push(m) },
      { runUrl },
    )
  })
  afterEach(async () => {
    await gh.close()
  })

  it("retires the old canary's deployment, leaves the new one in progress, and rewrites the one comment with every push", async () => {
    const { before, state, plan, old, deployment } = await previousPush()
    const judged = [obs('pass', 90)]
    const after: CanaryState = {
      ...before,
      image: 'shop:v3',
      sha: 'b2b2b2b2b2b2',
      replicas: [{ host: 'docker.example.com', name: 'shop-9204' }],
      observations: judged,
      deployment: { repo: 'acme/shop', environment: 'production', id: deployment.id },
      pushes: [
        earlierPush,
        {
          image: 'shop:v2',
          sha: 'a1a1a1a1a1a1',
          at: before.at,
          observations: before.observations!,
          outcome: 'replaced',
        },
      ],
    }
    const end: RunEnd = {
      result: 'paused',
      plan,
      state,
      canaryWeight: '10',
      canaryAfter: after,
      serving: plan.next,
      configDiff: '',
      deployment,
    }
    await recordOnGitHub(recorder, config, pushRun, end, judged, { liveImage: 'shop:v1', previousImage: 'shop:v1' }, [])

    const last = (id: number) => gh.deployments.find((d) => d.id === id)!.statuses.at(-1)
    expect(last(old.id)).toEqual({
      state: 'inactive',
      description: 'Replaced by shop:v3 from a new push',
      log_url: runUrl,
      auto_inactive: false,
    })
    expect(last(deployment.id)).toEqual({
      state: 'in_progress',
      description: 'Canary shop:v3 at 10% of requests: promote or abort it',
      log_url: runUrl,
      auto_inactive: false,
    })
    expect(gh.comments).toHaveLength(1)
    expect(gh.requests.filter((r) => r.method === 'PATCH')).toHaveLength(1)
    const body = gh.comments[0].body
    expect(
      body.startsWith(
        `${marker}\n### Canary of \`shop\` on production: live at 10%\n\n\`shop:v3\` serves **10%** of requests; \`shop:v1\` (stable) serves the rest.\n`,
      ),
    ).toBe(true)
    expect(body).toContain(
      [
        '| Canary | Steps | Outcome |',
        '|---|---|---|',
        '| `shop:v1b` (a0a0a0a) | 10% inconclusive | replaced |',
        '| `shop:v2` (a1a1a1a) | 10% pass | replaced |',
        '| `shop:v3` (this run) | 10% pass | live |',
      ].join('\n'),
    )
    // This run's own step only, not the replaced canary's.
    expect(body).toContain('| 10% for 60 s | 90 | 0 (0.00%) | 900 | 0 (0.00%) | pass |')
    expect(body).not.toContain('| 10% for 60 s | 120 |')
    expect(warnings).toEqual([])
  })

  // A replacement that failed before its swap and was rolled back keeps the old canary live (planUndo says
  // 'kept'; the canary record is left as it was): the old canary's deployment still describes what is live.
  it("leaves the old canary's deployment alone when the replacement was rolled back before the swap", async () => {
    const { state, plan, old, deployment } = await previousPush()
    const end: RunEnd = {
      result: 'rolled-back',
      plan,
      state,
      canaryWeight: '10',
      serving: state.containers.map(replicaOf),
      configDiff: '',
      deployment,
      failure: 'shop-9204 did not become healthy within 60.0s',
    }
    await recordOnGitHub(recorder, config, pushRun, end, [], { liveImage: 'shop:v1', previousImage: 'shop:v1' }, [])
    expect(gh.deployments.find((d) => d.id === old.id)!.statuses.at(-1)?.state).toBe('in_progress')
  })
})
