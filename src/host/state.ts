// What the Docker host holds, as read from container labels: the host is the source of truth, so a run
// from a fresh runner knows what is live.
import type { Replica } from '../plan/types.js'

export const LABEL = {
  app: 'nginx-rollout.app',
  role: 'nginx-rollout.role',
  image: 'nginx-rollout.image',
  port: 'nginx-rollout.port',
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
      const [name, state, app, role, image, port] = line.split('\t')
      return { name, running: state === 'running', app, role, image, port: Number(port) }
    })
}

export interface HistoryEntry {
  readonly image: string
  readonly previousImage: string
  readonly result: string
  readonly at: string
  readonly strategy: string
  readonly run?: string
}

export interface NginxState {
  /** Only for nginx-mode container: does the container exist, and does it run? */
  readonly exists: boolean
  readonly running: boolean
  readonly networkMode?: string
  /** The live nginx.conf, or undefined when there is none yet. */
  readonly config?: string
}

export interface HostState {
  /** Every container nginx-rollout manages on this host, all apps (ports are shared). */
  readonly containers: readonly ManagedContainer[]
  readonly nginx: NginxState
  readonly history: readonly HistoryEntry[]
}

export function parseHistory(text: string): HistoryEntry[] {
  if (!text.trim()) return []
  try {
    const parsed: unknown = JSON.parse(text)
    return Array.isArray(parsed) ? (parsed as HistoryEntry[]) : []
  } catch {
    // A damaged history must not stop a deploy; it is rewritten on success.
    return []
  }
}

/** The image most replicas run (the previous image of a deploy); '' when none. */
export function mainImage(replicas: readonly Replica[]): string {
  const counts = new Map<string, number>()
  for (const r of replicas) counts.set(r.image, (counts.get(r.image) ?? 0) + 1)
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? ''
}
