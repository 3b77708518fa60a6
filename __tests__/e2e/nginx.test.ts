// nginx handling end to end: a config nginx rejects never goes live; nginx installed on the host is
// reloaded by signalling its master, wherever its pid file is.
import { jest } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLoad } from '../../scripts/lib/load.mjs'
import { baseInputs, docker, get, nginxConf, replicasOf, resetApp, runAction, stateDir, testHost } from './harness.js'

jest.setTimeout(180_000)

const host = testHost()
const image = (tag: string) => `nginx-rollout-test/app:${tag}`

describe('a custom template that nginx rejects', () => {
  const APP = 'e2e-tpl'
  const PORT = 18082
  const inputs = (over: Record<string, string> = {}) => ({ ...baseInputs(host, APP, PORT), replicas: '2', ports: '9321-9330', ...over })
  const dir = mkdtempSync(join(tmpdir(), 'nr-tpl-'))
  beforeAll(() => resetApp(APP))
  afterAll(() => {
    resetApp(APP)
    rmSync(dir, { recursive: true, force: true })
  })

  it('leaves the previous config live, quotes nginx, and rolls back with zero failed requests', async () => {
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
    const before = nginxConf(`${APP}-lb`)
    const template = join(dir, 'broken.mustache')
    writeFileSync(template, 'events {}\nhttp {\n  upstream {{upstream}} { {{#servers}}server {{address}};{{/servers}} }\n  bogus_directive on;\n  server { listen {{listen}}; {{rolloutLocation}} location / { proxy_pass http://{{upstream}}; } }\n}\n')
    const load = startLoad({ port: PORT, maxSeconds: 60 })
    const run = await runAction(inputs({ image: image('v2'), 'nginx-template': template }))
    const report = await load.stop()
    expect(run.outputs.result).toBe('rolled-back')
    expect(run.stdout).toContain('nginx -t rejected the new config (the live config is unchanged):')
    expect(run.stdout).toContain('unknown directive "bogus_directive"')
    expect(nginxConf(`${APP}-lb`)).toBe(before)
    expect(report.failed).toBe(0)
    expect(Object.keys(report.byVersion)).toEqual(['v1'])
    expect(replicasOf(APP)).toEqual([`${APP}-9321 ${image('v1')} running`, `${APP}-9322 ${image('v1')} running`])
  })

  it('keeps a deploy history on the host', () => {
    const history = JSON.parse(readFileSync(join(stateDir(APP), 'history.json'), 'utf8'))
    expect(history.map((h: { image: string; result: string }) => [h.image, h.result])).toEqual([
      [image('v1'), 'deployed'],
      [image('v2'), 'rolled-back'],
    ])
  })
})

describe('nginx-mode host', () => {
  const APP = 'e2e-hostnginx'
  const PORT = 18083
  const dir = mkdtempSync(join(tmpdir(), 'nr-hostnginx-'))
  const conf = join(dir, 'nginx.conf')
  const pid = join(dir, 'run', 'somewhere-else.pid')
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    'nginx-mode': 'host',
    'nginx-config-path': conf,
    replicas: '2',
    ports: '9331-9340',
    ...over,
  })

  beforeAll(() => {
    resetApp(APP)
    // An nginx master in a container shows in the host's process list too: the action must not signal it.
    docker('run', '--detach', '--rm', '--name', 'e2e-decoy-nginx', '--network', 'host', 'nginx-rollout-test/nginx:test')
    mkdirSync(join(dir, 'run'))
    // A host nginx with its pid file in an unusual place: nginx -s reload would need to know it; a signal to the master does not.
    writeFileSync(conf, `pid ${pid};\nerror_log ${dir}/error.log;\nevents {}\nhttp { server { listen 127.0.0.1:${PORT}; return 200 "placeholder\\n"; } }\n`)
    execFileSync('/usr/sbin/nginx', ['-c', conf])
  })
  afterAll(() => {
    // By its command line: the generated config has no pid directive, so nginx moved its pid file.
    execFileSync('pkill', ['-QUIT', '-f', `nginx -c ${conf}`])
    docker('rm', '--force', 'e2e-decoy-nginx')
    resetApp(APP)
    rmSync(dir, { recursive: true, force: true })
  })

  it('deploys v1 then v2 through the host nginx with zero failed requests', async () => {
    const first = await runAction(inputs({ image: image('v1') }))
    expect(first.outputs.result).toBe('deployed')
    expect(await get(PORT)).toEqual({ status: 200, text: 'v1\n' })
    const load = startLoad({ port: PORT, maxSeconds: 60 })
    await new Promise((r) => setTimeout(r, 500))
    const second = await runAction(inputs({ image: image('v2') }))
    const report = await load.stop()
    expect(second.outputs.result).toBe('deployed')
    expect(report.failed).toBe(0)
    expect(report.lastVersion).toBe('v2')
    expect(readFileSync(conf, 'utf8')).toContain('# e2e-hostnginx-9333 nginx-rollout-test/app:v2')
  })
})
