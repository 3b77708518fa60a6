// Rolling deploy, start-first: per batch, start new replicas on free ports, gate them, swap them into the
// upstream and the old ones out in one reload, drain, stop the old ones. Old containers are only removed
// once the whole deploy has succeeded, so a rollback starts them again instead of rebuilding.
import type { Config } from '../config.js'
import type { ManagedContainer } from '../host/state.js'
import { upstreamPorts } from '../nginx/template.js'
import type { Replica, Step } from './types.js'

export class PlanError extends Error {}

export interface DeployPlan {
  readonly steps: readonly Step[]
  /** Replicas serving before the deploy (in the live upstream). */
  readonly previous: readonly Replica[]
  readonly next: readonly Replica[]
  /** Containers of this app that serve nothing (left by a failed or killed run): removed on success. */
  readonly strays: readonly Replica[]
}

export const replicaName = (app: string, port: number): string => `${app}-${port}`

/**
 * Which of the app's containers are live: running and in the live nginx upstream. Without a live config
 * (a bare host, or nginx gone) every running replica counts, since nothing else tells otherwise.
 */
export function liveReplicas(app: string, containers: readonly ManagedContainer[], liveConfig: string | undefined) {
  const mine = containers.filter((c) => c.app === app && c.role === 'replica')
  const routed = liveConfig === undefined ? undefined : upstreamPorts(liveConfig)
  const live = mine.filter((c) => c.running && (routed === undefined || routed.has(c.port)))
  const strays = mine.filter((c) => !live.includes(c))
  const strip = ({ name, port, image }: ManagedContainer): Replica => ({ name, port, image })
  return { live: live.map(strip).sort((a, b) => a.port - b.port), strays: strays.map(strip) }
}

export function planRolling(config: Config, containers: readonly ManagedContainer[], liveConfig: string | undefined): DeployPlan {
  const { live, strays } = liveReplicas(config.app, containers, liveConfig)
  // A port is taken while any managed container (any app, any state) holds it.
  const taken = new Set(containers.map((c) => c.port))
  const free = config.ports.filter((p) => !taken.has(p))
  if (free.length < config.replicas)
    throw new PlanError(
      `ports: ${config.replicas} new replicas need ${config.replicas} free ports in ${config.ports[0]}-${config.ports[config.ports.length - 1]}, ` +
        `but only ${free.length} are free (taken: ${[...taken].filter((p) => config.ports.includes(p)).sort((a, b) => a - b).join(', ') || 'none'}). ` +
        'Widen ports: start-first needs room for the old and the new replicas at once.',
    )
  const next = free.slice(0, config.replicas).map((port) => ({ name: replicaName(config.app, port), port, image: config.image }))

  const steps: Step[] = []
  if (config.registry) steps.push({ kind: 'login', registry: config.registry.server, username: config.registry.username })
  // Pull once, before any batch: a missing image fails the run before traffic is touched.
  if (config.pull) steps.push({ kind: 'pull', image: config.image })

  // With nothing live there is no capacity to protect: start the whole set as one batch.
  const b = live.length ? config.batchSize : next.length
  const batches = Math.ceil(Math.max(next.length, live.length) / b)
  for (let i = 0; i < batches; i++) {
    const incoming = next.slice(i * b, (i + 1) * b)
    const outgoing = live.slice(i * b, (i + 1) * b)
    if (incoming.length) {
      steps.push({ kind: 'start', replicas: incoming })
      steps.push({ kind: 'gate', replicas: incoming })
    }
    steps.push({ kind: 'route', servers: [...next.slice(0, (i + 1) * b), ...live.slice((i + 1) * b)] })
    if (outgoing.length) {
      steps.push({ kind: 'drain', seconds: config.drainSeconds, replicas: outgoing })
      steps.push({ kind: 'stop', replicas: outgoing })
    }
  }
  if (live.length || strays.length) steps.push({ kind: 'remove', replicas: [...live, ...strays] })
  return { steps, previous: live, next, strays }
}

/** What a failed deploy did so far, as the executor recorded it. */
export interface Progress {
  /** New replicas whose containers may exist (started, or whose start was attempted). */
  readonly started: readonly Replica[]
  /** New replicas that were put into the upstream. */
  readonly routed: readonly Replica[]
  /** Previous replicas that were stopped (their containers are kept). */
  readonly stopped: readonly Replica[]
  /** The nginx.conf text live now, and the one live before the deploy. */
  readonly configNow?: string
  readonly configBefore?: string
}

/**
 * Back to the previous image and config: start the stopped previous replicas again, gate them, put the
 * previous nginx.conf back in one reload, drain the new replicas, remove them.
 */
export function planRollback(config: Config, previous: readonly Replica[], progress: Progress): Step[] {
  const steps: Step[] = []
  if (progress.stopped.length) {
    steps.push({ kind: 'restart', replicas: progress.stopped })
    steps.push({ kind: 'gate', replicas: progress.stopped })
  }
  if (progress.configBefore !== undefined && progress.configBefore !== progress.configNow)
    steps.push({ kind: 'restore-config', text: progress.configBefore, servers: previous })
  if (progress.routed.length && config.drainSeconds > 0) steps.push({ kind: 'drain', seconds: config.drainSeconds, replicas: progress.routed })
  if (progress.started.length) steps.push({ kind: 'remove', replicas: progress.started })
  return steps
}
