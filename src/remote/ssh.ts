// Effects: one SSH connection per host per run, carrying commands, SFTP uploads and HTTP probes
// (a forwarded TCP channel to the replica's address on the Docker host, so the host needs no curl
// and no open port).
import http from 'node:http'
import type { Duplex } from 'node:stream'
import { NodeSSH } from 'node-ssh'
import { LIMITS, type Config, type SshTarget } from '../config.js'
import { describeCommand, render, type Command } from '../commands/shell.js'
import { verifyHostKey } from './hostkey.js'

export interface ExecResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export interface HttpResult {
  readonly status?: number
  readonly body?: string
  readonly error?: string
  readonly ms: number
}

/** The host as the rest of the code sees it; tests hand in a fake. */
export interface Remote {
  readonly name: string
  exec(c: Command): Promise<ExecResult>
  upload(path: string, text: string): Promise<void>
  httpGet(host: string, port: number, path: string, timeoutMs: number): Promise<HttpResult>
  close(): Promise<void>
  readonly stats: { connections: number; commands: number; uploads: number; probes: number }
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
  if (r.code !== 0) {
    const output = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-15).join('\n')
    throw new RemoteError(`${what} failed on ${remote.name} (exit ${r.code}): ${output || '(no output)'}\n  command: ${describeCommand(c)}`, r)
  }
  return r
}

export async function connectSsh(target: SshTarget, config: Config, debug: (m: string) => void): Promise<Remote> {
  const name = `${target.host}:${target.port}`
  const ssh = new NodeSSH()
  let rejection: string | undefined
  try {
    await ssh.connect({
      host: target.host,
      port: target.port,
      username: config.username,
      privateKey: config.privateKey,
      passphrase: config.passphrase,
      password: config.password,
      readyTimeout: LIMITS.sshReadyTimeoutMs,
      keepaliveInterval: LIMITS.sshKeepaliveMs,
      hostVerifier: (key: Buffer) => {
        const verdict = verifyHostKey(config.hostKey, target.host, target.port, key)
        if (!verdict.ok) rejection = `host key verification failed for ${name}: the host presented ${verdict.presented}, ${verdict.reason}. Authentication was not attempted.`
        else debug(`host key ${verdict.presented} accepted`)
        return verdict.ok
      },
    })
  } catch (e) {
    ssh.dispose()
    throw new RemoteError(rejection ?? `ssh connection to ${config.username}@${name} failed: ${(e as Error).message}`, undefined, { cause: e })
  }

  const stats = { connections: 1, commands: 0, uploads: 0, probes: 0 }
  let sftp: Awaited<ReturnType<NodeSSH['requestSFTP']>> | undefined
  // A command in flight when the connection dies would otherwise never settle: every operation races this.
  let lost: RemoteError | undefined
  const closed = new Promise<never>((_, reject) => {
    const onLost = (why: string) => {
      lost ??= new RemoteError(`the ssh connection to ${name} was lost (${why}); the host may be left mid-step: the next run repairs it`)
      reject(lost)
    }
    ssh.connection?.on('close', () => onLost('closed'))
    ssh.connection?.on('error', (e: Error) => onLost(e.message))
  })
  closed.catch(() => undefined)
  const guarded = <T>(op: () => Promise<T>): Promise<T> => (lost ? Promise.reject(lost) : Promise.race([op(), closed]))

  return {
    name,
    stats,
    exec(c) {
      stats.commands++
      debug(`$ ${describeCommand(c)}`)
      return guarded(async () => {
        try {
          const r = await ssh.execCommand(render(c), c.stdin === undefined ? {} : { stdin: c.stdin })
          return { code: r.code ?? (r.signal ? 128 : 0), stdout: r.stdout, stderr: r.stderr }
        } catch (e) {
          throw new RemoteError(`ssh command failed on ${name}: ${(e as Error).message}\n  command: ${describeCommand(c)}`, undefined, { cause: e })
        }
      })
    },
    upload(path, text) {
      stats.uploads++
      debug(`upload ${path} (${Buffer.byteLength(text)} bytes)`)
      return guarded(async () => {
        sftp ??= await ssh.requestSFTP()
        const channel = sftp
        await new Promise<void>((resolve, reject) =>
          channel.writeFile(path, text, { mode: 0o644 }, (err) => (err ? reject(new RemoteError(`upload of ${path} to ${name} failed: ${err.message}`, undefined, { cause: err })) : resolve())),
        )
      })
    },
    httpGet(host, port, path, timeoutMs) {
      return guarded(() => probe(host, port, path, timeoutMs))
    },
    async close() {
      ssh.dispose()
    },
  }

  async function probe(host: string, port: number, path: string, timeoutMs: number): Promise<HttpResult> {
    stats.probes++
    const started = Date.now()
    const ms = () => Date.now() - started
    let channel: Duplex
    try {
      channel = (await ssh.forwardOut('127.0.0.1', 0, host, port)) as unknown as Duplex
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
        { createConnection: () => channel as never, host, port, path, method: 'GET', headers: { Host: `${host}:${port}`, Connection: 'close', 'User-Agent': 'nginx-rollout' } },
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
}
