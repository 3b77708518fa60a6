# shellcheck shell=bash
# The sudoers lines of docs/vps.md, for a user and its apps: what the test hosts give their non-root deploy
# users, and nothing else (a unit test holds them to the docs' block, word for word).
# nginx_rollout_sudoers USER APP...
nginx_rollout_sudoers() {
  local user=$1 app
  shift
  echo "$user ALL=(root) NOPASSWD: /usr/sbin/nginx -T, /usr/sbin/nginx -t, /usr/sbin/nginx -s reload"
  for app in "$@"; do
    echo "$user ALL=(root) NOPASSWD: /usr/bin/tee /etc/nginx/conf.d/$app.conf, /usr/bin/rm -f /etc/nginx/conf.d/$app.conf"
    echo "$user ALL=(root) NOPASSWD: /usr/bin/truncate -s 0 /var/log/nginx/nginx-rollout-$app.log"
  done
}
