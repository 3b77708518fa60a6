import type { Config } from '../../src/config.js'
import { readConfig, type InputName } from '../../src/inputs.js'

export const TEST_KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----'

/** A valid config from inputs, as a workflow would give them. */
export function configFrom(inputs: Partial<Record<InputName, string>> = {}): Config {
  const all: Partial<Record<InputName, string>> = {
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
