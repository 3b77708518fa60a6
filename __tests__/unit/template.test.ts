// The managed file: what the renderer writes for each scope and split, and what is read back from it.
import { createHash } from 'node:crypto'
import type { Config } from '../../src/config.js'
import type { Replica, Split } from '../../src/model.js'
import {
  configIdOf,
  ownershipOf,
  renderManagedFile,
  upstreamServers,
  type NginxFacts,
} from '../../src/nginx/template.js'
import { configFrom, replicaOf } from './fixtures.js'

const servers = [replicaOf(9201, 'shop:v1'), replicaOf(9202, 'shop:v2')]
const plain: NginxFacts = { keepaliveMinTimeout: false }
const split = (canary: Replica[], canaryWeight: number, stableWeight: number): Split => ({
  canary,
  percent: Math.round((100 * canaryWeight) / (canaryWeight + stableWeight)),
  canaryWeight,
  stableWeight,
})
const sha16 = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 16)
/** The managed file without its header line. */
const bodyOf = (text: string) => text.slice(text.indexOf('\n') + 1)

describe('renderManagedFile in site scope', () => {
  it('renders the upstream and the server block with its config-id location exactly', () => {
    const config = configFrom({
      'lb-method': 'ip_hash',
      weight: '5',
      'max-fails': '2',
      'fail-timeout': '10s',
      listen: '127.0.0.1:8080',
      'server-name': 'shop.example.com www.shop.example.com',
    })
    const { text, configId } = renderManagedFile(config, servers, undefined, plain)
    expect(configId).toMatch(/^[0-9a-f]{16}$/)
    expect(bodyOf(text)).toBe(
      [
        'upstream shop_replicas {',
        '    ip_hash;',
        '    server 127.0.0.1:9201 weight=5 max_fails=2 fail_timeout=10s; # shop-9201 shop:v1 on docker.example.com',
        '    server 127.0.0.1:9202 weight=5 max_fails=2 fail_timeout=10s; # shop-9202 shop:v2 on docker.example.com',
        '}',
        '',
        'server {',
        '    listen 127.0.0.1:8080;',
        '    server_name shop.example.com www.shop.example.com;',
        '',
        '    location = /.nginx-rollout/shop/config-id {',
        '        access_log off;',
        '        default_type text/plain;',
        `        if ($http_x_nginx_rollout_config != "${configId}") { return 404; }`,
        `        return 200 "${configId}\\n";`,
        '    }',
        '',
        '    location / {',
        '        proxy_pass http://shop_replicas;',
        '        proxy_http_version 1.1;',
        '        proxy_set_header Host $host;',
        '        proxy_set_header X-Real-IP $remote_addr;',
        '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
        '        proxy_set_header X-Forwarded-Proto $scheme;',
        '        proxy_next_upstream error timeout http_502 http_503;',
        '    }',
        '}',
        '',
      ].join('\n'),
    )
    expect(configIdOf(text)).toBe(configId)
  })

  it('starts with a header naming the app and the sha256 of the rest', () => {
    const { text } = renderManagedFile(configFrom(), servers, undefined, plain)
    const [first] = text.split('\n')
    expect(first).toBe(
      `# Managed by nginx-rollout for app shop (sha256 ${sha16(bodyOf(text))}). Every deploy rewrites this file: change the template (input nginx-template), not this file.`,
    )
  })

  it('gives the same servers the same text and id, and other weights another id', () => {
    const once = renderManagedFile(configFrom(), servers, undefined, plain)
    expect(renderManagedFile(configFrom(), servers, undefined, plain)).toEqual(once)
    expect(renderManagedFile(configFrom(), servers.slice(1), undefined, plain).configId).not.toBe(once.configId)
    expect(renderManagedFile(configFrom(), servers, split(servers.slice(1), 1, 9), plain).configId).not.toBe(
      once.configId,
    )
    expect(renderManagedFile(configFrom(), servers, split(servers.slice(1), 1, 4), plain).configId).not.toBe(
      renderManagedFile(configFrom(), servers, split(servers.slice(1), 1, 9), plain).configId,
    )
  })

  it.each([
    ['least_conn', '    least_conn;\n'],
    ['ip_hash', '    ip_hash;\n'],
    ['hash $request_uri consistent', '    hash $request_uri consistent;\n'],
    ['hash $remote_addr', '    hash $remote_addr;\n'],
    ['round_robin', ''],
  ])('writes lb-method %s as its directive', (method, line) => {
    expect(renderManagedFile(configFrom({ 'lb-method': method }), servers, undefined, plain).text).toContain(
      `upstream shop_replicas {\n${line}    server 127.0.0.1:9201`,
    )
  })

  it('writes keepalive_min_timeout only when the nginx version knows it', () => {
    const line = '    keepalive_min_timeout 1s;\n'
    expect(renderManagedFile(configFrom(), servers, undefined, { keepaliveMinTimeout: true }).text).toContain(
      `    server_name localhost;\n    # A reloading worker answers`,
    )
    expect(renderManagedFile(configFrom(), servers, undefined, { keepaliveMinTimeout: true }).text).toContain(line)
    expect(renderManagedFile(configFrom(), servers, undefined, plain).text).not.toContain('keepalive_min_timeout')
  })

  it('brackets IPv6 upstream addresses and names each replica with its host', () => {
    const rs = [
      replicaOf(9201, 'shop:v1', { host: '[2001:db8::11]:2222', address: 'fd00::11' }),
      replicaOf(9201, 'shop:v1', { host: '10.0.0.12', address: '10.1.0.12' }),
    ]
    expect(renderManagedFile(configFrom({ 'lb-method': 'round_robin' }), rs, undefined, plain).text).toContain(
      'upstream shop_replicas {\n' +
        '    server [fd00::11]:9201 weight=10 max_fails=3 fail_timeout=30s; # shop-9201 shop:v1 on [2001:db8::11]:2222\n' +
        '    server 10.1.0.12:9201 weight=10 max_fails=3 fail_timeout=30s; # shop-9201 shop:v1 on 10.0.0.12\n' +
        '}\n',
    )
  })

  it('refuses to render an upstream without servers', () => {
    expect(() => renderManagedFile(configFrom(), [], undefined, plain)).toThrow('an upstream needs at least one server')
  })
})

describe('renderManagedFile in upstream scope', () => {
  it('renders only the upstream: no server block, no listen, no config-id location', () => {
    const config = configFrom({ 'nginx-scope': 'upstream', 'upstream-name': 'shop_backend' })
    const { text } = renderManagedFile(config, servers, undefined, { keepaliveMinTimeout: true })
    expect(bodyOf(text)).toBe(
      [
        'upstream shop_backend {',
        '    least_conn;',
        '    server 127.0.0.1:9201 weight=10 max_fails=3 fail_timeout=30s; # shop-9201 shop:v1 on docker.example.com',
        '    server 127.0.0.1:9202 weight=10 max_fails=3 fail_timeout=30s; # shop-9202 shop:v2 on docker.example.com',
        '}',
        '',
        '# The variables a server block may name (docs/canary.md): no canary routing now, the plain upstream.',
        'map $host $nr_shop_backend_route {',
        '    default shop_backend;',
        '}',
        'map $host $nr_shop_backend_pin {',
        '    default "";',
        '}',
        'map $host $nr_shop_backend_preview {',
        '    default "";',
        '}',
        '',
      ].join('\n'),
    )
    expect(configIdOf(text)).toBeUndefined()
  })
})

describe('canary splits', () => {
  const canary = servers.slice(1)

  it('balances by weighted round robin instead of least_conn, and keeps ip_hash and hash', () => {
    expect(renderManagedFile(configFrom(), servers, split(canary, 1, 9), plain).text).toContain(
      'upstream shop_replicas {\n' +
        '    server 127.0.0.1:9201 weight=9 max_fails=3 fail_timeout=30s; # shop-9201 shop:v1 on docker.example.com\n' +
        '    server 127.0.0.1:9202 weight=1 max_fails=3 fail_timeout=30s; # shop-9202 shop:v2 on docker.example.com\n}',
    )
    expect(
      renderManagedFile(configFrom({ 'lb-method': 'ip_hash' }), servers, split(canary, 1, 9), plain).text,
    ).toContain('    ip_hash;\n    server 127.0.0.1:9201 weight=9')
    expect(
      renderManagedFile(configFrom({ 'lb-method': 'hash $cookie_user' }), servers, split(canary, 1, 9), plain).text,
    ).toContain('    hash $cookie_user;\n    server 127.0.0.1:9201 weight=9')
  })

  it('gives the canary weight to the canary replica on its own host only (hosts share port numbers)', () => {
    const a = replicaOf(9203, 'shop:v1', { host: '10.0.0.11', address: '10.1.0.11' })
    const b = replicaOf(9203, 'shop:v2', { host: '10.0.0.12', address: '10.1.0.12' })
    expect(upstreamServers(renderManagedFile(configFrom(), [a, b], split([b], 1, 4), plain).text)).toEqual(
      new Map([
        ['10.1.0.11:9203', 4],
        ['10.1.0.12:9203', 1],
      ]),
    )
  })

  it("logs the upstream's attempts to the app's own log, named after its upstream, only while a run judges traffic", () => {
    // Per-request splits (no pins): the one upstream; canary routing's pools are logged too (canary-routing.test.ts).
    const config = configFrom({ 'upstream-name': 'shop_backend', 'canary-sticky': 'false' })
    expect(renderManagedFile(config, servers, undefined, plain).text).not.toMatch(/log_format|access_log \/|map /)
    expect(renderManagedFile(config, servers, split(canary, 1, 9), plain).text).not.toMatch(/log_format/)
    const { text } = renderManagedFile(config, servers, split(canary, 1, 9), plain, { log: true })
    expect(text).toContain(
      '}\n\n' +
        "# The app's traffic log (only while a deploy or a canary step judges it): nginx's own fields, and the route escaped by nginx.\n" +
        `log_format nginx_rollout_shop_backend escape=json '{"upstream":"$upstream_addr","status":"$upstream_status","time":"$upstream_response_time","method":"$request_method","uri":"$uri"}';\n` +
        'map $proxy_host $nr_shop_backend_logged {\n' +
        '    default 0;\n' +
        '    shop_backend 1;\n' +
        '}\n' +
        'access_log /var/log/nginx/nginx-rollout-shop.log nginx_rollout_shop_backend if=$nr_shop_backend_logged;\n\n' +
        'server {\n',
    )
    expect(text).not.toContain('combined')
  })

  it("names the record's variable within nginx's bound (46 characters) for a long upstream name", () => {
    const config = configFrom({ app: 'customer-portal-web' })
    const { text } = renderManagedFile(config, servers, undefined, plain, { log: true })
    const variable = /map \$proxy_host \$(\S+) \{/.exec(text)?.[1] ?? ''
    expect(config.nginx.upstreamName.length).toBeGreaterThan(25)
    expect(variable.length).toBeGreaterThan(0)
    expect(variable.length).toBeLessThanOrEqual(46)
    expect(text).toContain(`if=$${variable};`)
  })

  it('retries an idempotent request on another server, the old backups last, only while a run judges traffic', () => {
    const config = configFrom({ 'upstream-name': 'shop_backend' })
    const old = [replicaOf(9201, 'shop:v1'), replicaOf(9202, 'shop:v1')]
    const next = [replicaOf(9203, 'shop:v2'), replicaOf(9204, 'shop:v2')]
    const judged = renderManagedFile(config, next, undefined, plain, { log: true, backup: old }).text
    expect(judged).toContain(
      '        proxy_next_upstream error timeout http_500 http_502 http_503 http_504; proxy_next_upstream_tries 4; proxy_next_upstream_timeout 10s;\n',
    )
    expect(judged).not.toContain('non_idempotent')
    // After the run, nginx's usual retries again.
    const after = renderManagedFile(config, next, undefined, plain).text
    expect(after).toContain('        proxy_next_upstream error timeout http_502 http_503;\n')
    expect(after).not.toMatch(/http_500|proxy_next_upstream_tries/)
  })

  it("adds no access_log but the canary's, whatever the configuration declares", () => {
    const config = configFrom({ 'nginx-scope': 'upstream' })
    const { text } = renderManagedFile(config, servers, split(canary, 1, 9), plain, { log: true })
    expect(text.match(/^access_log /gm)).toHaveLength(1)
    expect(text).toMatch(/if=\$nr_shop_replicas_logged;\n$/)
  })
})

describe('backups while a deploy is judged', () => {
  const old = [replicaOf(9201, 'shop:v1')]
  const next = [replicaOf(9203, 'shop:v2')]

  it('lists the replaced replicas as backup servers after the serving ones, with the same parameters', () => {
    const { text } = renderManagedFile(configFrom(), next, undefined, plain, { log: true, backup: old })
    expect(text).toContain(
      '    server 127.0.0.1:9203 weight=10 max_fails=3 fail_timeout=30s; # shop-9203 shop:v2 on docker.example.com\n' +
        '    server 127.0.0.1:9201 weight=10 max_fails=3 fail_timeout=30s backup; # shop-9201 shop:v1 on docker.example.com, ready to take the traffic back\n}',
    )
    expect(upstreamServers(text)).toEqual(
      new Map([
        ['127.0.0.1:9203', 10],
        ['127.0.0.1:9201', 10],
      ]),
    )
  })

  it('lists none with a balancing method nginx refuses backups for (hash, ip_hash)', () => {
    for (const method of ['ip_hash', 'hash $request_uri'])
      expect(
        renderManagedFile(configFrom({ 'lb-method': method }), next, undefined, plain, { backup: old }).text,
      ).not.toContain('backup')
  })
})

describe('the switch back while a deploy is judged', () => {
  const old = [replicaOf(9201, 'shop:v1')]
  const next = [replicaOf(9203, 'shop:v2')]
  const root: NginxFacts = { keepaliveMinTimeout: false, switchBack: true }
  const judged = (config: Config, facts = root, s?: Split) =>
    renderManagedFile(config, next, s, facts, { log: true, backup: old, previous: old }).text

  it('sends every request to the replicas from before the run while the flag exists, checked in the server block', () => {
    const text = judged(configFrom())
    expect(text).toContain(
      '    set $nr_shop_replicas_to shop_replicas;\n' +
        '    if (-f /var/log/nginx/nginx-rollout-shop.switched-back) { set $nr_shop_replicas_to shop_replicas_previous; }\n',
    )
    expect(text).toContain('        proxy_pass http://$nr_shop_replicas_to;\n')
    expect(text).toContain(
      'upstream shop_replicas_previous {\n    least_conn;\n' +
        '    server 127.0.0.1:9201 weight=10 max_fails=3 fail_timeout=30s; # shop-9201 shop:v1 on docker.example.com\n}',
    )
    // What nginx sends there is the app's: the record logs it.
    expect(text).toMatch(/map \$proxy_host \$nr_shop_replicas_logged \{[^}]*shop_replicas_previous 1;/)
    // A reader of the file finds the previous replicas where it found them before: the backups.
    expect(upstreamServers(text)).toEqual(
      new Map([
        ['127.0.0.1:9203', 10],
        ['127.0.0.1:9201', 10],
      ]),
    )
  })

  it("has none where it cannot work or is not the action's to add", () => {
    const none = (text: string) => {
      expect(text).not.toContain('switched-back')
      expect(text).not.toContain('_previous')
    }
    // nginx not read yet (no facts), a custom template, upstream scope, a hash method.
    none(judged(configFrom(), plain))
    none(
      judged({
        ...configFrom(),
        nginx: { ...configFrom().nginx, template: 'upstream {{upstream}} {}\n# {{proxyTarget}}\n' },
      }),
    )
    none(judged(configFrom({ 'nginx-scope': 'upstream' })))
    none(judged(configFrom({ 'lb-method': 'ip_hash' })))
    // A canary's split routes by its own rules.
    none(judged(configFrom(), root, split(next, 1, 9)))
    // Not judged: the file after the run.
    none(renderManagedFile(configFrom(), next, undefined, root).text)
    expect(renderManagedFile(configFrom(), next, undefined, root).text).toContain('proxy_pass http://shop_replicas;')
  })
})

describe('ownershipOf', () => {
  const { text } = renderManagedFile(configFrom(), servers, undefined, plain)

  it('knows its own file, and a file another app wrote', () => {
    expect(ownershipOf(text, 'shop')).toEqual({ kind: 'ours' })
    expect(ownershipOf(text, 'blog')).toEqual({ kind: 'other-app', app: 'shop' })
  })

  it('sees a hand edit anywhere after the header, even an appended line', () => {
    expect(ownershipOf(text.replace('weight=10', 'weight=11'), 'shop')).toEqual({ kind: 'edited' })
    expect(ownershipOf(`${text}# my note\n`, 'shop')).toEqual({ kind: 'edited' })
    expect(ownershipOf(text.replace(/sha256 [0-9a-f]{16}/, 'sha256 0000000000000000'), 'shop')).toEqual({
      kind: 'edited',
    })
  })

  it('calls a file without the header on its first line foreign, whatever it holds', () => {
    expect(ownershipOf('upstream shop_replicas { server 127.0.0.1:9201; }\n', 'shop')).toEqual({ kind: 'foreign' })
    expect(ownershipOf(`# my notes\n${text}`, 'shop')).toEqual({ kind: 'foreign' })
    expect(ownershipOf('', 'shop')).toEqual({ kind: 'foreign' })
  })
})

describe('upstreamServers', () => {
  it("reads a managed file's servers keyed address:port with their weights", () => {
    const rs = [
      replicaOf(9201, 'shop:v1', { address: 'fd00::11' }),
      replicaOf(9202, 'shop:v1', { address: '10.1.0.12' }),
    ]
    expect(upstreamServers(renderManagedFile(configFrom({ weight: '7' }), rs, undefined, plain).text)).toEqual(
      new Map([
        ['[fd00::11]:9201', 7],
        ['10.1.0.12:9202', 7],
      ]),
    )
  })

  it('reads hand-written server lines, and skips server blocks, server_name, comments and sockets', () => {
    const text = [
      'upstream x {',
      '  server backend.internal:8080;',
      '  server 10.0.0.1:80 max_fails=1 weight=3 fail_timeout=5s;',
      '  server 10.0.0.2:81; # weight=9 in a comment does not count',
      '  # server 10.0.0.3:82 weight=1;',
      '  server unix:/run/app.sock;',
      '}',
      'server {',
      '  server_name a:1;',
      '}',
    ].join('\n')
    expect(upstreamServers(text)).toEqual(
      new Map([
        ['backend.internal:8080', undefined],
        ['10.0.0.1:80', 3],
        ['10.0.0.2:81', undefined],
      ]),
    )
  })
})

describe('custom templates', () => {
  it('are not HTML-escaped, and get the header too', () => {
    const config: Config = {
      ...configFrom({ 'lb-method': 'hash $remote_addr' }),
      nginx: {
        ...configFrom().nginx,
        template: '{{#servers}}server {{address}} {{params}};{{/servers}} {{upstream}} hash=<{{lbMethod}}>\n',
        lbMethod: { kind: 'hash', key: '$remote_addr&x', consistent: false },
      },
    }
    const { text } = renderManagedFile(config, servers.slice(0, 1), undefined, plain)
    expect(bodyOf(text)).toBe(
      'server 127.0.0.1:9201 weight=10 max_fails=3 fail_timeout=30s; shop_replicas hash=<hash $remote_addr&x>\n',
    )
    expect(ownershipOf(text, 'shop')).toEqual({ kind: 'ours' })
    expect(configIdOf(text)).toBeUndefined()
  })

  it('can place the config-id location, and then the reload is verifiable', () => {
    const config: Config = {
      ...configFrom(),
      nginx: { ...configFrom().nginx, template: 'server {\n{{rolloutLocation}}\n}\n# {{rolloutPath}} {{configId}}\n' },
    }
    const { text, configId } = renderManagedFile(config, servers, undefined, plain)
    expect(configIdOf(text)).toBe(configId)
    expect(text).toContain(`# /.nginx-rollout/shop/config-id ${configId}\n`)
  })
})
