#!/usr/bin/env bash
# Runs a node script (the demo, the benchmark) against the local test host: brings the host up, installs
# the npm dependencies if missing, builds the action, then runs the script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/testhost/up.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run -s bundle
node "$@"
