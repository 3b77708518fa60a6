#!/usr/bin/env bash
# npm test: everything, on a clean machine. Installs and starts the local test host (Docker Engine, sshd,
# nginx, test images) and the fleet of several hosts (network namespaces, each with its own dockerd and sshd,
# a registry, a bastion), then: typecheck, a check that dist/ matches the sources, unit tests, and the
# end-to-end tests that drive dist/index.js against real dockerd, sshd and nginx: the single-host suite and
# the several-hosts suite side by side (they share no host, container, port or file).
set -euo pipefail
cd "$(dirname "$0")/.."
export NODE_OPTIONS=--experimental-vm-modules

echo "== test host"
bash scripts/testhost/up.sh
echo "== fleet"
bash scripts/testhost/fleet-up.sh

echo "== typecheck"
npx tsc --noEmit
echo "== format (prettier --check; 'npm run format' fixes it)"
npx prettier --check --log-level warn src __tests__ scripts jest.config.js

echo "== dist/ matches src/"
fresh=$(mktemp -d)
BUNDLE_OUTFILE="$fresh/index.js" node scripts/bundle.mjs
if ! cmp -s "$fresh/index.js" dist/index.js; then
  echo "dist/index.js is stale: run 'npm run bundle' and commit dist/" >&2
  exit 1
fi
rm -rf "$fresh"

results=$(mktemp -d)
echo "== unit tests"
npx jest --selectProjects unit --json --outputFile="$results/unit.json"

echo "== end-to-end tests: one host, and several hosts, side by side"
npx jest --selectProjects fleet --runInBand --json --outputFile="$results/fleet.json" >"$results/fleet.log" 2>&1 &
fleet=$!
e2e=0
npx jest --selectProjects e2e --runInBand --json --outputFile="$results/e2e.json" || e2e=$?
fleet_status=0
wait $fleet || fleet_status=$?
echo "== several hosts (output of the fleet suite)"
cat "$results/fleet.log"

node -e 'const r = process.argv.slice(1).map((f) => { try { return require(f) } catch { return { numPassedTests: 0, numFailedTests: 1 } } }); const sum = (k) => r.reduce((n, x) => n + x[k], 0); console.log(`jest: ${sum("numPassedTests")} passed, ${sum("numFailedTests")} failed`)' "$results/unit.json" "$results/e2e.json" "$results/fleet.json"
[ "$e2e" = 0 ] && [ "$fleet_status" = 0 ]
