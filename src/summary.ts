// Pure: the record of a run -> the job summary's markdown.
import type { Evidence, GateResult, StepRecord } from './execute.js'

export type Result = 'deployed' | 'rolled-back' | 'failed' | 'planned'

export interface RunRecord {
  readonly app: string
  readonly host: string
  readonly strategy: string
  readonly result: Result
  readonly image: string
  readonly previousImage: string
  readonly durationSeconds: number
  readonly dryRun: boolean
  readonly plan: readonly string[]
  readonly steps: readonly StepRecord[]
  readonly gates: readonly GateResult[]
  readonly configDiff: string
  readonly failure?: string
  readonly rollbackFailure?: string
  readonly evidence: readonly Evidence[]
  readonly stats?: { readonly connections: number; readonly commands: number; readonly uploads: number; readonly probes: number }
}

/** Replaces every secret value in text (a failing app may log its environment). */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text
  for (const s of secrets) if (s.length >= 3) out = out.split(s).join('***')
  return out
}

const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ')
const fence = (s: string, lang = '') => `\`\`\`${lang}\n${s.replaceAll('```', '` ` `')}\n\`\`\``

const HEADLINE: Record<Result, string> = {
  deployed: 'deployed',
  'rolled-back': 'rolled back',
  failed: 'FAILED',
  planned: 'planned (dry run: nothing changed)',
}

export function renderSummary(r: RunRecord, secrets: readonly string[] = []): string {
  const out: string[] = []
  out.push(`## nginx-rollout: ${r.app} ${HEADLINE[r.result]}`)
  out.push('')
  out.push(
    `**Result:** \`${r.result}\` · **host** ${r.host} · **strategy** ${r.strategy} · **image** \`${r.image || '-'}\` · ` +
      `**previous** \`${r.previousImage || '-'}\` · **duration** ${r.durationSeconds.toFixed(1)} s`,
  )
  if (r.failure) out.push('', '**What failed:**', '', fence(r.failure))
  if (r.rollbackFailure) out.push('', '**The rollback failed too:**', '', fence(r.rollbackFailure))
  if (r.plan.length) {
    out.push('', '### Plan', '')
    r.plan.forEach((p, i) => out.push(`${i + 1}. ${p}`))
  }
  if (r.steps.length) {
    out.push('', '### Steps', '', '| # | Phase | Step | Host | Duration | Outcome |', '|---|---|---|---|---|---|')
    r.steps.forEach((s, i) =>
      out.push(`| ${i + 1} | ${s.phase} | ${cell(s.description)} | ${s.host} | ${(s.ms / 1000).toFixed(2)} s | ${s.outcome === 'ok' ? 'ok' : '**failed**'} |`),
    )
  }
  if (r.gates.length) {
    out.push('', '### Health gates', '', '| Replica | Result | Probes | Time | Last probe | Docker health |', '|---|---|---|---|---|---|')
    for (const g of r.gates)
      out.push(`| ${g.replica} | ${g.ok ? 'healthy' : '**unhealthy**'} | ${g.probes} | ${(g.ms / 1000).toFixed(2)} s | ${cell(g.last)} | ${g.dockerHealth} |`)
  }
  if (r.configDiff) out.push('', '<details><summary>nginx.conf diff</summary>', '', fence(r.configDiff, 'diff'), '', '</details>')
  for (const e of r.evidence)
    out.push('', `<details open><summary>${e.subject}: last log lines</summary>`, '', cell(e.reason), '', fence(e.logs), '', '</details>')
  if (r.stats)
    out.push('', `<sub>${r.stats.connections} SSH connection, ${r.stats.commands} remote commands, ${r.stats.uploads} uploads, ${r.stats.probes} probes</sub>`)
  return redact(out.join('\n') + '\n', secrets)
}
