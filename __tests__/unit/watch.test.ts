import { describe, expect, it } from '@jest/globals'
import type { ReplicaState } from '../../src/commands/docker.js'
import type { ReplicaPort } from '../../src/health/gate.js'
import { Judge } from '../../src/judge/judge.js'
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
function port(world: Map<number, { answers: boolean; status: string }>): ReplicaPort {
  const evidence: string[] = []
  return Object.assign(
    {
      probe: async (r: Replica): Promise<HttpResult> =>
        world.get(r.port)?.answers ? { status: 200, ms: 1 } : { error: 'connect ECONNREFUSED', ms: 1 },
      state: async (r: Replica): Promise<ReplicaState> => ({
        status: world.get(r.port)?.status ?? 'running',
        health: 'none',
        exitCode: 137,
        restarts: 0,
      }),
      evidence: async (r: Replica, reason: string) => void evidence.push(`${r.name}: ${reason}`),
    },
    { seen: evidence },
  ) as never
}

const noLog = { follow: async () => ({ stop: async () => {}, ended: new Promise<never>(() => undefined) }) }

/** The judgement of a deploy that routed to `replicas`, as the executor starts it. */
function watching(hosts: ReplicaPort, config: ReturnType<typeof configFrom>, replicas: Replica[]): Judge {
  const judge = new Judge(hosts, noLog, config)
  judge.begin('shop:v2')
  judge.routed(replicas)
  return judge
}

describe('the watch over routed replicas (judge)', () => {
  const config = configFrom({ 'health-interval': '0.05' })

  it('fails the deploy, with evidence, once a replica that took traffic has exited', async () => {
    const world = new Map([
      [9203, { answers: true, status: 'running' }],
      [9204, { answers: true, status: 'running' }],
    ])
    const hosts = port(world)
    const judge = watching(hosts, config, [replica(9203), replica(9204)])
    await sleep(120)
    expect(judge.failure).toBeUndefined()
    world.set(9204, { answers: false, status: 'exited' })
    await sleep(150)
    expect(judge.failure).toBe('shop-9204 stopped (exited, exit code 137) after it took traffic')
    await judge.end()
    expect((hosts as unknown as { seen: string[] }).seen).toEqual([
      'shop-9204: shop-9204 stopped (exited, exit code 137) after it took traffic',
    ])
  })

  it('fails a running replica that stops answering its health probe 3 times in a row, not one that misses once', async () => {
    const world = new Map([[9203, { answers: true, status: 'running' }]])
    const judge = watching(port(world), configFrom({ 'health-interval': '30' }), [replica(9203)])
    world.set(9203, { answers: false, status: 'running' })
    await judge.verdictNow()
    world.set(9203, { answers: true, status: 'running' })
    await judge.verdictNow()
    world.set(9203, { answers: false, status: 'running' })
    await judge.verdictNow()
    await judge.verdictNow()
    expect(judge.failure).toBeUndefined()
    expect(await judge.verdictNow()).toBe('shop-9203: GET / -> connect ECONNREFUSED, 3 times in a row')
    await judge.end()
  })

  it('fails a replica Docker restarted between two probes (a restart policy hides a crash otherwise)', async () => {
    let restarts = 0
    const answering = port(new Map([[9203, { answers: true, status: 'running' }]]))
    const hosts = { ...answering, state: async () => ({ status: 'running', health: 'none', exitCode: 0, restarts }) }
    const judge = watching(hosts, configFrom({ 'health-interval': '0.1' }), [replica(9203)])
    try {
      // Docker is asked about every replica once in a few of the background's rounds: the first answer is the
      // baseline.
      await sleep(150)
      expect(judge.failure).toBeUndefined()
      restarts = 1
      for (let i = 0; i < 40 && !judge.failure; i++) await sleep(50)
      expect(judge.failure).toBe('shop-9203 was restarted by Docker (1 restarts) after it took traffic')
    } finally {
      await judge.end()
    }
  })

  it('asks Docker nothing more in a round asked for before a route, while every replica answers', async () => {
    let asked = 0
    const answering = port(new Map([[9203, { answers: true, status: 'running' }]]))
    const hosts = {
      ...answering,
      state: async () => (asked++, { status: 'running', health: 'none', exitCode: 0, restarts: 0 }),
    }
    const judge = watching(hosts, configFrom({ 'health-interval': '30' }), [replica(9203)])
    try {
      for (let i = 0; i < 6; i++) expect(await judge.verdictNow()).toBeUndefined()
      // The background's first round asked once (the baseline); the six asked for now asked nothing.
      expect(asked).toBe(1)
    } finally {
      await judge.end()
    }
  })

  it('ends a wait the moment it sees a routed replica exit, and lets a wait that ends first give its value', async () => {
    const world = new Map([[9203, { answers: true, status: 'running' }]])
    const judge = watching(port(world), config, [replica(9203)])
    expect(await judge.unlessFailed(sleep(60).then(() => 'drained'))).toEqual({ done: 'drained' })
    const t0 = Date.now()
    const longDrain = sleep(3000).then(() => 'drained')
    setTimeout(() => world.set(9203, { answers: false, status: 'exited' }), 50)
    expect(await judge.unlessFailed(longDrain)).toEqual({
      failed: 'shop-9203 stopped (exited, exit code 137) after it took traffic',
    })
    expect(Date.now() - t0).toBeLessThan(1000)
    await judge.end()
  })

  it('checks now, without waiting for the next round, before a route takes the old replicas out', async () => {
    const world = new Map([[9203, { answers: true, status: 'running' }]])
    const judge = watching(port(world), configFrom({ 'health-interval': '30' }), [replica(9203)])
    expect(await judge.verdictNow()).toBeUndefined()
    world.set(9203, { answers: false, status: 'exited' })
    expect(await judge.verdictNow()).toBe('shop-9203 stopped (exited, exit code 137) after it took traffic')
    await judge.end()
  })

  it('stops probing once stopped', async () => {
    let probes = 0
    const probing = { ...port(new Map()), probe: async () => (probes++, { status: 200, ms: 1 }) }
    const judge = watching(probing, config, [replica(9203)])
    await sleep(100)
    await judge.end()
    const seen = probes
    await sleep(150)
    expect(probes).toBe(seen)
    expect(seen).toBeGreaterThan(0)
  })
})
