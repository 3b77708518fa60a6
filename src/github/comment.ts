// Pure: the pull-request comment that follows a canary, one per app and environment (or host), rewritten
// in place by every run so the pull request never collects a pile of them.
import { LIMITS, type CanaryMatch, type Operation } from '../config.js'
import type { CanaryPush } from '../host/state.js'
import type { CanaryObservation } from '../model.js'
import type { Result } from '../summary.js'
import { canaryTimeline } from '../timeline.js'
import { code, codeBlock, link, text } from '../report/text.js'
import { NAME } from '../rules.js'

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

/** What tells one canary comment from another: the app, and the environment (or host) of its canary. */
export interface CommentKey {
  readonly app: string
  readonly where: string
}

// The hidden first line holds the key as base64 JSON: base64 has no '-' and no '>', so no environment name
// can end the HTML comment early or put text after it; the version word lets a later format be told apart.
const STATE_OPEN = '<!-- nginx-rollout canary-state v1 '
const STATE_CLOSE = ' -->'
const STATE_LINE = /^<!-- nginx-rollout canary-state (\S+) ([A-Za-z0-9+/]*={0,2}) -->$/

/** The hidden first line that finds the comment again. */
export const commentMarker = (key: CommentKey): string =>
  `${STATE_OPEN}${Buffer.from(JSON.stringify({ app: key.app, where: key.where }), 'utf8').toString('base64')}${STATE_CLOSE}`

/**
 * The first line earlier versions wrote (kept readable so that their comment is taken over and rewritten in
 * the new form, not left beside a second one). Its '--' escaping let an environment end the comment.
 */
export const legacyCommentMarker = (key: CommentKey): string =>
  `<!-- nginx-rollout canary: ${key.app} @ ${key.where.replaceAll('--', '- -')} -->`

/** What a comment's first line says: no state of this action's, its key, or a state that does not read. */
export type CommentState =
  | { readonly kind: 'none' }
  | { readonly kind: 'key'; readonly key: CommentKey }
  | { readonly kind: 'unreadable'; readonly why: string }

const isKey = (x: unknown): x is CommentKey => {
  const o = x as Record<string, unknown>
  return (
    typeof x === 'object' &&
    x !== null &&
    !Array.isArray(x) &&
    Object.keys(o).sort().join(',') === 'app,where' &&
    typeof o.app === 'string' &&
    NAME.test(o.app) &&
    typeof o.where === 'string' &&
    o.where.length <= 255 &&
    !/[\x00-\x1f\x7f]/.test(o.where)
  )
}

/** Reads the hidden state back, checked: its version, its base64, its JSON, and the key's shape. */
export function readCommentState(body: string): CommentState {
  const first = body.split('\n', 1)[0]
  if (!first.startsWith('<!-- nginx-rollout canary-state ')) return { kind: 'none' }
  const m = STATE_LINE.exec(first)
  if (!m) return { kind: 'unreadable', why: 'the hidden state line is not one this version writes' }
  if (m[1] !== 'v1') return { kind: 'unreadable', why: `state version ${JSON.stringify(m[1].slice(0, 20))} is unknown` }
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(m[2], 'base64').toString('utf8'))
  } catch {
    return { kind: 'unreadable', why: 'the hidden state is not base64 JSON' }
  }
  if (!isKey(parsed))
    return {
      kind: 'unreadable',
      why: 'the hidden state is not {app, where} with an app name and a one-line environment',
    }
  return { kind: 'key', key: { app: parsed.app, where: parsed.where } }
}

/** Whether a comment is the one of this key: by its hidden state, or by the first line earlier versions wrote. */
export const isCommentOf = (body: string, key: CommentKey): boolean => {
  const state = readCommentState(body)
  if (state.kind === 'key') return state.key.app === key.app && state.key.where === key.where
  return state.kind === 'none' && body.split('\n', 1)[0] === legacyCommentMarker(key)
}

const count = (n: number) => n.toLocaleString('en-US')
const fence = codeBlock

function headline(v: CanaryCommentView): string {
  const app = `${code(v.app)} on ${text(v.where)}`
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
  const canary = code(v.canaryImage || '-')
  const stable = code(v.stableImage || '-')
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
      (p) =>
        `| ${code(p.image)}${p.sha ? ` (${text(p.sha.slice(0, 7))})` : ''} | ${verdicts(p.observations)} | ${text(p.outcome)} |`,
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
    `| ${code(v.canaryImage)} (this run) | ${verdicts(v.observations)} | ${now} |`,
  ]
}

export function renderCanaryComment(v: CanaryCommentView): string {
  const out = [commentMarker(v), `### ${headline(v)}`, '', state(v)]
  if (v.observations.length) {
    out.push(
      '',
      '| Step | Canary requests | Canary errors | Stable requests | Stable errors | Verdict |',
      '|---|---|---|---|---|---|',
    )
    for (const o of v.observations)
      out.push(
        `| ${o.percent}% for ${o.seconds} s | ${count(o.canary.requests)} | ${count(o.canary.errors)} (${o.canary.rate.toFixed(2)}%) | ` +
          `${count(o.stable.requests)} | ${count(o.stable.errors)} (${o.stable.rate.toFixed(2)}%) | ${o.verdict === 'pass' ? 'pass' : `**${o.verdict}**: ${text(o.reason)}`} |`,
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
  const by = v.runUrl ? `by ${link('this run', v.runUrl)} ` : ''
  out.push('', `<sub>Updated ${by}at ${text(v.at)} · nginx-rollout</sub>`)
  return out.join('\n') + '\n'
}
