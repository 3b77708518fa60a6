// The rendered managed file in a real nginx (nginx -t), included where it belongs: in the http block.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { LIMITS } from '../../src/config.js'
import { InputError, type InputName } from '../../src/inputs.js'
import type { Replica, Split } from '../../src/model.js'
import { unifiedDiff } from '../../src/nginx/diff.js'
import { renderManagedFile, type NginxFacts } from '../../src/nginx/template.js'
import { configFrom, replicaOf } from './fixtures.js'

const servers = [replicaOf(9201, 'shop:v1'), replicaOf(9202, 'shop:v2')]
const plain: NginxFacts = { keepaliveMinTimeout: false }
const split = (canary: Replica[], canaryWeight: number, stableWeight: number): Split => ({
  canary,
  percent: Math.round((100 * canaryWeight) / (canaryWeight + stableWeight)),
  canaryWeight,
  stableWeight,
})

const NGINX = '/usr/sbin/nginx' // installed by scripts/testhost/up.sh (Debian nginx-light)

/** Writes the managed files (canary logs redirected into dir) and a main config including them, and runs nginx -t. */
function nginxTest(dir: string, managed: ReadonlyArray<{ app: string; text: string }>, extraHttp = ''): void {
  const includes = managed.map(({ app, text }, i) => {
    const file = join(dir, `managed-${i}.conf`)
    writeFileSync(file, text.replaceAll(LIMITS.canaryLogPath(app), join(dir, `canary-${i}.log`)))
    return `    include ${file};`
  })
  const main = join(dir, 'nginx.conf')
  writeFileSync(
    main,
    [
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')};`,
      'events {}',
      'http {',
      `    access_log ${join(dir, 'access.log')};`,
      ...includes,
      extraHttp,
      '}',
      '',
    ].join('\n'),
  )
  execFileSync(NGINX, ['-t', '-q', '-e', 'stderr', '-p', dir, '-c', main], { stdio: 'pipe' })
}

describe('rendered files in a real nginx -t', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-nginx-'))

  it('accepts the site file for every lb-method, with and without a canary split, a record of requests and backups', () => {
    for (const method of ['least_conn', 'round_robin', 'ip_hash', 'hash $request_uri consistent'])
      for (const s of [undefined, split(servers.slice(1), 1, 9)])
        for (const judging of [{}, { log: true, backup: [replicaOf(9209, 'shop:v0')] }]) {
          const config = configFrom({ 'lb-method': method, listen: '127.0.0.1:18080', 'nginx-mode': 'host' })
          const { text } = renderManagedFile(config, servers, s, plain, judging)
          expect(text.includes(LIMITS.canaryLogPath('shop'))).toBe('log' in judging)
          nginxTest(dir, [{ app: 'shop', text }])
        }
  })

  it('renders keepalive_min_timeout only for an nginx that knows it: 1.22 does not', () => {
    const config = configFrom({ listen: '127.0.0.1:18080' })
    expect(() =>
      nginxTest(dir, [
        { app: 'shop', text: renderManagedFile(config, servers, undefined, { keepaliveMinTimeout: true }).text },
      ]),
    ).toThrow(/unknown directive "keepalive_min_timeout"/)
  })

  it("accepts the upstream file behind the user's own server block, with a canary split live", () => {
    const config = configFrom({ 'nginx-scope': 'upstream' })
    const judging = { log: true, backup: [replicaOf(9209, 'shop:v0')] }
    const text = renderManagedFile(config, servers, split(servers.slice(1), 1, 1), plain, judging).text
    nginxTest(
      dir,
      [{ app: 'shop', text }],
      'server { listen 127.0.0.1:18081; location / { proxy_pass http://shop_replicas; } }',
    )
  })

  it('accepts several apps side by side, two of them with canary splits live at once', () => {
    const shop = configFrom({ app: 'shop', listen: '127.0.0.1:18080', 'server-name': 'shop.example.com' })
    const blog = configFrom({
      app: 'blog',
      listen: '127.0.0.1:18080',
      'server-name': 'blog.example.com',
      'upstream-name': 'blog_backend',
    })
    const shopApi = configFrom({ app: 'shop-api', 'nginx-scope': 'upstream' })
    const on = (app: string, port: number, image: string) => ({ ...replicaOf(port, image), name: `${app}-${port}` })
    const shopServers = [on('shop', 9201, 'shop:v1'), on('shop', 9202, 'shop:v2')]
    const apiServers = [on('shop-api', 9301, 'api:v1'), on('shop-api', 9302, 'api:v2')]
    const files = [
      {
        app: 'shop',
        text: renderManagedFile(shop, shopServers, split(shopServers.slice(1), 1, 9), plain, { log: true }).text,
      },
      { app: 'blog', text: renderManagedFile(blog, [on('blog', 9211, 'blog:v1')], undefined, plain).text },
      {
        app: 'shop-api',
        text: renderManagedFile(shopApi, apiServers, split(apiServers.slice(1), 1, 1), plain, { log: true }).text,
      },
    ]
    // Their names differ as the apps do: upstreams, log formats, map variables, config-id paths.
    expect(files.map((f) => /^upstream (\S+)/m.exec(f.text)?.[1])).toEqual([
      'shop_replicas',
      'blog_backend',
      'shop_api_replicas',
    ])
    expect(files.map((f) => /^log_format (\S+)/m.exec(f.text)?.[1])).toEqual([
      'nginx_rollout_shop_replicas',
      undefined,
      'nginx_rollout_shop_api_replicas',
    ])
    nginxTest(dir, files, 'server { listen 127.0.0.1:18081; location /api/ { proxy_pass http://shop_api_replicas; } }')
  })

  it('rejects two apps given the same upstream name (nginx -t is the last check before a reload)', () => {
    const a = renderManagedFile(
      configFrom({ app: 'shop', 'nginx-scope': 'upstream', 'upstream-name': 'backend' }),
      servers,
      undefined,
      plain,
    ).text
    const b = renderManagedFile(
      configFrom({ app: 'blog', 'nginx-scope': 'upstream', 'upstream-name': 'backend' }),
      servers,
      undefined,
      plain,
    ).text
    expect(() =>
      nginxTest(dir, [
        { app: 'shop', text: a },
        { app: 'blog', text: b },
      ]),
    ).toThrow(/duplicate upstream "backend"/)
  })
})

describe('hostile values through the input reader and the renderer into nginx -t', () => {
  const nasty = `ab.:/-_ ;{}$\`'"\\\n\t#()*=&|<>%@!~`
  // upstream-host is left out: a well-formed name nginx cannot resolve fails nginx -t by design, and
  // resolving random names would send DNS queries off this machine. Its grammar is tested in inputs.test.ts.
  const plausible = [
    '80',
    '127.0.0.1:8080',
    '[::1]:8080',
    'shop.example.com *.shop.example.com',
    '_',
    'hash $request_uri consistent',
    'ip_hash',
    '10s',
    '1m',
    'my-app.v2',
    'ghcr.io/a/b:1.2',
    '5',
    'shop_backend',
    'a$b',
    '8O',
    'header X-Preview=pr-7',
    'cookie beta=yes',
    'a'.repeat(48),
  ]
  const bound = [
    'server-name',
    'listen',
    'lb-method',
    'fail-timeout',
    'app',
    'image',
    'weight',
    'max-fails',
    'upstream-name',
    'canary-match',
  ] as const

  it('either rejects a value with a message naming its input, or renders a file nginx accepts containing it verbatim', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nr-prop-'))
    let rendered = 0
    fc.assert(
      fc.property(
        fc.constantFrom(...bound),
        fc.oneof(
          {
            arbitrary: fc.string({ unit: fc.constantFrom(...nasty.split('')), minLength: 1, maxLength: 24 }),
            weight: 2,
          },
          // Nearly valid values, so that many runs reach nginx -t rather than the input reader's rejection.
          {
            arbitrary: fc.string({ unit: fc.constantFrom(...'ab09._-:$ '.split('')), minLength: 1, maxLength: 12 }),
            weight: 1,
          },
          { arbitrary: fc.constantFrom(...plausible), weight: 2 },
        ),
        fc.constantFrom('site', 'site', 'upstream'),
        fc.boolean(),
        (name, value, scope, withSplit) => {
          let config
          const inputs: Partial<Record<InputName, string>> = {
            'nginx-mode': 'host',
            'nginx-scope': scope,
            ...(scope === 'site' && name !== 'listen' ? { listen: '127.0.0.1:18080' } : {}),
            [name]: value,
          }
          try {
            config = configFrom(inputs)
          } catch (e) {
            expect(e).toBeInstanceOf(InputError)
            expect((e as Error).message).toContain(`${name}: `)
            return
          }
          rendered++
          const replicas = [9201, 9202].map((port) => replicaOf(port, config.image, { name: `${config.app}-${port}` }))
          const { text } = renderManagedFile(
            config,
            replicas,
            withSplit ? split(replicas.slice(1), 1, 9) : undefined,
            plain,
          )
          nginxTest(dir, [{ app: config.app, text }])
          // canary-match: its value is what the maps hold (the kind and name become nginx variables).
          const shown = name === 'canary-match' ? (value.trim().split('=')[1] ?? '') : value.trim()
          // canary-match is rendered only with a split (no canary, nothing to reach).
          const renders = name !== 'weight' && name !== 'max-fails' && (name !== 'canary-match' || withSplit)
          if (renders) expect(text).toContain(shown)
        },
      ),
      { numRuns: 400 },
    )
    // Plain values pass too: the property is not vacuous.
    expect(rendered).toBeGreaterThan(30)
  })
})

describe('unifiedDiff', () => {
  it('shows changed lines with context', () => {
    const before = 'a\nb\nc\nd\ne\nf\ng\n'
    const after = 'a\nb\nc\nD\ne\nf\ng\n'
    expect(unifiedDiff(before, after, 'live', 'new', 1)).toBe('--- live\n+++ new\n@@ -3,3 +3,3 @@\n c\n-d\n+D\n e\n')
  })

  it('is empty for equal texts and all additions from nothing', () => {
    expect(unifiedDiff('x\n', 'x\n', 'a', 'b')).toBe('')
    expect(unifiedDiff('', 'x\ny\n', 'a', 'b')).toBe('--- a\n+++ b\n@@ -0,0 +1,2 @@\n+x\n+y\n')
  })

  it('keeps distant changes in separate hunks', () => {
    const before = Array.from({ length: 20 }, (_, i) => `l${i}`).join('\n') + '\n'
    const after = before.replace('l2\n', 'L2\n').replace('l17\n', 'L17\n')
    const diff = unifiedDiff(before, after, 'a', 'b', 2)
    expect(diff.match(/^@@/gm)).toHaveLength(2)
    expect(diff).toContain('@@ -1,5 +1,5 @@\n l0\n l1\n-l2\n+L2\n l3\n l4\n')
  })
})
