// The foundation's promise, end to end: the built action against real dockerd, sshd and nginx, under
// live GET, POST and slow traffic through nginx.
import { jest } from '@jest/globals'
import { existsSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { underLoad as loadWhile, type LoadReport } from '../../scripts/lib/load.mjs'
import {
  baseInputs,
  docker,
  eventually,
  get,
  managedConf,
  replicasOf,
  resetApp,
  runAction,
  stateDir,
  testHost,
  type ActionRun,
} from './harness.js'

jest.setTimeout(180_000)

const APP = 'e2e-roll'
const PORT = 18081
const host = testHost()
const inputs = (over: Record<string, string> = {}) => ({
  ...baseInputs(host, APP, PORT),
  replicas: '3',
  ports: '9311-9320',
  ...over,
})
const image = (tag: string) => `nginx-rollout-test/app:${tag}`

/** Runs the action while the load client sends traffic through nginx; the load starts before and ends after. */
async function underLoad(action: () => Promise<ActionRun>): Promise<{ run: ActionRun; load: LoadReport }> {
  const { value: run, load } = await loadWhile({ port: PORT }, action, (r) => explain(r))
  return { run, load }
}

const explain = (r: ActionRun, load?: LoadReport) =>
  `exit ${r.code}\n${r.stdout
    .split('\n')
    .filter((l) => !l.startsWith('::debug::'))
    .join('\n')}\n${r.stderr}` + (load ? `\nload: ${JSON.stringify({ ...load, events: undefined })}` : '')

beforeAll(() => resetApp(APP))
afterAll(() => resetApp(APP))

describe('rolling deploy', () => {
  it('sets everything up on a bare Docker host', async () => {
    const r = await runAction(inputs({ image: image('v1') }))
    expect({ code: r.code, result: r.outputs.result }).toEqual({ code: 0, result: 'deployed' })
    expect(replicasOf(APP)).toEqual([
      `${APP}-9311 ${image('v1')} running`,
      `${APP}-9312 ${image('v1')} running`,
      `${APP}-9313 ${image('v1')} running`,
    ])
    expect(docker('inspect', '--format', '{{.State.Running}} {{.HostConfig.NetworkMode}}', `${APP}-lb`)).toBe(
      'true host',
    )
    expect(await get(PORT)).toEqual({ status: 200, text: 'v1\n' })
    expect(JSON.parse(r.outputs.replicas)).toEqual(
      [9311, 9312, 9313].map((port) => ({
        host: `127.0.0.1:${host.port}`,
        name: `${APP}-${port}`,
        port,
        image: image('v1'),
      })),
    )
    expect(r.outputs['previous-image']).toBe('')
    expect(r.summary).toContain(`## nginx-rollout: ${APP} deployed`)
  })

  it('deploys v2 under live traffic with zero failed requests', async () => {
    const { run, load } = await underLoad(() => runAction(inputs({ image: image('v2') })))
    expect(run.code).toBe(0)
    expect(load.failed).toBe(0)
    expect(load.answered).toBe(load.sent)
    expect(load.ok).toBeGreaterThan(1000)
    expect(load.byVersion.v1).toBeGreaterThan(0)
    expect(load.byVersion.v2).toBeGreaterThan(0)
    expect(load.lastVersion).toBe('v2')
    expect(run.outputs).toMatchObject({ result: 'deployed', image: image('v2'), 'previous-image': image('v1') })
    expect(Number(run.outputs['duration-seconds'])).toBeGreaterThan(0)
    expect(JSON.parse(run.outputs.replicas).map((r: { image: string }) => r.image)).toEqual([
      image('v2'),
      image('v2'),
      image('v2'),
    ])
    // Old containers are gone once the deploy succeeded (retired on the host, after the run); only the new set is left.
    const newSet = [
      `${APP}-9314 ${image('v2')} running`,
      `${APP}-9315 ${image('v2')} running`,
      `${APP}-9316 ${image('v2')} running`,
    ]
    expect(await eventually(() => replicasOf(APP), newSet)).toEqual(newSet)
    expect(run.summary).toMatch(/\| \d+ \| start e2e-roll-9314 \(:9314\) from nginx-rollout-test\/app:v2 \|/)
    expect(run.summary).toContain('### Health gates')
    expect(run.summary).toContain(
      '<details><summary>What this run changed in /etc/nginx/conf.d/e2e-roll.conf</summary>',
    )
    expect(run.summary).toContain(
      `-    server 127.0.0.1:9311 weight=10 max_fails=3 fail_timeout=30s; # e2e-roll-9311 nginx-rollout-test/app:v1 on 127.0.0.1:${host.port}`,
    )
    expect(run.stdout).toMatch(/^::group::Deploy$/m)
    // nginx's record of requests on first; 3 batches of gate, route (the outgoing replica as backup), drain
    // while checking the new one again and judging it on real traffic; the next batch starting during each
    // drain; two background stops; the record off; one retirement at the end.
    expect(run.stdout).toMatch(/^\[1\/17\] start nginx's record of the app's requests/m)
    expect(run.stdout).toMatch(
      /^\[4\/17\] route traffic to e2e-roll-9314, e2e-roll-9312, e2e-roll-9313 \(one nginx reload; requests recorded, e2e-roll-9311 as backup\): ok/m,
    )
    expect(run.stdout).toMatch(
      /^\[5\/17\] start e2e-roll-9315 \(:9315\) from nginx-rollout-test\/app:v2 \(in the background, while the batch before drains\): ok/m,
    )
    expect(run.stdout).toMatch(
      /^\[6\/17\] drain e2e-roll-9311 .*judging e2e-roll-9314 on real traffic: ok .*real traffic: pass/m,
    )
    expect(run.stdout).toMatch(
      /^\[16\/17\] route traffic to .*\(one nginx reload: the record of requests off, no backup\): ok/m,
    )
    expect(run.stdout).toMatch(
      /^\[17\/17\] retire e2e-roll-9311, e2e-roll-9312, e2e-roll-9313 \(stop and remove on the host, in the background\): ok/m,
    )
  })

  it('rolls back an image that never becomes healthy: the previous version keeps serving, nginx.conf unchanged, zero failed requests', async () => {
    const before = managedConf(APP)
    const { run, load } = await underLoad(() => runAction(inputs({ image: image('unhealthy'), 'health-timeout': '3' })))
    expect(run.code).not.toBe(0)
    expect(run.outputs.result).toBe('rolled-back')
    expect(load.failed).toBe(0)
    expect(load.answered).toBe(load.sent)
    expect(Object.keys(load.byVersion)).toEqual(['v2'])
    expect(managedConf(APP)).toBe(before)
    expect(replicasOf(APP)).toEqual([
      `${APP}-9314 ${image('v2')} running`,
      `${APP}-9315 ${image('v2')} running`,
      `${APP}-9316 ${image('v2')} running`,
    ])
    expect(run.outputs).toMatchObject({ image: image('v2'), 'previous-image': image('v2') })
    expect(run.stdout).toContain(
      '::error::deploy of nginx-rollout-test/app:unhealthy failed and was rolled back: e2e-roll-9311 did not become healthy within 3.0s: last probe GET /health -> 404',
    )
    expect(run.summary).toContain('## nginx-rollout: e2e-roll rolled back')
    expect(run.summary).toContain('e2e-roll-9311: last log lines')
    expect(run.summary).toContain('rollback: remove e2e-roll-9311 |')
  })

  it('rolls back an image whose Docker HEALTHCHECK fails even though HTTP answers', async () => {
    const run = await runAction(inputs({ image: image('docker-unhealthy'), 'health-timeout': '4' }))
    expect(run.outputs.result).toBe('rolled-back')
    expect(run.summary).toContain('docker health unhealthy')
    expect(run.summary).toContain('docker health check output')
    expect((await get(PORT)).text).toBe('v2\n')
  })

  it('plans a dry run without changing anything', async () => {
    // This app's replicas and its nginx container (another suite runs beside this one on the same host).
    const ours = () =>
      [
        docker('ps', '--all', '--filter', `label=nginx-rollout.app=${APP}`, '--format', '{{.ID}} {{.Status}}'),
        docker('ps', '--all', '--filter', `name=^${APP}-lb$`, '--format', '{{.ID}} {{.Status}}'),
      ].join('\n')
    const containers = ours()
    const conf = managedConf(APP)
    const run = await runAction(inputs({ image: image('v3'), 'dry-run': 'true' }))
    expect({ code: run.code, result: run.outputs.result }).toEqual({ code: 0, result: 'planned' })
    expect(run.stdout).toMatch(/^1\. start nginx's record of the app's requests/m)
    expect(run.stdout).toContain('2. start e2e-roll-9311 (:9311) from nginx-rollout-test/app:v3')
    expect(run.stdout).toContain(
      `+    server 127.0.0.1:9311 weight=10 max_fails=3 fail_timeout=30s; # e2e-roll-9311 nginx-rollout-test/app:v3 on 127.0.0.1:${host.port}`,
    )
    expect(run.summary).toContain('planned (dry run: nothing changed)')
    expect(containers).toMatch(/Up/)
    expect(ours().replace(/Up [^\n]*/g, 'Up')).toBe(containers.replace(/Up [^\n]*/g, 'Up'))
    expect(managedConf(APP)).toBe(conf)
  })

  it('waits for a live lock and fails naming its holder, then takes over a lock left by a dead run', async () => {
    const lock = join(stateDir(APP), 'lock')
    mkdirSync(lock, { recursive: true })
    writeFileSync(join(lock, 'owner'), 'https://github.com/acme/shop/actions/runs/42 by alice\n')
    writeFileSync(join(lock, 'token'), 'someone-else\n')
    writeFileSync(join(lock, 'heartbeat'), '')
    const held = await runAction(inputs({ image: image('v3'), 'lock-timeout': '3' }))
    expect(held.code).not.toBe(0)
    expect(held.outputs.result).toBe('failed')
    expect(held.stdout).toContain(
      `another deploy of e2e-roll is running: lock held by https://github.com/acme/shop/actions/runs/42 by alice (heartbeat`,
    )
    expect(held.stdout).toContain(`on 127.0.0.1:${host.port}; gave up after lock-timeout 3s`)
    expect(held.stdout).toContain('held by https://github.com/acme/shop/actions/runs/42 by alice')
    expect(replicasOf(APP).every((r) => r.includes(':v2 '))).toBe(true)

    const longAgo = new Date(Date.now() - 10 * 60_000)
    utimesSync(join(lock, 'heartbeat'), longAgo, longAgo)
    const taken = await runAction(inputs({ image: image('v3') }))
    expect(taken.code).toBe(0)
    expect(taken.stdout).toContain('took over a stale lock of https://github.com/acme/shop/actions/runs/42 by alice')
    expect((await get(PORT)).text).toBe('v3\n')
    expect(existsSync(lock)).toBe(false)
  })
})

describe('hostile input', () => {
  const marker = '/tmp/nginx-rollout-owned'
  beforeEach(() => rmSync(marker, { force: true }))

  it('rejects a shell payload in image before connecting', async () => {
    const run = await runAction(inputs({ image: `v2; touch ${marker}` }))
    expect(run.code).toBe(1)
    expect(run.stdout).toContain(
      "image: expected a Docker image reference like ghcr.io/org/app:1.2.3, got 'v2; touch /tmp/nginx-rollout-owned'",
    )
    expect(run.stdout).not.toContain('::group::Connect')
    expect(existsSync(marker)).toBe(false)
  })

  it('passes payloads in env values and quoted run-args to the container as data', async () => {
    const payload = `$(touch ${marker}); \`touch ${marker}\` '"`
    const run = await runAction(
      inputs({
        image: image('v1'),
        replicas: '1',
        env: `PAYLOAD=${payload}`,
        'run-args': `--label 'payload=$(touch ${marker})'`,
      }),
    )
    expect(run.code).toBe(0)
    expect(existsSync(marker)).toBe(false)
    const name = JSON.parse(run.outputs.replicas)[0].name
    expect(docker('inspect', '--format', '{{range .Config.Env}}{{println .}}{{end}}', name)).toContain(
      `PAYLOAD=${payload}`,
    )
    expect(docker('inspect', '--format', '{{index .Config.Labels "payload"}}', name)).toBe(`$(touch ${marker})`)
    // The env value is a secret as far as logs go: masked, and absent from every command line.
    const commandLines = run.stdout.split('\n').filter((l) => l.startsWith('::debug::$ '))
    expect(commandLines.some((l) => l.includes('docker create'))).toBe(true)
    expect(commandLines.filter((l) => l.includes('`touch'))).toEqual([])
  })
})

describe('host identity', () => {
  it('stops before authentication on a wrong fingerprint and shows the one the host presented', async () => {
    const run = await runAction(
      inputs({ image: image('v1'), fingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }),
    )
    expect(run.code).toBe(1)
    expect(run.stdout).toContain(
      `host key verification failed for 127.0.0.1:${host.port}: the host presented ${host.fingerprint}, expected SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA. Authentication was not attempted.`,
    )
  })

  it('refuses to connect without a fingerprint and says how to get one', async () => {
    const run = await runAction(inputs({ image: image('v1'), fingerprint: '' }))
    expect(run.code).toBe(1)
    expect(run.stdout).toContain(`ssh-keyscan -p ${host.port} 127.0.0.1 | ssh-keygen -lf -`)
  })
})
