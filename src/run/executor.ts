// Runs a plan's steps against the hosts, one after another, recording each in the run's journal: the loop
// and the record. What each step does is its handler's (steps.ts); what the judgement says comes back as a
// value, and so does how the run ended.
import type { Config } from '../config.js'
import type { ManagedContainer } from '../host/state.js'
import type { Journal, Logger, Phase, StepRecord } from '../journal.js'
import { Judge } from '../judge/judge.js'
import { mainImage, type Replica, type Split } from '../model.js'
import { upstreamAddresses, type Nginx } from '../nginx/nginx.js'
import type { Progress } from '../plan/rollback.js'
import { changesHosts, describeStep, hostsOf, type Step } from '../plan/types.js'
import type { Fleet } from '../remote/fleet.js'
import { containerFence, type HeldLock } from '../remote/lock.js'
import { nginxAppHost } from '../host/read.js'
import { NEVER, type Cancellation } from './cancel.js'
import { RunProgress } from './progress.js'
import { replicaPort } from './replicas.js'
import { runStep, type StepEnd, type Stop, type StepWorld } from './steps.js'
import type { ReplicaPort } from '../health/gate.js'

/** How a run of steps ended. */
export type RunOutcome =
  | { readonly kind: 'completed' }
  /** A step failed (`error`), or the judgement found the new version bad (`judged`: it must always go). */
  | { readonly kind: 'failed'; readonly reason: string; readonly judged: boolean; readonly error?: Error }
  /** A canary step had too little traffic to judge: the canary stays live at its share. */
  | { readonly kind: 'inconclusive'; readonly percent: number; readonly reason: string }
  /** The workflow run was cancelled: the steps stopped, nginx as the last one left it. */
  | { readonly kind: 'cancelled'; readonly reason: string }

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`

const outcomeOf = (stop: Stop): RunOutcome => {
  switch (stop.kind) {
    case 'inconclusive':
      return { kind: 'inconclusive', percent: stop.percent, reason: stop.reason }
    case 'cancelled':
      return { kind: 'cancelled', reason: stop.reason }
    case 'judged-bad':
      return { kind: 'failed', reason: stop.reason, judged: true }
  }
}

/** How a stop reads in the steps table. */
const outcomeOfStop = (stop: Stop): StepRecord['outcome'] =>
  stop.kind === 'inconclusive' ? 'inconclusive' : stop.kind === 'cancelled' ? 'cancelled' : 'failed'

export class Executor {
  /** What the run has changed so far. */
  readonly progress: RunProgress
  private readonly manyHosts: boolean
  private readonly replicas: ReplicaPort
  /** Judgements ending (their watch and record stopping): the next run of steps need not wait for them. */
  private readonly ending: Promise<unknown>[] = []

  constructor(
    private readonly fleet: Fleet,
    private readonly nginx: Nginx,
    private readonly config: Config,
    private readonly lock: HeldLock,
    private readonly journal: Journal,
    private readonly log: Logger,
    containers: readonly ManagedContainer[],
    private readonly previous: readonly Replica[],
    private readonly recordCanary?: (split: Split) => Promise<void>,
    /** The workflow run's cancellation: a deploy stops at it (an undo runs to its end). */
    private readonly cancel: Cancellation = NEVER,
  ) {
    this.progress = new RunProgress(containers, previous, nginx.liveText)
    this.replicas = replicaPort(fleet, config, this.progress, journal)
    this.manyHosts = config.appHosts.length > 1
  }

  /** The record an undo is planned from. */
  snapshot(): Progress {
    return this.progress.snapshot(this.nginx.liveText)
  }

  /**
   * Runs the steps in order. While a deploy runs, its judgement watches the replicas it routed to and
   * nginx's record of their requests: what it finds wrong ends any wait under way at once, and the run.
   */
  async run(steps: readonly Step[], phase: Phase, newImage: string): Promise<RunOutcome> {
    const traffic = {
      follow: (onData: (chunk: Buffer) => void) => this.nginx.followTrafficLog(onData),
      openRequests: (servers: readonly string[]) => this.nginx.openRequests(servers),
    }
    const resolve = (address: string) => upstreamAddresses(this.nginx.state, address)
    const judge = new Judge(this.replicas, traffic, this.config, (work) => this.journal.later(work), resolve)
    // The new version: what this run started, and (a promote, a kept colour) what runs the new image when
    // the version being replaced runs another one. A redeploy of the image live judges what it started.
    const replaced = mainImage(this.previous)
    const isNew = (r: Replica) => this.progress.isNew(r) || (r.image === newImage && newImage !== replaced)
    if (phase === 'deploy') judge.begin(newImage, isNew)
    const nginxHostId = nginxAppHost(this.config)?.id
    const world: StepWorld = {
      config: this.config,
      fleet: this.fleet,
      nginx: this.nginx,
      progress: this.progress,
      judge,
      replicas: this.replicas,
      journal: this.journal,
      recordCanary: this.recordCanary,
      fence: (host) => containerFence(this.lock.claim, host === nginxHostId),
    }
    // A deploy stops at a cancellation; a way back (an undo, a cancellation's) runs to its end.
    const cancel = phase === 'deploy' ? this.cancel : NEVER
    try {
      for (const [i, step] of steps.entries()) {
        // Asked to stop before this step: it is not run (the summary lists it so).
        if (cancel.reason) return { kind: 'cancelled', reason: cancel.reason }
        const stop = await this.record(world, step, phase, `[${i + 1}/${steps.length}]`, newImage, cancel)
        if (stop) return outcomeOf(stop)
      }
      if (judge.failure) return { kind: 'failed', reason: judge.failure, judged: true }
      await this.progress.settle()
      return { kind: 'completed' }
    } catch (e) {
      return { kind: 'failed', reason: (e as Error).message, judged: false, error: e as Error }
    } finally {
      // Not waited for: when the judgement failed, the way back starts now (quiesce waits for them).
      this.ending.push(judge.end().catch(() => undefined))
    }
  }

  /**
   * Waits until nothing this executor started is still running: judgements ending, docker stops and starts
   * left in the background (a failed one has failed its run already and fails nothing more).
   */
  async quiesce(): Promise<void> {
    await Promise.all(this.ending.splice(0))
    await this.progress.quiesce()
  }

  /**
   * A step, unless the judgement found something wrong since the last one, or the lock is lost. A step that
   * only waits ends as soon as the judgement finds something wrong; one that changes a host runs to its end.
   */
  private async runStep(world: StepWorld, step: Step, cancel: Cancellation): Promise<StepEnd> {
    const { judge } = world
    if (judge.failure) return { stop: { kind: 'judged-bad', reason: judge.failure } }
    if (cancel.reason) return { stop: { kind: 'cancelled', reason: cancel.reason } }
    if (changesHosts(step)) {
      this.lock.assertHeld()
      return runStep(world, step)
    }
    const work = runStep(world, step)
    work.catch(() => undefined)
    const raced = await Promise.race([judge.unlessFailed(work), cancel.requested.then((why) => ({ cancelled: why }))])
    if ('cancelled' in raced) return { stop: { kind: 'cancelled', reason: raced.cancelled } }
    return 'failed' in raced ? { stop: { kind: 'judged-bad', reason: raced.failed } } : raced.done
  }

  /** Runs one step and records it; returns why the run stops there, if it does. */
  private async record(
    world: StepWorld,
    step: Step,
    phase: Phase,
    counter: string,
    newImage: string,
    cancel: Cancellation,
  ): Promise<Stop | undefined> {
    const t0 = Date.now()
    const entry = (outcome: StepRecord['outcome'], detail?: string): StepRecord => ({
      phase,
      description: describeStep(step, this.manyHosts),
      hosts: hostsOf(step, this.fleet.nginx.name),
      ms: Date.now() - t0,
      startedAtMs: t0 - this.journal.startedAt,
      endedAtMs: Date.now() - this.journal.startedAt,
      outcome,
      detail,
      step,
      allTrafficNew:
        (step.kind === 'route' || step.kind === 'restore-config') && !step.servers.some((r) => r.image !== newImage),
    })
    const failed = (e: StepRecord) => {
      this.journal.steps.push(e)
      this.log.info(`${counter} ${e.description}: FAILED (${seconds(e.ms)})`)
    }
    try {
      const end = await this.runStep(world, step, cancel)
      if (end.stop) {
        failed(entry(outcomeOfStop(end.stop), end.stop.reason))
        return end.stop
      }
      const e = entry('ok', end.detail)
      this.journal.steps.push(e)
      this.log.info(`${counter} ${e.description}: ok (${seconds(e.ms)})${e.detail ? `, ${e.detail}` : ''}`)
      return undefined
    } catch (err) {
      failed(entry('failed', (err as Error).message))
      throw err
    }
  }
}
