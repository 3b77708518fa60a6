// Canary routing (issue 27): sticky pins, canary-match and previews, as rendered into the managed file, and
// every variant accepted by this machine's nginx (nginx -t on a temporary configuration).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { InputName } from '../../src/inputs.js'
import { renderManagedFile, upstreamServers, type NginxFacts } from '../../src/nginx/template.js'
import { renderCanaryComment } from '../../src/github/comment.js'
import { liveRouting, pinValue } from '../../src/nginx/routing.js'
import { splitFor } from '../../src/plan/canary.js'
import { configFrom, replicaOf } from './fixtures.js'

const stable = [replicaOf(9201, 'shop:v1'), replicaOf(9202, 'shop:v1')]
const canary = [replicaOf(9203, 'shop:v2')]
const all = [...stable, ...canary]
const plain: NginxFacts = { keepaliveMinTimeout: false }
const S = pinValue('s', 'shop:v1')
const C = pinValue('c', 'shop:v2')

const render = (inputs: Partial<Record<InputName, string>>, percent = 20, log = false) =>
  renderManagedFile(configFrom(inputs), all, splitFor(percent, canary, stable.length), plain, { log }).text
const bodyOf = (text: string) => text.slice(text.indexOf('\n') + 1)

const POOLS = [
  'upstream shop_replicas_stable {',
  '    least_conn;',
  '    server 127.0.0.1:9201 weight=10 max_fails=3 fail_timeout=30s; # shop-9201 shop:v1 on docker.example.com',
  '    server 127.0.0.1:9202 weight=10 max_fails=3 fail_timeout=30s; # shop-9202 shop:v1 on docker.example.com',
  '}',
  'upstream shop_replicas_canary {',
  '    least_conn;',
  '    server 127.0.0.1:9203 weight=10 max_fails=3 fail_timeout=30s; # shop-9203 shop:v2 on docker.example.com',
  '    server 127.0.0.1:9201 weight=10 max_fails=3 fail_timeout=30s backup; # shop-9201 shop:v1 on docker.example.com, takes what the canary fails',
  '    server 127.0.0.1:9202 weight=10 max_fails=3 fail_timeout=30s backup; # shop-9202 shop:v1 on docker.example.com, takes what the canary fails',
  '}',
]
const SECURE = ['map $scheme $nr_shop_replicas_secure {', '    default "";', '    https "; Secure";', '}']
const LOCATION_TAIL = [
  '        proxy_http_version 1.1;',
  '        proxy_set_header Host $host;',
  '        proxy_set_header X-Real-IP $remote_addr;',
  '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
  '        proxy_set_header X-Forwarded-Proto $scheme;',
  '        proxy_next_upstream error timeout http_502 http_503;',
  '    }',
  '}',
  '',
]
const configIdLocation = (text: string) => {
  const id = /return 200 "([0-9a-f]+)\\n"/.exec(text)?.[1]
  return [
    '    location = /.nginx-rollout/shop/config-id {',
    '        access_log off;',
    '        default_type text/plain;',
    `        if ($http_x_nginx_rollout_config != "${id}") { return 404; }`,
    `        return 200 "${id}\\n";`,
    '    }',
  ]
}

describe('sticky canary (the default)', () => {
  it('splits the first request by the share, pins the client with a cookie named after the app, exactly', () => {
    const text = render({})
    expect(bodyOf(text)).toBe(
      [
        'upstream shop_replicas {',
        '    server 127.0.0.1:9201 weight=2 max_fails=3 fail_timeout=30s; # shop-9201 shop:v1 on docker.example.com',
        '    server 127.0.0.1:9202 weight=2 max_fails=3 fail_timeout=30s; # shop-9202 shop:v1 on docker.example.com',
        '    server 127.0.0.1:9203 weight=1 max_fails=3 fail_timeout=30s; # shop-9203 shop:v2 on docker.example.com',
        '}',
        '',
        "# Canary routing: a client's first request is split by the share, then a cookie pins it to the version that served it.",
        ...POOLS,
        'split_clients "${request_id}" $nr_shop_replicas_split {',
        `    20% ${C};`,
        `    * ${S};`,
        '}',
        'map $cookie_nginx_rollout_shop $nr_shop_replicas_version {',
        '    default $nr_shop_replicas_split;',
        `    ${S} ${S};`,
        `    ${C} ${C};`,
        '}',
        'map $cookie_nginx_rollout_shop $nr_shop_replicas_pin {',
        '    default "nginx_rollout_shop=$nr_shop_replicas_version; Path=/; HttpOnly; SameSite=Lax$nr_shop_replicas_secure";',
        `    ${S} "";`,
        `    ${C} "";`,
        '}',
        'map $nr_shop_replicas_version $nr_shop_replicas_route {',
        '    default shop_replicas_stable;',
        `    ${C} shop_replicas_canary;`,
        '}',
        ...SECURE,
        'map $host $nr_shop_replicas_preview {',
        '    default "";',
        '}',
        '',
        'server {',
        '    listen 80;',
        '    server_name localhost;',
        '',
        ...configIdLocation(text),
        '',
        '    location / {',
        '        proxy_pass http://$nr_shop_replicas_route;',
        '        add_header Set-Cookie $nr_shop_replicas_pin always;',
        ...LOCATION_TAIL,
      ].join('\n'),
    )
  })

  it('names pins by version: the canary pin stays valid across its steps, and differs from stable with one image', () => {
    expect(render({}, 50)).toContain(`    ${C} ${C};`)
    expect(render({}, 50)).toContain(`    50% ${C};`)
    expect(pinValue('s', 'shop:v1')).not.toBe(pinValue('c', 'shop:v1'))
    expect(pinValue('c', 'shop:v2')).toMatch(/^c[0-9a-f]{10}$/)
  })

  it('keeps no pin routing once no split is live (a promoted or aborted canary): every pin falls back to the upstream', () => {
    const text = renderManagedFile(configFrom(), all, undefined, plain).text
    expect(text).toContain('proxy_pass http://shop_replicas;')
    expect(text).not.toMatch(/split_clients|Set-Cookie|_stable|_canary/)
  })

  it("reads the plain upstream's servers and weights as the routes, not the pools'", () => {
    expect(upstreamServers(render({}))).toEqual(
      new Map([
        ['127.0.0.1:9201', 2],
        ['127.0.0.1:9202', 2],
        ['127.0.0.1:9203', 1],
      ]),
    )
  })

  it("logs the pools' requests as the app's while a run judges them", () => {
    expect(render({}, 20, true)).toContain(
      'map $proxy_host $nr_shop_replicas_logged {\n' +
        '    default 0;\n' +
        '    shop_replicas 1;\n' +
        '    shop_replicas_stable 1;\n' +
        '    shop_replicas_canary 1;\n' +
        '}\n',
    )
  })
})

describe('canary-sticky: false', () => {
  it('splits each request by weights in the one upstream, as before (no pools, no cookie)', () => {
    const text = render({ 'canary-sticky': 'false' })
    expect(text).toContain('proxy_pass http://shop_replicas;')
    expect(text).not.toMatch(/split_clients|Set-Cookie|map /)
  })

  it('with a match, splits per request in pools and sets no cookie', () => {
    const text = render({ 'canary-sticky': 'false', 'canary-match': 'cookie beta=yes' })
    expect(text).toContain(`map $nr_shop_replicas_split $nr_shop_replicas_pool {`)
    expect(text).toContain('map $host $nr_shop_replicas_pin {\n    default "";\n}')
    expect(text).not.toContain('add_header Set-Cookie $nr_shop_replicas_pin')
  })
})

describe('canary-match and previews', () => {
  it('sends a matching header, or the preview link cookie, to the canary whatever the share', () => {
    const text = render({ 'canary-match': 'header X-Preview=pr-7' })
    expect(text).toContain(
      [
        'map $nr_shop_replicas_version $nr_shop_replicas_pool {',
        '    default shop_replicas_stable;',
        `    ${C} shop_replicas_canary;`,
        '}',
        'map $http_x_preview $nr_shop_replicas_matched {',
        '    default $nr_shop_replicas_pool;',
        '    pr-7 shop_replicas_canary;',
        '}',
        'map $cookie_nginx_rollout_shop_preview $nr_shop_replicas_route {',
        '    default $nr_shop_replicas_matched;',
        '    pr-7 shop_replicas_canary;',
        '}',
        ...SECURE,
        'map $arg_value $nr_shop_replicas_preview {',
        '    default "";',
        '    pr-7 "nginx_rollout_shop_preview=pr-7; Path=/; HttpOnly; SameSite=Lax$nr_shop_replicas_secure";',
        '}',
      ].join('\n'),
    )
    // The link, answered by nginx: the cookie only for the right value, then to `/`.
    expect(text).toContain(
      [
        '    location = /.nginx-rollout/shop/preview {',
        '        access_log off;',
        '        add_header Cache-Control "no-store" always;',
        '        add_header Set-Cookie $nr_shop_replicas_preview always;',
        '        return 302 /;',
        '    }',
      ].join('\n'),
    )
  })

  it('with a cookie match, the link sets that cookie and the cookie alone reaches the canary', () => {
    const text = render({ 'canary-match': 'cookie beta=yes' })
    expect(text).toContain(
      'map $cookie_beta $nr_shop_replicas_route {\n' +
        '    default $nr_shop_replicas_pool;\n' +
        '    yes shop_replicas_canary;\n}',
    )
    expect(text).toContain('    yes "beta=yes; Path=/; HttpOnly; SameSite=Lax$nr_shop_replicas_secure";')
    // No header decides the route (the config-id location's own header is the action's probe's).
    expect(text.replaceAll('$http_x_nginx_rollout_config', '')).not.toContain('$http_')
  })

  it('a preview (share 0) splits nobody to the canary, pins nobody to it, and keeps it down in the plain upstream', () => {
    const text = render({ 'canary-steps': '0', 'canary-match': 'header X-Preview=pr-7' }, 0)
    expect(text).toContain(
      '    server 127.0.0.1:9203 weight=1 max_fails=3 fail_timeout=30s down; # shop-9203 shop:v2 on docker.example.com\n',
    )
    expect(text).toContain(`split_clients "\${request_id}" $nr_shop_replicas_split {\n    * ${S};\n}`)
    expect(text).not.toContain(`${C};`)
    expect(text).not.toContain(`${C} shop_replicas_canary`)
    expect(text).toContain('    pr-7 shop_replicas_canary;')
    expect(upstreamServers(text).has('127.0.0.1:9203')).toBe(true)
  })
})

describe('upstream scope', () => {
  it("offers the pool variable and the pin header's variable to the user's server block; no location of its own", () => {
    const text = render({ 'nginx-scope': 'upstream', 'canary-match': 'header X-Preview=pr-7' })
    expect(text).toContain('map $cookie_nginx_rollout_shop_preview $nr_shop_replicas_route {')
    expect(text).toContain('map $cookie_nginx_rollout_shop $nr_shop_replicas_pin {')
    expect(text).toContain('map $arg_value $nr_shop_replicas_preview {')
    expect(text).not.toMatch(/server \{|location/)
    // The plain upstream keeps its weights: a proxy_pass naming it splits per request, as before.
    expect(text).toContain('upstream shop_replicas {\n    server 127.0.0.1:9201 weight=2')
  })
})

/** nginx -t of a managed file, included in http{} beside a server block that names its variables. */
function nginxAccepts(text: string, serverBlock: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'nr-routing-'))
  try {
    writeFileSync(join(dir, 'app.conf'), text.replaceAll('/var/log/nginx/', `${dir}/`))
    writeFileSync(join(dir, 'nginx.conf'), `events {}\nhttp {\n    include ${dir}/app.conf;\n${serverBlock}\n}\n`)
    execFileSync(
      '/usr/sbin/nginx',
      ['-t', '-q', '-p', dir, '-c', join(dir, 'nginx.conf'), '-g', `pid ${dir}/nginx.pid;`],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const USER_SERVER = `    server {
        listen 127.0.0.1:18999;
        location / {
            proxy_pass http://$nr_shop_replicas_route;
            add_header Set-Cookie $nr_shop_replicas_pin always;
        }
        location = /preview {
            add_header Set-Cookie $nr_shop_replicas_preview always;
            return 302 /;
        }
    }`

describe('nginx -t accepts every variant', () => {
  const variants: [string, Partial<Record<InputName, string>>, number][] = [
    ['sticky', {}, 20],
    ['sticky with a header match', { 'canary-match': 'header X-Preview=pr-7' }, 20],
    ['sticky with a cookie match', { 'canary-match': 'cookie beta=yes' }, 50],
    ['per request with a match', { 'canary-sticky': 'false', 'canary-match': 'header X-Beta=1' }, 10],
    ['per request', { 'canary-sticky': 'false' }, 10],
    ['a preview', { 'canary-steps': '0', 'canary-match': 'header X-Preview=pr-7' }, 0],
    ['ip_hash in the pools', { 'lb-method': 'ip_hash' }, 20],
    ['hash in the pools', { 'lb-method': 'hash $request_uri consistent' }, 20],
  ]
  it.each(variants)('site scope: %s, judged', (_, inputs, percent) => {
    expect(() => nginxAccepts(render({ ...inputs, listen: '127.0.0.1:18998' }, percent, true), '')).not.toThrow()
  })
  it.each(variants)("upstream scope: %s, named by the user's server block", (_, inputs, percent) => {
    expect(() =>
      nginxAccepts(render({ ...inputs, 'nginx-scope': 'upstream' }, percent, true), USER_SERVER),
    ).not.toThrow()
  })
  it("upstream scope without a canary: the user's server block's variables are defined", () => {
    const text = renderManagedFile(configFrom({ 'nginx-scope': 'upstream' }), stable, undefined, plain).text
    expect(() => nginxAccepts(text, USER_SERVER)).not.toThrow()
  })
})

describe('long names', () => {
  it('keeps every variable name within what nginx holds (46 characters), even for the longest upstream name', () => {
    const app = 'a'.repeat(48)
    const config = { app, 'upstream-name': 'u'.repeat(57), 'canary-match': 'header X-Preview=pr-7' }
    const text = render(config)
    const variables = [...text.matchAll(/\$([A-Za-z0-9_]+)/g)].map((m) => m[1])
    const declared = variables.filter((v) => !/^(cookie|http|arg|scheme|host|request_id|proxy_host)(_|$)/.test(v))
    expect(declared.length).toBeGreaterThan(5)
    for (const v of declared) expect([v, v.length <= 46]).toEqual([v, true])
    expect(text).toMatch(/\$nr_[0-9a-f]{10}_route;/)
    expect(() => nginxAccepts(text.replace(/listen 80;/, 'listen 127.0.0.1:18997;'), '')).not.toThrow()
  })
})

describe('what status and the pull-request comment say', () => {
  it('reads pins, the match and a preview back from the live file', () => {
    expect(liveRouting(render({}))).toEqual([
      'Clients are pinned to the version that first served them (cookie nginx_rollout_shop).',
    ])
    expect(liveRouting(render({ 'canary-steps': '0', 'canary-match': 'header X-Preview=pr-7' }, 0))).toEqual([
      'Clients are pinned to the version that first served them (cookie nginx_rollout_shop).',
      'Requests with header x-preview: pr-7 reach the canary.',
      'Requests with cookie nginx_rollout_shop_preview=pr-7 reach the canary (the preview link sets it).',
      'The canary is a preview: no other request reaches it.',
    ])
    expect(liveRouting(render({ 'canary-sticky': 'false', 'canary-match': 'cookie beta=yes' }))).toEqual([
      'Requests with cookie beta=yes reach the canary.',
    ])
    expect(liveRouting(renderManagedFile(configFrom(), all, undefined, plain).text)).toEqual([])
  })

  const view = {
    app: 'shop',
    where: 'production',
    operation: 'deploy' as const,
    result: 'paused' as const,
    canaryImage: 'shop:v2',
    stableImage: 'shop:v1',
    canaryWeight: '0',
    observations: [],
    at: '2026-12-06T17:00:00.000Z',
  }
  it('tells a preview’s readers the header and the link, and that nobody else reaches it', () => {
    const body = renderCanaryComment({
      ...view,
      reach: {
        match: { kind: 'header', name: 'X-Preview', value: 'pr-7' },
        link: 'https://shop.example.com/.nginx-rollout/shop/preview?value=pr-7',
      },
    })
    expect(body).toContain(
      '**Reach the canary on purpose:** send the header `X-Preview: pr-7` or open [the preview link](https://shop.example.com/.nginx-rollout/shop/preview?value=pr-7): ' +
        'nginx sets the cookie and sends you to `/`, and that browser reaches the canary until the cookie is deleted. Nobody else reaches it: this canary is a preview.',
    )
  })

  it('names the share when the canary has one, and says nothing once it is gone', () => {
    const reach = {
      match: { kind: 'cookie' as const, name: 'beta', value: 'yes' },
      link: '/.nginx-rollout/shop/preview?value=yes',
    }
    expect(renderCanaryComment({ ...view, canaryWeight: '10', reach })).toContain(
      "send the cookie `beta=yes` or open `/.nginx-rollout/shop/preview?value=yes` on the app's host: nginx sets the cookie",
    )
    expect(renderCanaryComment({ ...view, canaryWeight: '10', reach })).toContain(
      'Other requests reach it by its share (10%).',
    )
    expect(renderCanaryComment({ ...view, result: 'deployed', reach })).not.toContain('Reach the canary')
  })
})
