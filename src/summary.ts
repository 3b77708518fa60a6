// Pure: the record of a run -> the job summary's markdown.
import type { CanaryState, HistoryEntry } from './host/state.js'
import type { Evidence, GateResult, RunPhase, StepRecord } from './journal.js'
import { hostPort, type CanaryObservation, type Replica } from './model.js'

/** unchanged: nothing to do (a pull request's promote or abort while its canary is not the one live). */
export type Result = 'deployed' | 'rolled-back' | 'failed' | 'planned' | 'paused' | 'unchanged'

/** What the status operation reports. */
export interface LiveReport {
  readonly replicas: ReadonlyArray<Replica & { readonly weight: number }>
  readonly canary?: CanaryState
  readonly history: readonly HistoryEntry[]
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
  readonly live?: LiveReport
  readonly result: Result
  readonly image: string
  readonly previousImage: string
  readonly durationSeconds: number
  /** When all traffic had reached the new version (seconds since the run started), if it did. */
  readonly trafficSwitchedSeconds?: number
  readonly dryRun: boolean
  readonly plan: readonly string[]
  readonly steps: readonly StepRecord[]
  readonly gates: readonly GateResult[]
  readonly configPath: string
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

/** Replaces every secret value in text (a failing app may log its environment). */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text
  // Longest first: a secret that contains a shorter one is masked whole.
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) if (s.length >= 3) out = out.split(s).join('***')
  return out
}

const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ')
const fence = (s: string, lang = '') => `\`\`\`${lang}\n${s.replaceAll('```', '` ` `')}\n\`\`\``

const HEADLINE: Record<Result, string> = {
  deployed: 'deployed',
  'rolled-back': 'rolled back',
  failed: 'FAILED',
  planned: 'planned (dry run: nothing changed)',
  paused: 'paused with the canary live',
  unchanged: 'unchanged (nothing to do)',
}

export function renderSummary(r: RunRecord, secrets: readonly string[] = []): string {
  const out: string[] = []
  const status = r.operation === 'status'
  out.push(status ? `## nginx-rollout: ${r.app} status` : `## nginx-rollout: ${r.app} ${HEADLINE[r.result]}`)
  out.push('')
  out.push(
    `**Result:** \`${r.result}\` · **${r.hosts.length > 1 ? 'hosts' : 'host'}** ${r.hosts.join(', ')} · **nginx** ${r.nginxHost} · ` +
      `${r.operation && r.operation !== 'deploy' ? `**operation** ${r.operation} · ` : ''}**strategy** ${r.strategy} · ` +
      `**image** \`${r.image || '-'}\` · **previous** \`${r.previousImage || '-'}\`${r.color ? ` · **colour** ${r.color}` : ''}` +
      `${r.canaryWeight ? ` · **canary** ${r.canaryWeight}%` : ''}` +
      `${r.trafficSwitchedSeconds !== undefined ? ` · **all traffic on the new version after** ${r.trafficSwitchedSeconds.toFixed(1)} s` : ''} · **run ended after** ${r.durationSeconds.toFixed(1)} s`,
  )
  for (const n of r.notes ?? []) out.push('', `> ${n}`)
  if (r.live) {
    out.push(
      '',
      '### Live',
      '',
      '| Replica | Host | Address | Image | Colour | nginx weight |',
      '|---|---|---|---|---|---|',
    )
    for (const x of r.live.replicas)
      out.push(
        `| ${x.name} | ${x.host} | ${hostPort(x.address, x.port)} | \`${x.image}\` | ${x.color ?? '-'} | ${x.weight} |`,
      )
    if (!r.live.replicas.length) out.push('| (none) | | | | | |')
    if (r.live.canary)
      out.push(
        '',
        `Canary \`${r.live.canary.image}\` paused at **${r.live.canary.weight}%** next to \`${r.live.canary.stableImage}\` since ${r.live.canary.at}: run \`operation: promote\` to finish it or \`operation: abort\` to remove it.`,
      )
    if (r.live.history.length) {
      out.push('', '### Recent deploys', '', '| When | Operation | Image | Result |', '|---|---|---|---|')
      for (const h of r.live.history)
        out.push(`| ${h.at} | ${h.operation ?? 'deploy'} ${h.strategy} | \`${h.image}\` | ${h.result} |`)
    }
  }
  if (r.failure) out.push('', '**What failed:**', '', fence(r.failure))
  if (r.rollbackFailure) out.push('', '**The rollback failed too:**', '', fence(r.rollbackFailure))
  if (r.plan.length) {
    out.push('', '### Plan', '')
    r.plan.forEach((p, i) => out.push(`${i + 1}. ${p}`))
  }
  if (r.steps.length) {
    out.push('', '### Steps', '', '| # | Phase | Step | Host | Duration | Outcome |', '|---|---|---|---|---|---|')
    r.steps.forEach((s, i) =>
      out.push(
        `| ${i + 1} | ${s.phase} | ${cell(s.description)} | ${s.hosts.join(', ')} | ${(s.ms / 1000).toFixed(2)} s | ${s.outcome === 'ok' ? `ok${s.detail ? `: ${cell(s.detail)}` : ''}` : '**failed**'} |`,
      ),
    )
  }
  if (r.gates.length) {
    out.push(
      '',
      '### Health gates',
      '',
      '| Replica | Host | Result | Probes | Time | Last probe | Docker health |',
      '|---|---|---|---|---|---|---|',
    )
    for (const g of r.gates)
      out.push(
        `| ${g.replica} | ${g.host} | ${g.ok ? 'healthy' : '**unhealthy**'} | ${g.probes} | ${(g.ms / 1000).toFixed(2)} s | ${cell(g.last)} | ${g.dockerHealth} |`,
      )
  }
  if (r.canarySteps?.length) {
    out.push(
      '',
      '### Canary steps',
      '',
      '| Share | Window | Canary requests | Canary errors | Canary error rate | Stable requests | Stable errors | Stable error rate | Verdict |',
      '|---|---|---|---|---|---|---|---|---|',
    )
    for (const c of r.canarySteps)
      out.push(
        `| ${c.percent}% | ${c.seconds} s | ${c.canary.requests} | ${c.canary.errors} | ${c.canary.rate.toFixed(2)}% | ${c.stable.requests} | ${c.stable.errors} | ${c.stable.rate.toFixed(2)}% | ` +
          `${c.verdict === 'pass' ? 'pass' : `**${c.verdict}**: ${cell(c.reason)}`} |`,
      )
  }
  if (r.github?.length) out.push('', '### GitHub', '', ...r.github.map((n) => `- ${n}`))
  if (r.configDiff)
    out.push('', `<details><summary>${r.configPath} diff</summary>`, '', fence(r.configDiff, 'diff'), '', '</details>')
  for (const e of r.evidence)
    out.push(
      '',
      `<details open><summary>${e.subject}: last log lines</summary>`,
      '',
      cell(e.reason),
      '',
      fence(e.logs),
      '',
      '</details>',
    )
  if (r.stats)
    out.push(
      '',
      `<sub>${r.stats.connections} SSH connection${r.stats.connections === 1 ? '' : 's'}, ${r.stats.commands} remote commands, ${r.stats.probes} probes` +
        `${r.phases?.length ? `; the run's own work: ${r.phases.map((p) => `${p.name} ${(p.ms / 1000).toFixed(2)} s`).join(', ')}` : ''}</sub>`,
    )
  return redact(out.join('\n') + '\n', secrets)
}
