// inputs -> connect -> lock and read -> plan -> execute -> records, outputs and summary. The only place that
// fails the step. Each stage is one function; the run's end is one value (RunEnd) the last stage publishes.
import * as core from '@actions/core'
import { LIMITS, type Config } from './config.js'
import { CanaryFailure, CanaryInconclusive, Executor } from './execute.js'
import { runContext } from './github/context.js'
import { canaryPullRequest, type RunContext } from './github/deployment.js'
import { beginDeployment, canaryLinks, githubRecorder, recordOnGitHub, type CanaryLinks } from './github/record.js'
import type { GitHubRecorder } from './github/report.js'
import { readHosts } from './host/read.js'
import type { CanaryState, HostState } from './host/state.js'
import { InputError, readConfig, readWorkspaceFile, secretTexts, type InputName } from './inputs.js'
import { Journal, type Logger } from './journal.js'
import { liveColor, mainImage, sshName, type Replica } from './model.js'
import { unifiedDiff } from './nginx/diff.js'
import { describeNginx, Nginx } from './nginx/nginx.js'
import { renderManagedFile } from './nginx/template.js'
import { PlanError, type Plan } from './plan/common.js'
import { NothingToDo, planFor, staleCanary, type PullRequestRef } from './plan/index.js'
import { planUndo } from './plan/rollback.js'
import { describeStep, type Step } from './plan/types.js'
import { connectFleet, type Fleet } from './remote/fleet.js'
import { finishCommand, type Records } from './host/records.js'
import { HeldLock, newClaim, stateDir } from './remote/lock.js'
import { run as runRemote } from './remote/ssh.js'
import { hostProblems } from './host/checks.js'
import { liveReport } from './status.js'
import type { RunEnd } from './run-end.js'
import { renderSummary, type Result } from './summary.js'

const logger: Logger = { info: core.info, warning: core.warning, debug: core.debug }

export function secretsOf(config: Config): string[] {
  return [
    config.login.privateKey,
    config.login.passphrase,
    config.login.password,
    config.proxy?.login.privateKey,
    config.proxy?.login.passphrase,
    config.registry?.password,
    config.github.token,
    ...config.env.flatMap((v) => [v.value, v.value.trim()]),
  ].filter((s): s is string => Boolean(s && s.trim().length >= 3))
}

const failed = (e: unknown, partial: Partial<RunEnd> = {}): RunEnd => ({
  result: 'failed',
  canaryWeight: '',
  serving: [],
  configDiff: '',
  ...partial,
  failure: (e as Error).message,
})

/** Who holds the lock, for another run that waits for it. */
const runOwner = (gh: RunContext): string =>
  `${gh.runUrl ?? `pid ${process.pid}`}${gh.actor ? ` by ${gh.actor}` : ''} since ${new Date().toISOString()}`

const pullRequestOf = (gh: RunContext): PullRequestRef | undefined => canaryPullRequest(gh, undefined)

/** The managed file the plan leaves live: what its last route step renders. */
function finalText(config: Config, plan: Plan, state: HostState): string | undefined {
  const last = [...plan.steps].reverse().find((s): s is Extract<Step, { kind: 'route' }> => s.kind === 'route')
  return last
    ? renderManagedFile(config, last.servers, last.split, state.nginx.facts).text
    : state.nginx.managed.kind === 'ours'
      ? state.nginx.managed.text
      : undefined
}

/** The shares still to go after a canary step that could not be judged. */
function sharesAfter(plan: Plan, percent: number): number[] {
  const shares = plan.steps.flatMap((s) => (s.kind === 'observe' ? [s.split.percent] : [])).filter((p) => p > percent)
  return [...shares, ...(plan.pausesAt ? [] : [100])]
}

interface Outcome {
  readonly result: Result
  readonly failure?: string
  readonly rollbackFailure?: string
  /** The canary's record after the run: a state, null when it ended, undefined when unchanged. */
  readonly canary?: CanaryState | null
  readonly canaryWeight: string
}

/**
 * Runs the plan: on a failure undoes it, on an unjudgeable canary step pauses. Returns the result and what
 * becomes of the canary record.
 */
async function carryOut(
  config: Config,
  state: HostState,
  plan: Plan,
  ex: Executor,
  links: () => Promise<CanaryLinks>,
  gh: RunContext,
): Promise<Outcome> {
  let paused: { percent: number; canary: readonly Replica[]; remaining: number[] } | undefined
  let result: Result
  let failure: string | undefined
  let rollbackFailure: string | undefined
  let canaryGone = false
  try {
    const title = config.operation === 'deploy' ? 'Deploy' : config.operation.replace(/^./, (c) => c.toUpperCase())
    await core.group(title, () => ex.runAll(plan.steps, 'deploy', plan.image))
    result = plan.leaves
    if (plan.pausesAt) paused = { percent: plan.pausesAt.percent, canary: plan.pausesAt.canary, remaining: [] }
    canaryGone = config.operation === 'abort' || (plan.onFailure === 'abort-canary' && result === 'deployed')
  } catch (e) {
    if (e instanceof CanaryInconclusive) {
      // Not a pass and not a failure: the canary stays live at this share until promote or abort.
      core.warning(e.message)
      const canary = plan.steps.flatMap((st) =>
        st.kind === 'observe' && st.split.percent === e.percent ? st.split.canary : [],
      )
      paused = { percent: e.percent, canary, remaining: sharesAfter(plan, e.percent) }
      result = 'paused'
    } else {
      failure = (e as Error).message
      result = 'failed'
      // A failing canary step always takes the canary out: that is what the step gate is for.
      if (config.rollbackOnFailure || e instanceof CanaryFailure) {
        const undo = planUndo(config, plan, ex.progress())
        try {
          await core.group('Roll back', () => ex.runAll(undo.steps, 'rollback', plan.image))
          result = 'rolled-back'
          canaryGone = undo.canary === 'removed'
        } catch (e2) {
          rollbackFailure = (e2 as Error).message
        }
      }
    }
  }
  if (paused) {
    const previous = state.canary
    const replaced = plan.replaces && previous
    const canary: CanaryState = {
      image: plan.image,
      stableImage:
        plan.pausesAt?.stableImage ??
        previous?.stableImage ??
        mainImage(plan.previous.filter((x) => x.image !== plan.image)),
      weight: paused.percent,
      remainingSteps: paused.remaining,
      replicas: paused.canary.map((r) => ({ host: r.host, name: r.name })),
      at: new Date().toISOString(),
      ...(gh.pullRequest ? { sha: gh.pullRequest.headSha } : {}),
      observations: [...(replaced ? [] : (previous?.observations ?? [])), ...ex.judged],
      ...(replaced
        ? {
            pushes: [
              ...(previous.pushes ?? []),
              {
                image: previous.image,
                sha: previous.sha,
                at: previous.at,
                observations: previous.observations ?? [],
                outcome: 'replaced' as const,
              },
            ],
          }
        : {}),
      ...(await links()),
    }
    return { result, failure, rollbackFailure, canary, canaryWeight: String(paused.percent) }
  }
  if (canaryGone || (plan.replaces && result === 'deployed'))
    return { result, failure, rollbackFailure, canary: null, canaryWeight: result === 'deployed' ? '100' : '0' }
  return { result, failure, rollbackFailure, canaryWeight: state.canary ? String(state.canary.weight) : '' }
}

/** Reads the hosts, plans, and (unless a dry run or status) carries the plan out under the lock. */
async function operate(
  config: Config,
  gh: RunContext,
  recorder: GitHubRecorder | undefined,
  journal: Journal,
  fleet: Fleet,
): Promise<RunEnd> {
  const mutating = config.operation !== 'status' && !config.dryRun
  const claim = mutating ? newClaim(config.app, runOwner(gh)) : undefined
  const what =
    config.appHosts.length > 1
      ? `${config.app} on ${config.appHosts.length} hosts`
      : `${config.app} on ${config.appHosts[0].id}`
  const read = await core.group(`${claim ? 'Take the deploy lock and read' : 'Read'} ${what}`, () =>
    journal.phase(claim ? 'lock and read' : 'read', async () => {
      const r = await readHosts(fleet, config, claim, (holder) =>
        core.info(`waiting for the deploy lock of ${config.app}: ${holder}`),
      )
      reportRead(config, fleet, r.state, r.lockNote, journal)
      return r
    }),
  )
  const lock = claim ? new HeldLock(fleet.nginx, claim, core.warning) : undefined
  let records: Records = {}
  try {
    let state = read.state
    const stale = staleCanary(state)
    if (stale) {
      core.warning(stale)
      journal.notes.push(stale)
      state = { ...state, canary: undefined }
      records = { canary: null }
    }
    if (config.operation === 'status') {
      if (stale)
        await runRemote(fleet.nginx, finishCommand(config.app, records, undefined), 'clearing the stale canary record')
      // Without a live canary, a paused canary's run is not what stands: the last deploy before it is.
      const last = [...state.history].reverse().find((h) => state.canary || h.result !== 'paused')
      const live = liveReport(config, state)
      return {
        result: state.canary ? 'paused' : ((last?.result as Result | undefined) ?? 'planned'),
        canaryWeight: state.canary ? String(state.canary.weight) : '',
        serving: live.replicas,
        configDiff: '',
        live,
        state,
      }
    }
    const problems = hostProblems(config, state)
    if (problems.length)
      throw new PlanError(
        problems.length === 1
          ? problems[0]
          : `${problems.length} problems on the hosts; nothing was changed:\n- ${problems.join('\n- ')}`,
      )
    const pr = pullRequestOf(gh)
    if (config.operation === 'abort' && stale) throw new NothingToDo(`${stale}; nothing left to abort`)
    const plan = planFor(config, state, pr)
    const configDiff = unifiedDiff(
      state.nginx.managed.kind === 'ours' ? state.nginx.managed.text : '',
      finalText(config, plan, state) ?? '',
      `${config.nginx.configPath} (live)`,
      `${config.nginx.configPath} (after)`,
    )
    await core.group(`Plan: ${config.operation} ${plan.image} (${config.strategy})`, async () => {
      plan.notes.forEach((n) => core.info(`note: ${n}`))
      plan.steps.forEach((step, i) => core.info(`${i + 1}. ${describeStep(step, config.appHosts.length > 1)}`))
      core.info(
        configDiff ? `${config.nginx.configPath} changes:\n${configDiff}` : `${config.nginx.configPath}: no change`,
      )
    })
    const previous = { plan, state, configDiff, serving: plan.previous }
    if (!lock || !claim) return { ...previous, result: 'planned', canaryWeight: '', serving: plan.next }

    const nginx = new Nginx(fleet.nginx, config, state.nginx, { lockDir: claim.dir, token: claim.token })
    const ex = new Executor(fleet, nginx, config, lock, journal, logger, state.containers, plan.previous)
    // Recorded alongside the deploy, not before it: GitHub's latency must not hold the lock longer.
    const deployment = recorder
      ? beginDeployment(recorder, config, gh, state.canary, plan.image)
      : Promise.resolve(undefined)
    const links = async (): Promise<CanaryLinks> => canaryLinks(gh, state.canary, await deployment)
    const outcome = await carryOut(config, state, plan, ex, links, gh)
    records = {
      history: [
        ...state.history,
        {
          image: plan.image,
          previousImage: mainImage(plan.previous),
          result: outcome.result,
          at: new Date().toISOString(),
          strategy: config.strategy,
          operation: config.operation,
          run: claim.owner,
        },
      ],
      ...(outcome.canary !== undefined ? { canary: outcome.canary } : records),
    }
    return { ...previous, ...outcome, canaryAfter: outcome.canary, serving: ex.serving, deployment: await deployment }
  } catch (e) {
    if (e instanceof NothingToDo) {
      core.notice(e.message)
      return {
        result: 'unchanged',
        canaryWeight: read.state.canary ? String(read.state.canary.weight) : '',
        serving: [],
        configDiff: '',
        state: read.state,
      }
    }
    return failed(e, { state: read.state })
  } finally {
    // The records and the lock's release in one command; a failed write is a warning, the deploy stands.
    if (claim) {
      await lock?.stopHeartbeat()
      await journal
        .phase('records and unlock', () =>
          runRemote(
            fleet.nginx,
            finishCommand(config.app, records, claim),
            'writing the deploy history and releasing the lock',
          ),
        )
        .catch((e: Error) =>
          core.warning(
            `${e.message}\nthe lock in ${stateDir(config.app)} on ${fleet.nginx.name} is released by the next run once it is stale (${LIMITS.lockStaleSeconds}s)`,
          ),
        )
    }
  }
}

/** What the read found that the log should show. */
function reportRead(
  config: Config,
  fleet: Fleet,
  state: HostState,
  lockNote: string | undefined,
  journal: Journal,
): void {
  if (lockNote) core.info(lockNote)
  for (const h of config.appHosts) {
    const mine = state.containers.filter((c) => c.app === config.app && c.host === h.id)
    core.info(
      `${h.id}: ${mine.map((c) => `${c.name} ${c.image}${c.color ? ` (${c.color})` : ''} ${c.running ? 'running' : 'stopped'}`).join(', ') || 'no replica'}`,
    )
  }
  const n = state.nginx
  const where = describeNginx(config, fleet.nginx.name)
  core.info(
    `${where}: ${!n.exists ? 'not created yet' : !n.running ? 'stopped' : `running${n.version ? ` nginx ${n.version.join('.')}` : ''}`}; ` +
      `${config.nginx.configPath}: ${n.managed.kind === 'ours' ? `routes ${[...n.routes.keys()].join(', ') || 'nothing'}` : n.managed.kind === 'absent' ? 'not there yet' : 'not read'}`,
  )
  if (state.canary)
    core.info(
      `canary: ${state.canary.image} paused at ${state.canary.weight}% since ${state.canary.at}${state.canary.pullRequest ? ` (pull request #${state.canary.pullRequest.number})` : ''}`,
    )
  for (const w of state.warnings) {
    core.warning(w)
    journal.notes.push(w)
  }
  for (const r of state.retireReports) {
    const m = `an earlier run's background stop on ${r.host} failed (what is left is removed as strays): ${r.report}`
    core.warning(m)
    journal.notes.push(m)
  }
}

/** Reads the inputs, masking every secret before anything can print one. */
function readInputs(): { config: Config } | { error: string } {
  const get = (name: InputName) => core.getInput(name)
  for (const secret of secretTexts(get)) core.setSecret(secret)
  try {
    const workspace = process.env.GITHUB_WORKSPACE ?? process.cwd()
    return { config: readConfig({ get, readWorkspaceFile: (p) => readWorkspaceFile(workspace, p) }) }
  } catch (e) {
    return { error: e instanceof InputError ? e.message : `reading inputs failed: ${(e as Error).message}` }
  }
}

/** Outputs, GitHub, the job summary, and the step's failure. */
async function publish(
  config: Config,
  gh: RunContext,
  recorder: GitHubRecorder | undefined,
  journal: Journal,
  end: RunEnd,
  stats: ReturnType<Fleet['stats']> | undefined,
): Promise<void> {
  const { result, plan, state } = end
  const durationSeconds = (Date.now() - journal.startedAt) / 1000
  const previousImage = plan
    ? mainImage(plan.previous) || (state?.history.at(-1)?.image ?? '')
    : (state?.history.at(-1)?.previousImage ?? '')
  // With a paused canary, the image serving is the stable one; the canary's is in the canary record.
  const liveImage =
    result === 'planned' && plan
      ? plan.image
      : mainImage(end.serving.filter((x) => !(result === 'paused' && plan && x.image === plan.image))) ||
        mainImage(end.serving)
  core.setOutput('result', result)
  core.setOutput('image', liveImage)
  core.setOutput('previous-image', previousImage)
  core.setOutput('duration-seconds', durationSeconds.toFixed(1))
  core.setOutput(
    'replicas',
    JSON.stringify(end.serving.map(({ host, name, port, image }) => ({ host, name, port, image }))),
  )
  core.setOutput('color', liveColor(end.serving))
  core.setOutput('canary-weight', end.canaryWeight)

  if (recorder && plan && !config.dryRun)
    await recordOnGitHub(
      recorder,
      config,
      gh,
      end,
      journal.canarySteps,
      { liveImage, previousImage },
      secretsOf(config),
    )

  const switched = journal.trafficSwitchedAtMs
  const summary = renderSummary(
    {
      app: config.app,
      hosts: config.appHosts.map((h) => h.id),
      nginxHost: describeNginx(config, sshName(config.nginxHost.host, config.nginxHost.port)),
      operation: config.operation,
      strategy: config.strategy,
      result,
      image: liveImage,
      previousImage,
      durationSeconds,
      trafficSwitchedSeconds: switched === undefined ? undefined : switched / 1000,
      dryRun: config.dryRun,
      color: liveColor(end.serving),
      canaryWeight: end.canaryWeight,
      notes: [...(plan?.notes ?? []), ...journal.notes],
      plan: plan?.steps.map((s) => describeStep(s, config.appHosts.length > 1)) ?? [],
      steps: journal.steps,
      gates: journal.gates,
      canarySteps: journal.canarySteps,
      configPath: config.nginx.configPath,
      configDiff: end.configDiff,
      failure: end.failure,
      rollbackFailure: end.rollbackFailure,
      evidence: journal.evidence,
      live: end.live,
      github: recorder?.notes,
      stats,
      phases: journal.phases,
    },
    secretsOf(config),
  )
  if (process.env.GITHUB_STEP_SUMMARY) await core.summary.addRaw(summary).write()
  core.info(
    `result: ${result} (${durationSeconds.toFixed(1)} s${switched !== undefined ? `; all traffic on ${plan?.image} after ${(switched / 1000).toFixed(1)} s` : ''})`,
  )

  if (end.failure) {
    const what = config.operation === 'deploy' ? `deploy of ${config.image}` : `operation ${config.operation}`
    core.setFailed(
      `${what} ${result === 'rolled-back' ? 'failed and was rolled back' : 'failed'}: ${end.failure}${end.rollbackFailure ? `\nthe rollback failed too: ${end.rollbackFailure}` : ''}`,
    )
  }
}

export async function run(): Promise<void> {
  // The clock starts with the process: node's own start-up is part of what a run costs.
  const journal = new Journal(Date.now() - Math.round(process.uptime() * 1000))
  journal.phases.push({ name: 'node start', ms: Date.now() - journal.startedAt })
  const input = readInputs()
  if ('error' in input) {
    core.setOutput('result', 'failed')
    core.setFailed(input.error)
    return
  }
  const config = input.config
  const gh = runContext()
  const recorder = githubRecorder(config, gh, logger)
  let fleet: Fleet | undefined
  let end: RunEnd
  try {
    const where =
      config.appHosts.length > 1 ? `${config.appHosts.length} app hosts and the nginx host` : config.appHosts[0].id
    fleet = await core.group(`Connect to ${where}${config.proxy ? ` through ${config.proxy.target.host}` : ''}`, () =>
      journal.phase('connect', () => connectFleet(config, core.debug)),
    )
    end = await operate(config, gh, recorder, journal, fleet)
  } catch (e) {
    end = failed(e)
  } finally {
    await fleet?.close()
  }
  await publish(config, gh, recorder, journal, end, fleet?.stats())
  if (end.result === 'failed' && !end.failure) core.setFailed('the run failed')
}
