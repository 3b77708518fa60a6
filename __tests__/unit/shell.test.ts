import { execFileSync } from 'node:child_process'
import fc from 'fast-check'
import {
  command,
  describeCommand,
  quote,
  render,
  renderRemote,
  script,
  ShellWordsError,
  splitShellWords,
  withStdin,
  withTimeout,
} from '../../src/commands/shell.js'

describe('quote and render', () => {
  it('leaves plain words bare and single-quotes everything else', () => {
    expect(render(command('docker', 'run', '--name', 'app-9201', 'ghcr.io/o/app:1.2'))).toBe(
      'docker run --name app-9201 ghcr.io/o/app:1.2',
    )
    expect(quote('')).toBe("''")
    expect(quote('a b')).toBe("'a b'")
    expect(quote("it's")).toBe("'it'\\''s'")
    expect(quote('v2; touch /tmp/owned')).toBe("'v2; touch /tmp/owned'")
    expect(quote('$(id)')).toBe("'$(id)'")
    expect(quote('~root')).toBe("'~root'")
    expect(quote('weight=10,50%')).toBe('weight=10,50%')
  })

  it('never shows standard input in a log line', () => {
    const c = withStdin(command('docker', 'login', '--password-stdin'), 'hunter2', 'registry password')
    expect(describeCommand(c)).toBe('docker login --password-stdin < (registry password)')
    expect(describeCommand(c)).not.toContain('hunter2')
  })

  it('delivers any string to a real sh byte for byte as one argument', () => {
    const hostile = fc.string({
      unit: fc.constantFrom(...`ab $\`'"\\;|&<>(){}[]*?~#!\n\t=%-`.split('')),
      maxLength: 40,
    })
    fc.assert(
      fc.property(
        fc.oneof(
          hostile,
          fc.string({ unit: 'binary', maxLength: 30 }).map((s) => s.replaceAll('\0', '')),
        ),
        (value) => {
          const out = execFileSync('sh', ['-c', render(command('printf', '%s|', value, 'end'))], { encoding: 'utf8' })
          expect(out).toBe(`${value}|end|`)
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('renderRemote', () => {
  it('puts every command under timeout: its own deadline, or the default, rounded up to whole seconds', () => {
    expect(renderRemote(command('docker', 'ps'), 120)).toBe('timeout -k 5 120 docker ps')
    expect(renderRemote(withTimeout(command('docker', 'pull', '--quiet', 'shop:v2'), 600), 120)).toBe(
      'timeout -k 5 600 docker pull --quiet shop:v2',
    )
    expect(renderRemote(withTimeout(command('true'), 2.5), 120)).toBe('timeout -k 5 3 true')
    expect(renderRemote(script('echo "$1"', 'a b'), 120)).toBe(`timeout -k 5 120 sh -c 'echo "$1"' sh 'a b'`)
  })

  it('ends a command that outlives its deadline on the host itself', () => {
    const started = Date.now()
    let status: number | undefined
    try {
      execFileSync('sh', ['-c', renderRemote(withTimeout(command('sleep', '10'), 0.5), 120)], { stdio: 'pipe' })
    } catch (e) {
      status = (e as { status: number }).status
    }
    expect(status).toBe(124)
    expect(Date.now() - started).toBeLessThan(5000)
  })
})

describe('describeCommand', () => {
  it('shows a script by its first line and length, and its arguments in full', () => {
    const c = script(
      'ids=$(docker ps --quiet) || exit $?\n[ -z "$ids" ] && exit 0\ndocker inspect $ids',
      'nginx-rollout.role=replica',
    )
    expect(describeCommand(c)).toBe(
      `sh -c '<script ids=$(docker ps --quiet) || exit $?... (3 lines)>' sh nginx-rollout.role=replica`,
    )
  })

  it('abbreviates a long single-line argument, and keeps one of 200 characters', () => {
    const long = `echo ${'x'.repeat(200)}`
    expect(describeCommand(command('sh', '-c', long))).toBe(`sh -c '<script ${long.slice(0, 60)}... (1 lines)>'`)
    expect(describeCommand(command('echo', 'y'.repeat(200)))).toBe(`echo ${'y'.repeat(200)}`)
  })

  it('shows a command without standard input as it is rendered', () => {
    const c = command('docker', 'stop', '--time', '10', '--', 'shop-9201')
    expect(describeCommand(c)).toBe(render(c))
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
