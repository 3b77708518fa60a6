// Runs a plan's steps against the hosts, one after another, recording each in the run's journal: the loop
// and the record. What each step does is its handler's (steps.ts); what the judgement says comes back as a
// value, and so does how the run ended.
import type { Config } from '../config.js'
import type { ManagedContainer } from '../host/state.js'
import type { Journal, Logger, Phase, StepRecord } from '../journal.js'
import { Judge } from '../judge/judge.js'
import type { Replica } from '../model.js'
import type { Nginx } from '../nginx/nginx.js'
import type { Progress } from '../plan/rollback.js'
import { changesHosts, describeStep, hostsOf, type Step } from '../plan/types.js'
import type { Fleet } from '../remote/fleet.js'
import type { HeldLock } from '../remote/lock.js'
import { RunProgress } from './progress.js'
import { replicaPort } from './replicas.js'
import { runStep, type StepEnd, type Stop, type StepWorld } from './steps.js'

/** How a run of steps ended. */
export type RunOutcome =
  | { readonly kind: 'completed' }
  /** A step failed (`error`), or the judgement found the new version bad (`judged`: it must always go). */
  | { readonly kind: 'failed'; readonly reason: string; readonly judged: boolean; readonly error?: Error }
  /** A canary step had too little traffic to judge: the canary stays live at its share. */
  | { readonly kind: 'inconclusive'; readonly percent: number; readonly reason: string }

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`

const outcomeOf = (stop: Stop): RunOutcome =>
  stop.kind === 'inconclusive'
    ? { kind: 'inconclusive', percent: stop.percent, reason: stop.reason }
    : { kind: 'failed', reason: stop.reason, judged: stop.kind === 'judged-bad' }

export class Executor {
  /** What the run has changed so far. */
  readonly progress: RunProgress
  private readonly world: StepWorld
  private readonly manyHosts: boolean

  constructor(
    fleet: Fleet,
    private readonly nginx: Nginx,
    config: Config,
    private readonly lock: HeldLock,
    private readonly journal: Journal,
    private readonly log: Logger,
    containers: readonly ManagedContainer[],
    previous: readonly Replica[],
  ) {
    this.progress = new RunProgress(containers, previous, nginx.liveText)
    const replicas = replicaPort(fleet, config, this.progress, journal)
    const trafficLog = { start: () => nginx.startCanaryLog(), read: () => nginx.readCanaryLog() }
    const judge = new Judge(replicas, trafficLog, config)
    this.world = { config, fleet, nginx, progress: this.progress, judge, replicas, journal }
    this.manyHosts = config.appHosts.length > 1
  }

  /** The record an undo is planned from. */
  snapshot(): Progress {
    return this.progress.snapshot(this.nginx.liveText)
  }

  /**
   * Runs the steps in order. While a deploy runs, the replicas it routed to are watched: one that dies stops
   * it between steps (and ends a drain under way).
   */
  async run(steps: readonly Step[], phase: Phase, newImage: string): Promise<RunOutcome> {
    const { judge } = this.world
    if (phase === 'deploy') judge.begin()
    try {
      for (const [i, step] of steps.entries()) {
        const stop = await this.record(step, phase, `[${i + 1}/${steps.length}]`, newImage)
        if (stop) return outcomeOf(stop)
      }
      const seen = judge.verdict()
      if (seen.failed) return { kind: 'failed', reason: seen.reason, judged: false }
      await this.progress.settle()
      return { kind: 'completed' }
    } catch (e) {
      return { kind: 'failed', reason: (e as Error).message, judged: false, error: e as Error }
    } finally {
      await judge.end()
      await this.progress.quiesce()
    }
  }

  /** A step, unless the watch saw a routed replica die since the last one, or the lock is lost. */
  private async runStep(step: Step): Promise<StepEnd> {
    const seen = this.world.judge.verdict()
    if (seen.failed) return { stop: { kind: 'replica-died', reason: seen.reason } }
    if (changesHosts(step)) this.lock.assertHeld()
    return runStep(this.world, step)
  }

  /** Runs one step and records it; returns why the run stops there, if it does. */
  private async record(step: Step, phase: Phase, counter: string, newImage: string): Promise<Stop | undefined> {
    const t0 = Date.now()
    const entry = (outcome: StepRecord['outcome'], detail?: string): StepRecord => ({
      phase,
      description: describeStep(step, this.manyHosts),
      hosts: hostsOf(step, this.world.fleet.nginx.name),
      ms: Date.now() - t0,
      endedAtMs: Date.now() - this.journal.startedAt,
      outcome,
      detail,
      allTrafficNew:
        (step.kind === 'route' || step.kind === 'restore-config') && !step.servers.some((r) => r.image !== newImage),
    })
    const failed = (e: StepRecord) => {
      this.journal.steps.push(e)
      this.log.info(`${counter} ${e.description}: FAILED (${seconds(e.ms)})`)
    }
    try {
      const end = await this.runStep(step)
      if (end.stop) {
        failed(entry('failed', end.stop.reason))
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
