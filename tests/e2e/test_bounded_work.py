"""Bounded work in the fetcher.

A client that asks for cold digests and hangs up leaves nothing behind:
the job is dropped at once (transfer removed; a temp file exists only
once the upstream answered 2xx), so a flood of random digests against a
slow upstream keeps the fetcher's descriptors, temp files, jobs and RSS
flat while a legitimate cold pull and hits go on.  Past a bound
(fetcher.max_jobs, max_waiters, max_worker_jobs, max_queued) a request
is refused at once: 503 TOOMANYREQUESTS JSON with Retry-After, counted
in ocimirror_fetcher_refused_total{cap=...}.  Out of descriptors, the
fetcher accepts again as soon as one is freed by a download that ends,
not only when a worker leaves.  A HEAD of a blob not stored is the
upstream's HEAD: nothing is downloaded or stored."""

import os
import random
import resource
import socket
import threading
import time

import pytest

from harness import (assert_json_error, fake_registry_entry, random_bytes,
                     read_text, request, sha256_hex, store_tmp_files,
                     wait_for)
from test_metrics import scrape, value

# serial (conftest.py): RSS and descriptors measured against a baseline,
# and a refusal timed
pytestmark = pytest.mark.serial

NO_PREFETCH = {"enabled": False}
KINDS = ("blob", "blob_head", "manifest", "tags", "referrers")
MiB = 1024 * 1024


def _mirror(mirror_factory, fake, fetcher=None, **kw):
    return mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                          prefetch=NO_PREFETCH, fetcher=fetcher, **kw)


def _fetcher_pid(m):
    return m.fetcher.popen.pid


def _fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for %d" % pid)


def _jobs(samples):
    return sum(value(samples, "ocimirror_fetcher_jobs", kind=k) or 0
               for k in KINDS)


def _refused(samples, cap):
    return value(samples, "ocimirror_fetcher_refused_total", cap=cap)


def _cold_digest(rng):
    return "sha256:%064x" % rng.getrandbits(256)


def _hang_up_get(hostport, path, wait):
    """GET path and close the connection after `wait` seconds, answered
    or not (a client with a short timeout)."""
    host, port = hostport.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                   "\r\n" % (path, hostport)).encode())
        s.settimeout(wait)
        try:
            s.recv(4096)
        except socket.timeout:
            pass
    finally:
        s.close()


def _pull(m, repo, tag, image):
    """A client's pull: the manifest by tag, then every blob, checked."""
    r = m.get("/v2/%s/manifests/%s" % (repo, tag),
              {"Accept": image.manifest.media_type})
    assert r.status == 200, r
    assert r.body == image.manifest.data
    for b in image.layer_blobs():
        r = m.get("/v2/%s/blobs/%s" % (repo, b.digest), timeout=60)
        assert r.status == 200 and r.error is None, r
        assert sha256_hex(r.body) == b.hex


FLOOD = 10000
FLOOD_CLIENTS = 32
FLOOD_HANG_UP = 0.05
FLOOD_CAPS = {"max_jobs": 256, "max_waiters": 512, "max_worker_jobs": 512,
              "max_queued": 128}


def test_flood_of_cold_digests_stays_bounded(mirror_factory, fake_upstream,
                                             catalog):
    fake = fake_upstream
    fake.delay["^/v2/flood/"] = 2.0
    fake.add_image("team/warm", "v1", catalog["small"])
    fake.add_image("team/cold", "v1", catalog["multi"])
    # AddressSanitizer keeps freed memory in a quarantine (256 MiB by
    # default) to catch a use after free: the churn of 10000 jobs would
    # fill it, and RSS would measure the quarantine, not the fetcher
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(
        o for o in (env.get("ASAN_OPTIONS"), "quarantine_size_mb=4") if o)
    m = _mirror(mirror_factory, fake, fetcher=dict(FLOOD_CAPS),
                fetcher_env=env)
    pid = _fetcher_pid(m)

    # warm: stored before the flood, served as hits during it
    _pull(m, "team/warm", "v1", catalog["small"])
    hits = catalog["small"].layer_blobs()
    time.sleep(0.5)
    base_fds, base_rss = _fds(pid), _rss(pid)

    stop = threading.Event()
    peak = {"fds": 0, "tmp": 0, "rss": 0, "jobs": 0, "waiters": 0,
            "queued": 0}
    errors = []

    def sample():
        while not stop.is_set():
            try:
                s = scrape(m)
                peak["jobs"] = max(peak["jobs"], _jobs(s))
                peak["waiters"] = max(peak["waiters"], value(
                    s, "ocimirror_fetcher_waiters"))
                peak["queued"] = max(peak["queued"], value(
                    s, "ocimirror_fetcher_transfers_queued"))
                peak["fds"] = max(peak["fds"], _fds(pid))
                peak["tmp"] = max(peak["tmp"], len(store_tmp_files(m)))
                peak["rss"] = max(peak["rss"], _rss(pid))
            except Exception as e:      # reported below, not swallowed
                errors.append("sampler: %r" % e)
                return
            stop.wait(0.2)

    counter = iter(range(FLOOD))
    lock = threading.Lock()

    def flood(seed):
        rng = random.Random(seed)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                _hang_up_get(m.hostport, "/v2/flood/x/blobs/%s"
                             % _cold_digest(rng), FLOOD_HANG_UP)
            except OSError as e:
                errors.append("flood: %r" % e)
                return

    legit = {}

    def legit_pull():
        try:
            _pull(m, "team/cold", "v1", catalog["multi"])
            legit["ok"] = True
        except AssertionError as e:
            errors.append("legitimate pull: %s" % e)

    def warm_hits():
        n = 0
        while not stop.is_set():
            b = hits[n % len(hits)]
            r = m.get("/v2/team/warm/blobs/%s" % b.digest, timeout=10)
            if r.status != 200 or sha256_hex(r.body) != b.hex:
                errors.append("hit: %r" % r)
                return
            n += 1
        legit["hits"] = n

    sampler = threading.Thread(target=sample, daemon=True)
    hitter = threading.Thread(target=warm_hits, daemon=True)
    flooders = [threading.Thread(target=flood, args=(i,), daemon=True)
                for i in range(FLOOD_CLIENTS)]
    started = time.monotonic()
    sampler.start()
    hitter.start()
    for t in flooders:
        t.start()
    time.sleep(1.0)
    puller = threading.Thread(target=legit_pull, daemon=True)
    puller.start()
    for t in flooders:
        t.join(120)
    flood_secs = time.monotonic() - started
    puller.join(60)
    stop.set()
    hitter.join(20)
    sampler.join(20)
    assert not errors, errors[:5]
    assert legit.get("ok"), "the legitimate cold pull did not finish"
    assert legit.get("hits", 0) > 0

    # the upstream was asked for the flood: the fetcher did the work and
    # dropped it, rather than refusing every request
    assert fake.count("GET", "^/v2/flood/") > 0

    # under the caps, and far under what 10000 requests of 2 s each
    # would hold without dropping (hundreds of jobs, temp files, fds)
    assert peak["jobs"] <= min(FLOOD_CAPS["max_jobs"], 2 * FLOOD_CLIENTS), \
        peak
    assert peak["waiters"] <= 2 * FLOOD_CLIENTS, peak
    assert peak["queued"] <= FLOOD_CAPS["max_queued"], peak
    assert peak["tmp"] <= len(catalog["multi"].layer_blobs()), peak
    # descriptors: a socket per running transfer (the suite's
    # max_transfers, 16) and its temp file, and a few for curl's cache
    assert peak["fds"] <= base_fds + 2 * 16 + 8, (peak, base_fds)
    assert peak["rss"] <= base_rss + 48 * MiB, (peak, base_rss)

    # idle within 5 s: no job, no waiter, no temp file, descriptors back
    def idle():
        s = scrape(m)
        return (_jobs(s) == 0 and value(s, "ocimirror_fetcher_waiters") == 0
                and not store_tmp_files(m) and _fds(pid) <= base_fds + 16)
    wait_for(idle, 5, what="the fetcher idle after the flood")
    s = scrape(m)
    assert value(s, "ocimirror_fetcher_jobs_dropped_total") > FLOOD / 2, s
    print("flood: %d requests in %.1f s; peaks %s; base fds %d, rss %d MiB"
          % (FLOOD, flood_secs, peak, base_fds, base_rss // MiB))


def _waiting(m, n):
    wait_for(lambda: value(scrape(m), "ocimirror_fetcher_waiters") >= n,
             10, what="%d waiters" % n)


def _background_get(m, path, results):
    def run():
        results.append(request(m.hostport, "GET", path, timeout=30))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _assert_busy(r, cap):
    assert_json_error(r, 503, "TOOMANYREQUESTS")
    assert r.header("Retry-After") == "2", r
    assert ("fetcher.%s" % cap) in r.json()["errors"][0]["message"], r


@pytest.mark.parametrize("cap", ["max_jobs", "max_waiters",
                                 "max_worker_jobs", "max_queued"])
def test_past_a_cap_busy_with_retry_after(mirror_factory, fake_upstream,
                                          cap):
    fake = fake_upstream
    fake.delay["/blobs/"] = 3.0
    rng = random.Random(cap)
    settings = {"max_jobs": 2, "max_waiters": 3, "max_worker_jobs": 2,
                "max_queued": 1}
    # only the cap under test is small
    fetcher = {k: (v if k == cap else 1000) for k, v in settings.items()}
    if cap == "max_queued":
        fetcher["max_transfers"] = 1
    m = _mirror(mirror_factory, fake, fetcher=fetcher)
    before = _refused(scrape(m), cap)
    assert before == 0
    results = []
    threads = []

    if cap == "max_waiters":
        # three clients of one download fill it
        digest = _cold_digest(rng)
        for i in range(3):
            threads.append(_background_get(
                m, "/v2/a/b/blobs/%s" % digest, results))
            _waiting(m, i + 1)
        r = m.get("/v2/a/b/blobs/%s" % digest, timeout=5)
    elif cap == "max_worker_jobs":
        # two nginx workers, two requests each at most: by the fifth, one
        # worker's connection is full
        r = None
        for i in range(5):
            t0 = time.monotonic()
            path = "/v2/a/b/blobs/%s" % _cold_digest(rng)
            got = []
            threads.append(_background_get(m, path, got))
            wait_for(lambda: got or value(
                scrape(m), "ocimirror_fetcher_waiters") >= len(threads),
                10, what="request %d waiting or answered" % i)
            if got:
                r = got[0]
                assert time.monotonic() - t0 < 2.0, "refused only later"
                break
        assert r is not None, "five requests, none refused"
        assert len(threads) >= 3
    else:
        # max_jobs: two jobs in flight; max_queued: one transfer running,
        # one queued behind max_transfers = 1
        for i in range(2):
            threads.append(_background_get(
                m, "/v2/a/b/blobs/%s" % _cold_digest(rng), results))
            _waiting(m, i + 1)
        r = m.get("/v2/a/b/blobs/%s" % _cold_digest(rng), timeout=5)

    _assert_busy(r, cap)
    assert _refused(scrape(m), cap) == before + 1
    for other in ("max_jobs", "max_waiters", "max_worker_jobs",
                  "max_queued"):
        if other != cap:
            assert _refused(scrape(m), other) == 0
    for t in threads:
        t.join(30)
    # the ones admitted got the upstream's answer (an unknown blob)
    assert results or cap == "max_worker_jobs"
    for res in results:
        assert_json_error(res, 404, "BLOB_UNKNOWN")


def test_accept_resumes_when_a_download_ends(mirror_factory, fake_upstream):
    """Out of descriptors the fetcher stops accepting; the end of a
    download (its socket and temp file closed), not a worker leaving,
    lets the waiting connection in."""
    fake = fake_upstream
    data = random_bytes(11, 48 * 1024)
    digest = fake.add_blob(data)
    fake.throttle[digest] = 8 * 1024            # about 6 s
    limit = 64

    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    # (the suite's store has fsync off: the commit needs no descriptor)
    m = _mirror(mirror_factory, fake, fetcher={"chunks_per_blob": 0},
                fetcher_preexec=low_nofile)
    pid = _fetcher_pid(m)
    m.wait_ready()

    got = []
    downloader = _background_get(m, "/v2/a/b/blobs/%s" % digest, got)
    wait_for(lambda: len(store_tmp_files(m)) == 1, 5,
             what="the download under way")

    def ping(s, timeout):
        s.settimeout(timeout)
        s.sendall(b"PING 1\n")
        try:
            return s.recv(64)
        except socket.timeout:
            return None

    conns = []
    waiting = None
    try:
        # the fetcher's descriptors run out: the last connection is not
        # accepted (it sits in the backlog, unanswered)
        for _ in range(limit):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(m.socket_path)
            conns.append(s)
            if ping(s, 1.0) is None:
                waiting = s
                break
        assert waiting is not None, "never ran out of descriptors"
        assert _fds(pid) >= limit - 1
        assert "accept4() failed" in read_text(m.fetcher_log)
        assert not got, "the download ended too soon"
        disconnects = read_text(m.fetcher_log).count("disconnected")

        # the download ends: its descriptors free the way in
        downloader.join(30)
        assert got and got[0].status == 200 and got[0].body == data, got
        waiting.settimeout(3)
        answer = waiting.recv(64)
        assert answer.startswith(b"PONG 1 "), answer
        log = read_text(m.fetcher_log)
        assert log.count("disconnected") == disconnects, \
            "a connection closed: not the case under test"
        assert "accepting workers again" in log
    finally:
        for s in conns:
            s.close()
    assert m.has_blob(digest)


def test_head_of_uncached_blob_asks_upstream_head(mirror_factory,
                                                  fake_upstream):
    fake = fake_upstream
    data = random_bytes(12, 2 * MiB)
    digest = fake.add_blob(data)
    m = _mirror(mirror_factory, fake)
    path = "/v2/team/app/blobs/%s" % digest

    r = m.head(path)
    assert r.status == 200, r
    assert r.body == b""
    assert int(r.header("Content-Length")) == len(data)
    assert r.header("Docker-Content-Digest") == digest
    assert r.header("Content-Type") == "application/octet-stream"
    assert fake.count("HEAD", "/blobs/") == 1
    assert fake.count("GET", "/blobs/") == 0
    assert not m.stored_digests()
    assert not store_tmp_files(m)

    # a HEAD loop downloads nothing
    for _ in range(20):
        assert m.head(path).status == 200
    assert fake.count("GET", "/blobs/") == 0
    assert not m.stored_digests()

    # unknown upstream: 404, still nothing fetched
    r = m.head("/v2/team/app/blobs/sha256:%064x" % 7)
    assert r.status == 404, r
    assert fake.count("GET", "/blobs/") == 0

    # a GET stores it; a HEAD is then a hit, the upstream not asked
    heads = fake.count("HEAD", "/blobs/")
    r = m.get(path)
    assert r.status == 200 and r.body == data
    assert m.has_blob(digest)
    r = m.head(path)
    assert r.status == 200 and int(r.header("Content-Length")) == len(data)
    assert fake.count("HEAD", "/blobs/") == heads
