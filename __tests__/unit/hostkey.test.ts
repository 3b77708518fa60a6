import { createHmac, randomBytes } from 'node:crypto'
import type { HostKeyPolicy } from '../../src/config.js'
import { fingerprintOf, knownHostsName, verifyHostKey } from '../../src/remote/hostkey.js'

const key = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIIwLQdGcQKR3Fth3kuzzgyGhMfzfOIWenY/oQzCBNgq5', 'base64')
const other = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOtherKeyOtherKeyOtherKeyOtherKey0', 'base64')
const policy = (p: Partial<HostKeyPolicy>): HostKeyPolicy => ({
  fingerprints: [],
  knownHosts: '',
  insecureSkip: false,
  ...p,
})
/** A fingerprint of `k` bound to the host known_hosts calls `host`. */
const bound = (host: string, k: Buffer) => ({ host, fingerprint: fingerprintOf(k) })
const hashed = (name: string) => {
  const salt = randomBytes(20)
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`
}

describe('host key verification', () => {
  it('prints fingerprints as ssh-keygen -lf does', () => {
    expect(fingerprintOf(key)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
  })

  it("accepts any of the host's several fingerprints (key rotation) and shows what the host presented otherwise", () => {
    expect(verifyHostKey(policy({ fingerprints: [bound('h', other), bound('h', key)] }), 'h', 22, key).ok).toBe(true)
    const v = verifyHostKey(policy({ fingerprints: [bound('h', other)] }), 'h', 22, key)
    expect(v).toEqual({ ok: false, presented: fingerprintOf(key), reason: `expected ${fingerprintOf(other)}` })
  })

  it('refuses a key given for host A when host B presents it, naming what B was expected to present', () => {
    const swapped = policy({ fingerprints: [bound('app1', other), bound('app2', key)] })
    expect(verifyHostKey(swapped, 'app2', 22, key).ok).toBe(true)
    expect(verifyHostKey(swapped, 'app1', 22, key)).toEqual({
      ok: false,
      presented: fingerprintOf(key),
      reason: `expected ${fingerprintOf(other)} (the key presented is the one given for app2)`,
    })
    // A host with no fingerprint of its own is refused even when its key is listed for another.
    expect(verifyHostKey(swapped, 'app3', 22, key)).toEqual({
      ok: false,
      presented: fingerprintOf(key),
      reason: 'no fingerprint and no known-hosts entry names app3',
    })
  })

  it('binds by the known_hosts name: [host]:port off port 22, host names in any case', () => {
    const onPort = policy({ fingerprints: [bound('[10.0.0.5]:2222', key)] })
    expect(verifyHostKey(onPort, '10.0.0.5', 2222, key).ok).toBe(true)
    expect(verifyHostKey(onPort, '10.0.0.5', 22, key).ok).toBe(false)
    expect(verifyHostKey(onPort, '10.0.0.5', 2223, key).ok).toBe(false)
    expect(
      verifyHostKey(policy({ fingerprints: [bound('deploy.example.com', key)] }), 'Deploy.Example.com', 22, key).ok,
    ).toBe(true)
    expect(verifyHostKey(policy({ fingerprints: [bound('[::1]:2200', key)] }), '::1', 2200, key).ok).toBe(true)
  })

  it('matches plain, patterned, hashed and non-22 known_hosts entries', () => {
    const b64 = key.toString('base64')
    expect(
      verifyHostKey(
        policy({ knownHosts: `deploy.example.com,10.0.0.5 ssh-ed25519 ${b64}` }),
        'deploy.example.com',
        22,
        key,
      ).ok,
    ).toBe(true)
    expect(
      verifyHostKey(policy({ knownHosts: `*.example.com ssh-ed25519 ${b64}` }), 'deploy.example.com', 22, key).ok,
    ).toBe(true)
    expect(
      verifyHostKey(
        policy({ knownHosts: `${hashed('deploy.example.com')} ssh-ed25519 ${b64}` }),
        'deploy.example.com',
        22,
        key,
      ).ok,
    ).toBe(true)
    expect(
      verifyHostKey(policy({ knownHosts: `${hashed('[127.0.0.1]:2222')} ssh-ed25519 ${b64}` }), '127.0.0.1', 2222, key)
        .ok,
    ).toBe(true)
    expect(knownHostsName('127.0.0.1', 2222)).toBe('[127.0.0.1]:2222')
    const wrongPort = verifyHostKey(policy({ knownHosts: `127.0.0.1 ssh-ed25519 ${b64}` }), '127.0.0.1', 2222, key)
    expect(wrongPort).toEqual({
      ok: false,
      presented: fingerprintOf(key),
      reason: 'no fingerprint and no known-hosts entry names [127.0.0.1]:2222',
    })
  })

  it('rejects a key marked @revoked and a different key for a known host', () => {
    const b64 = key.toString('base64')
    expect(
      verifyHostKey(policy({ knownHosts: `@revoked * ssh-ed25519 ${b64}\nh ssh-ed25519 ${b64}` }), 'h', 22, key).ok,
    ).toBe(false)
    expect(
      verifyHostKey(
        policy({ knownHosts: `@revoked * ssh-ed25519 ${b64}`, fingerprints: [bound('h', key)] }),
        'h',
        22,
        key,
      ).ok,
    ).toBe(false)
    expect(verifyHostKey(policy({ knownHosts: `h ssh-ed25519 ${other.toString('base64')}` }), 'h', 22, key).ok).toBe(
      false,
    )
  })

  it('skips the check only when told to, and only for a host nothing names', () => {
    expect(verifyHostKey(policy({ insecureSkip: true }), 'h', 22, key)).toEqual({
      ok: true,
      presented: fingerprintOf(key),
      unchecked: true,
    })
    expect(verifyHostKey(policy({ insecureSkip: true, fingerprints: [bound('h', other)] }), 'h', 22, key).ok).toBe(
      false,
    )
    expect(
      verifyHostKey(
        policy({ insecureSkip: true, knownHosts: `@revoked h ssh-ed25519 ${other.toString('base64')}` }),
        'h',
        22,
        key,
      ).ok,
    ).toBe(false)
    expect(verifyHostKey(policy({ insecureSkip: true, fingerprints: [bound('g', other)] }), 'h', 22, key).ok).toBe(true)
    expect(verifyHostKey(policy({}), 'h', 22, key).ok).toBe(false)
  })
})
