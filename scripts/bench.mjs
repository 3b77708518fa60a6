// npm run bench: failed requests and deploy time under steady load, for each strategy and for the by-hand
// procedure, on the same throwaway local Docker host (scripts/testhost/up.sh) in the same run.
// Environment: BENCH_RUNS (default 3), BENCH_OUT (default bench-results).
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startLoad } from './lib/load.mjs'
import { baseInputs, resetApp, root, runAction, testHost } from './lib/action.mjs'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const OUT = join(root, process.env.BENCH_OUT ?? 'bench-results')
const REPLICAS = 3
const STOP_TIMEOUT = 3
// A realistic app: it ignores SIGTERM (docker stop waits its full timeout) and takes a while to listen.
const APP_ENV = 'IGNORE_TERM=1\nSLOW_START=1'
const image = (tag) => `nginx-rollout-test/app:${tag}`
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const docker = (...args) => execFileSync('docker', args, { encoding: 'utf8' }).trim()
// The by-hand procedure runs while the load client sends requests from this process: its commands must
// not block the event loop, or no request would be sent during it.
const dockerAsync = async (...args) => (await promisify(execFile)('docker', args, { encoding: 'utf8' })).stdout.trim()
const host = testHost()

// ---------- measuring one deploy under load ----------

const quantile = (xs, q) => {
  if (!xs.length) return 0
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}

async function measure(port, deploy) {
  const load = startLoad({ port, maxSeconds: 300 })
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
    failedByKind: r.failedByKind,
    failureSeconds: new Set(failures.map((e) => Math.floor(e.at / 1000))).size,
    errors: r.sampleErrors,
    latencyBefore: { p50: quantile(before, 0.5), p99: quantile(before, 0.99), max: Math.max(0, ...before) },
    latencyDuring: { p50: quantile(during, 0.5), p99: quantile(during, 0.99), max: Math.max(0, ...during) },
    timeline: timeline(r.events, t0Load, t1Load),
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

const CATEGORY = [
  [/^(start|health gate|check) /, 'app start and health'],
  [/^drain /, 'drain'],
  [/^stop /, 'docker stop'],
  [/^(route|restore)/, 'nginx validate and reload'],
  [/^observe /, 'canary observation'],
]

function actionBreakdown(run) {
  const rows = [...run.summary.matchAll(/^\| \d+ \| deploy \| (.+?) \| [^|]+ \| ([\d.]+) s \| ok \|$/gm)]
  const by = {}
  for (const [, desc, s] of rows) {
    const cat = CATEGORY.find(([re]) => re.test(desc))?.[1] ?? 'docker other (pull, remove)'
    by[cat] = (by[cat] ?? 0) + Number(s)
  }
  const stats = /<sub>(\d+) SSH connection, (\d+) remote commands/.exec(run.summary)
  const batches = rows.filter(([, d]) => /^route /.test(d)).length
  return { breakdown: by, sshConnections: Number(stats?.[1] ?? 0), remoteCommands: Number(stats?.[2] ?? 0), batches }
}

function actionScenario(name, app, port, ports, extra) {
  const inputs = (tag, over = {}) => ({
    ...baseInputs(host, app, port),
    replicas: String(REPLICAS),
    ports,
    'stop-timeout': String(STOP_TIMEOUT),
    'health-interval': '0.1',
    env: APP_ENV,
    image: image(tag),
    ...extra,
    ...over,
  })
  return {
    name,
    port,
    async setup() {
      resetApp(app)
      const r = await runAction(inputs('v1', { strategy: 'rolling' }), { debug: false })
      if (r.outputs.result !== 'deployed') throw new Error(`${name}: setup failed\n${r.log}`)
    },
    deploy: (tag) => async () => {
      const t0 = performance.now()
      const run = await runAction(inputs(tag), { debug: false })
      const ok = run.outputs.result === 'deployed'
      if (!ok) console.error(`${name} -> ${tag}: ${run.outputs.result}\n${run.log.split('\n').filter((l) => /^\[|::error/.test(l)).join('\n')}`)
      const b = actionBreakdown(run)
      const steps = Object.values(b.breakdown).reduce((a, x) => a + x, 0)
      const wall = (performance.now() - t0) / 1000
      return { result: run.outputs.result, ...b, breakdown: { ...b.breakdown, 'action overhead (connect, read, lock, history, node start)': Math.max(0, wall - steps) } }
    },
    cleanup: () => resetApp(app),
  }
}

// ---------- the by-hand procedure ----------

const HAND_APP = 'bench-hand'
const HAND_PORT = 18190
const handConf = (ports) => `events { worker_connections 4096; }
http {
    upstream app { least_conn;
${ports.map((p) => `        server 127.0.0.1:${p} max_fails=3 fail_timeout=30s;`).join('\n')}
    }
    server { listen 127.0.0.1:${HAND_PORT}; location / { proxy_pass http://app; } }
}
`

function byHand(name, procedure) {
  const timed = async (by, cat, f) => {
    const t = performance.now()
    await f()
    by[cat] = (by[cat] ?? 0) + (performance.now() - t) / 1000
  }
  const envArgs = ['-e', 'IGNORE_TERM=1', '-e', 'SLOW_START=1']
  const run = (name, port, tag) => dockerAsync('run', '-d', '--name', name, '--network', 'host', '-e', `PORT=${port}`, ...envArgs, image(tag))
  const writeConf = async (ports) => {
    writeFileSync('/tmp/bench-hand.conf', handConf(ports))
    await dockerAsync('cp', '/tmp/bench-hand.conf', `${HAND_APP}-lb:/etc/nginx/nginx.conf`)
  }
  const state = { ports: [9401, 9402, 9403] }
  const removeAll = () => execFileSync('sh', ['-c', `docker rm -f $(docker ps -aq --filter name=^${HAND_APP}-) 2>/dev/null || true`])
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
      const by = {}
      await procedure({ tag, state, by, timed, run, writeConf, reload: () => dockerAsync('kill', '--signal', 'HUP', `${HAND_APP}-lb`) })
      return { result: 'done', breakdown: by }
    },
    cleanup: removeAll,
  }
}

// The seed setup's rolling procedure: per container, stop, remove, run the new image, reload nginx.
const handRolling = byHand('by hand: rolling', async ({ tag, state, by, timed, run, writeConf, reload }) => {
  for (const p of state.ports) {
    await timed(by, 'docker stop', () => dockerAsync('stop', '-t', String(STOP_TIMEOUT), `${HAND_APP}-${p}`))
    await timed(by, 'docker other (pull, remove)', () => dockerAsync('rm', `${HAND_APP}-${p}`))
    await timed(by, 'app start and health', () => run(`${HAND_APP}-${p}`, p, tag))
    await timed(by, 'nginx validate and reload', async () => {
      await writeConf(state.ports)
      await reload()
    })
  }
})

// The seed setup's blue-green procedure: start the new set, rewrite nginx.conf, reload, stop the old set.
const handBlueGreen = byHand('by hand: blue-green', async ({ tag, state, by, timed, run, writeConf, reload }) => {
  const next = state.ports.map((p) => (p < 9404 ? p + 3 : p - 3))
  await timed(by, 'app start and health', async () => {
    for (const p of next) await run(`${HAND_APP}-${p}`, p, tag)
  })
  await timed(by, 'nginx validate and reload', async () => {
    await writeConf(next)
    await reload()
  })
  await timed(by, 'docker stop', () => dockerAsync('stop', '-t', String(STOP_TIMEOUT), ...state.ports.map((p) => `${HAND_APP}-${p}`)))
  await timed(by, 'docker other (pull, remove)', () => dockerAsync('rm', ...state.ports.map((p) => `${HAND_APP}-${p}`)))
  state.ports = next
})

// ---------- running it all ----------

const scenarios = [
  actionScenario('nginx-rollout: rolling', 'bench-rolling', 18191, '9501-9520', { strategy: 'rolling', 'drain-seconds': '1' }),
  actionScenario('nginx-rollout: blue-green', 'bench-bg', 18192, '9521-9540', { strategy: 'blue-green', 'drain-seconds': '1' }),
  actionScenario('nginx-rollout: canary', 'bench-canary', 18193, '9541-9560', { strategy: 'canary', 'drain-seconds': '1', 'canary-steps': '20,100', 'canary-interval': '3' }),
  handRolling,
  handBlueGreen,
]

mkdirSync(OUT, { recursive: true })
const results = []
for (const s of scenarios) {
  await s.setup()
  for (let run = 1; run <= RUNS; run++)
    for (const [from, to] of [['v1', 'v2'], ['v2', 'v1']]) {
      const m = await measure(s.port, s.deploy(to))
      results.push({ scenario: s.name, run, deploy: `${from}->${to}`, ...m })
      console.log(`${s.name.padEnd(28)} run ${run} ${from}->${to}: ${m.requests} requests, ${m.failed} failed, ${m.wallSeconds.toFixed(1)} s`)
    }
  s.cleanup()
}

// Deploy time against replicas: one batch (blue-green; rolling with batch-size = replicas) vs one batch each.
const scaling = []
for (const n of [1, 2, 4, 8]) {
  for (const [label, extra] of [
    ['blue-green', { strategy: 'blue-green' }],
    ['rolling, one batch', { strategy: 'rolling', 'batch-size': String(n) }],
    ['rolling, batch-size 1', { strategy: 'rolling', 'batch-size': '1' }],
  ]) {
    const app = 'bench-scale'
    const inputs = (tag) => ({ ...baseInputs(host, app, 18194), replicas: String(n), ports: '9561-9590', 'stop-timeout': String(STOP_TIMEOUT), 'health-interval': '0.1', 'drain-seconds': '1', env: APP_ENV, image: image(tag), ...extra })
    resetApp(app)
    await runAction({ ...inputs('v1'), strategy: 'rolling', 'batch-size': String(n) }, { debug: false })
    const t0 = performance.now()
    const r = await runAction(inputs('v2'), { debug: false })
    scaling.push({ replicas: n, strategy: label, seconds: (performance.now() - t0) / 1000, result: r.outputs.result })
    console.log(`scaling: ${label}, ${n} replicas: ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  }
  resetApp('bench-scale')
}

writeFileSync(join(OUT, 'results.json'), JSON.stringify({ at: new Date().toISOString(), runs: RUNS, replicas: REPLICAS, stopTimeout: STOP_TIMEOUT, appEnv: APP_ENV, results, scaling }, null, 1))
const { renderReport, renderChart } = await import('./lib/bench-report.mjs')
const md = renderReport(results, scaling, { runs: RUNS, replicas: REPLICAS, stopTimeout: STOP_TIMEOUT })
writeFileSync(join(OUT, 'results.md'), md)
writeFileSync(join(OUT, 'timeline.svg'), renderChart(results))
// A PNG beside the SVG when librsvg's converter is installed (apt-get install librsvg2-bin).
try {
  execFileSync('rsvg-convert', [join(OUT, 'timeline.svg'), '-o', join(OUT, 'timeline.png')])
} catch {
  console.log('(no rsvg-convert: timeline.png not written; the SVG is)')
}
console.log(`\n${md}\nwritten: ${join(OUT, 'results.md')}, results.json, timeline.svg`)
