// What health checks and the judgement ask of the replicas, over the run's connections: a probe from the
// nginx host, Docker's view on the replica's own host, and its last log lines kept as evidence.
import { LIMITS, type Config } from '../config.js'
import * as docker from '../commands/docker.js'
import type { ReplicaPort } from '../health/gate.js'
import type { Journal } from '../journal.js'
import type { Replica } from '../model.js'
import type { Fleet } from '../remote/fleet.js'
import { run } from '../remote/ssh.js'
import type { RunProgress } from './progress.js'

export function replicaPort(fleet: Fleet, config: Config, progress: RunProgress, journal: Journal): ReplicaPort {
  // Only reads: by id where the run knows it (what it read, or created), else by name. Nothing here changes
  // a container, and the steps that do name ids only.
  const ref = (r: Replica): string => progress.idOf(r) ?? r.name
  const manyHosts = config.appHosts.length > 1
  return {
    probe: (r) => {
      const h = config.health
      return fleet.nginx.httpGet(r.address, r.port, h.path, Math.max(LIMITS.probeTimeoutMs, h.intervalMs))
    },
    state: async (r) =>
      docker.parseReplicaState(
        (await run(fleet.app(r.host), docker.inspectState(ref(r)), `inspecting ${r.name}`)).stdout,
      ),
    evidence: async (r, reason, withHealthLog) => {
      const remote = fleet.app(r.host)
      const subject = manyHosts ? `${r.name} on ${r.host}` : r.name
      const [logs, health] = await Promise.all([
        remote.exec(docker.containerLogs(ref(r), LIMITS.failureLogLines)),
        withHealthLog ? remote.exec(docker.healthLog(ref(r))) : undefined,
      ])
      const text = [logs.stdout, logs.stderr]
        .filter((s) => s.trim())
        .join('\n')
        .trim()
      const healthText = health?.stdout.trim() ? `\n--- docker health check output ---\n${health.stdout.trim()}` : ''
      journal.evidence.push({ subject, reason, logs: (text || '(no log output)') + healthText })
    },
  }
}
