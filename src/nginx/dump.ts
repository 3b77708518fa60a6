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

/** `at`: where the word starts in the text (for the line a directive is on). */
type Token = { kind: 'word'; text: string; at: number } | { kind: '{' | '}' | ';' }

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
      const at = i
      i++
      while (i < text.length && text[i] !== ch) {
        if (text[i] === '\\' && i + 1 < text.length) i++
        word += text[i++]
      }
      i++
      tokens.push({ kind: 'word', text: word, at })
    } else {
      let word = ''
      const at = i
      while (i < text.length && !/[\s;{}]/.test(text[i])) {
        if (text[i] === '$' && text[i + 1] === '{') {
          const close = text.indexOf('}', i)
          word += text.slice(i, close < 0 ? text.length : close + 1)
          i = close < 0 ? text.length : close + 1
        } else word += text[i++]
      }
      tokens.push({ kind: 'word', text: word, at })
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
  /** The line its first word is on, from 1. */
  readonly line: number
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
    const text = dump.files.get(file) ?? ''
    const tokens = tokenize(text)
    const stack = [...context]
    let words: string[] = []
    // The line of the directive's first word, counted on from the last one (tokens come in order).
    let line = 1
    let counted = 0
    for (const t of tokens) {
      if (t.kind === 'word') {
        if (!words.length) {
          for (; counted < t.at; counted++) if (text[counted] === '\n') line++
        }
        words.push(t.text)
      } else if (t.kind === ';') {
        if (words.length) {
          out.push({ words, context: [...stack], file, line })
          if (words[0] === 'include' && words[1] && depth < 16) {
            const pattern = path.resolve(base, words[1])
            for (const f of dump.files.keys()) if (globMatch(pattern, f)) walk(f, stack, depth + 1)
          }
        }
        words = []
      } else if (t.kind === '{') {
        out.push({ words, context: [...stack], file, line })
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

/** A server block of the http block: where it is, what it listens on and the names it serves. */
export interface ServerBlock {
  readonly file: string
  readonly line: number
  /** The listen directives' addresses (nginx's default, 80, when it has none). */
  readonly listens: readonly string[]
  readonly names: readonly string[]
}

/** Every server block of the http block, in order. */
export function serverBlocks(dump: ConfigDump): ServerBlock[] {
  const blocks: { file: string; line: number; depth: number; listens: string[]; names: string[] }[] = []
  for (const d of directives(dump)) {
    const inHttp = d.context.at(-1) === 'http'
    if (inHttp && d.words[0] === 'server' && d.words.length === 1) {
      blocks.push({ file: d.file, line: d.line, depth: d.context.length + 1, listens: [], names: [] })
      continue
    }
    const current = blocks.at(-1)
    if (!current || d.context.length !== current.depth || d.context.at(-1) !== 'server') continue
    if (d.words[0] === 'listen' && d.words[1]) current.listens.push(d.words[1])
    if (d.words[0] === 'server_name') current.names.push(...d.words.slice(1))
  }
  return blocks.map(({ depth: _, ...b }) => ({ ...b, listens: b.listens.length ? b.listens : ['80'] }))
}

/** Whether two listen addresses ('80', '127.0.0.1:80', '[::]:80', '*:80') are one socket for nginx's names. */
export function sameListen(a: string, b: string): boolean {
  const parse = (l: string) => {
    const m = /^(?:(\*|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:]+\]):)?(\d+)$/.exec(l)
    if (!m) return undefined
    const address = m[1] ?? '*'
    return { v6: address.startsWith('['), any: ['*', '0.0.0.0', '[::]'].includes(address), address, port: m[2] }
  }
  const x = parse(a)
  const y = parse(b)
  if (!x || !y || x.port !== y.port || x.v6 !== y.v6) return false
  return x.any || y.any || x.address === y.address
}

/**
 * The server blocks of other files that already serve one of `names` on `listen`: nginx would answer only one
 * of the two (it warns "conflicting server name" and ignores the other). One message each, naming file and line.
 */
export function serverNameClashes(dump: ConfigDump, managedPath: string, listen: string, names: readonly string[]) {
  const ours = names.filter((n) => n && n !== '_')
  return serverBlocks(dump)
    .filter((b) => b.file !== managedPath)
    .flatMap((b) => {
      const on = b.listens.find((l) => sameListen(l, listen))
      const shared = ours.filter((n) => b.names.includes(n))
      return on && shared.length
        ? [
            `server-name ${shared.join(' ')}: ${b.file}:${b.line} already serves ${shared.length > 1 ? 'them' : 'it'} on listen ${on}; ` +
              'nginx would answer only one of the two server blocks. Give the app another server-name, or take the name out of that file',
          ]
        : []
    })
}
