export interface LoadEvent {
  at: number
  ms: number
  kind: 'get' | 'post' | 'slow'
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
  byVersion: Record<string, number>
  lastVersion: string
  sampleErrors: string[]
  events: LoadEvent[]
}
export interface LoadOptions {
  host?: string
  port: number
  workers?: { get?: number; post?: number; slow?: number }
  pauseMs?: number
  timeoutMs?: number
  maxSeconds?: number
}
export function startLoad(options: LoadOptions): { t0: number; snapshot(): LoadReport; stop(): Promise<LoadReport> }
export function summarize(events: LoadEvent[], sent: number): LoadReport
