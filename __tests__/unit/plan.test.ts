import { describe, expect, it } from '@jest/globals'
import { allocate, everyHost, liveReplicas, PlanError, type Plan } from '../../src/plan/common.js'
import { routesOf } from '../../src/plan/index.js'
import { planUndo } from '../../src/plan/rollback.js'
import { planRolling } from '../../src/plan/rolling.js'
import { changesHosts, describeStep, hostsOf, type Step } from '../../src/plan/types.js'
import { container, HOST, hostState, replica, replicaOf, routesTo } from './fakes.js'
import { configFrom } from './fixtures.js'

const config = (over = {}) => configFrom({ replicas: '3', 'drain-seconds': '5', ...over })
const describe1 = (s: Step) => describeStep(s)
const v1 = (port: number) => container(port, 'shop:v1')

describe('planRolling', () => {
  it('replaces one replica per batch, start-first, starting each next batch while the one before drains, and retires every old one only at the end', () => {
    const live = [v1(9201), v1(9202), v1(9203)]
    const plan = planRolling(config(), live, routesTo(...live))
    expect(plan.steps.map(describe1)).toEqual([
      'pull shop:v2',
      'start shop-9204 (:9204) from shop:v2',
      'health gate shop-9204',
      'route traffic to shop-9204, shop-9202, shop-9203 (one nginx reload)',
      'start shop-9205 (:9205) from shop:v2 (in the background, while the batch before drains)',
      'drain shop-9201 (until idle, at most 5s), checking shop-9204 still healthy',
      'stop shop-9201 (in the background)',
      'health gate shop-9205',
      'route traffic to shop-9204, shop-9205, shop-9203 (one nginx reload)',
      'start shop-9206 (:9206) from shop:v2 (in the background, while the batch before drains)',
      'drain shop-9202 (until idle, at most 5s), checking shop-9205 still healthy',
      'stop shop-9202 (in the background)',
      'health gate shop-9206',
      'route traffic to shop-9204, shop-9205, shop-9206 (one nginx reload)',
      'drain shop-9203 (until idle, at most 5s), checking shop-9206 still healthy',
      'retire shop-9201, shop-9202, shop-9203 (stop and remove on the host, in the background)',
    ])
    // Only the first batch starts in the foreground; the others start ahead, and the drain carries the recheck.
    expect(plan.steps.filter((s) => s.kind === 'start')).toEqual([
      { kind: 'start', replicas: [replica(9204)] },
      { kind: 'start', replicas: [replica(9205)], ahead: true },
      { kind: 'start', replicas: [replica(9206)], ahead: true },
    ])
    expect(plan.steps.filter((s) => s.kind === 'drain')).toEqual([
      { kind: 'drain', seconds: 5, replicas: [replicaOf(live[0])], recheck: [replica(9204)] },
      { kind: 'drain', seconds: 5, replicas: [replicaOf(live[1])], recheck: [replica(9205)] },
      { kind: 'drain', seconds: 5, replicas: [replicaOf(live[2])], recheck: [replica(9206)] },
    ])
    expect(plan).toMatchObject({ image: 'shop:v2', onFailure: 'restore', leaves: 'deployed', notes: [] })
    expect(plan.previous).toEqual(live.map(replicaOf))
    expect(plan.next).toEqual([replica(9204), replica(9205), replica(9206)])
  })

  it("does not stop the last batch's old replica in the job: the retirement stops it", () => {
    const live = [v1(9201), v1(9202)]
    const plan = planRolling(config({ replicas: '2' }), live, routesTo(...live))
    const stops = plan.steps.filter((s) => s.kind === 'stop')
    expect(stops).toEqual([{ kind: 'stop', replicas: [replicaOf(live[0])], background: true }])
    expect(plan.steps.at(-1)).toEqual({ kind: 'retire', replicas: live.map(replicaOf) })
  })

  it.each(['1', '2', '3', '4', '5'])(
    'never routes to fewer replicas than min(live, next) with batch-size %s',
    (batch) => {
      for (const [before, after] of [
        [3, 3],
        [4, 2],
        [2, 4],
        [1, 3],
      ]) {
        const live = Array.from({ length: before }, (_, i) => v1(9201 + i))
        const plan = planRolling(
          config({ 'batch-size': batch, replicas: String(after), ports: '9201-9220' }),
          live,
          routesTo(...live),
        )
        const routes = plan.steps.filter((s): s is Extract<Step, { kind: 'route' }> => s.kind === 'route')
        expect(routes.length).toBeGreaterThan(0)
        for (const r of routes) expect(r.servers.length).toBeGreaterThanOrEqual(Math.min(before, after))
        // Every new replica is started, then gated, before the route that first includes it.
        for (const [i, step] of plan.steps.entries()) {
          if (step.kind === 'route')
            for (const s of step.servers.filter((x) => x.image === 'shop:v2'))
              expect(
                plan.steps.slice(0, i).some((g) => g.kind === 'gate' && g.replicas.some((r) => r.name === s.name)),
              ).toBe(true)
          if (step.kind === 'gate')
            for (const s of step.replicas)
              expect(
                plan.steps.slice(0, i).some((g) => g.kind === 'start' && g.replicas.some((r) => r.name === s.name)),
              ).toBe(true)
        }
        // Only the first batch starts in the foreground; every later one starts ahead, while the batch before drains.
        const starts = plan.steps.filter((s): s is Extract<Step, { kind: 'start' }> => s.kind === 'start')
        expect(starts.map((s) => s.ahead)).toEqual([undefined, ...starts.slice(1).map(() => true)])
        expect(routes.at(-1)!.servers).toEqual(plan.next)
      }
    },
  )

  it('starts the whole set at once on a bare host, with a registry login first', () => {
    const plan = planRolling(
      config({ 'registry-username': 'bot', 'registry-password': 'pw', registry: 'ghcr.io', pull: 'false' }),
      [],
      undefined,
    )
    expect(plan.steps.map(describe1)).toEqual([
      'log in to ghcr.io as bot',
      'start shop-9201 (:9201), shop-9202 (:9202), shop-9203 (:9203) from shop:v2',
      'health gate shop-9201, shop-9202, shop-9203',
      'route traffic to shop-9201, shop-9202, shop-9203 (one nginx reload)',
    ])
    expect(plan.steps[0]).toEqual({ kind: 'login', registry: 'ghcr.io', username: 'bot', hosts: [HOST] })
  })

  it('scales down: the extra old replicas leave in the last batches, drained with no new one to check again', () => {
    const live = [v1(9201), v1(9202)]
    const plan = planRolling(config({ replicas: '1', pull: 'false' }), live, routesTo(...live))
    expect(plan.steps.map(describe1)).toEqual([
      'start shop-9203 (:9203) from shop:v2',
      'health gate shop-9203',
      'route traffic to shop-9203, shop-9202 (one nginx reload)',
      'drain shop-9201 (until idle, at most 5s), checking shop-9203 still healthy',
      'stop shop-9201 (in the background)',
      'route traffic to shop-9203 (one nginx reload)',
      'drain shop-9202 (until idle, at most 5s)',
      'retire shop-9201, shop-9202 (stop and remove on the host, in the background)',
    ])
    expect(plan.steps[6]).toEqual({ kind: 'drain', seconds: 5, replicas: [replicaOf(live[1])] })
  })

  it('treats running replicas missing from the live upstream, and stopped ones, as strays to remove', () => {
    const containers = [v1(9201), v1(9202), container(9205, 'shop:bad'), container(9206, 'shop:v0', { running: false })]
    const routes = routesTo(containers[0], containers[1])
    expect(liveReplicas(config(), containers, routes).strays.map((r) => r.name)).toEqual(['shop-9205', 'shop-9206'])
    const plan = planRolling(config({ replicas: '2', pull: 'false' }), containers, routes)
    expect(plan.next.map((r) => r.port)).toEqual([9203, 9204])
    // Retirement last: nothing after it can fail and bring the retired replicas back.
    expect(plan.steps.slice(-2).map(describe1)).toEqual([
      'remove shop-9205, shop-9206',
      'retire shop-9201, shop-9202 (stop and remove on the host, in the background)',
    ])
  })

  it('counts every running replica as live when there is no managed file to go by', () => {
    const containers = [v1(9202), v1(9201), container(9203, 'shop:v0', { running: false })]
    const { live, strays } = liveReplicas(config(), containers, undefined)
    expect(live.map((r) => r.name)).toEqual(['shop-9201', 'shop-9202'])
    expect(strays.map((r) => r.name)).toEqual(['shop-9203'])
    expect(routesOf(hostState(containers, undefined))).toBeUndefined()
    expect(routesOf(hostState(containers, routesTo(containers[0])))).toEqual(new Map([['127.0.0.1:9202', 10]]))
  })

  it("leaves other apps' containers and ports alone", () => {
    const blog = container(9201, 'blog:v1', { app: 'blog', name: 'blog-9201' })
    const plan = planRolling(config({ replicas: '1', pull: 'false' }), [blog, v1(9202)], routesTo(blog, v1(9202)))
    expect(plan.previous.map((r) => r.name)).toEqual(['shop-9202'])
    expect(plan.next.map((r) => r.port)).toEqual([9203])
    expect(
      plan.steps
        .flatMap((s) => ('replicas' in s ? s.replicas : 'servers' in s ? s.servers : []))
        .some((r) => r.name === 'blog-9201'),
    ).toBe(false)
    expect(plan.steps.some((s) => s.kind === 'remove')).toBe(false)
  })

  it("never hands out a port another app's container holds, nor a port of a stopped one", () => {
    const taken = [
      container(9201, 'blog:v1', { app: 'blog', name: 'blog-9201' }),
      container(9202, 'shop:v0', { running: false }),
    ]
    expect(allocate(config(), taken, everyHost(config(), 2), 'shop:v2').map((r) => r.port)).toEqual([9203, 9204])
    // ...unless it is about to be removed.
    expect(
      allocate(config(), taken, everyHost(config(), 2), 'shop:v2', [replicaOf(taken[1])]).map((r) => r.port),
    ).toEqual([9202, 9203])
  })

  it('refuses, naming the taken ports, when the range has no room for the new set', () => {
    const live = [v1(9201), v1(9202), v1(9203)]
    const plan = () => planRolling(config({ ports: '9201-9204' }), live, routesTo(...live))
    expect(plan).toThrow(PlanError)
    expect(plan).toThrow(
      `ports: 3 new replicas on ${HOST} need 3 free ports in 9201-9204, but only 1 are free (taken: 9201, 9202, 9203). ` +
        'Widen ports: start-first needs room for the old and the new replicas at once.',
    )
  })
})

describe('describeStep', () => {
  const a = replica(9201, 'shop:v2', 'a')
  const b = replica(9201, 'shop:v2', 'b')

  it.each<[string, Step, string, string]>([
    [
      'login',
      { kind: 'login', registry: '', username: 'bot', hosts: ['a', 'b'] },
      'log in to Docker Hub as bot',
      'log in to Docker Hub as bot on a, b',
    ],
    ['pull', { kind: 'pull', image: 'shop:v2', hosts: ['a', 'b'] }, 'pull shop:v2', 'pull shop:v2 on a, b'],
    [
      'start',
      { kind: 'start', replicas: [a, b] },
      'start shop-9201 (:9201), shop-9201 (:9201) from shop:v2',
      'start shop-9201@a (:9201), shop-9201@b (:9201) from shop:v2',
    ],
    ['restart', { kind: 'restart', replicas: [a] }, 'start shop-9201 again', 'start shop-9201@a again'],
    [
      'gate',
      { kind: 'gate', replicas: [a, b] },
      'health gate shop-9201, shop-9201',
      'health gate shop-9201@a, shop-9201@b',
    ],
    [
      'start ahead',
      { kind: 'start', replicas: [a, b], ahead: true },
      'start shop-9201 (:9201), shop-9201 (:9201) from shop:v2 (in the background, while the batch before drains)',
      'start shop-9201@a (:9201), shop-9201@b (:9201) from shop:v2 (in the background, while the batch before drains)',
    ],
    [
      'route',
      { kind: 'route', servers: [a, b] },
      'route traffic to shop-9201, shop-9201 (one nginx reload)',
      'route traffic to shop-9201@a, shop-9201@b (one nginx reload)',
    ],
    [
      'restore-config',
      { kind: 'restore-config', text: undefined, servers: [] },
      'restore the previous nginx config (no replica)',
      'restore the previous nginx config (no replica)',
    ],
    [
      'drain',
      { kind: 'drain', seconds: 5, replicas: [a] },
      'drain shop-9201 (until idle, at most 5s)',
      'drain shop-9201@a (until idle, at most 5s)',
    ],
    [
      'drain with no replica to recheck',
      { kind: 'drain', seconds: 5, replicas: [a], recheck: [] },
      'drain shop-9201 (until idle, at most 5s)',
      'drain shop-9201@a (until idle, at most 5s)',
    ],
    [
      'drain checking the new replicas again',
      { kind: 'drain', seconds: 5, replicas: [a], recheck: [b] },
      'drain shop-9201 (until idle, at most 5s), checking shop-9201 still healthy',
      'drain shop-9201@a (until idle, at most 5s), checking shop-9201@b still healthy',
    ],
    [
      'stop in the background',
      { kind: 'stop', replicas: [a], background: true },
      'stop shop-9201 (in the background)',
      'stop shop-9201@a (in the background)',
    ],
    ['remove', { kind: 'remove', replicas: [b] }, 'remove shop-9201', 'remove shop-9201@b'],
    [
      'retire',
      { kind: 'retire', replicas: [a, b] },
      'retire shop-9201, shop-9201 (stop and remove on the host, in the background)',
      'retire shop-9201@a, shop-9201@b (stop and remove on the host, in the background)',
    ],
  ])('describes %s in one line, naming each replica with its host when there are several', (_kind, step, one, many) => {
    expect(describeStep(step)).toBe(one)
    expect(describeStep(step, true)).toBe(many)
  })

  it('names the hosts a step touches, and which steps change a host', () => {
    expect(hostsOf({ kind: 'retire', replicas: [a, b, replica(9202, 'shop:v2', 'a')] }, 'lb')).toEqual(['a', 'b'])
    expect(hostsOf({ kind: 'route', servers: [a, b] }, 'lb')).toEqual(['lb'])
    expect(hostsOf({ kind: 'pull', image: 'x', hosts: ['a', 'c'] }, 'lb')).toEqual(['a', 'c'])
    // A drain touches the hosts of the replicas it drains and of those it checks again.
    expect(hostsOf({ kind: 'drain', seconds: 5, replicas: [a], recheck: [b] }, 'lb')).toEqual(['a', 'b'])
    expect(hostsOf({ kind: 'drain', seconds: 5, replicas: [b] }, 'lb')).toEqual(['b'])
    const kinds: Step[] = [
      { kind: 'gate', replicas: [a] },
      { kind: 'drain', seconds: 1, replicas: [a] },
      { kind: 'drain', seconds: 1, replicas: [a], recheck: [b] },
      { kind: 'start', replicas: [a] },
      { kind: 'start', replicas: [a], ahead: true },
      { kind: 'route', servers: [a] },
      { kind: 'retire', replicas: [a] },
      { kind: 'remove', replicas: [a] },
      { kind: 'stop', replicas: [a] },
    ]
    expect(kinds.map((s) => [s.kind, changesHosts(s)])).toEqual([
      ['gate', false],
      ['drain', false],
      ['drain', false],
      ['start', true],
      ['start', true],
      ['route', true],
      ['retire', true],
      ['remove', true],
      ['stop', true],
    ])
  })
})

describe('planUndo', () => {
  const previous = [replicaOf(v1(9201)), replicaOf(v1(9202))]
  const next = [replica(9203), replica(9204)]
  const restorePlan: Plan = {
    steps: [],
    image: 'shop:v2',
    previous,
    next,
    onFailure: 'restore',
    leaves: 'deployed',
    notes: [],
  }

  it('routes back to the previous replicas still running at once, starts the stopped ones again, restores the previous managed file, drains and removes the new ones', () => {
    const undo = planUndo(config({ 'drain-seconds': '2' }), restorePlan, {
      started: next,
      routed: [next[0]],
      stopped: [previous[0]],
      configBefore: 'before',
      configNow: 'now',
    })
    expect(undo.steps.map(describe1)).toEqual([
      'route traffic to shop-9202 (one nginx reload)',
      'start shop-9201 again',
      'health gate shop-9201',
      'restore the previous nginx config (shop-9201, shop-9202)',
      'drain shop-9203 (until idle, at most 2s)',
      'remove shop-9203, shop-9204',
    ])
    expect(undo.steps[3]).toEqual({ kind: 'restore-config', text: 'before', servers: previous })
    expect(undo.canary).toBe('untouched')
  })

  it('puts back "no managed file" when there was none before the run', () => {
    const undo = planUndo(
      config(),
      { ...restorePlan, previous: [] },
      { started: next, routed: next, stopped: [], configBefore: undefined, configNow: 'now' },
    )
    expect(undo.steps[0]).toEqual({ kind: 'restore-config', text: undefined, servers: [] })
  })

  it('only removes a new replica that never got traffic', () => {
    const undo = planUndo(config(), restorePlan, {
      started: [next[0]],
      routed: [],
      stopped: [],
      configBefore: 'same',
      configNow: 'same',
    })
    expect(undo.steps.map(describe1)).toEqual(['remove shop-9203'])
  })

  it('skips the drain with drain-seconds 0', () => {
    const undo = planUndo(config({ 'drain-seconds': '0' }), restorePlan, {
      started: next,
      routed: next,
      stopped: [],
      configBefore: 'a',
      configNow: 'b',
    })
    expect(undo.steps.map((s) => s.kind)).toEqual(['restore-config', 'remove'])
  })

  it('has nothing to do when the run changed nothing', () => {
    expect(
      planUndo(config(), restorePlan, { started: [], routed: [], stopped: [], configBefore: 'x', configNow: 'x' })
        .steps,
    ).toEqual([])
  })

  // A retired replica is handed to a detached stop-and-remove on its host: nothing can bring it back.
  it('retires last, and an undo after a retirement never brings a retired replica back', () => {
    const live = [v1(9201), v1(9202)]
    const stray = container(9205, 'shop:bad')
    const plan = planRolling(config({ replicas: '2', pull: 'false' }), [...live, stray], routesTo(...live))
    expect(plan.steps.slice(-2).map((s) => s.kind)).toEqual(['remove', 'retire'])
    const all = { started: plan.next, routed: plan.next, stopped: [], configBefore: 'old', configNow: 'new' }
    expect(() => planUndo(config({ replicas: '2' }), plan, { ...all, retired: plan.previous })).toThrow(
      'every replica that served before the run was already retired: the new version stays live and nothing is undone',
    )
    const undo = planUndo(config({ replicas: '2' }), plan, { ...all, retired: [plan.previous[0]] })
    const broughtBack = undo.steps.flatMap((s) =>
      s.kind === 'restart' || s.kind === 'gate'
        ? s.replicas
        : s.kind === 'restore-config' || s.kind === 'route'
          ? s.servers
          : [],
    )
    expect(broughtBack.map((r) => r.name)).toEqual([plan.previous[1].name])
    expect(undo.steps.map((s) => s.kind)).toEqual(['route', 'drain', 'remove'])
  })
})
