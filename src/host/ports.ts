// Which ports and container names an app host already uses, whoever uses them: every container (labelled by
// the action or not), every port published or listening, and the ports other deploys have reserved. New
// replicas get only ports and names nothing holds, and a deploy reserves its ports before it starts any
// replica, so two apps deploying on one host at once never pick the same port.
import { script, type Command } from '../commands/shell.js'
import { LIMITS } from '../config.js'

/** What an app host holds, from any source: ports in use and container names taken. */
export interface HostUsage {
  readonly ports: ReadonlySet<number>
  readonly names: ReadonlySet<string>
  /** Ports another app's deploy reserved (and has not released), with that app. */
  readonly reserved: ReadonlyMap<number, string>
}

export const NO_USAGE: HostUsage = { ports: new Set(), names: new Set(), reserved: new Map() }

/** Where the port reservations of every app live on an app host (one file per port). */
export const reservationDir = `${LIMITS.stateDir}/ports`

// Lines: 'name NAME' per container, 'published PORTS' per container (docker's Ports column), 'listening HEX'
// per listening TCP socket of this network namespace, 'reserved PORT APP UNTIL' per live reservation.
const READ_USAGE = `docker ps --all --format 'name {{.Names}}
published {{.Ports}}' 2>/dev/null
cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "0A" { split($2, a, ":"); print "listening " a[2] }'
now=$(date +%s)
for f in "$1"/*; do
  [ -f "$f" ] || continue
  read -r app _ until <"$f" 2>/dev/null || continue
  [ "\${until:-0}" -gt "$now" ] 2>/dev/null && echo "reserved \${f##*/} $app $until"
done
exit 0`

export const readUsage = (): Command => script(READ_USAGE, reservationDir)

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

/** The usage lines of READ_USAGE; anything else a host sends is ignored (it is data, never trusted further). */
export function parseUsage(text: string, app: string): HostUsage {
  const ports = new Set<number>()
  const names = new Set<string>()
  const reserved = new Map<number, string>()
  const port = (n: number) => Number.isInteger(n) && n > 0 && n < 65536
  for (const line of text.split('\n')) {
    const [kind, ...rest] = line.trim().split(/\s+/)
    if (kind === 'name' && NAME.test(rest[0] ?? '')) names.add(rest[0])
    if (kind === 'published')
      for (const m of rest.join(' ').matchAll(/:(\d{1,5})->/g)) if (port(Number(m[1]))) ports.add(Number(m[1]))
    if (kind === 'listening' && /^[0-9A-F]{4}$/.test(rest[0] ?? '')) ports.add(parseInt(rest[0], 16))
    if (kind === 'reserved' && /^\d{1,5}$/.test(rest[0] ?? '') && NAME.test(rest[1] ?? '') && rest[1] !== app)
      reserved.set(Number(rest[0]), rest[1])
  }
  return { ports, names, reserved }
}

// $1 the reservation dir, $2 app, $3 token, $4 seconds a reservation lasts, $5 the replica name prefix
// ('app-'), then ports. Under one lock for the host: every port must be unused (not listening, not published,
// not another app's live reservation, no container named for it); then all are reserved at once. Exit 3 with
// the taken ports on standard output otherwise: nothing is reserved. A reservation of this same app belongs to
// a run that ended without releasing it (killed): this run holds the app's lock, so that one is stale. A port
// given as '=PORT' is held by one of this app's own containers that the run removes before it starts anything
// there (a stray, an earlier run's replica still stopping in the background): its name and socket are this
// app's, so only another app's reservation takes it.
const RESERVE = `dir=$1; app=$2; token=$3; ttl=$4; prefix=$5; shift 5
mkdir -p "$dir" && exec 9>"$dir/.lock" && flock 9 || exit 2
now=$(date +%s)
listening=" $(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "0A" { split($2, a, ":"); print a[2] }' | tr '\\n' ' ') "
published=" $(docker ps --all --format '{{.Ports}}' 2>/dev/null | grep -o ':[0-9]*->' | tr -d ':>-' | tr '\\n' ' ') "
names=" $(docker ps --all --format '{{.Names}}' 2>/dev/null | tr '\\n' ' ') "
taken=
for a; do
  p=\${a#=}
  if [ "$a" = "$p" ]; then
    case $listening in *" $(printf '%04X' "$p") "*) taken="$taken $p"; continue ;; esac
    case $published in *" $p "*) taken="$taken $p"; continue ;; esac
    case $names in *" $prefix$p "*) taken="$taken $p"; continue ;; esac
  fi
  if [ -f "$dir/$p" ] && read -r who tok until <"$dir/$p" && [ "$who" != "$app" ] && [ "$tok" != "$token" ] && [ "\${until:-0}" -gt "$now" ] 2>/dev/null; then
    taken="$taken $p"
  fi
done
[ -n "$taken" ] && { echo "$taken"; exit 3; }
for a; do p=\${a#=}; printf '%s %s %s\\n' "$app" "$token" $((now + ttl)) >"$dir/$p.tmp" && mv -f "$dir/$p.tmp" "$dir/$p" || exit 2; done
exit 0`

/** `freeing`: those of `ports` that this app's own containers hold until the run removes them first. */
export const reservePorts = (
  app: string,
  token: string,
  ttlSeconds: number,
  ports: readonly number[],
  freeing: readonly number[] = [],
): Command =>
  script(
    RESERVE,
    reservationDir,
    app,
    token,
    String(ttlSeconds),
    `${app}-`,
    ...ports.map((p) => (freeing.includes(p) ? `=${p}` : String(p))),
  )

// $1 the reservation dir, $2 token: this run's reservations go (the replicas' labels hold their ports now).
const RELEASE = `for f in "$1"/*; do
  [ -f "$f" ] && read -r _ tok _ <"$f" && [ "$tok" = "$2" ] && rm -f "$f"
done
exit 0`

export const releasePorts = (token: string): Command => script(RELEASE, reservationDir, token)

/** The ports a reserve command found taken (exit 3). */
export const takenPorts = (stdout: string): number[] =>
  stdout
    .trim()
    .split(/\s+/)
    .filter((p) => /^\d{1,5}$/.test(p))
    .map(Number)
