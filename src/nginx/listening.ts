// Pure: what holds the app's listen address on the nginx host, from `ss -ltnpH` there. A port another process
// holds makes a new nginx container fail to start, and the host's nginx fail to reload ("started no
// workers"): found when nginx is read, before any change, and named with what holds it.
import { sameListen } from './dump.js'

/** A listening TCP socket: its local address as nginx would write it ('*:80', '127.0.0.1:80', '[::]:80'). */
export interface Listening {
  readonly listen: string
  /** The processes holding it, as ss names them ('' when ss may not show them: another user's socket). */
  readonly process: string
}

/** The sockets of `ss -ltnpH` output. */
export function parseListening(text: string): Listening[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((w) => w[0] === 'LISTEN' && w[3])
    .map((w) => {
      const local = w[3].replace(/%[^:\]]+(?=:\d+$)/, '') // 0.0.0.0%lo:53: the interface is no address
      const m = /^(.*):(\d+)$/.exec(local)
      const address = m?.[1] === '0.0.0.0' || m?.[1] === '*' ? '*' : (m?.[1] ?? '')
      const users = w.slice(5).join(' ')
      const names = [...users.matchAll(/\("([^"]+)",pid=(\d+)/g)].map((p) => `${p[1]} (pid ${p[2]})`)
      return { listen: `${address}:${m?.[2] ?? ''}`, process: [...new Set(names)].join(', ') }
    })
}

/** The sockets that take `listen` (the app's listen input) from whoever would bind it next. */
export const holdersOf = (sockets: readonly Listening[], listen: string): Listening[] =>
  sockets.filter((s) => sameListen(s.listen, /^\d+$/.test(listen) ? `*:${listen}` : listen))

/** The problem of `listen` already held on `where`; `by`: what the run would start there. */
export function heldProblem(held: readonly Listening[], listen: string, where: string, by: string): string {
  const what = held.map((h) => `${h.listen} by ${h.process || 'another process (ss shows only your own processes)'}`)
  return `listen ${listen}: the address is already held on ${where} (${what.join('; ')}), so ${by} could not listen there. Free it, set listen to another address, or let this nginx serve the app (nginx-mode host)`
}
