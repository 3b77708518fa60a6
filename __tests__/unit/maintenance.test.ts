// operation maintenance and resume (issue 27): what the managed file answers, how a later run keeps it,
// what the inputs accept, and the one-reload plan that leaves the routes (and a paused canary) as they are.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { InputName } from '../../src/inputs.js'
import { maintenanceOf, renderManagedFile, type NginxFacts } from '../../src/nginx/template.js'
import { NothingToDo, planFor } from '../../src/plan/index.js'
import { describeStep } from '../../src/plan/types.js'
import { container, hostState, pausedCanary, replicaOf as replicaOfContainer, routesTo } from './fakes.js'
import { configFrom, replicaOf } from './fixtures.js'

const servers = [replicaOf(9201, 'shop:v1'), replicaOf(9202, 'shop:v1')]
const plain: NginxFacts = { keepaliveMinTimeout: false }
const config = (inputs: Partial<Record<InputName, string>> = {}) =>
  configFrom({ 'health-path': '/healthz', image: '', ...inputs })
const render = (inputs: Partial<Record<InputName, string>>, facts: NginxFacts = plain) =>
  renderManagedFile(config(inputs), servers, undefined, facts).text

describe('the managed file in maintenance', () => {
  it('answers 503 with the message and Retry-After, keeps the health path and the config-id location, exactly', () => {
    const text = render({ operation: 'maintenance', 'maintenance-message': 'Back at 10:00 UTC.' })
    expect(text.slice(text.indexOf('    location = /healthz'))).toBe(
      [
        '    location = /healthz {',
        '        proxy_pass http://shop_replicas;',
        '        proxy_http_version 1.1;',
        '        proxy_set_header Host $host;',
        '    }',
        '',
        '    location / {',
        '        add_header Retry-After 120 always;',
        '        add_header Cache-Control "no-store" always;',
        '        default_type text/plain;',
        '        return 503 "Back at 10:00 UTC.\\n";',
        '    }',
        '}',
        '',
      ].join('\n'),
    )
    expect(text).toContain('    # nginx-rollout maintenance: operation resume ends it.\n')
    expect(text).toMatch(/location = \/\.nginx-rollout\/shop\/config-id \{/)
    expect(text).not.toContain(
      'proxy_pass http://shop_replicas;\n        proxy_http_version 1.1;\n        proxy_set_header Host $host;\n        proxy_set_header X-Real-IP',
    )
    expect(maintenanceOf(text)).toBe('Back at 10:00 UTC.')
  })

  it('stays on through any later run (read from the live file) until resume', () => {
    const facts = { ...plain, maintenance: 'Back soon.' }
    expect(maintenanceOf(render({ operation: 'deploy', image: 'shop:v2' }, facts))).toBe('Back soon.')
    expect(maintenanceOf(render({ operation: 'promote' }, facts))).toBe('Back soon.')
    const resumed = render({ operation: 'resume' }, facts)
    expect(maintenanceOf(resumed)).toBeUndefined()
    expect(resumed).toBe(render({ operation: 'deploy', image: 'shop:v2' }))
    expect(maintenanceOf(render({ image: 'shop:v2' }))).toBeUndefined()
  })

  it('shows the maintenance answer on the home page too when the health path is /', () => {
    const text = render({ operation: 'maintenance', 'health-path': '/' })
    expect(text).not.toMatch(/location = \/ \{/)
    expect(text).toContain('return 503 "Down for maintenance, back soon.\\n";')
  })

  it('is accepted by nginx -t, with and without a sticky canary split', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nr-maint-'))
    try {
      for (const split of [undefined, { canary: servers.slice(1), percent: 20, canaryWeight: 1, stableWeight: 4 }]) {
        const text = renderManagedFile(
          config({ operation: 'maintenance', listen: '127.0.0.1:18996' }),
          servers,
          split,
          plain,
          { log: true },
        ).text
        writeFileSync(join(dir, 'app.conf'), text.replaceAll('/var/log/nginx/', `${dir}/`))
        writeFileSync(join(dir, 'nginx.conf'), `events {}\nhttp {\n    include ${dir}/app.conf;\n}\n`)
        execFileSync(
          '/usr/sbin/nginx',
          ['-t', '-q', '-p', dir, '-c', join(dir, 'nginx.conf'), '-g', `pid ${dir}/nginx.pid;`],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        )
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('maintenance inputs', () => {
  it.each([
    ['a quote', 'Say "hi"'],
    ['a variable', 'Back $soon'],
    ['a backslash', 'a\\b'],
    ['a line break', 'a\nb'],
    ['201 characters', 'a'.repeat(201)],
  ])('refuses a message with %s, naming the input', (_, message) => {
    expect(() => config({ operation: 'maintenance', 'maintenance-message': message })).toThrow(
      /maintenance-message: expected one line of at most 200 characters without ", \\ or \$, got/,
    )
  })

  it('refuses maintenance and resume in upstream scope, where the user answers requests', () => {
    for (const operation of ['maintenance', 'resume'])
      expect(() => config({ operation, 'nginx-scope': 'upstream' })).toThrow(
        `operation: ${operation} answers requests in the server block the action writes; with nginx-scope upstream`,
      )
  })
})

describe('the maintenance plan', () => {
  const live = [container(9201), container(9202)]
  it('re-routes what is live in one reload and says so', () => {
    const plan = planFor(config({ operation: 'maintenance' }), hostState(live, routesTo(...live)))
    expect(plan.steps).toEqual([{ kind: 'route', servers: live.map(replicaOfContainer), maintenance: 'on' }])
    expect(describeStep(plan.steps[0])).toBe(
      'answer every request but the health path with 503 (maintenance), routes unchanged (one nginx reload)',
    )
    expect(plan.leaves).toBe('deployed')
  })

  it("keeps a paused canary's share (its split) and its record", () => {
    const canary = container(9203, 'shop:v2')
    const all = [...live, canary]
    const state = hostState(all, routesTo(...all), { canary: pausedCanary([canary]) })
    const plan = planFor(config({ operation: 'maintenance' }), state)
    const [route] = plan.steps
    expect(route.kind === 'route' && route.split).toMatchObject({ percent: 10, canary: [replicaOfContainer(canary)] })
    expect(plan.leaves).toBe('paused')
    expect(plan.pausesAt).toBeUndefined()
    expect(plan.endsCanary).toBeUndefined()
  })

  it('resumes only what is in maintenance', () => {
    const state = hostState(live, routesTo(...live))
    expect(() => planFor(config({ operation: 'resume' }), state)).toThrow(NothingToDo)
    const inMaintenance = { ...state, nginx: { ...state.nginx, facts: { ...plain, maintenance: 'x' } } }
    expect(planFor(config({ operation: 'resume' }), inMaintenance).steps[0]).toMatchObject({ maintenance: 'off' })
  })

  it('refuses with nothing live', () => {
    expect(() => planFor(config({ operation: 'maintenance' }), hostState([], routesTo()))).toThrow(
      'maintenance: nothing of shop is live to put in maintenance; deploy it first',
    )
  })
})
