#!/bin/sh
# The image's HEALTHCHECK: /readyz on the address the entrypoint made nginx
# listen on (OCIMIRROR_LISTEN), through loopback when that is every
# address.
set -eu
listen=${OCIMIRROR_LISTEN:-5000}
port=${listen##*:}
host=${listen%:*}
case $listen in
    *:*) ;;
    *) host= ;;
esac
case $host in
    "" | "*" | 0.0.0.0) host=127.0.0.1 ;;
    "[::]") host="[::1]" ;;
esac
exec curl -gfsS -o /dev/null --max-time 3 "http://$host:$port/readyz"
