// Canaries a web app can live with (issue 27), end to end through nginx: sticky clients, the per-request
// split without cookies, promote with pinned clients, and a preview reached only on purpose.
import http from 'node:http'
import { jest } from '@jest/globals'
import { baseInputs, resetApp, runAction, testHost, type ActionRun } from './harness.js'

jest.setTimeout(300_000)

const host = testHost()
const image = (tag: string) => `nginx-rollout-test/app:${tag}`

interface Answer {
  readonly status: number
  readonly version: string
  readonly setCookies: readonly string[]
  readonly location?: string
}

/** One GET through nginx on a fresh connection, with the given headers. */
function getWith(port: number, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false, headers }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            version: text.split(/\s/)[0] ?? '',
            setCookies: res.headers['set-cookie'] ?? [],
            location: res.headers.location,
          }),
        )
      })
      .on('error', reject)
  })
}

/** A deploy that must succeed: its log's end is the message when it does not. */
async function deployed(run: Promise<ActionRun>): Promise<void> {
  const r = await run
  expect({ result: r.outputs.result, log: r.outputs.result === 'deployed' ? '' : r.stdout.slice(-4000) }).toEqual({
    result: 'deployed',
    log: '',
  })
}

/** A browser-like client: keeps the cookies nginx sets (name=value), sends them back. */
class Client {
  readonly cookies = new Map<string, string>()
  readonly versions: string[] = []
  /** What each failed request got: its status and the start of its body, or the connection's error. */
  readonly failures: string[] = []

  constructor(
    private readonly port: number,
    private readonly headers: Record<string, string> = {},
  ) {}

  async get(path = '/'): Promise<Answer> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    try {
      const a = await getWith(this.port, path, { ...this.headers, ...(cookie ? { Cookie: cookie } : {}) })
      for (const c of a.setCookies) {
        const [pair] = c.split(';')
        const eq = pair.indexOf('=')
        this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim())
      }
      if (a.status === 200) this.versions.push(a.version)
      else if (a.status !== 302) this.failures.push(`${a.status} ${a.version}`)
      return a
    } catch (e) {
      this.failures.push(String((e as NodeJS.ErrnoException).code ?? e))
      throw e
    }
  }
}

/** `count` clients, each making `requests` requests one after another, `parallel` clients at a time. */
async function clients(port: number, count: number, requests: number, parallel = 10): Promise<Client[]> {
  const all = Array.from({ length: count }, () => new Client(port))
  let next = 0
  const worker = async () => {
    while (next < all.length) {
      const c = all[next++]
      for (let i = 0; i < requests; i++) await c.get()
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker))
  return all
}

describe('a sticky canary at 20%', () => {
  const APP = 'e2e-web'
  const PORT = 18131
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    strategy: 'canary',
    replicas: '2',
    ports: '9761-9770',
    'canary-interval': '3',
    ...over,
  })
  beforeAll(async () => {
    resetApp(APP)
    await deployed(runAction(inputs({ image: image('v1') })))
    const canary = await runAction(inputs({ image: image('v2'), 'canary-steps': '20' }))
    expect(canary.outputs).toMatchObject({ result: 'paused', 'canary-weight': '20' })
  })
  afterAll(() => resetApp(APP))

  it('keeps each of 100 cookie-keeping clients on one version, 10-30% of them on the canary', async () => {
    const all = await clients(PORT, 100, 6)
    expect(all.flatMap((c) => c.failures)).toEqual([])
    const mixed = all.filter((c) => new Set(c.versions).size !== 1)
    expect(mixed.map((c) => c.versions)).toEqual([])
    const onCanary = all.filter((c) => c.versions[0] === 'v2').length
    expect(onCanary).toBeGreaterThanOrEqual(10)
    expect(onCanary).toBeLessThanOrEqual(30)
    // The pin: HttpOnly, SameSite=Lax, not Secure on plain http, named after the app.
    const first = await getWith(PORT, '/')
    expect(first.setCookies).toHaveLength(1)
    expect(first.setCookies[0]).toMatch(/^nginx_rollout_e2e_web=[sc][0-9a-f]{10}; Path=\/; HttpOnly; SameSite=Lax$/)
  })

  it('splits requests without cookies one by one, as the share says', async () => {
    const answers = await Promise.all(Array.from({ length: 400 }, (_, i) => i).map(() => getWith(PORT, '/')))
    expect(answers.filter((a) => a.status !== 200)).toEqual([])
    const share = (100 * answers.filter((a) => a.version === 'v2').length) / answers.length
    // 400 requests at 20%: the standard deviation is 2 points; 12-28 is four of them each way.
    expect(share).toBeGreaterThanOrEqual(12)
    expect(share).toBeLessThanOrEqual(28)
  })

  it('after promote every client reaches v2, the pinned ones included, with no failed request meanwhile', async () => {
    const pinned = await clients(PORT, 40, 2)
    expect(pinned.some((c) => c.versions[0] === 'v1')).toBe(true)
    // The pinned clients keep browsing while the promote runs.
    let promoting = true
    const browsing = Promise.all(
      pinned.map(async (c) => {
        while (promoting) await c.get()
      }),
    )
    const promote = await runAction(inputs({ operation: 'promote', image: '' }))
    promoting = false
    await browsing
    expect(promote.outputs).toMatchObject({ result: 'deployed', image: image('v2') })
    expect(pinned.flatMap((c) => c.failures)).toEqual([])
    for (const c of pinned) await c.get()
    expect(pinned.map((c) => c.versions[c.versions.length - 1])).toEqual(pinned.map(() => 'v2'))
  })
})

describe('a preview reached by a header, and by the link', () => {
  const APP = 'e2e-preview'
  const PORT = 18132
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    strategy: 'canary',
    replicas: '2',
    ports: '9771-9780',
    'canary-interval': '2',
    ...over,
  })
  beforeAll(async () => {
    resetApp(APP)
    await deployed(runAction(inputs({ image: image('v1') })))
    const preview = await runAction(
      inputs({ image: image('v2'), 'canary-steps': '0', 'canary-match': 'header X-Preview=pr-7' }),
    )
    expect(preview.outputs).toMatchObject({ result: 'paused', 'canary-weight': '0' })
  })
  afterAll(() => resetApp(APP))

  it('sends clients without the header only to stable, and those with it only to the canary', async () => {
    const plain = await clients(PORT, 50, 4)
    expect(plain.flatMap((c) => c.versions).filter((v) => v !== 'v1')).toEqual([])
    const previewing = Array.from({ length: 20 }, () => new Client(PORT, { 'X-Preview': 'pr-7' }))
    for (const c of previewing) for (let i = 0; i < 4; i++) await c.get()
    expect(previewing.flatMap((c) => c.versions).filter((v) => v !== 'v2')).toEqual([])
    expect([...plain, ...previewing].flatMap((c) => c.failures)).toEqual([])
  })

  it('its link sets the cookie (given the right value only), and then the cookie alone reaches the canary', async () => {
    const stranger = new Client(PORT)
    const refused = await stranger.get('/.nginx-rollout/e2e-preview/preview?value=pr-8')
    expect(refused.status).toBe(302)
    expect(stranger.cookies.has('nginx_rollout_e2e_preview_preview')).toBe(false)
    const reviewer = new Client(PORT)
    const link = await reviewer.get('/.nginx-rollout/e2e-preview/preview?value=pr-7')
    expect(link.status).toBe(302)
    expect(link.location).toMatch(/\/$/)
    expect(reviewer.cookies.get('nginx_rollout_e2e_preview_preview')).toBe('pr-7')
    for (let i = 0; i < 5; i++) await reviewer.get()
    expect(reviewer.versions).toEqual(['v2', 'v2', 'v2', 'v2', 'v2'])
    for (let i = 0; i < 5; i++) await stranger.get()
    expect(stranger.versions).toEqual(['v1', 'v1', 'v1', 'v1', 'v1'])
  })
})

describe('maintenance under load', () => {
  const APP = 'e2e-maint'
  const PORT = 18133
  const MESSAGE = 'Back at 10:00 UTC, sorry.'
  /** After the run ended, how long nginx's old workers may still take new connections (see below). */
  const SETTLE_MS = 250
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    replicas: '2',
    ports: '9781-9790',
    ...over,
  })
  beforeAll(async () => {
    resetApp(APP)
    await deployed(runAction(inputs({ image: image('v1') })))
  })
  afterAll(() => resetApp(APP))

  /** Requests on fresh connections from 8 workers until stopped: each with its start, end, status and text. */
  function load() {
    const events: { at: number; end: number; status: number; text: string; error?: string }[] = []
    let running = true
    const worker = async () => {
      while (running) {
        const at = Date.now()
        try {
          const a = await new Promise<{ status: number; text: string }>((resolve, reject) =>
            http
              .get({ host: '127.0.0.1', port: PORT, path: '/', agent: false }, (res) => {
                let text = ''
                res.setEncoding('utf8')
                res.on('data', (d: string) => (text += d))
                res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
              })
              .on('error', reject),
          )
          events.push({ at, end: Date.now(), ...a })
        } catch (e) {
          events.push({ at, end: Date.now(), status: 0, text: '', error: (e as Error).message })
        }
      }
    }
    const workers = Promise.all(Array.from({ length: 8 }, worker))
    return {
      events,
      stop: async () => {
        running = false
        await workers
      },
    }
  }

  it('answers every request 503 with the message once its reload is done and the old workers let go, the health path still the app; resume brings it back', async () => {
    const during = load()
    const maintenance = await runAction(inputs({ operation: 'maintenance', image: '', 'maintenance-message': MESSAGE }))
    // nginx's old workers still accept new connections until they have handled the reload's signal (they
    // then close their listening sockets): under this load, requests that began up to 0.05 s after the run
    // ended were still answered by the old configuration. From 0.25 s on, none may be.
    const settled = Date.now() + SETTLE_MS
    await new Promise((r) => setTimeout(r, 1500))
    const health = await getWith(PORT, '/health')
    await during.stop()
    expect(maintenance.outputs).toMatchObject({ result: 'deployed' })
    expect(during.events.filter((e) => e.error)).toEqual([])
    const after = during.events.filter((e) => e.at > settled)
    expect(after.length).toBeGreaterThan(20)
    expect(after.filter((e) => e.status !== 503 || e.text !== `${MESSAGE}\n`)).toEqual([])
    expect(during.events.filter((e) => e.status !== 200 && e.status !== 503)).toEqual([])
    expect(health.status).toBe(200)
    const answer = await new Promise<http.IncomingMessage>((resolve) =>
      http.get({ host: '127.0.0.1', port: PORT, path: '/shop', agent: false }, resolve),
    )
    answer.resume()
    expect(answer.statusCode).toBe(503)
    expect(answer.headers['retry-after']).toBe('120')

    const back = load()
    const resume = await runAction(inputs({ operation: 'resume', image: '' }))
    const resumeSettled = Date.now() + SETTLE_MS
    await new Promise((r) => setTimeout(r, 1500))
    await back.stop()
    expect(resume.outputs).toMatchObject({ result: 'deployed' })
    expect(back.events.filter((e) => e.error)).toEqual([])
    const later = back.events.filter((e) => e.at > resumeSettled)
    expect(later.length).toBeGreaterThan(20)
    expect(later.filter((e) => e.status !== 200 || e.text !== 'v1\n')).toEqual([])
  })
})
