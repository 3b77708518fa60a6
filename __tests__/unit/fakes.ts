// Shared fakes for the plan, fleet, executor and lock tests: containers and host state as a read would
// produce them, a Remote that answers by rules, an nginx host that serves the config id it was given, a
// fleet of those, and a lock that can be lost on demand.
import type { Config } from '../../src/config.js'
import { render, type Command } from '../../src/commands/shell.js'
import type { CanaryState, HostState, ManagedContainer } from '../../src/host/state.js'
import { hostPort, type Replica } from '../../src/model.js'
import type { NginxState } from '../../src/nginx/nginx.js'
import { RECORD_FOLLOWED } from '../../src/nginx/scripts.js'
import { CONFIG_ID_HEADER, configIdOf, renderManagedFile } from '../../src/nginx/template.js'
import type { Routes } from '../../src/plan/common.js'
import type { Fleet } from '../../src/remote/fleet.js'
import { LockLostError, type HeldLock, type HostFence, type LockClaim } from '../../src/remote/lock.js'
import type { ExecOptions, ExecResult, FollowedCommand, HttpResult, Remote } from '../../src/remote/ssh.js'

/** Inputs for three app hosts a, b, c (upstream addresses 10.0.0.1-3) behind nginx on lb. */
export const THREE_HOSTS = {
  host: '',
  hosts: 'a:22 10.0.0.1\nb:22 10.0.0.2\nc:22 10.0.0.3',
  'nginx-host': 'lb:22',
  // One key for all four in these tests: a fingerprint is bound to the hosts its line names.
  fingerprint: 'lb,a,b,c SHA256:qYyfMtF7kiLUyZGo4r7iQdVZSXo7CgYZmzg5L2nDLxo',
} as const

/** The single host of configFrom()'s default inputs. */
export const HOST = 'docker.example.com'

/** The upstream address nginx reaches each test host's replicas at. */
export const ADDRESS: Readonly<Record<string, string>> = {
  [HOST]: '127.0.0.1',
  a: '10.0.0.1',
  b: '10.0.0.2',
  c: '10.0.0.3',
}

/** A container id as docker prints it (64 hex digits), distinct per host and port. */
export const idOf = (host: string, port: number): string =>
  `${Buffer.from(host).toString('hex')}${port.toString(16)}`.padEnd(64, '0').slice(0, 64)

/** The id a fake `docker create` prints for a container it created by this name. */
export const startedId = (name: string): string => `e${Buffer.from(name).toString('hex')}`.padEnd(64, '0').slice(0, 64)

/** A container of the app as a host reports it: running, on the single test host unless `host` says otherwise. */
export function container(port: number, image = 'shop:v1', over: Partial<ManagedContainer> = {}): ManagedContainer {
  const host = over.host ?? HOST
  const app = over.app ?? 'shop'
  return {
    id: idOf(host, port),
    host,
    address: ADDRESS[host] ?? host,
    name: `${app}-${port}`,
    port,
    image,
    app,
    running: true,
    ...over,
  }
}

/** The replica (no id, app or state) of a container. */
export const replicaOf = ({ host, address, name, port, image, color }: ManagedContainer): Replica => ({
  host,
  address,
  name,
  port,
  image,
  ...(color ? { color } : {}),
})

/** A replica on a host, as plans build them. */
export const replica = (port: number, image = 'shop:v2', host = HOST, color?: string): Replica =>
  replicaOf(container(port, image, { host, ...(color ? { color } : {}) }))

/** The routes a managed file holds that routes to these containers (weight 10 each). */
export const routesTo = (...cs: ReadonlyArray<Pick<Replica, 'address' | 'port'>>): Map<string, number | undefined> =>
  new Map(cs.map((c) => [hostPort(c.address, c.port), 10]))

/** What a read of the hosts returns: nginx running with the app's file routing `routes` (undefined: no file yet). */
export function hostState(
  containers: readonly ManagedContainer[],
  routes: Routes,
  extra: Partial<HostState> = {},
): HostState {
  const nginx: NginxState = {
    exists: true,
    running: true,
    masterPid: 1,
    managed: routes === undefined ? { kind: 'absent' } : { kind: 'ours', text: '# the live file\n' },
    routes: routes ?? new Map(),
    problems: [],
    facts: { keepaliveMinTimeout: false },
  }
  return { containers, nginx, history: [], warnings: [], retireReports: [], ...extra }
}

/** A canary left paused at 10% by pull request #7 of acme/shop. */
export const pausedCanary = (
  replicas: ReadonlyArray<Pick<Replica, 'host' | 'name'>>,
  over: Partial<CanaryState> = {},
): CanaryState => ({
  image: 'shop:v2',
  stableImage: 'shop:v1',
  weight: 10,
  remainingSteps: [50, 100],
  replicas: replicas.map(({ host, name }) => ({ host, name })),
  at: '2026-11-25T10:00:00.000Z',
  pullRequest: { repo: 'acme/shop', number: 7 },
  ...over,
})

type Answer = Partial<ExecResult> | Promise<Partial<ExecResult>>
/** A rule: the first whose pattern matches the rendered command answers it. */
export type Rule = readonly [RegExp, Answer | ((c: Command, text: string) => Answer)]

/** Docker as a healthy host answers it: replicas run, docker create prints an id, drains end idle at once. */
export const HEALTHY_DOCKER: readonly Rule[] = [
  [/^docker inspect --format '\{\{\.State\.Status\}\}/, { stdout: 'running\tnone\t0\n' }],
  [/ docker create /, (c) => ({ stdout: `${startedId(c.argv[c.argv.indexOf('--name') + 1])}\n` })],
  [/max=\$1; min=\$2; poll=\$3/, { stdout: 'idle 200\n' }],
]

export interface Probe {
  readonly host: string
  readonly port: number
  readonly path: string
  /** The config id a probe of the config-id location says it expects (CONFIG_ID_HEADER). */
  readonly asks?: string
}

/** A host that answers commands by rules (code 0 and no output when none matches) and records everything. */
export class FakeRemote implements Remote {
  readonly stats = { connections: 1, commands: 0, probes: 0 }
  readonly commands: Command[] = []
  /** The options each command was run with. */
  readonly options: Array<ExecOptions | undefined> = []
  readonly probes: Probe[] = []
  rules: Rule[]

  constructor(
    readonly name: string,
    rules: readonly Rule[] = HEALTHY_DOCKER,
    public probe: (p: Probe) => HttpResult | Promise<HttpResult> = () => ({ status: 200, ms: 1 }),
  ) {
    this.rules = [...rules]
  }

  /** The rendered command lines, in order. */
  get texts(): string[] {
    return this.commands.map(render)
  }

  /** The fence each fenced command carried, by its index in `commands` (see src/remote/lock.ts fenced). */
  readonly fences = new Map<number, HostFence>()

  async exec(sent: Command, options?: ExecOptions): Promise<ExecResult> {
    this.stats.commands++
    // A fenced command is recorded as the command it runs, its fence beside it: the host runs it as that.
    const { fence, inner: c } = unfenced(sent)
    if (fence) this.fences.set(this.commands.length, fence)
    this.commands.push(c)
    this.options.push(options)
    const text = render(c)
    const rule = this.rules.find(([re]) => re.test(text))
    const answer = typeof rule?.[1] === 'function' ? rule[1](c, text) : rule?.[1]
    const r = { code: 0, stdout: '', stderr: '', ...(await answer) }
    return { ...r, raw: r.raw ?? Buffer.from(r.stdout) }
  }

  /** Commands followed (nginx's record of requests), and what each was given to report its output to. */
  readonly followed: Array<{
    command: Command
    onData: (chunk: Buffer) => void
    stopped: boolean
    /** Ends the followed command as the host would (exit code, standard error). */
    end: (code: number, stderr: string) => void
    /** The words a held nginx session was given ('switch', 'go <hash of the file live then>'), in order. */
    words: string[]
  }> = []

  /** What a followed command prints once it runs (nginx's record of requests, for the judgement). */
  followText = ''
  /** When set, a follow of nginx's record says it emptied the record only once this settles. */
  recordEmptied: Promise<void> | undefined

  async follow(command: Command, onData: (chunk: Buffer) => void): Promise<FollowedCommand> {
    this.stats.commands++
    let end: (code: number, stderr: string) => void = () => undefined
    const ended = new Promise<{ code: number | null; stderr: string }>((resolve) => {
      end = (code, stderr) => resolve({ code, stderr })
    })
    const f: (typeof this.followed)[number] = { command, onData, stopped: false, end, words: [] }
    this.followed.push(f)
    const session = HELD_SESSION.test(render(command))
    // A follow of nginx's record says first that it emptied the record (RECORD_FOLLOWED), as the host's does;
    // what nginx writes comes after.
    const text = this.followText
    const said = () => text && setTimeout(() => onData(Buffer.from(text)), 0)
    if (session) said()
    else
      void (this.recordEmptied ?? Promise.resolve()).then(() =>
        setTimeout(() => {
          onData(Buffer.from(`${RECORD_FOLLOWED}\n`))
          said()
        }, 0),
      )
    const write = session ? this.heldSession(f) : () => undefined
    return { stop: async () => void ((f.stopped = true), end(0, '')), ended, write }
  }

  /**
   * A held nginx session as the host runs it (see SESSION in src/nginx/scripts.ts): ready at once; each 'go'
   * runs the session's apply script with its file, as a command of its own would run here; 'switch' answers.
   */
  private heldSession(f: (typeof this.followed)[number]): (input: string) => void {
    const section = (name: string, code: number, out = '', err = '') =>
      f.onData(
        Buffer.from(
          `\n@@nginx-rollout ${name} ${code} ${Buffer.byteLength(out)} ${Buffer.byteLength(err)}\n${out}${err}`,
        ),
      )
    void Promise.resolve().then(() => section('ready', 0))
    let pending = ''
    let working = Promise.resolve()
    return (input: string) => {
      pending += input
      for (;;) {
        const line = /^(switch|go (\S+) (\d+))\n/.exec(pending)
        if (!line) return
        if (line[1] === 'switch') {
          f.words.push('switch')
          pending = pending.slice(line[0].length)
          working = working.then(() => section('switch', 0))
          continue
        }
        const text = pending.slice(line[0].length, line[0].length + Number(line[3]))
        if (text.length < Number(line[3])) return
        f.words.push(`go ${line[2]}`)
        pending = pending.slice(line[0].length + text.length)
        working = working.then(async () => {
          const r = await this.exec({ ...f.command, stdin: text })
          section('change', r.code, r.stdout, r.stderr)
        })
      }
    }
  }

  /** Writes `text` to every followed command still running, as the host would send its output. */
  emit(text: string): void {
    for (const f of this.followed) if (!f.stopped) f.onData(Buffer.from(text))
  }

  async httpGet(
    host: string,
    port: number,
    path: string,
    _ms?: number,
    headers?: Record<string, string>,
  ): Promise<HttpResult> {
    this.stats.probes++
    const p = { host, port, path, ...(headers?.[CONFIG_ID_HEADER] ? { asks: headers[CONFIG_ID_HEADER] } : {}) }
    this.probes.push(p)
    return this.probe(p)
  }

  async close(): Promise<void> {}
}

/** The apply script of nginx.apply (nginx -t, reload, verify), as rendered (a held session holds it too). */
export const APPLY_SCRIPT = /nginx-rollout-new/
/** The session held for nginx's changes while a version is judged (Nginx.holdSession), as rendered. */
export const HELD_SESSION = /mkfifo "\$t\/in" "\$t\/done"/

/**
 * The host nginx runs on: the apply script installs the file it is given (exit `applyCode`, 0 by default),
 * and the config-id location then answers the installed file's id, as nginx would after its reload. Every
 * other probe goes to `replicas` (healthy by default).
 */
export class FakeNginxHost extends FakeRemote {
  /** The config id nginx serves now. */
  served = ''
  applyCode = 0
  applyStderr = ''
  readonly installed: Array<string | undefined> = []

  constructor(
    name: string,
    rules: readonly Rule[] = [],
    replicas: (p: Probe) => HttpResult | Promise<HttpResult> = () => ({ status: 200, ms: 1 }),
  ) {
    super(name, [
      [
        APPLY_SCRIPT,
        (c: Command) => {
          if (this.applyCode !== 0) return { code: this.applyCode, stderr: this.applyStderr }
          this.installed.push(c.stdin)
          this.served = c.stdin === undefined ? '' : (configIdOf(c.stdin) ?? '')
          return {}
        },
      ],
      ...rules,
      ...HEALTHY_DOCKER,
    ])
    // As the config-id location does: it answers only a probe that names the id nginx serves.
    this.probe = (p) =>
      p.path.startsWith('/.nginx-rollout/')
        ? p.asks === this.served && this.served
          ? { status: 200, body: `${this.served}\n`, ms: 1 }
          : { status: 404, ms: 1 }
        : replicas(p)
  }

  /** The apply commands sent. */
  get applies(): Command[] {
    return this.commands.filter((c) => APPLY_SCRIPT.test(render(c)))
  }
}

/** nginx's state as read, serving exactly `servers` through the file the action rendered for them. */
export function nginxServing(config: Config, servers: readonly Replica[]): NginxState {
  const facts = { keepaliveMinTimeout: false }
  const text = servers.length ? renderManagedFile(config, servers, undefined, facts).text : undefined
  return {
    exists: true,
    running: true,
    masterPid: 1,
    managed: text === undefined ? { kind: 'absent' } : { kind: 'ours', text },
    routes: routesTo(...servers),
    problems: [],
    facts,
  }
}

/** The run's connections: nginx's host and one Remote per app host id (the same object may be both). */
export function fakeFleet(config: Config, nginx: Remote, apps: Readonly<Record<string, Remote>>): Fleet {
  return {
    nginx,
    appHosts: config.appHosts,
    app: (id) => {
      const r = apps[id]
      if (!r) throw new Error(`no connection to ${id}`)
      return r
    },
    stats: () => ({ connections: 1 + Object.keys(apps).length, commands: 0, probes: 0 }),
    close: async () => {},
  }
}

/** A fenced command's fence and the command it runs; a command that is not fenced, as it is. */
export function unfenced(c: Command): { fence?: HostFence; inner: Command } {
  const [sh, flag, text, , file, token, ...inner] = c.argv
  if (
    sh !== 'sh' ||
    flag !== '-c' ||
    !/nothing was changed on this host' >&2\n  exit 75\n}\nshift 2\nexec "\$@"$/.test(text)
  )
    return { inner: c }
  return { fence: { file, token }, inner: { ...c, argv: inner } }
}

/** The claim of the run the fake lock belongs to. */
export const CLAIM: LockClaim = {
  app: 'shop',
  dir: '.nginx-rollout/shop/lock',
  token: 'token-of-this-run',
  owner: 'test',
}

/** A lock that is held until `lose()` is called. */
export class FakeLock {
  readonly claim = CLAIM
  private why: string | undefined
  checks = 0
  lose(why = 'another run took it over'): void {
    this.why = why
  }
  assertHeld(): void {
    this.checks++
    if (this.why)
      throw new LockLostError(
        `the deploy lock of shop is no longer this run's (${this.why}); stopped before changing anything more`,
      )
  }
  get asHeldLock(): HeldLock {
    return this as unknown as HeldLock
  }
}

/** A promise and its resolve, to hold a fake command until the test lets it finish. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** The Logger the executor logs to, keeping the lines. */
export function recordingLogger(): {
  info: (m: string) => void
  warning: (m: string) => void
  debug: (m: string) => void
  lines: string[]
} {
  const lines: string[] = []
  return { info: (m) => lines.push(m), warning: (m) => lines.push(`warning: ${m}`), debug: () => {}, lines }
}
