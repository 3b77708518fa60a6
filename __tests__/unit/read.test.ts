// Reading the hosts under the lock, against fake hosts: the lock's heartbeat starts as soon as the nginx
// host gave the lock, retirement reports are consumed only under the lock, and a status changes nothing.
import { afterAll, afterEach, describe, expect, it, jest } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LIMITS } from '../../src/config.js'
import type { Command } from '../../src/commands/shell.js'
import type { RunContext } from '../../src/github/deployment.js'
import { readHosts, retireDir } from '../../src/host/read.js'
import { Journal } from '../../src/journal.js'
import { Cancellation } from '../../src/run/cancel.js'
import { operate } from '../../src/operate.js'
import type { LockClaim } from '../../src/remote/lock.js'
import type { ExecResult } from '../../src/remote/ssh.js'
import { configFrom } from './fixtures.js'
import { deferred, fakeFleet, FakeRemote, pausedCanary, recordingLogger, THREE_HOSTS } from './fakes.js'

const config = configFrom({ ...THREE_HOSTS })
const claim: LockClaim = {
  app: 'shop',
  dir: '.nginx-rollout/shop/lock',
  token: '0123456789abcdef01234567',
  owner: 'https://github.com/acme/shop/actions/runs/42 by alice',
}
const gh: RunContext = { sha: 'abc1234', eventName: 'push', actor: 'alice', apiUrl: 'https://api.github.com' }

/** One framed section of a sectioned command's output. */
const frame = (name: string, out = '', code = 0): string =>
  `\n@@nginx-rollout ${name} ${code} ${Buffer.byteLength(out)} 0\n${out}`

const SECTIONED = /nr_t=\$\(mktemp -d\)/
const HEARTBEAT = /touch "\$1\/heartbeat"/
const RELEASE = /then rm -rf "\$1"; fi/

/** The nginx host (lb, no app host): the lock taken, no history, `canary` as its record, nginx not there. */
const nginxHost = (events: string[], canary = '') =>
  new FakeRemote('lb', [
    [
      SECTIONED,
      () => {
        events.push('lock and read lb')
        return { stdout: frame('first') + frame('history') + frame('canary', canary) + frame('nginx') }
      },
    ],
  ])

/** An app host with no container and no report; `answer` may hold its read back. */
const appHost = (name: string, events: string[], answer: () => Partial<ExecResult> | Promise<Partial<ExecResult>>) =>
  new FakeRemote(name, [
    [
      SECTIONED,
      () => {
        events.push(`read ${name}`)
        return answer()
      },
    ],
  ])

const emptyAppHost = () => ({ stdout: frame('containers') + frame('retired') })

function hosts(canary = '', answer: () => Partial<ExecResult> | Promise<Partial<ExecResult>> = emptyAppHost) {
  const events: string[] = []
  const lb = nginxHost(events, canary)
  const apps = { a: appHost('a', events, answer), b: appHost('b', events, answer), c: appHost('c', events, answer) }
  return { events, lb, apps, fleet: fakeFleet(config, lb, apps) }
}

const homes: string[] = []
afterAll(() => homes.forEach((d) => rmSync(d, { recursive: true, force: true })))

/** The retirement read an app host was sent, as a part of its one command (rendered). */
const retiredPart = (c: Command): string => c.argv[c.argv.indexOf('retired') + 1]

describe('readHosts', () => {
  it('calls onLocked once the nginx host gave the lock, before any other app host is read', async () => {
    const { events, fleet } = hosts()
    await readHosts(
      fleet,
      config,
      claim,
      () => {},
      () => events.push('locked'),
    )
    expect(events).toEqual(['lock and read lb', 'locked', 'read a', 'read b', 'read c'])
  })

  it('takes no lock and calls no onLocked without a claim (a status or a dry run)', async () => {
    const { events, fleet } = hosts()
    await readHosts(
      fleet,
      config,
      undefined,
      () => {},
      () => events.push('locked'),
    )
    expect(events).toEqual(['lock and read lb', 'read a', 'read b', 'read c'])
  })

  it.each([
    ['consumes retirement reports under the lock', claim, []],
    ['leaves retirement reports without the lock', undefined, ['20261127T000000-4242.txt']],
  ] as const)('%s, in the one command per app host', async (_, given, left) => {
    const { fleet, apps } = hosts()
    await readHosts(fleet, config, given, () => {})
    for (const host of Object.values(apps)) {
      expect(host.commands).toHaveLength(1)
      // The part that reads the reports, run by sh in a home holding one.
      const home = mkdtempSync(join(tmpdir(), 'nr-read-'))
      homes.push(home)
      mkdirSync(join(home, retireDir('shop')), { recursive: true })
      writeFileSync(join(home, retireDir('shop'), '20261127T000000-4242.txt'), 'Error response from daemon: busy\n')
      const out = execFileSync('sh', ['-c', retiredPart(host.commands[0])], { cwd: home, encoding: 'utf8' })
      expect(out).toBe('20261127T000000-4242.txt\nError response from daemon: busy\n\0')
      expect(readdirSync(join(home, retireDir('shop')))).toEqual(left)
    }
  })
})

describe('operate', () => {
  afterEach(() => {
    jest.useRealTimers()
  })

  it("beats the lock's heartbeat while the other app hosts are read, and releases the lock when their read fails", async () => {
    jest.useFakeTimers()
    const held = deferred<Partial<ExecResult>>()
    const { lb, fleet } = hosts('', () => held.promise)
    const run = operate({
      config: configFrom({ ...THREE_HOSTS }),
      gh,
      recorder: undefined,
      journal: new Journal(Date.now()),
      fleet,
      log: recordingLogger(),
      cancel: new Cancellation(),
    })
    const failed = expect(run).rejects.toThrow(/reading a failed on a \(exit 1\): Cannot connect to the Docker daemon/)
    await jest.advanceTimersByTimeAsync(2 * LIMITS.lockHeartbeatMs)
    expect(lb.texts.filter((t) => HEARTBEAT.test(t))).toHaveLength(2)
    held.resolve({ code: 1, stderr: 'Cannot connect to the Docker daemon' })
    await failed
    expect(
      lb.texts.map((t) =>
        SECTIONED.test(t) ? 'read' : HEARTBEAT.test(t) ? 'heartbeat' : RELEASE.test(t) ? 'release' : t,
      ),
    ).toEqual(['read', 'heartbeat', 'heartbeat', 'release'])
    await jest.advanceTimersByTimeAsync(3 * LIMITS.lockHeartbeatMs)
    expect(lb.commands).toHaveLength(4)
  })

  it('warns that the records were not written when another run holds the lock at the end', async () => {
    const { lb, fleet } = hosts()
    lb.rules.unshift([
      /release=\$3/,
      { code: 75, stderr: `the deploy lock in ${claim.dir} is not this run's: no record written\n` },
    ])
    const printed: string[] = []
    const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      printed.push(String(chunk))
      return true
    })
    try {
      await operate({
        config: configFrom({ ...THREE_HOSTS, operation: 'abort', image: '' }),
        gh,
        recorder: undefined,
        journal: new Journal(Date.now()),
        fleet,
        log: recordingLogger(),
        cancel: new Cancellation(),
      })
    } finally {
      write.mockRestore()
    }
    expect(lb.texts.filter((t) => /release=\$3/.test(t))).toHaveLength(1)
    expect(printed.filter((l) => l.startsWith('::warning::the deploy history'))).toEqual([
      "::warning::the deploy history and canary record of shop were not written, and no lock released: another run holds the deploy lock on lb now (this run's was taken over)\n",
    ])
  })

  it('changes nothing in a status, not even a stale canary record: it reports it', async () => {
    const stale = JSON.stringify(pausedCanary([{ host: 'a', name: 'shop-9300' }]))
    const { lb, apps, fleet } = hosts(stale)
    const end = await operate({
      config: configFrom({ ...THREE_HOSTS, operation: 'status', image: '' }),
      gh,
      recorder: undefined,
      journal: new Journal(Date.now()),
      fleet,
      log: recordingLogger(),
      cancel: new Cancellation(),
    })
    expect(end.failure).toBeUndefined()
    expect(end.canaryWeight).toBe('')
    expect(lb.commands).toHaveLength(1)
    for (const host of Object.values(apps)) expect(host.commands).toHaveLength(1)
  })
})
