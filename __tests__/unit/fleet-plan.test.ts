// Plans over several app hosts: `replicas` per host, ports per host, batches that take from the hosts in
// turn, one reload per batch, and canary replicas on the first host(s).
import { describe, expect, it } from '@jest/globals'
import type { ManagedContainer } from '../../src/host/state.js'
import { byHost, type Replica } from '../../src/model.js'
import { planBlueGreen } from '../../src/plan/blue-green.js'
import { planCanary } from '../../src/plan/canary.js'
import { allocate, everyHost, liveReplicas, type Plan } from '../../src/plan/common.js'
import { planRolling } from '../../src/plan/rolling.js'
import { describeStep, type Step } from '../../src/plan/types.js'
import { container, replica, replicaOf, routesTo, THREE_HOSTS } from './fakes.js'
import { configFrom } from './fixtures.js'

const config = (over = {}) => configFrom({ ...THREE_HOSTS, 'drain-seconds': '5', ...over })
const many = (s: Step) => describeStep(s, true)
/** One container of the app per host, on the same port. */
const onEachHost = (port: number, image = 'shop:v1', extra: Partial<ManagedContainer> = {}) =>
  ['a', 'b', 'c'].map((host) => container(port, image, { host, ...extra }))
const routeSteps = (plan: Plan) => plan.steps.filter((s): s is Extract<Step, { kind: 'route' }> => s.kind === 'route')
const perHost = (rs: readonly Replica[]) => Object.fromEntries([...byHost(rs)].map(([h, list]) => [h, list.length]))

describe('plans over several app hosts', () => {
  it('reads three hosts from the inputs, with nginx on its own host', () => {
    const c = config()
    expect(c.appHosts).toEqual([
      { id: 'a', ssh: { host: 'a', port: 22 }, upstreamAddress: '10.0.0.1' },
      { id: 'b', ssh: { host: 'b', port: 22 }, upstreamAddress: '10.0.0.2' },
      { id: 'c', ssh: { host: 'c', port: 22 }, upstreamAddress: '10.0.0.3' },
    ])
    expect(c.nginxHost).toEqual({ host: 'lb', port: 22 })
  })

  it('starts `replicas` on every app host, taking from the hosts in turn, and logs in and pulls on each', () => {
    const plan = planRolling(
      config({ replicas: '2', registry: 'ghcr.io', 'registry-username': 'bot', 'registry-password': 'pw' }),
      [],
      undefined,
    )
    expect(plan.steps.map(many)).toEqual([
      'log in to ghcr.io as bot on a, b, c',
      'pull shop:v2 on a, b, c',
      'start shop-9201@a (:9201), shop-9201@b (:9201), shop-9201@c (:9201), shop-9202@a (:9202), shop-9202@b (:9202), shop-9202@c (:9202) from shop:v2',
      'health gate shop-9201@a, shop-9201@b, shop-9201@c, shop-9202@a, shop-9202@b, shop-9202@c',
      'route traffic to shop-9201@a, shop-9201@b, shop-9201@c, shop-9202@a, shop-9202@b, shop-9202@c (one nginx reload)',
    ])
    expect(plan.steps.slice(0, 2)).toEqual([
      { kind: 'login', registry: 'ghcr.io', username: 'bot', hosts: ['a', 'b', 'c'] },
      { kind: 'pull', image: 'shop:v2', hosts: ['a', 'b', 'c'] },
    ])
    expect(perHost(plan.next)).toEqual({ a: 2, b: 2, c: 2 })
    expect(plan.next.map((r) => `${r.address}:${r.port}`)).toEqual([
      '10.0.0.1:9201',
      '10.0.0.2:9201',
      '10.0.0.3:9201',
      '10.0.0.1:9202',
      '10.0.0.2:9202',
      '10.0.0.3:9202',
    ])
  })

  it('allocates ports per host: a port taken on host a is free on host b', () => {
    const taken = [
      container(9201, 'blog:v1', { host: 'a', app: 'blog', name: 'blog-9201' }),
      container(9202, 'shop:v0', { host: 'a', running: false }),
    ]
    expect(allocate(config(), taken, everyHost(config(), 1), 'shop:v2')).toEqual([
      replica(9203, 'shop:v2', 'a'),
      replica(9201, 'shop:v2', 'b'),
      replica(9201, 'shop:v2', 'c'),
    ])
  })

  it('names the host in the port exhaustion message', () => {
    const full = [
      container(9201, 'shop:v1', { host: 'b' }),
      container(9202, 'blog:v1', { host: 'b', app: 'blog', name: 'blog-9202' }),
    ]
    expect(() => allocate(config({ ports: '9201-9202' }), full, everyHost(config(), 1), 'shop:v2')).toThrow(
      'ports: 1 new replicas on b need 1 free ports in 9201-9202, but only 0 are free (taken: 9201, 9202).',
    )
  })

  it('knows replicas by host and port: the same port routed on host a says nothing about host b', () => {
    const cs = onEachHost(9201)
    const { live, strays } = liveReplicas(config(), cs, routesTo(cs[0], cs[2]))
    expect(live.map((r) => `${r.name}@${r.host}`)).toEqual(['shop-9201@a', 'shop-9201@c'])
    expect(strays.map((r) => `${r.name}@${r.host}`)).toEqual(['shop-9201@b'])
  })

  it("rolls with batch-size 1 one host at a time, a then b then c, one reload per batch, starting the next host's replica while the one before drains", () => {
    const live = onEachHost(9201)
    const plan = planRolling(config({ replicas: '1' }), live, routesTo(...live))
    expect(plan.steps.map(many)).toEqual([
      'pull shop:v2 on a, b, c',
      'start shop-9202@a (:9202) from shop:v2',
      'health gate shop-9202@a',
      'route traffic to shop-9202@a, shop-9201@b, shop-9201@c (one nginx reload)',
      'start shop-9202@b (:9202) from shop:v2 (in the background, while the batch before drains)',
      'drain shop-9201@a (until idle, at most 5s), checking shop-9202@a still healthy',
      'stop shop-9201@a (in the background)',
      'health gate shop-9202@b',
      'route traffic to shop-9202@a, shop-9202@b, shop-9201@c (one nginx reload)',
      'start shop-9202@c (:9202) from shop:v2 (in the background, while the batch before drains)',
      'drain shop-9201@b (until idle, at most 5s), checking shop-9202@b still healthy',
      'stop shop-9201@b (in the background)',
      'health gate shop-9202@c',
      'route traffic to shop-9202@a, shop-9202@b, shop-9202@c (one nginx reload)',
      'drain shop-9201@c (until idle, at most 5s), checking shop-9202@c still healthy',
      'retire shop-9201@a, shop-9201@b, shop-9201@c (stop and remove on the host, in the background)',
    ])
  })

  it.each(['1', '2', '3', '4'])(
    'never leaves a host without a replica in the upstream with batch-size %s and 2 replicas per host',
    (batch) => {
      const live = [...onEachHost(9201), ...onEachHost(9202)]
      const plan = planRolling(config({ replicas: '2', 'batch-size': batch }), live, routesTo(...live))
      const routes = routeSteps(plan)
      expect(routes).toHaveLength(Math.ceil(6 / Number(batch)))
      for (const r of routes) {
        expect(r.servers).toHaveLength(6)
        expect(Object.keys(perHost(r.servers)).sort()).toEqual(['a', 'b', 'c'])
      }
      expect(perHost(plan.next)).toEqual({ a: 2, b: 2, c: 2 })
    },
  )

  it('starts the new colour on every host in one step, switches every host in one reload, and checks every host again while the old colour drains', () => {
    const live = onEachHost(9201, 'shop:v1', { color: 'blue' })
    const plan = planBlueGreen(
      config({ strategy: 'blue-green', replicas: '1', pull: 'false' }),
      live,
      routesTo(...live),
    )
    expect(plan.steps.map(many)).toEqual([
      'start shop-9202@a (:9202), shop-9202@b (:9202), shop-9202@c (:9202) from shop:v2',
      'health gate shop-9202@a, shop-9202@b, shop-9202@c',
      'route traffic to shop-9202@a, shop-9202@b, shop-9202@c (one nginx reload)',
      'drain shop-9201@a, shop-9201@b, shop-9201@c (until idle, at most 5s), checking shop-9202@a, shop-9202@b, shop-9202@c still healthy',
      'retire shop-9201@a, shop-9201@b, shop-9201@c (stop and remove on the host, in the background)',
    ])
    expect(plan.next.map((r) => r.color)).toEqual(['green', 'green', 'green'])
  })

  it('puts the canary on the first host, then replaces every host so each ends with exactly `replicas`', () => {
    const live = onEachHost(9201)
    const plan = planCanary(
      config({ strategy: 'canary', replicas: '1', 'canary-steps': '10,100', 'canary-interval': '30' }),
      live,
      routesTo(...live),
    )
    expect(plan.steps.map(many)).toEqual([
      'pull shop:v2 on a, b, c',
      'start shop-9202@a (:9202) from shop:v2',
      'health gate shop-9202@a',
      'route 10% to canary shop-9202@a (weights 1:3, one nginx reload; requests recorded)',
      'observe the canary at 10% for 30s',
      'route traffic to shop-9202@a, shop-9201@b, shop-9201@c (one nginx reload)',
      'start shop-9202@b (:9202) from shop:v2 (in the background, while the batch before drains)',
      'drain shop-9201@a (until idle, at most 5s), checking shop-9202@a still healthy',
      'stop shop-9201@a (in the background)',
      'health gate shop-9202@b',
      'route traffic to shop-9202@a, shop-9202@b, shop-9201@c (one nginx reload)',
      'start shop-9202@c (:9202) from shop:v2 (in the background, while the batch before drains)',
      'drain shop-9201@b (until idle, at most 5s), checking shop-9202@b still healthy',
      'stop shop-9201@b (in the background)',
      'health gate shop-9202@c',
      'route traffic to shop-9202@a, shop-9202@b, shop-9202@c (one nginx reload)',
      'drain shop-9201@c (until idle, at most 5s), checking shop-9202@c still healthy',
      'retire shop-9201@a, shop-9201@b, shop-9201@c (stop and remove on the host, in the background)',
    ])
  })

  it.each([
    ['1', '1', ['a']],
    ['2', '1', ['a', 'b']],
    ['3', '2', ['a', 'b', 'c']],
    ['4', '1', ['a', 'b', 'c', 'a']],
  ])(
    'spreads %s canary replicas round-robin from the first host, and ends with %s per host at 100',
    (canaries, replicas, hosts) => {
      const live = onEachHost(9201)
      const plan = planCanary(
        config({ strategy: 'canary', replicas, 'canary-replicas': canaries, 'canary-steps': '10,100' }),
        live,
        routesTo(...live),
      )
      const start = plan.steps.find((s) => s.kind === 'start')
      expect(start).toMatchObject({ kind: 'start' })
      const canary = (start as Extract<Step, { kind: 'start' }>).replicas
      expect(canary.map((r) => r.host).sort()).toEqual([...hosts].sort())
      const n = Number(replicas)
      expect(perHost(plan.next)).toEqual({ a: n, b: n, c: n })
      // Every canary replica either stays (up to `replicas` on its host) or is retired; none is left behind.
      const retired = plan.steps.flatMap((s) => (s.kind === 'retire' ? s.replicas : []))
      for (const r of canary) expect(plan.next.includes(r) !== retired.includes(r)).toBe(true)
      expect(routeSteps(plan).at(-1)!.servers).toEqual(plan.next)
    },
  )

  it('keeps a paused canary on the first host beside every stable replica', () => {
    const live = onEachHost(9201)
    const plan = planCanary(
      config({ strategy: 'canary', replicas: '1', 'canary-steps': '20' }),
      live,
      routesTo(...live),
    )
    expect(plan.pausesAt).toEqual({ percent: 20, canary: [replica(9202, 'shop:v2', 'a')], stableImage: 'shop:v1' })
    expect(plan.next).toEqual([...live.map(replicaOf), replica(9202, 'shop:v2', 'a')])
  })
})
