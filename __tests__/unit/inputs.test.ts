import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { DEFAULTS, RUNNER_DEFAULTS } from '../../src/config.js'
import { InputError, readConfig, type InputName } from '../../src/inputs.js'

const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----'
const FP = 'SHA256:qYyfMtF7kiLUyZGo4r7iQdVZSXo7CgYZmzg5L2nDLxo'
const base: Partial<Record<InputName, string>> = { host: 'deploy.example.com', username: 'deploy', key: KEY, fingerprint: FP, app: 'shop', image: 'ghcr.io/acme/shop:1.4.2' }

const parse = (overrides: Partial<Record<InputName, string>> = {}, files: Record<string, string> = {}) =>
  readConfig({
    get: (name) => ({ ...base, ...overrides })[name] ?? '',
    readWorkspaceFile: (p) => {
      if (!(p in files)) throw new Error('ENOENT')
      return files[p]
    },
  })

const problemsOf = (overrides: Partial<Record<InputName, string>>): string[] => {
  try {
    parse(overrides)
  } catch (e) {
    if (e instanceof InputError) return [...e.problems]
    throw e
  }
  return []
}

describe('readConfig', () => {
  it('applies the documented defaults', () => {
    const c = parse()
    expect(c.hosts).toEqual([{ host: 'deploy.example.com', port: 22 }])
    expect(c.replicas).toBe(2)
    expect(c.ports).toHaveLength(10)
    expect(c.ports[0]).toBe(9201)
    expect(c.health).toEqual({ path: '/', status: [{ min: 200, max: 399 }], timeoutMs: 60000, intervalMs: 1000 })
    expect(c.nginx.lbMethod).toEqual({ kind: 'least_conn' })
    expect(c.nginx.listen).toBe('80')
    expect(c.drainSeconds).toBe(5)
    expect(c.rollbackOnFailure).toBe(true)
    expect(c.dryRun).toBe(false)
  })

  it('reads host:port, lists, env lines, run-args and lb-method hash', () => {
    const c = parse({
      host: '[::1]:2200',
      ports: '9301-9303,9310',
      env: 'A=1\n# comment\n\nB=x=y z\n',
      'run-args': "--memory 512m --label 'team=web shop'",
      'lb-method': 'hash $request_uri consistent',
      'health-status': '200,204-206',
      'health-interval': '0.25',
      fingerprint: `${FP}=, ${FP.replace('q', 'Q')}`,
    })
    expect(c.hosts).toEqual([{ host: '::1', port: 2200 }])
    expect(c.ports).toEqual([9301, 9302, 9303, 9310])
    expect(c.env).toEqual([{ name: 'A', value: '1' }, { name: 'B', value: 'x=y z' }])
    expect(c.runArgs).toEqual(['--memory', '512m', '--label', 'team=web shop'])
    expect(parse({ 'run-args': '--label app=x -e MODE=nginx-rollout.default' }).runArgs).toHaveLength(4)
    expect(c.nginx.lbMethod).toEqual({ kind: 'hash', key: '$request_uri', consistent: true })
    expect(c.health.status).toEqual([{ min: 200, max: 200 }, { min: 204, max: 206 }])
    expect(c.health.intervalMs).toBe(250)
    expect(c.hostKey.fingerprints).toEqual([FP, FP.replace('q', 'Q')])
  })

  it.each(['localhost', 'shop.example.com www.shop.example.com', '*.example.com', '.example.com', 'www.example.*', '_'])('accepts server-name %j', (name) => {
    expect(parse({ 'server-name': name }).nginx.serverName).toBe(name)
  })

  it('reads a custom template from the workspace', () => {
    expect(parse({ 'nginx-template': 'deploy/nginx.mustache' }, { 'deploy/nginx.mustache': 'T' }).nginx.template).toBe('T')
    expect(problemsOf({ 'nginx-template': 'missing.mustache' })).toEqual([expect.stringContaining("nginx-template: cannot read 'missing.mustache'")])
  })

  it.each<[string, Partial<Record<InputName, string>>, string]>([
    ['missing host', { host: '' }, 'host: required'],
    ['bad host', { host: 'a b' }, "host: expected name, name:port or [ipv6]:port, got 'a b'"],
    ['several hosts', { host: 'a,b' }, 'host: one host per run in this version'],
    ['bad port', { port: '70000' }, "port: expected a whole number from 1 to 65535, got '70000'"],
    ['no credentials', { key: '' }, 'key: required unless password is set'],
    ['key path instead of text', { key: '~/.ssh/id_ed25519' }, 'key: expected private key text'],
    ['bad fingerprint', { fingerprint: 'MD5:aa:bb' }, "fingerprint: expected SHA256:... as 'ssh-keygen -lf' prints it, got 'MD5:aa:bb'"],
    ['no host key policy', { fingerprint: '' }, 'ssh-keyscan -p 22 deploy.example.com | ssh-keygen -lf -'],
    ['bad insecure flag', { 'insecure-skip-host-key-check': 'yes' }, "insecure-skip-host-key-check: expected true or false, got 'yes'"],
    ['bad app', { app: 'Shop!' }, "app: expected a name of lowercase letters, digits, _ . - starting with a letter or digit, got 'Shop!'"],
    ['hostile image', { image: 'v2; touch /tmp/owned' }, "image: expected a Docker image reference like ghcr.io/org/app:1.2.3, got 'v2; touch /tmp/owned'"],
    ['missing image for a deploy', { image: '' }, 'image: required'],
    ['canary steps falling', { 'canary-steps': '50,10' }, "canary-steps: expected percentages from 1 to 100 in rising order, got '50,10'"],
    ['canary step over 100', { 'canary-steps': '10,150' }, 'canary-steps: expected percentages from 1 to 100 in rising order'],
    ['canary step zero', { 'canary-steps': '0,100' }, 'canary-steps: expected percentages from 1 to 100 in rising order'],
    ['canary error rate not a number', { 'canary-max-error-rate': 'low' }, "canary-max-error-rate: expected a percentage from 0 to 100 like '1' or '0.5', got 'low'"],
    ['zero canary replicas', { 'canary-replicas': '0' }, 'canary-replicas: expected a whole number from 1 to 100'],
    ['bad keep-previous', { 'keep-previous': 'sometimes' }, "keep-previous: expected true or false, got 'sometimes'"],
    ['unknown strategy', { strategy: 'yolo' }, "strategy: expected one of rolling, blue-green, canary, got 'yolo'"],
    ['zero replicas', { replicas: '0' }, "replicas: expected a whole number from 1 to 100, got '0'"],
    ['replicas not a number', { replicas: 'two' }, "replicas: expected a whole number from 1 to 100, got 'two'"],
    ['more replicas than ports', { replicas: '4', ports: '9201-9203' }, 'ports: 4 replicas need at least 4 ports'],
    ['reversed port range', { ports: '9210-9201' }, "ports: expected a range like '9201-9210'"],
    ['env without =', { env: 'JUSTNAME' }, 'env: line 1: expected KEY=VALUE'],
    ['env sets PORT', { env: 'PORT=1' }, 'env: PORT is set by nginx-rollout'],
    ['run-args with operator', { 'run-args': '--memory 1g; rm -rf /' }, "run-args: unquoted ';'"],
    ['run-args managing names', { 'run-args': '--name x' }, "run-args: '--name' is set by nginx-rollout"],
    ['run-args publishing', { 'run-args': '-p 80:80' }, "run-args: '-p' is set by nginx-rollout"],
    ['run-args with a reserved label', { 'run-args': '--label nginx-rollout.port=1' }, "run-args: labels starting with nginx-rollout. are the action's own"],
    ['run-args with a reserved label inline', { 'run-args': '--label=nginx-rollout.app=x' }, "run-args: labels starting with nginx-rollout. are the action's own"],
    ['half registry login', { 'registry-username': 'me' }, 'registry-username and registry-password: set both'],
    ['health path without slash', { 'health-path': 'health' }, "health-path: expected an absolute URL path like '/healthz', got 'health'"],
    ['health path with space', { 'health-path': '/a b' }, 'health-path: expected an absolute URL path'],
    ['bad health status', { 'health-status': '2xx' }, "health-status: expected HTTP status codes or ranges like '200-399'"],
    ['zero health timeout', { 'health-timeout': '0' }, 'health-timeout: expected seconds from 1 to 3600'],
    ['negative drain', { 'drain-seconds': '-1' }, 'drain-seconds: expected seconds from 0 to 3600'],
    ['zero batch', { 'batch-size': '0' }, 'batch-size: expected a whole number from 1 to 100'],
    ['bad nginx mode', { 'nginx-mode': 'k8s' }, "nginx-mode: expected one of container, host, got 'k8s'"],
    ['relative config path', { 'nginx-config-path': 'nginx.conf' }, 'nginx-config-path: expected an absolute file path'],
    ['hostile config path', { 'nginx-config-path': '/etc/nginx/x;y' }, 'nginx-config-path: expected an absolute file path'],
    ['bad listen', { listen: '0.0.0.0:99999' }, "listen: expected a port like '80'"],
    ['listen with injection', { listen: '80; include /etc/shadow' }, "listen: expected a port like '80'"],
    ['server-name with brace', { 'server-name': 'a.com }' }, 'server-name: expected host names separated by spaces'],
    ['upstream-host of colons', { 'upstream-host': ':' }, "upstream-host: expected an IP address or host name, got ':'"],
    ['upstream-host with a port', { 'upstream-host': '127.0.0.1:80' }, 'upstream-host: expected an IP address or host name'],
    ['listen on a bad IPv6', { listen: '[:::]:80' }, "listen: expected a port like '80'"],
    ['server-name of a dot', { 'server-name': '.' }, 'server-name: expected host names separated by spaces'],
    ['unknown lb-method', { 'lb-method': 'fastest' }, "lb-method: expected least_conn, round_robin, ip_hash or 'hash <key> [consistent]'"],
    ['hash key with semicolon', { 'lb-method': 'hash $a;b' }, 'lb-method: expected'],
    ['weight zero', { weight: '0' }, 'weight: expected a whole number from 1 to 1000'],
    ['bad fail-timeout', { 'fail-timeout': '30 seconds' }, "fail-timeout: expected an nginx time like '30s' or '1m'"],
    ['unknown operation', { operation: 'redeploy' }, "operation: expected one of deploy, promote, abort, rollback, status, got 'redeploy'"],
    ['bad dry-run', { 'dry-run': 'maybe' }, "dry-run: expected true or false, got 'maybe'"],
    ['environment on two lines', { environment: 'prod\nstaging' }, 'environment: expected a GitHub environment name of at most 255 characters on one line'],
    ['environment too long', { environment: 'e'.repeat(256) }, 'environment: expected a GitHub environment name of at most 255 characters'],
    ['environment-url not a URL', { environment: 'production', 'environment-url': 'shop.example.com' }, "environment-url: expected an http(s) URL like https://shop.example.com, got 'shop.example.com'"],
    ['environment-url of another scheme', { environment: 'production', 'environment-url': 'javascript:alert(1)' }, 'environment-url: expected an http(s) URL'],
    ['environment-url without environment', { 'environment-url': 'https://shop.example.com' }, 'environment-url: set environment too'],
    ['github-token with a line break', { 'github-token': 'ghs_abc\nxyz' }, 'github-token: expected a token without spaces or line breaks'],
    ['listen inside replica ports', { network: 'host', listen: '9205' }, "listen: port 9205 is inside ports '9201-9210'"],
  ])('rejects %s', (_what, overrides, message) => {
    expect(problemsOf(overrides).join('\n')).toContain(message)
  })

  it('needs no image for operations other than deploy, and reads the canary inputs', () => {
    const c = parse({ image: '', operation: 'promote', 'canary-steps': '5, 25,100', 'canary-interval': '30', 'canary-max-error-rate': '0.5%' })
    expect(c.operation).toBe('promote')
    expect(c.canary).toEqual({ steps: [5, 25, 100], replicas: 1, intervalSeconds: 30, maxErrorRate: 0.5 })
  })

  it('reads the GitHub inputs; none of them is needed', () => {
    expect(parse().github).toEqual({ token: '', environment: '', environmentUrl: '' })
    expect(parse({ 'github-token': 'ghs_abc', environment: 'production', 'environment-url': 'https://shop.example.com/' }).github).toEqual({
      token: 'ghs_abc',
      environment: 'production',
      environmentUrl: 'https://shop.example.com/',
    })
  })

  it('never echoes the GitHub token in a message', () => {
    expect(problemsOf({ 'github-token': 'ghs_s3cr3t token' }).join('\n')).not.toContain('s3cr3t')
  })

  it('reports every problem at once', () => {
    expect(problemsOf({ host: '', app: '', replicas: 'x' })).toHaveLength(3)
  })

  it('never echoes an env value or a secret in a message', () => {
    const text = problemsOf({ env: 'TOKEN s3cr3t-value', password: 'hunter2hunter2', key: 'not-a-key-s3cr3t' }).join('\n')
    expect(text).not.toContain('s3cr3t')
    expect(text).not.toContain('hunter2')
  })
})

describe('action.yml', () => {
  const yml = readFileSync(new URL('../../action.yml', import.meta.url), 'utf8')
  const inputs = [...yml.split('\noutputs:')[0].matchAll(/^  ([a-z-]+):\n(?:    .*\n)*?    default: (.*)$/gm)].map((m) => [m[1], m[2].replace(/^'(.*)'$/, '$1')])

  it('declares the same defaults as the code', () => {
    const declared = Object.fromEntries(inputs.filter(([, d]) => d !== ''))
    expect(declared).toEqual({ ...Object.fromEntries(Object.entries(DEFAULTS).filter(([, d]) => d !== '')), ...RUNNER_DEFAULTS })
    expect(inputs).toContainEqual(['network', ''])
  })

  it('declares the outputs of the contract', () => {
    const outputs = [...yml.split('\noutputs:')[1].split('\nruns:')[0].matchAll(/^  ([a-z-]+):$/gm)].map((m) => m[1])
    expect(outputs).toEqual(['result', 'image', 'previous-image', 'duration-seconds', 'replicas', 'color', 'canary-weight'])
  })
})

describe('README', () => {
  // Parsed as YAML (not by pattern), so a description or default written any way YAML allows is compared.
  const action = parseYaml(readFileSync(new URL('../../action.yml', import.meta.url), 'utf8')) as {
    inputs: Record<string, { description: string; required?: boolean; default?: string }>
  }
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const inputsSection = readme.slice(readme.indexOf('\n## Inputs\n'), readme.indexOf('\n## ', readme.indexOf('\n## Inputs\n') + 1))

  it('documents every input, and only those, in order, with the default and description action.yml declares', () => {
    const declared = Object.entries(action.inputs).map(([name, i]) => `| \`${name}\` | ${i.required ? '*required*' : i.default ? `\`${i.default}\`` : ''} | ${i.description.trim().replaceAll('|', '\\|')} |`)
    const documented = inputsSection.split('\n').filter((l) => l.startsWith('| `'))
    expect(documented.map((l) => l.replace(/ \|  \| /, ' |  | '))).toEqual(declared.map((l) => l.replace(/ \| \| /, ' |  | ')))
  })

  it('gives every input a description and either required or a default', () => {
    for (const [name, i] of Object.entries(action.inputs)) {
      expect([name, typeof i.description === 'string' && i.description.length > 10]).toEqual([name, true])
      expect([name, i.required === true || typeof i.default === 'string']).toEqual([name, true])
    }
  })
})
