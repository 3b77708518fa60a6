// Host identity: the key the server presents must match a fingerprint bound to that host or a known_hosts
// entry naming it, checked before authentication (ssh2 calls the verifier during key exchange).
import { createHash, createHmac } from 'node:crypto'
import type { HostKeyPolicy } from '../config.js'

/** 'SHA256:...' as `ssh-keygen -lf` prints it (base64 without padding). */
export const fingerprintOf = (key: Buffer): string =>
  `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`

/** The name known_hosts uses for a host: `host`, or `[host]:port` off port 22. */
export const knownHostsName = (host: string, port: number): string => (port === 22 ? host : `[${host}]:${port}`)

const globToRegExp = (pattern: string): RegExp =>
  new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replaceAll('*', '.*')
      .replaceAll('?', '.')}$`,
    'i',
  )

function hostMatches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|')
    if (!salt || !hash) return false
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash
  }
  let matched = false
  for (const p of patterns.split(',')) {
    if (p.startsWith('!')) {
      if (globToRegExp(p.slice(1)).test(name)) return false
    } else if (globToRegExp(p).test(name)) matched = true
  }
  return matched
}

export interface KnownKey {
  readonly key: Buffer
  readonly revoked: boolean
}

/** The keys known_hosts lists for this host (certificate authorities are not supported and are skipped). */
export function knownKeysFor(knownHosts: string, host: string, port: number): KnownKey[] {
  const name = knownHostsName(host, port)
  const keys: KnownKey[] = []
  for (const raw of knownHosts.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const fields = line.split(/\s+/)
    const marker = fields[0].startsWith('@') ? fields.shift() : undefined
    if (marker === '@cert-authority' || fields.length < 3) continue
    if (hostMatches(fields[0], name))
      keys.push({ key: Buffer.from(fields[2], 'base64'), revoked: marker === '@revoked' })
  }
  return keys
}

/** The name a fingerprint is bound to for this host: its known_hosts name, in lower case (host names ignore case). */
export const boundName = (host: string, port: number): string => knownHostsName(host, port).toLowerCase()

/** The fingerprints given for this host: only those bound to its name, never another host's. */
const fingerprintsFor = (policy: HostKeyPolicy, host: string, port: number): string[] => {
  const name = boundName(host, port)
  return policy.fingerprints.filter((f) => f.host === name).map((f) => f.fingerprint)
}

/** The fingerprints this host's key may have: those bound to it and its known_hosts keys not @revoked. */
export const expectedFingerprints = (policy: HostKeyPolicy, host: string, port: number): string[] => [
  ...fingerprintsFor(policy, host, port),
  ...knownKeysFor(policy.knownHosts, host, port)
    .filter((k) => !k.revoked)
    .map((k) => fingerprintOf(k.key)),
]

export type HostKeyVerdict =
  | { readonly ok: true; readonly presented: string; readonly unchecked?: true }
  | { readonly ok: false; readonly presented: string; readonly reason: string }

/**
 * Accepts the key only if a fingerprint bound to this host, or a known_hosts entry naming it, matches: a key
 * given for one host is refused from every other, so a host (or whoever answers at its address) cannot pass
 * with another's identity.
 */
export function verifyHostKey(policy: HostKeyPolicy, host: string, port: number, key: Buffer): HostKeyVerdict {
  const presented = fingerprintOf(key)
  const known = knownKeysFor(policy.knownHosts, host, port)
  if (known.some((k) => k.revoked && k.key.equals(key)))
    return { ok: false, presented, reason: 'known-hosts marks this key @revoked' }
  const expected = expectedFingerprints(policy, host, port)
  if (expected.includes(presented)) return { ok: true, presented }
  // Skipping is per host: one that anything names is always checked, even with insecure-skip-host-key-check.
  if (policy.insecureSkip && !expected.length && !known.length) return { ok: true, presented, unchecked: true }
  const name = knownHostsName(host, port)
  if (!expected.length)
    return {
      ok: false,
      presented,
      reason: known.length
        ? `known-hosts lists only @revoked keys for ${name}`
        : `no fingerprint and no known-hosts entry names ${name}`,
    }
  // Say whose key it is when it was given for another host: swapped lines, or a host answering at another's address.
  const owners = [...new Set(policy.fingerprints.filter((f) => f.fingerprint === presented).map((f) => f.host))]
  const whose = owners.length ? ` (the key presented is the one given for ${owners.join(', ')})` : ''
  return { ok: false, presented, reason: `expected ${[...new Set(expected)].join(' or ')}${whose}` }
}
