import { describe, expect, it } from '@jest/globals'
import { command } from '../../src/commands/shell.js'
import { RecordFollow } from '../../src/nginx/record-follow.js'
import { RECORD_FOLLOWED } from '../../src/nginx/scripts.js'
import { FakeRemote, sleep } from './fakes.js'

/** A host whose follow prints only what the test writes (`send`), and ends when the test says (`end`). */
function host() {
  const remote = new FakeRemote('lb')
  // The fake's own word that the record is empty never comes: the test sends it.
  remote.recordEmptied = new Promise<void>(() => undefined)
  const follow = new RecordFollow(remote, command('follow-the-record'))
  const followed = () => remote.followed[0]
  const send = (text: string) => followed().onData(Buffer.from(text))
  const end = (code: number, stderr: string) => followed().end(code, stderr)
  return { remote, follow, send, end, followed }
}

const READY_MS = 5_000

describe('RecordFollow: nginx record followed before a judgement reads it', () => {
  it('settles once the follow says the record is empty, and gives its reader what came after, without that line', async () => {
    const { follow, send } = host()
    const got: string[] = []
    let settled = false
    const reading = follow.read((c) => got.push(c.toString()), READY_MS, 'lb').then(() => (settled = true))
    await sleep(10)
    expect(settled).toBe(false)
    send(`${RECORD_FOLLOWED}\n{"a":1}\n`)
    await reading
    send('{"a":2}\n')
    expect(got.join('')).toBe('{"a":1}\n{"a":2}\n')
  })

  it('keeps what came before anyone read it, in order (its first line split across chunks)', async () => {
    const { follow, send } = host()
    await sleep(0)
    send(RECORD_FOLLOWED.slice(0, 10))
    send(`${RECORD_FOLLOWED.slice(10)}\n{"a":1}`)
    send('\n{"a":2}\n')
    const got: string[] = []
    await follow.read((c) => got.push(c.toString()), READY_MS, 'lb')
    send('{"a":3}\n')
    expect(got.join('')).toBe('{"a":1}\n{"a":2}\n{"a":3}\n')
  })

  it('settles when the follow ended before it could empty the record: its end says why', async () => {
    const { follow, end } = host()
    await sleep(0)
    end(1, 'truncate: Permission denied')
    const f = await follow.read(() => undefined, READY_MS, 'lb')
    await expect(f.ended).resolves.toEqual({ code: 1, stderr: 'truncate: Permission denied' })
  })

  it('stops a follow that says nothing within its time, and says the judgement could not run', async () => {
    const { follow, followed } = host()
    await expect(follow.read(() => undefined, 30, 'lb')).rejects.toThrow(
      "could not judge: nginx's record of the app's requests on lb was not emptied and followed within 0.03s",
    )
    expect(followed().stopped).toBe(true)
  })

  it('stop ends a follow no one read', async () => {
    const { follow, followed } = host()
    await follow.stop()
    expect(followed().stopped).toBe(true)
  })
})
