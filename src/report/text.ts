// The one way text this code did not write (inputs, host output, image names, labels, branch and environment
// names) reaches markdown: the job summary and the pull-request comment. GitHub renders both as markdown with
// HTML allowed, so such text is escaped for both, kept inside its cell or block however many lines it has,
// and bounded in length. Pure.

/** How much of one piece of outside text is shown before it is cut (with the count of what was left out). */
export const TEXT_LIMITS = { inline: 2_000, block: 8_000, code: 200, mermaid: 100 } as const

// Markdown's ASCII punctuation that can start emphasis, links and images ('[' opens both: '(' and '!' alone
// start nothing and stay readable), code, strikethrough, a table cell, a heading or an escape; '<', '>' and
// '&' become entities instead, so no tag and no entity of the text's own survives.
const SPECIAL = /[\\`*_[\]#|~$]/g
const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;' }
const ATTRIBUTE_ENTITIES: Readonly<Record<string, string>> = { ...ENTITIES, '"': '&quot;', "'": '&#39;' }
// What starts a block at the head of a line (after up to 3 spaces): a heading, a list item (bullet or
// ordered), a setext underline or thematic break, a block quote. The quote's '>' is an entity already.
const BLOCK_START = /^( {0,3})([#+=-]|\d{1,9}[.)])/
// Control characters show as U+FFFD: a terminal escape or a NUL has nothing to say in a summary.
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g

/** Cuts text longer than `max` characters, saying how many were left out. */
export function bounded(s: string, max: number): string {
  if (s.length <= max) return s
  const left = s.length - max
  return `${s.slice(0, max)}… (${left.toLocaleString('en-US')} more characters)`
}

const lines = (s: string): string[] => s.replace(/\r\n?/g, '\n').replace(CONTROL, '\uFFFD').split('\n')

/** One line, escaped: read as the characters it holds within a markdown line. */
const escapeInline = (line: string): string =>
  line
    .replace(SPECIAL, (c) => `\\${c}`)
    .replace(/[&<>]/g, (c) => ENTITIES[c])
    .replace(/\t/g, ' ')

/** One line that starts a markdown line: escaped, and what would start a block there escaped too. */
const escapeLineStart = (line: string): string =>
  // (The digits of '1.' stay; the '.' or ')' after them is what makes a list.)
  escapeInline(line).replace(BLOCK_START, (_, space: string, start: string) =>
    /^\d/.test(start) ? `${space}${start.slice(0, -1)}\\${start.slice(-1)}` : `${space}\\${start}`,
  )

/**
 * Outside text as inline markdown, after other words on its line (a table cell, a sentence): escaped, its
 * lines kept apart by <br> so that it stays in its cell, at most `max` characters of it.
 */
export function text(s: string, max: number = TEXT_LIMITS.inline): string {
  return lines(bounded(s, max)).map(escapeInline).join('<br>')
}

/** Outside text as a paragraph of its own (it starts a markdown line): as text(), and no block starts. */
export function paragraph(s: string, max: number = TEXT_LIMITS.inline): string {
  // (Blank lines first would put a lone <br> at the head of the line: an HTML block.)
  const [first, ...rest] = lines(bounded(s, max).replace(/^(?:[ \t]*(?:\r\n?|\n))+/, ''))
  return [escapeLineStart(first), ...rest.map(escapeInline)].join('<br>')
}

/** Outside text inside an HTML element (a <summary>): entities only, markdown is not read there. */
export function html(s: string, max: number = TEXT_LIMITS.inline): string {
  return lines(bounded(s, max))
    .join(' ')
    .replace(/[&<>"']/g, (c) => ATTRIBUTE_ENTITIES[c])
}

/** Outside text as a block quote: every line quoted and escaped, so no line of it leaves the quote. */
export function quoted(s: string, max: number = TEXT_LIMITS.block): string {
  return lines(bounded(s, max))
    .map((l) => (l.trim() ? `> ${escapeLineStart(l)}` : '>'))
    .join('\n')
}

/**
 * Outside text as a code span (an image name, a container name): on one line, its backticks fenced by a
 * longer run, and '|' escaped (a table splits cells on it even inside code). HTML is not read inside code.
 */
export function code(s: string, max: number = TEXT_LIMITS.code): string {
  const one = lines(bounded(s, max)).join(' ').replaceAll('|', '\\|')
  const longest = Math.max(0, ...(one.match(/`+/g) ?? []).map((run) => run.length))
  const ticks = '`'.repeat(longest + 1)
  const pad = one.startsWith('`') || one.endsWith('`') || one === '' ? ' ' : ''
  return `${ticks}${pad}${one}${pad}${ticks}`
}

// A web address that can stand in a link as it is: nothing in it ends the link or starts markup.
const WEB_URL = /^https?:\/\/[^\s()<>[\]`"'\\]+$/

/** A link to a web address (one the action was given or GitHub answered); any other shows as text beside the words. */
export const link = (words: string, url: string): string =>
  WEB_URL.test(url) ? `[${text(words)}](${url})` : `${text(words)} (${text(url)})`

/**
 * A fenced code block: the text as it is (host output, a diff), between fences longer than any run of
 * backticks in it, so no line of it can close the block. Markdown and HTML are not read inside.
 */
export function codeBlock(s: string, lang = '', max: number = TEXT_LIMITS.block): string {
  const body = bounded(s, max).replace(/\r\n?/g, '\n')
  const longest = Math.max(2, ...(body.match(/`{3,}/g) ?? []).map((run) => run.length))
  const ticks = '`'.repeat(longest + 1)
  return `${ticks}${lang}\n${body}\n${ticks}`
}

/**
 * A name Mermaid's gantt grammar reads as plain text: no ':', '#', ';' (they end a task's name, start a
 * comment, end a statement; lookalikes keep a host's ':port' readable), no line breaks, no leading '%' (a
 * comment), no backticks (a line of them would end the chart's code block), no '<', '>', '&' (markup to a
 * renderer), at most TEXT_LIMITS.mermaid characters.
 */
const MERMAID: Readonly<Record<string, string>> = {
  ':': '∶',
  '#': '＃',
  ';': ',',
  '<': '‹',
  '>': '›',
  '&': '＆',
  '`': 'ˋ',
}

export const mermaidLabel = (s: string): string =>
  bounded(
    s
      .replace(/[:#;<>&`]/g, (c) => MERMAID[c])
      .replace(/\s+/g, ' ')
      .trim(),
    TEXT_LIMITS.mermaid,
  ).replace(/^(.?)%/, '$1％')
