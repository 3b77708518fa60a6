// What the hosts hold, parsed and validated once when they are read: the hosts are the source of truth, so
// a run from a fresh runner knows what is live. Nothing read back is trusted further than its shape, and
// every value in it passes the rule of the input it stands for (src/rules.ts): what a host sends back goes on
// into commands, nginx files, step outputs and log lines, so a host that lies must not be able to write them.
import { LABEL, replicaName, type CanaryObservation, type Replica, type Verdict } from '../model.js'
import type { NginxState } from '../nginx/nginx.js'
import {
  COMMIT,
  HOST_ID,
  IMAGE,
  isColor,
  isImageOrNone,
  isPercent,
  isReplicaName,
  NAME,
  quoteHostText,
  TIMESTAMP,
  WORD,
} from '../rules.js'
import type { HostUsage } from './ports.js'

/** A replica container as a host reports it. */
export interface ManagedContainer extends Replica {
  readonly id: string
  readonly app: string
  readonly running: boolean
  /** The main process on its host, when running (its network namespace is where its connections are counted). */
  readonly pid?: number
}

const CONTAINER_ID = /^[0-9a-f]{64}$/

/**
 * The managed containers in `docker inspect` output (one JSON object per line, see CONTAINER_FIELDS). Only
 * containers the action could have created count: a role=replica label, a valid app and port, and the name
 * the action gives (`<app>-<port>`); anything else, however it is labelled, is not the action's to touch.
 * One of the action's containers whose image or colour label breaks its rule is a problem that stops the run
 * before it changes anything: its image would go on into outputs, logs and the next deploy's previous image,
 * and which of the app's replicas it is cannot be known, so it is neither used nor passed over.
 */
export function parseContainers(
  output: string,
  host: { id: string; upstreamAddress: string },
  app: string,
): { containers: ManagedContainer[]; ignored: string[]; problems: string[] } {
  const containers: ManagedContainer[] = []
  const ignored: string[] = []
  const problems: string[] = []
  for (const line of output.split('\n')) {
    if (!line.trim()) continue
    const read = inspectedContainer(line, host, app)
    if (!read) continue
    if ('ignored' in read) ignored.push(read.ignored)
    else if ('problems' in read) problems.push(...read.problems)
    else containers.push(read.container)
  }
  return { containers, ignored, problems }
}

/**
 * One line of docker inspect output: one of the action's containers, one passed over (and why), or the problems
 * that stop the run; undefined for a container that is no replica (not the action's, and nothing to say).
 * Labels that break their rules stop only a run of the container's own app: another app's run passes the
 * container over with a warning (its port stays out of use while anything listens on it), so that one
 * tampered container does not stop the deploys of every app on the host.
 */
type Inspected =
  | { readonly container: ManagedContainer }
  | { readonly ignored: string }
  | { readonly problems: readonly string[] }
  | undefined

function inspectedContainer(line: string, host: { id: string; upstreamAddress: string }, runApp: string): Inspected {
  let c: { id?: unknown; name?: unknown; state?: unknown; pid?: unknown; labels?: unknown }
  try {
    c = JSON.parse(line)
  } catch {
    c = undefined as never
  }
  if (!isObject(c)) return { ignored: `an unreadable line of docker inspect output (${line.length} characters)` }
  const labels = (c.labels && typeof c.labels === 'object' ? c.labels : {}) as Record<string, unknown>
  const label = (k: string) => (typeof labels[k] === 'string' ? (labels[k] as string) : '')
  const name = typeof c.name === 'string' ? c.name.replace(/^\//, '') : ''
  const app = label(LABEL.app)
  const port = /^\d{1,5}$/.test(label(LABEL.port)) ? Number(label(LABEL.port)) : 0
  const id = typeof c.id === 'string' ? c.id : ''
  if (label(LABEL.role) !== 'replica') return undefined
  if (!CONTAINER_ID.test(id) || !NAME.test(app) || port < 1 || port > 65535 || name !== replicaName(app, port))
    return {
      ignored: `container ${JSON.stringify(name.slice(0, 64))} carries nginx-rollout labels but is not one the action created (its name or labels do not match)`,
    }
  const image = label(LABEL.image)
  const color = label(LABEL.color)
  const problems = labelProblems(name, image, color)
  if (problems.length && app !== runApp)
    return { ignored: `${problems.join('; ')} (app ${quoteHostText(app)}'s, not this run's: passed over)` }
  if (problems.length) return { problems: problems.map((p) => `${host.id}: ${p}`) }
  const pid = typeof c.pid === 'number' && c.pid > 0 ? c.pid : undefined
  return {
    container: {
      ...(pid ? { pid } : {}),
      id,
      host: host.id,
      address: host.upstreamAddress,
      name,
      app,
      port,
      image,
      running: c.state === 'running',
      ...(color ? { color } : {}),
    },
  }
}

/** The image and colour labels of one of the action's containers that break their rules. */
function labelProblems(name: string, image: string, color: string): string[] {
  const refuse = (key: string, expected: string, value: string) =>
    `container ${quoteHostText(name)} has label ${key}: expected ${expected}, got ${quoteHostText(value)}; ` +
    'the action writes no such label, so something else changed the container: find out what, and remove it'
  return [
    ...(IMAGE.test(image) ? [] : [refuse(LABEL.image, 'a Docker image reference', image)]),
    ...(isColor(color) ? [] : [refuse(LABEL.color, "'', 'blue' or 'green'", color)]),
  ]
}

export interface HistoryEntry {
  readonly image: string
  readonly previousImage: string
  readonly result: string
  readonly at: string
  readonly strategy: string
  readonly operation?: string
  readonly run?: string
}

/** One push of a pull request's canary: its image and what its steps were judged. */
export interface CanaryPush {
  readonly image: string
  readonly sha?: string
  readonly at: string
  readonly observations: readonly CanaryObservation[]
  /** How that push's canary ended: still live, replaced by the next push, promoted, aborted, failed. */
  readonly outcome: 'live' | 'replaced' | 'promoted' | 'aborted' | 'failed'
}

/** A canary left live at a share below 100 (result paused), kept on the nginx host until promote or abort. */
export interface CanaryState {
  readonly image: string
  readonly stableImage: string
  /** The share now, in percent, and the steps still to go. */
  readonly weight: number
  readonly remainingSteps: readonly number[]
  readonly replicas: ReadonlyArray<{ readonly host: string; readonly name: string }>
  readonly at: string
  /** The commit a pull request's run deployed as this canary. */
  readonly sha?: string
  /** The steps judged so far, newest last (a later promote or abort reports them). */
  readonly observations?: readonly CanaryObservation[]
  /** The GitHub deployment the canary run recorded; promote or abort finishes it. */
  readonly deployment?: { readonly repo: string; readonly environment: string; readonly id: number }
  /** The pull request whose run started the canary; later runs update its comment. */
  readonly pullRequest?: { readonly repo: string; readonly number: number }
  /** Earlier pushes of the same pull request whose canaries this one replaced, oldest first. */
  readonly pushes?: readonly CanaryPush[]
}

/** What one app host holds. */
export interface AppHostState {
  readonly host: string
  readonly containers: readonly ManagedContainer[]
  /** Failures earlier runs' background stops reported on this host. */
  readonly retireReports: readonly string[]
  /** Ports and container names in use on the host, whoever uses them. */
  readonly usage: HostUsage
  /** What the host holds that must stop a run before it changes anything (see parseContainers). */
  readonly problems: readonly string[]
}

export interface HostState {
  /** Every container nginx-rollout manages on every app host, all apps (ports are shared per host). */
  readonly containers: readonly ManagedContainer[]
  readonly nginx: NginxState
  readonly history: readonly HistoryEntry[]
  readonly canary?: CanaryState
  /** What was read but not trusted: malformed state files, foreign containers with the action's labels. */
  readonly warnings: readonly string[]
  /**
   * What was read that must stop a run before it changes anything (hostProblems reports them): the action's
   * own containers whose labels break their rules. Absent: none.
   */
  readonly problems?: readonly string[]
  readonly retireReports: ReadonlyArray<{ readonly host: string; readonly report: string }>
  /** Each app host's ports and container names in use, whoever uses them (absent: not read). */
  readonly usage?: ReadonlyMap<string, HostUsage>
}

const isString = (v: unknown): v is string => typeof v === 'string'
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function isStats(v: unknown): boolean {
  return isObject(v) && isNumber(v.requests) && isNumber(v.errors) && isNumber(v.rate)
}

const VERDICTS: readonly unknown[] = ['pass', 'fail', 'inconclusive'] satisfies Verdict[]

function isObservation(v: unknown): v is CanaryObservation {
  return (
    isObject(v) &&
    VERDICTS.includes(v.verdict) &&
    isNumber(v.percent) &&
    isNumber(v.seconds) &&
    isString(v.reason) &&
    isStats(v.canary) &&
    isStats(v.stable)
  )
}

/** The history, keeping only well-formed entries; a damaged file is reported and treated as empty. */
export function parseHistory(text: string, warn: (m: string) => void): HistoryEntry[] {
  const parsed = parseJson(text, 'history.json', warn)
  if (parsed === undefined) return []
  if (!Array.isArray(parsed)) {
    warn('history.json on the nginx host is not a list: ignored (the next deploy rewrites it)')
    return []
  }
  const why = parsed.map(historyEntryProblem)
  const ok = parsed.filter((_, i) => why[i] === undefined) as HistoryEntry[]
  const first = why.findIndex((w) => w !== undefined)
  if (first >= 0)
    warn(
      `history.json on the nginx host: ${parsed.length - ok.length} malformed entries ignored (the first, entry ${first + 1}: ${why[first]})`,
    )
  return ok
}

/** Why a history entry cannot be used: the field, what it should hold and what it holds; undefined when it can. */
function historyEntryProblem(h: unknown): string | undefined {
  if (!isObject(h)) return `expected an object, got ${quoteHostText(h)}`
  const rules: Array<[keyof HistoryEntry, boolean, string]> = [
    ['image', isString(h.image) && IMAGE.test(h.image), 'a Docker image reference'],
    ['previousImage', isString(h.previousImage) && isImageOrNone(h.previousImage), "'' or a Docker image reference"],
    ['result', isString(h.result) && WORD.test(h.result), 'a result like deployed'],
    ['at', isString(h.at) && TIMESTAMP.test(h.at), 'a UTC time like 2026-05-01T10:00:00Z'],
    ['strategy', isString(h.strategy) && WORD.test(h.strategy), 'a strategy like rolling'],
    ['operation', h.operation === undefined || (isString(h.operation) && WORD.test(h.operation)), 'an operation'],
  ]
  const broken = rules.find(([, ok]) => !ok)
  return broken && `${broken[0]}: expected ${broken[2]}, got ${quoteHostText(h[broken[0]])}`
}

/**
 * The paused canary's record, or undefined. A record of the wrong shape is stale state: reported, and the
 * run goes on as if there were none (what the hosts hold decides what is live).
 */
export function parseCanaryState(
  text: string,
  defaultHost: string,
  warn: (m: string) => void,
): CanaryState | undefined {
  const parsed = parseJson(text, 'canary.json', warn)
  if (parsed === undefined) return undefined
  const record = canaryStateOf(parsed, defaultHost)
  if (!isString(record)) return record
  warn(`canary.json on the nginx host is malformed (${record}): ignored as stale`)
  return undefined
}

/** What every canary record holds: its images, when it paused, its share and the shares still to go. */
type CanaryHead = Pick<CanaryState, 'image' | 'stableImage' | 'at' | 'weight' | 'remainingSteps'>

/** The canary record in parsed JSON, or why it is malformed (the first thing wrong, in the record's order). */
function canaryStateOf(parsed: unknown, defaultHost: string): CanaryState | string {
  if (!isObject(parsed)) return 'not an object'
  const head = headProblem(parsed)
  if (head) return head
  const replicas = replicasOf(parsed.replicas, defaultHost)
  if (isString(replicas)) return replicas
  const observations = observationsOf(parsed.observations)
  if (observations === null) return 'observations are malformed'
  const links = linksProblem(parsed.deployment, parsed.pullRequest)
  if (links) return links
  const pushes = pushesProblem(parsed.pushes)
  if (pushes) return pushes
  const p = parsed as typeof parsed & CanaryHead
  return {
    image: p.image,
    stableImage: p.stableImage,
    weight: p.weight,
    remainingSteps: p.remainingSteps,
    replicas,
    at: p.at,
    ...(isString(p.sha) && COMMIT.test(p.sha) ? { sha: p.sha } : {}),
    ...(observations ? { observations } : {}),
    ...(p.deployment ? { deployment: p.deployment as CanaryState['deployment'] } : {}),
    ...(p.pullRequest ? { pullRequest: p.pullRequest as CanaryState['pullRequest'] } : {}),
    ...(p.pushes ? { pushes: p.pushes as CanaryPush[] } : {}),
  }
}

/** Why the record's images, time and shares cannot be used; undefined when they can. */
function headProblem(p: Record<string, unknown>): string | undefined {
  if (!isString(p.image) || !isString(p.stableImage) || !isString(p.at)) return 'image, stableImage or at missing'
  // A record's images and names are a host's text like any other: the same rules as the inputs they came from.
  if (!IMAGE.test(p.image)) return `image: expected a Docker image reference, got ${quoteHostText(p.image)}`
  if (!isImageOrNone(p.stableImage))
    return `stableImage: expected '' or a Docker image reference, got ${quoteHostText(p.stableImage)}`
  if (!TIMESTAMP.test(p.at)) return `at: expected a UTC time like 2026-05-01T10:00:00Z, got ${quoteHostText(p.at)}`
  if (!isPercent(p.weight)) return 'weight is not a percentage'
  if (!Array.isArray(p.remainingSteps) || !p.remainingSteps.every(isNumber))
    return 'remainingSteps is not a list of numbers'
  if (!p.remainingSteps.every((n) => isPercent(n, 1)))
    return `remainingSteps: expected percentages from 1 to 100, got ${quoteHostText(p.remainingSteps)}`
  return undefined
}

/** The canary's replicas on record, or why they cannot be used. */
function replicasOf(value: unknown, defaultHost: string): CanaryState['replicas'] | string {
  if (!Array.isArray(value)) return 'replicas is not a list'
  // Records written before replicas knew their host name a container only.
  const replicas = value.map((r) => (isString(r) ? { host: defaultHost, name: r } : r))
  if (!replicas.every((r) => isObject(r) && isString(r.host) && isString(r.name)))
    return 'a replica has no host or name'
  const named = replicas as Array<{ host: string; name: string }>
  const strange = named.find((r) => !HOST_ID.test(r.host) || !isReplicaName(r.name))
  if (strange)
    return `replicas: expected container names like <app>-<port> on app hosts, got ${quoteHostText(strange.name)} on ${quoteHostText(strange.host)}`
  return named
}

/** The steps judged so far: undefined when the record has none, null when they are malformed. */
function observationsOf(value: unknown): CanaryObservation[] | undefined | null {
  if (value === undefined) return undefined
  return Array.isArray(value) && value.every(isObservation) ? value : null
}

/** Why the canary's GitHub deployment or pull request on record cannot be used; undefined when they can. */
function linksProblem(deployment: unknown, pullRequest: unknown): string | undefined {
  const d = deployment
  if (d !== undefined && !(isObject(d) && isString(d.repo) && isString(d.environment) && isNumber(d.id)))
    return 'deployment is malformed'
  const pr = pullRequest
  if (pr !== undefined && !(isObject(pr) && isString(pr.repo) && isNumber(pr.number))) return 'pullRequest is malformed'
  return undefined
}

const PUSH_OUTCOMES: readonly unknown[] = ['live', 'replaced', 'promoted', 'aborted', 'failed']

const isPush = (x: unknown): boolean =>
  isObject(x) &&
  isString(x.image) &&
  isString(x.at) &&
  (x.sha === undefined || isString(x.sha)) &&
  PUSH_OUTCOMES.includes(x.outcome) &&
  Array.isArray(x.observations) &&
  x.observations.every(isObservation)

/** Why the earlier pushes on record cannot be used; undefined when they can (or there are none). */
function pushesProblem(pushes: unknown): string | undefined {
  if (pushes !== undefined && !(Array.isArray(pushes) && pushes.every(isPush))) return 'pushes are malformed'
  for (const push of (pushes ?? []) as CanaryPush[]) {
    if (!IMAGE.test(push.image)) return `pushes: expected Docker image references, got ${quoteHostText(push.image)}`
    if (!TIMESTAMP.test(push.at) || (push.sha !== undefined && !COMMIT.test(push.sha)))
      return `pushes: expected UTC times and commit ids, got ${quoteHostText(push.at)} and ${quoteHostText(push.sha)}`
  }
  return undefined
}

function parseJson(text: string, file: string, warn: (m: string) => void): unknown {
  if (!text.trim()) return undefined
  try {
    return JSON.parse(text)
  } catch (e) {
    warn(`${file} on the nginx host is not valid JSON (${(e as Error).message}): ignored`)
    return undefined
  }
}
