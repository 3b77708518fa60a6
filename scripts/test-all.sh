#!/usr/bin/env bash
# npm test: everything, on a clean machine. Installs and starts the local test host (Docker Engine, sshd,
# nginx, test images) and the fleet of several hosts (network namespaces, each with its own dockerd and sshd,
# a registry, a bastion); meanwhile sets up a second test host from nothing (fresh-check.sh), so that a set-up
# step only a new machine takes cannot pass unseen on a warm one. Then: typecheck, format, ShellCheck over
# every script, a check that dist/ matches the sources, that the docs' `uses:` pins name the newest commit of
# the action, unit tests, browser tests, and the end-to-end tests that drive
# dist/index.js against real dockerd, sshd and nginx, in two streams side by side (below).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/strict.sh
. "$here/lib/strict.sh"
cd "$here/.."
export NODE_OPTIONS=--experimental-vm-modules
results=$(mktemp -d)
started=$SECONDS
section() { echo "== $* (at $((SECONDS - started)) s)"; }

section "test host"
bash scripts/testhost/up.sh
section "Chromium and fonts for the browser tests"
bash scripts/chromium.sh
section "a second test host from nothing (in the background)"
bash scripts/testhost/fresh-check.sh >"$results/fresh.log" 2>&1 &
fresh=$!
section "fleet"
bash scripts/testhost/fleet-up.sh

section "typecheck"
npx tsc --noEmit
section "format (prettier --check; 'npm run format' fixes it)"
npx prettier --check --log-level warn src __tests__ scripts jest.config.js
section "ShellCheck"
mapfile -t scripts < <(grep -rlE '^#!/(usr/)?bin/(env )?(ba)?sh|^# shellcheck shell=' scripts | sort)
shellcheck --external-sources "${scripts[@]}"
echo "ShellCheck: ${#scripts[@]} scripts, no warning"

section "dist/ matches src/"
BUNDLE_OUTFILE="$results/index.js" node scripts/bundle.mjs
if ! cmp -s "$results/index.js" dist/index.js; then
  echo "dist/index.js is stale: run 'npm run bundle' and commit dist/" >&2
  exit 1
fi

section "the copied pins name the action's newest commit ('npm run pin' fixes it)"
# The check needs the history (which commit changed the action): a shallow clone fetches it if its origin is
# there, and otherwise says that it was not checked here (CI's dist job checks it with fetch-depth 0).
if [ "$(git rev-parse --is-shallow-repository)" = true ] && ! timeout 120 git fetch --quiet --unshallow; then
  echo "pins not checked: this clone is shallow and its origin gave no history"
else
  node scripts/pin.mjs --check
fi

section "unit tests"
npx jest --selectProjects unit --json --outputFile="$results/unit.json"

section "browser tests: the job summary's timeline drawn by Mermaid in headless Chromium, in four time zones"
npx jest --selectProjects browser --json --outputFile="$results/browser.json"

section "end-to-end tests: two streams side by side"
# The machine has two cores; the end-to-end suites mostly wait on hosts. Two streams share no app, container,
# port or file: the several-hosts suite then the single-host suites listed here, beside every other
# single-host suite. (The single-host suites never touch what another suite made: each has its own apps,
# ports and nginx container, and the one that cuts an SSH connection cuts only its own run's.)
# The streams are balanced by their suites' times in CI runs (stream one about 16 min, stream two 17).
second=(__tests__/e2e/cancel.test.ts __tests__/e2e/github.test.ts __tests__/e2e/rolling.test.ts
  __tests__/e2e/safety.test.ts __tests__/e2e/hardening.test.ts)
# The judgement's suite runs alone after both streams: it keeps 24 clients, a scanner and a client that gives
# up busy for minutes, which starved the other stream's canary windows of requests on two cores.
alone=(__tests__/e2e/verify.test.ts)
first=()
for f in __tests__/e2e/*.test.ts; do
  case " ${second[*]} ${alone[*]} " in *" $f "*) ;; *) first+=("$f") ;; esac
done
(
  status=0
  npx jest --selectProjects fleet --runInBand --json --outputFile="$results/fleet.json" || status=$?
  npx jest --selectProjects e2e --runInBand --json --outputFile="$results/e2e-second.json" "${second[@]}" || status=$?
  exit $status
) >"$results/second.log" 2>&1 &
stream=$!
e2e=0
npx jest --selectProjects e2e --runInBand --json --outputFile="$results/e2e.json" "${first[@]}" || e2e=$?
second_status=0
wait $stream || second_status=$?
section "the second stream: several hosts, then ${second[*]}"
cat "$results/second.log"

section "end-to-end tests, alone: ${alone[*]}"
alone_status=0
npx jest --selectProjects e2e --runInBand --json --outputFile="$results/e2e-alone.json" "${alone[@]}" || alone_status=$?

section "a second test host from nothing"
fresh_status=0
wait $fresh || fresh_status=$?
cat "$results/fresh.log"

node scripts/lib/jest-totals.mjs "$results/unit.json" "$results/browser.json" "$results/e2e.json" "$results/fleet.json" "$results/e2e-second.json" "$results/e2e-alone.json"
echo "npm test: $((SECONDS - started)) s"
[ "$e2e" = 0 ] && [ "$second_status" = 0 ] && [ "$alone_status" = 0 ] && [ "$fresh_status" = 0 ]
