// A strategy is a plan: a list of steps, pure data that can be printed before anything runs.
import { byHost, names, type Replica, type Split } from '../model.js'

export type Step =
  /** docker login on each of these app hosts (in parallel). */
  | { readonly kind: 'login'; readonly registry: string; readonly username: string; readonly hosts: readonly string[] }
  /** docker pull on each of these app hosts (in parallel): a missing image fails the run before traffic is touched. */
  | { readonly kind: 'pull'; readonly image: string; readonly hosts: readonly string[] }
  /**
   * Create and start new replicas (in parallel, on their hosts). `ahead`: the next batch, started while the
   * current one drains; the run goes on at once and the next gate waits for the start.
   */
  | { readonly kind: 'start'; readonly replicas: readonly Replica[]; readonly ahead?: boolean }
  /** Start stopped replicas again (rollback: their containers were kept). */
  | { readonly kind: 'restart'; readonly replicas: readonly Replica[] }
  /**
   * Wait until every replica answers its health check from the nginx host, at the address nginx uses (and
   * reports healthy, if the image has a HEALTHCHECK).
   */
  | { readonly kind: 'gate'; readonly replicas: readonly Replica[] }
  /**
   * nginx's record of the app's requests starts (followed from empty), then one reload turns it on with the
   * servers unchanged: the old version's record from before any route is what the new one is judged against.
   * The reload runs in the background while the new replicas start; the next change of the file waits for it.
   */
  | { readonly kind: 'record'; readonly servers: readonly Replica[]; readonly split?: Split }
  /**
   * Render the managed file for exactly these servers, validate, install, reload once and verify. `judged`:
   * while the deploy judges real traffic, nginx records the app's requests, and the replaced replicas still
   * running (`backup`) take a request only when every server has failed it. A route without it after judged
   * ones ends the judging (the record off, no backups).
   */
  | {
      readonly kind: 'route'
      readonly servers: readonly Replica[]
      readonly split?: Split
      readonly judged?: { readonly backup: readonly Replica[] }
      /** The route after the judging: the same servers, the record off and no backups. */
      readonly settle?: boolean
      /** operation maintenance or resume: the same routes, the app's answers switched; a canary's record stays. */
      readonly maintenance?: 'on' | 'off'
    }
  /** Canary step: hold the split for a while; the canary's health and real traffic must stay good. */
  | { readonly kind: 'observe'; readonly seconds: number; readonly split: Split; readonly stable: readonly Replica[] }
  /** Put a saved managed file back (undefined: none), validate, install, reload once and verify. */
  | { readonly kind: 'restore-config'; readonly text: string | undefined; readonly servers: readonly Replica[] }
  /**
   * Out of the upstream, still running: wait until nothing is in flight to them (at most `seconds`).
   * `recheck`: meanwhile the replicas that took their traffic are checked once more, before the old ones
   * stop: one that crashed once it had traffic fails here while the old ones still run. `verify`: the
   * replicas that took their traffic are judged on real traffic meanwhile (at most verify-seconds).
   */
  | {
      readonly kind: 'drain'
      readonly seconds: number
      readonly replicas: readonly Replica[]
      readonly recheck?: readonly Replica[]
      readonly verify?: readonly Replica[]
    }
  /**
   * Hold until every new replica has been routed for `seconds`, the replaced ones still running: a new one
   * that dies, stops answering, or serves clearly worse sends the traffic back.
   */
  | { readonly kind: 'bake'; readonly seconds: number; readonly replicas: readonly Replica[] }
  /**
   * `background`: the replicas are out of the upstream and drained, so the next batch need not wait for
   * docker stop (which takes up to stop-timeout with an app that ignores SIGTERM); the run awaits every
   * background stop before removing containers or starting any again.
   */
  | { readonly kind: 'stop'; readonly replicas: readonly Replica[]; readonly background?: boolean }
  /** Remove containers at once (replicas that serve nothing: strays, or new ones a rollback takes out). */
  | { readonly kind: 'remove'; readonly replicas: readonly Replica[] }
  /**
   * Drained replicas the deploy no longer needs: a detached process on each host stops them (stop-timeout)
   * and removes them, so the run does not wait; a failure is reported by the next run, which removes what is left.
   */
  | { readonly kind: 'retire'; readonly replicas: readonly Replica[] }

/** Steps that change a host (or nginx): the run checks it still holds the lock before each. */
export const changesHosts = (step: Step): boolean =>
  step.kind !== 'gate' && step.kind !== 'observe' && step.kind !== 'drain' && step.kind !== 'bake'

/** The hosts a step touches, for the summary. */
export function hostsOf(step: Step, nginxHost: string): string[] {
  switch (step.kind) {
    case 'login':
    case 'pull':
      return [...step.hosts]
    case 'record':
    case 'route':
    case 'restore-config':
    case 'observe':
      return [nginxHost]
    case 'drain':
      return [...byHost([...step.replicas, ...(step.recheck ?? [])]).keys()]
    default:
      return [...byHost(step.replicas).keys()]
  }
}

/** One line per step, as the log and the summary show it. With several hosts, replicas carry theirs. */
export function describeStep(step: Step, manyHosts = false): string {
  const list = (rs: readonly Replica[]) => names(rs, manyHosts)
  switch (step.kind) {
    case 'login':
      return `log in to ${step.registry || 'Docker Hub'} as ${step.username}${manyHosts ? ` on ${step.hosts.join(', ')}` : ''}`
    case 'pull':
      return `pull ${step.image}${manyHosts ? ` on ${step.hosts.join(', ')}` : ''}`
    case 'start':
      return (
        `start ${step.replicas.map((r) => `${manyHosts ? `${r.name}@${r.host}` : r.name} (:${r.port})`).join(', ')} from ${[...new Set(step.replicas.map((r) => r.image))].join(', ')}` +
        (step.ahead ? ' (in the background, while the batch before drains)' : '')
      )
    case 'restart':
      return `start ${list(step.replicas)} again`
    case 'gate':
      return `health gate ${list(step.replicas)}`
    case 'record':
      return `start nginx's record of the app's requests (one nginx reload, in the background)`
    case 'route': {
      const backup = step.judged?.backup.length ? `, ${list(step.judged.backup)} as backup` : ''
      const how = step.settle
        ? 'one nginx reload: the record of requests off, no backup'
        : `one nginx reload${step.judged ? `; requests recorded${backup}` : ''}`
      if (step.maintenance)
        return `${step.maintenance === 'on' ? 'answer every request but the health path with 503 (maintenance)' : 'let the app answer again (resume)'}, routes unchanged (one nginx reload)`
      if (step.split?.percent === 0)
        return `route only requests matching canary-match to canary ${list(step.split.canary)} (a preview, ${how})`
      return step.split
        ? `route ${step.split.percent}% to canary ${list(step.split.canary)} (weights ${step.split.canaryWeight}:${step.split.stableWeight}, ${how})`
        : `route traffic to ${list(step.servers) || 'no replica'} (${how})`
    }
    case 'observe':
      return `observe the canary at ${step.split.percent}% for ${step.seconds}s`
    case 'restore-config':
      return `restore the previous nginx config (${list(step.servers) || 'no replica'})`
    case 'drain': {
      const recheck = step.recheck?.length ? `, checking ${list(step.recheck)} still healthy` : ''
      const verify = step.verify?.length ? `, judging ${list(step.verify)} on real traffic` : ''
      return `drain ${list(step.replicas)} (until idle, at most ${step.seconds}s)${recheck}${verify}`
    }
    case 'bake':
      return `bake ${list(step.replicas)} for ${step.seconds}s, the replaced replicas ready to take the traffic back`
    case 'stop':
      return `stop ${list(step.replicas)}${step.background ? ' (in the background)' : ''}`
    case 'remove':
      return `remove ${list(step.replicas)}`
    case 'retire':
      return `retire ${list(step.replicas)} (stop and remove on the host, in the background)`
  }
}
