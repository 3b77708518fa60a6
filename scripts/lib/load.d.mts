export interface LoadEvent {
  at: number
  ms: number
  kind: 'get' | 'post' | 'slow' | 'long'
  ok: boolean
  status: number
  error?: string
  version: string
}
export interface LoadReport {
  sent: number
  answered: number
  ok: number
  failed: number
  failedByKind: Record<string, number>
  /** Failures that were a connection reset (a keep-alive connection closed as the request went out). */
  resets: number
  byVersion: Record<string, number>
  lastVersion: string
  sampleErrors: string[]
  events: LoadEvent[]
}
export interface LoadOptions {
  host?: string
  port: number
  workers?: { get?: number; post?: number; slow?: number; long?: number }
  pauseMs?: number
  timeoutMs?: number
  maxSeconds?: number
  /** One reused keep-alive connection per worker, instead of a fresh connection per request. */
  keepAlive?: boolean
  headers?: Record<string, string>
}
export function startLoad(options: LoadOptions): { t0: number; snapshot(): LoadReport; stop(): Promise<LoadReport> }
export function summarize(events: LoadEvent[], sent: number): LoadReport
export function underLoad<T>(
  options: LoadOptions,
  action: () => Promise<T>,
  explain?: (value: T) => string,
): Promise<{ value: T; load: LoadReport }>
export function outsideClient(options: {
  host?: string
  port: number
  perSecond: number
  next: (i: number) => { path: string; abortMs?: number }
}): { stop(): Promise<number> }
