// One deploy per app and host at a time. The lock is a directory (mkdir is atomic) holding the owner and
// a heartbeat file the holder touches while it runs; a lock whose heartbeat is older than
// LIMITS.lockStaleSeconds was left by a run that died, and the next run takes it over.
import { randomBytes } from 'node:crypto'
import { LIMITS } from '../config.js'
import { script } from '../commands/shell.js'
import { RemoteError, run, type Remote } from './ssh.js'

// $1 state dir, $2 token, $3 owner description, $4 seconds after which a silent lock is stale.
// flock serialises the check-and-take so that two runs cannot both break the same stale lock.
const ACQUIRE = `
mkdir -p "$1" || exit 2
if command -v flock >/dev/null 2>&1; then exec 9>"$1/lock.flock"; flock 9; fi
if [ -d "$1/lock" ]; then
  now=$(date +%s); beat=$(stat -c %Y "$1/lock/heartbeat" 2>/dev/null || echo 0)
  if [ $((now - beat)) -le "$4" ]; then printf 'held by %s (heartbeat %ss ago)\\n' "$(cat "$1/lock/owner" 2>/dev/null)" $((now - beat)); exit 3; fi
  printf 'took over a stale lock of %s (silent for %ss)\\n' "$(cat "$1/lock/owner" 2>/dev/null)" $((now - beat))
  rm -rf "$1/lock"
fi
mkdir "$1/lock" && printf '%s\\n' "$2" >"$1/lock/token" && printf '%s\\n' "$3" >"$1/lock/owner" && touch "$1/lock/heartbeat"
`
const IF_OURS = '[ "$(cat "$1/lock/token" 2>/dev/null)" = "$2" ]'
const HEARTBEAT = `${IF_OURS} && touch "$1/lock/heartbeat"`
const RELEASE = `if ${IF_OURS}; then rm -rf "$1/lock"; fi`

export const stateDir = (app: string): string => `${LIMITS.stateDir}/${app}`

export interface Lock {
  release(): Promise<void>
}

export async function acquireLock(
  remote: Remote,
  app: string,
  owner: string,
  timeoutSeconds: number,
  log: (m: string) => void,
  sleep = (ms: number) => new Promise((r) => setTimeout(r, ms)),
): Promise<Lock> {
  const dir = stateDir(app)
  const token = randomBytes(12).toString('hex')
  const oneLine = owner.replace(/[\r\n]+/g, ' ')
  const deadline = Date.now() + timeoutSeconds * 1000
  let lastHolder = ''
  for (;;) {
    const r = await remote.exec(script(ACQUIRE, dir, token, oneLine, String(LIMITS.lockStaleSeconds)))
    if (r.code === 0) {
      if (r.stdout.trim()) log(r.stdout.trim())
      break
    }
    if (r.code !== 3) throw new RemoteError(`taking the deploy lock in ${dir} on ${remote.name} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`, r)
    const holder = r.stdout.trim()
    if (holder !== lastHolder) log(`waiting for the deploy lock of ${app}: ${holder}`)
    lastHolder = holder
    if (Date.now() >= deadline)
      throw new RemoteError(`another deploy of ${app} is running on ${remote.name}: lock ${holder}; gave up after lock-timeout ${timeoutSeconds}s`, r)
    await sleep(Math.min(LIMITS.lockPollMs, Math.max(0, deadline - Date.now())))
  }

  let beating: Promise<unknown> = Promise.resolve()
  const timer = setInterval(() => {
    beating = remote.exec(script(HEARTBEAT, dir, token)).then(
      (r) => r.code !== 0 && log(`warning: the deploy lock of ${app} is no longer ours (another run took it over?)`),
      () => undefined,
    )
  }, LIMITS.lockHeartbeatMs)
  timer.unref()
  return {
    async release() {
      clearInterval(timer)
      await beating
      await run(remote, script(RELEASE, dir, token), 'releasing the deploy lock')
    },
  }
}
