// One operation on the hosts: take the lock and read them, then report (status), plan and print (dry run),
// or plan and carry out; the records and the lock's release in one command at the end.
import * as core from '@actions/core'
import { LIMITS, type Config } from './config.js'
import { carryOut, recordEveryShare } from './carry-out.js'
import { canaryPullRequest, type RunContext } from './github/deployment.js'
import { beginDeployment, canaryLinks, type CanaryLinks } from './github/record.js'
import type { GitHubRecorder } from './github/report.js'
import { hostProblems } from './host/checks.js'
import { readHosts, type HostRead } from './host/read.js'
import { NO_USAGE, releasePorts, reservePorts, takenPorts } from './host/ports.js'
import { finishCommand, RECORDS_NOT_OUR_LOCK, writeCanaryCommand, type Records } from './host/records.js'
import type { CanaryState, HistoryEntry, HostState } from './host/state.js'
import type { Journal, Logger } from './journal.js'
import { safeInfo } from './log.js'
import type { Cancellation } from './run/cancel.js'
import { mainImage, replicaKey } from './model.js'
import { unifiedDiff } from './nginx/diff.js'
import { describeNginx, Nginx, withNginxMode } from './nginx/nginx.js'
import { renderManagedFile } from './nginx/template.js'
import { PlanError, type Plan } from './plan/common.js'
import { canaryLeftovers, NothingToDo, planFor, staleCanary } from './plan/index.js'
import { describeStep, type Step } from './plan/types.js'
import type { Fleet } from './remote/fleet.js'
import { HeldLock, newClaim, stateDir, type LockClaim } from './remote/lock.js'
import { failure, RemoteError, run as runRemote } from './remote/ssh.js'
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

/** What one operation works with: its settings, the run on GitHub, its record, its connections. */
export interface Scope {
  readonly config: Config
  readonly gh: RunContext
  readonly recorder: GitHubRecorder | undefined
  readonly journal: Journal
  readonly fleet: Fleet
  readonly log: Logger
  /** The workflow run's cancellation: nothing new starts once it is asked for. */
  readonly cancel: Cancellation
}

/**
 * Reads the hosts (under the lock unless a status or a dry run), then reports, plans, or carries the plan
 * out. The records and the lock's release go in one command at the end; a failed write is a warning.
 */
export async function operate(scope: Scope): Promise<RunEnd> {
  const { gh, fleet, journal } = scope
  const mutating = scope.config.operation !== 'status' && !scope.config.dryRun
  const claim = mutating ? newClaim(scope.config.app, runOwner(gh)) : undefined
  const { read, lock } = await readUnderLock(scope.config, fleet, claim, journal)
  // nginx-mode auto is decided by the read: from here on the run works with the nginx it chose.
  const config = withNginxMode(scope.config, read.state.nginx)
  const { end, records } = await operateOn({ ...scope, config }, read.state, lock)
  if (claim) await finish(config, fleet, journal, lock, claim, records)
  return end
}

/**
 * Takes the lock (given a claim) and reads the hosts. The lock's heartbeat starts the moment the nginx host
 * gave the lock, not once every host is read: reading the other app hosts can take longer than a silent lock
 * stays fresh. A read that fails after that has changed nothing, so the lock goes at once.
 */
async function readUnderLock(
  config: Config,
  fleet: Fleet,
  claim: LockClaim | undefined,
  journal: Journal,
): Promise<{ read: HostRead; lock?: HeldLock }> {
  const what =
    config.appHosts.length > 1
      ? `${config.app} on ${config.appHosts.length} hosts`
      : `${config.app} on ${config.appHosts[0].id}`
  const held: { lock?: HeldLock } = {}
  const locked = () => {
    if (claim) held.lock = new HeldLock(fleet.nginx, claim, core.warning)
  }
  try {
    const read = await core.group(`${claim ? 'Take the deploy lock and read' : 'Read'} ${what}`, () =>
      journal.phase(claim ? 'lock and read' : 'read', async () => {
        const waiting = (holder: string) => safeInfo(`waiting for the deploy lock of ${config.app}: ${holder}`)
        const read = await readHosts(fleet, config, claim, waiting, locked)
        reportRead(config, fleet, read, journal)
        return read
      }),
    )
    return { read, lock: held.lock }
  } catch (e) {
    // A release that fails leaves the lock to go stale, as a run that died would: the read's failure is the news.
    await held.lock?.release().catch(() => undefined)
    throw e
  }
}

/** The operation itself, on what was read: status, a plan printed, or a plan carried out. */
async function operateOn(scope: Scope, read: HostState, lock: HeldLock | undefined): Promise<Done> {
  const { config, gh, journal, fleet, cancel } = scope
  const stale = staleCanary(read)
  // A record the hosts no longer agree with describes nothing live: it is cleared.
  const records: Records = stale ? { canary: null } : {}
  const state = stale ? { ...read, canary: undefined } : read
  if (stale) {
    core.warning(stale)
    journal.notes.push(stale)
  }
  // The run's nginx, made before planning: a plan that judges has what its judgement needs started while the
  // ports are reserved (prepareJudging). None without the lock (a status, a dry run).
  const held = lock && {
    lock,
    nginx: new Nginx(fleet.nginx, config, state.nginx, { lockDir: lock.claim.dir, token: lock.claim.token }),
  }
  try {
    if (config.operation === 'status') return { end: await status(config, fleet, state, records), records: {} }
    const problems = hostProblems(config, state)
    if (problems.length) {
      const why =
        problems.length === 1
          ? problems[0]
          : `${problems.length} problems on the hosts; nothing was changed:\n- ${problems.join('\n- ')}`
      // Refused: not even a stale canary record is cleared (a refused run writes nothing).
      return { end: failed(new PlanError(why), { state: read }), records: {} }
    }
    // An abort of a canary whose record is stale takes out what is left of it (a canary goes whole): it is
    // planned from the record, whose replicas still taking traffic are the canary.
    const leftovers = config.operation === 'abort' && stale ? canaryLeftovers(read) : []
    if (config.operation === 'abort' && stale && !leftovers.length)
      throw new NothingToDo(`${stale}; nothing left to abort`)
    const planFrom = leftovers.length ? read : state
    const plan = held
      ? await planAndReserve(config, fleet, planFrom, gh, held.lock.claim, prepareJudging(held.nginx))
      : planFor(config, planFrom, canaryPullRequest(gh, undefined))
    const configDiff = printPlan(config, plan, state)
    const planned = { plan, state, configDiff, serving: plan.previous }
    if (!held) return { end: { ...planned, result: 'planned', canaryWeight: '', serving: plan.next }, records }
    if (cancel.reason) {
      const failure = `${cancel.reason} before this run changed anything`
      return { end: { ...planned, configDiff: '', result: 'cancelled', canaryWeight: '', failure }, records }
    }
    return await deploy(scope, state, plan, held.lock, records, held.nginx)
  } catch (e) {
    if (!(e instanceof NothingToDo)) return { end: failed(e, { state: read }), records }
    core.notice(e.message)
    const canaryWeight = read.canary ? String(read.canary.weight) : ''
    return { end: { result: 'unchanged', canaryWeight, serving: [], configDiff: '', state: read }, records }
  } finally {
    // What prepareJudging started, for a run that stopped before its steps (cancelled, ports taken): a deploy
    // released it already, as soon as its steps were done.
    await held?.nginx.releaseHeld()
  }
}

/**
 * A plan that judges its new version (it turns nginx's record on) has what the judgement needs started as
 * soon as it is planned, while the ports are reserved (Nginx.prepareJudging).
 */
const prepareJudging = (nginx: Nginx) => (plan: Plan) => {
  if (plan.steps.some((s) => s.kind === 'record')) nginx.prepareJudging(nginx.liveText)
}

/**
 * The ports a plan starts replicas on, by app host; `freeing`: those its own containers hold until a removal
 * earlier in the plan (a stray's, a replica an earlier run still retires) frees them.
 */
function newPorts(plan: Plan): Map<string, { ports: number[]; freeing: number[] }> {
  const byHost = new Map<string, { ports: number[]; freeing: number[] }>()
  const removed = new Set<string>()
  for (const step of plan.steps) {
    if (step.kind === 'remove') for (const r of step.replicas) removed.add(replicaKey(r))
    if (step.kind !== 'start') continue
    for (const r of step.replicas) {
      const held = byHost.get(r.host) ?? { ports: [], freeing: [] }
      held.ports.push(r.port)
      if (removed.has(replicaKey(r))) held.freeing.push(r.port)
      byHost.set(r.host, held)
    }
  }
  return byHost
}

/**
 * Plans, then reserves the ports of the new replicas on their hosts (another app deploying on the same
 * host at the same moment may have read the same ports free). A port found taken is left out of the next
 * plan; after a few tries the run gives up before changing anything.
 */
async function planAndReserve(
  config: Config,
  fleet: Fleet,
  state: HostState,
  gh: RunContext,
  claim: LockClaim,
  planned: (plan: Plan) => void,
) {
  let usage = new Map(state.usage ?? [])
  for (let attempt = 1; ; attempt++) {
    const plan = planFor(config, { ...state, usage }, canaryPullRequest(gh, undefined))
    planned(plan)
    const answers = await Promise.all(
      [...newPorts(plan)].map(async ([host, { ports, freeing }]) => {
        const reserve = reservePorts(config.app, claim.token, LIMITS.portReservationSeconds, ports, freeing)
        const r = await fleet.app(host).exec(reserve)
        if (r.code !== 0 && r.code !== 3) throw failure(fleet.app(host), reserve, `reserving ports on ${host}`, r)
        return [host, r.code === 3 ? takenPorts(r.stdout) : []] as const
      }),
    )
    const taken = answers.filter(([, ports]) => ports.length)
    if (!taken.length) return plan
    const what = taken.map(([host, ports]) => `${ports.join(', ')} on ${host}`).join('; ')
    if (attempt >= LIMITS.portReservationTries)
      throw new PlanError(
        `ports ${what} were taken by another deploy as this one planned, ${attempt} times; nothing was changed`,
      )
    core.info(`ports ${what} were just taken by another deploy: planning again without them`)
    usage = new Map(usage)
    for (const [host, ports] of taken) {
      const held = usage.get(host) ?? NO_USAGE
      const reserved = new Map([...held.reserved, ...ports.map((p) => [p, 'another deploy'] as const)])
      usage.set(host, { ...held, reserved })
    }
  }
}

/**
 * What is live, and the last deploys. Changes nothing, as it takes no lock: a stale canary record is reported
 * (see operateOn) and left for the next run that takes the lock to clear.
 */
function status(config: Config, fleet: Fleet, state: HostState, records: Records): RunEnd {
  if (records.canary === null)
    core.info(
      `the stale canary record stays on ${fleet.nginx.name} until the next deploy, promote, abort or rollback of ${config.app} clears it`,
    )
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
  if (state.nginx.modeReason) safeInfo(`note: nginx-mode auto: ${state.nginx.modeReason}`)
  plan.notes.forEach((n) => core.info(`note: ${n}`))
  plan.steps.forEach((step, i) => core.info(`${i + 1}. ${describeStep(step, config.appHosts.length > 1)}`))
  safeInfo(configDiff ? `${path} changes:\n${configDiff}` : `${path}: no change`)
  core.endGroup()
  return configDiff
}

/** This run's entry in the app's deploy history. `run`: who ran it (the lock's owner). */
function historyEntry(config: Config, plan: Plan, result: Result, run: string): HistoryEntry {
  return {
    image: plan.image,
    previousImage: mainImage(plan.previous),
    result,
    at: new Date().toISOString(),
    strategy: config.strategy,
    operation: config.operation,
    run,
  }
}

/** What the run changed of the file nginx serves (none, when it went back): not what it planned to. */
function servedChange(config: Config, state: HostState, liveText: string | undefined): string {
  const path = config.nginx.configPath
  const before = state.nginx.managed.kind === 'ours' ? state.nginx.managed.text : ''
  return unifiedDiff(before, liveText ?? '', `${path} (before the run)`, `${path} (served now)`)
}

/** Carries the plan out, recording the deployment on GitHub alongside. */
async function deploy(
  scope: Scope,
  state: HostState,
  plan: Plan,
  lock: HeldLock,
  records: Records,
  nginx: Nginx,
): Promise<Done> {
  const { config, gh, recorder, journal, fleet, log, cancel } = scope
  const { claim } = lock
  const write = (record: CanaryState) =>
    runRemote(fleet.nginx, writeCanaryCommand(config.app, record, claim), 'putting the canary on record')
  const recordCanary = recordEveryShare(state, plan, gh, journal, write)
  const ex = new Executor(
    fleet,
    nginx,
    config,
    lock,
    journal,
    log,
    state.containers,
    plan.previous,
    recordCanary,
    cancel,
  )
  // Recorded alongside the deploy, not before it: GitHub's latency must not hold the lock longer.
  const deployment = recorder
    ? beginDeployment(recorder, config, gh, state.canary, plan.image)
    : Promise.resolve(undefined)
  const links = async (): Promise<CanaryLinks> => canaryLinks(gh, state.canary, await deployment)
  const outcome = await carryOut(config, state, plan, ex, journal, links, gh).finally(() => nginx.releaseHeld())
  await ex.quiesce()
  const entry = historyEntry(config, plan, outcome.result, claim.owner)
  const canary = outcome.canary !== undefined ? { canary: outcome.canary } : records
  const configDiff = servedChange(config, state, nginx.liveText)
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
  // The new replicas hold their ports by their labels now: this run's reservations go (or expire, when a
  // host cannot be reached: handled here, since the records' failure may end the phase before it is awaited).
  const unreserve = Promise.all(config.appHosts.map((h) => fleet.app(h.id).exec(releasePorts(claim.token)))).catch(
    () => undefined,
  )
  await journal
    .phase('records and unlock', async () => {
      const done = await runRemote(fleet.nginx, release, 'writing the deploy history and releasing the lock')
      await unreserve
      return done
    })
    .catch((e: Error) =>
      core.warning(
        e instanceof RemoteError && e.result?.code === RECORDS_NOT_OUR_LOCK
          ? `the deploy history and canary record of ${config.app} were not written, and no lock released: another run holds the deploy lock on ${fleet.nginx.name} now (this run's was taken over)`
          : `${e.message}\nthe lock in ${stateDir(config.app)} on ${fleet.nginx.name} is released by the next run once it is stale (${LIMITS.lockStaleSeconds}s)`,
      ),
    )
}

/**
 * What the read found that the log should show. Its lines carry what the hosts sent (names, images, the lock's
 * note, nginx's routes), so they go through safeInfo: validated as it is, a host's text is still no command.
 */
function reportRead(config: Config, fleet: Fleet, read: HostRead, journal: Journal): void {
  const { state, lockNote } = read
  if (lockNote) safeInfo(lockNote)
  for (const h of config.appHosts) {
    const mine = state.containers.filter((c) => c.app === config.app && c.host === h.id)
    safeInfo(
      `${h.id}: ${mine.map((c) => `${c.name} ${c.image}${c.color ? ` (${c.color})` : ''} ${c.running ? 'running' : 'stopped'}`).join(', ') || 'no replica'}`,
    )
  }
  const n = state.nginx
  const where = describeNginx(withNginxMode(config, n), fleet.nginx.name)
  if (n.modeReason) safeInfo(`nginx-mode auto: ${n.modeReason}`)
  safeInfo(
    `${where}: ${!n.exists ? 'not created yet' : !n.running ? 'stopped' : `running${n.version ? ` nginx ${n.version.join('.')}` : ''}`}; ` +
      `${config.nginx.configPath}: ${n.managed.kind === 'ours' ? `routes ${[...n.routes.keys()].join(', ') || 'nothing'}` : n.managed.kind === 'absent' ? 'not there yet' : 'not read'}`,
  )
  if (state.canary)
    safeInfo(
      `canary: ${state.canary.image} paused at ${state.canary.weight}% since ${state.canary.at}${state.canary.pullRequest ? ` (pull request #${state.canary.pullRequest.number})` : ''}`,
    )
  for (const w of state.warnings) {
    core.warning(w)
    journal.notes.push(w)
  }
  // A status plans nothing, so hostProblems does not stop it: what would stop any other run is shown instead.
  if (config.operation === 'status')
    for (const p of state.problems ?? []) {
      core.warning(p)
      journal.notes.push(p)
    }
  for (const r of state.retireReports) {
    const m = `an earlier run's background stop on ${r.host} failed (what is left is removed as strays): ${r.report}`
    core.warning(m)
    journal.notes.push(m)
  }
}
