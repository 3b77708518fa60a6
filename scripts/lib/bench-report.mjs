// Turns benchmark results into the markdown docs/benchmark.md shows (tables, the targets met or not) and an SVG timeline.

const median = (xs) => {
  const s = [...xs].filter((x) => x !== undefined).sort((a, b) => a - b)
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : undefined
}
const f1 = (x) => (x === undefined ? '-' : x.toFixed(1))
const f2 = (x) => (x === undefined ? '-' : x.toFixed(2))
const sum = (xs) => xs.reduce((a, x) => a + (x ?? 0), 0)

/** One row per scenario and client kind. */
export function summarize(results) {
  const keys = [...new Set(results.map((r) => `${r.scenario}|${r.clients}`))]
  return keys.map((key) => {
    const [name, clients] = key.split('|')
    const rs = results.filter((r) => r.scenario === name && r.clients === clients)
    const kinds = {}
    for (const r of rs) for (const [k, n] of Object.entries(r.failedByKind)) kinds[k] = (kinds[k] ?? 0) + n
    return {
      name,
      clients,
      deploys: rs.length,
      requests: sum(rs.map((r) => r.requests)),
      failed: sum(rs.map((r) => r.failed)),
      resets: sum(rs.map((r) => r.resets)),
      reloads: sum(rs.map((r) => r.reloads)),
      failedByKind: kinds,
      wall: median(rs.map((r) => r.wallSeconds)),
      wallMin: Math.min(...rs.map((r) => r.wallSeconds)),
      wallMax: Math.max(...rs.map((r) => r.wallSeconds)),
      switched: median(rs.map((r) => r.switchedSeconds)),
      ended: median(rs.map((r) => r.endedSeconds)),
      overhead: median(rs.map((r) => r.overheadSeconds)),
      routes: rs.flatMap((r) => r.routeSeconds ?? []),
      during: { p50: median(rs.map((r) => r.latencyDuring.p50)), p99: median(rs.map((r) => r.latencyDuring.p99)) },
      commands: median(rs.map((r) => r.remoteCommands)),
      phases: rs.map((r) => r.phases ?? {}),
    }
  })
}

export function renderReport(results, scaling, { runs, replicas, workers }) {
  const rows = summarize(results)
  const clients = Object.values(workers).reduce((a, n) => a + n, 0)
  const hand = (name, kind) => rows.find((r) => r.name === `by hand: ${name}` && r.clients === kind)
  const out = []
  out.push(
    `${replicas} replicas of an app that ignores SIGTERM and starts listening 1 s after it starts, v1 to v2 and back, ${runs} times each way per client kind, ` +
      `under a steady load of ${clients} clients (${Object.entries(workers)
        .map(([k, n]) => `${n} ${k === 'slow' ? '0.4 s GET' : k.toUpperCase()}`)
        .join(', ')}) through nginx; nothing retried by the clients. ` +
      '**fresh**: a new connection per request; **keep-alive**: each client reuses one connection. The action runs with its default inputs (rolling batch-size 1, drain-seconds 5, stop-timeout 10, health-interval 0.2, verify-seconds 5: every route judged on real traffic) but bake-seconds 0 (a bake adds exactly its seconds: see the judged deploys); ' +
      "by hand is the seed setup's procedure with docker's defaults (docker stop waits 10 s for an app that ignores SIGTERM). Ratios compare medians measured in the same run.",
  )
  out.push('')
  out.push(
    '| scenario | clients | deploys | requests | failed | of which resets | reloads | resets per reload | deploy time, median (min-max) | ratio to by hand | all traffic on the new version after | run ended after |',
  )
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|')
  for (const r of rows) {
    const strategy = r.name.replace(/^.*: /, '')
    const h = hand(strategy, r.clients)
    const ratio = r.name.startsWith('nginx-rollout') && h ? r.wall / h.wall : undefined
    out.push(
      `| ${r.name} | ${r.clients} | ${r.deploys} | ${r.requests} | **${r.failed}** | ${r.resets} | ${r.reloads} | ${r.reloads ? f2(r.resets / r.reloads) : '-'} | ` +
        `${f1(r.wall)} s (${f1(r.wallMin)}-${f1(r.wallMax)}) | ${ratio === undefined ? '-' : f2(ratio)} | ${f1(r.switched)} s | ${f1(r.ended)} s |`,
    )
  }
  out.push('')
  const action = rows.filter((r) => r.name.startsWith('nginx-rollout'))
  out.push(
    "The action's own times, under the load above (all runs, both client kinds) and without load (the one-host deploys of the replicas table below). " +
      "Medians; overhead is the run's wall time outside its steps (including starting node and its exit), the phases are what the run itself reports in its summary.",
  )
  out.push('')
  out.push(
    `| scenario | gate passed to nginx serving (route step), median / max | overhead per run | ${PHASES.join(' | ')} | remote commands per run |`,
  )
  out.push(`|---|---|---|${PHASES.map(() => '---:').join('|')}|---:|`)
  for (const t of ownTimes(rows, scaling))
    out.push(
      `| ${t.name} | ${f2(t.route)} s / ${f2(t.routeMax)} s | ${f2(t.overhead)} s | ${t.phases.map((p) => (p === undefined ? '-' : `${f2(p)} s`)).join(' | ')} | ${t.commands === undefined ? '-' : f1(t.commands)} |`,
    )
  out.push('')
  out.push('Deploy time against replicas, without load (one deploy each, seconds; nginx reloads in brackets):')
  out.push('')
  const wheres = [...new Set(scaling.map((s) => s.where))]
  const strategies = [...new Set(scaling.map((s) => s.strategy))]
  out.push(`| where | replicas | ${strategies.join(' | ')} |`)
  out.push(`|---|---:|${strategies.map(() => '---:').join('|')}|`)
  for (const w of wheres)
    for (const n of [...new Set(scaling.filter((s) => s.where === w).map((s) => s.replicas))])
      out.push(
        `| ${w} | ${n} | ${strategies
          .map((st) => {
            const s = scaling.find((x) => x.where === w && x.replicas === n && x.strategy === st)
            return s ? `${f1(s.seconds)} (${s.reloads})${s.result === 'deployed' ? '' : ` ${s.result}`}` : '-'
          })
          .join(' | ')} |`,
      )
  out.push('')
  out.push(...targets(rows, scaling))
  return out.join('\n') + '\n'
}

const PHASES = ['node start', 'connect', 'lock and read', 'records and unlock']

/** Route step, overhead and phase times per action scenario under load, and for the deploys without load. */
function ownTimes(rows, scaling) {
  const phaseMedians = (list) => PHASES.map((p) => median(list.map((x) => x[p])))
  const action = rows.filter((r) => r.name.startsWith('nginx-rollout'))
  const loaded = [...new Set(action.map((r) => r.name))].map((name) => {
    const rs = action.filter((r) => r.name === name)
    const routes = rs.flatMap((r) => r.routes)
    return {
      name: `${name}, under load`,
      route: median(routes),
      routeMax: Math.max(...routes),
      overhead: median(rs.map((r) => r.overhead)),
      phases: phaseMedians(rs.flatMap((r) => r.phases)),
      commands: median(rs.map((r) => r.commands)),
    }
  })
  const idle = scaling.filter((s) => s.where === 'one host' && s.routeSeconds)
  if (!idle.length) return loaded
  const routes = idle.flatMap((s) => s.routeSeconds)
  return [
    ...loaded,
    {
      name: 'nginx-rollout, every strategy, without load',
      route: median(routes),
      routeMax: Math.max(...routes),
      overhead: median(idle.map((s) => s.overheadSeconds)),
      phases: phaseMedians(idle.map((s) => s.phases ?? {})),
      commands: undefined,
    },
  ]
}

function targets(rows, scaling) {
  const lines = ['Targets:', '']
  const mine = (n, kind) => rows.find((r) => r.name === `nginx-rollout: ${n}` && r.clients === kind)
  const hand = (n, kind) => rows.find((r) => r.name === `by hand: ${n}` && r.clients === kind)
  const verdict = (ok) => (ok ? 'met' : 'NOT met')
  for (const [n, goal] of [
    ['rolling', 0.6],
    ['blue-green', 0.8],
  ])
    for (const kind of ['fresh', 'keep-alive']) {
      const a = mine(n, kind)
      const h = hand(n, kind)
      if (a && h)
        lines.push(
          `- ${n}, ${kind} clients, at most ${goal}x the by-hand time: **${verdict(a.wall / h.wall <= goal)}** (${f1(a.wall)} s against ${f1(h.wall)} s: ${f2(a.wall / h.wall)}x).`,
        )
    }
  const fresh = rows.filter((r) => r.name.startsWith('nginx-rollout') && r.clients === 'fresh')
  if (fresh.length)
    lines.push(
      `- Zero failed requests with fresh connections: **${verdict(fresh.every((r) => r.failed === 0))}** (${fresh.map((r) => `${r.name.replace('nginx-rollout: ', '')} ${r.failed} of ${r.requests}`).join(', ')}; ` +
        `by hand: ${rows
          .filter((r) => r.name.startsWith('by hand') && r.clients === 'fresh')
          .map((r) => `${r.name.replace('by hand: ', '')} ${r.failed} of ${r.requests}`)
          .join(', ')}).`,
    )
  const ka = rows.filter((r) => r.name.startsWith('nginx-rollout') && r.clients === 'keep-alive')
  if (ka.length)
    lines.push(
      `- Keep-alive clients: ${ka.map((r) => `${r.name.replace('nginx-rollout: ', '')} ${r.failed} failed of ${r.requests}, all resets: ${r.failed === r.resets ? 'yes' : 'no'}, ${f2(r.resets / Math.max(1, r.reloads))} per reload`).join('; ')}; ` +
        `by hand: ${rows
          .filter((r) => r.name.startsWith('by hand') && r.clients === 'keep-alive')
          .map((r) => `${r.name.replace('by hand: ', '')} ${r.failed} failed (${r.resets} resets)`)
          .join(', ')}.`,
    )
  for (const t of ownTimes(rows, scaling)) {
    const own = t.phases.some((p) => p === undefined) ? undefined : sum(t.phases)
    lines.push(
      `- ${t.name}: gate passed to nginx serving at most 0.3 s: **${verdict(t.route <= 0.3)}** for the median (${f2(t.route)} s, max ${f2(t.routeMax)} s); ` +
        (own === undefined
          ? `the run's own work at most 0.5 s: **not measured** (wall time outside the steps ${f2(t.overhead)} s).`
          : `the run's own work at most 0.5 s: **${verdict(own <= 0.5)}** (${f2(own)} s: the medians of ${PHASES.join(', ')}; wall time outside the steps ${f2(t.overhead)} s).`),
    )
  }
  return lines
}

/** An SVG timeline of the first v1->v2 deploy of each scenario and client kind: answers per 100 ms by version, and failures. */
export function renderChart(results) {
  const firsts = [...new Set(results.map((r) => `${r.scenario}|${r.clients}`))]
    .map((key) => results.find((r) => `${r.scenario}|${r.clients}` === key && r.deploy === 'v1->v2'))
    .filter(Boolean)
  const width = 900
  const panel = 90
  const pad = 40
  const height = firsts.length * (panel + 30) + 40
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ]
  out.push(
    `<text x="${pad}" y="18" font-size="13">Requests answered per 100 ms during a v1 to v2 deploy: <tspan fill="#4a7bd0">v1</tspan>, <tspan fill="#3a9a5b">v2</tspan>, <tspan fill="#d0342c">failed</tspan></text>`,
  )
  const longest = Math.max(...firsts.map((r) => r.timeline.rows.length))
  firsts.forEach((r, k) => {
    const top = 40 + k * (panel + 30)
    const rows = r.timeline.rows
    const max = Math.max(1, ...rows.map((x) => x.v1 + x.v2 + x.failed))
    const bw = (width - 2 * pad) / longest
    out.push(
      `<text x="${pad}" y="${top - 4}">${r.scenario}, ${r.clients} clients (${r.wallSeconds.toFixed(1)} s, ${r.failed} failed of ${r.requests})</text>`,
    )
    out.push(`<line x1="${pad}" y1="${top + panel}" x2="${width - pad}" y2="${top + panel}" stroke="#999"/>`)
    rows.forEach((x, i) => {
      let y = top + panel
      for (const [key, color] of [
        ['v1', '#4a7bd0'],
        ['v2', '#3a9a5b'],
        ['failed', '#d0342c'],
      ]) {
        const h = (x[key] / max) * panel
        if (h > 0)
          out.push(
            `<rect x="${(pad + i * bw).toFixed(1)}" y="${(y - h).toFixed(1)}" width="${Math.max(0.5, bw - 0.2).toFixed(1)}" height="${h.toFixed(1)}" fill="${color}"/>`,
          )
        y -= h
      }
    })
    for (const [t, label] of [
      [r.timeline.deployStartMs, 'deploy starts'],
      [r.timeline.deployEndMs, 'ends'],
    ]) {
      const x = pad + (t / r.timeline.binMs) * bw
      out.push(
        `<line x1="${x.toFixed(1)}" y1="${top}" x2="${x.toFixed(1)}" y2="${top + panel}" stroke="#333" stroke-dasharray="3,3"/><text x="${(x + 3).toFixed(1)}" y="${top + 10}">${label}</text>`,
      )
    }
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
