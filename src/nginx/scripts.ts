// The shell that runs where nginx sees its files and processes (inside its container, or on its host), as
// constant scripts with their data in positional parameters. Pure values: nginx.ts runs them.
import type { SudoUse } from '../config.js'
import { SAID_SH, SECTION_SH } from '../remote/frames.js'
import { command, script, withTimeout, type Command } from '../commands/shell.js'

// Functions every nginx-side script shares:
// find_masters: nginx master processes of this PID namespace (nginx processes whose parent is not nginx;
//   masters of containers show in a host's process list too, and are not ours to signal).
// load_args: the -c, -p and -g the master was started with, so nginx -t/-T check the configuration it runs.
// workers: the master's children now (a reload that took effect starts new ones).
// as_root: runs a privileged command (nginx -t/-T/-s reload, writing the managed file, emptying the traffic
// log) through sudo -n when NR_SUDO says so: yes, or auto when this user is not root. Each such command is one
// of the fixed command lines of sudoCommands(), so that sudoers can allow exactly those and nothing more.
// A process whose PID namespace cannot be read (a root process, read by a user who is not root) is told
// apart by the depth of its NSpid line, which /proc/PID/status shows to everyone.
const PRIVILEGE = `PATH="$PATH:/usr/sbin:/usr/local/sbin:/usr/local/nginx/sbin"
case \${NR_SUDO:-no} in yes) nr_as='sudo -n' ;; auto) if [ "$(id -u)" = 0 ]; then nr_as=; else nr_as='sudo -n'; fi ;; *) nr_as= ;; esac
nr_nginx=$(command -v nginx 2>/dev/null) || nr_nginx=nginx
as_root() { $nr_as "$@"; }
# empty_file: the traffic log, started or cut back to empty (nginx appends, so a truncation is safe while it writes).
empty_file() {
  if [ -n "$nr_as" ]; then $nr_as "$(command -v truncate)" -s 0 "$1"; else mkdir -p "\${1%/*}" && : >"$1"; fi
}
`
const LIB = `${SECTION_SH}${PRIVILEGE}nspid_depth() {
  while read -r k v; do [ "$k" = NSpid: ] && { set -- $v; echo $#; return; }; done <"$1/status" 2>/dev/null
}
find_masters() {
  self=$(readlink /proc/self/ns/pid 2>/dev/null)
  for c in $(grep -l -x nginx /proc/[0-9]*/comm 2>/dev/null); do
    d=\${c%/comm}
    read -r _ _ _ pp _ <"$d/stat" 2>/dev/null || continue
    [ "$(cat "/proc/$pp/comm" 2>/dev/null)" = nginx ] && continue
    ns=$(readlink "$d/ns/pid" 2>/dev/null)
    if [ -n "$self" ] && [ -n "$ns" ]; then [ "$ns" != "$self" ] && continue
    else [ "$(nspid_depth "$d")" = "$(nspid_depth /proc/self)" ] || continue; fi
    printf '%s ' "\${d#/proc/}"
  done
}
load_args() {
  conf=; prefix=; glob=; nr_prev=
  tr '\\000' '\\n' <"/proc/$1/cmdline" >"$nr_t/args" 2>/dev/null
  while IFS= read -r nr_a; do
    case $nr_prev in -c) conf=$nr_a ;; -p) prefix=$nr_a ;; -g) glob=$nr_a ;; esac
    case $nr_a in -c?*) conf=\${nr_a#-c} ;; -p?*) prefix=\${nr_a#-p} ;; -g?*) glob=\${nr_a#-g} ;; esac
    nr_prev=$nr_a
  done <"$nr_t/args"
}
run_nginx() { as_root "$nr_nginx" \${conf:+-c "$conf"} \${prefix:+-p "$prefix"} \${glob:+-g "$glob"} "$@"; }
workers() {
  # The kernel's list of the master's children when it keeps one (CONFIG_PROC_CHILDREN); else every process's parent.
  if [ -r "/proc/$1/task/$1/children" ]; then cat "/proc/$1/task/$1/children"; return; fi
  for s in /proc/[0-9]*/stat; do
    read -r pid comm _ ppid _ <"$s" 2>/dev/null || continue
    [ "$ppid" = "$1" ] && [ "$comm" = "(nginx)" ] && printf '%s ' "$pid"
  done
}
`

// $1 the managed file, $2 host names to resolve, $3 the app's traffic log, $4 'listening' for the host's
// listening sockets (host mode), $5 the app's switch-back flag. Sections: masters; with exactly one
// master, sudo (when privileged commands go through sudo: the user, then what sudo allows, see may), version
// (nginx -V on stderr) and dump (nginx -T); managed: the file's kind on the first line (absent, symlink, not-a-file, file), then its text.
const READ = `${LIB}managed() {
  if [ -L "$1" ]; then echo symlink; elif [ ! -e "$1" ]; then echo absent; elif [ ! -f "$1" ]; then echo not-a-file; else echo file; cat "$1"; fi
}
# The addresses nginx resolves host names to, as it logs them ('name address' lines): by getent where there
# is one, else from /etc/hosts.
resolve() {
  for n; do
    if command -v getent >/dev/null 2>&1; then getent ahosts "$n" | awk -v n="$n" '{ print n, $1 }' | sort -u
    else awk -v n="$n" '$1 !~ /^#/ { for (i = 2; i <= NF; i++) if ($i == n) print n, $1 }' /etc/hosts; fi
  done
}
# Whether sudo lets this user run each privileged command, before any of them runs: a tab-separated line each,
# allowed or denied, the command line, and what sudo said.
may() {
  if sudo -n -l "$@" >/dev/null 2>"$nr_t/sudo-e"; then printf 'allowed\\t%s\\n' "$*"
  else printf 'denied\\t%s\\t%s\\n' "$*" "$(head -n 1 "$nr_t/sudo-e")"; fi
}
may_nginx() { may "$nr_nginx" \${conf:+-c "$conf"} \${prefix:+-p "$prefix"} \${glob:+-g "$glob"} "$@"; }
probe_sudo() {
  id -un
  set -- "$@" "$(command -v tee)" "$(command -v rm)" "$(command -v truncate)"
  may_nginx -T; may_nginx -t; may_nginx -s reload
  may "$4" "$1"; may "$5" -f "$1"; may "$6" -s 0 "$2"
  may "$6" -s 0 "$3"; may "$5" -f "$3"
}
[ -n "$2" ] && section resolve resolve $2
m=$(find_masters)
section masters echo $m
f=$1; log=$3; flag=$5
set -- "$1" $m
if [ $# -eq 2 ]; then
  load_args "$2"
  [ -n "$nr_as" ] && section sudo probe_sudo "$f" "$log" "$flag"
  section version "$nr_nginx" -V
  section dump run_nginx -T
fi
[ "$4" = listening ] && section listening ss -ltnpH
section managed managed "$f"
exit 0`

// $1 the managed file, $2 its sha256 as this run read it ('absent' when there was none), $3 the master's
// pid, $4 write (the new text on standard input) or remove, $5 server names whose conflicts fail the change,
// $6 the switch-back flag ('' where the script may not create it): removed once nginx reloaded with any new
// file, so a flag a killed run left never outlives the next change.
// apply_change, with the master's arguments loaded (load_args): the change, in a subshell of its own (its exits
// and traps are its own), so a held session runs it as a function without starting a shell for it.
// Under the nginx lock (see nginxLocked): the file must still be what the run read; the new one takes its
// place only for nginx -t, which checks the whole configuration with it; on any failure the previous file
// (or none) is back before the lock is released. So it is on a TERM, INT or HUP too (the command's deadline
// ends it with TERM, see renderRemote): a file nginx has not accepted must not stay where the next reload
// would load it. `placed` says the new file may be in place and not yet accepted; restore can run twice.
// Exit codes: see APPLY_FAILURES.
const APPLY_CHANGE = `apply_change() (
f=$1; want=$2; master=$3; op=$4; names=$5; flag=$6
d=\${f%/*}; b=\${f##*/}
# Through sudo the new and the previous file wait in this run's own folder, and tee puts one in place (a mv
# into nginx's folder would need a command sudoers cannot pin to one file); else they wait beside the file.
if [ -n "$nr_as" ]; then stage=$nr_t; else stage=$d; fi
new="$stage/.$b.nginx-rollout-new"; backup="$stage/.$b.nginx-rollout-prev"; placed=
put() { if [ -n "$nr_as" ]; then $nr_as "$(command -v tee)" "$f" <"$1" >/dev/null; else mv -f "$1" "$f"; fi; }
del() { if [ -n "$nr_as" ]; then $nr_as "$(command -v rm)" -f "$f"; else rm -f "$f"; fi; }
reload() { if [ -n "$nr_as" ]; then run_nginx -s reload >&2; else kill -HUP "$master"; fi; }
restore() {
  if [ -n "$placed" ]; then
    if [ "$cur" = absent ]; then del; elif [ -e "$backup" ]; then put "$backup"; fi
    placed=
  fi
  rm -f "$new"
}
trap 'restore; exit 143' TERM
trap 'restore; exit 130' INT
trap 'restore; exit 129' HUP
if [ -e "$f" ] || [ -L "$f" ]; then cur=$(sha256sum "$f" 2>/dev/null | cut -d' ' -f1); else cur=absent; fi
[ "$cur" = "$want" ] || { echo "$f changed since this run read it (now $cur)" >&2; exit 71; }
if [ "$op" = write ]; then cat >"$new" || { restore; exit 72; }; fi
if [ "$cur" != absent ]; then cp -p "$f" "$backup" || { restore; exit 72; }; fi
# The master's children, read without starting a process where the kernel lists them (polled below).
kids=/proc/$master/task/$master/children
now_workers() { if [ -r "$kids" ]; then read -r nr_w <"$kids" || :; else nr_w=$(workers "$master"); fi; }
now_workers; before=" $nr_w"
placed=1
if [ "$op" = write ]; then put "$new" || { restore; exit 72; }; else del || { restore; exit 72; }; fi
out=$(run_nginx -t 2>&1) || { restore; printf '%s\\n' "$out" >&2; exit 11; }
for n in $names; do
  case $out in *"conflicting server name \\"$n\\""*) restore; printf '%s\\n' "$out" >&2; exit 12 ;; esac
done
reload || { restore; exit 13; }
i=0
while [ $i -lt 1500 ]; do
  now_workers
  for w in $nr_w; do
    case "$before " in *" $w "*) ;; *)
      placed=; rm -f "$backup"; [ -z "$flag" ] || [ ! -e "$flag" ] || as_root "$(command -v rm)" -f "$flag"; echo "nginx $master reloaded"; exit 0 ;;
    esac
  done
  sleep 0.01; i=$((i + 1))
done
restore
exit 14
)
`

const APPLY = `${LIB}${APPLY_CHANGE}load_args "$3"
apply_change "$@"`

/** What each exit code of the apply script means. */
export const APPLY_FAILURES: Record<number, string> = {
  11: 'nginx -t rejected the configuration with the new file (the previous file is back, nginx was not reloaded)',
  12: 'the new server block conflicts with a server name another server block already uses on the same listen (the previous file is back)',
  13: 'signalling the nginx master failed (the previous file is back)',
  14: 'nginx started no workers with the new configuration within 15 s of the reload signal (the previous file is back)',
  71: 'the managed file changed since this run read it: another change is under way; run again',
  72: 'writing the managed file failed (the previous file is back)',
  75: 'this run no longer holds the deploy lock of the app (another run took it over): nothing was changed',
  76: "another app's nginx change held the nginx lock too long",
  77: 'the nginx lock file cannot be opened',
}

// own_lock, with lockdir and token set: this run still holds its app's deploy lock (75 if not).
// take_locks, with lockdir, token, lockfile and wait set: this run still holds its app's deploy lock (the
// token in lockdir), then the nginx lock (lockfile on fd 9, waited for at most wait seconds). Every nginx change
// of every app on this nginx goes through the one lock, and only while the run still holds its app's deploy
// lock (a run whose lock was taken over must change nothing). Returns APPLY_FAILURES's 75, 77 or 76. Builtins
// where they do (a change in a held session pays only flock when the lock is free).
const TAKE_LOCKS = `own_lock() {
  read -r nr_held <"$lockdir/token" 2>/dev/null || :
  [ "$nr_held" = "$token" ] || return 75
}
take_locks() {
  own_lock || return 75
  [ -d "\${lockfile%/*}" ] || mkdir -p "\${lockfile%/*}" || return 77
  exec 9>>"$lockfile" || return 77
  flock -n -x 9 || timeout "$wait" flock -x 9 || return 76
}
`

// $1 the app's deploy lock dir, $2 this run's lock token, $3 the nginx lock file, $4 seconds to wait for it;
// then the command to run under both locks (see take_locks).
const LOCKED = `${TAKE_LOCKS}lockdir=$1; token=$2; lockfile=$3; wait=$4; shift 4
take_locks || exit $?
"$@"`

// The session a run holds where nginx runs while it judges a new version: every nginx change then goes to a
// process already running there, so none starts one. Why: starting a process is most of a change's time under
// load (a docker exec into the nginx container alone: 0.45 s under the benchmark's load, 0.18 s idle), and a
// switch back comes while users see the new version's errors.
// $1-$4 as for LOCKED, then the command that runs SESSION_INSIDE where nginx runs, started at once on a fifo.
// Our input, one word at a time (the run sends the next only once the last one's section came):
// - 'switch': the deploy lock still this run's, passed on: requests go back at once (the switch-back flag),
//   before any lock is waited for.
// - 'go <sha256 of the file live now> <length>' and the new file: both locks taken as for LOCKED, passed on;
//   the nginx lock released once the change is over (the inside says 'done' on its standard error).
// - the end of input (or any other word): the session ends, nothing changed.
// A word refused here (the deploy lock is another run's, the nginx lock not had) gets a section of its own with
// the code, and its file is read and dropped. The read builtin takes a pipe byte by byte and head -c reads no
// further than the file, so each word is read whole and nothing of the next.
const SESSION = `${TAKE_LOCKS}${SAID_SH}lockdir=$1; token=$2; lockfile=$3; wait=$4; shift 4
t=$(mktemp -d) || exit 77
mkfifo "$t/in" "$t/done" || { rm -rf "$t"; exit 77; }
"$@" <"$t/in" 2>"$t/done" &
inner=$!
exec 8>"$t/in" 7<"$t/done"
rm -rf "$t"
done_with() { exec 8>&- 7<&-; wait "$inner"; exit "$1"; }
while IFS=' ' read -r word hash len; do
  case $word in
  switch) if own_lock; then echo switch >&8; else said switch 75; fi ;;
  go)
    take_locks; c=$?
    if [ "$c" -ne 0 ]; then exec 9>&-; head -c "$len" >/dev/null; said change "$c"; continue; fi
    printf 'go %s %s\\n' "$hash" "$len" >&8
    head -c "$len" >&8 || done_with 77
    while IFS= read -r line <&7; do case $line in "done "*) break ;; esac; done
    exec 9>&- ;;
  *) done_with 0 ;;
  esac
done
done_with 0`

// Where nginx runs, behind SESSION: $1 the managed file, $2 the master's pid, $3 server names whose conflicts
// fail a change, $4 the switch-back flag ('' where it may not create it). Says 'ready' (a section) once
// running; then each 'go' runs apply_change on the file that follows it, and 'switch' creates the flag, each
// answered with its section ('change' with apply_change's exit code, and its output when it failed). A
// change that went through is said with no process started (SAID_SH).
const SESSION_INSIDE = `${LIB}${SAID_SH}${APPLY_CHANGE}f=$1; master=$2; names=$3; flag=$4
load_args "$master"
mkdir -p "$nr_t/change"
said ready 0
while IFS=' ' read -r nr_word nr_want nr_len; do
  case $nr_word in
  switch) if [ -n "$flag" ] && empty_file "$flag"; then said switch 0; else said switch 1; fi ;;
  go)
    head -c "$nr_len" >"$nr_t/next" || exit 72
    apply_change "$f" "$nr_want" "$master" write "$names" "$flag" <"$nr_t/next" >"$nr_t/change/o" 2>"$nr_t/change/e"
    nr_c=$?
    if [ "$nr_c" -eq 0 ]; then said change 0; else frame change "$nr_c"; fi
    echo "done $nr_c" >&2 ;;
  *) exit 0 ;;
  esac
done
exit 0`

/**
 * The session held for the nginx changes of a run that judges a new version (see SESSION): each change of
 * `managedPath` is sent to it as sessionChange, a switch back preceded by SESSION_SWITCH. Its sections, in
 * order: 'ready', then one per word ('switch'; 'change': the apply's exit code, and its output when it failed).
 */
export const nginxSession = (
  fence: { lockDir: string; token: string },
  lockFile: string,
  waitSeconds: number,
  place: NginxPlace,
  managedPath: string,
  masterPid: number,
  conflictNames: readonly string[],
  switchFlag: string,
): Command => {
  const inside = place.inside(SESSION_INSIDE, [managedPath, String(masterPid), conflictNames.join(' '), switchFlag])
  return {
    ...inside,
    argv: script(SESSION, fence.lockDir, fence.token, lockFile, String(waitSeconds), ...inside.argv).argv,
  }
}

/** The word that sends requests back at once (the switch-back flag), before a switch back's change. */
export const SESSION_SWITCH = 'switch\n'

/** The word and file that change the managed file to `text` in a held session, the file live now being `liveHash`. */
export const sessionChange = (liveHash: string, text: string): string =>
  `go ${liveHash} ${Buffer.byteLength(text)}\n${text}`

export const nginxLocked = (
  fence: { lockDir: string; token: string },
  lockFile: string,
  waitSeconds: number,
  inner: Command,
): Command => ({
  ...inner,
  argv: script(LOCKED, fence.lockDir, fence.token, lockFile, String(waitSeconds), ...inner.argv).argv,
})

/** The first line a follow of the traffic log prints, once the log is empty (see LOG_FOLLOW). */
export const RECORD_FOLLOWED = 'nginx-rollout: following the record'

// $1 the app's traffic log, $2 the most bytes it may grow to, $3 seconds between reads: starts it empty
// (nginx appends, so a truncation is safe while it writes), then prints what nginx writes as it comes until
// standard input ends (the run closes it when it is done, or the connection goes). Read with cat from one
// open descriptor, whose offset carries on: any sh and cat do (busybox's tail -f waits a second between
// reads). Past $2 bytes the file is cut back to empty and read again from its start. Its first line says the
// file is empty (RECORD_FOLLOWED): from then on nothing nginx writes there is missed.
const LOG_FOLLOW = `${PRIVILEGE}f=$1; max=$2; every=$3
empty_file "$f" || exit 1
echo '${RECORD_FOLLOWED}'
(
  exec 3<"$f"
  while :; do
    cat <&3
    if [ "$(wc -c <"$f" 2>/dev/null || echo 0)" -gt "$max" ]; then empty_file "$f"; exec 3<"$f"; fi
    sleep "$every"
  done
) &
r=$!
cat >/dev/null
kill $r 2>/dev/null
exit 0`

/** Where a script runs: inside the nginx container, or on the host nginx is installed on. */
export interface NginxPlace {
  readonly mode: 'container' | 'host'
  /** The command that runs `text` with `args` where nginx sees its files and processes. */
  inside(text: string, args: readonly string[]): Command
}

export const containerPlace = (container: string): NginxPlace => ({
  mode: 'container',
  inside: (text, args) => command('docker', 'exec', '--interactive', '--', container, 'sh', '-c', text, 'sh', ...args),
})

/** nginx installed on the host; its privileged commands run through sudo as `sudo` says (see as_root). */
export const hostPlace = (sudo: SudoUse): NginxPlace => ({
  mode: 'host',
  inside: (text, args) => command('env', `NR_SUDO=${sudo}`, ...script(text, ...args).argv),
})

// $1 the container; then the read script and its arguments. The host's listening sockets first (a container
// the run starts must be able to listen). The read runs inside at once (a running
// container is the usual case), the container's state beside it, as a section; when the read cannot run
// there (no such container, or stopped), the state says why.
const CONTAINER_READ = `${SECTION_SH}c=$1; shift
section listening ss -ltnpH
section container docker inspect --format '{{.State.Running}} {{.HostConfig.NetworkMode}}' -- "$c" >"$nr_t/state" &
docker exec --interactive -- "$c" sh -c "$@" 2>/dev/null
wait
cat "$nr_t/state"`

/**
 * Reads nginx, its managed file, what `hostNames` (upstream addresses that are not IPs) resolve to, and
 * (through sudo) whether sudo allows each privileged command on the managed file and `trafficLog`.
 */
export function readNginx(
  place: NginxPlace,
  container: string,
  managedPath: string,
  trafficLog: string,
  switchFlag: string,
  hostNames: readonly string[] = [],
): Command {
  const names = hostNames.join(' ')
  return place.mode === 'container'
    ? script(CONTAINER_READ, container, READ, 'sh', managedPath, names, trafficLog, '', switchFlag)
    : place.inside(READ, [managedPath, names, trafficLog, 'listening', switchFlag])
}

/**
 * The privileged command lines of host mode through sudo, as sudoers must allow them (paths as Debian and
 * Ubuntu install them; the run's own check names the paths it found). Each is pinned to one file: a sudoers
 * wildcard would match spaces and other paths too, so `tee /etc/nginx/conf.d/*` would let the user write
 * /etc/sudoers.d as well.
 */
export const sudoCommands = (
  managedPath: string,
  trafficLog: string,
  switchFlag: string,
  nginx = '/usr/sbin/nginx',
): string[] => [
  `${nginx} -T`,
  `${nginx} -t`,
  `${nginx} -s reload`,
  `/usr/bin/tee ${managedPath}`,
  `/usr/bin/rm -f ${managedPath}`,
  `/usr/bin/truncate -s 0 ${trafficLog}`,
  `/usr/bin/truncate -s 0 ${switchFlag}`,
  `/usr/bin/rm -f ${switchFlag}`,
]

export const applyManagedFile = (
  place: NginxPlace,
  managedPath: string,
  expected: string,
  masterPid: number,
  op: 'write' | 'remove',
  conflictNames: readonly string[],
  switchFlag: string,
): Command => place.inside(APPLY, [managedPath, expected, String(masterPid), op, conflictNames.join(' '), switchFlag])

/** Follows the app's traffic log from empty until the command's standard input ends. */
export const followTrafficLog = (
  place: NginxPlace,
  path: string,
  maxBytes: number,
  everyMs: number,
  maxSeconds: number,
): Command => withTimeout(place.inside(LOG_FOLLOW, [path, String(maxBytes), String(everyMs / 1000)]), maxSeconds)

/**
 * The nginx host's established TCP connections to `servers` ('address:port', as nginx logs them), with their
 * timings: judge/open.ts finds there the requests nginx is still waiting on. Run on the host, not in an nginx
 * container: ss is iproute2's (already needed for the listen check) and the action's containers share the
 * host's network.
 */
export const openConnections = (servers: readonly string[]): Command =>
  withTimeout(
    command(
      'ss',
      '-tniH',
      'state',
      'established',
      '(',
      ...servers.flatMap((s, i) => (i ? ['or', 'dst', s] : ['dst', s])),
      ')',
    ),
    10,
  )

// $1 the container, created and not yet started. The image's default site listens on port 80: on a host
// network where anything else holds port 80 (another app's nginx, a web server) the new nginx would not start
// at all. So before its first start the site is copied aside and a comment takes its place. Nothing to set
// aside (another layout, a symlink) is no error.
const SET_ASIDE_DEFAULT_SITE = `c=$1; f=/etc/nginx/conf.d/default.conf
t=$(mktemp -d) || exit 0
if docker cp "$c:$f" "$t/site" 2>/dev/null && [ -f "$t/site" ] && [ ! -L "$t/site" ]; then
  echo "# nginx-rollout created this container and set the image's default site aside before nginx first started: default.conf.disabled-by-nginx-rollout" >"$t/comment"
  docker cp "$t/site" "$c:$f.disabled-by-nginx-rollout" && docker cp "$t/comment" "$c:$f"
fi
rm -rf "$t"
exit 0`

/** Sets the image's default site aside in a container the action just created, before it first starts. */
export const setAsideImageDefaultSite = (container: string): Command => script(SET_ASIDE_DEFAULT_SITE, container)

export const nginxErrorLog = (place: NginxPlace, container: string, lines: number): Command =>
  place.mode === 'container'
    ? command('docker', 'logs', '--tail', String(lines), '--', container)
    : script('tail -n "$1" /var/log/nginx/error.log 2>&1', String(lines))
