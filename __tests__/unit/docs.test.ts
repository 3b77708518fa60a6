// The documentation as a newcomer reads it: a README short enough to read in one sitting that points at every
// docs/ page, and links that lead somewhere. A moved section or a renamed heading breaks a link silently on
// GitHub; here it breaks this test.
import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import { copiedFiles, isCommit, ownersIn, pinsIn } from '../../scripts/lib/pins.mjs'
import { releasedVersions } from '../../scripts/lib/release.mjs'

const root = fileURLToPath(new URL('../../', import.meta.url))
const read = (path: string) => readFileSync(join(root, path), 'utf8')

/** The project's Markdown pages: those of the files users copy from (examples/ and workflows are YAML). */
const pages = copiedFiles(root).filter((f) => f.endsWith('.md'))

/** Markdown text without its fenced code blocks (a link inside one is an example, not a link). */
// (Code blocks and code spans are examples, not links.)
const prose = (text: string) => text.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '')

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-')

const anchorsOf = (text: string) =>
  new Set(
    prose(text)
      .split('\n')
      .filter((l) => /^#{1,6} /.test(l))
      .map((l) => slug(l.replace(/^#+ /, ''))),
  )

/** Relative links of a page as [target path from the repository root, anchor]. */
function links(page: string): Array<{ text: string; path: string; anchor: string }> {
  const out: Array<{ text: string; path: string; anchor: string }> = []
  for (const m of prose(read(page)).matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1]
    if (/^[a-z]+:/.test(target)) continue // https:, mailto:
    const [file, anchor = ''] = target.split('#')
    out.push({ text: target, path: file ? normalize(join(dirname(page), file)) : page, anchor })
  }
  return out
}

describe('the documentation', () => {
  it('keeps the README a front page: well under 400 lines', () => {
    expect(read('README.md').split('\n').length).toBeLessThan(350)
  })

  it.each(pages)('%s links only to files and headings that exist', (page) => {
    const broken = links(page).filter(({ path, anchor }) => {
      const full = join(root, path)
      if (!existsSync(full)) return true
      if (!anchor) return false
      return statSync(full).isDirectory() || !anchorsOf(read(path)).has(anchor)
    })
    expect(broken.map((l) => l.text)).toEqual([])
  })

  it('reaches every docs/ page from the README', () => {
    const linked = new Set(links('README.md').map((l) => l.path))
    expect(pages.filter((p) => p.startsWith('docs/') && !linked.has(p))).toEqual([])
  })

  it('has every copied `uses:` pin a version that exists: one full commit until a release, then a released tag', () => {
    const released = releasedVersions(read('CHANGELOG.md'))
    // Which commit it must be (the newest that changed the action) needs the git history: scripts/pin.mjs
    // --check, which npm test and CI run.
    const pins = copiedFiles(root).flatMap((file) => pinsIn(read(file)).map((ref) => ({ file, ref })))
    const ok = (ref: string) => isCommit(ref) || released.some((v) => ref === `v${v}` || ref === `v${v.split('.')[0]}`)
    // A snippet that names another owner (your-org/...) or a tag never released is copied as it is, and fails.
    const owners = copiedFiles(root).flatMap((file) => ownersIn(read(file)).map((owner) => `${file}: ${owner}`))
    expect(owners.filter((o) => !o.endsWith(': nginx-rollout'))).toEqual([])
    expect(pins.length).toBeGreaterThan(3)
    expect(pins.filter((p) => !ok(p.ref))).toEqual([])
    expect(new Set(pins.filter((p) => isCommit(p.ref)).map((p) => p.ref)).size).toBeLessThanOrEqual(1)
  })

  it("keeps the README's test command findable, as CI's .ci/run calls it", () => {
    expect(read('.ci/run')).toMatch(/^npm test$/m)
    expect(read('README.md')).toMatch(/Development: `npm test`.*CONTRIBUTING\.md/s)
  })
})
