// Reads what the hosts hold, under the lock: one command on the nginx host (take the lock, then the app's
// records, nginx, and its containers when it is an app host too), then one on every other app host, in
// parallel. A plan made from what a host held before another run finished would be stale, so the app hosts
// are read only once the lock is ours.
import type { AppHost, Config } from '../config.js'
import { listManaged, readRetireReports } from '../commands/docker.js'
import type { Command } from '../commands/shell.js'
import { parseNginx, readNginxCommand, type NginxState } from '../nginx/nginx.js'
import { parseSections, sectioned, text, type Section } from '../remote/frames.js'
import type { Fleet } from '../remote/fleet.js'
import { canaryPath, historyPath, readFile } from './records.js'
import { acquireCommand, leasePath, stateDir, writeLease, type LockClaim } from '../remote/lock.js'
import { failure, RemoteError, type ExecResult, type Remote } from '../remote/ssh.js'
import { parseUsage, readUsage } from './ports.js'
import { parseCanaryState, parseContainers, parseHistory, type AppHostState, type HostState } from './state.js'

export class HostStateError extends Error {}

/** Where earlier runs' background stops report their failures on an app host. */
export const retireDir = (app: string): string => `${stateDir(app)}/retired`

// The reports are removed as they are read only under the lock: a status or a dry run must leave them for
// the next run that acts on them. An app host other than the nginx host gets the run's lease first (see
// HostFence): what is read there after it is what no earlier run changes any more.
const appHostParts = (config: Config, consume: boolean, lease?: LockClaim) => [
  ...(lease ? [{ name: 'lease', command: writeLease(lease) }] : []),
  { name: 'containers', command: listManaged() },
  { name: 'usage', command: readUsage() },
  { name: 'retired', command: readRetireReports(retireDir(config.app), consume) },
]

function parseAppHost(
  config: Config,
  host: AppHost,
  sections: ReadonlyMap<string, Section>,
  remote: Remote,
  warnings: string[],
): AppHostState {
  const lease = sections.get('lease')
  if (lease && lease.code !== 0)
    throw new HostStateError(
      `writing the deploy lease ${leasePath(config.app)} on ${remote.name} failed: ${text(lease.err).trim() || '(no answer)'}`,
    )
  const list = sections.get('containers')
  if (!list || list.code !== 0)
    throw new HostStateError(
      `listing containers on ${remote.name} failed (is docker usable by the ssh user?): ${text(list?.err).trim() || '(no answer)'}`,
    )
  // A container of this app whose labels break their rules is not ignored like a foreign one: the run cannot
  // plan around it (the problems name the host themselves).
  const { containers, ignored, problems } = parseContainers(text(list.out), host, config.app)
  warnings.push(...ignored.map((m) => `${host.id}: ${m}`))
  const retireReports = text(sections.get('retired')?.out)
    .split('\0')
    .map((r) => r.trim())
    .filter(Boolean)
  const usage = parseUsage(text(sections.get('usage')?.out), config.app)
  return { host: host.id, containers, retireReports, usage, problems }
}

export interface HostRead {
  readonly state: HostState
  /** What taking the lock said (a stale lock taken over). */
  readonly lockNote?: string
}

/** The app host that is the nginx host too, if one is: its containers are read in the nginx host's command. */
export const nginxAppHost = (config: Config): AppHost | undefined =>
  config.appHosts.find((h) => h.ssh.host === config.nginxHost.host && h.ssh.port === config.nginxHost.port)

/** Why the nginx host's command failed other than by finding the lock held (exit 3). */
function lockOrReadFailure(fleet: Fleet, config: Config, command: Command, r: ExecResult, first?: Section): Error {
  const why = text(first?.err).trim() || text(first?.out).trim()
  return why
    ? new RemoteError(
        `taking the deploy lock of ${config.app} on ${fleet.nginx.name} failed (exit ${r.code}): ${why}`,
        r,
      )
    : failure(fleet.nginx, command, `reading ${fleet.nginx.name}`, r)
}

/**
 * Runs the nginx host's command until it answers: while another run holds the lock (exit 3) it says who to
 * `waiting`, once per holder, and tries again every second until lock-timeout. Returns the answer's sections.
 */
async function readNginxHost(
  fleet: Fleet,
  config: Config,
  command: Command,
  waiting: (holder: string) => void,
): Promise<Map<string, Section>> {
  const deadline = Date.now() + config.lockTimeoutSeconds * 1000
  let lastHolder = ''
  for (;;) {
    const r = await fleet.nginx.exec(command)
    const sections = parseSections(r.raw)
    if (r.code === 0) return sections
    const first = sections.get('first')
    if (r.code !== 3) throw lockOrReadFailure(fleet, config, command, r, first)
    const holder = text(first?.out).trim()
    if (holder !== lastHolder) waiting(holder)
    lastHolder = holder
    if (Date.now() >= deadline)
      throw new RemoteError(
        `another deploy of ${config.app} is running: lock ${holder} on ${fleet.nginx.name}; gave up after lock-timeout ${config.lockTimeoutSeconds}s`,
        r,
      )
    await new Promise((res) => setTimeout(res, Math.min(1000, Math.max(0, deadline - Date.now()))))
  }
}

/** The app hosts other than the nginx host, each read in one command, in parallel. */
function readAppHosts(
  fleet: Fleet,
  config: Config,
  hosts: readonly AppHost[],
  claim: LockClaim | undefined,
  warnings: string[],
): Promise<AppHostState[]> {
  return Promise.all(
    hosts.map(async (h) => {
      const remote = fleet.app(h.id)
      const c = sectioned(undefined, appHostParts(config, Boolean(claim), claim))
      const r = await remote.exec(c)
      if (r.code !== 0) throw failure(remote, c, `reading ${h.id}`, r)
      return parseAppHost(config, h, parseSections(r.raw), remote, warnings)
    }),
  )
}

/** A record file of the app's on the nginx host, as read ('' when there is none). */
function recordFile(
  fleet: Fleet,
  config: Config,
  sections: ReadonlyMap<string, Section>,
  name: 'history' | 'canary',
): string {
  const s = sections.get(name)
  if (s && s.code !== 0)
    throw new HostStateError(
      `reading ${name === 'history' ? historyPath(config.app) : canaryPath(config.app)} on ${fleet.nginx.name} failed: ${text(s.err).trim()}`,
    )
  return text(s?.out)
}

/** nginx on the nginx host, as read. */
function nginxOf(fleet: Fleet, config: Config, sections: ReadonlyMap<string, Section>): NginxState {
  const nginxSection = sections.get('nginx')
  if (!nginxSection || nginxSection.code !== 0)
    throw new HostStateError(
      `reading nginx on ${fleet.nginx.name} failed: ${text(nginxSection?.err).trim() || '(no answer)'}`,
    )
  return parseNginx(config, parseSections(nginxSection.out), fleet.nginx.name)
}

/** What every host holds, the app hosts' parts put together. */
function hostState(
  hosts: readonly AppHostState[],
  nginx: NginxState,
  history: HostState['history'],
  canary: HostState['canary'],
  warnings: readonly string[],
): HostState {
  return {
    containers: hosts.flatMap((h) => h.containers),
    nginx,
    history,
    ...(canary ? { canary } : {}),
    warnings,
    retireReports: hosts.flatMap((h) => h.retireReports.map((report) => ({ host: h.host, report }))),
    usage: new Map(hosts.map((h) => [h.host, h.usage])),
    problems: hosts.flatMap((h) => h.problems),
  }
}

/**
 * Takes the lock (when a claim is given; waiting up to lock-timeout for another run) and reads every host.
 * `waiting` is told who holds the lock while it waits; `onLocked` is called as soon as the lock is taken,
 * before the other app hosts are read (the lock's heartbeat must not wait for them).
 */
export async function readHosts(
  fleet: Fleet,
  config: Config,
  claim: LockClaim | undefined,
  waiting: (holder: string) => void,
  onLocked?: () => void,
): Promise<HostRead> {
  const nginxIsAppHost = nginxAppHost(config)
  const nginxRead = sectioned(claim ? acquireCommand(claim) : undefined, [
    { name: 'history', command: readFile(historyPath(config.app)) },
    { name: 'canary', command: readFile(canaryPath(config.app)) },
    ...(nginxIsAppHost ? appHostParts(config, Boolean(claim)) : []),
    { name: 'nginx', command: readNginxCommand(config) },
  ])
  const sections = await readNginxHost(fleet, config, nginxRead, waiting)
  if (claim) onLocked?.()

  const warnings: string[] = []
  const others = config.appHosts.filter((h) => h !== nginxIsAppHost)
  const hosts: AppHostState[] = []
  if (nginxIsAppHost) hosts.push(parseAppHost(config, nginxIsAppHost, sections, fleet.nginx, warnings))
  hosts.push(...(await readAppHosts(fleet, config, others, claim, warnings)))
  // Hosts in the order they were given, whatever answered first.
  hosts.sort(
    (a, b) => config.appHosts.findIndex((h) => h.id === a.host) - config.appHosts.findIndex((h) => h.id === b.host),
  )

  const history = parseHistory(recordFile(fleet, config, sections, 'history'), (m) => warnings.push(m))
  const canary = parseCanaryState(recordFile(fleet, config, sections, 'canary'), config.appHosts[0].id, (m) =>
    warnings.push(m),
  )
  const nginx = nginxOf(fleet, config, sections)
  warnings.push(...(nginx.warnings ?? []))
  const lockNote = text(sections.get('first')?.out).trim() || undefined
  return { state: hostState(hosts, nginx, history, canary, warnings), lockNote }
}
