// The common VPS, end to end (scripts/testhost/vps-up.sh): Debian's nginx runs as a host process with a site
// of its own on port 80 in sites-enabled, and a user "deploy", not root, in the docker group, has only the
// sudoers lines of docs/vps.md. The Quick start's inputs with server-name set and no nginx-mode: the action
// finds the host's nginx, deploys through sudo, judges every deploy on real traffic, switches a broken version
// back and promotes a canary, while the other site answers throughout and the user's files stay as they were.
// Without the sudoers lines: one clear error, before anything changes.
import { jest } from '@jest/globals'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import http from 'node:http'
import { join, relative } from 'node:path'
import { startLoad, type LoadReport } from '../../scripts/lib/load.mjs'
import { docker, runAction, type ActionRun } from './harness.js'

jest.setTimeout(300_000)

const root = join(import.meta.dirname, '../..')
const APP = 'vps-shop'
const image = (tag: string) => `nginx-rollout-test/app:${tag}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function vpsUp(sudoers: 'docs' | 'none'): Record<string, string> {
  execFileSync(join(root, 'scripts/testhost/vps-up.sh'), {
    env: { ...process.env, VPS_SUDOERS: sudoers },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const text = readFileSync(join(root, '.testhost/vps.env'), 'utf8')
  return Object.fromEntries(
    text
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )
}

/** The Quick start's inputs, server-name set, no nginx-mode; what this machine needs (local images, addresses). */
const quickStart = (vps: Record<string, string>, over: Record<string, string> = {}) => ({
  host: vps.VPS_SSH_HOST,
  username: vps.VPS_SSH_USER,
  key: readFileSync(vps.VPS_SSH_KEY, 'utf8'),
  fingerprint: vps.VPS_FINGERPRINT,
  app: APP,
  'server-name': 'app.test',
  // This machine: the images are local, replicas run in the test host's network namespace, reached from vps.
  pull: 'false',
  network: 'host',
  'upstream-host': vps.VPS_UPSTREAM,
  ports: '9771-9790',
  'health-path': '/health',
  'bake-seconds': '0',
  ...over,
})

/** One GET to vps's nginx on port 80 as `host`. */
function getAs(vpsHost: string, host: string, path = '/'): Promise<{ status?: number; text?: string; error?: string }> {
  return new Promise((resolve) => {
    const req = http.request({ host: vpsHost, port: 80, path, headers: { Host: host, Connection: 'close' } }, (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode, text }))
    })
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
    req.on('error', (e) => resolve({ error: e.message }))
    req.end()
  })
}

/** Asks for the other site every 50 ms until stopped; counts what did not answer "other site". */
function watchOtherSite(vpsHost: string) {
  let stop = false
  let asked = 0
  const failures: string[] = []
  const done = (async () => {
    while (!stop) {
      asked++
      const r = await getAs(vpsHost, 'other.test')
      if (r.status !== 200 || r.text !== 'other site\n') failures.push(JSON.stringify(r))
      await sleep(50)
    }
  })()
  return {
    async stop() {
      stop = true
      await done
      return { asked, failures }
    },
  }
}

/** Runs `action` under load through vps's nginx as app.test (from 2 s before to 2 s after). */
async function underLoad(vpsHost: string, action: () => Promise<ActionRun>) {
  const load = startLoad({
    host: vpsHost,
    port: 80,
    headers: { Host: 'app.test' },
    workers: { get: 6, post: 3, slow: 4 },
    maxSeconds: 240,
  })
  await sleep(2000)
  const run = await action()
  await sleep(2000)
  const report: LoadReport = await load.stop()
  // What the run said when it did not deploy: the reason is in the log, not in the assertion.
  if (run.outputs.result !== 'deployed')
    console.log(
      run.stdout
        .split('\n')
        .filter((l) => /^\[\d+\/\d+\]|^result:|^::error::/.test(l))
        .join('\n'),
    )
  return { run, load: report }
}

/** The verification rows of the summary, as `replicas: verdict`. */
const verdicts = (run: ActionRun): string[] =>
  [...run.summary.matchAll(/^\| ([^|]+) \| \*{0,2}(pass|fail|not judged)\*{0,2} \|/gm)].map((m) => `${m[1]}: ${m[2]}`)

/** Every file under `dir` (symbolic links as their target), by path, as a sha256: the user's files. */
function snapshot(dir: string, except: string): Map<string, string> {
  const files = new Map<string, string>()
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name)
      const rel = relative(dir, p)
      if (rel === except) continue
      if (statSync(p).isDirectory()) walk(p)
      else files.set(rel, createHash('sha256').update(readFileSync(p)).digest('hex'))
    }
  }
  walk(dir)
  return files
}

const appContainers = () => docker('ps', '--all', '--quiet', '--filter', `label=nginx-rollout.app=${APP}`)

afterAll(() => {
  execFileSync(join(root, 'scripts/testhost/vps-down.sh'), { stdio: 'ignore' })
})

describe('a VPS whose deploy user has no sudoers lines', () => {
  it('fails with one clear error naming the commands and the sudoers line, before anything changes', async () => {
    const vps = vpsUp('none')
    const nginxBefore = snapshot(join(vps.VPS_FS, 'etc/nginx'), '')
    const run = await runAction(quickStart(vps, { image: image('v1') }))
    expect(run.code).not.toBe(0)
    expect(run.outputs.result).toBe('failed')
    expect(run.log).toContain('nginx-mode auto: the nginx installed on 169.254.77.62')
    expect(run.log).toContain(
      "sudo: nginx-rollout runs nginx's privileged commands on 169.254.77.62 through sudo -n as deploy (not root, input sudo: auto), " +
        'and sudo does not allow `/usr/sbin/nginx -T`, `/usr/sbin/nginx -t`, `/usr/sbin/nginx -s reload`, ' +
        '`/usr/bin/tee /etc/nginx/conf.d/vps-shop.conf`, `/usr/bin/rm -f /etc/nginx/conf.d/vps-shop.conf`, ' +
        '`/usr/bin/truncate -s 0 /var/log/nginx/nginx-rollout-vps-shop.log`, ' +
        '`/usr/bin/truncate -s 0 /var/log/nginx/nginx-rollout-vps-shop.switched-back`, ' +
        '`/usr/bin/rm -f /var/log/nginx/nginx-rollout-vps-shop.switched-back`',
    )
    expect(run.log).toContain(
      'deploy ALL=(root) NOPASSWD: /usr/sbin/nginx -T, /usr/sbin/nginx -t, /usr/sbin/nginx -s reload, ' +
        '/usr/bin/tee /etc/nginx/conf.d/vps-shop.conf, /usr/bin/rm -f /etc/nginx/conf.d/vps-shop.conf, ' +
        '/usr/bin/truncate -s 0 /var/log/nginx/nginx-rollout-vps-shop.log, ' +
        '/usr/bin/truncate -s 0 /var/log/nginx/nginx-rollout-vps-shop.switched-back, ' +
        '/usr/bin/rm -f /var/log/nginx/nginx-rollout-vps-shop.switched-back',
    )
    // Nothing changed: no replica, no file, nginx serves the user's site as before.
    expect(appContainers()).toBe('')
    expect(snapshot(join(vps.VPS_FS, 'etc/nginx'), '')).toEqual(nginxBefore)
    expect(await getAs(vps.VPS_SSH_HOST, 'other.test')).toEqual({ status: 200, text: 'other site\n' })
  })
})

describe("a VPS with the distribution's nginx and a deploy user with the sudoers lines of docs/vps.md", () => {
  let vps: Record<string, string>
  let userFiles: Map<string, string>
  const managed = 'conf.d/vps-shop.conf'
  let other: ReturnType<typeof watchOtherSite> | undefined
  // A failed expectation must not leave the watch asking forever.
  afterAll(async () => {
    await other?.stop()
  })
  beforeAll(() => {
    vps = vpsUp('docs')
    userFiles = snapshot(join(vps.VPS_FS, 'etc/nginx'), managed)
  })

  it('deploys to the host nginx through sudo, judged on real traffic; switches a broken version back; promotes a canary; the other site answers throughout', async () => {
    other = watchOtherSite(vps.VPS_SSH_HOST)

    const first = await runAction(quickStart(vps, { image: image('v1') }))
    expect(first.outputs.result).toBe('deployed')
    expect(first.log).toContain('nginx-mode auto: the nginx installed on 169.254.77.62')
    expect(existsSync(join(vps.VPS_FS, 'etc/nginx', managed))).toBe(true)
    expect((await getAs(vps.VPS_SSH_HOST, 'app.test')).text).toBe('v1\n')

    const second = await underLoad(vps.VPS_SSH_HOST, () => runAction(quickStart(vps, { image: image('v2') })))
    expect(second.run.outputs.result).toBe('deployed')
    expect(verdicts(second.run).length).toBeGreaterThan(0)
    expect(verdicts(second.run).every((v) => v.endsWith(': pass'))).toBe(true)
    expect(second.load.failed).toBe(0)

    const broken = await underLoad(vps.VPS_SSH_HOST, () => runAction(quickStart(vps, { image: image('broken') })))
    expect(broken.run.outputs.result).toBe('rolled-back')
    expect(broken.run.log).toMatch(/real traffic: (over the last seconds )?the new version answered 5xx/)
    expect(verdicts(broken.run).some((v) => v.endsWith(': fail'))).toBe(true)
    // Requests went back at the verdict through sudo's two lines for the flag, and the flag is gone.
    expect(broken.run.log).toMatch(/requests went to the previous replicas [\d.]+s after the word/)
    expect(existsSync(join(vps.VPS_FS, 'log/nginx-rollout-vps-shop.switched-back'))).toBe(false)
    expect((await getAs(vps.VPS_SSH_HOST, 'app.test')).text).toBe('v2\n')

    const canary = { strategy: 'canary', 'canary-steps': '50', 'canary-interval': '3' }
    const paused = await underLoad(vps.VPS_SSH_HOST, () =>
      runAction(quickStart(vps, { ...canary, image: image('v3') })),
    )
    expect(paused.run.outputs).toMatchObject({ result: 'paused', 'canary-weight': '50' })
    expect(paused.load.failed).toBe(0)
    const promoted = await underLoad(vps.VPS_SSH_HOST, () =>
      runAction(quickStart(vps, { ...canary, operation: 'promote', image: '' })),
    )
    expect(promoted.run.outputs).toMatchObject({ result: 'deployed', 'canary-weight': '100', image: image('v3') })
    expect(promoted.load.failed).toBe(0)
    expect((await getAs(vps.VPS_SSH_HOST, 'app.test')).text).toBe('v3\n')

    const seen = await other.stop()
    other = undefined
    expect(seen.asked).toBeGreaterThan(100)
    expect(seen.failures).toEqual([])
    // The user's files, byte for byte: only the managed file is the action's.
    expect(snapshot(join(vps.VPS_FS, 'etc/nginx'), managed)).toEqual(userFiles)
  })

  it("finds in a dry run a server_name the user's site serves, and port 80 held for a new container", async () => {
    const name = await runAction(
      quickStart(vps, { image: image('v1'), 'server-name': 'other.test', 'dry-run': 'true' }),
    )
    expect(name.code).not.toBe(0)
    expect(name.log).toContain(
      'server-name other.test: /etc/nginx/sites-enabled/other-site:2 already serves it on listen 80; nginx would answer only one of the two server blocks',
    )
    const port = await runAction(
      quickStart(vps, {
        image: image('v1'),
        'nginx-mode': 'container',
        'nginx-container': 'vps-lb',
        'dry-run': 'true',
      }),
    )
    expect(port.code).not.toBe(0)
    expect(port.log).toContain(
      'listen 80: the address is already held on 169.254.77.62 (*:80 by another process (ss shows only your own processes)), so the nginx container vps-lb the run creates could not listen there',
    )
    expect(snapshot(join(vps.VPS_FS, 'etc/nginx'), managed)).toEqual(userFiles)
  })
})
