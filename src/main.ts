// inputs -> plan -> execute -> summary and outputs. The only place that fails the step.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import * as core from '@actions/core'
import { readConfig, InputError, type InputName } from './inputs.js'
import type { Config } from './config.js'
import { Executor, renderConfig, type Logger } from './execute.js'
import { checkHostState, readHost } from './host/read.js'
import { mainImage, type HostState } from './host/state.js'
import { unifiedDiff } from './nginx/diff.js'
import { planRollback, planRolling, type DeployPlan } from './plan/rolling.js'
import { describeStep } from './plan/types.js'
import { appendHistory } from './remote/history.js'
import { acquireLock } from './remote/lock.js'
import { connectSsh, type Remote } from './remote/ssh.js'
import { renderSummary, type Result } from './summary.js'

const logger: Logger = { info: core.info, warning: core.warning, debug: core.debug }

function secretsOf(config: Config): string[] {
  return [config.privateKey, config.passphrase, config.password, config.registry?.password, ...config.env.map((v) => v.value)].filter(
    (s): s is string => Boolean(s && s.trim()),
  )
}

function runOwner(): string {
  const e = process.env
  const url = e.GITHUB_RUN_ID ? `${e.GITHUB_SERVER_URL ?? 'https://github.com'}/${e.GITHUB_REPOSITORY}/actions/runs/${e.GITHUB_RUN_ID}` : `pid ${process.pid}`
  return `${url}${e.GITHUB_ACTOR ? ` by ${e.GITHUB_ACTOR}` : ''} since ${new Date().toISOString()}`
}

export async function run(): Promise<void> {
  const t0 = Date.now()
  let config: Config
  try {
    config = readConfig({
      get: (name: InputName) => core.getInput(name),
      readWorkspaceFile: (p) => readFileSync(path.resolve(process.env.GITHUB_WORKSPACE ?? process.cwd(), p), 'utf8'),
    })
  } catch (e) {
    core.setOutput('result', 'failed')
    core.setFailed(e instanceof InputError ? e.message : `reading inputs failed: ${(e as Error).message}`)
    return
  }
  // Mask secrets before anything can print them (input problems never echo them). A multi-line secret,
  // the private key, is also masked line by line, as a log may show its lines apart.
  for (const secret of secretsOf(config)) {
    core.setSecret(secret)
    for (const line of secret.split('\n')) if (line.trim().length >= 8 && !line.startsWith('-----')) core.setSecret(line.trim())
  }

  const target = config.hosts[0]
  let remote: Remote | undefined
  let state: HostState | undefined
  let plan: DeployPlan | undefined
  let executor: Executor | undefined
  let result: Result = 'failed'
  let failure: string | undefined
  let rollbackFailure: string | undefined
  let configDiff = ''

  try {
    remote = await core.group(`Connect to ${config.username}@${target.host}:${target.port}`, () => connectSsh(target, config, core.debug))
    const r = remote
    state = await core.group(`Read ${config.app} on ${r.name}`, async () => {
      const s = await readHost(r, config)
      const mine = s.containers.filter((c) => c.app === config.app && c.role === 'replica')
      core.info(`replicas: ${mine.map((c) => `${c.name} ${c.image} ${c.running ? 'running' : 'stopped'}`).join(', ') || 'none'}`)
      core.info(`nginx: ${config.nginx.mode === 'host' ? 'on the host' : s.nginx.exists ? `container ${config.nginx.container} ${s.nginx.running ? 'running' : 'stopped'}` : `no container ${config.nginx.container} yet`}`)
      return s
    })
    const hostProblem = checkHostState(config, state)
    if (hostProblem) throw new Error(hostProblem)
    const s = state
    const p = planRolling(config, s.containers, s.nginx.config)
    plan = p
    configDiff = unifiedDiff(s.nginx.config ?? '', renderConfig(config, p.next).text, `${config.nginx.configPath} (live)`, `${config.nginx.configPath} (after deploy)`)
    await core.group(`Plan: ${config.strategy} deploy of ${config.image}`, async () => {
      p.steps.forEach((step, i) => core.info(`${i + 1}. ${describeStep(step)}`))
      core.info(configDiff ? `nginx.conf changes:\n${configDiff}` : 'nginx.conf: no change')
    })

    executor = new Executor(r, config, s.nginx, logger, p.previous, p.next)
    if (config.dryRun) {
      result = 'planned'
    } else {
      const ex = executor
      const owner = runOwner()
      const lock = await core.group('Take the deploy lock', () => acquireLock(r, config.app, owner, config.lockTimeoutSeconds, core.info))
      try {
        try {
          await core.group('Deploy', () => ex.runAll(p.steps, 'deploy'))
          result = 'deployed'
        } catch (e) {
          failure = (e as Error).message
          if (config.rollbackOnFailure) {
            try {
              await core.group('Roll back', () => ex.runAll(planRollback(config, p.previous, ex.progress(s.nginx.config)), 'rollback'))
              result = 'rolled-back'
            } catch (e2) {
              rollbackFailure = (e2 as Error).message
            }
          }
        }
        await appendHistory(r, config.app, s.history, {
          image: config.image,
          previousImage: mainImage(p.previous),
          result,
          at: new Date().toISOString(),
          strategy: config.strategy,
          run: owner,
        }).catch((e: Error) => core.warning(`the deploy history was not written: ${e.message}`))
      } finally {
        await lock.release().catch((e: Error) => core.warning(e.message))
      }
    }
  } catch (e) {
    failure ??= (e as Error).message
    result = 'failed'
  } finally {
    await remote?.close()
  }

  const serving = executor?.serving ?? []
  const previousImage = plan ? mainImage(plan.previous) || (state?.history.at(-1)?.image ?? '') : ''
  const durationSeconds = (Date.now() - t0) / 1000
  const liveImage = result === 'planned' ? config.image : mainImage(serving)
  core.setOutput('result', result)
  core.setOutput('image', liveImage)
  core.setOutput('previous-image', previousImage)
  core.setOutput('duration-seconds', durationSeconds.toFixed(1))
  core.setOutput('replicas', JSON.stringify(serving.map(({ name, port, image }) => ({ name, port, image }))))

  const summary = renderSummary(
    {
      app: config.app,
      host: remote?.name ?? `${target.host}:${target.port}`,
      strategy: config.strategy,
      result,
      image: liveImage,
      previousImage,
      durationSeconds,
      dryRun: config.dryRun,
      plan: plan?.steps.map(describeStep) ?? [],
      steps: executor?.records ?? [],
      gates: executor?.gates ?? [],
      configDiff,
      failure,
      rollbackFailure,
      evidence: executor?.evidence ?? [],
      stats: remote?.stats,
    },
    secretsOf(config),
  )
  if (process.env.GITHUB_STEP_SUMMARY) await core.summary.addRaw(summary).write()
  core.info(`result: ${result} (${durationSeconds.toFixed(1)} s)`)

  if (failure) {
    const what = result === 'rolled-back' ? `deploy of ${config.image} failed and was rolled back` : `deploy of ${config.image} failed`
    core.setFailed(`${what}: ${failure}${rollbackFailure ? `\nthe rollback failed too: ${rollbackFailure}` : ''}`)
  }
}
