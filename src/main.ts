// inputs -> connect -> operate (lock and read, plan, carry out, records) -> publish. The only place that fails
// the step. Each stage is one function; the run's end is one value (RunEnd) the last stage publishes.
import * as core from '@actions/core'
import { LIMITS, type Config } from './config.js'
import { runContext } from './github/context.js'
import type { RunContext } from './github/deployment.js'
import { githubRecorder } from './github/record.js'
import type { GitHubRecorder } from './github/report.js'
import { InputError, readConfig, readWorkspaceFile, secretTexts, type InputName } from './inputs.js'
import { Journal, type Logger } from './journal.js'
import { safeInfo } from './log.js'
import { failed, operate } from './operate.js'
import { publish } from './publish.js'
import { Cancellation, onRunnerSignals } from './run/cancel.js'
import { connectFleet, type Fleet } from './remote/fleet.js'
import type { RunEnd } from './run-end.js'

// The logger's lines carry what the hosts and GitHub answered (replica names, images, what nginx's reload
// said): safeInfo keeps any of it from being read as a workflow command. warning and debug escape their text.
const logger: Logger = { info: safeInfo, warning: core.warning, debug: core.debug }

/** Reads the inputs, masking every secret before anything can print one. */
function readInputs(): { config: Config } | { error: string } {
  const get = (name: InputName) => core.getInput(name)
  for (const secret of secretTexts(get)) core.setSecret(secret)
  try {
    const workspace = process.env.GITHUB_WORKSPACE ?? process.cwd()
    return { config: readConfig({ get, readWorkspaceFile: (p) => readWorkspaceFile(workspace, p) }) }
  } catch (e) {
    return { error: e instanceof InputError ? e.message : `reading inputs failed: ${(e as Error).message}` }
  }
}

/** Outputs, GitHub, the job summary, and the step's failure. */

/** Connects to every host of the run, then operates on them; the connections close whatever happens. */
async function connectAndOperate(
  config: Config,
  gh: RunContext,
  recorder: GitHubRecorder | undefined,
  journal: Journal,
  cancel: Cancellation,
): Promise<{ end: RunEnd; fleet?: Fleet }> {
  let fleet: Fleet | undefined
  try {
    const where =
      config.appHosts.length > 1 ? `${config.appHosts.length} app hosts and the nginx host` : config.appHosts[0].id
    const through = config.proxy ? ` through ${config.proxy.target.host}` : ''
    fleet = await core.group(`Connect to ${where}${through}`, () =>
      journal.phase('connect', () => connectFleet(config, core.debug)),
    )
    return { end: await operate({ config, gh, recorder, journal, fleet, log: logger, cancel }), fleet }
  } catch (e) {
    return { end: failed(e), fleet }
  } finally {
    await fleet?.close()
  }
}

export async function run(): Promise<void> {
  // The clock starts with the process: node's own start-up is part of what a run costs.
  const journal = new Journal(Date.now() - Math.round(process.uptime() * 1000))
  journal.phases.push({ name: 'node start', ms: Date.now() - journal.startedAt })
  const input = readInputs()
  if ('error' in input) {
    core.setOutput('result', 'failed')
    core.setFailed(input.error)
    return
  }
  const config = input.config
  const gh = runContext()
  const recorder = githubRecorder(config, gh, logger)
  // Cancelling the workflow run: stop starting work, bring nginx to one consistent state, record, exit.
  const cancel = new Cancellation()
  const stopListening = onRunnerSignals(cancel, LIMITS.cancelDeadlineMs, (why) => {
    core.setFailed(`cancelled: ${why}; nginx and the hosts are left as they are (the next run repairs them)`)
    process.exit(1)
  })
  const { end, fleet } = await connectAndOperate(config, gh, recorder, journal, cancel)
  const failure = await publish(config, gh, recorder, journal, end, fleet?.stats())
  stopListening()
  if (failure) core.setFailed(failure)
  else if (end.result === 'failed' || end.result === 'cancelled') core.setFailed(`the run ${end.result}`)
}
