import { render, type Command } from '../../src/commands/shell.js'
import { Executor, StepFailure, type Logger } from '../../src/execute.js'
import type { ExecResult, HttpResult, Remote } from '../../src/remote/ssh.js'
import { renderSummary, redact } from '../../src/summary.js'
import { configFrom } from './fixtures.js'

/** A host that answers by the first rule whose pattern matches the rendered command. */
class FakeRemote implements Remote {
  readonly name = 'fake:22'
  readonly stats = { connections: 1, commands: 0, uploads: 0, probes: 0 }
  readonly commands: string[] = []
  readonly uploads: Array<[string, string]> = []
  constructor(
    private readonly rules: Array<[RegExp, Partial<ExecResult>]>,
    private readonly probe: (host: string, port: number, path: string) => HttpResult,
  ) {}
  async exec(c: Command): Promise<ExecResult> {
    const text = render(c)
    this.commands.push(text)
    const rule = this.rules.find(([re]) => re.test(text))
    return { code: 0, stdout: '', stderr: '', ...rule?.[1] }
  }
  async upload(path: string, text: string) {
    this.uploads.push([path, text])
  }
  async httpGet(host: string, port: number, path: string): Promise<HttpResult> {
    return this.probe(host, port, path)
  }
  async close() {}
}

const quiet: Logger = { info: () => {}, warning: () => {}, debug: () => {} }
const live = [{ name: 'shop-9201', port: 9201, image: 'shop:v1' }]
const next = [{ name: 'shop-9202', port: 9202, image: 'shop:v2' }]
const running = { exists: true, running: true, networkMode: 'host', config: 'old config\n' }

describe('Executor', () => {
  it('never installs a config that nginx -t rejects, and quotes nginx', async () => {
    const remote = new FakeRemote([[/nginx -t/, { code: 11, stderr: 'nginx: [emerg] unknown directive "bogus" in /etc/nginx/nginx.conf.rollout-new:3' }]], () => ({ status: 200, ms: 1 }))
    const ex = new Executor(remote, configFrom({ network: 'host' }), running, quiet, live)
    const run = ex.runAll([{ kind: 'route', servers: next }], 'deploy')
    await expect(run).rejects.toThrow(StepFailure)
    await expect(run).rejects.toThrow('nginx -t rejected the new config (the live config is unchanged):\nnginx: [emerg] unknown directive "bogus"')
    // The apply script stops at nginx -t (exit 11): nothing after it, no retry, no reload.
    expect(remote.commands.filter((c) => c.includes('nginx -t'))).toHaveLength(1)
    expect(ex.configNow).toBe('old config\n')
    expect(ex.serving).toEqual(live)
  })

  it('installs, signals and waits until nginx serves the new config id', async () => {
    let served = 'old'
    const remote = new FakeRemote([], (_h, _p, path) =>
      path === '/.nginx-rollout/config-id' ? { status: 200, body: `${served}\n`, ms: 1 } : { status: 200, ms: 1 },
    )
    const config = configFrom({ network: 'host' })
    const ex = new Executor(remote, config, running, quiet, live)
    const { renderConfig } = await import('../../src/execute.js')
    served = renderConfig(config, next).configId
    await ex.runAll([{ kind: 'start', replicas: next }, { kind: 'route', servers: next }], 'deploy')
    expect(remote.uploads.map(([path]) => path)).toEqual(['.nginx-rollout/shop/nginx.conf.upload'])
    expect(remote.commands).toHaveLength(2)
    expect(remote.commands[0]).toMatch(/^docker run --detach --name shop-9202 /)
    expect(remote.commands[1]).toMatch(/^sh -c .* sh \.nginx-rollout\/shop\/nginx\.conf\.upload loadbalancer \/etc\/nginx\/nginx\.conf$/s)
    expect(ex.serving).toEqual(next)
    expect(ex.progress('old config\n').routed).toEqual(next)
  })

  it('puts the previous file back when nginx never serves the new config after the signal', async () => {
    const { LIMITS } = await import('../../src/config.js')
    const verifyMs = LIMITS.reloadVerifyMs
    ;(LIMITS as { reloadVerifyMs: number }).reloadVerifyMs = 300
    try {
      const remote = new FakeRemote([[/docker logs --tail 20 loadbalancer/, { stderr: 'nginx: [emerg] bind() to 127.0.0.1:80 failed (98: Address in use)' }]], () => ({ status: 200, body: 'stale-id\n', ms: 1 }))
      const ex = new Executor(remote, configFrom({ network: 'host' }), running, quiet, live)
      await expect(ex.runAll([{ kind: 'route', servers: next }], 'deploy')).rejects.toThrow(/the previous nginx.conf is back in place. nginx said:\nnginx: \[emerg\] bind\(\)/)
      expect(remote.uploads.map(([, text]) => text.startsWith('# Generated') ? 'new' : text)).toEqual(['new', 'old config\n'])
      expect(remote.commands.filter((c) => c.startsWith('sh -c \'docker cp'))).toHaveLength(2)
      expect(ex.configNow).toBe('old config\n')
      expect(ex.evidence[0].subject).toBe('nginx')
    } finally {
      ;(LIMITS as { reloadVerifyMs: number }).reloadVerifyMs = verifyMs
    }
  })

  it('lets a background stop overlap the next step, and fails the run at the removal if that stop failed', async () => {
    const remote = new FakeRemote([[/^docker stop /, { code: 1, stderr: 'Error response from daemon: cannot stop container' }]], () => ({ status: 200, ms: 1 }))
    const ex = new Executor(remote, configFrom({ network: 'host' }), running, quiet, live)
    const steps = [
      { kind: 'stop', replicas: live, background: true },
      { kind: 'start', replicas: next },
      { kind: 'remove', replicas: live },
    ] as const
    await expect(ex.runAll(steps, 'deploy')).rejects.toThrow('stopping old replicas failed on fake:22 (exit 1): Error response from daemon: cannot stop container')
    expect(remote.commands.map((c) => c.split(' ').slice(0, 2).join(' '))).toEqual(['docker stop', 'docker run'])
    expect(ex.records.map((r) => [r.description, r.outcome])).toEqual([
      ['stop shop-9201 (in the background)', 'ok'],
      ['start shop-9202 (:9202) from shop:v2', 'ok'],
      ['remove shop-9201', 'failed'],
    ])
  })

  it('fails a gate fast when the replica exits, with its last log lines as evidence', async () => {
    const remote = new FakeRemote(
      [
        [/docker inspect --format '\{\{\.State\.Status/, { stdout: 'exited\tnone\t3\n' }],
        [/docker logs --tail 30 shop-9202/, { stdout: 'booting\nFATAL: DATABASE_URL is not set\n' }],
      ],
      () => ({ error: 'Connection refused', ms: 1 }),
    )
    const ex = new Executor(remote, configFrom({ network: 'host', 'health-timeout': '60' }), running, quiet, live)
    const t0 = Date.now()
    await expect(ex.runAll([{ kind: 'gate', replicas: next }], 'deploy')).rejects.toThrow('shop-9202 stopped (exited, exit code 3) before it became healthy')
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(ex.evidence).toEqual([{ subject: 'shop-9202', reason: 'shop-9202 stopped (exited, exit code 3) before it became healthy', logs: 'booting\nFATAL: DATABASE_URL is not set' }])
    expect(ex.gates[0]).toMatchObject({ replica: 'shop-9202', ok: false, last: 'GET / -> Connection refused' })
  })
})

describe('renderSummary', () => {
  const record = {
    app: 'shop', host: 'h:22', strategy: 'rolling', result: 'rolled-back' as const, image: 'shop:v1', previousImage: 'shop:v1', durationSeconds: 12.34, dryRun: false,
    plan: ['pull shop:v2', 'start shop-9202 (:9202) from shop:v2'],
    steps: [{ phase: 'deploy' as const, description: 'pull shop:v2', host: 'h:22', ms: 1500, outcome: 'ok' as const }],
    gates: [{ replica: 'shop-9202', ok: false, probes: 5, ms: 5000, last: 'GET / -> 503', dockerHealth: 'none' }],
    configDiff: '--- a\n+++ b\n',
    failure: 'shop-9202 did not become healthy',
    evidence: [{ subject: 'shop-9202', reason: 'unhealthy', logs: 'connecting with password hunter22' }],
  }

  it('shows result, plan, steps, gates, the diff collapsed and the failing logs, without secrets', () => {
    const md = renderSummary(record, ['hunter22'])
    expect(md).toContain('## nginx-rollout: shop rolled back\n')
    expect(md).toContain('**Result:** `rolled-back` · **host** h:22 · **strategy** rolling · **image** `shop:v1` · **previous** `shop:v1` · **duration** 12.3 s')
    expect(md).toContain('1. pull shop:v2\n2. start shop-9202 (:9202) from shop:v2')
    expect(md).toContain('| 1 | deploy | pull shop:v2 | h:22 | 1.50 s | ok |')
    expect(md).toContain('| shop-9202 | **unhealthy** | 5 | 5.00 s | GET / -> 503 | none |')
    expect(md).toContain('<details><summary>nginx.conf diff</summary>')
    expect(md).toContain('connecting with password ***')
    expect(md).not.toContain('hunter22')
  })

  it('redacts every occurrence', () => {
    expect(redact('a s3cret b s3cret', ['s3cret'])).toBe('a *** b ***')
  })
})
