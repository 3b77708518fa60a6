// Scripts that run on the hosts, run by a real sh against fake docker and nginx on PATH: removals that race
// another removal, retirement reports that only a run holding the lock consumes, an nginx change ended by
// its deadline, and the session held for nginx changes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
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
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readRetireReports, removeContainers, retireContainers } from '../../src/commands/docker.js'
import { render, renderRemote, script, withStdin, withTimeout, type Command } from '../../src/commands/shell.js'
import {
  applyManagedFile,
  hostPlace,
  nginxLocked,
  nginxSession,
  SESSION_SWITCH,
  sessionChange,
} from '../../src/nginx/scripts.js'
import { nextSection } from '../../src/remote/frames.js'
import { releasePorts, reservePorts, takenPorts } from '../../src/host/ports.js'

const dirs: string[] = []
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nr-host-scripts-'))
  dirs.push(dir)
  mkdirSync(join(dir, 'bin'))
  return dir
}

function install(dir: string, name: string, text: string): void {
  writeFileSync(join(dir, 'bin', name), text)
  chmodSync(join(dir, 'bin', name), 0o755)
}

/** Runs a command line in sh with the fakes of `dir` first on PATH. */
function runIn(dir: string, line: string, env: Record<string, string> = {}, stdin = '') {
  const r = spawnSync('sh', ['-c', line], {
    cwd: dir,
    env: { ...process.env, PATH: `${dir}/bin:${process.env.PATH}`, ...env },
    input: stdin,
    encoding: 'utf8',
  })
  if (r.error) throw r.error
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/**
 * docker while another removal of a container is under way: `rm` answers that the removal is already in
 * progress; `inspect` still finds the container the first FAKE_GONE_AFTER times it is asked, then no more.
 * `stop` succeeds. Every call is logged, one line of arguments.
 */
const RACING_DOCKER = `#!/bin/sh
printf '%s\\n' "$*" >>"$FAKE_LOG"
case $1 in
  stop) exit 0 ;;
  rm) echo "Error response from daemon: removal of container $5 is already in progress" >&2; exit 1 ;;
  inspect)
    n=$(cat "$FAKE_COUNT" 2>/dev/null || echo 0); echo $((n + 1)) >"$FAKE_COUNT"
    [ "$n" -lt "$FAKE_GONE_AFTER" ] && { echo "/$5"; exit 0; }
    echo "Error: No such object: $5" >&2; exit 1 ;;
esac
exit 0
`

function racingDocker(goneAfter: number) {
  const dir = tempDir()
  install(dir, 'docker', RACING_DOCKER)
  const log = join(dir, 'calls.log')
  writeFileSync(log, '')
  const env = { FAKE_LOG: log, FAKE_COUNT: join(dir, 'count'), FAKE_GONE_AFTER: String(goneAfter) }
  return {
    dir,
    run: (c: Command) => runIn(dir, render(c), env),
    calls: () => readFileSync(log, 'utf8').split('\n').filter(Boolean),
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('removing a container another removal is already removing', () => {
  it('waits until docker no longer knows the container, then succeeds', () => {
    const docker = racingDocker(3)
    expect(docker.run(removeContainers(['shop-9201']))).toEqual({ code: 0, stdout: '', stderr: '' })
    expect(docker.calls()).toEqual([
      'rm --force --volumes -- shop-9201',
      ...Array(4).fill('inspect --format {{.Name}} -- shop-9201'),
    ])
  })

  it("fails with docker's answer when the container is still there after 10 s", () => {
    const docker = racingDocker(1000)
    const started = Date.now()
    const r = docker.run(removeContainers(['shop-9201']))
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_000)
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr:
        'Error response from daemon: removal of container shop-9201 is already in progress\n' +
        'still there after waiting 10 s for that removal:\n/shop-9201\n',
    })
    expect(docker.calls().filter((c) => c.startsWith('inspect'))).toHaveLength(51)
  }, 20_000)
})

describe('retiring containers another removal is already removing', () => {
  it('writes no failure report: the containers are going away', async () => {
    const docker = racingDocker(0)
    const reports = join(docker.dir, 'retired')
    expect(docker.run(retireContainers(reports, ['shop-9201'], 10)).code).toBe(0)
    const deadline = Date.now() + 5_000
    while (!docker.calls().some((c) => c.startsWith('rm '))) {
      if (Date.now() > deadline) throw new Error('the background retirement never removed the container')
      await sleep(20)
    }
    // The report, were it written, follows the removal at once.
    await sleep(300)
    expect(docker.calls()).toEqual(['stop --time 10 -- shop-9201', 'rm --force --volumes -- shop-9201'])
    expect(readdirSync(reports)).toEqual([])
  })
})

describe('reading retirement reports', () => {
  const report = 'Error response from daemon: cannot stop container: shop-9201\n'
  function withReport() {
    const dir = tempDir()
    const reports = join(dir, 'retired')
    mkdirSync(reports)
    writeFileSync(join(reports, '20261127T000000-4242.txt'), report)
    return { dir, reports, run: (c: Command) => runIn(dir, render(c)) }
  }

  it('changes nothing in a run without the lock (a status or a dry run): the next run still reads them', () => {
    const h = withReport()
    for (let i = 0; i < 2; i++)
      expect(h.run(readRetireReports(h.reports, false))).toEqual({
        code: 0,
        stdout: `20261127T000000-4242.txt\n${report}\0`,
        stderr: '',
      })
    expect(readdirSync(h.reports)).toEqual(['20261127T000000-4242.txt'])
  })

  it('removes each report it printed in a run that holds the lock', () => {
    const h = withReport()
    expect(h.run(readRetireReports(h.reports, true)).stdout).toBe(`20261127T000000-4242.txt\n${report}\0`)
    expect(readdirSync(h.reports)).toEqual([])
    expect(h.run(readRetireReports(h.reports, true)).stdout).toBe('')
  })
})

describe('the nginx apply script ended by its deadline', () => {
  // nginx -t takes longer than the command's deadline: the host's `timeout` sends TERM to the command's
  // process group while the new file is in place, not yet checked.
  const SLOW_NGINX = `#!/bin/sh
case " $* " in *' -t '*) sleep 30 ;; esac
exit 0
`
  let master: ChildProcess
  beforeAll(() => {
    master = spawn('sleep', ['60'], { stdio: 'ignore' })
  })
  afterAll(() => {
    master.kill()
  })

  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

  function applyUnderDeadline(previous: string | undefined, op: 'write' | 'remove') {
    const dir = tempDir()
    install(dir, 'nginx', SLOW_NGINX)
    const conf = join(dir, 'conf.d')
    mkdirSync(conf)
    const file = join(conf, 'shop.conf')
    if (previous !== undefined) writeFileSync(file, previous)
    const apply = applyManagedFile(
      hostPlace('no'),
      file,
      previous === undefined ? 'absent' : sha256(previous),
      master.pid!,
      op,
      [],
      '',
    )
    const c = withTimeout(op === 'write' ? withStdin(apply, '# the new file\n', 'managed file') : apply, 1)
    const started = Date.now()
    const r = runIn(dir, renderRemote(c, 120), {}, c.stdin ?? '')
    return { ...r, ms: Date.now() - started, file, left: readdirSync(conf) }
  }

  it('puts the previous file back when TERM arrives while the new one waits for nginx -t', () => {
    const r = applyUnderDeadline('# the previous file\n', 'write')
    expect(r.code).toBe(124)
    expect(r.ms).toBeLessThan(5_000)
    expect(readFileSync(r.file, 'utf8')).toBe('# the previous file\n')
    expect(r.left).toEqual(['shop.conf'])
  })

  it('leaves no file when there was none before', () => {
    const r = applyUnderDeadline(undefined, 'write')
    expect(r.code).toBe(124)
    expect(existsSync(r.file)).toBe(false)
    expect(r.left).toEqual([])
  })

  it('puts back a file whose removal was waiting for nginx -t', () => {
    const r = applyUnderDeadline('# the previous file\n', 'remove')
    expect(r.code).toBe(124)
    expect(readFileSync(r.file, 'utf8')).toBe('# the previous file\n')
    expect(r.left).toEqual(['shop.conf'])
  })
})

describe('port reservations', () => {
  // docker answers with no containers; the reservation folder is a temporary one instead of the state folder.
  function reservations(docker = '#!/bin/sh\nexit 0\n') {
    const dir = tempDir()
    install(dir, 'docker', docker)
    const place = join(dir, 'ports')
    const run = (c: Command) => runIn(dir, render({ argv: c.argv.map((a, i) => (i === 4 ? place : a)) }))
    const holder = (port: number) =>
      readFileSync(join(place, String(port)), 'utf8')
        .split(' ')
        .slice(0, 2)
    return { place, run, holder }
  }

  it("refuses ports another app's run has reserved and reserves nothing then", () => {
    const r = reservations()
    expect(r.run(reservePorts('blog', 'tok-blog', 600, [9301, 9302])).code).toBe(0)
    const refused = r.run(reservePorts('shop', 'tok-shop', 600, [9302, 9303]))
    expect(refused.code).toBe(3)
    expect(takenPorts(refused.stdout)).toEqual([9302])
    expect(readdirSync(r.place).filter((f) => !f.startsWith('.'))).toEqual(['9301', '9302'])
  })

  it("takes over ports its own app's killed run left reserved", () => {
    const r = reservations()
    expect(r.run(reservePorts('shop', 'tok-killed', 600, [9301])).code).toBe(0)
    expect(r.run(reservePorts('shop', 'tok-now', 600, [9301])).code).toBe(0)
    expect(r.holder(9301)).toEqual(['shop', 'tok-now'])
  })

  it('releases only the reservations of its own run', () => {
    const r = reservations()
    r.run(reservePorts('shop', 'tok-shop', 600, [9301]))
    r.run(reservePorts('blog', 'tok-blog', 600, [9302]))
    expect(r.run(releasePorts('tok-shop')).code).toBe(0)
    expect(readdirSync(r.place).filter((f) => !f.startsWith('.'))).toEqual(['9302'])
  })

  it("takes a port one of the app's own containers holds only when the run removes that container first", () => {
    // docker lists a container shop-9301 (a replica an earlier run still stops in the background).
    const r = reservations('#!/bin/sh\ncase "$*" in *Names*) echo shop-9301 ;; esac\nexit 0\n')
    const held = r.run(reservePorts('shop', 'tok-shop', 600, [9301]))
    expect(held.code).toBe(3)
    expect(takenPorts(held.stdout)).toEqual([9301])
    expect(r.run(reservePorts('shop', 'tok-shop', 600, [9301, 9302], [9301])).code).toBe(0)
    expect(r.holder(9301)).toEqual(['shop', 'tok-shop'])
    expect(r.holder(9302)).toEqual(['shop', 'tok-shop'])
    // Another app's reservation still takes it.
    expect(r.run(reservePorts('blog', 'tok-blog', 600, [9303])).code).toBe(0)
    const reserved = r.run(reservePorts('shop', 'tok-next', 600, [9303], [9303]))
    expect(reserved.code).toBe(3)
    expect(takenPorts(reserved.stdout)).toEqual([9303])
  })

  it('ignores an expired reservation of another app', () => {
    const r = reservations()
    r.run(reservePorts('blog', 'tok-blog', -1, [9301]))
    expect(r.run(reservePorts('shop', 'tok-shop', 600, [9301])).code).toBe(0)
    expect(r.holder(9301)).toEqual(['shop', 'tok-shop'])
  })
})

describe('the session held for nginx changes (nginxSession)', () => {
  // A master that starts a new "worker" (a child) on each HUP, as nginx does on a reload.
  let master: ChildProcess
  beforeAll(() => {
    master = spawn('sh', ['-c', 'trap "sleep 300 &" HUP; sleep 300 & while :; do wait; done'], { stdio: 'ignore' })
  })
  afterAll(() => {
    master.kill('SIGKILL')
  })
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
  const PREVIOUS = '# the previous file\n'.repeat(300)
  const LIVE = '# the new version, judged\n'

  /** Every whole section the session printed, in order. */
  function sectionsOf(raw: Buffer) {
    const found: Array<{ name: string; code: number; out: string; err: string }> = []
    for (let next = nextSection(raw); next; next = nextSection(raw, next.end))
      found.push({
        name: next.name,
        code: next.section.code,
        out: next.section.out.toString('utf8'),
        err: next.section.err.toString('utf8'),
      })
    return found
  }

  /**
   * The session as Remote.follow starts it, the managed file LIVE; `flag`: the switch-back flag's name in its
   * folder ('' for none, as through sudo).
   */
  function session(token = 'run-token', flagName = '') {
    const dir = tempDir()
    install(dir, 'nginx', '#!/bin/sh\nexit 0\n')
    const conf = join(dir, 'conf.d')
    mkdirSync(conf)
    const file = join(conf, 'shop.conf')
    writeFileSync(file, LIVE)
    const lockDir = join(dir, 'lock')
    mkdirSync(lockDir)
    writeFileSync(join(lockDir, 'token'), `${token}\n`)
    const lockFile = join(dir, 'state', 'nginx-host.lock')
    const c = nginxSession(
      { lockDir, token: 'run-token' },
      lockFile,
      5,
      hostPlace('no'),
      file,
      master.pid!,
      [],
      flagName && join(dir, flagName),
    )
    const child = spawn('sh', ['-c', renderRemote(c, 120)], {
      cwd: dir,
      env: { ...process.env, PATH: `${dir}/bin:${process.env.PATH}` },
    })
    let stdout = Buffer.alloc(0)
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout = Buffer.concat([stdout, d])))
    child.stderr.on('data', (d) => (stderr += d))
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
    const sections = () => sectionsOf(stdout)
    /** Waits until the session printed `count` sections, and returns them. */
    const said = async (count: number) => {
      for (let i = 0; i < 250 && sections().length < count; i++) await sleep(20)
      return sections()
    }
    return {
      file,
      conf,
      dir,
      lockFile,
      child,
      said,
      send: (words: string) => child.stdin!.write(words),
      exited: async () => ({ code: await exited, sections: sections(), stderr }),
    }
  }

  it('says ready and changes nothing until a word; each go then changes the file and reloads nginx, one after another', async () => {
    const s = session()
    expect(await s.said(1)).toEqual([{ name: 'ready', code: 0, out: '', err: '' }])
    await sleep(300)
    expect(s.child.exitCode).toBeNull()
    expect(readFileSync(s.file, 'utf8')).toBe(LIVE)
    s.send(sessionChange(sha256(LIVE), PREVIOUS))
    // A change that went through says only that: its section is one printf, no process started for it.
    expect((await s.said(2))[1]).toEqual({ name: 'change', code: 0, out: '', err: '' })
    expect(readFileSync(s.file, 'utf8')).toBe(PREVIOUS)
    s.send(sessionChange(sha256(PREVIOUS), LIVE))
    expect((await s.said(3))[2]).toMatchObject({ name: 'change', code: 0 })
    expect(readFileSync(s.file, 'utf8')).toBe(LIVE)
    s.child.stdin!.end()
    expect((await s.exited()).code).toBe(0)
    expect(readdirSync(s.conf)).toEqual(['shop.conf'])
  })

  it('releases the nginx lock once each change is over, while the session goes on', async () => {
    const s = session()
    await s.said(1)
    s.send(sessionChange(sha256(LIVE), PREVIOUS))
    await s.said(2)
    // Another app's change takes the lock at once.
    const other = spawnSync('flock', ['-n', '-x', s.lockFile, 'true'])
    expect(other.status).toBe(0)
    expect(s.child.exitCode).toBeNull()
    s.child.stdin!.end()
    expect((await s.exited()).code).toBe(0)
  })

  it('ends at the end of its input: exit 0, the file as it was, nothing left beside it', async () => {
    const s = session()
    await s.said(1)
    s.child.stdin!.end()
    const r = await s.exited()
    expect(r).toMatchObject({ code: 0, sections: [{ name: 'ready', code: 0 }] })
    expect(readFileSync(s.file, 'utf8')).toBe(LIVE)
    expect(readdirSync(s.conf)).toEqual(['shop.conf'])
  })

  it('changes nothing once the run no longer holds the deploy lock (75), and reads the next word whole', async () => {
    const s = session('another-run')
    await s.said(1)
    s.send(sessionChange(sha256(LIVE), PREVIOUS) + sessionChange(sha256(LIVE), PREVIOUS))
    const said = await s.said(3)
    expect(said.slice(1).map((x) => [x.name, x.code])).toEqual([
      ['change', 75],
      ['change', 75],
    ])
    expect(readFileSync(s.file, 'utf8')).toBe(LIVE)
    s.child.stdin!.end()
    expect((await s.exited()).code).toBe(0)
  })

  it('sends requests back (creates the flag) on a switch before it waits for the nginx lock, and removes the flag once nginx reloaded', async () => {
    const s = session('run-token', 'shop.switched-back')
    const flag = join(s.dir, 'shop.switched-back')
    await s.said(1)
    // Another app's change holds the nginx lock: the file waits for it, the flag does not.
    mkdirSync(join(s.dir, 'state'), { recursive: true })
    const holder = spawn('flock', ['-x', s.lockFile, 'sleep', '1'], { stdio: 'ignore' })
    try {
      await sleep(200)
      s.send(SESSION_SWITCH + sessionChange(sha256(LIVE), PREVIOUS))
      const said = await s.said(2)
      expect(said.map((x) => [x.name, x.code])).toEqual([
        ['ready', 0],
        ['switch', 0],
      ])
      expect(existsSync(flag)).toBe(true)
      expect(readFileSync(s.file, 'utf8')).toBe(LIVE)
    } finally {
      holder.kill()
    }
    expect((await s.said(3))[2]).toMatchObject({ name: 'change', code: 0 })
    expect(readFileSync(s.file, 'utf8')).toBe(PREVIOUS)
    expect(existsSync(flag)).toBe(false)
    s.child.stdin!.end()
    expect((await s.exited()).code).toBe(0)
  })

  it('sends nothing back once the run no longer holds the deploy lock (75, no flag)', async () => {
    const s = session('another-run', 'shop.switched-back')
    await s.said(1)
    s.send(SESSION_SWITCH + sessionChange(sha256(LIVE), PREVIOUS))
    const said = await s.said(3)
    expect(said.map((x) => [x.name, x.code])).toEqual([
      ['ready', 0],
      ['switch', 75],
      ['change', 75],
    ])
    expect(existsSync(join(s.dir, 'shop.switched-back'))).toBe(false)
    s.child.stdin!.end()
    await s.exited()
  })

  it('any change removes a switch-back flag left behind once nginx reloaded with its file (a killed run left it)', async () => {
    const dir = tempDir()
    install(dir, 'nginx', '#!/bin/sh\nexit 0\n')
    mkdirSync(join(dir, 'conf.d'))
    const file = join(dir, 'conf.d', 'shop.conf')
    writeFileSync(file, LIVE)
    const flag = join(dir, 'shop.switched-back')
    writeFileSync(flag, '')
    const apply = applyManagedFile(hostPlace('no'), file, sha256(LIVE), master.pid!, 'write', [], flag)
    const r = runIn(dir, renderRemote(withStdin(apply, PREVIOUS, 'managed file'), 120), {}, PREVIOUS)
    expect(r).toMatchObject({ code: 0, stdout: `nginx ${master.pid} reloaded\n` })
    expect(readFileSync(file, 'utf8')).toBe(PREVIOUS)
    expect(existsSync(flag)).toBe(false)
  })

  it('changes nothing when the file is not what the word says is live (71), and goes on', async () => {
    const s = session()
    await s.said(1)
    s.send(sessionChange(sha256('# another file\n'), PREVIOUS))
    const [, refused] = await s.said(2)
    expect(refused).toMatchObject({ name: 'change', code: 71 })
    expect(refused.err).toContain('changed since this run read it')
    expect(readFileSync(s.file, 'utf8')).toBe(LIVE)
    s.send(sessionChange(sha256(LIVE), PREVIOUS))
    expect((await s.said(3))[2]).toMatchObject({ name: 'change', code: 0 })
    s.child.stdin!.end()
    await s.exited()
  })
})

describe('a change under both locks (nginxLocked)', () => {
  function locked(token: string) {
    const dir = tempDir()
    const lockDir = join(dir, 'lock')
    mkdirSync(lockDir)
    writeFileSync(join(lockDir, 'token'), `${token}\n`)
    const lockFile = join(dir, 'state', 'nginx-host.lock')
    const c = nginxLocked(
      { lockDir, token: 'run-token' },
      lockFile,
      1,
      script('echo ran; ls -l /proc/$$/fd/9 >/dev/null'),
    )
    return { ...runIn(dir, renderRemote(c, 120)), lockFile }
  }

  it('runs the command holding the nginx lock while the run holds its deploy lock', () => {
    const r = locked('run-token')
    expect(r).toMatchObject({ code: 0, stdout: 'ran\n' })
    expect(existsSync(r.lockFile)).toBe(true)
  })

  it("runs nothing once the deploy lock is another run's (75)", () => {
    expect(locked('another-run')).toMatchObject({ code: 75, stdout: '' })
  })

  it('gives up on an nginx lock another change holds past the wait (76)', () => {
    const dir = tempDir()
    const lockDir = join(dir, 'lock')
    mkdirSync(lockDir)
    writeFileSync(join(lockDir, 'token'), 'run-token\n')
    const lockFile = join(dir, 'nginx-host.lock')
    const holder = spawn('flock', ['-x', lockFile, 'sleep', '5'], { stdio: 'ignore' })
    try {
      spawnSync('sleep', ['0.3'])
      const c = nginxLocked({ lockDir, token: 'run-token' }, lockFile, 1, script('echo ran'))
      expect(runIn(dir, renderRemote(c, 120))).toMatchObject({ code: 76, stdout: '' })
    } finally {
      holder.kill()
    }
  })
})
