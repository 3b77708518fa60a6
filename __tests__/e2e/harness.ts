// Runs the built action the way the GitHub runner does, against the local test host that
// scripts/testhost/up.sh brings up (dockerd, sshd on loopback, locally built images).
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import http from 'node:http'
import { join } from 'node:path'

const root = new URL('../../', import.meta.url).pathname
const envFile = join(root, '.testhost/env')

export interface TestHost {
  host: string
  port: number
  user: string
  key: string
  fingerprint: string
}

export function testHost(): TestHost {
  if (!existsSync(envFile)) throw new Error(`no test host: run scripts/testhost/up.sh first (${envFile} is missing)`)
  const env = Object.fromEntries(
    readFileSync(envFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )
  return { host: env.TESTHOST_SSH_HOST, port: Number(env.TESTHOST_SSH_PORT), user: env.TESTHOST_SSH_USER, key: readFileSync(env.TESTHOST_SSH_KEY, 'utf8'), fingerprint: env.TESTHOST_FINGERPRINT }
}

export interface ActionRun {
  code: number
  stdout: string
  stderr: string
  outputs: Record<string, string>
  summary: string
}

/** Parses GITHUB_OUTPUT's `name<<delimiter` blocks. */
export function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<=]+)<<(.+)$/.exec(lines[i])
    if (!m) continue
    const end = lines.indexOf(m[2], i + 1)
    out[m[1]] = lines.slice(i + 1, end).join('\n')
    i = end
  }
  return out
}

/** The inputs every e2e run shares: the test host, host networking (no bridge here), the local nginx image. */
export function baseInputs(h: TestHost, app: string, listenPort: number): Record<string, string> {
  return {
    host: `${h.host}:${h.port}`,
    username: h.user,
    key: h.key,
    fingerprint: h.fingerprint,
    app,
    network: 'host',
    pull: 'false',
    'nginx-image': 'nginx-rollout-test/nginx:test',
    'nginx-container': `${app}-lb`,
    listen: `127.0.0.1:${listenPort}`,
    'health-path': '/health',
    'health-interval': '0.2',
    'drain-seconds': '1',
    'stop-timeout': '2',
  }
}

export function runAction(inputs: Record<string, string>): Promise<ActionRun> {
  const dir = mkdtempSync(join(tmpdir(), 'nr-e2e-'))
  const outputFile = join(dir, 'output')
  const summaryFile = join(dir, 'summary')
  execFileSync('touch', [outputFile, summaryFile])
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', GITHUB_OUTPUT: outputFile, GITHUB_STEP_SUMMARY: summaryFile, GITHUB_WORKSPACE: root, RUNNER_DEBUG: '1' }
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'dist/index.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => {
      const result = { code: code ?? -1, stdout, stderr, outputs: parseOutputs(readFileSync(outputFile, 'utf8')), summary: readFileSync(summaryFile, 'utf8') }
      rmSync(dir, { recursive: true, force: true })
      resolve(result)
    })
  })
}

export const docker = (...args: string[]): string => execFileSync('docker', args, { encoding: 'utf8' }).trim()

/** name image state, one line per replica of the app, sorted. */
export const replicasOf = (app: string): string[] =>
  docker('ps', '--all', '--filter', `label=nginx-rollout.app=${app}`, '--filter', 'label=nginx-rollout.role=replica', '--format', '{{.Names}} {{.Image}} {{.State}}')
    .split('\n')
    .filter(Boolean)
    .sort()

export function nginxConf(container: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'nr-conf-'))
  docker('cp', `${container}:/etc/nginx/nginx.conf`, join(dir, 'nginx.conf'))
  const text = readFileSync(join(dir, 'nginx.conf'), 'utf8')
  rmSync(dir, { recursive: true, force: true })
  return text
}

/** One GET through nginx on a fresh connection (nothing kept alive between tests). */
export function get(port: number, path = '/'): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      })
      .on('error', reject)
  })
}

/** Removes every trace of an app from the test host: containers, its nginx container, its state directory. */
export function resetApp(app: string): void {
  const ids = docker('ps', '--all', '--quiet', '--filter', `label=nginx-rollout.app=${app}`).split('\n').filter(Boolean)
  const lb = docker('ps', '--all', '--quiet', '--filter', `name=^${app}-lb$`).split('\n').filter(Boolean)
  if (ids.length || lb.length) docker('rm', '--force', ...new Set([...ids, ...lb]))
  rmSync(join(homedir(), '.nginx-rollout', app), { recursive: true, force: true })
}

export const stateDir = (app: string): string => join(homedir(), '.nginx-rollout', app)
