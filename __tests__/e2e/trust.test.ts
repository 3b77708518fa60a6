// Trust boundaries, end to end: what a host sends back is data, and nothing the action did not create is
// ever removed. A hand-made container under a replica's name, a replica whose labels carry shell and
// workflow syntax, two apps deploying at once on one host with the default ports, a run killed while its
// canary is observed, a canary judged through a host-name upstream address.
import { jest } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startLoad } from '../../scripts/lib/load.mjs'
import { baseInputs, docker, get, managedConf, replicasOf, resetApp, runAction, stateDir, testHost } from './harness.js'

jest.setTimeout(240_000)

const host = testHost()
const image = (tag: string) => `nginx-rollout-test/app:${tag}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("a container the action did not create, under a replica's name", () => {
  const APP = 'e2e-trust'
  const PORT = 18321
  const HANDMADE = `${APP}-9611`
  const VOLUME = 'e2e-trust-data'
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    replicas: '2',
    ports: '9611-9620',
    ...over,
  })
  const handmade = () => docker('ps', '--all', '--filter', `name=^${HANDMADE}$`, '--format', '{{.Names}} {{.Mounts}}')
  beforeAll(() => {
    resetApp(APP)
    docker('rm', '--force', HANDMADE)
    docker('volume', 'rm', '--force', VOLUME)
    // Someone's own container, with a volume, holding the name the action's first replica would get.
    docker(
      'run',
      '--detach',
      '--name',
      HANDMADE,
      '--network',
      'host',
      '--volume',
      `${VOLUME}:/data`,
      '--entrypoint',
      '/bin/sleep',
      image('v1'),
      '3600',
    )
  })
  afterAll(() => {
    docker('rm', '--force', HANDMADE)
    docker('volume', 'rm', '--force', VOLUME)
    resetApp(APP)
  })

  it('is still there, with its volume, after a successful deploy (its port is left out)', async () => {
    const run = await runAction(inputs({ image: image('v1') }))
    expect(run.outputs.result).toBe('deployed')
    expect(handmade()).toBe(`${HANDMADE} ${VOLUME}`)
    expect(JSON.parse(run.outputs.replicas).map((r: { name: string }) => r.name)).not.toContain(HANDMADE)
  })

  it('is still there, with its volume, after a failed deploy that was rolled back', async () => {
    const run = await runAction(inputs({ image: image('unhealthy'), 'health-timeout': '2' }))
    expect(run.outputs.result).toBe('rolled-back')
    expect(handmade()).toBe(`${HANDMADE} ${VOLUME}`)
    expect(readFileSync(join(stateDir(APP), 'history.json'), 'utf8')).toContain('rolled-back')
  })
})

describe('a replica whose labels carry newlines, quotes and workflow commands', () => {
  const APP = 'e2e-labels'
  const PORT = 18322
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    replicas: '1',
    ports: '9621-9630',
    ...over,
  })
  const hostile = `evil:1\n::warning::pwned\n"'; include /etc/passwd; #`
  beforeAll(async () => {
    resetApp(APP)
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
    // A container shaped like one of the app's replicas, its image label holding syntax of every kind.
    docker(
      'run',
      '--detach',
      '--name',
      `${APP}-9629`,
      '--network',
      'host',
      '--label',
      `nginx-rollout.app=${APP}`,
      '--label',
      'nginx-rollout.role=replica',
      '--label',
      'nginx-rollout.port=9629',
      '--label',
      `nginx-rollout.image=${hostile}`,
      '--label',
      'nginx-rollout.color=',
      '--entrypoint',
      '/bin/sleep',
      image('v1'),
      '3600',
    )
  })
  afterAll(() => resetApp(APP))

  it('refuses the run naming the host and the value, with no nginx syntax, workflow command or output from it', async () => {
    const before = managedConf(APP)
    const run = await runAction(inputs({ image: image('v2') }))
    expect(run.outputs.result).toBe('failed')
    expect(run.log).toContain(`${APP}-9629`)
    // Shown quoted, on one line: no line of the log starts a workflow command.
    expect(run.stdout.split('\n').filter((l) => /^\s*::warning::pwned/.test(l))).toEqual([])
    expect(JSON.stringify(run.outputs)).not.toContain('pwned')
    expect(managedConf(APP)).toBe(before)
    expect(managedConf(APP)).not.toContain('pwned')
    expect((await get(PORT, '/')).text).toBe('v1\n')
  })

  it("does not stop another app's deploy on the host: that run passes it over with a warning, quoted", async () => {
    const other = 'e2e-labels-other'
    resetApp(other)
    try {
      const run = await runAction({
        ...baseInputs(host, other, 18327),
        replicas: '1',
        ports: '9681-9690',
        image: image('v2'),
      })
      expect(run.outputs.result).toBe('deployed')
      expect(run.log).toContain(`container "${APP}-9629" has label nginx-rollout.image`)
      expect(run.stdout.split('\n').filter((l) => /^\s*::warning::pwned/.test(l))).toEqual([])
      expect((await get(18327, '/')).text).toBe('v2\n')
    } finally {
      resetApp(other)
    }
  })
})

describe('two apps deploying at once on one host with the default ports', () => {
  const apps = [
    { app: 'e2e-twin-a', port: 18323 },
    { app: 'e2e-twin-b', port: 18324 },
  ]
  const inputs = (app: string, port: number, tag: string) => ({
    ...baseInputs(host, app, port),
    replicas: '2',
    image: image(tag),
  })
  beforeAll(() => {
    for (const { app } of apps) resetApp(app)
    // The default ports must be free of every other app's replicas for this to mean anything.
    const others = docker('ps', '--all', '--quiet', '--filter', 'label=nginx-rollout.port=9201').split('\n')
    if (others.filter(Boolean).length) docker('rm', '--force', ...others.filter(Boolean))
  })
  afterAll(() => {
    for (const { app } of apps) resetApp(app)
  })

  it('deploys both, each routed only to its own replicas', async () => {
    for (const tag of ['v1', 'v2']) {
      const runs = await Promise.all(apps.map(({ app, port }) => runAction(inputs(app, port, tag))))
      expect(runs.map((r) => r.outputs.result)).toEqual(['deployed', 'deployed'])
      const ports = runs.map((r) => JSON.parse(r.outputs.replicas).map((x: { port: number }) => x.port))
      expect(ports[0].filter((p: number) => ports[1].includes(p))).toEqual([])
      for (const [i, { app, port }] of apps.entries()) {
        const conf = managedConf(app)
        for (const p of ports[i]) expect(conf).toContain(`127.0.0.1:${p} `)
        for (const p of ports[1 - i]) expect(conf).not.toContain(`127.0.0.1:${p} `)
        expect((await get(port, '/')).text).toBe(`${tag}\n`)
      }
    }
  })
})

describe('a run killed while its canary is observed', () => {
  const APP = 'e2e-killed'
  const PORT = 18325
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    replicas: '2',
    ports: '9631-9640',
    ...over,
  })
  beforeAll(async () => {
    resetApp(APP)
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
  })
  afterAll(() => resetApp(APP))

  it('leaves the canary on record, and abort removes it', async () => {
    const killed = await runAction(
      inputs({ image: image('v2'), strategy: 'canary', 'canary-steps': '10,100', 'canary-interval': '60' }),
      {
        onStdout: (soFar, child) => {
          if (/\[\d+\/\d+\] route 10% to canary [^\n]*: ok/.test(soFar)) child.kill('SIGKILL')
        },
      },
    )
    expect(killed.code).not.toBe(0)
    const record = JSON.parse(readFileSync(join(stateDir(APP), 'canary.json'), 'utf8'))
    expect(record).toMatchObject({ image: image('v2'), weight: 10 })
    const canary = record.replicas.map((r: { name: string }) => r.name)
    expect(replicasOf(APP).filter((r) => canary.includes(r.split(' ')[0]))).toEqual(
      canary.map((n: string) => `${n} ${image('v2')} running`),
    )
    // The killed run's lock goes stale after 45 s of silence: age its heartbeat instead of waiting.
    const beat = join(stateDir(APP), 'lock', 'heartbeat')
    if (existsSync(beat)) utimesSync(beat, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000))
    const load = startLoad({ port: PORT, maxSeconds: 60 })
    await sleep(500)
    const abort = await runAction(inputs({ operation: 'abort', image: '' }))
    const report = await load.stop()
    expect(abort.outputs.result).toBe('rolled-back')
    expect(report.failed).toBe(0)
    expect(existsSync(join(stateDir(APP), 'canary.json'))).toBe(false)
    await sleep(3000) // the retirement runs on the host
    expect(replicasOf(APP).filter((r) => canary.includes(r.split(' ')[0]))).toEqual([])
    expect((await get(PORT, '/')).text).toBe('v1\n')
  })
})

describe('canary judgement through a host-name upstream address (nginx logs the address it resolved)', () => {
  // As the deploy user a VPS has: not root, only docs/vps.md's sudoers lines for this app (scripts/testhost/up.sh).
  const deployer = testHost({ as: 'deploy' })
  const APP = 'e2e-named'
  const PORT = 18326
  const NAME = 'nr-e2e-upstream.test'
  const managed = `/etc/nginx/conf.d/${APP}.conf`
  const aside = '/tmp/nr-e2e-default-site'
  let hosts = ''
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(deployer, APP, PORT),
    'nginx-mode': 'host',
    'upstream-host': NAME,
    replicas: '2',
    ports: '9641-9650',
    ...over,
  })
  beforeAll(async () => {
    resetApp(APP)
    rmSync(managed, { force: true })
    hosts = readFileSync('/etc/hosts', 'utf8')
    // A name for a loopback address of this machine, where the test replicas listen (host networking).
    writeFileSync('/etc/hosts', `${hosts.trimEnd()}\n127.0.0.7 ${NAME}\n`)
    if (existsSync('/etc/nginx/sites-enabled/default')) renameSync('/etc/nginx/sites-enabled/default', aside)
    execFileSync('/usr/sbin/nginx')
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
  })
  afterAll(() => {
    execFileSync('/usr/sbin/nginx', ['-s', 'quit'])
    rmSync(managed, { force: true })
    writeFileSync('/etc/hosts', hosts)
    if (existsSync(aside)) renameSync(aside, '/etc/nginx/sites-enabled/default')
    resetApp(APP)
  })

  it('fails a broken canary on its real traffic instead of finding no request of it', async () => {
    const load = startLoad({ port: PORT, maxSeconds: 60 })
    await sleep(500)
    const run = await runAction(
      inputs({ image: image('broken'), strategy: 'canary', 'canary-steps': '50', 'canary-interval': '3' }),
    )
    await load.stop()
    expect(run.outputs.result).toBe('rolled-back')
    // Judged on what nginx logged for the name's address: the canary's own rules or every deploy's, whichever
    // sees it first; never "no request of the canary" (which a name nginx logs as an address used to give).
    expect(run.log).toMatch(
      /canary step at 50% failed: canary error rate [\d.]+% \(\d+ of \d+\)|real traffic: the new version answered 5xx to (\d+ requests where [\d.]+ were expected from the old version on the same routes|[\d.]+% of \d+ requests) \(500: \d+/,
    )
    expect(run.log).not.toMatch(/inconclusive|logged no request/)
    expect(readFileSync(managed, 'utf8')).toContain(`server ${NAME}:`)
  })
})
