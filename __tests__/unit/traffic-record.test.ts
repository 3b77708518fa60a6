// nginx's record of the app's upstream attempts as it arrives over the followed log (judge/record.ts): counted
// per server once a line is whole, since a mark, and over the recent past.
import { describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import { LIMITS } from '../../src/config.js'
import { NO_TRAFFIC } from '../../src/judge/compare.js'
import { TrafficRecord } from '../../src/judge/record.js'
import { recordLine as line } from './fixtures.js'
const lines = (server: string, status: string, n: number) => line(server, status).repeat(n)

const OLD = '10.1.0.11:9201'
const NEW = '10.1.0.12:9203'
const only = (...servers: string[]) => new Set(servers)

describe('TrafficRecord: reading the followed log', () => {
  it('counts a line split across chunks once, when its end arrives', () => {
    const record = new TrafficRecord()
    const [first, last] = [line(NEW, '500'), line(NEW, '404')]
    record.add(first.slice(0, 20))
    expect(record.of(only(NEW))).toEqual(NO_TRAFFIC)
    record.add(`${first.slice(20)}${line(NEW, '200')}${last.slice(0, 9)}`)
    expect(record.of(only(NEW)).requests).toBe(2)
    record.add(last.slice(9))
    expect(record.of(only(NEW))).toEqual({
      requests: 3,
      serverErrors: 1,
      clientErrors: 1,
      statuses: { '500': 1, '200': 1, '404': 1 },
    })
    expect(record.skipped).toBe(0)
  })

  it('keeps a last line without its newline until the newline comes', () => {
    const record = new TrafficRecord()
    record.add(line(NEW, '200').trimEnd())
    expect(record.total()).toBe(0)
    record.add('\n')
    expect(record.total()).toBe(1)
  })

  it('counts the same, however the log is cut into chunks', () => {
    const log = [line(OLD, '200'), line(`${NEW}, ${OLD}`, '502, 200'), 'junk\n', line(NEW, '404')].join('').repeat(3)
    const whole = new TrafficRecord()
    whole.add(log)
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: log.length - 1 }), { maxLength: 12 }), (cuts) => {
        const record = new TrafficRecord()
        const at = [0, ...cuts.sort((a, b) => a - b), log.length]
        for (let i = 1; i < at.length; i++) record.add(log.slice(at[i - 1], at[i]))
        expect([record.of(only(OLD)), record.of(only(NEW)), record.skipped]).toEqual([
          whole.of(only(OLD)),
          whole.of(only(NEW)),
          whole.skipped,
        ])
      }),
    )
    expect(whole.of(only(NEW)).requests).toBe(6)
    expect(whole.skipped).toBe(3)
  })

  it('skips lines of another shape, and counts how many it skipped', () => {
    const record = new TrafficRecord()
    record.add(
      [
        '127.0.0.1 - - [01/May/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 12\n',
        line(NEW, '200'),
        '\n',
        `${line(NEW, '500').trimEnd()} GET /x\n`,
        `${line(NEW, '500').trimEnd().slice(0, -1)},"extra":"500"}\n`,
        line(NEW, '200'),
      ].join(''),
    )
    expect(record.of(only(NEW))).toEqual({ requests: 2, serverErrors: 0, clientErrors: 0, statuses: { '200': 2 } })
    expect(record.skipped).toBe(3)
  })

  it('counts an attempt for each server a retried request went to', () => {
    const record = new TrafficRecord()
    record.add(line(`${NEW}, ${OLD}`, '502, 200'))
    expect(record.of(only(NEW))).toEqual({ requests: 1, serverErrors: 1, clientErrors: 0, statuses: { '502': 1 } })
    expect(record.of(only(OLD))).toEqual({ requests: 1, serverErrors: 0, clientErrors: 0, statuses: { '200': 1 } })
    expect(record.total()).toBe(2)
  })

  it('counts an attempt without a status as a request, not as an error', () => {
    const record = new TrafficRecord()
    record.add(line(NEW, '-'))
    expect(record.of(only(NEW))).toEqual({ requests: 1, serverErrors: 0, clientErrors: 0, statuses: { '-': 1 } })
  })

  it('knows when the last attempt arrived, and not from lines it skipped', () => {
    let now = 1000
    const record = new TrafficRecord(() => now)
    expect(record.lastAttemptAt).toBe(0)
    record.add(line(NEW, '200'))
    now = 2000
    record.add('junk\n')
    expect(record.lastAttemptAt).toBe(1000)
  })
})

describe('TrafficRecord: counts of a set of servers', () => {
  it('counts since a mark, and everything without one', () => {
    const record = new TrafficRecord()
    record.add(lines(NEW, '200', 3))
    const route = record.mark()
    record.add(lines(NEW, '500', 2) + line(OLD, '200'))
    expect(record.of(only(NEW), route)).toEqual({
      requests: 2,
      serverErrors: 2,
      clientErrors: 0,
      statuses: { '500': 2 },
    })
    expect(record.of(only(NEW))).toEqual({
      requests: 5,
      serverErrors: 2,
      clientErrors: 0,
      statuses: { '200': 3, '500': 2 },
    })
    expect(record.of(only(NEW, OLD), route).requests).toBe(3)
    expect(record.total(route)).toBe(3)
    expect(record.total()).toBe(6)
  })

  it('counts all of a server first seen after the mark, and nothing of one never seen', () => {
    const record = new TrafficRecord()
    record.add(line(OLD, '200'))
    const route = record.mark()
    record.add(lines(NEW, '200', 4))
    expect(record.of(only(NEW), route).requests).toBe(4)
    expect(record.of(only('10.1.0.13:9201'), route)).toEqual(NO_TRAFFIC)
  })
})

describe('TrafficRecord: the recent past', () => {
  /** A record on a clock the test moves. */
  function clocked() {
    let now = 0
    const record = new TrafficRecord(() => now)
    const at = (ms: number) => void (now = ms)
    return { record, at }
  }

  it('holds the attempts that arrived in about the last 3 s only', () => {
    const { record, at } = clocked()
    at(0)
    record.add(lines(NEW, '200', 10))
    at(1500)
    record.add(lines(NEW, '500', 5))
    at(4000)
    record.add(lines(NEW, '200', 2))
    expect(record.tally(only(NEW), record.since(3000)).counts()).toEqual({
      requests: 7,
      serverErrors: 5,
      clientErrors: 0,
      statuses: { '500': 5, '200': 2 },
    })
    at(5000)
    expect(record.tally(only(NEW), record.since(3000)).counts().requests).toBe(2)
    expect(record.of(only(NEW)).requests).toBe(17)
  })

  it('counts only the servers asked about', () => {
    const { record, at } = clocked()
    at(0)
    record.add(lines(OLD, '500', 8) + lines(NEW, '200', 3))
    expect(record.tally(only(NEW), record.since(3000)).counts()).toEqual({
      requests: 3,
      serverErrors: 0,
      clientErrors: 0,
      statuses: { '200': 3 },
    })
  })
})

describe('TrafficRecord: the route and the time of each attempt', () => {
  it("keeps each attempt's route (method and path, as nginx escaped it) and its milliseconds", () => {
    const record = new TrafficRecord()
    record.add(line(`${NEW}, ${OLD}`, '500, 200', { time: '0.012, 0.003', method: 'GET', uri: '/a"b\\c' }))
    expect(record.attempts(only(NEW, OLD))).toEqual([
      { server: NEW, status: 500, ms: 12, route: 'GET /a"b\\c' },
      { server: OLD, status: 200, ms: 3, route: 'GET /a"b\\c' },
    ])
  })

  it('cannot be told another server, status or route by a path a client chose', () => {
    const record = new TrafficRecord()
    const forged = `/x","upstream":"${OLD}","status":"500`
    record.add(line(NEW, '200', { uri: forged }))
    expect(record.attempts(only(NEW, OLD))).toEqual([{ server: NEW, status: 200, ms: 4, route: `GET ${forged}` }])
  })

  it('keeps at most LIMITS.recordMaxAttempts, dropping the oldest, and still counts from a mark', () => {
    const record = new TrafficRecord()
    const mark = record.mark()
    record.add(lines(NEW, '200', LIMITS.recordMaxAttempts + 5))
    expect(record.attempts(only(NEW)).length).toBeLessThanOrEqual(LIMITS.recordMaxAttempts)
    expect(record.total(mark)).toBe(LIMITS.recordMaxAttempts + 5)
    const later = record.mark()
    record.add(lines(NEW, '500', 3))
    expect(record.of(only(NEW), later)).toMatchObject({ requests: 3, serverErrors: 3 })
  })
})
