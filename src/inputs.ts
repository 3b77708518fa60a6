// The only reader of inputs. Every input is checked here, before any connection is made; all problems are
// reported together, each naming the input, what was expected and what arrived (never a secret's text).
import { realpathSync, readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import path from 'node:path'
import { ShellWordsError, splitShellWords } from './commands/shell.js'
import {
  DEFAULTS,
  derivedDefaults,
  RUNNER_DEFAULTS,
  type AppHost,
  type Config,
  type EnvVar,
  type HostKeyPolicy,
  type LbMethod,
  type Operation,
  type SshTarget,
  type StatusRange,
} from './config.js'
import { isLoopback, parseListen, sshName } from './model.js'

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

const NAME = /^[a-z0-9][a-z0-9_.-]*$/
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/
// Docker's reference grammar: [registry[:port]/]path[:tag][@digest]
const IMAGE =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::\w[\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/
const FINGERPRINT = /(?:^|\s)(SHA256:[A-Za-z0-9+/]{43})=?(?=\s|$)/
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

export function readConfig(source: InputSource): Config {
  const problems: string[] = []
  const problem = (msg: string): undefined => {
    problems.push(msg)
    return undefined
  }
  const raw = (name: InputName): string => {
    const v = source.get(name).trim()
    return v === '' && name in DEFAULTS ? DEFAULTS[name as keyof typeof DEFAULTS] : v
  }
  const given = (name: InputName): boolean => source.get(name).trim() !== ''
  const required = (name: InputName, what: string): string => {
    const v = raw(name)
    if (v === '') problem(`${name}: required (${what})`)
    return v
  }
  const matching = (name: InputName, re: RegExp, expected: string, value = raw(name)): string => {
    if (value !== '' && !re.test(value)) problem(`${name}: expected ${expected}, got ${show(value)}`)
    return value
  }
  const int = (name: InputName, min: number, max: number): number => {
    const v = raw(name)
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
      problem(`${name}: expected a whole number from ${min} to ${max}, got ${show(v)}`)
      return min
    }
    return Number(v)
  }
  const seconds = (name: InputName, min: number, max: number): number => {
    const v = raw(name).replace(/s$/, '')
    if (!/^\d+(\.\d+)?$/.test(v) || Number(v) < min || Number(v) > max) {
      problem(
        `${name}: expected seconds from ${min} to ${max} (e.g. '${DEFAULTS[name as keyof typeof DEFAULTS] ?? min}'), got ${show(raw(name))}`,
      )
      return min
    }
    return Number(v)
  }
  const bool = (name: InputName): boolean => {
    const v = raw(name)
    if (/^(true|True|TRUE)$/.test(v)) return true
    if (/^(false|False|FALSE)$/.test(v)) return false
    problem(`${name}: expected true or false, got ${show(v)}`)
    return false
  }
  const oneOf = <T extends string>(name: InputName, allowed: readonly T[]): T => {
    const v = raw(name)
    if (!allowed.includes(v as T)) problem(`${name}: expected one of ${allowed.join(', ')}, got ${show(v)}`)
    return v as T
  }
  const privateKeyText = (name: 'key' | 'proxy-key'): string | undefined => {
    const v = raw(name) || undefined
    if (v && !/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(v))
      problem(
        `${name}: expected private key text starting with -----BEGIN ... PRIVATE KEY----- (the key itself, not a path)`,
      )
    return v
  }
  const hostKeyPolicy = (
    fingerprintInput: 'fingerprint' | 'proxy-fingerprint',
    knownHostsInput: 'known-hosts' | 'proxy-known-hosts',
    insecureSkip: boolean,
  ): HostKeyPolicy => {
    const fingerprints = parseFingerprints(raw(fingerprintInput), (m) => problem(`${fingerprintInput}: ${m}`))
    const knownHosts = raw(knownHostsInput)
    if (knownHosts && !knownHosts.split('\n').some((l) => l.trim() && !l.trim().startsWith('#')))
      problem(`${knownHostsInput}: expected known_hosts lines (host keytype key)`)
    return { fingerprints, knownHosts, insecureSkip }
  }

  // Connection
  const port = int('port', 1, 65535)
  const topology = readTopology(
    {
      host: raw('host'),
      hosts: raw('hosts'),
      nginxHost: raw('nginx-host'),
      upstreamHost: raw('upstream-host'),
      upstreamHostGiven: given('upstream-host'),
    },
    port,
    problem,
  )
  const username = required('username', 'the ssh user on the hosts')
  if (/\s/.test(username)) problem(`username: expected a user name without spaces, got ${show(username)}`)
  const privateKey = privateKeyText('key')
  const passphrase = raw('passphrase') || undefined
  const password = raw('password') || undefined
  if (!privateKey && !password)
    problem('key: required unless password is set (the ssh private key text, e.g. from secrets.DEPLOY_KEY)')
  const insecureSkip = bool('insecure-skip-host-key-check')
  const hostKey = hostKeyPolicy('fingerprint', 'known-hosts', insecureSkip)
  const first = topology?.nginxHost
  if (!hostKey.fingerprints.length && !hostKey.knownHosts && !insecureSkip && first)
    problem(
      `fingerprint: required to verify each host's identity (or known-hosts; or insecure-skip-host-key-check: true, not for production). ` +
        `Get it on a machine you trust: ssh-keyscan -p ${first.port} ${first.host} | ssh-keygen -lf -  (or on the host: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)`,
    )
  const login = { username, privateKey, passphrase, password, hostKey }

  // Bastion
  const proxyHostText = raw('proxy-host')
  let proxy: Config['proxy']
  if (proxyHostText) {
    const target = parseSshAddress(proxyHostText, 22, (m) => problem(`proxy-host: ${m}`))
    const proxyUser = raw('proxy-username') || username
    if (/\s/.test(proxyUser)) problem(`proxy-username: expected a user name without spaces, got ${show(proxyUser)}`)
    const proxyKey = privateKeyText('proxy-key')
    if (!proxyKey && given('proxy-passphrase'))
      problem(
        'proxy-passphrase: set proxy-key too (the passphrase is for that key; without it the bastion uses key and passphrase)',
      )
    const ownPolicy = given('proxy-fingerprint') || given('proxy-known-hosts')
    // The bastion's key is checked like every host's: its own inputs, or else the fingerprints and known_hosts given for the hosts.
    const proxyHostKey = ownPolicy ? hostKeyPolicy('proxy-fingerprint', 'proxy-known-hosts', insecureSkip) : hostKey
    if (target)
      proxy = {
        target,
        login: {
          username: proxyUser,
          privateKey: proxyKey ?? privateKey,
          passphrase: proxyKey ? raw('proxy-passphrase') || undefined : passphrase,
          password: proxyKey ? undefined : password,
          hostKey: proxyHostKey,
        },
      }
  } else
    for (const name of [
      'proxy-username',
      'proxy-key',
      'proxy-passphrase',
      'proxy-fingerprint',
      'proxy-known-hosts',
    ] as const)
      if (given(name))
        problem(`${name}: set proxy-host too (the bastion these settings are for), or leave ${name} empty`)

  // What to run
  const operation = oneOf<Operation>('operation', ['deploy', 'promote', 'abort', 'rollback', 'status'])
  const app = matching(
    'app',
    NAME,
    'a name of lowercase letters, digits, _ . - starting with a letter or digit',
    required('app', 'the application name'),
  )
  if (app.length > 48) problem(`app: expected at most 48 characters, got ${app.length}`)
  const image = matching(
    'image',
    IMAGE,
    'a Docker image reference like ghcr.io/org/app:1.2.3',
    operation === 'deploy' ? required('image', 'the image to deploy') : raw('image'),
  )
  const strategy = oneOf('strategy', ['rolling', 'blue-green', 'canary'] as const)
  const replicas = int('replicas', 1, 100)
  const ports = parsePorts(raw('ports'), problem)
  if (ports.length && ports.length < replicas)
    problem(
      `ports: ${replicas} replicas need at least ${replicas} ports (and room for the old ones while they still run), got ${ports.length} in '${raw('ports')}'`,
    )
  const containerPort = int('container-port', 1, 65535)
  const network = raw('network')
  if (network !== '' && !CONTAINER_NAME.test(network))
    problem(`network: expected empty, 'host' or a Docker network name, got ${show(network)}`)
  const env = parseEnv(raw('env'), problem)
  const runArgs = parseRunArgs(raw('run-args'), problem)
  const pull = bool('pull')
  const pullTimeoutSeconds = int('pull-timeout', 1, 86400)
  const registryServer = raw('registry')
  if (registryServer && !/^[A-Za-z0-9.-]+(:\d+)?$/.test(registryServer))
    problem(`registry: expected a registry host like ghcr.io, got ${show(registryServer)}`)
  const registryUser = raw('registry-username')
  const registryPassword = raw('registry-password')
  if (Boolean(registryUser) !== Boolean(registryPassword))
    problem('registry-username and registry-password: set both to log in to the registry, or neither')
  if (registryServer && !registryUser)
    problem('registry: set registry-username and registry-password too, or leave registry empty')

  // Health gates
  const healthPath = matching('health-path', HEALTH_PATH, "an absolute URL path like '/healthz'")
  const healthStatus = parseStatusRanges(raw('health-status'), problem)
  const healthTimeout = seconds('health-timeout', 1, 3600)
  const healthInterval = seconds('health-interval', 0.05, 60)

  // Traffic
  const drainSeconds = seconds('drain-seconds', 0, 3600)
  const stopTimeoutSeconds = int('stop-timeout', 0, 3600)
  const batchSize = int('batch-size', 1, 100)
  const keepPrevious = bool('keep-previous')

  // Canary
  const canarySteps = parseCanarySteps(raw('canary-steps'), problem)
  const canaryReplicas = int('canary-replicas', 1, 100)
  const canaryInterval = seconds('canary-interval', 1, 86400)
  const maxErrorRate = raw('canary-max-error-rate').replace(/%$/, '')
  if (!/^\d+(\.\d+)?$/.test(maxErrorRate) || Number(maxErrorRate) > 100)
    problem(
      `canary-max-error-rate: expected a percentage from 0 to 100 like '1' or '0.5', got ${show(raw('canary-max-error-rate'))}`,
    )

  // nginx
  const mode = oneOf('nginx-mode', ['container', 'host'] as const)
  const scope = oneOf('nginx-scope', ['site', 'upstream'] as const)
  const nginxContainer = matching('nginx-container', CONTAINER_NAME, 'a Docker container name')
  const nginxImage = matching('nginx-image', IMAGE, 'a Docker image reference like nginx:stable')
  // Derived from app when not given (a bad app is reported once, as app).
  const configPath =
    matching('nginx-config-path', CONFIG_PATH, "an absolute file path like '/etc/nginx/conf.d/shop.conf'") ||
    derivedDefaults.configPath(app)
  const upstreamName =
    matching('upstream-name', UPSTREAM_NAME, 'an nginx upstream name of letters, digits and _') ||
    derivedDefaults.upstreamName(app)
  const templatePath = raw('nginx-template')
  let template: string | undefined
  if (templatePath && TEMPLATE_PATH.test(templatePath)) {
    try {
      template = source.readWorkspaceFile(templatePath)
    } catch (e) {
      problem(`nginx-template: cannot read ${show(templatePath)} in the workspace (${(e as Error).message})`)
    }
  }
  const listen = raw('listen')
  if (!parseListen(listen))
    problem(
      `listen: expected a port like '80' or address:port like '127.0.0.1:8080' or '[::1]:8080', got ${show(listen)}`,
    )
  const serverName = raw('server-name')
  if (!serverName.split(/\s+/).every((n) => SERVER_NAME.test(n)))
    problem(`server-name: expected host names separated by spaces, got ${show(serverName)}`)
  if (scope === 'upstream')
    for (const name of ['listen', 'server-name'] as const)
      if (given(name))
        problem(
          `${name}: nginx-scope upstream writes no server block (your own server blocks proxy_pass to upstream ${upstreamName}); leave ${name} empty`,
        )
  const lbMethod = parseLbMethod(raw('lb-method'), problem)
  const weight = int('weight', 1, 1000)
  const maxFails = int('max-fails', 0, 1000)
  const failTimeout = matching('fail-timeout', NGINX_TIME, "an nginx time like '30s' or '1m'")

  // GitHub
  const githubToken = raw('github-token')
  if (/\s/.test(githubToken)) problem('github-token: expected a token without spaces or line breaks')
  const environment = raw('environment')
  if (environment.length > 255 || /[\x00-\x1f\x7f]/.test(environment))
    problem(
      `environment: expected a GitHub environment name of at most 255 characters on one line, got ${show(environment)}`,
    )
  const environmentUrl = raw('environment-url')
  if (environmentUrl && !isWebUrl(environmentUrl))
    problem(`environment-url: expected an http(s) URL like https://shop.example.com, got ${show(environmentUrl)}`)
  if (environmentUrl && !environment)
    problem('environment-url: set environment too (the URL belongs to the deployment recorded there)')

  // Control
  const dryRun = bool('dry-run')
  const rollbackOnFailure = bool('rollback-on-failure')
  const lockTimeoutSeconds = seconds('lock-timeout', 0, 86400)

  // Combinations that cannot work, whatever the hosts hold.
  if (network === 'host' && ports.includes(containerPort))
    problem(
      `container-port: with network: host replicas listen on the ports from 'ports'; container-port ${containerPort} inside that range would collide`,
    )
  const listenPort = parseListen(listen)?.port
  if (scope === 'site' && network === 'host' && listenPort !== undefined && ports.includes(listenPort))
    problem(`listen: port ${listenPort} is inside ports '${raw('ports')}', which replicas use`)

  if (problems.length || !topology) throw new InputError(problems)
  return {
    appHosts: topology.appHosts,
    nginxHost: topology.nginxHost,
    login,
    proxy,
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
    registry: registryUser ? { server: registryServer, username: registryUser, password: registryPassword } : undefined,
    health: {
      path: healthPath,
      status: healthStatus,
      timeoutMs: healthTimeout * 1000,
      intervalMs: healthInterval * 1000,
    },
    drainSeconds,
    stopTimeoutSeconds,
    batchSize,
    keepPrevious,
    canary: {
      steps: canarySteps,
      replicas: canaryReplicas,
      intervalSeconds: canaryInterval,
      maxErrorRate: Number(maxErrorRate),
    },
    nginx: {
      mode,
      scope,
      container: nginxContainer,
      image: nginxImage,
      configPath,
      upstreamName,
      template,
      templatePath: templatePath || undefined,
      listen,
      serverName,
      lbMethod,
      weight,
      maxFails,
      failTimeout,
    },
    github: { token: githubToken, environment, environmentUrl },
    operation,
    dryRun,
    rollbackOnFailure,
    lockTimeoutSeconds,
  }
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

/** Fingerprints as given, or lines exactly as `ssh-keygen -lf` prints them ('256 SHA256:... host (ED25519)'). */
export function parseFingerprints(text: string, problem: (m: string) => void): string[] {
  const out: string[] = []
  // A line as ssh-keygen prints it ('256 SHA256:... host,10.0.0.5 (ED25519)') may name several hosts with
  // commas; any other line is a list of fingerprints separated by commas.
  const items = text.split('\n').flatMap((line) => (/^\s*\d+\s+SHA256:/.test(line) ? [line] : line.split(',')))
  for (const item of items.map((f) => f.trim()).filter((f) => f && !f.startsWith('#'))) {
    const m = FINGERPRINT.exec(item)
    if (m) out.push(m[1])
    else problem(`expected SHA256:... or a line as 'ssh-keygen -lf' prints it, got ${show(item)}`)
  }
  return [...new Set(out)]
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
    problem(`expected name, name:port or [ipv6]:port, got ${show(text)}`)
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

/**
 * The app hosts and the nginx host: `host` (one app host, nginx on it unless nginx-host says otherwise) or
 * `hosts` (one per line or comma: `ssh-address[:port] [upstream-address]`) with `nginx-host`.
 */
export function readTopology(
  t: TopologyInputs,
  defaultPort: number,
  problem: (m: string) => void,
): { appHosts: AppHost[]; nginxHost: SshTarget } | undefined {
  const upstreamAddress = (name: string, value: string): boolean => {
    if (isIP(value) || HOSTNAME.test(value)) return true
    problem(`${name}: expected an IP address or host name for nginx to reach the replicas at, got ${show(value)}`)
    return false
  }
  if (t.host && t.hosts) {
    problem('host and hosts: give one of them (host for a single app host, hosts for several)')
    return undefined
  }
  if (!t.host && !t.hosts) {
    problem('host: required (the Docker host to deploy to, name or name:port), or hosts for several')
    return undefined
  }
  if (t.host) {
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
    if (!ssh || !nginxHost || !upstreamAddress('upstream-host', t.upstreamHost)) return undefined
    if (isLoopback(t.upstreamHost) && (nginxHost.host !== ssh.host || nginxHost.port !== ssh.port))
      problem(
        `upstream-host: ${t.upstreamHost} is the nginx host itself, but nginx-host is not the app host ${sshName(ssh.host, ssh.port)}: set upstream-host to the app host's address that nginx can reach`,
      )
    return { appHosts: [{ id: sshName(ssh.host, ssh.port), ssh, upstreamAddress: t.upstreamHost }], nginxHost }
  }
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
    const fields = line.split(/\s+/)
    if (fields.length > 2) {
      problem(`hosts: expected 'ssh-address[:port] [upstream-address]' per line, got ${show(line)}`)
      continue
    }
    const ssh = parseSshAddress(fields[0], defaultPort, (m) => problem(`hosts: ${m}`))
    const address = fields[1] ?? ssh?.host ?? ''
    if (!ssh || !upstreamAddress('hosts', address)) continue
    if (isLoopback(address))
      problem(
        `hosts: ${show(line)}: a loopback upstream address cannot be told apart between hosts; give the address nginx reaches ${ssh.host} at`,
      )
    const id = sshName(ssh.host, ssh.port)
    if (appHosts.some((h) => h.id === id)) problem(`hosts: ${id} is listed twice`)
    else if (appHosts.some((h) => h.upstreamAddress === address))
      problem(`hosts: two hosts have the upstream address ${address}; nginx could not tell their replicas apart`)
    else appHosts.push({ id, ssh, upstreamAddress: address })
  }
  if (!appHosts.length)
    problem(`hosts: expected at least one 'ssh-address[:port] [upstream-address]', got ${show(t.hosts)}`)
  const nginxHost = t.nginxHost
    ? parseSshAddress(t.nginxHost, defaultPort, (m) => problem(`nginx-host: ${m}`))
    : undefined
  return nginxHost && appHosts.length ? { appHosts, nginxHost } : undefined
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
  const steps = text.split(',').map((s) => s.trim())
  const numbers = steps.map(Number)
  if (
    !steps.every((s) => /^\d+$/.test(s)) ||
    numbers.some((n) => n < 1 || n > 100) ||
    numbers.some((n, i) => i > 0 && n <= numbers[i - 1])
  ) {
    problem(`canary-steps: expected percentages from 1 to 100 in rising order, got ${show(text)}`)
    return [100]
  }
  return numbers
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
