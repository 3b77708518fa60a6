#!/bin/sh
# Test app for nginx-rollout: busybox httpd on $PORT. Behaviour knobs (env):
#   SLOW_START seconds to wait before listening (an app that starts slowly)
#   IGNORE_TERM=1 keeps serving on SIGTERM (docker stop then waits its full timeout)
#   CRASH_AFTER seconds after which the app dies by itself
#   CRASH_AFTER_POSTS the app dies while answering that many POSTs (an app that crashes once it has traffic)
#   NOT_FOUND routes under /cgi-bin/ this version lacks (space-separated, e.g. 'echo'): they answer 404
#   ERROR_PERCENT the /cgi-bin/ routes answer 500 to about this percent of requests (a steadily flaky app)
#   SLOW_FACTOR the /cgi-bin/ routes take this many times as long (a slow version); HANG_ON routes under
#     /cgi-bin/ that never answer (space-separated, e.g. 'echo'): see the file flaky
#   UNHEALTHY_ON an IPv4 address written with dashes (10-0-0-5): on a host that has it, /health answers 404
#     (a fault on one host of several). Dashes: the action masks env values, and a dotted one would mask the
#     host's address wherever the run prints it.
[ -n "$SLOW_START" ] && sleep "$SLOW_START"
if [ -n "$UNHEALTHY_ON" ]; then
  # shellcheck disable=SC2086 # split on the dashes
  unhealthy_on=$(IFS=-; set -- $UNHEALTHY_ON; echo "$1.$2.$3.$4")
  case $(cat /proc/net/fib_trie 2>/dev/null) in *"-- $unhealthy_on"[!0-9.]*) rm -f /www/health ;; esac
fi
for route in $NOT_FOUND; do rm -f "/www/cgi-bin/$route"; done
httpd -f -p "${PORT:-8080}" -h /www &
pid=$!
echo $pid >/app/httpd.pid
[ -n "$CRASH_AFTER" ] && (sleep "$CRASH_AFTER"; kill -KILL $pid) &
if [ "$IGNORE_TERM" = 1 ]; then
  trap '' TERM
else
  trap 'kill -TERM $pid; exit 0' TERM INT
fi
while kill -0 $pid 2>/dev/null; do wait $pid; done
