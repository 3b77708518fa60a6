import { judgeCanary, parseAccessLog, worseBy } from '../../src/health/canary.js'
import type { HostState, ManagedContainer } from '../../src/host/state.js'
import { planBlueGreen } from '../../src/plan/blue-green.js'
import { planAbort, planCanary, planPromote, splitFor } from '../../src/plan/canary.js'
import { PlanError } from '../../src/plan/common.js'
import { planFor } from '../../src/plan/index.js'
import { planRollbackOperation, planUndo } from '../../src/plan/rollback.js'
import { describeStep } from '../../src/plan/types.js'
import { configFrom } from './fixtures.js'

const c = (port: number, image = 'shop:v1', extra: Partial<ManagedContainer> = {}): ManagedContainer => ({ name: `shop-${port}`, port, image, app: 'shop', role: 'replica', running: true, ...extra })
const conf = (...ports: number[]) => ports.map((p) => `        server 127.0.0.1:${p} weight=10;`).join('\n')
const host = (containers: ManagedContainer[], ports: number[], extra: Partial<HostState> = {}): HostState => ({
  containers,
  nginx: { exists: true, running: true, config: conf(...ports) },
  history: [],
  ...extra,
})

describe('splitFor', () => {
  it.each([
    [10, 1, 2, 2, 9],
    [10, 1, 3, 1, 3],
    [50, 1, 2, 2, 1],
    [25, 2, 4, 2, 3],
    [1, 1, 1, 1, 99],
    [99, 1, 3, 297, 1],
  ])('%i%% to %i canary beside %i stable: weights %i:%i', (percent, canaries, stable, cw, sw) => {
    const canary = Array.from({ length: canaries }, (_, i) => ({ name: `c${i}`, port: i, image: 'x' }))
    const split = splitFor(percent, canary, stable)
    expect([split.canaryWeight, split.stableWeight]).toEqual([cw, sw])
    // The share nginx's weighted balancing gives: canary weight over total weight.
    const share = (100 * canaries * cw) / (canaries * cw + stable * sw)
    expect(share).toBeCloseTo(percent, 10)
  })
})

describe('planBlueGreen', () => {
  it('starts the whole other colour, gates it, switches in one reload, drains and removes the old colour', () => {
    const plan = planBlueGreen(configFrom({ strategy: 'blue-green', replicas: '2', pull: 'false', 'drain-seconds': '3' }), [c(9201, 'shop:v1', { color: 'blue' }), c(9202, 'shop:v1', { color: 'blue' })], conf(9201, 9202))
    expect(plan.steps.map(describeStep)).toEqual([
      'start shop-9203 (:9203), shop-9204 (:9204) from shop:v2',
      'health gate shop-9203, shop-9204',
      'route traffic to shop-9203, shop-9204 (one nginx reload)',
      'drain shop-9201, shop-9202 for 3s',
      'check shop-9203, shop-9204 still healthy',
      'stop shop-9201, shop-9202',
      'remove shop-9201, shop-9202',
    ])
    expect(plan.next.map((r) => r.color)).toEqual(['green', 'green'])
  })

  it('keeps the previous colour running with keep-previous, and removes a kept colour before the next deploy', () => {
    const config = configFrom({ strategy: 'blue-green', replicas: '1', pull: 'false', 'keep-previous': 'true', ports: '9201-9202' })
    const first = planBlueGreen(config, [c(9201, 'shop:v1', { color: 'blue' })], conf(9201))
    expect(first.steps.map((s) => s.kind)).toEqual(['start', 'gate', 'route', 'drain', 'gate'])
    // Next deploy: green 9202 live, blue 9201 kept out of rotation; the kept one makes room first.
    const second = planBlueGreen(config, [c(9201, 'shop:v1', { color: 'blue' }), c(9202, 'shop:v2', { color: 'green' })], conf(9202))
    expect(second.steps.map(describeStep).slice(0, 2)).toEqual(['remove shop-9201', 'start shop-9201 (:9201) from shop:v2'])
    expect(second.next[0].color).toBe('blue')
  })
})

describe('planCanary', () => {
  const config = (over = {}) => configFrom({ strategy: 'canary', replicas: '2', pull: 'false', 'canary-interval': '30', 'drain-seconds': '1', ...over })

  it('routes each share through weights, observes it, then replaces the stable set start-first', () => {
    const plan = planCanary(config({ 'canary-steps': '10,50,100' }), [c(9201), c(9202)], conf(9201, 9202))
    expect(plan.steps.map(describeStep)).toEqual([
      'start shop-9203 (:9203) from shop:v2',
      'health gate shop-9203',
      'route 10% to canary shop-9203 (weights 2:9, one nginx reload)',
      'observe the canary at 10% for 30s',
      'route 50% to canary shop-9203 (weights 2:1, one nginx reload)',
      'observe the canary at 50% for 30s',
      'route traffic to shop-9203, shop-9202 (one nginx reload)',
      'drain shop-9201 for 1s',
      'check shop-9203 still healthy',
      'stop shop-9201 (in the background)',
      'start shop-9204 (:9204) from shop:v2',
      'health gate shop-9204',
      'route traffic to shop-9203, shop-9204 (one nginx reload)',
      'drain shop-9202 for 1s',
      'check shop-9204 still healthy',
      'stop shop-9202',
      'remove shop-9201, shop-9202',
    ])
    expect(plan.pausesAt).toBeUndefined()
    expect(plan.next.map((r) => r.name)).toEqual(['shop-9203', 'shop-9204'])
  })

  it('stops short of 100 as a paused canary', () => {
    const plan = planCanary(config({ 'canary-steps': '10' }), [c(9201), c(9202)], conf(9201, 9202))
    expect(plan.steps.map((s) => s.kind)).toEqual(['start', 'gate', 'route', 'observe'])
    expect(plan.pausesAt).toEqual({ percent: 10, canary: [{ name: 'shop-9203', port: 9203, image: 'shop:v2' }], stableImage: 'shop:v1' })
  })

  it('deploys as rolling when nothing is live to compare with', () => {
    const plan = planCanary(config(), [], undefined)
    expect(plan.notes).toEqual(['nothing is live to compare a canary with: deploying as rolling'])
    expect(plan.steps.some((s) => s.kind === 'observe')).toBe(false)
  })

  const paused = { image: 'shop:v2', stableImage: 'shop:v1', weight: 10, remainingSteps: [], replicas: ['shop-9203'], at: '2026-11-25T10:00:00Z' }

  it('promotes a paused canary to 100 and aborts one back to the stable set', () => {
    const containers = [c(9201), c(9202), c(9203, 'shop:v2')]
    expect(planPromote(config(), containers, conf(9201, 9202, 9203), paused).steps.map(describeStep)[0]).toBe('route traffic to shop-9203, shop-9202 (one nginx reload)')
    expect(planPromote(config(), containers, conf(9201, 9202, 9203), { ...paused, remainingSteps: [50, 100] }).steps.map(describeStep).slice(0, 2)).toEqual([
      'route 50% to canary shop-9203 (weights 2:1, one nginx reload)',
      'observe the canary at 50% for 30s',
    ])
    expect(planAbort(config(), containers, conf(9201, 9202, 9203), paused).steps.map(describeStep)).toEqual([
      'route traffic to shop-9201, shop-9202 (one nginx reload)',
      'drain shop-9203 for 1s',
      'remove shop-9203',
    ])
  })

  it('refuses operations that make no sense on the host, saying what is live and what to run', () => {
    const state = host([c(9201), c(9202)], [9201, 9202])
    expect(() => planFor(configFrom({ operation: 'promote', image: '' }), state)).toThrow(
      "promote: no canary of shop is paused on this host; live is shop:v1 on 2 replica(s). Start one with operation: deploy and strategy: canary",
    )
    expect(() => planFor(configFrom({ operation: 'abort', image: '' }), state)).toThrow('abort: no canary of shop is paused on this host')
    expect(() => planFor(configFrom({}), { ...state, canary: paused })).toThrow(
      'a canary of shop:v2 is live at 10% next to shop:v1 (since 2026-11-25T10:00:00Z): finish it first with operation: promote, or remove it with operation: abort',
    )
  })

  it('undoes a promote that failed after stopping stable replicas by putting the paused config back, canary kept', () => {
    const promote = planPromote(config(), [c(9201), c(9202), c(9203, 'shop:v2')], conf(9201, 9202, 9203), { image: 'shop:v2', stableImage: 'shop:v1', weight: 10, remainingSteps: [], replicas: ['shop-9203'], at: 't' })
    const undo = planUndo(config(), promote, { started: [], routed: [], stopped: [promote.previous[0]], configBefore: 'paused config', configNow: 'now' })
    expect(undo.removesCanary).toBe(false)
    expect(undo.steps.map(describeStep)).toEqual(['start shop-9201 again', 'health gate shop-9201', 'restore the previous nginx.conf (shop-9201, shop-9202, shop-9203)'])
  })

  it('undoes a failed canary step by taking the canary out, without touching the stable replicas', () => {
    const plan = planCanary(config({ 'canary-steps': '10,100' }), [c(9201), c(9202)], conf(9201, 9202))
    const undo = planUndo(config(), plan, { started: [plan.next[0]], routed: [plan.next[0]], stopped: [] })
    expect(undo.removesCanary).toBe(true)
    expect(undo.steps.map(describeStep)).toEqual(['route traffic to shop-9201, shop-9202 (one nginx reload)', 'drain shop-9203 for 1s', 'remove shop-9203'])
  })
})

describe('planRollbackOperation', () => {
  const history = [
    { image: 'shop:v1', previousImage: '', result: 'deployed', at: 't1', strategy: 'rolling' },
    { image: 'shop:v2', previousImage: 'shop:v1', result: 'deployed', at: 't2', strategy: 'rolling' },
    { image: 'shop:v3', previousImage: 'shop:v2', result: 'rolled-back', at: 't3', strategy: 'rolling' },
  ]

  it('deploys the newest deployed image that is not live', () => {
    const plan = planRollbackOperation(configFrom({ operation: 'rollback', image: '', pull: 'false' }), host([c(9201, 'shop:v2')], [9201], { history }))
    expect(plan.image).toBe('shop:v1')
    expect(plan.steps.map((s) => s.kind)).toEqual(['start', 'gate', 'route', 'drain', 'gate', 'stop', 'start', 'gate', 'route', 'remove'])
    expect(plan.next.map((r) => r.image)).toEqual(['shop:v1', 'shop:v1'])
  })

  it('switches back in one reload to a blue-green colour kept with keep-previous', () => {
    const config = configFrom({ operation: 'rollback', image: '', strategy: 'blue-green', 'keep-previous': 'true', replicas: '1' })
    const plan = planRollbackOperation(config, host([c(9201, 'shop:v1', { color: 'blue' }), c(9202, 'shop:v2', { color: 'green' })], [9202], { history }))
    expect(plan.steps.map(describeStep)).toEqual(['start shop-9201 again', 'health gate shop-9201', 'route traffic to shop-9201 (one nginx reload)', 'drain shop-9202 for 5s', 'check shop-9201 still healthy'])
    expect(plan.notes).toEqual(['shop-9201 still hold shop:v1: switching back in one reload'])
  })

  it('says what is live when the history has nothing to go back to', () => {
    expect(() => planRollbackOperation(configFrom({ operation: 'rollback', image: '' }), host([c(9201, 'shop:v1')], [9201], { history: history.slice(0, 1) }))).toThrow(PlanError)
    expect(() => planRollbackOperation(configFrom({ operation: 'rollback', image: '' }), host([c(9201, 'shop:v1')], [9201], { history: history.slice(0, 1) }))).toThrow(
      'rollback: the deploy history of shop on this host has no earlier deployed image to go back to; live is shop:v1 (history: shop:v1 deployed). Deploy the image you want with operation: deploy',
    )
  })
})

describe('judgeCanary', () => {
  const line = (addr: string, status: string) => `127.0.0.1 [25/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 3 upstream=${addr} upstream_status=${status} request_time=0.001`
  const log = (canaryOk: number, canaryErr: number, stableOk: number, stableErr: number) =>
    [
      ...Array(canaryOk).fill(line('127.0.0.1:9203', '200')),
      ...Array(canaryErr).fill(line('127.0.0.1:9203', '500')),
      ...Array(stableOk).fill(line('127.0.0.1:9201', '200')),
      ...Array(stableErr).fill(line('127.0.0.1:9201', '503')),
    ].join('\n')
  const judge = (text: string, max = 1) => judgeCanary(parseAccessLog(text), new Set([9203]), new Set([9201]), max)

  it('counts every upstream attempt, including retries to the next server and failed attempts', () => {
    expect(parseAccessLog(line('127.0.0.1:9203, 127.0.0.1:9201', '502, 200') + '\n' + line('[::1]:9203 : 127.0.0.1:9201', '504 : 200'))).toEqual([
      { port: 9203, status: 502 },
      { port: 9201, status: 200 },
      { port: 9203, status: 504 },
      { port: 9201, status: 200 },
    ])
  })

  it('passes a healthy canary with enough requests', () => {
    expect(judge(log(100, 0, 900, 1))).toMatchObject({ verdict: 'pass', canary: { requests: 100, errors: 0, rate: 0 }, stable: { requests: 901, errors: 1 } })
  })

  it('fails a canary above the error budget', () => {
    expect(judge(log(90, 10, 900, 0))).toMatchObject({ verdict: 'fail', reason: 'canary error rate 10.00% (10 of 100) is above canary-max-error-rate 1%' })
  })

  it('fails a canary clearly worse than stable even within the budget', () => {
    const j = judge(log(960, 40, 10000, 0), 5)
    expect(j.verdict).toBe('fail')
    expect(j.reason).toMatch(/^canary error rate 4.00% is clearly worse than stable 0.00%/)
    expect(worseBy({ requests: 1000, errors: 10, rate: 1 }, { requests: 1000, errors: 10, rate: 1 })).toBe(0)
  })

  it('calls too few requests inconclusive, not a pass', () => {
    expect(judge(log(10, 0, 90, 0))).toMatchObject({ verdict: 'inconclusive', reason: 'only 10 requests reached the canary (at least 50 are needed to judge)' })
  })
})
