// The run's end, published: the step's outputs, the deployment and comment on GitHub, the job summary and
// the log's last line. Returns the step's failure message, if it failed (main fails the step with it).
import * as core from '@actions/core'
import type { Config } from './config.js'
import type { RunContext } from './github/deployment.js'
import { recordOnGitHub } from './github/record.js'
import type { GitHubRecorder } from './github/report.js'
import { secretsOf } from './inputs.js'
import type { Journal } from './journal.js'
import { liveColor, mainImage, sshName } from './model.js'
import { describeNginx } from './nginx/nginx.js'
import { describeStep } from './plan/types.js'
import type { Fleet } from './remote/fleet.js'
import type { RunEnd } from './run-end.js'
import { renderSummary } from './summary.js'

/** Outputs, GitHub, the job summary, and the step's failure. */
export async function publish(
  config: Config,
  gh: RunContext,
  recorder: GitHubRecorder | undefined,
  journal: Journal,
  end: RunEnd,
  stats: ReturnType<Fleet['stats']> | undefined,
): Promise<string | undefined> {
  const { result, plan, state } = end
  const durationSeconds = (Date.now() - journal.startedAt) / 1000
  const previousImage = plan
    ? mainImage(plan.previous) || (state?.history.at(-1)?.image ?? '')
    : (state?.history.at(-1)?.previousImage ?? '')
  // With a paused canary, the image serving is the stable one; the canary's is in the canary record.
  const liveImage =
    result === 'planned' && plan
      ? plan.image
      : mainImage(end.serving.filter((x) => !(result === 'paused' && plan && x.image === plan.image))) ||
        mainImage(end.serving)
  core.setOutput('result', result)
  core.setOutput('image', liveImage)
  core.setOutput('previous-image', previousImage)
  core.setOutput('duration-seconds', durationSeconds.toFixed(1))
  core.setOutput(
    'replicas',
    JSON.stringify(end.serving.map(({ host, name, port, image }) => ({ host, name, port, image }))),
  )
  core.setOutput('color', liveColor(end.serving))
  core.setOutput('canary-weight', end.canaryWeight)

  if (recorder && plan && !config.dryRun)
    await recordOnGitHub(
      recorder,
      config,
      gh,
      end,
      journal.canarySteps,
      { liveImage, previousImage },
      secretsOf(config),
    )

  const switched = journal.trafficSwitchedAtMs
  const summary = renderSummary(
    {
      app: config.app,
      hosts: config.appHosts.map((h) => h.id),
      nginxHost: describeNginx(config, sshName(config.nginxHost.host, config.nginxHost.port)),
      operation: config.operation,
      strategy: config.strategy,
      result,
      image: liveImage,
      previousImage,
      durationSeconds,
      trafficSwitchedSeconds: switched === undefined ? undefined : switched / 1000,
      dryRun: config.dryRun,
      color: liveColor(end.serving),
      canaryWeight: end.canaryWeight,
      notes: [...(plan?.notes ?? []), ...journal.notes],
      plan: plan?.steps.map((s) => describeStep(s, config.appHosts.length > 1)) ?? [],
      steps: journal.steps,
      gates: journal.gates,
      canarySteps: journal.canarySteps,
      configPath: config.nginx.configPath,
      configDiff: end.configDiff,
      failure: end.failure,
      rollbackFailure: end.rollbackFailure,
      evidence: journal.evidence,
      live: end.live,
      github: recorder?.notes,
      stats,
      phases: journal.phases,
    },
    secretsOf(config),
  )
  if (process.env.GITHUB_STEP_SUMMARY) await core.summary.addRaw(summary).write()
  core.info(
    `result: ${result} (${durationSeconds.toFixed(1)} s${switched !== undefined ? `; all traffic on ${plan?.image} after ${(switched / 1000).toFixed(1)} s` : ''})`,
  )

  if (!end.failure) return undefined
  const what = config.operation === 'deploy' ? `deploy of ${config.image}` : `operation ${config.operation}`
  const how = result === 'rolled-back' ? 'failed and was rolled back' : 'failed'
  const rollback = end.rollbackFailure ? `\nthe rollback failed too: ${end.rollbackFailure}` : ''
  return `${what} ${how}: ${end.failure}${rollback}`
}
