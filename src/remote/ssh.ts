// Effects: one SSH connection per host per run, carrying commands and HTTP probes (a forwarded TCP channel
// to the replica's address, so the host needs no curl and no open port). Every command has a deadline on the
// host and in this process; sessions in flight are bounded below sshd's MaxSessions.
import http from 'node:http'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import { NodeSSH } from 'node-ssh'
import type { Client, ClientChannel } from 'ssh2'
import { LIMITS, type SshLogin, type SshTarget } from '../config.js'
import { describeCommand, renderRemote, type Command } from '../commands/shell.js'
import { sshName } from '../model.js'
import { verifyHostKey } from './hostkey.js'
import { sshFailureFix } from './ssh-messages.js'

export interface ExecResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
  /** stdout as bytes, for framed output whose sections are counted in bytes. */
  readonly raw: Buffer
}

export interface HttpResult {
  readonly status?: number
  readonly body?: string
  readonly error?: string
  readonly ms: number
}

export interface RemoteStats {
  connections: number
  commands: number
  probes: number
}

/** A host as the rest of the code sees it; tests hand in a fake. */
export interface ExecOptions {
  /** Not queued behind the other commands (the lock's heartbeat: sshd's MaxSessions keeps one session for it). */
  readonly unqueued?: boolean
}

export interface Remote {
  readonly name: string
  exec(c: Command, options?: ExecOptions): Promise<ExecResult>
  /** GET http://host:port/path through a channel forwarded from this host; never throws. */
  httpGet(
    host: string,
    port: number,
    path: string,
    timeoutMs: number,
    headers?: Record<string, string>,
  ): Promise<HttpResult>
  /**
   * Runs a command that keeps running, its output given to `onData` as it comes, until stopped (its standard
   * input closes; the command's own `stdin`, if any, is written to it first). It holds one SSH session of its
   * own, outside the queue, for the whole run.
   */
  follow(c: Command, onData: (chunk: Buffer) => void): Promise<FollowedCommand>
  close(): Promise<void>
  readonly stats: RemoteStats
}

export class RemoteError extends Error {
  constructor(
    message: string,
    readonly result?: ExecResult,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** Runs a command and throws, with the command's own error output, when it exits non-zero. */
export async function run(remote: Remote, c: Command, what: string): Promise<ExecResult> {
  const r = await remote.exec(c)
  if (r.code !== 0) throw failure(remote, c, what, r)
  return r
}

export function failure(remote: Remote, c: Command, what: string, r: ExecResult): RemoteError {
  const output = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-15).join('\n')
  const timedOut =
    r.code === 124 || r.code === 137
      ? ` (it ran into its deadline of ${c.timeoutSeconds ?? LIMITS.commandTimeoutSeconds}s)`
      : ''
  return new RemoteError(
    `${what} failed on ${remote.name} (exit ${r.code})${timedOut}: ${output || '(no output)'}\n  command: ${describeCommand(c)}`,
    r,
  )
}

/** At most `size` at once; the rest wait their turn in order. */
class Pool {
  private active = 0
  private readonly waiting: Array<() => void> = []
  constructor(private readonly size: number) {}
  async use<T>(f: () => Promise<T>): Promise<T> {
    if (this.active >= this.size) await new Promise<void>((r) => this.waiting.push(r))
    this.active++
    try {
      return await f()
    } finally {
      this.active--
      this.waiting.shift()?.()
    }
  }
}

export interface ConnectOptions {
  readonly target: SshTarget
  readonly login: SshLogin
  /** A connection to a bastion this one is tunnelled through. */
  readonly via?: NodeSSH
  /** This is the connection to the bastion (whose inputs are proxy-key, proxy-username...). */
  readonly bastion?: boolean
  readonly debug: (m: string) => void
}

/** Opens the SSH connection; the host key is checked before authentication. */
export async function openSsh({ target, login, via, bastion, debug }: ConnectOptions): Promise<NodeSSH> {
  const name = sshName(target.host, target.port)
  const ssh = new NodeSSH()
  let rejection: string | undefined
  try {
    const sock = via
      ? await forward(via, target.host, target.port).catch((e: Error) => {
          throw new RemoteError(
            `the bastion could not reach ${name}: ${e.message.replace(/^\(SSH\) /, '')}`,
            undefined,
            { cause: e },
          )
        })
      : await tcpConnect(target)
    await ssh.connect({
      host: target.host,
      port: target.port,
      sock: sock as never,
      username: login.username,
      privateKey: login.privateKey,
      passphrase: login.passphrase,
      password: login.password,
      readyTimeout: LIMITS.sshReadyTimeoutMs,
      keepaliveInterval: LIMITS.sshKeepaliveMs,
      hostVerifier: (key: Buffer) => {
        const verdict = verifyHostKey(login.hostKey, target.host, target.port, key)
        if (!verdict.ok)
          rejection = `host key verification failed for ${name}: the host presented ${verdict.presented}, ${verdict.reason}. Authentication was not attempted.`
        else if (verdict.unchecked)
          debug(
            `host key of ${name}: ${verdict.presented} not checked (insecure-skip-host-key-check, nothing names it)`,
          )
        else debug(`host key of ${name}: ${verdict.presented} accepted`)
        return verdict.ok
      },
    })
  } catch (e) {
    ssh.dispose()
    const how = via ? ' (through the bastion)' : ''
    const error = (e as Error).message.replace(/^\(SSH\) /, '')
    const fix = sshFailureFix(error, {
      username: login.username,
      host: target.host,
      port: target.port,
      bastion: bastion === true,
      withKey: login.privateKey !== undefined,
    })
    throw new RemoteError(
      rejection ?? `ssh connection to ${login.username}@${name}${how} failed: ${error}${fix ? `. ${fix}` : ''}`,
      undefined,
      { cause: e },
    )
  }
  return ssh
}

/**
 * The TCP connection an SSH connection runs on, without Nagle's algorithm: the handshake's small packets
 * would otherwise each wait for a delayed ACK (tens of milliseconds per round trip).
 */
function tcpConnect(target: SshTarget): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port, noDelay: true })
    const timer = setTimeout(
      () => socket.destroy(new Error(`Timed out after ${LIMITS.sshReadyTimeoutMs / 1000}s while connecting`)),
      LIMITS.sshReadyTimeoutMs,
    )
    socket.once('connect', () => {
      clearTimeout(timer)
      resolve(socket)
    })
    socket.once('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })
}

function forward(ssh: NodeSSH, host: string, port: number): Promise<Duplex> {
  const client = ssh.connection
  if (!client) return Promise.reject(new Error('the connection is closed'))
  return new Promise((resolve, reject) =>
    client.forwardOut('127.0.0.1', 0, host, port, (err, channel) => (err ? reject(err) : resolve(channel))),
  )
}

/** Whether sshd refused to open a session channel (the command never started). */
const sessionRefused = (e: unknown): boolean =>
  e instanceof RemoteError && /Channel open failure/i.test(String((e.cause as Error | undefined)?.message ?? ''))

/**
 * Runs one command, asking sshd again for a session it refused: a slot that a closed channel still holds on
 * the server for a moment, or a server that allows fewer sessions than the run uses at its busiest.
 */
export async function execAsking(client: Client, name: string, c: Command): Promise<ExecResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await execOn(client, name, c)
    } catch (e) {
      if (!sessionRefused(e) || attempt >= LIMITS.sshSessionTries) throw e
      await new Promise((r) => setTimeout(r, 50 * attempt))
    }
  }
}

/** Runs one command on the connection and collects its output; rejects only when the channel fails. */
function execOn(client: Client, name: string, c: Command): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const line = renderRemote(c, LIMITS.commandTimeoutSeconds)
    const limitMs = ((c.timeoutSeconds ?? LIMITS.commandTimeoutSeconds) + LIMITS.commandGraceSeconds) * 1000
    client.exec(line, (err, stream: ClientChannel) => {
      if (err) {
        const message = `ssh command failed on ${name}: ${err.message}\n  command: ${describeCommand(c)}`
        return reject(new RemoteError(message, undefined, { cause: err }))
      }
      const out: Buffer[] = []
      const errs: Buffer[] = []
      let code: number | undefined
      let signal: string | undefined
      // The host's `timeout` ends the command first; this is for a host or connection that stops answering.
      const timer = setTimeout(() => {
        stream.close()
        const seconds = Math.round(limitMs / 1000)
        reject(new RemoteError(`${describeCommand(c)} on ${name} gave no result within ${seconds}s`))
      }, limitMs)
      stream.on('data', (d: Buffer) => out.push(d))
      stream.stderr.on('data', (d: Buffer) => errs.push(d))
      stream.on('exit', (exitCode: number | null, exitSignal?: string) => {
        code = exitCode ?? undefined
        signal = exitSignal
      })
      stream.on('close', () => {
        clearTimeout(timer)
        const raw = Buffer.concat(out)
        const stderr = Buffer.concat(errs).toString('utf8')
        resolve({ code: code ?? (signal ? 128 : 255), stdout: raw.toString('utf8'), stderr, raw })
      })
      stream.end(c.stdin ?? '')
    })
  })
}

/** A command whose output keeps coming until it is stopped (see Remote.follow). */
export interface Following {
  /** Ends the command (its standard input closes) and waits a moment for it to go. */
  stop(): Promise<void>
  /**
   * Settles when the command ended, with its exit code and the last of what it wrote on standard error: a
   * follow that ends before stop() was asked of it could not go on (the record could not be read).
   */
  readonly ended: Promise<{ readonly code: number | null; readonly stderr: string }>
}

/** A followed command as the Remote hands it out: more can be written to its standard input while it runs. */
export interface FollowedCommand extends Following {
  /** Writes `input` to the command's standard input, which stays open. */
  write(input: string): void
}

/**
 * Starts a command that runs until told to stop: its output goes to `onData` as it comes. Its standard input
 * stays open, and closing it is the signal to end (the command must exit on end of input).
 */
function followOn(client: Client, name: string, c: Command, onData: (chunk: Buffer) => void): Promise<FollowedCommand> {
  return new Promise((resolve, reject) => {
    client.exec(renderRemote(c, LIMITS.commandTimeoutSeconds), (err, stream: ClientChannel) => {
      if (err) {
        const message = `ssh command failed on ${name}: ${err.message}\n  command: ${describeCommand(c)}`
        return reject(new RemoteError(message, undefined, { cause: err }))
      }
      let code: number | null = null
      let stderr = ''
      stream.on('exit', (c: number | null) => (code = c))
      stream.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-2000)))
      const ended = new Promise<{ code: number | null; stderr: string }>((done) =>
        stream.on('close', () => done({ code, stderr })),
      )
      const closed = ended.then(() => undefined)
      stream.on('data', onData)
      // What the command reads first; its input stays open after it (see Remote.follow).
      if (c.stdin !== undefined) stream.write(c.stdin)
      const stop = async () => {
        stream.end()
        // The wait is cleared once the command ended: a pending timer would keep node from exiting for the
        // whole followStopMs after the run is done (every judged run ended 2 s late).
        let wait: NodeJS.Timeout | undefined
        await Promise.race([closed, new Promise((r) => (wait = setTimeout(r, LIMITS.followStopMs)))])
        clearTimeout(wait)
        stream.close()
      }
      resolve({ stop, ended, write: (input: string) => void stream.write(input) })
    })
  })
}

/** GET http://host:port/path through a channel forwarded from the connection's host; never throws. */
async function probeOver(
  ssh: NodeSSH,
  host: string,
  port: number,
  path: string,
  timeoutMs: number,
  headers: Record<string, string>,
): Promise<HttpResult> {
  const started = Date.now()
  const ms = () => Date.now() - started
  let channel: Duplex
  try {
    channel = await forward(ssh, host, port)
  } catch (e) {
    return { error: (e as Error).message.replace(/^\(SSH\) /, ''), ms: ms() }
  }
  return new Promise<HttpResult>((resolve) => {
    let done = false
    const finish = (r: Omit<HttpResult, 'ms'>) => {
      if (done) return
      done = true
      clearTimeout(timer)
      channel.destroy()
      resolve({ ...r, ms: ms() })
    }
    const timer = setTimeout(() => finish({ error: `no answer within ${timeoutMs} ms` }), timeoutMs)
    const req = http.request(
      {
        createConnection: () => channel as never,
        host,
        port,
        path,
        method: 'GET',
        headers: { Host: `${host}:${port}`, Connection: 'close', 'User-Agent': 'nginx-rollout', ...headers },
      },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => {
          if (body.length < 4096) body += d
        })
        res.on('end', () => finish({ status: res.statusCode, body }))
        res.on('error', (e) => finish({ status: res.statusCode, error: e.message }))
      },
    )
    req.on('error', (e) => finish({ error: e.message }))
    req.end()
  })
}

/**
 * A promise that rejects once the connection is gone: a command in flight when the connection dies would
 * otherwise never settle, so every operation races it.
 */
function whenLost(client: Client, name: string): { lost: () => RemoteError | undefined; closed: Promise<never> } {
  let lost: RemoteError | undefined
  const closed = new Promise<never>((_, reject) => {
    const onLost = (why: string) => {
      lost ??= new RemoteError(
        `the ssh connection to ${name} was lost (${why}); the host may be left mid-step: the next run repairs it`,
      )
      reject(lost)
    }
    client.on('close', () => onLost('closed'))
    client.on('error', (e: Error) => onLost(e.message))
  })
  closed.catch(() => undefined)
  return { lost: () => lost, closed }
}

/** The Remote over an open connection. */
export function remoteOver(ssh: NodeSSH, name: string, debug: (m: string) => void): Remote {
  const client = ssh.connection as Client
  const stats: RemoteStats = { connections: 1, commands: 0, probes: 0 }
  const sessions = new Pool(LIMITS.sshSessions)
  const tunnels = new Pool(LIMITS.sshTunnels)
  const { lost, closed } = whenLost(client, name)
  const guarded = <T>(op: () => Promise<T>): Promise<T> => {
    const gone = lost()
    return gone ? Promise.reject(gone) : Promise.race([op(), closed])
  }
  return {
    name,
    stats,
    exec(c, options = {}) {
      stats.commands++
      debug(`$ ${describeCommand(c)}`)
      const once = () => execAsking(client, name, c)
      return guarded(() => (options.unqueued ? once() : sessions.use(once)))
    },
    follow(c, onData) {
      stats.commands++
      debug(`$ ${describeCommand(c)} (followed)`)
      return guarded(() => followOn(client, name, c, onData))
    },
    httpGet(host, port, path, timeoutMs, headers = {}) {
      stats.probes++
      return guarded(() => tunnels.use(() => probeOver(ssh, host, port, path, timeoutMs, headers)))
    },
    async close() {
      ssh.dispose()
    },
  }
}
