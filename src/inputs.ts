// The only reader of inputs. Every input is checked here, before any connection is made; all problems are
// reported together, each naming the input, what was expected and what arrived (never a secret's text).
import { realpathSync, readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import path from 'node:path'
import { ShellWordsError, splitShellWords } from './commands/shell.js'
import {
  DEFAULT_LATENCY,
  DEFAULTS,
  derivedDefaults,
  LATENCY_OFF,
  RUNNER_DEFAULTS,
  type AppHost,
  type CanaryMatch,
  type Config,
  type EnvVar,
  type HostKeyPolicy,
  type LbMethod,
  type Operation,
  type SshLogin,
  type SshTarget,
  type StatusRange,
} from './config.js'
import { isLoopback, parseListen, sshName } from './model.js'
import { IMAGE, NAME } from './rules.js'
import { boundName, expectedFingerprints } from './remote/hostkey.js'
import {
  fingerprintLineHint,
  imageCaseProblem,
  portTwiceProblem,
  privateKeyProblem,
  sshAddressHint,
} from './inputs/hints.js'

export type InputName = keyof typeof DEFAULTS | InputWithoutDefault
type InputWithoutDefault =
  | 'host'
  | 'hosts'
  | 'nginx-host'
  | 'username'
  | 'key'
  | 'passphrase'
  | 'password'
  | 'fingerprint'
  | 'known-hosts'
  | 'proxy-host'
  | 'proxy-username'
  | 'proxy-key'
  | 'proxy-passphrase'
  | 'proxy-fingerprint'
  | 'proxy-known-hosts'
  | 'app'
  | 'image'
  | 'env'
  | 'run-args'
  | 'registry'
  | 'registry-username'
  | 'registry-password'
  | 'nginx-config-path'
  | 'nginx-template'
  | 'upstream-name'
  | 'environment'
  | 'environment-url'
  | keyof typeof RUNNER_DEFAULTS

/** Inputs whose whole text is a secret: masked before any input is read, so no message can show them. */
export const SECRET_INPUTS = [
  'key',
  'passphrase',
  'password',
  'proxy-key',
  'proxy-passphrase',
  'registry-password',
  'github-token',
] as const satisfies readonly InputName[]

export interface InputSource {
  /** The raw input text ('' when unset). */
  get(name: InputName): string
  /** Reads a file of the workspace (for nginx-template); throws when it cannot or may not. */
  readWorkspaceFile(path: string): string
}

export class InputError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.length === 1 ? problems[0] : `${problems.length} inputs are invalid:\n- ${problems.join('\n- ')}`)
  }
}

const show = (v: string): string => (v.length > 80 ? `'${v.slice(0, 77)}...'` : `'${v}'`)

const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/
const SHA256 = 'SHA256:[A-Za-z0-9+/]{43}'
// `ssh-keygen -lf` prints 'bits SHA256:... column (TYPE)'; the column holds the key's host names (of a known_hosts
// line or ssh-keyscan's output) or its comment (of a .pub file).
const KEYGEN_LINE = new RegExp(`^\\d+\\s+(${SHA256})=?(?:\\s+(.*?))?(?:\\s*\\([A-Z0-9-]+\\))?$`)
const HOST_FINGERPRINT = new RegExp(`^(\\S+)\\s+(${SHA256})=?$`)
const BARE_FINGERPRINT = new RegExp(`^(${SHA256})=?$`)
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const HEALTH_PATH = /^\/[A-Za-z0-9\-._~/?=&%:+,;@!*()]*$/
// nginx server_name: a host name, optionally with a leading '*.' or '.', or a trailing '.*'; or '_' (no name).
const SERVER_NAME = /^(?:_|(?:\*\.|\.)?[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?:\.\*)?)$/
const HASH_KEY = /^[A-Za-z0-9_$.:/-]+$/
const NGINX_TIME = /^\d+(ms|s|m|h|d)?$/
const CONFIG_PATH = /^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/
const UPSTREAM_NAME = /^[A-Za-z0-9_]+$/
const TEMPLATE_PATH = /^[^\0]+$/

/** docker run options that nginx-rollout sets itself: a second value would break naming, routing or cleanup. */
const MANAGED_RUN_ARGS = [
  '--name',
  '--network',
  '--net',
  '-p',
  '--publish',
  '-P',
  '--publish-all',
  '--rm',
  '-d',
  '--detach',
  '-i',
  '-t',
  '--env-file',
]

/** The helpers every group reads its inputs with; every problem is kept, so all are reported together. */
class Reader {
  readonly problems: string[] = []

  constructor(private readonly source: InputSource) {}

  problem(msg: string): undefined {
    this.problems.push(msg)
    return undefined
  }

  /** The input's text, or its default. */
  raw(name: InputName): string {
    const v = this.source.get(name).trim()
    return v === '' && name in DEFAULTS ? DEFAULTS[name as keyof typeof DEFAULTS] : v
  }

  given(name: InputName): boolean {
    return this.source.get(name).trim() !== ''
  }

  required(name: InputName, what: string): string {
    const v = this.raw(name)
    if (v === '') this.problem(`${name}: required (${what})`)
    return v
  }

  matching(name: InputName, re: RegExp, expected: string, value = this.raw(name)): string {
    if (value !== '' && !re.test(value)) this.problem(`${name}: expected ${expected}, got ${show(value)}`)
    return value
  }

  int(name: InputName, min: number, max: number): number {
    const v = this.raw(name)
    if (/^\d+$/.test(v) && Number(v) >= min && Number(v) <= max) return Number(v)
    this.problem(`${name}: expected a whole number from ${min} to ${max}, got ${show(v)}`)
    return min
  }

  seconds(name: InputName, min: number, max: number): number {
    const v = this.raw(name).replace(/s$/, '')
    if (/^\d+(\.\d+)?$/.test(v) && Number(v) >= min && Number(v) <= max) return Number(v)
    const example = DEFAULTS[name as keyof typeof DEFAULTS] ?? min
    this.problem(`${name}: expected seconds from ${min} to ${max} (e.g. '${example}'), got ${show(this.raw(name))}`)
    return min
  }

  bool(name: InputName): boolean {
    const v = this.raw(name)
    if (/^(true|True|TRUE)$/.test(v)) return true
    if (/^(false|False|FALSE)$/.test(v)) return false
    this.problem(`${name}: expected true or false, got ${show(v)}`)
    return false
  }

  oneOf<T extends string>(name: InputName, allowed: readonly T[]): T {
    const v = this.raw(name)
    if (!allowed.includes(v as T)) this.problem(`${name}: expected one of ${allowed.join(', ')}, got ${show(v)}`)
    return v as T
  }

  privateKeyText(name: 'key' | 'proxy-key'): string | undefined {
    const v = this.raw(name) || undefined
    const problem = v && privateKeyProblem(name, v)
    if (problem) this.problem(problem)
    return v
  }

  /**
   * What the keys of `targets` are checked against (targets undefined: the hosts could not be read). A fingerprint
   * is bound to the hosts its line names; one naming no host is bound to the only target, and refused when there
   * are several: it would let any of them through with that key.
   */
  hostKeyPolicy(
    fingerprintInput: 'fingerprint' | 'proxy-fingerprint',
    knownHostsInput: 'known-hosts' | 'proxy-known-hosts',
    targets: readonly SshTarget[] | undefined,
    insecureSkip: boolean,
  ): { policy: HostKeyPolicy; unboundRefused: boolean } {
    const given = parseFingerprints(this.raw(fingerprintInput), (m) => this.problem(`${fingerprintInput}: ${m}`))
    const knownHosts = this.raw(knownHostsInput)
    if (knownHosts && !knownHosts.split('\n').some((l) => l.trim() && !l.trim().startsWith('#')))
      this.problem(`${knownHostsInput}: expected known_hosts lines (host keytype key)`)
    const names = new Map(targets?.map((t) => [boundName(t.host, t.port), sshName(t.host, t.port)]))
    const only = names.size === 1 ? [...names.keys()] : []
    const unbound = given.filter((f) => !f.hosts.length)
    const unboundRefused = unbound.length > 0 && names.size > 1
    if (unboundRefused)
      this.problem(
        `${fingerprintInput}: expected the host each fingerprint is for, as this run connects to ${names.size} hosts (${[...names.values()].join(', ')}), ` +
          `got ${unbound.map((f) => show(f.text)).join(', ')} naming none; give the lines as 'ssh-keyscan <host> | ssh-keygen -lf -' prints them (the host column binds each), or as 'host SHA256:...'`,
      )
    const fingerprints = given.flatMap((f) =>
      (f.hosts.length ? f.hosts : only).map((host) => ({ host, fingerprint: f.fingerprint })),
    )
    return { policy: { fingerprints: uniqueBindings(fingerprints), knownHosts, insecureSkip }, unboundRefused }
  }

  /**
   * Every target needs a fingerprint or known_hosts entry it can be accepted by, checked now (hashed known_hosts
   * entries included: the names they are matched with are known) so that all are reported together.
   */
  requireHostKeys(
    policy: HostKeyPolicy,
    targets: readonly SshTarget[],
    input: 'fingerprint' | 'proxy-fingerprint',
    alternatives: string,
  ): void {
    if (policy.insecureSkip) return
    const named = [...new Set(policy.fingerprints.map((f) => f.host))]
    for (const t of targets) {
      if (expectedFingerprints(policy, t.host, t.port).length) continue
      const what = input === 'proxy-fingerprint' ? `the bastion ${sshName(t.host, t.port)}` : sshName(t.host, t.port)
      const got = named.length ? `, got fingerprints for ${named.join(', ')} only` : ''
      this.problem(
        `${input}: expected a fingerprint of ${what}${got} (${alternatives}; or insecure-skip-host-key-check: true, not for production). ` +
          `Get it on a machine you trust: ssh-keyscan -p ${t.port} ${t.host} | ssh-keygen -lf -  (give the lines it prints, host column included)`,
      )
    }
  }
}

type Topology = Pick<Config, 'appHosts' | 'nginxHost'>

/** Where to connect: the hosts, who to log in as, and how each host proves it is the right one. */
function readConnection(r: Reader): { topology?: Topology; login: SshLogin } {
  const port = r.int('port', 1, 65535)
  const topology = readTopology(
    {
      host: r.raw('host'),
      hosts: r.raw('hosts'),
      nginxHost: r.raw('nginx-host'),
      upstreamHost: r.raw('upstream-host'),
      upstreamHostGiven: r.given('upstream-host'),
    },
    port,
    (m) => r.problem(m),
  )
  const single = topology?.appHosts.length === 1 && r.given('host') ? topology.appHosts[0].ssh : undefined
  const portTwice = single && r.given('port') && portTwiceProblem(r.raw('host'), single.port, port)
  if (portTwice) r.problem(portTwice)
  const username = r.required('username', 'the ssh user on the hosts')
  if (/\s/.test(username)) r.problem(`username: expected a user name without spaces, got ${show(username)}`)
  const privateKey = r.privateKeyText('key')
  const passphrase = r.raw('passphrase') || undefined
  const password = r.raw('password') || undefined
  if (!privateKey && !password)
    r.problem('key: required unless password is set (the ssh private key text, e.g. from secrets.DEPLOY_KEY)')
  const insecureSkip = r.bool('insecure-skip-host-key-check')
  // Each host is checked against its own fingerprints: every SSH target of the run, the nginx host included.
  const targets = topology && [topology.nginxHost, ...topology.appHosts.map((h) => h.ssh)]
  const { policy: hostKey, unboundRefused } = r.hostKeyPolicy('fingerprint', 'known-hosts', targets, insecureSkip)
  // Fingerprints refused for naming no host would be reported again for each host; the one message says it all.
  if (targets && !unboundRefused)
    r.requireHostKeys(hostKey, uniqueTargets(targets), 'fingerprint', 'or known-hosts lines naming it')
  return { topology, login: { username, privateKey, passphrase, password, hostKey } }
}

const PROXY_INPUTS = [
  'proxy-username',
  'proxy-key',
  'proxy-passphrase',
  'proxy-fingerprint',
  'proxy-known-hosts',
] as const

/** A bastion every SSH connection goes through: its own login, or the hosts' where it has none. */
function readBastion(r: Reader, hosts: SshLogin): Config['proxy'] {
  const proxyHostText = r.raw('proxy-host')
  if (!proxyHostText) {
    for (const name of PROXY_INPUTS)
      if (r.given(name))
        r.problem(`${name}: set proxy-host too (the bastion these settings are for), or leave ${name} empty`)
    return undefined
  }
  const target = parseSshAddress(proxyHostText, 22, (m) => r.problem(`proxy-host: ${m}`))
  const username = r.raw('proxy-username') || hosts.username
  if (/\s/.test(username)) r.problem(`proxy-username: expected a user name without spaces, got ${show(username)}`)
  const proxyKey = r.privateKeyText('proxy-key')
  if (!proxyKey && r.given('proxy-passphrase'))
    r.problem(
      'proxy-passphrase: set proxy-key too (the passphrase is for that key; without it the bastion uses key and passphrase)',
    )
  // The bastion has keys of its own: proxy-fingerprint (where a fingerprint naming no host is the bastion's) and
  // proxy-known-hosts, and the lines of fingerprint and known-hosts that name it. The hosts' keys are never
  // accepted from it, so a bastion answering with an app host's key is refused.
  const insecureSkip = hosts.hostKey.insecureSkip
  const { policy: own } = r.hostKeyPolicy('proxy-fingerprint', 'proxy-known-hosts', target && [target], insecureSkip)
  const name = target && boundName(target.host, target.port)
  const hostKey: HostKeyPolicy = {
    fingerprints: uniqueBindings([...own.fingerprints, ...hosts.hostKey.fingerprints.filter((f) => f.host === name)]),
    knownHosts: [own.knownHosts, hosts.hostKey.knownHosts].filter(Boolean).join('\n'),
    insecureSkip,
  }
  if (!target) return undefined
  r.requireHostKeys(
    hostKey,
    [target],
    'proxy-fingerprint',
    "or proxy-known-hosts, or a line of fingerprint or known-hosts naming it; the hosts' keys are never accepted from the bastion",
  )
  const login: SshLogin = {
    username,
    privateKey: proxyKey ?? hosts.privateKey,
    passphrase: proxyKey ? r.raw('proxy-passphrase') || undefined : hosts.passphrase,
    password: proxyKey ? undefined : hosts.password,
    hostKey,
  }
  return { target, login }
}

/** What to deploy and how to run it: the image, its replicas and ports, its environment, the registry. */
function readApp(r: Reader) {
  const operation = r.oneOf<Operation>('operation', [
    'deploy',
    'promote',
    'abort',
    'rollback',
    'status',
    'maintenance',
    'resume',
  ])
  const appName = r.required('app', 'the application name')
  const app = r.matching(
    'app',
    NAME,
    'a name of lowercase letters, digits, _ . - starting with a letter or digit',
    appName,
  )
  if (app.length > 48) r.problem(`app: expected at most 48 characters, got ${app.length}`)
  const imageText = operation === 'deploy' ? r.required('image', 'the image to deploy') : r.raw('image')
  const imageCase = IMAGE.test(imageText) ? undefined : imageCaseProblem('image', imageText, (v) => IMAGE.test(v))
  if (imageCase) r.problem(imageCase)
  const image = imageCase
    ? imageText
    : r.matching('image', IMAGE, 'a Docker image reference like ghcr.io/org/app:1.2.3', imageText)
  const strategy = r.oneOf('strategy', ['rolling', 'blue-green', 'canary'] as const)
  const replicas = r.int('replicas', 1, 100)
  const ports = parsePorts(r.raw('ports'), (m) => r.problem(m))
  if (ports.length && ports.length < replicas)
    r.problem(
      `ports: ${replicas} replicas need at least ${replicas} ports (and room for the old ones while they still run), got ${ports.length} in '${r.raw('ports')}'`,
    )
  const containerPort = r.int('container-port', 1, 65535)
  const network = r.raw('network')
  if (network !== '' && !CONTAINER_NAME.test(network))
    r.problem(`network: expected empty, 'host' or a Docker network name, got ${show(network)}`)
  const env = parseEnv(r.raw('env'), (m) => r.problem(m))
  const runArgs = parseRunArgs(r.raw('run-args'), (m) => r.problem(m))
  const pull = r.bool('pull')
  const pullTimeoutSeconds = r.int('pull-timeout', 1, 86400)
  const registry = readRegistry(r)
  return {
    operation,
    app,
    image,
    strategy,
    replicas,
    ports,
    containerPort,
    network,
    env,
    runArgs,
    pull,
    pullTimeoutSeconds,
    registry,
  }
}

function readRegistry(r: Reader): Config['registry'] {
  const server = r.raw('registry')
  if (server && !/^[A-Za-z0-9.-]+(:\d+)?$/.test(server))
    r.problem(`registry: expected a registry host like ghcr.io, got ${show(server)}`)
  const username = r.raw('registry-username')
  const password = r.raw('registry-password')
  if (Boolean(username) !== Boolean(password))
    r.problem('registry-username and registry-password: set both to log in to the registry, or neither')
  if (server && !username)
    r.problem('registry: set registry-username and registry-password too, or leave registry empty')
  return username ? { server, username, password } : undefined
}

function readHealth(r: Reader): Config['health'] {
  const path = r.matching('health-path', HEALTH_PATH, "an absolute URL path like '/healthz'")
  const status = parseStatusRanges(r.raw('health-status'), (m) => r.problem(m))
  const timeoutMs = r.seconds('health-timeout', 1, 3600) * 1000
  const intervalMs = r.seconds('health-interval', 0.05, 60) * 1000
  return { path, status, timeoutMs, intervalMs }
}

/** How traffic moves: batches, drains, stops. */
function readTraffic(r: Reader) {
  return {
    drainSeconds: r.seconds('drain-seconds', 0, 3600),
    verifySeconds: r.seconds('verify-seconds', 0, 3600),
    latencyThreshold: parseLatencyThreshold(r.raw('latency-threshold'), (m) => r.problem(m)),
    bakeSeconds: r.seconds('bake-seconds', 0, 86400),
    stopTimeoutSeconds: r.int('stop-timeout', 0, 3600),
    batchSize: r.int('batch-size', 1, 100),
    keepPrevious: r.bool('keep-previous'),
  }
}

function readCanary(r: Reader): Config['canary'] {
  const steps = parseCanarySteps(r.raw('canary-steps'), (m) => r.problem(m))
  const replicas = r.int('canary-replicas', 1, 100)
  const intervalSeconds = r.seconds('canary-interval', 1, 86400)
  const maxErrorRate = r.raw('canary-max-error-rate').replace(/%$/, '')
  if (!/^\d+(\.\d+)?$/.test(maxErrorRate) || Number(maxErrorRate) > 100)
    r.problem(
      `canary-max-error-rate: expected a percentage from 0 to 100 like '1' or '0.5', got ${show(r.raw('canary-max-error-rate'))}`,
    )
  const sticky = r.bool('canary-sticky')
  const match = parseCanaryMatch(r.raw('canary-match'), (m) => r.problem(m))
  if (steps.length === 1 && steps[0] === 0 && !match && !r.given('canary-match'))
    r.problem(
      "canary-steps: '0' is a preview that only requests matching canary-match reach; set canary-match too (e.g. 'header X-Preview=pr-7')",
    )
  return { steps, replicas, intervalSeconds, maxErrorRate: Number(maxErrorRate), sticky, ...(match ? { match } : {}) }
}

/** The nginx-template file's text from the workspace; undefined when none is given or it cannot be read (a problem). */
function readTemplate(r: Reader, source: InputSource, templatePath: string): string | undefined {
  if (!templatePath || !TEMPLATE_PATH.test(templatePath)) return undefined
  try {
    return source.readWorkspaceFile(templatePath)
  } catch (e) {
    r.problem(`nginx-template: cannot read ${show(templatePath)} in the workspace (${(e as Error).message})`)
    return undefined
  }
}

/**
 * What the server block the action writes answers on: listen and server-name. With nginx-scope upstream it
 * writes none, so neither may be given.
 */
function readServerBlock(r: Reader, scope: 'site' | 'upstream', upstreamName: string) {
  const listen = r.raw('listen')
  if (!parseListen(listen))
    r.problem(
      `listen: expected a port like '80' or address:port like '127.0.0.1:8080' or '[::1]:8080', got ${show(listen)}`,
    )
  const serverName = r.raw('server-name')
  if (!serverName.split(/\s+/).every((n) => SERVER_NAME.test(n)))
    r.problem(`server-name: expected host names separated by spaces, got ${show(serverName)}`)
  if (scope === 'upstream')
    for (const name of ['listen', 'server-name'] as const)
      if (r.given(name))
        r.problem(
          `${name}: nginx-scope upstream writes no server block (your own server blocks proxy_pass to upstream ${upstreamName}); leave ${name} empty`,
        )
  return { listen, serverName }
}

/** Which nginx, which file of it, and what goes in it. `app`: for the defaults derived from it. */
function readNginx(r: Reader, source: InputSource, app: string): Config['nginx'] {
  const mode = r.oneOf('nginx-mode', ['auto', 'container', 'host'] as const)
  const sudo = ({ auto: 'auto', true: 'yes', false: 'no' } as const)[
    r.oneOf('sudo', ['auto', 'true', 'false'] as const)
  ]
  const scope = r.oneOf('nginx-scope', ['site', 'upstream'] as const)
  const container = r.matching('nginx-container', CONTAINER_NAME, 'a Docker container name')
  const image = r.matching('nginx-image', IMAGE, 'a Docker image reference like nginx:stable')
  // Derived from app when not given (a bad app is reported once, as app).
  const configPath =
    r.matching('nginx-config-path', CONFIG_PATH, "an absolute file path like '/etc/nginx/conf.d/shop.conf'") ||
    derivedDefaults.configPath(app)
  const upstreamName =
    r.matching('upstream-name', UPSTREAM_NAME, 'an nginx upstream name of letters, digits and _') ||
    derivedDefaults.upstreamName(app)
  const templatePath = r.raw('nginx-template')
  const template = readTemplate(r, source, templatePath)
  const { listen, serverName } = readServerBlock(r, scope, upstreamName)
  return {
    mode,
    sudo,
    scope,
    container,
    image,
    configPath,
    upstreamName,
    template,
    templatePath: templatePath || undefined,
    listen,
    serverName,
    lbMethod: parseLbMethod(r.raw('lb-method'), (m) => r.problem(m)),
    weight: r.int('weight', 1, 1000),
    maxFails: r.int('max-fails', 0, 1000),
    failTimeout: r.matching('fail-timeout', NGINX_TIME, "an nginx time like '30s' or '1m'"),
  }
}

function readGitHub(r: Reader): Config['github'] {
  const token = r.raw('github-token')
  if (/\s/.test(token)) r.problem('github-token: expected a token without spaces or line breaks')
  const environment = r.raw('environment')
  if (environment.length > 255 || /[\x00-\x1f\x7f]/.test(environment))
    r.problem(
      `environment: expected a GitHub environment name of at most 255 characters on one line, got ${show(environment)}`,
    )
  const environmentUrl = r.raw('environment-url')
  if (environmentUrl && !isWebUrl(environmentUrl))
    r.problem(`environment-url: expected an http(s) URL like https://shop.example.com, got ${show(environmentUrl)}`)
  if (environmentUrl && !environment)
    r.problem('environment-url: set environment too (the URL belongs to the deployment recorded there)')
  return { token, environment, environmentUrl }
}

// Printable text nginx returns in a quoted string: no quote, backslash or $ (nginx would read a variable).
const MAINTENANCE_MESSAGE = /^[^"\\$\x00-\x1f\x7f]{1,200}$/

function readControl(r: Reader) {
  return {
    maintenanceMessage: r.matching(
      'maintenance-message',
      MAINTENANCE_MESSAGE,
      'one line of at most 200 characters without ", \\ or $',
    ),
    dryRun: r.bool('dry-run'),
    rollbackOnFailure: r.bool('rollback-on-failure'),
    lockTimeoutSeconds: r.seconds('lock-timeout', 0, 86400),
  }
}

/** Combinations that cannot work, whatever the hosts hold. */
function checkCombinations(r: Reader, app: ReturnType<typeof readApp>, nginx: Config['nginx']): void {
  const { network, ports, containerPort } = app
  if (network === 'host' && ports.includes(containerPort))
    r.problem(
      `container-port: with network: host replicas listen on the ports from 'ports'; container-port ${containerPort} inside that range would collide`,
    )
  if ((app.operation === 'maintenance' || app.operation === 'resume') && nginx.scope === 'upstream')
    r.problem(
      `operation: ${app.operation} answers requests in the server block the action writes; with nginx-scope upstream your own server block answers them (docs/canary.md shows a maintenance switch of your own)`,
    )
  const listenPort = parseListen(nginx.listen)?.port
  if (nginx.scope === 'site' && network === 'host' && listenPort !== undefined && ports.includes(listenPort))
    r.problem(`listen: port ${listenPort} is inside ports '${r.raw('ports')}', which replicas use`)
}

/** Every input, read by group and validated; throws one InputError listing every problem. */
export function readConfig(source: InputSource): Config {
  const r = new Reader(source)
  const { topology, login } = readConnection(r)
  const proxy = readBastion(r, login)
  const app = readApp(r)
  const health = readHealth(r)
  const traffic = readTraffic(r)
  const nginx = readNginx(r, source, app.app)
  // ip_hash and a hash keep a client on one server, so on one version, by their own key (a cookie-less client
  // too): a pin cookie would only split such a client's requests by the share again.
  const keepsClients = nginx.lbMethod.kind === 'ip_hash' || nginx.lbMethod.kind === 'hash'
  const read = readCanary(r)
  const canary = keepsClients ? { ...read, sticky: false } : read
  const github = readGitHub(r)
  const control = readControl(r)
  checkCombinations(r, app, nginx)
  if (r.problems.length || !topology) throw new InputError(r.problems)
  return { ...topology, login, proxy, ...app, health, ...traffic, canary, nginx, github, ...control }
}
/** The secret values of a read config, for redacting what hosts and apps send back. */
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

/**
 * The texts to mask before any input is read or any message printed: the secret inputs, and every env line
 * and value (env values are often secrets, and a mistyped line is still one).
 */
export function secretTexts(get: (name: InputName) => string): string[] {
  const texts: string[] = SECRET_INPUTS.map((name) => get(name).trim())
  for (const line of get('env').split('\n')) {
    const l = line.trim()
    if (!l || l.startsWith('#')) continue
    texts.push(l)
    for (const sep of ['=', ':']) if (l.includes(sep)) texts.push(l.slice(l.indexOf(sep) + 1).trim())
  }
  // A multi-line secret (a private key) is also masked line by line, as a log may show its lines apart.
  return [
    ...new Set(
      texts.flatMap((t) => [
        t,
        ...(t.includes('\n')
          ? t
              .split('\n')
              .map((l) => l.trim())
              .filter((l) => l.length >= 8 && !l.startsWith('-----'))
          : []),
      ]),
    ),
  ].filter((t) => t.length >= 3)
}

/** Reads nginx-template: its real path (symlinks followed) must stay inside the workspace, since its text is uploaded and printed. */
export function readWorkspaceFile(workspace: string, file: string): string {
  const root = realpathSync(workspace)
  const real = realpathSync(path.resolve(root, file))
  if (real !== root && !real.startsWith(root + path.sep))
    throw new Error(`it resolves to ${real}, outside the workspace ${root}`)
  return readFileSync(real, 'utf8')
}

function isWebUrl(text: string): boolean {
  try {
    const u = new URL(text)
    return (u.protocol === 'https:' || u.protocol === 'http:') && !/\s/.test(text)
  } catch {
    return false
  }
}

/** A fingerprint as the input gives it, with the hosts its line names. */
export interface GivenFingerprint {
  readonly fingerprint: string
  /** The names it is bound to, as known_hosts writes them (`host`, `[host]:port` off port 22), lower case; none when the line names no host. */
  readonly hosts: readonly string[]
  /** The line (or item) as given, for messages. */
  readonly text: string
}

/**
 * The fingerprints of a `fingerprint` input, one form per line: a line exactly as `ssh-keygen -lf` prints it
 * ('256 SHA256:... deploy.example.com,10.0.0.5 (ED25519)', '[10.0.0.5]:2222' off port 22), 'host SHA256:...' or
 * 'host:port SHA256:...' (several hosts joined by commas), or fingerprints alone, separated by commas.
 */
export function parseFingerprints(text: string, problem: (m: string) => void): GivenFingerprint[] {
  const out: GivenFingerprint[] = []
  const add = (f: GivenFingerprint) => {
    if (!out.some((o) => o.fingerprint === f.fingerprint && o.hosts.join() === f.hosts.join())) out.push(f)
  }
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
  for (const line of lines) {
    const hint = fingerprintLineHint(line)
    if (hint) {
      problem(hint)
      continue
    }
    const keygen = KEYGEN_LINE.exec(line)
    if (keygen) {
      const column = keygen[2]?.trim() ?? ''
      if (column.startsWith('|1|')) {
        problem(
          `expected the host a line is for, got the hashed name ${show(column)}, which cannot be matched here; give the line as 'ssh-keyscan <host> | ssh-keygen -lf -' prints it, or the known_hosts line in known-hosts`,
        )
        continue
      }
      // Of a .pub file the column is the key's comment ('root@web1', 'no comment'), which names no host.
      const names = /\s/.test(column) ? [] : column.split(',').map(boundNameOf)
      add({ fingerprint: keygen[1], hosts: names.every(isName) ? names : [], text: line })
      continue
    }
    const pair = HOST_FINGERPRINT.exec(line)
    if (pair && !pair[1].includes('SHA256:')) {
      const names = pair[1].split(',').map(boundNameOf)
      if (names.every(isName)) add({ fingerprint: pair[2], hosts: names, text: line })
      else
        problem(
          `expected host, host:port or [host]:port before the fingerprint (several joined by commas), got ${show(pair[1])}`,
        )
      continue
    }
    for (const item of line
      .split(',')
      .map((i) => i.trim())
      .filter(Boolean)) {
      const bare = BARE_FINGERPRINT.exec(item)
      if (bare) add({ fingerprint: bare[1], hosts: [], text: item })
      else problem(`expected SHA256:..., 'host SHA256:...' or a line as 'ssh-keygen -lf' prints it, got ${show(item)}`)
    }
  }
  return out
}

const isName = (name: string | undefined): name is string => name !== undefined

/** A host name of a fingerprint line: `host` (port 22), `[host]:port` as known_hosts writes it, or `host:port`. */
function boundNameOf(text: string): string | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? (isIP(text) ? null : /^([^:]+):(\d+)$/.exec(text))
  const host = m ? m[1] : text
  const port = m ? Number(m[2]) : 22
  if (!(isIP(host) || HOSTNAME.test(host)) || port < 1 || port > 65535) return undefined
  return boundName(host, port)
}

/** Each host-fingerprint pair once. */
function uniqueBindings(bindings: HostKeyPolicy['fingerprints']): HostKeyPolicy['fingerprints'] {
  return bindings.filter(
    (b, i) => bindings.findIndex((o) => o.host === b.host && o.fingerprint === b.fingerprint) === i,
  )
}

/** Each SSH target once (the nginx host may be an app host too). */
function uniqueTargets(targets: readonly SshTarget[]): SshTarget[] {
  return [...new Map(targets.map((t) => [boundName(t.host, t.port), t])).values()]
}

/** `address[:port]`, `[ipv6]:port`. */
export function parseSshAddress(
  text: string,
  defaultPort: number,
  problem: (m: string) => void,
): SshTarget | undefined {
  const m = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(text) ?? /^([^:\s[\]]+)(?::(\d+))?$/.exec(text)
  const host = m?.[1] ?? ''
  const port = m?.[2] ? Number(m[2]) : defaultPort
  if (
    !m ||
    !(isIP(host) === 4 || HOSTNAME.test(host) || (text.startsWith('[') && isIP(host) === 6)) ||
    port < 1 ||
    port > 65535
  ) {
    problem(`expected name, name:port or [ipv6]:port, got ${show(text)}${sshAddressHint(text)}`)
    return undefined
  }
  return { host, port }
}

interface TopologyInputs {
  readonly host: string
  readonly hosts: string
  readonly nginxHost: string
  readonly upstreamHost: string
  readonly upstreamHostGiven: boolean
}

/** The app hosts and the nginx host, as the inputs give them. */
interface HostsGiven {
  appHosts: AppHost[]
  nginxHost: SshTarget
}

/**
 * The app hosts and the nginx host: `host` (one app host, nginx on it unless nginx-host says otherwise) or
 * `hosts` (one per line or comma: `ssh-address[:port] [upstream-address]`) with `nginx-host`.
 */
export function readTopology(
  t: TopologyInputs,
  defaultPort: number,
  problem: (m: string) => void,
): HostsGiven | undefined {
  if (t.host && t.hosts) {
    problem('host and hosts: give one of them (host for a single app host, hosts for several)')
    return undefined
  }
  if (!t.host && !t.hosts) {
    problem('host: required (the Docker host to deploy to, name or name:port), or hosts for several')
    return undefined
  }
  return t.host ? readSingleHost(t, defaultPort, problem) : readSeveralHosts(t, defaultPort, problem)
}

/** An address nginx can reach the replicas at (`name`: its input); false, with a problem, when it is not one. */
function isUpstreamAddress(name: string, value: string, problem: (m: string) => void): boolean {
  if (isIP(value) || HOSTNAME.test(value)) return true
  problem(`${name}: expected an IP address or host name for nginx to reach the replicas at, got ${show(value)}`)
  return false
}

/** `host`: one app host, reached by nginx at upstream-host; nginx runs on it unless nginx-host names another. */
function readSingleHost(t: TopologyInputs, defaultPort: number, problem: (m: string) => void): HostsGiven | undefined {
  const items = t.host
    .split(/[,\n]/)
    .map((h) => h.trim())
    .filter(Boolean)
  if (!items.length) {
    problem(`host: expected name, name:port or [ipv6]:port, got ${show(t.host)}`)
    return undefined
  }
  if (items.length > 1) {
    problem(`host: one host, got ${items.length} in ${show(t.host)}; use hosts (with nginx-host) for several`)
    return undefined
  }
  const ssh = parseSshAddress(items[0], defaultPort, (m) => problem(`host: ${m}`))
  const nginxHost = t.nginxHost ? parseSshAddress(t.nginxHost, defaultPort, (m) => problem(`nginx-host: ${m}`)) : ssh
  if (!ssh || !nginxHost || !isUpstreamAddress('upstream-host', t.upstreamHost, problem)) return undefined
  if (isLoopback(t.upstreamHost) && (nginxHost.host !== ssh.host || nginxHost.port !== ssh.port))
    problem(
      `upstream-host: ${t.upstreamHost} is the nginx host itself, but nginx-host is not the app host ${sshName(ssh.host, ssh.port)}: set upstream-host to the app host's address that nginx can reach`,
    )
  return { appHosts: [{ id: sshName(ssh.host, ssh.port), ssh, upstreamAddress: t.upstreamHost }], nginxHost }
}

/** `hosts` with `nginx-host`: each app host once, each with an upstream address of its own. */
function readSeveralHosts(
  t: TopologyInputs,
  defaultPort: number,
  problem: (m: string) => void,
): HostsGiven | undefined {
  if (t.upstreamHostGiven)
    problem(
      "upstream-host: with hosts, give each host's upstream address after it ('10.0.0.11:22 10.1.0.11'); leave upstream-host empty",
    )
  if (!t.nginxHost)
    problem('nginx-host: required with hosts (the host that runs nginx, address[:port]; it may be one of the hosts)')
  const appHosts: AppHost[] = []
  for (const line of t.hosts
    .split(/[,\n]/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))) {
    const host = appHostLine(line, defaultPort, problem)
    if (!host) continue
    if (appHosts.some((h) => h.id === host.id)) problem(`hosts: ${host.id} is listed twice`)
    else if (appHosts.some((h) => h.upstreamAddress === host.upstreamAddress))
      problem(
        `hosts: two hosts have the upstream address ${host.upstreamAddress}; nginx could not tell their replicas apart`,
      )
    else appHosts.push(host)
  }
  if (!appHosts.length)
    problem(`hosts: expected at least one 'ssh-address[:port] [upstream-address]', got ${show(t.hosts)}`)
  const nginxHost = t.nginxHost
    ? parseSshAddress(t.nginxHost, defaultPort, (m) => problem(`nginx-host: ${m}`))
    : undefined
  return nginxHost && appHosts.length ? { appHosts, nginxHost } : undefined
}

/** One line of `hosts`, `ssh-address[:port] [upstream-address]`; undefined (with the problems) when it is not one. */
function appHostLine(line: string, defaultPort: number, problem: (m: string) => void): AppHost | undefined {
  const fields = line.split(/\s+/)
  if (fields.length > 2) {
    problem(`hosts: expected 'ssh-address[:port] [upstream-address]' per line, got ${show(line)}`)
    return undefined
  }
  const ssh = parseSshAddress(fields[0], defaultPort, (m) => problem(`hosts: ${m}`))
  const address = fields[1] ?? ssh?.host ?? ''
  if (!ssh || !isUpstreamAddress('hosts', address, problem)) return undefined
  if (isLoopback(address))
    problem(
      `hosts: ${show(line)}: a loopback upstream address cannot be told apart between hosts; give the address nginx reaches ${ssh.host} at`,
    )
  return { id: sshName(ssh.host, ssh.port), ssh, upstreamAddress: address }
}

export function parsePorts(text: string, problem: (m: string) => void): number[] {
  const ports = new Set<number>()
  for (const part of text.split(',').map((p) => p.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part)
    const first = Number(m?.[1])
    const last = Number(m?.[2] ?? m?.[1])
    if (!m || first < 1 || last > 65535 || first > last) {
      problem(`ports: expected a range like '9201-9210' or a list like '9201,9202', got ${show(text)}`)
      return []
    }
    for (let p = first; p <= last; p++) ports.add(p)
  }
  return [...ports].sort((a, b) => a - b)
}

export function parseEnv(text: string, problem: (m: string) => void): EnvVar[] {
  const vars: EnvVar[] = []
  text.split('\n').forEach((line, i) => {
    const l = line.replace(/\r$/, '')
    if (!l.trim() || l.trim().startsWith('#')) return
    const eq = l.indexOf('=')
    const name = eq < 0 ? '' : l.slice(0, eq).trim()
    // Nothing of an env line is ever echoed but a valid name: values are often secrets, and a mistyped line may be one.
    if (eq < 0)
      problem(`env: line ${i + 1}: expected KEY=VALUE, got a line without '=' (not shown: it may hold a secret)`)
    else if (!ENV_NAME.test(name))
      problem(
        `env: line ${i + 1}: expected KEY=VALUE with KEY of letters, digits and _ not starting with a digit (the line is not shown: it may hold a secret)`,
      )
    else if (name === 'PORT')
      problem('env: PORT is set by nginx-rollout (the port the replica must listen on); remove it from env')
    else if (l.includes('\0')) problem(`env: ${name}: the value contains a NUL byte`)
    else vars.push({ name, value: l.slice(eq + 1) })
  })
  return vars
}

export function parseRunArgs(text: string, problem: (m: string) => void): string[] {
  let words: string[]
  try {
    words = splitShellWords(text)
  } catch (e) {
    if (!(e instanceof ShellWordsError)) throw e
    problem(`run-args: ${e.message}, in ${show(text)}`)
    return []
  }
  words.forEach((w, i) => {
    const [flag, inline] = w.startsWith('--')
      ? [w.split('=')[0], w.includes('=') ? w.slice(w.indexOf('=') + 1) : undefined]
      : [w, undefined]
    if (MANAGED_RUN_ARGS.includes(flag))
      problem(
        `run-args: '${flag}' is set by nginx-rollout (names, networking and ports are managed; use the network/ports/env inputs), got ${show(text)}`,
      )
    const label = flag === '--label' || flag === '-l' ? (inline ?? words[i + 1] ?? '') : undefined
    if (label?.startsWith('nginx-rollout.'))
      problem(
        `run-args: labels starting with nginx-rollout. are the action's own (it reads them to know what is live), got ${show(label)}`,
      )
  })
  return words
}

/**
 * latency-threshold: '2x+100ms' (slower than twice the old version's p95 and 100 ms above it), '3x' (and no
 * ms), '+250ms' (factor 1), or 'off'.
 */
export function parseLatencyThreshold(text: string, problem: (m: string) => void): Config['latencyThreshold'] {
  const t = text.trim().replace(/\s+/g, '')
  if (t === 'off' || t === '0') return LATENCY_OFF
  const m = /^(?:(\d+(?:\.\d+)?)x)?(?:\+?(\d+)ms)?$/.exec(t)
  const factor = m?.[1] === undefined ? 1 : Number(m[1])
  if (!m || (m[1] === undefined && m[2] === undefined) || factor < 1 || factor > 100) {
    problem(
      `latency-threshold: expected a factor and a margin over the old version's p95 like '2x+100ms', '3x' or '+250ms' (factor from 1 to 100), or 'off', got ${show(text)}`,
    )
    return DEFAULT_LATENCY
  }
  return { factor, ms: m[2] === undefined ? 0 : Number(m[2]) }
}

export function parseStatusRanges(text: string, problem: (m: string) => void): StatusRange[] {
  const out: StatusRange[] = []
  for (const part of text.split(',').map((p) => p.trim())) {
    const m = /^(\d{3})(?:-(\d{3}))?$/.exec(part)
    const min = Number(m?.[1])
    const max = Number(m?.[2] ?? m?.[1])
    if (!m || min < 100 || max > 599 || min > max) {
      problem(`health-status: expected HTTP status codes or ranges like '200-399' or '200,204', got ${show(text)}`)
      return [{ min: 200, max: 399 }]
    }
    out.push({ min, max })
  }
  return out
}

export function parseCanarySteps(text: string, problem: (m: string) => void): number[] {
  // A lone 0 is a preview: no share of requests, only those canary-match names reach the canary.
  if (text.trim() === '0') return [0]
  const steps = text.split(',').map((s) => s.trim())
  const numbers = steps.map(Number)
  if (
    !steps.every((s) => /^\d+$/.test(s)) ||
    numbers.some((n) => n < 1 || n > 100) ||
    numbers.some((n, i) => i > 0 && n <= numbers[i - 1])
  ) {
    problem(
      `canary-steps: expected percentages from 1 to 100 in rising order, or '0' alone (a preview), got ${show(text)}`,
    )
    return [100]
  }
  return numbers
}

// nginx map keys: these words are the map block's own, so a value spelt like one cannot be matched.
const MAP_WORDS = ['default', 'hostnames', 'include', 'volatile']
const MATCH = /^(header|cookie)\s+([^=\s]+)=(\S+)$/

/**
 * canary-match: 'header NAME=VALUE' or 'cookie NAME=VALUE'. Header names as HTTP spells them; cookie names of
 * letters, digits and _ (nginx reads a cookie as $cookie_NAME, which ends at any other character); values of
 * letters, digits, '.', '_' and '-' (they go into nginx map blocks, cookies and a link unquoted).
 */
export function parseCanaryMatch(text: string, problem: (m: string) => void): CanaryMatch | undefined {
  if (text === '') return undefined
  const m = MATCH.exec(text)
  const kind = m?.[1] as CanaryMatch['kind'] | undefined
  const nameOk = kind === 'header' ? /^[A-Za-z0-9-]{1,64}$/ : /^[A-Za-z0-9_]{1,64}$/
  if (!m || !kind || !nameOk.test(m[2]) || !/^[A-Za-z0-9._-]{1,128}$/.test(m[3]) || MAP_WORDS.includes(m[3])) {
    problem(
      `canary-match: expected 'header NAME=VALUE' or 'cookie NAME=VALUE' (header names of letters, digits and -; cookie names of letters, digits and _; ` +
        `values of letters, digits, '.', '_' and '-', not ${MAP_WORDS.join('/')}), like 'header X-Preview=pr-7', got ${show(text)}`,
    )
    return undefined
  }
  return { kind, name: m[2], value: m[3] }
}

export function parseLbMethod(text: string, problem: (m: string) => void): LbMethod {
  const words = text.split(/\s+/).filter(Boolean)
  if (words.length === 1 && (words[0] === 'least_conn' || words[0] === 'round_robin' || words[0] === 'ip_hash'))
    return { kind: words[0] }
  if (
    words[0] === 'hash' &&
    words.length >= 2 &&
    words.length <= 3 &&
    HASH_KEY.test(words[1]) &&
    (words.length === 2 || words[2] === 'consistent')
  )
    return { kind: 'hash', key: words[1], consistent: words.length === 3 }
  problem(
    `lb-method: expected least_conn, round_robin, ip_hash or 'hash <key> [consistent]' (e.g. 'hash $request_uri consistent'), got ${show(text)}`,
  )
  return { kind: 'least_conn' }
}
