// nginx's record of the app's upstream attempts as it arrives, counted per server ('address:port' as nginx
// writes it). Counts can be read for any set of servers, since a mark (a route) or over the recent past.
import type { TrafficCounts } from '../model.js'
import { addCounts, NO_TRAFFIC, subtractCounts } from './compare.js'
import { parseAccessLog } from './traffic.js'

type Counts = Map<string, TrafficCounts>

const countOne = (c: TrafficCounts, status: number | undefined): TrafficCounts => {
  const key = status === undefined ? '-' : String(status)
  return {
    requests: c.requests + 1,
    serverErrors: c.serverErrors + (status !== undefined && status >= 500 ? 1 : 0),
    clientErrors: c.clientErrors + (status !== undefined && status >= 400 && status < 500 ? 1 : 0),
    statuses: { ...c.statuses, [key]: (c.statuses[key] ?? 0) + 1 },
  }
}

/** A point in the record: the counts as they stood then. */
export interface Mark {
  readonly at: number
  readonly counts: Counts
}

export class TrafficRecord {
  private counts: Counts = new Map()
  private partial = ''
  /** Marks taken every so often, for counts over the recent past. */
  private readonly history: Mark[] = []
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
    for (const a of attempts) this.counts.set(a.server, countOne(this.counts.get(a.server) ?? NO_TRAFFIC, a.status))
    if (attempts.length) this.lastAttemptAt = this.now()
  }

  mark(): Mark {
    return { at: this.now(), counts: new Map(this.counts) }
  }

  /** Counts of these servers since `from` (all recorded, without). */
  of(servers: ReadonlySet<string>, from?: Mark): TrafficCounts {
    let total = NO_TRAFFIC
    for (const s of servers) {
      const now = this.counts.get(s)
      if (!now) continue
      const then = from?.counts.get(s)
      total = addCounts(total, then ? subtractCounts(now, then) : now)
    }
    return total
  }

  /** Every attempt recorded since `from`, to any server. */
  total(from?: Mark): number {
    let n = 0
    for (const [s, c] of this.counts) n += c.requests - (from?.counts.get(s)?.requests ?? 0)
    return n
  }

  /**
   * Counts of these servers over about the last `ms`: marks are kept as time passes (tick), and the one
   * closest to `ms` ago is the start.
   */
  recent(servers: ReadonlySet<string>, ms: number): TrafficCounts {
    const since = this.now() - ms
    const from = [...this.history].reverse().find((m) => m.at <= since) ?? this.history[0]
    return this.of(servers, from)
  }

  /** Keeps a mark every call (the judge calls it a few times a second), dropping those older than `keepMs`. */
  tick(keepMs: number): void {
    this.history.push(this.mark())
    const cutoff = this.now() - keepMs
    while (this.history.length > 2 && this.history[1].at <= cutoff) this.history.shift()
  }
}
