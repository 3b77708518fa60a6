#!/usr/bin/env bash
# Runs a node script (the demo, the benchmark) against the local test host: brings the host up, installs
# the npm dependencies if missing, builds the action, then runs the script.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/strict.sh
. "$here/lib/strict.sh"
cd "$here/.."
bash scripts/testhost/up.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run -s bundle
node "$@"
