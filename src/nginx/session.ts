// The session a run holds where nginx runs while it judges a new version (see SESSION in scripts.ts): its
// nginx changes go to a process already running there, as words on its input, and come back as sections.
import type { Command } from '../commands/shell.js'
import { nextSection, type Section } from '../remote/frames.js'
import type { FollowedCommand, Remote } from '../remote/ssh.js'
import { SESSION_SWITCH, sessionChange } from './scripts.js'

/** A change made in the session: the apply script's exit code and output, and when requests went back. */
export interface SessionChange {
  readonly section: Section
  /** How long after the word requests went to the replicas from before the run (a switch back's flag). */
  readonly switchedMs?: number
}

export class NginxSession {
  private said = Buffer.alloc(0)
  private read = 0
  private ready = false
  private over = false
  private readonly opened: Promise<FollowedCommand | undefined>
  /** Settles once the session says it is ready (true), or ended before (false). */
  private readonly readiness: Promise<boolean>
  private settleReady: (ready: boolean) => void = () => undefined
  /** The section awaited now (one word at a time), and what to call with it (undefined: the session ended). */
  private awaited: { readonly name: string; readonly take: (s: Section | undefined) => void } | undefined
  private switchedAt: number | undefined

  constructor(
    remote: Remote,
    command: Command,
    /** The nginx master its changes reload. */
    readonly master: number,
  ) {
    this.readiness = new Promise((resolve) => (this.settleReady = resolve))
    this.opened = remote
      .follow(command, (chunk) => this.heard(chunk))
      .then((f) => {
        void f.ended.then(() => this.end())
        return f
      })
      .catch(() => (this.end(), undefined))
  }

  private heard(chunk: Buffer): void {
    this.said = Buffer.concat([this.said, chunk])
    for (let next = nextSection(this.said, this.read); next; next = nextSection(this.said, this.read)) {
      this.read = next.end
      if (next.name === 'ready') {
        this.ready = true
        this.settleReady(true)
      }
      if (next.name === 'switch' && next.section.code === 0) this.switchedAt ??= Date.now()
      if (next.name === this.awaited?.name) this.awaited.take(next.section)
    }
    // What was read is not kept: a session lasts the whole judged run.
    if (this.read === this.said.length) {
      this.said = Buffer.alloc(0)
      this.read = 0
    }
  }

  private end(): void {
    this.over = true
    this.settleReady(false)
    this.awaited?.take(undefined)
  }

  /** It ended (released, or a deadline or the connection ended it): changes go elsewhere. */
  get ended(): boolean {
    return this.over
  }

  /** Whether the session is ready for a word, waiting at most `ms` for it to start. */
  async readyWithin(ms: number): Promise<boolean> {
    if (this.ready || this.over) return this.ready && !this.over
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
    const ready = await Promise.race([this.readiness, late])
    clearTimeout(timer)
    return ready && !this.over
  }

  /**
   * Changes the managed file to `text` (the file live now being `liveHash`), sending requests back first when
   * `switchBack`. Undefined when the session ended before it answered, or did not answer within `ms`: what
   * it did is then unknown, and the session is ended.
   */
  async change(liveHash: string, text: string, switchBack: boolean, ms: number): Promise<SessionChange | undefined> {
    const f = await this.opened
    if (!f || this.over || !this.ready || this.awaited) return undefined
    let timer: NodeJS.Timeout | undefined
    const answer = new Promise<Section | undefined>((resolve) => {
      this.awaited = { name: 'change', take: resolve }
      timer = setTimeout(() => resolve(undefined), ms)
    })
    this.switchedAt = undefined
    const word = Date.now()
    f.write((switchBack ? SESSION_SWITCH : '') + sessionChange(liveHash, text))
    const section = await answer
    clearTimeout(timer)
    this.awaited = undefined
    if (!section) {
      await this.close()
      return undefined
    }
    return { section, ...(this.switchedAt !== undefined ? { switchedMs: this.switchedAt - word } : {}) }
  }

  /** Ends the session (its input closes): nothing changes. */
  async close(): Promise<void> {
    this.over = true
    await (await this.opened)?.stop()
  }
}
