// A cancelled workflow run, end to end: the runner sends SIGINT (then SIGTERM 7.5 s later). Sent at several
// points of a rolling and a blue-green deploy under load: no request fails, one version serves afterwards,
// the lock is free, the summary says cancelled, and the next run deploys normally.
import { jest } from '@jest/globals'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { startLoad } from '../../scripts/lib/load.mjs'
import { baseInputs, get, resetApp, runAction, stateDir, testHost, type ActionRun } from './harness.js'

jest.setTimeout(240_000)

const host = testHost()
const image = (tag: string) => `nginx-rollout-test/app:${tag}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Runs a deploy and sends it SIGINT once its log shows `when`; returns the run and how long it took after. */
async function cancelledWhen(inputs: Record<string, string>, when: RegExp) {
  let signalledAt = 0
  const run = await runAction(inputs, {
    onStdout: (soFar, child) => {
      if (signalledAt || !when.test(soFar)) return
      signalledAt = Date.now()
      child.kill('SIGINT')
    },
  })
  return { run, afterSignalMs: Date.now() - signalledAt, signalled: signalledAt > 0 }
}

/** The versions that answered GET / over the last `ms` of a load report. */
const versionsAtTheEnd = async (port: number): Promise<Set<string>> => {
  const seen = new Set<string>()
  for (let i = 0; i < 20; i++) seen.add((await get(port, '/')).text.trim())
  return seen
}

/** Where to cancel: as the log shows a step done (steps are logged as they end). */
const points = (drains: number) => [
  // Before any change to the app: the record of requests is on, the first new replica starts.
  { name: 'while the first new replica starts', when: /\[1\/\d+\] start nginx's record[^\n]*: ok/ },
  // After the first route: traffic on the new replicas, the old ones draining and ready.
  { name: 'right after the first route', when: /\[\d+\/\d+\] route traffic to [^\n]*: ok/ },
  // Every request on the new version, the old replicas still running for the bake.
  { name: 'during the bake', when: new RegExp(`(\\[\\d+/\\d+\\] drain [^\\n]*: ok[^\\n]*\\n[\\s\\S]*){${drains}}`) },
]

for (const strategy of ['rolling', 'blue-green'] as const) {
  describe(`a cancelled ${strategy} deploy`, () => {
    const APP = `e2e-cancel-${strategy === 'rolling' ? 'r' : 'bg'}`
    const PORT = strategy === 'rolling' ? 18311 : 18312
    const inputs = (over: Record<string, string> = {}) => ({
      ...baseInputs(host, APP, PORT),
      strategy,
      replicas: '3',
      ports: strategy === 'rolling' ? '9561-9580' : '9581-9600',
      'bake-seconds': '20',
      ...over,
    })
    beforeAll(async () => {
      resetApp(APP)
      expect((await runAction(inputs({ image: image('v1'), 'bake-seconds': '0' }))).outputs.result).toBe('deployed')
    })
    afterAll(() => resetApp(APP))

    let tag = 1
    for (const point of points(strategy === 'rolling' ? 3 : 1))
      it(`ends clean when SIGINT arrives ${point.name}`, async () => {
        const before = (await get(PORT, '/')).text.trim()
        const next = `v${(tag % 4) + 1}`
        tag++
        const load = startLoad({ port: PORT, maxSeconds: 120 })
        await sleep(700)
        const { run, afterSignalMs, signalled } = await cancelledWhen(inputs({ image: image(next) }), point.when)
        await sleep(700)
        const report = await load.stop()
        // A run that ended before the point shows why (its log), instead of only 'false'.
        if (!signalled)
          throw new Error(`the run ended (${run.outputs.result}) before its log showed ${point.when}:\n${run.stdout}`)
        expect(run.outputs.result).toBe('cancelled')
        expect(run.code).not.toBe(0)
        // Within the runner's grace period (SIGTERM comes 7.5 s after SIGINT).
        expect(afterSignalMs).toBeLessThan(7500)
        expect(run.summary).toMatch(/^## nginx-rollout: \S+ cancelled/m)
        expect(report.failed).toBe(0)
        const serving = await versionsAtTheEnd(PORT)
        expect(serving.size).toBe(1)
        expect([before, next]).toContain([...serving][0])
        expect(existsSync(join(stateDir(APP), 'lock'))).toBe(false)
        // The next run deploys normally.
        const again: ActionRun = await runAction(inputs({ image: image(before), 'bake-seconds': '0' }))
        expect(again.outputs.result).toBe('deployed')
        expect((await get(PORT, '/')).text.trim()).toBe(before)
      })
  })
}
