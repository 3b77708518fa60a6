#!/usr/bin/env bash
# Brings up a throwaway "fleet" of real Docker hosts on this one machine, for end-to-end tests of deploying to
# several app hosts behind one nginx host, through an optional SSH bastion, pulling from a registry with a login.
#
#   root namespace   nrbr0 169.254.77.1/25 ("data" network)       nrbr1, no address ("private" network)
#   nr-lb            eth0 169.254.77.10/25                          eth1 169.254.77.140/25   sshd + dockerd (nginx host)
#   nr-app1..3       eth0 169.254.77.11..13/25                      eth1 169.254.77.141..143/25  sshd + dockerd
#   nr-bastion       eth0 169.254.77.20/25                          eth1 169.254.77.150/25   sshd only
#   registry         docker-registry on 169.254.77.1:5000 (root namespace), htpasswd user "fleet", plain HTTP
#
# Each host is a network namespace plus its own mount and UTS namespace (hostname nr-NAME; /root, /tmp and
# /home/nrfleet are bind mounts of /var/lib/nr-fleet/NAME/{home,tmp,deploy-home}); its sshd and dockerd both run
# inside all three, so a file the ssh user writes under ~ or /tmp is what that host's dockerd sees, and no
# other host sees it. The ssh user is "nrfleet", as a server's deploy user is: not root, in the docker group
# (the fleet's nginx runs in a container: no sudo line is needed, and it has none).
# Traffic stays on 169.254.77.0/24: no default route, no forwarding, no NAT, no Docker bridge (containers use
# --network host, i.e. the host's namespace), and the root namespace rejects 169.254.77.128/25 locally.
#
# Idempotent: what is already up is reused. Writes $TESTHOST_DIR/fleet.env (KEY=VALUE), fleet_known_hosts and
# fleet_ssh_config (`ssh -F .testhost/fleet_ssh_config app1`, or app1-private through the bastion).
# Torn down by fleet-down.sh; fleet-ctl.sh breaks and inspects single hosts.
# shellcheck source-path=SCRIPTDIR source=../lib/strict.sh
. "$(dirname "$0")/../lib/strict.sh"
# shellcheck source-path=SCRIPTDIR source=fleet-lib.sh
. "$(dirname "$0")/fleet-lib.sh"
registry=169.254.77.1:5000
images=(app:v1 app:v2 app:v3 app:v4 app:unhealthy app:broken app:docker-unhealthy nginx:test)
declare -A octet=([lb]=10 [app1]=11 [app2]=12 [app3]=13 [bastion]=20)
addr() { echo "169.254.77.${octet[$1]}"; }
private_addr() { echo "169.254.77.$((octet[$1] + 130))"; }
sock() { echo "unix://$run/nr-$1/docker.sock"; }
log() { echo "fleet: $*"; }
started=$(date +%s%N)
mkdir -p "$dir"
# One fleet-up or fleet-down at a time (test workers may all call this).
exec 9>/run/nr-fleet.lock
flock 9

# ---- packages ---------------------------------------------------------------------------------------------
need=()
command -v dockerd >/dev/null || need+=(docker.io)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/lib/openssh/sftp-server ] || need+=(openssh-sftp-server)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null && command -v unshare >/dev/null || need+=(util-linux)
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v iptables >/dev/null || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  # Keep the packages' own services (docker-registry on :5000 of every address, ssh on :22) from starting.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

# ---- keys and passwords (kept by fleet-down, so fingerprints and the password stay stable) ------------------
mkdir -p "$state/keys" && chmod 700 "$state" "$state/keys"
[ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C nginx-rollout-test -f "$dir/id_ed25519"
[ -f "$dir/id_ed25519.pub" ] || ssh-keygen -y -f "$dir/id_ed25519" >"$dir/id_ed25519.pub"
for h in "${hosts[@]}"; do
  k=$state/keys/$h-host_ed25519
  [ -f "$k" ] || ssh-keygen -q -t ed25519 -N '' -C "nr-fleet-$h" -f "$k"
done
if [ ! -s "$state/keys/registry-password" ] || [ ! -s "$state/keys/htpasswd" ]; then
  openssl rand -hex 16 >"$state/keys/registry-password"
  htpasswd -Bbn fleet "$(cat "$state/keys/registry-password")" >"$state/keys/htpasswd"
fi
registry_password=$(cat "$state/keys/registry-password")

# ---- network ------------------------------------------------------------------------------------------------
no_ipv6() { [ ! -e "/proc/sys/net/ipv6/conf/$1/disable_ipv6" ] || echo 1 >"/proc/sys/net/ipv6/conf/$1/disable_ipv6"; }
for br in nrbr0 nrbr1; do
  if ! ip link show "$br" >/dev/null 2>&1; then
    ip link add "$br" type bridge
    no_ipv6 "$br"
  fi
  ip link set "$br" up
done
ip addr replace 169.254.77.1/25 dev nrbr0
# The private half is only reachable from inside the namespaces: refuse it here instead of routing it out.
ip route replace unreachable 169.254.77.0/24

netns_ok() { mountpoint -q "/run/netns/$1" 2>/dev/null; }
for h in "${hosts[@]}"; do
  ns=nr-$h
  if ! netns_ok "$ns"; then
    rm -f "/run/netns/$ns" # left over from a reboot: a plain file, not a namespace
    ip netns add "$ns"
    # shellcheck disable=SC2016 # expanded by the inner shell
    nsenter --net="/run/netns/$ns" sh -c 'for f in all default; do [ ! -e /proc/sys/net/ipv6/conf/$f/disable_ipv6 ] || echo 1 >/proc/sys/net/ipv6/conf/$f/disable_ipv6; done'
  fi
  ip -n "$ns" link set lo up
  for i in 0 1; do
    v=nrv-$h-$i
    if ! ip -n "$ns" link show "eth$i" >/dev/null 2>&1; then
      ip link del "$v" 2>/dev/null || true
      ip link add "$v" type veth peer name "eth$i" netns "$ns"
      no_ipv6 "$v"
    fi
    ip link set "$v" master "nrbr$i" up
    if [ "$i" = 0 ]; then a=$(addr "$h"); else a=$(private_addr "$h"); fi
    ip -n "$ns" addr replace "$a/25" dev "eth$i"
    ip -n "$ns" link set "eth$i" up
  done
done

# ---- mount + UTS namespace per host (own hostname, own /root and /tmp) ---------------------------------------
mkdir -p "$run/ns"
if ! mountpoint -q "$run/ns"; then
  mount --bind "$run/ns" "$run/ns"
  mount --make-private "$run/ns" # unshare can only pin a mount namespace on a non-shared mount
fi
# The deploy user (every host's /etc is the machine's): /home/nrfleet is only the mount point of each host's own
# home, bound below.
# shellcheck source-path=SCRIPTDIR source=deploy-user.sh
. "$here/deploy-user.sh"
add_deploy_user "$fleet_user" "/home/$fleet_user"
for h in "${hosts[@]}"; do
  mkdir -p "$state/$h/home" "$state/$h/tmp" "$state/$h/deploy-home" "$run/nr-$h"
  chmod 700 "$state/$h/home"
  chmod 1777 "$state/$h/tmp"
  install -d -m 700 -o "$fleet_user" -g "$fleet_user" "$state/$h/deploy-home" "$state/$h/deploy-home/.ssh"
  m=$run/ns/$h.mnt u=$run/ns/$h.uts
  if ! mountpoint -q "$m" || ! mountpoint -q "$u"; then
    umount "$m" 2>/dev/null || true
    umount "$u" 2>/dev/null || true
    touch "$m" "$u"
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare --mount="$m" --uts="$u" --propagation private \
      sh -c 'hostname "$1" && mount --bind "$2/home" /root && mount --bind "$2/tmp" /tmp' sh "nr-$h" "$state/$h"
  fi
  # (Also in a namespace made before the deploy user was: its processes see the mount at once.)
  # shellcheck disable=SC2016 # expanded by the inner shell
  nsenter --mount="$m" -- sh -c 'mountpoint -q "$2" || mount --bind "$1/deploy-home" "$2"' sh "$state/$h" "/home/$fleet_user"
done
alive() { # pidfile, comm
  local p
  p=$(cat "$1" 2>/dev/null) && proc_is "$p" "$2"
}
running() { # pidfile: its process is alive, whatever its name
  local p s
  p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && s=$(cat "/proc/$p/stat" 2>/dev/null) && s=${s##*) } && [ "${s%% *}" != Z ]
}
# Start a daemon detached (own session, stdin /dev/null, output to $2), with no other inherited descriptor: a
# caller's pipe or this script's lock must not stay open in it. Its pid goes to $1 before it execs.
daemon() { # pidfile, log, command...
  local pidfile=$1 logfile=$2
  shift 2
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid -f bash -c 'for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done
    echo $$ >"$0" && exec "$@"' "$pidfile" "$@" </dev/null >"$logfile" 2>&1
}
ping_docker() { curl -sf -m 2 --unix-socket "$run/nr-$1/docker.sock" http://d/_ping >/dev/null 2>&1; }

# ---- registry ----------------------------------------------------------------------------------------------
mkdir -p "$state/registry/data"
cat >"$state/registry/config.yml.new" <<CONF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $state/registry/data
  delete:
    enabled: true
http:
  addr: $registry
  secret: $(echo "$registry_password" | sha256sum | cut -c1-32)
auth:
  htpasswd:
    realm: nr-fleet
    path: $state/keys/htpasswd
CONF
if ! cmp -s "$state/registry/config.yml.new" "$state/registry/config.yml"; then
  mv "$state/registry/config.yml.new" "$state/registry/config.yml"
  if alive "$run/registry.pid" docker-registry; then kill "$(cat "$run/registry.pid")"; sleep 0.3; fi
else
  rm -f "$state/registry/config.yml.new"
fi
if ! alive "$run/registry.pid" docker-registry; then
  log "starting registry on $registry"
  daemon "$run/registry.pid" "$state/registry/registry.log" /usr/bin/docker-registry serve "$state/registry/config.yml"
fi

# ---- dockerd per app host and the lb, all started at once ---------------------------------------------------
for h in "${docker_hosts[@]}"; do
  alive "$run/nr-$h/docker.pid" dockerd && continue # up, or still starting: waited for below
  log "starting dockerd on nr-$h"
  rm -f "$run/nr-$h/docker.pid"
  mkdir -p "$state/$h/docker" "$run/nr-$h/exec"
  # dockerd reattaches to the containerd in this pidfile while that pid exists, even as a zombie (pid 1 here can
  # take seconds to reap): a dead one would make it wait for a socket that never comes.
  alive "$run/nr-$h/exec/containerd/containerd.pid" containerd || rm -f "$run/nr-$h/exec/containerd/containerd.pid"
  # Its own config file (not the shared /etc/docker/daemon.json) and identity key: otherwise every daemon
  # reports the ID of /etc/docker/key.json. Its own containerd (under its exec and data roots), runc state
  # (exec root) and cgroup parent come from the flags.
  printf '{"deprecated-key-path": "%s"}\n' "$state/keys/$h-docker-key.json" >"$state/$h/daemon.json"
  # (dockerd.started: its pid as soon as it starts, so that a daemon that dies at once is noticed at once.)
  daemon "$run/nr-$h/dockerd.started" "$state/$h/dockerd.log" nsenter --net="/run/netns/nr-$h" --mount="$run/ns/$h.mnt" --uts="$run/ns/$h.uts" -- \
    dockerd \
    --data-root "$state/$h/docker" \
    --exec-root "$run/nr-$h/exec" \
    -H "$(sock "$h")" \
    --pidfile "$run/nr-$h/docker.pid" \
    --config-file "$state/$h/daemon.json" \
    --cgroup-parent "/nr-fleet-$h" \
    --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    --insecure-registry "$registry"
done

# ---- sshd per host ------------------------------------------------------------------------------------------
mkdir -p /run/sshd && chmod 755 /run/sshd
for h in "${hosts[@]}"; do
  cp "$dir/id_ed25519.pub" "$state/$h/authorized_keys"
  chmod 600 "$state/$h/authorized_keys"
  # The deploy user's key where a server keeps it (sshd reads it as that user).
  install -m 600 -o "$fleet_user" -g "$fleet_user" "$dir/id_ed25519.pub" "$state/$h/deploy-home/.ssh/authorized_keys"
  {
    echo "ListenAddress $(addr "$h"):22"
    echo "ListenAddress $(private_addr "$h"):22"
    echo "HostKey $state/keys/$h-host_ed25519"
    echo "AuthorizedKeysFile $state/$h/authorized_keys .ssh/authorized_keys"
    echo "PermitRootLogin prohibit-password"
    echo "PasswordAuthentication no"
    echo "KbdInteractiveAuthentication no"
    echo "UsePAM no"
    echo "StrictModes no"
    echo "PrintMotd no"
    echo "PrintLastLog no"
    echo "PidFile $run/nr-$h/sshd.pid"
    echo "Subsystem sftp /usr/lib/openssh/sftp-server"
    [ "$h" = bastion ] || echo "SetEnv DOCKER_HOST=$(sock "$h")"
  } >"$state/$h/sshd_config.new"
  if ! cmp -s "$state/$h/sshd_config.new" "$state/$h/sshd_config"; then
    mv "$state/$h/sshd_config.new" "$state/$h/sshd_config"
    if alive "$run/nr-$h/sshd.pid" sshd; then kill "$(cat "$run/nr-$h/sshd.pid")"; sleep 0.2; fi
  else
    rm -f "$state/$h/sshd_config.new"
  fi
  if ! alive "$run/nr-$h/sshd.pid" sshd; then
    rm -f "$run/nr-$h/sshd.pid"
    enter "$h" /usr/sbin/sshd -f "$state/$h/sshd_config" -E "$state/$h/sshd.log" </dev/null 9>&-
    log "sshd on $(addr "$h"):22 and $(private_addr "$h"):22 (nr-$h)"
  fi
done

# ---- the test images' ids on the default daemon (read only), while the daemons start ---------------------------
names=("${images[@]/#/nginx-rollout-test/}") # the last one is nginx:test
local_ids() { docker image inspect --format '{{.Id}}' "${names[@]}" 2>/dev/null; }
if ! ids=$(local_ids); then
  log "test images missing on the default dockerd: running up.sh"
  bash "$here/up.sh" >/dev/null 9>&- # (the daemons it starts must not hold the lock)
  ids=$(local_ids)
fi
mapfile -t ids <<<"$ids"

# ---- wait for everything ------------------------------------------------------------------------------------
for h in "${hosts[@]}"; do
  for _ in $(seq 1 50); do [ -s "$run/nr-$h/sshd.pid" ] && break; sleep 0.1; done
  alive "$run/nr-$h/sshd.pid" sshd || { tail -20 "$state/$h/sshd.log" >&2; log "sshd on nr-$h did not start" >&2; exit 1; }
done
for h in "${docker_hosts[@]}"; do
  for i in $(seq 1 600); do
    ping_docker "$h" && break
    # Died? (After a grace period for the start-up shell to exec dockerd and for it to write its pidfile.)
    [ "$i" -lt 30 ] || running "$run/nr-$h/dockerd.started" || alive "$run/nr-$h/docker.pid" dockerd || break
    sleep 0.1
  done
  ping_docker "$h" || { tail -30 "$state/$h/dockerd.log" >&2; log "dockerd on nr-$h did not start" >&2; exit 1; }
done
reg() { curl -s -m 5 -u "fleet:$registry_password" "$@"; }
for _ in $(seq 1 100); do [ "$(reg -o /dev/null -w '%{http_code}' "http://$registry/v2/")" = 200 ] && break; sleep 0.1; done
[ "$(reg -o /dev/null -w '%{http_code}' "http://$registry/v2/")" = 200 ] || { tail -20 "$state/registry/registry.log" >&2; log "registry did not start" >&2; exit 1; }

# ---- images -------------------------------------------------------------------------------------------------
# The registry holds an image when its manifest's config digest is the image id on the default daemon.
in_registry() { # repo:tag, id
  reg -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$registry/v2/${1%%:*}/manifests/${1#*:}" |
    tr -d ' \n\t' | grep -q "\"config\":{[^}]*\"digest\":\"$2\""
}
push=()
for i in "${!names[@]}"; do in_registry "${names[$i]}" "${ids[$i]}" || push+=("${names[$i]}"); done
if [ ${#push[@]} -gt 0 ]; then
  log "pushing ${#push[@]} images to $registry (through nr-app1's dockerd)"
  app1=(docker -H "$(sock app1)")
  docker save "${push[@]}" | "${app1[@]}" load -q >/dev/null
  dcfg=$(mktemp -d)
  trap 'rm -rf "$dcfg"' EXIT
  export DOCKER_CONFIG=$dcfg # the login stays out of this machine's ~/.docker
  out=$(echo "$registry_password" | "${app1[@]}" login -u fleet --password-stdin "$registry" 2>&1) || { echo "$out" >&2; exit 1; }
  pids=()
  for n in "${push[@]}"; do
    "${app1[@]}" tag "$n" "$registry/$n"
    "${app1[@]}" push -q "$registry/$n" >/dev/null &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  "${app1[@]}" logout "$registry" >/dev/null
  # Gone again from nr-app1, so that the tests really pull.
  "${app1[@]}" rmi "${push[@]}" "${push[@]/#/$registry/}" >/dev/null || log "warning: could not remove the pushed images from nr-app1" >&2
  unset DOCKER_CONFIG
fi
for i in "${!names[@]}"; do in_registry "${names[$i]}" "${ids[$i]}" || { log "${names[$i]} is not in the registry" >&2; exit 1; }; done
# The nginx host needs no pull: its image is there under both names.
nginx='nginx-rollout-test/nginx:test'
if [ "$(docker -H "$(sock lb)" image inspect --format '{{.Id}}' "$nginx" 2>/dev/null)" != "${ids[$((${#ids[@]} - 1))]}" ]; then
  log "loading $nginx into nr-lb"
  docker save "$nginx" | docker -H "$(sock lb)" load -q >/dev/null
fi
docker -H "$(sock lb)" tag "$nginx" "$registry/$nginx"

# ---- what the tests read --------------------------------------------------------------------------------------

fingerprint() { ssh-keygen -lf "$state/keys/$1-host_ed25519.pub" | awk '{print $2}'; }
{
  echo "FLEET_USER=$fleet_user"
  echo "FLEET_HOME=/home/$fleet_user"
  echo "FLEET_KEY=$dir/id_ed25519"
  echo "FLEET_PORT=22"
  echo "FLEET_HOSTS=$(IFS=,; echo "${hosts[*]}")"
  echo "FLEET_KNOWN_HOSTS=$dir/fleet_known_hosts"
  echo "FLEET_SSH_CONFIG=$dir/fleet_ssh_config"
  echo "FLEET_CTL=$here/fleet-ctl.sh"
  for h in "${hosts[@]}"; do
    H=${h^^}
    echo "FLEET_${H}_ADDR=$(addr "$h")"
    echo "FLEET_${H}_PRIVATE_ADDR=$(private_addr "$h")"
    echo "FLEET_${H}_HOSTNAME=nr-$h"
    echo "FLEET_${H}_FINGERPRINT=$(fingerprint "$h")"
    [ "$h" = bastion ] || echo "FLEET_${H}_DOCKER=$(sock "$h")"
  done
  echo "FLEET_REGISTRY=$registry"
  echo "FLEET_REGISTRY_USER=fleet"
  echo "FLEET_REGISTRY_PASSWORD=$registry_password"
  echo "FLEET_APP_IMAGE=$registry/nginx-rollout-test/app"
  echo "FLEET_NGINX_IMAGE=$nginx"
} >"$dir/fleet.env.new"
mv "$dir/fleet.env.new" "$dir/fleet.env"
for h in "${hosts[@]}"; do
  echo "$(addr "$h"),$(private_addr "$h") $(cut -d' ' -f1,2 "$state/keys/$h-host_ed25519.pub")"
done >"$dir/fleet_known_hosts"
{
  for h in "${hosts[@]}"; do
    printf 'Host %s\n  HostName %s\n' "$h" "$(addr "$h")"
    [ "$h" = bastion ] || printf 'Host %s-private\n  HostName %s\n  ProxyJump bastion\n' "$h" "$(private_addr "$h")"
  done
  printf 'Host *\n  User %s\n  Port 22\n  IdentityFile %s\n  IdentitiesOnly yes\n' "$fleet_user" "$dir/id_ed25519"
  printf '  UserKnownHostsFile %s\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n' "$dir/fleet_known_hosts"
  printf '  BatchMode yes\n  ConnectTimeout 5\n  LogLevel ERROR\n'
} >"$dir/fleet_ssh_config"

log "ready ($dir/fleet.env, $(( ($(date +%s%N) - started) / 1000000 )) ms)"
