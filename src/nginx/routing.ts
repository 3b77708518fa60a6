// Pure: how a canary's requests reach it when a share of requests is not enough for a web app. Two upstream
// pools (stable, canary) beside the app's plain upstream, and http-level maps that choose a pool per request:
// a request that matches canary-match goes to the canary; a client pinned (by a cookie nginx set) to a
// version still live goes to that version; anything else is split by the share, and the answer pins the
// client. Every value in here was validated by inputs.ts (names of letters, digits, _ and -).
import { createHash } from 'node:crypto'
import type { CanaryMatch, Config } from '../config.js'
import type { Split } from '../model.js'

/** A server line's parts, as the template's server views hold them. */
export interface PoolServer {
  readonly address: string
  readonly params: string
  readonly name: string
  readonly image: string
  readonly host: string
}

/**
 * nginx keeps every variable name in one hash whose buckets (variables_hash_bucket_size, 64 by default)
 * hold a name of at most 46 characters: longer ones fail nginx -t. Variables are named nr_<upstream>_<role>
 * (roles of at most 8 characters), or, for an upstream name over 35 characters, nr_ and a hash of it.
 */
const MAX_VARIABLE = 46
const LONGEST_ROLE = '_preview'.length

/** The names the managed file gives its pools and variables; docs/canary.md names them for upstream scope. */
export function routingNames(config: Config) {
  const upstream = config.nginx.upstreamName
  const named = `nr_${upstream}`
  const prefix =
    named.length + LONGEST_ROLE <= MAX_VARIABLE
      ? named
      : `nr_${createHash('sha256').update(upstream).digest('hex').slice(0, 10)}`
  const pinCookie = `nginx_rollout_${config.app.replace(/[-.]/g, '_')}`
  const match = config.canary.match
  return {
    stablePool: `${upstream}_stable`,
    canaryPool: `${upstream}_canary`,
    /** The variable a proxy_pass names: the upstream (pool) the request goes to. */
    upstreamVariable: `${prefix}_route`,
    /** The variable an `add_header Set-Cookie ... always` names: the pin to set ('' when the client has one). */
    setCookieVariable: `${prefix}_pin`,
    /** The preview link's cookie ('' unless the link's value is the match value). */
    previewCookieVariable: `${prefix}_preview`,
    prefix,
    pinCookie,
    /** The cookie the preview link sets: the match's own cookie, or one of the app's beside a header match. */
    previewCookie: match?.kind === 'cookie' ? match.name : `${pinCookie}_preview`,
  }
}

/** Whether requests are routed by pools: a canary split with pins or a match (otherwise weights alone split). */
export const routesByPools = (config: Config, split: Split | undefined): boolean =>
  split !== undefined && (config.canary.sticky || config.canary.match !== undefined)

/**
 * A pin's value: the version it names, so that a pin to a version no longer live matches nothing and falls
 * back to the split. Stable and canary differ by their first letter even when their images are the same
 * (a redeploy of one tag); a canary pin stays valid across the canary's steps, and after a promote the new
 * stable version has another value, so nobody is pinned to what a later canary replaces.
 */
export const pinValue = (role: 's' | 'c', image: string): string =>
  role + createHash('sha256').update(image).digest('hex').slice(0, 10)

const block = (head: string, lines: readonly string[]): string[] => [`${head} {`, ...lines.map((l) => `    ${l}`), '}']

const serverLines = (servers: readonly PoolServer[], suffix: string, note: string): string[] =>
  servers.map((s) => `server ${s.address} ${s.params}${suffix}; # ${s.name} ${s.image} on ${s.host}${note}`)

/** The matched requests' maps: the header (and the preview link's cookie), or the cookie alone. */
function matchMaps(names: ReturnType<typeof routingNames>, match: CanaryMatch, from: string): string[] {
  const to = (source: string, result: string, fallback: string) =>
    block(`map ${source} $${result}`, [`default $${fallback};`, `${match.value} ${names.canaryPool};`])
  const cookie = `$cookie_${names.previewCookie}`
  if (match.kind === 'cookie') return to(cookie, names.upstreamVariable, from)
  const header = `$http_${match.name.toLowerCase().replaceAll('-', '_')}`
  return [
    ...to(header, `${names.prefix}_matched`, from),
    ...to(cookie, names.upstreamVariable, `${names.prefix}_matched`),
  ]
}

/** The pin: checked against the live versions, and set (by the location) only when the client has no valid one. */
function pinMaps(names: ReturnType<typeof routingNames>, valid: readonly string[]): string[] {
  const cookie = `$cookie_${names.pinCookie}`
  // SameSite=Lax: the pin travels with a link followed from elsewhere (the first page), not with cross-site posts.
  const setCookie = `"${names.pinCookie}=$${names.prefix}_version; Path=/; HttpOnly; SameSite=Lax$${names.prefix}_secure"`
  return [
    ...block(`map ${cookie} $${names.prefix}_version`, [
      `default $${names.prefix}_split;`,
      ...valid.map((v) => `${v} ${v};`),
    ]),
    ...block(`map ${cookie} $${names.setCookieVariable}`, [`default ${setCookie};`, ...valid.map((v) => `${v} "";`)]),
  ]
}

export interface PoolsInput {
  readonly split: Split
  readonly stable: readonly PoolServer[]
  readonly canary: readonly PoolServer[]
  readonly stableImage: string
  readonly canaryImage: string
  /** The balancing directive inside each pool ('' for round robin). */
  readonly lbMethod: string
  /** Whether the balancing method takes backup servers. */
  readonly takesBackup: boolean
}

/**
 * The pools and the maps that choose one. The split is per request ($request_id): with pins it decides only a
 * client's first request; without, every request. A share of 0 (a preview) splits nobody to the canary and no
 * pin names it: only matching requests reach it.
 */
export function poolRouting(config: Config, p: PoolsInput): string {
  const names = routingNames(config)
  const stableKey = pinValue('s', p.stableImage)
  const canaryKey = pinValue('c', p.canaryImage)
  const share = p.split.percent > 0
  const lb = p.lbMethod ? [`${p.lbMethod};`] : []
  // A request the canary fails goes on to a stable replica, as it did in the one upstream (proxy_next_upstream).
  const fallback = p.takesBackup ? serverLines(p.stable, ' backup', ', takes what the canary fails') : []
  const version = config.canary.sticky ? `${names.prefix}_version` : `${names.prefix}_split`
  const pool = config.canary.match ? `${names.prefix}_pool` : names.upstreamVariable
  return [
    `# Canary routing: ${config.canary.match ? 'matching requests go to the canary; ' : ''}` +
      `${config.canary.sticky ? "a client's first request is split by the share, then a cookie pins it to the version that served it" : 'each request is split by the share'}.`,
    ...block(`upstream ${names.stablePool}`, [...lb, ...serverLines(p.stable, '', '')]),
    ...block(`upstream ${names.canaryPool}`, [...lb, ...serverLines(p.canary, '', ''), ...fallback]),
    ...block(`split_clients "\${request_id}" $${names.prefix}_split`, [
      ...(share ? [`${p.split.percent}% ${canaryKey};`] : []),
      `* ${stableKey};`,
    ]),
    ...(config.canary.sticky
      ? pinMaps(names, share ? [stableKey, canaryKey] : [stableKey])
      : block(`map $host $${names.setCookieVariable}`, ['default "";'])),
    ...block(`map $${version} $${pool}`, [
      `default ${names.stablePool};`,
      ...(share ? [`${canaryKey} ${names.canaryPool};`] : []),
    ]),
    ...(config.canary.match ? matchMaps(names, config.canary.match, pool) : []),
    // Cookies nginx sets carry Secure on TLS, so they are never sent in clear once the site is https.
    ...block(`map $scheme $${names.prefix}_secure`, ['default "";', 'https "; Secure";']),
    ...(config.canary.match
      ? previewCookieMap(names, config.canary.match)
      : block(`map $host $${names.previewCookieVariable}`, ['default "";'])),
  ].join('\n')
}

/**
 * The preview link's cookie: set only for the link with the match value (?value=...), so nobody pins
 * themselves to the preview by chance; the value is what the pull request's comment shows its readers.
 */
function previewCookieMap(names: ReturnType<typeof routingNames>, match: CanaryMatch): string[] {
  return block(`map $arg_value $${names.previewCookieVariable}`, [
    'default "";',
    `${match.value} "${names.previewCookie}=${match.value}; Path=/; HttpOnly; SameSite=Lax$${names.prefix}_secure";`,
  ])
}

/**
 * Upstream scope without pools: the variables the docs promise the user's server block stay defined (the
 * plain upstream, no pin), so a proxy_pass or add_header naming them works before and after any canary.
 */
export function plainRouting(config: Config): string {
  const names = routingNames(config)
  return [
    '# The variables a server block may name (docs/canary.md): no canary routing now, the plain upstream.',
    ...block(`map $host $${names.upstreamVariable}`, [`default ${config.nginx.upstreamName};`]),
    ...block(`map $host $${names.setCookieVariable}`, ['default "";']),
    ...block(`map $host $${names.previewCookieVariable}`, ['default "";']),
  ].join('\n')
}

/** The preview link, answered by nginx: sets the preview cookie (given the right value) and goes to `/`. */
export function previewLocation(config: Config): string {
  const names = routingNames(config)
  return [
    `    location = ${previewPath(config.app)} {`,
    '        access_log off;',
    '        add_header Cache-Control "no-store" always;',
    `        add_header Set-Cookie $${names.previewCookieVariable} always;`,
    '        return 302 /;',
    '    }',
  ].join('\n')
}

/** The path of the preview link (its query: ?value=<the match value>). */
export const previewPath = (app: string): string => `/.nginx-rollout/${app}/preview`

/**
 * What the live managed file does beyond weights, read from its maps (the status may run with other inputs
 * than the run that wrote it): the pin cookie, the header or cookie that reaches the canary.
 */
export function liveRouting(text: string): string[] {
  const pin = /^map \$cookie_(\w+) \$\w+_version \{$/m.exec(text)?.[1]
  const header = /^map \$http_(\w+) \$\w+_matched \{\n {4}default \$\w+;\n {4}(\S+) \w+;$/m.exec(text)
  const cookie = /^map \$cookie_(\w+) \$\w+_route \{\n {4}default \$\w+;\n {4}(\S+) \w+;$/m.exec(text)
  const preview = !/^ {4}\d+% c[0-9a-f]{10};$/m.test(text)
  return [
    ...(pin ? [`Clients are pinned to the version that first served them (cookie ${pin}).`] : []),
    ...(header ? [`Requests with header ${header[1].replaceAll('_', '-')}: ${header[2]} reach the canary.`] : []),
    ...(cookie
      ? [
          `Requests with cookie ${cookie[1]}=${cookie[2]} reach the canary${header ? ' (the preview link sets it)' : ''}.`,
        ]
      : []),
    ...((header || cookie) && preview ? ['The canary is a preview: no other request reaches it.'] : []),
  ]
}
