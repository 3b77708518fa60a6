// Pure: the record of a run -> the job summary's markdown.
import type { CanaryState, HistoryEntry } from './host/state.js'
import type { Evidence, GateResult, RunPhase, StepRecord } from './journal.js'
import { code, codeBlock, html, paragraph, quoted, text, TEXT_LIMITS } from './report/text.js'
import { LEGEND, timeline } from './timeline.js'
import {
  hostPort,
  type Bake,
  type CanaryObservation,
  type Replica,
  type TrafficCounts,
  type Verification,
} from './model.js'

/**
 * unchanged: nothing to do (a pull request's promote or abort while its canary is not the one live);
 * cancelled: the workflow run was cancelled, and the run left nginx in one consistent state.
 */
export type Result = 'deployed' | 'rolled-back' | 'failed' | 'planned' | 'paused' | 'unchanged' | 'cancelled'

/** What the status operation reports. */
export interface LiveReport {
  readonly replicas: ReadonlyArray<Replica & { readonly weight: number }>
  readonly canary?: CanaryState
  readonly history: readonly HistoryEntry[]
  /** How requests reach the versions beyond the weights (pins, matches), and maintenance: one sentence each. */
  readonly routing?: readonly string[]
}

export interface RunRecord {
  readonly app: string
  /** The app hosts, and where nginx runs. */
  readonly hosts: readonly string[]
  readonly nginxHost: string
  readonly operation?: string
  readonly strategy: string
  readonly color?: string
  readonly canaryWeight?: string
  readonly notes?: readonly string[]
  readonly canarySteps?: readonly CanaryObservation[]
  /** Each route's judgement on real traffic, and the bake's. */
  readonly verifications?: readonly Verification[]
  readonly bake?: Bake
  readonly live?: LiveReport
  readonly result: Result
  /** The image nginx serves at the end of the run ('' when nothing serves). */
  readonly image: string
  /** The image the run was asked to put live (the plan's image, or the deploy's input): shown when it is not what serves. */
  readonly requestedImage?: string
  /** The replicas nginx served before the run (the plan's previous): the timeline starts with them. */
  readonly servingBefore?: readonly Replica[]
  readonly previousImage: string
  readonly durationSeconds: number
  /** When all traffic had reached the new version (seconds since the run started), if it did. */
  readonly trafficSwitchedSeconds?: number
  readonly dryRun: boolean
  /** The plan's steps, described: shown only when no steps are recorded (the steps table is the plan). */
  readonly plan: readonly string[]
  /** The steps that ran, then the plan's remaining ones as 'not run' (a dry run: every step 'not run'). */
  readonly steps: readonly StepRecord[]
  /** Why the plan stopped before its end, when it did (an inconclusive canary step, a failure, a cancel). */
  readonly stopped?: string
  readonly gates: readonly GateResult[]
  readonly configPath: string
  /** The managed file before the run against the one live at its end ('': nginx serves the same file). */
  readonly configDiff: string
  readonly failure?: string
  readonly rollbackFailure?: string
  readonly evidence: readonly Evidence[]
  /** What was recorded on GitHub (deployment, pull-request comment), or the warnings instead. */
  readonly github?: readonly string[]
  readonly stats?: { readonly connections: number; readonly commands: number; readonly probes: number }
  /** The run's own work around the steps, in ms. */
  readonly phases?: readonly RunPhase[]
}

/**
 * Replaces every secret value in text (a failing app may log its environment), as it is and as the
 * markdown renderer writes it (escaped, a secret no longer reads as itself).
 */
export function redact(out: string, secrets: readonly string[]): string {
  const forms = [...new Set(secrets.flatMap((s) => [s, text(s), html(s)]))]
  // Longest first: a secret that contains a shorter one is masked whole.
  for (const s of forms.sort((a, b) => b.length - a.length)) if (s.length >= 3) out = out.split(s).join('***')
  return out
}

/** Outside text in a table cell or a line of its own: see report/text.ts. */
const cell = (s: string) => text(s)
const fence = codeBlock

const HEADLINE: Record<Result, string> = {
  deployed: 'deployed',
  'rolled-back': 'rolled back',
  failed: 'FAILED',
  planned: 'planned (dry run: nothing changed)',
  paused: 'paused with the canary live',
  unchanged: 'unchanged (nothing to do)',
  cancelled: 'cancelled (nginx left in one consistent state)',
}

// A figure and its unit never part at the end of a line ('0.01 s' wrapped in the steps table's time column).
const NBSP = '\u00a0'
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)}${NBSP}s`

/**
 * Text that markdown shows as it is, wrapped to the page (a code block hid a long error's advice behind a
 * sideways scroll), each line kept: the marks that start markdown, HTML or GitHub's math are escaped, and a
 * line's leading list, quote or heading mark. Secrets are masked first: escaping changes their text, which
 * the masking of the whole summary would then no longer find.
 */
function prose(text: string, secrets: readonly string[]): string {
  // Masked before it is escaped: escaping changes the text, and the summary's masking would miss the secret.
  return paragraph(redact(text, secrets), TEXT_LIMITS.block)
}

/** The header's facts, each about the end of the run. */
function facts(r: RunRecord): string {
  const serving = r.image ? code(r.image) : 'nothing'
  const asked = r.requestedImage && r.requestedImage !== r.image ? ` · **asked** ${code(r.requestedImage)}` : ''
  // Only a deploy that stayed deployed has its traffic on the new version at the end.
  const switched =
    r.trafficSwitchedSeconds !== undefined && r.result === 'deployed'
      ? ` · **all traffic on the new version after** ${r.trafficSwitchedSeconds.toFixed(1)}${NBSP}s`
      : ''
  return (
    `**Result:** \`${r.result}\` · **${r.hosts.length > 1 ? 'hosts' : 'host'}** ${cell(r.hosts.join(', '))} · **nginx** ${cell(r.nginxHost)} · ` +
    `${r.operation && r.operation !== 'deploy' ? `**operation** ${r.operation} · ` : ''}**strategy** ${r.strategy} · ` +
    `**serving** ${serving}${asked} · **previous** ${code(r.previousImage || '-')}${r.color ? ` · **colour** ${r.color}` : ''}` +
    `${r.canaryWeight ? ` · **canary** ${r.canaryWeight}%` : ''}${switched} · **run ended after** ${r.durationSeconds.toFixed(1)}${NBSP}s`
  )
}

/** A step's outcome in the one vocabulary of the record: only a failure stands out. */
function outcome(s: StepRecord): string {
  switch (s.outcome) {
    case 'ok':
      return s.detail ? `ok: ${cell(s.detail)}` : 'ok'
    case 'failed':
      return '**failed**'
    case 'inconclusive':
    case 'cancelled':
    case 'not run':
      return s.outcome
  }
}

/**
 * The steps table is the plan: what ran, with its time and outcome, then what did not. The plan's steps
 * come before the rollback's, so the plan reads in order. With nothing run, it is the plan alone.
 */
function steps(r: RunRecord): string[] {
  const rows = [...r.steps.filter((s) => s.phase === 'deploy'), ...r.steps.filter((s) => s.phase !== 'deploy')]
  const withHost = r.hosts.length > 1
  const host = (s: StepRecord) => (withHost ? ` ${cell(s.hosts.join(', '))} |` : '')
  const step = (s: StepRecord) => `${s.phase === 'rollback' ? 'rollback: ' : ''}${cell(s.description)}`
  if (rows.every((s) => s.outcome === 'not run'))
    return [
      '',
      `### Plan (${r.result === 'planned' ? 'dry run: ' : ''}nothing ran)`,
      '',
      `| # | Step |${withHost ? ' Host |' : ''}`,
      `|---|---|${withHost ? '---|' : ''}`,
      ...rows.map((s, i) => `| ${i + 1} | ${step(s)} |${host(s)}`),
    ]
  return [
    '',
    '### Steps',
    '',
    `| # | Step |${withHost ? ' Host |' : ''} Time | Outcome |`,
    `|---|---|${withHost ? '---|' : ''}---|---|`,
    ...rows.map(
      (s, i) => `| ${i + 1} | ${step(s)} |${host(s)} ${s.outcome === 'not run' ? '' : seconds(s.ms)} | ${outcome(s)} |`,
    ),
  ]
}

/** Why the plan stopped before its end, and how much of it did not run. */
function stoppedEarly(r: RunRecord): string[] {
  if (!r.stopped) return []
  const left = r.steps.filter((s) => s.outcome === 'not run').length
  const rest = left ? `${left} step${left === 1 ? '' : 's'} of the plan did not run` : ''
  // A failure stops the plan too: its text follows in full, once.
  const why =
    r.stopped === r.failure
      ? `${rest || 'the plan did not finish'}; what failed is below.`
      : `${cell(r.stopped).replace(/\.$/, '')}.${rest ? ` ${rest}.` : ''}`
  return ['', `**Stopped early:** ${why}`]
}

/** What failed, and the rollback's failure, in full. */
function failures(r: RunRecord, secrets: readonly string[]): string[] {
  return [
    ...(r.failure ? ['', '**What failed:**', '', prose(r.failure, secrets)] : []),
    ...(r.rollbackFailure ? ['', '**The rollback failed too:**', '', prose(r.rollbackFailure, secrets)] : []),
  ]
}

function timelineSection(r: RunRecord): string[] {
  const chart = timeline(r)
  return chart ? ['', '### Timeline', '', fence(chart, 'mermaid'), '', `<sub>${LEGEND}</sub>`] : []
}

/** The steps table; without recorded steps, the plan as a list. */
function stepsOrPlan(r: RunRecord): string[] {
  if (r.steps.length) return steps(r)
  if (r.plan.length) return ['', '### Plan', '', ...r.plan.map((p, i) => `${i + 1}. ${cell(p)}`)]
  return []
}

function healthGates(r: RunRecord): string[] {
  if (!r.gates.length) return []
  return [
    '',
    '### Health gates',
    '',
    '| Replica | Host | Result | Probes | Time | Last probe | Docker health |',
    '|---|---|---|---|---|---|---|',
    ...r.gates.map(
      (g) =>
        `| ${cell(g.replica)} | ${cell(g.host)} | ${g.ok ? 'healthy' : '**unhealthy**'} | ${g.probes} | ${seconds(g.ms)} | ${cell(g.last)} | ${cell(g.dockerHealth)} |`,
    ),
  ]
}

/** Each canary step's share, window, both versions' requests and errors, and its verdict. */
function canaryStepsTable(r: RunRecord): string[] {
  if (!r.canarySteps?.length) return []
  return [
    '',
    '### Canary steps',
    '',
    '| Share | Window | Canary requests | Canary errors | Canary error rate | Stable requests | Stable errors | Stable error rate | Verdict |',
    '|---|---|---|---|---|---|---|---|---|',
    ...r.canarySteps.map(
      (c) =>
        `| ${c.percent}% | ${c.seconds}${NBSP}s | ${c.canary.requests} | ${c.canary.errors} | ${c.canary.rate.toFixed(2)}% | ${c.stable.requests} | ${c.stable.errors} | ${c.stable.rate.toFixed(2)}% | ` +
        `${c.verdict === 'pass' ? 'pass' : `**${c.verdict}**: ${cell(c.reason)}`} |`,
    ),
  ]
}

/** What was recorded on GitHub, or the warnings instead (markdown the recorder wrote, its outside text escaped). */
function gitHubRecords(r: RunRecord): string[] {
  return r.github?.length ? ['', '### GitHub', '', ...r.github.map((n) => `- ${n}`)] : []
}

/** What the run changed in the managed file, or that nginx serves the same one (not said by a status or a dry run). */
function configChange(r: RunRecord): string[] {
  if (r.configDiff)
    return [
      '',
      `<details><summary>What this run changed in ${html(r.configPath)}</summary>`,
      '',
      fence(r.configDiff, 'diff'),
      '',
      '</details>',
    ]
  if (r.operation !== 'status' && r.result !== 'planned')
    return ['', `nginx serves the same file as before the run (${cell(r.configPath)}).`]
  return []
}

/** The last log lines of the replicas that failed, open. */
function evidence(r: RunRecord): string[] {
  return r.evidence.flatMap((e) => [
    '',
    `<details open><summary>${html(e.subject)}: last log lines</summary>`,
    '',
    paragraph(e.reason),
    '',
    fence(e.logs),
    '',
    '</details>',
  ])
}

/** The run's cost in small print: connections, commands, probes, and its own work around the steps. */
function costs(r: RunRecord): string[] {
  if (!r.stats) return []
  return [
    '',
    `<sub>${r.stats.connections} SSH connection${r.stats.connections === 1 ? '' : 's'}, ${r.stats.commands} remote commands, ${r.stats.probes} probes` +
      `${r.phases?.length ? `; the run's own work: ${r.phases.map((p) => `${p.name} ${seconds(p.ms)}`).join(', ')}` : ''}</sub>`,
  ]
}

export function renderSummary(r: RunRecord, secrets: readonly string[] = []): string {
  const headline =
    r.operation === 'status'
      ? `## nginx-rollout: ${cell(r.app)} status`
      : `## nginx-rollout: ${cell(r.app)} ${HEADLINE[r.result]}`
  const out = [
    headline,
    '',
    facts(r),
    ...stoppedEarly(r),
    ...(r.notes ?? []).flatMap((n) => ['', quoted(n)]),
    ...(r.live ? live(r.live) : []),
    ...failures(r, secrets),
    ...timelineSection(r),
    ...stepsOrPlan(r),
    ...healthGates(r),
    ...realTraffic(r),
    ...canaryStepsTable(r),
    ...gitHubRecords(r),
    ...configChange(r),
    ...evidence(r),
    ...costs(r),
  ]
  return redact(out.join('\n') + '\n', secrets)
}

/** What the status operation found live: the replicas with their weights, a paused canary, recent deploys. */
function live(l: LiveReport): string[] {
  const out = [
    '',
    '### Live',
    '',
    '| Replica | Host | Address | Image | Colour | nginx weight |',
    '|---|---|---|---|---|---|',
  ]
  for (const x of l.replicas)
    out.push(
      `| ${cell(x.name)} | ${cell(x.host)} | ${cell(hostPort(x.address, x.port))} | ${code(x.image)} | ${cell(x.color ?? '-')} | ${x.weight} |`,
    )
  if (!l.replicas.length) out.push('| (none) | | | | | |')
  if (l.canary)
    out.push(
      '',
      `Canary ${code(l.canary.image)} paused at **${l.canary.weight}%** next to ${code(l.canary.stableImage)} since ${cell(l.canary.at)}: run \`operation: promote\` to finish it or \`operation: abort\` to remove it.`,
    )
  if (l.routing?.length) out.push('', ...l.routing.map((line) => `- ${line}`))
  if (l.history.length) {
    out.push('', '### Recent deploys', '', '| When | Operation | Image | Result |', '|---|---|---|---|')
    for (const h of l.history)
      out.push(
        `| ${cell(h.at)} | ${cell(`${h.operation ?? 'deploy'} ${h.strategy}`)} | ${code(h.image)} | ${cell(h.result)} |`,
      )
  }
  return out
}

/** '120 (5xx 4, 4xx 1; 500: 4, 404: 1)': what nginx recorded of one version. */
function counts(c: TrafficCounts): string {
  const errors = Object.entries(c.statuses)
    .filter(([s]) => /^[45]/.test(s))
    .sort((a, b) => b[1] - a[1])
    .map(([s, n]) => `${s}: ${n}`)
  return `${c.requests} (5xx ${c.serverErrors}, 4xx ${c.clientErrors}${errors.length ? `; ${errors.join(', ')}` : ''})`
}

/** Each route's verdict on real traffic, and the bake's. */
function realTraffic(r: RunRecord): string[] {
  const out: string[] = []
  if (r.verifications?.length) {
    out.push(
      '',
      '### Real traffic',
      '',
      '| New replicas | Verdict | New version | Old version | Time to verdict | Why |',
    )
    out.push('|---|---|---|---|---|---|')
    for (const v of r.verifications) {
      const verdict = v.verdict === 'fail' ? '**fail**' : v.verdict
      // A pass's reason only restates the counts beside it.
      const why = v.verdict === 'pass' ? '' : cell(v.reason)
      out.push(
        `| ${cell(v.replicas.join(', '))} | ${verdict} | ${counts(v.new)} | ${counts(v.old)} | ${seconds(v.ms)} | ${why} |`,
      )
    }
  }
  if (r.bake) {
    const verdict = r.bake.verdict === 'fail' ? '**fail**' : 'pass'
    out.push(
      '',
      `**Bake** ${r.bake.seconds}${NBSP}s: ${verdict}: ${cell(r.bake.reason)} (new ${counts(r.bake.new)}, old ${counts(r.bake.old)})`,
    )
  }
  return out
}
