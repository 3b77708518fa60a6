// A session sshd refuses (a slot a closed channel still holds on the server, or a MaxSessions lower than the
// run's busiest moment) is asked for again: the command never started, so asking again is safe.
import { EventEmitter } from 'node:events'
import type { Client } from 'ssh2'
import { execAsking } from '../../src/remote/ssh.js'
import { command } from '../../src/commands/shell.js'
import { LIMITS } from '../../src/config.js'

/** A connection whose first `refusals` session opens fail as OpenSSH's do, then run commands that print 'ok'. */
function client(refusals: number, message = '(SSH) Channel open failure: open failed') {
  const opened: number[] = []
  const fake = {
    exec(_line: string, cb: (err: Error | undefined, stream?: unknown) => void) {
      opened.push(Date.now())
      if (opened.length <= refusals) return cb(new Error(message))
      const stream = Object.assign(new EventEmitter(), {
        stderr: new EventEmitter(),
        close: () => undefined,
        end: () =>
          setImmediate(() => {
            stream.emit('data', Buffer.from('ok\n'))
            stream.emit('exit', 0)
            stream.emit('close')
          }),
      })
      cb(undefined, stream)
    },
  }
  return { client: fake as unknown as Client, opened }
}

describe('a session sshd refuses', () => {
  it('is asked for again, a little later each time, and the command runs once', async () => {
    const c = client(3)
    const r = await execAsking(c.client, 'h', command('true'))
    expect(r).toMatchObject({ code: 0, stdout: 'ok\n' })
    expect(c.opened).toHaveLength(4)
    const waits = c.opened.slice(1).map((t, i) => t - c.opened[i])
    expect(waits[0]).toBeGreaterThanOrEqual(45)
    expect(waits[2]).toBeGreaterThanOrEqual(145)
  })

  it(`gives up after ${LIMITS.sshSessionTries} refusals with sshd's own words and the command`, async () => {
    const c = client(100)
    await expect(execAsking(c.client, 'h', command('true'))).rejects.toThrow(
      /ssh command failed on h: \(SSH\) Channel open failure: open failed\n {2}command: true/,
    )
    expect(c.opened).toHaveLength(LIMITS.sshSessionTries)
  })

  it('is not asked again for another failure', async () => {
    const c = client(1, 'No response from server')
    await expect(execAsking(c.client, 'h', command('true'))).rejects.toThrow(/No response from server/)
    expect(c.opened).toHaveLength(1)
  })
})
