// A cancelled workflow run: the runner sends SIGINT, then SIGTERM 7.5 s later (then kills). The first signal
// asks the run to stop starting new work and bring nginx to one consistent state; a second signal, or the
// deadline, ends the process at once (what is left half done, the next run repairs).

export class Cancellation {
  private why: string | undefined
  private signal: (why: string) => void = () => undefined
  /** Settles with why, the moment the run is asked to stop. */
  readonly requested: Promise<string> = new Promise((resolve) => (this.signal = resolve))

  /** Why the run was cancelled, once it was. */
  get reason(): string | undefined {
    return this.why
  }

  request(why: string): void {
    if (this.why) return
    this.why = why
    this.signal(why)
  }
}

/** A cancellation nobody requests (tests, and runs of steps that must not be cut short). */
export const NEVER = new Cancellation()

/**
 * Turns the runner's signals into a cancellation: the first asks, and sets a deadline after which `hardStop`
 * runs; a second signal runs it at once.
 */
export function onRunnerSignals(cancel: Cancellation, deadlineMs: number, hardStop: (why: string) => void): () => void {
  let deadline: NodeJS.Timeout | undefined
  const handle = (signal: NodeJS.Signals) => {
    if (cancel.reason) return hardStop(`a second signal (${signal}) arrived while the run was cancelling`)
    cancel.request(`the workflow run was cancelled (${signal})`)
    deadline = setTimeout(
      () => hardStop(`the run could not finish cancelling within ${deadlineMs / 1000}s`),
      deadlineMs,
    )
    deadline.unref()
  }
  process.on('SIGINT', handle)
  process.on('SIGTERM', handle)
  return () => {
    clearTimeout(deadline)
    process.off('SIGINT', handle)
    process.off('SIGTERM', handle)
  }
}
