// npm run bench: failed requests and deploy time under steady load, for rolling and blue-green with the
// action's default inputs, and for the by-hand procedure of the seed setup, on the same local Docker host and
// load, in the same run, with clients on fresh connections and with keep-alive connections. Then deploy time
// against replicas on one host, and on three hosts (the fleet of scripts/testhost/fleet-up.sh).
// Environment: BENCH_RUNS (default 3), BENCH_OUT (default bench-results), BENCH_CLIENTS (fresh,keep-alive),
// BENCH_FLEET (1: bring the fleet up and measure 3 hosts x 3 replicas; 0: skip), BENCH_PARTS (deploys,judged,scaling,fleet:
// a part not run keeps its figures from the results.json already in BENCH_OUT), BENCH_JUDGED_CASES (only those
// judged cases, names separated by '|'), BENCH_JUDGED_STRATEGIES (rolling,blue-green: the judged part's strategies).
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { startLoad } from './lib/load.mjs'
import { localInputs, resetApp, root, runAction, testHost } from './lib/action.mjs'
import { renderJudged, runJudged } from './lib/bench-judged.mjs'
import { readSummary } from './lib/summary-read.mjs'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const OUT = resolve(root, process.env.BENCH_OUT ?? 'bench-results')
const CLIENTS = (process.env.BENCH_CLIENTS ?? 'fresh,keep-alive').split(',')
const FLEET = process.env.BENCH_FLEET !== '0'
const REPLICAS = 3
// The issue's load: 24 clients of GET, POST and 0.4 s requests.
const WORKERS = { get: 10, post: 6, slow: 8 }
// A realistic app: it ignores SIGTERM (docker stop waits its full timeout) and starts listening 1 s after it starts.
const APP_ENV = 'IGNORE_TERM=1\nSLOW_START=1'
const image = (tag) => `nginx-rollout-test/app:${tag}`
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const docker = (...args) => execFileSync('docker', args, { encoding: 'utf8' }).trim()
// The by-hand procedure runs while the load client sends requests from this process: its commands must
// not block the event loop, or no request would be sent during it.
const dockerAsync = async (...args) => (await promisify(execFile)('docker', args, { encoding: 'utf8' })).stdout.trim()
const host = testHost()

/** The action with its defaults, and only what this machine needs: local images, host networking, a port. */
const actionInputs = (app, port, ports, tag, extra = {}) => ({
  ...localInputs(host, app, port),
  image: image(tag),
  replicas: String(REPLICAS),
  ports,
  env: APP_ENV,
  ...extra,
})

// ---------- measuring one deploy under load ----------

const quantile = (xs, q) => {
  if (!xs.length) return 0
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}

const FAILURE_TIMES_KEPT = 500

async function measure(port, deploy, keepAlive) {
  const load = startLoad({ port, workers: WORKERS, keepAlive, maxSeconds: 300 })
  await sleep(2000) // steady state before the deploy, for the baseline latency
  const t0 = performance.now()
  const t0Load = t0 - load.t0
  const info = await deploy()
  const t1Load = performance.now() - load.t0
  await sleep(1500)
  const r = await load.stop()
  const before = r.events.filter((e) => e.at < t0Load && e.ok).map((e) => e.ms)
  const during = r.events.filter((e) => e.at >= t0Load && e.at <= t1Load).map((e) => e.ms)
  const failures = r.events.filter((e) => !e.ok)
  return {
    ...info,
    wallSeconds: (t1Load - t0Load) / 1000,
    requests: r.answered,
    failed: r.failed,
    resets: r.resets,
    failedByKind: r.failedByKind,
    errors: r.sampleErrors,
    latencyBefore: { p50: quantile(before, 0.5), p99: quantile(before, 0.99), max: Math.max(0, ...before) },
    latencyDuring: { p50: quantile(during, 0.5), p99: quantile(during, 0.99), max: Math.max(0, ...during) },
    timeline: timeline(r.events, t0Load, t1Load),
    // When each failure happened (seconds from the deploy's start): the first 500, which is every failure of
    // a run that fails a few; the by-hand blue-green fails tens of thousands, and their count says enough.
    failureTimes: failures.slice(0, FAILURE_TIMES_KEPT).map((e) => Math.round(e.at - t0Load) / 1000),
  }
}

/** Requests answered per 100 ms by version, and failures, from 1 s before the deploy to 1 s after. */
function timeline(events, from, to) {
  const start = from - 1000
  const bins = Math.ceil((to + 1000 - start) / 100)
  const rows = Array.from({ length: bins }, () => ({ v1: 0, v2: 0, failed: 0 }))
  for (const e of events) {
    const i = Math.floor((e.at + e.ms - start) / 100)
    if (i < 0 || i >= bins) continue
    if (!e.ok) rows[i].failed++
    else rows[i][e.version === 'v1' ? 'v1' : 'v2']++
  }
  return { deployStartMs: 1000, deployEndMs: to - start - 1000 + 1000, binMs: 100, rows }
}

// ---------- the action ----------

function actionScenario(name, app, port, ports, extra) {
  return {
    name,
    port,
    async setup() {
      resetApp(app)
      const r = await runAction(actionInputs(app, port, ports, 'v1', { strategy: 'rolling' }), { debug: false })
      if (r.outputs.result !== 'deployed') throw new Error(`${name}: setup failed\n${r.log}`)
    },
    deploy: (tag) => async () => {
      const t0 = performance.now()
      const run = await runAction(actionInputs(app, port, ports, tag, extra), { debug: false })
      const wall = (performance.now() - t0) / 1000
      if (run.outputs.result !== 'deployed')
        console.error(
          `${name} -> ${tag}: ${run.outputs.result}\n${run.log
            .split('\n')
            .filter((l) => /^\[|::error/.test(l))
            .join('\n')}`,
        )
      const s = readSummary(run.summary)
      // Everything that is not a step: node start, connect, lock and read, plan, history and unlock.
      return {
        result: run.outputs.result,
        ...s,
        overheadSeconds: Math.max(0, wall - s.stepSeconds),
        switchedSeconds: s.switchedSeconds,
        endedSeconds: wall,
      }
    },
    cleanup: () => resetApp(app),
  }
}

// ---------- the by-hand procedure of the seed setup ----------

const HAND_APP = 'bench-hand'
const HAND_PORT = 18190
const handConf = (ports) => `events { worker_connections 4096; }
http {
    upstream app { least_conn;
${ports.map((p) => `        server 127.0.0.1:${p} weight=10 max_fails=3 fail_timeout=30s;`).join('\n')}
    }
    server { listen 127.0.0.1:${HAND_PORT}; location / { proxy_pass http://app; } }
}
`

function byHand(name, procedure) {
  const run = (name, port, tag) =>
    dockerAsync(
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'host',
      '-e',
      `PORT=${port}`,
      '-e',
      'IGNORE_TERM=1',
      '-e',
      'SLOW_START=1',
      image(tag),
    )
  const writeConf = async (ports) => {
    writeFileSync('/tmp/bench-hand.conf', handConf(ports))
    await dockerAsync('cp', '/tmp/bench-hand.conf', `${HAND_APP}-lb:/etc/nginx/nginx.conf`)
  }
  const state = { ports: [9401, 9402, 9403] }
  const removeAll = () =>
    execFileSync('sh', ['-c', `docker rm -f $(docker ps -aq --filter name=^${HAND_APP}-) 2>/dev/null || true`])
  return {
    name,
    port: HAND_PORT,
    async setup() {
      removeAll()
      state.ports = [9401, 9402, 9403]
      for (const p of state.ports) await run(`${HAND_APP}-${p}`, p, 'v1')
      docker('create', '--name', `${HAND_APP}-lb`, '--network', 'host', 'nginx-rollout-test/nginx:test')
      await writeConf(state.ports)
      docker('start', `${HAND_APP}-lb`)
      await sleep(2000)
    },
    deploy: (tag) => async () => {
      const t0 = performance.now()
      let switched = 0
      let reloads = 0
      const reload = async () => {
        await dockerAsync('kill', '--signal', 'HUP', `${HAND_APP}-lb`)
        reloads++
        switched = (performance.now() - t0) / 1000
      }
      await procedure({ tag, state, run, writeConf, reload })
      return { result: 'done', reloads, switchedSeconds: switched, endedSeconds: (performance.now() - t0) / 1000 }
    },
    cleanup: removeAll,
  }
}

// The seed setup's rolling procedure, per container: stop (docker's default 10 s), remove, run the new image, reload nginx.
const handRolling = byHand('by hand: rolling', async ({ tag, state, run, writeConf, reload }) => {
  for (const p of state.ports) {
    await dockerAsync('stop', `${HAND_APP}-${p}`)
    await dockerAsync('rm', `${HAND_APP}-${p}`)
    await run(`${HAND_APP}-${p}`, p, tag)
    await writeConf(state.ports)
    await reload()
  }
})

// The seed setup's blue-green procedure: start the new set, rewrite nginx.conf, reload, stop and remove the old set.
const handBlueGreen = byHand('by hand: blue-green', async ({ tag, state, run, writeConf, reload }) => {
  const next = state.ports.map((p) => (p < 9404 ? p + 3 : p - 3))
  for (const p of next) await run(`${HAND_APP}-${p}`, p, tag)
  await writeConf(next)
  await reload()
  await dockerAsync('stop', ...state.ports.map((p) => `${HAND_APP}-${p}`))
  await dockerAsync('rm', ...state.ports.map((p) => `${HAND_APP}-${p}`))
  state.ports = next
})

// ---------- running it all ----------

const scenarios = [
  // Default inputs but the bake: a bake adds exactly its bake-seconds to a run (see the judged part).
  actionScenario('nginx-rollout: rolling', 'bench-rolling', 18191, '9501-9520', {
    strategy: 'rolling',
    'bake-seconds': '0',
  }),
  actionScenario('nginx-rollout: blue-green', 'bench-bg', 18192, '9521-9540', {
    strategy: 'blue-green',
    'bake-seconds': '0',
  }),
  handRolling,
  handBlueGreen,
]
// Which parts run (all by default): deploys (the table above), judged (bad versions), scaling, fleet.
const PARTS = new Set((process.env.BENCH_PARTS ?? 'deploys,judged,scaling,fleet').split(','))

mkdirSync(OUT, { recursive: true })
const results = []
for (const s of PARTS.has('deploys') ? scenarios : []) {
  await s.setup()
  for (let run = 1; run <= RUNS; run++)
    for (const clients of CLIENTS)
      for (const [from, to] of [
        ['v1', 'v2'],
        ['v2', 'v1'],
      ]) {
        const m = await measure(s.port, s.deploy(to), clients === 'keep-alive')
        results.push({ scenario: s.name, clients, run, deploy: `${from}->${to}`, ...m })
        console.log(
          `${s.name.padEnd(26)} ${clients.padEnd(10)} run ${run} ${from}->${to}: ${m.requests} requests, ${m.failed} failed (${m.resets} resets), ${m.wallSeconds.toFixed(1)} s`,
        )
      }
  s.cleanup()
}

// Deploy time against replicas, without load: time grows with batches, not with replicas.
const scaling = []
const scaleRun = async (label, inputsFor, n, setupExtra, extra) => {
  await runAction({ ...inputsFor('v1'), strategy: 'blue-green', ...setupExtra }, { debug: false })
  const t0 = performance.now()
  const r = await runAction({ ...inputsFor('v2'), ...extra }, { debug: false })
  const seconds = (performance.now() - t0) / 1000
  const s = readSummary(r.summary)
  // A run that did not deploy still goes in the table (marked with its result); its errors go to the log.
  if (r.outputs.result !== 'deployed')
    console.log(
      r.log
        .split('\n')
        .filter((l) => l.startsWith('::error'))
        .join('\n'),
    )
  scaling.push({
    where: label,
    replicas: n,
    strategy:
      extra.strategy === 'blue-green'
        ? 'blue-green'
        : extra['batch-size'] === '1'
          ? 'rolling, batch-size 1 (default)'
          : 'rolling, one batch',
    seconds,
    reloads: s.reloads,
    result: r.outputs.result,
    routeSeconds: s.routeSeconds,
    overheadSeconds: Math.max(0, seconds - s.stepSeconds),
    phases: s.phases,
  })
  console.log(
    `scaling ${label}: ${scaling.at(-1).strategy}, ${n} replicas: ${seconds.toFixed(1)} s, ${s.reloads} reloads`,
  )
}
// BENCH_JUDGED_CASES: only these judged cases, their names separated by '|' (the names hold commas).
const judgedCases = process.env.BENCH_JUDGED_CASES?.split('|').map((n) => n.trim())
const judgedStrategies = (process.env.BENCH_JUDGED_STRATEGIES ?? 'rolling,blue-green').split(',').map((s) => s.trim())
const judged = PARTS.has('judged') ? await runJudged(RUNS, console.log, judgedCases, judgedStrategies) : []
for (const n of PARTS.has('scaling') ? [1, 3, 8, 16] : []) {
  const app = 'bench-scale'
  // Without load and without the bake (a bake adds exactly its bake-seconds), as in the table above.
  const inputsFor = (tag) => actionInputs(app, 18194, '9561-9610', tag, { replicas: String(n), 'bake-seconds': '0' })
  const strategies = [{ strategy: 'blue-green' }, { strategy: 'rolling', 'batch-size': '1' }]
  // With one replica, batch-size 1 is already one batch.
  if (n > 1) strategies.push({ strategy: 'rolling', 'batch-size': String(n) })
  for (const extra of strategies) {
    resetApp(app)
    await scaleRun('one host', inputsFor, n, {}, extra)
  }
  resetApp(app)
}

if (FLEET && PARTS.has('fleet')) {
  execFileSync('bash', [join(root, 'scripts/testhost/fleet-up.sh')], { stdio: 'inherit' })
  const { fleetInputs, resetFleetApp, image: fleetImage } = await import('./lib/fleet.mjs')
  const app = 'bench-fleet'
  const inputsFor = (tag) =>
    fleetInputs(app, 18195, {
      image: fleetImage(tag),
      replicas: '3',
      ports: '9611-9630',
      env: APP_ENV,
      'drain-seconds': '5',
      'stop-timeout': '10',
      'health-path': '/',
      'bake-seconds': '0',
    })
  for (const extra of [
    { strategy: 'blue-green' },
    { strategy: 'rolling', 'batch-size': '1' },
    { strategy: 'rolling', 'batch-size': '9' },
  ]) {
    resetFleetApp(app)
    await scaleRun('3 hosts x 3', inputsFor, 9, {}, extra)
  }
  resetFleetApp(app)
}

// A part not run this time keeps its figures from the results already in BENCH_OUT (with the time they were
// measured), so that one part can be measured again without losing the others.
const now = new Date().toISOString()
const earlier = existsSync(join(OUT, 'results.json')) ? JSON.parse(readFileSync(join(OUT, 'results.json'), 'utf8')) : {}
const partAt = (part) => (PARTS.has(part) ? now : (earlier.partsAt?.[part] ?? earlier.at))
const kept = {
  results: PARTS.has('deploys') ? results.map(({ timeline: _t, ...r }) => r) : (earlier.results ?? []),
  scaling: [
    ...(PARTS.has('scaling')
      ? scaling.filter((s) => s.where === 'one host')
      : (earlier.scaling ?? []).filter((s) => s.where === 'one host')),
    ...(FLEET && PARTS.has('fleet')
      ? scaling.filter((s) => s.where !== 'one host')
      : (earlier.scaling ?? []).filter((s) => s.where !== 'one host')),
  ],
  judged: PARTS.has('judged') ? judged : (earlier.judged ?? []),
}
const partsAt = Object.fromEntries(['deploys', 'judged', 'scaling', 'fleet'].map((p) => [p, partAt(p)]))
writeFileSync(
  join(OUT, 'results.json'),
  JSON.stringify(
    { at: now, partsAt, runs: RUNS, replicas: REPLICAS, workers: WORKERS, appEnv: APP_ENV, ...kept },
    null,
    1,
  ),
)
const { renderReport, renderChart } = await import('./lib/bench-report.mjs')
const when = `Measured: ${Object.entries(partsAt)
  .map(([p, at]) => `${p} ${at ?? 'never'}`)
  .join(', ')}.\n\n`
const md =
  when +
  renderReport(kept.results, kept.scaling, { runs: RUNS, replicas: REPLICAS, workers: WORKERS }) +
  (kept.judged.length ? `\n### Judged deploys\n\n${renderJudged(kept.judged, RUNS)}` : '')
writeFileSync(join(OUT, 'results.md'), md)
// The chart needs each deploy's timeline, which only a run of the deploys part has.
if (PARTS.has('deploys')) {
  writeFileSync(join(OUT, 'timeline.svg'), renderChart(results))
  // A PNG beside the SVG when librsvg's converter is installed (apt-get install librsvg2-bin).
  try {
    execFileSync('rsvg-convert', [join(OUT, 'timeline.svg'), '-o', join(OUT, 'timeline.png')])
  } catch {
    console.log('(no rsvg-convert: timeline.png not written; the SVG is)')
  }
}
console.log(`\n${md}\nwritten: ${join(OUT, 'results.md')}, results.json, timeline.svg`)
