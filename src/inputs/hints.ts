// The mistakes a newcomer makes with the inputs, told apart from other bad values so that the message can say
// the fix: a private key that lost its newlines, a public key or a path given as the key, a user in the host,
// an image name with capitals, an MD5 fingerprint or a known_hosts line given as a fingerprint. Pure: each
// function gets the text and returns the whole message, or undefined when the text is not that mistake (the
// reader then says what it says of any bad value). A secret's text is never quoted.

/** How a message quotes a value that is not secret (as inputs.ts shows them). */
const show = (v: string): string => (v.length > 80 ? `'${v.slice(0, 77)}...'` : `'${v}'`)

const BEGIN_LINE = /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----$/
const END_LINE = /^-----END [A-Z0-9 ]*PRIVATE KEY-----$/
const BEGIN = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/
const PUBLIC_KEY = /^(?:\S+\s+)?(ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-\S+@openssh\.com) AAAA[A-Za-z0-9+/=]+/
const PATH = /^(?:~|\.{0,2}\/|[A-Za-z]:\\|\$HOME)\S*$/
const HOW_TO_STORE =
  'store the whole key file, from its -----BEGIN line to its -----END line, as a multi-line secret with its newlines kept (gh secret set DEPLOY_KEY <deploy_key, or paste it, line breaks and all, into the secret on GitHub)'

/**
 * Why the text of `key` (or `proxy-key`) cannot be a private key ssh reads, with the fix; undefined when its
 * shape is right (whether ssh can parse it is known when it connects, see remote/ssh-messages.ts).
 */
export function privateKeyProblem(input: 'key' | 'proxy-key', text: string): string | undefined {
  const key = text.replace(/\r\n/g, '\n').trim()
  const publicKey = PUBLIC_KEY.exec(key)
  if (publicKey && !BEGIN.test(key))
    return `${input}: expected a private key, got a public key (${publicKey[1]} AAAA..., the line of a .pub file): the public key goes in ~/.ssh/authorized_keys of the user on the server; give the private key (the same file without .pub): ${HOW_TO_STORE}`
  if (key.startsWith('PuTTY-User-Key-File'))
    return `${input}: expected an OpenSSH or PEM private key, got a PuTTY key (.ppk): convert it with 'puttygen key.ppk -O private-openssh -o deploy_key', then ${HOW_TO_STORE}`
  if (!BEGIN.test(key))
    return PATH.test(key)
      ? `${input}: expected the private key's text, got what looks like a file path: the action runs on GitHub's runner, which has no such file; ${HOW_TO_STORE}`
      : `${input}: expected private key text starting with -----BEGIN ... PRIVATE KEY----- (the key itself, not a path)`
  const lines = key.split('\n').map((l) => l.trim())
  const framed = lines.some((l) => BEGIN_LINE.test(l)) && END_LINE.test(lines[lines.length - 1]) && lines.length >= 3
  if (framed) return undefined
  const got = lines.length === 1 ? 'one line' : `${lines.length} lines`
  const how = key.includes('\\n')
    ? 'its newlines written out as \\n'
    : /-----END [A-Z0-9 ]*PRIVATE KEY-----/.test(key)
      ? 'its newlines lost, the key joined on the BEGIN or END line'
      : 'no -----END ... PRIVATE KEY----- line: cut short'
  return `${input}: expected the private key's multi-line text, got ${got} of ${key.length} characters (${how}): ${HOW_TO_STORE}`
}

/**
 * The fix for an SSH address (of host, hosts, nginx-host or proxy-host) in a newcomer's form, to append to the
 * message that it is not an address; '' when it is no such form.
 */
export function sshAddressHint(text: string): string {
  const at = /^([^@\s]+)@(\S+)$/.exec(text)
  if (at)
    return `: put the user in username (${at[1]}; proxy-username for the bastion) and the host alone here (${at[2]})`
  const url = /^(ssh|https?):\/\/(?:[^@/\s]+@)?([^/\s]+)\/?$/.exec(text)
  if (url) return `: give the host without ${url[1]}:// (${url[2]})`
  if (/^[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*$/.test(text))
    return `: write an IPv6 address in brackets, [${text}], or [${text}]:2222 with a port`
  return ''
}

/** `host` naming a port while `port` names another: which one the user meant is not known. */
export function portTwiceProblem(hostText: string, hostPort: number, portInput: number): string | undefined {
  if (hostPort === portInput) return undefined
  return `host: names port ${hostPort} (${show(hostText)}) and port says ${portInput}: give the port in one place, in host (name:port) or in port`
}

/**
 * An image reference with capitals in its name (Docker takes them only in the registry's host and the tag):
 * most often `ghcr.io/${{ github.repository }}`, whose owner or name has capitals.
 */
export function imageCaseProblem(input: string, text: string, valid: (s: string) => boolean): string | undefined {
  const slash = text.indexOf('/')
  const registry = slash > 0 && /[.:]|^localhost$/.test(text.slice(0, slash)) ? text.slice(0, slash + 1) : ''
  const rest = text.slice(registry.length)
  const tagAt = rest.search(/[:@]/)
  const [name, tag] = tagAt < 0 ? [rest, ''] : [rest.slice(0, tagAt), rest.slice(tagAt)]
  if (name === name.toLowerCase()) return undefined
  const lower = `${registry}${name.toLowerCase()}${tag}`
  if (!valid(lower)) return undefined
  return `${input}: expected a Docker image reference, whose name Docker takes only in lower case, got ${show(text)}: use ${show(lower)}. For ghcr.io/\${{ github.repository }}, lower-case it first: echo "IMAGE=ghcr.io/\${GITHUB_REPOSITORY,,}:\${GITHUB_SHA}" >>"$GITHUB_ENV", then image: \${{ env.IMAGE }}`
}

/** The fix for a line of `fingerprint` (or `proxy-fingerprint`) in a form other than a SHA256 fingerprint. */
export function fingerprintLineHint(line: string): string | undefined {
  if (/(^|\s)MD5:/.test(line) || /^(?:[0-9a-f]{2}:){15}[0-9a-f]{2}$/i.test(line))
    return `expected a SHA256 fingerprint, got an MD5 one (${show(line)}): ssh-keygen prints SHA256 unless told otherwise, 'ssh-keyscan <host> | ssh-keygen -lf -' (or ssh-keygen -E sha256 -lf <key.pub>)`
  const sentence = /key fingerprint is (SHA256:[A-Za-z0-9+/]{43})\.?$/.exec(line)
  if (sentence)
    return `expected a fingerprint, got ssh's sentence about it (${show(line)}): give the fingerprint alone with the host it is for, 'deploy.example.com ${sentence[1]}', or the lines 'ssh-keyscan <host> | ssh-keygen -lf -' prints`
  const keyLine = PUBLIC_KEY.exec(line)
  if (keyLine)
    return /^\S+\s+(ssh-|ecdsa-|sk-)/.test(line) && !/^(ssh-|ecdsa-|sk-)/.test(line)
      ? `expected a fingerprint, got a known_hosts line (${show(line)}): put such lines in known-hosts, or give their fingerprints here, as 'ssh-keyscan <host> | ssh-keygen -lf -' prints them`
      : `expected a fingerprint, got a public key (${show(line)}): give its fingerprint, as 'ssh-keygen -lf <file.pub>' or 'ssh-keyscan <host> | ssh-keygen -lf -' prints it`
  return undefined
}
