import { describe, expect, it } from '@jest/globals'
import type { ManagedContainer } from '../../src/host/state.js'
import { planBlueGreen } from '../../src/plan/blue-green.js'
import { planAbort, planCanary, planPromote, splitFor } from '../../src/plan/canary.js'
import { PlanError } from '../../src/plan/common.js'
import { planFor } from '../../src/plan/index.js'
import { planRollbackOperation, planUndo, rollbackTarget } from '../../src/plan/rollback.js'
import { describeStep, type Step } from '../../src/plan/types.js'
import { container, hostState, pausedCanary, replica, replicaOf, routesTo } from './fakes.js'
import { configFrom } from './fixtures.js'

const describe1 = (s: Step) => describeStep(s)
const blue = (port: number, image = 'shop:v1') => container(port, image, { color: 'blue' })
const green = (port: number, image = 'shop:v2') => container(port, image, { color: 'green' })

describe('splitFor', () => {
  it.each([
    [10, 1, 2, 2, 9],
    [10, 1, 3, 1, 3],
    [50, 1, 2, 2, 1],
    [25, 2, 4, 2, 3],
    [1, 1, 1, 1, 99],
    [99, 1, 3, 297, 1],
  ])('%i%% to %i canary beside %i stable: weights %i:%i', (percent, canaries, stable, cw, sw) => {
    const canary = Array.from({ length: canaries }, (_, i) => replica(9301 + i))
    const split = splitFor(percent, canary, stable)
    expect(split).toEqual({ canary, percent, canaryWeight: cw, stableWeight: sw })
    // The share nginx's weighted balancing gives: canary weight over total weight.
    const share = (100 * canaries * cw) / (canaries * cw + stable * sw)
    expect(share).toBeCloseTo(percent, 10)
  })
})

describe('planBlueGreen', () => {
  it('starts the whole other colour, gates it, switches in one reload, drains the old colour while checking the new one again, and retires the old', () => {
    const live = [blue(9201), blue(9202)]
    const plan = planBlueGreen(
      configFrom({ strategy: 'blue-green', replicas: '2', pull: 'false', 'drain-seconds': '3' }),
      live,
      routesTo(...live),
    )
    expect(plan.steps.map(describe1)).toEqual([
      'start shop-9203 (:9203), shop-9204 (:9204) from shop:v2',
      'health gate shop-9203, shop-9204',
      'route traffic to shop-9203, shop-9204 (one nginx reload)',
      'drain shop-9201, shop-9202 (until idle, at most 3s), checking shop-9203, shop-9204 still healthy',
      'retire shop-9201, shop-9202 (stop and remove on the host, in the background)',
    ])
    expect(plan.steps[3]).toEqual({ kind: 'drain', seconds: 3, replicas: live.map(replicaOf), recheck: plan.next })
    expect(plan.next.map((r) => r.color)).toEqual(['green', 'green'])
    expect(plan).toMatchObject({ image: 'shop:v2', onFailure: 'restore', leaves: 'deployed' })
  })

  it('starts blue when what is live has no colour (a switch from rolling)', () => {
    const live = [container(9201)]
    const plan = planBlueGreen(
      configFrom({ strategy: 'blue-green', replicas: '1', pull: 'false' }),
      live,
      routesTo(...live),
    )
    expect(plan.next).toEqual([replica(9202, 'shop:v2', undefined, 'blue')])
  })

  it('keeps the previous colour running with keep-previous, and removes a kept colour before the next deploy', () => {
    const config = configFrom({
      strategy: 'blue-green',
      replicas: '1',
      pull: 'false',
      'keep-previous': 'true',
      ports: '9201-9202',
    })
    const first = planBlueGreen(config, [blue(9201)], routesTo(blue(9201)))
    expect(first.steps.map(describe1).slice(2)).toEqual([
      'route traffic to shop-9202 (one nginx reload)',
      'drain shop-9201 (until idle, at most 5s), checking shop-9202 still healthy',
    ])
    // Next deploy: green 9202 live, blue 9201 kept out of rotation; the kept one makes room first.
    const second = planBlueGreen({ ...config, image: 'shop:v3' }, [blue(9201), green(9202)], routesTo(green(9202)))
    expect(second.steps.map(describe1).slice(0, 2)).toEqual([
      'remove shop-9201',
      'start shop-9201 (:9201) from shop:v3',
    ])
    expect(second.next).toEqual([replica(9201, 'shop:v3', undefined, 'blue')])
  })
})

describe('planCanary', () => {
  const config = (over = {}) =>
    configFrom({
      strategy: 'canary',
      replicas: '2',
      pull: 'false',
      'canary-interval': '30',
      'drain-seconds': '1',
      ...over,
    })
  const stable = [container(9201), container(9202)]

  it('routes each share through weights, observes it, then replaces the stable set start-first', () => {
    const plan = planCanary(config({ 'canary-steps': '10,50,100' }), stable, routesTo(...stable))
    expect(plan.steps.map(describe1)).toEqual([
      'start shop-9203 (:9203) from shop:v2',
      'health gate shop-9203',
      'route 10% to canary shop-9203 (weights 2:9, one nginx reload; requests recorded)',
      'observe the canary at 10% for 30s',
      'route 50% to canary shop-9203 (weights 2:1, one nginx reload; requests recorded)',
      'observe the canary at 50% for 30s',
      'route traffic to shop-9203, shop-9202 (one nginx reload)',
      'start shop-9204 (:9204) from shop:v2 (in the background, while the batch before drains)',
      'drain shop-9201 (until idle, at most 1s), checking shop-9203 still healthy',
      'stop shop-9201 (in the background)',
      'health gate shop-9204',
      'route traffic to shop-9203, shop-9204 (one nginx reload)',
      'drain shop-9202 (until idle, at most 1s), checking shop-9204 still healthy',
      'retire shop-9201, shop-9202 (stop and remove on the host, in the background)',
    ])
    expect(plan.pausesAt).toBeUndefined()
    expect(plan).toMatchObject({ onFailure: 'abort-canary', leaves: 'deployed', notes: [] })
    expect(plan.next).toEqual([replica(9203), replica(9204)])
    // The canary's route carries the stable replicas and the canary, with the split, and has nginx record the
    // requests (no backup: the stable replicas serve); observe knows which is which.
    expect(plan.steps[2]).toEqual({
      kind: 'route',
      servers: [...stable.map(replicaOf), replica(9203)],
      split: splitFor(10, [replica(9203)], 2),
      judged: { backup: [] },
    })
    expect(plan.steps[3]).toEqual({
      kind: 'observe',
      seconds: 30,
      split: splitFor(10, [replica(9203)], 2),
      stable: stable.map(replicaOf),
    })
  })

  it('stops short of 100 as a paused canary, at the last share', () => {
    const plan = planCanary(config({ 'canary-steps': '10' }), stable, routesTo(...stable))
    // The last route keeps the share and turns nginx's record of requests off: a paused canary's log must not grow.
    expect(plan.steps.map((s) => s.kind)).toEqual(['start', 'gate', 'route', 'observe', 'route'])
    expect(plan.steps[4]).toEqual({
      kind: 'route',
      servers: [...stable.map(replicaOf), replica(9203)],
      split: splitFor(10, [replica(9203)], 2),
      settle: true,
    })
    expect(plan.pausesAt).toEqual({ percent: 10, canary: [replica(9203)], stableImage: 'shop:v1' })
    expect(plan).toMatchObject({ leaves: 'paused', next: [...stable.map(replicaOf), replica(9203)] })
    expect(planCanary(config({ 'canary-steps': '10,50' }), stable, routesTo(...stable)).pausesAt?.percent).toBe(50)
  })

  it('puts several canary replicas in one start and one gate', () => {
    const plan = planCanary(config({ 'canary-steps': '25', 'canary-replicas': '2' }), stable, routesTo(...stable))
    expect(plan.steps.map(describe1)).toEqual([
      'start shop-9203 (:9203), shop-9204 (:9204) from shop:v2',
      'health gate shop-9203, shop-9204',
      'route 25% to canary shop-9203, shop-9204 (weights 1:3, one nginx reload; requests recorded)',
      'observe the canary at 25% for 30s',
      'route 25% to canary shop-9203, shop-9204 (weights 1:3, one nginx reload: the record of requests off, no backup)',
    ])
  })

  it('deploys as rolling when nothing is live to compare with', () => {
    const plan = planCanary(config(), [], undefined)
    expect(plan.notes).toEqual(['nothing is live to compare a canary with: deploying as rolling'])
    expect(plan.steps.some((s) => s.kind === 'observe')).toBe(false)
    expect(plan).toMatchObject({ onFailure: 'restore', leaves: 'deployed' })
  })

  const canaryOn9203 = [...stable, container(9203, 'shop:v2')]
  const paused = pausedCanary([replicaOf(canaryOn9203[2])], { remainingSteps: [], pullRequest: undefined })

  it('promotes a paused canary through its remaining shares to 100, keeping the canary replica', () => {
    const routes = routesTo(...canaryOn9203)
    const promote = planPromote(config(), canaryOn9203, routes, paused)
    expect(promote.steps.map(describe1)).toEqual([
      'route traffic to shop-9203, shop-9202 (one nginx reload)',
      'start shop-9204 (:9204) from shop:v2 (in the background, while the batch before drains)',
      'drain shop-9201 (until idle, at most 1s), checking shop-9203 still healthy',
      'stop shop-9201 (in the background)',
      'health gate shop-9204',
      'route traffic to shop-9203, shop-9204 (one nginx reload)',
      'drain shop-9202 (until idle, at most 1s), checking shop-9204 still healthy',
      'retire shop-9201, shop-9202 (stop and remove on the host, in the background)',
    ])
    expect(promote).toMatchObject({
      image: 'shop:v2',
      onFailure: 'abort-canary',
      leaves: 'deployed',
      previous: canaryOn9203.map(replicaOf),
    })
    expect(
      planPromote(config(), canaryOn9203, routes, { ...paused, remainingSteps: [50, 100] })
        .steps.map(describe1)
        .slice(0, 2),
    ).toEqual([
      'route 50% to canary shop-9203 (weights 2:1, one nginx reload; requests recorded)',
      'observe the canary at 50% for 30s',
    ])
  })

  it('aborts a paused canary: one reload back to the stable set, a drain, and the canary retired', () => {
    const abort = planAbort(config(), canaryOn9203, routesTo(...canaryOn9203), paused)
    expect(abort.steps.map(describe1)).toEqual([
      'route traffic to shop-9201, shop-9202 (one nginx reload)',
      'drain shop-9203 (until idle, at most 1s)',
      'retire shop-9203 (stop and remove on the host, in the background)',
    ])
    expect(abort).toMatchObject({
      image: 'shop:v1',
      onFailure: 'restore',
      leaves: 'rolled-back',
      next: stable.map(replicaOf),
    })
  })

  it('refuses an abort with no stable replica to take the traffic back', () => {
    const onlyCanary = [container(9203, 'shop:v2')]
    expect(() => planAbort(config(), onlyCanary, routesTo(...onlyCanary), paused)).toThrow(
      'abort: no stable replica of shop is live to take the traffic back; deploy shop:v1 instead',
    )
  })

  it('refuses a promote whose canary replicas are gone', () => {
    expect(() => planPromote(config(), stable, routesTo(...stable), paused)).toThrow(
      "the paused canary's replicas (shop-9203) are not live any more; run operation: abort to clear it",
    )
  })

  it('refuses operations that make no sense on the hosts, saying what is live and what to run', () => {
    const state = hostState(stable, routesTo(...stable))
    expect(() => planFor(configFrom({ operation: 'promote', image: '' }), state)).toThrow(
      'promote: no canary of shop is paused; live is shop:v1 on 2 replica(s). Start one with operation: deploy and strategy: canary (canary-steps below 100), or use operation: status to see what is live',
    )
    expect(() => planFor(configFrom({ operation: 'abort', image: '' }), state)).toThrow(
      'abort: no canary of shop is paused; live is shop:v1 on 2 replica(s).',
    )
    expect(() => planFor(configFrom({ operation: 'status' }), state)).toThrow(
      'status reads the hosts and plans nothing',
    )
    const withCanary = hostState(canaryOn9203, routesTo(...canaryOn9203), { canary: paused })
    expect(() => planFor(configFrom({}), withCanary)).toThrow(
      'a canary of shop:v2 is live at 10% next to shop:v1 (since 2026-11-25T10:00:00.000Z): finish it first with operation: promote, or remove it with operation: abort',
    )
  })

  it('undoes a promote that failed after stopping stable replicas by putting the paused config back, canary untouched', () => {
    const promote = planPromote(config(), canaryOn9203, routesTo(...canaryOn9203), paused)
    const undo = planUndo(config(), promote, {
      started: [],
      routed: [],
      stopped: [promote.previous[0]],
      configBefore: 'paused config',
      configNow: 'now',
    })
    expect(undo.canary).toBe('untouched')
    expect(undo.steps.map(describe1)).toEqual([
      'start shop-9201 again',
      'health gate shop-9201',
      'restore the previous nginx config (shop-9201, shop-9202, shop-9203)',
    ])
    expect(undo.steps[2]).toEqual({
      kind: 'restore-config',
      text: 'paused config',
      servers: canaryOn9203.map(replicaOf),
    })
  })

  it('undoes a promote whose share step failed by taking the canary out, the stable replicas untouched', () => {
    const promote = planPromote(config(), canaryOn9203, routesTo(...canaryOn9203), {
      ...paused,
      remainingSteps: [50, 100],
    })
    const undo = planUndo(config(), promote, {
      started: [],
      routed: [],
      stopped: [],
      configBefore: 'paused config',
      configNow: '50% config',
    })
    expect(undo.canary).toBe('removed')
    expect(undo.steps.map(describe1)).toEqual([
      'route traffic to shop-9201, shop-9202 (one nginx reload)',
      'drain shop-9203 (until idle, at most 1s)',
      'remove shop-9203',
    ])
  })

  it('undoes a failed canary step by taking the canary out, without touching the stable replicas', () => {
    const plan = planCanary(config({ 'canary-steps': '10,100' }), stable, routesTo(...stable))
    const undo = planUndo(config(), plan, { started: [plan.next[0]], routed: [plan.next[0]], stopped: [] })
    expect(undo.canary).toBe('removed')
    expect(undo.steps.map(describe1)).toEqual([
      'route traffic to shop-9201, shop-9202 (one nginx reload)',
      'drain shop-9203 (until idle, at most 1s)',
      'remove shop-9203',
    ])
  })
})

describe('planRollbackOperation', () => {
  const history = [
    { image: 'shop:v1', previousImage: '', result: 'deployed', at: 't1', strategy: 'rolling' },
    { image: 'shop:v2', previousImage: 'shop:v1', result: 'deployed', at: 't2', strategy: 'rolling' },
    { image: 'shop:v3', previousImage: 'shop:v2', result: 'rolled-back', at: 't3', strategy: 'rolling' },
  ]
  const rollback = (over = {}) => configFrom({ operation: 'rollback', image: '', pull: 'false', ...over })
  const at = (cs: ManagedContainer[], routed: ManagedContainer[], extra = {}) =>
    hostState(cs, routesTo(...routed), { history, ...extra })

  it('goes back to the newest deployed image that is not live, skipping rolled-back ones', () => {
    expect(rollbackTarget(at([], []), 'shop:v2')).toBe('shop:v1')
    expect(rollbackTarget(at([], []), 'shop:v3')).toBe('shop:v2')
    expect(rollbackTarget(at([], [], { history: history.slice(0, 1) }), 'shop:v1')).toBeUndefined()
  })

  it('deploys the previous image with the rolling plan, and leaves the result rolled-back', () => {
    const live = [container(9201, 'shop:v2')]
    const plan = planRollbackOperation(rollback(), at(live, live), routesTo(...live))
    expect(plan.image).toBe('shop:v1')
    expect(plan.steps.map(describe1)).toEqual([
      'start shop-9202 (:9202) from shop:v1',
      'health gate shop-9202',
      'route traffic to shop-9202 (one nginx reload)',
      'start shop-9203 (:9203) from shop:v1 (in the background, while the batch before drains)',
      'drain shop-9201 (until idle, at most 5s), checking shop-9202 still healthy',
      'stop shop-9201 (in the background)',
      'health gate shop-9203',
      'route traffic to shop-9202, shop-9203 (one nginx reload)',
      'retire shop-9201 (stop and remove on the host, in the background)',
    ])
    expect(plan.next).toEqual([replica(9202, 'shop:v1'), replica(9203, 'shop:v1')])
    expect(plan.leaves).toBe('rolled-back')
  })

  it('switches back in one reload to a blue-green colour kept with keep-previous', () => {
    const config = rollback({ strategy: 'blue-green', 'keep-previous': 'true', replicas: '1' })
    const cs = [blue(9201, 'shop:v1'), green(9202, 'shop:v2')]
    const plan = planRollbackOperation(config, at(cs, [cs[1]]), routesTo(cs[1]))
    expect(plan.steps.map(describe1)).toEqual([
      'start shop-9201 again',
      'health gate shop-9201',
      'route traffic to shop-9201 (one nginx reload)',
      'drain shop-9202 (until idle, at most 5s), checking shop-9201 still healthy',
    ])
    expect(plan.notes).toEqual(['shop-9201 still hold shop:v1: switching back in one reload'])
    expect(plan).toMatchObject({ image: 'shop:v1', leaves: 'rolled-back' })
  })

  it('says what is live when the history has nothing to go back to', () => {
    const live = [container(9201, 'shop:v1')]
    const state = at(live, live, { history: history.slice(0, 1) })
    expect(() => planRollbackOperation(rollback(), state, routesTo(...live))).toThrow(PlanError)
    expect(() => planRollbackOperation(rollback(), state, routesTo(...live))).toThrow(
      'rollback: the deploy history of shop has no earlier deployed image to go back to; live is shop:v1 (history: shop:v1 deployed). Deploy the image you want with operation: deploy',
    )
  })

  it('refuses while a canary is paused', () => {
    const live = [container(9201, 'shop:v1'), container(9202, 'shop:v2')]
    const state = at(live, live, { canary: pausedCanary([replicaOf(live[1])]) })
    expect(() => planRollbackOperation(rollback(), state, routesTo(...live))).toThrow(
      'rollback: a canary of shop:v2 is paused at 10%; use operation: abort to remove it',
    )
  })
})
