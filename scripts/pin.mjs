// npm run pin: sets every copied `uses: nginx-rollout/nginx-rollout@<commit>` (README, docs/, examples/,
// workflows) to the newest commit that changed action.yml or dist/, so that a workflow copied from the docs
// runs the code they describe. Run it after committing a change to the action, then commit what it changed.
// `--check` changes nothing, and exits 1 unless every pinned commit is in this branch's history and runs the
// same action.yml and dist/ as HEAD (npm test and CI run it). Needs the git history: a shallow clone
// knows no earlier commit.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ACTION_PATHS, copiedFiles, repin, stalePins } from './lib/pins.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const check = process.argv.includes('--check')
const git = (...args) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: 'pipe' }).trim()
const succeeds = (...args) => {
  try {
    git(...args)
    return true
  } catch {
    return false
  }
}
const fail = (message) => {
  console.error(`pin: ${message}`)
  process.exit(1)
}

if (git('rev-parse', '--is-shallow-repository') === 'true')
  fail('this clone is shallow: fetch the whole history (git fetch --unshallow; actions/checkout with fetch-depth: 0)')
const files = copiedFiles(root)
const texts = new Map(files.map((f) => [f, readFileSync(join(root, f), 'utf8')]))

if (check) {
  /** Why a pinned commit is not the action as it stands, if it is not (asked once per commit). */
  const why = new Map()
  const wrong = (ref) => {
    if (!why.has(ref)) why.set(ref, whyWrong(ref))
    return why.get(ref)
  }
  const whyWrong = (ref) => {
    if (!succeeds('merge-base', '--is-ancestor', ref, 'HEAD')) return "not in this branch's history"
    if (succeeds('diff', '--quiet', ref, 'HEAD', '--', ...ACTION_PATHS)) return undefined
    const since = git('rev-list', '--count', `${ref}..HEAD`, '--', ...ACTION_PATHS)
    return `its action.yml or dist/ differ from HEAD's (${since} commits changed them since)`
  }
  const problems = stalePins(texts, wrong)
  for (const p of problems) console.error(`pin: ${p}`)
  if (problems.length) fail("run 'npm run pin' and commit what it changes")
  console.log('pin: every copied pin runs the action.yml and dist/ of HEAD')
  process.exit(0)
}
// What is not committed has no commit to pin (the check, above, compares with HEAD and ignores it).
if (git('status', '--porcelain', '--', ...ACTION_PATHS))
  fail(`${ACTION_PATHS.join(' and ')} have changes not committed: commit them first, then pin that commit`)
const commit = git('log', '-1', '--format=%H', '--', ...ACTION_PATHS)
const changed = []
for (const [file, text] of texts) {
  const next = repin(text, commit)
  if (next !== text) {
    writeFileSync(join(root, file), next)
    changed.push(file)
  }
}
console.log(
  `pin: ${commit}, the newest commit that changed the action; ${changed.length ? `rewrote ${changed.join(', ')}` : 'every pin named it already'}`,
)
