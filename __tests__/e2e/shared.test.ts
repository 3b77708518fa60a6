// A shared nginx, end to end: several apps on one nginx container, each owning only its own file; a user's
// own files and main config never touched; the upstream-only scope behind the user's server block; the
// quick start's defaults on a bare host.
import { jest } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { root } from '../../scripts/lib/action.mjs'
import { startLoad, type LoadReport } from '../../scripts/lib/load.mjs'
import {
  baseInputs,
  docker,
  get,
  nginxConf,
  replicasOf,
  resetApp,
  runAction,
  testHost,
  type ActionRun,
} from './harness.js'

jest.setTimeout(240_000)

const host = testHost()
const image = (tag: string) => `nginx-rollout-test/app:${tag}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const LB = 'e2e-shared-lb'
const PORT = 18101
const ALPHA = 'e2e-alpha'
const BETA = 'e2e-beta'
const shared =
  (app: string, name: string, ports: string) =>
  (over: Record<string, string> = {}) => ({
    ...baseInputs(host, app, PORT),
    'nginx-container': LB,
    'server-name': name,
    replicas: '2',
    ports,
    ...over,
  })
const alpha = shared(ALPHA, 'alpha.test', '9601-9610')
const beta = shared(BETA, 'beta.test', '9611-9620')
const loadFor = (name: string, port = PORT) => startLoad({ port, headers: { Host: name }, maxSeconds: 180 })
const show = (r: ActionRun) =>
  r.log
    .split('\n')
    .filter((l) => !l.startsWith('::debug::') && !l.startsWith('::add-mask::'))
    .join('\n')

function removeContainer(names: string): void {
  execFileSync('sh', ['-c', `docker rm --force ${names} >/dev/null 2>&1 || true`])
}

beforeAll(() => {
  for (const app of [ALPHA, BETA, 'e2e-gamma', 'e2e-noinc', 'e2e-up', 'e2e-quick']) resetApp(app)
  for (const c of [LB, 'e2e-noinc-lb', 'e2e-up-lb', 'loadbalancer']) removeContainer(c)
})
afterAll(() => {
  for (const app of [ALPHA, BETA, 'e2e-gamma', 'e2e-noinc', 'e2e-up', 'e2e-quick']) resetApp(app)
  for (const c of [LB, 'e2e-noinc-lb', 'e2e-up-lb', 'loadbalancer']) removeContainer(c)
})

describe('two apps on one nginx container', () => {
  let mainBefore = ''

  it('deploys both: each name is served by its own app, and the image default site is set aside', async () => {
    const a = await runAction(alpha({ image: image('v1') }))
    expect(a.outputs.result).toBe('deployed')
    expect(a.log).toContain(`created the nginx container ${LB} from nginx-rollout-test/nginx:test`)
    mainBefore = nginxConf(LB)
    const b = await runAction(beta({ image: image('v3') }))
    expect(b.outputs.result).toBe('deployed')
    expect(await get(PORT, '/', 'alpha.test')).toEqual({ status: 200, text: 'v1\n' })
    expect(await get(PORT, '/', 'beta.test')).toEqual({ status: 200, text: 'v3\n' })
    expect(docker('exec', LB, 'ls', '/etc/nginx/conf.d').split('\n').sort()).toEqual([
      'default.conf',
      'default.conf.disabled-by-nginx-rollout',
      `${ALPHA}.conf`,
      `${BETA}.conf`,
    ])
    // Set aside before nginx first started: a comment in its place, the site itself kept beside it.
    expect(docker('exec', LB, 'cat', '/etc/nginx/conf.d/default.conf')).toMatch(
      /^# nginx-rollout created this container/,
    )
    expect(docker('exec', LB, 'cat', '/etc/nginx/conf.d/default.conf.disabled-by-nginx-rollout')).toContain('listen')
  })

  it('redeploys each under load sent to both names: zero failed for either, each name only ever its own app, nginx.conf byte for byte', async () => {
    const toAlpha = loadFor('alpha.test')
    const toBeta = loadFor('beta.test')
    await sleep(700)
    const a = await runAction(alpha({ image: image('v2') }))
    const b = await runAction(beta({ image: image('v4') }))
    await sleep(700)
    const [ra, rb] = await Promise.all([toAlpha.stop(), toBeta.stop()])
    if (ra.failed || rb.failed)
      console.log(
        show(a),
        show(b),
        JSON.stringify({ ...ra, events: undefined }),
        JSON.stringify({ ...rb, events: undefined }),
      )
    expect([a.outputs.result, b.outputs.result]).toEqual(['deployed', 'deployed'])
    expect({ alpha: ra.failed, beta: rb.failed }).toEqual({ alpha: 0, beta: 0 })
    expect(Object.keys(ra.byVersion).sort()).toEqual(['v1', 'v2'])
    expect(Object.keys(rb.byVersion).sort()).toEqual(['v3', 'v4'])
    expect([ra.lastVersion, rb.lastVersion]).toEqual(['v2', 'v4'])
    expect(nginxConf(LB)).toBe(mainBefore)
  })

  it('deploys both at the same time: both succeed, their nginx changes never interleave, both upstreams stay', async () => {
    const toAlpha = loadFor('alpha.test')
    const toBeta = loadFor('beta.test')
    await sleep(700)
    const [a, b] = await Promise.all([
      runAction(alpha({ image: image('v1') })),
      runAction(beta({ image: image('v3') })),
    ])
    await sleep(700)
    const [ra, rb] = await Promise.all([toAlpha.stop(), toBeta.stop()])
    expect([a.outputs.result, b.outputs.result]).toEqual(['deployed', 'deployed'])
    expect({ alpha: ra.failed, beta: rb.failed }).toEqual({ alpha: 0, beta: 0 })
    expect([ra.lastVersion, rb.lastVersion]).toEqual(['v1', 'v3'])
    expect(nginxConf(LB, `/etc/nginx/conf.d/${ALPHA}.conf`)).toContain('upstream e2e_alpha_replicas {')
    expect(nginxConf(LB, `/etc/nginx/conf.d/${BETA}.conf`)).toContain('upstream e2e_beta_replicas {')
    expect(nginxConf(LB)).toBe(mainBefore)
  })

  it("judges alpha's canary on alpha's requests only, while beta answers 500 on the same nginx", async () => {
    expect((await runAction(beta({ image: image('broken') }))).outputs.result).toBe('deployed')
    const toAlpha = loadFor('alpha.test')
    const toBeta = loadFor('beta.test')
    await sleep(700)
    const run = await runAction(
      alpha({ image: image('v2'), strategy: 'canary', 'canary-steps': '20', 'canary-interval': '16' }),
    )
    const [ra, rb] = await Promise.all([toAlpha.stop(), toBeta.stop()])
    expect(rb.failed).toBeGreaterThan(100)
    expect(ra.failed).toBe(0)
    expect(run.outputs).toMatchObject({ result: 'paused', 'canary-weight': '20' })
    expect(run.summary).toMatch(/\| 20% \| 16\ss \| \d+ \| 0 \| 0\.00% \| \d+ \| 0 \| 0\.00% \| pass \|/)
    expect((await runAction(alpha({ operation: 'abort', image: '' }))).outputs.result).toBe('rolled-back')
    expect((await runAction(beta({ image: image('v3') }))).outputs.result).toBe('deployed')
  })

  it('never overwrites a file it did not write, nor one edited by hand since, and changes nothing when it refuses', async () => {
    const mine = 'server {\n    listen 127.0.0.1:18199;\n    location / { return 200 "mine\\n"; }\n}\n'
    docker('exec', LB, 'sh', '-c', `printf '%s' '${mine}' > /etc/nginx/conf.d/e2e-gamma.conf`)
    const gamma = await runAction(shared('e2e-gamma', 'gamma.test', '9621-9630')({ image: image('v1') }))
    expect(gamma.code).toBe(1)
    expect(gamma.log).toContain('/etc/nginx/conf.d/e2e-gamma.conf on 127.0.0.1')
    expect(gamma.log).toContain(
      'exists and was not written by nginx-rollout: the action never overwrites a file it did not write',
    )
    expect(nginxConf(LB, '/etc/nginx/conf.d/e2e-gamma.conf')).toBe(mine)
    expect(replicasOf('e2e-gamma')).toEqual([])
    docker('exec', LB, 'rm', '/etc/nginx/conf.d/e2e-gamma.conf')

    const path = `/etc/nginx/conf.d/${ALPHA}.conf`
    const deployed = nginxConf(LB, path)
    docker('exec', LB, 'sh', '-c', `echo '# a hand edit' >> ${path}`)
    const edited = await runAction(alpha({ image: image('v2') }))
    expect(edited.code).toBe(1)
    expect(edited.log).toContain('was edited by hand since nginx-rollout wrote it')
    expect(nginxConf(LB, path)).toBe(`${deployed}# a hand edit\n`)
    expect(replicasOf(ALPHA).every((r) => r.includes(':v1 '))).toBe(true)
    docker('exec', LB, 'sh', '-c', `printf '%s' '${deployed}' > ${path}`)
  })
})

describe('an nginx whose main configuration does not include the managed file', () => {
  it('refuses before any change, naming the include line to add and where', async () => {
    const conf = 'events {}\\nhttp {\\n    server { listen 127.0.0.1:18102; return 200 \\"mine\\\\n\\"; }\\n}\\n'
    docker(
      'run',
      '--detach',
      '--name',
      'e2e-noinc-lb',
      '--network',
      'host',
      '--entrypoint',
      'sh',
      'nginx-rollout-test/nginx:test',
      '-c',
      `printf "${conf}" > /etc/nginx/nginx.conf && exec nginx -g 'daemon off;'`,
    )
    await sleep(500)
    const main = nginxConf('e2e-noinc-lb')
    const run = await runAction({
      ...baseInputs(host, 'e2e-noinc', 18102),
      'nginx-container': 'e2e-noinc-lb',
      image: image('v1'),
      ports: '9631-9640',
    })
    expect(run.code).toBe(1)
    expect(run.log).toContain(
      "nginx's configuration does not include /etc/nginx/conf.d/e2e-noinc.conf: add `include /etc/nginx/conf.d/*.conf;` inside the http { } block of /etc/nginx/nginx.conf",
    )
    expect(replicasOf('e2e-noinc')).toEqual([])
    expect(docker('exec', 'e2e-noinc-lb', 'ls', '/etc/nginx/conf.d')).toBe('default.conf')
    expect(nginxConf('e2e-noinc-lb')).toBe(main)
  })
})

describe('nginx-scope upstream, behind a server block of the user', () => {
  const UP_PORT = 18104
  const inputs = (over: Record<string, string> = {}) => {
    const { listen: _l, ...rest } = baseInputs(host, 'e2e-up', UP_PORT)
    return {
      ...rest,
      'nginx-container': 'e2e-up-lb',
      'nginx-scope': 'upstream',
      'upstream-name': 'shop_pool',
      replicas: '2',
      ports: '9641-9650',
      ...over,
    }
  }

  it("writes only the upstream; a rolling deploy and a canary go through the user's server block with zero failed requests", async () => {
    docker(
      'run',
      '--detach',
      '--name',
      'e2e-up-lb',
      '--network',
      'host',
      '--entrypoint',
      'sh',
      'nginx-rollout-test/nginx:test',
      '-c',
      "rm /etc/nginx/conf.d/default.conf && exec nginx -g 'daemon off;'",
    )
    await sleep(500)
    const first = await runAction(inputs({ image: image('v1') }))
    expect(first.outputs.result).toBe('deployed')
    const managed = nginxConf('e2e-up-lb', '/etc/nginx/conf.d/e2e-up.conf')
    expect(managed).toContain('upstream shop_pool {')
    expect(managed).not.toContain('server {')
    expect(managed).not.toContain('listen')
    // The user's own server block, with its own name and port, proxying to the action's upstream.
    docker(
      'exec',
      'e2e-up-lb',
      'sh',
      '-c',
      `printf 'server {\\n    listen 127.0.0.1:${UP_PORT};\\n    location / { proxy_pass http://shop_pool; }\\n}\\n' > /etc/nginx/conf.d/zz-site.conf && nginx -s reload`,
    )
    await sleep(500)
    expect(await get(UP_PORT)).toEqual({ status: 200, text: 'v1\n' })

    const load = startLoad({ port: UP_PORT, maxSeconds: 120 })
    await sleep(700)
    const rolling = await runAction(inputs({ image: image('v2') }))
    await sleep(700)
    const report: LoadReport = await load.stop()
    expect(rolling.outputs.result).toBe('deployed')
    expect(rolling.log).toMatch(/route traffic to .*: ok \(\d+\.\ds\), nginx reloaded with the new file/)
    expect(report.failed).toBe(0)
    expect(report.lastVersion).toBe('v2')

    const canaryLoad = startLoad({ port: UP_PORT, maxSeconds: 120 })
    await sleep(500)
    const canary = await runAction(
      inputs({ image: image('v3'), strategy: 'canary', 'canary-steps': '20', 'canary-interval': '12' }),
    )
    const canaryReport = await canaryLoad.stop()
    expect(canary.outputs).toMatchObject({ result: 'paused', 'canary-weight': '20' })
    expect(canary.summary).toMatch(/\| 20% \| 12\ss \| \d{2,} \| 0 \| 0\.00% \| \d{3,} \| 0 \| 0\.00% \| pass \|/)
    expect(canaryReport.failed).toBe(0)
    expect((await runAction(inputs({ operation: 'abort', image: '' }))).outputs.result).toBe('rolled-back')
    expect(nginxConf('e2e-up-lb', '/etc/nginx/conf.d/zz-site.conf')).toContain('proxy_pass http://shop_pool;')
  })
})

describe('the quick start on a bare Docker host', () => {
  it("creates the nginx container with host networking and serves the app on localhost:80, not the image's welcome page", async () => {
    // There is no registry here: nginx:stable is the local test image under that name.
    docker('tag', 'nginx-rollout-test/nginx:test', 'nginx:stable')
    const run = await runAction({
      host: `${host.host}:${host.port}`,
      username: host.user,
      key: host.key,
      fingerprint: `256 ${host.fingerprint} root@docker-host (ED25519)`,
      app: 'e2e-quick',
      image: image('v1'),
      // The two differences from the quick start: no registry to pull from, and no Docker bridge on this machine.
      pull: 'false',
      network: 'host',
    })
    expect(run.outputs.result).toBe('deployed')
    expect(docker('inspect', '--format', '{{.HostConfig.NetworkMode}}', 'loadbalancer')).toBe('host')
    expect(await get(80, '/', 'localhost')).toEqual({ status: 200, text: 'v1\n' })
    removeContainer('loadbalancer')
    resetApp('e2e-quick')
  })
})

describe("docs/migration.md's way from a hand-made setup", () => {
  /** The code block of docs/migration.md after `<!-- migration:NAME -->`. */
  function block(name: string): string {
    const readme = readFileSync(join(root, 'docs', 'migration.md'), 'utf8')
    const at = readme.indexOf(`<!-- migration:${name} -->`)
    if (at < 0) throw new Error(`docs/migration.md has no migration:${name} block`)
    const m = /```\w*\n([\s\S]*?)\n```/.exec(readme.slice(at))
    if (!m) throw new Error(`no code block after migration:${name}`)
    return m[1]
  }
  const home = mkdtempSync(join(tmpdir(), 'nr-migration-'))
  /** A README shell block, run on the Docker host (this machine) as written, in a home of its own. */
  const sh = (name: string) =>
    execFileSync('sh', ['-e', '-c', block(name)], {
      env: { ...process.env, HOME: home },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    })

  beforeAll(() => {
    removeContainer('loadbalancer app1 app2 app3')
    resetApp('shop')
    // The README's step keeps the default ports (9201-9210), where `npm run demo` and other apps of this
    // throwaway test host may still run: a start-first deploy of 3 replicas needs 6 of them.
    for (const app of new Set(
      docker(
        'ps',
        '--all',
        '--filter',
        'label=nginx-rollout.port',
        '--format',
        '{{.Label "nginx-rollout.app"}} {{.Label "nginx-rollout.port"}}',
      )
        .split('\n')
        .filter((l) => /^\S+ 92(0[1-9]|10)$/.test(l))
        .map((l) => l.split(' ')[0]),
    ))
      resetApp(app)
    // The registry of the README's example is not here: its images are the test images under those names.
    docker('tag', image('v1'), 'ghcr.io/acme/shop:1.4.1')
    docker('tag', image('v2'), 'ghcr.io/acme/shop:migration1')
    docker('tag', 'nginx-rollout-test/nginx:test', 'nginx:stable')
  })
  afterAll(() => {
    removeContainer('loadbalancer app1 app2 app3')
    resetApp('shop')
    rmSync(home, { recursive: true, force: true })
  })

  it("switches the seed setup to nginx-rollout with zero failed requests, keeping nginx.conf the user's", async () => {
    sh('setup')
    await sleep(1500)
    expect(await get(80, '/', '127.0.0.1')).toEqual({ status: 200, text: 'v1\n' })
    const load = startLoad({ port: 80, maxSeconds: 120 })
    await sleep(700)

    // The README's workflow step, with the test host for its variables and secrets; the one difference:
    // no registry here, so no pull.
    const step = (parseYaml(block('deploy')) as Array<{ with: Record<string, string | number> }>)[0].with
    const values: Record<string, string> = {
      '${{ vars.DEPLOY_HOST }}': `${host.host}:${host.port}`,
      '${{ secrets.DEPLOY_KEY }}': host.key,
      '${{ vars.DEPLOY_HOST_FINGERPRINT }}': host.fingerprint,
      '${{ github.sha }}': 'migration1',
    }
    const inputs = Object.fromEntries(
      Object.entries(step).map(([k, v]) => [
        k,
        Object.entries(values).reduce((s, [from, to]) => s.replaceAll(from, to), String(v)),
      ]),
    )
    const deploy = await runAction({ ...inputs, username: host.user, pull: 'false' })
    if (deploy.outputs.result !== 'deployed') console.log(deploy.log)
    expect(deploy.outputs.result).toBe('deployed')
    expect(await get(80, '/', '127.0.0.1')).toEqual({ status: 200, text: 'v1\n' }) // nothing routes to them yet

    sh('switch')
    await sleep(1500)
    sh('retire')
    await sleep(700)
    const report = await load.stop()
    if (report.failed) console.log(JSON.stringify({ ...report, events: undefined }))
    expect(report.failed).toBe(0)
    expect(report.byVersion.v1).toBeGreaterThan(0)
    expect(report.lastVersion).toBe('v2')
    expect(docker('ps', '--all', '--filter', 'name=^app[123]$', '--format', '{{.Names}}')).toBe('')
    expect(nginxConf('loadbalancer')).toContain('proxy_pass http://shop_replicas;')
    expect(nginxConf('loadbalancer')).not.toContain('upstream loadbalancer')

    // From then on, every deploy is the same step.
    const next = await runAction({ ...inputs, image: image('v3'), username: host.user, pull: 'false' })
    if (next.outputs.result !== 'deployed') console.log(next.log)
    expect(next.outputs.result).toBe('deployed')
    expect(await get(80, '/', '127.0.0.1')).toEqual({ status: 200, text: 'v3\n' })
  })
})
