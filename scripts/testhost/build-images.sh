#!/usr/bin/env bash
# Builds the local test images FROM scratch (there is no image registry here), as $TESTHOST_IMAGE_PREFIX/...
# (default nginx-rollout-test/...):
#   app:v1 v2 v3 v4   busybox httpd app: GET / and /health, POST /cgi-bin/echo, /cgi-bin/slow (0.4 s)
#   app:unhealthy  same app without /health, so its health gate never passes
#   app:docker-unhealthy  serves /health but its Docker HEALTHCHECK always fails
#   app:broken     passes /health but answers 500 on every real route
#   nginx:test     Debian's nginx binary and the libraries ldd lists
# --list prints the image names and builds nothing. A build that fails shows docker's own words.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib/strict.sh
. "$here/../lib/strict.sh"
prefix=${TESTHOST_IMAGE_PREFIX:-nginx-rollout-test}
apps=(v1 v2 v3 v4 unhealthy broken docker-unhealthy)
if [ "${1:-}" = --list ]; then
  printf "$prefix/app:%s\n" "${apps[@]}"
  echo "$prefix/nginx:test"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

app_rootfs() { # $1 = dir, $2 = version
  local r=$1/rootfs
  mkdir -p "$r/bin" "$r/www/cgi-bin" "$r/app" "$r/tmp" "$r/etc"
  cp /bin/busybox "$r/bin/busybox"
  for t in sh httpd sleep cat head printf kill wget true false rm od; do ln -sf busybox "$r/bin/$t"; done
  install -m 0755 "$here/app/start.sh" "$r/app/start.sh"
  install -m 0644 "$here/app/flaky" "$r/app/flaky"
  for c in slow long echo fail; do install -m 0755 "$here/app/$c" "$r/www/cgi-bin/$c"; done
  printf '%s\n' "$2" >"$r/www/version"
  printf '%s\n' "$2" >"$r/www/index.html"
  printf 'ok\n' >"$r/www/health"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
}

build_app() { # $1 = tag, $2 = version, $3 = extra Dockerfile lines, $4 = setup hook
  local d=$work/app-$1
  mkdir -p "$d"
  app_rootfs "$d" "$2"
  [ -n "${4:-}" ] && "$4" "$d/rootfs"
  printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nLABEL nginx-rollout-test.build=%s\n%s\nCMD ["/bin/sh", "/app/start.sh"]\n' "${TESTHOST_BUILD:-}" "${3:-}" >"$d/Dockerfile"
  quietly "building $prefix/app:$1" docker build -q --network host -t "$prefix/app:$1" "$d"
}

no_health() { rm -f "$1/www/health"; }
# Healthy on /health, 500 on every real route: GET / runs cgi-bin/index.cgi (no index.html), the rest fail too.
broken_routes() {
  rm -f "$1/www/index.html"
  cp "$1/www/cgi-bin/fail" "$1/www/cgi-bin/index.cgi"
  for c in slow echo; do cp "$1/www/cgi-bin/fail" "$1/www/cgi-bin/$c"; done
}

build_app v1 v1
build_app v2 v2
build_app v3 v3
build_app v4 v4
build_app unhealthy unhealthy "" no_health
build_app broken broken "" broken_routes
build_app docker-unhealthy docker-unhealthy 'HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD ["/bin/false"]'

# nginx: the Debian binary plus exactly the shared libraries it links, busybox for a shell (every official
# nginx image has one), and the official image's layout: nginx.conf including conf.d/*.conf, a default site
# answering localhost on port 80, logs to the container's output.
n=$work/nginx/rootfs
mkdir -p "$n/usr/sbin" "$n/bin" "$n/etc/nginx/conf.d" "$n/var/log/nginx" "$n/run" "$n/tmp" "$n/usr/share/nginx/html" \
  "$n/var/lib/nginx/body" "$n/var/lib/nginx/proxy" "$n/var/lib/nginx/fastcgi" "$n/var/lib/nginx/uwsgi" "$n/var/lib/nginx/scgi"
chmod 1777 "$n/tmp"
cp /usr/sbin/nginx "$n/usr/sbin/nginx"
for lib in $(ldd /usr/sbin/nginx | grep -oE '/[^ ]+'); do
  mkdir -p "$n$(dirname "$lib")"
  cp -L "$lib" "$n$lib"
done
cp /bin/busybox "$n/bin/busybox"
for t in $(/bin/busybox --list); do [ -e "$n/bin/$t" ] || ln -s busybox "$n/bin/$t"; done
cp /etc/nginx/mime.types "$n/etc/nginx/mime.types"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nnginx:x:101:101:nginx:/nonexistent:/bin/false\n' >"$n/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\nnginx:x:101:\n' >"$n/etc/group"
ln -s /dev/stdout "$n/var/log/nginx/access.log"
ln -s /dev/stderr "$n/var/log/nginx/error.log"
printf '<h1>Welcome to nginx!</h1>\n' >"$n/usr/share/nginx/html/index.html"
cat >"$n/etc/nginx/nginx.conf" <<'CONF'
user  nginx;
worker_processes  auto;

error_log  /var/log/nginx/error.log notice;
pid        /run/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /var/log/nginx/access.log  main;

    sendfile        on;
    keepalive_timeout  65;

    include /etc/nginx/conf.d/*.conf;
}
CONF
cat >"$n/etc/nginx/conf.d/default.conf" <<'CONF'
server {
    listen       80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }
}
CONF
printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/sbin:/bin\nLABEL nginx-rollout-test.build=%s\nSTOPSIGNAL SIGQUIT\nCMD ["/usr/sbin/nginx", "-g", "daemon off;"]\n' "${TESTHOST_BUILD:-}" >"$work/nginx/Dockerfile"
quietly "building $prefix/nginx:test" docker build -q --network host -t "$prefix/nginx:test" "$work/nginx"
echo "testhost: test images built: $(docker images --format '{{.Repository}}:{{.Tag}}' | grep -c "^$prefix/")"
