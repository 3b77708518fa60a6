// The health gate a new replica must pass before it gets traffic. Probes start on the nginx host and go to
// the address nginx uses, so a bind address or firewall nginx cannot pass fails the gate, not production.
// Docker's own health is read on the replica's host. (What real traffic says of a replica is judge/'s.)
import type { Config } from '../config.js'
import * as docker from '../commands/docker.js'
import type { GateResult } from '../journal.js'
import type { Replica } from '../model.js'
import type { HttpResult } from '../remote/ssh.js'
import { describeProbe, describeRanges, notListeningHint, nothingListened, statusAllowed } from './probe.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`

/** What health checks need from the hosts: a replica's answers, its life, and its last words. */
export interface ReplicaPort {
  /** One probe of the replica's health path, from the nginx host. */
  probe(replica: Replica): Promise<HttpResult>
  /** Docker's view of the replica, on its own host. */
  state(replica: Replica): Promise<docker.ReplicaState>
  /** Keeps the replica's last log lines (and health check output) for the summary. */
  evidence(replica: Replica, reason: string, withHealthLog: boolean): Promise<void>
}

export class StepFailure extends Error {}

/**
 * Probes until the replica answers an allowed status and Docker says it runs (and is healthy, if it has a
 * HEALTHCHECK). Docker is asked whenever a probe is answered (an answer from the replica's port proves
 * nothing if another process holds the port and the replica exited), and otherwise once a second, to
 * stop waiting for a replica that exited. `again`: the check of a replica that passed its gate already and
 * has had traffic since: an answer suffices (Docker is asked only when none comes).
 */
export async function gate(port: ReplicaPort, config: Config, replica: Replica, again = false): Promise<GateResult> {
  const h = config.health
  const t0 = Date.now()
  const deadline = t0 + h.timeoutMs
  let probes = 0
  let last: HttpResult | undefined
  // Whether every probe so far found nothing listening: then the message says where the app must listen.
  let neverListened = true
  let state: docker.ReplicaState | undefined
  let askedAt = 0
  const result = (ok: boolean): GateResult => ({
    replica: replica.name,
    host: replica.host,
    ok,
    probes,
    ms: Date.now() - t0,
    last: last ? describeProbe(h.path, last) : '-',
    dockerHealth: state?.health ?? 'none',
  })
  for (;;) {
    const tick = Date.now()
    last = await port.probe(replica)
    probes++
    neverListened &&= nothingListened(last)
    const answered = statusAllowed(last.status, h.status)
    if (again && answered && !state) return result(true)
    if (answered || !state || state.health !== 'none' || Date.now() - askedAt >= 1000 || Date.now() >= deadline) {
      askedAt = Date.now()
      state = await port.state(replica)
    }
    const hasHealthcheck = state.health !== 'none'
    if (answered && state.status === 'running' && (!hasHealthcheck || state.health === 'healthy')) return result(true)
    const exited = state.status !== 'running' && state.status !== 'created'
    if (exited || Date.now() >= deadline) {
      const why = exited
        ? `${replica.name} stopped (${state.status}, exit code ${state.exitCode}) before it became healthy`
        : `${replica.name} did not become healthy within ${seconds(h.timeoutMs)}: last probe ${describeProbe(h.path, last)} (expected ${describeRanges(h.status)})` +
          (hasHealthcheck ? `, docker health ${state.health}` : '') +
          (neverListened ? notListeningHint(config, replica) : '')
      await port.evidence(replica, why, hasHealthcheck)
      throw Object.assign(new StepFailure(why), { gate: result(false) })
    }
    await sleep(Math.max(0, h.intervalMs - (Date.now() - tick)))
  }
}
