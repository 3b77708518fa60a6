// The short deploy history kept on the host (image, time, result), for later rollbacks and status.
import { LIMITS } from '../config.js'
import { command, script, withStdin } from '../commands/shell.js'
import { parseCanaryState, parseHistory, type CanaryState, type HistoryEntry } from '../host/state.js'
import { stateDir } from './lock.js'
import { run, type Remote } from './ssh.js'

export const historyPath = (app: string): string => `${stateDir(app)}/history.json`

export const canaryPath = (app: string): string => `${stateDir(app)}/canary.json`

/** Both state files in one round trip: the history, a NUL byte (JSON never holds one), the canary state. A missing file reads as empty. */
export const readStateFiles = (app: string) => script('cat "$1" 2>/dev/null; printf "\\000"; cat "$2" 2>/dev/null; true', historyPath(app), canaryPath(app))

export function parseStateFiles(output: string): { history: HistoryEntry[]; canary?: CanaryState } {
  const [history = '', canary = ''] = output.split('\0')
  return { history: parseHistory(history), canary: parseCanaryState(canary) }
}

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
