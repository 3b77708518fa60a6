#!/usr/bin/env bash
# Tears down what vps-up.sh brought up: the app's containers (vps-shop), the host's PID namespace (its init,
# and with it nginx, sshd and every session), the network namespace and its veth, the host's files. Keeps the
# host key (--keep-keys, or always: its fingerprint stays stable). Idempotent: succeeds when nothing is up.
# Kills only the pid vps-up.sh recorded and the processes inside the nr-vps network namespace.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${TESTHOST_DIR:-$root/.testhost}
state=/var/lib/nr-vps

ids=$(docker ps -aq --filter label=nginx-rollout.app=vps-shop 2>/dev/null)
# shellcheck disable=SC2086 # container ids, one word each
[ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1

pid=$(cat "$state/unshare.pid" 2>/dev/null)
if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = unshare ]; then
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
fi
if [ -e /run/netns/nr-vps ]; then
  left=$(ip netns pids nr-vps 2>/dev/null)
  # shellcheck disable=SC2086 # pids, one word each
  [ -z "$left" ] || kill -KILL $left 2>/dev/null
  sleep 0.2
  ip netns del nr-vps 2>/dev/null
fi
ip link del nrv-vps 2>/dev/null
rm -rf "$state/fs" "$state/unshare.pid" "$state/init.log" "$state/sshd_config" "$dir/vps.env"
exit 0
