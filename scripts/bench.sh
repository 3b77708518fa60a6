#!/usr/bin/env bash
# npm run bench: brings up the local test host, builds the action, runs the benchmark (BENCH_RUNS, default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/testhost/up.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run -s bundle
node scripts/bench.mjs
# A PNG beside the SVG when librsvg's converter is installed (apt-get install librsvg2-bin).
if command -v rsvg-convert >/dev/null; then rsvg-convert "${BENCH_OUT:-bench-results}/timeline.svg" -o "${BENCH_OUT:-bench-results}/timeline.png"; fi
