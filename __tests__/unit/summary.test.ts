// The job summary: the record of a run as markdown, every secret masked.
import type { StepOutcome } from '../../src/journal.js'
import { redact, renderSummary, type Result, type RunRecord } from '../../src/summary.js'
import { readSummary } from '../../scripts/lib/summary-read.mjs'
import { base, cancelledRolling, notRun, pausedCanary, rolledBackRolling, rollingDeploy } from './recorded-runs.js'

const record = (r: Partial<RunRecord> = {}): RunRecord => ({
  app: 'shop',
  hosts: ['docker.example.com'],
  nginxHost: 'docker.example.com',
  strategy: 'rolling',
  result: 'deployed',
  image: 'shop:v2',
  previousImage: 'shop:v1',
  durationSeconds: 9,
  dryRun: false,
  plan: [],
  steps: [],
  gates: [],
  configPath: '/etc/nginx/conf.d/shop.conf',
  configDiff: '',
  evidence: [],
  ...r,
})

/** The summary's lines after the headline and the blank line under it. */
const body = (r: Partial<RunRecord>) => renderSummary(record(r)).split('\n').slice(2)

describe('renderSummary', () => {
  it('states the result, the host, nginx, images and both timings in one line', () => {
    expect(renderSummary(record({ trafficSwitchedSeconds: 4.25 }))).toBe(
      '## nginx-rollout: shop deployed\n\n' +
        '**Result:** `deployed` · **host** docker.example.com · **nginx** docker.example.com · **strategy** rolling · **serving** `shop:v2` · **previous** `shop:v1` · ' +
        '**all traffic on the new version after** 4.3\u00a0s · **run ended after** 9.0\u00a0s\n\n' +
        'nginx serves the same file as before the run (/etc/nginx/conf.d/shop.conf).\n',
    )
  })

  it('names several app hosts, the nginx host apart, the operation, colour and canary share', () => {
    expect(
      body({
        hosts: ['10.0.0.11', '10.0.0.12:2222'],
        nginxHost: '10.0.0.10',
        operation: 'promote',
        strategy: 'blue-green',
        color: 'green',
        canaryWeight: '10',
        image: '',
        previousImage: '',
      })[0],
    ).toBe(
      '**Result:** `deployed` · **hosts** 10.0.0.11, 10.0.0.12:2222 · **nginx** 10.0.0.10 · **operation** promote · **strategy** blue-green · **serving** nothing · **previous** `-` · ' +
        '**colour** green · **canary** 10% · **run ended after** 9.0\u00a0s',
    )
  })

  it.each<[Result, string]>([
    ['deployed', 'deployed'],
    ['rolled-back', 'rolled back'],
    ['failed', 'FAILED'],
    ['planned', 'planned (dry run: nothing changed)'],
    ['paused', 'paused with the canary live'],
    ['unchanged', 'unchanged (nothing to do)'],
    ['cancelled', 'cancelled (nginx left in one consistent state)'],
  ])('heads a %s run with %j', (result, headline) => {
    expect(renderSummary(record({ result })).split('\n')[0]).toBe(`## nginx-rollout: shop ${headline}`)
    expect(body({ result })[0]).toMatch(new RegExp(`^\\*\\*Result:\\*\\* \`${result}\` · `))
  })

  it('lists every step with its time and outcome, the rollback after the plan, and no separate plan', () => {
    const step = (description: string, phase: 'deploy' | 'rollback', outcome: StepOutcome, detail?: string) => ({
      phase,
      description,
      hosts: ['10.0.0.11'],
      ms: outcome === 'not run' ? 0 : 1234,
      endedAtMs: 0,
      outcome,
      detail,
    })
    const lines = body({
      plan: ['start shop-9203', 'route to shop-9203', 'retire shop-9201'],
      steps: [
        step('start shop-9203', 'deploy', 'ok', 'a|b\nc'),
        step('route to shop-9203', 'deploy', 'failed', 'not shown: the failure is'),
        step('remove shop-9203 | for good', 'rollback', 'ok'),
        step('retire shop-9201', 'deploy', 'not run'),
      ],
    })
    expect(lines.slice(1, 10)).toEqual([
      '',
      '### Steps',
      '',
      '| # | Step | Time | Outcome |',
      '|---|---|---|---|',
      '| 1 | start shop-9203 | 1.23\u00a0s | ok: a\\|b<br>c |',
      '| 2 | route to shop-9203 | 1.23\u00a0s | **failed** |',
      '| 3 | retire shop-9201 |  | not run |',
      '| 4 | rollback: remove shop-9203 \\| for good | 1.23\u00a0s | ok |',
    ])
    expect(lines).not.toContain('### Plan')
  })

  it('names the hosts each step touched when there are several app hosts', () => {
    const lines = body({
      hosts: ['10.0.0.11', '10.0.0.12'],
      steps: [
        {
          phase: 'deploy',
          description: 'stop shop-9203',
          hosts: ['10.0.0.11', '10.0.0.12'],
          ms: 5,
          endedAtMs: 5,
          outcome: 'cancelled',
        },
      ],
    })
    expect(lines.slice(4, 7)).toEqual([
      '| # | Step | Host | Time | Outcome |',
      '|---|---|---|---|---|',
      '| 1 | stop shop-9203 | 10.0.0.11, 10.0.0.12 | 0.01\u00a0s | cancelled |',
    ])
  })

  it('lists the plan as it is when no step is recorded', () => {
    expect(body({ plan: ['start shop-9203', 'route to shop-9203'] }).slice(1, 7)).toEqual([
      '',
      '### Plan',
      '',
      '1. start shop-9203',
      '2. route to shop-9203',
      '',
    ])
  })

  it('lists the health gates with the host of each replica', () => {
    const lines = body({
      gates: [
        {
          replica: 'shop-9203',
          host: '10.0.0.11',
          ok: true,
          probes: 4,
          ms: 812,
          last: 'GET /healthz -> 200',
          dockerHealth: 'none',
        },
        {
          replica: 'shop-9204',
          host: '10.0.0.12:2222',
          ok: false,
          probes: 300,
          ms: 60000,
          last: 'GET /healthz -> connect ECONNREFUSED | x',
          dockerHealth: 'unhealthy',
        },
      ],
    })
    expect(lines.slice(1)).toEqual([
      '',
      '### Health gates',
      '',
      '| Replica | Host | Result | Probes | Time | Last probe | Docker health |',
      '|---|---|---|---|---|---|---|',
      '| shop-9203 | 10.0.0.11 | healthy | 4 | 0.81\u00a0s | GET /healthz -&gt; 200 | none |',
      '| shop-9204 | 10.0.0.12:2222 | **unhealthy** | 300 | 60.00\u00a0s | GET /healthz -&gt; connect ECONNREFUSED \\| x | unhealthy |',
      '',
      'nginx serves the same file as before the run (/etc/nginx/conf.d/shop.conf).',
      '',
    ])
  })

  it('lists the judged canary steps, with the reason of any but a pass', () => {
    const stats = (requests: number, errors: number) => ({ requests, errors, rate: (100 * errors) / requests })
    const lines = body({
      canarySteps: [
        {
          verdict: 'pass',
          percent: 10,
          seconds: 60,
          reason: 'canary 0.00% of 80',
          canary: stats(80, 0),
          stable: stats(800, 4),
        },
        {
          verdict: 'fail',
          percent: 50,
          seconds: 30,
          reason: 'canary error rate 5.00% (5 of 100) is above canary-max-error-rate 1%',
          canary: stats(100, 5),
          stable: stats(100, 0),
        },
      ],
    })
    expect(lines.slice(1)).toEqual([
      '',
      '### Canary steps',
      '',
      '| Share | Window | Canary requests | Canary errors | Canary error rate | Stable requests | Stable errors | Stable error rate | Verdict |',
      '|---|---|---|---|---|---|---|---|---|',
      '| 10% | 60\u00a0s | 80 | 0 | 0.00% | 800 | 4 | 0.50% | pass |',
      '| 50% | 30\u00a0s | 100 | 5 | 5.00% | 100 | 0 | 0.00% | **fail**: canary error rate 5.00% (5 of 100) is above canary-max-error-rate 1% |',
      '',
      'nginx serves the same file as before the run (/etc/nginx/conf.d/shop.conf).',
      '',
    ])
  })

  it('shows the failure, a failed rollback, what the run changed in the managed file, evidence and counts', () => {
    const lines = body({
      result: 'failed',
      failure: 'shop-9203 did not become healthy\n```\n- see *the* log <here> | $x',
      rollbackFailure: 'nginx -t rejected the configuration',
      configDiff: '--- live\n+++ new\n-a\n+b',
      evidence: [{ subject: 'shop-9203 on 10.0.0.11', reason: 'exit 1 | OOM', logs: 'panic: out of memory' }],
      github: ['deployment 77 marked failure'],
      stats: { connections: 1, commands: 12, probes: 40 },
    })
    expect(lines.slice(1)).toEqual([
      '',
      '**What failed:**',
      '',
      // Wrapped text, each line kept, nothing in it read as markdown or HTML.
      'shop-9203 did not become healthy<br>\\`\\`\\`<br>- see \\*the\\* log &lt;here&gt; \\| \\$x',
      '',
      '**The rollback failed too:**',
      '',
      'nginx -t rejected the configuration',
      '',
      '### GitHub',
      '',
      '- deployment 77 marked failure',
      '',
      '<details><summary>What this run changed in /etc/nginx/conf.d/shop.conf</summary>',
      '',
      '```diff',
      '--- live',
      '+++ new',
      '-a',
      '+b',
      '```',
      '',
      '</details>',
      '',
      '<details open><summary>shop-9203 on 10.0.0.11: last log lines</summary>',
      '',
      'exit 1 \\| OOM',
      '',
      '```',
      'panic: out of memory',
      '```',
      '',
      '</details>',
      '',
      '<sub>1 SSH connection, 12 remote commands, 40 probes</sub>',
      '',
    ])
    expect(body({ stats: { connections: 3, commands: 1, probes: 0 } })).toContain(
      '<sub>3 SSH connections, 1 remote commands, 0 probes</sub>',
    )
  })

  it('reports status: replicas by host with their weights, the paused canary and recent deploys', () => {
    const r = renderSummary(
      record({
        operation: 'status',
        result: 'paused',
        live: {
          replicas: [
            { host: '10.0.0.11', address: '10.1.0.11', name: 'shop-9201', port: 9201, image: 'shop:v1', weight: 9 },
            {
              host: '10.0.0.12:2222',
              address: '10.1.0.12',
              name: 'shop-9203',
              port: 9203,
              image: 'shop:v2',
              color: 'blue',
              weight: 1,
            },
          ],
          canary: {
            image: 'shop:v2',
            stableImage: 'shop:v1',
            weight: 10,
            remainingSteps: [50, 100],
            replicas: [{ host: '10.0.0.12:2222', name: 'shop-9203' }],
            at: '2026-05-01T10:00:00Z',
          },
          history: [
            {
              image: 'shop:v2',
              previousImage: 'shop:v1',
              result: 'paused',
              at: '2026-05-01T10:00:00Z',
              strategy: 'canary',
            },
          ],
        },
      }),
    ).split('\n')
    expect(r[0]).toBe('## nginx-rollout: shop status')
    expect(r.slice(3)).toEqual([
      '',
      '### Live',
      '',
      '| Replica | Host | Address | Image | Colour | nginx weight |',
      '|---|---|---|---|---|---|',
      '| shop-9201 | 10.0.0.11 | 10.1.0.11:9201 | `shop:v1` | - | 9 |',
      '| shop-9203 | 10.0.0.12:2222 | 10.1.0.12:9203 | `shop:v2` | blue | 1 |',
      '',
      'Canary `shop:v2` paused at **10%** next to `shop:v1` since 2026-05-01T10:00:00Z: run `operation: promote` to finish it or `operation: abort` to remove it.',
      '',
      '### Recent deploys',
      '',
      '| When | Operation | Image | Result |',
      '|---|---|---|---|',
      '| 2026-05-01T10:00:00Z | deploy canary | `shop:v2` | paused |',
      '',
    ])
    expect(body({ operation: 'status', live: { replicas: [], history: [] } }).slice(1)).toEqual([
      '',
      '### Live',
      '',
      '| Replica | Host | Address | Image | Colour | nginx weight |',
      '|---|---|---|---|---|---|',
      '| (none) | | | | | |',
      '',
    ])
  })

  it('shows notes as quotes', () => {
    expect(body({ notes: ['canary.json on the nginx host is malformed: ignored as stale'] }).slice(1, 3)).toEqual([
      '',
      '> canary.json on the nginx host is malformed: ignored as stale',
    ])
  })

  it('masks every secret, wherever it appears', () => {
    const text = renderSummary(
      record({
        failure: 'DB_PASSWORD=s3cr3t_pw* rejected',
        evidence: [{ subject: 'shop-9203', reason: 'token ghs_abc123 in output', logs: 'connecting with s3cr3t_pw*' }],
        plan: ['login as s3cr3t_pw*'],
      }),
      ['s3cr3t_pw*', 'ghs_abc123'],
    )
    expect(text).not.toContain('s3cr3t')
    expect(text).not.toContain('ghs_abc')
    // Masked before it was escaped as text: the masking of the whole summary would not find 's3cr3t\\_pw\\*'.
    expect(text).toContain('DB\\_PASSWORD=\\*\\*\\* rejected')
    expect(text).toContain('token *** in output')
  })

  // BUG (minor): the live table writes address:port as is (src/summary.ts:83): an IPv6 upstream address shows as
  // 'fd00::12:9203', which reads as a longer address. Fix: use hostPort(x.address, x.port) from model.ts.
  it('writes an IPv6 replica address in brackets in the live table', () => {
    const lines = body({
      operation: 'status',
      live: {
        replicas: [
          { host: '2001:db8::12', address: 'fd00::12', name: 'shop-9203', port: 9203, image: 'shop:v2', weight: 10 },
        ],
        history: [],
      },
    })
    expect(lines).toContain('| shop-9203 | 2001:db8::12 | \\[fd00::12\\]:9203 | `shop:v2` | - | 10 |')
  })
})

describe('renderSummary of recorded runs', () => {
  /** The lines of one `### title` part of the summary, up to the next part. */
  const part = (text: string, title: string) => {
    const lines = text.split('\n')
    const from = lines.indexOf(title)
    expect(from).toBeGreaterThanOrEqual(0)
    const next = lines.findIndex((l, i) => i > from && /^(### |<details|nginx serves the same)/.test(l))
    return lines.slice(from, next < 0 ? undefined : next)
  }

  it('tells a canary paused at 10% for lack of evidence: inconclusive, the rest not run, the 10% file live', () => {
    const text = renderSummary(pausedCanary())
    expect(text.split('\n').slice(0, 6)).toEqual([
      '## nginx-rollout: shop paused with the canary live',
      '',
      '**Result:** `paused` · **host** docker.example.com · **nginx** docker.example.com (container nginx) · **strategy** canary · ' +
        '**serving** `shop:v1` · **asked** `shop:v2` · **previous** `shop:v1` · **canary** 10% · **run ended after** 64.5\u00a0s',
      '',
      '**Stopped early:** canary step at 10% is inconclusive: only 3 requests reached the canary (at least 50 are needed to judge). ' +
        '3 steps of the plan did not run.',
      '',
    ])
    expect(part(text, '### Steps')).toEqual([
      '### Steps',
      '',
      '| # | Step | Time | Outcome |',
      '|---|---|---|---|',
      '| 1 | pull shop:v2 | 1.50\u00a0s | ok |',
      '| 2 | start shop-9203 (:9203) from shop:v2 | 0.70\u00a0s | ok |',
      '| 3 | health gate shop-9203 | 0.80\u00a0s | ok: shop-9203 healthy after 0.8s |',
      '| 4 | route 10% to canary shop-9203 (weights 2:9, one nginx reload; requests recorded) | 0.30\u00a0s | ok: nginx serves config 9a8b7c6d |',
      '| 5 | observe the canary at 10% for 60s | 60.00\u00a0s | inconclusive |',
      '| 6 | route 50% to canary shop-9203 (weights 2:1, one nginx reload; requests recorded) |  | not run |',
      '| 7 | observe the canary at 50% for 60s |  | not run |',
      '| 8 | route 50% to canary shop-9203 (weights 2:1, one nginx reload: the record of requests off, no backup) |  | not run |',
      '',
    ])
    expect(text).not.toContain('**failed**')
    expect(text).not.toContain('### Plan')
    // What nginx serves at the end: the 10% file, not the 50% the plan went on to.
    expect(part(text, '<details><summary>What this run changed in /etc/nginx/conf.d/shop.conf</summary>')).toEqual([
      '<details><summary>What this run changed in /etc/nginx/conf.d/shop.conf</summary>',
      '',
      '```diff',
      '--- /etc/nginx/conf.d/shop.conf (before the run)',
      '+++ /etc/nginx/conf.d/shop.conf (live at the end)',
      ' upstream shop {',
      '-    server 127.0.0.1:9201 max_fails=0;',
      '-    server 127.0.0.1:9202 max_fails=0;',
      '+    server 127.0.0.1:9201 max_fails=0 weight=9;',
      '+    server 127.0.0.1:9202 max_fails=0 weight=9;',
      '+    server 127.0.0.1:9203 max_fails=0 weight=2;',
      ' }',
      '```',
      '',
      '</details>',
      '',
    ])
    const timeline = part(text, '### Timeline')
    expect(timeline.slice(0, 3)).toEqual(['### Timeline', '', '```mermaid'])
    // Under the chart, one line says what its colours mean.
    expect(timeline.slice(timeline.lastIndexOf('```'))).toEqual([
      '```',
      '',
      '<sub>Light blue: serving · grey: backup, draining, stopped, retired · red: failed, rollback · ' +
        'violet: starting, health gate, pull · ◆: a verdict (red: fail)</sub>',
      '',
    ])
    expect(text).toContain('\nsection canary\ncanary 10% :active, 3300, 64500\n')
  })

  it('tells a rolled-back deploy: the old version serves, the failed verdict, the switch back, the same file', () => {
    const text = renderSummary({ ...rolledBackRolling(), trafficSwitchedSeconds: 4.4 })
    expect(text.split('\n').slice(0, 9)).toEqual([
      '## nginx-rollout: shop rolled back',
      '',
      // No 'all traffic on the new version': at the end it is on the old one.
      '**Result:** `rolled-back` · **host** docker.example.com · **nginx** docker.example.com (container nginx) · **strategy** rolling · ' +
        '**serving** `shop:v1` · **asked** `shop:v2` · **previous** `shop:v1` · **run ended after** 14.8\u00a0s',
      '',
      '**Stopped early:** 10 steps of the plan did not run; what failed is below.',
      '',
      '**What failed:**',
      '',
      'real traffic: the new version answered 5xx to 31.25% of 64 requests (500: 20), the old one to 0.07% of 1490 (500: 1)',
    ])
    expect(part(text, '### Steps').slice(9, 22)).toEqual([
      '| 6 | start shop-9205 (:9205) from shop:v2 (in the background, while the batch before drains) | 0.02\u00a0s | ok: continues while the batch before drains |',
      '| 7 | drain shop-9201 (until idle, at most 5s), checking shop-9204 still healthy, judging shop-9204 on real traffic | 5.18\u00a0s | **failed** |',
      '| 8 | health gate shop-9205 |  | not run |',
      '| 9 | route traffic to shop-9204, shop-9205, shop-9203 (one nginx reload; requests recorded, shop-9201, shop-9202 as backup) |  | not run |',
      '| 10 | start shop-9206 (:9206) from shop:v2 (in the background, while the batch before drains) |  | not run |',
      '| 11 | drain shop-9202 (until idle, at most 5s), checking shop-9205 still healthy, judging shop-9205 on real traffic |  | not run |',
      '| 12 | health gate shop-9206 |  | not run |',
      '| 13 | route traffic to shop-9204, shop-9205, shop-9206 (one nginx reload; requests recorded, shop-9201, shop-9202, shop-9203 as backup) |  | not run |',
      '| 14 | drain shop-9203 (until idle, at most 5s), checking shop-9206 still healthy, judging shop-9206 on real traffic |  | not run |',
      '| 15 | bake shop-9204, shop-9205, shop-9206 for 60s, the replaced replicas ready to take the traffic back |  | not run |',
      '| 16 | route traffic to shop-9204, shop-9205, shop-9206 (one nginx reload: the record of requests off, no backup) |  | not run |',
      '| 17 | retire shop-9201, shop-9202, shop-9203 (stop and remove on the host, in the background) |  | not run |',
      '| 18 | rollback: restore the previous nginx config (shop-9201, shop-9202, shop-9203) | 0.30\u00a0s | ok: nginx serves config 1a2b3c4d |',
    ])
    expect(part(text, '### Real traffic')).toEqual([
      '### Real traffic',
      '',
      '| New replicas | Verdict | New version | Old version | Time to verdict | Why |',
      '|---|---|---|---|---|---|',
      '| shop-9204 | **fail** | 64 (5xx 20, 4xx 0; 500: 20) | 1490 (5xx 1, 4xx 8; 404: 8, 500: 1) | 5.10\u00a0s | ' +
        'the new version answered 5xx to 31.25% of 64 requests (500: 20), the old one to 0.07% of 1490 (500: 1) |',
      '',
    ])
    // The switch back: shop-9201 serves again once the previous file is back; shop-9204 drains and goes.
    expect(text).toContain(
      '\nsection shop-9201\nserving 33% :active, 0, 4400\nbackup :done, 4400, 9900\ndraining :done, 4420, 9600\nserving 33% :active, 9900, 14800\n',
    )
    expect(text).toContain(
      '\nserving 33% :active, 4400, 9900\ndraining :done, 9900, 10400\nremoved :done, 10400, 10900\n',
    )
    expect(text).toContain('\nnginx serves the same file as before the run (/etc/nginx/conf.d/shop.conf).\n')
  })

  it('tells a run refused before any step what it was asked for, and that nothing changed', () => {
    const refused = 'a canary of shop:v2 is paused at 10%: promote or abort it before deploying shop:v3'
    expect(
      renderSummary({ ...base, result: 'failed', image: 'shop:v1', requestedImage: 'shop:v3', failure: refused }),
    ).toBe(
      [
        '## nginx-rollout: shop FAILED',
        '',
        '**Result:** `failed` · **host** docker.example.com · **nginx** docker.example.com (container nginx) · **strategy** rolling · ' +
          '**serving** `shop:v1` · **asked** `shop:v3` · **previous** `shop:v1` · **run ended after** 0.0\u00a0s',
        '',
        '**What failed:**',
        '',
        refused,
        '',
        'nginx serves the same file as before the run (/etc/nginx/conf.d/shop.conf).',
        '',
      ].join('\n'),
    )
    // A first deploy refused: nothing serves.
    expect(renderSummary({ ...base, result: 'failed', image: '', previousImage: '' })).toContain(
      '**serving** nothing · **asked** `shop:v2` · **previous** `-`',
    )
  })

  it('tells a cancelled run: its result, the step cancelled, the steps after it not run', () => {
    const text = renderSummary(cancelledRolling())
    expect(text.split('\n').slice(0, 5)).toEqual([
      '## nginx-rollout: shop cancelled (nginx left in one consistent state)',
      '',
      '**Result:** `cancelled` · **host** docker.example.com · **nginx** docker.example.com (container nginx) · **strategy** rolling · ' +
        '**serving** `shop:v1` · **asked** `shop:v2` · **previous** `shop:v1` · **run ended after** 20.1\u00a0s',
      '',
      '**Stopped early:** the workflow run was cancelled. 9 steps of the plan did not run.',
    ])
    const steps = part(text, '### Steps')
    expect(steps.slice(11, 13)).toEqual([
      '| 8 | health gate shop-9205 | 1.30\u00a0s | cancelled |',
      '| 9 | route traffic to shop-9204, shop-9205, shop-9203 (one nginx reload; requests recorded, shop-9201, shop-9202 as backup) |  | not run |',
    ])
    expect(steps.slice(-3)).toEqual([
      '| 18 | rollback: restore the previous nginx config (shop-9201, shop-9202, shop-9203) | 0.30\u00a0s | ok |',
      '| 19 | rollback: remove shop-9204, shop-9205 | 0.60\u00a0s | ok |',
      '',
    ])
    expect(text).toContain('\nrun cancelled :crit, milestone, 18200, 18200\n')
  })

  it('shows a dry run as the plan, once: no timeline, no times, no outcomes', () => {
    const plan = rollingDeploy().steps.map((s) => notRun(s.step!))
    const text = renderSummary({ ...base, result: 'planned', dryRun: true, image: 'shop:v1', steps: plan.slice(0, 3) })
    expect(text).toBe(
      [
        '## nginx-rollout: shop planned (dry run: nothing changed)',
        '',
        '**Result:** `planned` · **host** docker.example.com · **nginx** docker.example.com (container nginx) · **strategy** rolling · ' +
          '**serving** `shop:v1` · **asked** `shop:v2` · **previous** `shop:v1` · **run ended after** 0.0\u00a0s',
        '',
        '### Plan (dry run: nothing ran)',
        '',
        '| # | Step |',
        '|---|---|',
        '| 1 | pull shop:v2 |',
        "| 2 | start nginx's record of the app's requests (one nginx reload, in the background) |",
        '| 3 | start shop-9204 (:9204) from shop:v2 |',
        '',
      ].join('\n'),
    )
  })

  // Before the timeline, this run's summary took 6,982 bytes: the plan listed once more above the steps, a
  // phase and a host column on every step, a pass's reason restating its counts.
  it("keeps a 3-replica rolling deploy's summary shorter than before, its timeline included", () => {
    const text = renderSummary(rollingDeploy())
    expect(text).toContain('### Timeline')
    // The chart's layout line and the legend under it add about 250 bytes.
    expect(Buffer.byteLength(text)).toBeLessThan(6300)
  })
})

describe('redact', () => {
  it('replaces every occurrence of each secret, and leaves texts shorter than 3 characters', () => {
    expect(redact('a=hunter2, b=hunter2, c=ok', ['hunter2', 'ok', ''])).toBe('a=***, b=***, c=ok')
    expect(redact('line one\nKEY LINE 2\n', ['KEY LINE 2'])).toBe('line one\n***\n')
  })

  // BUG: secrets are replaced in the order given (src/summary.ts:52), so when one is part of a longer one the
  // longer one's remainder stays visible: with password 'hunter2' and an env value 'hunter2xyz', the summary
  // shows '***xyz'. Fix: replace longer secrets first (sort by length, descending).
  it('masks a longer secret whole even when a shorter secret is part of it', () => {
    expect(redact('value hunter2xyz', ['hunter2', 'hunter2xyz'])).toBe('value ***')
  })
})

describe("the benchmark's reading of a summary (scripts/lib/summary-read.mjs)", () => {
  it('reads back the figures the summary writes: the reloads and their steps, the switch, the end, the own work, the cost', () => {
    const run = rollingDeploy()
    const read = readSummary(renderSummary(run))
    expect(read.stepSeconds).toBeCloseTo(90.7, 6)
    // The four routes, and the record turned on: one reload each.
    expect({ ...read, stepSeconds: 0 }).toEqual({
      phases: { start: 0.18, connect: 0.24, 'lock and read': 0.31, 'records and unlock': 0.15 },
      stepSeconds: 0,
      routeSeconds: [0.3, 0.3, 0.3, 0.3],
      reloads: 5,
      switchedSeconds: 30.3,
      endedSeconds: 91.2,
      sshConnections: 1,
      remoteCommands: 41,
    })
  })
})
