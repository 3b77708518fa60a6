#!/usr/bin/env bash
# Removes what the tests left on the local test host: every container of the test apps and
# the nginx-rollout state directory of the ssh user; stops the test sshd. dockerd keeps running.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${TESTHOST_DIR:-$(cd "$here/../.." && pwd)/.testhost}
mapfile -t ids < <({ docker ps -aq --filter label=nginx-rollout.app; docker ps -aq --filter label=nginx-rollout.role; } | sort -u)
[ ${#ids[@]} -gt 0 ] && docker rm -f "${ids[@]}" >/dev/null
[ -f "$dir/sshd.pid" ] && kill "$(cat "$dir/sshd.pid")" 2>/dev/null
rm -f "$dir/sshd.pid"
echo "testhost: down"
