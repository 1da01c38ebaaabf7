#!/usr/bin/env bash
# Unpack Debian's nginx source into DEST (for `make nginx-asan`), through
# apt from Debian's archive only: the deb-src lines are added by
# scripts/install-deps.sh.
#
# The version is the installed nginx's if the archive still serves it,
# else the newest Debian revision of the same upstream release: the suite
# must test the nginx it also runs as /usr/sbin/nginx, and an archive
# drops a superseded revision's files (a security update's source can 404
# while its Sources entry is still listed).
set -euo pipefail

dest=${1:?usage: nginx-source.sh DEST}
installed=$(dpkg-query -W -f='${Version}' nginx 2>/dev/null || true)
[ -n "$installed" ] || { echo "nginx-source: nginx is not installed" \
                              "(run make deps)" >&2; exit 1; }
upstream=${installed%%-*}
upstream=${upstream#*:}

# the installed version first, then the others of this upstream release,
# newest first (apt-cache lists each Sources entry once per suite)
candidates=$( { echo "$installed"
                apt-cache showsrc nginx 2>/dev/null |
                    sed -n 's/^Version: //p' |
                    grep -E "^([0-9]+:)?${upstream//./\\.}-" |
                    sort -Vru; } | awk '!seen[$0]++')
[ -n "$candidates" ] || { echo "nginx-source: no deb-src for nginx" \
                               "(run make deps)" >&2; exit 1; }

work=$(mktemp -d "${dest%/}.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=
for v in $candidates; do
    if log=$(cd "$work" && apt-get source -qq nginx="$v" 2>&1); then
        tree=$(find "$work" -mindepth 1 -maxdepth 1 -type d \
                    -name "nginx-$upstream")
        [ -n "$tree" ] && [ -x "$tree/configure" ] || break
        rm -rf "$dest"
        mv "$tree" "$dest"
        echo "$v" > "$dest/.debian-version"
        echo "nginx-source: Debian nginx $v in $dest"
        exit 0
    fi
    echo "nginx-source: nginx $v not available, trying another" >&2
    rm -rf "${work:?}"/*
done
[ -z "$log" ] || echo "$log" >&2
echo "nginx-source: could not get Debian's nginx $upstream source" >&2
exit 1
