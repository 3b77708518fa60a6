// The app's listen address held by another process on the nginx host, from `ss -ltnpH` as it prints: found
// when nginx is read, before any change, naming what holds it.
import { describe, expect, it } from '@jest/globals'
import { parseNginx } from '../../src/nginx/nginx.js'
import { heldProblem, holdersOf, parseListening } from '../../src/nginx/listening.js'
import { parseSections } from '../../src/remote/frames.js'
import { configFrom } from './fixtures.js'

const SS = [
  'LISTEN 0      511          0.0.0.0:80         0.0.0.0:* users:(("apache2",pid=901,fd=4),("apache2",pid=900,fd=4))',
  'LISTEN 0      128        127.0.0.1:2222       0.0.0.0:* users:(("sshd",pid=3450,fd=4))',
  'LISTEN 0      4096   127.0.0.53%lo:53         0.0.0.0:*',
  'LISTEN 0      511             [::]:80            [::]:* users:(("apache2",pid=900,fd=6))',
].join('\n')

const frame = (name: string, out = '', code = 0, err = ''): string =>
  `\n@@nginx-rollout ${name} ${code} ${Buffer.byteLength(out)} ${Buffer.byteLength(err)}\n${out}${err}`

describe('parseListening', () => {
  it('reads each listening socket as nginx would write its address, with the processes ss names', () => {
    expect(parseListening(SS)).toEqual([
      { listen: '*:80', process: 'apache2 (pid 901), apache2 (pid 900)' },
      { listen: '127.0.0.1:2222', process: 'sshd (pid 3450)' },
      { listen: '127.0.0.53:53', process: '' },
      { listen: '[::]:80', process: 'apache2 (pid 900)' },
    ])
  })

  it("finds the sockets that hold the app's listen, by address and port", () => {
    const sockets = parseListening(SS)
    expect(holdersOf(sockets, '80').map((s) => s.listen)).toEqual(['*:80'])
    expect(holdersOf(sockets, '127.0.0.1:80').map((s) => s.listen)).toEqual(['*:80'])
    expect(holdersOf(sockets, '127.0.0.1:8080')).toEqual([])
    expect(holdersOf(sockets, '[::1]:80').map((s) => s.listen)).toEqual(['[::]:80'])
  })
})

describe('a listen address another process holds', () => {
  it('stops a run that would create the nginx container, naming the process', () => {
    const config = configFrom({ 'nginx-mode': 'container', network: 'host' })
    const read = frame('listening', SS) + frame('container', '', 1, 'Error: No such object: loadbalancer\n')
    const state = parseNginx(config, parseSections(Buffer.from(read)), 'vps')
    expect(state.problems).toEqual([
      heldProblem(parseListening(SS).slice(0, 1), '80', 'vps', 'the nginx container loadbalancer the run creates'),
    ])
    expect(state.problems[0]).toBe(
      'listen 80: the address is already held on vps (*:80 by apache2 (pid 901), apache2 (pid 900)), so the nginx container loadbalancer the run creates could not listen there. ' +
        'Free it, set listen to another address, or let this nginx serve the app (nginx-mode host)',
    )
  })

  it('lets a running nginx container keep its own port', () => {
    const config = configFrom({ 'nginx-mode': 'container', network: 'host' })
    const ss = 'LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=7,fd=6))'
    const read =
      frame('listening', ss) +
      frame('container', 'true host\n') +
      frame('masters', '7') +
      frame(
        'dump',
        '# configuration file /etc/nginx/nginx.conf:\nevents {}\nhttp { include /etc/nginx/conf.d/*.conf; }\n',
      ) +
      frame('managed', 'absent\n')
    expect(parseNginx(config, parseSections(Buffer.from(read)), 'vps').problems).toEqual([])
  })
})
