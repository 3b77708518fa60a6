// The short deploy history kept on the host (image, time, result), for later rollbacks and status.
import { LIMITS } from '../config.js'
import { command, script, withStdin } from '../commands/shell.js'
import type { CanaryState, HistoryEntry } from '../host/state.js'
import { stateDir } from './lock.js'
import { run, type Remote } from './ssh.js'

export const historyPath = (app: string): string => `${stateDir(app)}/history.json`

export const readHistoryCommand = (app: string) => command('cat', historyPath(app))

export const canaryPath = (app: string): string => `${stateDir(app)}/canary.json`

export const readCanaryCommand = (app: string) => command('cat', canaryPath(app))

// Write beside, then rename: a reader never sees half a file.
const writeFile = (path: string, text: string, what: string) =>
  withStdin(script('mkdir -p "$(dirname "$1")" && cat >"$1.tmp" && mv -f "$1.tmp" "$1"', path), text, what)

export async function appendHistory(remote: Remote, app: string, before: readonly HistoryEntry[], entry: HistoryEntry): Promise<void> {
  const entries = [...before, entry].slice(-LIMITS.historyEntries)
  await run(remote, writeFile(historyPath(app), JSON.stringify(entries, null, 1) + '\n', 'history JSON'), 'writing the deploy history')
}

/** Records the paused canary, or (undefined) clears it. */
export async function writeCanaryState(remote: Remote, app: string, state: CanaryState | undefined): Promise<void> {
  const c = state ? writeFile(canaryPath(app), JSON.stringify(state, null, 1) + '\n', 'canary state JSON') : command('rm', '-f', canaryPath(app))
  await run(remote, c, 'writing the canary state')
}
