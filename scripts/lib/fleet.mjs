// The several-hosts set-up of scripts/testhost/fleet-up.sh, for the fleet tests and the benchmark: an nginx
// host, three app hosts and a bastion, each a network namespace of this machine with its own dockerd and
// sshd, and a registry with a password.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { removeUntilGone, root } from './action.mjs'

const envFile = join(root, '.testhost/fleet.env')

/** The fleet's facts (FLEET_* of .testhost/fleet.env). */
export function fleetEnv() {
  if (!existsSync(envFile)) throw new Error(`no fleet: run scripts/testhost/fleet-up.sh first (${envFile} is missing)`)
  return Object.fromEntries(
    readFileSync(envFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )
}

export const APP_HOSTS = ['app1', 'app2', 'app3']
export const addr = (h) => fleetEnv()[`FLEET_${h.toUpperCase()}_ADDR`]
export const privateAddr = (h) => fleetEnv()[`FLEET_${h.toUpperCase()}_PRIVATE_ADDR`]

/** The docker CLI against one fleet host's own daemon. */
export const hostDocker = (h, ...args) =>
  execFileSync('docker', ['-H', fleetEnv()[`FLEET_${h.toUpperCase()}_DOCKER`], ...args], { encoding: 'utf8' }).trim()

export const ctl = (...args) => execFileSync(fleetEnv().FLEET_CTL, args, { encoding: 'utf8' }).trim()

/** name image state of the app's replicas on one host, sorted. */
export const replicasOn = (h, app) =>
  hostDocker(
    h,
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

export const image = (tag) => `${fleetEnv().FLEET_APP_IMAGE}:${tag}`

/** The seed's topology: nginx on its own host, the app on three, pulled from the registry with a password. */
export function fleetInputs(app, listenPort, over = {}) {
  const f = fleetEnv()
  return {
    hosts: APP_HOSTS.map(addr).join('\n'),
    'nginx-host': addr('lb'),
    username: f.FLEET_USER,
    key: readFileSync(f.FLEET_KEY, 'utf8'),
    // Each host's line as `ssh-keygen -lf .testhost/fleet_known_hosts` prints it: the host column (the host's
    // address, and its private address for the runs through the bastion) binds the key to that host only.
    fingerprint: ['LB', 'APP1', 'APP2', 'APP3']
      .map(
        (h) => `256 ${f[`FLEET_${h}_FINGERPRINT`]} ${f[`FLEET_${h}_ADDR`]},${f[`FLEET_${h}_PRIVATE_ADDR`]} (ED25519)`,
      )
      .join('\n'),
    app,
    network: 'host',
    registry: f.FLEET_REGISTRY,
    'registry-username': f.FLEET_REGISTRY_USER,
    'registry-password': f.FLEET_REGISTRY_PASSWORD,
    'nginx-image': f.FLEET_NGINX_IMAGE,
    'nginx-container': `${app}-lb`,
    // The fleet's hosts share this machine's PID namespace: a host-mode suite's nginx must not be chosen by auto.
    'nginx-mode': 'container',
    listen: `${addr('lb')}:${listenPort}`,
    replicas: '1',
    'health-path': '/health',
    'drain-seconds': '2',
    'stop-timeout': '2',
    // Judged on real traffic as by default, without the 30 s bake (tested on one host).
    'bake-seconds': '0',
    ...over,
  }
}

/** Removes every trace of an app from the fleet: replicas on every host, its nginx container, its state on the nginx host. */
export function resetFleetApp(app) {
  for (const h of ['lb', ...APP_HOSTS]) {
    const left = () =>
      hostDocker(h, 'ps', '--all', '--quiet', '--filter', `label=nginx-rollout.app=${app}`, '--filter', `name=^${app}-`)
        .split('\n')
        .filter(Boolean)
    removeUntilGone(left, (ids) => hostDocker(h, 'rm', '--force', ...ids))
    const home = fleetEnv().FLEET_HOME
    ctl('enter', h, 'rm', '-rf', `${home}/.nginx-rollout/${app}`, `${home}/.nginx-rollout/nginx-${app}-lb.lock`)
  }
}
