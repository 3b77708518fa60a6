#!/usr/bin/env bash
# npm run demo: bring up the local test host, build the action, deploy v1 then v2 under live traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/testhost/up.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run -s bundle
node scripts/demo.mjs
