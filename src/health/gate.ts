// Effects of health: the gate a new replica must pass before it gets traffic, and the watch over a canary
// step. Probes start on the nginx host and go to the address nginx uses, so a bind address or firewall
// nginx cannot pass fails the gate, not production. Docker's own health is read on the replica's host.
import { LIMITS, type Config } from '../config.js'
import * as docker from '../commands/docker.js'
import type { GateResult } from '../journal.js'
import { hostPort, replicaKey, type CanaryObservation, type Replica, type Split } from '../model.js'
import type { CanaryLog } from '../nginx/nginx.js'
import type { HttpResult } from '../remote/ssh.js'
import { judgeCanary, parseAccessLog } from './canary.js'
import { describeProbe, describeRanges, statusAllowed } from './judge.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`

/** What the health code needs from the hosts. */
export interface HealthPort {
  /** One probe of the replica's health path, from the nginx host. */
  probe(replica: Replica): Promise<HttpResult>
  /** Docker's view of the replica, on its own host. */
  state(replica: Replica): Promise<docker.ReplicaState>
  /** Keeps the replica's last log lines (and health check output) for the summary. */
  evidence(replica: Replica, reason: string, withHealthLog: boolean): Promise<void>
  /** The canary's access log: start it empty, then read what nginx wrote. */
  startCanaryLog(): Promise<void>
  readCanaryLog(): Promise<CanaryLog>
}

export class StepFailure extends Error {}

/**
 * Probes until the replica answers an allowed status and Docker says it runs (and is healthy, if it has a
 * HEALTHCHECK). Docker is asked whenever a probe is answered (an answer from the replica's port proves
 * nothing if another process holds the port and the replica exited), and otherwise once a second, to
 * stop waiting for a replica that exited. `again`: the check of a replica that passed its gate already and
 * has had traffic since: an answer suffices (Docker is asked only when none comes).
 */
export async function gate(port: HealthPort, config: Config, replica: Replica, again = false): Promise<GateResult> {
  const h = config.health
  const t0 = Date.now()
  const deadline = t0 + h.timeoutMs
  let probes = 0
  let last: HttpResult | undefined
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
          (hasHealthcheck ? `, docker health ${state.health}` : '')
      await port.evidence(replica, why, hasHealthcheck)
      throw Object.assign(new StepFailure(why), { gate: result(false) })
    }
    await sleep(Math.max(0, h.intervalMs - (Date.now() - tick)))
  }
}

/**
 * Holds a canary share for `seconds`: the canary is probed every health-interval (consecutive failures fail
 * the step at once), then the window's access log is judged.
 */
export async function observe(
  port: HealthPort,
  config: Config,
  split: Split,
  stable: readonly Replica[],
  windowSeconds: number,
): Promise<CanaryObservation> {
  const h = config.health
  await port.startCanaryLog()
  const deadline = Date.now() + windowSeconds * 1000
  let failures = 0
  while (Date.now() < deadline) {
    const tick = Date.now()
    const probes = await Promise.all(split.canary.map((r) => port.probe(r)))
    const bad = probes
      .map((p, i) => [split.canary[i], p] as const)
      .filter(([, p]) => !statusAllowed(p.status, h.status))
    failures = bad.length ? failures + 1 : 0
    if (failures >= LIMITS.canaryProbeFailures) {
      const [replica, probe] = bad[0]
      await port.evidence(replica, `health probe failed ${failures} times in a row during the canary step`, false)
      const none = { requests: 0, errors: 0, rate: 0 }
      return {
        verdict: 'fail',
        percent: split.percent,
        seconds: windowSeconds,
        canary: none,
        stable: none,
        reason: `${replica.name}: ${describeProbe(h.path, probe)}, ${failures} times in a row`,
      }
    }
    await sleep(Math.min(Math.max(0, h.intervalMs - (Date.now() - tick)), Math.max(0, deadline - Date.now())))
  }
  const log = await port.readCanaryLog()
  const { attempts } = parseAccessLog(log.text)
  const key = (r: Replica) => hostPort(r.address, r.port)
  const judgement = judgeCanary(
    attempts,
    new Set(split.canary.map(key)),
    new Set(stable.map(key)),
    config.canary.maxErrorRate,
  )
  const sampled = log.newestOnly
    ? ` (judged on the newest ${LIMITS.canaryLogBytes / 1024 / 1024} MiB of ${(log.bytes / 1024 / 1024).toFixed(0)} MiB logged)`
    : ''
  if (judgement.verdict === 'fail') for (const r of split.canary) await port.evidence(r, judgement.reason, false)
  const hint =
    judgement.verdict === 'inconclusive' && judgement.canary.requests === 0 && judgement.stable.requests === 0
      ? `; nginx logged no request of ${config.nginx.upstreamName} at all: a server block that declares its own access_log does not inherit the app's, see the README (nginx-scope upstream)`
      : ''
  return { ...judgement, reason: judgement.reason + sampled + hint, percent: split.percent, seconds: windowSeconds }
}

/**
 * Keeps probing the replicas that took traffic, for the rest of the deploy: one that exits (it crashed once
 * it had traffic) fails the deploy while the replicas it replaced can still come back. Probes go on in the
 * background, every health-interval; only an exit counts (a running replica's bad answers are the canary
 * judgement's business).
 */
export class Watch {
  private readonly watched = new Map<string, Replica>()
  private failure: StepFailure | undefined
  private running = true
  private readonly loop: Promise<void>
  /** Rejects with what the watch saw, the moment it sees it. */
  private readonly failed: Promise<never>
  private fail: (e: StepFailure) => void = () => undefined
  private wake: () => void = () => undefined

  constructor(
    private readonly port: HealthPort,
    private readonly config: Config,
  ) {
    this.failed = new Promise<never>((_, reject) => (this.fail = reject))
    this.failed.catch(() => undefined)
    this.loop = this.run()
  }

  /**
   * Waits for `work`, or fails as soon as the watch sees a routed replica exit: a wait (a drain) need not
   * run on while nginx sends traffic to a dead replica. `work` must be safe to leave running (it only reads).
   */
  async unlessFailed<T>(work: Promise<T>): Promise<T> {
    work.catch(() => undefined)
    return Promise.race([work, this.failed])
  }

  add(replicas: readonly Replica[]): void {
    for (const r of replicas) this.watched.set(replicaKey(r), r)
  }

  /** Throws what the watch saw, if anything. */
  check(): void {
    if (this.failure) throw this.failure
  }

  async stop(): Promise<void> {
    this.running = false
    this.wake()
    await this.loop
  }

  /**
   * Probes every watched replica now, and throws what it saw: before a route takes the last old replicas
   * out, so that it never leaves nginx only replicas that have died since the last round.
   */
  async checkNow(): Promise<void> {
    await this.round()
    this.check()
  }

  private async round(): Promise<void> {
    await Promise.all(
      [...this.watched.values()].map(async (r) => {
        if (statusAllowed((await this.port.probe(r)).status, this.config.health.status)) return
        const state = await this.port.state(r).catch(() => undefined)
        if (!state || state.status === 'running' || state.status === 'created' || this.failure) return
        this.failure = new StepFailure(
          `${r.name} stopped (${state.status}, exit code ${state.exitCode}) after it took traffic`,
        )
        this.fail(this.failure)
        await this.port.evidence(r, this.failure.message, false).catch(() => undefined)
      }),
    )
  }

  private async run(): Promise<void> {
    while (this.running && !this.failure) {
      const tick = Date.now()
      await this.round()
      // A sleep that stop() cuts short.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(10, this.config.health.intervalMs - (Date.now() - tick)))
        this.wake = () => (clearTimeout(timer), resolve())
      })
    }
  }
}
