// A bounded, steady HTTP load through nginx: fast GETs, POSTs (nginx never retries them once sent, so a
// bad drain shows) and slow ~0.4 s requests (in flight when a container goes away), and optionally a long
// request of several seconds. Each worker uses a fresh connection per request, or (keepAlive) one
// keep-alive connection it reuses, as browsers and API clients do. Every request is counted: a failure is
// any error, timeout, non-200 status or a body that is not the app's answer. Nothing is retried.
import http from 'node:http'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function request({ host, port, method, path, body, timeoutMs, agent, headers }) {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const done = (r) => resolve({ ...r, ms: performance.now() - t0 })
    const req = http.request(
      {
        host,
        port,
        method,
        path,
        agent: agent ?? false,
        headers: {
          ...(agent ? {} : { Connection: 'close' }),
          ...headers,
          ...(body ? { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) } : {}),
        },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d) => (text += d))
        res.on('end', () => done({ status: res.statusCode, text }))
        res.on('error', (e) => done({ error: e.code || e.message }))
      },
    )
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })))
    req.on('error', (e) => done({ error: e.code || e.message }))
    req.end(body)
  })
}

const KINDS = {
  get: { method: 'GET', path: '/', expect: (v) => `${v}\n` },
  post: { method: 'POST', path: '/cgi-bin/echo', body: true, expect: (v, b) => `${v} echo ${b}\n` },
  slow: { method: 'GET', path: '/cgi-bin/slow', expect: (v) => `${v} slow\n` },
  long: { method: 'GET', path: '/cgi-bin/long', expect: (v) => `${v} long\n` },
}

/**
 * Starts the load. Returns { stop() } whose promise gives the report once every request in flight has
 * been answered or has timed out.
 * @param {{ host?: string, port: number, workers?: { get?: number, post?: number, slow?: number, long?: number }, pauseMs?: number, timeoutMs?: number, maxSeconds?: number, keepAlive?: boolean, headers?: Record<string, string> }} options
 */
export function startLoad({
  host = '127.0.0.1',
  port,
  workers = { get: 3, post: 2, slow: 3 },
  pauseMs = 5,
  timeoutMs = 15000,
  maxSeconds = 600,
  keepAlive = false,
  headers = {},
}) {
  const t0 = performance.now()
  const events = []
  let stopping = false
  let sent = 0
  const hardStop = setTimeout(() => (stopping = true), maxSeconds * 1000)
  hardStop.unref()

  const agents = []
  async function worker(kind, id) {
    const spec = KINDS[kind]
    // One connection per worker, reused while the server keeps it open (as a browser's or an API client's).
    const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : undefined
    if (agent) agents.push(agent)
    let n = 0
    while (!stopping) {
      const body = spec.body ? `w${id}-${n++}` : undefined
      sent++
      const at = performance.now() - t0
      const r = await request({ host, port, method: spec.method, path: spec.path, body, timeoutMs, agent, headers })
      const version = r.text?.split(/\s/)[0] ?? ''
      const ok = r.status === 200 && r.text === spec.expect(version, body) && version !== ''
      events.push({
        at,
        ms: r.ms,
        kind,
        ok,
        status: r.status ?? 0,
        error:
          r.error ?? (ok ? undefined : `unexpected answer ${r.status}: ${JSON.stringify((r.text ?? '').slice(0, 80))}`),
        version: ok ? version : '',
      })
      if (pauseMs) await sleep(pauseMs)
    }
  }

  const loops = Object.entries(workers).flatMap(([kind, count]) =>
    Array.from({ length: count ?? 0 }, (_, i) => worker(kind, i)),
  )
  return {
    /** performance.now() when the load started: event times (`at`) count from here. */
    t0,
    /** Requests answered so far, by version, for waiting until traffic flows. */
    snapshot: () => summarize(events, sent),
    async stop() {
      stopping = true
      await Promise.all(loops)
      clearTimeout(hardStop)
      for (const a of agents) a.destroy()
      return summarize(events, sent)
    },
  }
}

export function summarize(events, sent) {
  const failures = events.filter((e) => !e.ok)
  const byVersion = {}
  for (const e of events) if (e.ok) byVersion[e.version] = (byVersion[e.version] ?? 0) + 1
  const failedByKind = {}
  for (const e of failures) failedByKind[e.kind] = (failedByKind[e.kind] ?? 0) + 1
  // A reset is a request sent on a keep-alive connection the server closed at that moment.
  const resets = failures.filter(
    (e) => e.error === 'ECONNRESET' || e.error === 'socket hang up' || e.error === 'EPIPE',
  ).length
  const lastVersion = [...events].reverse().find((e) => e.ok && e.kind === 'get')?.version ?? ''
  return {
    sent,
    answered: events.length,
    ok: events.length - failures.length,
    failed: failures.length,
    failedByKind,
    resets,
    byVersion,
    lastVersion,
    sampleErrors: [...new Set(failures.map((f) => `${f.kind}: ${f.error}`))].slice(0, 10),
    events,
  }
}

/**
 * Runs `action` inside a steady load: the load starts 0.7 s before it and stops 0.7 s after, so requests are
 * in flight when it begins and when it ends. A failed request is what the tests exist to catch: it is
 * printed with what `explain` says of the action's result.
 */
export async function underLoad(options, action, explain = () => '') {
  const load = startLoad({ maxSeconds: 240, ...options })
  await sleep(700)
  const value = await action()
  await sleep(700)
  const report = await load.stop()
  if (report.failed) console.log(`${explain(value)}\nload: ${JSON.stringify({ ...report, events: undefined })}`)
  return { value, load: report }
}

/**
 * A client outside the load, as the internet is: `perSecond` GETs through nginx of what `next` says, each on
 * a fresh connection and given up on after `abortMs` if set; answers are not checked. stop() ends it and
 * says how many it sent. (A scanner asking for missing paths; a client that gives up on slow requests.)
 */
export function outsideClient({ host = '127.0.0.1', port, perSecond, next }) {
  let sent = 0
  let running = true
  const loop = (async () => {
    while (running) {
      const { path, abortMs } = next(sent++)
      const req = http.get({ host, port, path, agent: false }, (res) => res.resume())
      req.on('error', () => undefined)
      if (abortMs) setTimeout(() => req.destroy(), abortMs)
      await sleep(1000 / perSecond)
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return sent
    },
  }
}
