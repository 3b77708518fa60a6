// The app's records on the nginx host, beside its lock: the short deploy history (for rollback and status)
// and the paused canary. Read with the lock in one command (host/read.ts); written, and the lock released,
// in one command at the end of a run.
import { LIMITS } from '../config.js'
import { command, script, withStdin, type Command } from '../commands/shell.js'
import { stateDir, type LockClaim } from '../remote/lock.js'
import type { CanaryState, HistoryEntry } from './state.js'

export const historyPath = (app: string): string => `${stateDir(app)}/history.json`
export const canaryPath = (app: string): string => `${stateDir(app)}/canary.json`

/** A file's text, or nothing when it does not exist (exit 0 either way; a read error is an error). */
export const readFile = (path: string): Command => script('[ -e "$1" ] || exit 0; cat "$1"', path)

/** The exit code of a records write that found the lock not this run's: nothing was written. */
export const RECORDS_NOT_OUR_LOCK = 75

// $1 lock dir, $2 this run's token, $3 release (the lock goes once the records are written) or keep; $4 history
// path, $5 the byte length of its new text ('' keeps it); $6 canary path, $7 the byte length of its new text
// ('' keeps it, '-' removes it). The texts come on standard input, history first: a record in argv could
// outgrow what Linux lets one argument hold (MAX_ARG_STRLEN, 128 KiB).
// The token is checked before anything is written, under the flock that serialises taking the lock (see
// remote/lock.ts): a run whose lock was taken over writes nothing (exit RECORDS_NOT_OUR_LOCK), so it cannot
// overwrite the records of the run that holds the lock now. Standard input goes to one file first and each
// text is cut from that file (busybox head reads ahead on a pipe, so two heads cannot share one); an input
// of the wrong length writes nothing. Each record is written beside and renamed: a reader never sees half a
// file.
const FINISH = `lock=$1; token=$2; release=$3; hist=$4; hn=$5; can=$6; cn=$7
dir=\${lock%/*}
mkdir -p "$dir" && exec 9>"$dir/lock.flock" && flock 9 || { echo "cannot take $dir/lock.flock" >&2; exit 2; }
[ "$(cat "$lock/token" 2>/dev/null)" = "$token" ] || { echo "the deploy lock in $lock is not this run's: no record written" >&2; exit ${RECORDS_NOT_OUR_LOCK}; }
in="$dir/.records-in.$$"
trap 'rm -f "$in"' EXIT
cat >"$in" || exit 1
case $cn in '' | -) cb=0 ;; *) cb=$cn ;; esac
want=$((\${hn:-0} + cb)); got=$(wc -c <"$in" | tr -d ' ')
[ "$got" = "$want" ] || { echo "expected $want bytes of records on standard input, got $got: no record written" >&2; exit 1; }
put() { f=$1; shift; mkdir -p "\${f%/*}" && "$@" <"$in" >"$f.tmp" && mv -f "$f.tmp" "$f" || { echo "writing $f failed" >&2; return 1; }; }
rc=0
[ -n "$hn" ] && { put "$hist" head -c "$hn" || rc=1; }
case $cn in '') ;; -) rm -f "$can" || rc=1 ;; *) put "$can" tail -c "$cn" || rc=1 ;; esac
[ "$release" = release ] && { rm -rf "$lock" || rc=1; }
exit $rc`

export interface Records {
  /** The history after this run ('' leaves it as it is). */
  readonly history?: readonly HistoryEntry[]
  /** The canary record after this run: a state, null to clear it, undefined to leave it. */
  readonly canary?: CanaryState | null
}

/**
 * The canary record as it is kept: the newest pushes and judged steps only. A pull request's canary gains
 * some at every push and every run, and its record must stay small enough to be written and read in one
 * command.
 */
export function keptCanary(canary: CanaryState): CanaryState {
  const observations = <T extends { readonly observations?: readonly unknown[] }>(x: T): T =>
    x.observations ? { ...x, observations: x.observations.slice(-LIMITS.canaryObservationsKept) } : x
  const pushes = canary.pushes?.slice(-LIMITS.canaryPushesShown).map(observations)
  return observations({ ...canary, ...(pushes ? { pushes } : {}) })
}

const json = (value: unknown): string => JSON.stringify(value, null, 1) + '\n'

function writeRecords(app: string, records: Records, claim: LockClaim, release: boolean): Command {
  const history = records.history ? json(records.history.slice(-LIMITS.historyEntries)) : undefined
  const canary = records.canary ? json(keptCanary(records.canary)) : undefined
  const length = (text: string | undefined) => (text === undefined ? '' : String(Buffer.byteLength(text)))
  const c = script(
    FINISH,
    claim.dir,
    claim.token,
    release ? 'release' : 'keep',
    historyPath(app),
    length(history),
    canaryPath(app),
    records.canary === null ? '-' : length(canary),
  )
  const what = [
    ...(history === undefined ? [] : [`deploy history, ${length(history)} bytes`]),
    ...(canary === undefined ? [] : [`canary record, ${length(canary)} bytes`]),
  ]
  return what.length ? withStdin(c, (history ?? '') + (canary ?? ''), what.join(' + ')) : c
}

/** Writes the run's records and releases its lock, in one command; nothing when the lock is no longer this run's. */
export const finishCommand = (app: string, records: Records, claim: LockClaim): Command =>
  writeRecords(app, records, claim, true)

/**
 * Writes the canary record now (a paused canary must be on record even if the run dies right after), only
 * while the lock is this run's.
 */
export const writeCanaryCommand = (app: string, canary: CanaryState | null, claim: LockClaim): Command =>
  writeRecords(app, { canary }, claim, false)

export const removeFile = (path: string): Command => command('rm', '-f', path)
