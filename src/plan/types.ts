// A strategy is a plan: a list of steps, pure data that can be printed before anything runs.

export interface Replica {
  readonly name: string
  readonly port: number
  readonly image: string
  /** blue or green (blue-green only). */
  readonly color?: string
}

/** A share of requests for the canary: nginx weights for each canary and each stable server. */
export interface Split {
  readonly canary: readonly Replica[]
  readonly percent: number
  readonly canaryWeight: number
  readonly stableWeight: number
}

export type Step =
  | { readonly kind: 'login'; readonly registry: string; readonly username: string }
  | { readonly kind: 'pull'; readonly image: string }
  /** Create and start new replicas (in parallel). */
  | { readonly kind: 'start'; readonly replicas: readonly Replica[] }
  /** Start stopped replicas again (rollback: their containers were kept). */
  | { readonly kind: 'restart'; readonly replicas: readonly Replica[] }
  /**
   * Wait until every replica answers its health check (and reports healthy, if the image has a HEALTHCHECK).
   * `again`: the check after a drain, before the old replicas stop: a replica that crashed once it had
   * traffic fails here while the old ones still run.
   */
  | { readonly kind: 'gate'; readonly replicas: readonly Replica[]; readonly again?: boolean }
  /** Render nginx.conf for exactly these servers, validate, install, reload once and verify. */
  | { readonly kind: 'route'; readonly servers: readonly Replica[]; readonly split?: Split }
  /** Canary step: hold the split for a while; the canary's health and real traffic must stay good. */
  | { readonly kind: 'observe'; readonly seconds: number; readonly split: Split; readonly stable: readonly Replica[] }
  /** Put a saved nginx.conf text back (rollback), validate, install, reload once and verify. */
  | { readonly kind: 'restore-config'; readonly text: string; readonly servers: readonly Replica[] }
  /** Out of the upstream, still running: let in-flight requests finish. */
  | { readonly kind: 'drain'; readonly seconds: number; readonly replicas: readonly Replica[] }
  /**
   * `background`: the replicas are out of the upstream and drained, so the next batch need not wait for
   * docker stop (which takes up to stop-timeout with an app that ignores SIGTERM); the run awaits every
   * background stop before removing containers, starting any again, or ending.
   */
  | { readonly kind: 'stop'; readonly replicas: readonly Replica[]; readonly background?: boolean }
  | { readonly kind: 'remove'; readonly replicas: readonly Replica[] }

const names = (rs: readonly Replica[]): string => rs.map((r) => r.name).join(', ')

/** One line per step, as the log and the summary show it. */
export function describeStep(step: Step): string {
  switch (step.kind) {
    case 'login':
      return `log in to ${step.registry || 'Docker Hub'} as ${step.username}`
    case 'pull':
      return `pull ${step.image}`
    case 'start':
      return `start ${step.replicas.map((r) => `${r.name} (:${r.port})`).join(', ')} from ${[...new Set(step.replicas.map((r) => r.image))].join(', ')}`
    case 'restart':
      return `start ${names(step.replicas)} again`
    case 'gate':
      return step.again ? `check ${names(step.replicas)} still healthy` : `health gate ${names(step.replicas)}`
    case 'route':
      return step.split
        ? `route ${step.split.percent}% to canary ${names(step.split.canary)} (weights ${step.split.canaryWeight}:${step.split.stableWeight}, one nginx reload)`
        : `route traffic to ${names(step.servers) || 'no replica'} (one nginx reload)`
    case 'observe':
      return `observe the canary at ${step.split.percent}% for ${step.seconds}s`
    case 'restore-config':
      return `restore the previous nginx.conf (${names(step.servers) || 'no replica'})`
    case 'drain':
      return `drain ${names(step.replicas)} for ${step.seconds}s`
    case 'stop':
      return `stop ${names(step.replicas)}${step.background ? ' (in the background)' : ''}`
    case 'remove':
      return `remove ${names(step.replicas)}`
  }
}
