// Shared, pure pieces of every plan: what is live, which ports are free on which host, start-first
// replacement across hosts.
import type { AppHost, Config } from '../config.js'
import type { HostUsage } from '../host/ports.js'
import type { ManagedContainer } from '../host/state.js'
import { hostPort, replicaKey, replicaName, type Replica, type Split } from '../model.js'
import type { Step } from './types.js'

export class PlanError extends Error {}

/** What a plan leaves when every step succeeds. */
export type PlanResult = 'deployed' | 'paused' | 'rolled-back'

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
  /** A pull request's earlier canary this plan replaces: a failure before its swap leaves it live as it was. */
  readonly replaces?: readonly Replica[]
  /** What the run's result is once every step succeeded. */
  readonly leaves: PlanResult
  /** Once every step succeeded, no canary is live any more: its record goes (abort, promote, a canary to 100). */
  readonly endsCanary?: boolean
  /** What the plan reports before any step, e.g. why a canary runs as a rolling deploy. */
  readonly notes: readonly string[]
}

/** The routing the live managed file holds, or undefined when there is none to go by. */
export type Routes = ReadonlyMap<string, number | undefined> | undefined

const strip = ({ host, address, name, port, image, color }: ManagedContainer): Replica => ({
  host,
  address,
  name,
  port,
  image,
  ...(color ? { color } : {}),
})

/** Replicas in host order, then by port: the same order every run, and batches that take from the hosts in turn. */
export function interleave<T extends Replica>(replicas: readonly T[], hosts: readonly AppHost[]): T[] {
  const perHost = hosts.map((h) => replicas.filter((r) => r.host === h.id).sort((a, b) => a.port - b.port))
  const out: T[] = []
  for (let i = 0; out.length < replicas.length && i < replicas.length; i++)
    for (const list of perHost) if (list[i]) out.push(list[i])
  return out
}

/**
 * Which of the app's containers are live: running and in the live upstream. Without routing to go by (no
 * managed file yet, or nginx not readable) every running replica counts, since nothing else tells otherwise.
 * The rest (stopped, or running out of rotation) are strays.
 */
export function liveReplicas(config: Config, containers: readonly ManagedContainer[], routes: Routes) {
  const mine = containers.filter((c) => c.app === config.app)
  const live = mine.filter((c) => c.running && (routes === undefined || routes.has(hostPort(c.address, c.port))))
  const strays = mine.filter((c) => !live.includes(c))
  return { live: interleave(live.map(strip), config.appHosts), strays: interleave(strays.map(strip), config.appHosts) }
}

/**
 * New replicas: `counts` per host id, on ports no managed container of that host holds (any app, any
 * state) but for those about to be removed. In host order, taking from the hosts in turn.
 */
export function allocate(
  config: Config,
  containers: readonly ManagedContainer[],
  counts: ReadonlyMap<string, number>,
  image: string,
  freed: readonly Replica[] = [],
  color?: string,
  usage?: Usage,
): Replica[] {
  const out: Replica[] = []
  for (const host of config.appHosts) {
    const count = counts.get(host.id) ?? 0
    if (!count) continue
    const freedPorts = new Set(freed.filter((r) => r.host === host.id).map((r) => r.port))
    const taken = new Set(
      [
        ...containers.filter((c) => c.host === host.id).map((c) => c.port),
        ...heldElsewhere(config, host.id, containers, usage),
      ].filter((p) => !freedPorts.has(p)),
    )
    const free = config.ports.filter((p) => !taken.has(p))
    if (free.length < count)
      throw new PlanError(
        `ports: ${count} new replicas on ${host.id} need ${count} free ports in ${config.ports[0]}-${config.ports[config.ports.length - 1]}, ` +
          `but only ${free.length} are free (taken: ${
            [...taken]
              .filter((p) => config.ports.includes(p))
              .sort((a, b) => a - b)
              .join(', ') || 'none'
          }). ` +
          'Widen ports: start-first needs room for the old and the new replicas at once.',
      )
    out.push(
      ...free.slice(0, count).map((port) => ({
        host: host.id,
        address: host.upstreamAddress,
        name: replicaName(config.app, port),
        port,
        image,
        ...(color ? { color } : {}),
      })),
    )
  }
  return interleave(out, config.appHosts)
}

/** Each app host's ports and container names in use, whoever uses them (as read). */
export type Usage = ReadonlyMap<string, HostUsage>

/**
 * Ports of `config.ports` on a host that something other than the action's own replicas holds: a process
 * listening, a published port, another app's reservation, or a container (of anyone) with the name a new
 * replica would get. The action's own replicas' ports are the containers' to say (some are freed).
 */
function heldElsewhere(
  config: Config,
  host: string,
  containers: readonly ManagedContainer[],
  usage: Usage | undefined,
): number[] {
  const u = usage?.get(host)
  if (!u) return []
  const ours = new Set(containers.filter((c) => c.host === host).map((c) => c.port))
  return config.ports.filter(
    (p) => !ours.has(p) && (u.ports.has(p) || u.reserved.has(p) || u.names.has(replicaName(config.app, p))),
  )
}

/** `replicas` on every app host. */
export const everyHost = (config: Config, count = config.replicas): Map<string, number> =>
  new Map(config.appHosts.map((h) => [h.id, count]))

export function prepare(config: Config, image: string): Step[] {
  const hosts = config.appHosts.map((h) => h.id)
  const steps: Step[] = []
  if (config.registry)
    steps.push({ kind: 'login', registry: config.registry.server, username: config.registry.username, hosts })
  // Pull everywhere, before any batch: a host that cannot get the image fails the run before traffic is touched.
  if (config.pull) steps.push({ kind: 'pull', image, hosts })
  return steps
}

/**
 * Whether a deploy judges its routes on real traffic: only with verification on and an old version live to
 * judge the new one against (and to go back to).
 */
export const judges = (config: Config, live: readonly Replica[]): boolean => config.verifySeconds > 0 && live.length > 0

/** The judging starts: nginx's record of the app's requests, with the live servers unchanged. */
export const recordSteps = (judged: boolean, live: readonly Replica[], split?: Split): Step[] =>
  judged ? [{ kind: 'record', servers: live, ...(split ? { split } : {}) }] : []

/**
 * The judging ends: the bake (the replaced replicas still running) unless bake-seconds is 0, then one reload
 * that leaves `servers` (and `split`) without the record and without backups.
 */
export function endJudging(
  config: Config,
  servers: readonly Replica[],
  fresh: readonly Replica[],
  split?: Split,
): Step[] {
  const bake: Step[] = config.bakeSeconds > 0 ? [{ kind: 'bake', seconds: config.bakeSeconds, replicas: fresh }] : []
  return [...bake, { kind: 'route', servers, ...(split ? { split } : {}), settle: true }]
}

/**
 * Start-first replacement of `live` by `next`, a batch at a time, taking from the hosts in turn: start the
 * batch's new replicas (those not already running), gate them, swap them in and the batch's old ones out in
 * one reload, then drain the old ones while checking the new ones again, and stop the old ones. The next
 * batch starts while this one drains, so that its app's start-up time overlaps the drain. Capacity never
 * drops below min(live, next). Old containers are retired by the caller once all succeeded.
 *
 * `judged`: each batch's new replicas are judged on real traffic while the old batch drains, and the old
 * replicas out of the upstream stay as backups; with a bake they are not stopped at all (they take the
 * traffic back if the bake fails).
 */
export function replaceInBatches(
  config: Config,
  live: readonly Replica[],
  next: readonly Replica[],
  alreadyRunning: readonly Replica[] = [],
  judged = false,
): Step[] {
  const running = new Set(alreadyRunning.map(replicaKey))
  // With nothing live there is no capacity to protect: the whole set is one batch.
  const b = live.length ? config.batchSize : next.length
  const steps: Step[] = []
  const batches = Math.ceil(Math.max(next.length, live.length) / b)
  const batchOf = (rs: readonly Replica[], i: number) => rs.slice(i * b, (i + 1) * b)
  // Each batch's new replicas that are not running yet.
  const incoming = Array.from({ length: batches }, (_, i) =>
    batchOf(next, i).filter((r) => !running.has(replicaKey(r))),
  )
  const keepsOld = judged && config.bakeSeconds > 0
  for (let i = 0; i < batches; i++) {
    const outgoing = batchOf(live, i)
    const batch = batchOf(next, i)
    if (i === 0 && incoming[0].length) steps.push({ kind: 'start', replicas: incoming[0] })
    if (incoming[i].length) steps.push({ kind: 'gate', replicas: incoming[i] })
    const servers = [...next.slice(0, (i + 1) * b), ...live.slice((i + 1) * b)]
    // Out of the upstream but running: this batch's old replicas, and every earlier one's when none stopped.
    const backup = keepsOld ? live.slice(0, (i + 1) * b) : outgoing
    steps.push({ kind: 'route', servers, ...(judged ? { judged: { backup } } : {}) })
    if (i + 1 < batches && incoming[i + 1].length) steps.push({ kind: 'start', replicas: incoming[i + 1], ahead: true })
    if (outgoing.length) {
      steps.push({
        kind: 'drain',
        seconds: config.drainSeconds,
        replicas: outgoing,
        ...(batch.length ? { recheck: batch } : {}),
        ...(judged && batch.length ? { verify: batch } : {}),
      })
      // Drained and out of the upstream: the next batch goes on while these stop. The last batch's are
      // retired with the rest at the end (and with a bake, every batch's).
      if (i < batches - 1 && !keepsOld) steps.push({ kind: 'stop', replicas: outgoing, background: true })
    }
  }
  return steps
}

export const removeAll = (replicas: readonly Replica[]): Step[] =>
  replicas.length ? [{ kind: 'remove', replicas }] : []
export const retireAll = (replicas: readonly Replica[]): Step[] =>
  replicas.length ? [{ kind: 'retire', replicas }] : []
