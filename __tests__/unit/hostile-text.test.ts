// Text from outside (an environment built from a branch name, a host's background-stop report) in the
// pull-request comment and the job summary: plain text there, and the comment's hidden state survives it.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals'
import { octokitApi } from '../../src/github/api.js'
import {
  commentMarker,
  isCommentOf,
  legacyCommentMarker,
  readCommentState,
  renderCanaryComment,
  type CanaryCommentView,
} from '../../src/github/comment.js'
import { GitHubRecorder } from '../../src/github/report.js'
import { renderSummary, type RunRecord } from '../../src/summary.js'
import { ACTIONS_BOT, startFakeGitHub, type FakeGitHub } from '../github-server.js'
import { HOSTILE_ENVIRONMENT, HOSTILE_REPORT } from './hostile.js'

const key = { app: 'shop', where: HOSTILE_ENVIRONMENT }
const view: CanaryCommentView = {
  app: 'shop',
  where: HOSTILE_ENVIRONMENT,
  operation: 'deploy',
  result: 'failed',
  canaryImage: 'shop:v2',
  stableImage: 'shop:v1',
  canaryWeight: '10',
  observations: [
    {
      percent: 10,
      seconds: 60,
      verdict: 'fail',
      reason: HOSTILE_REPORT,
      canary: { requests: 10, errors: 5, rate: 50 },
      stable: { requests: 90, errors: 0, rate: 0 },
    },
  ],
  failure: HOSTILE_REPORT,
  runUrl: 'https://github.com/acme/shop/actions/runs/42',
  at: '2026-11-25T10:00:00.000Z',
}

/** The lines outside fenced code blocks (inside one, nothing is read as markdown or HTML). */
function outsideCode(markdown: string): string[] {
  let fence = ''
  return markdown.split('\n').filter((line) => {
    const ticks = /^(`{3,})/.exec(line)?.[1]
    if (!fence && ticks) return !(fence = ticks)
    if (fence && ticks && ticks.length >= fence.length && line.trim() === ticks) return (fence = '') !== ''
    return !fence
  })
}

/** Raw HTML a line holds other than the tags this code writes itself. */
const foreignHtml = (line: string) => line.replace(/<\/?(br|sub|details|summary)( open)?>/g, '').match(/<[^ ]/g)

describe('the canary comment with an environment and host text full of markup', () => {
  const body = renderCanaryComment(view)

  it('shows them as plain text', () => {
    expect(body.split('\n').slice(1, 4)).toEqual([
      '### Canary of `shop` on x --&gt; &lt;img src=x&gt; \\# heading: deploy failed',
      '',
      'The run failed before it finished: check what is live with `operation: status`.',
    ])
    expect(body).toContain(
      '| **fail**: &lt;/details&gt;<br>&lt;script&gt;alert(1)&lt;/script&gt;<br>\\# heading<br>!\\[x\\](y) |',
    )
    expect(body).toContain(`**What failed:**\n\n\`\`\`\n${HOSTILE_REPORT}\n\`\`\``)
    for (const line of outsideCode(body).slice(1)) expect([line, foreignHtml(line)]).toEqual([line, null])
  })

  it('keeps its hidden state whole, and reads it back', () => {
    const first = body.split('\n')[0]
    expect(first).toBe(
      '<!-- nginx-rollout canary-state v1 eyJhcHAiOiJzaG9wIiwid2hlcmUiOiJ4IC0tPiA8aW1nIHNyYz14PiAjIGhlYWRpbmcifQ== -->',
    )
    // The comment ends only where it is meant to: at the end of its first line.
    expect(body.indexOf('-->')).toBe(first.length - 3)
    expect(readCommentState(body)).toEqual({ kind: 'key', key })
    expect(isCommentOf(body, key)).toBe(true)
    expect(isCommentOf(body, { app: 'shop', where: 'x' })).toBe(false)
  })

  it('reads back nothing from a state that is not its own, with the reason', () => {
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64')
    expect(readCommentState('<!-- nginx-rollout canary-state v1 !!! -->')).toEqual({
      kind: 'unreadable',
      why: 'the hidden state line is not one this version writes',
    })
    expect(readCommentState(`<!-- nginx-rollout canary-state v9 ${b64(key)} -->`)).toEqual({
      kind: 'unreadable',
      why: 'state version "v9" is unknown',
    })
    expect(readCommentState('<!-- nginx-rollout canary-state v1 bm90IGpzb24= -->')).toEqual({
      kind: 'unreadable',
      why: 'the hidden state is not base64 JSON',
    })
    for (const wrong of [{ app: 'Shop!', where: 'x' }, { app: 'shop', where: 'a\nb' }, { ...key, extra: 1 }, [1]])
      expect(readCommentState(`<!-- nginx-rollout canary-state v1 ${b64(wrong)} -->`)).toEqual({
        kind: 'unreadable',
        why: 'the hidden state is not {app, where} with an app name and a one-line environment',
      })
    expect(readCommentState('a comment\n<!-- nginx-rollout canary-state v1 x -->')).toEqual({ kind: 'none' })
  })
})

describe('GitHubRecorder and the hidden state', () => {
  let gh: FakeGitHub
  let warnings: string[]
  let recorder: GitHubRecorder

  beforeEach(async () => {
    gh = await startFakeGitHub()
    warnings = []
    recorder = new GitHubRecorder(
      octokitApi(gh.token, { owner: 'acme', repo: 'shop' }, gh.url),
      { info: () => {}, debug: () => {}, warning: (m) => warnings.push(m) },
      {},
    )
  })
  afterEach(() => gh.close())

  it('finds its comment again by a state that markup in the environment cannot break', async () => {
    await recorder.comment(7, key, renderCanaryComment(view))
    await recorder.comment(7, key, renderCanaryComment({ ...view, result: 'unchanged' }))
    expect(gh.comments).toHaveLength(1)
    expect(gh.comments[0].body).toContain('on x --&gt; &lt;img src=x&gt; \\# heading: unchanged')
    expect(warnings).toEqual([])
  })

  it('takes over a comment in the form earlier versions wrote, and rewrites it in the new one', async () => {
    const production = { app: 'shop', where: 'production' }
    gh.comments.push({ id: 1, issue: 7, body: `${legacyCommentMarker(production)}\nold`, user: ACTIONS_BOT })
    expect(gh.comments[0].body.startsWith('<!-- nginx-rollout canary: shop @ production -->\n')).toBe(true)
    await recorder.comment(7, production, `${commentMarker(production)}\nnew`)
    expect(gh.comments.map((c) => [c.id, c.body])).toEqual([[1, `${commentMarker(production)}\nnew`]])
  })

  it('passes over its own comment whose state does not read, with a warning, and writes a new one', async () => {
    gh.comments.push({ id: 1, issue: 7, body: '<!-- nginx-rollout canary-state v1 @@ -->\nbroken', user: ACTIONS_BOT })
    await recorder.comment(7, key, renderCanaryComment(view))
    expect(gh.comments.map((c) => c.id)).toEqual([1, gh.comments[1].id])
    expect(gh.comments[0].body).toBe('<!-- nginx-rollout canary-state v1 @@ -->\nbroken')
    expect(warnings).toEqual([
      'pull request #7: comment 1 is passed over: the hidden state line is not one this version writes',
    ])
  })
})

describe('the job summary with an environment and host text full of markup', () => {
  it('shows them as plain text: the notes, the GitHub records and the evidence', async () => {
    const gh = await startFakeGitHub()
    try {
      const recorder = new GitHubRecorder(
        octokitApi(gh.token, { owner: 'acme', repo: 'shop' }, gh.url),
        { info: () => {}, debug: () => {}, warning: () => {} },
        {},
      )
      const d = await recorder.begin(
        { kind: 'new', deployment: { ref: 'a', environment: HOSTILE_ENVIRONMENT, description: 'd', payload: {} } },
        'x',
      )
      await recorder.finish(d!, { state: 'success', description: 'shop:v2 serves all requests' })
      const record: RunRecord = {
        app: 'shop',
        hosts: ['docker.example.com'],
        nginxHost: 'docker.example.com',
        strategy: 'rolling',
        result: 'deployed',
        image: 'shop:v2',
        previousImage: 'shop:v1',
        durationSeconds: 9,
        dryRun: false,
        plan: [],
        steps: [],
        gates: [],
        configPath: '/etc/nginx/conf.d/shop.conf',
        configDiff: '',
        notes: [`an earlier run's background stop on docker.example.com failed: ${HOSTILE_REPORT}`],
        evidence: [{ subject: '<b>shop-9201</b>', reason: HOSTILE_REPORT, logs: HOSTILE_REPORT }],
        github: recorder.notes,
      }
      const summary = renderSummary(record)
      expect(summary.split('\n').slice(4)).toEqual([
        "> an earlier run's background stop on docker.example.com failed: &lt;/details&gt;",
        '> &lt;script&gt;alert(1)&lt;/script&gt;',
        '> \\# heading',
        '> !\\[x\\](y)',
        '',
        '### GitHub',
        '',
        `- Deployment ${d!.id} in environment **x --&gt; &lt;img src=x&gt; \\# heading**: \`success\`, shop:v2 serves all requests.`,
        '',
        'nginx serves the same file as before the run (/etc/nginx/conf.d/shop.conf).',
        '',
        '<details open><summary>&lt;b&gt;shop-9201&lt;/b&gt;: last log lines</summary>',
        '',
        '&lt;/details&gt;<br>&lt;script&gt;alert(1)&lt;/script&gt;<br>\\# heading<br>!\\[x\\](y)',
        '',
        '```',
        HOSTILE_REPORT.split('\n')[0],
        ...HOSTILE_REPORT.split('\n').slice(1),
        '```',
        '',
        '</details>',
        '',
      ])
      for (const line of outsideCode(summary)) expect([line, foreignHtml(line)]).toEqual([line, null])
    } finally {
      await gh.close()
    }
  })
})
