#!/bin/sh
# Start the fetcher and nginx; stop both when either ends or on a signal.
set -eu
cfg=${OCIMIRROR_CONFIG:-/etc/ocimirror/ocimirror.cfg}

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
