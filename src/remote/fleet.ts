// Every host of the run: the nginx host and the app hosts (one may be both), each one SSH connection,
// opened in parallel, through the bastion when there is one. A host that cannot be reached or
// authenticated fails the run here, before anything changes anywhere.
import type { NodeSSH } from 'node-ssh'
import type { AppHost, Config } from '../config.js'
import { sshName } from '../model.js'
import { openSsh, remoteOver, type Remote, type RemoteStats } from './ssh.js'

export interface Fleet {
  /** The host nginx runs on: the lock, history and canary state live here, and probes start here. */
  readonly nginx: Remote
  readonly appHosts: readonly AppHost[]
  /** The connection to an app host, by its id. */
  app(host: string): Remote
  stats(): RemoteStats
  close(): Promise<void>
}

export async function connectFleet(config: Config, debug: (m: string) => void): Promise<Fleet> {
  const bastion = config.proxy
    ? await openSsh({ target: config.proxy.target, login: config.proxy.login, bastion: true, debug })
    : undefined
  const targets = new Map(
    [config.nginxHost, ...config.appHosts.map((h) => h.ssh)].map((t) => [sshName(t.host, t.port), t]),
  )
  const opened = await Promise.allSettled(
    [...targets].map(
      async ([name, target]) => [name, await openSsh({ target, login: config.login, via: bastion, debug })] as const,
    ),
  )
  const connections = new Map(opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : [])))
  const failed = opened.flatMap((o) => (o.status === 'rejected' ? [(o.reason as Error).message] : []))
  if (failed.length) {
    for (const ssh of connections.values()) ssh.dispose()
    bastion?.dispose()
    throw new Error(
      failed.length === 1 ? failed[0] : `${failed.length} hosts cannot be used:\n- ${failed.join('\n- ')}`,
    )
  }
  const remotes = new Map([...connections].map(([name, ssh]) => [name, remoteOver(ssh as NodeSSH, name, debug)]))
  const get = (name: string): Remote => {
    const r = remotes.get(name)
    if (!r) throw new Error(`no connection to ${name}`)
    return r
  }
  return {
    nginx: get(sshName(config.nginxHost.host, config.nginxHost.port)),
    appHosts: config.appHosts,
    app: (id) => get(config.appHosts.find((h) => h.id === id) ? id : `(unknown host ${id})`),
    stats: () => {
      const all = [...remotes.values()].map((r) => r.stats)
      return {
        connections: all.length + (bastion ? 1 : 0),
        commands: all.reduce((n, s) => n + s.commands, 0),
        probes: all.reduce((n, s) => n + s.probes, 0),
      }
    },
    async close() {
      await Promise.all([...remotes.values()].map((r) => r.close()))
      bastion?.dispose()
    },
  }
}
