import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals'
import { LIMITS } from '../../src/config.js'
import {
  acquireCommand,
  HeldLock,
  lockDir,
  LockLostError,
  newClaim,
  stateDir,
  type LockClaim,
} from '../../src/remote/lock.js'
import type { ExecResult } from '../../src/remote/ssh.js'
import { FakeRemote } from './fakes.js'

const claim: LockClaim = {
  app: 'shop',
  dir: '.nginx-rollout/shop/lock',
  token: '0123456789abcdef01234567',
  owner: 'https://github.com/acme/shop/actions/runs/42 by alice',
}
const HEARTBEAT = '[ "$(cat "$1/token" 2>/dev/null)" = "$2" ] || exit 3; touch "$1/heartbeat"'

/** The nginx host answering each heartbeat in turn: an exit code, or an error (the command could not be run). */
function heartbeats(...answers: Array<number | Error>) {
  const remote = new FakeRemote('lb', [
    [
      /touch "\$1\/heartbeat"/,
      (): Promise<Partial<ExecResult>> => {
        const a = answers.shift() ?? 0
        return a instanceof Error ? Promise.reject(a) : Promise.resolve({ code: a })
      },
    ],
  ])
  const warnings: string[] = []
  const lock = new HeldLock(remote, claim, (m) => warnings.push(m))
  return { remote, lock, warnings }
}

const beat = (n = 1) => jest.advanceTimersByTimeAsync(n * LIMITS.lockHeartbeatMs)

describe('HeldLock', () => {
  beforeEach(() => {
    jest.useFakeTimers()
  })
  afterEach(() => {
    jest.useRealTimers()
  })

  it('touches its heartbeat every lockHeartbeatMs, only while the token on the host is its own', async () => {
    const { remote, lock } = heartbeats(0, 0)
    await jest.advanceTimersByTimeAsync(LIMITS.lockHeartbeatMs - 1)
    expect(remote.commands).toEqual([])
    await beat(1)
    await beat(1)
    expect(remote.commands.map((c) => c.argv)).toEqual([
      ['sh', '-c', HEARTBEAT, 'sh', claim.dir, claim.token],
      ['sh', '-c', HEARTBEAT, 'sh', claim.dir, claim.token],
    ])
    expect(() => lock.assertHeld()).not.toThrow()
    await lock.stopHeartbeat()
  })

  it('is lost as soon as a heartbeat finds another token (another run took the lock over), and says so once', async () => {
    const { lock, warnings } = heartbeats(0, 3, 3)
    await beat(1)
    expect(() => lock.assertHeld()).not.toThrow()
    await beat(2)
    expect(() => lock.assertHeld()).toThrow(LockLostError)
    expect(() => lock.assertHeld()).toThrow(
      "the deploy lock of shop is no longer this run's (another run took it over); stopped before changing anything more",
    )
    expect(warnings).toEqual([
      "the deploy lock of shop on lb is no longer this run's (another run took it over): nothing more will be changed",
    ])
    await lock.stopHeartbeat()
  })

  // Another run may take the lock over once it has been silent for lockStaleSeconds: this run stops a
  // heartbeat before that, whether its heartbeats failed, exited otherwise, or never came back.
  const giveUpBeats = Math.ceil((LIMITS.lockStaleSeconds * 1000 - LIMITS.lockHeartbeatMs) / LIMITS.lockHeartbeatMs)

  it('is lost once no heartbeat has reached the host for as long as a lock stays fresh, less one heartbeat', async () => {
    const errors = Array.from({ length: giveUpBeats }, () => new Error('the ssh connection to lb was lost (closed)'))
    const { lock, warnings } = heartbeats(...errors, 124)
    await beat(giveUpBeats - 1)
    expect(() => lock.assertHeld()).not.toThrow()
    expect(warnings).toEqual([])
    await beat(1)
    expect(() => lock.assertHeld()).toThrow(
      `the deploy lock of shop is no longer this run's (no heartbeat reached the host for ${(giveUpBeats * LIMITS.lockHeartbeatMs) / 1000}s)`,
    )
    expect(warnings).toHaveLength(1)
    await lock.stopHeartbeat()
  })

  it('forgives heartbeats that failed when a later one succeeds in time', async () => {
    const { lock } = heartbeats(new Error('timeout'), 0, new Error('timeout'), 124, 0)
    await beat(5)
    expect(() => lock.assertHeld()).not.toThrow()
    await lock.stopHeartbeat()
  })

  it('is lost when its heartbeat never comes back, and sends no second one meanwhile', async () => {
    const remote = new FakeRemote('lb', [[/touch "\$1\/heartbeat"/, () => new Promise<Partial<ExecResult>>(() => {})]])
    const lock = new HeldLock(remote, claim, () => {})
    await jest.advanceTimersByTimeAsync(LIMITS.lockStaleSeconds * 1000)
    expect(remote.commands).toHaveLength(1)
    expect(() => lock.assertHeld()).toThrow(LockLostError)
  })

  it('runs its heartbeat outside the queue of the other commands, with a deadline of one heartbeat', async () => {
    const { remote, lock } = heartbeats(0)
    await beat(1)
    expect(remote.commands[0].timeoutSeconds).toBe(LIMITS.lockHeartbeatMs / 1000)
    expect(remote.options[0]).toEqual({ unqueued: true })
    await lock.stopHeartbeat()
  })

  it('stops beating once stopped, and releases only its own lock', async () => {
    const { remote, lock } = heartbeats()
    await beat(1)
    await lock.release()
    await beat(3)
    expect(remote.commands.map((c) => c.argv)).toEqual([
      ['sh', '-c', HEARTBEAT, 'sh', claim.dir, claim.token],
      ['sh', '-c', 'if [ "$(cat "$1/token" 2>/dev/null)" = "$2" ]; then rm -rf "$1"; fi', 'sh', claim.dir, claim.token],
    ])
  })
})

describe('the lock claim', () => {
  it('is a directory under the app state dir, a random token, and an owner on one line', () => {
    const c = newClaim('shop', 'https://github.com/acme/shop/actions/runs/42 by alice\nsince 2026-11-25T10:00:00Z\r\n')
    expect(c).toEqual({
      app: 'shop',
      dir: '.nginx-rollout/shop/lock',
      token: expect.stringMatching(/^[0-9a-f]{24}$/),
      owner: 'https://github.com/acme/shop/actions/runs/42 by alice since 2026-11-25T10:00:00Z ',
    })
    expect(newClaim('shop', 'x').token).not.toBe(c.token)
    expect([stateDir('shop'), lockDir('shop')]).toEqual(['.nginx-rollout/shop', '.nginx-rollout/shop/lock'])
  })

  it('is taken by one script with the dir, token, owner and stale limit as its parameters', () => {
    const argv = acquireCommand(claim).argv
    expect(argv.slice(0, 2)).toEqual(['sh', '-c'])
    expect(argv.slice(3)).toEqual(['sh', claim.dir, claim.token, claim.owner, String(LIMITS.lockStaleSeconds)])
    // flock serialises the check-and-take; a held lock exits 3, a host without flock exits 4.
    expect(argv[2]).toContain('flock 9 || exit 2')
    expect(argv[2]).toContain('exit 3')
    expect(argv[2]).toContain('exit 4')
    expect(argv[2]).not.toContain(claim.token)
  })
})
