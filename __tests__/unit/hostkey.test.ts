import { createHmac, randomBytes } from 'node:crypto'
import { fingerprintOf, knownHostsName, verifyHostKey } from '../../src/remote/hostkey.js'

const key = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIIwLQdGcQKR3Fth3kuzzgyGhMfzfOIWenY/oQzCBNgq5', 'base64')
const other = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOtherKeyOtherKeyOtherKeyOtherKey0', 'base64')
const policy = (p: Partial<{ fingerprints: string[]; knownHosts: string; insecureSkip: boolean }>) => ({
  fingerprints: [],
  knownHosts: '',
  insecureSkip: false,
  ...p,
})
const hashed = (name: string) => {
  const salt = randomBytes(20)
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`
}

describe('host key verification', () => {
  it('prints fingerprints as ssh-keygen -lf does', () => {
    expect(fingerprintOf(key)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
  })

  it('accepts any of several fingerprints (key rotation) and shows what the host presented otherwise', () => {
    expect(verifyHostKey(policy({ fingerprints: [fingerprintOf(other), fingerprintOf(key)] }), 'h', 22, key).ok).toBe(
      true,
    )
    const v = verifyHostKey(policy({ fingerprints: [fingerprintOf(other)] }), 'h', 22, key)
    expect(v).toEqual({ ok: false, presented: fingerprintOf(key), reason: `expected ${fingerprintOf(other)}` })
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
      reason: 'known-hosts has no entry for [127.0.0.1]:2222',
    })
  })

  it('rejects a key marked @revoked and a different key for a known host', () => {
    const b64 = key.toString('base64')
    expect(
      verifyHostKey(policy({ knownHosts: `@revoked * ssh-ed25519 ${b64}\nh ssh-ed25519 ${b64}` }), 'h', 22, key).ok,
    ).toBe(false)
    expect(verifyHostKey(policy({ knownHosts: `h ssh-ed25519 ${other.toString('base64')}` }), 'h', 22, key).ok).toBe(
      false,
    )
  })

  it('skips the check only when told to and nothing else is configured', () => {
    expect(verifyHostKey(policy({ insecureSkip: true }), 'h', 22, key).ok).toBe(true)
    expect(verifyHostKey(policy({ insecureSkip: true, fingerprints: [fingerprintOf(other)] }), 'h', 22, key).ok).toBe(
      false,
    )
    expect(verifyHostKey(policy({}), 'h', 22, key).ok).toBe(false)
  })
})
