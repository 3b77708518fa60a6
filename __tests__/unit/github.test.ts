import { afterEach, beforeEach, describe, expect, it } from '@jest/globals'
import { octokitApi } from '../../src/github/api.js'
import { commentMarker, renderCanaryComment, type CanaryCommentView } from '../../src/github/comment.js'
import { deploymentTarget, finalStatus, type RunContext } from '../../src/github/deployment.js'
import { GitHubRecorder } from '../../src/github/report.js'
import type { CanaryState } from '../../src/host/state.js'
import { startFakeGitHub, type FakeGitHub } from '../github-server.js'
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
  replicas: ['shop-canary-1'],
  at: '2026-11-25T10:00:00.000Z',
  deployment: { repo: 'acme/shop', environment: 'production', id: 1001 },
}

describe('deploymentTarget', () => {
  it('records a deploy in the environment, for the commit a pull request pushed', () => {
    expect(deploymentTarget(configFrom({ environment: 'production', strategy: 'canary' }), prRun, undefined, 'shop:v2')).toEqual({
      kind: 'new',
      deployment: {
        ref: 'head7sha',
        environment: 'production',
        description: 'shop: canary deploy of shop:v2',
        payload: { app: 'shop', image: 'shop:v2', operation: 'deploy', strategy: 'canary' },
      },
    })
    expect(deploymentTarget(configFrom({ environment: 'production' }), run, undefined, 'shop:v2')).toMatchObject({ kind: 'new', deployment: { ref: 'merge0sha' } })
  })

  it('records nothing without an environment, for a dry run, for status, or outside a workflow run', () => {
    expect(deploymentTarget(configFrom(), run, undefined, 'shop:v2')).toEqual({ kind: 'none' })
    expect(deploymentTarget(configFrom({ environment: 'production', 'dry-run': 'true' }), run, undefined, 'shop:v2')).toEqual({ kind: 'none' })
    expect(deploymentTarget(configFrom({ environment: 'production', operation: 'status' }), run, undefined, '')).toEqual({ kind: 'none' })
    expect(deploymentTarget(configFrom({ environment: 'production' }), { ...run, repo: undefined }, undefined, 'shop:v2')).toEqual({ kind: 'none' })
  })

  it("lets promote and abort finish the canary's own deployment, even without the environment input", () => {
    for (const operation of ['promote', 'abort'])
      expect(deploymentTarget(configFrom({ operation }), run, pausedCanary, 'shop:v2')).toEqual({ kind: 'canary', id: 1001, environment: 'production' })
  })

  it('adds no deployment for an abort of a canary nobody recorded, nor takes over one of another repository', () => {
    expect(deploymentTarget(configFrom({ operation: 'abort', environment: 'production' }), run, { ...pausedCanary, deployment: undefined }, 'shop:v1')).toEqual({ kind: 'none' })
    const other = { ...pausedCanary, deployment: { repo: 'acme/other', environment: 'production', id: 5 } }
    expect(deploymentTarget(configFrom({ operation: 'promote', environment: 'production' }), run, other, 'shop:v2')).toMatchObject({ kind: 'new' })
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
  ] as const)('%s ending %s -> %s', (operation, result, state, description) => {
    expect(finalStatus({ ...facts, operation, result, canaryWeight: result === 'paused' ? '10' : '' })).toEqual({ state, description })
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
      { percent: 10, seconds: 60, verdict: 'pass', reason: 'within budget', canary: { requests: 1204, errors: 0, rate: 0 }, stable: { requests: 10833, errors: 2, rate: 0.0185 } },
    ],
    runUrl: 'https://github.com/acme/shop/actions/runs/42',
    at: '2026-11-25T10:00:00.000Z',
  }

  it('shows the state, the share, the counts against stable, and how to promote or abort', () => {
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
    expect(aborted).toContain('### Canary of `shop` on production: aborted\n\n`shop:v1` serves all requests again; the canary `shop:v2` is gone.')
    const failed = renderCanaryComment({ ...view, result: 'rolled-back', failure: 'canary step 10%: error rate 40.00% > 1%' })
    expect(failed).toContain('failed and removed')
    expect(failed).toContain('```\ncanary step 10%: error rate 40.00% > 1%\n```')
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
    ({ kind: 'new', deployment: { ref: 'abc123', environment, description: 'shop: rolling deploy of shop:v2', payload: { app: 'shop', image: 'shop:v2' } } }) as const

  beforeEach(async () => {
    gh = await startFakeGitHub()
    warnings = []
    recorder = new GitHubRecorder(octokitApi(gh.token, { owner: 'acme', repo: 'shop' }, gh.url), { info: () => {}, debug: () => {}, warning: (m) => warnings.push(m) }, links)
  })
  afterEach(async () => {
    await gh.close()
  })

  it('creates the deployment for the ref, marks it in progress with the run link, then success with the URL', async () => {
    const d = await recorder.begin(newDeployment(), 'shop: deploy shop:v2 in progress')
    expect(d).toEqual({ id: gh.deployments[0].id, environment: 'production' })
    await recorder.finish(d!, { state: 'success', description: 'shop:v2 serves all requests' })
    expect(gh.deployments).toHaveLength(1)
    expect(gh.deployments[0]).toMatchObject({ ref: 'abc123', environment: 'production', payload: { app: 'shop', image: 'shop:v2' } })
    expect(gh.deployments[0].statuses).toEqual([
      { state: 'in_progress', description: 'shop: deploy shop:v2 in progress', log_url: links.runUrl, environment_url: links.environmentUrl, auto_inactive: false },
      { state: 'success', description: 'shop:v2 serves all requests', log_url: links.runUrl, environment_url: links.environmentUrl, auto_inactive: true },
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
    expect([last(first.id), last(failed.id), last(staging.id), last(second.id)]).toEqual(['inactive', 'failure', 'success', 'success'])
    expect(gh.deployments.find((d) => d.id === first.id)!.statuses.at(-1)).toMatchObject({ description: `Superseded by deployment ${second.id}` })
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
    expect(gh.deployments[1].statuses.at(-1)).toEqual({ state: 'inactive', description: 'Canary aborted', log_url: links.runUrl, auto_inactive: false })
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
    await recorder.comment(7, commentMarker('shop', 'staging'), `${commentMarker('shop', 'staging')}\nother environment`)
    const mine = gh.comments.filter((c) => c.body.startsWith('<!-- nginx-rollout'))
    expect(mine.map((c) => c.body)).toEqual([`${marker}\nsecond`, `${commentMarker('shop', 'staging')}\nother environment`])
    expect(gh.comments.filter((c) => c.issue === 7)).toHaveLength(132)
    expect(warnings).toEqual([])
  })

  it('turns a refused comment into a warning naming pull-requests: write', async () => {
    gh.forbidden.add('comments')
    expect(await recorder.comment(7, 'm', 'm body')).toBeUndefined()
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain('`permissions: pull-requests: write`')
  })
})
