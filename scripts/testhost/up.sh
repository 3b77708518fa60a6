#!/usr/bin/env bash
# Brings up a throwaway local Docker host for nginx-rollout's end-to-end tests, demo and benchmark:
# installs what is missing, starts dockerd (no bridge, no iptables: every container runs with --network host),
# starts sshd on 127.0.0.1:$TESTHOST_SSH_PORT with an sftp subsystem and a freshly generated key,
# builds the test images, and writes the connection facts to $TESTHOST_DIR/env.
# Idempotent, and safe after a run killed midway: what is up and whole is reused, the rest is made again.
#
# Settings (environment), all optional; fresh-check.sh uses them to set up a second host from nothing:
#   TESTHOST_DIR           state folder (keys, sshd config, logs, env)       default: <repo>/.testhost
#   TESTHOST_SSH_PORT      the test sshd's port on 127.0.0.1                  default: 2222
#   TESTHOST_USER          the SSH user (root under another name)             default: nrtest
#   TESTHOST_DEPLOY_USER   a second SSH user, not root, in the docker group, with only docs/vps.md's sudoers
#                          lines for the apps the host-mode suites deploy          default: nrdeploy
#   TESTHOST_IMAGE_PREFIX  repository prefix of the test images               default: nginx-rollout-test
#   TESTHOST_OWN_DOCKERD   1: a dockerd of its own (data, socket and exec root in TESTHOST_DIR) instead of
#                          the machine's; the SSH user's commands reach it through sshd's SetEnv DOCKER_HOST
#   TESTHOST_REBUILD       1: build the images even when they are up to date
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib/strict.sh
. "$here/../lib/strict.sh"
root=$(cd "$here/../.." && pwd)
dir=${TESTHOST_DIR:-$root/.testhost}
port=${TESTHOST_SSH_PORT:-2222}
user=${TESTHOST_USER:-nrtest}
deploy_user=${TESTHOST_DEPLOY_USER:-nrdeploy}
# The apps the suites deploy as the deploy user to the host's own nginx (nginx-mode host, through sudo).
deploy_apps=(e2e-hostnginx e2e-named)
prefix=${TESTHOST_IMAGE_PREFIX:-nginx-rollout-test}
say() { echo "testhost: $*"; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# ---- packages -------------------------------------------------------------------------------------------
need=()
command -v dockerd >/dev/null || need+=(docker.io)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/lib/openssh/sftp-server ] || need+=(openssh-sftp-server)
# (grep -q would stop reading at the match: busybox then dies of SIGPIPE, the pipeline fails and the package
# was installed again now and then.)
{ [ -x /bin/busybox ] && /bin/busybox --list | grep -x httpd >/dev/null; } || need+=(busybox-static)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
command -v shellcheck >/dev/null || need+=(shellcheck) # npm test lints every script
command -v sudo >/dev/null || need+=(sudo)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  quietly "apt-get update" apt-get update -qq
  quietly "installing ${need[*]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The nginx package starts a system service where an init system runs (GitHub's Ubuntu runners): the tests
# start their own nginx processes, and the action refuses to guess between two host nginx masters.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
  systemctl stop nginx
  systemctl disable --quiet nginx 2>/dev/null || true
fi

# ---- dockerd ------------------------------------------------------------------------------------------------
# No bridge, no NAT: test traffic stays on loopback and containers use host networking.
dockerd_flags=(--bridge=none --iptables=false --ip-forward=false --ip-masq=false)
docker_log=$dir/dockerd.log
docker_pidfile=/var/run/docker.pid
if [ "${TESTHOST_OWN_DOCKERD:-0}" = 1 ]; then
  export DOCKER_HOST=unix://$dir/docker.sock
  docker_pidfile=$dir/docker.pid
  dockerd_flags+=(--data-root "$dir/docker" --exec-root "$dir/exec" -H "$DOCKER_HOST" --pidfile "$docker_pidfile")
fi
docker_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
docker_pid() { # the pid in dockerd's pid file, if that process still runs
  local p
  p=$(cat "$docker_pidfile" 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
}
if ! docker_answers; then
  # A dockerd still starting or stopping (a run killed midway took it down) is waited for: it either answers
  # or exits. A pid file whose process is gone would stop a new dockerd from starting.
  if pid=$(docker_pid); then
    say "waiting for dockerd (pid $pid), which runs but does not answer yet"
    for _ in $(seq 1 300); do docker_answers && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if ! docker_answers; then
    if pid=$(docker_pid); then
      say "dockerd (pid $pid, pid file $docker_pidfile) runs but does not answer; stop it and run again. Its log ends:" >&2
      tail -n 20 "$docker_log" 2>/dev/null | sed 's/^/  | /' >&2
      exit 1
    fi
    rm -f "$docker_pidfile"
    say "starting dockerd"
    echo "---- $(date -Is) dockerd ${dockerd_flags[*]}" >>"$docker_log"
    nohup dockerd "${dockerd_flags[@]}" >>"$docker_log" 2>&1 &
    for _ in $(seq 1 300); do docker_answers && break; sleep 0.1; done
    if ! docker_answers; then
      say "dockerd did not answer within 30 s; its log ($docker_log) ends:" >&2
      tail -n 20 "$docker_log" | sed 's/^/  | /' >&2
      exit 1
    fi
    docker version --format 'testhost: dockerd {{.Server.Version}}'
  fi
fi

# ---- the SSH user and keys ----------------------------------------------------------------------------------
# The SSH user: root under another name, with a plain /bin/sh. This machine's root runs bash, whose .bashrc
# (pyenv init) costs ~110 ms on every SSH command; a server's deploy user does not pay that.
grep -q "^$user:" /etc/passwd || echo "$user:x:0:0:nginx-rollout test host (root with a plain shell):/root:/bin/sh" >>/etc/passwd
grep -q "^$user:" /etc/shadow || echo "$user:*:19000:0:99999:7:::" >>/etc/shadow
# The deploy user, as docs/vps.md sets one up: not root, in the docker group, sudo only for the docs' lines.
# shellcheck source-path=SCRIPTDIR source=deploy-user.sh
. "$here/deploy-user.sh"
add_deploy_user "$deploy_user" "/home/$deploy_user"
deploy_home=$(getent passwd "$deploy_user" | cut -d: -f6)
chown "$deploy_user:" "$deploy_home"
nginx_rollout_sudoers "$deploy_user" "${deploy_apps[@]}" >"$dir/sudoers.new"
quietly "checking the sudoers lines" visudo -cq -f "$dir/sudoers.new"
install -m 440 "$dir/sudoers.new" "/etc/sudoers.d/nginx-rollout-test-$deploy_user"
rm -f "$dir/sudoers.new"

# A key is made again unless both halves are there and belong together (a run killed inside ssh-keygen
# leaves a half).
keypair() { # path, comment
  if [ -s "$1" ] && [ -s "$1.pub" ] && [ "$(ssh-keygen -y -f "$1" 2>/dev/null | cut -d' ' -f2)" = "$(cut -d' ' -f2 "$1.pub")" ]; then return 0; fi
  rm -f "$1" "$1.pub"
  quietly "generating $1" ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1"
}
keypair "$dir/id_ed25519" nginx-rollout-test
keypair "$dir/host_ed25519" nginx-rollout-testhost
cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"
install -d -m 700 -o "$deploy_user" -g "$deploy_user" "$deploy_home/.ssh"
install -m 600 -o "$deploy_user" -g "$deploy_user" "$dir/id_ed25519.pub" "$deploy_home/.ssh/authorized_keys"

# ---- sshd ---------------------------------------------------------------------------------------------------
# Stock limits (MaxSessions 10, MaxStartups 10:30:100): the action must work against an sshd as shipped.
{
  echo "ListenAddress 127.0.0.1:$port"
  echo "HostKey $dir/host_ed25519"
  # The deploy user's key where a server keeps it (sshd reads it as that user).
  echo "AuthorizedKeysFile $dir/authorized_keys .ssh/authorized_keys"
  echo "PermitRootLogin prohibit-password"
  echo "PasswordAuthentication no"
  echo "KbdInteractiveAuthentication no"
  echo "UsePAM no"
  echo "StrictModes no"
  echo "PidFile $dir/sshd.pid"
  echo "Subsystem sftp /usr/lib/openssh/sftp-server"
  if [ "${TESTHOST_OWN_DOCKERD:-0}" = 1 ]; then echo "SetEnv DOCKER_HOST=$DOCKER_HOST"; fi
} >"$dir/sshd_config.new"
mkdir -p /run/sshd
quietly "checking the sshd configuration" /usr/sbin/sshd -t -f "$dir/sshd_config.new"
sshd_running() { [ -s "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; }
if ! cmp -s "$dir/sshd_config.new" "$dir/sshd_config"; then
  mv -f "$dir/sshd_config.new" "$dir/sshd_config"
  # A running sshd rereads its configuration on SIGHUP.
  if sshd_running; then
    kill -HUP "$(cat "$dir/sshd.pid")"
    say "sshd reconfigured"
  fi
else
  rm -f "$dir/sshd_config.new"
fi
if ! sshd_running; then
  rm -f "$dir/sshd.pid"
  /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
  for _ in $(seq 1 20); do [ -s "$dir/sshd.pid" ] && break; sleep 0.1; done
  # Another checkout's test sshd on the same port would answer with its own host key, and every test would
  # fail host key verification: say so here instead.
  if ! sshd_running; then
    say "sshd did not start on 127.0.0.1:$port (another checkout's test sshd? stop it or set TESTHOST_SSH_PORT):" >&2
    tail -n 3 "$dir/sshd.log" >&2
    ss -ltnp "sport = :$port" >&2 || true
    exit 1
  fi
  say "sshd on 127.0.0.1:$port"
fi

# ---- test images --------------------------------------------------------------------------------------------
# The images carry a hash of what builds them: a changed build script or app rebuilds them, and so does any
# image missing (a new machine, or a build killed midway).
build=$(cat "$here/build-images.sh" "$here"/app/* | sha256sum | cut -c1-12)
stale=()
for image in $(TESTHOST_IMAGE_PREFIX=$prefix "$here/build-images.sh" --list); do
  label=$(docker image inspect --format '{{index .Config.Labels "nginx-rollout-test.build"}}' "$image" 2>/dev/null) || label=missing
  [ "$label" = "$build" ] || stale+=("$image")
done
if [ "${TESTHOST_REBUILD:-0}" = 1 ] || [ ${#stale[@]} -gt 0 ]; then
  say "building the test images (${#stale[@]} missing or out of date)"
  TESTHOST_BUILD=$build TESTHOST_IMAGE_PREFIX=$prefix "$here/build-images.sh"
fi

fingerprint=$(ssh-keygen -lf "$dir/host_ed25519.pub" | awk '{print $2}')
{
  echo "TESTHOST_SSH_HOST=127.0.0.1"
  echo "TESTHOST_SSH_PORT=$port"
  echo "TESTHOST_SSH_USER=$user"
  echo "TESTHOST_DEPLOY_USER=$deploy_user"
  echo "TESTHOST_DEPLOY_HOME=$deploy_home"
  echo "TESTHOST_SSH_KEY=$dir/id_ed25519"
  echo "TESTHOST_FINGERPRINT=$fingerprint"
  echo "TESTHOST_IMAGE_PREFIX=$prefix"
  if [ "${TESTHOST_OWN_DOCKERD:-0}" = 1 ]; then echo "TESTHOST_DOCKER_HOST=$DOCKER_HOST"; fi
} >"$dir/env.new"
mv -f "$dir/env.new" "$dir/env"
say "ready ($dir/env)"
