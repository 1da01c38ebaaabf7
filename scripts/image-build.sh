#!/usr/bin/env bash
# The container image of docker/Dockerfile, built the way a user without
# a Docker engine would: a Debian 12 base made with debootstrap from
# Debian's archive, then `buildah build` of the Dockerfile on it
# (--isolation chroot, the RUN steps on the host's network).  Everything
# lives in DIR: buildah's storage (vfs) and run root, the log, the times;
# the machine's own container storage is never touched.
#
#   image-build.sh start DIR   build in the background (its own process
#                              group; `make test` starts it first, so that
#                              it overlaps the other suites)
#   image-build.sh run DIR     build in the foreground
#   image-build.sh stop DIR    end a background build (its process group)
#   image-build.sh clean DIR   stop, then remove DIR
#
# When the build ends, DIR/status says "ok" or why it failed, and
# DIR/times.json the seconds of each step; tests/image/ waits for the
# status (bounded) and runs the image.
#
# BUILDAH_STORAGE_DRIVER: vfs (every layer a full copy: slow, but it needs
# nothing of the kernel or of fuse).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:?usage: image-build.sh start|run|stop|clean DIR}
dir=${2:?usage: image-build.sh start|run|stop|clean DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

BASE_IMAGE=localhost/ocimirror-base:12
IMAGE=localhost/ocimirror:test
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

bah() {
    buildah --root "$dir/storage" --runroot "$dir/runroot" \
        --storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}" "$@"
}

stop() {
    local pid
    [ -f "$dir/pid" ] || return 0
    pid=$(cat "$dir/pid")
    rm -f "$dir/pid"
    # the group the background build leads (setsid): buildah, debootstrap
    # and their children
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 -- "-$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
}

# What a build stopped midway may leave mounted under DIR (debootstrap's
# /proc and /sys in the target), lazily unmounted, deepest first: rm must
# not walk into them.
unmount_all() {
    local m
    findmnt -rn -o TARGET | { grep -F "$dir/" || true; } | sort -r |
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

build() {
    local t0 t1 t2 ctr mnt
    unmount_all
    rm -rf --one-file-system "$dir/storage" "$dir/runroot"
    rm -f "$dir/status" "$dir/times.json"
    t0=$(now)
    # The base: debootstrap straight into a scratch container's root
    # (vfs: a plain folder), committed as an image.
    ctr=$(bah from scratch)
    mnt=$(bah mount "$ctr")
    # dpkg without an fsync per file, in debootstrap's own installs and
    # every apt-get of the build, as in Debian's images on Docker Hub
    # (the same file): a crash of a build is started again, not repaired.
    mkdir -p "$mnt/etc/dpkg/dpkg.cfg.d"
    echo force-unsafe-io > "$mnt/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    debootstrap --variant=minbase "$SUITE" "$mnt" "$MIRROR"
    rm -rf "$mnt"/var/cache/apt/archives/*.deb "$mnt"/var/lib/apt/lists/*
    bah umount "$ctr" >/dev/null
    bah config --cmd /bin/bash "$ctr"
    bah commit --rm "$ctr" "$BASE_IMAGE"
    t1=$(now)
    bah build --isolation chroot --network host --format docker \
        --build-arg "BASE=$BASE_IMAGE" -f "$here/docker/Dockerfile" \
        -t "$IMAGE" "$here"
    t2=$(now)
    # the CPU it took from the suites it runs beside: its children's
    # user and system time (fields 16 and 17 of this script's stat, in
    # clock ticks)
    cpu=$(awk -v hz="$(getconf CLK_TCK)" \
        '{ printf "%.1f", ($16 + $17) / hz }' "/proc/$$/stat")
    printf '{"debootstrap_s": %s, "build_s": %s, "cpu_s": %s, "image": "%s"}\n' \
        "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" "$cpu" "$IMAGE" \
        > "$dir/times.json"
}

# All in a function, and its call and the exit on one line, read whole
# before they run: bash reads a script as it goes, and a background build
# would go on with an edited file's bytes.
main() {
    case $cmd in
    start)
        stop
        rm -f "$dir/status"
        # its own session and process group, so that stop ends all of it
        setsid "$0" run "$dir" > "$dir/build.log" 2>&1 < /dev/null &
        echo $! > "$dir/pid"
        echo "image-build: building in the background, log $dir/build.log"
        ;;
    run)
        # (not `if build`: that would turn set -e off inside it)
        trap 'rc=$?; if [ $rc -eq 0 ]; then echo ok; else
              echo "failed (exit $rc), see $dir/build.log"; fi > "$dir/status"
              [ "$(cat "$dir/pid" 2>/dev/null)" != $$ ] || rm -f "$dir/pid"' EXIT
        [ ! -f "$dir/pid" ] || echo $$ > "$dir/pid"
        build
        ;;
    stop)
        stop
        ;;
    clean)
        stop
        unmount_all
        rm -rf --one-file-system "$dir"
        ;;
    *)
        echo "usage: image-build.sh start|run|stop|clean DIR" >&2
        exit 2
        ;;
    esac
}

main; exit
