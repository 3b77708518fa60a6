// What the Docker host holds, as read from container labels: the host is the source of truth, so a run
// from a fresh runner knows what is live.
import type { CanaryObservation } from '../health/canary.js'
import type { Replica } from '../plan/types.js'

export const LABEL = {
  app: 'nginx-rollout.app',
  role: 'nginx-rollout.role',
  image: 'nginx-rollout.image',
  port: 'nginx-rollout.port',
  /** blue or green, for blue-green replicas. */
  color: 'nginx-rollout.color',
} as const

/** The `docker ps --format` template whose output parseContainers() reads: one tab-separated line per container. */
export const CONTAINER_FORMAT = ['{{.Names}}', '{{.State}}', ...Object.values(LABEL).map((l) => `{{.Label "${l}"}}`)].join('\t')

export interface ManagedContainer extends Replica {
  readonly app: string
  readonly role: string
  readonly running: boolean
}

export function parseContainers(output: string): ManagedContainer[] {
  return output
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const [name, state, app, role, image, port, color] = line.split('\t')
      return { name, running: state === 'running', app, role, image, port: Number(port), ...(color ? { color } : {}) }
    })
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

export interface NginxState {
  /** Only for nginx-mode container: does the container exist, and does it run? */
  readonly exists: boolean
  readonly running: boolean
  readonly networkMode?: string
  /** Only for nginx-mode host: the master's pid, found by process tree (a reload keeps the same master). */
  readonly masterPid?: number
  /** The live nginx.conf, or undefined when there is none yet. */
  readonly config?: string
}

/** A canary left live at a share below 100 (result paused), kept on the host until promote or abort. */
export interface CanaryState {
  readonly image: string
  readonly stableImage: string
  /** The share now, in percent, and the steps still to go. */
  readonly weight: number
  readonly remainingSteps: readonly number[]
  readonly replicas: readonly string[]
  readonly at: string
  /** The steps judged so far, newest last (a later promote or abort reports them). */
  readonly observations?: readonly CanaryObservation[]
  /** The GitHub deployment the canary run recorded; promote or abort finishes it. */
  readonly deployment?: { readonly repo: string; readonly environment: string; readonly id: number }
  /** The pull request whose run started the canary; later runs update its comment. */
  readonly pullRequest?: { readonly repo: string; readonly number: number }
}

export interface HostState {
  /** Every container nginx-rollout manages on this host, all apps (ports are shared). */
  readonly containers: readonly ManagedContainer[]
  readonly nginx: NginxState
  readonly history: readonly HistoryEntry[]
  readonly canary?: CanaryState
}

export function parseHistory(text: string): HistoryEntry[] {
  const parsed = parseJson(text)
  return Array.isArray(parsed) ? (parsed as HistoryEntry[]) : []
}

export function parseCanaryState(text: string): CanaryState | undefined {
  const parsed = parseJson(text) as CanaryState | undefined
  return parsed && typeof parsed.image === 'string' && Array.isArray(parsed.replicas) ? parsed : undefined
}

// A damaged state file must not stop a deploy; it is rewritten by the next one.
function parseJson(text: string): unknown {
  try {
    return text.trim() ? JSON.parse(text) : undefined
  } catch {
    return undefined
  }
}

