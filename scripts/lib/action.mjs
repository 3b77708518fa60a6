// Runs the built action (dist/index.js) the way the GitHub runner does: inputs as INPUT_* variables,
// outputs through GITHUB_OUTPUT, the job summary through GITHUB_STEP_SUMMARY. Used by the end-to-end
// tests, the demo and the benchmark, against the local test host of scripts/testhost/up.sh.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'

export const root = new URL('../../', import.meta.url).pathname

/**
 * The local test host's connection facts. `as: 'deploy'`: its second user, not root, in the docker group,
 * with only docs/vps.md's sudoers lines (for the host-mode suites' apps), as a VPS's deploy user is.
 */
export function testHost({ as } = {}) {
  const envFile = join(root, '.testhost/env')
  if (!existsSync(envFile)) throw new Error(`no test host: run scripts/testhost/up.sh first (${envFile} is missing)`)
  const env = Object.fromEntries(
    readFileSync(envFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )
  return {
    host: env.TESTHOST_SSH_HOST,
    port: Number(env.TESTHOST_SSH_PORT),
    user: as === 'deploy' ? env.TESTHOST_DEPLOY_USER : env.TESTHOST_SSH_USER,
    /** The SSH user's home on the host, where the action keeps its records (~/.nginx-rollout). */
    home: as === 'deploy' ? env.TESTHOST_DEPLOY_HOME : homedir(),
    key: readFileSync(env.TESTHOST_SSH_KEY, 'utf8'),
    fingerprint: env.TESTHOST_FINGERPRINT,
  }
}

/** What this machine needs of any run: the test host, host networking (no bridge here), the local images. */
export function localInputs(h, app, listenPort) {
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
    // Each run's own nginx container, as before nginx-mode auto: the distribution's nginx that a host-mode
    // suite starts on this machine must never be chosen by another suite's run.
    'nginx-mode': 'container',
    listen: `127.0.0.1:${listenPort}`,
  }
}

/** Inputs every test run shares: the local ones, and shorter drains and stops than the action's defaults. */
export function baseInputs(h, app, listenPort) {
  return {
    ...localInputs(h, app, listenPort),
    'health-path': '/health',
    'health-interval': '0.2',
    'drain-seconds': '1',
    'stop-timeout': '2',
    // Every deploy is judged on real traffic (verify-seconds as by default), but does not bake for 30 s: the
    // tests of the bake set it themselves.
    'bake-seconds': '0',
  }
}

/** Parses GITHUB_OUTPUT's `name<<delimiter` blocks. */
export function parseOutputs(text) {
  const out = {}
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

/** The log as the runner shows it: workflow command data (::error::...) has %, CR and LF escaped. */
export const decodeCommands = (text) => text.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%')

export function runAction(inputs, { debug = true, onStdout, env: extraEnv = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'nr-action-'))
  const outputFile = join(dir, 'output')
  const summaryFile = join(dir, 'summary')
  writeFileSync(outputFile, '')
  writeFileSync(summaryFile, '')
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    GITHUB_OUTPUT: outputFile,
    GITHUB_STEP_SUMMARY: summaryFile,
    GITHUB_WORKSPACE: root,
    ...(debug ? { RUNNER_DEBUG: '1' } : {}),
    ...extraEnv,
  }
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'dist/index.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
      // Given the process too: a test can signal it (the runner cancels a run with SIGINT).
      onStdout?.(stdout, child)
    })
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => {
      const result = {
        code: code ?? -1,
        stdout,
        log: decodeCommands(stdout),
        stderr,
        outputs: parseOutputs(readFileSync(outputFile, 'utf8')),
        summary: readFileSync(summaryFile, 'utf8'),
      }
      rmSync(dir, { recursive: true, force: true })
      // NR_KEEP_LOGS=folder keeps every run's log there, to read a failing test's runs in full.
      if (process.env.NR_KEEP_LOGS) {
        mkdirSync(process.env.NR_KEEP_LOGS, { recursive: true })
        writeFileSync(
          join(
            process.env.NR_KEEP_LOGS,
            `${Date.now()}-${String(inputs.app ?? 'run').replace(/[^A-Za-z0-9_.-]/g, '_')}.log`,
          ),
          result.log + result.stderr,
        )
      }
      // The action survives an error nothing waited for, but says so: a bug every test must see.
      if (/an error no step waited for/.test(stdout)) {
        reject(new Error(`the run hit an error no step waited for:\n${result.log}`))
        return
      }
      resolve(result)
    })
  })
}

const docker = (...args) => execFileSync('docker', args, { encoding: 'utf8' }).trim()

/**
 * Removes the containers `left()` lists until it lists none. A run's background retirement may be removing
 * some of them at this very moment ("No such container", "removal ... already in progress").
 */
export function removeUntilGone(left, remove) {
  const deadline = Date.now() + 20_000
  for (let ids = left(); ids.length; ids = left()) {
    try {
      remove(ids)
    } catch (e) {
      if (Date.now() > deadline) throw e
      execFileSync('sleep', ['0.2'])
    }
  }
}

/** Removes every trace of an app from the local test host: its containers, its nginx container, its state directory. */
export function resetApp(app) {
  const left = () =>
    [
      ...new Set([
        ...docker('ps', '--all', '--quiet', '--filter', `label=nginx-rollout.app=${app}`).split('\n'),
        ...docker('ps', '--all', '--quiet', '--filter', `name=^${app}-lb$`).split('\n'),
      ]),
    ].filter(Boolean)
  removeUntilGone(left, (ids) => docker('rm', '--force', ...ids))
  for (const home of [homedir(), testHost({ as: 'deploy' }).home])
    if (home) rmSync(join(home, '.nginx-rollout', app), { recursive: true, force: true })
}
