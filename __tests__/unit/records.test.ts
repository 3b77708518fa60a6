// The records' write, run by a real sh in a temporary home: fenced by the lock's token before anything is
// written, its texts on standard input, bounded in size.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LIMITS } from '../../src/config.js'
import { render, type Command } from '../../src/commands/shell.js'
import {
  canaryPath,
  finishCommand,
  historyPath,
  keptCanary,
  RECORDS_NOT_OUR_LOCK,
  writeCanaryCommand,
} from '../../src/host/records.js'
import type { CanaryPush, CanaryState, HistoryEntry } from '../../src/host/state.js'
import type { CanaryObservation } from '../../src/model.js'
import { lockDir, type LockClaim } from '../../src/remote/lock.js'
import { pausedCanary } from './fakes.js'

const claim: LockClaim = {
  app: 'shop',
  dir: lockDir('shop'),
  token: '0123456789abcdef01234567',
  owner: 'https://github.com/acme/shop/actions/runs/42 by alice',
}

const entry = (n: number): HistoryEntry => ({
  image: `shop:v${n}`,
  previousImage: `shop:v${n - 1}`,
  result: 'deployed',
  at: '2026-11-25T10:00:00.000Z',
  strategy: 'rolling',
})

const observation = (n: number, reason = `step ${n}`): CanaryObservation =>
  ({
    verdict: 'pass',
    percent: 10,
    seconds: n,
    reason,
    canary: { requests: 100, errors: 0, rate: 0 },
    stable: { requests: 900, errors: 0, rate: 0 },
  }) as unknown as CanaryObservation

const push = (n: number, observations: number): CanaryPush => ({
  image: `shop:pr-${n}`,
  at: '2026-11-25T10:00:00.000Z',
  observations: Array.from({ length: observations }, (_, i) => observation(i)),
  outcome: 'replaced',
})

const homes: string[] = []
afterAll(() => homes.forEach((d) => rmSync(d, { recursive: true, force: true })))

/** A home on "the nginx host", its lock held by `token` (none: no lock), with earlier records in place. */
function host(token: string | undefined) {
  const home = mkdtempSync(join(tmpdir(), 'nr-records-'))
  homes.push(home)
  const at = (p: string) => join(home, p)
  mkdirSync(at(claim.dir.replace(/\/lock$/, '')), { recursive: true })
  if (token !== undefined) {
    mkdirSync(at(claim.dir))
    writeFileSync(at(`${claim.dir}/token`), `${token}\n`)
  }
  writeFileSync(at(historyPath('shop')), 'the earlier history\n')
  writeFileSync(at(canaryPath('shop')), 'the earlier canary\n')
  const run = (c: Command, stdin = c.stdin ?? '') => {
    const r = spawnSync('sh', ['-c', render(c)], { cwd: home, input: stdin, encoding: 'utf8' })
    if (r.error) throw r.error
    return { code: r.status, stderr: r.stderr }
  }
  const read = (p: string) => (existsSync(at(p)) ? readFileSync(at(p), 'utf8') : undefined)
  return { home, run, read, lockHeld: () => existsSync(at(claim.dir)) }
}

describe('the records written at the end of a run', () => {
  it("are written, and the lock released, when the lock is still this run's", () => {
    const h = host(claim.token)
    const canary = pausedCanary([{ host: 'a', name: 'shop-9300' }])
    const r = h.run(finishCommand('shop', { history: [entry(1), entry(2)], canary }, claim))
    expect(r).toEqual({ code: 0, stderr: '' })
    expect(JSON.parse(h.read(historyPath('shop'))!)).toEqual([entry(1), entry(2)])
    expect(JSON.parse(h.read(canaryPath('shop'))!)).toEqual(canary)
    expect(h.lockHeld()).toBe(false)
  })

  it.each([
    ['another run holds the lock now', 'fedcba9876543210fedcba98'],
    ['no lock is there any more', undefined],
  ])('are not written, and no lock is released, when %s: exit 75, the earlier records stay', (_, token) => {
    const h = host(token)
    const c = finishCommand('shop', { history: [entry(3)], canary: null }, claim)
    const r = h.run(c)
    expect(r.code).toBe(RECORDS_NOT_OUR_LOCK)
    expect(r.stderr).toBe(`the deploy lock in ${claim.dir} is not this run's: no record written\n`)
    expect(h.read(historyPath('shop'))).toBe('the earlier history\n')
    expect(h.read(canaryPath('shop'))).toBe('the earlier canary\n')
    expect(h.lockHeld()).toBe(token !== undefined)
    if (token) expect(h.read(`${claim.dir}/token`)).toBe(`${token}\n`)
  })

  it('remove the canary record when it is cleared, and keep what is left as it is', () => {
    const h = host(claim.token)
    expect(h.run(finishCommand('shop', { canary: null }, claim)).code).toBe(0)
    expect(h.read(canaryPath('shop'))).toBeUndefined()
    expect(h.read(historyPath('shop'))).toBe('the earlier history\n')
    expect(h.lockHeld()).toBe(false)
  })

  it('travel on standard input, not in argv, so a record past what one argument may hold (128 KiB) is written', () => {
    const h = host(claim.token)
    // 50 judged steps with long reasons: well past Linux's MAX_ARG_STRLEN of 128 KiB for one argument.
    const long = pausedCanary([{ host: 'a', name: 'shop-9300' }], {
      observations: Array.from({ length: 50 }, (_, i) => observation(i, 'x'.repeat(4096))),
    })
    const c = finishCommand('shop', { history: [entry(1)], canary: long }, claim)
    expect(c.stdin!.length).toBeGreaterThan(128 * 1024)
    expect(c.argv.some((a) => a.includes('shop:v1') || a.includes('xxxx'))).toBe(false)
    expect(c.stdinLabel).toMatch(/^deploy history, \d+ bytes \+ canary record, \d+ bytes$/)
    expect(h.run(c)).toEqual({ code: 0, stderr: '' })
    expect(JSON.parse(h.read(canaryPath('shop'))!)).toEqual(long)
    expect(JSON.parse(h.read(historyPath('shop'))!)).toEqual([entry(1)])
  })

  it('write nothing when standard input is cut short (the connection went), and keep the lock', () => {
    const h = host(claim.token)
    const c = finishCommand('shop', { history: [entry(1)], canary: pausedCanary([]) }, claim)
    const r = h.run(c, c.stdin!.slice(0, -10))
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^expected \d+ bytes of records on standard input, got \d+: no record written\n$/)
    expect(h.read(historyPath('shop'))).toBe('the earlier history\n')
    expect(h.read(canaryPath('shop'))).toBe('the earlier canary\n')
    expect(h.lockHeld()).toBe(true)
  })

  it(`keep the newest ${LIMITS.historyEntries} history entries`, () => {
    const c = finishCommand('shop', { history: Array.from({ length: 30 }, (_, i) => entry(i)) }, claim)
    expect(JSON.parse(c.stdin!).map((e: HistoryEntry) => e.image)).toEqual(
      Array.from({ length: LIMITS.historyEntries }, (_, i) => `shop:v${30 - LIMITS.historyEntries + i}`),
    )
  })

  it(`keep a canary's newest ${LIMITS.canaryPushesShown} pushes and newest ${LIMITS.canaryObservationsKept} judged steps, its own and each push's`, () => {
    const many = LIMITS.canaryObservationsKept + 7
    const canary: CanaryState = pausedCanary([], {
      observations: Array.from({ length: many }, (_, i) => observation(i)),
      pushes: Array.from({ length: LIMITS.canaryPushesShown + 5 }, (_, i) => push(i, many)),
    })
    const kept = JSON.parse(finishCommand('shop', { canary }, claim).stdin!) as CanaryState
    expect(kept).toEqual(keptCanary(canary))
    expect(kept.observations!.map((o) => o.seconds)).toEqual(
      Array.from({ length: LIMITS.canaryObservationsKept }, (_, i) => i + 7),
    )
    expect(kept.pushes!.map((p) => p.image)).toEqual(
      Array.from({ length: LIMITS.canaryPushesShown }, (_, i) => `shop:pr-${i + 5}`),
    )
    for (const p of kept.pushes!) expect(p.observations).toEqual(canary.pushes![0].observations.slice(7))
    expect({ ...kept, observations: undefined, pushes: undefined }).toEqual({
      ...canary,
      observations: undefined,
      pushes: undefined,
    })
  })

  it('leave a canary record without observations or pushes as it is', () => {
    const canary = pausedCanary([{ host: 'a', name: 'shop-9300' }])
    expect(keptCanary(canary)).toEqual(canary)
  })
})

describe('the canary record written mid-run', () => {
  it("is written while the lock is this run's, and the lock is kept", () => {
    const h = host(claim.token)
    const canary = pausedCanary([{ host: 'a', name: 'shop-9300' }])
    expect(h.run(writeCanaryCommand('shop', canary, claim))).toEqual({ code: 0, stderr: '' })
    expect(JSON.parse(h.read(canaryPath('shop'))!)).toEqual(canary)
    expect(h.read(historyPath('shop'))).toBe('the earlier history\n')
    expect(h.lockHeld()).toBe(true)
  })

  it('is not written once another run holds the lock (exit 75)', () => {
    const h = host('fedcba9876543210fedcba98')
    const r = h.run(writeCanaryCommand('shop', pausedCanary([]), claim))
    expect(r.code).toBe(RECORDS_NOT_OUR_LOCK)
    expect(h.read(canaryPath('shop'))).toBe('the earlier canary\n')
    expect(h.read(`${claim.dir}/token`)).toBe('fedcba9876543210fedcba98\n')
  })
})
