// One small handler per kind of step: what the step does on the hosts, recorded in the run's progress. A
// handler throws when an effect fails (a command, nginx); what the judgement says is a value it returns.
import type { Config } from '../config.js'
import * as docker from '../commands/docker.js'
import { gate, type ReplicaPort } from '../health/gate.js'
import { retireDir } from '../host/read.js'
import type { Journal } from '../journal.js'
import type { Judge } from '../judge/judge.js'
import { byHost, type Replica, type Split } from '../model.js'
import { NginxError, type Nginx } from '../nginx/nginx.js'
import { renderManagedFile } from '../nginx/template.js'
import type { Step } from '../plan/types.js'
import type { Fleet } from '../remote/fleet.js'
import { fenced, type HostFence } from '../remote/lock.js'
import { failure, RemoteError, run, type Remote } from '../remote/ssh.js'
import type { Command } from '../commands/shell.js'
import { drainReplicas } from './drain.js'
import type { RunProgress } from './progress.js'

/** What the handlers work with: the run's settings, its connections, nginx, its progress and its judgement. */
export interface StepWorld {
  readonly config: Config
  readonly fleet: Fleet
  readonly nginx: Nginx
  readonly progress: RunProgress
  readonly judge: Judge
  readonly replicas: ReplicaPort
  readonly journal: Journal
  /**
   * What each app host checks before this run changes the app's containers there: every create, start,
   * stop, removal and retirement is refused on the host once the lock has moved on (see HostFence).
   */
  readonly fence: (host: string) => HostFence
  /** Puts a canary on record before nginx gives it `split`'s share (canary plans only). */
  readonly recordCanary?: (split: Split) => Promise<void>
}

/** Why the run stops after a step that itself went as planned: what the judgement said. */
export type Stop =
  /**
   * Real traffic, or the life of a replica that took it, says the new version is bad: it must go, whatever
   * rollback-on-failure says.
   */
  | { readonly kind: 'judged-bad'; readonly reason: string }
  /** Too little traffic to judge a canary step: the run pauses with the canary live. */
  | { readonly kind: 'inconclusive'; readonly percent: number; readonly reason: string }
  /** The workflow run was cancelled: no new work starts. */
  | { readonly kind: 'cancelled'; readonly reason: string }

export interface StepEnd {
  readonly detail?: string
  readonly stop?: Stop
}

type Handler<K extends Step['kind']> = (w: StepWorld, step: Extract<Step, { kind: K }>) => Promise<StepEnd>

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`
const done = (detail?: string): StepEnd => ({ detail })
const judgedBad = (reason: string): StepEnd => ({ stop: { kind: 'judged-bad', reason } })

/** Runs `work` for each host's share of the replicas, all hosts at once. */
function onHosts<T>(
  w: StepWorld,
  replicas: readonly Replica[],
  work: (remote: Remote, rs: Replica[], host: string) => Promise<T>,
): Promise<T[]> {
  return Promise.all([...byHost(replicas)].map(([host, rs]) => work(w.fleet.app(host), rs, host)))
}

/**
 * The containers of these replicas, by the ids the run read or got from docker create: a command that stops,
 * starts or removes names nothing else. A replica without one has no container of this run's making (its
 * create failed): it is left out, and never looked for by name.
 */
const idsOf = (w: StepWorld, replicas: readonly Replica[]): string[] =>
  replicas.flatMap((r) => {
    const id = w.progress.idOf(r)
    return id ? [id] : []
  })

/**
 * Runs `command(ids)`, fenced, on each host for the replicas there that have a container; nothing where none
 * has.
 */
const onContainers = (w: StepWorld, replicas: readonly Replica[], what: string, command: (ids: string[]) => Command) =>
  onHosts(w, replicas, async (remote, rs, host) => {
    const ids = idsOf(w, rs)
    if (ids.length) await run(remote, fenced(w.fence(host), command(ids)), what)
  })

async function login(w: StepWorld, step: Extract<Step, { kind: 'login' }>): Promise<StepEnd> {
  const password = w.config.registry?.password ?? ''
  const command = docker.login(step.registry, step.username, password, w.config.pullTimeoutSeconds)
  const what = `docker login to ${step.registry || 'Docker Hub'}`
  await Promise.all(step.hosts.map((h) => run(w.fleet.app(h), command, what)))
  return done()
}

async function pull(w: StepWorld, step: Extract<Step, { kind: 'pull' }>): Promise<StepEnd> {
  const command = docker.pullImage(step.image, w.config.pullTimeoutSeconds)
  await Promise.all(step.hosts.map((h) => run(w.fleet.app(h), command, `pulling ${step.image}`)))
  return done()
}

async function startOne(w: StepWorld, r: Replica): Promise<void> {
  w.progress.markStarting(r)
  const remote = w.fleet.app(r.host)
  const create = fenced(w.fence(r.host), docker.createReplica(w.config, r))
  const out = await remote.exec(create)
  // Known from the moment docker create printed it, even if the start then failed.
  const id = docker.createdId(out.stdout)
  if (id) w.progress.created(r, id)
  if (out.code === 0) return
  if (!id && /is already in use by container/.test(out.stderr))
    throw new RemoteError(
      `the container name ${r.name} on ${r.host} is taken by a container nginx-rollout did not create: it is left ` +
        `as it is. Rename or remove it, or give ports that its name does not use. docker said: ${out.stderr.trim()}`,
      out,
    )
  throw failure(remote, create, `starting ${r.name}`, out)
}

async function start(w: StepWorld, step: Extract<Step, { kind: 'start' }>): Promise<StepEnd> {
  const starts = step.replicas.map((r) => startOne(w, r))
  if (!step.ahead) {
    await Promise.all(starts)
    return done()
  }
  step.replicas.forEach((r, i) => w.progress.startingAhead(r, starts[i]))
  return done('continues while the batch before drains')
}

async function restart(w: StepWorld, step: Extract<Step, { kind: 'restart' }>): Promise<StepEnd> {
  const waited = await w.progress.settle(step.replicas)
  await onContainers(w, step.replicas, 'starting previous replicas again', docker.startContainers)
  return done(waited ? `after waiting ${seconds(waited)} for docker stop` : undefined)
}

async function gateReplicas(w: StepWorld, step: Extract<Step, { kind: 'gate' }>): Promise<StepEnd> {
  const gateOne = async (r: Replica) => {
    await w.progress.startOf(r)
    try {
      const result = await gate(w.replicas, w.config, r)
      w.journal.gates.push(result)
      return result
    } catch (e) {
      const failed = (e as { gate?: (typeof w.journal.gates)[number] }).gate
      if (failed) w.journal.gates.push(failed)
      throw e
    }
  }
  const results = await Promise.all(step.replicas.map(gateOne))
  return done(results.map((g) => `${g.replica} healthy after ${seconds(g.ms)}`).join(', '))
}

/** Changes the managed file; when nginx refuses, its last log lines go with the failure. */
async function applyNginx(w: StepWorld, text: string | undefined, configId: string | undefined): Promise<string> {
  try {
    return await w.nginx.apply(text, configId, w.config.appHosts[0].upstreamAddress)
  } catch (e) {
    if (e instanceof NginxError) {
      const logs = (await w.nginx.errorLog(20).catch(() => '')) || '(no log output)'
      w.journal.evidence.push({ subject: w.nginx.where, reason: e.message, logs })
    }
    throw e
  }
}

/**
 * The file for these servers, with nginx's record of the app's requests and the backups when `judged`, and
 * the replicas from before the run (those still in it, routed or backups) for the switch back.
 */
function fileFor(w: StepWorld, servers: readonly Replica[], split?: Split, judged?: { backup: readonly Replica[] }) {
  if (!judged) return renderManagedFile(w.config, servers, split, w.nginx.state.facts)
  const previous = [...servers.filter((r) => !w.progress.isNew(r)), ...judged.backup]
  return renderManagedFile(w.config, servers, split, w.nginx.state.facts, {
    log: true,
    backup: judged.backup,
    previous,
  })
}

/**
 * The judgement starts (idempotent): nginx's record followed, and a session held where nginx runs for the
 * run's changes, since a verdict can come within a second of the first route, sooner than a change started
 * then is ready, and every route waits for its change (see Nginx.holdSession).
 */
async function startJudging(w: StepWorld): Promise<void> {
  await w.judge.startRecording()
  w.nginx.holdSession(w.progress.configBefore)
}

async function record(w: StepWorld, step: Extract<Step, { kind: 'record' }>): Promise<StepEnd> {
  // A stopped or missing nginx container first: the record is followed inside it.
  const booted = await w.nginx.boot(w.config.appHosts[0].upstreamAddress)
  // Followed from empty before the reload that turns the record on, so nothing nginx writes is missed.
  await startJudging(w)
  w.judge.routed(step.servers)
  const { text, configId } = fileFor(w, step.servers, step.split, { backup: [] })
  // nginx changes run one after another: the first route waits for this one, and meets its failure.
  w.progress.changingNginx(
    applyNginx(w, text, configId).then((detail) => {
      w.judge.recordLive()
      return detail
    }),
  )
  return done([booted, 'continues while the new replicas start'].filter(Boolean).join('; '))
}

async function route(w: StepWorld, step: Extract<Step, { kind: 'route' }>): Promise<StepEnd> {
  // Never leave nginx only replicas that died since the watch last looked.
  const seen = await w.judge.verdictNow()
  if (seen) return judgedBad(seen)
  await w.progress.nginxChanged()
  if (step.judged) {
    await startJudging(w)
    // A route that leaves the old version no traffic (blue-green's switch, a single batch) is the old
    // version's last: its baseline is what nginx recorded before. Other routes leave it serving beside.
    if (step.servers.every((r) => w.progress.isNew(r))) await w.judge.baseline()
  }
  if (step.split && w.recordCanary && !step.maintenance) await w.recordCanary(step.split)
  const { text, configId } = fileFor(w, step.servers, step.split, step.judged)
  // Before the reload: a version failing fast can meet its first requests (and, with a low max-fails, be
  // taken out by nginx) before the change's answer comes back; those must count for it.
  const before = w.judge.mark()
  const detail = await applyNginx(w, text, configId)
  if (step.judged) w.judge.recordLive()
  w.progress.routedTo(step.servers)
  // The backups are old replicas too: what nginx sends them counts for the old version.
  w.judge.routed([...step.servers, ...(step.judged?.backup ?? [])], before)
  return done(detail)
}

async function restoreConfig(w: StepWorld, step: Extract<Step, { kind: 'restore-config' }>): Promise<StepEnd> {
  await w.progress.nginxChanged().catch(() => undefined) // a failed change is the run's failure already
  const detail = await applyNginx(w, step.text, undefined)
  w.progress.serving = step.servers
  return done(detail)
}

async function observe(w: StepWorld, step: Extract<Step, { kind: 'observe' }>): Promise<StepEnd> {
  const observing = w.judge.observe(step.split, step.stable, step.seconds)
  // Kept as soon as it is known, even when the judgement ended the wait first.
  void observing.then(
    (o) => w.journal.canarySteps.push(o),
    () => undefined,
  )
  const o = await observing
  if (o.verdict === 'fail') return judgedBad(`canary step at ${o.percent}% failed: ${o.reason}`)
  if (o.verdict === 'inconclusive') {
    const reason = `canary step at ${o.percent}% is inconclusive: ${o.reason}`
    return { stop: { kind: 'inconclusive', percent: o.percent, reason } }
  }
  return done(o.reason)
}

async function drain(w: StepWorld, step: Extract<Step, { kind: 'drain' }>): Promise<StepEnd> {
  // The replicas that took the traffic are checked again meanwhile, while the old ones still run, and judged
  // on real traffic; what the judgement finds wrong ends the drain at once (the executor races it), so that
  // the traffic goes back to the old ones before the next new replica can fail too.
  const rechecks = (step.recheck ?? []).map((r) => gate(w.replicas, w.config, r, true))
  const manyHosts = w.config.appHosts.length > 1
  const verifying =
    step.verify && w.judge.recording
      ? w.judge.verify(step.verify, w.config.verifySeconds, manyHosts).then((v) => (w.journal.verifications.push(v), v))
      : undefined
  const [detail] = await Promise.all([drainReplicas(w, step.replicas, step.seconds), ...rechecks])
  const verified = await verifying
  if (verified?.verdict === 'fail') return judgedBad(w.judge.failure ?? `real traffic: ${verified.reason}`)
  const verdict = verified && `real traffic: ${verified.verdict} after ${seconds(verified.ms)}, ${verified.reason}`
  return done(verdict ? `${detail}; ${verdict}` : detail)
}

async function bake(w: StepWorld, step: Extract<Step, { kind: 'bake' }>): Promise<StepEnd> {
  const baking = w.judge.bake(step.seconds)
  void baking.then(
    (b) => (w.journal.bake = b),
    () => undefined,
  )
  const b = await baking
  return b.verdict === 'fail' ? judgedBad(b.reason) : done(b.reason)
}

async function stop(w: StepWorld, step: Extract<Step, { kind: 'stop' }>): Promise<StepEnd> {
  const timeout = w.config.stopTimeoutSeconds
  const stopping = onContainers(w, step.replicas, 'stopping old replicas', (ids) => docker.stopContainers(ids, timeout))
  w.progress.markStopped(step.replicas)
  if (!step.background) {
    await stopping
    return done()
  }
  w.progress.stoppingInBackground(step.replicas, stopping)
  return done('continues while the next batch starts')
}

async function remove(w: StepWorld, step: Extract<Step, { kind: 'remove' }>): Promise<StepEnd> {
  // A start that ran ahead is done (or failed) before its replica is removed: its id is what is removed.
  await Promise.allSettled(step.replicas.map((r) => w.progress.startOf(r)))
  const waited = await w.progress.settle(step.replicas)
  await onContainers(w, step.replicas, 'removing containers', docker.removeContainers)
  return done(waited ? `after waiting ${seconds(waited)} for docker stop` : undefined)
}

async function retire(w: StepWorld, step: Extract<Step, { kind: 'retire' }>): Promise<StepEnd> {
  // The stops still running from earlier batches are now the host's to finish: the retirement stops
  // (joining them) and removes every one of these, so the run need not wait for any.
  w.progress.handOverStops()
  w.progress.markRetired(step.replicas)
  const timeout = w.config.stopTimeoutSeconds
  const dir = retireDir(w.config.app)
  const retire = (ids: string[]) => docker.retireContainers(dir, ids, timeout)
  await onContainers(w, step.replicas, 'handing the old replicas to a background stop', retire)
  return done(
    `stopping (up to stop-timeout ${timeout}s) and removing on the host; a failure is reported by the next run`,
  )
}

/** Every kind of step, and what does it. */
export const STEP_HANDLERS: { readonly [K in Step['kind']]: Handler<K> } = {
  login,
  pull,
  record,
  start,
  restart,
  gate: gateReplicas,
  route,
  'restore-config': restoreConfig,
  observe,
  drain,
  bake,
  stop,
  remove,
  retire,
}

export const runStep = <K extends Step['kind']>(w: StepWorld, step: Extract<Step, { kind: K }>): Promise<StepEnd> =>
  (STEP_HANDLERS[step.kind] as Handler<K>)(w, step)
