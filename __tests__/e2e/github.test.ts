// The GitHub side, end to end: dist/index.js run as the runner runs it (GITHUB_* variables, the event
// payload file), deploying on the local test host, and talking to a local server that answers the GitHub
// REST endpoints the action uses. No network.
import { jest } from '@jest/globals'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLoad } from '../../scripts/lib/load.mjs'
import { startFakeGitHub, type FakeGitHub } from '../github-server.js'
import { baseInputs, docker, replicasOf, resetApp, runAction, stateDir, testHost } from './harness.js'

jest.setTimeout(240_000)

const APP = 'e2e-github'
const PORT = 18088
const host = testHost()
const image = (tag: string) => `nginx-rollout-test/app:${tag}`
/** The comment's hidden state: base64 JSON of the app and the environment, under a version word. */
const markerOf = (where: string) =>
  `<!-- nginx-rollout canary-state v1 ${Buffer.from(JSON.stringify({ app: APP, where })).toString('base64')} -->`
const MARKER = markerOf('production')

let gh: FakeGitHub
let events: string

/** The environment of a workflow run of acme/shop for an event, as the runner sets it. */
function workflowEnv(eventName: string, payload: object, sha: string): Record<string, string> {
  const eventPath = join(events, `${eventName}-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(eventPath, JSON.stringify(payload))
  return {
    GITHUB_API_URL: gh.url,
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_REPOSITORY: 'acme/shop',
    GITHUB_RUN_ID: '4242',
    GITHUB_SHA: sha,
    GITHUB_EVENT_NAME: eventName,
    GITHUB_EVENT_PATH: eventPath,
  }
}

const pullRequest = (action: string, merged = false, head = 'head7') => ({
  action,
  number: 7,
  pull_request: { number: 7, merged, head: { sha: head } },
})

const inputs = (over: Record<string, string> = {}) => ({
  ...baseInputs(host, APP, PORT),
  replicas: '2',
  ports: '9381-9390',
  'github-token': gh.token,
  environment: 'production',
  'environment-url': 'https://shop.example.com',
  ...over,
})

const states = (d: { statuses: Array<{ state: string }> }) => d.statuses.map((s) => s.state)

beforeAll(async () => {
  resetApp(APP)
  events = mkdtempSync(join(tmpdir(), 'nr-events-'))
})
beforeEach(async () => {
  gh = await startFakeGitHub()
})
afterEach(() => gh.close())
afterAll(() => {
  resetApp(APP)
  rmSync(events, { recursive: true, force: true })
})

describe('GitHub deployments and the pull-request comment', () => {
  it('follow a canary from a pull request to its promotion: one deployment per rollout, one comment, zero failed requests', async () => {
    const first = await runAction(inputs({ image: image('v1') }), {
      env: workflowEnv('push', { ref: 'refs/heads/main' }, 'main1'),
    })
    expect(first.code).toBe(0)
    expect(first.outputs.result).toBe('deployed')
    expect(gh.deployments).toHaveLength(1)
    expect(gh.deployments[0]).toMatchObject({
      ref: 'main1',
      environment: 'production',
      payload: { app: APP, image: image('v1'), strategy: 'rolling' },
    })
    expect(gh.deployments[0].statuses).toEqual([
      expect.objectContaining({
        state: 'in_progress',
        log_url: 'https://github.com/acme/shop/actions/runs/4242',
        environment_url: 'https://shop.example.com',
      }),
      expect.objectContaining({
        state: 'success',
        description: `${image('v1')} serves all requests`,
        environment_url: 'https://shop.example.com',
      }),
    ])
    expect(gh.comments).toEqual([]) // a rolling deploy on push has no pull request to comment on

    const load = startLoad({ port: PORT, maxSeconds: 120 })
    const canary = await runAction(
      inputs({ image: image('v2'), strategy: 'canary', 'canary-steps': '10', 'canary-interval': '3' }),
      {
        env: workflowEnv('pull_request', pullRequest('synchronize'), 'merge7'),
      },
    )
    expect(canary.outputs).toMatchObject({ result: 'paused', 'canary-weight': '10' })
    expect(gh.deployments).toHaveLength(2)
    const canaryDeployment = gh.deployments[1]
    // The commit the pull request pushed, not the merge commit the run checked out.
    expect(canaryDeployment.ref).toBe('head7')
    expect(states(canaryDeployment)).toEqual(['in_progress', 'in_progress'])
    expect(canaryDeployment.statuses[1]).toMatchObject({
      description: `Canary ${image('v2')} at 10% of requests: promote or abort it`,
    })
    expect(states(gh.deployments[0])).toEqual(['in_progress', 'success'])
    expect(gh.comments).toHaveLength(1)
    expect(gh.comments[0]).toMatchObject({ issue: 7 })
    expect(gh.comments[0].body.startsWith(`${MARKER}\n### Canary of \`${APP}\` on production: live at 10%`)).toBe(true)
    expect(gh.comments[0].body).toMatch(
      /\| 10% for 3\ss \| [\d,]+ \| 0 \(0\.00%\) \| [\d,]+ \| 0 \(0\.00%\) \| (pass|\*\*inconclusive\*\*)/,
    )
    expect(gh.comments[0].body).toContain('`operation: promote`')
    // The canary remembers its deployment and pull request on the host, for the run that ends it.
    expect(JSON.parse(readFileSync(join(stateDir(APP), 'canary.json'), 'utf8'))).toMatchObject({
      deployment: { repo: 'acme/shop', environment: 'production', id: canaryDeployment.id },
      pullRequest: { repo: 'acme/shop', number: 7 },
    })

    // A status run lists the canary and records nothing.
    const requestsBefore = gh.requests.length
    const status = await runAction(inputs({ operation: 'status' }), {
      env: workflowEnv('pull_request', pullRequest('synchronize'), 'merge7a'),
    })
    expect(status.outputs.result).toBe('paused')
    expect(status.outputs.replicas).toContain(`"image":"${image('v2')}"`)
    expect(gh.requests.length).toBe(requestsBefore)

    // The second push of the same pull request replaces its canary in one run.
    const secondPush = await runAction(
      inputs({ image: image('v3'), strategy: 'canary', 'canary-steps': '10', 'canary-interval': '3' }),
      {
        env: workflowEnv('pull_request', pullRequest('synchronize', false, 'head7b'), 'merge7b'),
      },
    )
    expect(secondPush.outputs).toMatchObject({ result: 'paused', 'canary-weight': '10' })
    expect(secondPush.log).toContain(`note: replaces the canary of ${image('v2')}`)
    // One reload gives the new canary its share and takes the old one out; then the old one drains and goes.
    const steps = secondPush.log.split('\n').filter((l) => /^\[\d+\/\d+\] /.test(l))
    expect(steps.slice(2, 5).map((l) => l.replace(/^\[\d+\/\d+\] /, '').split(':')[0])).toEqual([
      'route 10% to canary e2e-github-9384 (weights 2',
      'drain e2e-github-9383 (until idle, at most 1s)',
      'retire e2e-github-9383 (stop and remove on the host, in the background)',
    ])
    expect(gh.deployments).toHaveLength(3)
    const secondCanary = gh.deployments[2]
    expect(secondCanary.ref).toBe('head7b')
    expect(states(secondCanary)).toEqual(['in_progress', 'in_progress'])
    expect(states(canaryDeployment)).toEqual(['in_progress', 'in_progress', 'inactive'])
    expect(canaryDeployment.statuses.at(-1)).toMatchObject({
      description: `Replaced by ${image('v3')} from a new push`,
    })
    expect(gh.comments).toHaveLength(1)
    expect(gh.comments[0].body).toContain('**Pushes**')
    expect(gh.comments[0].body).toMatch(
      new RegExp(
        `\\| \`${image('v2').replace(/[.\/]/g, '\\$&')}\` \\(head7\\) \\| 10% (pass|inconclusive) \\| replaced \\|`,
      ),
    )
    expect(gh.comments[0].body).toMatch(
      new RegExp(
        `\\| \`${image('v3').replace(/[.\/]/g, '\\$&')}\` \\(this run\\) \\| 10% (pass|inconclusive) \\| live \\|`,
      ),
    )

    // Another pull request's push is refused while #7's canary is live: nothing changes.
    const containersBefore = replicasOf(APP)
    const other = await runAction(
      inputs({ image: image('v4'), strategy: 'canary', 'canary-steps': '10', 'canary-interval': '3' }),
      {
        env: workflowEnv(
          'pull_request',
          { action: 'synchronize', number: 8, pull_request: { number: 8, merged: false, head: { sha: 'head8' } } },
          'merge8',
        ),
      },
    )
    expect(other.code).toBe(1)
    expect(other.log).toContain(`a canary of ${image('v3')} is live at 10% for pull request #7`)
    expect(other.log).toContain('its workflow does either when pull request #7 is merged or closed')
    expect(replicasOf(APP).filter((r) => r.includes(' running'))).toEqual(
      containersBefore.filter((r) => r.includes(' running')),
    )

    // Merging #7 promotes its canary: the second canary's deployment succeeds; still one comment.
    const promote = await runAction(
      inputs({ operation: 'promote', strategy: 'canary', environment: '', 'environment-url': '' }),
      {
        env: workflowEnv('pull_request', pullRequest('closed', true, 'head7b'), 'merge7c'),
      },
    )
    const report = await load.stop()
    expect(promote.outputs).toMatchObject({ result: 'deployed', 'canary-weight': '100', image: image('v3') })
    expect(report.failed).toBe(0)
    expect(report.ok).toBeGreaterThan(100)
    expect(gh.deployments).toHaveLength(3)
    expect(states(secondCanary)).toEqual(['in_progress', 'in_progress', 'in_progress', 'success'])
    expect(secondCanary.statuses.at(-1)).toMatchObject({
      state: 'success',
      description: `Promoted ${image('v3')} to all requests`,
    })
    expect(states(gh.deployments[0])).toEqual(['in_progress', 'success', 'inactive'])
    expect(states(canaryDeployment)).toEqual(['in_progress', 'in_progress', 'inactive'])
    expect(gh.comments).toHaveLength(1)
    expect(gh.comments[0].body).toContain(
      `### Canary of \`${APP}\` on production: promoted\n\n\`${image('v3')}\` serves all requests.`,
    )
    expect(gh.comments[0].body).toMatch(/\| `[^`]+:v3` \(this run\) \| 10% \w+ \| promoted \|/)

    // Closing #8 unmerged: its canary is not live, so there is nothing to abort, and that is no failure.
    const closeOther = await runAction(inputs({ operation: 'abort', strategy: 'canary' }), {
      env: workflowEnv(
        'pull_request',
        { action: 'closed', number: 8, pull_request: { number: 8, merged: false, head: { sha: 'head8' } } },
        'merge8b',
      ),
    })
    expect(closeOther.code).toBe(0)
    expect(closeOther.outputs.result).toBe('unchanged')
    expect(closeOther.log).toContain(`::notice::no canary of ${APP} is live for pull request #8: nothing to abort`)

    // The token is masked before anything else is printed, and never printed.
    for (const run of [first, canary, secondPush, promote]) {
      expect(run.stdout.indexOf(`::add-mask::${gh.token}`)).toBeLessThan(run.stdout.indexOf('::group::'))
      expect(
        run.stdout
          .split('\n')
          .filter((l) => !l.startsWith('::add-mask::'))
          .join('\n'),
      ).not.toContain(gh.token)
      expect(run.summary).not.toContain(gh.token)
    }
    expect(promote.summary).toContain('### GitHub')
    expect(promote.summary).toMatch(/Deployment \d+ in environment \*\*production\*\*: `success`/)
    expect(gh.requests.every((r) => r.authorization === `token ${gh.token}`)).toBe(true)
  })

  it('turn into warnings naming the permissions when the token may not write, and never fail the deploy', async () => {
    gh.forbidden.add('deployments')
    gh.forbidden.add('comments')
    const paused = await runAction(
      inputs({ image: image('v4'), strategy: 'canary', 'canary-steps': '10', 'canary-interval': '2' }),
      {
        env: workflowEnv('pull_request', pullRequest('opened'), 'merge7c'),
      },
    )
    expect(paused.code).toBe(0)
    expect(paused.outputs.result).toBe('paused')
    expect(paused.log).toMatch(
      /::warning::Recording the GitHub deployment failed \(creating the deployment: HTTP 403: Resource not accessible by integration.*`permissions: deployments: write`/,
    )
    expect(paused.log).toMatch(
      /::warning::Commenting on pull request #7 failed \(.*HTTP 403.*`permissions: pull-requests: write`.*The deploy itself is not affected\./,
    )

    const aborted = await runAction(inputs({ operation: 'abort', strategy: 'canary' }), {
      env: workflowEnv('pull_request', pullRequest('closed'), 'merge7d'),
    })
    expect(aborted.code).toBe(0)
    expect(aborted.outputs).toMatchObject({ result: 'rolled-back', 'canary-weight': '0', image: image('v3') })
    expect(aborted.log).toContain('`permissions: pull-requests: write`')
    expect(gh.deployments).toEqual([])
  })

  it('record a failed deploy as failure, and the job still fails for it', async () => {
    const failed = await runAction(inputs({ image: image('unhealthy'), 'health-timeout': '3' }), {
      env: workflowEnv('push', {}, 'main2'),
    })
    expect(failed.code).not.toBe(0)
    expect(failed.outputs.result).toBe('rolled-back')
    expect(gh.deployments).toHaveLength(1)
    expect(gh.deployments[0].statuses.at(-1)).toEqual({
      state: 'failure',
      description: `Failed and rolled back: ${image('v3')} serves all requests`,
      log_url: 'https://github.com/acme/shop/actions/runs/4242',
      auto_inactive: false,
    })
    expect(gh.comments).toEqual([])
  })

  it('record nothing for a dry run or a deploy nobody asked to record', async () => {
    const dry = await runAction(inputs({ image: image('v3'), strategy: 'canary', 'dry-run': 'true' }), {
      env: workflowEnv('pull_request', pullRequest('synchronize'), 'merge7e'),
    })
    expect(dry.outputs.result).toBe('planned')
    const unrecorded = await runAction(inputs({ image: image('v3'), environment: '', 'environment-url': '' }), {
      env: workflowEnv('push', {}, 'main3'),
    })
    expect(unrecorded.outputs.result).toBe('deployed')
    expect(gh.requests).toEqual([])
    // Another suite's tampered or impostor containers (trust.test.ts, hardening.test.ts) may be on the shared
    // host right now: a warning that passes over another app's container is not about this run.
    const warnings = unrecorded.log
      .split('\n')
      .filter((l) => l.includes('::warning::') && !new RegExp(`container "(?!${APP}-)`).test(l))
    expect(warnings).toEqual([])
  })
})

describe('an environment full of markup (built from a branch name)', () => {
  const ENVIRONMENT = 'x --> <img src=x> # heading'

  it('is plain text in the comment, whose state the next push reads back, and in the job summary', async () => {
    const canary = (tag: string, head: string) =>
      runAction(
        inputs({
          image: image(tag),
          strategy: 'canary',
          'canary-steps': '10',
          'canary-interval': '1',
          environment: ENVIRONMENT,
          'environment-url': '',
        }),
        { env: workflowEnv('pull_request', pullRequest('synchronize', false, head), `merge-${head}`) },
      )
    const first = await canary('v2', 'head9')
    expect(first.outputs.result).toBe('paused')
    expect(gh.comments).toHaveLength(1)
    const id = gh.comments[0].id
    const second = await canary('v4', 'head9b')
    expect(second.outputs.result).toBe('paused')
    // The second push found the first one's comment by its state, and rewrote it.
    expect(gh.comments.map((c) => c.id)).toEqual([id])
    const body = gh.comments[0].body
    expect(body.split('\n').slice(0, 2)).toEqual([
      markerOf(ENVIRONMENT),
      `### Canary of \`${APP}\` on x --&gt; &lt;img src=x&gt; \\# heading: live at 10%`,
    ])
    expect(body).toContain('**Pushes**')
    for (const text of [body, first.summary, second.summary]) {
      expect(text).not.toContain('<img')
      expect(text).not.toMatch(/^#+ heading/m)
    }
    expect(second.summary).toContain('in environment **x --&gt; &lt;img src=x&gt; \\# heading**')
    expect(second.log).not.toContain('is passed over')

    const abort = await runAction(
      inputs({ operation: 'abort', strategy: 'canary', environment: '', 'environment-url': '' }),
      {
        env: workflowEnv('pull_request', pullRequest('closed', false, 'head9b'), 'merge-head9c'),
      },
    )
    expect(abort.outputs.result).toBe('rolled-back')
    expect(gh.comments.map((c) => c.id)).toEqual([id])
    expect(gh.comments[0].body).toContain('aborted')
  })
})

describe('a canary record the hosts no longer agree with', () => {
  /** Pauses a canary of `tag`, then removes its containers as a wiped or rebuilt host would have. */
  async function pauseThenLose(tag: string): Promise<string[]> {
    const paused = await runAction(
      inputs({
        image: image(tag),
        strategy: 'canary',
        'canary-steps': '10',
        'canary-interval': '1',
        environment: '',
        'environment-url': '',
      }),
    )
    expect(paused.outputs.result).toBe('paused')
    const canary: string[] = JSON.parse(readFileSync(join(stateDir(APP), 'canary.json'), 'utf8')).replicas.map(
      (r: { name: string }) => r.name,
    )
    docker('rm', '--force', ...canary)
    return canary
  }
  const stale = (tag: string, name: string) =>
    `::warning::the recorded canary of ${image(tag)} at 10% is stale: ${name} on 127.0.0.1:${host.port} is not running or not routed by nginx`

  it('is reported and cleared: a deploy goes on with zero failed requests; abort reports it and clears it; status reports it and changes nothing, the next deploy clears it', async () => {
    expect(
      (await runAction(inputs({ image: image('v1'), environment: '', 'environment-url': '' }))).outputs.result,
    ).toBe('deployed')
    const [lost] = await pauseThenLose('v2')
    const load = startLoad({ port: PORT, maxSeconds: 60 })
    const deploy = await runAction(inputs({ image: image('v3'), environment: '', 'environment-url': '' }))
    const report = await load.stop()
    expect(deploy.outputs.result).toBe('deployed')
    expect(deploy.log).toContain(stale('v2', lost))
    expect(report.failed).toBe(0)
    expect(report.lastVersion).toBe('v3')
    expect(existsSync(join(stateDir(APP), 'canary.json'))).toBe(false)

    const [again] = await pauseThenLose('v4')
    const abort = await runAction(inputs({ operation: 'abort', environment: '', 'environment-url': '' }))
    expect({ code: abort.code, result: abort.outputs.result }).toEqual({ code: 0, result: 'unchanged' })
    expect(abort.log).toContain(stale('v4', again))
    expect(existsSync(join(stateDir(APP), 'canary.json'))).toBe(false)

    const [third] = await pauseThenLose('v2')
    const status = await runAction(inputs({ operation: 'status', environment: '', 'environment-url': '' }))
    expect(status.outputs.result).not.toBe('paused')
    expect(status.log).toContain(stale('v2', third))
    // A status takes no lock, so it writes nothing: the record stays until the next run that takes the lock.
    expect(existsSync(join(stateDir(APP), 'canary.json'))).toBe(true)
    const next = await runAction(inputs({ image: image('v4'), environment: '', 'environment-url': '' }))
    expect(next.outputs.result).toBe('deployed')
    expect(next.log).toContain(stale('v2', third))
    expect(existsSync(join(stateDir(APP), 'canary.json'))).toBe(false)
  })
})
