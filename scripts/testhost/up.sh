#!/usr/bin/env bash
# Brings up a throwaway local Docker host for nginx-rollout's end-to-end tests, demo and benchmark:
# installs what is missing, starts dockerd (no bridge, no iptables: every container runs with --network host),
# starts sshd on 127.0.0.1:$TESTHOST_SSH_PORT with an sftp subsystem and a freshly generated key,
# builds the test images, and writes the connection facts to $TESTHOST_DIR/env.
# Idempotent: running it again reuses what is already up.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${TESTHOST_DIR:-$root/.testhost}
port=${TESTHOST_SSH_PORT:-2222}
mkdir -p "$dir"

need=()
command -v dockerd >/dev/null || need+=(docker.io)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/lib/openssh/sftp-server ] || need+=(openssh-sftp-server)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx httpd || need+=(busybox-static)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "testhost: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The nginx package starts a system service where an init system runs (GitHub's Ubuntu runners): the tests
# start their own nginx processes, and the action refuses to guess between two host nginx masters.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
  systemctl stop nginx
  systemctl disable --quiet nginx 2>/dev/null || true
fi

if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "testhost: starting dockerd"
  # No bridge, no NAT: test traffic stays on loopback and containers use host networking.
  nohup dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false >"$dir/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
  docker version --format 'testhost: dockerd {{.Server.Version}}' || { tail -20 "$dir/dockerd.log"; exit 1; }
fi

# The SSH user: root under another name, with a plain /bin/sh. This machine's root runs bash, whose .bashrc
# (pyenv init) costs ~110 ms on every SSH command; a server's deploy user does not pay that.
grep -q '^nrtest:' /etc/passwd || echo 'nrtest:x:0:0:nginx-rollout test host (root with a plain shell):/root:/bin/sh' >>/etc/passwd
grep -q '^nrtest:' /etc/shadow || echo 'nrtest:*:19000:0:99999:7:::' >>/etc/shadow

[ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C nginx-rollout-test -f "$dir/id_ed25519"
[ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C nginx-rollout-testhost -f "$dir/host_ed25519"
cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"
# Stock limits (MaxSessions 10, MaxStartups 10:30:100): the action must work against an sshd as shipped.
cat >"$dir/sshd_config.new" <<CONF
ListenAddress 127.0.0.1:$port
HostKey $dir/host_ed25519
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $dir/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
CONF
mkdir -p /run/sshd
if ! cmp -s "$dir/sshd_config.new" "$dir/sshd_config"; then
  mv -f "$dir/sshd_config.new" "$dir/sshd_config"
  # A running sshd rereads its configuration on SIGHUP.
  [ -f "$dir/sshd.pid" ] && kill -HUP "$(cat "$dir/sshd.pid")" 2>/dev/null && echo "testhost: sshd reconfigured"
else
  rm -f "$dir/sshd_config.new"
fi
sshd_running() { [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; }
if ! sshd_running; then
  /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
  for _ in $(seq 1 20); do [ -f "$dir/sshd.pid" ] && break; sleep 0.1; done
  # Another checkout's test sshd on the same port would answer with its own host key, and every test would
  # fail host key verification: say so here instead.
  if ! sshd_running; then
    echo "testhost: sshd did not start on 127.0.0.1:$port (another checkout's test sshd? stop it or set TESTHOST_SSH_PORT):" >&2
    tail -n 3 "$dir/sshd.log" >&2
    ss -ltnp "sport = :$port" >&2 || true
    exit 1
  fi
  echo "testhost: sshd on 127.0.0.1:$port"
fi

# The images carry a hash of what builds them: a changed build script or app rebuilds them.
build=$(cat "$here/build-images.sh" "$here"/app/* | sha256sum | cut -c1-12)
built=$(docker image inspect --format '{{index .Config.Labels "nginx-rollout-test.build"}}' nginx-rollout-test/nginx:test nginx-rollout-test/app:v1 nginx-rollout-test/app:broken 2>/dev/null | sort -u)
if [ "${TESTHOST_REBUILD:-0}" = 1 ] || [ "$built" != "$build" ]; then
  TESTHOST_BUILD=$build "$here/build-images.sh" 2>/dev/null
fi

fingerprint=$(ssh-keygen -lf "$dir/host_ed25519.pub" | awk '{print $2}')
cat >"$dir/env" <<ENV
TESTHOST_SSH_HOST=127.0.0.1
TESTHOST_SSH_PORT=$port
TESTHOST_SSH_USER=nrtest
TESTHOST_SSH_KEY=$dir/id_ed25519
TESTHOST_FINGERPRINT=$fingerprint
ENV
echo "testhost: ready ($dir/env)"
