// Pure judgement of one health probe; the probing itself is an effect (Remote.httpGet).
import type { StatusRange } from '../config.js'
import type { HttpResult } from '../remote/ssh.js'

export const statusAllowed = (status: number | undefined, ranges: readonly StatusRange[]): boolean =>
  status !== undefined && ranges.some((r) => status >= r.min && status <= r.max)

export const describeProbe = (path: string, p: HttpResult): string =>
  p.status !== undefined ? `GET ${path} -> ${p.status}` : `GET ${path} -> ${p.error ?? 'no answer'}`

export const describeRanges = (ranges: readonly StatusRange[]): string =>
  ranges.map((r) => (r.min === r.max ? `${r.min}` : `${r.min}-${r.max}`)).join(',')
