// Pure: the record of a run -> a Mermaid gantt chart of it, which GitHub draws in job summaries and
// comments: each replica's life (starting, health gate, serving its share of requests, draining, backup,
// retired), the canary's share over time, and the verdicts on real traffic as milestones. Times are ms since
// the run started (dateFormat x: the epoch stands for the run's start). The chart is sized for its reader:
// an axis in seconds no time zone shifts, row titles that fit their strip.
import type { StepRecord } from './journal.js'
import {
  names,
  replicaKey,
  type Bake,
  type CanaryObservation,
  type Replica,
  type Split,
  type Verification,
} from './model.js'
import type { Step } from './plan/types.js'

/** What the chart is drawn from: the part of the run's record it needs (a RunRecord is one). */
export interface TimelineRecord {
  /** The app hosts: with several, one section per host. */
  readonly hosts: readonly string[]
  readonly steps: readonly StepRecord[]
  readonly verifications?: readonly Verification[]
  readonly bake?: Bake
  readonly canarySteps?: readonly CanaryObservation[]
  /** The replicas nginx served before the run: their bars start with the run. */
  readonly servingBefore?: readonly Replica[]
  readonly durationSeconds: number
}

/** More bars than this make a chart too tall to take in: replicas are grouped until it fits. */
export const MAX_BARS = 40

type Tag = 'active' | 'done' | 'crit' | 'milestone'

interface Bar {
  readonly label: string
  readonly start: number
  readonly end: number
  readonly tags: readonly Tag[]
}

/** One replica's row of bars (or a group's, once grouped). */
interface Lane {
  readonly host: string
  readonly name: string
  /** Started by this run (a new replica), rather than one that served before it. */
  readonly started: boolean
  readonly members: number
  readonly bars: Bar[]
}

// The gantt grammar ends a task's name at ':', and takes '#' and ';' as the start of a comment or the end
// of a statement, and a line whose first or second character is '%' as a comment ('5% pass' vanishes);
// lookalikes keep a host's ':port' readable.
const SYNTAX: Readonly<Record<string, string>> = { ':': '∶', '#': '＃', ';': ',' }

/** A name Mermaid's gantt grammar reads as plain text: no ':', '#', ';', line breaks or leading '%'. */
export const sanitise = (text: string): string =>
  text
    .replace(/[:#;]/g, (c) => SYNTAX[c])
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/^(.?)%/, '$1％')

// Mermaid draws the chart in the reader's browser, in the reader's time zone, and the times are ms since
// 1970-01-01T00:00Z. A clock format shifts with the zone: %M:%S starts at 30:00 in India (+5:30), and even %S
// starts at 30 in Liberia (-0:44:30 until 1972). %s is seconds since the epoch itself, which no zone shifts
// and which does not wrap at 60. No marker for today, which lies decades to the right of this 1970 axis.
const AXIS = ['dateFormat x', 'axisFormat %s s', 'todayMarker off']

/** Ticks one of these apart: the first that gives at most MAX_TICKS of them. */
const TICK_STEPS = ['1second', '5second', '10second', '30second', '60second', '5minute', '15minute'] as const
const MAX_TICKS = 12

/**
 * The ticks' interval for a chart `spanMs` long. Mermaid without it ticks every 0.5 s on runs under ~7 s,
 * and %s prints each second twice. Seconds count from the epoch, the same in every zone; minutes count in
 * local time (d3's timeMinute), which stays on whole 5 and 15 minutes in zones with 30 and 45 minute
 * offsets. Given in the init directive, not as a statement: a Mermaid that does not know it ignores it
 * there (its own ticks, a second or more apart on runs over ~7 s), where a statement fails the chart.
 */
export function tickInterval(spanMs: number): string {
  const seconds = (step: string) => Number.parseInt(step, 10) * (step.endsWith('minute') ? 60 : 1)
  return TICK_STEPS.find((step) => spanMs / 1000 / seconds(step) <= MAX_TICKS) ?? TICK_STEPS.at(-1)!
}

/** Longer row titles are shortened in the middle (the tables name every replica and host in full). */
export const MAX_TITLE = 32

/** A row title as the chart shows it: one line Mermaid reads as text, at most MAX_TITLE characters. */
export function rowTitle(name: string): string {
  const text = sanitise(name)
  if ([...text].length <= MAX_TITLE) return text
  const chars = [...text]
  const head = Math.ceil((MAX_TITLE - 1) / 2)
  return `${chars.slice(0, head).join('')}…${chars.slice(chars.length - (MAX_TITLE - 1 - head)).join('')}`
}

// Mermaid draws row titles at x = 10 in 11 px type, in a strip `leftPadding` wide (75 px unless told).
// Widths of Verdana and DejaVu Sans at 11 px, a little over: the widest of the fonts Mermaid asks for.
const TITLE_X = 10
const TITLE_GAP = 8
const DEFAULT_LEFT_PADDING = 75
const charWidth = (c: string): number => (/[A-Z@%＃％∶mwMW…]/.test(c) ? 9.5 : /[ .,:;|!il'-]/.test(c) ? 4 : 7.2)

/** The strip for the row titles: wide enough for the longest one. */
export function leftPadding(titles: readonly string[]): number {
  const widest = Math.max(0, ...titles.map((t) => [...t].reduce((w, c) => w + charWidth(c), 0)))
  return Math.max(DEFAULT_LEFT_PADDING, Math.ceil(TITLE_X + widest + TITLE_GAP))
}

/** The chart's first lines: its layout (row titles' strip, ticks) for a chart `spanMs` long, then its axis. */
function header(titles: readonly string[], spanMs: number): string[] {
  const layout = { gantt: { leftPadding: leftPadding(titles), tickInterval: tickInterval(spanMs) } }
  return [`%%{init: ${JSON.stringify(layout)}}%%`, 'gantt', ...AXIS]
}

/** A section of the chart: its row title and its tasks' lines. */
interface Section {
  readonly title: string
  readonly tasks: readonly string[]
}

/** The chart's text: its layout, sized to the row titles and to the bars' span, then each section. */
const chart = (sections: readonly Section[], bars: readonly Bar[]): string =>
  [
    ...header(
      sections.map((s) => s.title),
      spanOf(bars),
    ),
    ...sections.flatMap((s) => [`section ${s.title}`, ...s.tasks]),
  ].join('\n')

/** From the first bar's start to the last one's end. */
const spanOf = (bars: readonly Bar[]): number =>
  bars.length ? Math.max(...bars.map((b) => b.end)) - Math.min(...bars.map((b) => b.start)) : 0

const task = (b: Bar, prefix = ''): string =>
  `${sanitise(prefix + b.label)} :${b.tags.map((t) => `${t}, `).join('')}${Math.round(b.start)}, ${Math.round(b.end)}`

const milestone = (label: string, at: number, tags: readonly Tag[] = []): Bar => ({
  label,
  start: at,
  end: at,
  tags: [...tags, 'milestone'],
})

/** pass: plain; fail: critical; not judged or inconclusive: highlighted. */
const verdictTags = (verdict: string): Tag[] => (verdict === 'pass' ? [] : verdict === 'fail' ? ['crit'] : ['active'])

/** '33%', '4.5%': a share of requests as the chart labels it. */
function share(percent: number): string {
  const shown = Number.isInteger(percent) ? percent : percent < 10 ? Number(percent.toFixed(1)) : Math.round(percent)
  return `${shown}%`
}

/** The canary's share over the steps it was judged at, and each step's verdict, for the pull-request comment. */
export function canaryTimeline(observations: readonly CanaryObservation[]): string {
  if (!observations.length) return ''
  const bars: Bar[] = []
  let t = 0
  for (const o of observations) {
    const end = t + o.seconds * 1000
    bars.push({ label: `canary ${o.percent}% for ${o.seconds} s`, start: t, end, tags: ['active'] })
    bars.push(milestone(`canary ${o.percent}% ${o.verdict}`, end, verdictTags(o.verdict)))
    t = end
  }
  return chart([{ title: 'canary', tasks: bars.map((b) => task(b)) }], bars)
}

const startOf = (s: StepRecord) => s.startedAtMs ?? s.endedAtMs - s.ms

type RanStep = StepRecord & { readonly step: Step }

/**
 * Each replica's life as bars, drawn step by step: a bar opens when a replica starts, serves a share of
 * requests or stands by as backup, and closes when that changes; the canary's share likewise.
 */
class Lives {
  readonly lanes = new Map<string, Lane>()
  /** The run's own bars (pull, bake, rollback) and milestones. */
  readonly run: Bar[] = []
  /** The canary's share of requests over time. */
  readonly canary: Bar[] = []
  private readonly serving = new Map<string, { readonly label: string; readonly since: number }>()
  private readonly backup = new Map<string, number>()
  private readonly starting = new Map<
    string,
    { readonly label: string; readonly since: number; readonly until: number; readonly failed: boolean }
  >()
  private canaryShare: { readonly percent: number; readonly since: number; readonly canaries: Set<string> } | undefined

  /** `before`: what nginx served when the run started, in equal shares when they run one image. */
  constructor(before: readonly Replica[]) {
    const oneImage = new Set(before.map((x) => x.image)).size === 1
    for (const x of before) {
      this.lane(x)
      this.serving.set(replicaKey(x), {
        label: oneImage ? `serving ${share(100 / before.length)}` : 'serving',
        since: 0,
      })
    }
  }

  lane(x: Replica, started = false): Lane {
    const key = replicaKey(x)
    const found = this.lanes.get(key)
    if (found) return found
    const made: Lane = { host: x.host, name: x.name, started, members: 1, bars: [] }
    this.lanes.set(key, made)
    return made
  }

  bar(x: Replica, label: string, start: number, end: number, tags: readonly Tag[]): void {
    this.lane(x).bars.push({ label, start, end, tags })
  }

  /** A start's bar runs until the replica's gate begins (or it serves, or goes), else to the step's end. */
  start(x: Replica, label: string, since: number, until: number, failed: boolean): void {
    this.lane(x)
    this.starting.set(replicaKey(x), { label, since, until, failed })
  }

  endStart(x: Replica, at: number): void {
    const s = this.starting.get(replicaKey(x))
    if (s) this.bar(x, s.label, s.since, Math.max(s.since, at), s.failed ? ['crit'] : [])
    this.starting.delete(replicaKey(x))
  }

  /**
   * nginx serves `servers` from `at` on, `standby` as backup. Their shares of requests: the split's, or equal
   * (a restored file may hold a split the step does not say: then no share is shown).
   */
  route(
    servers: readonly Replica[],
    split: Split | undefined,
    standby: readonly Replica[],
    at: number,
    sharesKnown = true,
  ) {
    const canaries = new Set((split?.canary ?? []).map(replicaKey))
    const stable = servers.filter((x) => !canaries.has(replicaKey(x)))
    const shares = new Map<string, string>()
    for (const x of servers) {
      const part = !split
        ? 100 / servers.length
        : canaries.has(replicaKey(x))
          ? split.percent / split.canary.length
          : (100 - split.percent) / stable.length
      shares.set(replicaKey(x), sharesKnown ? `serving ${share(part)}` : 'serving')
    }
    for (const key of [...this.serving.keys()])
      if (this.serving.get(key)?.label !== shares.get(key)) this.stopServing(key, at)
    for (const key of [...this.backup.keys()]) if (!standby.some((x) => replicaKey(x) === key)) this.stopBackup(key, at)
    for (const x of servers) {
      this.lane(x)
      this.endStart(x, at)
      this.stopBackup(replicaKey(x), at)
      if (!this.serving.has(replicaKey(x)))
        this.serving.set(replicaKey(x), { label: shares.get(replicaKey(x))!, since: at })
    }
    for (const x of standby) {
      this.lane(x)
      if (!this.backup.has(replicaKey(x))) this.backup.set(replicaKey(x), at)
    }
    // The canary's share: the split's, all of it once only canaries serve (promoted), none once it left.
    const known = this.canaryShare?.canaries
    const percent = split
      ? split.percent
      : known && servers.length && servers.every((x) => known.has(replicaKey(x)))
        ? 100
        : undefined
    if (this.canaryShare && this.canaryShare.percent !== percent) this.endCanary(at)
    if (percent !== undefined && !this.canaryShare)
      this.canaryShare = { percent, since: at, canaries: split ? canaries : new Set(servers.map(replicaKey)) }
  }

  /** The replica is out of nginx and leaving (stopped, removed, retired) from `at` on. */
  leaves(x: Replica, at: number): void {
    this.endStart(x, at)
    this.stopServing(replicaKey(x), at)
    this.stopBackup(replicaKey(x), at)
  }

  /** The run ended at `at`: every bar still open ends there (a start never gated, at its step's end). */
  end(at: number): void {
    for (const [key, s] of this.starting)
      this.lanes.get(key)?.bars.push({ label: s.label, start: s.since, end: s.until, tags: s.failed ? ['crit'] : [] })
    this.starting.clear()
    for (const key of [...this.serving.keys()]) this.stopServing(key, at)
    for (const key of [...this.backup.keys()]) this.stopBackup(key, at)
    this.endCanary(at)
  }

  private stopServing(key: string, at: number): void {
    const s = this.serving.get(key)
    if (s) this.lanes.get(key)?.bars.push({ label: s.label, start: s.since, end: at, tags: ['active'] })
    this.serving.delete(key)
  }

  private stopBackup(key: string, at: number): void {
    const since = this.backup.get(key)
    if (since !== undefined) this.lanes.get(key)?.bars.push({ label: 'backup', start: since, end: at, tags: ['done'] })
    this.backup.delete(key)
  }

  private endCanary(at: number): void {
    const c = this.canaryShare
    if (c) this.canary.push({ label: `canary ${share(c.percent)}`, start: c.since, end: at, tags: ['active'] })
    this.canaryShare = undefined
  }
}

type StepOf<K extends Step['kind']> = Extract<Step, { kind: K }>

/** The step's usual tags, or only crit when it failed. */
const tagsOf = (s: StepRecord, usual: readonly Tag[]): Tag[] => (s.outcome === 'failed' ? ['crit'] : [...usual])

/** The run's own bar of a login, a pull or the bake. */
function runBar(s: RanStep, step: StepOf<'login' | 'pull' | 'bake'>): Bar {
  const start = startOf(s)
  const end = s.endedAtMs
  switch (step.kind) {
    case 'login':
      return { label: `log in to ${step.registry || 'Docker Hub'}`, start, end, tags: tagsOf(s, []) }
    case 'pull':
      return { label: `pull ${step.image}`, start, end, tags: tagsOf(s, []) }
    case 'bake':
      return { label: `bake ${step.seconds} s`, start, end, tags: tagsOf(s, ['done']) }
  }
}

function drawStart(lives: Lives, s: RanStep, step: StepOf<'start' | 'restart'>): void {
  // Started ahead, a replica waits for its batch: its bar runs until its gate, which waits for the start.
  const label = step.kind === 'restart' ? 'starting again' : step.ahead ? 'started ahead' : 'starting'
  for (const x of step.replicas) {
    lives.lane(x, step.kind === 'start')
    lives.start(x, label, startOf(s), s.endedAtMs, s.outcome === 'failed')
  }
}

function drawGate(lives: Lives, s: RanStep, step: StepOf<'gate'>): void {
  for (const x of step.replicas) {
    lives.endStart(x, startOf(s))
    lives.bar(x, 'health gate', startOf(s), s.endedAtMs, tagsOf(s, []))
  }
}

/** A change of what nginx serves: new shares from its end on, or a milestone when it failed. */
function drawNginxChange(lives: Lives, s: RanStep, step: StepOf<'route' | 'restore-config' | 'record'>): void {
  const end = s.endedAtMs
  const failed = s.outcome === 'failed'
  switch (step.kind) {
    case 'route':
      if (s.outcome === 'ok') lives.route(step.servers, step.split, step.judged?.backup ?? [], end)
      else if (failed) lives.run.push(milestone('route failed', end, ['crit']))
      break
    case 'restore-config':
      if (s.outcome === 'ok')
        lives.route(step.servers, undefined, [], end, new Set(step.servers.map((x) => x.image)).size <= 1)
      else if (failed) lives.run.push(milestone('restore failed', end, ['crit']))
      break
    case 'record':
      if (failed) lives.run.push(milestone('record of requests failed', end, ['crit']))
      break
  }
}

function drawLeaving(lives: Lives, s: RanStep, step: StepOf<'stop' | 'remove' | 'retire'>): void {
  const label = step.kind === 'stop' ? 'stopped' : step.kind === 'remove' ? 'removed' : 'retired'
  for (const x of step.replicas) {
    lives.leaves(x, startOf(s))
    lives.bar(x, label, startOf(s), s.endedAtMs, tagsOf(s, ['done']))
  }
}

/** What one step that ran did to the replicas' lives and the run's bars. */
function draw(lives: Lives, s: RanStep): void {
  const step = s.step
  switch (step.kind) {
    case 'login':
    case 'pull':
    case 'bake':
      lives.run.push(runBar(s, step))
      break
    case 'start':
    case 'restart':
      drawStart(lives, s, step)
      break
    case 'gate':
      drawGate(lives, s, step)
      break
    case 'route':
    case 'restore-config':
    case 'record':
      drawNginxChange(lives, s, step)
      break
    case 'observe':
      // Its share is the route's; its verdict is drawn with the others.
      break
    case 'drain':
      // Not marked failed: a drain ends early when the judgement fails the replicas that took the traffic.
      for (const x of step.replicas) lives.bar(x, 'draining', startOf(s), s.endedAtMs, ['done'])
      break
    case 'stop':
    case 'remove':
    case 'retire':
      drawLeaving(lives, s, step)
      break
  }
  if (s.outcome === 'cancelled') lives.run.push(milestone('run cancelled', s.endedAtMs, ['crit']))
}

const byTime = (a: Bar, b: Bar) => a.start - b.start || a.end - b.end

/** The chart of a run ('' when no step ran). */
export function timeline(r: TimelineRecord): string {
  const ran = r.steps.filter((s): s is RanStep => s.outcome !== 'not run' && s.step !== undefined)
  if (!ran.length) return ''
  const lives = new Lives(r.servingBefore ?? [])
  for (const s of ran) draw(lives, s)
  lives.end(Math.max(Math.round(r.durationSeconds * 1000), ...ran.map((s) => s.endedAtMs)))

  const back = ran.filter((s) => s.phase === 'rollback')
  const rollback: Bar[] = back.length
    ? [
        {
          label: 'rollback',
          start: Math.min(...back.map(startOf)),
          end: Math.max(...back.map((s) => s.endedAtMs)),
          tags: ['crit'],
        },
      ]
    : []
  const manyHosts = r.hosts.length > 1
  const run = [...lives.run, ...rollback, ...verdicts(r, ran, manyHosts)].sort(byTime)
  const lanes = fit(
    [...lives.lanes.values()].map((l) => ({ ...l, bars: [...l.bars].sort(byTime) })),
    run.length + lives.canary.length,
  )
  const sections: Section[] = [
    ...(run.length ? [{ title: 'run', tasks: run.map((b) => task(b)) }] : []),
    ...(lives.canary.length ? [{ title: 'canary', tasks: lives.canary.map((b) => task(b)) }] : []),
    ...laneSections(r.hosts, lanes, manyHosts),
  ]
  return chart(sections, [...run, ...lives.canary, ...lanes.flatMap((l) => l.bars)])
}

/** The replicas' sections: one per replica, or with several hosts one per host, its replicas named in their bars. */
function laneSections(hosts: readonly string[], lanes: readonly Lane[], manyHosts: boolean): Section[] {
  if (!manyHosts) return lanes.map((l) => ({ title: rowTitle(l.name), tasks: l.bars.map((b) => task(b)) }))
  return sectionOrder(hosts, lanes).map((host) => ({
    title: rowTitle(host || 'all hosts'),
    tasks: lanes.filter((l) => l.host === host).flatMap((l) => l.bars.map((b) => task(b, `${l.name} `))),
  }))
}

/** The app hosts in the run's order, then any other a replica named. */
const sectionOrder = (hosts: readonly string[], lanes: readonly Lane[]): string[] => [
  ...new Set([...hosts.filter((h) => lanes.some((l) => l.host === h)), ...lanes.map((l) => l.host)]),
]

/** The verdicts, where they fell: each route's on real traffic, the bake's, each canary step's. */
function verdicts(r: TimelineRecord, ran: readonly RanStep[], manyHosts: boolean): Bar[] {
  const out: Bar[] = []
  // A route's new replicas are judged while the replicas they replace drain: the verdict comes that long
  // after the drain began.
  const drains = ran.filter((s) => s.step.kind === 'drain' && s.step.verify?.length)
  for (const v of r.verifications ?? []) {
    const judged = v.replicas.join(', ')
    const i = drains.findIndex((s) => s.step.kind === 'drain' && names(s.step.verify ?? [], manyHosts) === judged)
    if (i < 0) continue
    const [drain] = drains.splice(i, 1)
    const at = Math.min(startOf(drain) + v.ms, drain.endedAtMs)
    const what = v.verdict === 'not judged' ? `${judged} not judged` : `${judged} judged ${v.verdict}`
    out.push(milestone(what, at, verdictTags(v.verdict)))
  }
  const bake = ran.find((s) => s.step.kind === 'bake')
  if (r.bake && bake) out.push(milestone(`bake ${r.bake.verdict}`, bake.endedAtMs, verdictTags(r.bake.verdict)))
  const observed = ran.filter((s) => s.step.kind === 'observe')
  for (const o of r.canarySteps ?? []) {
    const i = observed.findIndex((s) => s.step.kind === 'observe' && s.step.split.percent === o.percent)
    if (i < 0) continue
    const [step] = observed.splice(i, 1)
    out.push(milestone(`canary ${o.percent}% ${o.verdict}`, step.endedAtMs, verdictTags(o.verdict)))
  }
  return out
}

const barCount = (lanes: readonly Lane[]) => lanes.reduce((n, l) => n + l.bars.length, 0)

/** The lanes, grouped until the chart has at most MAX_BARS bars (`fixed` of them are the run's own). */
function fit(lanes: readonly Lane[], fixed: number): readonly Lane[] {
  if (barCount(lanes) + fixed <= MAX_BARS) return lanes
  // Replicas that lived the same life (a blue-green colour, a batch) share one row of bars.
  const same = group(
    lanes,
    (l) => `${l.host}|${l.started}|${JSON.stringify(l.bars)}`,
    (ls) => ls[0].bars,
    (ls) => (ls.length <= 3 ? ls.map((l) => l.name).join(', ') : `${ls[0].name} and ${ls.length - 1} more`),
  )
  if (barCount(same) + fixed <= MAX_BARS) return same
  // Then the new and the old replicas of each host, each kind of bar from its first start to its last end.
  const byHost = group(lanes, (l) => `${l.host}|${l.started}`, spans, kindName)
  if (barCount(byHost) + fixed <= MAX_BARS) return byHost
  return group(
    lanes.map((l) => ({ ...l, host: '' })),
    (l) => String(l.started),
    spans,
    kindName,
  )
}

function group(
  lanes: readonly Lane[],
  keyOf: (l: Lane) => string,
  barsOf: (ls: Lane[]) => Bar[],
  nameOf: (ls: Lane[]) => string,
): Lane[] {
  const groups = new Map<string, Lane[]>()
  for (const l of lanes) groups.set(keyOf(l), [...(groups.get(keyOf(l)) ?? []), l])
  return [...groups.values()].map((ls) => ({
    host: ls[0].host,
    name: ls.length === 1 ? ls[0].name : nameOf(ls),
    started: ls[0].started,
    members: ls.reduce((n, l) => n + l.members, 0),
    bars: barsOf(ls),
  }))
}

/** '3 new replicas', '4 old replicas'. */
const kindName = (ls: readonly Lane[]): string =>
  `${ls.reduce((n, l) => n + l.members, 0)} ${ls[0].started ? 'new' : 'old'} replicas`

/** One bar per kind of bar: from the first one's start to the last one's end. */
function spans(ls: readonly Lane[]): Bar[] {
  const byLabel = new Map<string, Bar>()
  for (const b of ls.flatMap((l) => l.bars)) {
    const seen = byLabel.get(b.label)
    byLabel.set(
      b.label,
      seen
        ? {
            label: b.label,
            start: Math.min(seen.start, b.start),
            end: Math.max(seen.end, b.end),
            tags: seen.tags.includes('crit') || !b.tags.includes('crit') ? seen.tags : b.tags,
          }
        : b,
    )
  }
  return [...byLabel.values()].sort((a, b) => a.start - b.start || a.end - b.end)
}

/**
 * What the chart's colours mean (Mermaid's default theme), for the line under it: serving bars are the
 * highlighted ones, backup and leaving ones the done ones, failures critical, the rest plain.
 */
export const LEGEND =
  'Light blue: serving · grey: backup, draining, stopped, retired · red: failed, rollback · ' +
  'violet: starting, health gate, pull · ◆: a verdict (red: fail)'
