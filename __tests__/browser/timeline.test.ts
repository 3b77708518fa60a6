// The summaries' timelines as a reader sees them: their Mermaid source rendered by Mermaid in a headless
// Chromium, in several time zones. The axis must read seconds since the run's start in every zone (India's
// +5:30, Chatham's +12:45, Liberia's -0:44:30 of 1970, the chart's year), the row titles must fit their
// strip, no label may run into another, and the legend must be one line. Screenshots of a rolling, a
// failed and a canary summary go to docs/images/ with UPDATE_SCREENSHOTS=1 (else to a temporary folder).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { renderSummary, type RunRecord } from '../../src/summary.js'
import { canaryTimeline } from '../../src/timeline.js'
import type { Step } from '../../src/plan/types.js'
import {
  base,
  cancelledRolling,
  pausedCanary,
  recorded,
  replica,
  rolledBackRolling,
  rollingDeploy,
} from '../unit/recorded-runs.js'
import { Browser, type Box, type Measured } from './chromium.js'

/** The Mermaid source of a summary's timeline, and the line under it (unit tests pin that it is there). */
function chartOf(summary: string): { source: string; legend: string } {
  const lines = summary.split('\n')
  const from = lines.indexOf('```mermaid')
  const to = lines.indexOf('```', from)
  const legend = /^<sub>(.+)<\/sub>$/.exec(lines[to + 2] ?? '')?.[1] ?? ''
  return { source: lines.slice(from + 1, to).join('\n'), legend }
}

/** A run of under 7 s: Mermaid's own ticks would fall every 0.5 s there. */
function shortRun(): RunRecord {
  const old = replica(9301, 'shop:v1')
  const fresh = replica(9302, 'shop:v2')
  const steps: Step[] = [
    { kind: 'start', replicas: [fresh] },
    { kind: 'gate', replicas: [fresh] },
    { kind: 'route', servers: [fresh] },
    { kind: 'retire', replicas: [old] },
  ]
  return {
    ...base,
    durationSeconds: 3.4,
    servingBefore: [old],
    steps: [
      recorded(steps[0], 0, 600),
      recorded(steps[1], 600, 1300),
      recorded(steps[2], 1300, 1500),
      recorded(steps[3], 1500, 3300),
    ],
  }
}

/** A rolling deploy of an app with long names: its row titles are wider than Mermaid's 75 px strip. */
function longNames(app: string): RunRecord {
  const old = { ...replica(9205, 'shop:v1'), name: `${app}-9205` }
  const fresh = { ...replica(9206, 'shop:v2'), name: `${app}-9206` }
  const steps: Step[] = [
    { kind: 'start', replicas: [fresh] },
    { kind: 'gate', replicas: [fresh] },
    { kind: 'route', servers: [fresh] },
    { kind: 'retire', replicas: [old] },
  ]
  return {
    ...base,
    app,
    durationSeconds: 9.6,
    servingBefore: [old],
    steps: [
      recorded(steps[0], 0, 2600),
      recorded(steps[1], 2600, 4300),
      recorded(steps[2], 4300, 4500),
      recorded(steps[3], 4500, 9500),
    ],
  }
}

/** One replica on each of two hosts with long names: a section per host. */
function twoHosts(): RunRecord {
  const hosts = ['app-1.eu-west-1.compute.internal.example.com', 'app-2.eu-west-1.compute.internal.example.com']
  const old = hosts.map((h) => replica(9401, 'shop:v1', h))
  const fresh = hosts.map((h) => replica(9402, 'shop:v2', h))
  const steps: Step[] = [
    { kind: 'start', replicas: fresh },
    { kind: 'gate', replicas: fresh },
    { kind: 'route', servers: fresh },
    { kind: 'retire', replicas: old },
  ]
  return {
    ...base,
    hosts,
    durationSeconds: 31.5,
    servingBefore: old,
    steps: [
      recorded(steps[0], 0, 4000, 'ok', undefined, 'deploy', true),
      recorded(steps[1], 4000, 9000, 'ok', undefined, 'deploy', true),
      recorded(steps[2], 9000, 9300, 'ok', undefined, 'deploy', true),
      recorded(steps[3], 9300, 31000, 'ok', undefined, 'deploy', true),
    ],
  }
}

const CHARTS: ReadonlyArray<readonly [string, { source: string; legend: string }]> = [
  ['rolling, 91 s', chartOf(renderSummary(rollingDeploy()))],
  ['rolled back, 15 s', chartOf(renderSummary(rolledBackRolling()))],
  ['paused canary, 65 s', chartOf(renderSummary(pausedCanary()))],
  ['cancelled, 20 s', chartOf(renderSummary(cancelledRolling()))],
  ['short, 3.4 s', chartOf(renderSummary(shortRun()))],
  ['names like checkout-api-9205', chartOf(renderSummary(longNames('checkout-api')))],
  ['names over 32 characters', chartOf(renderSummary(longNames('payments-reconciliation-worker-eu')))],
  ['two hosts with long names', chartOf(renderSummary(twoHosts()))],
  [
    "a pull request's canary",
    {
      source: canaryTimeline(pausedCanary().canarySteps!.map((s) => ({ ...s, verdict: 'pass' as const }))),
      legend: '',
    },
  ],
]

/**
 * The tick labels a chart must show: seconds since the start, every 1, 5, 10, 30 or 60 s (the first that
 * makes at most 12 ticks) from its first bar's start to its last bar's end.
 */
function expectedTicks(source: string): string[] {
  const times = [...source.matchAll(/ (\d+), (\d+)$/gm)].flatMap((m) => [Number(m[1]), Number(m[2])])
  const [first, last] = [Math.min(...times) / 1000, Math.max(...times) / 1000]
  const step = [1, 5, 10, 30, 60].find((s) => (last - first) / s <= 12) ?? 60
  const out: string[] = []
  for (let s = Math.ceil(first / step) * step; s <= last; s += step) out.push(`${s} s`)
  return out
}

const overlapping = (boxes: readonly Box[]): string[] => {
  const sorted = [...boxes].sort((a, b) => a.left - b.left)
  return sorted.slice(1).flatMap((b, i) => (b.left < sorted[i].right ? [`'${sorted[i].text}' and '${b.text}'`] : []))
}

/** Everything a reader would see wrong, in words (an empty list when the chart reads right). */
function whatReadsWrong(m: Measured): string[] {
  const wrong: string[] = []
  for (const t of m.titles)
    if (t.left < m.svg.left || t.right > m.chartLeft)
      wrong.push(
        `row title '${t.text}' spans ${t.left.toFixed(0)}..${t.right.toFixed(0)} px, its strip ends at ${m.chartLeft.toFixed(0)}`,
      )
  for (const t of m.tasks)
    if (t.left < m.chartLeft - 0.5 || t.right > m.svg.right + 0.5)
      wrong.push(
        `label '${t.text}' spans ${t.left.toFixed(0)}..${t.right.toFixed(0)} px, outside ${m.chartLeft.toFixed(0)}..${m.svg.right.toFixed(0)}`,
      )
  for (const pair of overlapping(m.ticks)) wrong.push(`tick labels ${pair} overlap`)
  if (m.legend.bottom - m.legend.top > 30)
    wrong.push(`the legend takes ${m.legend.bottom - m.legend.top} px: more than one line`)
  return wrong
}

// The zones and their offsets at the chart's epoch (1970-01-01), as getTimezoneOffset gives them.
// Chromium may name a zone by an older alias.
const ZONES: ReadonlyArray<readonly [string, number, readonly string[]]> = [
  ['UTC', 0, ['UTC', 'Etc/UTC']],
  ['Asia/Kolkata', -330, ['Asia/Kolkata', 'Asia/Calcutta']],
  ['Pacific/Chatham', -765, ['Pacific/Chatham']],
  ['Africa/Monrovia', 44.5, ['Africa/Monrovia']],
]

// Chromium starts in about a second; on a machine busy with other tests, in several.
const LAUNCH_MS = 60_000
const RENDER_MS = 20_000

describe.each(ZONES)('the timeline read in %s', (zone, offset, names) => {
  let browser: Browser
  beforeAll(async () => {
    browser = await Browser.launch(zone)
  }, LAUNCH_MS)
  afterAll(async () => {
    await browser?.close()
  })

  it(
    'is drawn in that zone',
    async () => {
      const m = await browser.render(CHARTS[0][1].source)
      expect(names).toContain(m.zone)
      expect(m.offsetAtEpoch).toBe(offset)
    },
    RENDER_MS,
  )

  it.each(CHARTS)(
    '%s: the axis reads seconds since the start, the titles fit, no label overlaps',
    async (_, chart) => {
      const m = await browser.render(chart.source, chart.legend)
      // Both at once: a failure shows the axis and every overflow together.
      expect({ axis: m.ticks.map((t) => t.text), wrong: whatReadsWrong(m) }).toEqual({
        axis: expectedTicks(chart.source),
        wrong: [],
      })
    },
    RENDER_MS,
  )

  it(
    'reads right where Mermaid ignores the tick interval, on runs over 7 s (its own ticks, a second or more apart)',
    async () => {
      for (const [, chart] of CHARTS.slice(0, 4)) {
        const m = await browser.render(chart.source.replace(/,"tickInterval":"[^"]+"/, ''))
        const seconds = m.ticks.map((t) => Number(/^(\d+) s$/.exec(t.text)?.[1]))
        expect(seconds.every(Number.isInteger)).toBe(true)
        expect(new Set(seconds).size).toBe(seconds.length)
        const steps = new Set(seconds.slice(1).map((s, i) => s - seconds[i]))
        expect(steps.size).toBe(1)
        expect(whatReadsWrong(m)).toEqual([])
      }
    },
    RENDER_MS,
  )

  // Written by the UTC browser: the pictures in docs/ read as a reader in UTC sees them.
  if (zone === 'UTC')
    it(
      'draws a rolling, a failed and a canary summary for docs/images',
      async () => {
        const folder = process.env.UPDATE_SCREENSHOTS
          ? join(process.cwd(), 'docs', 'images')
          : mkdtempSync(join(tmpdir(), 'nr-shots-'))
        mkdirSync(folder, { recursive: true })
        for (const [name, chart] of [
          ['timeline-rolling.png', CHARTS[0][1]],
          ['timeline-failed.png', CHARTS[1][1]],
          ['timeline-canary.png', CHARTS[2][1]],
        ] as const) {
          await browser.render(chart.source, chart.legend)
          const png = await browser.screenshot()
          expect(png.subarray(1, 4).toString()).toBe('PNG')
          writeFileSync(join(folder, name), png)
        }
      },
      RENDER_MS,
    )
})
