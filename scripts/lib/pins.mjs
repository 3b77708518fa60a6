// The `uses: nginx-rollout/nginx-rollout@<ref>` lines users copy from the README, docs/, examples/ and the
// repository's own workflows. Until a release, they pin one full commit: the newest that changed what the
// action runs (action.yml or dist/), so a copied workflow runs the code the docs describe, not a build from
// before it. `npm run pin` rewrites them; `npm test` and CI check that the pinned commit is in the branch's
// history and runs the same action.yml and dist/ as the checkout (scripts/pin.mjs).
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

/** What a user runs when pinning a commit: the action's metadata and its bundle. */
export const ACTION_PATHS = ['action.yml', 'dist']

const PIN = /(uses:\s*nginx-rollout\/nginx-rollout@)([^\s`'"#]+)/g
const COMMIT = /^[0-9a-f]{40}$/

/** Every file whose `uses:` lines users copy, relative to the repository's root. */
export function copiedFiles(root) {
  const inFolder = (dir, ext) =>
    readdirSync(join(root, dir))
      .filter((f) => !ext || f.endsWith(ext))
      .sort()
      .map((f) => `${dir}/${f}`)
  return [
    'README.md',
    'SECURITY.md',
    'CONTRIBUTING.md',
    'CHANGELOG.md',
    ...inFolder('docs', '.md'),
    ...inFolder('examples'),
    ...inFolder('.github/workflows'),
  ]
}

/** The owners a text's `uses: <owner>/nginx-rollout@` lines name (anything but nginx-rollout is a copy error). */
export const ownersIn = (text) => [...text.matchAll(/uses:\s*([\w.-]+)\/nginx-rollout@/g)].map((m) => m[1])

/** The refs a text's `uses:` lines pin, in order. */
export const pinsIn = (text) => [...text.matchAll(PIN)].map((m) => m[2])

/** Whether a ref is a full commit (not a tag or a branch). */
export const isCommit = (ref) => COMMIT.test(ref)

/** `text` with every full-commit pin set to `commit`; tags (a released version) are left as they are. */
export const repin = (text, commit) => {
  if (!isCommit(commit)) throw new Error(`not a full commit: ${commit}`)
  return text.replace(PIN, (whole, head, ref) => (isCommit(ref) ? `${head}${commit}` : whole))
}

/**
 * What is wrong with the files' commit pins: one line per file and pinned commit that `wrong(commit)` says
 * is not the action as it stands (its reason), in the files' order. `texts` maps a file to its text.
 */
export function stalePins(texts, wrong) {
  const problems = []
  for (const [file, text] of texts)
    for (const ref of new Set(pinsIn(text).filter(isCommit))) {
      const why = wrong(ref)
      if (why) problems.push(`${file} pins ${ref}: ${why}`)
    }
  return problems
}
