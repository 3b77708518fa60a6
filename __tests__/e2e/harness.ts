// Helpers for the end-to-end tests: the action runs through scripts/lib/action.mjs (as the runner runs
// it), against the local test host that scripts/testhost/up.sh brings up.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import http from 'node:http'
import { join } from 'node:path'

export { baseInputs, resetApp, runAction, testHost, type ActionRun } from '../../scripts/lib/action.mjs'

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

export const stateDir = (app: string): string => join(homedir(), '.nginx-rollout', app)
