#!/usr/bin/env bash
# Tears down what fleet-up.sh brought up: every container of the fleet's daemons, the sshds, the dockerds (and
# their containerds), the registry, then every process still inside a fleet namespace; the namespaces, veths,
# bridges and the route; the fleet's mounts; the docker data, homes, /tmp's and registry storage.
# Keeps /var/lib/nr-fleet/keys (host keys, docker identities, registry password), so fingerprints stay stable.
# Idempotent: succeeds when nothing is up. Kills only pids that the fleet recorded or that live in its namespaces.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=fleet-lib.sh
. "$(dirname "$0")/fleet-lib.sh"
exec 9>/run/nr-fleet.lock # not while fleet-up.sh runs
flock 9


# 1. Containers, while each daemon still answers (in parallel).
for h in "${docker_hosts[@]}"; do
  (
    d=(docker -H "unix://$run/nr-$h/docker.sock")
    curl -sf -m 2 --unix-socket "$run/nr-$h/docker.sock" http://d/_ping >/dev/null 2>&1 || exit 0
    ids=$("${d[@]}" ps -aq 2>/dev/null)
    # shellcheck disable=SC2086 # $ids: container ids, one word each
    [ -z "$ids" ] || "${d[@]}" rm -f $ids >/dev/null 2>&1
  ) &
done
wait

# 2. The daemons, by their pidfiles.
pids=()
for h in "${hosts[@]}"; do
  p=$(pid_of "$run/nr-$h/sshd.pid" sshd) && pids+=("$p")
  p=$(pid_of "$run/nr-$h/docker.pid" dockerd) && pids+=("$p")
done
p=$(pid_of "$run/registry.pid" docker-registry) && pids+=("$p")
if [ ${#pids[@]} -gt 0 ]; then
  kill -TERM "${pids[@]}" 2>/dev/null
  wait_gone 20 "${pids[@]}" || kill -KILL "${pids[@]}" 2>/dev/null
fi

# 3. Whatever is still inside a fleet namespace: ssh sessions, containerd and its shims, fleet-ctl.sh commands.
ns_ids=()
for h in "${hosts[@]}"; do
  mountpoint -q "/run/netns/nr-$h" 2>/dev/null && ns_ids+=("net:[$(stat -L -c %i "/run/netns/nr-$h")]")
  mountpoint -q "$run/ns/$h.mnt" 2>/dev/null && ns_ids+=("mnt:[$(stat -L -c %i "$run/ns/$h.mnt")]")
done
inside() { # pids of the processes in any of $ns_ids (find reads all the links in one process)
  find /proc/[0-9]*/ns/net /proc/[0-9]*/ns/mnt -maxdepth 0 -printf '%p %l\n' 2>/dev/null |
    awk -v ids="${ns_ids[*]}" -v self=$$ 'BEGIN { split(ids, a, " "); for (i in a) want[a[i]] = 1 }
      want[$2] { split($1, f, "/"); if (f[3] != self && !seen[f[3]]++) printf "%s ", f[3] }'
}
if [ ${#ns_ids[@]} -gt 0 ]; then
  left=$(inside)
  # shellcheck disable=SC2086 # $left: process ids, one word each
  if [ -n "$left" ]; then
    kill -TERM $left 2>/dev/null
    wait_gone 5 $left || kill -KILL $left 2>/dev/null
    sleep 0.2
  fi
fi

# 4. Namespaces, links, route, mounts.
for h in "${hosts[@]}"; do
  umount "$run/ns/$h.mnt" "$run/ns/$h.uts" 2>/dev/null
  ip netns del "nr-$h" 2>/dev/null
  for i in 0 1; do ip link del "nrv-$h-$i" 2>/dev/null; done
done
mountpoint -q "$run/ns" 2>/dev/null && umount "$run/ns"
# ip netns add bind-mounted /run/netns on itself: undo that when no namespace is left in it.
[ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ] && mountpoint -q /run/netns && umount /run/netns
for br in nrbr0 nrbr1; do ip link del "$br" 2>/dev/null; done
ip route del unreachable 169.254.77.0/24 2>/dev/null
# Anything of the fleet's still mounted here (nothing, normally: docker's mounts live in the hosts' namespaces).
grep -oE " ($run|$state)/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done

# 5. Data: everything but the keys.
rm -rf "$run"
for h in "${hosts[@]}"; do rm -rf "${state:?}/$h"; done
rm -rf "${state:?}/registry"
rm -f "$dir/fleet.env"
echo "fleet: down"
