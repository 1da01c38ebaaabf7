#!/usr/bin/env bash
# `make run`: serve a pull-through mirror from this checkout until Ctrl-C.
#
#   CONFIG=file.cfg   libconfig file to use as it is (default: a copy of
#                     conf/ocimirror.cfg with its store and socket under ./var)
#   LISTEN=addr:port  where nginx listens (default 127.0.0.1:5000)
#
# Everything it starts (the fetcher, nginx) is stopped on Ctrl-C / SIGTERM.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
var="$top/var"
listen=${LISTEN:-127.0.0.1:5000}
module="$top/build/ngx_http_ocimirror_module.so"
fetcher="$top/build/ocimirror-fetcher"

mkdir -p "$var/nginx/logs" "$var/nginx/tmp" "$var/run" "$var/store"

if [ -n "${CONFIG:-}" ]; then
    cfg=$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")
else
    cfg="$var/ocimirror.cfg"
    # Started by another user than root, the fetcher and nginx's workers
    # are that user: the packaged socket_group (www-data) is not needed,
    # and a user outside it could not give it to the socket.
    keep_group=()
    [ "$(id -u)" -eq 0 ] || keep_group=(-e '/^[[:space:]]*socket_group[[:space:]]*=/d')
    sed -e "s|\"/var/cache/ocimirror\"|\"$var/store\"|" \
        -e "s|\"/run/ocimirror/fetcher.sock\"|\"$var/run/fetcher.sock\"|" \
        "${keep_group[@]}" "$top/conf/ocimirror.cfg" > "$cfg"
fi

"$fetcher" --check -c "$cfg"

# nginx refuses to run workers as root unless told; a development server
# started by root keeps root's access to ./var.  Deployments use the
# systemd units in conf/, where workers run as www-data.
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"

sed -e "s|listen 127.0.0.1:5000;|listen $listen;|" \
    -e "s|/etc/ocimirror/ocimirror.cfg|$cfg|" \
    -e "s|/var/log/nginx/ocimirror-access.log|$var/nginx/logs/access.log|" \
    "$top/conf/ocimirror-nginx.conf" > "$var/nginx/ocimirror-nginx.conf"

cat > "$var/nginx/nginx.conf" <<CONF
load_module $module;
$user_line
worker_processes auto;
error_log $var/nginx/logs/error.log info;
pid $var/nginx/nginx.pid;
daemon off;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    access_log $var/nginx/logs/access.log;
    client_body_temp_path $var/nginx/tmp/body;
    proxy_temp_path $var/nginx/tmp/proxy;
    fastcgi_temp_path $var/nginx/tmp/fastcgi;
    uwsgi_temp_path $var/nginx/tmp/uwsgi;
    scgi_temp_path $var/nginx/tmp/scgi;
    include $var/nginx/ocimirror-nginx.conf;
}
CONF

/usr/sbin/nginx -t -q -p "$var/nginx" -c "$var/nginx/nginx.conf"

pids=()
stop() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    echo "ocimirror stopped"
}
trap stop INT TERM EXIT

"$fetcher" -c "$cfg" 2> >(tee -a "$var/fetcher.log" >&2) &
pids+=($!)
/usr/sbin/nginx -p "$var/nginx" -c "$var/nginx/nginx.conf" &
pids+=($!)

echo "ocimirror serving on http://$listen (config $cfg, logs in $var)"
echo "Look inside: $top/build/ocimirrorctl -c $cfg status (or du, help)"
echo "Ctrl-C stops it."
wait -n "${pids[@]}" || true
