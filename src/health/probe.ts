// Pure judgement of one health probe; the probing itself is an effect (Remote.httpGet).
import type { Config, StatusRange } from '../config.js'
import type { Replica } from '../model.js'
import type { HttpResult } from '../remote/ssh.js'

export const statusAllowed = (status: number | undefined, ranges: readonly StatusRange[]): boolean =>
  status !== undefined && ranges.some((r) => status >= r.min && status <= r.max)

export const describeProbe = (path: string, p: HttpResult): string =>
  p.status !== undefined ? `GET ${path} -> ${p.status}` : `GET ${path} -> ${p.error ?? 'no answer'}`

export const describeRanges = (ranges: readonly StatusRange[]): string =>
  ranges.map((r) => (r.min === r.max ? `${r.min}` : `${r.min}-${r.max}`)).join(',')

/**
 * Whether a probe reached no program at all: the connection was refused, or closed before any answer (Docker's
 * proxy of a published port accepts, then closes when nothing listens in the container). Not a timeout: an
 * app still starting may be slow.
 */
export const nothingListened = (p: HttpResult): boolean =>
  p.status === undefined && /Connection refused|ECONNREFUSED|ECONNRESET|socket hang up/i.test(p.error ?? '')

/**
 * What to change when no probe of a replica ever reached its app: most often the app listens on a port of its
 * own (3000, 5000) instead of the one the action gives it in $PORT.
 */
export function notListeningHint(config: Pick<Config, 'network' | 'containerPort'>, replica: Replica): string {
  const where = `${replica.address}:${replica.port}`
  return config.network === 'host'
    ? `. Nothing listened on ${where}: with network: host the app must listen on $PORT, which the action sets to ${replica.port} for this replica (each replica gets its own port); an app on a fixed port (e.g. 3000) never answers: make it read $PORT`
    : `. Nothing answered on ${where}, published from port ${config.containerPort} of the container: the app must listen there, on all addresses (0.0.0.0, not 127.0.0.1), as container-port says (the action sets $PORT=${config.containerPort} too); an app on another port (e.g. 3000) never answers: set container-port: 3000, or make it read $PORT`
}
