// The copied `uses:` pins (scripts/lib/pins.mjs): `npm run pin` sets every full-commit pin to the newest commit
// that changed the action, leaves a released tag alone, and --check names each file whose pinned commit is not
// the action as it stands.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isCommit, pinsIn, repin, stalePins } from '../../scripts/lib/pins.mjs'

const OLD = '110db7037407e3744390a20fd0285a573b9c09ff'
const NEW = '235ac6d5e4ec4018d89c85aa732cca238ac59f2a'

const workflow = (ref: string, tail = '') => `    steps:
      - uses: actions/checkout@v4
      - uses: nginx-rollout/nginx-rollout@${ref}${tail}
        with:
          app: shop
`

describe('the copied pins', () => {
  it('finds the refs of the action only, with a trailing comment or in a code span', () => {
    const text = `${workflow(OLD, ' # no release yet')}\`uses: nginx-rollout/nginx-rollout@v0\` once released`
    expect(pinsIn(text)).toEqual([OLD, 'v0'])
    expect(isCommit(OLD)).toBe(true)
    expect(isCommit('v0')).toBe(false)
    expect(isCommit(OLD.slice(0, 12))).toBe(false)
  })

  it('sets every full-commit pin to the commit, keeping the rest of the line, and leaves tags as they are', () => {
    const text = workflow(OLD, ' # no release yet') + workflow('v0')
    expect(repin(text, NEW)).toBe(workflow(NEW, ' # no release yet') + workflow('v0'))
    expect(repin(repin(text, NEW), NEW)).toBe(repin(text, NEW))
    expect(() => repin(text, 'main')).toThrow('not a full commit: main')
  })

  it('names each file and pinned commit the check finds wrong, with its reason, and nothing when none is', () => {
    const texts = new Map([
      ['README.md', workflow(OLD)],
      ['docs/vps.md', workflow(NEW)],
      ['examples/a.yml', workflow(OLD) + workflow(NEW) + workflow(OLD)],
      ['CHANGELOG.md', workflow('v0')],
    ])
    const asked: string[] = []
    const wrong = (ref: string) => {
      asked.push(ref)
      return ref === NEW ? undefined : 'differs'
    }
    expect(stalePins(texts, wrong)).toEqual([`README.md pins ${OLD}: differs`, `examples/a.yml pins ${OLD}: differs`])
    // A tag is a released version: not a commit to check.
    expect(asked).not.toContain('v0')
    expect(stalePins(new Map([...texts].map(([f, t]) => [f, repin(t, NEW)])), wrong)).toEqual([])
  })
})

describe('npm run pin, in a repository of its own', () => {
  const script = fileURLToPath(new URL('../../scripts/', import.meta.url))
  let repo: string
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', stdio: 'pipe' }).trim()
  const pin = (...args: string[]) => {
    try {
      return {
        code: 0,
        out: execFileSync('node', [join(repo, 'scripts/pin.mjs'), ...args], { stdio: 'pipe' }).toString(),
      }
    } catch (e) {
      const err = e as { status: number; stderr: Buffer }
      return { code: err.status, out: err.stderr.toString() }
    }
  }
  const write = (file: string, text: string) => {
    mkdirSync(dirname(join(repo, file)), { recursive: true })
    writeFileSync(join(repo, file), text)
  }
  const commit = (message: string) => {
    git('add', '-A')
    git('-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '--quiet', '-m', message)
    return git('rev-parse', 'HEAD')
  }

  beforeEach(() => {
    repo = mkdtempSync(join(tmpdir(), 'nr-pins-'))
    git('init', '--quiet')
    for (const f of ['pin.mjs', 'lib/pins.mjs']) write(`scripts/${f}`, readFileSync(join(script, f), 'utf8'))
    for (const f of ['SECURITY.md', 'CONTRIBUTING.md', 'CHANGELOG.md', 'docs/a.md']) write(f, '# page\n')
    write('README.md', workflow(OLD))
    write('examples/deploy.yml', workflow(OLD, ' # no release yet'))
    write('.github/workflows/ci.yml', workflow('v0'))
    write('action.yml', 'name: x\n')
    write('dist/index.js', 'one\n')
  })
  afterEach(() => rmSync(repo, { recursive: true, force: true }))

  it('pins the newest commit that changed the action; the check fails once the action changes again', () => {
    const first = commit('the action')
    write('docs/a.md', '# page, changed\n')
    commit('docs only')
    expect(pin('--check')).toMatchObject({ code: 1 })
    expect(pin('--check').out).toContain(`README.md pins ${OLD}: not in this branch's history`)
    expect(pin()).toMatchObject({ code: 0 })
    expect(readFileSync(join(repo, 'examples/deploy.yml'), 'utf8')).toBe(workflow(first, ' # no release yet'))
    expect(readFileSync(join(repo, '.github/workflows/ci.yml'), 'utf8')).toBe(workflow('v0'))
    commit('pin')
    expect(pin('--check')).toMatchObject({ code: 0 })

    // A change to the action, committed, then the pin: what is not committed cannot be pinned.
    write('dist/index.js', 'two\n')
    expect(pin('--check')).toMatchObject({ code: 0 })
    expect(pin().out).toContain('have changes not committed: commit them first')
    const second = commit('the action again')
    const stale = pin('--check')
    expect(stale.code).toBe(1)
    expect(stale.out).toContain(`README.md pins ${first}: its action.yml or dist/ differ from HEAD's (1 commits`)
    expect(stale.out).toContain("run 'npm run pin'")
    pin()
    commit('pin')
    expect(pin('--check')).toMatchObject({ code: 0 })
    expect(readFileSync(join(repo, 'README.md'), 'utf8')).toBe(workflow(second))
  })

  it('refuses a shallow clone, which knows no earlier commit', () => {
    commit('the action')
    write('docs/a.md', '# page, changed\n')
    commit('docs only')
    const shallow = mkdtempSync(join(tmpdir(), 'nr-pins-shallow-'))
    try {
      execFileSync('git', ['clone', '--quiet', '--depth', '1', `file://${repo}`, shallow], { stdio: 'pipe' })
      repo = shallow
      expect(pin('--check')).toMatchObject({ code: 1 })
      expect(pin('--check').out).toContain('this clone is shallow')
    } finally {
      rmSync(shallow, { recursive: true, force: true })
    }
  })
})
