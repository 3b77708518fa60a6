// Debian's Chromium, headless, driven over the DevTools protocol on a pipe (no port, no network): it renders
// the summaries' Mermaid charts the way a reader's browser does, in a time zone of the test's choosing.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'

// No network at all: the page and Mermaid are local files, and every background fetch is off.
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  '--disable-default-apps',
  '--hide-scrollbars',
  '--force-device-scale-factor=1',
  '--window-size=1000,900',
  '--remote-debugging-pipe',
]

/** Mermaid's self-contained browser build, from the repository's node_modules. */
export function mermaidScript(): string {
  try {
    return createRequire(import.meta.url).resolve('mermaid/dist/mermaid.min.js')
  } catch (cause) {
    throw new Error('mermaid/dist/mermaid.min.js not found: the devDependency mermaid@^11 is not installed', { cause })
  }
}

/** What the page measured of one rendered chart, in CSS pixels of the page. */
export interface Measured {
  readonly zone: string
  /** new Date(0).getTimezoneOffset() in the page: the zone's offset at the chart's epoch. */
  readonly offsetAtEpoch: number
  readonly svg: Box
  /** Where the bars' area begins: the row titles' strip ends there. */
  readonly chartLeft: number
  readonly ticks: readonly Box[]
  readonly titles: readonly Box[]
  readonly tasks: readonly Box[]
  readonly legend: Box
}

export interface Box {
  readonly text: string
  readonly left: number
  readonly right: number
  readonly top: number
  readonly bottom: number
}

// A GitHub-like column (GitHub draws Mermaid in the reader's browser at about this width) with the chart
// and the one-line legend under it.
const PAGE = (script: string) => `<!doctype html>
<html><head><meta charset="utf-8"><style>
body { margin: 0; background: #fff; font-family: -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; font-size: 14px; }
#figure { width: 880px; padding: 16px; }
#legend { margin: 8px 0 0; color: #1f2328; }
/* Mermaid asks for "trebuchet ms", verdana, arial: DejaVu Sans, as wide as Verdana, the widest (every svg:
   Mermaid measures labels in a scratch element while it draws). */
svg text { font-family: "DejaVu Sans", Verdana, sans-serif !important; }
</style>
<script src="${pathToFileURL(script).href}"></script>
</head><body><div id="figure"><div id="chart"></div><p id="legend"><sub></sub></p></div>
<script>
mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' })
let renders = 0
const box = (el) => { const r = el.getBoundingClientRect(); return { text: el.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom } }
window.renderChart = async (source, legend) => {
  const { svg } = await mermaid.render('chart' + ++renders, source)
  const chart = document.getElementById('chart')
  chart.innerHTML = svg
  document.querySelector('#legend sub').textContent = legend
  const el = chart.querySelector('svg')
  const area = el.getBoundingClientRect()
  const scale = area.width / el.viewBox.baseVal.width
  const grid = el.querySelector('g.grid')
  return {
    zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    offsetAtEpoch: new Date(0).getTimezoneOffset(),
    svg: box(el),
    chartLeft: area.left + grid.transform.baseVal[0].matrix.e * scale,
    ticks: [...el.querySelectorAll('g.grid .tick text')].map(box),
    titles: [...el.querySelectorAll('text.sectionTitle')].map(box),
    tasks: [...el.querySelectorAll('text.taskText, text.taskTextOutsideRight, text.taskTextOutsideLeft')].map(box),
    legend: box(document.getElementById('legend')),
  }
}
</script></body></html>`

interface Pending {
  resolve(value: Record<string, unknown>): void
  reject(error: Error): void
}

/** One headless Chromium with one page, in time zone `zone` (its TZ). */
export class Browser {
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private buffered = ''
  private session = ''

  private constructor(
    private readonly child: ChildProcess,
    private readonly folder: string,
  ) {
    const out = child.stdio[4] as NodeJS.ReadableStream
    out.setEncoding('utf8')
    out.on('data', (chunk: string) => this.receive(chunk))
    child.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('chromium exited'))
      this.pending.clear()
    })
  }

  static async launch(zone: string): Promise<Browser> {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} not found: run scripts/chromium.sh (apt-get install chromium)`)
    const folder = mkdtempSync(join(tmpdir(), 'nr-chromium-'))
    writeFileSync(join(folder, 'page.html'), PAGE(mermaidScript()))
    const child = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${join(folder, 'profile')}`], {
      env: { ...process.env, TZ: zone },
      stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'],
    })
    const browser = new Browser(child, folder)
    const { targetId } = await browser.send('Target.createTarget', {
      url: pathToFileURL(join(folder, 'page.html')).href,
    })
    const { sessionId } = await browser.send('Target.attachToTarget', { targetId, flatten: true })
    browser.session = String(sessionId)
    await browser.until('typeof window.renderChart === "function"')
    return browser
  }

  /** Renders a chart's Mermaid source with the legend under it, and measures what the reader sees. */
  async render(source: string, legend = ''): Promise<Measured> {
    return (await this.evaluate(`renderChart(${JSON.stringify(source)}, ${JSON.stringify(legend)})`)) as Measured
  }

  /** A PNG of the chart and its legend, as last rendered. */
  async screenshot(): Promise<Buffer> {
    const figure = (await this.evaluate(
      '(() => { const r = document.getElementById("figure").getBoundingClientRect(); return { x: r.x, y: r.y, width: r.width, height: r.height } })()',
    )) as { x: number; y: number; width: number; height: number }
    const { data } = await this.send('Page.captureScreenshot', { format: 'png', clip: { ...figure, scale: 1 } }, true)
    return Buffer.from(String(data), 'base64')
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.send('Browser.close', {}).catch(() => undefined)
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(timer)
    rmSync(this.folder, { recursive: true, force: true })
  }

  private async evaluate(expression: string): Promise<unknown> {
    const reply = await this.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, true)
    const thrown = reply.exceptionDetails as { exception?: { description?: string }; text?: string } | undefined
    if (thrown) throw new Error(`in the page: ${thrown.exception?.description ?? thrown.text}`)
    return (reply.result as { value: unknown }).value
  }

  /** Waits until an expression holds in the page (it loads Mermaid from a file). */
  private async until(expression: string, timeoutMs = 15000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!(await this.evaluate(expression).catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`the page did not get ready in ${timeoutMs} ms: ${expression}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  private send(method: string, params: object, inPage = false): Promise<Record<string, unknown>> {
    const id = this.nextId++
    const message = { id, method, params, ...(inPage ? { sessionId: this.session } : {}) }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      ;(this.child.stdio[3] as NodeJS.WritableStream).write(JSON.stringify(message) + '\0')
    })
  }

  // Messages arrive as JSON, each ended by a NUL.
  private receive(chunk: string): void {
    this.buffered += chunk
    let end: number
    while ((end = this.buffered.indexOf('\0')) >= 0) {
      const message = JSON.parse(this.buffered.slice(0, end)) as {
        id?: number
        result?: Record<string, unknown>
        error?: { message: string }
      }
      this.buffered = this.buffered.slice(end + 1)
      const waiting = message.id === undefined ? undefined : this.pending.get(message.id)
      if (!waiting) continue
      this.pending.delete(message.id!)
      if (message.error) waiting.reject(new Error(`DevTools: ${message.error.message}`))
      else waiting.resolve(message.result ?? {})
    }
  }
}
