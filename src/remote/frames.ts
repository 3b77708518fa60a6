// One remote command can answer several questions: each answer is a section, framed by a header line with
// its name, exit code and byte lengths, so no content (a config file, a log) can be taken for a header.
import { render, script, type Command } from '../commands/shell.js'

/**
 * Shell functions for scripts that print sections; `section NAME COMMAND...` runs COMMAND and frames it,
 * keeping its output in $nr_t/NAME (so sections can run side by side); `frame NAME CODE` frames what is
 * there.
 */
export const SECTION_SH = `nr_t=$(mktemp -d) || exit 1
trap 'rm -rf "$nr_t"' EXIT
frame() {
  printf '\\n@@nginx-rollout %s %s %s %s\\n' "$1" "$2" "$(wc -c <"$nr_t/$1/o" | tr -d ' ')" "$(wc -c <"$nr_t/$1/e" | tr -d ' ')"
  cat "$nr_t/$1/o" "$nr_t/$1/e"
}
section() {
  nr_n=$1; shift
  mkdir -p "$nr_t/$nr_n"
  "$@" >"$nr_t/$nr_n/o" 2>"$nr_t/$nr_n/e"; nr_c=$?
  frame "$nr_n" "$nr_c"
}
`

/** `said NAME CODE`: a section without output, one printf (a builtin): no process starts to print it. */
export const SAID_SH = `said() { printf '\\n@@nginx-rollout %s %s 0 0\\n' "$1" "$2"; }
`

export interface Section {
  readonly code: number
  /** Bytes as the command wrote them (a section may hold sections of its own). */
  readonly out: Buffer
  readonly err: Buffer
}

export const text = (b: Buffer | undefined): string => b?.toString('utf8') ?? ''

const HEADER = /^\n@@nginx-rollout (\S+) (\d+) (\d+) (\d+)\n/
const MARKER = Buffer.from('\n@@nginx-rollout ')

/**
 * The first whole section of `raw` at or after byte `from`, and where it ends; undefined until one is whole.
 * Text before its header (a login banner) is skipped.
 */
export function nextSection(
  raw: Buffer,
  from = 0,
): { readonly name: string; readonly section: Section; readonly end: number } | undefined {
  const at = raw.indexOf(MARKER, from)
  if (at < 0) return undefined
  const end = raw.indexOf(0x0a, at + 1)
  if (end < 0) return undefined
  const m = HEADER.exec(raw.subarray(at, end + 1).toString('latin1'))
  if (!m) return undefined
  const [, name, code, outLen, errLen] = m
  const start = end + 1
  // A section cut short (the connection went away, or the rest still coming) is not a section yet.
  if (start + Number(outLen) + Number(errLen) > raw.length) return undefined
  const out = raw.subarray(start, start + Number(outLen))
  const err = raw.subarray(start + Number(outLen), start + Number(outLen) + Number(errLen))
  return { name, section: { code: Number(code), out, err }, end: start + Number(outLen) + Number(errLen) }
}

/** The sections of a framed output, by name. Text before the first header (a login banner) is skipped. */
export function parseSections(raw: Buffer): Map<string, Section> {
  const sections = new Map<string, Section>()
  let next = nextSection(raw)
  while (next) {
    sections.set(next.name, next.section)
    // Sections follow one another: anything else after one ends the framed output.
    if (!raw.subarray(next.end, next.end + MARKER.length).equals(MARKER)) break
    next = nextSection(raw, next.end)
  }
  return sections
}

/**
 * One remote command that runs several, side by side, each framed as a section: an SSH session costs a
 * round trip, so a host is read in one. `first`, when given, must succeed before the others run (the lock);
 * its exit code is the command's when it fails. Each part is rendered by render(), the one quoting function.
 */
export function sectioned(
  first: Command | undefined,
  parts: ReadonlyArray<{ readonly name: string; readonly command: Command }>,
): Command {
  return script(
    `${SECTION_SH}if [ -n "$1" ]; then section first sh -c "$1"; [ "$nr_c" -eq 0 ] || exit "$nr_c"; fi
shift
nr_i=0
while [ $# -ge 2 ]; do nr_i=$((nr_i + 1)); section "$1" sh -c "$2" >"$nr_t/part$nr_i" & shift 2; done
wait
nr_j=1
while [ $nr_j -le $nr_i ]; do cat "$nr_t/part$nr_j"; nr_j=$((nr_j + 1)); done`,
    first ? render(first) : '',
    ...parts.flatMap((p) => [p.name, render(p.command)]),
  )
}
