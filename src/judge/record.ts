// nginx's record of the app's upstream attempts as it arrives, kept as a list in the order nginx wrote them,
// each with the moment it arrived. Attempts can be read for any set of servers ('address:port' as nginx
// writes it), since a mark (a route, or where the record stood a few seconds ago).
import { LIMITS } from '../config.js'
import type { TrafficCounts } from '../model.js'
import { countAttempts, Tally } from './compare.js'
import { parseAccessLog, type Attempt } from './traffic.js'

/** A point in the record: how many attempts had arrived then. */
export interface Mark {
  readonly at: number
  readonly index: number
}

/** An attempt as a reader takes it, given when it arrived (ms since the epoch). */
export type AttemptView = (a: Attempt, at: number) => Attempt

interface Arrived {
  readonly at: number
  readonly attempt: Attempt
}

export class TrafficRecord {
  private readonly arrived: Arrived[] = []
  /** Attempts dropped from the front to keep the record bounded (LIMITS.recordMaxAttempts). */
  private dropped = 0
  private partial = ''
  /** Lines that were not nginx-rollout's format (never counted). */
  skipped = 0
  /** When the last attempt arrived (ms since the epoch), 0 before any. */
  lastAttemptAt = 0

  constructor(private readonly now: () => number = Date.now) {}

  /** A chunk of the log as it arrived (a line may be split across chunks). */
  add(chunk: string): void {
    const text = this.partial + chunk
    const end = text.lastIndexOf('\n')
    this.partial = end < 0 ? text : text.slice(end + 1)
    if (end < 0) return
    const { attempts, skipped } = parseAccessLog(text.slice(0, end))
    this.skipped += skipped
    if (!attempts.length) return
    const at = this.now()
    for (const attempt of attempts) this.arrived.push({ at, attempt })
    this.lastAttemptAt = at
    const over = this.arrived.length - LIMITS.recordMaxAttempts
    if (over > 0) {
      // A tenth at a time: dropping one by one would shift the whole list on every line.
      const cut = Math.max(over, Math.ceil(LIMITS.recordMaxAttempts / 10))
      this.arrived.splice(0, cut)
      this.dropped += cut
    }
  }

  mark(): Mark {
    return { at: this.now(), index: this.dropped + this.arrived.length }
  }

  /** The attempts to these servers since `from` (all recorded, without), each as `view` sees it given when it arrived. */
  attempts(servers: ReadonlySet<string>, from?: Mark, view?: AttemptView): Attempt[] {
    const out: Attempt[] = []
    this.eachOf(servers, from, (a, at) => out.push(view ? view(a, at) : a))
    return out
  }

  /** The same attempts, tallied with when each arrived (the burst rule reads it: see compare.ts). */
  tally(servers: ReadonlySet<string>, from?: Mark, view?: AttemptView): Tally {
    const t = new Tally()
    this.eachOf(servers, from, (a, at) => t.add(view ? view(a, at) : a, at))
    return t
  }

  private eachOf(servers: ReadonlySet<string>, from: Mark | undefined, fn: (a: Attempt, at: number) => void): void {
    for (let i = Math.max(0, (from?.index ?? 0) - this.dropped); i < this.arrived.length; i++) {
      const { attempt, at } = this.arrived[i]
      if (servers.has(attempt.server)) fn(attempt, at)
    }
  }

  /** Calls `fn` for every attempt from the `from`th recorded on (those dropped since are passed over). */
  forEachSince(from: number, fn: (a: Attempt, index: number, at: number) => void): void {
    for (let i = Math.max(0, from - this.dropped); i < this.arrived.length; i++)
      fn(this.arrived[i].attempt, this.dropped + i, this.arrived[i].at)
  }

  /** Counts of these servers since `from` (all recorded, without). */
  of(servers: ReadonlySet<string>, from?: Mark): TrafficCounts {
    return countAttempts(this.attempts(servers, from))
  }

  /** Every attempt recorded since `from`, to any server. */
  total(from?: Mark): number {
    return this.dropped + this.arrived.length - (from?.index ?? 0)
  }

  /** Where the record stood about `ms` ago: the first attempt that arrived since. */
  since(ms: number): Mark {
    const since = this.now() - ms
    // Binary search for the first attempt that arrived after `since` (arrival times only grow).
    let lo = 0
    let hi = this.arrived.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.arrived[mid].at <= since) lo = mid + 1
      else hi = mid
    }
    return { at: since, index: this.dropped + lo }
  }
}
