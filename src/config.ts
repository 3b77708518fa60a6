// The typed, validated settings of one run. inputs.ts is the only place that builds it.

export type Strategy = 'rolling' | 'blue-green' | 'canary'
export type Operation = 'deploy' | 'promote' | 'abort' | 'rollback' | 'status' | 'maintenance' | 'resume'
export type NginxMode = 'container' | 'host'
/** Whether the nginx host's privileged commands go through `sudo -n` (auto: when the SSH user is not root). */
export type SudoUse = 'auto' | 'yes' | 'no'
/** site: the app's upstream and its server block; upstream: only the upstream, behind the user's own server blocks. */
export type NginxScope = 'site' | 'upstream'

export interface SshTarget {
  readonly host: string
  readonly port: number
}

/** What a host's key is checked against, before authentication. */
export interface HostKeyPolicy {
  /**
   * `SHA256:...` fingerprints (without `=` padding), each bound to one host by the name known_hosts gives it
   * (`host`, or `[host]:port` off port 22; lower case). A key is accepted only from a host it is bound to: a
   * fingerprint given for one host never lets another through. Several per host for key rotation.
   */
  readonly fingerprints: readonly { readonly host: string; readonly fingerprint: string }[]
  /** known_hosts lines (plain or hashed), each matched to a host by the names it lists, as OpenSSH does. */
  readonly knownHosts: string
  /** A host that no fingerprint and no known_hosts entry names is let through unchecked; any other is checked. */
  readonly insecureSkip: boolean
}

/** Who to log in as, and how to know the host is the right one. */
export interface SshLogin {
  readonly username: string
  readonly privateKey?: string
  readonly passphrase?: string
  readonly password?: string
  readonly hostKey: HostKeyPolicy
}

/** A Docker host the app runs on. */
export interface AppHost {
  /** How the run names it: the SSH address, with the port when it is not 22. */
  readonly id: string
  readonly ssh: SshTarget
  /** The address nginx reaches this host's replicas at. */
  readonly upstreamAddress: string
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

/** canary-match: requests carrying this header or cookie with this value go to the canary. */
export interface CanaryMatch {
  readonly kind: 'header' | 'cookie'
  /** A header name (letters, digits, -) or a cookie name (letters, digits, _: nginx names it $cookie_NAME). */
  readonly name: string
  readonly value: string
}

/** What counts as clearly slower: p95 more than `factor` times and `ms` above the old version's (0: off). */
export interface LatencyThreshold {
  readonly factor: number
  readonly ms: number
}

/** latency-threshold's default, '2x+100ms', and 'off' (no latency judged). */
export const DEFAULT_LATENCY: LatencyThreshold = { factor: 2, ms: 100 }
export const LATENCY_OFF: LatencyThreshold = { factor: 0, ms: 0 }

export interface Config {
  /** The app hosts, in the order given (canary replicas go to the first). */
  readonly appHosts: readonly AppHost[]
  /** The host nginx runs on; the lock, the history and the canary state live there. */
  readonly nginxHost: SshTarget
  readonly login: SshLogin
  /** A bastion every SSH connection goes through. */
  readonly proxy?: { readonly target: SshTarget; readonly login: SshLogin }

  readonly app: string
  readonly image: string
  readonly strategy: Strategy
  /** Replicas per app host. */
  readonly replicas: number
  readonly ports: readonly number[]
  readonly containerPort: number
  /** '' (default bridge, port published on the upstream address), 'host', or a Docker network name. */
  readonly network: string
  readonly env: readonly EnvVar[]
  readonly runArgs: readonly string[]
  readonly pull: boolean
  readonly pullTimeoutSeconds: number
  readonly registry?: { readonly server: string; readonly username: string; readonly password: string }

  readonly health: {
    readonly path: string
    readonly status: readonly StatusRange[]
    readonly timeoutMs: number
    readonly intervalMs: number
  }

  /** The longest a drain may last; it ends as soon as the outgoing replicas have nothing in flight. */
  readonly drainSeconds: number
  /**
   * After a route, the longest the run waits for nginx's record of real requests to judge the new replicas
   * against the old ones (0: no judgement of real traffic).
   */
  readonly verifySeconds: number
  /**
   * What fails a new version as slower (input latency-threshold): on the same routes, attempts longer than
   * `factor` times the old version's p95 and `ms` above it, clearly more often than the old version's.
   * factor 0: latency is not judged.
   */
  readonly latencyThreshold: LatencyThreshold
  /**
   * The replaced replicas stay running, drained but ready, until every new replica has been routed this long,
   * while the new ones are watched and judged; then they are retired (0: retired at once).
   */
  readonly bakeSeconds: number
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
    /**
     * A client's first request is split by the share, then nginx pins the client (a cookie) to the version
     * that served it; false: every request is split on its own.
     */
    readonly sticky: boolean
    /** Requests that reach the canary whatever its share (a share of 0 is a preview only they reach). */
    readonly match?: CanaryMatch
  }

  readonly nginx: {
    /** auto: the nginx running on the nginx host if there is one, else a container (decided when nginx is read). */
    readonly mode: NginxMode | 'auto'
    /** How host mode runs nginx's privileged commands (container mode needs none: docker exec runs as root). */
    readonly sudo: SudoUse
    readonly scope: NginxScope
    readonly container: string
    readonly image: string
    /** The one file the action manages (inside the container in container mode). */
    readonly configPath: string
    readonly upstreamName: string
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
  /** What every request but the health path and the action's own answers with during maintenance (503). */
  readonly maintenanceMessage: string
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
  'pull-timeout': '600',
  'health-path': '/',
  'health-status': '200-399',
  'health-timeout': '60',
  'health-interval': '0.2',
  'drain-seconds': '5',
  'verify-seconds': '5',
  'latency-threshold': '2x+100ms',
  'bake-seconds': '30',
  'stop-timeout': '10',
  'batch-size': '1',
  'keep-previous': 'false',
  'canary-steps': '10,50,100',
  'canary-replicas': '1',
  'canary-interval': '60',
  'canary-max-error-rate': '1',
  'canary-sticky': 'true',
  'canary-match': '',
  'nginx-mode': 'auto',
  sudo: 'auto',
  'nginx-scope': 'site',
  'nginx-container': 'loadbalancer',
  'nginx-image': 'nginx:stable',
  listen: '80',
  'server-name': 'localhost',
  'lb-method': 'least_conn',
  weight: '10',
  'max-fails': '3',
  'fail-timeout': '30s',
  operation: 'deploy',
  'maintenance-message': 'Down for maintenance, back soon.',
  'dry-run': 'false',
  'rollback-on-failure': 'true',
  'lock-timeout': '300',
} as const satisfies Record<string, string>

/** Inputs whose action.yml default is an expression the runner evaluates, so the code sees the value. */
export const RUNNER_DEFAULTS = {
  'github-token': '${{ github.token }}',
} as const satisfies Record<string, string>

/** Defaults that depend on another input: action.yml leaves them empty and says so in the description. */
export const derivedDefaults = {
  configPath: (app: string): string => `/etc/nginx/conf.d/${app}.conf`,
  upstreamName: (app: string): string => `${app.replace(/[-.]/g, '_')}_replicas`,
}

/** Internal constants (not inputs): named here so their reasons sit in one place. */
export const LIMITS = {
  /** Where nginx-rollout keeps its locks, history and state, relative to the ssh user's home. */
  stateDir: '.nginx-rollout',
  /**
   * How long a deploy's port reservation on an app host lasts (the run releases it at its end; a run that died
   * leaves it to expire): until then no other app's deploy takes those ports.
   */
  portReservationSeconds: 3600,
  /** Plans a run makes when other deploys take its ports as it plans, before it gives up. */
  portReservationTries: 3,
  /** A cancelled run's way back drains the new replicas at most this long (the runner allows 7.5 s in all). */
  cancelDrainSeconds: 1,
  /** From the runner's first signal, how long a cancelled run may take to reach a consistent state. */
  cancelDeadlineMs: 7_000,
  /** Deploy history entries kept on the host. */
  historyEntries: 20,
  /** A lock whose heartbeat is older than this was left by a run that died. */
  lockStaleSeconds: 45,
  lockHeartbeatMs: 10_000,
  /** Heartbeats that fail in a row before the run stops changing anything (the lock may be taken over at lockStaleSeconds). */
  lockHeartbeatFailures: 2,
  lockPollMs: 1_000,
  /** How long a run waits for another app's nginx change on the same nginx to finish. */
  nginxLockSeconds: 60,
  /** How long nginx may take to start workers with the new config after the reload signal. */
  reloadVerifyMs: 15_000,
  /** Retry-After, in seconds, of the 503 answers during maintenance. */
  maintenanceRetryAfterSeconds: 120,
  /** Path on the listen port that answers the id of the app's config nginx is serving (site scope). */
  configIdPath: (app: string): string => `/.nginx-rollout/${app}/config-id`,
  /** Log lines of a failing replica shown in the summary. */
  failureLogLines: 30,
  /** A single health probe gives up after this long (or the gate's interval, whichever is larger). */
  probeTimeoutMs: 2_000,
  sshReadyTimeoutMs: 20_000,
  sshKeepaliveMs: 10_000,
  /**
   * SSH sessions (commands) open at once on one connection. OpenSSH's MaxSessions defaults to 10; one is
   * kept free for the lock's heartbeat, one for following nginx's record of the app's requests, one for the
   * session held for nginx's changes while a version is judged (Nginx.holdSession), and one as a margin: sshd
   * frees a session slot a moment after the client sees its channel close (seen here: with all ten in use, a
   * new channel was refused now and then).
   */
  sshSessions: 6,
  /**
   * A command whose session sshd refused (a slot not yet freed, or a MaxSessions lower than sshSessions + 3)
   * never started: it is asked for again this many times, waiting 50 ms longer each time (1.4 s in all).
   */
  sshSessionTries: 8,
  /** How long stopping a followed command waits for it to end before closing its channel. */
  followStopMs: 2_000,
  /** Forwarded TCP channels (health probes) open at once on one connection. */
  sshTunnels: 16,
  /** Every remote command that cannot pull gets this deadline; pulls get pull-timeout. */
  commandTimeoutSeconds: 120,
  /**
   * How long a change waits for the held session to start (Nginx.holdSession) before it runs as a command of
   * its own: about what starting one takes on a loaded host, so waiting costs no more than not waiting.
   */
  sessionReadyMs: 2_000,
  /** The client gives a command this long past its remote deadline before it gives up on the channel. */
  commandGraceSeconds: 10,
  /**
   * Verification of every route on real traffic (judge/compare.ts). A route's new replicas pass once this
   * many of their requests were judged without a clear failure (broken routes show long before).
   */
  verifyMinRequests: 50,
  /** Fewer errors than this never fail a version: a handful of 5xx is noise. */
  verifyMinErrors: 5,
  /** The old version needs this many requests in the record before the new one is compared with it. */
  verifyMinOldRequests: 20,
  /**
   * How many standard errors above the old version's failures (on the same routes) is clearly worse; high
   * because the verdict is taken again on every batch of lines (the false-alarm rate: see the README).
   */
  verifyWorseZ: 4,
  /** ...and the new version's failures must exceed those expected of the old version by at least this many. */
  verifyMinExcess: 4,
  /**
   * A new replica that answered 5xx and then got no request for this long while this many of the app's went
   * elsewhere was taken out by nginx (max_fails): its errors are judged with nginx's bar (see Judge.takenOut).
   */
  takenOutMs: 1_000,
  takenOutOthers: 20,
  /**
   * Fewer slow answers than this never fail a version (a slow one has many): a new replica on a busy host
   * answers its first requests slowly for a few seconds (6 of 10 at a 50% canary, measured under the fleet
   * suite's load), where 5 errors are already a pattern.
   */
  latencyMinSlow: 20,
  /** The old version's timed attempts a route needs before the new version's latency is judged on it. */
  latencyMinOldAttempts: 10,
  /**
   * A new replica's answers in this long after its route are not judged for latency (their errors are): it
   * just started, and the deploy itself (containers starting, nginx reloading) loads the host right then.
   */
  latencyWarmupMs: 3_000,
  /**
   * Slow requests that all came within this many seconds are a stall of the host, not a slower version,
   * unless the rest are clearly slower too (judge/compare.ts, withoutBurst): a burst of about a second failed
   * a good version in 2 of 19 blue-green runs under the benchmark's load.
   */
  latencyBurstSeconds: 3,
  /** Routes a version's tally keeps apart; past this many, new paths share one entry (a client chooses paths). */
  tallyMaxRoutes: 5_000,
  /**
   * Seconds of routes (a route's attempts in one second) a tally keeps for the burst rule: ~100 bytes each;
   * past it, attempts count without their second, and a burst among them is judged as any slow requests.
   */
  tallyMaxSpans: 200_000,
  /** A request's path is judged under its first this many characters (a route longer than that is cut). */
  routeMaxChars: 200,
  /** While a run judges a new version, a retried request moves on to another server for at most this long. */
  retrySeconds: 10,
  /** The most attempts a run keeps of nginx's record (the oldest go first): ~100 MB at most. */
  recordMaxAttempts: 400_000,
  /** With no old traffic to compare with, a 5xx rate of this many percent fails the new version on its own. */
  verifyAloneErrorRate: 50,
  /** How often the judgement looks at what nginx recorded. */
  judgeTickMs: 50,
  /** How often the judgement looks at the requests nginx is still waiting on (judge/open.ts). */
  openLookMs: 1_000,
  /**
   * A request to the new version counts as held open only past this wait, whatever the old version's times:
   * long enough that a version starting up, or a busy host, does not reach it on ordinary requests.
   */
  openMinMs: 5_000,
  /** A verification ends as not judged when no request at all reached the app within this long of a route. */
  verifyQuietMs: 1_000,
  /**
   * How long nginx's record runs at most before a route that leaves the old version no traffic, for the old
   * version's latency baseline (Judge.baseline).
   */
  baselineMs: 2_000,
  /**
   * ...and at least, even once every route seen that comes often has its bar: nginx records a request when it
   * ends, so a route whose requests take 0.4 s shows only after that. At half a second the benchmark's slow
   * route had no bar when its 10x slower version was switched to, and that version shipped in 1 of 3 runs.
   */
  baselineMinMs: 1_000,
  /** The new version's last seconds (a late crash) fail it at this many standard errors (looked at more often). */
  verifyRecentZ: 6,
  /** The new version's recent traffic (for a late crash) is what nginx recorded in about this long. */
  verifyRecentMs: 3_000,
  /** Fewer canary requests than this in a step's window cannot be judged against a 1% error budget. */
  canaryMinRequests: 50,
  /** How far above the stable error rate (in standard errors) counts as clearly worse. */
  canaryWorseZ: 3,
  /** Failed health probes in a row of a replica that took traffic that fail the deploy (a slow probe is not one). */
  watchProbeFailures: 3,
  /** The watch asks Docker about every routed replica once in this many rounds, to see restarts between probes. */
  watchDockerEveryRounds: 5,
  /** The app's traffic log is cut back to empty whenever it grows past this, while a run follows it. */
  trafficLogMaxBytes: 64 * 1024 * 1024,
  /** How often the traffic log is read on the nginx host while a run follows it. */
  followEveryMs: 50,
  /**
   * How long a follow of the traffic log may take to empty it and start (a command's start where nginx runs:
   * 0.25-0.4 s under the benchmark's load) before the judgement says it could not run.
   */
  followReadyMs: 20_000,
  /** The longest a run follows the traffic log (the command's deadline on the host). */
  followMaxSeconds: 6 * 3600,
  /** The app's traffic log, which nginx writes while a run judges its traffic (judge/). */
  canaryLogPath: (app: string): string => `/var/log/nginx/nginx-rollout-${app}.log`,
  /**
   * While a run judges a new version, nginx sends the app's requests to the replicas from before the run for
   * as long as this file exists (checked on each request: see template.ts, switchBack). Only root creates
   * files in nginx's log folder, so no other user of the host can steer a judgement with it.
   */
  switchBackFlagPath: (app: string): string => `/var/log/nginx/nginx-rollout-${app}.switched-back`,
  /** A drain polls the outgoing replicas' connections this often, and ends after this many empty polls in a row. */
  drainPollMs: 100,
  drainQuietPolls: 2,
  /**
   * keepalive_min_timeout (nginx >= 1.27.4, site scope): an idle keep-alive connection of a reloading worker
   * stays open this long and its next request is answered with Connection: close instead of being reset.
   * Those old workers may still route to outgoing replicas meanwhile, so a drain lasts at least this long.
   */
  keepaliveMinTimeoutSeconds: 1,
  /** The nginx version that introduced keepalive_min_timeout. */
  keepaliveMinTimeoutSince: [1, 27, 4] as const,
  /** One GitHub API request gives up after this long: recording a deploy must never hold one up. */
  githubRequestTimeoutMs: 15_000,
  /** Earlier deployments of the environment checked for one still marked active. */
  githubEarlierDeployments: 10,
  /** GitHub's limit on a deployment status description. */
  githubDescriptionChars: 140,
  /** Pushes of a pull request's canary shown in its comment, and kept in its record (older ones are never shown). */
  canaryPushesShown: 10,
  /**
   * Judged steps kept in a canary's record on the nginx host, the newest, for the canary and for each earlier
   * push: a pull request's canary gains some at every run, and its record must stay small enough to be written
   * and read in one command.
   */
  canaryObservationsKept: 50,
} as const
