// Requests nginx sent to a replica that have no answer yet. nginx writes a request to its record only when it
// ends, so a version that never answers a route is invisible there until the client gives up (or until
// proxy_read_timeout, 60 s by default): past verify-seconds and often past the bake. The nginx host's own
// TCP table shows them at once: a connection from nginx to a replica whose last data went out (the request)
// after the last data came back has been waiting that long for its answer.
import { LIMITS, type LatencyThreshold } from '../config.js'
import { pastThreshold, type Tally } from './compare.js'

/** One request nginx is still waiting on: the connection (nginx's end) and the server it waits on. */
export interface OpenRequest {
  readonly local: string
  readonly server: string
  readonly waitingMs: number
}

const NUMBER = (line: string, field: string): number | undefined => {
  const m = new RegExp(`(?:^|\\s)${field}:(\\d+)`).exec(line)
  return m ? Number(m[1]) : undefined
}

/**
 * Parses `ss -tniH state established` (a socket line, then its indented tcp_info line): the connections that
 * sent data after they last received any, with how long ago they sent it. A connection that never received
 * a byte has waited since its request (lastrcv is then its age, not less than lastsnd). One that did and
 * whose last send and receive fall in the same clock tick is an idle keep-alive connection as likely as not:
 * never counted.
 */
export function parseOpenRequests(text: string): OpenRequest[] {
  const found: OpenRequest[] = []
  let socket: { local: string; server: string } | undefined
  for (const line of text.split('\n')) {
    if (!line.trim()) continue
    if (!/^\s/.test(line)) {
      const words = line.trim().split(/\s+/)
      socket = words.length >= 2 ? { local: words[words.length - 2], server: words[words.length - 1] } : undefined
      continue
    }
    if (!socket) continue
    const sent = NUMBER(line, 'lastsnd')
    const received = NUMBER(line, 'lastrcv')
    const everReceived = (NUMBER(line, 'bytes_received') ?? 0) > 0
    if (sent !== undefined && received !== undefined && (received > sent || (!everReceived && received >= sent)))
      found.push({ ...socket, waitingMs: sent })
    socket = undefined
  }
  return found
}

/** The longest the old version took over any request in the record (answered or given up on), in ms. */
export function oldLongestMs(old: Tally): number {
  let longest = 0
  for (const r of old.routes.values())
    longest = Math.max(longest, r.times.quantile(1) ?? 0, r.abandoned.quantile(1) ?? 0)
  return longest
}

/**
 * How long a request to the new version may wait for its answer before it counts as held open: past the
 * latency threshold applied to the longest the old version took on any route (or waited on, as seen in the
 * same table), and never less than LIMITS.openMinMs. An app whose old version holds requests open for long
 * (long polls, streams) raises this bar by itself.
 */
export function openBar(old: Tally, oldOpenMs: number, latency: LatencyThreshold): number {
  return Math.max(LIMITS.openMinMs, pastThreshold(Math.max(oldLongestMs(old), oldOpenMs), latency))
}

/**
 * Requests held open by the new version, gathered over the looks of a run: each connection found waiting
 * past the bar counts once, however many looks find it.
 */
export class HeldOpen {
  private readonly held = new Map<string, number>()
  /** The longest the old version was seen waiting on a request, in ms. */
  oldOpenMs = 0

  /** One look at the table: `isNew`/`isOld` say whose server a request waits on. Returns how many are held. */
  look(
    open: readonly OpenRequest[],
    isNew: (server: string) => boolean,
    isOld: (server: string) => boolean,
    bar: () => number,
  ): number {
    for (const o of open) if (isOld(o.server)) this.oldOpenMs = Math.max(this.oldOpenMs, o.waitingMs)
    const limit = bar()
    for (const o of open)
      if (isNew(o.server) && o.waitingMs > limit) {
        const key = `${o.local}>${o.server}`
        this.held.set(key, Math.max(this.held.get(key) ?? 0, o.waitingMs))
      }
    return this.held.size
  }

  /** The longest wait seen among the requests found held. */
  get longestMs(): number {
    return Math.max(0, ...this.held.values())
  }
}
