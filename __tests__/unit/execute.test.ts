import { describe, expect, it } from '@jest/globals'
import type { Config } from '../../src/config.js'
import { render, type Command } from '../../src/commands/shell.js'
import { StepFailure } from '../../src/health/gate.js'
import { Executor } from '../../src/run/executor.js'
import { retireDir } from '../../src/host/read.js'
import type { ManagedContainer } from '../../src/host/state.js'
import { Journal } from '../../src/journal.js'
import type { Replica } from '../../src/model.js'
import { Nginx, NginxError, sha256, type NginxState } from '../../src/nginx/nginx.js'
import { renderManagedFile } from '../../src/nginx/template.js'
import { splitFor } from '../../src/plan/canary.js'
import { planUndo } from '../../src/plan/rollback.js'
import { planRolling } from '../../src/plan/rolling.js'
import { describeStep, type Step } from '../../src/plan/types.js'
import type { Phase } from '../../src/journal.js'
import { LockLostError } from '../../src/remote/lock.js'
import type { ExecResult, HttpResult } from '../../src/remote/ssh.js'
import {
  container,
  deferred,
  fakeFleet,
  FakeLock,
  FakeNginxHost,
  FakeRemote,
  HEALTHY_DOCKER,
  HELD_SESSION,
  HOST,
  idOf,
  nginxServing,
  recordingLogger,
  replica,
  replicaOf,
  routesTo,
  sleep,
  startedId,
  THREE_HOSTS,
  type Probe,
  type Rule,
} from './fakes.js'
import { configFrom, recordLine } from './fixtures.js'

const FENCE = { lockDir: '.nginx-rollout/shop/lock', token: 'token-of-this-run' }

interface Setup {
  config?: Config
  /** The app's containers as read (their ids name them in commands). */
  containers?: ManagedContainer[]
  /** What nginx routes to when the run starts. */
  previous?: Replica[]
  nginxState?: NginxState
  /** Rules of the single host (nginx and app), before the healthy defaults. */
  rules?: Rule[]
  probe?: (p: Probe) => HttpResult | Promise<HttpResult>
  /** Several hosts: the app hosts' remotes (nginx then runs on its own host, `nginx`). */
  apps?: Record<string, FakeRemote>
  nginx?: FakeNginxHost
}

/** An executor over fake hosts: by default one host running nginx and shop-9201 (shop:v1), which nginx routes to. */
function setup(s: Setup = {}) {
  const config = s.config ?? configFrom({ 'drain-seconds': '5' })
  const containers = s.containers ?? [container(9201)]
  const previous = s.previous ?? containers.map(replicaOf)
  const host = s.nginx ?? new FakeNginxHost(s.apps ? 'lb' : HOST, s.rules ?? [], s.probe)
  const fleet = fakeFleet(config, host, s.apps ?? { [HOST]: host })
  const nginx = new Nginx(host, config, s.nginxState ?? nginxServing(config, previous), FENCE)
  const lock = new FakeLock()
  const journal = new Journal()
  const log = recordingLogger()
  const ex = new Executor(fleet, nginx, config, lock.asHeldLock, journal, log, containers, previous)
  return { config, host, nginx, lock, journal, log, ex, previous, before: nginx.liveText }
}

/**
 * Runs the steps; a run that did not complete rejects, as a caller of the old throwing API saw it: with the
 * failed step's error, or with the judgement's reason (judged: a verdict that the new version must go).
 */
async function runAll(ex: Executor, steps: readonly Step[], phase: Phase, image: string): Promise<void> {
  const outcome = await ex.run(steps, phase, image)
  await ex.quiesce()
  if (outcome.kind === 'completed') return
  if (outcome.kind === 'failed')
    throw outcome.error ?? Object.assign(new Error(outcome.reason), { judged: outcome.judged })
  if (outcome.kind === 'cancelled') throw Object.assign(new Error(outcome.reason), { cancelled: true })
  throw Object.assign(new Error(outcome.reason), { inconclusive: outcome.percent })
}

const v2 = replica(9202)
const outcomes = (j: Journal) => j.steps.map((s) => [s.description, s.outcome])
/** The first two words of each command sent (docker stop, sh -c...); docker create for a replica's start. */
const verbs = (r: FakeRemote) =>
  r.commands.map((c) =>
    c.argv[4] === 'docker' && c.argv[5] === 'create' ? 'docker create' : c.argv.slice(0, 2).join(' '),
  )

describe('Executor: nginx changes', () => {
  it('installs the rendered file for the route, and knows it took effect when nginx serves its config id', async () => {
    const { ex, host, nginx, journal, config, previous } = setup()
    await runAll(
      ex,
      [
        { kind: 'start', replicas: [v2] },
        { kind: 'route', servers: [v2] },
      ],
      'deploy',
      'shop:v2',
    )
    const { text, configId } = renderManagedFile(config, [v2], undefined, { keepaliveMinTimeout: false })
    expect(host.installed).toEqual([text])
    // The probe names the id it expects: the location answers no one else.
    expect(host.probes).toEqual([
      { host: '127.0.0.1', port: 80, path: '/.nginx-rollout/shop/config-id', asks: configId },
    ])
    expect(journal.steps[1]).toMatchObject({
      description: 'route traffic to shop-9202 (one nginx reload)',
      outcome: 'ok',
      detail: `nginx serves config ${configId}`,
      hosts: [HOST],
      allTrafficNew: true,
    })
    expect(nginx.liveText).toBe(text)
    expect(ex.progress.serving).toEqual([v2])
    expect(ex.snapshot()).toEqual({
      started: [v2],
      routed: [v2],
      stopped: [],
      retired: [],
      configNow: text,
      configBefore: renderManagedFile(config, previous, undefined, { keepaliveMinTimeout: false }).text,
    })
  })

  describe('the session held for nginx changes while a version is judged', () => {
    const judgedRoute = (previous: Replica[]): Step[] => [
      { kind: 'start', replicas: [v2] },
      { kind: 'route', servers: [v2], judged: { backup: previous } },
    ]
    const sessionsOf = (host: FakeRemote) => host.followed.filter((f) => HELD_SESSION.test(render(f.command)))
    const inSession = (c: Command) => HELD_SESSION.test(render(c))

    it('is held once a judged route comes, its change goes through it, and the switch back sends requests back first', async () => {
      const { ex, host, nginx, previous, before } = setup()
      await runAll(ex, judgedRoute(previous), 'deploy', 'shop:v2')
      const live = nginx.liveText!
      expect(sessionsOf(host)).toHaveLength(1)
      const [session] = sessionsOf(host)
      expect(session.stopped).toBe(false)
      // The route's change: the word names the hash of the file live then.
      expect(session.words).toEqual([`go ${sha256(before!)}`])
      expect(host.installed.at(-1)).toBe(live)
      const applied = host.applies.length
      await runAll(ex, [{ kind: 'restore-config', text: before, servers: previous }], 'rollback', 'shop:v2')
      expect(session.words).toEqual([`go ${sha256(before!)}`, 'switch', `go ${sha256(live)}`])
      expect(host.installed.at(-1)).toBe(before)
      expect(nginx.liveText).toBe(before)
      // No command of its own started for either change.
      expect(host.applies.slice(applied).map(inSession)).toEqual([true])
    })

    it('changes as a command of its own once the session ended (a deadline, the connection)', async () => {
      const { ex, host, nginx, previous, before } = setup()
      await runAll(ex, judgedRoute(previous), 'deploy', 'shop:v2')
      sessionsOf(host)[0].end(124, '')
      await new Promise((r) => setTimeout(r, 0))
      const applied = host.applies.length
      await runAll(ex, [{ kind: 'restore-config', text: before, servers: previous }], 'rollback', 'shop:v2')
      expect(sessionsOf(host)[0].words).toEqual([`go ${sha256(before!)}`])
      expect(host.applies.slice(applied).map(inSession)).toEqual([false])
      expect(nginx.liveText).toBe(before)
    })

    it('is held again at the next judged route once it ended', async () => {
      const { ex, host, previous, before } = setup()
      await runAll(ex, judgedRoute(previous), 'deploy', 'shop:v2')
      sessionsOf(host)[0].end(255, '')
      await new Promise((r) => setTimeout(r, 0))
      const live = host.installed.at(-1)!
      await runAll(ex, [{ kind: 'route', servers: previous, judged: { backup: [] } }], 'deploy', 'shop:v2')
      expect(sessionsOf(host).map((f) => f.words)).toEqual([[`go ${sha256(before!)}`], [`go ${sha256(live)}`]])
    })

    it('is released at the run end: nothing changes', async () => {
      const { ex, host, nginx, previous } = setup()
      await runAll(ex, judgedRoute(previous), 'deploy', 'shop:v2')
      const live = nginx.liveText
      const installed = host.installed.length
      await nginx.releaseHeld()
      expect(sessionsOf(host).map((f) => f.stopped)).toEqual([true])
      expect(host.installed).toHaveLength(installed)
      expect(nginx.liveText).toBe(live)
    })

    // The record on, then a route that leaves the old version serving beside (no wait for its baseline).
    const recordThenRoute = (previous: Replica[]): Step[] => [
      { kind: 'record', servers: previous },
      { kind: 'start', replicas: [v2] },
      { kind: 'route', servers: [...previous, v2], judged: { backup: [] } },
    ]

    it('is held, and the record followed, before any step once the run knows it will judge (prepareJudging)', async () => {
      const { ex, host, nginx, previous, before } = setup()
      nginx.prepareJudging(before)
      expect(host.followed.map((f) => inSession(f.command))).toEqual([true, false])
      expect(host.applies).toEqual([])
      await runAll(ex, recordThenRoute(previous), 'deploy', 'shop:v2')
      // The record's step read the follow already started, and its reload went through the held session.
      expect(host.followed.map((f) => inSession(f.command))).toEqual([true, false])
      expect(sessionsOf(host)[0].words).toHaveLength(2)
      expect(host.applies.map(inSession)).toEqual([true, true])
    })

    it('turns the record on only once its follow emptied it: nothing nginx writes is missed', async () => {
      const { ex, host, nginx, previous, before } = setup()
      const emptied = deferred<void>()
      host.recordEmptied = emptied.promise
      nginx.prepareJudging(before)
      const run = runAll(ex, recordThenRoute(previous), 'deploy', 'shop:v2')
      await sleep(30)
      expect(host.installed).toEqual([])
      emptied.resolve()
      await run
      expect(host.installed).toHaveLength(2)
    })

    it('releases a session and a follow that no step used (a run that stopped before its steps)', async () => {
      const { host, nginx, before } = setup()
      nginx.prepareJudging(before)
      await nginx.releaseHeld()
      expect(host.followed.map((f) => f.stopped)).toEqual([true, true])
      expect(host.commands).toEqual([])
    })

    it('starts nothing before the steps for a stopped nginx: the record step boots it first', async () => {
      const { config, previous } = setup()
      const { host, nginx } = setup({ nginxState: { ...nginxServing(config, previous), masterPid: undefined } })
      nginx.prepareJudging(undefined)
      expect(host.followed).toEqual([])
    })

    it('is not held for a route that is not judged; where there was no file before, nothing is a switch back', async () => {
      const plain = setup()
      await runAll(
        plain.ex,
        [
          { kind: 'start', replicas: [v2] },
          { kind: 'route', servers: [v2] },
        ],
        'deploy',
        'shop:v2',
      )
      expect(sessionsOf(plain.host)).toEqual([])
      const first = setup({ nginxState: { ...nginxServing(configFrom({}), []), managed: { kind: 'absent' } } })
      await runAll(first.ex, judgedRoute([]), 'deploy', 'shop:v2')
      // The first file goes through it too (no file live, the word says so), and no change is a switch back.
      expect(sessionsOf(first.host).flatMap((f) => f.words)).toEqual([`go absent`])
    })
  })

  it('leaves serving unchanged when nginx -t rejects the new file, quoting nginx, with its log as evidence', async () => {
    const nginxSaid =
      'nginx: [emerg] unknown directive "bogus" in /etc/nginx/conf.d/shop.conf:3\nnginx: configuration file /etc/nginx/nginx.conf test failed'
    const { ex, host, nginx, journal, before, previous } = setup({
      rules: [
        [
          /^docker logs --tail 20 -- loadbalancer$/,
          { stderr: '2026/11/25 10:00:00 [emerg] 1#1: unknown directive "bogus"\n' },
        ],
      ],
    })
    host.applyCode = 11
    host.applyStderr = `${nginxSaid}\n`
    const message = `nginx -t rejected the configuration with the new file (the previous file is back, nginx was not reloaded). nginx said:\n${nginxSaid}`
    const run = runAll(ex, [{ kind: 'route', servers: [v2] }], 'deploy', 'shop:v2')
    await expect(run).rejects.toThrow(NginxError)
    await expect(run).rejects.toThrow(message)
    // The apply script stops at nginx -t (exit 11): sent once, no retry, no reload to verify.
    expect(host.applies).toHaveLength(1)
    expect(host.probes).toEqual([])
    expect(nginx.liveText).toBe(before)
    expect(ex.progress.serving).toEqual(previous)
    expect(ex.snapshot()).toMatchObject({ routed: [], configNow: before, configBefore: before })
    expect(outcomes(journal)).toEqual([['route traffic to shop-9202 (one nginx reload)', 'failed']])
    expect(journal.evidence).toEqual([
      {
        subject: `nginx container loadbalancer on ${HOST}`,
        reason: message,
        logs: '2026/11/25 10:00:00 [emerg] 1#1: unknown directive "bogus"',
      },
    ])
  })

  it('records when all traffic reached the new image: the end of the last route that left only it', async () => {
    const { ex, journal } = setup({
      probe: async (p) => (await sleep(p.port === 9202 ? 30 : 0), { status: 200, ms: 1 }),
    })
    const mixed: Step = { kind: 'route', servers: [replica(9201, 'shop:v1'), v2] }
    const onlyNew: Step = { kind: 'route', servers: [v2] }
    // A drain whose recheck of shop-9202 takes 30 ms: neither a route nor all traffic on the new image.
    const slowDrain: Step = { kind: 'drain', seconds: 5, replicas: [replica(9201, 'shop:v1')], recheck: [v2] }
    expect(journal.trafficSwitchedAtMs).toBeUndefined()
    await runAll(ex, [mixed, slowDrain, onlyNew, slowDrain], 'deploy', 'shop:v2')
    expect(journal.steps.map((s) => s.allTrafficNew)).toEqual([false, false, true, false])
    expect(journal.trafficSwitchedAtMs).toBe(journal.steps[2].endedAtMs)
    expect(journal.steps[2].endedAtMs).toBeGreaterThanOrEqual(journal.steps[0].endedAtMs + 25)
    // A rollback's route back is not the new version arriving.
    await runAll(ex, [mixed, slowDrain, onlyNew], 'rollback', 'shop:v2')
    expect(journal.trafficSwitchedAtMs).toBe(journal.steps[2].endedAtMs)
  })
})

describe('Executor: the deploy lock', () => {
  const canary = replica(9202)
  const log = [
    ...Array(60).fill(recordLine('127.0.0.1:9202', '200').trimEnd()),
    ...Array(60).fill(recordLine('127.0.0.1:9201', '200').trimEnd()),
  ].join('\n')
  it('stops before any step that changes a host once the lock is lost, but still lets gate, observe and drain run', async () => {
    const { ex, lock, host, journal } = setup({
      config: configFrom({ strategy: 'canary', 'drain-seconds': '5' }),
    })
    host.followText = `${log}\n`
    lock.lose()
    const split = splitFor(10, [canary], 1)
    const steps: Step[] = [
      { kind: 'gate', replicas: [canary] },
      { kind: 'observe', seconds: 0.05, split, stable: [replica(9201, 'shop:v1')] },
      { kind: 'drain', seconds: 5, replicas: [replica(9201, 'shop:v1')] },
      { kind: 'start', replicas: [replica(9203)] },
      { kind: 'route', servers: [canary] },
    ]
    const run = runAll(ex, steps, 'deploy', 'shop:v2')
    await expect(run).rejects.toThrow(LockLostError)
    expect(outcomes(journal)).toEqual([
      ['health gate shop-9202', 'ok'],
      ['observe the canary at 10% for 0.05s', 'ok'],
      ['drain shop-9201 (until idle, at most 5s)', 'ok'],
      ['start shop-9203 (:9203) from shop:v2', 'failed'],
    ])
    expect(journal.steps[3].detail).toBe(
      "the deploy lock of shop is no longer this run's (another run took it over); stopped before changing anything more",
    )
    expect(journal.canarySteps).toEqual([
      expect.objectContaining({ verdict: 'pass', percent: 10, canary: { requests: 60, errors: 0, rate: 0 } }),
    ])
    expect(host.texts.some((t) => t.includes(' docker create '))).toBe(false)
    expect(host.applies).toEqual([])
    expect(lock.checks).toBe(1)
  })

  it('refuses a route, a retire and a remove alike once the lock is lost', async () => {
    for (const step of [
      { kind: 'route', servers: [canary] },
      { kind: 'retire', replicas: [canary] },
      { kind: 'remove', replicas: [canary] },
    ] as const) {
      const { ex, lock, host } = setup()
      lock.lose()
      await expect(runAll(ex, [step], 'deploy', 'shop:v2')).rejects.toThrow(LockLostError)
      expect(host.commands).toEqual([])
    }
  })

  it("fails a canary step whose traffic is bad, and keeps the step's judgement", async () => {
    const bad = [
      ...Array(40).fill(recordLine('127.0.0.1:9202', '200').trimEnd()),
      ...Array(20).fill(recordLine('127.0.0.1:9202', '502').trimEnd()),
    ].join('\n')
    const { ex, journal, host } = setup({
      rules: [[/^docker logs --tail 30/, { stdout: 'upstream db timeout\n' }]],
    })
    host.followText = `${bad}\n`
    const run = runAll(
      ex,
      [{ kind: 'observe', seconds: 0.05, split: splitFor(10, [canary], 1), stable: [replica(9201, 'shop:v1')] }],
      'deploy',
      'shop:v2',
    )
    await expect(run).rejects.toMatchObject({ judged: true })
    await expect(run).rejects.toThrow(
      'canary step at 10% failed: canary error rate 33.33% (20 of 60) is above canary-max-error-rate 1%',
    )
    // The evidence is gathered while the traffic goes back; the summary waits for it.
    await journal.settled()
    expect(journal.evidence).toEqual([
      {
        subject: 'shop-9202',
        reason: 'canary error rate 33.33% (20 of 60) is above canary-max-error-rate 1%',
        logs: 'upstream db timeout',
      },
    ])
  })
})

describe('Executor: stopping and retiring', () => {
  const LEASE = { file: '.nginx-rollout/shop/lease', token: 'token-of-this-run' }
  const old = container(9201)

  it('lets a background stop overlap the next step, and fails the run at the removal if that stop failed', async () => {
    const stop = deferred<Partial<ExecResult>>()
    const { ex, host, journal } = setup({ rules: [[/^docker stop /, () => stop.promise]] })
    const run = runAll(
      ex,
      [
        { kind: 'stop', replicas: [replicaOf(old)], background: true },
        { kind: 'start', replicas: [v2] },
        { kind: 'remove', replicas: [replicaOf(old)] },
      ],
      'deploy',
      'shop:v2',
    )
    run.catch(() => undefined)
    while (journal.steps.length < 2) await sleep(1)
    // The start finished while docker stop still runs.
    expect(outcomes(journal)).toEqual([
      ['stop shop-9201 (in the background)', 'ok'],
      ['start shop-9202 (:9202) from shop:v2', 'ok'],
    ])
    expect(journal.steps[0].detail).toBe('continues while the next batch starts')
    stop.resolve({ code: 1, stderr: 'Error response from daemon: cannot stop container: permission denied\n' })
    await expect(run).rejects.toThrow(
      `stopping old replicas failed on ${HOST} (exit 1): Error response from daemon: cannot stop container: permission denied\n  command: sh -c '<script # fenced: only while this run holds the deploy lock... (7 lines)>' sh .nginx-rollout/shop/lock/token token-of-this-run docker stop --time 10 -- ${old.id}`,
    )
    expect(outcomes(journal)[2]).toEqual(['remove shop-9201', 'failed'])
    expect(verbs(host)).toEqual(['docker stop', 'docker create'])
    // On the nginx host the lock's own token is what a stop, a start and a removal are checked against.
    expect([...host.fences]).toEqual([
      [0, { file: '.nginx-rollout/shop/lock/token', token: 'token-of-this-run' }],
      [1, { file: '.nginx-rollout/shop/lock/token', token: 'token-of-this-run' }],
    ])
    expect(ex.snapshot().stopped).toEqual([replicaOf(old)])
  })

  it('waits for a background stop before removing, and says how long it waited', async () => {
    const stop = deferred<Partial<ExecResult>>()
    const { ex, host, journal } = setup({ rules: [[/^docker stop /, () => stop.promise]] })
    const run = runAll(
      ex,
      [
        { kind: 'stop', replicas: [replicaOf(old)], background: true },
        { kind: 'remove', replicas: [replicaOf(old)] },
      ],
      'deploy',
      'shop:v2',
    )
    await sleep(30)
    expect(verbs(host)).toEqual(['docker stop'])
    stop.resolve({ code: 0 })
    await run
    expect(verbs(host)).toEqual(['docker stop', 'sh -c'])
    expect(host.commands[1].argv.slice(3)).toEqual(['sh', old.id])
    expect(journal.steps[1].detail).toMatch(/^after waiting \d+\.\ds for docker stop$/)
  })

  it('hands pending in-job stops to the retirement without waiting for them, with one retire command per host', async () => {
    const config = configFrom({ ...THREE_HOSTS, 'stop-timeout': '7' })
    const stop = deferred<Partial<ExecResult>>()
    const apps = {
      a: new FakeRemote('a', [[/^docker stop /, () => stop.promise], ...HEALTHY_DOCKER]),
      b: new FakeRemote('b'),
      c: new FakeRemote('c'),
    }
    const live = [
      container(9201, 'shop:v1', { host: 'a' }),
      container(9201, 'shop:v1', { host: 'b' }),
      container(9201, 'shop:v1', { host: 'c' }),
      container(9202, 'shop:v1', { host: 'a' }),
    ]
    const { ex, journal } = setup({ config, containers: live, apps, nginx: new FakeNginxHost('lb') })
    const olds = live.map(replicaOf)
    await runAll(
      ex,
      [
        { kind: 'stop', replicas: [olds[0]], background: true },
        { kind: 'retire', replicas: olds },
      ],
      'deploy',
      'shop:v2',
    )
    // The run is over while docker stop of a's first replica has not answered; its failure now fails nothing.
    stop.resolve({ code: 1, stderr: 'Error: timed out' })
    const retire = (r: FakeRemote) => r.commands.filter((c) => render(c).includes('setsid')).map((c) => c.argv.slice(4))
    expect(retire(apps.a)).toEqual([[retireDir('shop'), '7', idOf('a', 9201), idOf('a', 9202)]])
    expect(retire(apps.b)).toEqual([[retireDir('shop'), '7', idOf('b', 9201)]])
    expect(retire(apps.c)).toEqual([[retireDir('shop'), '7', idOf('c', 9201)]])
    // Each app host other than the nginx host checks the run's lease there before it stops anything.
    for (const r of [apps.a, apps.b, apps.c])
      expect([...r.fences.values()]).toEqual(r === apps.a ? [LEASE, LEASE] : [LEASE])
    expect(journal.steps[1]).toMatchObject({
      description:
        'retire shop-9201@a, shop-9201@b, shop-9201@c, shop-9202@a (stop and remove on the host, in the background)',
      outcome: 'ok',
      hosts: ['a', 'b', 'c'],
      detail: 'stopping (up to stop-timeout 7s) and removing on the host; a failure is reported by the next run',
    })
  })

  // A background stop that failed during the deploy has been reported with the deploy's failure; the
  // rollback then has to start that replica again, and must not fail on the old stop's error.
  it('does not fail the rollback on a failed background stop of the deploy it undoes', async () => {
    const { ex } = setup({
      rules: [
        [/^docker stop /, { code: 1, stderr: 'Error response from daemon: cannot stop container' }],
        [new RegExp(`^docker inspect --format .* -- ${startedId('shop-9202')}$`), { stdout: 'exited\tnone\t1\n' }],
      ],
      probe: (p) => (p.port === 9202 ? { error: 'connect ECONNREFUSED', ms: 1 } : { status: 200, ms: 1 }),
    })
    const deploy = runAll(
      ex,
      [
        { kind: 'start', replicas: [v2] },
        { kind: 'stop', replicas: [replicaOf(old)], background: true },
        { kind: 'gate', replicas: [v2] },
      ],
      'deploy',
      'shop:v2',
    )
    await expect(deploy).rejects.toThrow('shop-9202 stopped (exited, exit code 1) before it became healthy')
    await expect(
      runAll(
        ex,
        [
          { kind: 'restart', replicas: [replicaOf(old)] },
          { kind: 'gate', replicas: [replicaOf(old)] },
          { kind: 'remove', replicas: [v2] },
        ],
        'rollback',
        'shop:v2',
      ),
    ).resolves.toBeUndefined()
  })
})

describe('Executor: health gates and drains', () => {
  it('fails a gate fast when the replica exits, with its last log lines as evidence and the failed gate recorded', async () => {
    const { ex, journal } = setup({
      config: configFrom({ 'health-timeout': '60' }),
      rules: [
        [/^docker inspect --format '\{\{\.State\.Status/, { stdout: 'exited\tnone\t3\n' }],
        [/^docker logs --tail 30 -- /, { stdout: 'booting\nFATAL: DATABASE_URL is not set\n' }],
      ],
      probe: () => ({ error: 'connect ECONNREFUSED 127.0.0.1:9202', ms: 1 }),
    })
    const t0 = Date.now()
    const run = runAll(ex, [{ kind: 'gate', replicas: [v2] }], 'deploy', 'shop:v2')
    await expect(run).rejects.toThrow(StepFailure)
    await expect(run).rejects.toThrow('shop-9202 stopped (exited, exit code 3) before it became healthy')
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(journal.evidence).toEqual([
      {
        subject: 'shop-9202',
        reason: 'shop-9202 stopped (exited, exit code 3) before it became healthy',
        logs: 'booting\nFATAL: DATABASE_URL is not set',
      },
    ])
    expect(journal.gates).toEqual([
      {
        replica: 'shop-9202',
        host: HOST,
        ok: false,
        probes: 1,
        ms: expect.any(Number),
        last: 'GET / -> connect ECONNREFUSED 127.0.0.1:9202',
        dockerHealth: 'none',
      },
    ])
  })

  it('passes a gate on the first allowed answer and says how long it took', async () => {
    const { ex, journal, host } = setup()
    await runAll(ex, [{ kind: 'gate', replicas: [v2] }], 'deploy', 'shop:v2')
    expect(journal.gates).toEqual([
      {
        replica: 'shop-9202',
        host: HOST,
        ok: true,
        probes: 1,
        ms: expect.any(Number),
        last: 'GET / -> 200',
        dockerHealth: 'none',
      },
    ])
    expect(journal.steps[0].detail).toMatch(/^shop-9202 healthy after \d+\.\ds$/)
    // Docker is asked once, about the answered probe: nothing before the first probe.
    expect(verbs(host)).toEqual(['docker inspect'])
  })

  it('asks Docker after the first probe and every answered one, otherwise at most once a second, but after every probe for an image with a HEALTHCHECK', async () => {
    const events: string[] = []
    const inspectedAt: number[] = []
    const inspect = (health: () => string): Rule => [
      /^docker inspect --format '\{\{\.State\.Status/,
      () => (events.push('inspect'), inspectedAt.push(Date.now()), { stdout: `running\t${health()}\t0\n` }),
    ]
    const probe = (ok: () => boolean) => (): HttpResult =>
      ok()
        ? (events.push('answer'), { status: 200, ms: 1 })
        : (events.push('refused'), { error: 'connect ECONNREFUSED 127.0.0.1:9202', ms: 1 })
    const config = configFrom({ 'health-interval': '0.05' })

    // No HEALTHCHECK: refused for 1.3 s, then answered.
    const answerFrom = Date.now() + 1300
    const plain = setup({ config, rules: [inspect(() => 'none')], probe: probe(() => Date.now() >= answerFrom) })
    await runAll(plain.ex, [{ kind: 'gate', replicas: [v2] }], 'deploy', 'shop:v2')
    const refused = events.filter((e) => e === 'refused').length
    expect(refused).toBeGreaterThan(10)
    expect(events.slice(0, 2)).toEqual(['refused', 'inspect'])
    expect(events.slice(-2)).toEqual(['answer', 'inspect'])
    expect(events.filter((e) => e === 'answer')).toHaveLength(1)
    // While refused: the first probe, then a second apart (a ms of slack: the time is taken just before the command).
    const whileRefused = inspectedAt.slice(0, -1)
    expect(whileRefused.length).toBeGreaterThanOrEqual(2)
    expect(whileRefused.length).toBeLessThan(refused)
    for (let i = 1; i < whileRefused.length; i++)
      expect(whileRefused[i] - whileRefused[i - 1]).toBeGreaterThanOrEqual(990)
    expect(plain.journal.gates).toEqual([
      expect.objectContaining({ ok: true, probes: refused + 1, dockerHealth: 'none' }),
    ])

    // A HEALTHCHECK: Docker's health is read after every probe, answered or not.
    events.length = 0
    let probes = 0
    const checked = setup({
      config,
      rules: [inspect(() => (events.includes('answer') ? 'healthy' : 'starting'))],
      probe: probe(() => ++probes > 3),
    })
    await runAll(checked.ex, [{ kind: 'gate', replicas: [v2] }], 'deploy', 'shop:v2')
    expect(events).toEqual(['refused', 'inspect', 'refused', 'inspect', 'refused', 'inspect', 'answer', 'inspect'])
    expect(checked.journal.gates).toEqual([expect.objectContaining({ ok: true, probes: 4, dockerHealth: 'healthy' })])
  })

  it.each([
    ['idle 300', 'nothing in flight after 0.3s'],
    ['busy 5000 3', '3 connections still open after drain-seconds 5s'],
    ['unknown 5', 'waited drain-seconds 5s (connections not readable on the host)'],
  ])("reads the host's drain answer %j as %j", async (answer, detail) => {
    const old = container(9201, 'shop:v1', { pid: 4242 })
    const { ex, journal, host } = setup({ containers: [old], rules: [[/max=\$1; min=\$2/, { stdout: `${answer}\n` }]] })
    await runAll(ex, [{ kind: 'drain', seconds: 5, replicas: [replicaOf(old)] }], 'deploy', 'shop:v2')
    expect(journal.steps[0]).toMatchObject({
      description: 'drain shop-9201 (until idle, at most 5s)',
      outcome: 'ok',
      detail,
    })
    // At most 5 s, at least 0, polls of 0.1 s, 2 quiet polls; nginx runs here, so its connections to the
    // replica count too; the container, its main pid as read and the port its app listens on inside.
    expect(host.commands[0].argv.slice(4)).toEqual(['5', '0', '0.1', '2', '127.0.0.1:9201', old.id, '4242', '8080'])
  })

  it("drains for at least keepalive_min_timeout when nginx reloads with it, reads each host's one network namespace with host networking, and adds up the hosts still busy", async () => {
    const config = configFrom({ ...THREE_HOSTS, 'drain-seconds': '5', network: 'host' })
    const drain = (answer: string): Rule => [/max=\$1; min=\$2/, { stdout: answer }]
    const apps = {
      a: new FakeRemote('a', [drain('busy 5000 2')]),
      b: new FakeRemote('b', [drain('busy 5000 1')]),
      c: new FakeRemote('c', [drain('idle 100')]),
    }
    // a's pid was read; b's two replicas share b's namespace, watched through the one whose pid was read; c's
    // pid was read while it did not run, so it is not used (docker is asked on the host).
    const live = [
      container(9201, 'shop:v1', { host: 'a', pid: 1111 }),
      container(9201, 'shop:v1', { host: 'b' }),
      container(9201, 'shop:v1', { host: 'c', pid: 3333, running: false }),
      container(9202, 'shop:v1', { host: 'b', pid: 2222 }),
    ]
    const nginxState = { ...nginxServing(config, live.map(replicaOf)), facts: { keepaliveMinTimeout: true } }
    // nginx has a host of its own: its connections to all four are counted there, where no replica runs.
    const lb = new FakeNginxHost('lb', [drain('busy 5000 4')])
    const { ex, journal } = setup({ config, containers: live, apps, nginx: lb, nginxState })
    await runAll(ex, [{ kind: 'drain', seconds: 5, replicas: live.map(replicaOf) }], 'deploy', 'shop:v2')
    expect(journal.steps[0].detail).toBe('7 connections still open after drain-seconds 5s')
    expect(apps.a.commands.map((c) => c.argv.slice(4))).toEqual([
      ['5', '1', '0.1', '2', '', idOf('a', 9201), '1111', '9201'],
    ])
    expect(apps.b.commands.map((c) => c.argv.slice(4))).toEqual([
      ['5', '1', '0.1', '2', '', idOf('b', 9202), '2222', '9201|9202'],
    ])
    expect(apps.c.commands.map((c) => c.argv.slice(4))).toEqual([
      ['5', '1', '0.1', '2', '', idOf('c', 9201), '0', '9201'],
    ])
    expect(lb.commands.map((c) => c.argv.slice(4))).toEqual([
      ['5', '1', '0.1', '2', '10.0.0.1:9201 10.0.0.2:9201 10.0.0.3:9201 10.0.0.2:9202'],
    ])
  })

  it('checks the replicas that took the traffic again while the old ones drain, at the same time, an answer sufficing', async () => {
    const drain = deferred<Partial<ExecResult>>()
    const { ex, journal, host } = setup({ rules: [[/max=\$1; min=\$2/, () => drain.promise]] })
    const run = runAll(
      ex,
      [{ kind: 'drain', seconds: 5, replicas: [replica(9201, 'shop:v1')], recheck: [v2] }],
      'deploy',
      'shop:v2',
    )
    // The drain has not answered, yet shop-9202 is probed; it answers, which suffices for a replica that
    // passed its gate already: Docker is not asked.
    const waiting = Date.now()
    while (!host.probes.length && Date.now() - waiting < 2000) await sleep(1)
    await sleep(20)
    expect(host.probes).toEqual([{ host: '127.0.0.1', port: 9202, path: '/' }])
    expect(journal.steps).toEqual([])
    drain.resolve({ stdout: 'idle 300\n' })
    await run
    expect(outcomes(journal)).toEqual([
      ['drain shop-9201 (until idle, at most 5s), checking shop-9202 still healthy', 'ok'],
    ])
    expect(journal.steps[0]).toMatchObject({ detail: 'nothing in flight after 0.3s', hosts: [HOST] })
    expect(verbs(host)).toEqual(['sh -c'])
  })

  it('fails a drain whose rechecked replica has exited, though the drain itself ended idle, with its logs as evidence and the old replica still running', async () => {
    const old = container(9201)
    const { ex, journal, host } = setup({
      rules: [
        [new RegExp(`^docker inspect --format .* -- ${startedId('shop-9202')}$`), { stdout: 'exited\tnone\t137\n' }],
        [/^docker logs --tail 30 -- /, { stdout: 'Killed\n' }],
      ],
      probe: (p) =>
        p.port === 9202 ? { error: 'connect ECONNREFUSED 127.0.0.1:9202', ms: 1 } : { status: 200, ms: 1 },
    })
    const run = runAll(
      ex,
      [
        { kind: 'start', replicas: [v2] },
        { kind: 'route', servers: [v2] },
        { kind: 'drain', seconds: 5, replicas: [replicaOf(old)], recheck: [v2] },
      ],
      'deploy',
      'shop:v2',
    )
    await expect(run).rejects.toThrow(StepFailure)
    await expect(run).rejects.toThrow('shop-9202 stopped (exited, exit code 137) before it became healthy')
    expect(outcomes(journal)).toEqual([
      ['start shop-9202 (:9202) from shop:v2', 'ok'],
      ['route traffic to shop-9202 (one nginx reload)', 'ok'],
      ['drain shop-9201 (until idle, at most 5s), checking shop-9202 still healthy', 'failed'],
    ])
    expect(journal.steps[2].detail).toBe('shop-9202 stopped (exited, exit code 137) before it became healthy')
    // The drain ran (and answered idle): the failure is the recheck's alone.
    const drains = host.commands.filter((c) => /max=\$1; min=\$2/.test(render(c)))
    expect(drains.map((c) => c.argv.slice(4))).toEqual([['5', '0', '0.1', '2', '127.0.0.1:9201', old.id, '0', '8080']])
    expect(journal.evidence).toEqual([
      {
        subject: 'shop-9202',
        reason: 'shop-9202 stopped (exited, exit code 137) before it became healthy',
        logs: 'Killed',
      },
    ])
    // Nothing stopped the old replica: an undo can route back to it.
    expect(ex.snapshot()).toMatchObject({ started: [v2], routed: [v2], stopped: [] })
    expect(verbs(host).filter((v) => v === 'docker stop')).toEqual([])
  })
})

describe('Executor: the next batch started ahead', () => {
  it('fails the next gate with the error of a start that ran ahead and failed, and the undo removes that replica', async () => {
    const config = configFrom({ 'drain-seconds': '5', replicas: '2', pull: 'false' })
    const live = [container(9201), container(9202)]
    const refused =
      'docker: Error response from daemon: driver failed programming external connectivity: Bind for 127.0.0.1:9204 failed: port is already allocated.'
    const { ex, journal, host } = setup({
      config,
      containers: live,
      // Created (docker printed its id), then its start failed.
      rules: [
        [
          / docker create --name shop-9204 /,
          { code: 125, stdout: `${startedId('shop-9204')}\n`, stderr: `${refused}\n` },
        ],
      ],
    })
    const plan = planRolling(config, live, routesTo(...live))
    const run = runAll(ex, plan.steps, 'deploy', 'shop:v2')
    await expect(run).rejects.toThrow(`starting shop-9204 failed on ${HOST} (exit 125): ${refused}\n  command: sh -c `)
    await expect(run).rejects.toThrow(' docker create --name shop-9204 ')
    expect(outcomes(journal)).toEqual([
      ['start shop-9203 (:9203) from shop:v2', 'ok'],
      ['health gate shop-9203', 'ok'],
      ['route traffic to shop-9203, shop-9202 (one nginx reload)', 'ok'],
      ['start shop-9204 (:9204) from shop:v2 (in the background, while the batch before drains)', 'ok'],
      ['drain shop-9201 (until idle, at most 5s), checking shop-9203 still healthy', 'ok'],
      ['stop shop-9201 (in the background)', 'ok'],
      ['health gate shop-9204', 'failed'],
    ])
    expect(journal.steps[3].detail).toBe('continues while the batch before drains')
    expect(journal.steps[6].detail?.split('\n')[0]).toBe(`starting shop-9204 failed on ${HOST} (exit 125): ${refused}`)
    // The gate never probed the replica that did not start.
    expect(host.probes.filter((p) => p.port === 9204)).toEqual([])
    expect(journal.gates.map((g) => g.replica)).toEqual(['shop-9203'])

    const undo = planUndo(config, plan, ex.snapshot())
    expect(undo.steps.map((s) => describeStep(s))).toEqual([
      'route traffic to shop-9202 (one nginx reload)',
      'start shop-9201 again',
      'health gate shop-9201',
      'restore the previous nginx config (shop-9201, shop-9202)',
      'drain shop-9203 (until idle, at most 5s)',
      'remove shop-9203, shop-9204',
    ])
    const sent = host.commands.length
    await runAll(ex, undo.steps, 'rollback', 'shop:v2')
    // Both by the ids docker create printed, the one whose start failed too.
    const removes = host.commands.slice(sent).filter((c) => /docker rm /.test(render(c)))
    expect(removes.map((c) => c.argv.slice(4))).toEqual([[startedId('shop-9203'), startedId('shop-9204')]])
  })

  it('never touches a container it did not create that holds a replica name: the start fails saying so', async () => {
    const config = configFrom({ 'drain-seconds': '5', replicas: '1', pull: 'false' })
    const live = [container(9201)]
    const taken =
      'docker: Error response from daemon: Conflict. The container name "/shop-9202" is already in use by container "0123abcd". You have to remove (or rename) that container to be able to reuse that name.'
    const { ex, host } = setup({
      config,
      containers: live,
      rules: [[/ docker create --name shop-9202 /, { code: 125, stderr: `${taken}\n` }]],
    })
    const plan = planRolling(config, live, routesTo(...live))
    const run = runAll(ex, plan.steps, 'deploy', 'shop:v2')
    await expect(run).rejects.toThrow(
      `the container name shop-9202 on ${HOST} is taken by a container nginx-rollout did not create: it is left as it is`,
    )
    const sent = host.commands.length
    await runAll(ex, planUndo(config, plan, ex.snapshot()).steps, 'rollback', 'shop:v2')
    const touched = host.commands.slice(sent).filter((c) => /docker (rm|stop|start|kill)/.test(render(c)))
    expect(touched.flatMap((c) => c.argv).filter((a) => a === 'shop-9202' || a === '0123abcd')).toEqual([])
  })
})

describe('Executor: several hosts', () => {
  const config = configFrom({ ...THREE_HOSTS, 'drain-seconds': '2' })
  const onB = replica(9202, 'shop:v2', 'b')
  const oldOnB = container(9201, 'shop:v1', { host: 'b' })

  function fleetSetup(probe?: (p: Probe) => HttpResult) {
    const apps = { a: new FakeRemote('a'), b: new FakeRemote('b'), c: new FakeRemote('c') }
    const lb = new FakeNginxHost('lb', [], probe)
    const live = [container(9201, 'shop:v1', { host: 'a' }), oldOnB, container(9201, 'shop:v1', { host: 'c' })]
    return { apps, lb, ...setup({ config, containers: live, apps, nginx: lb }) }
  }

  it("sends every command for a replica on host b to b's connection only", async () => {
    const { ex, apps, lb, journal } = fleetSetup()
    await runAll(
      ex,
      [
        { kind: 'pull', image: 'shop:v2', hosts: ['b'] },
        { kind: 'start', replicas: [onB] },
        { kind: 'gate', replicas: [onB] },
        { kind: 'drain', seconds: 2, replicas: [replicaOf(oldOnB)] },
        { kind: 'stop', replicas: [replicaOf(oldOnB)] },
        { kind: 'remove', replicas: [replicaOf(oldOnB)] },
      ],
      'deploy',
      'shop:v2',
    )
    expect(apps.a.commands).toEqual([])
    expect(apps.c.commands).toEqual([])
    // On the nginx host, only the drain's count of nginx's own connections to the old replica on b.
    expect(lb.commands.map((c) => c.argv.slice(4))).toEqual([['2', '0', '0.1', '2', '10.0.0.2:9201']])
    // The gate's docker inspects (how many depends on the gate) are on b too.
    expect(verbs(apps.b)).toContain('docker inspect')
    expect(verbs(apps.b).filter((v) => v !== 'docker inspect')).toEqual([
      'docker pull',
      'docker create',
      'sh -c',
      'docker stop',
      'sh -c',
    ])
    expect(render(apps.b.commands[1])).toMatch(/ --publish 10\.0\.0\.2:9202:8080 /)
    expect(apps.b.commands.find((c) => c.argv[1] === 'stop')?.argv.at(-1)).toBe(oldOnB.id)
    expect(journal.steps.map((s) => s.hosts)).toEqual([['b'], ['b'], ['b'], ['b'], ['b'], ['b']])
    expect(journal.steps[1].description).toBe('start shop-9202@b (:9202) from shop:v2')
  })

  it("probes from the nginx host's connection to the address nginx reaches the replica at", async () => {
    const { ex, apps, lb } = fleetSetup()
    await runAll(ex, [{ kind: 'gate', replicas: [onB] }], 'deploy', 'shop:v2')
    expect(lb.probes).toEqual([{ host: '10.0.0.2', port: 9202, path: '/' }])
    expect([apps.a, apps.b, apps.c].map((r) => r.probes)).toEqual([[], [], []])
    // Docker's view of the replica is read on its own host.
    expect(verbs(apps.b).length).toBeGreaterThan(0)
    expect(new Set(verbs(apps.b))).toEqual(new Set(['docker inspect']))
  })

  it('names the host of a failing replica in its evidence', async () => {
    const { ex, apps, journal } = fleetSetup(() => ({ error: 'connect ECONNREFUSED 10.0.0.2:9202', ms: 1 }))
    apps.b.rules.unshift(
      [/^docker inspect --format '\{\{\.State\.Status/, { stdout: 'exited\tnone\t137\n' }],
      [/^docker logs /, { stdout: 'Killed\n' }],
    )
    await expect(runAll(ex, [{ kind: 'gate', replicas: [onB] }], 'deploy', 'shop:v2')).rejects.toThrow(
      'shop-9202 stopped (exited, exit code 137) before it became healthy',
    )
    expect(journal.evidence).toEqual([
      {
        subject: 'shop-9202 on b',
        reason: 'shop-9202 stopped (exited, exit code 137) before it became healthy',
        logs: 'Killed',
      },
    ])
    expect(journal.gates).toEqual([expect.objectContaining({ replica: 'shop-9202', host: 'b', ok: false })])
  })

  it('routes through the nginx host, to every host at once', async () => {
    const { ex, lb, apps, journal } = fleetSetup()
    const next = ['a', 'b', 'c'].map((h) => replica(9202, 'shop:v2', h))
    await runAll(ex, [{ kind: 'route', servers: next }], 'deploy', 'shop:v2')
    expect(lb.applies).toHaveLength(1)
    expect(lb.installed[0]).toContain(
      '    server 10.0.0.2:9202 weight=10 max_fails=3 fail_timeout=30s; # shop-9202 shop:v2 on b\n',
    )
    expect([apps.a, apps.b, apps.c].map((r) => r.commands.length)).toEqual([0, 0, 0])
    expect(journal.steps[0]).toMatchObject({
      description: 'route traffic to shop-9202@a, shop-9202@b, shop-9202@c (one nginx reload)',
      hosts: ['lb'],
    })
  })
})
