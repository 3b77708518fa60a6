import { execFileSync } from 'node:child_process'
import fc from 'fast-check'
import { command, quote, render, splitShellWords, ShellWordsError, withStdin, describeCommand } from '../../src/commands/shell.js'

describe('quote and render', () => {
  it('leaves plain words bare and single-quotes everything else', () => {
    expect(render(command('docker', 'run', '--name', 'app-9201', 'ghcr.io/o/app:1.2'))).toBe('docker run --name app-9201 ghcr.io/o/app:1.2')
    expect(quote('')).toBe("''")
    expect(quote('a b')).toBe("'a b'")
    expect(quote("it's")).toBe("'it'\\''s'")
    expect(quote('v2; touch /tmp/owned')).toBe("'v2; touch /tmp/owned'")
    expect(quote('$(id)')).toBe("'$(id)'")
    expect(quote('~root')).toBe("'~root'")
  })

  it('never shows standard input in a log line', () => {
    const c = withStdin(command('docker', 'login', '--password-stdin'), 'hunter2', 'registry password')
    expect(describeCommand(c)).toBe('docker login --password-stdin < (registry password)')
    expect(describeCommand(c)).not.toContain('hunter2')
  })

  it('delivers any string to a real sh byte for byte as one argument', () => {
    const hostile = fc.string({ unit: fc.constantFrom(...`ab $\`'"\\;|&<>(){}[]*?~#!\n\t=%-`.split('')), maxLength: 40 })
    fc.assert(
      fc.property(fc.oneof(hostile, fc.string({ unit: 'binary', maxLength: 30 }).map((s) => s.replaceAll('\0', ''))), (value) => {
        const out = execFileSync('sh', ['-c', render(command('printf', '%s|', value, 'end'))], { encoding: 'utf8' })
        expect(out).toBe(`${value}|end|`)
      }),
      { numRuns: 300 },
    )
  })
})

describe('splitShellWords', () => {
  it.each([
    ['--memory 512m --restart unless-stopped', ['--memory', '512m', '--restart', 'unless-stopped']],
    [`--label 'a=b c' --label "x=\\"y\\""`, ['--label', 'a=b c', '--label', 'x="y"']],
    ['  -e\tA=1 \n --cap-drop ALL ', ['-e', 'A=1', '--cap-drop', 'ALL']],
    ["--entrypoint '' x\\ y", ['--entrypoint', '', 'x y']],
    ["'$(not expanded)'", ['$(not expanded)']],
    ['', []],
  ])('splits %j', (text, words) => {
    expect(splitShellWords(text)).toEqual(words)
  })

  it.each([
    ['--memory 512m; touch /tmp/owned', "unquoted ';'"],
    ['$(id)', "unquoted '$'"],
    ['`id`', "unquoted '`'"],
    ['a | b', "unquoted '|'"],
    ['a > /etc/passwd', "unquoted '>'"],
    ['"$HOME"', "'$' inside double quotes"],
    ["'open", 'unterminated single quote'],
    ['"open', 'unterminated double quote'],
    ['# comment', "unquoted '#'"],
  ])('rejects %j', (text, message) => {
    expect(() => splitShellWords(text)).toThrow(ShellWordsError)
    expect(() => splitShellWords(text)).toThrow(message)
  })
})
