// Helpers for the end-to-end tests: the action runs through scripts/lib/action.mjs (as the runner runs
// it), against the local test host that scripts/testhost/up.sh brings up.
import { execFileSync } from 'node:child_process'
import { homedir } from 'node:os'
import http from 'node:http'
import { join } from 'node:path'

export { baseInputs, resetApp, runAction, testHost, type ActionRun } from '../../scripts/lib/action.mjs'

export const docker = (...args: string[]): string => execFileSync('docker', args, { encoding: 'utf8' }).trim()

/** name image state, one line per replica of the app, sorted. */
export const replicasOf = (app: string): string[] =>
  docker(
    'ps',
    '--all',
    '--filter',
    `label=nginx-rollout.app=${app}`,
    '--filter',
    'label=nginx-rollout.role=replica',
    '--format',
    '{{.Names}} {{.Image}} {{.State}}',
  )
    .split('\n')
    .filter(Boolean)
    .sort()

/**
 * Old replicas are retired by a detached process on the host after the run (stop-timeout, then removal):
 * polls until `read` gives what is expected, and returns the last value read.
 */
export async function eventually<T>(read: () => T, expected: T, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let value = read()
  while (JSON.stringify(value) !== JSON.stringify(expected) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200))
    value = read()
  }
  return value
}

/** A file inside an nginx container (its main nginx.conf by default). */
export const nginxConf = (container: string, path = '/etc/nginx/nginx.conf'): string =>
  execFileSync('docker', ['exec', container, 'cat', path], { encoding: 'utf8' })

/** The one file the action manages for an app, in the app's own nginx container. */
export const managedConf = (app: string): string => nginxConf(`${app}-lb`, `/etc/nginx/conf.d/${app}.conf`)

/** One GET through nginx on a fresh connection (nothing kept alive between tests), optionally for a server name. */
export function get(
  port: number,
  path = '/',
  hostHeader?: string,
  address = '127.0.0.1',
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: address, port, path, agent: false, headers: hostHeader ? { Host: hostHeader } : {} }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      })
      .on('error', reject)
  })
}

export const stateDir = (app: string): string => join(homedir(), '.nginx-rollout', app)

/**
 * Cuts the SSH connections process `pid` holds to the test host, from the server's side: the sshd processes
 * at the other end of its sockets are killed. Only that run's connection goes (other suites share this sshd).
 */
export function cutSshOf(pid: number, sshPort: number): number {
  const established = (filter: string) =>
    execFileSync('ss', ['-tnpH', 'state', 'established', filter], { encoding: 'utf8' }).split('\n').filter(Boolean)
  // Without a State column: Recv-Q Send-Q Local:Port Peer:Port Process.
  const localPorts = established(`( dport = :${sshPort} )`)
    .filter((l) => l.includes(`pid=${pid},`))
    .map((l) => l.trim().split(/\s+/)[2].split(':').pop())
  let killed = 0
  for (const port of localPorts)
    for (const line of established(`( sport = :${sshPort} and dport = :${port} )`))
      for (const m of line.matchAll(/pid=(\d+),/g)) {
        process.kill(Number(m[1]), 'SIGKILL')
        killed++
      }
  return killed
}
