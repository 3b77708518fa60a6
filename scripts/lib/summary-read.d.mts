export interface SummaryFigures {
  readonly phases: Record<string, number>
  readonly stepSeconds: number
  readonly routeSeconds: number[]
  readonly reloads: number
  readonly switchedSeconds: number | undefined
  readonly endedSeconds: number | undefined
  readonly sshConnections: number
  readonly remoteCommands: number
}
export declare function readSummary(summary: string): SummaryFigures
