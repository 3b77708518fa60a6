import type { ManagedContainer } from '../../src/host/state.js'
import { liveReplicas, PlanError, type Plan } from '../../src/plan/common.js'
import { planUndo } from '../../src/plan/rollback.js'
import { planRolling } from '../../src/plan/rolling.js'
import { describeStep } from '../../src/plan/types.js'
import { configFrom } from './fixtures.js'

const replica = (port: number, image = 'shop:v1', running = true, app = 'shop'): ManagedContainer => ({ name: `${app}-${port}`, port, image, app, role: 'replica', running })
const config = (over = {}) => configFrom({ replicas: '3', 'drain-seconds': '5', ...over })
const liveConf = (...ports: number[]) => ports.map((p) => `    server 127.0.0.1:${p} weight=10;`).join('\n')

describe('planRolling', () => {
  it('replaces one replica per batch, start-first, and removes old containers only at the end', () => {
    const plan = planRolling(config(), [replica(9201), replica(9202), replica(9203)], liveConf(9201, 9202, 9203))
    expect(plan.steps.map(describeStep)).toEqual([
      'pull shop:v2',
      'start shop-9204 (:9204) from shop:v2',
      'health gate shop-9204',
      'route traffic to shop-9204, shop-9202, shop-9203 (one nginx reload)',
      'drain shop-9201 for 5s',
      'check shop-9204 still healthy',
      'stop shop-9201 (in the background)',
      'start shop-9205 (:9205) from shop:v2',
      'health gate shop-9205',
      'route traffic to shop-9204, shop-9205, shop-9203 (one nginx reload)',
      'drain shop-9202 for 5s',
      'check shop-9205 still healthy',
      'stop shop-9202 (in the background)',
      'start shop-9206 (:9206) from shop:v2',
      'health gate shop-9206',
      'route traffic to shop-9204, shop-9205, shop-9206 (one nginx reload)',
      'drain shop-9203 for 5s',
      'check shop-9206 still healthy',
      'stop shop-9203',
      'remove shop-9201, shop-9202, shop-9203',
    ])
  })

  it('never routes to fewer replicas than before, whatever the batch size', () => {
    for (const batch of ['1', '2', '3', '5']) {
      const plan = planRolling(config({ 'batch-size': batch }), [replica(9201), replica(9202), replica(9203)], liveConf(9201, 9202, 9203))
      for (const step of plan.steps) if (step.kind === 'route') expect(step.servers.length).toBe(3)
    }
  })

  it('starts the whole set at once on a bare host, with a registry login first', () => {
    const plan = planRolling(config({ 'registry-username': 'bot', 'registry-password': 'pw', registry: 'ghcr.io', pull: 'false' }), [], undefined)
    expect(plan.steps.map(describeStep)).toEqual([
      'log in to ghcr.io as bot',
      'start shop-9201 (:9201), shop-9202 (:9202), shop-9203 (:9203) from shop:v2',
      'health gate shop-9201, shop-9202, shop-9203',
      'route traffic to shop-9201, shop-9202, shop-9203 (one nginx reload)',
    ])
  })

  it('scales down: the extra old replicas leave in the last batches', () => {
    const plan = planRolling(config({ replicas: '1', pull: 'false' }), [replica(9201), replica(9202)], liveConf(9201, 9202))
    expect(plan.steps.map(describeStep)).toEqual([
      'start shop-9203 (:9203) from shop:v2',
      'health gate shop-9203',
      'route traffic to shop-9203, shop-9202 (one nginx reload)',
      'drain shop-9201 for 5s',
      'check shop-9203 still healthy',
      'stop shop-9201 (in the background)',
      'route traffic to shop-9203 (one nginx reload)',
      'drain shop-9202 for 5s',
      'stop shop-9202',
      'remove shop-9201, shop-9202',
    ])
  })

  it('treats running replicas missing from the live upstream, and stopped ones, as strays to remove', () => {
    const containers = [replica(9201), replica(9202), replica(9205, 'shop:bad'), replica(9206, 'shop:v0', false)]
    expect(liveReplicas('shop', containers, liveConf(9201, 9202)).strays.map((r) => r.name)).toEqual(['shop-9205', 'shop-9206'])
    const plan = planRolling(config({ replicas: '2', pull: 'false' }), containers, liveConf(9201, 9202))
    expect(plan.next.map((r) => r.port)).toEqual([9203, 9204])
    expect(describeStep(plan.steps.at(-1)!)).toBe('remove shop-9201, shop-9202, shop-9205, shop-9206')
  })

  it("leaves other apps' containers and ports alone", () => {
    const plan = planRolling(config({ replicas: '1', pull: 'false' }), [replica(9201, 'blog:v1', true, 'blog')], undefined)
    expect(plan.previous).toEqual([])
    expect(plan.next.map((r) => r.port)).toEqual([9202])
    expect(plan.steps.some((s) => s.kind === 'remove')).toBe(false)
  })

  it('refuses, naming the taken ports, when the range has no room for the new set', () => {
    expect(() => planRolling(config({ ports: '9201-9204' }), [replica(9201), replica(9202), replica(9203)], undefined)).toThrow(PlanError)
    expect(() => planRolling(config({ ports: '9201-9204' }), [replica(9201), replica(9202), replica(9203)], undefined)).toThrow(
      'ports: 3 new replicas need 3 free ports in 9201-9204, but only 1 are free (taken: 9201, 9202, 9203)',
    )
  })
})

describe('planUndo', () => {
  const previous = [replica(9201), replica(9202)].map(({ name, port, image }) => ({ name, port, image }))
  const next = [{ name: 'shop-9203', port: 9203, image: 'shop:v2' }, { name: 'shop-9204', port: 9204, image: 'shop:v2' }]
  const restorePlan: Plan = { steps: [], image: 'shop:v2', previous, next, onFailure: 'restore', notes: [] }

  it('starts stopped previous replicas again, restores the previous config, drains and removes the new ones', () => {
    const { steps, removesCanary } = planUndo(config({ 'drain-seconds': '2' }), restorePlan, {
      started: next,
      routed: [next[0]],
      stopped: [previous[0]],
      configBefore: 'before',
      configNow: 'now',
    })
    expect(steps.map(describeStep)).toEqual([
      'start shop-9201 again',
      'health gate shop-9201',
      'restore the previous nginx.conf (shop-9201, shop-9202)',
      'drain shop-9203 for 2s',
      'remove shop-9203, shop-9204',
    ])
    expect(removesCanary).toBe(false)
  })

  it('only removes a new replica that never got traffic', () => {
    const { steps } = planUndo(config(), restorePlan, { started: [next[0]], routed: [], stopped: [], configBefore: 'same', configNow: 'same' })
    expect(steps.map(describeStep)).toEqual(['remove shop-9203'])
  })
})
