// One small handler per kind of step: what the step does on the hosts, recorded in the run's progress. A
// handler throws when an effect fails (a command, nginx); what the judgement says is a value it returns.
import type { Config } from '../config.js'
import * as docker from '../commands/docker.js'
import { gate, type ReplicaPort } from '../health/gate.js'
import { retireDir } from '../host/read.js'
import type { Journal } from '../journal.js'
import type { Judge } from '../judge/judge.js'
import { byHost, type Replica } from '../model.js'
import { NginxError, type Nginx } from '../nginx/nginx.js'
import { renderManagedFile } from '../nginx/template.js'
import type { Step } from '../plan/types.js'
import type { Fleet } from '../remote/fleet.js'
import { run, type Remote } from '../remote/ssh.js'
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
}

/** Why the run stops after a step that itself went as planned: what the judgement said. */
export type Stop =
  /** Real traffic says the new version is bad: it must go, whatever rollback-on-failure says. */
  | { readonly kind: 'judged-bad'; readonly reason: string }
  /** A replica that took traffic died: the run fails there, as with any failed step. */
  | { readonly kind: 'replica-died'; readonly reason: string }
  /** Too little traffic to judge a canary step: the run pauses with the canary live. */
  | { readonly kind: 'inconclusive'; readonly percent: number; readonly reason: string }

export interface StepEnd {
  readonly detail?: string
  readonly stop?: Stop
}

type Handler<K extends Step['kind']> = (w: StepWorld, step: Extract<Step, { kind: K }>) => Promise<StepEnd>

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`
const done = (detail?: string): StepEnd => ({ detail })
const judgedBad = (reason: string): StepEnd => ({ stop: { kind: 'judged-bad', reason } })
const died = (reason: string): StepEnd => ({ stop: { kind: 'replica-died', reason } })

/** Runs `work` for each host's share of the replicas, all hosts at once. */
function onHosts<T>(
  w: StepWorld,
  replicas: readonly Replica[],
  work: (remote: Remote, rs: Replica[], host: string) => Promise<T>,
): Promise<T[]> {
  return Promise.all([...byHost(replicas)].map(([host, rs]) => work(w.fleet.app(host), rs, host)))
}

/** The container to name in a command: its id where the run knows it. */
const ref = (w: StepWorld) => (r: Replica) => w.progress.idOf(r) ?? r.name

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
  const out = await run(w.fleet.app(r.host), docker.runReplica(w.config, r), `starting ${r.name}`)
  const id = out.stdout.trim().split('\n').pop() ?? ''
  if (/^[0-9a-f]{64}$/.test(id)) w.progress.created(r, id)
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
  await onHosts(w, step.replicas, (remote, rs) =>
    run(remote, docker.startContainers(rs.map(ref(w))), 'starting previous replicas again'),
  )
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

async function route(w: StepWorld, step: Extract<Step, { kind: 'route' }>): Promise<StepEnd> {
  // Never leave nginx only replicas that died since the watch last looked.
  const seen = await w.judge.verdictNow()
  if (seen.failed) return died(seen.reason)
  const { text, configId } = renderManagedFile(w.config, step.servers, step.split, w.nginx.state.facts)
  const detail = await applyNginx(w, text, configId)
  w.progress.routedTo(step.servers)
  w.judge.routed(step.servers.filter((r) => w.progress.isNew(r)))
  return done(detail)
}

async function restoreConfig(w: StepWorld, step: Extract<Step, { kind: 'restore-config' }>): Promise<StepEnd> {
  const detail = await applyNginx(w, step.text, undefined)
  w.progress.serving = step.servers
  return done(detail)
}

async function observe(w: StepWorld, step: Extract<Step, { kind: 'observe' }>): Promise<StepEnd> {
  const o = await w.judge.observe(step.split, step.stable, step.seconds)
  w.journal.canarySteps.push(o)
  if (o.verdict === 'fail') return judgedBad(`canary step at ${o.percent}% failed: ${o.reason}`)
  if (o.verdict === 'inconclusive') {
    const reason = `canary step at ${o.percent}% is inconclusive: ${o.reason}`
    return { stop: { kind: 'inconclusive', percent: o.percent, reason } }
  }
  return done(o.reason)
}

async function drain(w: StepWorld, step: Extract<Step, { kind: 'drain' }>): Promise<StepEnd> {
  // The replicas that took the traffic are checked again meanwhile, while the old ones still run; a routed
  // replica that dies ends the drain at once, so that the undo routes back to the old ones before the next
  // new replica can fail too.
  const rechecks = (step.recheck ?? []).map((r) => gate(w.replicas, w.config, r, true))
  const drained = Promise.all([drainReplicas(w, step.replicas, step.seconds), ...rechecks])
  const end = await w.judge.unlessFailed(drained)
  return 'failed' in end ? died(end.failed) : done(end.done[0])
}

async function stop(w: StepWorld, step: Extract<Step, { kind: 'stop' }>): Promise<StepEnd> {
  const timeout = w.config.stopTimeoutSeconds
  const stopping = onHosts(w, step.replicas, (remote, rs) =>
    run(remote, docker.stopContainers(rs.map(ref(w)), timeout), 'stopping old replicas'),
  )
  w.progress.markStopped(step.replicas)
  if (!step.background) {
    await stopping
    return done()
  }
  w.progress.stoppingInBackground(step.replicas, stopping)
  return done('continues while the next batch starts')
}

async function remove(w: StepWorld, step: Extract<Step, { kind: 'remove' }>): Promise<StepEnd> {
  const waited = await w.progress.settle(step.replicas)
  await onHosts(w, step.replicas, (remote, rs) =>
    run(remote, docker.removeContainers(rs.map(ref(w))), 'removing containers'),
  )
  return done(waited ? `after waiting ${seconds(waited)} for docker stop` : undefined)
}

async function retire(w: StepWorld, step: Extract<Step, { kind: 'retire' }>): Promise<StepEnd> {
  // The stops still running from earlier batches are now the host's to finish: the retirement stops
  // (joining them) and removes every one of these, so the run need not wait for any.
  w.progress.handOverStops()
  w.progress.markRetired(step.replicas)
  const timeout = w.config.stopTimeoutSeconds
  const dir = retireDir(w.config.app)
  await onHosts(w, step.replicas, (remote, rs) =>
    run(remote, docker.retireContainers(dir, rs.map(ref(w)), timeout), 'handing the old replicas to a background stop'),
  )
  return done(
    `stopping (up to stop-timeout ${timeout}s) and removing on the host; a failure is reported by the next run`,
  )
}

/** Every kind of step, and what does it. */
export const STEP_HANDLERS: { readonly [K in Step['kind']]: Handler<K> } = {
  login,
  pull,
  start,
  restart,
  gate: gateReplicas,
  route,
  'restore-config': restoreConfig,
  observe,
  drain,
  stop,
  remove,
  retire,
}

export const runStep = <K extends Step['kind']>(w: StepWorld, step: Extract<Step, { kind: K }>): Promise<StepEnd> =>
  (STEP_HANDLERS[step.kind] as Handler<K>)(w, step)
