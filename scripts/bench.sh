#!/usr/bin/env bash
# npm run bench: brings up the local test host, builds the action, runs the benchmark (BENCH_RUNS, default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/testhost/up.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run -s bundle
node scripts/bench.mjs
