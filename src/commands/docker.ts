// docker command builders: each returns a Command value and runs nothing. Containers are named by id where
// the run knows it, and every name or id follows `--`, so nothing read from a host can become an option.
import type { Config } from '../config.js'
import { hostPort, LABEL, type Replica } from '../model.js'
import { command, script, withStdin, withTimeout, type Command } from './shell.js'

/**
 * Every container nginx-rollout manages on the host (all apps: they share the host's ports), one JSON object
 * per line. Each field is JSON-encoded by docker, so no label or name can break a line or forge a field.
 */
export const CONTAINER_FIELDS = `{"id":{{json .Id}},"name":{{json .Name}},"state":{{json .State.Status}},"pid":{{json .State.Pid}},"labels":{{json .Config.Labels}}}`

export const listManaged = (): Command =>
  script(
    `ids=$(docker ps --all --quiet --no-trunc --filter "label=$1") || exit $?
[ -z "$ids" ] && exit 0
# A container removed between the two commands is simply not listed.
docker inspect --format "$2" $ids 2>/dev/null
exit 0`,
    `${LABEL.role}=replica`,
    CONTAINER_FIELDS,
  )

/** The environment every replica gets: PORT first (what the app must listen on), then the env input. */
export function replicaEnv(config: Config, replica: Replica): string {
  const port = config.network === 'host' ? replica.port : config.containerPort
  return [`PORT=${port}`, ...config.env.map((v) => `${v.name}=${v.value}`)].join('\n') + '\n'
}

/** The port a replica's app listens on inside its own network namespace (where its connections are counted). */
export const listenPortInside = (config: Config, replica: Replica): number =>
  config.network === 'host' ? replica.port : config.containerPort

// "$@" is the docker create command. The new container's id is printed before it starts, so that the run
// knows it even when the start fails (a port in use): only that container is ever stopped or removed. A name
// already taken fails the create, and the container holding it is not touched.
const CREATE_AND_START = `id=$("$@") || exit $?
printf '%s\\n' "$id"
docker start -- "$id" >/dev/null`

/**
 * Creates and starts one replica. The environment travels on standard input as an env file, so values (often
 * secrets) appear neither in this command line nor in the host's process list. Every label the action reads
 * is set, so none can come from the image. Standard output's first line is the container's id.
 */
export function createReplica(config: Config, replica: Replica): Command {
  const published = `${hostPort(replica.address, replica.port)}:${config.containerPort}`
  const network =
    config.network === 'host'
      ? ['--network', 'host']
      : [...(config.network ? ['--network', config.network] : []), '--publish', published]
  const labels = [
    `${LABEL.app}=${config.app}`,
    `${LABEL.role}=replica`,
    `${LABEL.image}=${replica.image}`,
    `${LABEL.port}=${replica.port}`,
    `${LABEL.color}=${replica.color ?? ''}`,
  ].flatMap((l) => ['--label', l])
  const create = command(
    'docker',
    'create',
    '--name',
    replica.name,
    ...labels,
    ...network,
    '--env-file',
    '/dev/stdin',
    ...config.runArgs,
    replica.image,
  )
  const names = ['PORT', ...config.env.map((v) => v.name)]
  // Without pull: true, docker create pulls a missing image itself.
  return withTimeout(
    withStdin(script(CREATE_AND_START, ...create.argv), replicaEnv(config, replica), `env file: ${names.join(', ')}`),
    config.pullTimeoutSeconds,
  )
}

/** The id a createReplica command printed first, if it got that far. */
export function createdId(stdout: string): string | undefined {
  const first = stdout.split('\n')[0]?.trim() ?? ''
  return /^[0-9a-f]{64}$/.test(first) ? first : undefined
}

export const startContainers = (refs: readonly string[]): Command => command('docker', 'start', '--', ...refs)

export const stopContainers = (refs: readonly string[], timeoutSeconds: number): Command =>
  withTimeout(command('docker', 'stop', '--time', String(timeoutSeconds), '--', ...refs), timeoutSeconds + 60)

// Removal means "removed or already gone" (a rollback removes replicas whose start may have failed), but a
// container that is still there after docker rm is an error. When another removal of it is under way (an
// earlier run's background retirement racing this one), docker answers "removal of container X is already in
// progress" at once: the container is then waited for, up to 10 s, until docker no longer knows it.
const REMOVE = `out=$(docker rm --force --volumes -- "$@" 2>&1) && exit 0
case $out in *'is already in progress'*) waits=50 ;; *) waits=0 ;; esac
i=0
while left=$(docker inspect --format '{{.Name}}' -- "$@" 2>/dev/null); [ -n "$left" ] && [ "$i" -lt "$waits" ]; do
  sleep 0.2; i=$((i + 1))
done
[ -z "$left" ] && exit 0
printf '%s\\n' "$out" >&2
[ "$waits" -gt 0 ] && printf 'still there after waiting 10 s for that removal:\\n%s\\n' "$left" >&2
exit 1`

export const removeContainers = (refs: readonly string[]): Command => script(REMOVE, ...refs)

// $1 report directory, $2 stop timeout, then container refs. docker stop waits up to the stop timeout for an
// app that ignores SIGTERM; nothing routes to these replicas any more, so the run does not wait: a detached
// process on the host stops and removes them, and writes a report only when that fails (the next run shows it
// and removes what is left). Not when docker says another removal of them is already in progress (a run's own
// removal, which fails loudly if they stay): they are going away.
const RETIRE = `dir=$1; t=$2; shift 2
mkdir -p "$dir" || exit 1
report="$dir/$(date +%Y%m%dT%H%M%S)-$$.txt"
setsid sh -c 'report=$1; t=$2; shift 2
  out=$(docker stop --time "$t" -- "$@" 2>&1 && docker rm --force --volumes -- "$@" 2>&1) && exit 0
  case $out in *"is already in progress"*) exit 0 ;; esac
  printf "%s\\n" "$out" >"$report.tmp" && mv -f "$report.tmp" "$report"' sh "$report" "$t" "$@" </dev/null >/dev/null 2>&1 &
exit 0`

export const retireContainers = (reportDir: string, refs: readonly string[], stopTimeoutSeconds: number): Command =>
  script(RETIRE, reportDir, String(stopTimeoutSeconds), ...refs)

/**
 * What earlier runs' retirements reported (failures only). With `consume` (a run that holds the lock), each
 * report is removed once printed; without (a status or a dry run), reading changes nothing, so the next run
 * that acts still sees them.
 */
export const readRetireReports = (reportDir: string, consume: boolean): Command =>
  script(
    'for f in "$1"/*.txt; do [ -f "$f" ] || continue; printf "%s\\n" "${f##*/}"; cat "$f"; printf "\\000"; [ "$2" = consume ] && rm -f "$f"; done; exit 0',
    reportDir,
    consume ? 'consume' : 'keep',
  )

export const pullImage = (image: string, timeoutSeconds: number): Command =>
  withTimeout(command('docker', 'pull', '--quiet', image), timeoutSeconds)

/** Pull only when the host does not have the image (for the nginx image, which is pinned by the user). */
export const ensureImage = (image: string, timeoutSeconds: number): Command =>
  withTimeout(script('docker image inspect "$1" >/dev/null 2>&1 || docker pull --quiet "$1"', image), timeoutSeconds)

/** The password travels on standard input, never in the command line. */
export const login = (server: string, username: string, password: string, timeoutSeconds: number): Command =>
  withTimeout(
    withStdin(
      command('docker', 'login', '--username', username, '--password-stdin', ...(server ? [server] : [])),
      password,
      'registry password',
    ),
    timeoutSeconds,
  )

/** Status, health status ('none' without a HEALTHCHECK) and exit code, tab-separated. */
export const inspectState = (ref: string): Command =>
  command(
    'docker',
    'inspect',
    '--format',
    '{{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}\t{{.State.ExitCode}}\t{{.RestartCount}}',
    '--',
    ref,
  )

export const healthLog = (ref: string): Command =>
  command(
    'docker',
    'inspect',
    '--format',
    '{{if .State.Health}}{{range .State.Health.Log}}{{.ExitCode}}: {{.Output}}{{end}}{{end}}',
    '--',
    ref,
  )

export const containerLogs = (ref: string, lines: number): Command =>
  command('docker', 'logs', '--tail', String(lines), '--', ref)

export interface ReplicaState {
  readonly status: string
  readonly health: string
  readonly exitCode: number
  /** How often Docker restarted it (a restart policy from run-args): a restart is a crash too. */
  readonly restarts: number
}

export function parseReplicaState(stdout: string): ReplicaState {
  const [status, health, exitCode, restarts] = stdout.trim().split('\t')
  return {
    status: status || 'unknown',
    health: health || 'none',
    exitCode: Number(exitCode || 0),
    restarts: Number(restarts || 0),
  }
}

// $1 longest wait (s), $2 shortest wait (s), $3 poll interval (s), $4 quiet polls needed; $5 the replicas as
// nginx reaches them ('127.0.0.1:9201 10.0.0.5:9202'), when nginx runs here, else ''; then, per network
// namespace, a container ref, its main process id (0: ask docker) and the ports its apps listen on there
// ('9201|9202'). Counts the established TCP connections to those ports (nginx opens one per request in
// flight): those in this shell's own namespace (host networking) with one ss per poll, which asks the kernel
// for exactly these sockets; those elsewhere from /proc/PID/net/tcp*, read once per namespace and poll (the
// whole table: slow on a busy host, tens of thousands of lines). The replica's side cannot see a connection
// nginx is still opening: when the replica's listen queue is full its SYN is dropped and the kernel sends it
// again a second later, so nginx's own sockets to the replicas (established or still connecting) count too,
// in the same ss. Ends once none is left for the quiet polls, after the shortest wait.
const DRAIN = `max=$1; min=$2; poll=$3; quiet=$4; servers=$5; shift 5
# here: the sockets ss counts in this namespace, nginx's ends (dst) and the replicas' own (sport).
here=''; self=''
if ss -tn state established state syn-sent '( sport = :1 )' >/dev/null 2>&1; then
  self=$(readlink /proc/self/ns/net 2>/dev/null)
  set -f # [::1]:9201 is no file pattern
  for s in $servers; do here="\${here:+$here or }dst $s"; done
  set +f
fi
watch=''
while [ $# -ge 3 ]; do
  pid=$2
  [ "$pid" -gt 0 ] 2>/dev/null || pid=$(docker inspect --format '{{.State.Pid}}' -- "$1" 2>/dev/null)
  if [ -n "$pid" ] && [ "$pid" -gt 0 ] 2>/dev/null; then
    if [ -n "$self" ] && [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$self" ]; then
      for p in $(echo "$3" | tr '|' ' '); do here="\${here:+$here or }sport = :$p"; done
    else
      hex=''
      for p in $(echo "$3" | tr '|' ' '); do hex="$hex|$(printf '%04X' "$p")"; done
      watch="$watch $pid:\${hex#|}"
    fi
  fi
  shift 3
done
inflight() {
  n=0
  # (No -H: an old ss without it must not read as idle.) The first line is the header. A replica's own end
  # is never still connecting; nginx's may be.
  [ -z "$here" ] || n=$(ss -tn state established state syn-sent "( $here )" | tail -n +2 | wc -l) || { echo unknown; return; }
  for w in $watch; do
    [ -r "/proc/\${w%%:*}/net/tcp" ] || { echo unknown; return; }
    c=$(cat "/proc/\${w%%:*}/net/tcp" "/proc/\${w%%:*}/net/tcp6" 2>/dev/null | grep -c -E "^ *[0-9]+: [0-9A-F]+:(\${w##*:}) [0-9A-F]+:[0-9A-F]+ 01 ")
    n=$((n + c))
  done
  echo $n
}
i=0; still=0; ms=$(awk "BEGIN{print int($poll*1000+0.5)}" 2>/dev/null || echo 100)
maxi=$(awk "BEGIN{print int($max/$poll+0.5)}" 2>/dev/null || echo "$max"); mini=$(awk "BEGIN{print int($min/$poll+0.5)}" 2>/dev/null || echo 0)
while :; do
  n=$(inflight)
  if [ "$n" = unknown ]; then sleep "$max"; echo "unknown $max"; exit 0; fi
  if [ "$n" -eq 0 ]; then still=$((still + 1)); else still=0; fi
  if [ "$still" -ge "$quiet" ] && [ "$i" -ge "$mini" ]; then echo "idle $((i * ms))"; exit 0; fi
  if [ "$i" -ge "$maxi" ]; then echo "busy $((i * ms)) $n"; exit 0; fi
  sleep "$poll"; i=$((i + 1))
done`

/** A network namespace to watch: one of its containers, and the ports its replicas listen on there. */
export interface DrainTarget {
  readonly ref: string
  readonly pid?: number
  readonly ports: readonly number[]
}

/**
 * Waits, on the host itself, until the replicas have nothing in flight (or the longest wait passes).
 * `nginxServers`: the replicas as nginx reaches them (address:port, addresses only), when nginx runs on this
 * host; its connections to them count too. `targets` may be empty on an nginx host that runs no replica.
 */
export const drainWait = (
  targets: readonly DrainTarget[],
  nginxServers: readonly string[],
  maxSeconds: number,
  minSeconds: number,
  pollMs: number,
  quietPolls: number,
): Command =>
  withTimeout(
    script(
      DRAIN,
      String(maxSeconds),
      String(minSeconds),
      String(pollMs / 1000),
      String(quietPolls),
      nginxServers.join(' '),
      ...targets.flatMap((t) => [t.ref, String(t.pid ?? 0), t.ports.join('|')]),
    ),
    maxSeconds + 30,
  )

/** What drainWait() reported: idle after ms, still busy at the longest wait, or connections not readable here. */
export type DrainOutcome =
  { kind: 'idle'; ms: number } | { kind: 'busy'; ms: number; inFlight: number } | { kind: 'unknown'; seconds: number }

export function parseDrain(stdout: string): DrainOutcome {
  const [kind, a = '0', b = '0'] = stdout.trim().split(/\s+/)
  if (kind === 'idle') return { kind, ms: Number(a) }
  if (kind === 'busy') return { kind, ms: Number(a), inFlight: Number(b) }
  return { kind: 'unknown', seconds: Number(a) }
}
