#!/usr/bin/env bash
# Controls single hosts of the fleet that fleet-up.sh brought up. HOST is one of lb app1 app2 app3 bastion.
#   fleet-ctl.sh ssh-down HOST      stop that host's sshd listener (new connections are refused; sessions stay)
#   fleet-ctl.sh ssh-up HOST        start it again (same config, same host key)
#   fleet-ctl.sh cut HOST           kill the established SSH sessions to HOST (every sshd process in its network
#                                   namespace but the listener): connections drop mid-run, the next one works
#   fleet-ctl.sh docker HOST ARGS   the docker CLI against HOST's own daemon (not the bastion)
#   fleet-ctl.sh exec HOST CMD...   CMD inside HOST's network namespace only (this machine's files and /tmp)
#   fleet-ctl.sh enter HOST CMD...  CMD "on" HOST: its network, mount and UTS namespaces (its /root, /tmp, hostname)
#   fleet-ctl.sh ssh HOST CMD...    ssh nrfleet@HOST (the deploy user) with the test key and the fleet's known hosts (HOST-private for
#                                   the private address through the bastion)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=fleet-lib.sh
. "$(dirname "$0")/fleet-lib.sh"

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 h=${2#nr-}
shift 2
case "$cmd" in ssh) ;; *) case "$h" in lb | app1 | app2 | app3 | bastion) ;; *) echo "fleet-ctl: unknown host '$h' (lb app1 app2 app3 bastion)" >&2; exit 2 ;; esac ;; esac

listener() { # the sshd listener's pid, if it runs
  local p
  p=$(cat "$run/nr-$h/sshd.pid" 2>/dev/null) && proc_is "$p" sshd && echo "$p"
}
need_up() { mountpoint -q "/run/netns/nr-$h" 2>/dev/null || { echo "fleet-ctl: the fleet is not up (scripts/testhost/fleet-up.sh)" >&2; exit 1; }; }

case "$cmd" in
ssh-down)
  if p=$(listener); then
    kill -TERM "$p"
    wait_gone 5 "$p" || { echo "fleet-ctl: pid $p still running" >&2; exit 1; }
  fi
  rm -f "$run/nr-$h/sshd.pid"
  ;;
ssh-up)
  need_up
  listener >/dev/null && exit 0
  rm -f "$run/nr-$h/sshd.pid"
  mkdir -p /run/sshd
  nsenter --net="/run/netns/nr-$h" --mount="$run/ns/$h.mnt" --uts="$run/ns/$h.uts" -- \
    /usr/sbin/sshd -f "$state/$h/sshd_config" -E "$state/$h/sshd.log" </dev/null
  for _ in $(seq 1 50); do listener >/dev/null && exit 0; sleep 0.1; done
  tail -5 "$state/$h/sshd.log" >&2
  echo "fleet-ctl: sshd on nr-$h did not start" >&2
  exit 1
  ;;
cut)
  need_up
  net="net:[$(stat -L -c %i "/run/netns/nr-$h")]"
  keep=$(listener || echo none)
  # (find fails on the processes that exit while it runs.)
  pids=$({ find /proc/[0-9]*/ns/net -maxdepth 0 -printf '%p %l\n' 2>/dev/null || true; } | awk -v n="$net" '$2 == n { split($1, f, "/"); print f[3] }' |
    while read -r p; do
      c=$(cat "/proc/$p/comm" 2>/dev/null) || continue
      case "$c" in sshd | sshd-session | sshd-auth) [ "$p" = "$keep" ] || echo "$p" ;; esac
    done)
  # shellcheck disable=SC2086 # $pids: process ids, one word each
  if [ -n "$pids" ]; then
    kill -KILL $pids 2>/dev/null || true
    wait_gone 5 $pids || { echo "fleet-ctl: pid(s) $pids still running" >&2; exit 1; }
  fi
  # shellcheck disable=SC2086 # counting the words of $pids
  echo "fleet-ctl: cut $(echo $pids | wc -w) sshd process(es) on nr-$h"
  ;;
docker)
  [ "$h" != bastion ] || { echo "fleet-ctl: the bastion runs no dockerd" >&2; exit 2; }
  exec docker -H "unix://$run/nr-$h/docker.sock" "$@"
  ;;
exec)
  need_up
  exec nsenter --net="/run/netns/nr-$h" -- "$@"
  ;;
enter)
  need_up
  exec nsenter --net="/run/netns/nr-$h" --mount="$run/ns/$h.mnt" --uts="$run/ns/$h.uts" -- "$@"
  ;;
ssh)
  exec ssh -F "$dir/fleet_ssh_config" "$h" "$@"
  ;;
*) usage ;;
esac
