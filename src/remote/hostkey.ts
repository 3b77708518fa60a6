// Host identity: the key the server presents must match a configured fingerprint or known_hosts entry,
// checked before authentication (ssh2 calls the verifier during key exchange).
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

export type HostKeyVerdict =
  | { readonly ok: true; readonly presented: string }
  | { readonly ok: false; readonly presented: string; readonly reason: string }

export function verifyHostKey(policy: HostKeyPolicy, host: string, port: number, key: Buffer): HostKeyVerdict {
  const presented = fingerprintOf(key)
  const known = knownKeysFor(policy.knownHosts, host, port)
  if (known.some((k) => k.revoked && k.key.equals(key)))
    return { ok: false, presented, reason: 'known-hosts marks this key @revoked' }
  if (policy.fingerprints.includes(presented) || known.some((k) => !k.revoked && k.key.equals(key)))
    return { ok: true, presented }
  if (policy.insecureSkip && !policy.fingerprints.length && !policy.knownHosts) return { ok: true, presented }
  const expected = [...policy.fingerprints, ...known.filter((k) => !k.revoked).map((k) => fingerprintOf(k.key))]
  return {
    ok: false,
    presented,
    reason: expected.length
      ? `expected ${expected.join(' or ')}`
      : `known-hosts has no entry for ${knownHostsName(host, port)}`,
  }
}
