// What to do when an SSH connection fails: ssh2's words ("All configured authentication methods failed",
// "Cannot parse privateKey: Unsupported key format") say what happened, not what to change. Pure: the error
// text and where the run connected in, the fix out (empty when there is none to give).

export interface SshAttempt {
  /** The SSH user. */
  readonly username: string
  /** The host, and its port. */
  readonly host: string
  readonly port: number
  /** Whether this is the connection to the bastion (its own inputs: proxy-key, proxy-username...). */
  readonly bastion: boolean
  /** Whether a key was given (else a password). */
  readonly withKey: boolean
}

/** The fix for an SSH connection that failed with `error`, to append to the message; '' when there is none. */
export function sshFailureFix(error: string, a: SshAttempt): string {
  const keyInput = a.bastion ? 'proxy-key (or key)' : 'key'
  const userInput = a.bastion ? 'proxy-username (or username)' : 'username'
  const portArg = a.port === 22 ? '' : ` -p ${a.port}`
  if (/Cannot parse privateKey|Unsupported key format|Malformed .*private key/i.test(error))
    return `${keyInput}: ssh cannot read the private key: expected the whole key file as ssh-keygen wrote it (-----BEGIN ... PRIVATE KEY----- to -----END ... PRIVATE KEY-----), stored as a multi-line secret with its newlines kept (gh secret set DEPLOY_KEY <deploy_key); a key whose lines were joined, re-wrapped or cut is not readable`
  if (/Encrypted private .*key detected, but no passphrase given/i.test(error))
    return `${keyInput}: the private key is encrypted: set ${a.bastion ? 'proxy-passphrase' : 'passphrase'} (a secret) too, or use a key made without one (ssh-keygen -N '')`
  if (/bad passphrase|integrity check failed/i.test(error))
    return `${a.bastion ? 'proxy-passphrase' : 'passphrase'}: does not decrypt the private key: check the secret`
  if (/All configured authentication methods failed/i.test(error))
    return a.withKey
      ? `the server did not accept the key for the user ${a.username}: expected the public key of ${keyInput} in ~${a.username}/.ssh/authorized_keys on ${a.host} (the file owned by ${a.username} and not writable by others, ~/.ssh mode 700), and ${a.username} the user (${userInput}) who owns it. Check from your machine with the same key: ssh -i deploy_key${portArg} ${a.username}@${a.host} true`
      : `the server did not accept the password for the user ${a.username} (${userInput}): check the password, and that sshd allows passwords (PasswordAuthentication yes); a key is the better way`
  if (/ECONNREFUSED/.test(error))
    return `nothing accepts connections on ${a.host} port ${a.port}: check the SSH port (port, or host as name:port) and that sshd runs there`
  if (/ENOTFOUND|EAI_AGAIN/.test(error))
    return `the name ${a.host} does not resolve: check ${a.bastion ? 'proxy-host' : 'host'} (the name or address alone, without the user or ssh://)`
  if (/Timed out|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH/i.test(error))
    return `no SSH answer from ${a.host} port ${a.port}: a firewall may drop the runner's connection (GitHub's hosted runners connect from the internet, from many addresses), or the port is not sshd's`
  return ''
}
