// The only reader of inputs. Every input is checked here, before any connection is made; all problems are
// reported together, each naming the input, what was expected and what arrived.
import { isIP } from 'node:net'
import { ShellWordsError, splitShellWords } from './commands/shell.js'
import { DEFAULTS, RUNNER_DEFAULTS, type Config, type EnvVar, type LbMethod, type Operation, type StatusRange, type SshTarget } from './config.js'

export type InputName = keyof typeof DEFAULTS | InputWithoutDefault
type InputWithoutDefault =
  | 'host' | 'username' | 'key' | 'passphrase' | 'password' | 'fingerprint' | 'known-hosts'
  | 'app' | 'image' | 'env' | 'run-args' | 'registry' | 'registry-username' | 'registry-password' | 'nginx-template'
  | 'environment' | 'environment-url' | keyof typeof RUNNER_DEFAULTS

export interface InputSource {
  /** The raw input text ('' when unset). */
  get(name: InputName): string
  /** Reads a file of the workspace (for nginx-template). */
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
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}=?$/
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const HEALTH_PATH = /^\/[A-Za-z0-9\-._~/?=&%:+,;@!*()]*$/
// nginx server_name: a host name, optionally with a leading '*.' or '.', or a trailing '.*'; or '_' (no name).
const SERVER_NAME = /^(?:_|(?:\*\.|\.)?[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?:\.\*)?)$/
const HASH_KEY = /^[A-Za-z0-9_$.:/-]+$/
const NGINX_TIME = /^\d+(ms|s|m|h|d)?$/
const CONFIG_PATH = /^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/
const TEMPLATE_PATH = /^[^\0]+$/

/** docker run options that nginx-rollout sets itself: a second value would break naming, routing or cleanup. */
const MANAGED_RUN_ARGS = ['--name', '--network', '--net', '-p', '--publish', '-P', '--publish-all', '--rm', '-d', '--detach', '-i', '-t', '--env-file']

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
      problem(`${name}: expected seconds from ${min} to ${max} (e.g. '${DEFAULTS[name as keyof typeof DEFAULTS] ?? min}'), got ${show(raw(name))}`)
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

  // Connection
  const port = int('port', 1, 65535)
  const hosts = parseHosts(required('host', 'the Docker host to deploy to, name or name:port'), port, problem)
  const username = required('username', 'the ssh user on the Docker host')
  if (/\s/.test(username)) problem(`username: expected a user name without spaces, got ${show(username)}`)
  const privateKey = raw('key') || undefined
  const passphrase = raw('passphrase') || undefined
  const password = raw('password') || undefined
  if (!privateKey && !password) problem('key: required unless password is set (the ssh private key text, e.g. from secrets.DEPLOY_KEY)')
  if (privateKey && !/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(privateKey))
    problem('key: expected private key text starting with -----BEGIN ... PRIVATE KEY----- (the key itself, not a path)')
  const fingerprints = raw('fingerprint').split(/[,\n]/).map((f) => f.trim()).filter(Boolean)
  for (const f of fingerprints)
    if (!FINGERPRINT.test(f)) problem(`fingerprint: expected SHA256:... as 'ssh-keygen -lf' prints it, got ${show(f)}`)
  const knownHosts = raw('known-hosts')
  if (knownHosts && !knownHosts.split('\n').some((l) => l.trim() && !l.trim().startsWith('#')))
    problem('known-hosts: expected known_hosts lines (host keytype key)')
  const insecureSkip = bool('insecure-skip-host-key-check')
  if (!fingerprints.length && !knownHosts && !insecureSkip && hosts.length)
    problem(
      `fingerprint: required to verify the host's identity (or known-hosts; or insecure-skip-host-key-check: true, not for production). ` +
        `Get it on a machine you trust: ssh-keyscan -p ${hosts[0].port} ${hosts[0].host} | ssh-keygen -lf -  (or on the host: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)`,
    )

  // What to run
  const operation = oneOf<Operation>('operation', ['deploy', 'promote', 'abort', 'rollback', 'status'])
  const app = matching('app', NAME, 'a name of lowercase letters, digits, _ . - starting with a letter or digit', required('app', 'the application name'))
  if (app.length > 48) problem(`app: expected at most 48 characters, got ${app.length}`)
  const image = matching('image', IMAGE, 'a Docker image reference like ghcr.io/org/app:1.2.3', operation === 'deploy' ? required('image', 'the image to deploy') : raw('image'))
  const strategy = oneOf('strategy', ['rolling', 'blue-green', 'canary'] as const)
  const replicas = int('replicas', 1, 100)
  const ports = parsePorts(raw('ports'), problem)
  if (ports.length && ports.length < replicas)
    problem(`ports: ${replicas} replicas need at least ${replicas} ports (and room for the old ones while they still run), got ${ports.length} in '${raw('ports')}'`)
  const containerPort = int('container-port', 1, 65535)
  const network = raw('network')
  if (network !== '' && !CONTAINER_NAME.test(network)) problem(`network: expected empty, 'host' or a Docker network name, got ${show(network)}`)
  const upstreamHost = raw('upstream-host')
  if (!isIP(upstreamHost) && !HOSTNAME.test(upstreamHost))
    problem(`upstream-host: expected an IP address or host name, got ${show(upstreamHost)}`)
  const env = parseEnv(raw('env'), problem)
  const runArgs = parseRunArgs(raw('run-args'), problem)
  const pull = bool('pull')
  const registryServer = raw('registry')
  if (registryServer && !/^[A-Za-z0-9.-]+(:\d+)?$/.test(registryServer)) problem(`registry: expected a registry host like ghcr.io, got ${show(registryServer)}`)
  const registryUser = raw('registry-username')
  const registryPassword = raw('registry-password')
  if (Boolean(registryUser) !== Boolean(registryPassword)) problem('registry-username and registry-password: set both to log in to the registry, or neither')
  if (registryServer && !registryUser) problem('registry: set registry-username and registry-password too, or leave registry empty')

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
    problem(`canary-max-error-rate: expected a percentage from 0 to 100 like '1' or '0.5', got ${show(raw('canary-max-error-rate'))}`)

  // nginx
  const mode = oneOf('nginx-mode', ['container', 'host'] as const)
  const nginxContainer = matching('nginx-container', CONTAINER_NAME, 'a Docker container name')
  const nginxImage = matching('nginx-image', IMAGE, 'a Docker image reference like nginx:stable')
  const configPath = matching('nginx-config-path', CONFIG_PATH, "an absolute file path like '/etc/nginx/nginx.conf'")
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
  if (!parseListen(listen)) problem(`listen: expected a port like '80' or address:port like '127.0.0.1:8080' or '[::1]:8080', got ${show(listen)}`)
  const serverName = raw('server-name')
  if (!serverName.split(/\s+/).every((n) => SERVER_NAME.test(n))) problem(`server-name: expected host names separated by spaces, got ${show(serverName)}`)
  const lbMethod = parseLbMethod(raw('lb-method'), problem)
  const weight = int('weight', 1, 1000)
  const maxFails = int('max-fails', 0, 1000)
  const failTimeout = matching('fail-timeout', NGINX_TIME, "an nginx time like '30s' or '1m'")

  // GitHub
  const githubToken = raw('github-token')
  if (/\s/.test(githubToken)) problem('github-token: expected a token without spaces or line breaks')
  const environment = raw('environment')
  if (environment.length > 255 || /[\x00-\x1f\x7f]/.test(environment))
    problem(`environment: expected a GitHub environment name of at most 255 characters on one line, got ${show(environment)}`)
  const environmentUrl = raw('environment-url')
  if (environmentUrl && !isWebUrl(environmentUrl)) problem(`environment-url: expected an http(s) URL like https://shop.example.com, got ${show(environmentUrl)}`)
  if (environmentUrl && !environment) problem('environment-url: set environment too (the URL belongs to the deployment recorded there)')

  // Control
  const dryRun = bool('dry-run')
  const rollbackOnFailure = bool('rollback-on-failure')
  const lockTimeoutSeconds = seconds('lock-timeout', 0, 86400)

  // Combinations that cannot work, whatever the host holds.
  if (network === 'host' && ports.includes(containerPort))
    problem(`container-port: with network: host replicas listen on the ports from 'ports'; container-port ${containerPort} inside that range would collide`)
  const listenPort = parseListen(listen)?.port
  if (network === 'host' && listenPort !== undefined && ports.includes(listenPort))
    problem(`listen: port ${listenPort} is inside ports '${raw('ports')}', which replicas use`)

  if (problems.length) throw new InputError(problems)
  return {
    hosts, username, privateKey, passphrase, password,
    hostKey: { fingerprints: fingerprints.map((f) => f.replace(/=$/, '')), knownHosts, insecureSkip },
    app, image, strategy, replicas, ports, containerPort, network, upstreamHost, env, runArgs, pull,
    registry: registryUser ? { server: registryServer, username: registryUser, password: registryPassword } : undefined,
    health: { path: healthPath, status: healthStatus, timeoutMs: healthTimeout * 1000, intervalMs: healthInterval * 1000 },
    drainSeconds, stopTimeoutSeconds, batchSize, keepPrevious,
    canary: { steps: canarySteps, replicas: canaryReplicas, intervalSeconds: canaryInterval, maxErrorRate: Number(maxErrorRate) },
    nginx: { mode, container: nginxContainer, image: nginxImage, configPath, template, templatePath: templatePath || undefined, listen, serverName, lbMethod, weight, maxFails, failTimeout },
    github: { token: githubToken, environment, environmentUrl },
    operation, dryRun, rollbackOnFailure, lockTimeoutSeconds,
  }
}

function isWebUrl(text: string): boolean {
  try {
    const u = new URL(text)
    return (u.protocol === 'https:' || u.protocol === 'http:') && !/\s/.test(text)
  } catch {
    return false
  }
}

export function parseHosts(text: string, defaultPort: number, problem: (m: string) => void): SshTarget[] {
  const items = text.split(/[,\n]/).map((h) => h.trim()).filter(Boolean)
  if (items.length > 1) problem(`host: one host per run in this version, got ${items.length} in ${show(text)}`)
  const out: SshTarget[] = []
  for (const item of items) {
    const m = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(item) ?? /^([^:\s]+)(?::(\d+))?$/.exec(item)
    const host = m?.[1] ?? ''
    const port = m?.[2] ? Number(m[2]) : defaultPort
    if (!m || !(isIP(host) === 4 || HOSTNAME.test(host) || (item.startsWith('[') && isIP(host) === 6)) || port < 1 || port > 65535)
      problem(`host: expected name, name:port or [ipv6]:port, got ${show(item)}`)
    else out.push({ host, port })
  }
  return out
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
    const name = eq < 0 ? l.trim() : l.slice(0, eq).trim()
    // Nothing after a name is ever echoed: env values may be secrets, and a line without '=' may be one.
    if (eq < 0) problem(`env: line ${i + 1}: expected KEY=VALUE, got a line without '='`)
    else if (!ENV_NAME.test(name)) problem(`env: line ${i + 1}: expected KEY=VALUE with KEY of letters, digits and _ not starting with a digit, got KEY ${show(name.slice(0, 40))}`)
    else if (name === 'PORT') problem('env: PORT is set by nginx-rollout (the port the replica must listen on); remove it from env')
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
    const [flag, inline] = w.startsWith('--') ? [w.split('=')[0], w.includes('=') ? w.slice(w.indexOf('=') + 1) : undefined] : [w, undefined]
    if (MANAGED_RUN_ARGS.includes(flag))
      problem(`run-args: '${flag}' is set by nginx-rollout (names, networking and ports are managed; use the network/ports/env inputs), got ${show(text)}`)
    const label = flag === '--label' || flag === '-l' ? (inline ?? words[i + 1] ?? '') : undefined
    if (label?.startsWith('nginx-rollout.')) problem(`run-args: labels starting with nginx-rollout. are the action's own (it reads them to know what is live), got ${show(label)}`)
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
  if (!steps.every((s) => /^\d+$/.test(s)) || numbers.some((n) => n < 1 || n > 100) || numbers.some((n, i) => i > 0 && n <= numbers[i - 1])) {
    problem(`canary-steps: expected percentages from 1 to 100 in rising order, got ${show(text)}`)
    return [100]
  }
  return numbers
}

export function parseListen(text: string): { address?: string; port: number } | undefined {
  const m = /^(\d+)$/.exec(text) ?? /^(\d{1,3}(?:\.\d{1,3}){3}):(\d+)$/.exec(text) ?? /^\[([0-9A-Fa-f:]+)\]:(\d+)$/.exec(text)
  if (!m) return undefined
  const port = Number(m[2] ?? m[1])
  if (port < 1 || port > 65535) return undefined
  if (m[2] !== undefined && !isIP(m[1])) return undefined
  return m[2] === undefined ? { port } : { address: m[1], port }
}

export function parseLbMethod(text: string, problem: (m: string) => void): LbMethod {
  const words = text.split(/\s+/).filter(Boolean)
  if (words.length === 1 && (words[0] === 'least_conn' || words[0] === 'round_robin' || words[0] === 'ip_hash')) return { kind: words[0] }
  if (words[0] === 'hash' && words.length >= 2 && words.length <= 3 && HASH_KEY.test(words[1]) && (words.length === 2 || words[2] === 'consistent'))
    return { kind: 'hash', key: words[1], consistent: words.length === 3 }
  problem(`lb-method: expected least_conn, round_robin, ip_hash or 'hash <key> [consistent]' (e.g. 'hash $request_uri consistent'), got ${show(text)}`)
  return { kind: 'least_conn' }
}
