// The app's records on the nginx host, beside its lock: the short deploy history (for rollback and status)
// and the paused canary. Read with the lock in one command (host/read.ts); written, and the lock released,
// in one command at the end of a run.
import { LIMITS } from '../config.js'
import { command, script, type Command } from '../commands/shell.js'
import { stateDir, type LockClaim } from '../remote/lock.js'
import type { CanaryState, HistoryEntry } from './state.js'

export const historyPath = (app: string): string => `${stateDir(app)}/history.json`
export const canaryPath = (app: string): string => `${stateDir(app)}/canary.json`

/** A file's text, or nothing when it does not exist (exit 0 either way; a read error is an error). */
export const readFile = (path: string): Command => script('[ -e "$1" ] || exit 0; cat "$1"', path)

// $1 history path, $2 its new text ('' keeps it), $3 canary path, $4 its new text ('' keeps it, '-' removes
// it), $5 lock dir, $6 token ('' keeps the lock). Each file is written beside and renamed: a reader never
// sees half a file.
const FINISH = `put() { mkdir -p "\${1%/*}" && printf '%s' "$2" >"$1.tmp" && mv -f "$1.tmp" "$1"; }
rc=0
[ -n "$2" ] && { put "$1" "$2" || { echo "writing $1 failed" >&2; rc=1; }; }
case $4 in '') ;; -) rm -f "$3" || rc=1 ;; *) put "$3" "$4" || { echo "writing $3 failed" >&2; rc=1; } ;; esac
if [ -n "$6" ] && [ "$(cat "$5/token" 2>/dev/null)" = "$6" ]; then rm -rf "$5" || rc=1; fi
exit $rc`

export interface Records {
  /** The history after this run ('' leaves it as it is). */
  readonly history?: readonly HistoryEntry[]
  /** The canary record after this run: a state, null to clear it, undefined to leave it. */
  readonly canary?: CanaryState | null
}

/** Writes the run's records and releases its lock, in one command. */
export function finishCommand(app: string, records: Records, claim: LockClaim | undefined): Command {
  const history = records.history ? JSON.stringify(records.history.slice(-LIMITS.historyEntries), null, 1) + '\n' : ''
  const canary =
    records.canary === undefined ? '' : records.canary === null ? '-' : JSON.stringify(records.canary, null, 1) + '\n'
  return script(FINISH, historyPath(app), history, canaryPath(app), canary, claim?.dir ?? '', claim?.token ?? '')
}

/** Writes the canary record now (a paused canary must be on record even if the run dies right after). */
export const writeCanaryCommand = (app: string, canary: CanaryState | null): Command =>
  finishCommand(app, { canary }, undefined)

export const removeFile = (path: string): Command => command('rm', '-f', path)
