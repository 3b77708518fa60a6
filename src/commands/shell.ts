// The one place where arguments become shell text. Every remote command is an argument list; render()
// quotes each argument so that no value, however hostile, can become shell syntax on the host.

/** A command to run on the host: an argument list, plus data for its standard input that never appears in a log. */
export interface Command {
  readonly argv: readonly string[]
  /** Sent on standard input (secrets travel here, never in argv). */
  readonly stdin?: string
  /** What the standard input holds, for logs: 'registry password', 'env file with 3 variables'. */
  readonly stdinLabel?: string
  /** The command's deadline on the host (coreutils or busybox `timeout`); the Remote gives every command one. */
  readonly timeoutSeconds?: number
}

export const command = (...argv: string[]): Command => ({ argv })

export const withStdin = (c: Command, stdin: string, stdinLabel: string): Command => ({ ...c, stdin, stdinLabel })

export const withTimeout = (c: Command, timeoutSeconds: number): Command => ({ ...c, timeoutSeconds })

/**
 * A fixed shell script with its data passed as positional parameters ($1, $2, ...). The script is a
 * constant of this code base, never built from input, so quoting the parameters is enough.
 */
export const script = (text: string, ...args: string[]): Command => command('sh', '-c', text, 'sh', ...args)

const PLAIN = /^[A-Za-z0-9_\-./:=@,+%]+$/

export const quote = (arg: string): string => (PLAIN.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)

export const render = (c: Command): string => c.argv.map(quote).join(' ')

/**
 * The command line sent to the host: under `timeout`, so a hung docker pull or daemon ends on the host too
 * (SIGTERM at the deadline, SIGKILL 5 s later), not only in this process.
 */
export const renderRemote = (c: Command, defaultTimeoutSeconds: number): string =>
  render({ argv: ['timeout', '-k', '5', String(Math.ceil(c.timeoutSeconds ?? defaultTimeoutSeconds)), ...c.argv] })

/** A script (one of this code base's constants) shown by its first line: the log needs to know which, not all of it. */
const brief = (arg: string): string => {
  if (!arg.includes('\n') && arg.length <= 200) return arg
  const lines = arg.split('\n')
  return `<script ${lines[0].slice(0, 60)}... (${lines.length} lines)>`
}

/** The command as a log line: the rendered text (scripts abbreviated) and, if any, what goes to its standard input. */
export const describeCommand = (c: Command): string => {
  const text = render({ argv: c.argv.map(brief) })
  return c.stdinLabel ? `${text} < (${c.stdinLabel})` : text
}

export class ShellWordsError extends Error {}

const OPERATORS = new Set([';', '|', '&', '<', '>', '(', ')', '`', '$'])

// Longer than a screen on purpose: one tokenizer loop whose states (between words, single quotes, double
// quotes, a backslash) share the position and the word being built; split apart, each would have to hand
// both back, and the error positions would be harder to keep right.
/**
 * Splits text into words the way sh would for plain words, single quotes, double quotes and backslashes,
 * but performs no expansion: an unquoted operator or any `$`/backtick outside single quotes is an error
 * rather than something silently passed on, so the user learns the value is not a shell.
 */
export function splitShellWords(text: string): string[] {
  const words: string[] = []
  let word = ''
  let inWord = false
  let i = 0
  const fail = (what: string): never => {
    throw new ShellWordsError(`${what} at character ${i + 1}`)
  }
  while (i < text.length) {
    const ch = text[i]
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      if (inWord) words.push(word)
      word = ''
      inWord = false
      i++
    } else if (ch === "'") {
      const end = text.indexOf("'", i + 1)
      if (end < 0) fail('unterminated single quote')
      word += text.slice(i + 1, end)
      inWord = true
      i = end + 1
    } else if (ch === '"') {
      inWord = true
      i++
      for (;;) {
        if (i >= text.length) fail('unterminated double quote')
        const c = text[i]
        if (c === '"') break
        if (c === '$' || c === '`')
          fail(`'${c}' inside double quotes would be expanded by a shell (use single quotes to pass it literally)`)
        if (c === '\\' && i + 1 < text.length && '"\\$`\n'.includes(text[i + 1])) {
          if (text[i + 1] !== '\n') word += text[i + 1]
          i += 2
          continue
        }
        word += c
        i++
      }
      i++
    } else if (ch === '\\') {
      if (i + 1 >= text.length) fail('trailing backslash')
      if (text[i + 1] !== '\n') {
        word += text[i + 1]
        inWord = true
      }
      i += 2
    } else if (OPERATORS.has(ch)) {
      fail(`unquoted '${ch}' (nginx-rollout runs no shell here; quote it if it is meant literally)`)
    } else if (ch === '#' && !inWord) {
      fail("unquoted '#' would start a shell comment")
    } else {
      word += ch
      inWord = true
      i++
    }
  }
  if (inWord) words.push(word)
  return words
}
