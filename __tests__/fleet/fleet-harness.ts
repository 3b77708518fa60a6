// The several-hosts test set-up of scripts/testhost/fleet-up.sh: an nginx host, three app hosts and a bastion,
// each a network namespace of this machine with its own dockerd and sshd, and a registry with a password.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { root } from '../../scripts/lib/action.mjs'

export { runAction, type ActionRun } from '../../scripts/lib/action.mjs'

const envFile = join(root, '.testhost/fleet.env')
if (!existsSync(envFile)) throw new Error(`no fleet: run scripts/testhost/fleet-up.sh first (${envFile} is missing)`)
export const fleet: Record<string, string> = Object.fromEntries(
  readFileSync(envFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
)

export type AppHostName = 'app1' | 'app2' | 'app3'
export const APP_HOSTS: readonly AppHostName[] = ['app1', 'app2', 'app3']
export const addr = (h: AppHostName | 'lb'): string => fleet[`FLEET_${h.toUpperCase()}_ADDR`]
export const privateAddr = (h: AppHostName | 'lb'): string => fleet[`FLEET_${h.toUpperCase()}_PRIVATE_ADDR`]

/** The docker CLI against one fleet host's own daemon. */
export const hostDocker = (h: AppHostName | 'lb', ...args: string[]): string =>
  execFileSync('docker', ['-H', fleet[`FLEET_${h.toUpperCase()}_DOCKER`], ...args], { encoding: 'utf8' }).trim()

export const ctl = (...args: string[]): string => execFileSync(fleet.FLEET_CTL, args, { encoding: 'utf8' }).trim()

/** name image state of the app's replicas on one host, sorted. */
export const replicasOn = (h: AppHostName, app: string): string[] =>
  hostDocker(h, 'ps', '--all', '--filter', `label=nginx-rollout.app=${app}`, '--filter', 'label=nginx-rollout.role=replica', '--format', '{{.Names}} {{.Image}} {{.State}}')
    .split('\n')
    .filter(Boolean)
    .sort()

export const image = (tag: string): string => `${fleet.FLEET_APP_IMAGE}:${tag}`

const fingerprints = ['LB', 'APP1', 'APP2', 'APP3'].map((h) => fleet[`FLEET_${h}_FINGERPRINT`]).join('\n')

/** The seed's topology: nginx on its own host, the app on three, pulled from the registry with a password. */
export function fleetInputs(app: string, listenPort: number, over: Record<string, string> = {}): Record<string, string> {
  return {
    hosts: APP_HOSTS.map(addr).join('\n'),
    'nginx-host': addr('lb'),
    username: fleet.FLEET_USER,
    key: readFileSync(fleet.FLEET_KEY, 'utf8'),
    fingerprint: fingerprints,
    app,
    network: 'host',
    registry: fleet.FLEET_REGISTRY,
    'registry-username': fleet.FLEET_REGISTRY_USER,
    'registry-password': fleet.FLEET_REGISTRY_PASSWORD,
    'nginx-image': fleet.FLEET_NGINX_IMAGE,
    'nginx-container': `${app}-lb`,
    listen: `${addr('lb')}:${listenPort}`,
    replicas: '1',
    'health-path': '/health',
    'drain-seconds': '2',
    'stop-timeout': '2',
    ...over,
  }
}

/** Removes every trace of an app from the fleet: replicas on every host, its nginx container, its state on the nginx host. */
export function resetFleetApp(app: string): void {
  for (const h of ['lb', ...APP_HOSTS] as const) {
    const ids = hostDocker(h, 'ps', '--all', '--quiet', '--filter', `label=nginx-rollout.app=${app}`, '--filter', `name=^${app}-`).split('\n').filter(Boolean)
    if (ids.length) hostDocker(h, 'rm', '--force', ...ids)
    ctl('enter', h, 'rm', '-rf', `/root/.nginx-rollout/${app}`, `/root/.nginx-rollout/nginx-${app}-lb.lock`)
  }
}
