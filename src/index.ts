import * as core from '@actions/core'
import { run } from './main.js'

// A rejected promise nothing waits for is a bug; by default it ends node at once, mid-run, leaving the lock to
// go stale and the run unrecorded. Said loudly instead (the end-to-end tests fail on this line), and the run
// goes on to undo and record what it did.
process.on('unhandledRejection', (e) =>
  core.warning(`nginx-rollout: an error no step waited for (a bug: please report it): ${(e as Error)?.message ?? e}`),
)

await run()
