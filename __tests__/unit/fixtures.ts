import type { Config } from '../../src/config.js'
import { readConfig, type InputName } from '../../src/inputs.js'
import type { Replica } from '../../src/model.js'
import { TRAFFIC_LOG_FORMAT } from '../../src/nginx/template.js'

export const TEST_KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----'

/**
 * A valid config from inputs, as a workflow would give them. Real traffic is not judged (no verification,
 * no bake) unless a test asks: plans and steps then read as they do without it, and the judged ones are
 * tested on their own.
 */
export function configFrom(inputs: Partial<Record<InputName, string>> = {}): Config {
  const all: Partial<Record<InputName, string>> = {
    'verify-seconds': '0',
    'bake-seconds': '0',
    host: 'docker.example.com',
    username: 'deploy',
    key: TEST_KEY,
    fingerprint: 'SHA256:qYyfMtF7kiLUyZGo4r7iQdVZSXo7CgYZmzg5L2nDLxo',
    app: 'shop',
    image: 'shop:v2',
    ...inputs,
  }
  return readConfig({ get: (n) => all[n] ?? '', readWorkspaceFile: () => '' })
}

/** A replica of app shop on the single host configFrom() gives (docker.example.com, reached at 127.0.0.1). */
export function replicaOf(
  port: number,
  image: string,
  where: Partial<Pick<Replica, 'host' | 'address' | 'name' | 'color'>> = {},
): Replica {
  return { host: 'docker.example.com', address: '127.0.0.1', name: `shop-${port}`, port, image, ...where }
}

/** One line of the app's traffic log as nginx writes it (TRAFFIC_LOG_FORMAT, escape=json), newline included. */
export function recordLine(
  upstream: string,
  status: string,
  { time, method = 'GET', uri = '/' }: { time?: string; method?: string; uri?: string } = {},
): string {
  const times = time ?? status.replace(/\d{3}|-/g, '0.004')
  const value = (v: string) => JSON.stringify(v).slice(1, -1)
  return (
    TRAFFIC_LOG_FORMAT.replace('$upstream_addr', value(upstream))
      .replace('$upstream_status', value(status))
      .replace('$upstream_response_time', value(times))
      .replace('$request_method', value(method))
      .replace('$uri', value(uri)) + '\n'
  )
}
