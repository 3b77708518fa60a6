// Pure: what `nginx -T` says about the live configuration. The action manages one included file; before it
// writes that file it must know nginx will read it, and in the right place (the http block).
import path from 'node:path'

export interface ConfigDump {
  /** The main configuration file (the first nginx -T prints). */
  readonly main: string
  /** Every file nginx read, in order, with its text. */
  readonly files: ReadonlyMap<string, string>
}

/** Splits nginx -T's standard output into its files. */
export function parseDump(text: string): ConfigDump | undefined {
  const files = new Map<string, string>()
  const re = /^# configuration file (.+):$/gm
  const heads = [...text.matchAll(re)]
  heads.forEach((m, i) => {
    const start = (m.index ?? 0) + m[0].length + 1
    const end = i + 1 < heads.length ? (heads[i + 1].index ?? text.length) : text.length
    files.set(m[1], text.slice(start, end))
  })
  const main = heads[0]?.[1]
  return main ? { main, files } : undefined
}

type Token = { kind: 'word'; text: string } | { kind: '{' | '}' | ';' }

/** nginx's lexer, enough to find directives and blocks: words, quotes, comments, `${var}` inside words. */
export function tokenize(text: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < text.length) {
    const ch = text[i]
    if (/\s/.test(ch)) i++
    else if (ch === '#') while (i < text.length && text[i] !== '\n') i++
    else if (ch === '{' || ch === '}' || ch === ';') {
      tokens.push({ kind: ch })
      i++
    } else if (ch === '"' || ch === "'") {
      let word = ''
      i++
      while (i < text.length && text[i] !== ch) {
        if (text[i] === '\\' && i + 1 < text.length) i++
        word += text[i++]
      }
      i++
      tokens.push({ kind: 'word', text: word })
    } else {
      let word = ''
      while (i < text.length && !/[\s;{}]/.test(text[i])) {
        if (text[i] === '$' && text[i + 1] === '{') {
          const close = text.indexOf('}', i)
          word += text.slice(i, close < 0 ? text.length : close + 1)
          i = close < 0 ? text.length : close + 1
        } else word += text[i++]
      }
      tokens.push({ kind: 'word', text: word })
    }
  }
  return tokens
}

/** One directive as nginx reads it: its words, the blocks it sits in, and the file it is in. */
export interface Directive {
  readonly words: readonly string[]
  /** Enclosing block names, outermost first: [] is the main context, ['http'] the http block. */
  readonly context: readonly string[]
  readonly file: string
}

/** nginx's glob(3): `*`, `?` and `[...]` within one path segment; a leading dot is never matched by a wildcard. */
export function globMatch(pattern: string, file: string): boolean {
  const p = pattern.split('/')
  const f = file.split('/')
  if (p.length !== f.length) return false
  return p.every((seg, i) => {
    if (f[i].startsWith('.') && !seg.startsWith('.')) return seg === f[i]
    // A '[' without its ']' is literal, as glob(3) reads it.
    const literal = seg.replace(/\\/g, '\\\\').replace(/\[(?![^\]]*\])/g, '\\[')
    const re = literal
      .replace(/[.+^${}()|]/g, '\\$&')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '[^/]')
      .replace(/\[!/g, '[^')
    return new RegExp(`^${re}$`).test(f[i])
  })
}

/** Every directive of the configuration, following includes (each file once per include) into their context. */
export function directives(dump: ConfigDump): Directive[] {
  const out: Directive[] = []
  const base = path.dirname(dump.main)
  const walk = (file: string, context: readonly string[], depth: number) => {
    const tokens = tokenize(dump.files.get(file) ?? '')
    const stack = [...context]
    let words: string[] = []
    for (const t of tokens) {
      if (t.kind === 'word') words.push(t.text)
      else if (t.kind === ';') {
        if (words.length) {
          out.push({ words, context: [...stack], file })
          if (words[0] === 'include' && words[1] && depth < 16) {
            const pattern = path.resolve(base, words[1])
            for (const f of dump.files.keys()) if (globMatch(pattern, f)) walk(f, stack, depth + 1)
          }
        }
        words = []
      } else if (t.kind === '{') {
        out.push({ words, context: [...stack], file })
        stack.push(words[0] ?? '')
        words = []
      } else {
        stack.pop()
        words = []
      }
    }
  }
  walk(dump.main, [], 0)
  return out
}

/** Where the live configuration includes a file: the include directives whose pattern matches it. */
export function includesOf(dump: ConfigDump, file: string): Directive[] {
  const base = path.dirname(dump.main)
  return directives(dump).filter(
    (d) => d.words[0] === 'include' && d.words[1] && globMatch(path.resolve(base, d.words[1]), file),
  )
}

/**
 * Why nginx would not read the managed file where its upstream block belongs, or undefined when it would.
 * The message names the include line to add and where.
 */
export function includeProblem(dump: ConfigDump, managedPath: string): string | undefined {
  if (managedPath === dump.main)
    return `nginx-config-path ${managedPath} is nginx's main configuration file: the action manages only a file nginx includes (e.g. /etc/nginx/conf.d/<app>.conf)`
  const found = includesOf(dump, managedPath)
  if (found.some((d) => d.context.length === 1 && d.context[0] === 'http')) return undefined
  const dir = path.dirname(managedPath)
  const line = `include ${dir}/*.conf;`
  if (found.length) {
    const where = found[0].context.join(' > ') || 'the main context'
    return `nginx includes ${managedPath} inside ${where} (${found[0].file}), where an upstream block is not allowed: include it at the top of the http { } block instead (${line})`
  }
  const http = directives(dump).find((d) => d.words[0] === 'http' && d.context.length === 0)
  return `nginx's configuration does not include ${managedPath}: add \`${line}\` inside the http { } block of ${http?.file ?? dump.main}, then reload nginx (or set nginx-config-path to a file an existing include covers)`
}

/**
 * Whether the configuration declares an access_log at the http level itself: not in the managed file, nor
 * in another app's (the canary log of an app is no access_log of the user's).
 */
export const declaresHttpAccessLog = (dump: ConfigDump, managedPath: string): boolean =>
  directives(dump).some(
    (d) =>
      d.words[0] === 'access_log' &&
      d.file !== managedPath &&
      !(dump.files.get(d.file) ?? '').startsWith('# Managed by nginx-rollout') &&
      d.context.length === 1 &&
      d.context[0] === 'http',
  )

/** The version `nginx -v` or `nginx -V` printed, as [major, minor, patch]. */
export function parseVersion(text: string): [number, number, number] | undefined {
  const m = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(text)
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined
}

export const versionAtLeast = (v: readonly number[] | undefined, min: readonly number[]): boolean => {
  if (!v) return false
  for (let i = 0; i < min.length; i++) if ((v[i] ?? 0) !== min[i]) return (v[i] ?? 0) > min[i]
  return true
}
