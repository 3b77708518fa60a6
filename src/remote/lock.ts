// One deploy per app at a time, on the nginx host where every deploy of the app meets. The lock is a
// directory holding the owner, a token and a heartbeat file the holder touches while it runs; a lock whose
// heartbeat is older than LIMITS.lockStaleSeconds was left by a run that died, and the next run takes it
// over. flock serialises the check-and-take, so two runs never both take a stale lock (or one that is being
// taken). A holder whose heartbeat fails stops changing anything, and every nginx change re-checks the
// token on the host first (see nginxLocked), as every change of the app's containers does (see fenced).
import { randomBytes } from 'node:crypto'
import { LIMITS } from '../config.js'
import { script, withTimeout, type Command } from '../commands/shell.js'
import { run, type Remote } from './ssh.js'

// $1 lock dir, $2 token, $3 owner description, $4 seconds after which a silent lock is stale.
// Exit 3: held by another run (its owner on stdout); exit 4: no flock on the host.
const ACQUIRE = `command -v flock >/dev/null 2>&1 || { echo "flock (util-linux or busybox) is missing on this host: the deploy lock needs it" >&2; exit 4; }
mkdir -p "\${1%/*}" || exit 2
exec 9>"\${1%/*}/lock.flock" && flock 9 || exit 2
if [ -d "$1" ]; then
  now=$(date +%s); beat=$(stat -c %Y "$1/heartbeat" 2>/dev/null || echo 0)
  if [ $((now - beat)) -le "$4" ]; then printf 'held by %s (heartbeat %ss ago)\\n' "$(cat "$1/owner" 2>/dev/null)" $((now - beat)); exit 3; fi
  printf 'took over a stale lock of %s (silent for %ss)\\n' "$(cat "$1/owner" 2>/dev/null)" $((now - beat))
  rm -rf "$1"
fi
rm -rf "$1.new"; mkdir "$1.new" && touch "$1.new/heartbeat" && printf '%s\\n' "$2" >"$1.new/token" && printf '%s\\n' "$3" >"$1.new/owner" && mv "$1.new" "$1"`
const IF_OURS = '[ "$(cat "$1/token" 2>/dev/null)" = "$2" ]'
// Exit 3: the lock is not this run's any more.
const HEARTBEAT = `${IF_OURS} || exit 3; touch "$1/heartbeat"`
const RELEASE = `if ${IF_OURS}; then rm -rf "$1"; fi`

export const stateDir = (app: string): string => `${LIMITS.stateDir}/${app}`
export const lockDir = (app: string): string => `${stateDir(app)}/lock`

/** A run's claim on the lock: what it writes, and what every later check compares. */
export interface LockClaim {
  readonly app: string
  readonly dir: string
  readonly token: string
  readonly owner: string
}

export const newClaim = (app: string, owner: string): LockClaim => ({
  app,
  dir: lockDir(app),
  token: randomBytes(12).toString('hex'),
  owner: owner.replace(/[\r\n]+/g, ' '),
})

/** Takes the lock if it is free or stale (exit 3 when another run holds it). */
export const acquireCommand = (claim: LockClaim): Command =>
  script(ACQUIRE, claim.dir, claim.token, claim.owner, String(LIMITS.lockStaleSeconds))

/**
 * What a host compares before it changes the app's containers: a file there that must hold this run's token.
 * On the nginx host that is the lock itself. Another app host may be another machine, which cannot see the
 * lock: there it is the lease the run writes when it reads that host, under the lock (see writeLease). A run
 * that takes the lock over reads every app host before it changes anything, so its lease is on each of them
 * first: from then on, no stop, removal or start of the run before it begins there. (One that began before
 * is what the next run reads as still stopping, like the background stops of any earlier run.)
 */
export interface HostFence {
  readonly file: string
  readonly token: string
}

export const leasePath = (app: string): string => `${stateDir(app)}/lease`

export const containerFence = (claim: LockClaim, onNginxHost: boolean): HostFence => ({
  file: onNginxHost ? `${claim.dir}/token` : leasePath(claim.app),
  token: claim.token,
})

// $1 the file that must hold the token, $2 the token; then the command (which keeps its standard input).
const FENCED = `# fenced: only while this run holds the deploy lock
[ "$(cat "$1" 2>/dev/null)" = "$2" ] || {
  echo 'this run no longer holds the deploy lock of the app (another run took it over): nothing was changed on this host' >&2
  exit 75
}
shift 2
exec "$@"`

/** `inner`, run only while `fence` holds this run's token on the host (exit 75 otherwise, having run nothing). */
export const fenced = (fence: HostFence, inner: Command): Command => ({
  ...inner,
  argv: script(FENCED, fence.file, fence.token, ...inner.argv).argv,
})

// $1 the lease file, $2 the token: replaced in one rename, so a check never reads half of it.
const LEASE = `mkdir -p "\${1%/*}" && printf '%s\\n' "$2" >"$1.new" && mv -f "$1.new" "$1"`

/** Puts this run's token in the app's lease on an app host (see HostFence). */
export const writeLease = (claim: LockClaim): Command => script(LEASE, leasePath(claim.app), claim.token)

export class LockLostError extends Error {}

/** The lock, held: its heartbeat runs until release. */
export class HeldLock {
  private beating: Promise<unknown> | undefined
  private lastBeat = Date.now()
  private lostWhy: string | undefined
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly remote: Remote,
    readonly claim: LockClaim,
    private readonly warn: (m: string) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.lastBeat = now()
    this.timer = setInterval(() => this.beat(), LIMITS.lockHeartbeatMs)
    this.timer.unref()
  }

  /**
   * One heartbeat, unless the last is still under way. Another run may take the lock over once it has been
   * silent for LIMITS.lockStaleSeconds: this run gives it up a heartbeat before that, whether its heartbeats
   * failed or never came back.
   */
  private beat(): void {
    const silentMs = this.now() - this.lastBeat
    if (silentMs >= LIMITS.lockStaleSeconds * 1000 - LIMITS.lockHeartbeatMs)
      this.lose(`no heartbeat reached the host for ${Math.round(silentMs / 1000)}s`)
    if (this.beating || this.lostWhy) return
    this.beating = this.remote
      .exec(withTimeout(script(HEARTBEAT, this.claim.dir, this.claim.token), LIMITS.lockHeartbeatMs / 1000), {
        unqueued: true,
      })
      .then(
        (r) => {
          if (r.code === 0) this.lastBeat = this.now()
          else if (r.code === 3) this.lose('another run took it over')
        },
        () => undefined,
      )
      .finally(() => (this.beating = undefined))
  }

  private lose(why: string): void {
    if (this.lostWhy) return
    this.lostWhy = why
    this.warn(
      `the deploy lock of ${this.claim.app} on ${this.remote.name} is no longer this run's (${why}): nothing more will be changed`,
    )
  }

  /** Throws once the lock is lost: a run must not change a host another run may be changing. */
  assertHeld(): void {
    if (this.lostWhy)
      throw new LockLostError(
        `the deploy lock of ${this.claim.app} is no longer this run's (${this.lostWhy}); stopped before changing anything more`,
      )
  }

  /** Stops the heartbeat (the run's last command releases the lock with its records: see finishCommand). */
  async stopHeartbeat(): Promise<void> {
    clearInterval(this.timer)
    await this.beating
  }

  async release(): Promise<void> {
    await this.stopHeartbeat()
    await run(this.remote, script(RELEASE, this.claim.dir, this.claim.token), 'releasing the deploy lock')
  }
}
