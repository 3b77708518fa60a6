// The job summary: the record of a run as markdown, every secret masked.
import { redact, renderSummary, type Result, type RunRecord } from '../../src/summary.js'

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
        '**Result:** `deployed` · **host** docker.example.com · **nginx** docker.example.com · **strategy** rolling · **image** `shop:v2` · **previous** `shop:v1` · ' +
        '**all traffic on the new version after** 4.3 s · **run ended after** 9.0 s\n',
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
      '**Result:** `deployed` · **hosts** 10.0.0.11, 10.0.0.12:2222 · **nginx** 10.0.0.10 · **operation** promote · **strategy** blue-green · **image** `-` · **previous** `-` · ' +
        '**colour** green · **canary** 10% · **run ended after** 9.0 s',
    )
  })

  it.each<[Result, string]>([
    ['deployed', 'deployed'],
    ['rolled-back', 'rolled back'],
    ['failed', 'FAILED'],
    ['planned', 'planned (dry run: nothing changed)'],
    ['paused', 'paused with the canary live'],
    ['unchanged', 'unchanged (nothing to do)'],
  ])('heads a %s run with %j', (result, headline) => {
    expect(renderSummary(record({ result })).split('\n')[0]).toBe(`## nginx-rollout: shop ${headline}`)
    expect(body({ result })[0]).toMatch(new RegExp(`^\\*\\*Result:\\*\\* \`${result}\` · `))
  })

  it('lists the plan, then every step with the hosts it touched, its time and outcome', () => {
    const lines = body({
      plan: ['start shop-9203 on 10.0.0.11', 'route to shop-9203'],
      steps: [
        {
          phase: 'deploy',
          description: 'start shop-9203 on 10.0.0.11',
          hosts: ['10.0.0.11'],
          ms: 1234,
          endedAtMs: 1300,
          outcome: 'ok',
          detail: 'a|b\nc',
        },
        {
          phase: 'deploy',
          description: 'route to shop-9203',
          hosts: ['10.0.0.10'],
          ms: 80,
          endedAtMs: 1400,
          outcome: 'ok',
          allTrafficNew: true,
        },
        {
          phase: 'rollback',
          description: 'stop shop-9203 | remove',
          hosts: ['10.0.0.11', '10.0.0.12'],
          ms: 5,
          endedAtMs: 1500,
          outcome: 'failed',
          detail: 'not shown',
        },
      ],
    })
    expect(lines.slice(1)).toEqual([
      '',
      '### Plan',
      '',
      '1. start shop-9203 on 10.0.0.11',
      '2. route to shop-9203',
      '',
      '### Steps',
      '',
      '| # | Phase | Step | Host | Duration | Outcome |',
      '|---|---|---|---|---|---|',
      '| 1 | deploy | start shop-9203 on 10.0.0.11 | 10.0.0.11 | 1.23 s | ok: a\\|b c |',
      '| 2 | deploy | route to shop-9203 | 10.0.0.10 | 0.08 s | ok |',
      '| 3 | rollback | stop shop-9203 \\| remove | 10.0.0.11, 10.0.0.12 | 0.01 s | **failed** |',
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
      '| shop-9203 | 10.0.0.11 | healthy | 4 | 0.81 s | GET /healthz -> 200 | none |',
      '| shop-9204 | 10.0.0.12:2222 | **unhealthy** | 300 | 60.00 s | GET /healthz -> connect ECONNREFUSED \\| x | unhealthy |',
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
      '| 10% | 60 s | 80 | 0 | 0.00% | 800 | 4 | 0.50% | pass |',
      '| 50% | 30 s | 100 | 5 | 5.00% | 100 | 0 | 0.00% | **fail**: canary error rate 5.00% (5 of 100) is above canary-max-error-rate 1% |',
      '',
    ])
  })

  it('shows the failure, a failed rollback, the config diff under the managed path, evidence and counts', () => {
    const lines = body({
      result: 'failed',
      failure: 'shop-9203 did not become healthy\n```',
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
      '```',
      'shop-9203 did not become healthy',
      '` ` `',
      '```',
      '',
      '**The rollback failed too:**',
      '',
      '```',
      'nginx -t rejected the configuration',
      '```',
      '',
      '### GitHub',
      '',
      '- deployment 77 marked failure',
      '',
      '<details><summary>/etc/nginx/conf.d/shop.conf diff</summary>',
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
        failure: 'DB_PASSWORD=s3cr3t-pw rejected',
        evidence: [{ subject: 'shop-9203', reason: 'token ghs_abc123 in output', logs: 'connecting with s3cr3t-pw' }],
        plan: ['login as s3cr3t-pw'],
      }),
      ['s3cr3t-pw', 'ghs_abc123'],
    )
    expect(text).not.toContain('s3cr3t')
    expect(text).not.toContain('ghs_abc')
    expect(text).toContain('DB_PASSWORD=*** rejected')
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
    expect(lines).toContain('| shop-9203 | 2001:db8::12 | [fd00::12]:9203 | `shop:v2` | - | 10 |')
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
