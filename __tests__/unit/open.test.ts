// The requests nginx is still waiting on (judge/open.ts): read from the nginx host's TCP table as `ss -tniH`
// prints it, counted once per connection, against a bar the old version's own times set.
import { describe, expect, it } from '@jest/globals'
import { DEFAULT_LATENCY, LIMITS } from '../../src/config.js'
import { Tally } from '../../src/judge/compare.js'
import { HeldOpen, openBar, parseOpenRequests } from '../../src/judge/open.js'
import { openConnections } from '../../src/nginx/scripts.js'

/** Lines as ss 6.1 printed them on the test machine (a request sent 1.5 s ago, nothing back yet). */
const WAITING = [
  '0      0      127.0.0.1:56480 127.0.0.1:9999 ',
  '\t bbr wscale:10,10 rto:204 rtt:0.031/0.017 mss:32768 bytes_sent:78 bytes_acked:79 segs_out:3 segs_in:2 data_segs_out:1 send 93018838710bps lastsnd:1496 lastrcv:1496 lastack:1496 pacing_rate 213871799840bps',
].join('\n')
/** A keep-alive connection whose answer came 3 ms after its request, 2 s ago: idle, not waiting. */
const IDLE = [
  '0      0      127.0.0.1:56482 127.0.0.1:9998',
  '\t cubic bytes_sent:78 bytes_received:120 lastsnd:2003 lastrcv:2000 lastack:2000',
].join('\n')
/** The same, its answer within the same clock tick: as likely idle as waiting, never counted. */
const SAME_TICK = [
  '0      0      127.0.0.1:56484 127.0.0.1:9998',
  '\t cubic bytes_sent:156 bytes_received:240 lastsnd:800 lastrcv:800',
].join('\n')
/** A keep-alive connection sent its next request 700 ms ago, 5 s after its last answer. */
const REUSED = [
  '0      0      [::1]:56486 [::1]:9997',
  '\t cubic bytes_sent:156 bytes_received:120 lastsnd:700 lastrcv:5700',
].join('\n')

const timed = (ms: number, n: number, route = 'GET /') => {
  const t = new Tally()
  for (let i = 0; i < n; i++) t.add({ server: 'old:1', status: 200, ms, route })
  return t
}

describe('parseOpenRequests', () => {
  it('finds the connections that sent after they last received, with how long they have waited', () => {
    expect(parseOpenRequests([WAITING, IDLE, SAME_TICK, REUSED].join('\n'))).toEqual([
      { local: '127.0.0.1:56480', server: '127.0.0.1:9999', waitingMs: 1496 },
      { local: '[::1]:56486', server: '[::1]:9997', waitingMs: 700 },
    ])
  })

  it('reads nothing from nothing, and skips an info line without its socket line', () => {
    expect(parseOpenRequests('')).toEqual([])
    expect(parseOpenRequests('\t cubic lastsnd:10 lastrcv:20')).toEqual([])
  })
})

describe('openBar', () => {
  it('is the latency threshold over the longest the old version took, never under LIMITS.openMinMs', () => {
    expect(openBar(timed(40, 50), 0, DEFAULT_LATENCY)).toBe(LIMITS.openMinMs)
    // 4 s requests (within the histogram's 5%): twice that.
    expect(openBar(timed(4000, 50), 0, DEFAULT_LATENCY)).toBeGreaterThan(7600)
    expect(openBar(timed(4000, 50), 0, DEFAULT_LATENCY)).toBeLessThan(8400)
  })

  it("rises with the old version's own long waits (long polls, streams)", () => {
    expect(openBar(timed(40, 50), 20_000, DEFAULT_LATENCY)).toBe(40_000)
  })

  it('counts a request of the old version a client gave up on at the time it was held', () => {
    const t = timed(40, 50)
    t.add({ server: 'old:1', status: undefined, ms: 9000, route: 'GET /poll' })
    expect(openBar(t, 0, DEFAULT_LATENCY)).toBeGreaterThan(17_000)
  })
})

describe('HeldOpen', () => {
  const isNew = (s: string) => s.endsWith(':9203')
  const isOld = (s: string) => s.endsWith(':9201')
  const open = (local: string, server: string, waitingMs: number) => ({ local, server, waitingMs })

  it('counts each connection held past the bar once, however many looks find it', () => {
    const held = new HeldOpen()
    expect(held.look([open('a:1', 'n:9203', 6000), open('a:2', 'n:9203', 100)], isNew, isOld, () => 5000)).toBe(1)
    expect(held.look([open('a:1', 'n:9203', 7000), open('a:2', 'n:9203', 5001)], isNew, isOld, () => 5000)).toBe(2)
    expect(held.longestMs).toBe(7000)
  })

  it("never counts the old version's requests, and keeps its longest wait for the bar", () => {
    const held = new HeldOpen()
    expect(held.look([open('a:1', 'o:9201', 9000)], isNew, isOld, () => 5000)).toBe(0)
    expect(held.oldOpenMs).toBe(9000)
  })

  it("takes the bar after the look's old waits are known", () => {
    const held = new HeldOpen()
    const count = held.look(
      [open('a:1', 'n:9203', 12_000), open('a:2', 'o:9201', 8000)],
      isNew,
      isOld,
      () => 2 * held.oldOpenMs,
    )
    expect(count).toBe(0)
  })
})

describe('openConnections', () => {
  it('asks ss for the established connections to the servers, on the host (one filter, argv words)', () => {
    expect(openConnections(['127.0.0.1:9203', '[::1]:9204']).argv).toEqual([
      'ss',
      '-tniH',
      'state',
      'established',
      '(',
      'dst',
      '127.0.0.1:9203',
      'or',
      'dst',
      '[::1]:9204',
      ')',
    ])
  })
})
