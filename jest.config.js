// Jest runs in ESM mode (NODE_OPTIONS=--experimental-vm-modules) because @actions/* are ESM-only.
const common = {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true }] },
}

export default {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/__tests__/unit/**/*.test.ts'] },
    // The summaries' timelines rendered by Mermaid in a headless Chromium (scripts/chromium.sh installs it).
    { ...common, displayName: 'browser', testMatch: ['<rootDir>/__tests__/browser/**/*.test.ts'] },
    // End-to-end: the built dist/index.js against the local test host (scripts/testhost/up.sh).
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/__tests__/e2e/**/*.test.ts'] },
    // End-to-end on several hosts: the fleet of scripts/testhost/fleet-up.sh (network namespaces, one dockerd and sshd each).
    { ...common, displayName: 'fleet', testMatch: ['<rootDir>/__tests__/fleet/**/*.test.ts'] },
  ],
}
