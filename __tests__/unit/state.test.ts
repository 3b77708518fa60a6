// What the hosts hold, as read back: nothing is trusted further than its shape, and nothing read can throw.
import fc from 'fast-check'
import type { CanaryObservation } from '../../src/model.js'
import { parseCanaryState, parseContainers, parseHistory } from '../../src/host/state.js'

const host = { id: '10.0.0.12:2222', upstreamAddress: '10.1.0.12' }
const ID = (n: number) => n.toString(16).padStart(2, '0').repeat(32)

/** One line of `docker inspect --format CONTAINER_FIELDS`: docker JSON-encodes every field. */
const inspectLine = (o: { id?: unknown; name?: unknown; state?: unknown; pid?: unknown; labels?: unknown }) =>
  JSON.stringify({ id: ID(1), name: '/shop-9201', state: 'running', pid: 4242, ...o })
const labels = (port: number, extra: Record<string, string> = {}) => ({
  'nginx-rollout.app': 'shop',
  'nginx-rollout.role': 'replica',
  'nginx-rollout.image': 'ghcr.io/acme/shop:1.4.2',
  'nginx-rollout.port': String(port),
  'nginx-rollout.color': '',
  ...extra,
})

describe('parseContainers', () => {
  it('reads the replicas a host holds, all apps, each on this host and its upstream address, with the main process of a running one', () => {
    const out = [
      inspectLine({ id: ID(1), name: '/shop-9201', labels: labels(9201) }),
      // Docker reports pid 0 for a container that does not run.
      inspectLine({
        id: ID(2),
        name: '/shop-9202',
        state: 'exited',
        pid: 0,
        labels: labels(9202, { 'nginx-rollout.color': 'green' }),
      }),
      inspectLine({
        id: ID(3),
        name: '/blog-9301',
        pid: 5151,
        labels: labels(9301, { 'nginx-rollout.app': 'blog', 'nginx-rollout.image': 'blog:7' }),
      }),
      '',
    ].join('\n')
    expect(parseContainers(out, host, 'shop')).toEqual({
      containers: [
        {
          id: ID(1),
          host: '10.0.0.12:2222',
          address: '10.1.0.12',
          name: 'shop-9201',
          app: 'shop',
          port: 9201,
          image: 'ghcr.io/acme/shop:1.4.2',
          running: true,
          pid: 4242,
        },
        {
          id: ID(2),
          host: '10.0.0.12:2222',
          address: '10.1.0.12',
          name: 'shop-9202',
          app: 'shop',
          port: 9202,
          image: 'ghcr.io/acme/shop:1.4.2',
          running: false,
          color: 'green',
        },
        {
          id: ID(3),
          host: '10.0.0.12:2222',
          address: '10.1.0.12',
          name: 'blog-9301',
          app: 'blog',
          port: 9301,
          image: 'blog:7',
          running: true,
          pid: 5151,
        },
      ],
      ignored: [],
      problems: [],
    })
  })

  it('takes a pid only when it is a positive number', () => {
    const pidOf = (pid: unknown) =>
      parseContainers(inspectLine({ pid, labels: labels(9201) }), host, 'shop').containers[0]
    expect(pidOf(4242).pid).toBe(4242)
    for (const pid of [0, -1, '4242', null, undefined]) expect(pidOf(pid)).not.toHaveProperty('pid')
  })

  it('takes blue and green as colours, none as none, and refuses a replica of any other', () => {
    const read = (color: string) =>
      parseContainers(inspectLine({ labels: labels(9201, { 'nginx-rollout.color': color }) }), host, 'shop')
    expect(read('blue').containers[0].color).toBe('blue')
    expect(read('green').containers[0].color).toBe('green')
    expect(read('').containers[0]).not.toHaveProperty('color')
    for (const color of ['red', 'Blue'])
      expect(read(color)).toEqual({
        containers: [],
        ignored: [],
        problems: [
          expect.stringContaining(`has label nginx-rollout.color: expected '', 'blue' or 'green', got "${color}"`),
        ],
      })
  })

  it('cannot be made to see another container by a label holding newlines, tabs and JSON: it refuses the replica', () => {
    const forged = inspectLine({ id: ID(9), name: '/shop-9209', labels: labels(9209) })
    const image = `shop:v1\n${forged}\n\t{"id":"${ID(8)}"}\t`
    const { containers, ignored, problems } = parseContainers(
      inspectLine({ labels: labels(9201, { 'nginx-rollout.image': image }) }),
      host,
      'shop',
    )
    expect(containers).toEqual([])
    expect(ignored).toEqual([])
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(
      /^10\.0\.0\.12:2222: container "shop-9201" has label nginx-rollout\.image: expected a Docker image reference, got "shop:v1\\n/,
    )
    expect(problems[0]).not.toMatch(/[\n\t]/)
  })

  it('ignores, with a note, a container with the labels but not the name or id the action gives', () => {
    const out = [
      inspectLine({ name: '/evil', labels: labels(9201) }),
      inspectLine({ name: '/shop-9202', labels: labels(9201) }),
      inspectLine({ name: '/shop-9201', id: 'abc123', labels: labels(9201) }),
      inspectLine({ name: '/Shop-9201', labels: labels(9201, { 'nginx-rollout.app': 'Shop' }) }),
      inspectLine({ name: '/shop-0', labels: labels(0) }),
      inspectLine({ name: '/shop-70000', labels: labels(70000) }),
      inspectLine({ name: `/${'x'.repeat(100)}`, labels: labels(9201) }),
      inspectLine({ name: 42, labels: labels(9201) }),
    ].join('\n')
    const note = (name: string) =>
      `container ${JSON.stringify(name)} carries nginx-rollout labels but is not one the action created (its name or labels do not match)`
    expect(parseContainers(out, host, 'shop')).toEqual({
      containers: [],
      ignored: [
        note('evil'),
        note('shop-9202'),
        note('shop-9201'),
        note('Shop-9201'),
        note('shop-0'),
        note('shop-70000'),
        note('x'.repeat(64)),
        note(''),
      ],
      problems: [],
    })
  })

  it('skips containers of another role silently, and notes lines that are not JSON', () => {
    const out = [
      inspectLine({ name: '/loadbalancer', labels: { 'nginx-rollout.role': 'nginx', 'nginx-rollout.app': 'shop' } }),
      inspectLine({ name: '/shop-9201', labels: labels(9201, { 'nginx-rollout.role': 'replica ' }) }),
      inspectLine({ name: '/shop-9201', labels: null }),
      inspectLine({ name: '/shop-9201', labels: { ...labels(9201), 'nginx-rollout.role': 1 } }),
      'Error: No such object: 0123',
      '[1,2]',
    ].join('\n')
    expect(parseContainers(out, host, 'shop')).toEqual({
      containers: [],
      ignored: [
        'an unreadable line of docker inspect output (27 characters)',
        'an unreadable line of docker inspect output (5 characters)',
      ],
      problems: [],
    })
  })

  // BUG: a line 'null' (JSON, but not an object) throws a TypeError at c.labels (src/host/state.ts:34): the
  // reading of a host fails instead of noting the line. Fix: treat a parsed value that is not an object like an
  // unreadable line (`if (!c || typeof c !== 'object') { ignored.push(...); continue }`).
  it('notes a line of JSON that is not an object instead of throwing', () => {
    expect(
      parseContainers(`null\n${inspectLine({ labels: labels(9201) })}`, host, 'shop').containers.map((c) => c.name),
    ).toEqual(['shop-9201'])
  })

  it('never throws for any other output', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc
              .jsonValue()
              .filter((v) => v !== null)
              .map((v) => JSON.stringify(v)),
            fc.string(),
          ),
        ),
        (lines) => {
          const { containers } = parseContainers(lines.join('\n'), host, 'shop')
          expect(containers).toEqual([])
        },
      ),
    )
  })
})

describe('parseHistory', () => {
  const entry = {
    image: 'shop:v2',
    previousImage: 'shop:v1',
    result: 'deployed',
    at: '2026-05-01T10:00:00Z',
    strategy: 'rolling',
    operation: 'deploy',
    run: 'acme/shop#12',
  }

  it('reads the entries, and an empty file as none without a warning', () => {
    const warnings: string[] = []
    expect(
      parseHistory(JSON.stringify([entry, { ...entry, operation: undefined, run: undefined }]), (m) =>
        warnings.push(m),
      ),
    ).toEqual([entry, { ...entry, operation: undefined, run: undefined }])
    expect(parseHistory('  \n', (m) => warnings.push(m))).toEqual([])
    expect(warnings).toEqual([])
  })

  it.each([
    [
      'not JSON',
      '[{"image":',
      [expect.stringMatching(/^history\.json on the nginx host is not valid JSON \(.+\): ignored$/)],
      [],
    ],
    [
      'not a list',
      '{"image":"shop:v2"}',
      ['history.json on the nginx host is not a list: ignored (the next deploy rewrites it)'],
      [],
    ],
    [
      'malformed entries',
      JSON.stringify([entry, { ...entry, image: 7 }, null, 'x']),
      [
        'history.json on the nginx host: 3 malformed entries ignored (the first, entry 2: image: expected a Docker image reference, got 7)',
      ],
      [entry],
    ],
  ])('warns about a history file %s and keeps what is well-formed', (_what, text, warnings, entries) => {
    const seen: string[] = []
    expect(parseHistory(text as string, (m) => seen.push(m))).toEqual(entries)
    expect(seen).toEqual(warnings)
  })
})

describe('parseCanaryState', () => {
  const observation: CanaryObservation = {
    verdict: 'pass',
    percent: 10,
    seconds: 60,
    reason: 'canary 0.00% of 80, stable 0.50% of 800',
    canary: { requests: 80, errors: 0, rate: 0 },
    stable: { requests: 800, errors: 4, rate: 0.5 },
  }
  const state = {
    image: 'shop:v2',
    stableImage: 'shop:v1',
    weight: 10,
    remainingSteps: [50, 100],
    replicas: [{ host: '10.0.0.12:2222', name: 'shop-9203' }],
    at: '2026-05-01T10:00:00Z',
    sha: '0123456789abcdef',
    observations: [observation],
    deployment: { repo: 'acme/shop', environment: 'production', id: 77 },
    pullRequest: { repo: 'acme/shop', number: 12 },
    pushes: [
      {
        image: 'shop:v2-rc1',
        sha: 'fedcba',
        at: '2026-05-01T09:00:00Z',
        observations: [observation],
        outcome: 'replaced',
      },
    ],
  }
  const read = (value: unknown) => {
    const warnings: string[] = []
    return {
      state: parseCanaryState(typeof value === 'string' ? value : JSON.stringify(value), 'docker.example.com', (m) =>
        warnings.push(m),
      ),
      warnings,
    }
  }

  it('reads a paused canary with everything a run records', () => {
    expect(read(state)).toEqual({ state, warnings: [] })
  })

  it('reads a record of the old format, replicas named without their host, as on the first app host', () => {
    const old = {
      image: state.image,
      stableImage: state.stableImage,
      weight: state.weight,
      remainingSteps: state.remainingSteps,
      at: state.at,
    }
    expect(read({ ...old, replicas: ['shop-9203', 'shop-9204'] })).toEqual({
      state: {
        ...old,
        replicas: [
          { host: 'docker.example.com', name: 'shop-9203' },
          { host: 'docker.example.com', name: 'shop-9204' },
        ],
      },
      warnings: [],
    })
  })

  it('reads no canary from an empty file, and drops a sha that is not text', () => {
    expect(read('')).toEqual({ state: undefined, warnings: [] })
    expect(read({ ...state, sha: 5 }).state).not.toHaveProperty('sha')
  })

  it.each<[string, unknown, string]>([
    ['a list', [state], 'not an object'],
    ['null', null, 'not an object'],
    ['no image', { ...state, image: undefined }, 'image, stableImage or at missing'],
    ['a numeric at', { ...state, at: 1 }, 'image, stableImage or at missing'],
    ['a weight over 100', { ...state, weight: 101 }, 'weight is not a percentage'],
    ['a weight of text', { ...state, weight: '10' }, 'weight is not a percentage'],
    ['steps of text', { ...state, remainingSteps: ['50'] }, 'remainingSteps is not a list of numbers'],
    ['replicas of an object', { ...state, replicas: { name: 'shop-9203' } }, 'replicas is not a list'],
    ['a replica without a host', { ...state, replicas: [{ name: 'shop-9203' }] }, 'a replica has no host or name'],
    ['a replica of a number', { ...state, replicas: [9203] }, 'a replica has no host or name'],
    [
      'an observation without stats',
      { ...state, observations: [{ ...observation, canary: undefined }] },
      'observations are malformed',
    ],
    ['observations of an object', { ...state, observations: observation }, 'observations are malformed'],
    [
      'a deployment without an id',
      { ...state, deployment: { repo: 'acme/shop', environment: 'production' } },
      'deployment is malformed',
    ],
    [
      'a pull request number of text',
      { ...state, pullRequest: { repo: 'acme/shop', number: '12' } },
      'pullRequest is malformed',
    ],
    ['a push without observations', { ...state, pushes: [{ image: 'shop:v1', at: 'x' }] }, 'pushes are malformed'],
  ])('ignores, with a warning, a record with %s', (_what, value, why) => {
    expect(read(value)).toEqual({
      state: undefined,
      warnings: [`canary.json on the nginx host is malformed (${why}): ignored as stale`],
    })
  })

  it('ignores, with a warning, a file that is not JSON', () => {
    expect(read('{"image": "shop:v2",')).toEqual({
      state: undefined,
      warnings: [expect.stringMatching(/^canary\.json on the nginx host is not valid JSON \(.+\): ignored$/)],
    })
  })

  it('never throws, whatever the file holds', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.record(
            { ...Object.fromEntries(Object.keys(state).map((k) => [k, fc.jsonValue()])) },
            { requiredKeys: [] },
          ),
        ),
        (value) => {
          read(value)
        },
      ),
    )
  })

  // BUG: a push's sha and outcome are not checked (src/host/state.ts:175), yet the pull-request comment calls
  // p.sha.slice() and prints p.outcome (src/github/comment.ts:71): a push with a numeric sha makes the comment
  // throw, one with an unknown outcome prints it. Check sha (string or absent) and outcome (the five values).
  it('ignores a record whose push has a sha that is not text', () => {
    expect(read({ ...state, pushes: [{ ...state.pushes[0], sha: 1234567 }] }).state).toBeUndefined()
  })

  it('ignores a record whose push has an outcome the action does not write', () => {
    expect(read({ ...state, pushes: [{ ...state.pushes[0], outcome: 'exploded' }] }).state).toBeUndefined()
  })
})
