// Host mode through sudo, run by a real sh against a fake sudo, nginx and nginx master: every privileged command
// is one of the fixed command lines sudoers can allow one by one, the new file waits in the run's own folder
// (never beside nginx's files), and a right sudo does not give is found by the read, before anything changes,
// as one problem that names the command and the sudoers line.
import { afterAll, afterEach, describe, expect, it } from '@jest/globals'
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LIMITS } from '../../src/config.js'
import { renderRemote, withStdin, type Command } from '../../src/commands/shell.js'
import { parseNginx } from '../../src/nginx/nginx.js'
import {
  applyManagedFile,
  followTrafficLog,
  hostPlace,
  readNginx,
  RECORD_FOLLOWED,
  sudoCommands,
} from '../../src/nginx/scripts.js'
import { parseSections } from '../../src/remote/frames.js'
import { configFrom } from './fixtures.js'

const dirs: string[] = []
const masters: ChildProcess[] = []
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))
afterEach(() => masters.splice(0).forEach((m) => m.kill()))

const which = (name: string) => spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim()
const TEE = which('tee')
const RM = which('rm')
const TRUNCATE = which('truncate')
const REAL_GREP = which('grep')

/**
 * sudo as sudoers with exactly the lines in $FAKE_SUDO_ALLOW would behave: -n required, -l answers whether a
 * command line is allowed, anything else runs only when allowed. Every call is logged, one line of arguments.
 */
const FAKE_SUDO = `#!/bin/sh
printf '%s\\n' "$*" >>"$FAKE_SUDO_LOG"
[ "$1" = -n ] || { echo 'sudo: a password is required' >&2; exit 1; }
shift
if [ "$1" = -l ]; then shift; ${REAL_GREP} -qxF -- "$*" "$FAKE_SUDO_ALLOW" && { echo "$*"; exit 0; }; exit 1; fi
${REAL_GREP} -qxF -- "$*" "$FAKE_SUDO_ALLOW" || { echo "Sorry, user deploy is not allowed to execute '$*' as root" >&2; exit 1; }
exec "$@"
`

/** nginx: -t passes unless FAKE_NGINX_T_FAILS; -s reload signals the fake master; -T prints a small dump. */
const FAKE_NGINX = `#!/bin/sh
case "$*" in
  -V) echo 'nginx version: nginx/1.22.1' >&2 ;;
  -t) [ -n "$FAKE_NGINX_T_FAILS" ] && { echo 'nginx: [emerg] unknown directive "oops"' >&2; exit 1; }; echo 'nginx: configuration file /etc/nginx/nginx.conf test is successful' >&2 ;;
  '-s reload') kill -HUP "$FAKE_MASTER" ;;
  -T) printf '# configuration file /etc/nginx/nginx.conf:\\nhttp {\\n    include %s/*.conf;\\n}\\n' "$FAKE_CONF_DIR" ;;
esac
exit 0
`

/** grep, except that the list of nginx processes holds only the fake master (the machine may run real ones). */
const FAKE_GREP = `#!/bin/sh
case "$*" in "-l -x nginx /proc/"*) echo "/proc/$FAKE_MASTER/comm"; exit 0 ;; esac
exec ${REAL_GREP} "$@"
`

/** A master whose children change when it gets HUP, as nginx's workers do on a reload. */
// (From a file: the master's own arguments are read as nginx's -c, -p and -g.)
function startMaster(dir: string): ChildProcess {
  writeFileSync(join(dir, 'master.sh'), "trap 'sleep 30 &' HUP; sleep 300 & while :; do wait; done\n")
  const m = spawn('sh', [join(dir, 'master.sh')], { stdio: 'ignore' })
  masters.push(m)
  return m
}

function fakeHost(allowed: (conf: string, log: string, nginx: string) => string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'nr-sudo-'))
  dirs.push(dir)
  for (const d of ['bin', 'conf.d', 'log']) mkdirSync(join(dir, d))
  const install = (name: string, text: string) => {
    writeFileSync(join(dir, 'bin', name), text)
    chmodSync(join(dir, 'bin', name), 0o755)
  }
  install('sudo', FAKE_SUDO)
  install('nginx', FAKE_NGINX)
  install('grep', FAKE_GREP)
  const nginx = join(dir, 'bin', 'nginx')
  const conf = join(dir, 'conf.d', 'shop.conf')
  const log = join(dir, 'log', 'nginx-rollout-shop.log')
  writeFileSync(join(dir, 'allow'), allowed(conf, log, nginx).join('\n') + '\n')
  const master = startMaster(dir)
  const run = (c: Command, env: Record<string, string> = {}) => {
    const r = spawnSync('sh', ['-c', renderRemote(c, 30)], {
      cwd: dir,
      env: {
        ...process.env,
        PATH: `${dir}/bin:${process.env.PATH}`,
        FAKE_SUDO_LOG: join(dir, 'sudo.log'),
        FAKE_SUDO_ALLOW: join(dir, 'allow'),
        FAKE_MASTER: String(master.pid),
        FAKE_CONF_DIR: join(dir, 'conf.d'),
        ...env,
      },
      input: c.stdin ?? '',
      encoding: 'utf8',
    })
    return { code: r.status, stdout: r.stdout, stderr: r.stderr }
  }
  const sudoLog = () => {
    try {
      return readFileSync(join(dir, 'sudo.log'), 'utf8').trim().split('\n')
    } catch {
      return []
    }
  }
  return { dir, nginx, conf, log, master, run, sudoLog }
}

/** The app's switch-back flag beside its traffic log, as LIMITS.switchBackFlagPath has them. */
const flagOf = (log: string) => log.replace(/\.log$/, '.switched-back')

/** The eight command lines of sudoCommands(), as this machine's paths spell them. */
const everyCommand = (conf: string, log: string, nginx: string) =>
  sudoCommands(conf, log, flagOf(log), nginx).map((c) =>
    c.replace('/usr/bin/tee', TEE).replace('/usr/bin/rm', RM).replace('/usr/bin/truncate', TRUNCATE),
  )

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

describe('sudoCommands', () => {
  it('pins every privileged command to the one managed file and the one traffic log', () => {
    expect(
      sudoCommands(
        '/etc/nginx/conf.d/shop.conf',
        '/var/log/nginx/nginx-rollout-shop.log',
        '/var/log/nginx/nginx-rollout-shop.switched-back',
      ),
    ).toEqual([
      '/usr/sbin/nginx -T',
      '/usr/sbin/nginx -t',
      '/usr/sbin/nginx -s reload',
      '/usr/bin/tee /etc/nginx/conf.d/shop.conf',
      '/usr/bin/rm -f /etc/nginx/conf.d/shop.conf',
      '/usr/bin/truncate -s 0 /var/log/nginx/nginx-rollout-shop.log',
      '/usr/bin/truncate -s 0 /var/log/nginx/nginx-rollout-shop.switched-back',
      '/usr/bin/rm -f /var/log/nginx/nginx-rollout-shop.switched-back',
    ])
  })
})

describe('the apply script through sudo', () => {
  const apply = (h: ReturnType<typeof fakeHost>, previous: string | undefined, next: string | undefined) => {
    if (previous !== undefined) writeFileSync(h.conf, previous)
    const c = applyManagedFile(
      hostPlace('yes'),
      h.conf,
      previous === undefined ? 'absent' : sha256(previous),
      h.master.pid!,
      next === undefined ? 'remove' : 'write',
      [],
      '',
    )
    return next === undefined ? c : withStdin(c, next, 'managed file')
  }

  it('writes the file with sudo tee, checks it with sudo nginx -t and reloads with sudo nginx -s reload', () => {
    const h = fakeHost(everyCommand)
    const r = h.run(apply(h, '# v1\n', '# v2\n'))
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(readFileSync(h.conf, 'utf8')).toBe('# v2\n')
    expect(h.sudoLog()).toEqual([`-n ${TEE} ${h.conf}`, `-n ${h.nginx} -t`, `-n ${h.nginx} -s reload`])
    // Nothing of the run's was left beside nginx's files.
    expect(readdirSync(join(h.dir, 'conf.d'))).toEqual(['shop.conf'])
  })

  it('removes the file with sudo rm -f', () => {
    const h = fakeHost(everyCommand)
    const r = h.run(apply(h, '# v1\n', undefined))
    expect(r.code).toBe(0)
    expect(readdirSync(join(h.dir, 'conf.d'))).toEqual([])
    expect(h.sudoLog()).toEqual([`-n ${RM} -f ${h.conf}`, `-n ${h.nginx} -t`, `-n ${h.nginx} -s reload`])
  })

  it('puts the previous file back with sudo tee when nginx -t rejects the new one, and reloads nothing', () => {
    const h = fakeHost(everyCommand)
    const r = h.run(apply(h, '# v1\n', '# broken\n'), { FAKE_NGINX_T_FAILS: '1' })
    expect(r.code).toBe(11)
    expect(r.stderr).toContain('unknown directive "oops"')
    expect(readFileSync(h.conf, 'utf8')).toBe('# v1\n')
    expect(h.sudoLog()).toEqual([`-n ${TEE} ${h.conf}`, `-n ${h.nginx} -t`, `-n ${TEE} ${h.conf}`])
  })

  it('takes the first file away with sudo rm -f when nginx -t rejects it', () => {
    const h = fakeHost(everyCommand)
    const r = h.run(apply(h, undefined, '# broken\n'), { FAKE_NGINX_T_FAILS: '1' })
    expect(r.code).toBe(11)
    expect(readdirSync(join(h.dir, 'conf.d'))).toEqual([])
    expect(h.sudoLog()).toEqual([`-n ${TEE} ${h.conf}`, `-n ${h.nginx} -t`, `-n ${RM} -f ${h.conf}`])
  })

  it('changes nothing when sudo refuses to write the file', () => {
    const h = fakeHost((conf, log, nginx) => everyCommand(conf, log, nginx).filter((c) => !c.startsWith(TEE)))
    const r = h.run(apply(h, '# v1\n', '# v2\n'))
    expect(r.code).toBe(72)
    expect(readFileSync(h.conf, 'utf8')).toBe('# v1\n')
  })
})

describe('following the traffic log through sudo', () => {
  it('starts the log empty with sudo truncate -s 0, then reads it as the user', async () => {
    const h = fakeHost(everyCommand)
    writeFileSync(h.log, 'an old request\n')
    const c = followTrafficLog(hostPlace('yes'), h.log, 1 << 20, 50, 30)
    const child = spawn('sh', ['-c', renderRemote(c, 30)], {
      env: {
        ...process.env,
        PATH: `${h.dir}/bin:${process.env.PATH}`,
        FAKE_SUDO_LOG: join(h.dir, 'sudo.log'),
        FAKE_SUDO_ALLOW: join(h.dir, 'allow'),
      },
    })
    let out = ''
    let emptied: () => void = () => undefined
    const followed = new Promise<void>((r) => (emptied = r))
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.startsWith(`${RECORD_FOLLOWED}\n`)) emptied()
    })
    // Once the follow says so, the old request is gone and nothing written after is missed.
    await followed
    expect(readFileSync(h.log, 'utf8')).toBe('')
    writeFileSync(h.log, 'a new request\n', { flag: 'a' })
    await new Promise((r) => setTimeout(r, 400))
    child.stdin.end()
    const code = await new Promise((r) => child.on('exit', r))
    expect(code).toBe(0)
    expect(out).toBe(`${RECORD_FOLLOWED}\na new request\n`)
    expect(h.sudoLog()).toEqual([`-n ${TRUNCATE} -s 0 ${h.log}`])
  })
})

describe('reading nginx through sudo', () => {
  const read = (h: ReturnType<typeof fakeHost>) => {
    const config = configFrom({ 'nginx-mode': 'host', sudo: 'true', 'nginx-config-path': h.conf })
    const r = h.run(readNginx(hostPlace('yes'), 'loadbalancer', h.conf, h.log, flagOf(h.log)))
    expect(r.code).toBe(0)
    return parseNginx(config, parseSections(Buffer.from(r.stdout)), 'vps.example.com')
  }

  it('asks sudo about every privileged command before running any, and finds no problem when all are allowed', () => {
    const h = fakeHost(everyCommand)
    const state = read(h)
    expect(state.problems).toEqual([])
    expect(state.masterPid).toBe(h.master.pid)
    expect(h.sudoLog()).toEqual([...everyCommand(h.conf, h.log, h.nginx).map((c) => `-n -l ${c}`), `-n ${h.nginx} -T`])
  })

  it('names each command sudo refuses and the sudoers line that allows them all', () => {
    const h = fakeHost((conf, log, nginx) => everyCommand(conf, log, nginx).slice(0, 3))
    const user = spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim()
    const state = read(h)
    expect(state.problems).toEqual([
      `sudo: nginx-rollout runs nginx's privileged commands on vps.example.com through sudo -n as ${user} (input sudo: true), ` +
        `and sudo does not allow \`${TEE} ${h.conf}\`, \`${RM} -f ${h.conf}\`, \`${TRUNCATE} -s 0 ${h.log}\`, ` +
        `\`${TRUNCATE} -s 0 ${flagOf(h.log)}\`, \`${RM} -f ${flagOf(h.log)}\`. Nothing was changed. ` +
        'Allow exactly these commands, e.g. in /etc/sudoers.d/nginx-rollout (edit it with visudo -f):\n' +
        `${user} ALL=(root) NOPASSWD: ${everyCommand(h.conf, h.log, h.nginx).join(', ')}`,
    ])
    // Only questions were asked of sudo, and nginx -T (allowed): nothing was run that changes anything.
    expect(h.sudoLog().filter((l) => !l.startsWith('-n -l '))).toEqual([`-n ${h.nginx} -T`])
  })

  it('says so, and not that nginx -T failed, when sudo allows nothing', () => {
    const h = fakeHost(() => [])
    const [problem, ...others] = read(h).problems
    expect(others).toEqual([])
    expect(problem).toContain(`sudo does not allow \`${h.nginx} -T\`, \`${h.nginx} -t\`, \`${h.nginx} -s reload\``)
  })
})

describe('nginx-mode auto', () => {
  const config = configFrom({})
  const frame = (name: string, out = '', code = 0, err = ''): string =>
    `\n@@nginx-rollout ${name} ${code} ${Buffer.byteLength(out)} ${Buffer.byteLength(err)}\n${out}${err}`
  const container = (exists: boolean) =>
    exists
      ? frame('container', 'true host\n') + frame('masters', '7') + frame('managed', 'absent\n')
      : frame('container', '', 1, 'Error: No such object: loadbalancer\n')
  const host = (masters: string) => frame('masters', masters) + frame('managed', 'absent\n')
  const read = (inContainer: string, onHost: string) =>
    parseNginx(config, parseSections(Buffer.from(frame('as-container', inContainer) + frame('as-host', onHost))), 'vps')

  it("keeps the nginx container when it exists, even beside the host's nginx", () => {
    const s = read(container(true), host('812'))
    expect(s.mode).toBe('container')
    expect(s.modeReason).toBe('the nginx container loadbalancer, which exists on vps')
  })

  it("uses the host's nginx when no container exists", () => {
    const s = read(container(false), host('812'))
    expect(s.mode).toBe('host')
    expect(s.modeReason).toBe(
      'the nginx installed on vps (master process 812), as no container loadbalancer exists there',
    )
  })

  it('creates a container when neither exists', () => {
    const s = read(container(false), host(''))
    expect(s.mode).toBe('container')
    expect(s.exists).toBe(false)
    expect(s.problems).toEqual([])
    expect(s.modeReason).toBe(
      'a new nginx container loadbalancer, as no nginx runs on vps and no such container exists there',
    )
  })
})

// The canary's traffic log is where the sudoers line pins it.
it('pins the traffic log and switch-back flag paths the sudoers line names', () => {
  expect(LIMITS.canaryLogPath('shop')).toBe('/var/log/nginx/nginx-rollout-shop.log')
  expect(LIMITS.switchBackFlagPath('shop')).toBe('/var/log/nginx/nginx-rollout-shop.switched-back')
})

// The test hosts give their deploy users the docs' lines, word for word: what the tests pass with is what a
// user is told to write.
it("gives the test hosts' deploy users exactly docs/vps.md's sudoers lines", () => {
  const root = fileURLToPath(new URL('../../', import.meta.url))
  const docs = readFileSync(join(root, 'docs/vps.md'), 'utf8')
  const block = /For an app `shop` and user `deploy`[^\n]*\n\n```\n([\s\S]*?)```/.exec(docs)?.[1]
  expect(block).toBeDefined()
  const made = execFileSync('bash', ['-c', '. scripts/testhost/deploy-user.sh && nginx_rollout_sudoers deploy shop'], {
    cwd: root,
    encoding: 'utf8',
  })
  expect(made).toBe(block)
  // Every line sudo must allow for the app, as the action asks for it: nothing more, nothing less.
  const allowed = made
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => l.replace(/^deploy ALL=\(root\) NOPASSWD: /, '').split(', '))
  expect(allowed.sort()).toEqual(
    sudoCommands(
      '/etc/nginx/conf.d/shop.conf',
      '/var/log/nginx/nginx-rollout-shop.log',
      LIMITS.switchBackFlagPath('shop'),
    ).sort(),
  )
})
