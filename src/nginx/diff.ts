// A unified diff of two small texts (nginx configs of tens of lines), for dry runs and the job summary.

type Op = { kind: ' ' | '-' | '+'; line: string }

function lineOps(a: string[], b: string[]): Op[] {
  // Longest common subsequence table; configs are small, so O(n*m) is fine and simple.
  const n = a.length
  const m = b.length
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0))
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1])
  const ops: Op[] = []
  let i = 0
  let j = 0
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ kind: ' ', line: a[i] })
      i++
      j++
    } else if (i < n && (j === m || lcs[i + 1][j] >= lcs[i][j + 1])) ops.push({ kind: '-', line: a[i++] })
    else ops.push({ kind: '+', line: b[j++] })
  }
  return ops
}

/** Unified diff with `context` lines around changes; '' when the texts are equal. */
export function unifiedDiff(before: string, after: string, fromLabel: string, toLabel: string, context = 3): string {
  if (before === after) return ''
  const split = (t: string) => (t === '' ? [] : t.replace(/\n$/, '').split('\n'))
  const ops = lineOps(split(before), split(after))
  const out = [`--- ${fromLabel}`, `+++ ${toLabel}`]
  let k = 0
  while (k < ops.length) {
    if (ops[k].kind === ' ') {
      k++
      continue
    }
    // A hunk: from `context` lines before this change to `context` lines after the last change within reach.
    let start = Math.max(0, k - context)
    let end = k
    while (end < ops.length) {
      if (ops[end].kind !== ' ') {
        end++
        continue
      }
      let run = end
      while (run < ops.length && ops[run].kind === ' ') run++
      if (run === ops.length || run - end > 2 * context) {
        end = Math.min(ops.length, end + context)
        break
      }
      end = run
    }
    const aStart = ops.slice(0, start).filter((o) => o.kind !== '+').length
    const bStart = ops.slice(0, start).filter((o) => o.kind !== '-').length
    const hunk = ops.slice(start, end)
    const aLen = hunk.filter((o) => o.kind !== '+').length
    const bLen = hunk.filter((o) => o.kind !== '-').length
    out.push(`@@ -${aLen ? aStart + 1 : aStart},${aLen} +${bLen ? bStart + 1 : bStart},${bLen} @@`)
    for (const o of hunk) out.push(`${o.kind}${o.line}`)
    k = end
    start = end
  }
  return out.join('\n') + '\n'
}
