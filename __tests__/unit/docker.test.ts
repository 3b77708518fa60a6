import { execFileSync, spawn } from 'node:child_process'
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  CONTAINER_FIELDS,
  containerLogs,
  drainWait,
  ensureImage,
  healthLog,
  inspectState,
  listenPortInside,
  listManaged,
  login,
  parseDrain,
  parseReplicaState,
  pullImage,
  readRetireReports,
  removeContainers,
  replicaEnv,
  retireContainers,
  createReplica,
  createdId,
  startContainers,
  stopContainers,
} from '../../src/commands/docker.js'
import { describeCommand, render, type Command } from '../../src/commands/shell.js'
import { parseContainers } from '../../src/host/state.js'
import { configFrom, replicaOf } from './fixtures.js'

const replica = replicaOf(9203, 'ghcr.io/acme/shop:2.0')

/** The docker create command inside a createReplica script, rendered. */
const created = (c: Command): string => render({ argv: c.argv.slice(4) })

describe('docker create and start for a replica', () => {
  it('creates, prints the id, then starts it: the id is known even when the start fails', () => {
    const c = createReplica(configFrom(), replica)
    expect(c.argv.slice(0, 2)).toEqual(['sh', '-c'])
    expect(c.argv[2]).toBe('id=$("$@") || exit $?\nprintf \'%s\\n\' "$id"\ndocker start -- "$id" >/dev/null')
    expect(created(c)).toMatch(/^docker create --name shop-9203 /)
    const id = 'a'.repeat(64)
    expect(createdId(`${id}\n`)).toBe(id)
    expect(createdId('Error response from daemon: Conflict.\n')).toBeUndefined()
  })

  it('sets every label, publishes the port on the upstream address and sends the env on standard input', () => {
    const c = createReplica(
      configFrom({ env: 'DB_PASSWORD=s3cr3t\nMODE=prod', 'run-args': "--memory 512m --label 'x=a b'" }),
      replica,
    )
    expect(created(c)).toBe(
      'docker create --name shop-9203 --label nginx-rollout.app=shop --label nginx-rollout.role=replica ' +
        '--label nginx-rollout.image=ghcr.io/acme/shop:2.0 --label nginx-rollout.port=9203 --label nginx-rollout.color= ' +
        "--publish 127.0.0.1:9203:8080 --env-file /dev/stdin --memory 512m --label 'x=a b' ghcr.io/acme/shop:2.0",
    )
    expect(c.stdin).toBe('PORT=8080\nDB_PASSWORD=s3cr3t\nMODE=prod\n')
    expect(describeCommand(c)).toMatch(/ < \(env file: PORT, DB_PASSWORD, MODE\)$/)
    expect(describeCommand(c)).not.toContain('s3cr3t')
  })

  it('gives a docker create the pull timeout, since it pulls a missing image itself', () => {
    expect(createReplica(configFrom({ 'pull-timeout': '900' }), replica).timeoutSeconds).toBe(900)
  })

  it('labels a blue-green replica with its colour', () => {
    expect(created(createReplica(configFrom(), { ...replica, color: 'blue' }))).toContain(
      ' --label nginx-rollout.color=blue --publish ',
    )
  })

  it("publishes on another host's upstream address, IPv6 in brackets, and joins a named network", () => {
    expect(created(createReplica(configFrom(), { ...replica, host: '10.0.0.12', address: '10.1.0.12' }))).toContain(
      ' --publish 10.1.0.12:9203:8080 --env-file ',
    )
    expect(
      created(
        createReplica(configFrom({ network: 'backend', 'container-port': '3000' }), {
          ...replica,
          address: 'fd00::12',
        }),
      ),
    ).toContain(" --network backend --publish '[fd00::12]:9203:3000' --env-file ")
  })

  it('gives host-network replicas their own port in PORT, and publishes nothing', () => {
    const config = configFrom({ network: 'host' })
    const c = createReplica(config, replica)
    expect(created(c)).toContain(
      ' --label nginx-rollout.color= --network host --env-file /dev/stdin ghcr.io/acme/shop:2.0',
    )
    expect(created(c)).not.toContain('--publish')
    expect(c.stdin).toBe('PORT=9203\n')
    expect(replicaEnv(config, replica)).toBe('PORT=9203\n')
    expect(listenPortInside(config, replica)).toBe(9203)
    expect(listenPortInside(configFrom(), replica)).toBe(8080)
  })
})

describe('docker commands on containers', () => {
  it('puts -- before every container reference, so none can be read as an option', () => {
    expect(render(startContainers(['shop-9201', '-v']))).toBe('docker start -- shop-9201 -v')
    expect(render(stopContainers(['abc123'], 10))).toBe('docker stop --time 10 -- abc123')
    expect(render(containerLogs('--help', 30))).toBe('docker logs --tail 30 -- --help')
    expect(render(inspectState('abc123'))).toBe(
      "docker inspect --format '{{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}\t{{.State.ExitCode}}\t{{.RestartCount}}' -- abc123",
    )
    expect(render(healthLog('abc123'))).toBe(
      "docker inspect --format '{{if .State.Health}}{{range .State.Health.Log}}{{.ExitCode}}: {{.Output}}{{end}}{{end}}' -- abc123",
    )
    expect(removeContainers(['a', '-f']).argv.slice(3)).toEqual(['sh', 'a', '-f'])
  })

  it('gives a stop its stop timeout and a minute more', () => {
    expect(stopContainers(['a'], 10).timeoutSeconds).toBe(70)
  })

  it('pulls under the pull timeout, and pulls the nginx image only when missing', () => {
    expect(pullImage('shop:v2', 600)).toEqual({ argv: ['docker', 'pull', '--quiet', 'shop:v2'], timeoutSeconds: 600 })
    const e = ensureImage('nginx:1.27', 300)
    expect(e.argv.slice(2)).toEqual([
      'docker image inspect "$1" >/dev/null 2>&1 || docker pull --quiet "$1"',
      'sh',
      'nginx:1.27',
    ])
    expect(e.timeoutSeconds).toBe(300)
  })

  it('logs in with the password on standard input only', () => {
    const c = login('ghcr.io', 'bot', 'tok3n', 120)
    expect(render(c)).toBe('docker login --username bot --password-stdin ghcr.io')
    expect(c.stdin).toBe('tok3n')
    expect(c.timeoutSeconds).toBe(120)
    expect(describeCommand(c)).toBe('docker login --username bot --password-stdin ghcr.io < (registry password)')
    expect(render(login('', 'bot', 'tok3n', 120))).toBe('docker login --username bot --password-stdin')
  })

  it('reads a replica state line', () => {
    expect(parseReplicaState('running\thealthy\t0\t0\n')).toEqual({
      status: 'running',
      health: 'healthy',
      exitCode: 0,
      restarts: 0,
    })
    expect(parseReplicaState('exited\tnone\t137\t2')).toEqual({
      status: 'exited',
      health: 'none',
      exitCode: 137,
      restarts: 2,
    })
  })

  // BUG (minor): empty output gives status '' instead of the 'unknown' the defaults intend, since ''.split('\t')
  // is [''] (src/commands/docker.ts:302); a gate would then say "stopped (, exit code 0)". Fix: `status || 'unknown'`.
  it('reads empty output as an unknown state', () => {
    expect(parseReplicaState('')).toEqual({ status: 'unknown', health: 'none', exitCode: 0, restarts: 0 })
  })
})

/**
 * The scripts run by a real sh against a fake docker on PATH, which logs each call (one line of its
 * arguments) and answers from FAKE_* variables.
 */
const FAKE_DOCKER = `#!/bin/sh
printf '%s\\n' "$*" >>"$FAKE_LOG"
case "$1 $3" in
  'ps '*) printf '%s' "$FAKE_PS" ;;
  'inspect {{.State.Pid}}') [ -n "$FAKE_PID" ] && echo "$FAKE_PID"; exit \${FAKE_PID_EXIT:-0} ;;
  'inspect {{.Name}}') [ -n "$FAKE_LEFT" ] && echo "$FAKE_LEFT"; exit 0 ;;
  'inspect '*) printf '%s\\n' "$FAKE_INSPECT" ;;
  'stop '*) sleep "\${FAKE_STOP_SLEEP:-0}"; [ -n "$FAKE_STOP_OUT" ] && echo "$FAKE_STOP_OUT"; exit \${FAKE_STOP_EXIT:-0} ;;
  'rm '*) [ -n "$FAKE_RM_OUT" ] && echo "$FAKE_RM_OUT" >&2; exit \${FAKE_RM_EXIT:-0} ;;
esac
exit 0
`

const dirs: string[] = []
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

function fakeDocker() {
  const dir = mkdtempSync(join(tmpdir(), 'nr-docker-'))
  dirs.push(dir)
  mkdirSync(join(dir, 'bin'))
  writeFileSync(join(dir, 'bin', 'docker'), FAKE_DOCKER)
  chmodSync(join(dir, 'bin', 'docker'), 0o755)
  const log = join(dir, 'calls.log')
  writeFileSync(log, '')
  const run = (c: Command, fake: Record<string, string> = {}): { code: number; stdout: string; stderr: string } => {
    try {
      const stdout = execFileSync('sh', ['-c', render(c)], {
        env: { ...process.env, PATH: `${dir}/bin:${process.env.PATH}`, FAKE_LOG: log, ...fake },
        encoding: 'utf8',
        stdio: 'pipe',
      })
      return { code: 0, stdout, stderr: '' }
    } catch (e) {
      const err = e as { status: number; stdout: string; stderr: string }
      return { code: err.status, stdout: err.stdout, stderr: err.stderr }
    }
  }
  const calls = () => readFileSync(log, 'utf8').split('\n').filter(Boolean)
  return { dir, run, calls }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await sleep(20)
  }
}

describe('listManaged, run by sh', () => {
  it('lists every replica container of every app and inspects them with the JSON template', () => {
    const docker = fakeDocker()
    const line = JSON.stringify({
      id: 'a'.repeat(64),
      name: '/shop-9201',
      state: 'running',
      pid: 7,
      labels: {
        'nginx-rollout.app': 'shop',
        'nginx-rollout.role': 'replica',
        'nginx-rollout.port': '9201',
        'nginx-rollout.image': 'shop:v1',
      },
    })
    const r = docker.run(listManaged(), { FAKE_PS: `${'a'.repeat(64)}\n${'b'.repeat(64)}\n`, FAKE_INSPECT: line })
    expect(r.code).toBe(0)
    expect(docker.calls()).toEqual([
      'ps --all --quiet --no-trunc --filter label=nginx-rollout.role=replica',
      `inspect --format ${CONTAINER_FIELDS} ${'a'.repeat(64)} ${'b'.repeat(64)}`,
    ])
    expect(
      parseContainers(r.stdout, { id: 'h', upstreamAddress: '127.0.0.1' }, 'shop').containers.map((c) => c.name),
    ).toEqual(['shop-9201'])
  })

  it('answers nothing, successfully, when no container carries the label', () => {
    const docker = fakeDocker()
    expect(docker.run(listManaged())).toEqual({ code: 0, stdout: '', stderr: '' })
    expect(docker.calls()).toHaveLength(1)
  })
})

describe('removeContainers, run by sh', () => {
  it('succeeds when docker rm does, or when the containers are gone anyway', () => {
    const docker = fakeDocker()
    expect(docker.run(removeContainers(['shop-9201', 'shop-9202'])).code).toBe(0)
    expect(docker.calls()).toEqual(['rm --force --volumes -- shop-9201 shop-9202'])
    expect(
      docker.run(removeContainers(['shop-9201']), {
        FAKE_RM_EXIT: '1',
        FAKE_RM_OUT: 'Error: No such container: shop-9201',
      }).code,
    ).toBe(0)
  })

  it('fails with docker rm said when a container is still there', () => {
    const docker = fakeDocker()
    const r = docker.run(removeContainers(['shop-9201']), {
      FAKE_RM_EXIT: '1',
      FAKE_RM_OUT: 'Error response from daemon: device or resource busy',
      FAKE_LEFT: '/shop-9201',
    })
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'Error response from daemon: device or resource busy\n' })
    expect(docker.calls()).toEqual(['rm --force --volumes -- shop-9201', 'inspect --format {{.Name}} -- shop-9201'])
  })
})

describe('retireContainers, run by sh', () => {
  it('returns at once and stops and removes the containers in the background', async () => {
    const docker = fakeDocker()
    const reports = join(docker.dir, 'retired')
    const c = retireContainers(reports, ['shop-9201', 'shop-9202'], 10)
    expect(c.argv.slice(3)).toEqual(['sh', reports, '10', 'shop-9201', 'shop-9202'])
    const started = Date.now()
    expect(docker.run(c, { FAKE_STOP_SLEEP: '2' })).toEqual({ code: 0, stdout: '', stderr: '' })
    expect(Date.now() - started).toBeLessThan(1500)
    await until(() => docker.calls().length === 2)
    expect(docker.calls()).toEqual([
      'stop --time 10 -- shop-9201 shop-9202',
      'rm --force --volumes -- shop-9201 shop-9202',
    ])
    await sleep(100)
    expect(readdirSync(reports)).toEqual([])
  })

  it('leaves a report when the stop fails, which the next run that holds the lock reads once', async () => {
    const docker = fakeDocker()
    const reports = join(docker.dir, 'retired')
    docker.run(retireContainers(reports, ['shop-9201'], 10), {
      FAKE_STOP_EXIT: '1',
      FAKE_STOP_OUT: 'Error response from daemon: permission denied',
    })
    await until(() => existsSync(reports) && readdirSync(reports).some((f) => f.endsWith('.txt')))
    expect(docker.calls()).toEqual(['stop --time 10 -- shop-9201'])
    const read = docker.run(readRetireReports(reports, true))
    expect(read.code).toBe(0)
    expect(read.stdout).toMatch(/^\d{8}T\d{6}-\d+\.txt\nError response from daemon: permission denied\n\0$/)
    expect(readdirSync(reports)).toEqual([])
    expect(docker.run(readRetireReports(reports, true)).stdout).toBe('')
    expect(docker.run(readRetireReports(join(docker.dir, 'never-created'), true))).toEqual({
      code: 0,
      stdout: '',
      stderr: '',
    })
  })
})

describe('drainWait, run by sh', () => {
  let server: Server
  let port: number
  const open: Socket[] = []
  beforeAll(async () => {
    server = createServer((s) => open.push(s))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    port = (server.address() as { port: number }).port
  })
  afterAll(async () => {
    for (const s of open) s.destroy()
    await new Promise((r) => server.close(r))
  })

  it('passes its limits and, per network namespace, a container with its main pid (0: ask docker) and the ports its apps listen on there', () => {
    const c = drainWait(
      [
        { ref: 'abc', pid: 4242, ports: [8080] },
        { ref: 'def', ports: [9202, 9203] },
      ],
      ['127.0.0.1:8080', '[::1]:9202'],
      5,
      1,
      100,
      2,
    )
    expect(c.argv.slice(3)).toEqual([
      'sh',
      '5',
      '1',
      '0.1',
      '2',
      '127.0.0.1:8080 [::1]:9202',
      'abc',
      '4242',
      '8080',
      'def',
      '0',
      '9202|9203',
    ])
    expect(c.timeoutSeconds).toBe(35)
  })

  it('ends after the quiet polls when nothing is in flight', () => {
    const docker = fakeDocker()
    const r = docker.run(drainWait([{ ref: 'shop-9201', ports: [port] }], [], 2, 0, 100, 2), {
      FAKE_PID: String(process.pid),
    })
    expect(r.stdout).toBe('idle 100\n')
    expect(parseDrain(r.stdout)).toEqual({ kind: 'idle', ms: 100 })
    expect(docker.calls()).toEqual(['inspect --format {{.State.Pid}} -- shop-9201'])
  })

  it('waits the shortest wait even when idle at once', () => {
    const docker = fakeDocker()
    expect(
      docker.run(drainWait([{ ref: 'shop-9201', ports: [port] }], [], 2, 0.5, 100, 2), {
        FAKE_PID: String(process.pid),
      }).stdout,
    ).toBe('idle 500\n')
  })

  // The poll counts are rounded: in floating point 0.3/0.1 is 2.999..., one poll short when truncated.
  it('waits a shortest wait that is not a whole number of polls in full', () => {
    const docker = fakeDocker()
    expect(
      docker.run(drainWait([{ ref: 'shop-9201', ports: [port] }], [], 2, 0.3, 100, 2), {
        FAKE_PID: String(process.pid),
      }).stdout,
    ).toBe('idle 300\n')
  })

  it('reports the connections still open at the longest wait, on every port of a namespace, and asks docker for no pid it was given', async () => {
    const other = createServer((s) => open.push(s))
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r))
    const otherPort = (other.address() as { port: number }).port
    const clients = [connect(port, '127.0.0.1'), connect(otherPort, '127.0.0.1')]
    await Promise.all(clients.map((c) => new Promise((r) => c.once('connect', r))))
    try {
      const docker = fakeDocker()
      const r = docker.run(drainWait([{ ref: 'shop-9201', ports: [port] }], [], 0.5, 0, 100, 2), {
        FAKE_PID: String(process.pid),
      })
      expect(parseDrain(r.stdout)).toEqual({ kind: 'busy', ms: 500, inFlight: 1 })
      expect(docker.calls()).toEqual(['inspect --format {{.State.Pid}} -- shop-9201'])
      const known = fakeDocker()
      expect(
        parseDrain(
          known.run(drainWait([{ ref: 'shop-9201', pid: process.pid, ports: [port, otherPort] }], [], 0.5, 0, 100, 2))
            .stdout,
        ),
      ).toEqual({ kind: 'busy', ms: 500, inFlight: 2 })
      expect(known.calls()).toEqual([])
    } finally {
      clients.forEach((c) => c.destroy())
      await new Promise((r) => other.close(r))
    }
    // Two drains of 0.5 s in a real sh: room for a loaded machine.
  }, 15_000)

  it("counts nginx's connections that are still being opened: the replica's side does not see a SYN its full listen queue dropped", async () => {
    // A replica that stops accepting (its process busy): two connections fit its queue (backlog 1), the
    // kernel drops the other SYNs and the client sends them again a second later. Stopping the replica
    // meanwhile fails those requests.
    const replica = spawn(
      process.execPath,
      [
        '-e',
        "const s = require('net').createServer(); s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => " +
          '{ console.log(s.address().port); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10000) })',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const full = await new Promise<number>((r) => replica.stdout.once('data', (d) => r(Number(String(d).trim()))))
    const nginx = Array.from({ length: 6 }, () => connect(full, '127.0.0.1').on('error', () => undefined))
    try {
      await sleep(200)
      const drain = (servers: string[]) =>
        parseDrain(
          fakeDocker().run(drainWait([{ ref: 'shop-9201', pid: replica.pid, ports: [full] }], servers, 0.3, 0, 100, 2))
            .stdout,
        )
      expect(drain([])).toEqual({ kind: 'busy', ms: 300, inFlight: 2 })
      // nginx's side: the 2 established and the 4 still connecting, beside the replica's 2.
      expect(drain([`127.0.0.1:${full}`, '[::1]:1'])).toEqual({ kind: 'busy', ms: 300, inFlight: 8 })
      const nginxOnly = fakeDocker()
      expect(parseDrain(nginxOnly.run(drainWait([], [`127.0.0.1:${full}`], 0.3, 0, 100, 2)).stdout)).toEqual({
        kind: 'busy',
        ms: 300,
        inFlight: 6,
      })
      expect(nginxOnly.calls()).toEqual([])
    } finally {
      nginx.forEach((c) => c.destroy())
      replica.kill()
    }
  }, 15_000)

  it('does not wait for a container already gone or stopped', () => {
    const docker = fakeDocker()
    expect(
      docker.run(drainWait([{ ref: 'gone', ports: [port] }], [], 2, 0, 100, 2), { FAKE_PID_EXIT: '1' }).stdout,
    ).toBe('idle 100\n')
    expect(docker.run(drainWait([{ ref: 'stopped', ports: [port] }], [], 2, 0, 100, 2), { FAKE_PID: '0' }).stdout).toBe(
      'idle 100\n',
    )
  })

  it('waits the longest wait when it cannot read connections', () => {
    const docker = fakeDocker()
    const r = docker.run(drainWait([{ ref: 'shop-9201', ports: [port] }], [], 0.2, 0, 100, 2), {
      FAKE_PID: '999999999',
    })
    expect(r.stdout).toBe('unknown 0.2\n')
    expect(parseDrain(r.stdout)).toEqual({ kind: 'unknown', seconds: 0.2 })
  })
})
