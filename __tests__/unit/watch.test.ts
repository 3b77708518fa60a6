import { describe, expect, it } from '@jest/globals'
import type { ReplicaState } from '../../src/commands/docker.js'
import { StepFailure, Watch, type HealthPort } from '../../src/health/gate.js'
import type { Replica } from '../../src/model.js'
import type { HttpResult } from '../../src/remote/ssh.js'
import { configFrom } from './fixtures.js'

const replica = (port: number): Replica => ({
  host: 'docker.example.com',
  address: '127.0.0.1',
  name: `shop-${port}`,
  port,
  image: 'shop:v2',
})
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A host whose replicas answer and run as `world` says at each moment. */
function port(world: Map<number, { answers: boolean; status: string }>): HealthPort {
  const evidence: string[] = []
  return Object.assign(
    {
      probe: async (r: Replica): Promise<HttpResult> =>
        world.get(r.port)?.answers ? { status: 200, ms: 1 } : { error: 'connect ECONNREFUSED', ms: 1 },
      state: async (r: Replica): Promise<ReplicaState> => ({
        status: world.get(r.port)?.status ?? 'running',
        health: 'none',
        exitCode: 137,
      }),
      evidence: async (r: Replica, reason: string) => void evidence.push(`${r.name}: ${reason}`),
      startCanaryLog: async () => {},
      readCanaryLog: async () => ({ text: '', bytes: 0, newestOnly: false }),
    },
    { seen: evidence },
  ) as never
}

describe('Watch', () => {
  const config = configFrom({ 'health-interval': '0.05' })

  it('fails the deploy, with evidence, once a replica that took traffic has exited', async () => {
    const world = new Map([
      [9203, { answers: true, status: 'running' }],
      [9204, { answers: true, status: 'running' }],
    ])
    const hosts = port(world)
    const watch = new Watch(hosts, config)
    watch.add([replica(9203), replica(9204)])
    await sleep(120)
    expect(() => watch.check()).not.toThrow()
    world.set(9204, { answers: false, status: 'exited' })
    await sleep(150)
    expect(() => watch.check()).toThrow(StepFailure)
    expect(() => watch.check()).toThrow('shop-9204 stopped (exited, exit code 137) after it took traffic')
    await watch.stop()
    expect((hosts as unknown as { seen: string[] }).seen).toEqual([
      'shop-9204: shop-9204 stopped (exited, exit code 137) after it took traffic',
    ])
  })

  it('leaves a running replica that answers badly to the canary judgement', async () => {
    const world = new Map([[9203, { answers: false, status: 'running' }]])
    const watch = new Watch(port(world), config)
    watch.add([replica(9203)])
    await sleep(200)
    expect(() => watch.check()).not.toThrow()
    await watch.stop()
  })

  it('ends a wait the moment it sees a routed replica exit, and lets a wait that ends first give its value', async () => {
    const world = new Map([[9203, { answers: true, status: 'running' }]])
    const watch = new Watch(port(world), config)
    watch.add([replica(9203)])
    expect(await watch.unlessFailed(sleep(60).then(() => 'drained'))).toBe('drained')
    const t0 = Date.now()
    const longDrain = sleep(3000).then(() => 'drained')
    setTimeout(() => world.set(9203, { answers: false, status: 'exited' }), 50)
    await expect(watch.unlessFailed(longDrain)).rejects.toThrow(
      'shop-9203 stopped (exited, exit code 137) after it took traffic',
    )
    expect(Date.now() - t0).toBeLessThan(1000)
    await watch.stop()
  })

  it('checks now, without waiting for the next round, before a route takes the old replicas out', async () => {
    const world = new Map([[9203, { answers: true, status: 'running' }]])
    const watch = new Watch(port(world), configFrom({ 'health-interval': '30' }))
    watch.add([replica(9203)])
    await expect(watch.checkNow()).resolves.toBeUndefined()
    world.set(9203, { answers: false, status: 'exited' })
    await expect(watch.checkNow()).rejects.toThrow('shop-9203 stopped (exited, exit code 137) after it took traffic')
    await watch.stop()
  })

  it('stops probing once stopped', async () => {
    let probes = 0
    const watch = new Watch({ ...port(new Map()), probe: async () => (probes++, { status: 200, ms: 1 }) }, config)
    watch.add([replica(9203)])
    await sleep(100)
    await watch.stop()
    const seen = probes
    await sleep(150)
    expect(probes).toBe(seen)
    expect(seen).toBeGreaterThan(0)
  })
})
