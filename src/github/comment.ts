// Pure: the pull-request comment that follows a canary, one per app and environment (or host), rewritten
// in place by every run so the pull request never collects a pile of them.
import { LIMITS, type CanaryMatch, type Operation } from '../config.js'
import type { CanaryPush } from '../host/state.js'
import type { CanaryObservation } from '../model.js'
import type { Result } from '../summary.js'
import { canaryTimeline } from '../timeline.js'

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
  /** The pull request's earlier pushes whose canaries this one replaced, oldest first. */
  readonly pushes?: readonly CanaryPush[]
  readonly failure?: string
  readonly runUrl?: string
  readonly at: string
  /** canary-match, and the preview link nginx answers (site scope; a path when no environment-url is set). */
  readonly reach?: { readonly match: CanaryMatch; readonly link?: string }
}

/** How a reviewer reaches the canary on purpose: the header (or cookie), and the link that sets the cookie. */
function reachLines(v: CanaryCommentView): string[] {
  if (!v.reach || v.result !== 'paused') return []
  const { match, link } = v.reach
  const by =
    match.kind === 'header'
      ? `send the header \`${match.name}: ${match.value}\``
      : `send the cookie \`${match.name}=${match.value}\``
  const opened = link
    ? ` or open ${/^https?:/.test(link) ? `[the preview link](${link})` : `\`${link}\` on the app's host`}: nginx sets the cookie and sends you to \`/\`, and that browser reaches the canary until the cookie is deleted`
    : ''
  const who =
    v.canaryWeight === '0'
      ? ' Nobody else reaches it: this canary is a preview.'
      : ` Other requests reach it by its share (${v.canaryWeight}%).`
  return ['', `**Reach the canary on purpose:** ${by}${opened}.${who}`]
}

/** The hidden first line that finds the comment again. */
export const commentMarker = (app: string, where: string): string =>
  `<!-- nginx-rollout canary: ${app} @ ${where.replaceAll('--', '- -')} -->`

const count = (n: number) => n.toLocaleString('en-US')
const fence = (s: string, lang = '') => `\`\`\`${lang}\n${s.replaceAll('```', '` ` `')}\n\`\`\``

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
    case 'unchanged':
      return `Canary of ${app}: unchanged`
    case 'cancelled':
      return `Canary of ${app}: ${v.operation === 'deploy' ? 'deploy' : v.operation} cancelled`
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
    case 'unchanged':
      return 'Nothing changed.'
    case 'cancelled':
      return `The run was cancelled and left nginx in one consistent state: check what is live with \`operation: status\`.`
  }
}

const verdicts = (obs: readonly CanaryObservation[]): string =>
  obs.map((o) => `${o.percent}% ${o.verdict}`).join(', ') || 'not judged'

/** One row per push of the pull request: the canaries it had, oldest first, the live one last. */
function history(v: CanaryCommentView): string[] {
  if (!v.pushes?.length) return []
  const rows = v.pushes
    .slice(-LIMITS.canaryPushesShown)
    .map(
      (p) => `| \`${p.image}\`${p.sha ? ` (${p.sha.slice(0, 7)})` : ''} | ${verdicts(p.observations)} | ${p.outcome} |`,
    )
  const now =
    v.result === 'paused'
      ? 'live'
      : v.result === 'deployed'
        ? 'promoted'
        : v.result === 'rolled-back'
          ? v.operation === 'abort'
            ? 'aborted'
            : 'failed'
          : v.result
  return [
    '',
    '**Pushes**',
    '',
    '| Canary | Steps | Outcome |',
    '|---|---|---|',
    ...rows,
    `| \`${v.canaryImage}\` (this run) | ${verdicts(v.observations)} | ${now} |`,
  ]
}

export function renderCanaryComment(v: CanaryCommentView): string {
  const out = [commentMarker(v.app, v.where), `### ${headline(v)}`, '', state(v)]
  if (v.observations.length) {
    out.push(
      '',
      '| Step | Canary requests | Canary errors | Stable requests | Stable errors | Verdict |',
      '|---|---|---|---|---|---|',
    )
    for (const o of v.observations)
      out.push(
        `| ${o.percent}% for ${o.seconds} s | ${count(o.canary.requests)} | ${count(o.canary.errors)} (${o.canary.rate.toFixed(2)}%) | ` +
          `${count(o.stable.requests)} | ${count(o.stable.errors)} (${o.stable.rate.toFixed(2)}%) | ${o.verdict === 'pass' ? 'pass' : `**${o.verdict}**: ${o.reason.replaceAll('|', '\\|')}`} |`,
      )
  }
  const chart = canaryTimeline(v.observations)
  if (chart) out.push('', fence(chart, 'mermaid'))
  out.push(...history(v))
  if (v.failure) out.push('', '**What failed:**', '', fence(v.failure))
  out.push(...reachLines(v))
  if (v.result === 'paused')
    out.push(
      '',
      `**Promote** (all requests to the canary): run nginx-rollout with \`operation: promote\`; the example workflow does it when this pull request merges.`,
      `**Abort** (remove the canary): run it with \`operation: abort\`; the example workflow does it when this pull request closes unmerged.`,
    )
  out.push('', `<sub>Updated ${v.runUrl ? `by [this run](${v.runUrl}) ` : ''}at ${v.at} · nginx-rollout</sub>`)
  return out.join('\n') + '\n'
}
