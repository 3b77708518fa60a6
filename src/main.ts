// inputs -> plan -> execute -> summary and outputs. The only place that fails the step.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import * as core from '@actions/core'
import { readConfig, InputError, type InputName } from './inputs.js'
import type { Config } from './config.js'
import { CanaryFailure, CanaryInconclusive, Executor, renderConfig, type Logger } from './execute.js'
import type { CanaryObservation } from './health/canary.js'
import { octokitApi } from './github/api.js'
import { commentMarker, renderCanaryComment } from './github/comment.js'
import { runContext } from './github/context.js'
import { canaryPullRequest, deploymentTarget, finalStatus, repoName, type RunContext } from './github/deployment.js'
import { GitHubRecorder, type RecordedDeployment } from './github/report.js'
import { checkHostState, readHost } from './host/read.js'
import type { CanaryState, HostState } from './host/state.js'
import { unifiedDiff } from './nginx/diff.js'
import { upstreamServers } from './nginx/template.js'
import { liveColor, liveReplicas, mainImage, type Plan } from './plan/common.js'
import { planFor } from './plan/index.js'
import { planUndo } from './plan/rollback.js'
import { describeStep, type Replica, type Step } from './plan/types.js'
import { appendHistory, writeCanaryState } from './remote/history.js'
import { acquireLock } from './remote/lock.js'
import { connectSsh, type Remote } from './remote/ssh.js'
import { redact, renderSummary, type LiveReport, type Result } from './summary.js'

const logger: Logger = { info: core.info, warning: core.warning, debug: core.debug }

function secretsOf(config: Config): string[] {
  return [config.privateKey, config.passphrase, config.password, config.registry?.password, config.github.token, ...config.env.map((v) => v.value)].filter(
    (s): s is string => Boolean(s && s.trim()),
  )
}

/** The GitHub side of the run, or undefined (with a warning when a deployment was asked for) when it cannot work. */
function githubRecorder(config: Config, gh: RunContext): GitHubRecorder | undefined {
  const { token, environment, environmentUrl } = config.github
  if (token && gh.repo) return new GitHubRecorder(octokitApi(token, gh.repo, gh.apiUrl), logger, { runUrl: gh.runUrl, environmentUrl: environmentUrl || undefined })
  const why = !token ? 'github-token is empty' : 'this is not a GitHub Actions run (GITHUB_REPOSITORY is not set)'
  if (environment && config.operation !== 'status' && !config.dryRun) core.warning(`environment is set but ${why}: no GitHub deployment is recorded`)
  return undefined
}

interface RunEnd {
  readonly result: Result
  readonly plan: Plan
  readonly state?: HostState
  readonly liveImage: string
  readonly previousImage: string
  readonly canaryWeight: string
  readonly failure?: string
  /** The canary steps this run judged. */
  readonly judged: readonly CanaryObservation[]
}

/** Finishes the run's deployment and rewrites the pull request's canary comment. Never throws. */
async function recordOnGitHub(recorder: GitHubRecorder, config: Config, gh: RunContext, recorded: RecordedDeployment | undefined, end: RunEnd): Promise<void> {
  const { result, state, liveImage, previousImage, canaryWeight } = end
  const canaryImage = state?.canary?.image ?? end.plan.image
  if (recorded) await recorder.finish(recorded, finalStatus({ operation: config.operation, result, image: liveImage, previousImage, canaryImage, canaryWeight }))
  const pr = canaryPullRequest(gh, state?.canary)
  if (!pr || (config.strategy !== 'canary' && !state?.canary)) return
  // The same key on every run of this canary (a promote may leave the environment input empty), so one comment.
  const where = config.github.environment || state?.canary?.deployment?.environment || config.hosts[0].host
  const body = renderCanaryComment({
    app: config.app,
    where,
    operation: config.operation,
    result,
    canaryImage,
    stableImage: result === 'paused' || result === 'rolled-back' ? liveImage : previousImage,
    canaryWeight,
    observations: [...(state?.canary?.observations ?? []), ...end.judged],
    failure: end.failure,
    runUrl: gh.runUrl,
    at: new Date().toISOString(),
  })
  await recorder.comment(pr.number, commentMarker(config.app, where), redact(body, secretsOf(config)))
}

/** Where a canary's GitHub records live, kept with the canary on the host for the run that ends it. */
type CanaryLinks = Pick<CanaryState, 'deployment' | 'pullRequest'>

/** Who holds the lock, for another run that waits for it. */
function runOwner(gh: RunContext): string {
  return `${gh.runUrl ?? `pid ${process.pid}`}${gh.actor ? ` by ${gh.actor}` : ''} since ${new Date().toISOString()}`
}

/** The config the plan leaves live: what its last route step renders. */
function finalConfigText(config: Config, plan: Plan, current: string | undefined): string | undefined {
  const last = [...plan.steps].reverse().find((s): s is Extract<Step, { kind: 'route' }> => s.kind === 'route')
  return last ? renderConfig(config, last.servers, last.split).text : current
}

/** The shares still to go after a canary step that could not be judged. */
function sharesAfter(plan: Plan, percent: number): number[] {
  const shares = plan.steps.flatMap((s) => (s.kind === 'observe' ? [s.split.percent] : [])).filter((p) => p > percent)
  return [...shares, ...(plan.pausesAt ? [] : [100])]
}

/** What `status` reports: replicas with their weights in the live config, the paused canary, recent history. */
function liveReport(config: Config, state: HostState): LiveReport {
  const { live } = liveReplicas(config.app, state.containers, state.nginx.config)
  const servers = upstreamServers(state.nginx.config ?? '')
  const weightOf = (port: number) => servers.get(port) ?? config.nginx.weight
  return { replicas: live.map((r) => ({ ...r, weight: weightOf(r.port) })), canary: state.canary, history: state.history.slice(-5).reverse() }
}

interface Outcome {
  result: Result
  failure?: string
  rollbackFailure?: string
  canaryWeight: string
}

/**
 * Runs the plan under the lock: on a failure undoes it, on an unjudgeable canary step pauses; then records
 * a paused canary on the host, or clears the record once the canary is promoted or removed.
 */
async function carryOut(r: Remote, config: Config, s: HostState, p: Plan, ex: Executor, links: () => Promise<CanaryLinks>): Promise<Outcome> {
  const outcome: Outcome = { result: 'failed', canaryWeight: '' }
  let pausedAt: { percent: number; canary: readonly Replica[]; remaining: number[] } | undefined
  let canaryRemoved = false
  try {
    const title = config.operation === 'deploy' ? 'Deploy' : config.operation.replace(/^./, (c) => c.toUpperCase())
    await core.group(title, () => ex.runAll(p.steps, 'deploy'))
    if (p.pausesAt) pausedAt = { percent: p.pausesAt.percent, canary: p.pausesAt.canary, remaining: [] }
    outcome.result = config.operation === 'abort' || config.operation === 'rollback' ? 'rolled-back' : p.pausesAt ? 'paused' : 'deployed'
    canaryRemoved = config.operation === 'abort'
  } catch (e) {
    if (e instanceof CanaryInconclusive) {
      // Not a pass and not a failure: the canary stays live at this share until promote or abort.
      core.warning(e.message)
      const canary = p.steps.flatMap((st) => (st.kind === 'observe' && st.split.percent === e.percent ? st.split.canary : []))
      pausedAt = { percent: e.percent, canary, remaining: sharesAfter(p, e.percent) }
      outcome.result = 'paused'
    } else {
      outcome.failure = (e as Error).message
      // A failing canary step always takes the canary out: that is what the step gate is for.
      if (config.rollbackOnFailure || e instanceof CanaryFailure) {
        const undo = planUndo(config, p, ex.progress(s.nginx.config))
        try {
          await core.group('Roll back', () => ex.runAll(undo.steps, 'rollback'))
          outcome.result = 'rolled-back'
          canaryRemoved = undo.removesCanary
        } catch (e2) {
          outcome.rollbackFailure = (e2 as Error).message
        }
      }
    }
  }
  if (pausedAt) {
    outcome.canaryWeight = String(pausedAt.percent)
    await writeCanaryState(r, config.app, {
      image: p.image,
      stableImage: p.pausesAt?.stableImage ?? s.canary?.stableImage ?? mainImage(p.previous.filter((x) => x.image !== p.image)),
      weight: pausedAt.percent,
      remainingSteps: pausedAt.remaining,
      replicas: pausedAt.canary.map((x) => x.name),
      at: new Date().toISOString(),
      observations: [...(s.canary?.observations ?? []), ...ex.canarySteps],
      ...(await links()),
    })
  } else if (p.onFailure === 'abort-canary' || s.canary) {
    const promoted = outcome.result === 'deployed'
    if (promoted || canaryRemoved) {
      outcome.canaryWeight = promoted ? '100' : '0'
      await writeCanaryState(r, config.app, undefined)
    } else if (s.canary) outcome.canaryWeight = String(s.canary.weight)
  }
  return outcome
}

export async function run(): Promise<void> {
  const t0 = Date.now()
  let config: Config
  try {
    config = readConfig({
      get: (name: InputName) => core.getInput(name),
      readWorkspaceFile: (p) => readFileSync(path.resolve(process.env.GITHUB_WORKSPACE ?? process.cwd(), p), 'utf8'),
    })
  } catch (e) {
    core.setOutput('result', 'failed')
    core.setFailed(e instanceof InputError ? e.message : `reading inputs failed: ${(e as Error).message}`)
    return
  }
  // Mask secrets before anything can print them (input problems never echo them). A multi-line secret,
  // the private key, is also masked line by line, as a log may show its lines apart.
  for (const secret of secretsOf(config)) {
    core.setSecret(secret)
    if (secret.includes('\n'))
      for (const line of secret.split('\n')) if (line.trim().length >= 8 && !line.startsWith('-----')) core.setSecret(line.trim())
  }

  const target = config.hosts[0]
  const gh = runContext()
  const recorder = githubRecorder(config, gh)
  let deployment: Promise<RecordedDeployment | undefined> = Promise.resolve(undefined)
  let remote: Remote | undefined
  let state: HostState | undefined
  let plan: Plan | undefined
  let executor: Executor | undefined
  let result: Result = 'failed'
  let failure: string | undefined
  let rollbackFailure: string | undefined
  let configDiff = ''
  let canaryWeight = ''
  let live: LiveReport | undefined

  try {
    remote = await core.group(`Connect to ${config.username}@${target.host}:${target.port}`, () => connectSsh(target, config, core.debug))
    const r = remote
    // Read and plan under the lock: a plan made from what the host held before another run finished is stale.
    const owner = runOwner(gh)
    const mutating = config.operation !== 'status' && !config.dryRun
    const lock = mutating ? await core.group('Take the deploy lock', () => acquireLock(r, config.app, owner, config.lockTimeoutSeconds, core.info)) : undefined
    try {
      const s = await core.group(`Read ${config.app} on ${r.name}`, async () => {
        const s = await readHost(r, config)
        const mine = s.containers.filter((c) => c.app === config.app && c.role === 'replica')
        core.info(`replicas: ${mine.map((c) => `${c.name} ${c.image}${c.color ? ` (${c.color})` : ''} ${c.running ? 'running' : 'stopped'}`).join(', ') || 'none'}`)
        core.info(`nginx: ${config.nginx.mode === 'host' ? 'on the host' : s.nginx.exists ? `container ${config.nginx.container} ${s.nginx.running ? 'running' : 'stopped'}` : `no container ${config.nginx.container} yet`}`)
        if (s.canary) core.info(`canary: ${s.canary.image} paused at ${s.canary.weight}% since ${s.canary.at}`)
        return s
      })
      state = s

      if (config.operation === 'status') {
        live = liveReport(config, s)
        result = s.canary ? 'paused' : ((s.history.at(-1)?.result as Result | undefined) ?? 'planned')
        canaryWeight = s.canary ? String(s.canary.weight) : ''
      } else {
        const hostProblem = checkHostState(config, s)
        if (hostProblem) throw new Error(hostProblem)
        const p = planFor(config, s)
        plan = p
        configDiff = unifiedDiff(s.nginx.config ?? '', finalConfigText(config, p, s.nginx.config) ?? '', `${config.nginx.configPath} (live)`, `${config.nginx.configPath} (after)`)
        await core.group(`Plan: ${config.operation} ${p.image} (${config.strategy})`, async () => {
          p.notes.forEach((n) => core.info(`note: ${n}`))
          p.steps.forEach((step, i) => core.info(`${i + 1}. ${describeStep(step)}`))
          core.info(configDiff ? `nginx.conf changes:\n${configDiff}` : 'nginx.conf: no change')
        })
        const ex = new Executor(r, config, s.nginx, logger, p.previous)
        executor = ex
        if (config.dryRun) result = 'planned'
        else {
          // Recorded alongside the deploy, not before it: GitHub's latency must not hold the lock longer.
          deployment = recorder?.begin(deploymentTarget(config, gh, s.canary, p.image), `${config.app}: ${config.operation} ${p.image} in progress`) ?? deployment
          const links = async (): Promise<CanaryLinks> => {
            const d = await deployment
            // A canary paused again keeps the pull request it was recorded with.
            const pr = canaryPullRequest(gh, s.canary) ?? s.canary?.pullRequest
            return { ...(d && gh.repo ? { deployment: { repo: repoName(gh.repo), ...d } } : {}), ...(pr ? { pullRequest: pr } : {}) }
          }
          ;({ result, failure, rollbackFailure, canaryWeight } = await carryOut(r, config, s, p, ex, links))
          await appendHistory(r, config.app, s.history, {
            image: p.image,
            previousImage: mainImage(p.previous),
            result,
            at: new Date().toISOString(),
            strategy: config.strategy,
            operation: config.operation,
            run: owner,
          }).catch((e: Error) => core.warning(`the deploy history was not written: ${e.message}`))
        }
      }
    } finally {
      await lock?.release().catch((e: Error) => core.warning(e.message))
    }
  } catch (e) {
    failure ??= (e as Error).message
    result = 'failed'
  } finally {
    await remote?.close()
  }

  const serving = executor?.serving ?? (live?.replicas ?? [])
  const previousImage = plan ? mainImage(plan.previous) || (state?.history.at(-1)?.image ?? '') : (state?.history.at(-1)?.previousImage ?? '')
  const durationSeconds = (Date.now() - t0) / 1000
  // With a paused canary, the image serving is the stable one; the canary's is in the canary state.
  const liveImage = result === 'planned' && plan ? plan.image : mainImage(serving.filter((x) => !(result === 'paused' && plan && x.image === plan.image))) || mainImage(serving)
  core.setOutput('result', result)
  core.setOutput('image', liveImage)
  core.setOutput('previous-image', previousImage)
  core.setOutput('duration-seconds', durationSeconds.toFixed(1))
  core.setOutput('replicas', JSON.stringify(serving.map(({ name, port, image }) => ({ name, port, image }))))
  core.setOutput('color', liveColor(serving))
  core.setOutput('canary-weight', canaryWeight)

  if (recorder && plan && !config.dryRun)
    await recordOnGitHub(recorder, config, gh, await deployment, {
      result,
      plan,
      state,
      liveImage,
      previousImage,
      canaryWeight,
      failure,
      judged: executor?.canarySteps ?? [],
    })

  const summary = renderSummary(
    {
      app: config.app,
      host: remote?.name ?? `${target.host}:${target.port}`,
      operation: config.operation,
      strategy: config.strategy,
      result,
      image: liveImage,
      previousImage,
      durationSeconds,
      dryRun: config.dryRun,
      color: liveColor(serving),
      canaryWeight,
      notes: plan?.notes ?? [],
      plan: plan?.steps.map(describeStep) ?? [],
      steps: executor?.records ?? [],
      gates: executor?.gates ?? [],
      canarySteps: executor?.canarySteps ?? [],
      configDiff,
      failure,
      rollbackFailure,
      evidence: executor?.evidence ?? [],
      live,
      github: recorder?.notes,
      stats: remote?.stats,
    },
    secretsOf(config),
  )
  if (process.env.GITHUB_STEP_SUMMARY) await core.summary.addRaw(summary).write()
  core.info(`result: ${result} (${durationSeconds.toFixed(1)} s)`)

  if (failure) {
    const what = config.operation === 'deploy' ? `deploy of ${config.image}` : `operation ${config.operation}`
    core.setFailed(`${what} ${result === 'rolled-back' ? 'failed and was rolled back' : 'failed'}: ${failure}${rollbackFailure ? `\nthe rollback failed too: ${rollbackFailure}` : ''}`)
  }
}
