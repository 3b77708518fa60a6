// Several app hosts behind one nginx host (the seed's IP 1, IP 2, IP 3), end to end: real hosts in network
// namespaces, each with its own dockerd and sshd, images pulled from a registry with a password, GET, POST
// and 0.4 s requests through nginx, zero failed requests unless said.
import { jest } from '@jest/globals'
import { underLoad as loadWhile, type LoadReport } from '../../scripts/lib/load.mjs'
import {
  addr,
  APP_HOSTS,
  ctl,
  fleet,
  fleetInputs,
  hostDocker,
  image,
  privateAddr,
  replicasOn,
  resetFleetApp,
  runAction,
  type ActionRun,
  type AppHostName,
} from './fleet-harness.js'

jest.setTimeout(300_000)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const show = (r: ActionRun) =>
  r.log
    .split('\n')
    .filter((l) => !l.startsWith('::debug::') && !l.startsWith('::add-mask::'))
    .join('\n')

const underLoad = <T>(port: number, action: () => Promise<T>): Promise<{ value: T; load: LoadReport }> =>
  loadWhile({ host: addr('lb'), port }, action)

/** What each app host runs of the app: its images, one line per replica. */
const images = (app: string) => APP_HOSTS.map((h) => replicasOn(h, app).map((r) => r.split(' ').slice(1).join(' ')))

describe("the seed's picture: one nginx host, three app hosts, one replica each", () => {
  const APP = 'fleet-seed'
  const PORT = 18201
  const inputs = (over: Record<string, string> = {}) => fleetInputs(APP, PORT, over)
  beforeAll(() => resetFleetApp(APP))
  afterAll(() => resetFleetApp(APP))

  it('sets up every host from the registry, then rolls v1 to v2 a host at a time with zero failed requests', async () => {
    const first = await runAction(inputs({ image: image('v1') }))
    if (first.outputs.result !== 'deployed') console.log(show(first))
    expect(first.outputs.result).toBe('deployed')
    expect(JSON.parse(first.outputs.replicas).map((r: { host: string }) => r.host)).toEqual(APP_HOSTS.map(addr))
    expect(images(APP)).toEqual(APP_HOSTS.map(() => [`${image('v1')} running`]))

    const { value: run, load } = await underLoad(PORT, () => runAction(inputs({ image: image('v2') })))
    expect(run.outputs.result).toBe('deployed')
    expect(load.failed).toBe(0)
    expect(load.lastVersion).toBe('v2')
    // One batch per host, in turn: no host loses its capacity while another is replaced. Then one more
    // reload to the same servers turns nginx's record of requests off.
    const routes = run.log.split('\n').filter((l) => /^\[\d+\/\d+\] route /.test(l))
    expect(routes).toHaveLength(4)
    expect(routes[3]).toContain('the record of requests off')
    expect(run.log).toMatch(
      new RegExp(
        `\\] start ${APP}-\\d+@${addr('app1')} .*\\n(.*\\n)*.*\\] start ${APP}-\\d+@${addr('app2')} .*\\n(.*\\n)*.*\\] start ${APP}-\\d+@${addr('app3')}`,
      ),
    )
    expect(run.summary).toContain(
      `| pull ${image('v2')} on ${APP_HOSTS.map(addr).join(', ')} | ${APP_HOSTS.map(addr).join(', ')} |`,
    )
    const managed = hostDocker('lb', 'exec', `${APP}-lb`, 'cat', `/etc/nginx/conf.d/${APP}.conf`)
    for (const h of APP_HOSTS)
      expect(managed).toMatch(new RegExp(`server ${addr(h).replaceAll('.', '\\.')}:\\d+ weight=10`))
  })

  it('moves v2 to v3 blue-green: the new colour on every host, one reload', async () => {
    const { value: run, load } = await underLoad(PORT, () =>
      runAction(inputs({ image: image('v3'), strategy: 'blue-green' })),
    )
    expect(run.outputs).toMatchObject({ result: 'deployed', color: 'blue' })
    expect(load.failed).toBe(0)
    expect(load.lastVersion).toBe('v3')
    // One switch (the outgoing colour as backup while the new one is judged), then the record off.
    const routes = run.log.split('\n').filter((l) => /^\[\d+\/\d+\] route /.test(l))
    expect(routes).toHaveLength(2)
    expect(routes[0]).toContain('requests recorded')
    const servers = (line: string) => line.replace(/^\[\d+\/\d+\] /, '').replace(/ \(one nginx reload.*/, '')
    expect(servers(routes[1])).toBe(servers(routes[0]))
    expect(run.log).toMatch(/^\[\d+\/\d+\] start (\S+@\S+ \(:\d+\), ){2}\S+@\S+ \(:\d+\) from /m)
  })

  it('puts a canary on the first host at 10%, then promotes it to every host', async () => {
    const { value: canary, load } = await underLoad(PORT, () =>
      runAction(inputs({ image: image('v4'), strategy: 'canary', 'canary-steps': '10', 'canary-interval': '4' })),
    )
    expect(canary.outputs).toMatchObject({ result: 'paused', 'canary-weight': '10' })
    expect(load.failed).toBe(0)
    expect(replicasOn('app1', APP).filter((r) => r.includes(':v4 '))).toHaveLength(1)
    expect([...replicasOn('app2', APP), ...replicasOn('app3', APP)].filter((r) => r.includes(':v4 '))).toHaveLength(0)

    const { value: promote, load: promoteLoad } = await underLoad(PORT, () =>
      runAction(inputs({ operation: 'promote', image: '' })),
    )
    expect(promote.outputs).toMatchObject({ result: 'deployed', 'canary-weight': '100', image: image('v4') })
    expect(promoteLoad.failed).toBe(0)
    expect(promoteLoad.lastVersion).toBe('v4')
    await sleep(3000)
    expect(images(APP)).toEqual(APP_HOSTS.map(() => [`${image('v4')} running`]))
  })

  it('reports every host with status', async () => {
    const run = await runAction(inputs({ operation: 'status', image: '' }))
    expect(run.code).toBe(0)
    for (const h of APP_HOSTS)
      expect(run.summary).toMatch(
        new RegExp(
          `\\| ${APP}-\\d+ \\| ${addr(h).replaceAll('.', '\\.')} \\| ${addr(h).replaceAll('.', '\\.')}:\\d+ \\| \`${image('v4').replaceAll('.', '\\.')}\``,
        ),
      )
  })
})

describe('a failure on the third host only', () => {
  const APP = 'fleet-third'
  const PORT = 18202
  const inputs = (over: Record<string, string> = {}) => fleetInputs(APP, PORT, { 'health-timeout': '5', ...over })
  beforeAll(() => resetFleetApp(APP))
  afterAll(() => {
    resetFleetApp(APP)
  })

  it('cannot reach the registry there: nothing changes on any host', async () => {
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
    const managedBefore = hostDocker('lb', 'exec', `${APP}-lb`, 'cat', `/etc/nginx/conf.d/${APP}.conf`)
    // The third host loses its way to the registry (a rule in its own network namespace only).
    const [registryHost, registryPort] = fleet.FLEET_REGISTRY.split(':')
    const rule = [
      'OUTPUT',
      '-p',
      'tcp',
      '-d',
      registryHost,
      '--dport',
      registryPort,
      '-j',
      'REJECT',
      '--reject-with',
      'tcp-reset',
    ]
    ctl('exec', 'app3', 'iptables', '-I', ...rule)
    try {
      const { value: run, load } = await underLoad(PORT, () => runAction(inputs({ image: image('v2') })))
      expect(run.code).toBe(1)
      // docker login is the first thing to need the registry.
      expect(run.log).toMatch(
        new RegExp(
          `(docker login to ${fleet.FLEET_REGISTRY}|pulling ${image('v2')}) failed on ${addr('app3').replaceAll('.', '\\.')}`,
        ),
      )
      expect(run.log).not.toMatch(/\] start /)
      expect(load.failed).toBe(0)
      expect(images(APP)).toEqual(APP_HOSTS.map(() => [`${image('v1')} running`]))
      expect(hostDocker('lb', 'exec', `${APP}-lb`, 'cat', `/etc/nginx/conf.d/${APP}.conf`)).toBe(managedBefore)
    } finally {
      ctl('exec', 'app3', 'iptables', '-D', ...rule)
    }
  })

  it('its replica never gets healthy: every host back on the previous version, nginx config as before', async () => {
    const managedBefore = hostDocker('lb', 'exec', `${APP}-lb`, 'cat', `/etc/nginx/conf.d/${APP}.conf`)
    // The new version's /health answers 404 on the third host only (the test app's UNHEALTHY_ON knob).
    const { value: run, load } = await underLoad(PORT, () =>
      runAction(inputs({ image: image('v2'), env: `UNHEALTHY_ON=${addr('app3').replaceAll('.', '-')}` })),
    )
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('rolled-back')
    expect(run.log).toMatch(new RegExp(`health gate ${APP}-\\d+@${addr('app3').replaceAll('.', '\\.')}: FAILED`))
    expect(run.log).toMatch(new RegExp(`${APP}-\\d+ did not become healthy`))
    expect(load.failed).toBe(0)
    expect(load.lastVersion).toBe('v1')
    // The rollback's steps name their hosts: the first two hosts were already on v2.
    expect(run.summary).toMatch(
      new RegExp(
        `\\| rollback: start ${APP}-\\d+@${addr('app1').replaceAll('.', '\\.')}, ${APP}-\\d+@${addr('app2').replaceAll('.', '\\.')} again \\|`,
      ),
    )
    expect(images(APP)).toEqual(APP_HOSTS.map(() => [`${image('v1')} running`]))
    expect(hostDocker('lb', 'exec', `${APP}-lb`, 'cat', `/etc/nginx/conf.d/${APP}.conf`)).toBe(managedBefore)
  })
})

describe('an app host that cannot be reached, or is cut off mid-deploy', () => {
  const APP = 'fleet-cut'
  const PORT = 18203
  const inputs = (over: Record<string, string> = {}) => fleetInputs(APP, PORT, over)
  beforeAll(() => resetFleetApp(APP))
  afterAll(() => {
    ctl('ssh-up', 'app2')
    resetFleetApp(APP)
  })

  it('refuses the run before anything changes on any host when one host cannot be reached', async () => {
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
    const before = images(APP)
    ctl('ssh-down', 'app2')
    try {
      const run = await runAction(inputs({ image: image('v2') }))
      expect(run.code).toBe(1)
      expect(run.log).toContain(`ssh connection to ${fleet.FLEET_USER}@${addr('app2')} failed`)
      expect(run.log).not.toContain('::group::Take the deploy lock')
      expect(images(APP)).toEqual(before)
    } finally {
      ctl('ssh-up', 'app2')
    }
  })

  it('fails clearly when the connection to one host is cut mid-deploy; the next run repairs every host and completes', async () => {
    let cut = false
    const { value, load } = await underLoad(PORT, async () => {
      const broken = await runAction(inputs({ image: image('v2') }), {
        onStdout: (soFar) => {
          // Once the first host's batch is in, cut the second host off while its batch starts.
          if (
            !cut &&
            new RegExp(`\\] start ${APP}-\\d+@${addr('app2').replaceAll('.', '\\.')}`).test(
              soFar.replaceAll('%0A', '\n'),
            )
          ) {
            cut = true
            ctl('cut', 'app2')
          }
        },
      })
      const repaired = await runAction(inputs({ image: image('v2') }))
      return { broken, repaired }
    })
    expect(cut).toBe(true)
    expect(value.broken.code).toBe(1)
    expect(value.broken.log).toContain(`the ssh connection to ${addr('app2')} was lost`)
    expect(value.repaired.outputs.result).toBe('deployed')
    expect(load.failed).toBe(0)
    expect(load.lastVersion).toBe('v2')
    await sleep(3000)
    // Exactly one replica per host, v2, no orphans, and nginx accepts its config.
    expect(images(APP)).toEqual(APP_HOSTS.map(() => [`${image('v2')} running`]))
    expect(hostDocker('lb', 'exec', `${APP}-lb`, 'nginx', '-t', '-q')).toBe('')
  })
})

describe('host keys bound to their hosts', () => {
  const APP = 'fleet-hostkey'
  const PORT = 18206
  const inputs = (over: Record<string, string> = {}) => fleetInputs(APP, PORT, over)
  const fingerprintOf = (h: AppHostName | 'lb') => fleet[`FLEET_${h.toUpperCase()}_FINGERPRINT`]
  /** Host h's line as ssh-keygen -lf prints it, carrying the key of `keyOf` instead of its own when told. */
  const line = (h: AppHostName | 'lb', keyOf: AppHostName | 'lb' = h) =>
    `256 ${fingerprintOf(keyOf)} ${addr(h)},${privateAddr(h)} (ED25519)`
  beforeAll(() => resetFleetApp(APP))
  afterAll(() => resetFleetApp(APP))

  it('a key of host A presented by host B is refused: swapped lines fail the run before any change', async () => {
    expect((await runAction(inputs({ image: image('v1') }))).outputs.result).toBe('deployed')
    const before = images(APP)
    // Every key is listed, app1's and app2's each on the other's line: any listed key passed anywhere before.
    const swapped = [line('lb'), line('app1', 'app2'), line('app2', 'app1'), line('app3')].join('\n')
    const run = await runAction(inputs({ image: image('v2'), fingerprint: swapped }))
    expect(run.code).toBe(1)
    for (const [h, other] of [
      ['app1', 'app2'],
      ['app2', 'app1'],
    ] as const)
      expect(run.log).toContain(
        `host key verification failed for ${addr(h)}: the host presented ${fingerprintOf(h)}, expected ${fingerprintOf(other)} ` +
          `(the key presented is the one given for ${addr(other)}, ${privateAddr(other)}). Authentication was not attempted.`,
      )
    expect(run.log).not.toContain('::group::Take the deploy lock')
    expect(images(APP)).toEqual(before)
  })
})

describe('through a bastion', () => {
  const APP = 'fleet-bastion'
  const PORT = 18204
  const inputs = (over: Record<string, string> = {}) =>
    fleetInputs(APP, PORT, {
      // SSH goes to the private addresses, which only the bastion reaches; nginx uses the data network.
      hosts: APP_HOSTS.map((h) => `${privateAddr(h)} ${addr(h)}`).join('\n'),
      'nginx-host': privateAddr('lb'),
      'proxy-host': fleet.FLEET_BASTION_ADDR,
      'proxy-fingerprint': fleet.FLEET_BASTION_FINGERPRINT,
      ...over,
    })
  beforeAll(() => resetFleetApp(APP))
  afterAll(() => resetFleetApp(APP))

  it('rolls v1 to v2 on every host with every connection a channel through it, zero failed requests', async () => {
    const first = await runAction(inputs({ image: image('v1') }))
    if (first.outputs.result !== 'deployed') console.log(show(first))
    expect(first.outputs.result).toBe('deployed')
    const { value: run, load } = await underLoad(PORT, () => runAction(inputs({ image: image('v2') })))
    expect(run.outputs.result).toBe('deployed')
    expect(load.failed).toBe(0)
    expect(load.lastVersion).toBe('v2')
    expect(run.log).toContain(`through ${fleet.FLEET_BASTION_ADDR}`)
    expect(JSON.parse(run.outputs.replicas).map((r: { host: string }) => r.host)).toEqual(APP_HOSTS.map(privateAddr))
  })

  it('refuses a bastion whose key matches nothing, before authentication', async () => {
    const run = await runAction(inputs({ image: image('v2'), 'proxy-fingerprint': fleet.FLEET_LB_FINGERPRINT }))
    expect(run.code).toBe(1)
    expect(run.log).toContain(
      `host key verification failed for ${fleet.FLEET_BASTION_ADDR}: the host presented ${fleet.FLEET_BASTION_FINGERPRINT}`,
    )
  })
})

describe('the registry', () => {
  const APP = 'fleet-registry'
  const PORT = 18205
  beforeAll(() => resetFleetApp(APP))
  afterAll(() => resetFleetApp(APP))

  it('fails at login, before traffic is touched, with a wrong password that appears nowhere', async () => {
    expect((await runAction(fleetInputs(APP, PORT, { image: image('v1') }))).outputs.result).toBe('deployed')
    const wrong = `wrong-${fleet.FLEET_REGISTRY_PASSWORD.slice(0, 6)}-Pw`
    const { value: run, load } = await underLoad(PORT, () =>
      runAction(fleetInputs(APP, PORT, { image: image('v2'), 'registry-password': wrong })),
    )
    expect(run.code).toBe(1)
    expect(run.log).toMatch(/docker login to 169\.254\.77\.1:5000 failed on 169\.254\.77\.1[123]/)
    expect(run.log).not.toMatch(/\] (pull|start) /)
    expect(load.failed).toBe(0)
    expect(images(APP)).toEqual(APP_HOSTS.map(() => [`${image('v1')} running`]))
    for (const text of [
      run.stdout.replace(/^::add-mask::.*$/gm, ''),
      run.stderr,
      run.summary,
      JSON.stringify(run.outputs),
    ])
      expect(text).not.toContain(wrong)
  })
})
