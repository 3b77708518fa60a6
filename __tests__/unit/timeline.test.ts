// The picture of a run: a Mermaid gantt chart of each replica's life, the canary's share and the verdicts.
import { describe, expect, it } from '@jest/globals'
import type { Step } from '../../src/plan/types.js'
import {
  canaryTimeline,
  leftPadding,
  MAX_BARS,
  MAX_TITLE,
  rowTitle,
  sanitise,
  tickInterval,
  timeline,
  type TimelineRecord,
} from '../../src/timeline.js'
import {
  cancelledRolling,
  counts,
  HOST,
  notRun,
  pausedCanary,
  recorded,
  replica,
  rolledBackRolling,
  rollingDeploy,
} from './recorded-runs.js'

const AXIS = ['gantt', 'dateFormat x', 'axisFormat %s s', 'todayMarker off']
/** The chart's lines after its header (its layout directive, then its axis). */
const body = (r: TimelineRecord) => {
  const lines = timeline(r).split('\n')
  expect(lines[0]).toMatch(/^%%\{init: \{"gantt":\{"leftPadding":\d+,"tickInterval":"\d+(second|minute)"\}\}\}%%$/)
  expect(lines.slice(1, 5)).toEqual(AXIS)
  return lines.slice(5)
}
/** The bars of one section. */
const section = (lines: readonly string[], name: string) => {
  const from = lines.indexOf(`section ${name}`)
  expect(from).toBeGreaterThanOrEqual(0)
  const next = lines.findIndex((l, i) => i > from && l.startsWith('section '))
  return lines.slice(from + 1, next < 0 ? undefined : next)
}
const bars = (text: string) => text.split('\n').filter((l) => / :/.test(l)).length

describe('timeline', () => {
  it('draws a one-replica rolling deploy exactly: each replica its section, the verdicts in the run', () => {
    const old = replica(9201, 'shop:v1')
    const fresh = replica(9202, 'shop:v2')
    const steps: Step[] = [
      { kind: 'pull', image: 'shop:v2', hosts: [HOST] },
      { kind: 'start', replicas: [fresh] },
      { kind: 'gate', replicas: [fresh] },
      { kind: 'route', servers: [fresh], judged: { backup: [old] } },
      { kind: 'drain', seconds: 5, replicas: [old], verify: [fresh] },
      { kind: 'route', servers: [fresh], settle: true },
      { kind: 'retire', replicas: [old] },
    ]
    const text = timeline({
      hosts: [HOST],
      durationSeconds: 14.25,
      servingBefore: [old],
      steps: [
        recorded(steps[0], 0, 1800),
        recorded(steps[1], 1800, 2400),
        recorded(steps[2], 2400, 3100),
        recorded(steps[3], 3100, 3300),
        recorded(steps[4], 3300, 13300),
        recorded(steps[5], 13300, 13500),
        recorded(steps[6], 13500, 13600),
      ],
      verifications: [
        { replicas: ['shop-9202'], verdict: 'pass', reason: 'fine', new: counts(80), old: counts(900), ms: 9000 },
      ],
    })
    expect(text).toBe(
      [
        '%%{init: {"gantt":{"leftPadding":80,"tickInterval":"5second"}}}%%',
        'gantt',
        'dateFormat x',
        'axisFormat %s s',
        'todayMarker off',
        'section run',
        'pull shop∶v2 :0, 1800',
        'shop-9202 judged pass :milestone, 12300, 12300',
        'section shop-9201',
        'serving 100% :active, 0, 3300',
        'draining :done, 3300, 13300',
        'backup :done, 3300, 13500',
        'retired :done, 13500, 13600',
        'section shop-9202',
        'starting :1800, 2400',
        'health gate :2400, 3100',
        'serving 100% :active, 3300, 14250',
      ].join('\n'),
    )
  })

  it('draws a rolling deploy judged on real traffic and baked: three batches, each verdict, the bake', () => {
    const lines = body(rollingDeploy())
    expect(section(lines, 'run')).toEqual([
      'pull shop∶v2 :0, 2100',
      'shop-9204 judged pass :milestone, 16820, 16820',
      'shop-9205 judged pass :milestone, 29720, 29720',
      'shop-9206 judged pass :milestone, 42600, 42600',
      'bake 60 s :done, 42700, 90300',
      'bake pass :milestone, 90300, 90300',
    ])
    // The old replicas serve until routed out, then stand by as backup through the bake, then retire.
    expect(section(lines, 'shop-9202')).toEqual([
      'serving 33% :active, 0, 17400',
      'backup :done, 17400, 90600',
      'draining :done, 17420, 29800',
      'retired :done, 90600, 90700',
    ])
    // A replica started ahead waits for its batch until its gate.
    expect(section(lines, 'shop-9205')).toEqual([
      'started ahead :4400, 16900',
      'health gate :16900, 17100',
      'serving 33% :active, 17400, 91200',
    ])
    expect(lines.filter((l) => l.startsWith('section '))).toEqual([
      'section run',
      'section shop-9201',
      'section shop-9202',
      'section shop-9203',
      'section shop-9204',
      'section shop-9205',
      'section shop-9206',
    ])
  })

  it('shows the switch back of a rolled-back deploy: the old replica serves again, the new one drains and goes', () => {
    const lines = body(rolledBackRolling())
    expect(section(lines, 'run')).toEqual([
      'pull shop∶v2 :0, 2100',
      'shop-9204 judged fail :crit, milestone, 9520, 9520',
      'rollback :crit, 9600, 10900',
    ])
    expect(section(lines, 'shop-9201')).toEqual([
      'serving 33% :active, 0, 4400',
      'backup :done, 4400, 9900',
      'draining :done, 4420, 9600',
      'serving 33% :active, 9900, 14800',
    ])
    expect(section(lines, 'shop-9202')).toEqual(['serving 33% :active, 0, 14800'])
    expect(section(lines, 'shop-9204')).toEqual([
      'starting :2150, 2900',
      'health gate :2900, 4100',
      'serving 33% :active, 4400, 9900',
      'draining :done, 9900, 10400',
      'removed :done, 10400, 10900',
    ])
    expect(section(lines, 'shop-9205')).toEqual(['started ahead :4400, 10400', 'removed :done, 10400, 10900'])
  })

  it("draws the canary's share over time and its step's verdict; the steps not run are not drawn", () => {
    expect(body(pausedCanary())).toEqual([
      'section run',
      'pull shop∶v2 :0, 1500',
      'canary 10% inconclusive :active, milestone, 63300, 63300',
      'section canary',
      'canary 10% :active, 3300, 64500',
      'section shop-9201',
      'serving 50% :active, 0, 3300',
      'serving 45% :active, 3300, 64500',
      'section shop-9202',
      'serving 50% :active, 0, 3300',
      'serving 45% :active, 3300, 64500',
      'section shop-9203',
      'starting :1500, 2200',
      'health gate :2200, 3000',
      'serving 10% :active, 3300, 64500',
    ])
  })

  it('follows a canary through its steps to all requests', () => {
    const stable = [replica(9201, 'shop:v1')]
    const canary = replica(9202, 'shop:v2')
    const split = (percent: number) => ({ canary: [canary], percent, canaryWeight: 1, stableWeight: 1 })
    const steps: Step[] = [
      { kind: 'route', servers: [...stable, canary], split: split(20) },
      { kind: 'observe', seconds: 10, split: split(20), stable },
      { kind: 'route', servers: [...stable, canary], split: split(60) },
      { kind: 'route', servers: [canary] },
      { kind: 'retire', replicas: stable },
    ]
    const lines = body({
      hosts: [HOST],
      durationSeconds: 30,
      servingBefore: stable,
      steps: [
        recorded(steps[0], 0, 1000),
        recorded(steps[1], 1000, 11000),
        recorded(steps[2], 11000, 12000),
        recorded(steps[3], 20000, 21000),
        recorded(steps[4], 21000, 22000),
      ],
      canarySteps: [
        {
          percent: 20,
          seconds: 10,
          verdict: 'pass',
          reason: 'ok',
          canary: { requests: 100, errors: 0, rate: 0 },
          stable: { requests: 400, errors: 0, rate: 0 },
        },
      ],
    })
    expect(section(lines, 'canary')).toEqual([
      'canary 20% :active, 1000, 12000',
      'canary 60% :active, 12000, 21000',
      'canary 100% :active, 21000, 30000',
    ])
    expect(section(lines, 'run')).toEqual(['canary 20% pass :milestone, 11000, 11000'])
    expect(section(lines, 'shop-9201')).toEqual([
      'serving 100% :active, 0, 1000',
      'serving 80% :active, 1000, 12000',
      'serving 40% :active, 12000, 21000',
      'retired :done, 21000, 22000',
    ])
  })

  it('marks a cancelled run and the step it cancelled', () => {
    const lines = body(cancelledRolling())
    expect(section(lines, 'run')).toContain('run cancelled :crit, milestone, 18200, 18200')
    expect(section(lines, 'shop-9205')).toEqual([
      'started ahead :4400, 16900',
      'health gate :16900, 18200',
      'removed :done, 18500, 19100',
    ])
  })

  it('draws replicas it first meets in a route, without knowing what served before', () => {
    const lines = body({
      hosts: [HOST],
      durationSeconds: 3,
      steps: [recorded({ kind: 'route', servers: [replica(9201, 'shop:v1'), replica(9202, 'shop:v1')] }, 1000, 1200)],
    })
    expect(lines).toEqual([
      'section shop-9201',
      'serving 50% :active, 1200, 3000',
      'section shop-9202',
      'serving 50% :active, 1200, 3000',
    ])
  })

  it('marks a failed gate critical', () => {
    const fresh = replica(9202, 'shop:v2')
    const lines = body({
      hosts: [HOST],
      durationSeconds: 70,
      steps: [
        recorded({ kind: 'start', replicas: [fresh] }, 0, 500),
        recorded({ kind: 'gate', replicas: [fresh] }, 500, 60500, 'failed'),
        recorded({ kind: 'remove', replicas: [fresh] }, 60500, 61000, 'ok', undefined, 'rollback'),
      ],
    })
    expect(lines).toEqual([
      'section run',
      'rollback :crit, 60500, 61000',
      'section shop-9202',
      'starting :0, 500',
      'health gate :crit, 500, 60500',
      'removed :done, 60500, 61000',
    ])
  })

  it('has nothing to draw when no step ran (a dry run, a refusal)', () => {
    expect(timeline({ hosts: [HOST], durationSeconds: 1, steps: [] })).toBe('')
    const plan = rollingDeploy().steps.map((s) => notRun(s.step!))
    expect(timeline({ hosts: [HOST], durationSeconds: 1, steps: plan })).toBe('')
  })

  it('gives each app host its section, the replicas named in their bars', () => {
    const a = replica(9201, 'shop:v2', '10.0.0.11')
    const b = replica(9201, 'shop:v2', '10.0.0.12:2222')
    const step: Step = { kind: 'start', replicas: [a, b] }
    const lines = body({
      hosts: ['10.0.0.11', '10.0.0.12:2222'],
      durationSeconds: 2,
      steps: [
        recorded(step, 0, 900, 'ok', undefined, 'deploy', true),
        recorded({ kind: 'route', servers: [a, b] }, 900, 1000),
      ],
    })
    expect(lines).toEqual([
      'section 10.0.0.11',
      'shop-9201 starting :0, 1000',
      'shop-9201 serving 50% :active, 1000, 2000',
      'section 10.0.0.12∶2222',
      'shop-9201 starting :0, 1000',
      'shop-9201 serving 50% :active, 1000, 2000',
    ])
  })

  it(`groups replicas until the chart has at most ${MAX_BARS} bars`, () => {
    // 12 replicas replaced one by one: 4 bars for each old one, 3 for each new one.
    const old = Array.from({ length: 12 }, (_, i) => replica(9201 + i, 'shop:v1'))
    const fresh = Array.from({ length: 12 }, (_, i) => replica(9301 + i, 'shop:v2'))
    const steps = old.flatMap((o, i) => {
      const t = 1000 * i
      const servers = [...fresh.slice(0, i + 1), ...old.slice(i + 1)]
      return [
        recorded({ kind: 'start', replicas: [fresh[i]] }, t, t + 200),
        recorded({ kind: 'gate', replicas: [fresh[i]] }, t + 200, t + 400),
        recorded({ kind: 'route', servers }, t + 400, t + 500),
        recorded({ kind: 'drain', seconds: 5, replicas: [o] }, t + 500, t + 1000),
      ]
    })
    const text = timeline({
      hosts: [HOST],
      durationSeconds: 14,
      servingBefore: old,
      steps: [...steps, recorded({ kind: 'retire', replicas: old }, 12000, 12100)],
    })
    expect(bars(text)).toBeLessThanOrEqual(MAX_BARS)
    expect(text.split('\n').filter((l) => l.startsWith('section '))).toEqual([
      'section 12 old replicas',
      'section 12 new replicas',
    ])
    expect(section(text.split('\n'), '12 new replicas')).toEqual([
      'starting :0, 11200',
      'health gate :200, 11400',
      'serving 8.3% :active, 500, 14000',
    ])
  })

  it('gives replicas that lived the same life one row when that is enough', () => {
    // Blue-green: 15 new replicas start, gate and take the traffic together; 15 old ones drain together.
    const old = Array.from({ length: 15 }, (_, i) => replica(9201 + i, 'shop:v1'))
    const fresh = Array.from({ length: 15 }, (_, i) => replica(9301 + i, 'shop:v2'))
    const text = timeline({
      hosts: [HOST],
      durationSeconds: 10,
      servingBefore: old,
      steps: [
        recorded({ kind: 'start', replicas: fresh }, 0, 1000),
        recorded({ kind: 'gate', replicas: fresh }, 1000, 2000),
        recorded({ kind: 'route', servers: fresh }, 2000, 2100),
        recorded({ kind: 'drain', seconds: 5, replicas: old }, 2100, 5000),
        recorded({ kind: 'retire', replicas: old }, 5000, 5100),
      ],
    })
    expect(text.split('\n').slice(5)).toEqual([
      'section shop-9201 and 14 more',
      'serving 6.7% :active, 0, 2100',
      'draining :done, 2100, 5000',
      'retired :done, 5000, 5100',
      'section shop-9301 and 14 more',
      'starting :0, 1000',
      'health gate :1000, 2000',
      'serving 6.7% :active, 2100, 10000',
    ])
  })
})

describe('sanitise', () => {
  it("keeps Mermaid's gantt syntax out of names: ':' and a leading '%' as lookalikes, '#' and ';' replaced, one line", () => {
    expect(sanitise('10.0.0.12:2222')).toBe('10.0.0.12∶2222')
    expect(sanitise('[2001:db8::12]:2222')).toBe('[2001∶db8∶∶12]∶2222')
    expect(sanitise('pull registry.example.com:5000/shop:v2#x;y')).toBe('pull registry.example.com∶5000/shop∶v2＃x,y')
    expect(sanitise('  two\nlines\r\n ')).toBe('two lines')
    // Mermaid takes a line whose first or second character is '%' for a comment.
    expect(sanitise('5% pass')).toBe('5％ pass')
    expect(sanitise('%x')).toBe('％x')
    expect(sanitise('50% pass')).toBe('50% pass')
  })

  it('leaves replica names as they are', () => {
    expect(sanitise('shop_a.b-9201')).toBe('shop_a.b-9201')
  })
})

describe('canaryTimeline', () => {
  it("draws the canary's share over its steps, one after another, and each step's verdict", () => {
    const step = (percent: number, seconds: number, verdict: 'pass' | 'fail' | 'inconclusive') => ({
      percent,
      seconds,
      verdict,
      reason: '',
      canary: { requests: 1, errors: 0, rate: 0 },
      stable: { requests: 1, errors: 0, rate: 0 },
    })
    expect(canaryTimeline([step(10, 60, 'pass'), step(50, 30, 'fail')])).toBe(
      [
        '%%{init: {"gantt":{"leftPadding":75,"tickInterval":"10second"}}}%%',
        'gantt',
        'dateFormat x',
        'axisFormat %s s',
        'todayMarker off',
        'section canary',
        'canary 10% for 60 s :active, 0, 60000',
        'canary 10% pass :milestone, 60000, 60000',
        'canary 50% for 30 s :active, 60000, 90000',
        'canary 50% fail :crit, milestone, 90000, 90000',
      ].join('\n'),
    )
    expect(
      canaryTimeline([step(5, 10, 'inconclusive')])
        .split('\n')
        .at(-1),
    ).toBe('canary 5% inconclusive :active, milestone, 10000, 10000')
    expect(canaryTimeline([])).toBe('')
  })
})

describe('the layout a reader sees (rendered in a browser by __tests__/browser)', () => {
  it('ticks 1, 5 or 10 s apart, at most 12 of them, then half and whole minutes, 5 and 15 minutes', () => {
    expect([0, 3400, 12_000, 12_001, 60_000, 91_200, 120_000, 120_001].map(tickInterval)).toEqual([
      '1second',
      '1second',
      '1second',
      '5second',
      '5second',
      '10second',
      '10second',
      '30second',
    ])
    expect([360_000, 720_000, 720_001, 3_600_000, 86_400_000].map(tickInterval)).toEqual([
      '30second',
      '60second',
      '5minute',
      '5minute',
      '15minute',
    ])
  })

  it("sizes the row titles' strip to the longest title, never under Mermaid's 75 px", () => {
    expect(leftPadding([])).toBe(75)
    expect(leftPadding(['run', 'canary'])).toBe(75)
    const wide = leftPadding(['run', 'checkout-api-9205'])
    expect(wide).toBeGreaterThan(75)
    expect(leftPadding(['checkout-api-9205', 'checkout-api-92055'])).toBeGreaterThan(wide)
    // Capitals are wider than small letters.
    expect(leftPadding(['CHECKOUT-API-9205'])).toBeGreaterThan(wide)
  })

  it('shortens a row title over MAX_TITLE characters in the middle, keeping its start and its end', () => {
    expect(rowTitle('checkout-api-9205')).toBe('checkout-api-9205')
    const long = 'payments-reconciliation-worker-eu-9205'
    expect(rowTitle(long)).toBe('payments-reconci…-worker-eu-9205')
    expect([...rowTitle(long)].length).toBe(MAX_TITLE)
    expect(rowTitle('x'.repeat(MAX_TITLE))).toBe('x'.repeat(MAX_TITLE))
    expect(rowTitle('10.0.0.12:2222')).toBe('10.0.0.12∶2222')
  })

  it('gives a chart of long names a wider strip and shortened row titles; the bars keep the full name', () => {
    const hosts = ['app-1.eu-west-1.compute.internal.example.com', 'app-2.eu-west-1.compute.internal.example.com']
    const [a, b] = hosts.map((h) => ({ ...replica(9205, 'shop:v2', h), name: 'checkout-api-9205' }))
    const text = timeline({
      hosts,
      durationSeconds: 30,
      steps: [recorded({ kind: 'start', replicas: [a, b] }, 0, 4000, 'ok', undefined, 'deploy', true)],
    })
    const lines = text.split('\n')
    expect(lines[0]).toBe(
      `%%{init: {"gantt":{"leftPadding":${leftPadding([rowTitle(hosts[0])])},"tickInterval":"1second"}}}%%`,
    )
    expect(lines.filter((l) => l.startsWith('section '))).toEqual([
      'section app-1.eu-west-1.…nal.example.com',
      'section app-2.eu-west-1.…nal.example.com',
    ])
    expect(lines).toContain('checkout-api-9205 starting :0, 4000')
  })
})
