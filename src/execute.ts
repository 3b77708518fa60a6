// Runs a plan against a Remote, step by step, recording each step's timing and outcome and what the deploy
// has changed so far (so a rollback knows what to undo).
import { LIMITS, type Config } from './config.js'
import * as docker from './commands/docker.js'
import * as nginxCmd from './commands/nginx.js'
import { describeProbe, describeRanges, statusAllowed } from './health/judge.js'
import type { NginxState } from './host/state.js'
import { parseListen } from './inputs.js'
import { BUILT_IN_TEMPLATE, buildView, configIdOf, logPaths, renderNginxConfig } from './nginx/template.js'
import { judgeCanary, parseAccessLog, type CanaryObservation } from './health/canary.js'
import type { Progress } from './plan/rollback.js'
import { describeStep, type Replica, type Split, type Step } from './plan/types.js'
import { RemoteError, run, type HttpResult, type Remote } from './remote/ssh.js'

export type Phase = 'deploy' | 'rollback'

export interface StepRecord {
  readonly phase: Phase
  readonly description: string
  readonly host: string
  readonly ms: number
  readonly outcome: 'ok' | 'failed'
  readonly detail?: string
}

export interface GateResult {
  readonly replica: string
  readonly ok: boolean
  readonly probes: number
  readonly ms: number
  readonly last: string
  readonly dockerHealth: string
}

/** What a failure left to look at: the failing replica's (or nginx's) last log lines. */
export interface Evidence {
  readonly subject: string
  readonly reason: string
  readonly logs: string
}

export class StepFailure extends Error {}

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

export interface Logger {
  info(m: string): void
  warning(m: string): void
  debug(m: string): void
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`

export function renderConfig(config: Config, servers: readonly Replica[], split?: Split): { text: string; configId: string } {
  return renderNginxConfig(config.nginx.template ?? BUILT_IN_TEMPLATE, buildView(config, servers, split))
}

/** The address the config-id probe reaches nginx at, from the Docker host's side. */
export function listenProbeTarget(listen: string): { host: string; port: number } {
  const l = parseListen(listen)
  if (!l) throw new Error(`unparsable listen '${listen}'`)
  const host = !l.address || l.address === '0.0.0.0' ? '127.0.0.1' : l.address === '::' ? '::1' : l.address
  return { host, port: l.port }
}

export class Executor {
  readonly records: StepRecord[] = []
  readonly gates: GateResult[] = []
  readonly evidence: Evidence[] = []
  readonly canarySteps: CanaryObservation[] = []
  private readonly started: Replica[] = []
  private readonly routed: Replica[] = []
  private readonly stopped: Replica[] = []
  /** docker stop commands running in the background; awaited before remove, restart, and the end of runAll. */
  private pending: Array<Promise<unknown>> = []
  private warnedUnverified = false
  /** The replicas nginx routes to now. */
  serving: readonly Replica[]
  /** The nginx.conf text live now (undefined before there is one). */
  configNow: string | undefined

  constructor(
    private readonly remote: Remote,
    private readonly config: Config,
    private nginx: NginxState,
    private readonly log: Logger,
    previous: readonly Replica[],
  ) {
    this.serving = previous
    this.configNow = nginx.config
  }

  progress(configBefore: string | undefined): Progress {
    return { started: [...this.started], routed: [...this.routed], stopped: [...this.stopped], configNow: this.configNow, configBefore }
  }

  async runAll(steps: readonly Step[], phase: Phase): Promise<void> {
    try {
      await this.runSteps(steps, phase)
    } finally {
      // Whatever happened, no docker stop is left running behind the run's back.
      await Promise.allSettled(this.pending)
    }
    await this.settle()
  }

  /** Waits for the background stops; the first failure among them fails the step that waits. */
  private async settle(): Promise<number> {
    const pending = this.pending
    this.pending = []
    const t0 = Date.now()
    await Promise.all(pending)
    return Date.now() - t0
  }

  private async runSteps(steps: readonly Step[], phase: Phase): Promise<void> {
    for (const [i, step] of steps.entries()) {
      const description = describeStep(step)
      const t0 = Date.now()
      try {
        const detail = await this.runStep(step)
        const ms = Date.now() - t0
        this.records.push({ phase, description, host: this.remote.name, ms, outcome: 'ok', detail })
        this.log.info(`[${i + 1}/${steps.length}] ${description}: ok (${seconds(ms)})${detail ? `, ${detail}` : ''}`)
      } catch (e) {
        const ms = Date.now() - t0
        const detail = (e as Error).message
        this.records.push({ phase, description, host: this.remote.name, ms, outcome: 'failed', detail })
        this.log.info(`[${i + 1}/${steps.length}] ${description}: FAILED (${seconds(ms)})`)
        throw e
      }
    }
  }

  private async runStep(step: Step): Promise<string | undefined> {
    const c = this.config
    switch (step.kind) {
      case 'login':
        await run(this.remote, docker.login(step.registry, step.username, c.registry?.password ?? ''), `docker login to ${step.registry || 'Docker Hub'}`)
        return undefined
      case 'pull':
        await run(this.remote, docker.pullImage(step.image), `pulling ${step.image}`)
        return undefined
      case 'start':
        this.started.push(...step.replicas)
        await Promise.all(step.replicas.map((r) => run(this.remote, docker.runReplica(c, r), `starting ${r.name}`)))
        return undefined
      case 'restart': {
        const waited = await this.settle()
        await run(this.remote, docker.startContainers(step.replicas.map((r) => r.name)), 'starting previous replicas again')
        return waited ? `after waiting ${seconds(waited)} for docker stop` : undefined
      }
      case 'gate': {
        const results = await Promise.all(step.replicas.map((r) => this.gate(r)))
        return step.again ? undefined : results.map((g) => `${g.replica} healthy after ${seconds(g.ms)}`).join(', ')
      }
      case 'route': {
        const { text } = renderConfig(c, step.servers, step.split)
        const detail = await this.applyConfig(text)
        this.serving = step.servers
        const startedNames = new Set(this.started.map((r) => r.name))
        for (const s of step.servers) if (startedNames.has(s.name) && !this.routed.some((r) => r.name === s.name)) this.routed.push(s)
        return detail
      }
      case 'observe': {
        const o = await this.observe(step.split, step.stable, step.seconds)
        this.canarySteps.push(o)
        if (o.verdict === 'fail') throw new CanaryFailure(`canary step at ${o.percent}% failed: ${o.reason}`)
        if (o.verdict === 'inconclusive') throw new CanaryInconclusive(`canary step at ${o.percent}% is inconclusive: ${o.reason}`, o.percent)
        return o.reason
      }
      case 'restore-config': {
        const detail = await this.applyConfig(step.text)
        this.serving = step.servers
        return detail
      }
      case 'drain':
        // Out of the upstream but still running: requests already sent to these replicas finish.
        await sleep(step.seconds * 1000)
        return undefined
      case 'stop': {
        const stop = run(this.remote, docker.stopContainers(step.replicas.map((r) => r.name), c.stopTimeoutSeconds), 'stopping old replicas')
        this.stopped.push(...step.replicas)
        if (!step.background) {
          await stop
          return undefined
        }
        stop.catch(() => undefined) // observed by settle()
        this.pending.push(stop)
        return 'continues while the next batch starts'
      }
      case 'remove': {
        const waited = await this.settle()
        await run(this.remote, docker.removeContainers(step.replicas.map((r) => r.name)), 'removing containers')
        return waited ? `after waiting ${seconds(waited)} for docker stop` : undefined
      }
    }
  }

  /** One health probe of a replica; it may take as long as the interval between probes, or LIMITS.probeTimeoutMs. */
  private probe(replica: Replica): Promise<HttpResult> {
    const h = this.config.health
    return this.remote.httpGet(this.config.upstreamHost, replica.port, h.path, Math.max(LIMITS.probeTimeoutMs, h.intervalMs))
  }

  /** Probes until the replica answers an allowed status (and Docker says healthy, if it has a HEALTHCHECK). */
  private async gate(replica: Replica): Promise<GateResult> {
    const h = this.config.health
    const t0 = Date.now()
    const deadline = t0 + h.timeoutMs
    let probes = 0
    let last: HttpResult | undefined
    let state = docker.parseReplicaState((await run(this.remote, docker.inspectState(replica.name), `inspecting ${replica.name}`)).stdout)
    const hasHealthcheck = state.health !== 'none'
    for (;;) {
      const tick = Date.now()
      last = await this.probe(replica)
      probes++
      const answered = statusAllowed(last.status, h.status)
      if (!answered || hasHealthcheck) state = docker.parseReplicaState((await run(this.remote, docker.inspectState(replica.name), `inspecting ${replica.name}`)).stdout)
      if (answered && (!hasHealthcheck || state.health === 'healthy')) {
        const result = { replica: replica.name, ok: true, probes, ms: Date.now() - t0, last: describeProbe(h.path, last), dockerHealth: state.health }
        this.gates.push(result)
        return result
      }
      const exited = state.status !== 'running' && state.status !== 'created'
      if (exited || Date.now() >= deadline) {
        const why = exited
          ? `${replica.name} stopped (${state.status}, exit code ${state.exitCode}) before it became healthy`
          : `${replica.name} did not become healthy within ${seconds(h.timeoutMs)}: last probe ${describeProbe(h.path, last)} (expected ${describeRanges(h.status)})` +
            (hasHealthcheck ? `, docker health ${state.health}` : '')
        this.gates.push({ replica: replica.name, ok: false, probes, ms: Date.now() - t0, last: describeProbe(h.path, last), dockerHealth: state.health })
        await this.collectEvidence(replica, why, hasHealthcheck)
        throw new StepFailure(why)
      }
      await sleep(Math.max(0, h.intervalMs - (Date.now() - tick)))
    }
  }

  /**
   * Holds a canary share for `seconds`: the canary is probed every health-interval (consecutive failures
   * fail the step at once), then the window's access log is judged.
   */
  private async observe(split: Split, stable: readonly Replica[], seconds: number): Promise<CanaryObservation> {
    const h = this.config.health
    const mark = await this.accessLogMark()
    const deadline = Date.now() + seconds * 1000
    let failures = 0
    while (Date.now() < deadline) {
      const tick = Date.now()
      const probes = await Promise.all(split.canary.map((r) => this.probe(r)))
      const bad = probes.map((p, i) => [split.canary[i], p] as const).filter(([, p]) => !statusAllowed(p.status, h.status))
      failures = bad.length ? failures + 1 : 0
      if (failures >= LIMITS.canaryProbeFailures) {
        const [replica, probe] = bad[0]
        await this.collectEvidence(replica, `health probe failed ${failures} times in a row during the canary step`, false)
        const none = { requests: 0, errors: 0, rate: 0 }
        return { verdict: 'fail', percent: split.percent, seconds, canary: none, stable: none, reason: `${replica.name}: ${describeProbe(h.path, probe)}, ${failures} times in a row` }
      }
      await sleep(Math.min(Math.max(0, h.intervalMs - (Date.now() - tick)), Math.max(0, deadline - Date.now())))
    }
    const log = await run(this.remote, this.readAccessLog(mark), "reading nginx's access log")
    const judgement = judgeCanary(parseAccessLog(log.stdout), new Set(split.canary.map((r) => r.port)), new Set(stable.map((r) => r.port)), this.config.canary.maxErrorRate)
    if (judgement.verdict === 'fail') for (const r of split.canary) await this.collectEvidence(r, judgement.reason, false)
    return { ...judgement, percent: split.percent, seconds }
  }

  /** Where the access log stands now: the host's clock for docker logs --since, or the log file's size. */
  private async accessLogMark(): Promise<string> {
    const c = this.config
    const r = await run(this.remote, c.nginx.mode === 'container' ? nginxCmd.hostClock() : nginxCmd.fileSize(logPaths('host').accessLog), "marking nginx's access log")
    return r.stdout.trim()
  }

  private readAccessLog(mark: string) {
    const c = this.config
    return c.nginx.mode === 'container' ? nginxCmd.containerLogsSince(c.nginx.container, mark) : nginxCmd.fileFrom(logPaths('host').accessLog, Number(mark))
  }

  private async collectEvidence(replica: Replica, reason: string, hasHealthcheck: boolean): Promise<void> {
    const [logs, health] = await Promise.all([
      this.remote.exec(docker.containerLogs(replica.name, LIMITS.failureLogLines)),
      hasHealthcheck ? this.remote.exec(docker.healthLog(replica.name)) : undefined,
    ])
    const text = [logs.stdout, logs.stderr].filter((s) => s.trim()).join('\n').trim()
    const healthText = health?.stdout.trim() ? `\n--- docker health check output ---\n${health.stdout.trim()}` : ''
    this.evidence.push({ subject: replica.name, reason, logs: (text || '(no log output)') + healthText })
  }

  /**
   * Upload, validate with nginx -t, install, reload by signalling the master, and verify nginx serves the
   * new config. A config that fails validation never replaces the live one; one whose reload does not take
   * effect is replaced by the previous file again.
   */
  private async applyConfig(text: string): Promise<string> {
    const c = this.config
    const n = c.nginx
    const configId = configIdOf(text)
    if (n.mode === 'container' && !this.nginx.running) return this.bootNginx(text, configId)

    await this.install(text)
    const verified = await this.verifyServing(configId)
    if (verified === false) {
      const logs = await this.remote.exec(nginxCmd.nginxLogs(c, 20))
      const message = `nginx did not start serving config ${configId} within ${seconds(LIMITS.reloadVerifyMs)} after the reload signal`
      // Put the previous file back so the file on disk matches what nginx serves.
      if (this.configNow !== undefined) await this.install(this.configNow)
      this.evidence.push({ subject: 'nginx', reason: message, logs: (logs.stdout + logs.stderr).trim() })
      throw new StepFailure(`${message}; the previous nginx.conf is back in place. nginx said:\n${(logs.stdout + logs.stderr).trim()}`)
    }
    this.configNow = text
    return verified ? `nginx serves config ${configId}` : 'reload not verified (the template has no {{rolloutLocation}})'
  }

  /** No running nginx container: create it if needed, put the config in, start it, wait until it serves. */
  private async bootNginx(text: string, configId: string | undefined): Promise<string> {
    const c = this.config
    const n = c.nginx
    const created = !this.nginx.exists
    if (created) {
      await run(this.remote, docker.ensureImage(n.image), `getting the nginx image ${n.image}`)
      await run(this.remote, nginxCmd.createNginxContainer(c), `creating the nginx container ${n.container}`)
    }
    await this.remote.upload(nginxCmd.stagingPath(c.app), text)
    await run(this.remote, nginxCmd.copyIntoContainer(c), 'copying nginx.conf into the nginx container')
    const started = await this.remote.exec(nginxCmd.startContainer(n.container))
    const verified = started.code === 0 ? await this.verifyServing(configId) : false
    if (verified === false) {
      const logs = await this.remote.exec(nginxCmd.nginxLogs(c, 20))
      throw new StepFailure(`the nginx container ${n.container} did not start serving: ${(started.stderr + logs.stdout + logs.stderr).trim()}`)
    }
    this.nginx = { ...this.nginx, exists: true, running: true }
    this.configNow = text
    return `${created ? 'created' : 'started'} nginx container ${n.container}, serving config ${configId ?? '(unverified)'}`
  }

  /** Upload, validate with nginx -t, put in place, signal the reload. Throws before the live file changes if nginx -t fails. */
  private async install(text: string): Promise<void> {
    const c = this.config
    await this.remote.upload(nginxCmd.uploadPath(c), text)
    const r = await this.remote.exec(nginxCmd.applyCandidate(c))
    if (r.code === 11) throw new StepFailure(`nginx -t rejected the new config (the live config is unchanged):\n${(r.stderr || r.stdout).trim()}`)
    if (r.code !== 0)
      throw new RemoteError(`${nginxCmd.APPLY_STAGE[r.code] ?? 'applying nginx.conf'} failed on ${this.remote.name} (exit ${r.code}): ${(r.stderr || r.stdout).trim() || '(no output)'}`, r)
    if (c.nginx.mode === 'host') {
      // readHost found the master by process tree (not by pid file); a reload keeps the same master.
      if (this.nginx.masterPid === undefined) throw new RemoteError(`no nginx master process was found on ${this.remote.name}`)
      await run(this.remote, nginxCmd.signalPid(this.nginx.masterPid), 'signalling nginx to reload')
    }
  }

  /** true: nginx answers the config id; false: it did not in time; undefined: the config carries no id. */
  private async verifyServing(configId: string | undefined): Promise<boolean | undefined> {
    if (!configId) {
      if (!this.warnedUnverified) this.log.warning('the nginx template has no {{rolloutLocation}}: reloads cannot be verified')
      this.warnedUnverified = true
      return undefined
    }
    const target = listenProbeTarget(this.config.nginx.listen)
    const deadline = Date.now() + LIMITS.reloadVerifyMs
    while (Date.now() < deadline) {
      const r = await this.remote.httpGet(target.host, target.port, LIMITS.configIdPath, LIMITS.probeTimeoutMs)
      if (r.status === 200 && r.body?.trim() === configId) return true
      await sleep(50)
    }
    return false
  }
}
