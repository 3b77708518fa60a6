# shellcheck shell=bash
# Sourced first by every set-up script: strict mode, and no step that fails silently. A command that exits
# non-zero ends the script with one line naming the script, the line and the command, after the command's
# own words (set-up scripts never throw a command's error output away; where a command must be quiet on
# success, its output is kept and shown when it fails: see quietly).
set -Eeuo pipefail
nr_script=${0##*/}
nr_failed() { # exit code, line, command, file
  printf '%s: FAILED (exit %s) at %s line %s: %s\n' "$nr_script" "$1" "${4##*/}" "$2" "$3" >&2
}
trap 'nr_failed $? "$LINENO" "$BASH_COMMAND" "${BASH_SOURCE[0]}"' ERR

# quietly WHAT COMMAND...: runs COMMAND with its output kept; on failure, says what it was doing and shows
# the output (the last 40 lines), then fails with the command's exit code.
quietly() {
  local what=$1 out rc=0
  shift
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '%s: %s failed (exit %s): %s\n' "$nr_script" "$what" "$rc" "$*" >&2
    printf '%s\n' "$out" | tail -n 40 | sed 's/^/  | /' >&2
    return "$rc"
  fi
}
