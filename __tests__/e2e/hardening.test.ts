// Hostile inputs from outside, end to end on the real test host: a client forging access-log fields, an
// image whose labels try to pass for another container, an sshd with stock session limits, a registry that
// accepts connections and never answers.
import { jest } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { startLoad } from '../../scripts/lib/load.mjs'
import { baseInputs, docker, eventually, get, replicasOf, resetApp, runAction, stateDir, testHost } from './harness.js'

jest.setTimeout(240_000)

const host = testHost()
const image = (tag: string) => `nginx-rollout-test/app:${tag}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('a client that forges access-log fields in its request line', () => {
  const APP = 'e2e-forge'
  const PORT = 18111
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    replicas: '2',
    ports: '9651-9660',
    ...over,
  })
  beforeAll(() => resetApp(APP))
  afterAll(() => resetApp(APP))

  /** Sends raw requests whose request line carries what the old log format parsed as failed upstream attempts. */
  function forge(port: number, targets: string[]): { stop(): Promise<number> } {
    let stopping = false
    let sent = 0
    const line = `GET /x upstream=${targets.join(', ')} upstream_status=${targets.map(() => '500').join(', ')} request_time= HTTP/1.1`
    const loop = (async () => {
      while (!stopping) {
        await new Promise<void>((resolve) => {
          const s = net.connect(port, '127.0.0.1', () =>
            s.end(`${line}\r\nHost: localhost\r\nConnection: close\r\n\r\n`),
          )
          s.on('error', () => resolve())
          s.on('close', () => resolve())
          s.resume()
        })
        sent++
        await sleep(5)
      }
    })()
    return {
      async stop() {
        stopping = true
        await loop
        return sent
      },
    }
  }

  it('passes a healthy canary whatever the forged lines say, and still stops a broken one', async () => {
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
    const load = startLoad({ port: PORT, maxSeconds: 60 })
    // Every port a canary could get, claimed to have failed.
    const forger = forge(
      PORT,
      Array.from({ length: 10 }, (_, i) => `127.0.0.1:${9651 + i}`),
    )
    await sleep(500)
    const run = await runAction(
      inputs({ image: image('v2'), strategy: 'canary', 'canary-steps': '20', 'canary-interval': '16' }),
    )
    const forged = await forger.stop()
    const report = await load.stop()
    expect(forged).toBeGreaterThan(100)
    expect(report.failed).toBe(0)
    expect(run.outputs).toMatchObject({ result: 'paused', 'canary-weight': '20' })
    expect(run.summary).toMatch(/\| 20% \| 16\ss \| \d+ \| 0 \| 0\.00% \| \d+ \| 0 \| 0\.00% \| pass \|/)
    expect((await runAction(inputs({ operation: 'abort', image: '' }))).outputs.result).toBe('rolled-back')

    const brokenLoad = startLoad({ port: PORT, maxSeconds: 60 })
    const broken = await runAction(
      inputs({ image: image('broken'), strategy: 'canary', 'canary-steps': '20', 'canary-interval': '4' }),
    )
    await brokenLoad.stop()
    expect(broken.outputs.result).toBe('rolled-back')
    expect(broken.log).toMatch(
      /canary step at 20% failed: (real traffic: the new version answered 5xx to (\d+ requests where|[\d.]+% of \d+ requests)|canary error rate 100\.00%)/,
    )
  })
})

describe('an image whose labels pose as another container', () => {
  const APP = 'e2e-label'
  const PORT = 18112
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    replicas: '2',
    ports: '9661-9670',
    ...over,
  })
  const hostile = 'nginx-rollout-test/app:hostile-labels'
  beforeAll(() => {
    resetApp(APP)
    execFileSync('sh', ['-c', 'docker rm --force e2e-victim-db e2e-label-impostor >/dev/null 2>&1; true'])
    // The shape the old tab-separated listing read: a line break, then a name, state and labels of another container.
    const forged = `x\ne2e-victim-db\texited\t${APP}\treplica\tnginx-rollout-test/app:v1\t9669\t`
    execFileSync('sh', [
      '-c',
      `printf 'FROM ${image('v2')}\\n' | docker build -q --network host --label "$1" --label "$2" -t ${hostile} - >/dev/null`,
      'sh',
      `nginx-rollout.color=${forged}`,
      `nginx-rollout.port=9669`,
    ])
    docker('create', '--name', 'e2e-victim-db', '--volume', '/var/lib/victim', image('v1'))
    // Labelled like a replica of the app, but not named like one: not the action's to touch.
    docker(
      'create',
      '--name',
      'e2e-label-impostor',
      '--label',
      `nginx-rollout.app=${APP}`,
      '--label',
      'nginx-rollout.role=replica',
      '--label',
      'nginx-rollout.port=9668',
      image('v1'),
    )
  })
  afterAll(() => {
    resetApp(APP)
    execFileSync('sh', [
      '-c',
      `docker rm --force --volumes e2e-victim-db e2e-label-impostor >/dev/null 2>&1; docker rmi ${hostile} >/dev/null 2>&1; true`,
    ])
  })

  it('deploys it twice and removes only its own containers: every other container is still there', async () => {
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
    const first = await runAction(inputs({ image: hostile }))
    expect(first.outputs.result).toBe('deployed')
    // The action's own labels on every replica: the image's cannot show through.
    const hostileReplica = JSON.parse(first.outputs.replicas)[0].name
    expect(
      docker(
        'inspect',
        '--format',
        '{{index .Config.Labels "nginx-rollout.color"}}|{{index .Config.Labels "nginx-rollout.port"}}',
        hostileReplica,
      ),
    ).toBe(`|${hostileReplica.split('-').pop()}`)
    const second = await runAction(inputs({ image: image('v3') }))
    expect(second.outputs.result).toBe('deployed')
    expect(second.log).toContain(
      'container "e2e-label-impostor" carries nginx-rollout labels but is not one the action created',
    )
    const own = () => replicasOf(APP).filter((r) => !r.startsWith('e2e-label-impostor '))
    expect(await eventually(() => own().length, 2)).toBe(2)
    expect(own().every((r) => r.includes(`${image('v3')} running`))).toBe(true)
    expect(docker('ps', '--all', '--filter', 'name=^e2e-victim-db$', '--format', '{{.Names}}')).toBe('e2e-victim-db')
    expect(docker('ps', '--all', '--filter', 'name=^e2e-label-impostor$', '--format', '{{.Names}}')).toBe(
      'e2e-label-impostor',
    )
    expect(await get(PORT)).toEqual({ status: 200, text: 'v3\n' })
  })
})

describe('an sshd with stock limits (MaxSessions 10)', () => {
  const APP = 'e2e-wide'
  const PORT = 18113
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    strategy: 'blue-green',
    replicas: '12',
    ports: '9701-9730',
    ...over,
  })
  beforeAll(() => resetApp(APP))
  afterAll(() => resetApp(APP))

  it('deploys 12 replicas blue-green, twice, with zero failed requests', async () => {
    expect(
      execFileSync('sh', ['-c', `grep -ci maxsessions ${join(process.cwd(), '.testhost/sshd_config')} || true`], {
        encoding: 'utf8',
      }).trim(),
    ).toBe('0')
    const first = await runAction(inputs({ image: image('v1') }))
    expect(first.outputs.result).toBe('deployed')
    const load = startLoad({ port: PORT, maxSeconds: 120 })
    await sleep(500)
    const second = await runAction(inputs({ image: image('v2') }))
    await sleep(500)
    const report = await load.stop()
    expect(second.outputs.result).toBe('deployed')
    expect(JSON.parse(second.outputs.replicas)).toHaveLength(12)
    expect(report.failed).toBe(0)
    expect(report.lastVersion).toBe('v2')
  })
})

describe('a registry that accepts connections and never answers', () => {
  const APP = 'e2e-hung'
  const PORT = 18114
  let server: net.Server
  const held: net.Socket[] = []
  beforeAll(async () => {
    resetApp(APP)
    server = net.createServer((s) => held.push(s))
    await new Promise<void>((r) => server.listen(5998, '127.0.0.1', () => r()))
  })
  afterAll(async () => {
    for (const s of held) s.destroy()
    await new Promise((r) => server.close(r))
    resetApp(APP)
  })

  it('fails within its deadline, changes nothing, and leaves the lock free', async () => {
    const inputs = { ...baseInputs(host, APP, PORT), replicas: '1', ports: '9731-9735' }
    expect((await runAction({ ...inputs, image: image('v1') })).outputs.result).toBe('deployed')
    const before = replicasOf(APP)
    const t0 = Date.now()
    const run = await runAction({ ...inputs, image: '127.0.0.1:5998/hung/app:v2', pull: 'true', 'pull-timeout': '5' })
    const seconds = (Date.now() - t0) / 1000
    expect(run.code).toBe(1)
    expect(run.log).toMatch(
      /pulling 127\.0\.0\.1:5998\/hung\/app:v2 failed on 127\.0\.0\.1:\d+ \(exit 124\) \(it ran into its deadline of 5s\)/,
    )
    expect(seconds).toBeLessThan(20)
    expect(replicasOf(APP)).toEqual(before)
    expect(existsSync(join(stateDir(APP), 'lock'))).toBe(false)
    expect(await get(PORT)).toEqual({ status: 200, text: 'v1\n' })
  })
})
