// The workflow run as @actions/github's context describes it (the event payload, the repository, the run).
import { context } from '@actions/github'
import type { RunContext } from './deployment.js'

interface PullRequestPayload {
  readonly number?: unknown
  readonly head?: { readonly sha?: unknown }
}

export function runContext(): RunContext {
  const env = process.env
  // context.repo throws outside a workflow run; without a repository there is nothing to record on GitHub.
  const repo = env.GITHUB_REPOSITORY ? context.repo : undefined
  const pr = context.payload.pull_request as PullRequestPayload | undefined
  const pullRequest =
    (context.eventName === 'pull_request' || context.eventName === 'pull_request_target') &&
    typeof pr?.number === 'number' &&
    typeof pr.head?.sha === 'string'
      ? { number: pr.number, headSha: pr.head.sha }
      : undefined
  const runUrl =
    repo && context.runId ? `${context.serverUrl}/${repo.owner}/${repo.repo}/actions/runs/${context.runId}` : undefined
  return {
    repo,
    sha: context.sha,
    eventName: context.eventName,
    pullRequest,
    runUrl,
    actor: context.actor ?? '',
    apiUrl: context.apiUrl,
  }
}
