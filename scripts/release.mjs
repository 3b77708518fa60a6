// The release workflow's check before it tags: `node scripts/release.mjs X.Y.Z NOTES_FILE`. Prints `tag=vX.Y.Z`
// and `major=vX` (for $GITHUB_OUTPUT) and writes the version's CHANGELOG.md section to NOTES_FILE, or prints
// every problem and exits 1. Reads package.json, CHANGELOG.md and `git tag` of the checkout it runs in.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { releasePlan } from './lib/release.mjs'

const [version = '', notesFile] = process.argv.slice(2)
if (!notesFile) {
  console.error('usage: node scripts/release.mjs X.Y.Z NOTES_FILE')
  process.exit(2)
}
const plan = releasePlan({
  version,
  packageVersion: JSON.parse(readFileSync('package.json', 'utf8')).version,
  changelog: readFileSync('CHANGELOG.md', 'utf8'),
  tags: execFileSync('git', ['tag', '--list'], { encoding: 'utf8' }).split('\n').filter(Boolean),
})
if (plan.problems.length) {
  for (const p of plan.problems) console.error(`::error::${p}`)
  process.exit(1)
}
writeFileSync(notesFile, `${plan.notes}\n`)
console.log(`tag=${plan.tag}\nmajor=${plan.major}`)
