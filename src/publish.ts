// The run's end, published: the step's outputs, the deployment and comment on GitHub, the job summary and
// the log's last line. Returns the step's failure message, if it failed (main fails the step with it).
import * as core from '@actions/core'
import type { Config } from './config.js'
import type { RunContext } from './github/deployment.js'
import { recordOnGitHub } from './github/record.js'
import type { GitHubRecorder } from './github/report.js'
import { secretsOf } from './inputs.js'
import type { Journal } from './journal.js'
import { liveColor, mainImage, sshName } from './model.js'
import { describeNginx, withNginxMode } from './nginx/nginx.js'
import { describeStep, hostsOf } from './plan/types.js'
import { liveReplicas, type Plan } from './plan/common.js'
import { routesOf } from './plan/index.js'
import type { HostState } from './host/state.js'
import type { StepRecord } from './journal.js'
import type { Fleet } from './remote/fleet.js'
import type { RunEnd } from './run-end.js'
import { outputProblem, type CheckedOutput } from './rules.js'
import { renderSummary, type RunRecord } from './summary.js'

/**
 * The steps the run recorded, then the plan's steps it never reached, as `not run`: the plan is shown once, as
 * the steps table. (A dry run reaches none.)
 */
function withStepsNotRun(steps: readonly StepRecord[], plan: Plan | undefined, manyHosts: boolean, nginxHost: string) {
  if (!plan) return steps
  const ran = steps.filter((s) => s.phase === 'deploy').length
  const notRun = plan.steps.slice(ran).map((step): StepRecord => ({
    phase: 'deploy',
    description: describeStep(step, manyHosts),
    hosts: hostsOf(step, nginxHost),
    ms: 0,
    endedAtMs: 0,
    outcome: 'not run',
    step,
  }))
  return [...steps, ...notRun]
}

/** The image the hosts served when they were read (for a run that stopped before changing anything). */
function servingAsRead(config: Config, state: HostState | undefined): string {
  if (!state) return ''
  return mainImage(liveReplicas(config, state.containers, routesOf(state)).live)
}

/** The figures the run's end is published with: the image serving, the one before it, how long the run took. */
interface Figures {
  readonly liveImage: string
  readonly previousImage: string
  readonly durationSeconds: number
}

function figuresOf(end: RunEnd, startedAt: number): Figures {
  const { result, plan, state } = end
  const previousImage = plan
    ? mainImage(plan.previous) || (state?.history.at(-1)?.image ?? '')
    : (state?.history.at(-1)?.previousImage ?? '')
  // With a paused canary, the image serving is the stable one; the canary's is in the canary record.
  const liveImage =
    result === 'planned' && plan
      ? plan.image
      : mainImage(end.serving.filter((x) => !(result === 'paused' && plan && x.image === plan.image))) ||
        mainImage(end.serving)
  return { liveImage, previousImage, durationSeconds: (Date.now() - startedAt) / 1000 }
}

/**
 * The last guard: workflows paste outputs into expressions and shell lines, so a value that breaks its rule
 * (rules.ts) is withheld, '' and a warning, never printed. What the hosts sent was checked as it was read
 * (host/state.ts); this holds should a path ever skip that.
 */
function setCheckedOutput(name: CheckedOutput, value: string): void {
  const problem = outputProblem(name, value)
  if (problem) core.warning(`${problem}; set to '' instead`)
  core.setOutput(name, problem ? '' : value)
}

function setOutputs(end: RunEnd, figures: Figures): void {
  setCheckedOutput('result', end.result)
  setCheckedOutput('image', figures.liveImage)
  setCheckedOutput('previous-image', figures.previousImage)
  core.setOutput('duration-seconds', figures.durationSeconds.toFixed(1))
  setCheckedOutput(
    'replicas',
    JSON.stringify(end.serving.map(({ host, name, port, image }) => ({ host, name, port, image }))),
  )
  setCheckedOutput('color', liveColor(end.serving))
  setCheckedOutput('canary-weight', end.canaryWeight)
}

/** What the job summary is made of. `github`: what was recorded on GitHub, or the warnings instead. */
function summaryRecord(
  config: Config,
  journal: Journal,
  end: RunEnd,
  figures: Figures,
  github: readonly string[] | undefined,
  stats: ReturnType<Fleet['stats']> | undefined,
): RunRecord {
  const { result, plan, state } = end
  const { liveImage, previousImage, durationSeconds } = figures
  const switched = journal.trafficSwitchedAtMs
  const nginxHost = sshName(config.nginxHost.host, config.nginxHost.port)
  const manyHosts = config.appHosts.length > 1
  return {
    app: config.app,
    hosts: config.appHosts.map((h) => h.id),
    nginxHost: describeNginx(state ? withNginxMode(config, state.nginx) : config, nginxHost),
    operation: config.operation,
    strategy: config.strategy,
    result,
    // What nginx serves: a dry run changes nothing, and a run refused before any change leaves what it read.
    image: result === 'planned' && plan ? mainImage(plan.previous) : liveImage || servingAsRead(config, state),
    servingBefore: plan?.previous,
    previousImage,
    durationSeconds,
    trafficSwitchedSeconds: switched === undefined ? undefined : switched / 1000,
    dryRun: config.dryRun,
    color: liveColor(end.serving),
    canaryWeight: end.canaryWeight,
    notes: [...(plan?.notes ?? []), ...journal.notes],
    plan: plan?.steps.map((s) => describeStep(s, manyHosts)) ?? [],
    steps: withStepsNotRun(journal.steps, plan, manyHosts, nginxHost),
    requestedImage: plan?.image ?? config.image,
    stopped: end.stopped,
    gates: journal.gates,
    canarySteps: journal.canarySteps,
    verifications: journal.verifications,
    bake: journal.bake,
    configPath: config.nginx.configPath,
    configDiff: end.configDiff,
    failure: end.failure,
    rollbackFailure: end.rollbackFailure,
    evidence: journal.evidence,
    live: end.live,
    github,
    stats,
    phases: journal.phases,
  }
}

/** The log's last line: the result, the run's time, and when all traffic reached the new image (if it did). */
function closingLine(end: RunEnd, durationSeconds: number, switchedMs: number | undefined): string {
  const switched =
    switchedMs !== undefined ? `; all traffic on ${end.plan?.image} after ${(switchedMs / 1000).toFixed(1)} s` : ''
  return `result: ${end.result} (${durationSeconds.toFixed(1)} s${switched})`
}

/** The step's failure message (undefined: the step succeeds), with the rollback's failure when there was one. */
function failureMessage(config: Config, end: RunEnd): string | undefined {
  if (!end.failure) return undefined
  const what = config.operation === 'deploy' ? `deploy of ${config.image}` : `operation ${config.operation}`
  const how =
    end.result === 'rolled-back'
      ? 'failed and was rolled back'
      : end.result === 'cancelled'
        ? 'was cancelled'
        : 'failed'
  const rollback = end.rollbackFailure ? `\nthe rollback failed too: ${end.rollbackFailure}` : ''
  return `${what} ${how}: ${end.failure}${rollback}`
}

/** Outputs, GitHub, the job summary, and the step's failure. */
export async function publish(
  config: Config,
  gh: RunContext,
  recorder: GitHubRecorder | undefined,
  journal: Journal,
  end: RunEnd,
  stats: ReturnType<Fleet['stats']> | undefined,
): Promise<string | undefined> {
  await journal.settled()
  const figures = figuresOf(end, journal.startedAt)
  setOutputs(end, figures)
  if (recorder && end.plan && !config.dryRun)
    await recordOnGitHub(recorder, config, gh, end, journal.canarySteps, figures, secretsOf(config))
  // After GitHub: the summary lists what was recorded there.
  const summary = renderSummary(summaryRecord(config, journal, end, figures, recorder?.notes, stats), secretsOf(config))
  if (process.env.GITHUB_STEP_SUMMARY) await core.summary.addRaw(summary).write()
  core.info(closingLine(end, figures.durationSeconds, journal.trafficSwitchedAtMs))
  return failureMessage(config, end)
}
