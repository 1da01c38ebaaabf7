#!/bin/sh
# Start the fetcher and nginx; stop both when either ends or on a signal.
#   OCIMIRROR_CONFIG  the config file (/etc/ocimirror/ocimirror.cfg)
#   OCIMIRROR_LISTEN  nginx's listen address: a port, or address:port
#                     (5000: every address)
set -eu
cfg=${OCIMIRROR_CONFIG:-/etc/ocimirror/ocimirror.cfg}
listen=${OCIMIRROR_LISTEN:-5000}

# nginx reads the include through conf.d, written at each start from the
# one in /etc/ocimirror (which may be mounted read-only), with this
# container's listen address and config file.
sed -e "s|listen 127.0.0.1:5000;|listen $listen;|" \
    -e "s|ocimirror_config /etc/ocimirror/ocimirror.cfg;|ocimirror_config $cfg;|" \
    /etc/ocimirror/ocimirror-nginx.conf > /etc/nginx/conf.d/ocimirror.conf

/usr/sbin/ocimirror-fetcher --check -c "$cfg"
/usr/sbin/nginx -t -q

su -s /bin/sh www-data -c "exec /usr/sbin/ocimirror-fetcher -c '$cfg'" &
fetcher=$!
/usr/sbin/nginx -g 'daemon off;' &
nginx=$!

trap 'kill -TERM $fetcher $nginx 2>/dev/null' INT TERM
# Whichever ends first ends the container (the orchestrator restarts it).
while kill -0 $fetcher 2>/dev/null && kill -0 $nginx 2>/dev/null; do
    sleep 1
done
kill -TERM $fetcher $nginx 2>/dev/null || true
wait
