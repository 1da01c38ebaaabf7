"""The store's bound: the cache manager keeps the store under
store.max_size (evicting least recently used files from the high to the
low watermark), orders eviction by the uses the workers report (USED) and
by the files' times after a restart, lets a client that streams a blob
finish it after the blob was evicted, frees the mirror's own old files
when the filesystem is short of min_free or full (also those the workers
served: their open file caches close idle descriptors without waiting
for traffic), fails a download it cannot make room for cleanly, and
evicts what store.inactive says is unused.

A file used in the last CACHE_GRACE seconds (src/fetcher/cache.h) is never
evicted: a freshly committed file counts as used, so the bound holds once
the files of a burst are that old; the tests wait for it (bounded) rather
than pretending otherwise.  A worker reports what it served once every
recency_interval, and the use counts from the report: steps whose order
matters are more than two intervals apart.  Files "used long ago" are
made by setting their times (os.utime) with both processes stopped,
which is what the index load after a restart reads.
"""

import glob
import hashlib
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from harness import (ACCEPT_ALL, assert_blob, assert_json_error,
                     assert_manifest, assert_store_consistent,
                     fake_registry_entry, random_bytes, store_tmp_files,
                     wait_for)
from images import Blob, Image, Layer
from test_metrics import scrape, value

MiB = 1024 * 1024
GRACE = 5                       # CACHE_GRACE in src/fetcher/cache.h
TOPS = ("sha256", "tags", "taglists", "referrers")   # what the index holds
STORE_METRICS = ("bytes", "files", "max_bytes", "high_watermark_bytes",
                 "low_watermark_bytes", "reserved_bytes", "evictions_total",
                 "evicted_bytes_total", "emergency_evictions_total",
                 "evicting", "loading", "index_load_seconds")


# --- helpers ----------------------------------------------------------------

def make_image(name, sizes):
    """An image of one layer per size (random bytes, gzip level 0: about
    that many bytes each)."""
    layers = [Layer("store-bound:%s:%d" % (name, i),
                    [("data/%s-%d.bin" % (name, i), n)], level=0)
              for i, n in enumerate(sizes)]
    return Image(name, layers)


def pull(m, repo, image, timeout=60):
    """What a client does: the manifest by tag with every type accepted,
    then every blob; each answer complete and right."""
    r = m.get("/v2/%s/manifests/v1" % repo, {"Accept": ACCEPT_ALL},
              timeout=timeout)
    assert_manifest(r, image.manifest)
    for b in image.layer_blobs():
        assert_blob(m.get("/v2/%s/blobs/%s" % (repo, b.digest),
                          timeout=timeout), b)


def store_metrics(m):
    s = scrape(m)
    out = {k: value(s, "ocimirror_fetcher_store_" + k) for k in STORE_METRICS}
    missing = [k for k, v in out.items() if v is None]
    assert not missing, "store metrics missing: %s" % missing
    return out


def settle(m, timeout=GRACE + 8):
    """Wait until the cache manager is done: index loaded, no eviction
    under way, nothing reserved, and at most the high watermark indexed.
    (store_evicting alone is no proof: it drops to 0 while what is left
    is younger than CACHE_GRACE.)"""
    last = {}

    def done():
        st = store_metrics(m)
        last.clear()
        last.update(st)
        if st["loading"] or st["evicting"] or st["reserved_bytes"]:
            return None
        if st["bytes"] > st["high_watermark_bytes"]:
            return None
        return st
    try:
        return wait_for(done, timeout, interval=0.2,
                        what="the store to settle under its high watermark")
    except AssertionError as e:
        raise AssertionError("%s; last store metrics %r; on disk %d\n%s"
                             % (e, last, disk_bytes(m.store, TOPS),
                                m.diagnostics()))


def wait_loaded(m, timeout=15):
    return wait_for(lambda: (lambda st: st if st["loading"] == 0
                             and st["index_load_seconds"] >= 0 else None)(
        store_metrics(m)), timeout, interval=0.1, what="the index loaded")


def files_under(root, tops=TOPS):
    """{path relative to root: os.stat_result} of the regular files."""
    out = {}
    for top in tops:
        for d, _, names in os.walk(os.path.join(root, top)):
            for n in names:
                p = os.path.join(d, n)
                try:
                    st = os.stat(p, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                out[os.path.relpath(p, root)] = st
    return out


def disk_bytes(root, tops=("sha256",)):
    return sum(st.st_blocks * 512 for st in files_under(root, tops).values())


def rel_blob(digest):
    hexd = digest.split(":", 1)[1]
    return os.path.join("sha256", hexd[:2], hexd)


def rel_record(fake, repo, tag="v1"):
    return os.path.join("tags", fake.hostport, repo, "@" + tag)


def whole(m, image):
    return [b.digest for b in image.blobs() if not m.has_blob(b.digest)]


def evicted_lines(m):
    """The fetcher's debug lines "store: evicted <path>, ..." (with -v)."""
    with open(m.fetcher_log, errors="replace") as f:
        return re.findall(r"store: evicted (\S+), (\d+) bytes", f.read())


def fs_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def readyz(m):
    r = m.get("/readyz")
    return r, r.json() if r.body else None


class DiskPeak:
    """Samples the bytes under sha256/ every 0.1 s in a thread (bounded by
    stop()): the largest seen, for the report."""

    def __init__(self, root):
        self.root = root
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.1):
            try:
                self.peak = max(self.peak, disk_bytes(self.root))
            except OSError:
                pass

    def stop(self):
        self._stop.set()
        self._t.join(5)
        return self.peak


# --- 1. the bound ---------------------------------------------------------

def test_store_stays_within_max_size(mirror_factory, fake_upstream):
    """Nine images of 17 MiB (3 layers) through a 48 MiB store, three one
    after another, six at once: every pull is right, the store is back
    within max_size once its files are older than the grace, the latest
    image is whole, and a re-pull fetches exactly what was evicted."""
    fake = fake_upstream
    cap = 48 * MiB
    imgs = [make_image("bound%d" % i, (9 * MiB, 6 * MiB, 2 * MiB))
            for i in range(9)]
    repos = ["team/img%d" % i for i in range(9)]
    for repo, im in zip(repos, imgs):
        fake.add_image(repo, "v1", im)
    assert sum(b.size for im in imgs for b in im.blobs()) >= 3 * cap
    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                       min_free="1M", fetcher_args=["-v"],
                       store_settings={"max_size": "48M",
                                       "high_watermark": 90,
                                       "low_watermark": 80,
                                       "recency_interval": 1})
    st = store_metrics(m)
    assert st["max_bytes"] == cap, st
    assert abs(st["high_watermark_bytes"] - 0.9 * cap) <= cap / 100, st
    assert abs(st["low_watermark_bytes"] - 0.8 * cap) <= cap / 100, st
    peak = DiskPeak(m.store)

    def check_bound(what):
        settle(m)
        on_disk = disk_bytes(m.store)
        assert on_disk <= cap, "%s: %d bytes under sha256/ > max_size %d" % (
            what, on_disk, cap)
        # the index counts what the disk holds
        try:
            wait_for(lambda: store_metrics(m)["bytes"]
                     == disk_bytes(m.store, TOPS), 3, interval=0.1,
                     what="store_bytes == bytes on disk")
        except AssertionError as e:
            raise AssertionError("%s: %s (%r vs %d)" % (
                what, e, store_metrics(m)["bytes"],
                disk_bytes(m.store, TOPS)))

    try:
        for i in range(3):
            if i:
                # a worker reports the hits of a pull up to
                # recency_interval later, as uses of that moment: pulls
                # closer than that have no order
                time.sleep(2.2)
            pull(m, repos[i], imgs[i])
            check_bound("after pull %d" % i)
            assert whole(m, imgs[i]) == [], ("image %d not whole" % i,
                                             evicted_lines(m))

        errors = {}

        def one(i):
            try:
                pull(m, repos[i], imgs[i], timeout=90)
            except BaseException as e:          # reported below
                errors[i] = e
        threads = [threading.Thread(target=one, args=(i,))
                   for i in range(3, 9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "a pull hangs"
        assert errors == {}, errors
        check_bound("after the concurrent pulls")
    finally:
        seen = peak.stop()
    print("\nbound: peak %d bytes under sha256/ (max_size %d)" % (seen, cap))

    st = store_metrics(m)
    assert st["evictions_total"] > 0, st
    assert st["evicted_bytes_total"] >= \
        sum(b.size for im in imgs for b in im.blobs()) - 2 * cap, st

    # a wholly evicted image: exactly its blobs again, each once
    first = imgs[0]
    missing = set(whole(m, first))
    assert {b.digest for b in first.layer_blobs()} <= missing, missing
    record_there = os.path.exists(os.path.join(m.store,
                                               rel_record(fake, repos[0])))
    fake.reset_counts()
    pull(m, repos[0], first)
    check_bound("after the re-pull")
    for b in first.layer_blobs():
        n = fake.count("GET", r"/blobs/%s$" % b.digest)
        assert n == (1 if b.digest in missing else 0), (b, n, fake.requests)
    n = fake.count("GET", r"^/v2/%s/manifests/" % repos[0])
    if first.manifest.digest in missing:
        assert n == 1, fake.requests
    elif not record_there:
        assert n <= 1, fake.requests
    else:
        assert n == 0, fake.requests
    assert whole(m, first) == []

    # a partly evicted image (if the concurrent round left one): what it
    # still has is used first (hits, reported within recency_interval), then
    # only what it lacks crosses the link
    partial = [i for i in range(3, 9)
               if 0 < len(whole(m, imgs[i])) < len(imgs[i].blobs())]
    print("partly evicted images: %s" % partial)
    if partial:
        i = partial[0]
        im = imgs[i]
        missing = set(whole(m, im))
        fake.reset_counts()
        for b in im.layer_blobs():
            if b.digest not in missing:
                assert_blob(m.get("/v2/%s/blobs/%s" % (repos[i], b.digest)),
                            b)
        time.sleep(1.5)
        assert fake.count("GET", r"/blobs/") == 0, fake.requests
        pull(m, repos[i], im)
        check_bound("after the partial re-pull")
        for b in im.layer_blobs():
            n = fake.count("GET", r"/blobs/%s$" % b.digest)
            assert n == (1 if b.digest in missing else 0), (b, n, missing)
        assert whole(m, im) == []


# --- 2. recency --------------------------------------------------------------

def test_recency_orders_eviction(mirror_factory, fake_upstream):
    """A, B, C pulled, A served again (USED): D's pull evicts B, not A.
    Then, both processes restarted over files whose times say D was used
    longest ago, then A, then C: E's pull evicts the oldest first."""
    fake = fake_upstream
    ims = {n: make_image("lru-" + n, (4 * MiB,)) for n in "abcde"}
    for n, im in ims.items():
        fake.add_image("team/" + n, "v1", im)
    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                       min_free="1M", fetcher_args=["-v"],
                       store_settings={"max_size": "16M",
                                       "recency_interval": 1})
    st = store_metrics(m)
    one = sum(b.size for b in ims["a"].blobs())
    assert 3 * one < st["low_watermark_bytes"] < st["high_watermark_bytes"] \
        < 4 * one, (st, one)

    # Each worker reports what it served once every recency_interval,
    # so uses closer than that are unordered: the steps that must be
    # told apart are more than two intervals apart.
    for n in "ab":
        pull(m, "team/" + n, ims[n])
    time.sleep(2.2)
    pull(m, "team/c", ims["c"])
    time.sleep(2.2)
    fake.reset_counts()
    pull(m, "team/a", ims["a"])     # A again: hits
    assert fake.count(None, r"^/v2/") == 0, fake.requests
    time.sleep(2.2)                 # USED sent
    pull(m, "team/d", ims["d"])

    b_layer = ims["b"].layers[0].blob
    try:
        wait_for(lambda: not m.has_blob(b_layer.digest), GRACE + 8,
                 interval=0.2, what="B's layer evicted")
    except AssertionError as e:
        raise AssertionError("%s: %r\n%s" % (e, store_metrics(m),
                                             m.diagnostics()))
    settle(m)
    order = [p for p, _ in evicted_lines(m)]
    a_rel = {rel_blob(b.digest) for b in ims["a"].blobs()}
    assert whole(m, ims["a"]) == [], ("A was evicted although used after "
                                      "B", order)
    assert whole(m, ims["d"]) == [], order
    assert not a_rel & set(order), order

    # --- the order survives a restart: the files' times are what counts
    assert m.stop_nginx() == 0
    assert m.stop_fetcher(signal.SIGTERM) == 0
    group = {}
    for n in "acd":
        for rank, b in enumerate(reversed(ims[n].blobs())):  # layer first
            group[rel_blob(b.digest)] = (n, rank)
        group[rel_record(fake, "team/" + n)] = (n, 9)
    present = sorted(files_under(m.store))
    ranked = {"d": 0, "a": 1, "c": 2}
    ordered = sorted(present, key=lambda p: (
        ranked[group[p][0]], group[p][1]) if p in group else (3, 0, p))
    base = time.time() - 5000
    for i, p in enumerate(ordered):
        t = base + 10 * i
        os.utime(os.path.join(m.store, p), (t, t))
    m.start_fetcher()
    m.start_nginx()
    m.wait_ready()
    wait_loaded(m)
    assert store_metrics(m)["bytes"] == disk_bytes(m.store, TOPS)

    pull(m, "team/e", ims["e"])
    settle(m)
    gone = [p for p in ordered if not os.path.exists(os.path.join(m.store,
                                                                  p))]
    log = evicted_lines(m)
    assert gone, ("nothing evicted after the restart", store_metrics(m))
    assert gone == ordered[:len(gone)], ("not oldest first", gone, ordered,
                                         log)
    assert rel_blob(ims["d"].layers[0].blob.digest) in gone, (gone, ordered)
    assert not [p for p in gone if p in group and group[p][0] != "d"], gone
    assert whole(m, ims["e"]) == []


@pytest.mark.parametrize("recency", [True, False], ids=["on", "off"])
def test_recency_switch(mirror_factory, fake_upstream, recency):
    """store.recency, the bench's measurement switch: A pulled, then B,
    then A served again.  With recency the served A is the youngest (B's
    files are next to go); without it the workers note nothing and the
    order is the download order (A's files first)."""
    fake = fake_upstream
    ims = {n: make_image("switch-" + n, (64 * 1024,)) for n in "ab"}
    for n, im in ims.items():
        fake.add_image("team/" + n, "v1", im)
    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                       min_free="1M",
                       store_settings={"recency": recency,
                                       "recency_interval": 1})

    # a use is known within a worker's interval (1 s), and is whole
    # seconds: the steps are more than two intervals apart
    pull(m, "team/a", ims["a"])
    time.sleep(2.2)
    pull(m, "team/b", ims["b"])
    time.sleep(2.2)
    fake.reset_counts()
    pull(m, "team/a", ims["a"])
    assert fake.count(None, r"^/v2/") == 0, fake.requests
    used = time.time()

    # evict --dry-run lists only files older than CACHE_GRACE, oldest first
    time.sleep(max(0, used + 2.2 + GRACE - time.time()))
    rc, out = m.ctl("evict", "--dry-run", "100")
    assert rc == 0, out
    rows = [x for x in out if x.startswith("  ")]
    order = []
    for row in rows:
        for n, im in ims.items():
            if any(b.digest.split(":")[1] in row for b in im.blobs()):
                order.append(n)
    want = {n: len(im.blobs()) for n, im in ims.items()}
    assert {n: order.count(n) for n in "ab"} == want, (order, out)
    first = "b" if recency else "a"
    assert order == sorted(order, key=lambda n: n != first), (order, out)


# --- 3. eviction while a client streams ------------------------------------

def test_eviction_while_a_slow_client_streams(mirror_factory, fake_upstream):
    """A client stops reading a cold 16 MiB blob after its first bytes;
    the blob commits, other pulls push the store over its high watermark
    and the blob, the oldest file, is evicted; the client then reads on
    and gets every byte."""
    fake = fake_upstream
    size = 16 * MiB
    data = random_bytes("store-bound-slow", size)
    digest = fake.add_blob(data)
    fake.throttle[digest] = 8 * MiB           # about 2 s upstream
    fillers = [make_image("slow-filler%d" % i, (8 * MiB,)) for i in range(2)]
    for i, im in enumerate(fillers):
        fake.add_image("team/filler%d" % i, "v1", im)
    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                       min_free="1M", fetcher_args=["-v"],
                       store_settings={"max_size": "32M",
                                       "recency_interval": 1})
    st = store_metrics(m)
    assert size + sum(b.size for im in fillers for b in im.blobs()) \
        > st["high_watermark_bytes"], st

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    s.settimeout(20)
    try:
        s.connect(("127.0.0.1", m.port))
        s.sendall(("GET /v2/team/slow/blobs/%s HTTP/1.1\r\nHost: %s\r\n"
                   "Connection: close\r\n\r\n" % (digest, m.hostport))
                  .encode())
        buf = b""
        while b"\r\n\r\n" not in buf and len(buf) < 65536:
            chunk = s.recv(4096)
            assert chunk, buf
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].split()[1] == "200", head
        hdrs = {k.strip().lower(): v.strip() for k, _, v in
                (ln.partition(":") for ln in lines[1:])}
        assert hdrs.get("content-length") == str(size), head
        while len(body) < 64 * 1024:
            chunk = s.recv(65536)
            assert chunk, len(body)
            body += chunk

        # not reading: the download completes on its own and commits
        wait_for(lambda: m.has_blob(digest), 20, interval=0.1,
                 what="the blob committed")
        for i, im in enumerate(fillers):
            pull(m, "team/filler%d" % i, im)
        try:
            wait_for(lambda: not m.has_blob(digest), GRACE + 8, interval=0.1,
                     what="the streamed blob evicted")
        except AssertionError as e:
            raise AssertionError("%s: %r\n%s" % (e, store_metrics(m),
                                                 m.diagnostics()))
        read_at_eviction = len(body)
        assert read_at_eviction < size // 2

        deadline = time.monotonic() + 30
        while len(body) < size and time.monotonic() < deadline:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            body += chunk
    finally:
        s.close()
    assert len(body) == size, "got %d of %d bytes (%d before eviction)" % (
        len(body), size, read_at_eviction)
    assert hashlib.sha256(body).hexdigest() == digest.split(":")[1]
    assert not m.has_blob(digest)
    for im in fillers:
        assert whole(m, im) == []
    assert store_metrics(m)["evictions_total"] >= 1
    assert rel_blob(digest) in [p for p, _ in evicted_lines(m)]


# --- 4./5. a small filesystem ----------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 MiB tmpfs, unmounted at teardown (after the mirror on it:
    request it before mirror_factory)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    d = tmp_path / "tmpfs"
    d.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs",
                        str(d)], capture_output=True, text=True, timeout=10)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % p.stderr.strip())
    yield str(d)
    p = subprocess.run(["umount", str(d)], capture_output=True, text=True,
                       timeout=10)
    if p.returncode != 0:
        subprocess.run(["umount", "-l", str(d)], timeout=10)


def fill(directory, leave):
    """A file taking all but `leave` bytes of the filesystem."""
    path = os.path.join(directory, "filler")
    n = fs_free(directory) - leave
    assert n > 0
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.posix_fallocate(fd, 0, n)
    finally:
        os.close(fd)
    return path


def test_full_filesystem_evicts_the_mirrors_old_files(small_tmpfs,
                                                      mirror_factory,
                                                      fake_upstream):
    """Two old images on a 64 MiB tmpfs, another file leaves 5 MiB (less
    than min_free, 8M, and than the next image, 14 MiB): the cold pull
    succeeds, the old files going to make room."""
    fake = fake_upstream
    fake.accept_ranges = True
    ps = [make_image("tmpfs-p%d" % i, (14 * MiB,)) for i in range(3)]
    for i, im in enumerate(ps):
        fake.add_image("team/p%d" % i, "v1", im)
    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                       min_free="8M",
                       store_path=os.path.join(small_tmpfs, "store"),
                       store_settings={"max_size": "1G",
                                       "recency_interval": 1})
    for i in (0, 1):
        pull(m, "team/p%d" % i, ps[i])
    settle(m)

    # used long ago: p0 before p1
    assert m.stop_nginx() == 0
    assert m.stop_fetcher(signal.SIGTERM) == 0
    now = time.time()
    for i, ago in ((0, 2000), (1, 1000)):
        paths = [rel_blob(b.digest) for b in ps[i].blobs()] + [
            rel_record(fake, "team/p%d" % i)]
        for k, p in enumerate(paths):
            os.utime(os.path.join(m.store, p), (now - ago + k, now - ago + k))
    m.start_fetcher()
    m.start_nginx()
    m.wait_ready()
    wait_loaded(m)

    filler = fill(small_tmpfs, 5 * MiB)
    assert fs_free(small_tmpfs) < 8 * MiB
    pull(m, "team/p2", ps[2])
    try:
        wait_for(lambda: fs_free(small_tmpfs) >= 8 * MiB
                 and store_metrics(m)["evicting"] == 0, GRACE, interval=0.2,
                 what="min_free free again")
    except AssertionError as e:
        raise AssertionError("%s: free %d, %r\n%s" % (
            e, fs_free(small_tmpfs), store_metrics(m), m.diagnostics()))
    assert whole(m, ps[2]) == []
    assert not m.has_blob(ps[0].layers[0].blob.digest)
    st = store_metrics(m)
    assert st["evictions_total"] > 0, st
    print("\ntmpfs: %r" % st)
    wait_for(lambda: store_tmp_files(m) == [], 5, what="tmp/ empty")
    assert_store_consistent(m)
    os.unlink(filler)


def deleted_open_files(m):
    """Files of the store that nginx's processes hold open although
    they were unlinked (/proc/<pid>/fd of the master's children)."""
    master = m.nginx.popen.pid
    out = []
    for st in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(st) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) != master:
                continue
            fd_dir = os.path.join(os.path.dirname(st), "fd")
            for fd in os.listdir(fd_dir):
                target = os.readlink(os.path.join(fd_dir, fd))
                if target.startswith(m.store) and target.endswith(
                        " (deleted)"):
                    out.append(target)
        except (OSError, IndexError, ValueError):
            continue
    return out


def test_full_filesystem_frees_files_nginx_served(small_tmpfs,
                                                  mirror_factory,
                                                  fake_upstream):
    """An image served from the store (hits) more than CACHE_GRACE ago,
    then another file leaves 5 MiB: evicting that image must give its
    space back to the filesystem, so that the next cold pull (14 MiB)
    succeeds."""
    fake = fake_upstream
    fake.accept_ranges = True
    ps = [make_image("tmpfs-served%d" % i, (14 * MiB,)) for i in range(2)]
    for i, im in enumerate(ps):
        fake.add_image("team/q%d" % i, "v1", im)
    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                       min_free="8M", fetcher_args=["-v"],
                       store_path=os.path.join(small_tmpfs, "store"),
                       store_settings={"max_size": "1G",
                                       "recency_interval": 1})
    assert_manifest(m.get("/v2/team/q0/manifests/v1",
                          {"Accept": ACCEPT_ALL}), ps[0].manifest)
    wait_for(lambda: whole(m, ps[0]) == [], 15, what="q0 prefetched")
    for b in ps[0].layer_blobs():         # hits
        assert_blob(m.get("/v2/team/q0/blobs/" + b.digest), b)
    time.sleep(GRACE + 2.5)               # reported, then past the grace
    filler = fill(small_tmpfs, 5 * MiB)
    try:
        wait_for(lambda: whole(m, ps[0]) != [], 5, interval=0.2,
                 what="q0 evicted for min_free")
        time.sleep(1.5)
        free, held = fs_free(small_tmpfs), deleted_open_files(m)
        r = m.get("/v2/team/q1/manifests/v1", {"Accept": ACCEPT_ALL})
        assert_manifest(r, ps[1].manifest)
        answers = [m.get("/v2/team/q1/blobs/" + b.digest, timeout=30)
                   for b in ps[1].layer_blobs()]
        for b, r in zip(ps[1].layer_blobs(), answers):
            assert r.status == 200 and r.error is None, (
                "cold pull after eviction failed: %r; free space %d after "
                "evicting q0 (%r); store files nginx still holds open: %r"
                % (r, free, store_metrics(m), held))
            assert_blob(r, b)
    finally:
        os.unlink(filler)
    wait_for(lambda: store_tmp_files(m) == [], 5, what="tmp/ empty")
    assert_store_consistent(m)


@pytest.mark.parametrize("ranges", [True, False],
                         ids=["upstream-ranges", "upstream-no-ranges"])
def test_full_filesystem_nothing_to_free_fails_cleanly(small_tmpfs,
                                                       mirror_factory,
                                                       fake_upstream,
                                                       ranges):
    """3 MiB free and nothing of the mirror's that would make room for a
    12 MiB blob: /readyz stays 200 with free_space "low", the client gets
    a JSON 5xx (not a 200 cut short), nothing is left in sha256/ or tmp/;
    with the other file gone the same pull succeeds."""
    fake = fake_upstream
    fake.accept_ranges = ranges
    y = make_image("tmpfs-y", (2 * MiB,))
    fake.add_image("team/y", "v1", y)
    z = random_bytes("store-bound-z", 12 * MiB)
    zd = fake.add_blob(z)
    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                       min_free="8M",
                       store_path=os.path.join(small_tmpfs, "store"),
                       store_settings={"max_size": "1G",
                                       "recency_interval": 1})
    pull(m, "team/y", y)
    filler = fill(small_tmpfs, 3 * MiB)

    # 5. readiness: low, reported, still ready
    r, body = readyz(m)
    assert r.status == 200, r
    assert body["checks"]["free_space"] == "low", body

    r = m.get("/v2/team/z/blobs/" + zd, timeout=30)
    assert r.status != 200, ("a 200 for a blob the store cannot hold: "
                             "%d of %d bytes, cut short: %r"
                             % (len(r.body), len(z), r.error))
    assert 500 <= r.status < 600, r
    assert_json_error(r)
    wait_for(lambda: store_tmp_files(m) == [], 5,
             what="tmp/ empty after the failed download")
    assert not m.has_blob(zd)
    assert_store_consistent(m)

    os.unlink(filler)
    assert_blob(m.get("/v2/team/z/blobs/" + zd, timeout=30),
                _blob_of(z))
    wait_for(lambda: store_tmp_files(m) == [], 5, what="tmp/ empty")
    assert m.has_blob(zd)
    assert_store_consistent(m)


def _blob_of(data):
    return Blob("application/octet-stream", data)


# --- 6. inactive ----------------------------------------------------------

def test_inactive_files_are_evicted(mirror_factory, fake_upstream):
    """inactive = 2: an image nobody uses goes although the store is far
    below max_size; one served every half second stays."""
    fake = fake_upstream
    s1 = make_image("inactive-1", (3000,))
    s2 = make_image("inactive-2", (5000,))
    fake.add_image("team/s1", "v1", s1)
    fake.add_image("team/s2", "v1", s2)
    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                       min_free="1M", fetcher_args=["-v"],
                       store_settings={"max_size": "1G", "inactive": 2,
                                       "recency_interval": 1})
    t0 = time.monotonic()
    pull(m, "team/s1", s1)
    pull(m, "team/s2", s2)
    fake.reset_counts()
    gone_after = None
    deadline = time.monotonic() + 2 + GRACE + 6
    while time.monotonic() < deadline:
        assert_manifest(m.get("/v2/team/s2/manifests/" + s2.manifest.digest,
                              {"Accept": ACCEPT_ALL}), s2.manifest)
        for b in s2.layer_blobs():
            assert_blob(m.get("/v2/team/s2/blobs/" + b.digest), b)
        if all(not m.has_blob(b.digest) for b in s1.blobs()):
            gone_after = time.monotonic() - t0
            break
        time.sleep(0.5)
    st = store_metrics(m)
    assert gone_after is not None, ("s1 not evicted", whole(m, s1), st,
                                    m.diagnostics())
    print("\ninactive: s1 evicted %.1f s after its pull" % gone_after)
    assert not os.path.exists(os.path.join(m.store,
                                           rel_record(fake, "team/s1")))
    assert st["bytes"] < st["high_watermark_bytes"] / 1000, st
    assert st["evictions_total"] >= 4, st
    # what was served all along stayed, and never crossed the link again
    assert whole(m, s2) == [], (whole(m, s2), evicted_lines(m))
    assert fake.count("GET", r"^/v2/") == 0, fake.requests


def test_quiet_worker_closes_evicted_files(mirror_factory, fake_upstream):
    """Files served from the store (hits, through the open file cache),
    then no request at all while store.inactive evicts them: the workers
    close their cached descriptors anyway (nginx itself closes idle ones
    only as later requests complete), so the evicted files' blocks go
    back to the filesystem."""
    fake = fake_upstream
    q = make_image("quiet", (200000,))
    fake.add_image("team/quiet", "v1", q)
    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                       min_free="1M",
                       store_settings={"max_size": "1G", "inactive": 2,
                                       "recency_interval": 1})
    pull(m, "team/quiet", q)
    wait_for(lambda: whole(m, q) == [], 15, what="stored")
    fake.reset_counts()
    for _ in range(2):                    # hits, on either worker
        pull(m, "team/quiet", q)
    assert fake.count("GET", r"^/v2/") == 0, fake.requests
    wait_for(lambda: all(not m.has_blob(b.digest) for b in q.blobs()),
             2 + GRACE + 8, what="evicted as inactive")
    wait_for(lambda: deleted_open_files(m) == [], 10,
             what="evicted files closed by the workers")
