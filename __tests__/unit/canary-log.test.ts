// The canary's judgement from nginx's own access log (TRAFFIC_LOG_FORMAT), keyed by 'address:port'.
import { judgeCanary, parseAccessLog, worseBy, type Attempt } from '../../src/judge/traffic.js'
import { recordLine } from './fixtures.js'

/** A log line as nginx writes it (no newline), on route GET /. */
const line = (upstreamAddr: string, upstreamStatus: string) => recordLine(upstreamAddr, upstreamStatus).trimEnd()
const R = { ms: 4, route: 'GET /' }

describe('parseAccessLog', () => {
  it('reads one attempt per line in the format the template gives nginx', () => {
    expect(line('127.0.0.1:9201', '200')).toBe(
      '{"upstream":"127.0.0.1:9201","status":"200","time":"0.004","method":"GET","uri":"/"}',
    )
    expect(parseAccessLog([line('10.1.0.11:9201', '200'), line('10.1.0.12:9201', '503'), ''].join('\n'))).toEqual({
      attempts: [
        { server: '10.1.0.11:9201', status: 200, ...R },
        { server: '10.1.0.12:9201', status: 503, ...R },
      ],
      skipped: 0,
    })
  })

  it('counts every attempt of a retried request, and of an internal redirect', () => {
    expect(parseAccessLog(line('10.1.0.11:9201, 10.1.0.12:9202', '502, 200')).attempts).toEqual([
      { server: '10.1.0.11:9201', status: 502, ...R },
      { server: '10.1.0.12:9202', status: 200, ...R },
    ])
    expect(parseAccessLog(line('10.1.0.11:9201 : 10.1.0.11:9203, 10.1.0.12:9201', '404 : 504, 200')).attempts).toEqual([
      { server: '10.1.0.11:9201', status: 404, ...R },
      { server: '10.1.0.11:9203', status: 504, ...R },
      { server: '10.1.0.12:9201', status: 200, ...R },
    ])
  })

  it('reads IPv6 servers in brackets, and an attempt without a status (a client that gave up: 499)', () => {
    expect(parseAccessLog(line('[::1]:9201, [fd00::12]:9202', '-, 200')).attempts).toEqual([
      { server: '[::1]:9201', status: undefined, ...R },
      { server: '[fd00::12]:9202', status: 200, ...R },
    ])
  })

  it("counts no attempt for the upstream's own name (no server could be chosen), a unix socket, or an address without a port", () => {
    expect(
      parseAccessLog(
        [line('shop_replicas', '502'), line('unix:/run/shop.sock', '200'), line('127.0.0.1', '500')].join('\n'),
      ),
    ).toEqual({ attempts: [], skipped: 0 })
  })

  it.each([
    [
      'the old format, a request line forged by a client',
      '127.0.0.1 - - [01/May/2026:10:00:00 +0000] "GET /x upstream=127.0.0.1:9204 upstream_status=500 HTTP/1.1" 200 12',
    ],
    ['the format of earlier versions', 'nginx-rollout upstream=127.0.0.1:9204 status=500'],
    ['a line with more after it', `${line('127.0.0.1:9204', '500')} GET /x`],
    ['a line with more before it', `x ${line('127.0.0.1:9204', '500')}`],
    ['a field more', line('127.0.0.1:9204', '500').replace('{', '{"x":"1",')],
    ['a field less', line('127.0.0.1:9204', '500').replace('"method":"GET",', '')],
    ['a field that is not a string', line('127.0.0.1:9204', '500').replace('"status":"500"', '"status":500')],
    ['a status that is not three digits', line('127.0.0.1:9204', '5000')],
    ['more statuses than servers', line('127.0.0.1:9204', '500, 500')],
    ['a separator nginx does not write', line('127.0.0.1:9204;127.0.0.1:9205', '500;500')],
    ['a line cut short', line('127.0.0.1:9204', '500').slice(0, 30)],
    ['a CRLF line', `${line('127.0.0.1:9204', '500')}\r`],
  ])('skips %s', (_what, text) => {
    expect(parseAccessLog(`${text}\n${line('127.0.0.1:9201', '200')}\n`)).toEqual({
      attempts: [{ server: '127.0.0.1:9201', status: 200, ...R }],
      skipped: 1,
    })
  })
})

describe('judgeCanary', () => {
  const attempts = (server: string, requests: number, errors: number, errorStatus = 502): Attempt[] =>
    Array.from({ length: requests }, (_, i) => ({ server, status: i < errors ? errorStatus : 200 }))
  const canary = new Set(['10.1.0.12:9203'])
  const stable = new Set(['10.1.0.11:9201', '10.1.0.12:9201'])

  it('passes a canary as good as the stable replicas', () => {
    const all = [
      ...attempts('10.1.0.12:9203', 60, 0),
      ...attempts('10.1.0.11:9201', 100, 1),
      ...attempts('10.1.0.12:9201', 100, 1),
    ]
    expect(judgeCanary(all, canary, stable, 1)).toEqual({
      verdict: 'pass',
      canary: { requests: 60, errors: 0, rate: 0 },
      stable: { requests: 200, errors: 2, rate: 1 },
      reason: 'canary 0.00% of 60, stable 1.00% of 200',
    })
  })

  it('tells replicas on the same port of different hosts apart', () => {
    // The canary runs on 10.1.0.12:9203; 10.1.0.11:9203 is another host's replica (stable of another app, or gone).
    const all = [
      ...attempts('10.1.0.12:9203', 60, 0),
      ...attempts('10.1.0.11:9203', 60, 60),
      ...attempts('10.1.0.11:9201', 60, 0),
    ]
    const j = judgeCanary(all, canary, stable, 1)
    expect([j.verdict, j.canary, j.stable]).toEqual([
      'pass',
      { requests: 60, errors: 0, rate: 0 },
      { requests: 60, errors: 0, rate: 0 },
    ])
  })

  it('fails a canary above the error budget, however few its requests', () => {
    expect(judgeCanary(attempts('10.1.0.12:9203', 100, 5), canary, stable, 1)).toMatchObject({
      verdict: 'fail',
      reason: 'canary error rate 5.00% (5 of 100) is above canary-max-error-rate 1%',
    })
    expect(judgeCanary(attempts('10.1.0.12:9203', 3, 3, 504), canary, stable, 1)).toMatchObject({
      verdict: 'fail',
      reason: 'canary error rate 100.00% (3 of 3) is above canary-max-error-rate 1%',
    })
  })

  it('fails a canary clearly worse than stable even within the budget', () => {
    const all = [...attempts('10.1.0.12:9203', 100, 8), ...attempts('10.1.0.11:9201', 1000, 10)]
    expect(judgeCanary(all, canary, stable, 10)).toMatchObject({
      verdict: 'fail',
      reason: 'canary error rate 8.00% is clearly worse than stable 1.00% (5.3 standard errors)',
    })
  })

  it('counts 5xx and nothing else as errors: 4xx is the client, no status is no answer judged', () => {
    const all: Attempt[] = [
      ...attempts('10.1.0.12:9203', 60, 0),
      { server: '10.1.0.12:9203', status: 404 },
      { server: '10.1.0.12:9203', status: undefined },
      { server: '10.1.0.12:9203', status: 599 },
    ]
    expect(judgeCanary(all, canary, stable, 5).canary).toEqual({ requests: 63, errors: 1, rate: 100 / 63 })
  })

  it('calls too few requests inconclusive', () => {
    expect(judgeCanary(attempts('10.1.0.12:9203', 10, 0), canary, stable, 1)).toEqual({
      verdict: 'inconclusive',
      canary: { requests: 10, errors: 0, rate: 0 },
      stable: { requests: 0, errors: 0, rate: 0 },
      reason: 'only 10 requests reached the canary (at least 50 are needed to judge)',
    })
    expect(judgeCanary(attempts('10.1.0.12:9203', 10, 0), canary, stable, 1, 10).verdict).toBe('pass')
  })

  it('measures how much worse the canary is in standard errors, zero without traffic on either side', () => {
    expect(worseBy({ requests: 100, errors: 8, rate: 8 }, { requests: 1000, errors: 10, rate: 1 })).toBeCloseTo(5.26, 2)
    expect(worseBy({ requests: 100, errors: 1, rate: 1 }, { requests: 0, errors: 0, rate: 0 })).toBe(0)
    expect(worseBy({ requests: 100, errors: 0, rate: 0 }, { requests: 100, errors: 0, rate: 0 })).toBe(0)
  })
})
