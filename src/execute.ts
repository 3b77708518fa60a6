// Runs a plan's steps against the hosts, recording each in the run's journal, and keeps what the run has
// changed so far (so that an undo knows what to put back). The health gate and canary watch live in
// health/, every nginx change in nginx/; this is the order and the bookkeeping.
import { LIMITS, type Config } from './config.js'
import * as docker from './commands/docker.js'
import { gate, observe, StepFailure, Watch, type HealthPort } from './health/gate.js'
import { retireDir } from './host/read.js'
import type { ManagedContainer } from './host/state.js'
import type { GateResult, Journal, Logger, Phase } from './journal.js'
import { byHost, replicaKey, type CanaryObservation, type Replica } from './model.js'
import { NginxError, type Nginx } from './nginx/nginx.js'
import { renderManagedFile } from './nginx/template.js'
import type { Progress } from './plan/rollback.js'
import { changesHosts, describeStep, hostsOf, type Step } from './plan/types.js'
import type { Fleet } from './remote/fleet.js'
import type { HeldLock } from './remote/lock.js'
import { run } from './remote/ssh.js'

export { StepFailure }

/** A canary step's traffic or health was bad: the canary must leave the upstream. */
export class CanaryFailure extends StepFailure {}

/** Too little traffic reached the canary to judge the step: the run pauses with the canary live. */
export class CanaryInconclusive extends Error {
  constructor(
    message: string,
    readonly percent: number,
  ) {
    super(message)
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`

export class Executor {
  private readonly started: Replica[] = []
  private readonly routed: Replica[] = []
  private readonly stopped: Replica[] = []
  private readonly retired: Replica[] = []
  /** Container ids by replica, so commands name exactly the container read or started. */
  private readonly ids = new Map<string, string>()
  /** Main process ids of the replicas read running, for counting their connections without asking docker. */
  private readonly pids = new Map<string, number>()
  /**
   * docker stop commands running in the background, by replica: a remove or restart of those replicas waits
   * for theirs, and the end of a phase for all (a retirement takes them over instead).
   */
  private pending = new Map<string, Promise<unknown>>()
  /** The replicas this deploy routed to, watched until it ends. */
  private watch: Watch | undefined
  /** Starts of the next batch running ahead; its gate waits for them. */
  private readonly starting = new Map<string, Promise<void>>()
  private readonly configBefore: string | undefined
  private readonly manyHosts: boolean
  /** The replicas nginx routes to now. */
  serving: readonly Replica[]

  constructor(
    private readonly fleet: Fleet,
    private readonly nginx: Nginx,
    private readonly config: Config,
    private readonly lock: HeldLock,
    private readonly journal: Journal,
    private readonly log: Logger,
    containers: readonly ManagedContainer[],
    previous: readonly Replica[],
  ) {
    this.serving = previous
    for (const c of containers) {
      this.ids.set(replicaKey(c), c.id)
      if (c.running && c.pid) this.pids.set(replicaKey(c), c.pid)
    }
    this.configBefore = nginx.liveText
    this.manyHosts = config.appHosts.length > 1
  }

  progress(): Progress {
    return {
      started: [...this.started],
      routed: [...this.routed],
      stopped: [...this.stopped],
      retired: [...this.retired],
      configNow: this.nginx.liveText,
      configBefore: this.configBefore,
    }
  }

  /** The canary steps judged so far. */
  get judged(): readonly CanaryObservation[] {
    return this.journal.canarySteps
  }

  async runAll(steps: readonly Step[], phase: Phase, newImage: string): Promise<void> {
    // While a deploy runs, the replicas it routed to are watched: one that exits fails the deploy, between steps.
    this.watch = phase === 'deploy' ? new Watch(this.health, this.config) : undefined
    try {
      for (const [i, step] of steps.entries()) await this.record(step, phase, `[${i + 1}/${steps.length}]`, newImage)
      this.watch?.check()
      await this.settle()
    } finally {
      await this.watch?.stop()
      this.watch = undefined
      // Whatever happened, no docker stop or start this run waits for is left running behind its back; a
      // failed one has failed this phase already and must not fail the next (the rollback) again.
      const left = [...this.pending.values(), ...this.starting.values()]
      this.pending.clear()
      this.starting.clear()
      await Promise.allSettled(left)
    }
  }

  private async record(step: Step, phase: Phase, counter: string, newImage: string): Promise<void> {
    const description = describeStep(step, this.manyHosts)
    const hosts = hostsOf(step, this.fleet.nginx.name)
    const t0 = Date.now()
    const entry = (outcome: 'ok' | 'failed', detail?: string) => ({
      phase,
      description,
      hosts,
      ms: Date.now() - t0,
      endedAtMs: Date.now() - this.journal.startedAt,
      outcome,
      detail,
      allTrafficNew:
        (step.kind === 'route' || step.kind === 'restore-config') && !step.servers.some((r) => r.image !== newImage),
    })
    try {
      this.watch?.check()
      if (changesHosts(step)) this.lock.assertHeld()
      const detail = await this.runStep(step)
      const e = entry('ok', detail)
      this.journal.steps.push(e)
      this.log.info(`${counter} ${description}: ok (${seconds(e.ms)})${detail ? `, ${detail}` : ''}`)
    } catch (err) {
      const e = entry('failed', (err as Error).message)
      this.journal.steps.push(e)
      this.log.info(`${counter} ${description}: FAILED (${seconds(e.ms)})`)
      throw err
    }
  }

  /** Waits for the background stops of these replicas (all, without); the first failure among them fails the step that waits. */
  private async settle(replicas?: readonly Replica[]): Promise<number> {
    const keys = replicas ? replicas.map(replicaKey).filter((k) => this.pending.has(k)) : [...this.pending.keys()]
    const waiting = [...new Set(keys.map((k) => this.pending.get(k)))]
    for (const k of keys) this.pending.delete(k)
    const t0 = Date.now()
    await Promise.all(waiting)
    return waiting.length ? Date.now() - t0 : 0
  }

  private ref = (r: Replica): string => this.ids.get(replicaKey(r)) ?? r.name

  private async startOne(r: Replica): Promise<void> {
    const out = await run(this.fleet.app(r.host), docker.runReplica(this.config, r), `starting ${r.name}`)
    const id = out.stdout.trim().split('\n').pop() ?? ''
    if (/^[0-9a-f]{64}$/.test(id)) this.ids.set(replicaKey(r), id)
  }

  /** Runs `work` for each host's share of the replicas, all hosts at once. */
  private onHosts<T>(
    replicas: readonly Replica[],
    work: (remote: ReturnType<Fleet['app']>, rs: Replica[], host: string) => Promise<T>,
  ): Promise<T[]> {
    return Promise.all([...byHost(replicas)].map(([host, rs]) => work(this.fleet.app(host), rs, host)))
  }

  private async runStep(step: Step): Promise<string | undefined> {
    const c = this.config
    switch (step.kind) {
      case 'login':
        await Promise.all(
          step.hosts.map((h) =>
            run(
              this.fleet.app(h),
              docker.login(step.registry, step.username, c.registry?.password ?? '', c.pullTimeoutSeconds),
              `docker login to ${step.registry || 'Docker Hub'}`,
            ),
          ),
        )
        return undefined
      case 'pull':
        await Promise.all(
          step.hosts.map((h) =>
            run(this.fleet.app(h), docker.pullImage(step.image, c.pullTimeoutSeconds), `pulling ${step.image}`),
          ),
        )
        return undefined
      case 'start': {
        this.started.push(...step.replicas)
        const starts = step.replicas.map((r) => {
          const started = this.startOne(r)
          if (step.ahead) {
            started.catch(() => undefined) // awaited by the gate
            this.starting.set(replicaKey(r), started)
          }
          return started
        })
        if (step.ahead) return 'continues while the batch before drains'
        await Promise.all(starts)
        return undefined
      }
      case 'restart': {
        const waited = await this.settle(step.replicas)
        await this.onHosts(step.replicas, (remote, rs) =>
          run(remote, docker.startContainers(rs.map(this.ref)), 'starting previous replicas again'),
        )
        return waited ? `after waiting ${seconds(waited)} for docker stop` : undefined
      }
      case 'gate': {
        const results = await Promise.all(
          step.replicas.map(async (r) => {
            await this.starting.get(replicaKey(r))
            this.starting.delete(replicaKey(r))
            try {
              const g = await gate(this.health, c, r)
              this.journal.gates.push(g)
              return g
            } catch (e) {
              const failed = (e as { gate?: GateResult }).gate
              if (failed) this.journal.gates.push(failed)
              throw e
            }
          }),
        )
        return results.map((g) => `${g.replica} healthy after ${seconds(g.ms)}`).join(', ')
      }
      case 'route': {
        await this.watch?.checkNow()
        const { text } = renderManagedFile(c, step.servers, step.split, this.nginx.state.facts)
        const detail = await this.applyNginx(text)
        this.serving = step.servers
        const isStarted = (r: Replica) => this.started.some((s) => replicaKey(s) === replicaKey(r))
        for (const s of step.servers)
          if (isStarted(s) && !this.routed.some((r) => replicaKey(r) === replicaKey(s))) this.routed.push(s)
        this.watch?.add(step.servers.filter(isStarted))
        return detail
      }
      case 'observe': {
        const o = await observe(this.health, c, step.split, step.stable, step.seconds)
        this.journal.canarySteps.push(o)
        if (o.verdict === 'fail') throw new CanaryFailure(`canary step at ${o.percent}% failed: ${o.reason}`)
        if (o.verdict === 'inconclusive')
          throw new CanaryInconclusive(`canary step at ${o.percent}% is inconclusive: ${o.reason}`, o.percent)
        return o.reason
      }
      case 'restore-config': {
        const detail = await this.applyNginx(step.text)
        this.serving = step.servers
        return detail
      }
      case 'drain': {
        // The replicas that took the traffic are checked again meanwhile, while the old ones still run; a
        // routed replica that exits ends the drain at once, so that the undo routes back to the old ones
        // before the next new replica can fail too.
        const drained = Promise.all([
          this.drain(step.replicas, step.seconds),
          ...(step.recheck ?? []).map((r) => gate(this.health, c, r, true)),
        ])
        const [detail] = await (this.watch ? this.watch.unlessFailed(drained) : drained)
        return detail
      }
      case 'stop': {
        const stop = this.onHosts(step.replicas, (remote, rs) =>
          run(remote, docker.stopContainers(rs.map(this.ref), c.stopTimeoutSeconds), 'stopping old replicas'),
        )
        this.stopped.push(...step.replicas)
        if (!step.background) {
          await stop
          return undefined
        }
        stop.catch(() => undefined) // observed by settle()
        for (const r of step.replicas) this.pending.set(replicaKey(r), stop)
        return 'continues while the next batch starts'
      }
      case 'remove': {
        const waited = await this.settle(step.replicas)
        await this.onHosts(step.replicas, (remote, rs) =>
          run(remote, docker.removeContainers(rs.map(this.ref)), 'removing containers'),
        )
        return waited ? `after waiting ${seconds(waited)} for docker stop` : undefined
      }
      case 'retire': {
        // The stops still running from earlier batches are now the host's to finish: the retirement stops
        // (joining them) and removes every one of these, so the run need not wait for any.
        for (const p of this.pending.values()) p.catch(() => undefined)
        this.pending.clear()
        this.retired.push(...step.replicas)
        await this.onHosts(step.replicas, (remote, rs) =>
          run(
            remote,
            docker.retireContainers(retireDir(c.app), rs.map(this.ref), c.stopTimeoutSeconds),
            'handing the old replicas to a background stop',
          ),
        )
        return `stopping (up to stop-timeout ${c.stopTimeoutSeconds}s) and removing on the host; a failure is reported by the next run`
      }
    }
  }

  /** Changes the managed file; when nginx refuses, its last log lines go with the failure. */
  private async applyNginx(text: string | undefined): Promise<string> {
    try {
      return await this.nginx.apply(text, this.config.appHosts[0].upstreamAddress)
    } catch (e) {
      if (e instanceof NginxError)
        this.journal.evidence.push({
          subject: this.nginx.where,
          reason: e.message,
          logs: (await this.nginx.errorLog(20).catch(() => '')) || '(no log output)',
        })
      throw e
    }
  }

  /** Until the outgoing replicas have nothing in flight, counted on their own hosts (at most `max` seconds). */
  private async drain(replicas: readonly Replica[], max: number): Promise<string> {
    // With keepalive_min_timeout, a reloading worker may still send an idle connection's next request to them.
    const min =
      this.config.nginx.scope === 'site' && this.nginx.state.facts.keepaliveMinTimeout
        ? Math.min(max, LIMITS.keepaliveMinTimeoutSeconds)
        : 0
    // Host networking: every replica of a host shares its network namespace, read once per poll.
    const targets = (rs: readonly Replica[]): docker.DrainTarget[] => {
      const each = rs.map((r) => ({
        ref: this.ref(r),
        pid: this.pids.get(replicaKey(r)),
        ports: [docker.listenPortInside(this.config, r)],
      }))
      return this.config.network === 'host'
        ? [{ ...(each.find((t) => t.pid) ?? each[0]), ports: each.flatMap((t) => t.ports) }]
        : each
    }
    const outcomes = await this.onHosts(replicas, async (remote, rs) =>
      docker.parseDrain(
        (
          await run(
            remote,
            docker.drainWait(targets(rs), max, min, LIMITS.drainPollMs, LIMITS.drainQuietPolls),
            'draining',
          )
        ).stdout,
      ),
    )
    const busy = outcomes.filter((o) => o.kind === 'busy')
    if (busy.length)
      return `${busy.reduce((n, o) => n + (o.kind === 'busy' ? o.inFlight : 0), 0)} connections still open after drain-seconds ${max}s`
    if (outcomes.some((o) => o.kind === 'unknown'))
      return `waited drain-seconds ${max}s (connections not readable on the host)`
    const slowest = Math.max(...outcomes.map((o) => (o.kind === 'idle' ? o.ms : 0)))
    return `nothing in flight after ${seconds(slowest)}`
  }

  /** What health checks need, over the run's connections. */
  private readonly health: HealthPort = {
    probe: (r) => {
      const h = this.config.health
      return this.fleet.nginx.httpGet(r.address, r.port, h.path, Math.max(LIMITS.probeTimeoutMs, h.intervalMs))
    },
    state: async (r) =>
      docker.parseReplicaState(
        (await run(this.fleet.app(r.host), docker.inspectState(this.ref(r)), `inspecting ${r.name}`)).stdout,
      ),
    evidence: async (r, reason, withHealthLog) => {
      const remote = this.fleet.app(r.host)
      const [logs, health] = await Promise.all([
        remote.exec(docker.containerLogs(this.ref(r), LIMITS.failureLogLines)),
        withHealthLog ? remote.exec(docker.healthLog(this.ref(r))) : undefined,
      ])
      const text = [logs.stdout, logs.stderr]
        .filter((s) => s.trim())
        .join('\n')
        .trim()
      const healthText = health?.stdout.trim() ? `\n--- docker health check output ---\n${health.stdout.trim()}` : ''
      this.journal.evidence.push({
        subject: this.manyHosts ? `${r.name} on ${r.host}` : r.name,
        reason,
        logs: (text || '(no log output)') + healthText,
      })
    },
    startCanaryLog: () => this.nginx.startCanaryLog(),
    readCanaryLog: () => this.nginx.readCanaryLog(),
  }
}
