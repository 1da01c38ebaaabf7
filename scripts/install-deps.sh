#!/usr/bin/env bash
# Install the Debian packages ocimirror builds and tests with, if missing.
# Idempotent and quiet when everything is there.  With "fuzz", also
# what make fuzz needs.
set -euo pipefail

pkgs=(
    build-essential pkg-config ca-certificates curl
    nginx nginx-dev
    libcurl4-openssl-dev libconfig-dev libjansson-dev libssl-dev zlib1g-dev
    libcmocka-dev
    docker-registry skopeo containerd
    # pulls with the files `ocimirrorctl clients` writes
    # (tests/e2e/test_clients.py); no runtime is started
    podman
    python3 python3-pytest python3-yaml openssl
    # make e2e runs the suite on several pytest workers (Makefile, E2E_JOBS)
    python3-pytest-xdist
    wrk
    # the units' offline check, their user, a fetcher started as it and
    # traced (tests/e2e/test_privileges.py)
    systemd util-linux strace
    # promtool and Prometheus itself, which check the alerting rules and
    # the dashboard of conf/ against a mirror (tests/e2e/test_dashboard.py,
    # which reads the rules with python3-yaml, above); the install starts
    # no Prometheus service (policy-rc.d below)
    prometheus
    # the status page, read in a headless browser
    # (tests/e2e/test_status_page.py)
    chromium chromium-driver python3-selenium
    # the container image built and run (tests/image/): a Debian base
    # made with debootstrap, docker/Dockerfile built and run with buildah
    # (chroot isolation, vfs storage: no runc, no fuse, no daemon)
    debootstrap buildah
)

# make fuzz (not make test, whose corpus replay needs only cc): afl++
if [ "${1:-}" = fuzz ]; then
    pkgs+=(afl++)
fi

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# Debian's nginx source, from which `make nginx-asan` builds nginx itself
# with AddressSanitizer and UBSan for the e2e suite (nginx-dev ships the
# headers only).  apt-get source needs deb-src lines; they are added once,
# for Debian's own archive and this release only.
srclist=/etc/apt/sources.list.d/ocimirror-deb-src.sources
if ! apt-cache showsrc nginx 2>/dev/null | grep -q '^Package: nginx$'; then
    if [ ! -e "$srclist" ]; then
        codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
        key=/usr/share/keyrings/debian-archive-keyring.gpg
        echo "install-deps: adding deb-src lines ($srclist)"
        printf '%s\n' \
            "Types: deb-src" \
            "URIs: http://deb.debian.org/debian" \
            "Suites: $codename $codename-updates" \
            "Components: main" \
            "Signed-By: $key" \
            "" \
            "Types: deb-src" \
            "URIs: http://deb.debian.org/debian-security" \
            "Suites: $codename-security" \
            "Components: main" \
            "Signed-By: $key" | $SUDO tee "$srclist" >/dev/null
    fi
    $SUDO apt-get update -qq
fi

missing=()
for p in "${pkgs[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d keeps the packages' own services (nginx, containerd,
# docker-registry, prometheus) from being started by the install.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
