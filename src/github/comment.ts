// Pure: the pull-request comment that follows a canary, one per app and environment (or host), rewritten
// in place by every run so the pull request never collects a pile of them.
import type { Operation } from '../config.js'
import type { CanaryObservation } from '../health/canary.js'
import type { Result } from '../summary.js'

export interface CanaryCommentView {
  readonly app: string
  /** The environment, or the host when no environment is set: what tells two canaries of one app apart. */
  readonly where: string
  readonly operation: Operation
  readonly result: Result
  readonly canaryImage: string
  readonly stableImage: string
  readonly canaryWeight: string
  readonly observations: readonly CanaryObservation[]
  readonly failure?: string
  readonly runUrl?: string
  readonly at: string
}

/** The hidden first line that finds the comment again. */
export const commentMarker = (app: string, where: string): string => `<!-- nginx-rollout canary: ${app} @ ${where.replaceAll('--', '- -')} -->`

const count = (n: number) => n.toLocaleString('en-US')
const fence = (s: string) => `\`\`\`\n${s.replaceAll('```', '` ` `')}\n\`\`\``

function headline(v: CanaryCommentView): string {
  const app = `\`${v.app}\` on ${v.where}`
  switch (v.result) {
    case 'paused':
      return `Canary of ${app}: live at ${v.canaryWeight}%`
    case 'deployed':
      return `Canary of ${app}: promoted`
    case 'rolled-back':
      return v.operation === 'abort' ? `Canary of ${app}: aborted` : `Canary of ${app}: failed and removed`
    case 'failed':
    case 'planned':
      return `Canary of ${app}: ${v.operation === 'deploy' ? 'deploy' : v.operation} failed`
  }
}

function state(v: CanaryCommentView): string {
  const canary = `\`${v.canaryImage || '-'}\``
  const stable = `\`${v.stableImage || '-'}\``
  switch (v.result) {
    case 'paused':
      return `${canary} serves **${v.canaryWeight}%** of requests; ${stable} (stable) serves the rest.`
    case 'deployed':
      return `${canary} serves all requests.`
    case 'rolled-back':
      return `${stable} serves all requests again; the canary ${canary} is gone.`
    case 'failed':
    case 'planned':
      return `The run failed before it finished: check what is live with \`operation: status\`.`
  }
}

export function renderCanaryComment(v: CanaryCommentView): string {
  const out = [commentMarker(v.app, v.where), `### ${headline(v)}`, '', state(v)]
  if (v.observations.length) {
    out.push('', '| Step | Canary requests | Canary errors | Stable requests | Stable errors | Verdict |', '|---|---|---|---|---|---|')
    for (const o of v.observations)
      out.push(
        `| ${o.percent}% for ${o.seconds} s | ${count(o.canary.requests)} | ${count(o.canary.errors)} (${o.canary.rate.toFixed(2)}%) | ` +
          `${count(o.stable.requests)} | ${count(o.stable.errors)} (${o.stable.rate.toFixed(2)}%) | ${o.verdict === 'pass' ? 'pass' : `**${o.verdict}**: ${o.reason.replaceAll('|', '\\|')}`} |`,
      )
  }
  if (v.failure) out.push('', '**What failed:**', '', fence(v.failure))
  if (v.result === 'paused')
    out.push(
      '',
      `**Promote** (all requests to the canary): run nginx-rollout with \`operation: promote\`; the example workflow does it when this pull request merges.`,
      `**Abort** (remove the canary): run it with \`operation: abort\`; the example workflow does it when this pull request closes unmerged.`,
    )
  out.push('', `<sub>Updated ${v.runUrl ? `by [this run](${v.runUrl}) ` : ''}at ${v.at} · nginx-rollout</sub>`)
  return out.join('\n') + '\n'
}
