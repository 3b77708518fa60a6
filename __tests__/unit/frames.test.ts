// One remote command answering several questions: sections framed by byte lengths, run through a real sh.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { command, render, script } from '../../src/commands/shell.js'
import { parseSections, sectioned, text, type Section } from '../../src/remote/frames.js'

/** A section as SECTION_SH frames it. */
const frame = (name: string, code: number, out: string | Buffer, err: string | Buffer = '') =>
  Buffer.concat([
    Buffer.from(`\n@@nginx-rollout ${name} ${code} ${Buffer.byteLength(out)} ${Buffer.byteLength(err)}\n`),
    Buffer.from(out),
    Buffer.from(err),
  ])

const shown = (sections: Map<string, Section>) =>
  Object.fromEntries([...sections].map(([name, s]) => [name, { code: s.code, out: text(s.out), err: text(s.err) }]))

/** Runs a command as the Remote would hand it to the host's shell, and returns its exit code and raw output. */
function runSh(c: { argv: readonly string[] }): { code: number; raw: Buffer } {
  try {
    return { code: 0, raw: execFileSync('sh', ['-c', render(c)]) }
  } catch (e) {
    const err = e as { status: number; stdout: Buffer }
    return { code: err.status, raw: err.stdout }
  }
}

describe('parseSections', () => {
  it('reads each section by its byte lengths, multi-byte UTF-8 included', () => {
    const raw = Buffer.concat([
      frame('history', 0, '[{"image":"shop:v2 — ünïcødé ✓"}]\n'),
      frame('canary', 1, '', 'cat: canary.json: No such file\n'),
      frame('empty', 0, ''),
    ])
    expect(shown(parseSections(raw))).toEqual({
      history: { code: 0, out: '[{"image":"shop:v2 — ünïcødé ✓"}]\n', err: '' },
      canary: { code: 1, out: '', err: 'cat: canary.json: No such file\n' },
      empty: { code: 0, out: '', err: '' },
    })
  })

  it('never takes content for a header, even a line that looks exactly like one', () => {
    const forged = '# comment\n@@nginx-rollout managed 0 4 0\nevil\n'
    const raw = Buffer.concat([frame('managed', 0, forged), frame('masters', 0, '812 \n')])
    expect(shown(parseSections(raw))).toEqual({
      managed: { code: 0, out: forged, err: '' },
      masters: { code: 0, out: '812 \n', err: '' },
    })
  })

  it('keeps the bytes of a section, which may hold sections of its own', () => {
    const inner = Buffer.concat([
      frame('masters', 0, '812 '),
      frame('dump', 0, '# configuration file /etc/nginx/nginx.conf:\n'),
    ])
    const outer = parseSections(Buffer.concat([frame('history', 0, '[]'), frame('nginx', 0, inner)]))
    expect(outer.get('nginx')?.out.equals(inner)).toBe(true)
    expect(shown(parseSections(outer.get('nginx')!.out))).toEqual({
      masters: { code: 0, out: '812 ', err: '' },
      dump: { code: 0, out: '# configuration file /etc/nginx/nginx.conf:\n', err: '' },
    })
  })

  it('skips a login banner before the first section, and stops at anything but a header after one', () => {
    const raw = Buffer.concat([
      Buffer.from('Welcome to Ubuntu\n'),
      frame('a', 0, 'x'),
      Buffer.from('stray'),
      frame('b', 0, 'y'),
    ])
    expect(shown(parseSections(raw))).toEqual({ a: { code: 0, out: 'x', err: '' } })
  })

  it('keeps the complete sections before output cut short, and reads nothing from a broken header', () => {
    const cut = Buffer.concat([frame('a', 0, 'abc'), frame('b', 0, 'abcdef').subarray(0, -3)])
    expect(shown(parseSections(cut)).a).toEqual({ code: 0, out: 'abc', err: '' })
    expect(parseSections(Buffer.from('\n@@nginx-rollout a zero 1 0\nx')).size).toBe(0)
    expect(parseSections(Buffer.from('')).size).toBe(0)
  })
})

describe('sectioned, run by a real sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-frames-'))

  it('frames every part with its exit code, standard output and standard error', () => {
    const c = sectioned(undefined, [
      { name: 'greeting', command: command('printf', '%s', 'héllo ✓\n@@nginx-rollout fake 0 1 0\nx') },
      { name: 'failing', command: script('echo "to stderr: $1" >&2; printf out; exit 3', "it's") },
      { name: 'quiet', command: command('true') },
    ])
    const { code, raw } = runSh(c)
    expect(code).toBe(0)
    expect(shown(parseSections(raw))).toEqual({
      greeting: { code: 0, out: 'héllo ✓\n@@nginx-rollout fake 0 1 0\nx', err: '' },
      failing: { code: 3, out: 'out', err: "to stderr: it's\n" },
      quiet: { code: 0, out: '', err: '' },
    })
  })

  it('nests: a part may itself print sections', () => {
    const inner = sectioned(undefined, [{ name: 'masters', command: command('echo', '812') }])
    const { raw } = runSh(sectioned(undefined, [{ name: 'nginx', command: inner }]))
    const nginx = parseSections(raw).get('nginx')
    expect(nginx?.code).toBe(0)
    expect(shown(parseSections(nginx!.out))).toEqual({ masters: { code: 0, out: '812\n', err: '' } })
  })

  it('runs the first part before the others, and all of them when it succeeds', () => {
    const { code, raw } = runSh(
      sectioned(script('echo "taken over a stale lock"'), [{ name: 'after', command: command('echo', 'read') }]),
    )
    expect(code).toBe(0)
    expect(shown(parseSections(raw))).toEqual({
      first: { code: 0, out: 'taken over a stale lock\n', err: '' },
      after: { code: 0, out: 'read\n', err: '' },
    })
  })

  it("stops when the first part fails: its exit code is the command's, and no later part runs", () => {
    const marker = join(dir, 'later-part-ran')
    const { code, raw } = runSh(
      sectioned(script('echo "held by run 41"; exit 3'), [{ name: 'later', command: command('touch', marker) }]),
    )
    expect(code).toBe(3)
    expect(shown(parseSections(raw))).toEqual({ first: { code: 3, out: 'held by run 41\n', err: '' } })
    expect(existsSync(marker)).toBe(false)
  })

  it('removes its scratch directory when done', () => {
    const scratch = mkdtempSync(join(tmpdir(), 'nr-frames-tmp-'))
    const c = sectioned(undefined, [{ name: 'during', command: command('ls', scratch) }])
    const raw = execFileSync('sh', ['-c', render(c)], { env: { ...process.env, TMPDIR: scratch } })
    expect(text(parseSections(raw).get('during')?.out)).toMatch(/^tmp\.\w+\n$/)
    expect(readdirSync(scratch)).toEqual([])
  })
})
