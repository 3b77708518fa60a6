// The short deploy history kept on the host (image, time, result), for later rollbacks and status.
import { LIMITS } from '../config.js'
import { command, script, withStdin } from '../commands/shell.js'
import type { HistoryEntry } from '../host/state.js'
import { stateDir } from './lock.js'
import { run, type Remote } from './ssh.js'

export const historyPath = (app: string): string => `${stateDir(app)}/history.json`

export const readHistoryCommand = (app: string) => command('cat', historyPath(app))

export async function appendHistory(remote: Remote, app: string, before: readonly HistoryEntry[], entry: HistoryEntry): Promise<void> {
  const entries = [...before, entry].slice(-LIMITS.historyEntries)
  // Write beside, then rename: a reader never sees half a file.
  const write = withStdin(script('mkdir -p "$(dirname "$1")" && cat >"$1.tmp" && mv -f "$1.tmp" "$1"', historyPath(app)), JSON.stringify(entries, null, 1) + '\n', 'history JSON')
  await run(remote, write, 'writing the deploy history')
}
