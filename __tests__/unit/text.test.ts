// Outside text in markdown: escaped for markdown and HTML, kept in its cell or block, bounded.
import fc from 'fast-check'
import {
  bounded,
  code,
  codeBlock,
  html,
  link,
  mermaidLabel,
  paragraph,
  quoted,
  text,
  TEXT_LIMITS,
} from '../../src/report/text.js'
import { HOSTILE_ENVIRONMENT, HOSTILE_REPORT } from './hostile.js'

// A line starts a markdown block (other than a paragraph) when, after up to 3 spaces, it opens a heading,
// a list item, a block quote, a code fence, a thematic break or setext underline, HTML, or a table row.
const STARTS_BLOCK = /^ {0,3}([#>*+=_|<~-]|`{3}|\d{1,9}[.)])/

/** '<' only as this code's own <br>; no '>' or '&' but in the entities this code wrote. */
const noRawHtml = (s: string) => !/<(?!br>)/.test(s) && !/(?<!<br)>/.test(s) && !/&(?!(amp|lt|gt|quot|#39);)/.test(s)

describe('text: outside text inside a markdown line', () => {
  it('escapes markdown and HTML, and keeps its lines in one cell', () => {
    expect(text(HOSTILE_ENVIRONMENT)).toBe('x --&gt; &lt;img src=x&gt; \\# heading')
    expect(text(HOSTILE_REPORT)).toBe(
      '&lt;/details&gt;<br>&lt;script&gt;alert(1)&lt;/script&gt;<br>\\# heading<br>!\\[x\\](y)',
    )
    expect(text('a|b `c` *d* _e_ ~f~ \\g &amp; [h]')).toBe(
      'a\\|b \\`c\\` \\*d\\* \\_e\\_ \\~f\\~ \\\\g &amp;amp; \\[h\\]',
    )
    expect(text('one\r\ntwo\rthree\tfour\u0007')).toBe('one<br>two<br>three four\uFFFD')
  })

  it('is bounded, and says how much it left out', () => {
    expect(bounded('abcdef', 4)).toBe('abcd… (2 more characters)')
    expect(text('x'.repeat(TEXT_LIMITS.inline + 1234))).toBe(
      `${'x'.repeat(TEXT_LIMITS.inline)}… (1,234 more characters)`,
    )
  })

  it('as a paragraph of its own, starts no block', () => {
    expect(paragraph('# heading')).toBe('\\# heading')
    expect(paragraph('- item')).toBe('\\- item')
    expect(paragraph('  12. twelve')).toBe('  12\\. twelve')
    expect(paragraph('> quote')).toBe('&gt; quote')
    expect(paragraph('+ item\n- not a block here')).toBe('\\+ item<br>- not a block here')
  })

  it('never holds raw HTML or a line break, wherever it stands (property)', () => {
    const alone = (s: string) =>
      [text(s), paragraph(s)].every((out) => noRawHtml(out) && !/[\r\n]/.test(out)) && !STARTS_BLOCK.test(paragraph(s))
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), alone), { numRuns: 1000 })
    // Strings made of what markdown and HTML react to, where they react to it.
    const parts = ['<', '>', '&', '#', '-', '+', '=', '1.', '2)', '`', '```', '\n', ' ', '   ', '|', '*', '_', 'x']
    const hostile = fc
      .array(fc.constantFrom(...parts, '!', '[', ']', '(', ')', '~', '\\', '--', '-->', '\r\n'), { maxLength: 40 })
      .map((p) => p.join(''))
    const quotedLines = (s: string) =>
      quoted(s)
        .split('\n')
        .every(
          (line) =>
            (line === '>' || line.startsWith('> ')) &&
            !STARTS_BLOCK.test(line.replace(/^>( |$)/, '')) &&
            noRawHtml(line.slice(1)),
        )
    fc.assert(
      fc.property(hostile, (s) => alone(s) && quotedLines(s)),
      { numRuns: 3000 },
    )
  })
})

describe('quoted: outside text as a block quote', () => {
  it('quotes and escapes every line, so none leaves the quote', () => {
    expect(quoted(`an earlier run's background stop failed: ${HOSTILE_REPORT}`)).toBe(
      [
        "> an earlier run's background stop failed: &lt;/details&gt;",
        '> &lt;script&gt;alert(1)&lt;/script&gt;',
        '> \\# heading',
        '> !\\[x\\](y)',
      ].join('\n'),
    )
    expect(quoted('a\n\n- b\n1. c')).toBe('> a\n>\n> \\- b\n> 1\\. c')
  })
})

describe('code, codeBlock, html, link, mermaidLabel', () => {
  it('code: a span no backtick or line break ends, with table pipes escaped', () => {
    expect(code('shop:v2')).toBe('`shop:v2`')
    expect(code('a`b')).toBe('``a`b``')
    expect(code('`x')).toBe('`` `x ``')
    expect(code('a|b\nc')).toBe('`a\\|b c`')
  })

  it('codeBlock: fences longer than any run of backticks inside', () => {
    expect(codeBlock('plain')).toBe('```\nplain\n```')
    expect(codeBlock('a\n```\nb', 'diff')).toBe('````diff\na\n```\nb\n````')
    expect(codeBlock('`````')).toBe('``````\n`````\n``````')
  })

  it('html: entities only, on one line', () => {
    expect(html('a <b> & "c" \'d\'\ne')).toBe('a &lt;b&gt; &amp; &quot;c&quot; &#39;d&#39; e')
  })

  it('link: only a plain web address becomes a link', () => {
    expect(link('this run', 'https://github.com/acme/shop/actions/runs/42')).toBe(
      '[this run](https://github.com/acme/shop/actions/runs/42)',
    )
    expect(link('this run', 'https://x.example/a)<img src=x>')).toBe('this run (https://x.example/a)&lt;img src=x&gt;)')
    expect(link('x', 'javascript:alert(1)')).toBe('x (javascript:alert(1))')
  })

  it("mermaidLabel: no ':', '#', ';', markup, backticks, line breaks or leading '%', and bounded", () => {
    expect(mermaidLabel('pull registry:5000/shop:v2#x;y')).toBe('pull registry∶5000/shop∶v2＃x,y')
    expect(mermaidLabel('<b>&</b>\n```')).toBe('‹b›＆‹/b› ˋˋˋ')
    expect(mermaidLabel('5% pass')).toBe('5％ pass')
    expect(mermaidLabel('y'.repeat(150))).toBe(`${'y'.repeat(TEXT_LIMITS.mermaid)}… (50 more characters)`)
  })
})
