// The release's check before it tags (scripts/lib/release.mjs): a tag users pin must name a version that
// package.json and CHANGELOG.md agree on, newer than every released one, and never one that exists.
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { changelogSection, releasedVersions, releasePlan } from '../../scripts/lib/release.mjs'

const changelog = `# Changelog

## Unreleased

## [0.2.0] - 2027-01-10

### Fixed
- a fix

## [0.1.0] - 2026-12-20

First release.
`
const given = {
  version: '0.3.0',
  packageVersion: '0.3.0',
  changelog: changelog.replace('## Unreleased\n', '## Unreleased\n\n## [0.3.0] - 2027-02-01\n\nMore.\n'),
  tags: ['v0.1.0', 'v0.2.0', 'v0'],
}

describe('releasePlan', () => {
  it("tags vX.Y.Z, moves the major tag, and takes the notes from the version's CHANGELOG section", () => {
    expect(releasePlan(given)).toEqual({ problems: [], tag: 'v0.3.0', major: 'v0', notes: 'More.' })
    expect(
      releasePlan({
        ...given,
        version: '1.0.0',
        packageVersion: '1.0.0',
        changelog: `## [1.0.0] - 2027-03-01\n\nOne.\n`,
      }),
    ).toMatchObject({ tag: 'v1.0.0', major: 'v1' })
  })

  it('refuses a version that is not X.Y.Z, saying to drop a leading v', () => {
    expect(releasePlan({ ...given, version: 'v0.3.0' }).problems).toEqual([
      'version: expected X.Y.Z, e.g. 0.1.0 (without the leading v: the tag gets it), got "v0.3.0"',
    ])
    expect(releasePlan({ ...given, version: '0.3' }).problems).toEqual([
      'version: expected X.Y.Z, e.g. 0.1.0, got "0.3"',
    ])
  })

  it('reports every problem at once: package.json, the CHANGELOG section, a tag that exists, an older version', () => {
    expect(
      releasePlan({
        version: '0.2.0',
        packageVersion: '0.1.0',
        changelog: '## Unreleased\n',
        tags: ['v0.2.0', 'v0.10.0'],
      }).problems,
    ).toEqual([
      'package.json: expected "version": "0.2.0" (the version being released), got "0.1.0": set it in the release\'s pull request',
      'CHANGELOG.md: expected a section "## [0.2.0] - YYYY-MM-DD" (move the Unreleased entries under it), found no released version',
      'tag v0.2.0 exists already: a released tag is never moved; release a newer version',
      'version: expected a version newer than every released one, got 0.2.0, but v0.10.0 exist',
    ])
  })

  it('compares versions as numbers, not text (0.10.0 is newer than 0.9.0)', () => {
    const c = '## [0.10.0] - 2027-01-01\n\nTen.\n'
    expect(
      releasePlan({ version: '0.10.0', packageVersion: '0.10.0', changelog: c, tags: ['v0.9.0', 'v0'] }).problems,
    ).toEqual([])
  })

  it('refuses an empty CHANGELOG section', () => {
    const c = '## [0.3.0] - 2027-02-01\n\n## [0.2.0] - 2027-01-10\n\nx\n'
    expect(releasePlan({ ...given, changelog: c }).problems).toEqual([
      'CHANGELOG.md: the section of 0.3.0 is empty: say what changed',
    ])
  })
})

describe('the CHANGELOG', () => {
  it('reads the released versions and a section', () => {
    expect(releasedVersions(changelog)).toEqual(['0.2.0', '0.1.0'])
    expect(changelogSection(changelog, '0.2.0')).toBe('### Fixed\n- a fix')
    expect(changelogSection(changelog, '0.1.0')).toBe('First release.')
    expect(changelogSection(changelog, '9.9.9')).toBeUndefined()
  })

  it("of this repository has an Unreleased section, and package.json's version is not released yet or is the newest", () => {
    const ours = readFileSync(new URL('../../CHANGELOG.md', import.meta.url), 'utf8')
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    expect(ours).toMatch(/^## Unreleased$/m)
    const released = releasedVersions(ours)
    expect(released.length === 0 || released[0] === pkg.version).toBe(true)
  })
})

describe('the release workflow', () => {
  const wf = parse(readFileSync(new URL('../../.github/workflows/release.yml', import.meta.url), 'utf8')) as {
    on: Record<string, unknown>
    permissions: Record<string, string>
    jobs: Record<
      string,
      {
        needs?: string
        uses?: string
        environment?: string
        permissions?: Record<string, string>
        steps?: Array<{ run?: string; env?: Record<string, string> }>
      }
    >
  }

  it('tags only after the whole of ci.yml passed on the commit, behind an environment, with write only where it tags', () => {
    expect(Object.keys(wf.on)).toEqual(['workflow_dispatch'])
    expect(wf.permissions).toEqual({})
    expect(wf.jobs.test.uses).toBe('./.github/workflows/ci.yml')
    expect(wf.jobs.tag.needs).toBe('test')
    expect(wf.jobs.tag.environment).toBe('release')
    expect(wf.jobs.tag.permissions).toEqual({ contents: 'write' })
    const ci = parse(readFileSync(new URL('../../.github/workflows/ci.yml', import.meta.url), 'utf8')) as {
      on: Record<string, unknown>
    }
    expect(Object.keys(ci.on)).toContain('workflow_call')
  })

  it('checks the plan and dist/ before it tags, and never pastes the version into a script', () => {
    const runs = wf.jobs.tag.steps!.map((s) => s.run ?? '')
    const at = (text: string) => runs.findIndex((r) => r.includes(text))
    expect(at('scripts/release.mjs')).toBeGreaterThan(-1)
    expect(at('git diff --exit-code --stat -- dist/')).toBeGreaterThan(at('scripts/release.mjs'))
    expect(at('git tag --annotate')).toBeGreaterThan(at('git diff --exit-code --stat -- dist/'))
    expect(runs.join('\n')).not.toContain('${{')
  })
})
