// Turns benchmark results into the markdown table and the SVG timeline the README shows.

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : 0
}
const f1 = (x) => x.toFixed(1)
const ms = (x) => `${Math.round(x)}`
const CATEGORIES = ['app start and health', 'drain', 'docker stop', 'nginx validate and reload', 'canary observation', 'docker other (pull, remove)', 'action overhead (connect, read, lock, history, node start)']

export function summarize(results) {
  const names = [...new Set(results.map((r) => r.scenario))]
  return names.map((name) => {
    const rs = results.filter((r) => r.scenario === name)
    const kinds = {}
    for (const r of rs) for (const [k, n] of Object.entries(r.failedByKind)) kinds[k] = (kinds[k] ?? 0) + n
    return {
      name,
      deploys: rs.length,
      requests: rs.reduce((a, r) => a + r.requests, 0),
      failed: rs.reduce((a, r) => a + r.failed, 0),
      failedByKind: kinds,
      failureSeconds: rs.reduce((a, r) => a + r.failureSeconds, 0),
      deploysWithFailures: rs.filter((r) => r.failed).length,
      wall: { median: median(rs.map((r) => r.wallSeconds)), min: Math.min(...rs.map((r) => r.wallSeconds)), max: Math.max(...rs.map((r) => r.wallSeconds)) },
      before: { p50: median(rs.map((r) => r.latencyBefore.p50)), p99: median(rs.map((r) => r.latencyBefore.p99)), max: Math.max(...rs.map((r) => r.latencyBefore.max)) },
      during: { p50: median(rs.map((r) => r.latencyDuring.p50)), p99: median(rs.map((r) => r.latencyDuring.p99)), max: Math.max(...rs.map((r) => r.latencyDuring.max)) },
      breakdown: Object.fromEntries(CATEGORIES.map((c) => [c, median(rs.map((r) => r.breakdown?.[c] ?? 0))])),
      ssh: rs[0].sshConnections,
      commands: rs[0].remoteCommands === undefined ? undefined : median(rs.map((r) => r.remoteCommands)),
      batches: rs[0].batches,
    }
  })
}

export function renderReport(results, scaling, { runs, replicas, stopTimeout }) {
  const rows = summarize(results)
  const out = []
  out.push(`${replicas} replicas of an app that ignores SIGTERM (docker stop waits its ${stopTimeout} s timeout) and starts listening after 1 s; ` +
    `each scenario deploys v1->v2 and v2->v1 ${runs} times (${runs * 2} deploys) under steady load through nginx: GET, POST and 0.4 s requests, ` +
    'every request on a fresh connection, nothing retried by the client. The action runs with drain-seconds 1, health-interval 0.1 s.')
  out.push('')
  out.push('| scenario | deploys | requests | failed (by kind) | seconds with failures | deploy time, median (min-max) | latency p50 / p99 / max, ms: before | during |')
  out.push('|---|---:|---:|---|---:|---|---|---|')
  for (const r of rows) {
    const kinds = Object.entries(r.failedByKind).map(([k, n]) => `${k} ${n}`).join(', ')
    out.push(
      `| ${r.name} | ${r.deploys} | ${r.requests} | **${r.failed}**${kinds ? ` (${kinds})` : ''}${r.failed ? `, in ${r.deploysWithFailures} of ${r.deploys} deploys` : ''} | ${r.failureSeconds} | ` +
        `${f1(r.wall.median)} s (${f1(r.wall.min)}-${f1(r.wall.max)}) | ${ms(r.before.p50)} / ${ms(r.before.p99)} / ${ms(r.before.max)} | ${ms(r.during.p50)} / ${ms(r.during.p99)} / ${ms(r.during.max)} |`,
    )
  }
  out.push('')
  out.push('Where the time went (median seconds per deploy):')
  out.push('')
  out.push(`| scenario | ${CATEGORIES.join(' | ')} | SSH connections | remote commands |`)
  out.push(`|---|${CATEGORIES.map(() => '---:').join('|')}|---:|---:|`)
  for (const r of rows)
    out.push(`| ${r.name} | ${CATEGORIES.map((c) => (r.breakdown[c] ? f1(r.breakdown[c]) : '-')).join(' | ')} | ${r.ssh ?? '-'} | ${r.commands ?? '-'} |`)
  out.push('')
  out.push('Deploy time against replicas (one deploy each, seconds):')
  out.push('')
  const strategies = [...new Set(scaling.map((s) => s.strategy))]
  const counts = [...new Set(scaling.map((s) => s.replicas))]
  out.push(`| replicas | ${strategies.join(' | ')} |`)
  out.push(`|---:|${strategies.map(() => '---:').join('|')}|`)
  for (const n of counts) out.push(`| ${n} | ${strategies.map((st) => { const s = scaling.find((x) => x.replicas === n && x.strategy === st); return s ? `${f1(s.seconds)}${s.result === 'deployed' ? '' : ` (${s.result})`}` : '-' }).join(' | ')} |`)
  out.push('')
  out.push(...targets(rows, scaling))
  return out.join('\n') + '\n'
}

function targets(rows, scaling) {
  const action = rows.filter((r) => r.name.startsWith('nginx-rollout'))
  const hand = (n) => rows.find((r) => r.name === `by hand: ${n}`)
  const mine = (n) => rows.find((r) => r.name === `nginx-rollout: ${n}`)
  const lines = ['Targets:', '']
  const zero = action.every((r) => r.failed === 0)
  lines.push(`- Zero failed requests in every run of every strategy: **${zero ? 'met' : 'NOT met'}** (${action.map((r) => `${r.name.replace('nginx-rollout: ', '')} ${r.failed}`).join(', ')}; by hand: ${rows.filter((r) => r.name.startsWith('by hand')).map((r) => `${r.name.replace('by hand: ', '')} ${r.failed} of ${r.requests}`).join(', ')}).`)
  for (const n of ['rolling', 'blue-green']) {
    const a = mine(n)
    const h = hand(n)
    if (a && h) lines.push(`- ${n} faster than by hand: **${a.wall.median < h.wall.median ? 'met' : 'NOT met'}** (${f1(a.wall.median)} s against ${f1(h.wall.median)} s, ratio ${(a.wall.median / h.wall.median).toFixed(2)}).`)
  }
  for (const r of action) {
    const overhead = r.breakdown['action overhead (connect, read, lock, history, node start)'] + r.breakdown['nginx validate and reload'] + r.breakdown['docker other (pull, remove)']
    lines.push(`- Overhead per batch, ${r.name.replace('nginx-rollout: ', '')}: ${f1(overhead / Math.max(1, r.batches))} s over ${r.batches} batches (connect, read, lock, nginx upload/validate/reload/verify, history; target under 1 s): **${overhead / Math.max(1, r.batches) < 1 ? 'met' : 'NOT met'}**.`)
  }
  const one = scaling.filter((s) => s.strategy === 'blue-green')
  if (one.length > 1) lines.push(`- One batch grows little with replicas: blue-green ${one.map((s) => `${s.replicas}: ${f1(s.seconds)} s`).join(', ')}.`)
  return lines
}

/** An SVG timeline of the first v1->v2 deploy of each scenario: answers per 100 ms by version, and failures. */
export function renderChart(results) {
  const firsts = [...new Set(results.map((r) => r.scenario))].map((name) => results.find((r) => r.scenario === name && r.deploy === 'v1->v2'))
  const width = 900
  const panel = 130
  const pad = 40
  const height = firsts.length * (panel + 30) + 40
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`, `<rect width="100%" height="100%" fill="white"/>`]
  out.push(`<text x="${pad}" y="18" font-size="13">Requests answered per 100 ms during a v1 to v2 deploy: <tspan fill="#4a7bd0">v1</tspan>, <tspan fill="#3a9a5b">v2</tspan>, <tspan fill="#d0342c">failed</tspan></text>`)
  firsts.forEach((r, k) => {
    const top = 40 + k * (panel + 30)
    const rows = r.timeline.rows
    const max = Math.max(1, ...rows.map((x) => x.v1 + x.v2 + x.failed))
    const bw = (width - 2 * pad) / rows.length
    out.push(`<text x="${pad}" y="${top - 4}">${r.scenario} (${r.wallSeconds.toFixed(1)} s, ${r.failed} failed of ${r.requests})</text>`)
    out.push(`<line x1="${pad}" y1="${top + panel}" x2="${width - pad}" y2="${top + panel}" stroke="#999"/>`)
    rows.forEach((x, i) => {
      let y = top + panel
      for (const [key, color] of [['v1', '#4a7bd0'], ['v2', '#3a9a5b'], ['failed', '#d0342c']]) {
        const h = (x[key] / max) * panel
        if (h > 0) out.push(`<rect x="${(pad + i * bw).toFixed(1)}" y="${(y - h).toFixed(1)}" width="${Math.max(0.5, bw - 0.2).toFixed(1)}" height="${h.toFixed(1)}" fill="${color}"/>`)
        y -= h
      }
    })
    for (const [t, label] of [[r.timeline.deployStartMs, 'deploy starts'], [r.timeline.deployEndMs, 'ends']]) {
      const x = pad + (t / r.timeline.binMs) * bw
      out.push(`<line x1="${x.toFixed(1)}" y1="${top}" x2="${x.toFixed(1)}" y2="${top + panel}" stroke="#333" stroke-dasharray="3,3"/><text x="${(x + 3).toFixed(1)}" y="${top + 10}">${label}</text>`)
    }
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
