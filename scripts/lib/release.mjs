// What a release needs before it is tagged, checked without touching git: the version asked for, package.json,
// CHANGELOG.md and the tags that exist. scripts/release.mjs feeds it; the release workflow runs that before it
// tags. A release names a tag that will exist for good (users pin it), so every problem is found first and
// reported together, naming what was expected and what arrived.

const VERSION = /^(\d+)\.(\d+)\.(\d+)$/

/** The versions CHANGELOG.md records as released: its `## [X.Y.Z] - YYYY-MM-DD` headings, newest first. */
export function releasedVersions(changelog) {
  return [...changelog.matchAll(/^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$/gm)].map((m) => m[1])
}

/** The text of one version's CHANGELOG.md section (below its heading, up to the next `## `), trimmed. */
export function changelogSection(changelog, version) {
  const lines = changelog.split('\n')
  const start = lines.findIndex((l) => l.startsWith(`## [${version}] - `))
  if (start < 0) return undefined
  const end = lines.findIndex((l, i) => i > start && l.startsWith('## '))
  return lines
    .slice(start + 1, end < 0 ? undefined : end)
    .join('\n')
    .trim()
}

const parts = (version) => VERSION.exec(version)?.slice(1).map(Number)
const newer = (a, b) => {
  const [x, y] = [parts(a), parts(b)]
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] > y[i]
  return false
}

/**
 * The tags a release of `version` makes (vX.Y.Z, and the moving major tag vX) and its notes, or every reason it
 * may not be made. `tags`: the names of the tags the repository has.
 */
export function releasePlan({ version, packageVersion, changelog, tags }) {
  const problems = []
  const shown = JSON.stringify(version)
  if (!VERSION.test(version)) {
    const hint = /^v\d/.test(version) ? ' (without the leading v: the tag gets it)' : ''
    return { problems: [`version: expected X.Y.Z, e.g. 0.1.0${hint}, got ${shown}`] }
  }
  const tag = `v${version}`
  const major = `v${parts(version)[0]}`
  if (packageVersion !== version)
    problems.push(
      `package.json: expected "version": "${version}" (the version being released), got ${JSON.stringify(packageVersion)}: set it in the release's pull request`,
    )
  const notes = changelogSection(changelog, version)
  if (notes === undefined)
    problems.push(
      `CHANGELOG.md: expected a section "## [${version}] - YYYY-MM-DD" (move the Unreleased entries under it), found ${releasedVersions(changelog).length ? `only ${releasedVersions(changelog).join(', ')}` : 'no released version'}`,
    )
  else if (!notes) problems.push(`CHANGELOG.md: the section of ${version} is empty: say what changed`)
  if (tags.includes(tag))
    problems.push(`tag ${tag} exists already: a released tag is never moved; release a newer version`)
  const released = tags.filter((t) => VERSION.test(t.slice(1)) && t.startsWith('v')).map((t) => t.slice(1))
  const later = released.filter((v) => !newer(version, v) && v !== version)
  if (later.length)
    problems.push(
      `version: expected a version newer than every released one, got ${version}, but ${later.map((v) => `v${v}`).join(', ')} exist`,
    )
  return problems.length ? { problems } : { problems, tag, major, notes }
}
