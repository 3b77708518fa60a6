// nginx behind one small interface: read it, change the app's one file (validated, locked, reloaded,
// verified), and read the canary's access log. Whether nginx runs in a container or on the host is decided
// here, once: the scripts are the same, only where they run differs (NginxPlace).
import { createHash } from 'node:crypto'
import { isIP } from 'node:net'
import { LIMITS, type Config, type NginxMode } from '../config.js'
import * as docker from '../commands/docker.js'
import { command, withStdin, withTimeout, type Command } from '../commands/shell.js'
import { hostPort, isLoopback, parseListen } from '../model.js'
import { parseSections, sectioned, text, type Section } from '../remote/frames.js'
import { failure, run, type ExecResult, type Following, type Remote } from '../remote/ssh.js'
import {
  declaresHttpAccessLog,
  includeProblem,
  parseDump,
  parseVersion,
  sameListen,
  serverBlocks,
  serverNameClashes,
  versionAtLeast,
  type ConfigDump,
} from './dump.js'
import { parseOpenRequests, type OpenRequest } from '../judge/open.js'
import { heldProblem, holdersOf, parseListening, type Listening } from './listening.js'
import {
  APPLY_FAILURES,
  applyManagedFile,
  containerPlace,
  setAsideImageDefaultSite,
  followTrafficLog,
  openConnections,
  hostPlace,
  nginxErrorLog,
  nginxLocked,
  nginxSession,
  readNginx,
  sudoCommands,
  type NginxPlace,
} from './scripts.js'
import { RecordFollow } from './record-follow.js'
import { NginxSession } from './session.js'
import {
  CONFIG_ID_HEADER,
  configIdOf,
  maintenanceOf,
  ownershipOf,
  upstreamServers,
  type NginxFacts,
} from './template.js'

/** The managed file as read: nothing yet, or a file this app's deploys wrote. (Anything else is a problem.) */
export type ManagedFile =
  | { readonly kind: 'absent' }
  /** `configId`: the id its config-id location answers (undefined: a custom template without one). */
  | { readonly kind: 'ours'; readonly text: string; readonly configId?: string }
  | { readonly kind: 'unknown' }

export interface NginxState {
  /** With nginx-mode auto: the nginx the read chose, and why (undefined: the mode was given). */
  readonly mode?: NginxMode
  readonly modeReason?: string
  /** Container mode: whether the container exists and runs, and its network. Host mode: always running. */
  readonly exists: boolean
  readonly running: boolean
  readonly networkMode?: string
  /** The master process to signal (in the container's PID namespace in container mode). */
  readonly masterPid?: number
  readonly version?: readonly [number, number, number]
  readonly managed: ManagedFile
  /** The upstream servers the managed file routes to, keyed 'address:port', with their weights. */
  readonly routes: ReadonlyMap<string, number | undefined>
  /** The addresses upstream host names resolve to where nginx runs (nginx logs those, not the names). */
  readonly resolved?: ReadonlyMap<string, readonly string[]>
  /** What must stop the run before anything changes: the file is not the app's, nginx would not read it... */
  readonly problems: readonly string[]
  /** What the run should say but that stops nothing. */
  readonly warnings?: readonly string[]
  readonly facts: NginxFacts
}

export const sha256 = (t: string): string => createHash('sha256').update(t).digest('hex')

/** Where nginx runs, the addresses an upstream address stands for: a host name's as they resolved there. */
export const upstreamAddresses = (state: NginxState, address: string): readonly string[] =>
  state.resolved?.get(address) ?? [address]

export class NginxError extends Error {}

/** The nginx the config points at (nginx-mode auto is resolved by the read first: withNginxMode). */
export function nginxPlace(config: Config): NginxPlace {
  const n = config.nginx
  if (n.mode === 'auto') throw new Error('nginx-mode auto: the place of nginx is known once it is read')
  return n.mode === 'container' ? containerPlace(n.container) : hostPlace(n.sudo)
}

/** The config with nginx-mode auto replaced by the mode the read chose. */
export const withNginxMode = (config: Config, state: NginxState): Config =>
  config.nginx.mode === 'auto' ? { ...config, nginx: { ...config.nginx, mode: state.mode ?? 'container' } } : config

export const describeNginx = (config: Config, host: string): string =>
  config.nginx.mode === 'container'
    ? `nginx container ${config.nginx.container} on ${host}`
    : config.nginx.mode === 'host'
      ? `nginx on ${host}`
      : `nginx (container ${config.nginx.container} or the host's) on ${host}`

const readIn = (config: Config, mode: NginxMode): Command =>
  readNginx(
    nginxPlace({ ...config, nginx: { ...config.nginx, mode } }),
    config.nginx.container,
    config.nginx.configPath,
    LIMITS.canaryLogPath(config.app),
    LIMITS.switchBackFlagPath(config.app),
    hostNamesOf(config),
  )

/**
 * The command that reads nginx (framed sections); parseNginx() reads its output. With nginx-mode auto, both
 * places are read at once (a container that does not exist, or a host without nginx, answers at once).
 */
export const readNginxCommand = (config: Config): Command =>
  config.nginx.mode === 'auto'
    ? sectioned(undefined, [
        { name: 'as-container', command: readIn(config, 'container') },
        { name: 'as-host', command: readIn(config, 'host') },
      ])
    : readIn(config, config.nginx.mode)

/**
 * nginx-mode auto: the nginx container when it exists (earlier deploys made or used it), else the nginx
 * running on the host, else a container the run creates.
 */
function chooseNginx(config: Config, sections: ReadonlyMap<string, Section>, where: string) {
  const inContainer = parseSections(sections.get('as-container')?.out ?? Buffer.alloc(0))
  const onHost = parseSections(sections.get('as-host')?.out ?? Buffer.alloc(0))
  const container = config.nginx.container
  if (inContainer.get('container')?.code === 0)
    return {
      mode: 'container' as const,
      sections: inContainer,
      reason: `the nginx container ${container}, which exists on ${where}`,
    }
  const masters = text(onHost.get('masters')?.out).trim()
  if (masters)
    return {
      mode: 'host' as const,
      sections: onHost,
      reason: `the nginx installed on ${where} (master process ${masters.split(/\s+/).join(', ')}), as no container ${container} exists there`,
    }
  return {
    mode: 'container' as const,
    sections: inContainer,
    reason: `a new nginx container ${container}, as no nginx runs on ${where} and no such container exists there`,
  }
}

/** Upstream addresses that are host names: nginx logs the addresses they resolve to. */
const hostNamesOf = (config: Config): string[] => [
  ...new Set(config.appHosts.map((h) => h.upstreamAddress).filter((a) => !isIP(a))),
]

/** What the upstream host names resolved to where nginx runs ('name address' lines), by name. */
function parseResolved(config: Config, s: Section | undefined): Map<string, string[]> {
  const names = new Set(hostNamesOf(config))
  const resolved = new Map<string, string[]>()
  for (const line of text(s?.out).split('\n')) {
    const [name, address] = line.trim().split(/\s+/)
    if (!names.has(name) || !isIP(address ?? '')) continue
    resolved.set(name, [...(resolved.get(name) ?? []), address])
  }
  return resolved
}

/** What the read found, and the problems that must stop the run before it changes anything. */
export function parseNginx(config: Config, sections: ReadonlyMap<string, Section>, where: string): NginxState {
  if (config.nginx.mode === 'auto') {
    const chosen = chooseNginx(config, sections, where)
    const resolved = { ...config, nginx: { ...config.nginx, mode: chosen.mode } }
    return { ...parseNginx(resolved, chosen.sections, where), mode: chosen.mode, modeReason: chosen.reason }
  }
  const n = config.nginx
  const problems: string[] = []
  const noFacts: NginxFacts = { keepaliveMinTimeout: false }
  const container = sections.get('container')
  if (n.mode === 'container') {
    if (!container || container.code !== 0) {
      const why = text(container?.err).trim()
      if (container && !/no such (object|container)/i.test(why))
        problems.push(`inspecting the nginx container ${n.container} on ${where} failed: ${why}`)
      else problems.push(...listenHeld(config, sections, where, `the nginx container ${n.container} the run creates`))
      return { exists: false, running: false, managed: { kind: 'absent' }, routes: new Map(), problems, facts: noFacts }
    }
    const [running, networkMode] = text(container.out).trim().split(' ')
    if (running !== 'true') {
      problems.push(...listenHeld(config, sections, where, `the nginx container ${n.container}`))
      return {
        exists: true,
        running: false,
        networkMode,
        managed: { kind: 'unknown' },
        routes: new Map(),
        problems,
        facts: noFacts,
      }
    }
    if (!sections.has('masters')) {
      problems.push(
        `the nginx container ${n.container} on ${where} runs, but a POSIX sh cannot be run in it (docker exec ... sh): the action reads and changes its file with one`,
      )
      return {
        exists: true,
        running: true,
        networkMode,
        managed: { kind: 'unknown' },
        routes: new Map(),
        problems,
        facts: noFacts,
      }
    }
    return { ...parseInside(config, sections, where, problems), exists: true, running: true, networkMode }
  }
  return { ...parseInside(config, sections, where, problems), exists: true, running: true }
}

function parseInside(config: Config, sections: ReadonlyMap<string, Section>, where: string, problems: string[]) {
  const n = config.nginx
  const masters = text(sections.get('masters')?.out).trim().split(/\s+/).filter(Boolean).map(Number)
  if (!masters.length)
    problems.push(
      n.mode === 'host'
        ? `nginx-mode host: no nginx master process runs on ${where}; start nginx there (e.g. systemctl start nginx) or use nginx-mode: container`
        : `no nginx master process runs in the container ${n.container} on ${where}`,
    )
  if (masters.length > 1)
    problems.push(
      `${masters.length} nginx master processes run on ${where} (pids ${masters.join(', ')}); nginx-rollout cannot tell which one reads ${n.configPath}`,
    )
  const versionText = text(sections.get('version')?.err) + text(sections.get('version')?.out)
  const version = parseVersion(versionText)
  const dumpSection = sections.get('dump')
  const dump = dumpSection && dumpSection.code === 0 ? parseDump(text(dumpSection.out)) : undefined
  const sudo = sudoProblem(config, sections.get('sudo'), where)
  if (sudo) problems.push(sudo)
  if (masters.length === 1 && !dump && !sudo)
    problems.push(
      `nginx -T on ${where} failed, so its configuration cannot be checked before a change: ${text(dumpSection?.err).trim().split('\n').slice(-5).join('\n') || '(no output)'}`,
    )
  if (dump) problems.push(...dumpProblems(config, dump, sections, where))
  // The canary's access_log sits at the http level while a split is live: there it would replace nginx's
  // implicit default for server blocks that declare none, when the configuration names no access_log itself.
  const warnings =
    dump &&
    !declaresHttpAccessLog(dump, n.configPath) &&
    (config.verifySeconds > 0 || config.strategy === 'canary' || config.operation === 'promote')
      ? [
          `nginx's configuration names no access_log in its http block: while a run judges the app's traffic, the app's own access_log there replaces nginx's implicit default log for server blocks that declare none. Add \`access_log /var/log/nginx/access.log;\` to the http block to keep it`,
        ]
      : []
  const managed = parseManaged(config, sections.get('managed'), where, problems)
  // Maintenance stays on through every later run until operation: resume: it is read from the live file.
  const maintenance = managed.kind === 'ours' ? maintenanceOf(managed.text) : undefined
  const facts: NginxFacts = {
    keepaliveMinTimeout: versionAtLeast(version, LIMITS.keepaliveMinTimeoutSince),
    // As root, or through sudo that allows its two command lines (else the read's problems stop the run).
    switchBack: true,
    ...(maintenance !== undefined ? { maintenance } : {}),
  }
  return {
    resolved: parseResolved(config, sections.get('resolve')),
    masterPid: masters.length === 1 ? masters[0] : undefined,
    version,
    managed,
    routes: managed.kind === 'ours' ? upstreamServers(managed.text) : new Map<string, number | undefined>(),
    problems,
    warnings,
    facts,
  }
}

/**
 * What the live configuration says would go wrong: the managed file not included in the http block, a
 * server_name another file serves on the same listen, the listen address held by a process that is not nginx.
 * Found here, before any change (a dry run shows them too), not by nginx -t once new replicas are up.
 */
function dumpProblems(
  config: Config,
  dump: ConfigDump,
  sections: ReadonlyMap<string, Section>,
  where: string,
): string[] {
  const n = config.nginx
  const problems: string[] = []
  const p = includeProblem(dump, n.configPath)
  if (p) problems.push(p)
  if (n.scope === 'site') problems.push(...serverNameClashes(dump, n.configPath, n.listen, n.serverName.split(/\s+/)))
  // A socket nginx does not hold itself (no server block of it listens there, or ss names another process).
  const nginxListens = serverBlocks(dump).some((b) => b.listens.some((l) => sameListen(l, n.listen)))
  if (n.mode === 'host')
    problems.push(
      ...listenHeld(config, sections, where, 'nginx', (h) => (h.process ? !/^nginx /.test(h.process) : !nginxListens)),
    )
  return problems
}

/**
 * The app's listen address (site scope) already held on the nginx host, as a problem; `by`: what would listen
 * there; `foreign`: which holders count (all, by default).
 */
function listenHeld(
  config: Config,
  sections: ReadonlyMap<string, Section>,
  where: string,
  by: string,
  foreign: (h: Listening) => boolean = () => true,
): string[] {
  const s = sections.get('listening')
  if (config.nginx.scope !== 'site' || !s || s.code !== 0) return []
  const held = holdersOf(parseListening(text(s.out)), config.nginx.listen).filter(foreign)
  return held.length ? [heldProblem(held, config.nginx.listen, where, by)] : []
}

/** A command line as sudoers spells it: `,` `:` `=` and `\\` in it escaped. */
const sudoersCommand = (line: string): string => line.replace(/[,:=\\]/g, (c) => `\\${c}`)

/**
 * What sudo refused of the privileged commands (see probe_sudo in scripts.ts), as one problem naming each
 * refused command and the sudoers line that allows every one of them; undefined when sudo allows them all
 * (or is not used).
 */
export function sudoProblem(config: Config, s: Section | undefined, where: string): string | undefined {
  if (!s) return undefined
  const [user = '', ...lines] = text(s.out).trim().split('\n')
  const probes = lines.map((l) => l.split('\t')).filter(([verdict]) => verdict === 'allowed' || verdict === 'denied')
  const denied = probes.filter(([verdict]) => verdict === 'denied')
  if (s.code === 0 && probes.length && !denied.length) return undefined
  const commands = probes.length
    ? probes.map(([, line]) => line)
    : sudoCommands(config.nginx.configPath, LIMITS.canaryLogPath(config.app), LIMITS.switchBackFlagPath(config.app))
  const said = [...new Set(denied.map(([, , why]) => why).filter(Boolean))]
  const password = said.some((w) => /password is required/i.test(w))
  return (
    `sudo: nginx-rollout runs nginx's privileged commands on ${where} through sudo -n as ${user || 'the SSH user'} (${config.nginx.sudo === 'yes' ? 'input sudo: true' : 'not root, input sudo: auto'}), ` +
    `and sudo does not allow ${denied.length ? denied.map(([, line]) => `\`${line}\``).join(', ') : 'them'}${said.length ? ` (sudo said: ${said.join('; ')})` : ''}. Nothing was changed. ` +
    `Allow exactly these commands, e.g. in /etc/sudoers.d/nginx-rollout (edit it with visudo -f):\n` +
    `${user || 'deploy'} ALL=(root) NOPASSWD: ${commands.map(sudoersCommand).join(', ')}` +
    (password
      ? `\n(sudo asked for a password: the lines need NOPASSWD; when the user has other sudo rules that need one, sudo -l asks for it too: add \`Defaults:${user || 'deploy'} listpw=never\`)`
      : '')
  )
}

function parseManaged(config: Config, s: Section | undefined, where: string, problems: string[]): ManagedFile {
  const path = config.nginx.configPath
  const out = text(s?.out)
  const nl = out.indexOf('\n')
  const kind = (nl < 0 ? out : out.slice(0, nl)).trim()
  const body = nl < 0 ? '' : out.slice(nl + 1)
  if (!s || s.code !== 0 || kind === '') {
    // Not "no file": a file that exists but cannot be read must never be replaced as if it were absent.
    problems.push(
      `${path} on ${where} cannot be read (${text(s?.err).trim() || 'no answer'}): nothing is changed while its content is unknown`,
    )
    return { kind: 'unknown' }
  }
  if (kind === 'absent') return { kind: 'absent' }
  if (kind === 'symlink' || kind === 'not-a-file') {
    problems.push(
      `${path} on ${where} is a ${kind === 'symlink' ? 'symbolic link' : 'directory or special file'} the action did not write: it never replaces it. Move it away, or set nginx-config-path to another file`,
    )
    return { kind: 'unknown' }
  }
  const owner = ownershipOf(body, config.app)
  switch (owner.kind) {
    case 'ours':
      return { kind: 'ours', text: body, configId: configIdOf(body) }
    case 'edited':
      problems.push(
        `${path} on ${where} was edited by hand since nginx-rollout wrote it (its content no longer matches the hash in its first line): ` +
          'the action never overwrites what a user wrote. Move your changes into a template (input nginx-template) and delete the file, or put the last deployed version back',
      )
      return { kind: 'unknown' }
    case 'other-app':
      problems.push(
        `${path} on ${where} belongs to app ${owner.app}: give each app its own file (nginx-config-path) and upstream (upstream-name)`,
      )
      return { kind: 'unknown' }
    case 'foreign':
      problems.push(
        `${path} on ${where} exists and was not written by nginx-rollout: the action never overwrites a file it did not write. ` +
          'Move it away (its server blocks may move to a template: input nginx-template), or set nginx-config-path to a new file',
      )
      return { kind: 'unknown' }
  }
}

/**
 * The container the action creates when none exists. With a loopback upstream address the replicas are
 * reachable only from the host's own network namespace, so the container shares it (the replicas stay
 * published on loopback only).
 */
export function createNginxContainer(config: Config, upstreamAddress: string): Command {
  const n = config.nginx
  const listen = parseListen(n.listen)
  const hostNetwork = config.network === 'host' || (config.network === '' && isLoopback(upstreamAddress))
  const network = hostNetwork
    ? ['--network', 'host']
    : [
        ...(config.network ? ['--network', config.network] : []),
        '--publish',
        listen?.address ? `${hostPort(listen.address, listen.port)}:${listen.port}` : `${listen?.port}:${listen?.port}`,
      ]
  return command(
    'docker',
    'create',
    '--name',
    n.container,
    '--label',
    'nginx-rollout.role=nginx',
    '--restart',
    'unless-stopped',
    ...network,
    n.image,
  )
}

/** The address the config-id probe reaches nginx at, from the nginx host's side. */
export function listenProbeTarget(listen: string): { host: string; port: number } {
  const l = parseListen(listen)
  if (!l) throw new Error(`unparsable listen '${listen}'`)
  const host = !l.address || l.address === '0.0.0.0' ? '127.0.0.1' : l.address === '::' ? '::1' : l.address
  return { host, port: l.port }
}

/** A Host header that the app's server block answers (its server_name may be a wildcard or '_'). */
export function probeHostHeader(serverName: string, listenHost: string): string {
  const first = serverName.split(/\s+/)[0] ?? ''
  if (first === '_' || first === '') return listenHost
  if (first.startsWith('*.')) return `nginx-rollout${first.slice(1)}`
  if (first.startsWith('.')) return first.slice(1)
  if (first.endsWith('.*')) return `${first.slice(0, -2)}.com`
  return first
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The live nginx of a run, and the only code that changes it. */
export class Nginx {
  private readonly place: NginxPlace
  /** The managed file's text live now (undefined: none). */
  private live: string | undefined
  /** The config ids of the files this run read or installed, by text: a restored file is verified by its id. */
  private readonly ids = new Map<string, string | undefined>()
  /** The change under way: changes run one after another, each from the file the one before left. */
  private changing: Promise<unknown> = Promise.resolve()
  /** The session held for this run's changes while it judges a new version (see holdSession). */
  private session: NginxSession | undefined
  /** The file a switch back puts back: a change to it sends requests back first (the switch-back flag). */
  private switchBackText: string | undefined
  /** nginx's record followed before a judgement reads it (prepareJudging), until one does. */
  private unread: RecordFollow | undefined

  private readonly config: Config

  constructor(
    private readonly remote: Remote,
    config: Config,
    private current: NginxState,
    /** The run's hold on the app's deploy lock: an nginx change checks it on the host first. */
    private readonly fence: { readonly lockDir: string; readonly token: string },
  ) {
    this.config = withNginxMode(config, current)
    this.place = nginxPlace(this.config)
    this.adopt(current.managed)
  }

  private adopt(managed: ManagedFile): void {
    this.live = managed.kind === 'ours' ? managed.text : undefined
    if (managed.kind === 'ours') this.ids.set(managed.text, managed.configId)
  }

  get state(): NginxState {
    return this.current
  }

  /** The managed file's text live now. */
  get liveText(): string | undefined {
    return this.live
  }

  get where(): string {
    return describeNginx(this.config, this.remote.name)
  }

  private get lockFile(): string {
    return `${LIMITS.stateDir}/nginx-${this.config.nginx.mode === 'container' ? this.config.nginx.container : 'host'}.lock`
  }

  /** Reads nginx again (after the action started or created its container). */
  private async reread(): Promise<NginxState> {
    const r = await run(this.remote, readNginxCommand(this.config), `reading ${this.where}`)
    this.current = parseNginx(this.config, parseSections(r.raw), this.remote.name)
    if (this.current.problems.length) throw new NginxError(this.current.problems.join('\n'))
    this.adopt(this.current.managed)
    return this.current
  }

  /**
   * A container that is stopped is started with its own configuration, one that does not exist is created
   * from nginx-image; then nginx is read again and checked like any other before the action's file goes in.
   */
  private async ensureRunning(upstreamAddress: string): Promise<string | undefined> {
    if (this.config.nginx.mode !== 'container' || this.current.running) return undefined
    const n = this.config.nginx
    const created = !this.current.exists
    if (created) {
      await run(
        this.remote,
        docker.ensureImage(n.image, this.config.pullTimeoutSeconds),
        `getting the nginx image ${n.image}`,
      )
      await run(
        this.remote,
        createNginxContainer(this.config, upstreamAddress),
        `creating the nginx container ${n.container}`,
      )
      await run(this.remote, setAsideImageDefaultSite(n.container), "setting the image's default site aside")
    }
    const started = await this.remote.exec(command('docker', 'start', '--', n.container))
    if (started.code !== 0)
      throw failure(
        this.remote,
        command('docker', 'start', '--', n.container),
        `starting the nginx container ${n.container}`,
        started,
      )
    // nginx's master is up a moment after docker start returns.
    const deadline = Date.now() + LIMITS.reloadVerifyMs
    for (;;) {
      const r = await run(this.remote, readNginxCommand(this.config), `reading ${this.where}`)
      this.current = parseNginx(this.config, parseSections(r.raw), this.remote.name)
      if (this.current.masterPid !== undefined || Date.now() > deadline) break
      await sleep(100)
    }
    await this.reread()
    return created
      ? `created the nginx container ${n.container} from ${n.image}`
      : `started the nginx container ${n.container}`
  }

  /** Starts or creates the nginx container when it is not running (in turn with changes); says which it did. */
  boot(upstreamAddress: string): Promise<string | undefined> {
    const booted = this.changing.then(() => this.ensureRunning(upstreamAddress))
    this.changing = booted.catch(() => undefined)
    return booted
  }

  /**
   * Puts `next` in place of the managed file (undefined removes it): under the nginx lock, nginx -t with the
   * whole configuration, reload, and a check that nginx took it (new workers; in site scope, the config id
   * answered on the listen port, `configId` as the renderer gave it, or as read for a file put back). On any
   * failure the previous file is back and the error quotes nginx.
   */
  apply(next: string | undefined, configId: string | undefined, upstreamAddress: string): Promise<string> {
    const change = this.changing.then(() => this.change(next, configId, upstreamAddress))
    this.changing = change.catch(() => undefined)
    return change
  }

  /** Server names whose conflicts fail a change (site scope). */
  private get conflictNames(): string[] {
    const n = this.config.nginx
    return n.scope === 'site' ? n.serverName.split(/\s+/).filter((s) => s !== '_') : []
  }

  /**
   * Opens, where nginx runs, the session this run's changes go to from now on (see SESSION in scripts.ts):
   * no change then starts a process there, so a route costs less and a switch back after a failing verdict
   * starts none before nginx has the file. Called once a new version is judged, with the file a switch back
   * puts back; again at each judged route (a no-op while it lasts). One SSH session is held for it until
   * releaseHeld. While it is not ready, or once it ended, changes run as commands of their own.
   */
  holdSession(switchBack: string | undefined): void {
    this.switchBackText = switchBack
    const master = this.current.masterPid
    // Held once per nginx master; again after one that ended (a deadline, the connection).
    if (master === undefined || (this.session?.master === master && !this.session.ended)) return
    void this.session?.close()
    const n = this.config.nginx
    const c = withTimeout(
      nginxSession(
        this.fence,
        this.lockFile,
        LIMITS.nginxLockSeconds,
        this.place,
        n.configPath,
        master,
        this.conflictNames,
        this.switchFlag,
      ),
      LIMITS.followMaxSeconds,
    )
    this.session = new NginxSession(this.remote, c, master)
  }

  /**
   * What a run that will judge its new version can start as soon as it knows, before its first step: the
   * session for its nginx changes (holdSession) and the follow of nginx's record (emptied). The reload that
   * turns the record on then waits for neither: each takes a command's start where nginx runs (0.25-0.4 s
   * under the benchmark's load, nginx in a container), and the old version's baseline counts from that
   * reload. Nothing changes. A stopped nginx has neither: the record's step starts both once it booted it.
   */
  prepareJudging(switchBack: string | undefined): void {
    if (this.current.masterPid === undefined) return
    this.holdSession(switchBack)
    this.unread ??= this.followRecord()
  }

  /** Ends the held session and a follow of the record no judgement read, if any: nothing changes. */
  async releaseHeld(): Promise<void> {
    const session = this.session
    const unread = this.unread
    this.session = undefined
    this.unread = undefined
    await Promise.all([session?.close(), unread?.stop()])
  }

  /**
   * The switch-back flag's path once nginx was read (the read stops a run whose sudo lacks its two lines),
   * else ''. Every change passes it: the held session creates it for a switch back, any change removes it once
   * nginx reloaded.
   */
  private get switchFlag(): string {
    return this.current.facts.switchBack ? LIMITS.switchBackFlagPath(this.config.app) : ''
  }

  /**
   * `next` through the held session, if there is one for this master and it is ready (waiting for it to start,
   * at most as long as a command of its own would take): the result as an exec's, with how long after the
   * word requests went back for a switch back; undefined when there is none, or it ended before it answered
   * (what it did is then unknown: the change as a command of its own then says, by the file's hash).
   */
  private async changeInSession(
    next: string,
    expected: string,
    master: number,
  ): Promise<{ result: ExecResult; switchedMs?: number } | undefined> {
    const session = this.session
    if (!session || session.master !== master || !(await session.readyWithin(LIMITS.sessionReadyMs))) return undefined
    const switchBack = next === this.switchBackText
    // An ended session stays until the next judged route holds a new one (holdSession).
    const done = await session.change(expected, next, switchBack, LIMITS.commandTimeoutSeconds * 1000)
    if (!done) return undefined
    const { code, out, err } = done.section
    return {
      result: { code, stdout: out.toString('utf8'), stderr: err.toString('utf8'), raw: out },
      ...(done.switchedMs !== undefined ? { switchedMs: done.switchedMs } : {}),
    }
  }

  private async change(next: string | undefined, configId: string | undefined, upstreamAddress: string) {
    const booted = await this.ensureRunning(upstreamAddress)
    if (next === this.live) return booted ?? 'no change'
    const master = this.current.masterPid
    if (master === undefined) throw new NginxError(`no nginx master process to reload on ${this.remote.name}`)
    const n = this.config.nginx
    const expected = this.live === undefined ? 'absent' : sha256(this.live)
    const locked = nginxLocked(
      this.fence,
      this.lockFile,
      LIMITS.nginxLockSeconds,
      applyManagedFile(
        this.place,
        n.configPath,
        expected,
        master,
        next === undefined ? 'remove' : 'write',
        this.conflictNames,
        this.switchFlag,
      ),
    )
    const c = next === undefined ? locked : withStdin(locked, next, `the new ${n.configPath}`)
    const held = next !== undefined ? await this.changeInSession(next, expected, master) : undefined
    const r = held?.result ?? (await this.remote.exec(c))
    if (r.code !== 0) {
      const what = APPLY_FAILURES[r.code]
      const said = (r.stderr || r.stdout).trim()
      if (what) throw new NginxError(`${what}${said ? `. nginx said:\n${said}` : ''}`)
      throw failure(this.remote, c, `changing ${n.configPath} in ${this.where}`, r)
    }
    this.live = next
    const id = next === undefined ? undefined : (configId ?? this.ids.get(next))
    if (next !== undefined) this.ids.set(next, id)
    const verified = n.scope === 'site' && id ? await this.verifyServing(id) : undefined
    if (verified === false)
      throw new NginxError(
        `nginx reloaded, but ${n.listen} does not answer config ${id} for ${n.serverName} within ${LIMITS.reloadVerifyMs / 1000}s (another server block may take its requests)`,
      )
    const serves =
      next === undefined
        ? `removed ${n.configPath}, nginx reloaded`
        : verified
          ? `nginx serves config ${id}`
          : 'nginx reloaded with the new file'
    // The switch back's first effect, said apart: requests went back before the reload.
    const back =
      held?.switchedMs !== undefined
        ? `requests went to the previous replicas ${(held.switchedMs / 1000).toFixed(2)}s after the word, then `
        : ''
    const detail = back + serves
    return booted ? `${booted}; ${detail}` : detail
  }

  /** Asks nginx, on the listen port and as the app's server name, for the config id it serves. */
  private async verifyServing(configId: string): Promise<boolean> {
    const target = listenProbeTarget(this.config.nginx.listen)
    const headers = { Host: probeHostHeader(this.config.nginx.serverName, target.host), [CONFIG_ID_HEADER]: configId }
    const deadline = Date.now() + LIMITS.reloadVerifyMs
    while (Date.now() < deadline) {
      const r = await this.remote.httpGet(
        target.host,
        target.port,
        LIMITS.configIdPath(this.config.app),
        LIMITS.probeTimeoutMs,
        headers,
      )
      if (r.status === 200 && r.body?.trim() === configId) return true
      await sleep(10)
    }
    return false
  }

  /**
   * Follows the app's traffic log from empty (the follow prepareJudging started, if there is one): every line
   * nginx writes from then on goes to `onData`, until the returned Following is stopped. Settles once the log
   * is empty and followed, so that a reload turning the record on after it loses nothing.
   */
  followTrafficLog(onData: (chunk: Buffer) => void): Promise<Following> {
    const follow = this.unread ?? this.followRecord()
    this.unread = undefined
    return follow.read(onData, LIMITS.followReadyMs, this.remote.name)
  }

  private followRecord(): RecordFollow {
    const path = LIMITS.canaryLogPath(this.config.app)
    const c = followTrafficLog(
      this.place,
      path,
      LIMITS.trafficLogMaxBytes,
      LIMITS.followEveryMs,
      LIMITS.followMaxSeconds,
    )
    return new RecordFollow(this.remote, c)
  }

  /** The requests nginx is still waiting on from `servers`, as the nginx host's TCP table shows them. */
  async openRequests(servers: readonly string[]): Promise<OpenRequest[]> {
    if (!servers.length) return []
    const r = await run(this.remote, openConnections(servers), `reading the open connections on ${this.remote.name}`)
    return parseOpenRequests(r.stdout)
  }

  /** nginx's last log lines, for the summary when a change failed. */
  async errorLog(lines: number): Promise<string> {
    const r = await this.remote.exec(nginxErrorLog(this.place, this.config.nginx.container, lines))
    return (r.stdout + r.stderr).trim()
  }
}
