// Recorded runs, built by hand as the executor and publish would record them: the steps with their times and
// outcomes, the judgements on real traffic, the bake and the canary steps. The summary and the timeline are
// tested on them.
import type { Phase, StepOutcome, StepRecord } from '../../src/journal.js'
import type { Replica, Split, TrafficCounts, Verification } from '../../src/model.js'
import { describeStep, hostsOf, type Step } from '../../src/plan/types.js'
import type { RunRecord } from '../../src/summary.js'

export const HOST = 'docker.example.com'

export const replica = (port: number, image: string, host = HOST, address = '127.0.0.1'): Replica => ({
  host,
  address,
  name: `shop-${port}`,
  port,
  image,
})

/** A step as the executor records it: described as the log and the summary show it, with its hosts. */
export function recorded(
  step: Step,
  startedAtMs: number,
  endedAtMs: number,
  outcome: StepOutcome = 'ok',
  detail?: string,
  phase: Phase = 'deploy',
  manyHosts = false,
): StepRecord {
  return {
    phase,
    description: describeStep(step, manyHosts),
    hosts: hostsOf(step, HOST),
    ms: endedAtMs - startedAtMs,
    startedAtMs,
    endedAtMs,
    outcome,
    ...(detail ? { detail } : {}),
    ...(step.kind === 'route' || step.kind === 'restore-config'
      ? { allTrafficNew: !step.servers.some((r) => r.image !== 'shop:v2') }
      : {}),
    step,
  }
}

/** A step of the plan that did not run, as publish passes it. */
export const notRun = (step: Step, manyHosts = false): StepRecord => ({
  phase: 'deploy',
  description: describeStep(step, manyHosts),
  hosts: hostsOf(step, HOST),
  ms: 0,
  endedAtMs: 0,
  outcome: 'not run',
  step,
})

export const counts = (requests: number, serverErrors = 0, clientErrors = 0): TrafficCounts => ({
  requests,
  serverErrors,
  clientErrors,
  statuses: {
    '200': requests - serverErrors - clientErrors,
    ...(serverErrors ? { '500': serverErrors } : {}),
    ...(clientErrors ? { '404': clientErrors } : {}),
  },
})

export const base: RunRecord = {
  app: 'shop',
  hosts: [HOST],
  nginxHost: `${HOST} (container nginx)`,
  strategy: 'rolling',
  result: 'deployed',
  image: 'shop:v2',
  requestedImage: 'shop:v2',
  previousImage: 'shop:v1',
  durationSeconds: 0,
  dryRun: false,
  plan: [],
  steps: [],
  gates: [],
  configPath: '/etc/nginx/conf.d/shop.conf',
  configDiff: '',
  evidence: [],
}

const old = [replica(9201, 'shop:v1'), replica(9202, 'shop:v1'), replica(9203, 'shop:v1')]
const fresh = [replica(9204, 'shop:v2'), replica(9205, 'shop:v2'), replica(9206, 'shop:v2')]
const [o1, o2, o3] = old
const [n1, n2, n3] = fresh

const passed = (name: string, ms: number): Verification => ({
  replicas: [name],
  verdict: 'pass',
  reason: `212 requests to the new version (0.00% 5xx, 0.47% 4xx), 1490 to the old (0.07% 5xx, 0.54% 4xx)`,
  new: counts(212, 0, 1),
  old: counts(1490, 1, 8),
  ms,
})

const drained = (ms: number, name: string, verdictMs: number) =>
  `nothing in flight after ${(ms / 1000).toFixed(1)}s; real traffic: pass after ${(verdictMs / 1000).toFixed(1)}s, ${passed(name, verdictMs).reason}`

/** The steps of a 3-replica rolling deploy judged on real traffic and baked, as the planner lays them out. */
export const ROLLING_STEPS: readonly Step[] = [
  { kind: 'pull', image: 'shop:v2', hosts: [HOST] },
  { kind: 'record', servers: old },
  { kind: 'start', replicas: [n1] },
  { kind: 'gate', replicas: [n1] },
  { kind: 'route', servers: [n1, o2, o3], judged: { backup: [o1] } },
  { kind: 'start', replicas: [n2], ahead: true },
  { kind: 'drain', seconds: 5, replicas: [o1], recheck: [n1], verify: [n1] },
  { kind: 'gate', replicas: [n2] },
  { kind: 'route', servers: [n1, n2, o3], judged: { backup: [o1, o2] } },
  { kind: 'start', replicas: [n3], ahead: true },
  { kind: 'drain', seconds: 5, replicas: [o2], recheck: [n2], verify: [n2] },
  { kind: 'gate', replicas: [n3] },
  { kind: 'route', servers: fresh, judged: { backup: old } },
  { kind: 'drain', seconds: 5, replicas: [o3], recheck: [n3], verify: [n3] },
  { kind: 'bake', seconds: 60, replicas: fresh },
  { kind: 'route', servers: fresh, settle: true },
  { kind: 'retire', replicas: old },
]

const ROLLING_DIFF = [
  '--- /etc/nginx/conf.d/shop.conf (before the run)',
  '+++ /etc/nginx/conf.d/shop.conf (live at the end)',
  '@@ -1,6 +1,6 @@',
  '-# nginx-rollout config 1a2b3c4d',
  '+# nginx-rollout config 5e6f7a8b',
  ' upstream shop {',
  '-    server 127.0.0.1:9201 max_fails=0;',
  '-    server 127.0.0.1:9202 max_fails=0;',
  '-    server 127.0.0.1:9203 max_fails=0;',
  '+    server 127.0.0.1:9204 max_fails=0;',
  '+    server 127.0.0.1:9205 max_fails=0;',
  '+    server 127.0.0.1:9206 max_fails=0;',
  '     keepalive 32;',
  ' }',
].join('\n')

/** A 3-replica rolling deploy of shop:v2 over shop:v1, each batch judged on real traffic, then baked 60 s. */
export function rollingDeploy(): RunRecord {
  const s = ROLLING_STEPS
  const gate = (name: string, ms: number) => `${name} healthy after ${(ms / 1000).toFixed(1)}s`
  return {
    ...base,
    durationSeconds: 91.2,
    trafficSwitchedSeconds: 30.3,
    servingBefore: old,
    steps: [
      recorded(s[0], 0, 2100),
      recorded(s[1], 2100, 2150, 'ok', 'continues while the new replicas start'),
      recorded(s[2], 2150, 2900),
      recorded(s[3], 2900, 4100, 'ok', gate('shop-9204', 1200)),
      recorded(s[4], 4100, 4400, 'ok', 'nginx serves config 2c4e6a8b'),
      recorded(s[5], 4400, 4420, 'ok', 'continues while the batch before drains'),
      recorded(s[6], 4420, 16900, 'ok', drained(400, 'shop-9204', 12400)),
      recorded(s[7], 16900, 17100, 'ok', gate('shop-9205', 200)),
      recorded(s[8], 17100, 17400, 'ok', 'nginx serves config 3d5f7b9c'),
      recorded(s[9], 17400, 17420, 'ok', 'continues while the batch before drains'),
      recorded(s[10], 17420, 29800, 'ok', drained(300, 'shop-9205', 12300)),
      recorded(s[11], 29800, 30000, 'ok', gate('shop-9206', 200)),
      recorded(s[12], 30000, 30300, 'ok', 'nginx serves config 4e6a8c0d'),
      recorded(s[13], 30300, 42700, 'ok', drained(500, 'shop-9206', 12300)),
      recorded(
        s[14],
        42700,
        90300,
        'ok',
        'every new replica served for 60s: no exit, restart, failed probes or worse error rate',
      ),
      recorded(s[15], 90300, 90600, 'ok', 'nginx serves config 5e6f7a8b'),
      recorded(s[16], 90600, 90700),
    ],
    gates: fresh.map((r, i) => ({
      replica: r.name,
      host: HOST,
      ok: true,
      probes: i === 0 ? 6 : 1,
      ms: i === 0 ? 1200 : 200,
      last: 'GET /healthz -> 200',
      dockerHealth: 'none',
    })),
    verifications: [passed('shop-9204', 12400), passed('shop-9205', 12300), passed('shop-9206', 12300)],
    bake: {
      seconds: 60,
      verdict: 'pass',
      reason: 'every new replica served for 60s: no exit, restart, failed probes or worse error rate',
      new: counts(4210, 0, 19),
      old: counts(2988, 2, 16),
    },
    configDiff: ROLLING_DIFF,
    github: ['Deployment 77 to production: success.'],
    stats: { connections: 1, commands: 41, probes: 9 },
    phases: [
      { name: 'start', ms: 180 },
      { name: 'connect', ms: 240 },
      { name: 'lock and read', ms: 310 },
      { name: 'records and unlock', ms: 150 },
    ],
  }
}

const split = (percent: number, canaryWeight: number, stableWeight: number, canary: Replica[]): Split => ({
  canary,
  percent,
  canaryWeight,
  stableWeight,
})

const stats = (requests: number, errors: number) => ({
  requests,
  errors,
  rate: requests ? (100 * errors) / requests : 0,
})

/**
 * A canary of shop:v2 beside two shop:v1 replicas, planned 10% then 50%: the 10% step was too quiet to
 * judge, so the run paused there with the canary live at 10%.
 */
export function pausedCanary(): RunRecord {
  const stable = [replica(9201, 'shop:v1'), replica(9202, 'shop:v1')]
  const canary = replica(9203, 'shop:v2')
  const at10 = split(10, 2, 9, [canary])
  const at50 = split(50, 2, 1, [canary])
  const steps: Step[] = [
    { kind: 'pull', image: 'shop:v2', hosts: [HOST] },
    { kind: 'start', replicas: [canary] },
    { kind: 'gate', replicas: [canary] },
    { kind: 'route', servers: [...stable, canary], split: at10, judged: { backup: [] } },
    { kind: 'observe', seconds: 60, split: at10, stable },
    { kind: 'route', servers: [...stable, canary], split: at50, judged: { backup: [] } },
    { kind: 'observe', seconds: 60, split: at50, stable },
    { kind: 'route', servers: [...stable, canary], split: at50, settle: true },
  ]
  const quiet = 'only 3 requests reached the canary (at least 50 are needed to judge)'
  return {
    ...base,
    strategy: 'canary',
    result: 'paused',
    image: 'shop:v1',
    canaryWeight: '10',
    durationSeconds: 64.5,
    servingBefore: stable,
    stopped: `canary step at 10% is inconclusive: ${quiet}`,
    steps: [
      recorded(steps[0], 0, 1500),
      recorded(steps[1], 1500, 2200),
      recorded(steps[2], 2200, 3000, 'ok', 'shop-9203 healthy after 0.8s'),
      recorded(steps[3], 3000, 3300, 'ok', 'nginx serves config 9a8b7c6d'),
      recorded(steps[4], 3300, 63300, 'inconclusive', quiet),
      notRun(steps[5]),
      notRun(steps[6]),
      notRun(steps[7]),
    ],
    gates: [
      {
        replica: 'shop-9203',
        host: HOST,
        ok: true,
        probes: 4,
        ms: 800,
        last: 'GET /healthz -> 200',
        dockerHealth: 'none',
      },
    ],
    canarySteps: [
      { percent: 10, seconds: 60, verdict: 'inconclusive', reason: quiet, canary: stats(3, 0), stable: stats(27, 0) },
    ],
    configDiff: [
      '--- /etc/nginx/conf.d/shop.conf (before the run)',
      '+++ /etc/nginx/conf.d/shop.conf (live at the end)',
      ' upstream shop {',
      '-    server 127.0.0.1:9201 max_fails=0;',
      '-    server 127.0.0.1:9202 max_fails=0;',
      '+    server 127.0.0.1:9201 max_fails=0 weight=9;',
      '+    server 127.0.0.1:9202 max_fails=0 weight=9;',
      '+    server 127.0.0.1:9203 max_fails=0 weight=2;',
      ' }',
    ].join('\n'),
  }
}

/**
 * A 3-replica rolling deploy whose first new replica served clearly worse on real traffic while the first
 * old one drained: the previous file went back, the new replica drained, and it and the one started ahead
 * were removed.
 */
export function rolledBackRolling(): RunRecord {
  const s = ROLLING_STEPS
  const worse = 'the new version answered 5xx to 31.25% of 64 requests (500: 20), the old one to 0.07% of 1490 (500: 1)'
  const back: Step[] = [
    { kind: 'restore-config', text: 'the file before the run', servers: old },
    { kind: 'drain', seconds: 5, replicas: [n1] },
    { kind: 'remove', replicas: [n1, n2] },
  ]
  return {
    ...base,
    result: 'rolled-back',
    image: 'shop:v1',
    durationSeconds: 14.8,
    servingBefore: old,
    stopped: `real traffic: ${worse}`,
    failure: `real traffic: ${worse}`,
    steps: [
      recorded(s[0], 0, 2100),
      recorded(s[1], 2100, 2150, 'ok', 'continues while the new replicas start'),
      recorded(s[2], 2150, 2900),
      recorded(s[3], 2900, 4100, 'ok', 'shop-9204 healthy after 1.2s'),
      recorded(s[4], 4100, 4400, 'ok', 'nginx serves config 2c4e6a8b'),
      recorded(s[5], 4400, 4420, 'ok', 'continues while the batch before drains'),
      recorded(s[6], 4420, 9600, 'failed', `real traffic: ${worse}`),
      recorded(back[0], 9600, 9900, 'ok', 'nginx serves config 1a2b3c4d', 'rollback'),
      recorded(back[1], 9900, 10400, 'ok', 'nothing in flight after 0.5s', 'rollback'),
      recorded(back[2], 10400, 10900, 'ok', undefined, 'rollback'),
      ...s.slice(7).map((step) => notRun(step)),
    ],
    gates: [
      {
        replica: 'shop-9204',
        host: HOST,
        ok: true,
        probes: 6,
        ms: 1200,
        last: 'GET /healthz -> 200',
        dockerHealth: 'none',
      },
    ],
    verifications: [
      {
        replicas: ['shop-9204'],
        verdict: 'fail',
        reason: worse,
        new: counts(64, 20, 0),
        old: counts(1490, 1, 8),
        ms: 5100,
      },
    ],
    configDiff: '',
  }
}

/** The workflow run was cancelled while the second batch's new replica started: the file went back. */
export function cancelledRolling(): RunRecord {
  const s = ROLLING_STEPS
  return {
    ...rolledBackRolling(),
    result: 'cancelled',
    durationSeconds: 20.1,
    stopped: 'the workflow run was cancelled',
    failure: undefined,
    verifications: [passed('shop-9204', 12400)],
    steps: [
      recorded(s[0], 0, 2100),
      recorded(s[1], 2100, 2150, 'ok', 'continues while the new replicas start'),
      recorded(s[2], 2150, 2900),
      recorded(s[3], 2900, 4100, 'ok', 'shop-9204 healthy after 1.2s'),
      recorded(s[4], 4100, 4400, 'ok', 'nginx serves config 2c4e6a8b'),
      recorded(s[5], 4400, 4420, 'ok', 'continues while the batch before drains'),
      recorded(s[6], 4420, 16900, 'ok', drained(400, 'shop-9204', 12400)),
      recorded(s[7], 16900, 18200, 'cancelled'),
      recorded({ kind: 'restore-config', text: 'before', servers: old }, 18200, 18500, 'ok', undefined, 'rollback'),
      recorded({ kind: 'remove', replicas: [n1, n2] }, 18500, 19100, 'ok', undefined, 'rollback'),
      ...s.slice(8).map((step) => notRun(step)),
    ],
  }
}
