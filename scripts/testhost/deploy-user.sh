# shellcheck shell=bash
# A server's deploy user as docs/vps.md sets one up, for the test hosts: not root, in the docker group, and
# sudo for the docs' lines only (a unit test holds nginx_rollout_sudoers to the docs' block, word for word).

# add_deploy_user USER HOME: the user, its home HOME (made here if missing), in the docker group, with no
# password yet not locked ('!'): sshd without PAM refuses a locked account even a key. Idempotent.
add_deploy_user() {
  local user=$1 home=$2
  getent group docker >/dev/null || groupadd --system docker
  id -u "$user" >/dev/null 2>&1 ||
    quietly "adding the user $user" useradd --home-dir "$home" --shell /bin/sh --groups docker "$user"
  id -nG "$user" | tr ' ' '\n' | grep -qx docker || usermod -aG docker "$user"
  usermod -p '*' "$user"
  mkdir -p "$home"
}

# nginx_rollout_sudoers USER APP...: the sudoers lines of docs/vps.md for USER and its apps.
nginx_rollout_sudoers() {
  local user=$1 app
  shift
  echo "$user ALL=(root) NOPASSWD: /usr/sbin/nginx -T, /usr/sbin/nginx -t, /usr/sbin/nginx -s reload"
  for app in "$@"; do
    echo "$user ALL=(root) NOPASSWD: /usr/bin/tee /etc/nginx/conf.d/$app.conf, /usr/bin/rm -f /etc/nginx/conf.d/$app.conf"
    echo "$user ALL=(root) NOPASSWD: /usr/bin/truncate -s 0 /var/log/nginx/nginx-rollout-$app.log"
    echo "$user ALL=(root) NOPASSWD: /usr/bin/truncate -s 0 /var/log/nginx/nginx-rollout-$app.switched-back, /usr/bin/rm -f /var/log/nginx/nginx-rollout-$app.switched-back"
  done
}
