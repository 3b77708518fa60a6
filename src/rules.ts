// The rules a value must pass wherever it comes from: an input, or what a host sends back. A host's answer is
// data: a label or a record read from a host passes the same rule as the input it stands for before it is
// used, because it goes on into commands, nginx files, step outputs (which workflows paste into shell lines)
// and log lines (where the runner looks for workflow commands). Pure, and at the bottom of the imports.

/** An app's name: the stem of its containers' names and of its state folder on the hosts. */
export const NAME = /^[a-z0-9][a-z0-9_.-]*$/

// Docker's reference grammar: [registry[:port]/]path[:tag][@digest]
export const IMAGE =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::\w[\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/

/** A replica's container name as the action gives it (model.ts replicaName): the app's name, '-', its port. */
const REPLICA_NAME = /^[a-z0-9][a-z0-9_.-]*-(\d{1,5})$/

export const isReplicaName = (name: string): boolean => {
  const port = REPLICA_NAME.exec(name)?.[1]
  return port !== undefined && isPort(Number(port))
}

export const isPort = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535

/** An image as a record holds it: a Docker reference, or '' where the record may have none (a first deploy's previous). */
export const isImageOrNone = (s: string): boolean => s === '' || IMAGE.test(s)

/** The app host a record names: what the run calls an SSH target (model.ts sshName), an address with an optional port. */
export const HOST_ID = /^(?:[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+)(?::\d{1,5})?$/

/** The colour of a blue-green replica; '' for a replica of another strategy. */
export const COLORS = ['', 'blue', 'green'] as const
export const isColor = (s: string): s is (typeof COLORS)[number] => (COLORS as readonly string[]).includes(s)

/** A share of requests in percent: a whole number from `min` to 100 (canary-steps takes whole numbers only). */
export const isPercent = (n: unknown, min = 0): n is number =>
  Number.isInteger(n) && (n as number) >= min && (n as number) <= 100

/** A word the action writes into its records and outputs: a result, a strategy, an operation. */
export const WORD = /^[a-z][a-z-]{0,31}$/

/**
 * A commit id as GitHub gives it (hex digits; a record may hold a shortened one), or any id of letters and
 * digits: nothing a shell, nginx or a workflow command could read as syntax (it is shown, never checked out).
 */
export const COMMIT = /^[0-9A-Za-z]{1,64}$/

/** A time as the action records it (Date.toISOString), seconds' fractions optional. */
export const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/

/** How much of a host's text a message shows: enough to recognise it, not enough to flood a log. */
const QUOTE_MAX = 120

// Characters JSON.stringify leaves as they are but a reader should see spelt out: DEL and the C1 controls,
// the Unicode line and paragraph separators, and the bidirectional controls that make text read other than
// it is ordered.
const UNSEEN = /[\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/**
 * A host's text, for a message: JSON-quoted (so a newline, a quote or a control character shows escaped and
 * cannot start a line of its own), cut to its first 120 characters with its full length said. Anything else
 * (a number, an object, nothing) is shown as JSON, the same way.
 */
export function quoteHostText(value: unknown): string {
  if (value === undefined) return 'nothing'
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value))
  const chars = Array.from(text)
  const shown = chars.length > QUOTE_MAX ? chars.slice(0, QUOTE_MAX).join('') : text
  const quoted = (typeof value === 'string' ? JSON.stringify(shown) : shown).replace(
    UNSEEN,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
  return chars.length > QUOTE_MAX ? `${quoted}... (${chars.length} characters)` : quoted
}

/** One replica of the `replicas` output. */
const isOutputReplica = (r: unknown): boolean => {
  if (typeof r !== 'object' || r === null) return false
  const { host, name, port, image } = r as Record<string, unknown>
  return (
    typeof host === 'string' &&
    HOST_ID.test(host) &&
    typeof name === 'string' &&
    isReplicaName(name) &&
    isPort(port) &&
    typeof image === 'string' &&
    IMAGE.test(image)
  )
}

const isReplicasJson = (text: string): boolean => {
  try {
    const list: unknown = JSON.parse(text)
    return Array.isArray(list) && list.every(isOutputReplica)
  } catch {
    return false
  }
}

/**
 * What each step output that can carry a host's value must hold. Workflows paste outputs into expressions and
 * shell lines, so these are checked once more as they are set (publish.ts), whatever checked them before.
 */
const OUTPUT_RULES = {
  result: [(v: string) => WORD.test(v), 'a result like deployed'],
  image: [(v: string) => IMAGE.test(v), 'a Docker image reference'],
  'previous-image': [(v: string) => IMAGE.test(v), 'a Docker image reference'],
  replicas: [isReplicasJson, 'a JSON list of replicas (host, name <app>-<port>, port, Docker image reference)'],
  color: [isColor, "'', 'blue' or 'green'"],
  'canary-weight': [(v: string) => /^\d{1,3}$/.test(v) && isPercent(Number(v)), 'a percentage from 0 to 100'],
} as const satisfies Record<string, readonly [(v: string) => boolean, string]>

export type CheckedOutput = keyof typeof OUTPUT_RULES

/** Why an output's value must not be printed, naming what it should be and what it is; undefined when it may ('' always may). */
export function outputProblem(name: CheckedOutput, value: string): string | undefined {
  const [ok, expected] = OUTPUT_RULES[name]
  return value === '' || ok(value) ? undefined : `output ${name}: expected ${expected}, got ${quoteHostText(value)}`
}
