// One operation on the hosts: take the lock and read them, then report (status), plan and print (dry run),
// or plan and carry out; the records and the lock's release in one command at the end.
import * as core from '@actions/core'
import { LIMITS, type Config } from './config.js'
import { carryOut } from './carry-out.js'
import { canaryPullRequest, type RunContext } from './github/deployment.js'
import { beginDeployment, canaryLinks, type CanaryLinks } from './github/record.js'
import type { GitHubRecorder } from './github/report.js'
import { hostProblems } from './host/checks.js'
import { readHosts, type HostRead } from './host/read.js'
import { finishCommand, type Records } from './host/records.js'
import type { HostState } from './host/state.js'
import type { Journal, Logger } from './journal.js'
import { mainImage } from './model.js'
import { unifiedDiff } from './nginx/diff.js'
import { describeNginx, Nginx } from './nginx/nginx.js'
import { renderManagedFile } from './nginx/template.js'
import { PlanError, type Plan } from './plan/common.js'
import { NothingToDo, planFor, staleCanary } from './plan/index.js'
import { describeStep, type Step } from './plan/types.js'
import type { Fleet } from './remote/fleet.js'
import { HeldLock, newClaim, stateDir, type LockClaim } from './remote/lock.js'
import { run as runRemote } from './remote/ssh.js'
import type { RunEnd } from './run-end.js'
import { Executor } from './run/executor.js'
import { liveReport } from './status.js'
import type { Result } from './summary.js'

export const failed = (e: unknown, partial: Partial<RunEnd> = {}): RunEnd => ({
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

/** The managed file the plan leaves live: what its last route step renders. */
function finalText(config: Config, plan: Plan, state: HostState): string | undefined {
  const last = [...plan.steps].reverse().find((s): s is Extract<Step, { kind: 'route' }> => s.kind === 'route')
  if (last) return renderManagedFile(config, last.servers, last.split, state.nginx.facts).text
  return state.nginx.managed.kind === 'ours' ? state.nginx.managed.text : undefined
}

/** An operation's end, and the records it leaves on the nginx host. */
interface Done {
  readonly end: RunEnd
  readonly records: Records
}

/**
 * Reads the hosts (under the lock unless a status or a dry run), then reports, plans, or carries the plan
 * out. The records and the lock's release go in one command at the end; a failed write is a warning.
 */
export async function operate(
  config: Config,
  gh: RunContext,
  recorder: GitHubRecorder | undefined,
  journal: Journal,
  fleet: Fleet,
  log: Logger,
): Promise<RunEnd> {
  const mutating = config.operation !== 'status' && !config.dryRun
  const claim = mutating ? newClaim(config.app, runOwner(gh)) : undefined
  const read = await readUnderLock(config, fleet, claim, journal)
  const lock = claim ? new HeldLock(fleet.nginx, claim, core.warning) : undefined
  const { end, records } = await operateOn(config, gh, recorder, journal, fleet, log, read.state, lock)
  if (claim) await finish(config, fleet, journal, lock, claim, records)
  return end
}

async function readUnderLock(config: Config, fleet: Fleet, claim: LockClaim | undefined, journal: Journal) {
  const what =
    config.appHosts.length > 1
      ? `${config.app} on ${config.appHosts.length} hosts`
      : `${config.app} on ${config.appHosts[0].id}`
  return core.group(`${claim ? 'Take the deploy lock and read' : 'Read'} ${what}`, () =>
    journal.phase(claim ? 'lock and read' : 'read', async () => {
      const waiting = (holder: string) => core.info(`waiting for the deploy lock of ${config.app}: ${holder}`)
      const read = await readHosts(fleet, config, claim, waiting)
      reportRead(config, fleet, read, journal)
      return read
    }),
  )
}

/** The operation itself, on what was read: status, a plan printed, or a plan carried out. */
async function operateOn(
  config: Config,
  gh: RunContext,
  recorder: GitHubRecorder | undefined,
  journal: Journal,
  fleet: Fleet,
  log: Logger,
  read: HostState,
  lock: HeldLock | undefined,
): Promise<Done> {
  const stale = staleCanary(read)
  // A record the hosts no longer agree with describes nothing live: it is cleared.
  const records: Records = stale ? { canary: null } : {}
  const state = stale ? { ...read, canary: undefined } : read
  if (stale) {
    core.warning(stale)
    journal.notes.push(stale)
  }
  try {
    if (config.operation === 'status') return { end: await status(config, fleet, state, records), records: {} }
    const problems = hostProblems(config, state)
    if (problems.length)
      throw new PlanError(
        problems.length === 1
          ? problems[0]
          : `${problems.length} problems on the hosts; nothing was changed:\n- ${problems.join('\n- ')}`,
      )
    if (config.operation === 'abort' && stale) throw new NothingToDo(`${stale}; nothing left to abort`)
    const plan = planFor(config, state, canaryPullRequest(gh, undefined))
    const configDiff = printPlan(config, plan, state)
    const planned = { plan, state, configDiff, serving: plan.previous }
    if (!lock) return { end: { ...planned, result: 'planned', canaryWeight: '', serving: plan.next }, records }
    return await deploy(config, gh, recorder, journal, fleet, log, state, plan, configDiff, lock, records)
  } catch (e) {
    if (!(e instanceof NothingToDo)) return { end: failed(e, { state: read }), records }
    core.notice(e.message)
    const canaryWeight = read.canary ? String(read.canary.weight) : ''
    return { end: { result: 'unchanged', canaryWeight, serving: [], configDiff: '', state: read }, records }
  }
}

/** What is live, and the last deploys. A stale canary record is cleared (status changes nothing else). */
async function status(config: Config, fleet: Fleet, state: HostState, records: Records): Promise<RunEnd> {
  if (records.canary === null)
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

/** Prints the plan and the change of the managed file it makes; returns that change as a diff. */
function printPlan(config: Config, plan: Plan, state: HostState): string {
  const path = config.nginx.configPath
  const live = state.nginx.managed.kind === 'ours' ? state.nginx.managed.text : ''
  const configDiff = unifiedDiff(live, finalText(config, plan, state) ?? '', `${path} (live)`, `${path} (after)`)
  core.startGroup(`Plan: ${config.operation} ${plan.image} (${config.strategy})`)
  plan.notes.forEach((n) => core.info(`note: ${n}`))
  plan.steps.forEach((step, i) => core.info(`${i + 1}. ${describeStep(step, config.appHosts.length > 1)}`))
  core.info(configDiff ? `${path} changes:\n${configDiff}` : `${path}: no change`)
  core.endGroup()
  return configDiff
}

/** Carries the plan out, recording the deployment on GitHub alongside. */
async function deploy(
  config: Config,
  gh: RunContext,
  recorder: GitHubRecorder | undefined,
  journal: Journal,
  fleet: Fleet,
  log: Logger,
  state: HostState,
  plan: Plan,
  configDiff: string,
  lock: HeldLock,
  records: Records,
): Promise<Done> {
  const { claim } = lock
  const nginx = new Nginx(fleet.nginx, config, state.nginx, { lockDir: claim.dir, token: claim.token })
  const ex = new Executor(fleet, nginx, config, lock, journal, log, state.containers, plan.previous)
  // Recorded alongside the deploy, not before it: GitHub's latency must not hold the lock longer.
  const deployment = recorder
    ? beginDeployment(recorder, config, gh, state.canary, plan.image)
    : Promise.resolve(undefined)
  const links = async (): Promise<CanaryLinks> => canaryLinks(gh, state.canary, await deployment)
  const outcome = await carryOut(config, state, plan, ex, journal, links, gh)
  const entry = {
    image: plan.image,
    previousImage: mainImage(plan.previous),
    result: outcome.result,
    at: new Date().toISOString(),
    strategy: config.strategy,
    operation: config.operation,
    run: claim.owner,
  }
  const canary = outcome.canary !== undefined ? { canary: outcome.canary } : records
  const end: RunEnd = {
    plan,
    state,
    configDiff,
    ...outcome,
    canaryAfter: outcome.canary,
    serving: ex.progress.serving,
    deployment: await deployment,
  }
  return { end, records: { history: [...state.history, entry], ...canary } }
}

/** The records and the lock's release in one command; a failed write is a warning, the deploy stands. */
async function finish(
  config: Config,
  fleet: Fleet,
  journal: Journal,
  lock: HeldLock | undefined,
  claim: LockClaim,
  records: Records,
): Promise<void> {
  await lock?.stopHeartbeat()
  const release = finishCommand(config.app, records, claim)
  await journal
    .phase('records and unlock', () =>
      runRemote(fleet.nginx, release, 'writing the deploy history and releasing the lock'),
    )
    .catch((e: Error) =>
      core.warning(
        `${e.message}\nthe lock in ${stateDir(config.app)} on ${fleet.nginx.name} is released by the next run once it is stale (${LIMITS.lockStaleSeconds}s)`,
      ),
    )
}

/** What the read found that the log should show. */
function reportRead(config: Config, fleet: Fleet, read: HostRead, journal: Journal): void {
  const { state, lockNote } = read
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
