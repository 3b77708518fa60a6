// The mistakes a newcomer makes, each answered with a message that names the input, what was expected, what
// arrived (never a secret's text) and the fix: through the one input reader where the mistake is in an input,
// through the SSH and health-gate messages where it shows only on the host.
import type { Config } from '../../src/config.js'
import { gate, type ReplicaPort } from '../../src/health/gate.js'
import { InputError, readConfig, type InputName } from '../../src/inputs.js'
import { fingerprintLineHint, imageCaseProblem, privateKeyProblem, sshAddressHint } from '../../src/inputs/hints.js'
import type { Replica } from '../../src/model.js'
import type { HttpResult } from '../../src/remote/ssh.js'
import { sshFailureFix, type SshAttempt } from '../../src/remote/ssh-messages.js'
import { IMAGE } from '../../src/rules.js'

// The shape of a real key, with a body that is no key: the reader checks the shape, ssh the rest.
const BODY = [
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
  'QyNTUxOQAAACDbodyofakekeytextfortestsonlyAAAA',
]
const KEY = ['-----BEGIN OPENSSH PRIVATE KEY-----', ...BODY, '-----END OPENSSH PRIVATE KEY-----'].join('\n')
const FP = 'SHA256:qYyfMtF7kiLUyZGo4r7iQdVZSXo7CgYZmzg5L2nDLxo'
const PUB = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIwLQdGcQKR3Fth3kuzzgyGhMfzfOIWenY/oQzCBNgq5'
const base: Partial<Record<InputName, string>> = {
  host: 'deploy.example.com',
  username: 'deploy',
  key: KEY,
  fingerprint: FP,
  app: 'shop',
  image: 'ghcr.io/acme/shop:1.4.2',
}
const problemsOf = (overrides: Partial<Record<InputName, string>>): string[] => {
  try {
    readConfig({ get: (name) => ({ ...base, ...overrides })[name] ?? '', readWorkspaceFile: () => '' })
  } catch (e) {
    if (e instanceof InputError) return [...e.problems]
    throw e
  }
  return []
}
const STORE =
  'store the whole key file, from its -----BEGIN line to its -----END line, as a multi-line secret with its newlines kept (gh secret set DEPLOY_KEY <deploy_key, or paste it, line breaks and all, into the secret on GitHub)'

describe('a private key', () => {
  it('takes the key file as ssh-keygen writes it, with CRLF line ends too', () => {
    expect(problemsOf({})).toEqual([])
    expect(problemsOf({ key: KEY.replaceAll('\n', '\r\n') + '\r\n' })).toEqual([])
  })

  it.each([
    [
      'pasted on one line, joined by spaces',
      KEY.replaceAll('\n', ' '),
      'one line',
      'its newlines lost, the key joined on the BEGIN or END line',
    ],
    [
      'with its newlines written out as \\n',
      KEY.replaceAll('\n', '\\n'),
      'one line',
      'its newlines written out as \\n',
    ],
    [
      'with its body on the BEGIN line',
      KEY.replace('-----\n', '----- '),
      '3 lines',
      'its newlines lost, the key joined on the BEGIN or END line',
    ],
    [
      'cut short, without its END line',
      KEY.split('\n').slice(0, 2).join('\n'),
      '2 lines',
      'no -----END ... PRIVATE KEY----- line: cut short',
    ],
  ])('%s: says it must be the multi-line text, and how to store it', (_what, key, got, how) => {
    expect(problemsOf({ key })).toEqual([
      `key: expected the private key's multi-line text, got ${got} of ${key.trim().length} characters (${how}): ${STORE}`,
    ])
  })

  it('given the public key: says where that one goes', () => {
    expect(problemsOf({ key: `${PUB} deploy@laptop` })).toEqual([
      `key: expected a private key, got a public key (ssh-ed25519 AAAA..., the line of a .pub file): the public key goes in ~/.ssh/authorized_keys of the user on the server; give the private key (the same file without .pub): ${STORE}`,
    ])
  })

  it('a PuTTY key: says how to convert it', () => {
    expect(privateKeyProblem('key', 'PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n')).toBe(
      `key: expected an OpenSSH or PEM private key, got a PuTTY key (.ppk): convert it with 'puttygen key.ppk -O private-openssh -o deploy_key', then ${STORE}`,
    )
  })

  it('never quotes the key, in any of these messages', () => {
    const secretLine = BODY[0]
    const texts = [
      KEY.replaceAll('\n', ' '),
      KEY.replaceAll('\n', '\\n'),
      KEY.split('\n').slice(0, 2).join('\n'),
      `x${secretLine}`,
    ]
    for (const key of texts) for (const p of problemsOf({ key })) expect(p).not.toContain(secretLine.slice(0, 20))
  })
})

describe('an SSH address', () => {
  it.each([
    [
      'the user in host',
      { host: 'deploy@deploy.example.com' },
      "host: expected name, name:port or [ipv6]:port, got 'deploy@deploy.example.com': put the user in username (deploy; proxy-username for the bastion) and the host alone here (deploy.example.com)",
    ],
    [
      'ssh:// in host',
      { host: 'ssh://deploy.example.com' },
      "host: expected name, name:port or [ipv6]:port, got 'ssh://deploy.example.com': give the host without ssh:// (deploy.example.com)",
    ],
    [
      'the user in nginx-host',
      { 'nginx-host': 'root@lb.example.com' },
      "nginx-host: expected name, name:port or [ipv6]:port, got 'root@lb.example.com': put the user in username (root; proxy-username for the bastion) and the host alone here (lb.example.com)",
    ],
    [
      'a port in host and another in port',
      { host: 'deploy.example.com:2222', port: '22' },
      "host: names port 2222 ('deploy.example.com:2222') and port says 22: give the port in one place, in host (name:port) or in port",
    ],
  ])('%s: says where each part goes', (_what, overrides, message) => {
    expect(problemsOf(overrides)).toEqual([message])
  })

  it('takes the same port in host and port, and a port in host alone', () => {
    expect(
      problemsOf({ host: 'deploy.example.com:2222', port: '2222', fingerprint: `[deploy.example.com]:2222 ${FP}` }),
    ).toEqual([])
    expect(problemsOf({ host: 'deploy.example.com:2222', fingerprint: `[deploy.example.com]:2222 ${FP}` })).toEqual([])
  })

  it('gives no hint for an address that is wrong in another way', () => {
    expect(sshAddressHint('a b')).toBe('')
    expect(sshAddressHint('deploy.example.com:99999')).toBe('')
  })
})

describe('an image with capitals', () => {
  it('says Docker takes the name in lower case, and how to lower-case github.repository', () => {
    expect(problemsOf({ image: 'ghcr.io/Acme/Shop:V1.2' })).toEqual([
      `image: expected a Docker image reference, whose name Docker takes only in lower case, got 'ghcr.io/Acme/Shop:V1.2': use 'ghcr.io/acme/shop:V1.2'. For ghcr.io/\${{ github.repository }}, lower-case it first: echo "IMAGE=ghcr.io/\${GITHUB_REPOSITORY,,}:\${GITHUB_SHA}" >>"$GITHUB_ENV", then image: \${{ env.IMAGE }}`,
    ])
  })

  it('keeps the registry with its port and the tag as given, and leaves other mistakes to the plain message', () => {
    expect(imageCaseProblem('image', 'localhost:5000/MyApp:Latest', (v) => IMAGE.test(v))).toContain(
      "use 'localhost:5000/myapp:Latest'",
    )
    expect(imageCaseProblem('image', 'Shop', (v) => IMAGE.test(v))).toContain("use 'shop'")
    expect(imageCaseProblem('image', 'ghcr.io/acme/shop:1 2', (v) => IMAGE.test(v))).toBeUndefined()
    expect(problemsOf({ image: 'Shop App' })).toEqual([
      "image: expected a Docker image reference like ghcr.io/org/app:1.2.3, got 'Shop App'",
    ])
  })
})

describe('a fingerprint in another form', () => {
  it.each([
    [
      'an MD5 fingerprint',
      'MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48',
      'expected a SHA256 fingerprint, got an MD5 one',
    ],
    [
      'an MD5 fingerprint without its prefix',
      '16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48',
      'expected a SHA256 fingerprint, got an MD5 one',
    ],
    [
      'an ssh-keygen -E md5 line',
      '256 MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48 host (ED25519)',
      'expected a SHA256 fingerprint, got an MD5 one',
    ],
    ['a known_hosts line', `deploy.example.com ${PUB}`, 'expected a fingerprint, got a known_hosts line'],
    ['a public key', PUB, 'expected a fingerprint, got a public key'],
    [
      "ssh's first-connection sentence",
      `ED25519 key fingerprint is ${FP}.`,
      "expected a fingerprint, got ssh's sentence about it",
    ],
  ])('%s: names the form that works', (_what, line, start) => {
    const [problem] = problemsOf({ fingerprint: line })
    expect(problem.startsWith(`fingerprint: ${start}`)).toBe(true)
    expect(problem).toMatch(/ssh-keygen|known-hosts|deploy\.example\.com SHA256:/)
  })

  it("says to move a known_hosts line to known-hosts; gives a sentence's fingerprint back with a host", () => {
    expect(fingerprintLineHint(`deploy.example.com ${PUB}`)).toContain('put such lines in known-hosts')
    expect(fingerprintLineHint(`ED25519 key fingerprint is ${FP}.`)).toContain(`'deploy.example.com ${FP}'`)
  })

  it('leaves the forms it takes alone', () => {
    for (const line of [
      FP,
      `deploy.example.com ${FP}`,
      `256 ${FP} deploy.example.com (ED25519)`,
      `256 ${FP} root@web1 (ED25519)`,
    ])
      expect([line, fingerprintLineHint(line)]).toEqual([line, undefined])
  })
})

describe('an SSH connection that fails', () => {
  const attempt: SshAttempt = {
    username: 'deploy',
    host: 'deploy.example.com',
    port: 22,
    bastion: false,
    withKey: true,
  }

  it('a key the server does not accept: names authorized_keys of the user and how to check with ssh -i', () => {
    expect(sshFailureFix('All configured authentication methods failed', attempt)).toBe(
      'the server did not accept the key for the user deploy: expected the public key of key in ~deploy/.ssh/authorized_keys on deploy.example.com (the file owned by deploy and not writable by others, ~/.ssh mode 700), and deploy the user (username) who owns it. Check from your machine with the same key: ssh -i deploy_key deploy@deploy.example.com true',
    )
    expect(
      sshFailureFix('All configured authentication methods failed', { ...attempt, port: 2222, bastion: true }),
    ).toContain('public key of proxy-key (or key) in ~deploy/.ssh/authorized_keys')
    expect(sshFailureFix('All configured authentication methods failed', { ...attempt, port: 2222 })).toContain(
      'ssh -i deploy_key -p 2222 deploy@',
    )
    expect(sshFailureFix('All configured authentication methods failed', { ...attempt, withKey: false })).toContain(
      'did not accept the password for the user deploy',
    )
  })

  it('a key ssh cannot parse, an encrypted key, a wrong passphrase', () => {
    expect(sshFailureFix('Cannot parse privateKey: Unsupported key format', attempt)).toMatch(
      /^key: ssh cannot read the private key: expected the whole key file .* multi-line secret with its newlines kept/,
    )
    expect(sshFailureFix('Encrypted private OpenSSH key detected, but no passphrase given', attempt)).toBe(
      "key: the private key is encrypted: set passphrase (a secret) too, or use a key made without one (ssh-keygen -N '')",
    )
    expect(sshFailureFix('OpenSSH key integrity check failed -- bad passphrase?', { ...attempt, bastion: true })).toBe(
      'proxy-passphrase: does not decrypt the private key: check the secret',
    )
  })

  it('no sshd, a name that does not resolve, no answer', () => {
    expect(sshFailureFix('connect ECONNREFUSED 10.0.0.5:2222', { ...attempt, port: 2222 })).toBe(
      'nothing accepts connections on deploy.example.com port 2222: check the SSH port (port, or host as name:port) and that sshd runs there',
    )
    expect(sshFailureFix('getaddrinfo ENOTFOUND deploy.example.com', attempt)).toContain(
      'the name deploy.example.com does not resolve: check host',
    )
    expect(sshFailureFix('Timed out while waiting for handshake', attempt)).toContain('a firewall may drop')
    expect(sshFailureFix('something else', attempt)).toBe('')
  })
})

describe('a health gate nothing ever answered', () => {
  const replica: Replica = { host: 'h', address: '127.0.0.1', name: 'shop-9201', port: 9201, image: 'shop:2' }
  const config = (network: string) =>
    ({
      network,
      containerPort: 8080,
      health: { path: '/health', status: [{ min: 200, max: 399 }], timeoutMs: 30, intervalMs: 5 },
    }) as unknown as Config
  const port = (answers: () => HttpResult): ReplicaPort => ({
    probe: async () => answers(),
    state: async () => ({ status: 'running', health: 'none', exitCode: 0, restarts: 0 }),
    evidence: async () => undefined,
  })
  const failure = (network: string, answers: () => HttpResult) =>
    gate(port(answers), config(network), replica).then(
      () => 'passed',
      (e: Error) => e.message,
    )

  it('network host: names $PORT and the port the action gave the replica', async () => {
    expect(await failure('host', () => ({ error: 'Channel open failure: Connection refused', ms: 1 }))).toMatch(
      /did not become healthy within 0\.0s: last probe GET \/health -> Channel open failure: Connection refused \(expected 200-399\)\. Nothing listened on 127\.0\.0\.1:9201: with network: host the app must listen on \$PORT, which the action sets to 9201 for this replica .* make it read \$PORT$/,
    )
  })

  it('a published port: names container-port, and listening on all addresses', async () => {
    expect(await failure('', () => ({ error: 'socket hang up', ms: 1 }))).toContain(
      'Nothing answered on 127.0.0.1:9201, published from port 8080 of the container: the app must listen there, on all addresses (0.0.0.0, not 127.0.0.1), as container-port says (the action sets $PORT=8080 too); an app on another port (e.g. 3000) never answers: set container-port: 3000, or make it read $PORT',
    )
  })

  it('gives no such hint when the app answered once, or only timed out', async () => {
    let n = 0
    const once404 = () =>
      n++ === 0 ? { status: 404, ms: 1 } : { error: 'Channel open failure: Connection refused', ms: 1 }
    expect(await failure('host', once404)).not.toContain('Nothing listened')
    expect(await failure('host', () => ({ error: 'no answer within 2000 ms', ms: 1 }))).not.toContain(
      'Nothing listened',
    )
  })
})
