// Shared, pure pieces of every plan: what is live, which ports are free, start-first replacement.
import type { Config } from '../config.js'
import type { ManagedContainer } from '../host/state.js'
import { upstreamPorts } from '../nginx/template.js'
import type { Replica, Step } from './types.js'

export class PlanError extends Error {}

export interface Plan {
  readonly steps: readonly Step[]
  /** The image the plan puts live. */
  readonly image: string
  /** Replicas serving before the run (in the live upstream). */
  readonly previous: readonly Replica[]
  /** Replicas serving once every step has run. */
  readonly next: readonly Replica[]
  /** How a failure is undone: put the previous config back, or take the canary out of rotation. */
  readonly onFailure: 'restore' | 'abort-canary'
  /** A canary plan that stops short of 100 leaves the canary live at this share (result paused). */
  readonly pausesAt?: { readonly percent: number; readonly canary: readonly Replica[]; readonly stableImage: string }
  /** What the plan reports before any step, e.g. why a canary runs as a rolling deploy. */
  readonly notes: readonly string[]
}

export const replicaName = (app: string, port: number): string => `${app}-${port}`

const strip = ({ name, port, image, color }: ManagedContainer): Replica => ({ name, port, image, ...(color ? { color } : {}) })

/**
 * Which of the app's containers are live: running and in the live nginx upstream. Without a live config
 * (a bare host, or nginx gone) every running replica counts, since nothing else tells otherwise. The rest
 * (stopped, or running out of rotation) are strays.
 */
export function liveReplicas(app: string, containers: readonly ManagedContainer[], liveConfig: string | undefined) {
  const mine = containers.filter((c) => c.app === app && c.role === 'replica')
  const routed = liveConfig === undefined ? undefined : upstreamPorts(liveConfig)
  const live = mine.filter((c) => c.running && (routed === undefined || routed.has(c.port)))
  const strays = mine.filter((c) => !live.includes(c))
  return { live: live.map(strip).sort((a, b) => a.port - b.port), strays: strays.map(strip).sort((a, b) => a.port - b.port) }
}

/** `count` new replicas on ports no managed container (any app, any state) holds, but for those about to be removed. */
export function allocate(config: Config, containers: readonly ManagedContainer[], count: number, image: string, freed: readonly Replica[] = [], color?: string): Replica[] {
  const freedPorts = new Set(freed.map((r) => r.port))
  const taken = new Set(containers.map((c) => c.port).filter((p) => !freedPorts.has(p)))
  const free = config.ports.filter((p) => !taken.has(p))
  if (free.length < count)
    throw new PlanError(
      `ports: ${count} new replicas need ${count} free ports in ${config.ports[0]}-${config.ports[config.ports.length - 1]}, ` +
        `but only ${free.length} are free (taken: ${[...taken].filter((p) => config.ports.includes(p)).sort((a, b) => a - b).join(', ') || 'none'}). ` +
        'Widen ports: start-first needs room for the old and the new replicas at once.',
    )
  return free.slice(0, count).map((port) => ({ name: replicaName(config.app, port), port, image, ...(color ? { color } : {}) }))
}

export function prepare(config: Config, image: string): Step[] {
  const steps: Step[] = []
  if (config.registry) steps.push({ kind: 'login', registry: config.registry.server, username: config.registry.username })
  // Pull once, before any batch: a missing image fails the run before traffic is touched.
  if (config.pull) steps.push({ kind: 'pull', image })
  return steps
}

/**
 * Start-first replacement of `live` by `next`, a batch at a time: start the batch's new replicas (those
 * not already running), gate them, swap them in and the batch's old ones out in one reload, drain, stop.
 * Capacity never drops below min(live, next). Old containers are removed by the caller once all succeeded.
 */
export function replaceInBatches(config: Config, live: readonly Replica[], next: readonly Replica[], alreadyRunning: readonly Replica[] = []): Step[] {
  const running = new Set(alreadyRunning.map((r) => r.name))
  // With nothing live there is no capacity to protect: the whole set is one batch.
  const b = live.length ? config.batchSize : next.length
  const steps: Step[] = []
  const batches = Math.ceil(Math.max(next.length, live.length) / b)
  for (let i = 0; i < batches; i++) {
    const incoming = next.slice(i * b, (i + 1) * b).filter((r) => !running.has(r.name))
    const outgoing = live.slice(i * b, (i + 1) * b)
    if (incoming.length) steps.push({ kind: 'start', replicas: incoming }, { kind: 'gate', replicas: incoming })
    steps.push({ kind: 'route', servers: [...next.slice(0, (i + 1) * b), ...live.slice((i + 1) * b)] })
    const batch = next.slice(i * b, (i + 1) * b)
    if (outgoing.length)
      steps.push(
        { kind: 'drain', seconds: config.drainSeconds, replicas: outgoing },
        ...(batch.length ? [{ kind: 'gate', replicas: batch, again: true } as const] : []),
        // Drained and out of the upstream: the next batch can start while these stop.
        { kind: 'stop', replicas: outgoing, background: i < batches - 1 },
      )
  }
  return steps
}

export const removeAll = (replicas: readonly Replica[]): Step[] => (replicas.length ? [{ kind: 'remove', replicas }] : [])

/** The image most replicas run; '' when none. */
export function mainImage(replicas: readonly Replica[]): string {
  const counts = new Map<string, number>()
  for (const r of replicas) counts.set(r.image, (counts.get(r.image) ?? 0) + 1)
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? ''
}

/** The colour of blue-green replicas serving ('' when they have none). */
export const liveColor = (replicas: readonly Replica[]): string => replicas.find((r) => r.color)?.color ?? ''
