#!/usr/bin/env bash
# Brings up "vps": a host as the common VPS has it, for the end-to-end test of nginx-mode auto and sudo
# (__tests__/e2e/vps.test.ts). Debian's nginx runs as a host process with a site of its own in sites-enabled,
# and a user "deploy" (not root, in the docker group) logs in over SSH with only the sudoers lines of
# docs/vps.md (in /etc/sudoers.d/nginx-rollout; VPS_SUDOERS=none leaves them out).
#
#   root namespace  nrv-vps 169.254.77.61/30   <-veth->   vps: eth0 169.254.77.62/30, sshd on :22, nginx on :80
#
# vps is a network namespace (nr-vps) plus its own mount, PID and UTS namespaces, so that /etc/nginx,
# /var/log/nginx, /run, /etc/sudoers.d, /etc/passwd, /etc/group, /etc/shadow, /etc/hosts, /home and /tmp are its own (bind mounts of
# /var/lib/nr-vps/...), where the distribution puts them, and its nginx and sshd are the only processes it sees.
# Docker is the test host's own dockerd (its socket bound into vps's /run): replicas run with --network host in
# the root namespace and nginx reaches them at 169.254.77.61 (upstream-host).
# Idempotent: a vps that is up is torn down and brought up again from the same keys (a clean host each time).
# Writes $TESTHOST_DIR/vps.env. Torn down by vps-down.sh.
# shellcheck source-path=SCRIPTDIR source=../lib/strict.sh
. "$(dirname "$0")/../lib/strict.sh"
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${TESTHOST_DIR:-$root/.testhost}
state=/var/lib/nr-vps
sudoers=${VPS_SUDOERS:-docs}
log() { echo "vps: $*"; }

[ -f "$dir/id_ed25519.pub" ] || {
  echo "vps-up.sh: no $dir/id_ed25519.pub: bring the test host up first (scripts/testhost/up.sh)" >&2
  exit 1
}
command -v sudo >/dev/null || quietly 'installing sudo' env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends sudo
[ -x /usr/sbin/nginx ] || quietly 'installing nginx' env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx

"$here/vps-down.sh" --keep-keys

# ---- the host's files -------------------------------------------------------------------------------------
mkdir -p "$state/keys" && chmod 700 "$state/keys"
[ -f "$state/keys/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C nr-vps -f "$state/keys/host_ed25519"
fs=$state/fs
mkdir -p "$fs"/{etc,log,home/deploy/.ssh,tmp,sudoers.d,run-saved}
chmod 1777 "$fs/tmp"
# The distribution's configuration, as its package installs it (nginx.conf includes conf.d/*.conf and
# sites-enabled/*), without any site this machine's other suites put there; the user's own site on port 80.
cp -a /etc/nginx "$fs/etc/nginx"
rm -f "$fs"/etc/nginx/sites-enabled/* "$fs"/etc/nginx/conf.d/*
cat >"$fs/etc/nginx/sites-available/other-site" <<'EOF'
# The user's own site, on the port the app uses too, with a server_name of its own.
server {
    listen 80;
    server_name other.test;
    location / { return 200 "other site\n"; }
}
EOF
ln -s ../sites-available/other-site "$fs/etc/nginx/sites-enabled/other-site"
# deploy: uid 2077, in the docker group (the test host's, whose socket is bound in).
cp /etc/passwd "$fs/etc/passwd" && cp /etc/group "$fs/etc/group" && cp -p /etc/shadow "$fs/etc/shadow"
echo 'deploy:x:2077:2077:deploy:/home/deploy:/bin/sh' >>"$fs/etc/passwd"
echo 'deploy:*:20000:0:99999:7:::' >>"$fs/etc/shadow" # no password; an account PAM lets sudo use
printf '127.0.0.1 localhost\n127.0.1.1 nr-vps\n' >"$fs/etc/hosts"
echo 'deploy:x:2077:' >>"$fs/etc/group"
sed -i -E 's/^(docker:x:[0-9]+:)(.*)$/\1\2,deploy/; s/^(docker:x:[0-9]+:),/\1/' "$fs/etc/group"
cp "$dir/id_ed25519.pub" "$fs/home/deploy/.ssh/authorized_keys"
chown -R 2077:2077 "$fs/home/deploy" && chmod 700 "$fs/home/deploy/.ssh"
# The sudoers lines of docs/vps.md for an app "vps-shop" (the suite's app), and nothing else.
if [ "$sudoers" = docs ]; then
  # shellcheck source-path=SCRIPTDIR source=deploy-user.sh
  . "$(dirname "$0")/deploy-user.sh"
  nginx_rollout_sudoers deploy vps-shop >"$fs/sudoers.d/nginx-rollout"
  chmod 440 "$fs/sudoers.d/nginx-rollout"
  visudo -cq -f "$fs/sudoers.d/nginx-rollout"
fi
cat >"$state/sshd_config" <<EOF
ListenAddress 169.254.77.62:22
HostKey $state/keys/host_ed25519
PidFile /run/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers deploy
Subsystem sftp /usr/lib/openssh/sftp-server
EOF

# ---- network ------------------------------------------------------------------------------------------------
ip netns add nr-vps
ip link add nrv-vps type veth peer name eth0 netns nr-vps
ip addr add 169.254.77.61/30 dev nrv-vps
ip link set nrv-vps up
ip -n nr-vps link set lo up
ip -n nr-vps addr add 169.254.77.62/30 dev eth0
ip -n nr-vps link set eth0 up

# ---- the host: mounts, nginx, sshd, as PID 1 of its own PID namespace -----------------------------------------
# shellcheck disable=SC2016 # expanded by the host's own shell
init='set -e
fs=$1; cfg=$2
hostname nr-vps
mount --bind /run/docker.sock "$fs/run-saved/docker.sock" 2>/dev/null || { touch "$fs/run-saved/docker.sock"; mount --bind /run/docker.sock "$fs/run-saved/docker.sock"; }
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/sshd /run/lock && touch /run/docker.sock && mount --bind "$fs/run-saved/docker.sock" /run/docker.sock
mount --bind "$fs/etc/nginx" /etc/nginx
mount --bind "$fs/log" /var/log/nginx
mount --bind "$fs/sudoers.d" /etc/sudoers.d
mount --bind "$fs/etc/passwd" /etc/passwd
mount --bind "$fs/etc/group" /etc/group
mount --bind "$fs/etc/shadow" /etc/shadow
mount --bind "$fs/etc/hosts" /etc/hosts
mount --bind "$fs/home" /home
mount --bind "$fs/tmp" /tmp
/usr/sbin/nginx
/usr/sbin/sshd -D -f "$cfg" -E "$fs/sshd.log" &
trap "kill -TERM \$! 2>/dev/null; /usr/sbin/nginx -s stop 2>/dev/null; exit 0" TERM INT
while :; do wait || true; done'
touch "$fs/run-saved/docker.sock"
nsenter --net=/run/netns/nr-vps -- unshare --mount --propagation private --pid --fork --mount-proc --uts \
  bash -c "$init" vps-init "$fs" "$state/sshd_config" </dev/null >"$state/init.log" 2>&1 &
echo $! >"$state/unshare.pid"

fingerprint=$(ssh-keygen -lf "$state/keys/host_ed25519.pub" | awk '{ print $2 }')
for _ in $(seq 1 100); do
  if ssh-keyscan -T 1 -t ed25519 169.254.77.62 2>/dev/null | grep -q ssh-ed25519; then break; fi
  sleep 0.1
done
ssh-keyscan -T 2 -t ed25519 169.254.77.62 2>/dev/null | grep -q ssh-ed25519 || {
  echo "vps-up.sh: sshd on 169.254.77.62:22 does not answer; $state/init.log and $fs/sshd.log say:" >&2
  cat "$state/init.log" "$fs/sshd.log" >&2 2>/dev/null || true
  exit 1
}
cat >"$dir/vps.env" <<EOF
VPS_SSH_HOST=169.254.77.62
VPS_SSH_PORT=22
VPS_SSH_USER=deploy
VPS_SSH_KEY=$dir/id_ed25519
VPS_FINGERPRINT=$fingerprint
VPS_UPSTREAM=169.254.77.61
VPS_FS=$fs
VPS_SUDOERS=$sudoers
EOF
log "up: ssh deploy@169.254.77.62 ($fingerprint), nginx with $fs/etc/nginx, sudoers: $sudoers"
