// Container changes fenced on the host: a stop, removal, start or retirement runs only while the file the
// host checks (the lock's token on the nginx host, the run's lease on another app host) holds this run's
// token. The scripts run here under sh, with a docker that records what it was asked.
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { removeContainers, retireContainers, stopContainers } from '../../src/commands/docker.js'
import { render, type Command } from '../../src/commands/shell.js'
import { readHosts, retireDir } from '../../src/host/read.js'
import { containerFence, fenced, leasePath, writeLease, type LockClaim } from '../../src/remote/lock.js'
import { fakeFleet, FakeRemote, THREE_HOSTS } from './fakes.js'
import { configFrom } from './fixtures.js'

const claim: LockClaim = { app: 'shop', dir: '.nginx-rollout/shop/lock', token: '0123456789abcdef01234567', owner: 'o' }
const ID = 'a'.repeat(64)

const homes: string[] = []
afterAll(() => homes.forEach((d) => rmSync(d, { recursive: true, force: true })))

/** A home for the ssh user with a docker on PATH that appends its arguments to docker.log. */
function host(): { home: string; run: (c: Command) => ReturnType<typeof spawnSync>; dockerLog: () => string } {
  const home = mkdtempSync(join(tmpdir(), 'nr-fence-'))
  homes.push(home)
  mkdirSync(join(home, 'bin'))
  writeFileSync(join(home, 'bin/docker'), `#!/bin/sh\necho "$*" >>"${home}/docker.log"\n`)
  chmodSync(join(home, 'bin/docker'), 0o755)
  return {
    home,
    run: (c) =>
      spawnSync('sh', ['-c', render(c)], {
        cwd: home,
        encoding: 'utf8',
        env: { ...process.env, PATH: `${home}/bin:${process.env.PATH}` },
      }),
    dockerLog: () => (existsSync(join(home, 'docker.log')) ? readFileSync(join(home, 'docker.log'), 'utf8') : ''),
  }
}

const lockTo = (home: string, token: string) => {
  mkdirSync(join(home, claim.dir), { recursive: true })
  writeFileSync(join(home, claim.dir, 'token'), `${token}\n`)
}

describe('fenced', () => {
  it('renders a stop that the host runs only while the lock holds this run token', () => {
    expect(render(fenced(containerFence(claim, true), stopContainers([ID], 10)))).toBe(
      `sh -c '# fenced: only while this run holds the deploy lock
[ "$(cat "$1" 2>/dev/null)" = "$2" ] || {
  echo '\\''this run no longer holds the deploy lock of the app (another run took it over): nothing was changed on this host'\\'' >&2
  exit 75
}
shift 2
exec "$@"' sh .nginx-rollout/shop/lock/token 0123456789abcdef01234567 docker stop --time 10 -- ${ID}`,
    )
    // The command keeps its deadline and its standard input.
    expect(fenced(containerFence(claim, true), stopContainers([ID], 10)).timeoutSeconds).toBe(70)
    expect(containerFence(claim, false)).toEqual({ file: '.nginx-rollout/shop/lease', token: claim.token })
  })

  it('stops while the lock is this run, and refuses with exit 75 once another run holds it or none does', () => {
    const h = host()
    const stop = fenced(containerFence(claim, true), stopContainers([ID], 10))
    lockTo(h.home, claim.token)
    expect(h.run(stop).status).toBe(0)
    expect(h.dockerLog()).toBe(`stop --time 10 -- ${ID}\n`)
    lockTo(h.home, 'ffffffffffffffffffffffff')
    const refused = h.run(stop)
    expect({ status: refused.status, stderr: refused.stderr }).toEqual({
      status: 75,
      stderr:
        'this run no longer holds the deploy lock of the app (another run took it over): nothing was changed on this host\n',
    })
    rmSync(join(h.home, claim.dir), { recursive: true })
    expect(h.run(fenced(containerFence(claim, true), removeContainers([ID]))).status).toBe(75)
    expect(h.dockerLog()).toBe(`stop --time 10 -- ${ID}\n`)
  })

  it('on another app host, follows the lease: a later run writing its own refuses the earlier one', () => {
    const h = host()
    const stop = fenced(containerFence(claim, false), stopContainers([ID], 10))
    expect(h.run(stop).status).toBe(75) // no lease yet: this run has not read the host
    expect(h.run(writeLease(claim)).status).toBe(0)
    expect(readFileSync(join(h.home, leasePath('shop')), 'utf8')).toBe(`${claim.token}\n`)
    expect(h.run(stop).status).toBe(0)
    expect(h.run(writeLease({ ...claim, token: 'ffffffffffffffffffffffff' })).status).toBe(0)
    expect(h.run(stop).status).toBe(75)
    expect(h.dockerLog()).toBe(`stop --time 10 -- ${ID}\n`)
  })

  it('lets a retirement start only under the lock; once started, it stops and removes after the lock moved on', async () => {
    const h = host()
    const retire = fenced(containerFence(claim, true), retireContainers(retireDir('shop'), [ID], 3))
    lockTo(h.home, 'ffffffffffffffffffffffff')
    expect(h.run(retire).status).toBe(75)
    lockTo(h.home, claim.token)
    expect(h.run(retire).status).toBe(0)
    // The lock moves on (or is released) while the detached stop runs: it finishes what it started.
    lockTo(h.home, 'ffffffffffffffffffffffff')
    const deadline = Date.now() + 5000
    while (!h.dockerLog().includes('rm ') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(h.dockerLog()).toBe(`stop --time 3 -- ${ID}\nrm --force --volumes -- ${ID}\n`)
  })
})

describe('the lease, written when an app host is read under the lock', () => {
  const config = configFrom({ ...THREE_HOSTS })
  const frame = (name: string) => `\n@@nginx-rollout ${name} 0 0 0\n`
  const remote = (name: string, sections: string[]) =>
    new FakeRemote(name, [[/nr_t=\$\(mktemp -d\)/, { stdout: sections.map(frame).join('') }]])

  it.each([
    ['with a claim, before the containers are listed', claim, ['lease', 'containers']],
    ['not without one (a status or a dry run)', undefined, ['containers']],
  ] as const)('%s', async (_, given, parts) => {
    const lb = remote('lb', ['first', 'history', 'canary', 'nginx'])
    const apps = {
      a: remote('a', ['lease', 'containers', 'retired']),
      b: remote('b', ['lease', 'containers', 'retired']),
      c: remote('c', ['lease', 'containers', 'retired']),
    }
    await readHosts(fakeFleet(config, lb, apps), config, given, () => {})
    for (const r of Object.values(apps)) {
      const argv = r.commands[0].argv
      expect(argv.filter((a) => a === 'lease' || a === 'containers')).toEqual(parts)
      if (given) expect(argv[argv.indexOf('lease') + 1]).toBe(render(writeLease(claim)))
    }
    // The nginx host checks the lock itself: no lease there.
    expect(lb.commands[0].argv).not.toContain('lease')
  })
})
