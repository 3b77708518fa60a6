// Drains end when nothing is in flight, not after a fixed sleep, and no step waits idle: end to end under
// load with fresh connections and with keep-alive connections, with 0.4 s requests and a 4 s one in flight.
import { jest } from '@jest/globals'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startLoad, type LoadReport } from '../../scripts/lib/load.mjs'
import {
  baseInputs,
  docker,
  eventually,
  managedConf,
  replicasOf,
  resetApp,
  runAction,
  stateDir,
  testHost,
  type ActionRun,
} from './harness.js'

jest.setTimeout(240_000)

const host = testHost()
const APP = 'e2e-drain'
const PORT = 18121
const image = (tag: string) => `nginx-rollout-test/app:${tag}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
// An app that ignores SIGTERM: docker stop waits its whole stop-timeout.
const inputs = (over: Record<string, string> = {}) => ({
  ...baseInputs(host, APP, PORT),
  replicas: '2',
  ports: '9741-9750',
  env: 'IGNORE_TERM=1',
  'stop-timeout': '8',
  'drain-seconds': '8',
  ...over,
})
const steps = (r: ActionRun) => r.log.split('\n').filter((l) => /^\[\d+\/\d+\] /.test(l))

async function deployUnderLoad(tag: string, keepAlive: boolean): Promise<{ run: ActionRun; load: LoadReport }> {
  const load = startLoad({ port: PORT, keepAlive, workers: { get: 3, post: 2, slow: 3, long: 2 }, maxSeconds: 120 })
  await sleep(1000) // the long requests are in flight when the first batch swaps
  const run = await runAction(inputs({ image: image(tag) }))
  await sleep(4500) // every long request sent before the end of the run gets its answer
  const report = await load.stop()
  if (report.failed !== report.resets || (!keepAlive && report.failed))
    console.log(JSON.stringify({ ...report, events: undefined }))
  return { run, load: report }
}

beforeAll(() => resetApp(APP))
afterAll(() => resetApp(APP))

describe('drains', () => {
  it('with fresh connections: waits for the 4 s requests, ends as soon as nothing is in flight, fails nothing, and does not wait for docker stop', async () => {
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
    const { run, load } = await deployUnderLoad('v2', false)
    expect(run.outputs.result).toBe('deployed')
    expect(load.failed).toBe(0)
    expect(load.byVersion.v1).toBeGreaterThan(0)
    expect(load.events.filter((e) => e.kind === 'long' && e.ok).length).toBeGreaterThan(2)
    const drains = steps(run).filter((l) => / drain /.test(l))
    expect(drains).toHaveLength(2)
    // Each drain ended on its own, before drain-seconds, once the long requests had their answers.
    for (const d of drains) {
      const after = Number(/nothing in flight after ([\d.]+)s/.exec(d)?.[1])
      expect(after).toBeGreaterThan(0)
      expect(after).toBeLessThan(8)
    }
    // The app ignores SIGTERM for stop-timeout 8 s: the run does not wait for that, the host does.
    expect(Number(run.outputs['duration-seconds'])).toBeLessThan(25)
    expect(run.summary).toMatch(
      /all traffic on the new version after\*\* [\d.]+\ss · \*\*run ended after\*\* [\d.]+\ss/,
    )
    expect(await eventually(() => replicasOf(APP).length, 2, 30_000)).toBe(2)
  })

  it('with keep-alive connections: the only failures are resets of idle connections by a reload, counted per reload', async () => {
    const { run, load } = await deployUnderLoad('v1', true)
    expect(run.outputs.result).toBe('deployed')
    expect(load.failed).toBe(load.resets)
    expect(load.events.filter((e) => e.kind === 'long' && !e.ok)).toEqual([])
    const reloads = steps(run).filter((l) => /\] route /.test(l)).length
    console.log(
      `keep-alive clients: ${load.resets} resets in ${reloads} reloads (${load.answered} requests), nginx ${/running nginx ([\d.]+)/.exec(run.log)?.[1]}`,
    )
    // nginx 1.22 has no keepalive_min_timeout: the managed file must not name it, or nginx -t would refuse it.
    expect(managedConf(APP)).not.toContain('keepalive_min_timeout')
  })

  it('reports, in the next run, a background stop that failed, and leaves nothing behind', async () => {
    const run = await runAction(inputs({ image: image('v2') }))
    expect(run.outputs.result).toBe('deployed')
    const retired = join(stateDir(APP), 'retired')
    // A retirement that failed leaves its report, and the container it could not remove.
    expect(await eventually(() => replicasOf(APP).length, 2, 30_000)).toBe(2)
    mkdirSync(retired, { recursive: true })
    writeFileSync(
      join(retired, '20261127T000000-4242.txt'),
      'Error response from daemon: cannot stop container: e2e-drain-9749: tried to kill container, but did not receive an exit event\n',
    )
    docker(
      'create',
      '--name',
      `${APP}-9749`,
      '--label',
      `nginx-rollout.app=${APP}`,
      '--label',
      'nginx-rollout.role=replica',
      '--label',
      `nginx-rollout.image=${image('v1')}`,
      '--label',
      'nginx-rollout.port=9749',
      '--label',
      'nginx-rollout.color=',
      image('v1'),
    )
    const next = await runAction(inputs({ image: image('v3') }))
    expect(next.outputs.result).toBe('deployed')
    const warning = next.log.split('::warning::').find((w) => w.startsWith("an earlier run's background stop"))
    expect(warning).toMatch(
      new RegExp(
        `^an earlier run's background stop on 127\\.0\\.0\\.1:${host.port} failed \\(what is left is removed as strays\\): 20261127T000000-4242\\.txt\\nError response from daemon: cannot stop container: e2e-drain-9749`,
      ),
    )
    expect(next.summary).toContain("> an earlier run's background stop on")
    // The report is read once; the container it left is removed as a stray.
    expect(readdirSync(retired)).toEqual([])
    expect(next.log).toMatch(/\] remove e2e-drain-9749: ok/)
    expect(
      await eventually(() => replicasOf(APP).map((r) => r.split(' ')[1]), [image('v3'), image('v3')], 30_000),
    ).toEqual([image('v3'), image('v3')])
  })
})
