// A new push of a pull request whose canary is paused replaces that canary in one run; any other deploy is
// refused while it is live, and a pull request's promote or abort concerns its own canary only.
import { describe, expect, it } from '@jest/globals'
import type { ManagedContainer } from '../../src/host/state.js'
import type { Replica } from '../../src/model.js'
import { PlanError } from '../../src/plan/common.js'
import { canaryLeftovers, NothingToDo, planFor, staleCanary, type PullRequestRef } from '../../src/plan/index.js'
import { planUndo } from '../../src/plan/rollback.js'
import { describeStep, type Step } from '../../src/plan/types.js'
import { splitFor } from '../../src/plan/canary.js'
import { container, HOST, hostState, pausedCanary, replica, replicaOf, routesTo } from './fakes.js'
import { configFrom } from './fixtures.js'

const PR7: PullRequestRef = { repo: 'acme/shop', number: 7 }
const config = (over = {}) =>
  configFrom({
    strategy: 'canary',
    image: 'shop:v3',
    'canary-steps': '10',
    pull: 'false',
    'drain-seconds': '1',
    'canary-interval': '30',
    ...over,
  })
const stable = [container(9201), container(9202)]
const oldCanary = container(9203, 'shop:v2')
const all = [...stable, oldCanary]
const state = (containers: ManagedContainer[] = all, canary = pausedCanary([replicaOf(oldCanary)])) =>
  hostState(containers, routesTo(...containers), { canary })
const describe1 = (s: Step) => describeStep(s)
const routedIn = (steps: readonly Step[]): Replica[] =>
  steps.flatMap((s) => (s.kind === 'route' || s.kind === 'restore-config' ? s.servers : []))

const PAUSED_ELSEWHERE =
  'a canary of shop:v2 is live at 10% for pull request #7 next to shop:v1 (since 2026-11-25T10:00:00.000Z): finish it first with operation: promote, ' +
  'or remove it with operation: abort (its workflow does either when pull request #7 is merged or closed)'

describe('a new push of the pull request whose canary is paused', () => {
  it('starts and gates the new canary, swaps it for the old one in one reload, then drains and retires the old one before observing', () => {
    const plan = planFor(config(), state(), PR7)
    expect(plan.steps.map(describe1)).toEqual([
      'start shop-9204 (:9204) from shop:v3',
      'health gate shop-9204',
      'route 10% to canary shop-9204 (weights 2:9, one nginx reload; requests recorded)',
      'drain shop-9203 (until idle, at most 1s)',
      'retire shop-9203 (stop and remove on the host, in the background)',
      'observe the canary at 10% for 30s',
      'route 10% to canary shop-9204 (weights 2:9, one nginx reload: the record of requests off, no backup)',
    ])
    // The swap: the stable replicas and the new canary at the first share, the old canary out.
    expect(plan.steps[2]).toEqual({
      kind: 'route',
      servers: [...stable.map(replicaOf), replica(9204, 'shop:v3')],
      split: splitFor(10, [replica(9204, 'shop:v3')], 2),
      judged: { backup: [] },
    })
    expect(plan.steps[5]).toMatchObject({ kind: 'observe', stable: stable.map(replicaOf) })
    expect(plan).toMatchObject({
      image: 'shop:v3',
      previous: all.map(replicaOf),
      next: [...stable.map(replicaOf), replica(9204, 'shop:v3')],
      replaces: [replicaOf(oldCanary)],
      onFailure: 'abort-canary',
      leaves: 'paused',
      pausesAt: { percent: 10, canary: [replica(9204, 'shop:v3')], stableImage: 'shop:v1' },
      notes: ['replaces the canary of shop:v2 (shop-9203) of the same pull request in the first reload'],
    })
  })

  it('swaps at the first share only and goes on through the rest', () => {
    const plan = planFor(config({ 'canary-steps': '10,50' }), state(), PR7)
    expect(plan.steps.map((s) => s.kind)).toEqual([
      'start',
      'gate',
      'route',
      'drain',
      'retire',
      'observe',
      'route',
      'observe',
      'route',
    ])
    expect(routedIn(plan.steps.slice(2)).some((r) => r.name === 'shop-9203')).toBe(false)
    expect(plan.pausesAt?.percent).toBe(50)
  })

  it('gives the new canary a port the old one does not hold', () => {
    const plan = planFor(config(), state(), PR7)
    expect(plan.steps[0]).toEqual({ kind: 'start', replicas: [replica(9204, 'shop:v3')] })
  })

  it.each<[string, Partial<Record<string, string>>, PullRequestRef | undefined]>([
    ['another pull request', {}, { repo: 'acme/shop', number: 8 }],
    ['the same number in another repository', {}, { repo: 'acme/other', number: 7 }],
    ['no pull request', {}, undefined],
    ['a rolling deploy of the same pull request', { strategy: 'rolling' }, PR7],
    ['a blue-green deploy of the same pull request', { strategy: 'blue-green' }, PR7],
  ])('is refused to %s, naming the pull request and how to end its canary', (_who, over, pr) => {
    const run = () => planFor(config(over), state(), pr)
    expect(run).toThrow(PlanError)
    expect(run).toThrow(PAUSED_ELSEWHERE)
  })
})

describe("a pull request's promote or abort", () => {
  const pr8: PullRequestRef = { repo: 'acme/shop', number: 8 }

  it.each(['promote', 'abort'])('%s of another pull request has nothing to do', (operation) => {
    const run = () => planFor(configFrom({ operation, image: '' }), state(), pr8)
    expect(run).toThrow(NothingToDo)
    expect(run).toThrow(`the live canary of shop (shop:v2) belongs to pull request #7, not #8: nothing to ${operation}`)
  })

  it('has nothing to do when no canary is live, or when the live one belongs to no pull request', () => {
    expect(() =>
      planFor(configFrom({ operation: 'abort', image: '' }), hostState(stable, routesTo(...stable)), pr8),
    ).toThrow(new NothingToDo('no canary of shop is live for pull request #8: nothing to abort'))
    expect(() =>
      planFor(
        configFrom({ operation: 'promote', image: '' }),
        state(all, pausedCanary([replicaOf(oldCanary)], { pullRequest: undefined })),
        pr8,
      ),
    ).toThrow(
      new NothingToDo('the live canary of shop (shop:v2) belongs to no pull request, not #8: nothing to promote'),
    )
  })

  it('goes ahead for the pull request that owns the canary, and without a pull request at all', () => {
    expect(planFor(configFrom({ operation: 'abort', image: '' }), state(), PR7).steps.map(describe1)).toEqual([
      'route traffic to shop-9201, shop-9202 (one nginx reload)',
      'drain shop-9203 (until idle, at most 5s)',
      'retire shop-9203 (stop and remove on the host, in the background)',
    ])
    expect(planFor(configFrom({ operation: 'promote', image: '' }), state()).image).toBe('shop:v2')
  })
})

describe('staleCanary', () => {
  const STALE = (what: string, verb = 'is') =>
    `the recorded canary of shop:v2 at 10% is stale: ${what} ${verb} not running or not routed by nginx (the hosts decide what is live); the next run that takes the lock clears its record`

  it('is undefined when the hosts agree with the record, or there is no record', () => {
    expect(staleCanary(state())).toBeUndefined()
    expect(staleCanary(hostState(stable, routesTo(...stable)))).toBeUndefined()
    // Without a managed file to go by, running is enough.
    expect(staleCanary(hostState(all, undefined, { canary: pausedCanary([replicaOf(oldCanary)]) }))).toBeUndefined()
  })

  it('says so when a recorded canary replica is missing, stopped, or not routed', () => {
    const canary = pausedCanary([replicaOf(oldCanary)])
    expect(staleCanary(hostState(stable, routesTo(...stable), { canary }))).toBe(STALE(`shop-9203 on ${HOST}`))
    const stopped = [...stable, container(9203, 'shop:v2', { running: false })]
    expect(staleCanary(hostState(stopped, routesTo(...all), { canary }))).toBe(STALE(`shop-9203 on ${HOST}`))
    expect(staleCanary(hostState(all, routesTo(...stable), { canary }))).toBe(STALE(`shop-9203 on ${HOST}`))
  })

  it('names what of a partly missing canary still takes traffic, and abort takes it out whole', () => {
    const twin = container(9204, 'shop:v2')
    const canary = pausedCanary([replicaOf(oldCanary), replicaOf(twin)])
    const held = hostState([...stable, twin], routesTo(...stable, twin), { canary })
    expect(staleCanary(held)).toBe(
      `the recorded canary of shop:v2 at 10% is stale: shop-9203 on ${HOST} is not running or not routed by nginx (the hosts decide what is live); shop-9204 still takes traffic: abort takes it out; the next run that takes the lock clears its record`,
    )
    expect(canaryLeftovers(held)).toEqual([{ host: HOST, name: 'shop-9204' }])
    expect(planFor(configFrom({ operation: 'abort', image: '' }), held).steps.map(describe1)).toEqual([
      'route traffic to shop-9201, shop-9202 (one nginx reload)',
      'drain shop-9204 (until idle, at most 5s)',
      'retire shop-9204 (stop and remove on the host, in the background)',
    ])
  })

  it('names every missing replica, by host', () => {
    const canary = pausedCanary([replicaOf(oldCanary), { host: 'b', name: 'shop-9203' }])
    expect(staleCanary(hostState(stable, routesTo(...stable), { canary }))).toBe(
      STALE(`shop-9203 on ${HOST}, shop-9203 on b`, 'are'),
    )
  })
})

describe('undoing a failed replacement', () => {
  const plan = planFor(config(), state(), PR7)
  const newCanary = replica(9204, 'shop:v3')

  it('keeps the old canary live when the run failed before the swap (or nginx refused the swap itself: nothing new was routed)', () => {
    const undo = planUndo(config(), plan, {
      started: [newCanary],
      routed: [],
      stopped: [],
      configBefore: 'paused',
      configNow: 'paused',
    })
    expect(undo).toEqual({ steps: [{ kind: 'remove', replicas: [newCanary] }], canary: 'kept' })
  })

  it('takes the new canary out, and the old one with it, once the swap happened', () => {
    const undo = planUndo(config(), plan, {
      started: [newCanary],
      routed: [newCanary],
      stopped: [],
      configBefore: 'paused',
      configNow: 'swapped',
    })
    expect(undo.canary).toBe('removed')
    expect(undo.steps.map(describe1)).toEqual([
      'route traffic to shop-9201, shop-9202 (one nginx reload)',
      'drain shop-9203, shop-9204 (until idle, at most 1s)',
      'remove shop-9203, shop-9204',
    ])
  })

  // A pull request's images are often tagged by the pull request (shop:pr-7), so a new push may carry the
  // same tag as the canary it replaces.
  it('names the old canary once when the new push has the same image tag', () => {
    const old = container(9203, 'shop:pr-7')
    const sameTag = planFor(
      config({ image: 'shop:pr-7' }),
      state([...stable, old], pausedCanary([replicaOf(old)], { image: 'shop:pr-7' })),
      PR7,
    )
    const fresh = replica(9204, 'shop:pr-7')
    const undo = planUndo(config({ image: 'shop:pr-7' }), sameTag, {
      started: [fresh],
      routed: [fresh],
      stopped: [],
      configBefore: 'paused',
      configNow: 'swapped',
    })
    expect(undo.steps.map(describe1)).toEqual([
      'route traffic to shop-9201, shop-9202 (one nginx reload)',
      'drain shop-9203, shop-9204 (until idle, at most 1s)',
      'remove shop-9203, shop-9204',
    ])
  })

  // With canary-steps reaching 100, the old canary is retired right after the swap; a failure in a later
  // batch (after a stable replica was stopped) must not put back the paused config, which routes to it.
  it('never routes to the retired old canary when a replacement that goes to 100 fails after stopping a stable replica', () => {
    const to100 = planFor(config({ 'canary-steps': '10,100' }), state(), PR7)
    expect(to100.steps.map(describe1).slice(0, 6)).toEqual([
      'start shop-9204 (:9204) from shop:v3',
      'health gate shop-9204',
      'route 10% to canary shop-9204 (weights 2:9, one nginx reload; requests recorded)',
      'drain shop-9203 (until idle, at most 1s)',
      'retire shop-9203 (stop and remove on the host, in the background)',
      'observe the canary at 10% for 30s',
    ])
    // Failed at 'health gate shop-9205', the second batch: shop-9201 was stopped, the old canary retired.
    const fresh = replica(9205, 'shop:v3')
    const undo = planUndo(config({ 'canary-steps': '10,100' }), to100, {
      started: [newCanary, fresh],
      routed: [newCanary],
      stopped: [replicaOf(stable[0])],
      configBefore: 'paused config routing shop-9203',
      configNow: 'shop-9204, shop-9202',
    })
    expect(routedIn(undo.steps).map((r) => r.name)).not.toContain('shop-9203')
    expect(undo.canary).toBe('removed')
  })
})
