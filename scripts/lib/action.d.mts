export const root: string
export interface TestHost {
  host: string
  port: number
  user: string
  /** The SSH user's home on the host, where the action keeps its records (~/.nginx-rollout). */
  home: string
  key: string
  fingerprint: string
}
export interface ActionRun {
  code: number
  stdout: string
  /** stdout with workflow-command escapes decoded, as the runner displays it. */
  log: string
  stderr: string
  outputs: Record<string, string>
  summary: string
}
/** `as: 'deploy'`: the test host's non-root user with only docs/vps.md's sudoers lines. */
export function testHost(options?: { as?: 'deploy' }): TestHost
export function baseInputs(h: TestHost, app: string, listenPort: number): Record<string, string>
export function parseOutputs(text: string): Record<string, string>
export function runAction(
  inputs: Record<string, string>,
  options?: {
    debug?: boolean
    /** Called with all output so far whenever more arrives. */
    onStdout?: (soFar: string, child: import('node:child_process').ChildProcess) => void
    /** More environment for the run: the GITHUB_* variables a workflow run has. */
    env?: Record<string, string>
  },
): Promise<ActionRun>
export function resetApp(app: string): void
/** Removes the containers `left()` lists until it lists none (a background retirement may be removing them too). */
export function removeUntilGone(left: () => string[], remove: (ids: string[]) => void): void
export function decodeCommands(text: string): string
