import { login, runReplica } from '../../src/commands/docker.js'
import { applyCandidate, copyIntoContainer, createNginxContainer, findNginxMasters, readLiveConfig } from '../../src/commands/nginx.js'
import { describeCommand, render } from '../../src/commands/shell.js'
import { configFrom } from './fixtures.js'

const replica = { name: 'shop-9203', port: 9203, image: 'ghcr.io/acme/shop:2.0' }

describe('docker commands', () => {
  it('runs a replica with labels, a published port and its env on standard input', () => {
    const c = runReplica(configFrom({ env: 'DB_PASSWORD=s3cr3t\nMODE=prod', 'run-args': "--memory 512m --label 'x=a b'" }), replica)
    expect(render(c)).toBe(
      'docker run --detach --name shop-9203 --label nginx-rollout.app=shop --label nginx-rollout.role=replica ' +
        '--label nginx-rollout.image=ghcr.io/acme/shop:2.0 --label nginx-rollout.port=9203 --publish 127.0.0.1:9203:8080 ' +
        "--env-file /dev/stdin --memory 512m --label 'x=a b' ghcr.io/acme/shop:2.0",
    )
    expect(c.stdin).toBe('PORT=8080\nDB_PASSWORD=s3cr3t\nMODE=prod\n')
    expect(describeCommand(c)).toContain('< (env file: PORT, DB_PASSWORD, MODE)')
    expect(describeCommand(c)).not.toContain('s3cr3t')
  })

  it('gives host-network replicas their own port in PORT', () => {
    const c = runReplica(configFrom({ network: 'host' }), replica)
    expect(render(c)).toContain('--network host --env-file /dev/stdin ghcr.io/acme/shop:2.0')
    expect(c.stdin).toBe('PORT=9203\n')
  })

  it('logs in with the password on standard input only', () => {
    const c = login('ghcr.io', 'bot', 'tok3n')
    expect(render(c)).toBe('docker login --username bot --password-stdin ghcr.io')
    expect(c.stdin).toBe('tok3n')
  })
})

describe('nginx commands', () => {
  it('in a container: stages beside the live file, validates, installs and signals in one command', () => {
    const config = configFrom({ 'nginx-container': 'lb' })
    const c = applyCandidate(config)
    expect(c.argv.slice(0, 2)).toEqual(['sh', '-c'])
    expect(c.argv[2]).toBe(
      [
        'docker cp "$1" "$2:$3.rollout-new" || exit 10',
        'docker exec "$2" nginx -t -q -c "$3.rollout-new" || exit 11',
        'docker cp "$1" "$2:$3" || exit 12',
        'docker kill --signal HUP "$2" >/dev/null || exit 13',
      ].join('\n'),
    )
    expect(c.argv.slice(3)).toEqual(['sh', '.nginx-rollout/shop/nginx.conf.upload', 'lb', '/etc/nginx/nginx.conf'])
    expect(render(copyIntoContainer(config))).toBe('docker cp .nginx-rollout/shop/nginx.conf.upload lb:/etc/nginx/nginx.conf')
    expect(render(readLiveConfig(config))).toContain("' sh lb /etc/nginx/nginx.conf")
  })

  it('on the host: validates the uploaded candidate and renames it into place', () => {
    const c = applyCandidate(configFrom({ 'nginx-mode': 'host', 'nginx-config-path': '/srv/nginx/nginx.conf' }))
    expect(c.argv[2]).toContain('nginx -t -q -c "$1.rollout-new" || exit 11\nmv -f "$1.rollout-new" "$1" || exit 12')
    expect(c.argv.slice(3)).toEqual(['sh', '/srv/nginx/nginx.conf'])
  })

  it('creates the nginx container on host networking or publishing listen', () => {
    expect(render(createNginxContainer(configFrom({ network: 'host', 'nginx-image': 'nginx:1.27' })))).toBe(
      'docker create --name loadbalancer --label nginx-rollout.role=nginx --label nginx-rollout.app=shop --restart unless-stopped --network host nginx:1.27',
    )
    expect(render(createNginxContainer(configFrom({ listen: '127.0.0.1:8080' })))).toContain('--publish 127.0.0.1:8080:8080 nginx:stable')
    expect(render(createNginxContainer(configFrom()))).toContain('--publish 80:80 nginx:stable')
  })

  it("finds the host's nginx master whatever its pid file, ignoring nginx masters inside containers", () => {
    const ps = [
      'pid:[4026531836]',
      '    1     0 4026531836 systemd',
      '  812     1 4026531836 nginx',
      '  813   812 4026531836 nginx',
      '  814   812 4026531836 nginx',
      ' 2000  1990 4026532500 nginx',
      ' 2001  2000 4026532500 nginx',
      '  900     1 4026531836 sshd',
    ].join('\n')
    expect(findNginxMasters(ps)).toEqual([812])
    expect(findNginxMasters('pid:[1]\n  1 0 1 init\n')).toEqual([])
  })
})
