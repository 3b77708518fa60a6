// nginx's record of the app's requests, followed where nginx runs. A follow can start before a judgement
// reads it (Nginx.prepareJudging): what comes meanwhile is kept for the reader, in order.
import type { Command } from '../commands/shell.js'
import type { FollowedCommand, Following, Remote } from '../remote/ssh.js'
import { RECORD_FOLLOWED } from './scripts.js'

const NEWLINE = 0x0a

export class RecordFollow {
  private reader: ((chunk: Buffer) => void) | undefined
  private readonly kept: Buffer[] = []
  /** What came before the follow's first line ended; undefined once it did. */
  private head: Buffer | undefined = Buffer.alloc(0)
  private emptied: () => void = () => undefined
  /** Settles once the follow said the record is empty (RECORD_FOLLOWED). */
  private readonly followed = new Promise<void>((r) => (this.emptied = r))
  private readonly command: Promise<FollowedCommand>

  constructor(remote: Remote, c: Command) {
    this.command = remote.follow(c, (chunk) => this.take(chunk))
    // A follow that could not start is the reader's failure (read), or nobody's when none comes (stop).
    this.command.catch(() => undefined)
  }

  private take(chunk: Buffer): void {
    let rest = chunk
    if (this.head) {
      const text = Buffer.concat([this.head, chunk])
      const end = text.indexOf(NEWLINE)
      if (end < 0) {
        this.head = text
        return
      }
      this.head = undefined
      // The follow's first line. Anything else there (this script always says it first) would be the record's:
      // it is kept as it came, and the follow is reading.
      rest = text.subarray(0, end).toString('utf8') === RECORD_FOLLOWED ? text.subarray(end + 1) : text
      this.emptied()
      if (!rest.length) return
    }
    if (this.reader) this.reader(rest)
    else this.kept.push(rest)
  }

  /**
   * The follow, read by `onData` from now on (what came before first). Settles once the record is empty and
   * followed, or once the follow ended before it was (its end then says why: see Judge.startRecording). A
   * follow that says neither within `readyMs` is stopped, and that is an error.
   */
  async read(onData: (chunk: Buffer) => void, readyMs: number, where: string): Promise<Following> {
    this.reader = onData
    for (const chunk of this.kept.splice(0)) onData(chunk)
    const f = await this.command
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), readyMs)))
    const how = await Promise.race([this.followed.then(() => 'followed'), f.ended.then(() => 'ended'), late])
    clearTimeout(timer)
    if (how === 'late') {
      await f.stop()
      throw new Error(
        `could not judge: nginx's record of the app's requests on ${where} was not emptied and followed within ${readyMs / 1000}s`,
      )
    }
    return f
  }

  /** Ends a follow no judgement read. */
  async stop(): Promise<void> {
    const f = await this.command.catch(() => undefined)
    await f?.stop()
  }
}
