// The typed, validated settings of one run. inputs.ts is the only place that builds it.

export type Strategy = 'rolling' | 'blue-green' | 'canary'
export type Operation = 'deploy' | 'promote' | 'abort' | 'rollback' | 'status'
export type NginxMode = 'container' | 'host'

export interface SshTarget {
  readonly host: string
  readonly port: number
}

export interface HostKeyPolicy {
  /** `SHA256:...` fingerprints, without `=` padding. */
  readonly fingerprints: readonly string[]
  /** known_hosts lines (plain or hashed). */
  readonly knownHosts: string
  readonly insecureSkip: boolean
}

export interface EnvVar {
  readonly name: string
  readonly value: string
}

export type LbMethod =
  | { readonly kind: 'least_conn' }
  | { readonly kind: 'round_robin' }
  | { readonly kind: 'ip_hash' }
  | { readonly kind: 'hash'; readonly key: string; readonly consistent: boolean }

export interface StatusRange {
  readonly min: number
  readonly max: number
}

export interface Config {
  readonly hosts: readonly SshTarget[]
  readonly username: string
  readonly privateKey?: string
  readonly passphrase?: string
  readonly password?: string
  readonly hostKey: HostKeyPolicy

  readonly app: string
  readonly image: string
  readonly strategy: Strategy
  readonly replicas: number
  readonly ports: readonly number[]
  readonly containerPort: number
  /** '' (default bridge, port published on upstreamHost), 'host', or a Docker network name. */
  readonly network: string
  readonly upstreamHost: string
  readonly env: readonly EnvVar[]
  readonly runArgs: readonly string[]
  readonly pull: boolean
  readonly registry?: { readonly server: string; readonly username: string; readonly password: string }

  readonly health: {
    readonly path: string
    readonly status: readonly StatusRange[]
    readonly timeoutMs: number
    readonly intervalMs: number
  }

  readonly drainSeconds: number
  readonly stopTimeoutSeconds: number
  readonly batchSize: number
  /** blue-green: keep the old colour running out of rotation until the next deploy (rollback is one reload). */
  readonly keepPrevious: boolean

  readonly canary: {
    /** Shares of requests, in percent, rising, for the new version at each step. */
    readonly steps: readonly number[]
    readonly replicas: number
    readonly intervalSeconds: number
    /** Highest acceptable error rate of the canary, in percent. */
    readonly maxErrorRate: number
  }

  readonly nginx: {
    readonly mode: NginxMode
    readonly container: string
    readonly image: string
    readonly configPath: string
    /** The custom template's text, or undefined for the built-in one. */
    readonly template?: string
    readonly templatePath?: string
    readonly listen: string
    readonly serverName: string
    readonly lbMethod: LbMethod
    readonly weight: number
    readonly maxFails: number
    readonly failTimeout: string
  }

  /** GitHub deployments and the pull-request canary comment; all off without a token. */
  readonly github: {
    /** The token for the GitHub API ('' when none: nothing is recorded on GitHub). */
    readonly token: string
    /** The environment deployments are recorded in ('' records none). */
    readonly environment: string
    readonly environmentUrl: string
  }

  readonly operation: Operation
  readonly dryRun: boolean
  readonly rollbackOnFailure: boolean
  readonly lockTimeoutSeconds: number
}

/** Every input's default, as action.yml declares it (a unit test keeps the two equal). */
export const DEFAULTS = {
  port: '22',
  'insecure-skip-host-key-check': 'false',
  strategy: 'rolling',
  replicas: '2',
  ports: '9201-9210',
  'container-port': '8080',
  network: '',
  'upstream-host': '127.0.0.1',
  pull: 'true',
  'health-path': '/',
  'health-status': '200-399',
  'health-timeout': '60',
  'health-interval': '1',
  'drain-seconds': '5',
  'stop-timeout': '10',
  'batch-size': '1',
  'keep-previous': 'false',
  'canary-steps': '10,50,100',
  'canary-replicas': '1',
  'canary-interval': '60',
  'canary-max-error-rate': '1',
  'nginx-mode': 'container',
  'nginx-container': 'loadbalancer',
  'nginx-image': 'nginx:stable',
  'nginx-config-path': '/etc/nginx/nginx.conf',
  listen: '80',
  'server-name': 'localhost',
  'lb-method': 'least_conn',
  weight: '10',
  'max-fails': '3',
  'fail-timeout': '30s',
  operation: 'deploy',
  'dry-run': 'false',
  'rollback-on-failure': 'true',
  'lock-timeout': '300',
} as const satisfies Record<string, string>

/** Inputs whose action.yml default is an expression the runner evaluates, so the code sees the value. */
export const RUNNER_DEFAULTS = {
  'github-token': '${{ github.token }}',
} as const satisfies Record<string, string>

/** Internal constants (not inputs): named here so their reasons sit in one place. */
export const LIMITS = {
  /** Where nginx-rollout keeps its lock, history and upload staging, relative to the ssh user's home. */
  stateDir: '.nginx-rollout',
  /** Deploy history entries kept on the host. */
  historyEntries: 20,
  /** A lock whose heartbeat is older than this was left by a run that died. */
  lockStaleSeconds: 45,
  lockHeartbeatMs: 10_000,
  lockPollMs: 2_000,
  /** How long nginx may take to serve the new config after the reload signal. */
  reloadVerifyMs: 15_000,
  /** Path on the nginx listen port that answers the id of the config nginx is serving. */
  configIdPath: '/.nginx-rollout/config-id',
  /** Log lines of a failing replica shown in the summary. */
  failureLogLines: 30,
  /** A single health probe gives up after this long (or the gate's interval, whichever is larger). */
  probeTimeoutMs: 2_000,
  sshReadyTimeoutMs: 20_000,
  /** Fewer canary requests than this in a step's window cannot be judged against a 1% error budget. */
  canaryMinRequests: 50,
  /** How far above the stable error rate (in standard errors) counts as clearly worse. */
  canaryWorseZ: 3,
  /** Consecutive failed health probes of a canary during a step that fail the step. */
  canaryProbeFailures: 3,
  sshKeepaliveMs: 10_000,
  /** One GitHub API request gives up after this long: recording a deploy must never hold one up. */
  githubRequestTimeoutMs: 15_000,
  /** Earlier deployments of the environment checked for one still marked active. */
  githubEarlierDeployments: 10,
  /** GitHub's limit on a deployment status description. */
  githubDescriptionChars: 140,
} as const
