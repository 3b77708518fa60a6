// The example workflows and the repository's own workflows, checked against action.yml: a renamed input,
// a misspelt output or a missing permission breaks a user's copy of an example, so it breaks this test.
import { readdirSync, readFileSync } from 'node:fs'
import { parse, parseDocument, visit } from 'yaml'
import { SECRET_INPUTS } from '../../src/inputs.js'

const root = new URL('../../', import.meta.url)
const read = (path: string) => readFileSync(new URL(path, root), 'utf8')

interface ActionYml {
  inputs: Record<string, { required?: boolean }>
  outputs: Record<string, unknown>
}
const action = parse(read('action.yml')) as ActionYml

interface Step {
  id?: string
  uses?: string
  run?: string
  if?: string
  with?: Record<string, unknown>
}
interface Job {
  if?: string
  environment?: string | { name: string }
  permissions?: Record<string, string>
  /** A job that calls a reusable workflow has no steps of its own. */
  uses?: string
  steps?: Step[]
}
const stepsOf = (j: Job): Step[] => j.steps ?? []
interface Workflow {
  on: Record<string, unknown>
  permissions?: Record<string, string>
  concurrency?: { group: string; 'cancel-in-progress': boolean }
  jobs: Record<string, Job>
}

const files = [
  ...readdirSync(new URL('examples/', root)).map((f) => `examples/${f}`),
  ...readdirSync(new URL('.github/workflows/', root)).map((f) => `.github/workflows/${f}`),
].filter((f) => f.endsWith('.yml'))
const workflows = files.map((file) => ({ file, text: read(file), wf: parse(read(file)) as Workflow }))
const isOurs = (s: Step) => s.uses === './' || /^nginx-rollout\/nginx-rollout@/.test(s.uses ?? '')
const actionSteps = (wf: Workflow) => Object.values(wf.jobs).flatMap((j) => stepsOf(j).filter(isOurs))
const examples = workflows.filter((w) => w.file.startsWith('examples/'))

describe('workflows and examples', () => {
  it('are the files the issue asks for', () => {
    expect(files.sort()).toEqual([
      '.github/workflows/ci.yml',
      '.github/workflows/release.yml',
      '.github/workflows/self-test.yml',
      'examples/deploy-on-push.yml',
      'examples/manual-rollout.yml',
      'examples/pull-request-canary.yml',
    ])
  })

  it.each(files)('%s is plain YAML GitHub accepts: no merge keys, every step runs something', (file) => {
    const doc = parseDocument(read(file), { merge: false })
    expect(doc.errors).toEqual([])
    const keys: string[] = []
    visit(doc, { Pair: (_, pair) => void keys.push(String((pair.key as { value?: unknown })?.value)) })
    expect(keys).not.toContain('<<')
    const wf = doc.toJS() as Workflow
    for (const job of Object.values(wf.jobs)) {
      expect(Boolean(job.uses) !== Boolean(job.steps?.length)).toBe(true)
      for (const step of stepsOf(job)) expect(Boolean(step.uses) !== Boolean((step as { run?: string }).run)).toBe(true)
    }
  })

  it.each(workflows.filter((w) => actionSteps(w.wf).length).map((w) => [w.file, w]))(
    '%s gives the action only inputs it declares, and those it needs',
    (_file, { wf }) => {
      for (const step of actionSteps(wf)) {
        const given = Object.keys(step.with ?? {})
        expect(given.filter((k) => !(k in action.inputs))).toEqual([])
        expect(['host', 'username', 'app'].filter((k) => !given.includes(k))).toEqual([])
        expect(given.includes('key') || given.includes('password')).toBe(true)
        expect(given.includes('fingerprint') || given.includes('known-hosts')).toBe(true)
        const w = step.with ?? {}
        const operation = String(w.operation ?? 'deploy')
        if (!operation.includes('${{'))
          expect(['deploy', 'promote', 'abort', 'rollback', 'status']).toContain(operation)
        if (operation === 'deploy') expect(given).toContain('image')
        if (w.strategy !== undefined && !String(w.strategy).includes('${{'))
          expect(['rolling', 'blue-green', 'canary']).toContain(w.strategy)
      }
    },
  )

  it.each(workflows.map((w) => [w.file, w]))('%s reads only outputs the action declares', (_file, { wf, text }) => {
    const ids = new Set(actionSteps(wf).flatMap((s) => (s.id ? [s.id] : [])))
    const used = [...text.matchAll(/steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)/g)]
      .filter((m) => ids.has(m[1]))
      .map((m) => m[2])
    expect(used.filter((o) => !(o in action.outputs))).toEqual([])
  })

  it.each(examples.map((w) => [w.file, w]))(
    '%s never runs two deploys of an environment at once, nor cuts one off',
    (_file, { wf }) => {
      expect(wf.concurrency?.group).toMatch(/^deploy-/)
      expect(wf.concurrency?.['cancel-in-progress']).toBe(false)
    },
  )

  it.each(workflows.filter((w) => actionSteps(w.wf).length).map((w) => [w.file, w]))(
    '%s grants each job the permissions what it records needs',
    (_file, { wf }) => {
      for (const job of Object.values(wf.jobs)) {
        const steps = stepsOf(job).filter(isOurs)
        const granted = job.permissions ?? wf.permissions ?? {}
        if (steps.some((s) => s.with?.environment)) expect(granted.deployments).toBe('write')
        const prCanary = 'pull_request' in wf.on && steps.some((s) => s.with?.strategy === 'canary')
        if (prCanary) expect(granted['pull-requests']).toBe('write')
      }
    },
  )

  it('the pull-request canary is promoted on merge behind an environment approval, and aborted on close', () => {
    const wf = examples.find((w) => w.file === 'examples/pull-request-canary.yml')!.wf
    expect(Object.keys(wf.on)).toEqual(['pull_request'])
    const jobOf = (operation: string) =>
      Object.values(wf.jobs).find((j) => stepsOf(j).some((s) => isOurs(s) && s.with?.operation === operation && !s.if))!
    const forkGuard = 'github.event.pull_request.head.repo.full_name == github.repository'
    expect(jobOf('deploy').if).toBe(`${forkGuard} && github.event.action != 'closed'`)
    expect(stepsOf(jobOf('deploy')).find((s) => s.with?.operation === 'deploy')?.with).toMatchObject({
      strategy: 'canary',
    })
    expect(jobOf('promote').if).toBe(
      `${forkGuard} && github.event.action == 'closed' && github.event.pull_request.merged`,
    )
    expect(jobOf('promote').environment).toMatchObject({ name: 'production' })
    expect(jobOf('abort').if).toBe(
      `${forkGuard} && github.event.action == 'closed' && !github.event.pull_request.merged`,
    )
  })

  // An expression inside `run:` is pasted into the script's text before the shell reads it: an output holding
  // a quote and a command would run on the runner. Outputs go through env and are quoted in the script.
  it.each(examples.map((w) => [w.file, w]))('%s pastes no output into a run: script', (_file, { wf }) => {
    const scripts = Object.values(wf.jobs).flatMap((j) => stepsOf(j).flatMap((s) => (s.run ? [s.run] : [])))
    expect(scripts.length).toBeGreaterThan(0)
    for (const script of scripts) expect(script).not.toMatch(/\$\{\{[^}]*\boutputs\b/)
  })

  it('the pull-request canary keeps the deploy key in environments: every job that uses it names one', () => {
    const wf = examples.find((w) => w.file === 'examples/pull-request-canary.yml')!.wf
    const usesKey = (j: Job) => stepsOf(j).some((s) => isOurs(s) && String(s.with?.key ?? '').includes('secrets.'))
    const jobs = Object.entries(wf.jobs).filter(([, j]) => usesKey(j))
    expect(jobs.map(([name]) => name)).toEqual(['canary', 'promote', 'abort'])
    for (const [, j] of jobs) expect(j.environment).toBeTruthy()
  })

  it('manual rollout offers every operation and strategy as a choice', () => {
    const wf = examples.find((w) => w.file === 'examples/manual-rollout.yml')!.wf
    const inputs = (wf.on.workflow_dispatch as { inputs: Record<string, { type: string; options?: string[] }> }).inputs
    expect(inputs.operation).toMatchObject({
      type: 'choice',
      options: ['deploy', 'promote', 'abort', 'rollback', 'status'],
    })
    expect(inputs.strategy).toMatchObject({ type: 'choice', options: ['rolling', 'blue-green', 'canary'] })
  })

  it('the self-test uses the action from the checkout', () => {
    const wf = workflows.find((w) => w.file === '.github/workflows/self-test.yml')!.wf
    expect(actionSteps(wf).length).toBeGreaterThanOrEqual(5)
    expect(actionSteps(wf).every((s) => s.uses === './')).toBe(true)
  })

  it('the README points at every example', () => {
    const readme = read('README.md')
    for (const { file } of examples) expect(readme).toContain(`(${file})`)
  })
})

/** The README's Quick start workflow, which users copy as much as the examples. */
function quickStart() {
  const readme = read('README.md')
  const block = /```yaml\n([\s\S]*?)\n```/.exec(readme.slice(readme.indexOf('### The workflow')))
  if (!block) throw new Error("README.md: no yaml block after '### The workflow'")
  return { file: 'README.md (Quick start)', text: block[1], wf: parse(block[1]) as Workflow }
}
const copied = [...workflows, quickStart()]
const jobsOf = (wf: Workflow) => Object.entries(wf.jobs)
const deployJobs = (wf: Workflow) => jobsOf(wf).filter(([, j]) => stepsOf(j).some(isOurs))
/** `${{ secrets.NAME }}` (or env.NAME): the name; undefined for any other expression or text. */
const exprOf = (value: unknown, context: string) =>
  new RegExp(`^\\$\\{\\{\\s*${context}\\.([A-Za-z0-9_]+)\\s*\\}\\}$`).exec(String(value ?? ''))?.[1]
const FORK_GUARD = 'github.event.pull_request.head.repo.full_name == github.repository'

// What a workflow someone copies must do, so that a copy is safe on their repository too (issue 26, part 5).
describe('workflows and examples, safe to copy', () => {
  it.each(copied.filter((w) => actionSteps(w.wf).length).map((w) => [w.file, w]))(
    '%s: every job that runs the action names its environment',
    (_f, { wf }) => {
      for (const [name, job] of deployJobs(wf)) expect([name, Boolean(job.environment)]).toEqual([name, true])
    },
  )

  // `vars.PRODUCTION_HOST || vars.STAGING_HOST` deploys to staging when the first is unset: an input that
  // says where to go, or how to know the host, must name one thing.
  it.each(copied.map((w) => [w.file, w]))('%s: no fallback from one host or key to another', (_f, { wf }) => {
    const where = ['host', 'hosts', 'nginx-host', 'proxy-host', 'fingerprint', 'known-hosts', 'key', 'username']
    for (const step of actionSteps(wf))
      for (const input of where)
        expect([input, String(step.with?.[input] ?? '')]).not.toEqual([input, expect.stringContaining('||')])
  })

  // docker login stores registry-password in ~/.docker/config.json on every app host: a token of its own that
  // can only read, never the workflow's token (which may hold packages: write).
  it.each(copied.map((w) => [w.file, w]))(
    '%s: the registry password is a read-only token secret of its own',
    (_f, { wf, text }) => {
      for (const step of actionSteps(wf)) {
        const given = step.with?.['registry-password']
        if (given === undefined) continue
        const secret = exprOf(given, 'secrets')
        expect(secret).toBeDefined()
        expect(secret).not.toBe('GITHUB_TOKEN')
        expect(secret).toMatch(/READ/)
      }
      expect(text).not.toMatch(/registry-password:\s*\$\{\{\s*github\.token/)
    },
  )

  it.each(copied.map((w) => [w.file, w]))(
    '%s: each job asks for its own permissions, only those it uses',
    (_f, { wf }) => {
      expect(wf.permissions === undefined || Object.keys(wf.permissions).length === 0).toBe(true)
      for (const [name, job] of jobsOf(wf)) {
        expect([name, job.permissions !== undefined]).toEqual([name, true])
        if (job.uses) continue // a called workflow: its jobs are checked in their own file
        const steps = stepsOf(job)
        const uses = (action: RegExp) => steps.some((s) => action.test(s.uses ?? ''))
        const runs = (text: string) => steps.some((s) => (s.run ?? '').includes(text))
        const ours = steps.filter(isOurs)
        const used: Record<string, boolean> = {
          contents: uses(/^actions\/checkout@/),
          packages: uses(/^docker\/login-action@/) && runs('docker push'),
          deployments: ours.some((s) => s.with?.environment),
          'pull-requests': ours.length > 0 && 'pull_request' in wf.on,
        }
        for (const permission of Object.keys(job.permissions ?? {}))
          expect([name, permission, used[permission] ?? false]).toEqual([name, permission, true])
      }
    },
  )

  it.each(copied.filter((w) => 'pull_request' in w.wf.on).map((w) => [w.file, w]))(
    '%s: a job that needs secrets on a pull request skips pull requests from forks (which get none)',
    (_f, { wf }) => {
      const secretsOf = (job: Job) =>
        [...JSON.stringify(stepsOf(job)).matchAll(/secrets\.([A-Za-z0-9_]+)/g)].map((m) => m[1])
      const needSecrets = jobsOf(wf).filter(([, job]) => secretsOf(job).some((name) => name !== 'GITHUB_TOKEN'))
      for (const [name, job] of needSecrets)
        expect([name, job.if ?? '']).toEqual([name, expect.stringContaining(FORK_GUARD)])
    },
  )

  // Step outputs are not masked: a key passed through one can be printed by any later step or job.
  it.each(copied.map((w) => [w.file, w]))(
    '%s: no secret input comes from a step output; a key from env is masked first',
    (_f, { wf, text }) => {
      for (const step of actionSteps(wf))
        for (const input of SECRET_INPUTS) {
          const given = step.with?.[input]
          if (given === undefined || given === '') continue
          const fromSecret = exprOf(given, 'secrets') !== undefined
          const fromEnv = exprOf(given, 'env') !== undefined
          expect([input, fromSecret || fromEnv]).toEqual([input, true])
          if (fromEnv) expect(text).toMatch(/::add-mask::/)
        }
    },
  )
})
