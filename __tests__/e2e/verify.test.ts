// Every deploy judged on real traffic, end to end: a version that passes /health but fails its routes, that
// lost a route, or that crashes a few seconds after it starts is switched back, in rolling and blue-green;
// a healthy version of a flaky app is not; a deploy without traffic is not held up. Under the issue's load:
// 24 clients (10 GET, 6 POST, 8 0.4 s GET) through nginx, from 2 s before the run to 2 s after.
import { jest } from '@jest/globals'
import { outsideClient, startLoad, type LoadReport } from '../../scripts/lib/load.mjs'
import { baseInputs, docker, get, resetApp, runAction, testHost, type ActionRun } from './harness.js'

jest.setTimeout(240_000)

const host = testHost()
const image = (tag: string) => `nginx-rollout-test/app:${tag}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const WORKERS = { get: 10, post: 6, slow: 8 }
const CLIENTS = WORKERS.get + WORKERS.post + WORKERS.slow

/** Runs `action` inside the load, which starts 2 s before it and ends 2 s after; prints failures with the run. */
async function judgedUnderLoad(port: number, action: () => Promise<ActionRun>, workers: typeof WORKERS = WORKERS) {
  const load = startLoad({ port, workers, maxSeconds: 240 })
  await sleep(2000)
  const run = await action()
  await sleep(2000)
  const report: LoadReport = await load.stop()
  const share = report.failed / report.sent
  if (report.failed)
    console.log(
      `${run.stdout
        .split('\n')
        .filter((l) => /^\[\d+\/\d+\]|^result:|^::error::/.test(l))
        .join('\n')}\n` +
        `load: ${report.failed} of ${report.sent} failed (${(100 * share).toFixed(2)}%): ${report.sampleErrors.join('; ')}`,
    )
  return { run, load: report, share }
}

/**
 * How long the version under test failed requests: from the first failed request's start to the last one's.
 * The issue's targets (0.3 s; at most 1% of requests in rolling, 2% in blue-green) are for `npm run bench` on
 * an otherwise idle machine. Here the machine is loaded and 1-2.3 s were measured (the verdict comes within
 * tenths of a second; restoring the previous nginx config takes most of the rest): asserted at 3 s, the
 * shortfall said in docs/limitations.md.
 */
function failingSeconds(load: LoadReport): number {
  const failed = load.events.filter((e) => !e.ok)
  if (!failed.length) return 0
  return (Math.max(...failed.map((e) => e.at + e.ms)) - Math.min(...failed.map((e) => e.at))) / 1000
}

/**
 * The switch back's first effect, as the rollback's restore step says it: how long after the verdict's word
 * requests went to the replicas from before the run (the flag the judged file checks), before the reload.
 * Also: the flag is gone once the previous file is back.
 */
function switchedBack(run: ActionRun, app: string): number | undefined {
  const m =
    /restore the previous nginx config[^\n]*requests went to the previous replicas ([\d.]+)s after the word/.exec(
      run.log,
    )
  const flag = `/var/log/nginx/nginx-rollout-${app}.switched-back`
  expect(docker('exec', `${app}-lb`, 'sh', '-c', `test -e ${flag} && echo there || echo gone`)).toBe('gone')
  return m ? Number(m[1]) : undefined
}

/**
 * Unless `holds`, fails with `what` and what the run's log said of the judgement (its lines on real traffic,
 * the bake, slowness and stalls).
 */
function expectJudged(run: ActionRun, holds: boolean, what: string): void {
  if (holds) return
  const said = run.log
    .split('\n')
    .filter((l) => /real traffic|bake|slower|stall/i.test(l))
    .map((l) => l.slice(0, 600))
  throw new Error(`${what}; the judgement said:\n${said.join('\n')}`)
}

/** The run's result is `result`; when not, the failure says what the run's log said of the judgement. */
const expectResult = (run: ActionRun, result: string): void =>
  expectJudged(run, run.outputs.result === result, `result ${run.outputs.result}, expected ${result}`)

/** The verification rows of the summary, as `| replicas | verdict |` pairs. */
const verdicts = (run: ActionRun): string[] =>
  [...run.summary.matchAll(/^\| ([^|]+) \| \*{0,2}(pass|fail|not judged)\*{0,2} \|/gm)].map((m) => `${m[1]}: ${m[2]}`)

for (const strategy of ['rolling', 'blue-green'] as const) {
  describe(`judged on real traffic: ${strategy}`, () => {
    const APP = `e2e-judge-${strategy === 'rolling' ? 'r' : 'bg'}`
    const PORT = strategy === 'rolling' ? 18301 : 18302
    const inputs = (over: Record<string, string> = {}) => ({
      ...baseInputs(host, APP, PORT),
      strategy,
      replicas: '3',
      ports: strategy === 'rolling' ? '9501-9520' : '9521-9540',
      ...over,
    })
    beforeEach(async () => {
      resetApp(APP)
      expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
    })
    afterAll(() => resetApp(APP))

    it('switches back a version whose /health answers 200 but whose routes answer 500: its failures end within 3 s', async () => {
      const { run, share, load } = await judgedUnderLoad(PORT, () => runAction(inputs({ image: image('broken') })))
      expect(run.outputs.result).toBe('rolled-back')
      expect(run.code).not.toBe(0)
      expect(run.log).toMatch(
        /real traffic: (over the last seconds )?the new version answered 5xx to \d+ requests where [\d.]+ were expected from the old version on the same routes \(500: \d+/,
      )
      expect(failingSeconds(load)).toBeLessThanOrEqual(3)
      expect(share).toBeLessThanOrEqual(0.1)
      // Requests went back at the word, before the reload (the bound is loose: the machine is loaded).
      expect(switchedBack(run, APP)).toBeLessThan(1)
      // While it was judged, nginx tried every GET it answered 500 again on another server, the old ones last:
      // only the POSTs (never retried) can have failed.
      expect(load.events.filter((e) => !e.ok && e.kind !== 'post')).toEqual([])
      expect((await get(PORT, '/')).text).toBe('v1\n')
      expect(verdicts(run).some((v) => v.endsWith(': fail'))).toBe(true)
    })

    it('switches back a version that lost a route the old one served (404 on POST /cgi-bin/echo): its failures end within 3 s', async () => {
      const { run, share, load } = await judgedUnderLoad(PORT, () =>
        runAction(inputs({ image: image('v2'), env: 'NOT_FOUND=echo' })),
      )
      expect(run.outputs.result).toBe('rolled-back')
      expect(run.log).toMatch(
        /real traffic: (over the last seconds )?the new version answered 4xx to \d+ requests where [\d.]+ were expected from the old version on the same routes \(404: \d+/,
      )
      expect(failingSeconds(load)).toBeLessThanOrEqual(3)
      expect(share).toBeLessThanOrEqual(0.1)
      expect(switchedBack(run, APP)).toBeLessThan(1)
      expect((await get(PORT, '/')).text).toBe('v1\n')
    })

    it('switches back, in the bake, a version that exits 12 s after it starts, failing almost nothing', async () => {
      // All three in one route (one batch in rolling, the switch in blue-green), which comes 2-9 s after they
      // start (that long under CI load), well before they die: they die during the 20 s bake, the old replicas
      // backups.
      const oneRoute: Record<string, string> = strategy === 'rolling' ? { 'batch-size': '3' } : {}
      const { run, load } = await judgedUnderLoad(PORT, () =>
        runAction(inputs({ image: image('v2'), ...oneRoute, env: 'CRASH_AFTER=12', 'bake-seconds': '20' })),
      )
      expect(run.outputs.result).toBe('rolled-back')
      expect(run.log).toMatch(
        /stopped \(exited, exit code 137\) after it took traffic|real traffic: the new version answered 5xx/,
      )
      // nginx falls back to the old replicas (backup servers) for requests a crashed replica refuses: only
      // the requests in flight on it when it died fail (one at most per client, and only those nginx had
      // begun to answer or that were POSTs), all within moments of the crash.
      expect(load.failed).toBeLessThanOrEqual(CLIENTS)
      expect(failingSeconds(load)).toBeLessThanOrEqual(2)
      expect((await get(PORT, '/')).text).toBe('v1\n')
      expect(run.summary).toMatch(/\*\*Bake\*\*.*fail/)
    })

    it('switches back, within the default bake, a version 10x slower on its routes, with the numbers in the verdict', async () => {
      // bake-seconds as by default (the tests' own is 0): slowness needs 20 slow answers, and in blue-green a
      // 10 s bake gave this load's 4 s requests too few (deployed, in one CI run).
      const { run } = await judgedUnderLoad(PORT, () =>
        runAction(inputs({ image: image('v2'), env: 'SLOW_FACTOR=10', 'bake-seconds': '30' })),
      )
      // With what the judgement said: a slow version that ships shows why.
      expectResult(run, 'rolled-back')
      // Seen in nginx's record (the requests that ended) or in the requests nginx still waits on, whichever first.
      expect(run.log).toMatch(
        /real traffic: (over the last seconds )?the new version is slower: (\d+ of its requests took longer than 2x the old version's p95 and 100 ms more on their route .*median \d+ ms and p95 \d+ ms against the old version's \d+ ms and \d+ ms|\d+ of its requests were still unanswered after \d+ ms \(the longest waited \d+ ms\), where the old version took or held at most \d+ ms on any request)/,
      )
      expect((await get(PORT, '/')).text).toBe('v1\n')
    })

    it('deploys a good version while a scanner asks for missing paths at 25 a second and another client gives up on its requests', async () => {
      const scanner = outsideClient({
        port: PORT,
        perSecond: 25,
        next: (i) => ({ path: `/wp-admin/${i}-${Math.random().toString(36).slice(2)}.php` }),
      })
      const quitter = outsideClient({
        port: PORT,
        perSecond: 10,
        next: () => ({ path: '/cgi-bin/slow', abortMs: 100 }),
      })
      try {
        const { run } = await judgedUnderLoad(PORT, () =>
          runAction(inputs({ image: image('v2'), 'bake-seconds': '8' })),
        )
        expect(run.outputs.result).toBe('deployed')
        expect(verdicts(run).every((v) => v.endsWith(': pass'))).toBe(true)
        // What the judgement needs (the session for nginx's changes, the record's follow) started as the run
        // planned, before its first step: the reload that turns the record on waits for neither.
        const planned = run.log.indexOf('::group::Plan:')
        expect(run.log.slice(0, planned).match(/ \(followed\)$/gm)).toHaveLength(2)
      } finally {
        const sent = [await scanner.stop(), await quitter.stop()]
        // The outside clients did ask: a scanner that sent nothing would prove nothing.
        expect(sent[0]).toBeGreaterThan(100)
        expect(sent[1]).toBeGreaterThan(30)
      }
      expect((await get(PORT, '/')).text).toBe('v2\n')
      // The location the action probes to know a reload took effect tells a client nothing.
      expect((await get(PORT, `/.nginx-rollout/${APP}/config-id`)).status).toBe(404)
    })
  })
}

describe('judged on real traffic: a route that never answers, a judgement that cannot run', () => {
  const APP = 'e2e-judge-hang'
  const PORT = 18304
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    replicas: '3',
    ports: '9751-9770',
    ...over,
  })
  beforeEach(async () => {
    resetApp(APP)
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
  })
  afterAll(() => resetApp(APP))

  it('switches back, within the default bake, a version whose POST route never answers', async () => {
    // nginx's record has none of these requests until the clients give up (15 s): the requests nginx is still
    // waiting on show them first. bake-seconds as by default (the tests' own is 0).
    const { run, load } = await judgedUnderLoad(PORT, () =>
      runAction(inputs({ image: image('v2'), env: 'HANG_ON=echo', 'bake-seconds': '30' })),
    )
    expect(run.outputs.result).toBe('rolled-back')
    expect(run.log).toMatch(
      /real traffic: (over the last seconds )?the new version is slower: (\d+ of its requests were still unanswered after \d+ ms|.*"POST \/cgi-bin\/echo")/,
    )
    // Gone back within seconds of the first held request, not after the clients' 15 s: the 6 POST clients
    // lost at most one request each (the one held when it went back) and no GET failed.
    expect(load.events.filter((e) => !e.ok && e.kind !== 'post')).toEqual([])
    expect(load.failed).toBeLessThanOrEqual(WORKERS.post)
    expect(Number(run.outputs['duration-seconds'])).toBeLessThan(40)
    expect((await get(PORT, '/')).text).toBe('v1\n')
  })

  it('fails the first route of a version nginx took out after its first failed requests (max-fails 1), though they were fewer than 5', async () => {
    // GETs only: every 500 is tried again on another server and counts for max_fails, so nginx takes the new
    // replica out at its first failure, and the record then shows it no more: before, the route ended "not
    // judged" after verify-seconds with 2-4 errors, and the next routes did the same.
    const { run, load } = await judgedUnderLoad(
      PORT,
      () => runAction(inputs({ image: image('broken'), 'max-fails': '1' })),
      { get: 10, post: 0, slow: 8 },
    )
    expectResult(run, 'rolled-back')
    // Said whole when it is not (it was once not judged, in 1 of about 10 runs, and the log was gone).
    expectJudged(run, /: fail$/.test(verdicts(run)[0] ?? ''), `first route ${verdicts(run)[0]}, expected fail`)
    expect(verdicts(run).filter((v) => v.endsWith(': not judged'))).toEqual([])
    expect(run.log).toMatch(
      /real traffic: (nginx took e2e-judge-hang-\d+ out after its failed requests \(max-fails 1\): )?the new version answered 5xx/,
    )
    expect(load.failed).toBe(0)
    expect((await get(PORT, '/')).text).toBe('v1\n')
  })

  it('fails the route as "could not judge" and goes back when nginx\'s record cannot be followed', async () => {
    // The record's file cannot be emptied (a directory stands in its place): the follow ends at once.
    const record = `/var/log/nginx/nginx-rollout-${APP}.log`
    docker('exec', `${APP}-lb`, 'sh', '-c', `rm -f ${record} && mkdir -p ${record}`)
    try {
      const { run } = await judgedUnderLoad(PORT, () => runAction(inputs({ image: image('v2') })))
      expect(run.outputs.result).not.toBe('deployed')
      // Usually the follow ends first and the route fails as "could not judge"; now and then (once in a CI
      // run) the route's own nginx -t comes first and refuses the access_log that is a directory. Either way
      // the run says why and goes back: never a quiet deploy without a judgement.
      expect(run.log).toMatch(
        /could not judge: following nginx's record of e2e-judge-hang's requests ended \((exit \d+|the SSH channel)|nginx -t rejected the configuration with the new file/,
      )
      expect((await get(PORT, '/')).text).toBe('v1\n')
    } finally {
      docker('exec', `${APP}-lb`, 'rmdir', record)
    }
  })
})

/**
 * Stops every process of `app`'s replicas of `image` for `ms`, as a host that stalls does to them (Docker
 * still says running; its own pause would say paused, a stopped replica to the watch). Returns how many.
 */
async function stall(app: string, image: string, ms: number): Promise<number> {
  const ids = docker(
    'ps',
    '--filter',
    `label=nginx-rollout.app=${app}`,
    '--filter',
    `ancestor=${image}`,
    '--format',
    '{{.ID}}',
  )
    .split('\n')
    .filter(Boolean)
  const pids = ids.flatMap((id) =>
    docker('top', id, '-eo', 'pid')
      .split('\n')
      .slice(1)
      .map(Number)
      .filter((pid) => pid > 0),
  )
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of pids)
      try {
        process.kill(pid, sig)
      } catch {
        // A CGI process that ended meanwhile.
      }
  }
  signal('SIGSTOP')
  await sleep(ms)
  signal('SIGCONT')
  return pids.length
}

describe('judged on real traffic: no false alarm, no wait without traffic', () => {
  const APP = 'e2e-judge-ok'
  const PORT = 18303
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    replicas: '3',
    ports: '9541-9560',
    ...over,
  })
  beforeAll(() => resetApp(APP))
  afterAll(() => resetApp(APP))

  it('deploys a healthy version of an app whose old and new versions both answer 2% 5xx', async () => {
    const flaky = 'ERROR_PERCENT=2'
    expect((await runAction(inputs({ image: image('v1'), env: flaky }))).outputs.result).toBe('deployed')
    for (const [tag, strategy] of [
      ['v2', 'rolling'],
      ['v3', 'blue-green'],
    ] as const) {
      const { run, load } = await judgedUnderLoad(PORT, () =>
        runAction(inputs({ image: image(tag), env: flaky, strategy, 'bake-seconds': '3' })),
      )
      expect(run.outputs.result).toBe('deployed')
      expect(verdicts(run).length).toBeGreaterThan(0)
      expect(verdicts(run).every((v) => v.endsWith(': pass'))).toBe(true)
      // What failed is the app's own 2% on its CGI routes, as before the deploy.
      expect(load.failed / load.sent).toBeLessThan(0.03)
      expect((await get(PORT, '/')).text).toBe(`${tag}\n`)
    }
  })

  it('deploys a good version whose new replicas all stall for 1.5 s in the bake: a burst of slow requests, not a slower version', async () => {
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
    // Beside the load, 40 requests a second on GET / that do not wait for each other, as a busy site has: the
    // stall holds them all, and they all answer within a second of its end.
    const busy = outsideClient({ port: PORT, perSecond: 40, next: () => ({ path: '/' }) })
    let stalled: Promise<number> | undefined
    let run: ActionRun
    try {
      ;({ run } = await judgedUnderLoad(PORT, () =>
        runAction(inputs({ image: image('v2'), strategy: 'blue-green', 'bake-seconds': '12' }), {
          // Once the old colour is drained, the bake begins: 3 s in (past the new replicas' warm-up), a stall.
          onStdout: (soFar) => {
            if (!stalled && /\] drain [^\n]*: ok/.test(soFar))
              stalled = sleep(3000).then(() => stall(APP, image('v2'), 1500))
          },
        }),
      ))
    } finally {
      await busy.stop()
    }
    expect(await stalled).toBeGreaterThan(0)
    expectResult(run, 'deployed')
    // The judgement saw the burst and said why it did not fail the version on it: without the rule, it would have.
    expect(run.log).toMatch(
      /\d+ of the new version's \d+ slow requests came within 3 s: a stall, not judged a slower version/,
    )
    expect((await get(PORT, '/')).text).toBe('v2\n')
  })

  it('does not hold a deploy without traffic: the first route is not judged within about a second, the next ones at once, and the process ends with the run', async () => {
    const t0 = Date.now()
    const run = await runAction(inputs({ image: image('v4'), 'verify-seconds': '30' }))
    const wallSeconds = (Date.now() - t0) / 1000
    expect(run.outputs.result).toBe('deployed')
    const rows = [...run.summary.matchAll(/^\| ([^|]+) \| not judged \| [^|]* \| [^|]* \| ([\d.]+)\ss \|/gm)]
    expect(rows.length).toBe(3)
    expect(Number(rows[0][2])).toBeLessThan(2)
    // nginx has recorded nothing for a second by then: no wait at all.
    for (const [, , seconds] of rows.slice(1)) expect(Number(seconds)).toBeLessThan(0.5)
    // Nothing keeps node alive after the run: the record's follow ends at once (a pending wait kept every
    // judged run's process 2 s longer than the run).
    const reported = Number(/^result: deployed \(([\d.]+) s/m.exec(run.stdout)?.[1])
    expect(wallSeconds - reported).toBeLessThan(1)
  })
})
