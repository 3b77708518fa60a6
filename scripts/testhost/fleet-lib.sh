# shellcheck shell=bash
# Sourced by fleet-up.sh, fleet-down.sh and fleet-ctl.sh: where the fleet lives, its hosts, and the process
# checks all three need.
# shellcheck disable=SC2034 # used by the scripts that source this
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${TESTHOST_DIR:-$root/.testhost}
state=/var/lib/nr-fleet # persistent: host keys, docker data, homes, registry storage
run=/run/nr-fleet       # sockets, pidfiles, exec roots, namespace files
hosts=(lb app1 app2 app3 bastion)
fleet_user=nrfleet # the ssh user: not root, in the docker group
docker_hosts=(lb app1 app2 app3)

# Whether pid $1 is a live process (not a zombie: pid 1 here can take seconds to reap them) named $2.
proc_is() { # pid, comm
  local s
  [ -n "$1" ] && s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  local state=${s##*) } comm=${s#*(}
  comm=${comm%)*}
  [ "$comm" = "$2" ] && [ "${state%% *}" != Z ] && [ "${state%% *}" != X ]
}
pid_of() { # pidfile, comm: the recorded pid if that process is still what was started
  local p
  p=$(cat "$1" 2>/dev/null) && proc_is "$p" "$2" && echo "$p"
}
live() { # pid: running (a zombie, which pid 1 here may never reap, counts as gone)
  local s
  s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [ "${s%% *}" != Z ] && [ "${s%% *}" != X ]
}
wait_gone() { # seconds, pids...
  local n=$(($1 * 10)) p left
  shift
  for _ in $(seq 1 "$n"); do
    left=0
    for p; do live "$p" && left=1; done
    [ $left = 0 ] && return 0
    sleep 0.1
  done
  return 1
}
# Run a command "on" a host: inside its network, mount and UTS namespaces.
enter() {
  local h=$1
  shift
  nsenter --net="/run/netns/nr-$h" --mount="$run/ns/$h.mnt" --uts="$run/ns/$h.uts" -- "$@"
}
