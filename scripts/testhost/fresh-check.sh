#!/usr/bin/env bash
# A check that cannot go green on a warm machine: sets up a second test host from nothing, beside the usual
# one, the way a new machine's first `npm test` does: a new state folder, port, SSH user and image prefix,
# and a dockerd of its own with an empty data root (so no image, key or daemon of an earlier run helps).
# The first set-up is killed midway (while it builds images), as a cancelled run would be; the next must
# finish from that half-done state, and a third must find everything up and build nothing. Then it checks
# what the tests rely on (every image, an SSH login with the host key checked, docker over that login)
# and removes everything it made. Only the packages are the machine's own (a new machine installs them
# through the same lines of up.sh).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib/strict.sh
. "$here/../lib/strict.sh"
say() { echo "fresh-check: $*"; }
dir=$(mktemp -d /tmp/nr-fresh.XXXXXX) # short: dockerd's sockets live under it
user=nrfresh
deploy_user=nrfreshd
prefix=nr-fresh-$$
port=
for p in $(shuf -i 20000-29999 -n 50); do
  if ! ss -Htln "sport = :$p" | grep -q .; then port=$p && break; fi
done
[ -n "$port" ] || { say "no free port in 20000-29999" >&2; exit 1; }
export TESTHOST_DIR=$dir TESTHOST_SSH_PORT=$port TESTHOST_USER=$user TESTHOST_DEPLOY_USER=$deploy_user
export TESTHOST_IMAGE_PREFIX=$prefix TESTHOST_OWN_DOCKERD=1

cleanup() {
  local rc=$?
  set +e # remove everything that is there, whatever is not
  trap - ERR
  [ -s "$dir/sshd.pid" ] && kill "$(cat "$dir/sshd.pid")" 2>/dev/null
  if [ -s "$dir/docker.pid" ] && kill "$(cat "$dir/docker.pid")" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$(cat "$dir/docker.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
  fi
  # A dockerd that was killed may leave its mounts behind.
  grep -o " $dir/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$dir"
  sed -i "/^$user:/d" /etc/passwd /etc/shadow
  id -u "$deploy_user" >/dev/null 2>&1 && userdel --remove "$deploy_user" 2>/dev/null
  rm -f "/etc/sudoers.d/nginx-rollout-test-$deploy_user"
  exit "$rc"
}
trap cleanup EXIT

elapsed() { echo "$((($(date +%s%N) - $1) / 1000000))"; }

# 1. From nothing, killed while it builds the images (its own process group: dockerd goes with it).
t=$(date +%s%N)
setsid bash "$here/up.sh" >"$dir/.run1.log" 2>&1 &
first=$!
for _ in $(seq 1 600); do grep -q 'building the test images' "$dir/.run1.log" 2>/dev/null && break; kill -0 $first 2>/dev/null || break; sleep 0.1; done
if ! grep -q 'building the test images' "$dir/.run1.log"; then
  say "the set-up from nothing never reached the image build; it printed:" >&2
  sed 's/^/  | /' "$dir/.run1.log" >&2
  exit 1
fi
sleep 1
kill -TERM -- -$first 2>/dev/null || true
wait $first 2>/dev/null || true
killed_after=$(elapsed "$t")

# 2. From that half-done state, to the end.
t=$(date +%s%N)
if ! bash "$here/up.sh" >"$dir/.run2.log" 2>&1; then
  say "the set-up after a run killed midway failed; it printed:" >&2
  sed 's/^/  | /' "$dir/.run2.log" >&2
  exit 1
fi
second=$(elapsed "$t")

# What the tests rely on.
export DOCKER_HOST=unix://$dir/docker.sock
build=$(cat "$here/build-images.sh" "$here"/app/* | sha256sum | cut -c1-12)
images=$(TESTHOST_IMAGE_PREFIX=$prefix bash "$here/build-images.sh" --list)
for image in $images; do
  label=$(docker image inspect --format '{{index .Config.Labels "nginx-rollout-test.build"}}' "$image" 2>/dev/null) || label=missing
  [ "$label" = "$build" ] || { say "$image: expected build $build, found $label" >&2; exit 1; }
done
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >"$dir/known_hosts"
ssh_out=$(ssh -F /dev/null -p "$port" -i "$dir/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 \
  -o UserKnownHostsFile="$dir/known_hosts" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes \
  "$user@127.0.0.1" "docker image inspect --format '{{.Id}}' $prefix/nginx:test" 2>&1) || {
  say "an SSH login to the new host, running docker there, failed:" >&2
  printf '%s\n' "$ssh_out" | sed 's/^/  | /' >&2
  exit 1
}

# 3. Again: everything is up, nothing is built.
t=$(date +%s%N)
bash "$here/up.sh" >"$dir/.run3.log" 2>&1 || { sed 's/^/  | /' "$dir/.run3.log" >&2; exit 1; }
third=$(elapsed "$t")
if grep -q 'building\|starting dockerd' "$dir/.run3.log"; then
  say "a set-up with everything up did work again:" >&2
  sed 's/^/  | /' "$dir/.run3.log" >&2
  exit 1
fi
say "ok: from nothing, killed at $((killed_after / 1000)).$((killed_after % 1000 / 100)) s while building images;" \
  "finished from there in $((second / 1000)).$((second % 1000 / 100)) s ($(echo "$images" | wc -w) images, SSH and docker checked);" \
  "again in $((third / 1000)).$((third % 1000 / 100)) s, nothing rebuilt"
