// Renders the one file the action manages, from a Mustache template: an includable file holding the app's
// upstream and (site scope) its server block, nothing global. nginx config is not HTML, so Mustache's HTML
// escaping is off: every value in the view was validated by inputs.ts (no quotes, semicolons, braces or
// newlines can arrive).
import { createHash } from 'node:crypto'
import Mustache from 'mustache'
import { LIMITS, type Config, type LbMethod } from '../config.js'
import { hostPort, mainImage, replicaKey, type Replica, type Split } from '../model.js'
import { plainRouting, poolRouting, previewLocation, routesByPools, routingNames } from './routing.js'

export const BUILT_IN_TEMPLATE = `upstream {{upstream}} {
{{#lbMethod}}
    {{lbMethod}};
{{/lbMethod}}
{{#servers}}
    server {{address}} {{params}}; # {{name}} {{image}} on {{host}}
{{/servers}}
{{#backupServers}}
    server {{address}} {{params}} backup; # {{name}} {{image}} on {{host}}, ready to take the traffic back
{{/backupServers}}
}
{{#previousUpstream}}

{{previousUpstream}}
{{/previousUpstream}}
{{#routing}}

{{routing}}
{{/routing}}
{{#canaryLog}}

{{canaryLog}}
{{/canaryLog}}
{{#site}}

server {
    listen {{listen}};
    server_name {{serverName}};
{{#keepaliveMinTimeout}}
    # A reloading worker answers an idle keep-alive connection's next request (with Connection: close) instead of resetting it.
    keepalive_min_timeout {{keepaliveMinTimeout}};
{{/keepaliveMinTimeout}}
{{#switchBack}}
{{switchBack}}
{{/switchBack}}

{{rolloutLocation}}
{{#previewLocation}}

{{previewLocation}}
{{/previewLocation}}
{{#maintenance}}

{{maintenance}}
{{/maintenance}}
{{^maintenance}}

    location / {
        proxy_pass http://{{proxyTarget}};
{{#setCookie}}
        add_header Set-Cookie {{setCookie}} always;
{{/setCookie}}
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        {{proxyNextUpstream}}
    }
{{/maintenance}}
}
{{/site}}
`

/** What the live nginx allows and already has, as read from it: the rendering depends on both. */
export interface NginxFacts {
  /** nginx >= 1.27.4 knows keepalive_min_timeout. */
  readonly keepaliveMinTimeout: boolean
  /** nginx was read, and the action's scripts may create the switch-back flag (as root, or through sudo). */
  readonly switchBack?: boolean
  /** The message the live managed file answers with during maintenance (absent: the app answers). */
  readonly maintenance?: string
}

/** The variables a template can use; the README documents each. */
export interface NginxView {
  app: string
  /** The upstream block's name. */
  upstream: string
  /** The balancing directive without its semicolon ('least_conn', 'hash $request_uri consistent'); empty for round robin. */
  lbMethod: string
  servers: ServerView[]
  /**
   * The replicas being replaced, drained but still running while a deploy judges the new ones: nginx sends
   * them a request only when every server above has failed it (empty when the balancing method allows none).
   */
  backupServers: ServerView[]
  /** True in site scope: render the server block. */
  site: boolean
  listen: string
  serverName: string
  weight: number
  maxFails: number
  failTimeout: string
  /** A location block that answers configId; nginx-rollout probes it to know the reload took effect. */
  rolloutLocation: string
  rolloutPath: string
  configId: string
  /**
   * http-level directives that log this app's upstream attempts while a run judges its traffic (a deploy's
   * routes and a canary's steps); '' otherwise.
   */
  canaryLog: string
  /** '1s' when the nginx version supports keepalive_min_timeout and the scope is site; '' otherwise. */
  keepaliveMinTimeout: string
  /**
   * http-level canary routing (docs/canary.md): the stable and canary pools and the maps choosing one per
   * request (pins, matches, the split); in upstream scope without a canary, the variables below, defined
   * plainly. '' otherwise.
   */
  routing: string
  /**
   * What proxy_pass names: the upstream, or (canary routing) the variable holding the chosen pool, or (the
   * switch back while judged) the variable switchBack sets.
   */
  proxyTarget: string
  /**
   * While a run judges a new version (built-in template, site scope, no canary split): the server-level lines
   * that send every request to previousUpstream for as long as the switch-back flag exists, so that a failing
   * verdict takes effect at once, before the reload that puts the previous file back. '' otherwise.
   */
  switchBack: string
  /** The upstream of the replicas from before the run, that switchBack sends requests to. '' otherwise. */
  previousUpstream: string
  /** The variable add_header Set-Cookie names to pin a client ('' when nothing pins). */
  setCookie: string
  /** Site scope with canary-match: the location of the preview link (sets the preview cookie). '' otherwise. */
  previewLocation: string
  /**
   * During maintenance (site scope): the locations that replace `location /`, the health path still proxied
   * and everything else answering 503 with the message. '' otherwise.
   */
  maintenance: string
  /**
   * The location's retry directives: while a run judges a new version, an idempotent request that a replica
   * answers 500/502/503/504 or drops is tried again on another (the old backups included); otherwise nginx's
   * usual `error timeout http_502 http_503`.
   */
  proxyNextUpstream: string
}

export interface ServerView {
  name: string
  image: string
  /** The app host the replica runs on. */
  host: string
  port: number
  address: string
  weight: number
  maxFails: number
  failTimeout: string
  /** 'weight=10 max_fails=3 fail_timeout=30s' */
  params: string
}

export const lbDirective = (m: LbMethod): string => {
  switch (m.kind) {
    case 'least_conn':
    case 'ip_hash':
      return m.kind
    case 'round_robin':
      return ''
    case 'hash':
      return `hash ${m.key}${m.consistent ? ' consistent' : ''}`
  }
}

/**
 * The header the action's probe names the config id it expects in: the config-id location answers only a
 * request that already knows the id, so no client can learn from it when a reload took effect.
 */
export const CONFIG_ID_HEADER = 'X-Nginx-Rollout-Config'

const rolloutLocation = (path: string, configId: string): string =>
  [
    '    location = ' + path + ' {',
    '        access_log off;',
    '        default_type text/plain;',
    `        if ($http_x_nginx_rollout_config != "${configId}") { return 404; }`,
    `        return 200 "${configId}\\n";`,
    '    }',
  ].join('\n')

/**
 * The line format of the app's traffic log, a JSON object written with `escape=json`: nginx's own fields for
 * every attempt (server, status, time), and the route the judgement compares like with like by (method and
 * path). The path is the one value a client chooses; escape=json makes it a JSON string nginx escaped, so no
 * client text can end a field or add one.
 */
export const TRAFFIC_LOG_FORMAT =
  '{"upstream":"$upstream_addr","status":"$upstream_status","time":"$upstream_response_time","method":"$request_method","uri":"$uri"}'

/** nginx's usual retries: a replica that refuses or drops the connection, or answers 502 or 503. */
const USUAL_RETRIES = 'proxy_next_upstream error timeout http_502 http_503;'

/**
 * While a run judges a new version: an idempotent request (nginx never retries POST, LOCK or PATCH without
 * `non_idempotent`) that a replica answers 500/502/503/504, drops or times out on is tried on the next
 * server, the old backups last, at most once per server and for at most LIMITS.retrySeconds. Listing the
 * statuses also makes them count for max_fails, so nginx takes a failing replica out by itself.
 */
const judgedRetries = (tries: number): string =>
  `proxy_next_upstream error timeout http_500 http_502 http_503 http_504; proxy_next_upstream_tries ${tries}; proxy_next_upstream_timeout ${LIMITS.retrySeconds}s;`

/**
 * The app's traffic log: a log format and file of the app's own, written only for requests proxied to its
 * upstream ($proxy_host is the name proxy_pass names), so another app's traffic never counts. On only while
 * a run judges traffic: every run that turns it on turns it off with its last change of the file.
 */
function canaryLogDirectives(config: Config, pooled: boolean, switching: boolean): string {
  const id = `nginx_rollout_${config.nginx.upstreamName}`
  // A variable's name is bounded (variables_hash_bucket_size): the routing names' prefix keeps it short.
  const logged = `$${routingNames(config).prefix}_logged`
  // With canary routing, proxy_pass names the pool, and after a switch back the previous upstream: their
  // requests are the app's too.
  const pools = [
    ...(pooled ? [routingNames(config).stablePool, routingNames(config).canaryPool] : []),
    ...(switching ? [previousUpstreamName(config)] : []),
  ]
  return [
    `# The app's traffic log (only while a deploy or a canary step judges it): nginx's own fields, and the route escaped by nginx.`,
    `log_format ${id} escape=json '${TRAFFIC_LOG_FORMAT}';`,
    `map $proxy_host ${logged} {`,
    '    default 0;',
    `    ${config.nginx.upstreamName} 1;`,
    ...pools.map((p) => `    ${p} 1;`),
    '}',
    `access_log ${LIMITS.canaryLogPath(config.app)} ${id} if=${logged};`,
  ].join('\n')
}

/** What a route adds to the upstream while a run judges real traffic. */
export interface Judging {
  /** Log the app's upstream attempts (the judgement reads them). */
  readonly log?: boolean
  /** Replicas nginx falls back to when every server fails (the old ones, drained but running). */
  readonly backup?: readonly Replica[]
  /** The replicas from before the run, still running: where the switch back sends requests at once. */
  readonly previous?: readonly Replica[]
}

/** Balancing methods that take backup servers (nginx refuses `backup` with hash, ip_hash and random). */
const takesBackup = (m: LbMethod): boolean => m.kind === 'least_conn' || m.kind === 'round_robin'

const previousUpstreamName = (config: Config): string => `${config.nginx.upstreamName}_previous`

/**
 * Whether a judged file has the switch back: with the built-in template (a custom one names its own
 * proxy_pass), in site scope (in upstream scope the user's server blocks name the upstream), without a
 * canary split or maintenance (their own routing), with a balancing method that takes backups (so every
 * previous replica is in the plain upstream too, and a reader of the file finds no other server), once nginx
 * was read (the scripts may create the flag: as root, or through sudo's two lines for it).
 */
function switchesBack(config: Config, split: Split | undefined, facts: NginxFacts, judging: Judging): boolean {
  const n = config.nginx
  return (
    Boolean(judging.log && judging.previous?.length && facts.switchBack) &&
    config.nginx.template === undefined &&
    n.scope === 'site' &&
    split === undefined &&
    maintenanceMessage(config, facts) === undefined &&
    takesBackup(n.lbMethod)
  )
}

/**
 * The switch back's parts. nginx checks the flag on each request (a stat, no reload), in the server block's
 * rewrite phase, where `if` with only `set` in it is safe; proxy_pass then names the upstream the variable holds.
 */
function switchBackView(config: Config, previous: readonly ServerView[]) {
  const n = config.nginx
  const variable = `$${routingNames(config).prefix}_to`
  const lb = lbDirective(n.lbMethod)
  return {
    proxyTarget: variable,
    switchBack: [
      '    # While a run judges a new version: once its verdict fails, the run creates this file and every request goes to the replicas from before it at once, before the reload that puts the previous file back.',
      `    set ${variable} ${n.upstreamName};`,
      `    if (-f ${LIMITS.switchBackFlagPath(config.app)}) { set ${variable} ${previousUpstreamName(config)}; }`,
    ].join('\n'),
    previousUpstream: [
      `# The replicas from before the run, where the switch back sends requests (see the server block).`,
      `upstream ${previousUpstreamName(config)} {`,
      ...(lb ? [`    ${lb};`] : []),
      ...previous.map(
        (s) =>
          `    server ${s.address} weight=${n.weight} max_fails=${n.maxFails} fail_timeout=${n.failTimeout}; # ${s.name} ${s.image} on ${s.host}`,
      ),
      '}',
    ].join('\n'),
  }
}

export function buildView(
  config: Config,
  servers: readonly Replica[],
  split: Split | undefined,
  facts: NginxFacts,
  judging: Judging = {},
): NginxView {
  const n = config.nginx
  const canary = new Set(split?.canary.map(replicaKey))
  // Without a split every server has the weight input; during a canary step the split's weights set the share.
  const weightOf = (r: Replica) =>
    split ? (canary.has(replicaKey(r)) ? split.canaryWeight : split.stableWeight) : n.weight
  // A preview (share 0) keeps its replicas in the plain upstream, marked down: nginx takes no weight of 0, and
  // the next run reads them as routed (they are live, reached through the canary pool).
  const paramsOf = (r: Replica) =>
    weightOf(r) === 0
      ? `weight=1 max_fails=${n.maxFails} fail_timeout=${n.failTimeout} down`
      : `weight=${weightOf(r)} max_fails=${n.maxFails} fail_timeout=${n.failTimeout}`
  const serverView = (r: Replica): ServerView => ({
    name: r.name,
    image: r.image,
    host: r.host,
    port: r.port,
    address: hostPort(r.address, r.port),
    weight: weightOf(r),
    maxFails: n.maxFails,
    failTimeout: n.failTimeout,
    params: paramsOf(r),
  })
  const backup = takesBackup(n.lbMethod) ? (judging.backup ?? []) : []
  const pooled = routesByPools(config, split)
  const switching = switchesBack(config, split, facts, judging)
  return {
    app: config.app,
    upstream: n.upstreamName,
    // least_conn only uses weights to break ties between servers with equally few connections, so under
    // concurrency it does not hold a canary's share: split steps balance by weighted round robin instead.
    // ip_hash and hash honour weights and keep each client on one version, so they stay.
    lbMethod: split && n.lbMethod.kind === 'least_conn' ? '' : lbDirective(n.lbMethod),
    servers: servers.map(serverView),
    backupServers: backup.map(serverView),
    site: n.scope === 'site',
    listen: n.listen,
    serverName: n.serverName,
    weight: n.weight,
    maxFails: n.maxFails,
    failTimeout: n.failTimeout,
    rolloutLocation: '',
    rolloutPath: LIMITS.configIdPath(config.app),
    configId: '',
    canaryLog: judging.log ? canaryLogDirectives(config, pooled, switching) : '',
    keepaliveMinTimeout: n.scope === 'site' && facts.keepaliveMinTimeout ? `${LIMITS.keepaliveMinTimeoutSeconds}s` : '',
    proxyNextUpstream: judging.log ? judgedRetries(servers.length + backup.length) : USUAL_RETRIES,
    ...routingView(config, servers, pooled ? split : undefined),
    ...(switching
      ? switchBackView(config, (judging.previous ?? []).map(serverView))
      : { switchBack: '', previousUpstream: '' }),
    maintenance:
      n.scope === 'site'
        ? maintenanceLocations(config, facts, pooled ? '$' + routingNames(config).upstreamVariable : n.upstreamName)
        : '',
  }
}

/** The message maintenance answers with after this run: turned on or off by its operation, else as found. */
function maintenanceMessage(config: Config, facts: NginxFacts): string | undefined {
  if (config.operation === 'maintenance') return config.maintenanceMessage
  if (config.operation === 'resume') return undefined
  return facts.maintenance
}

const MAINTENANCE_MARK = '    # nginx-rollout maintenance: operation resume ends it.'

/**
 * The health path stays proxied (monitors and load balancers in front keep seeing the app's own health),
 * and the config-id location above stays: the action's probes are unaffected. Every other request answers
 * 503 with Retry-After. The message was validated (no quote, backslash or $).
 */
function maintenanceLocations(config: Config, facts: NginxFacts, target: string): string {
  const message = maintenanceMessage(config, facts)
  if (message === undefined) return ''
  const health = config.health.path.split('?')[0]
  // A health path of / is the home page: it shows the maintenance answer too.
  const healthLocation =
    health === '/'
      ? []
      : [
          `    location = ${health} {`,
          `        proxy_pass http://${target};`,
          '        proxy_http_version 1.1;',
          '        proxy_set_header Host $host;',
          '    }',
          '',
        ]
  return [
    MAINTENANCE_MARK,
    ...healthLocation,
    '    location / {',
    `        add_header Retry-After ${LIMITS.maintenanceRetryAfterSeconds} always;`,
    '        add_header Cache-Control "no-store" always;',
    '        default_type text/plain;',
    `        return 503 "${message}\\n";`,
    '    }',
  ].join('\n')
}

/** The maintenance message a managed file answers with, or undefined when it is not in maintenance. */
export const maintenanceOf = (text: string): string | undefined =>
  text.includes(MAINTENANCE_MARK) ? /\n {8}return 503 "([^"\\]*)\\n";/.exec(text)?.[1] : undefined

/** The canary routing's part of the view: pools and maps with a pooled split, plain names otherwise. */
function routingView(config: Config, servers: readonly Replica[], split: Split | undefined) {
  const names = routingNames(config)
  const upstreamScope = config.nginx.scope === 'upstream'
  if (!split)
    return {
      routing: upstreamScope ? plainRouting(config) : '',
      proxyTarget: config.nginx.upstreamName,
      setCookie: '',
      previewLocation: '',
    }
  const n = config.nginx
  const isCanary = new Set(split.canary.map(replicaKey))
  const poolServer = (r: Replica) => ({
    ...r,
    address: hostPort(r.address, r.port),
    params: `weight=${n.weight} max_fails=${n.maxFails} fail_timeout=${n.failTimeout}`,
  })
  const stable = servers.filter((r) => !isCanary.has(replicaKey(r)))
  const routing = poolRouting(config, {
    split,
    stable: stable.map(poolServer),
    canary: split.canary.map(poolServer),
    stableImage: mainImage(stable),
    canaryImage: mainImage(split.canary),
    lbMethod: lbDirective(n.lbMethod),
    takesBackup: takesBackup(n.lbMethod),
  })
  return {
    routing,
    proxyTarget: `$${names.upstreamVariable}`,
    setCookie: config.canary.sticky ? `$${names.setCookieVariable}` : '',
    previewLocation: config.canary.match && !upstreamScope ? previewLocation(config) : '',
  }
}

const renderRaw = (template: string, view: NginxView): string =>
  Mustache.render(template, view, {}, { escape: (v: unknown) => String(v) })

const sha16 = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 16)

const HEADER = /^# Managed by nginx-rollout for app (\S+) \(sha256 ([0-9a-f]{16})\)\..*\n/

/** The first line of every managed file: whose it is, and a hash of the rest, so a hand edit shows. */
const header = (app: string, body: string): string =>
  `# Managed by nginx-rollout for app ${app} (sha256 ${sha16(body)}). Every deploy rewrites this file: change the template (input nginx-template), not this file.\n`

/**
 * Renders the managed file. The config id is a hash of the body rendered without it, so the same servers
 * give the same text (a dry run's diff is stable) and a reload can be verified by asking nginx for the id.
 */
export function renderManagedFile(
  config: Config,
  servers: readonly Replica[],
  split: Split | undefined,
  facts: NginxFacts,
  judging: Judging = {},
): { text: string; configId: string } {
  if (!servers.length) throw new Error('an upstream needs at least one server')
  const template = config.nginx.template ?? BUILT_IN_TEMPLATE
  const view = buildView(config, servers, split, facts, judging)
  const configId = sha16(renderRaw(template, view))
  const body = renderRaw(template, { ...view, configId, rolloutLocation: rolloutLocation(view.rolloutPath, configId) })
  return { text: header(config.app, body) + body, configId }
}

/** Who wrote the text at the managed path: this app's deploys, another app's, a hand edit of either, or someone else. */
export type Ownership = { kind: 'ours' } | { kind: 'edited' } | { kind: 'other-app'; app: string } | { kind: 'foreign' }

export function ownershipOf(text: string, app: string): Ownership {
  const m = HEADER.exec(text)
  if (!m) return { kind: 'foreign' }
  if (m[1] !== app) return { kind: 'other-app', app: m[1] }
  return sha16(text.slice(m[0].length)) === m[2] ? { kind: 'ours' } : { kind: 'edited' }
}

/** The id in a managed file's config-id location, or undefined (a custom template without it). */
export const configIdOf = (text: string): string | undefined =>
  /location = \/\.nginx-rollout\/[^ ]+\/config-id \{(?:[^}]|\{ return 404; \})*return 200 "([0-9a-f]+)\\n";/.exec(
    text,
  )?.[1]

/** The `server address:port [weight=N]` lines of a managed file, keyed 'address:port' (weight undefined when not written). */
export function upstreamServers(text: string): Map<string, number | undefined> {
  const servers = new Map<string, number | undefined>()
  // The first line of a server counts: the plain upstream's, which comes before the canary pools'.
  for (const m of text.matchAll(/^\s*server\s+(\[[^\]]+\]|[^\s:;]+):(\d+)\b(?:[^;\n]*?\bweight=(\d+))?/gm))
    if (!servers.has(`${m[1]}:${m[2]}`)) servers.set(`${m[1]}:${m[2]}`, m[3] === undefined ? undefined : Number(m[3]))
  return servers
}
