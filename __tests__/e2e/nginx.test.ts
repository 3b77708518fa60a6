// nginx handling end to end: a file nginx rejects never goes live; the distribution's nginx on the host,
// shared with another site, keeps its own nginx.conf byte for byte while the action manages only its file.
import { jest } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLoad } from '../../scripts/lib/load.mjs'
import { root } from '../../scripts/lib/action.mjs'
import { baseInputs, docker, get, managedConf, replicasOf, resetApp, runAction, stateDir, testHost } from './harness.js'

jest.setTimeout(180_000)

const host = testHost()
const image = (tag: string) => `nginx-rollout-test/app:${tag}`

describe('a custom template that nginx rejects', () => {
  const APP = 'e2e-tpl'
  const PORT = 18082
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(host, APP, PORT),
    replicas: '2',
    ports: '9321-9330',
    ...over,
  })
  // Templates come from the workspace (the repository here): .testhost is ignored by git.
  const dir = join(root, '.testhost', 'e2e-templates')
  beforeAll(() => {
    resetApp(APP)
    mkdirSync(dir, { recursive: true })
  })
  afterAll(() => {
    resetApp(APP)
    rmSync(dir, { recursive: true, force: true })
  })

  it('leaves the previous file live, quotes nginx, and rolls back with zero failed requests', async () => {
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
    const before = managedConf(APP)
    const template = join(dir, 'broken.mustache')
    writeFileSync(
      template,
      'upstream {{upstream}} { {{#servers}}server {{address}};{{/servers}} }\nbogus_directive on;\nserver { listen {{listen}}; {{rolloutLocation}} location / { proxy_pass http://{{upstream}}; } }\n',
    )
    const load = startLoad({ port: PORT, maxSeconds: 60 })
    const run = await runAction(
      inputs({ image: image('v2'), 'nginx-template': '.testhost/e2e-templates/broken.mustache' }),
    )
    const report = await load.stop()
    expect(run.outputs.result).toBe('rolled-back')
    expect(run.log).toContain(
      'nginx -t rejected the configuration with the new file (the previous file is back, nginx was not reloaded). nginx said:',
    )
    expect(run.log).toContain('unknown directive "bogus_directive"')
    expect(managedConf(APP)).toBe(before)
    expect(report.failed).toBe(0)
    expect(Object.keys(report.byVersion)).toEqual(['v1'])
    expect(replicasOf(APP)).toEqual([`${APP}-9321 ${image('v1')} running`, `${APP}-9322 ${image('v1')} running`])
  })

  it('keeps a deploy history on the nginx host', () => {
    const history = JSON.parse(readFileSync(join(stateDir(APP), 'history.json'), 'utf8'))
    expect(history.map((h: { image: string; result: string }) => [h.image, h.result])).toEqual([
      [image('v1'), 'deployed'],
      [image('v2'), 'rolled-back'],
    ])
  })

  it('refuses a template that resolves outside the workspace, through .. or a symlink, before connecting', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'nr-outside-'))
    writeFileSync(join(outside, 'secret.mustache'), 'not for the summary\n')
    symlinkSync(join(outside, 'secret.mustache'), join(dir, 'link.mustache'))
    for (const path of [
      join(outside, 'secret.mustache'),
      '../../../..' + join(outside, 'secret.mustache'),
      '.testhost/e2e-templates/link.mustache',
    ]) {
      const run = await runAction(inputs({ image: image('v2'), 'nginx-template': path }))
      expect(run.code).toBe(1)
      expect(run.log).toContain(
        `it resolves to ${join(outside, 'secret.mustache')}, outside the workspace ${root.replace(/\/$/, '')}`,
      )
      expect(run.stdout).not.toContain('::group::Connect')
      expect(run.stdout).not.toContain('not for the summary')
    }
    rmSync(outside, { recursive: true, force: true })
  })
})

describe('nginx-mode host: the distribution nginx, shared with another site, as a deploy user with sudo', () => {
  // Not root: in the docker group, with only docs/vps.md's sudoers lines for this app (scripts/testhost/up.sh).
  const deployer = testHost({ as: 'deploy' })
  const APP = 'e2e-hostnginx'
  const PORT = 18083
  const OTHER = 18093
  const site = '/etc/nginx/sites-enabled/e2e-other-site'
  const managed = `/etc/nginx/conf.d/${APP}.conf`
  const aside = join(mkdtempSync(join(tmpdir(), 'nr-default-site-')), 'default')
  let mainConf = ''
  const inputs = (over: Record<string, string> = {}) => ({
    ...baseInputs(deployer, APP, PORT),
    'nginx-mode': 'host',
    replicas: '2',
    ports: '9331-9340',
    ...over,
  })

  beforeAll(() => {
    resetApp(APP)
    rmSync(managed, { force: true })
    // An nginx master in a container shows in the host's process list too: the action must not signal it.
    const decoy = `events {} http { server { listen 127.0.0.1:18999; return 200 "decoy\\n"; } }`
    docker(
      'run',
      '--detach',
      '--rm',
      '--name',
      'e2e-decoy-nginx',
      '--network',
      'host',
      '--entrypoint',
      'sh',
      'nginx-rollout-test/nginx:test',
      '-c',
      `echo '${decoy}' >/tmp/decoy.conf && exec nginx -c /tmp/decoy.conf -g 'daemon off;'`,
    )
    // The distribution's default site listens on port 80, which another suite's nginx container uses.
    if (existsSync('/etc/nginx/sites-enabled/default')) renameSync('/etc/nginx/sites-enabled/default', aside)
    writeFileSync(site, `server {\n    listen 127.0.0.1:${OTHER};\n    location / { return 200 "other site\\n"; }\n}\n`)
    mainConf = readFileSync('/etc/nginx/nginx.conf', 'utf8')
    execFileSync('/usr/sbin/nginx')
  })
  afterAll(() => {
    execFileSync('/usr/sbin/nginx', ['-s', 'quit'])
    docker('rm', '--force', 'e2e-decoy-nginx')
    rmSync(site, { force: true })
    rmSync(managed, { force: true })
    if (existsSync(aside)) renameSync(aside, '/etc/nginx/sites-enabled/default')
    resetApp(APP)
  })

  it('deploys v1 then v2 through it with zero failed requests, the other site answering throughout, nginx.conf untouched', async () => {
    const first = await runAction(inputs({ image: image('v1') }))
    expect(first.outputs.result).toBe('deployed')
    expect(await get(PORT)).toEqual({ status: 200, text: 'v1\n' })
    const load = startLoad({ port: PORT, maxSeconds: 60 })
    let otherFailed = 0
    let otherAnswered = 0
    let done = false
    const other = (async () => {
      while (!done) {
        const r = await get(OTHER).catch(() => ({ status: 0, text: '' }))
        if (r.status === 200 && r.text === 'other site\n') otherAnswered++
        else otherFailed++
        await new Promise((res) => setTimeout(res, 20))
      }
    })()
    await new Promise((r) => setTimeout(r, 500))
    const second = await runAction(inputs({ image: image('v2') }))
    const report = await load.stop()
    done = true
    await other
    expect(second.outputs.result).toBe('deployed')
    expect(report.failed).toBe(0)
    expect(report.lastVersion).toBe('v2')
    expect({ otherFailed, answered: otherAnswered > 20 }).toEqual({ otherFailed: 0, answered: true })
    expect(readFileSync('/etc/nginx/nginx.conf', 'utf8')).toBe(mainConf)
    expect(readFileSync(managed, 'utf8')).toContain(`# ${APP}-9333 nginx-rollout-test/app:v2 on 127.0.0.1:${host.port}`)
    // A user that is not root wrote a file only root can write: through sudo, and the file is still root's.
    expect(execFileSync('id', ['-u', deployer.user], { encoding: 'utf8' }).trim()).not.toBe('0')
    expect(statSync(managed).uid).toBe(0)
    expect((await get(OTHER)).text).toBe('other site\n')
  })
})
