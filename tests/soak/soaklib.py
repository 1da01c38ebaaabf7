"""The machinery of the soak and the chaos loop: clients with keep-alive
connections that check every answer against the Catalog, the record of
what they saw, the classification of their errors by cause, and samples
of the mirror's processes (RSS, open descriptors) and metrics.

Every loop here is bounded by a deadline or a count.
"""

import collections
import http.client
import json
import os
import random
import re
import socket
import threading
import time

from harness import ACCEPT_ALL, sha256_hex, wait_for

KINDS = ("hit-blob", "hit-manifest", "head", "range", "cold", "tags",
         "referrers")
WEIGHTS = (30, 15, 15, 15, 10, 7, 8)
# what the clients' records are kept by: a cold pull is several requests
RECORD_KINDS = ("hit-blob", "hit-manifest", "head", "range",
                "cold-manifest", "cold-blob", "cold-range", "cold-head",
                "tags", "referrers")
ERRORS_KEPT = 2000
REQUEST_TIMEOUT = 90          # the mirror's fetch timeout is 60 s


class Failure(Exception):
    """A wrong answer: cls is "status", "cut", "bytes", "conn",
    "header" or "early-range-bytes" (a complete 206 of wrong bytes for a
    range that ends before its blob); started: whether a 2xx status
    line had come."""

    def __init__(self, cls, detail, started=False):
        Exception.__init__(self, "%s: %s" % (cls, detail))
        self.cls = cls
        self.detail = detail
        self.started = started


class Record:
    """What every client saw: requests by kind, errors (the first
    ERRORS_KEPT in full, all counted)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ok = collections.Counter()
        self.failed = collections.Counter()
        self.errors = []
        self.reconnects = 0

    def add(self, kind, key, t0, failure):
        with self.lock:
            if failure is None:
                self.ok[kind] += 1
                return
            self.failed[kind] += 1
            if len(self.errors) < ERRORS_KEPT:
                self.errors.append((kind, key, t0, time.time(), failure))


class Conn:
    """One keep-alive connection to the mirror, opened again after any
    error.  A request that finds a kept connection closed before any
    answer (nginx's keepalive_timeout or keepalive_requests) is sent again
    once on a new one, as every HTTP client does."""

    def __init__(self, hostport, record):
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.record = record
        self.conn = None
        self.used = False

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def call(self, method, path, headers=None):
        """(status, headers, body); raises Failure."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=REQUEST_TIMEOUT)
                self.used = False
            reused = self.used
            self.used = True
            try:
                self.conn.request(method, path, headers=headers or {})
                r = self.conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as e:
                self.close()
                if reused and attempt == 0:
                    with self.record.lock:
                        self.record.reconnects += 1
                    continue
                raise Failure("conn", repr(e))
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise Failure("conn", repr(e))
            started = 200 <= r.status < 300
            try:
                body = r.read()
            except http.client.IncompleteRead as e:
                self.close()
                raise Failure("cut", "%d of %s bytes" % (
                    len(e.partial), r.getheader("Content-Length")), started)
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise Failure("cut", repr(e), started)
            if r.will_close:
                self.close()
            return r.status, r, body
        raise AssertionError("not reached")


def expect(status, r, body, want_status, want_body=None, digest=None,
           length=None):
    if status != want_status:
        code = ""
        try:
            code = json.loads(body)["errors"][0]["code"]
        except (ValueError, KeyError, IndexError, TypeError):
            pass
        raise Failure("status", "%d %s %r" % (status, code, body[:120]))
    if want_body is not None and body != want_body:
        raise Failure("bytes", "%d bytes, sha256 %s" % (
            len(body), sha256_hex(body)[:16]), True)
    if digest is not None and r.getheader("Docker-Content-Digest") != digest:
        raise Failure("header", "Docker-Content-Digest %r" %
                      r.getheader("Docker-Content-Digest"), True)
    if length is not None and r.getheader("Content-Length") != str(length):
        raise Failure("header", "Content-Length %r" %
                      r.getheader("Content-Length"), True)


class Gate:
    """Pauses the clients: closed, each finishes its request, closes its
    connection and waits; idle() counts those waiting."""

    def __init__(self, n):
        self.n = n
        self.open = threading.Event()
        self.open.set()
        self.lock = threading.Lock()
        self.waiting = 0

    def check(self, conn, stop):
        if self.open.is_set():
            return
        conn.close()
        with self.lock:
            self.waiting += 1
        try:
            while not self.open.wait(0.2) and not stop.is_set():
                pass
        finally:
            with self.lock:
                self.waiting -= 1

    def idle(self):
        with self.lock:
            return self.waiting == self.n


class Soak:
    """n clients of mixed traffic against a mirror, for `seconds`."""

    def __init__(self, mirror, cat, clients, seconds, seed=0, cold_base=0):
        self.mirror = mirror
        self.cat = cat
        self.n = clients
        self.seconds = seconds
        self.seed = seed
        self.record = Record()
        self.stop = threading.Event()
        self.gate = Gate(clients)
        self.cold_lock = threading.Lock()
        self.cold_next = 2 * cold_base     # images from cold_base on
        self.threads = []

    def next_cold(self):
        # two clients in turn get each image: the second often joins the
        # first one's download
        with self.cold_lock:
            n = self.cold_next // 2
            self.cold_next += 1
        return n

    def start(self):
        self.deadline = time.monotonic() + self.seconds
        for i in range(self.n):
            t = threading.Thread(target=self._client, args=(i,),
                                 name="soak-client-%d" % i, daemon=True)
            t.start()
            self.threads.append(t)

    def join(self, grace):
        """Wait for the clients to reach the deadline and end their last
        request (at most grace seconds more); the names of those still
        running after that."""
        self.gate.open.set()
        end = self.deadline + grace
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
        self.stop.set()
        return [t.name for t in self.threads if t.is_alive()]

    def _client(self, i):
        rng = random.Random("soak-client:%s:%d" % (self.seed, i))
        conn = Conn(self.mirror.hostport, self.record)
        try:
            while not self.stop.is_set() \
                    and time.monotonic() < self.deadline:
                self.gate.check(conn, self.stop)
                kind = rng.choices(KINDS, WEIGHTS)[0]
                getattr(self, "_" + kind.replace("-", "_"))(conn, rng)
        finally:
            conn.close()

    def _do(self, conn, kind, key, method, path, headers, check):
        t0 = time.time()
        try:
            status, r, body = conn.call(method, path, headers)
            check(status, r, body)
            failure = None
        except Failure as f:
            failure = f
        self.record.add(kind, key, t0, failure)
        return failure is None

    # --- the kinds of traffic ----------------------------------------

    def _hit_blob(self, conn, rng):
        im = rng.choice(self.cat.hot)
        b = rng.choice(im.blobs())
        self._do(conn, "hit-blob", b.digest, "GET",
                 "/v2/%s/blobs/%s" % (im.repo, b.digest), None,
                 lambda s, r, body: expect(s, r, body, 200, b.data,
                                           b.digest))

    def _hit_manifest(self, conn, rng):
        im = rng.choice(self.cat.hot)
        m = im.manifest
        self._do(conn, "hit-manifest", im.repo + "/manifests/", "GET",
                 "/v2/%s/manifests/%s" % (im.repo, im.tag),
                 {"Accept": ACCEPT_ALL},
                 lambda s, r, body: expect(s, r, body, 200, m.data,
                                           m.digest))

    def _head(self, conn, rng):
        im = rng.choice(self.cat.hot)
        if rng.random() < 0.5:
            item = im.manifest
            path = "/v2/%s/manifests/%s" % (im.repo, im.tag)
            key = im.repo + "/manifests/"
        else:
            item = rng.choice(im.blobs())
            path = "/v2/%s/blobs/%s" % (im.repo, item.digest)
            key = item.digest
        self._do(conn, "head", key, "HEAD", path, {"Accept": ACCEPT_ALL},
                 lambda s, r, body: expect(s, r, body, 200, b"",
                                           item.digest, len(item.data)))

    def _ranged(self, conn, rng, kind, repo, b):
        n = len(b.data)
        first = rng.randrange(n)
        last = rng.randrange(first, n)
        def check(s, r, body):
            try:
                expect(s, r, body, 206, b.data[first:last + 1])
            except Failure as f:
                if f.cls == "bytes" and last < n - 1:
                    f.detail += " (a range that ends before the blob)"
                    f.cls = "early-range-bytes"
                raise
        self._do(conn, kind, b.digest, "GET",
                 "/v2/%s/blobs/%s" % (repo, b.digest),
                 {"Range": "bytes=%d-%d" % (first, last)}, check)

    def _range(self, conn, rng):
        im = rng.choice(self.cat.hot)
        self._ranged(conn, rng, "range", im.repo, rng.choice(im.layers))

    def _cold(self, conn, rng):
        im = self.cat.cold(self.next_cold())
        m = im.manifest
        self._do(conn, "cold-manifest", im.repo + "/manifests/", "GET",
                 "/v2/%s/manifests/%s" % (im.repo, im.tag),
                 {"Accept": ACCEPT_ALL},
                 lambda s, r, body: expect(s, r, body, 200, m.data,
                                           m.digest))
        for b in im.blobs():
            p = rng.random()
            if p < 0.1:
                self._do(conn, "cold-head", b.digest, "HEAD",
                         "/v2/%s/blobs/%s" % (im.repo, b.digest), None,
                         lambda s, r, body, b=b: expect(
                             s, r, body, 200, b"", b.digest, len(b.data)))
            elif p < 0.3 and len(b.data) > 1:
                self._ranged(conn, rng, "cold-range", im.repo, b)
            else:
                self._do(conn, "cold-blob", b.digest, "GET",
                         "/v2/%s/blobs/%s" % (im.repo, b.digest), None,
                         lambda s, r, body, b=b: expect(
                             s, r, body, 200, b.data, b.digest))

    def _tags(self, conn, rng):
        want = sorted(self.cat.static_tags["soak/tagged"])

        def check(s, r, body):
            expect(s, r, body, 200)
            try:
                got = json.loads(body)
            except ValueError:
                raise Failure("bytes", "not JSON: %r" % body[:80], True)
            if got.get("name") != "soak/tagged" or \
                    sorted(got.get("tags") or []) != want:
                raise Failure("bytes", "tags %r" % got, True)
        self._do(conn, "tags", "/v2/soak/tagged/tags/list", "GET",
                 "/v2/soak/tagged/tags/list", None, check)

    def _referrers(self, conn, rng):
        subject = self.cat.subject
        want = sorted(m.digest for m in self.cat.referrers)

        def check(s, r, body):
            expect(s, r, body, 200)
            try:
                got = sorted(d["digest"]
                             for d in json.loads(body)["manifests"])
            except (ValueError, KeyError, TypeError):
                raise Failure("bytes", "not a list: %r" % body[:80], True)
            if got != want:
                raise Failure("bytes", "referrers %r" % got, True)
        self._do(conn, "referrers", "/referrers/" + subject.manifest.digest,
                 "GET", "/v2/%s/referrers/%s" % (subject.repo,
                                                 subject.manifest.digest),
                 None, check)


# --- errors by cause -------------------------------------------------------

FAULT_WINDOW = 120            # seconds before a request that a fault of
                              # the same object may have caused its error


def classify(errors, faults):
    """Each error's cause, from the faults injected into the failing
    endpoint: (cause, error) pairs.  Causes:

      blob-mismatch         a blob request (GET, Range, HEAD) whose answer was
                            cut short after its 2xx status, or was a 502
                            "digest mismatch", after the faulty endpoint
                            sent other bytes under that digest.  A blob
                            streams while it downloads: SIZE goes to
                            every waiter with the upstream's headers,
                            before a byte can be verified, and a waiter is
                            bound to that transfer from then on (its
                            worker may have sent bytes already, which no
                            other endpoint's download can take back).
                            The mismatch at the end fails them all: cut
                            short, or 502 when the worker found the temp
                            file gone (a small blob, done and refused
                            within one turn of the fetcher's loop; a
                            HEAD's 502 has no body to say why).  The
                            client retries; acceptable
      avoidable:<kinds>     a fault of the faulty endpoint on the same
                            object surfaced, though the second endpoint
                            could have served it
      unexplained           no fault on that object: a bug
      range-before-verify   a complete 206 of wrong bytes for a range
                            that ends before its blob does, after the
                            faulty endpoint sent other bytes under that
                            digest: served as soon as the fetcher has
                            written them, before the digest can be known,
                            by design (DESIGN.md, "A streamed range";
                            tests/e2e/test_ranges_inflight.py): the
                            client checks the blob it assembles.  Counted
                            apart and accepted here, as the design says;
                            it is at odds with "nothing unverified is
                            ever visible" and waits for a decision
      served-wrong          any other complete answer with the wrong
                            bytes or headers: never acceptable
    """
    by_time = sorted(faults)
    out = []
    for e in errors:
        kind, key, t0, t1, f = e
        near = sorted({fk for ft, fk, _, path in by_time
                       if t0 - FAULT_WINDOW <= ft <= t1 and key in path})
        if f.cls == "early-range-bytes" and "wrong" in near:
            out.append(("range-before-verify", e))
        elif f.cls in ("bytes", "header", "early-range-bytes"):
            out.append(("served-wrong", e))
        elif not near:
            out.append(("unexplained", e))
        elif "wrong" in near and key.startswith("sha256:") and (
                (f.cls == "cut" and f.started)
                or (f.cls == "status" and f.detail.startswith("502 ")
                    and ("digest mismatch" in f.detail
                         or kind in ("head", "cold-head")))):
            out.append(("blob-mismatch", e))
        else:
            out.append(("avoidable:" + "+".join(near), e))
    return out


ACCEPTABLE = ("blob-mismatch", "range-before-verify")


# --- the processes ---------------------------------------------------------

def children(pid):
    """PIDs whose parent is pid (nginx's workers of its master)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # the name in parentheses may hold spaces: the fields after it
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(name))
    return sorted(out)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def tcp_inodes():
    """The inodes of this machine's TCP sockets (/proc/net/tcp, tcp6)."""
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    out.add(line.split()[9])
        except OSError:
            pass
    return out


def fd_kinds(pid):
    """What a process's descriptors are: {"socket": n, "file": n, ...}."""
    out = collections.Counter()
    tcp = tcp_inodes()
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            target = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if target.startswith("/"):
            out["file"] += 1
        elif target.startswith("socket:[") and target[8:-1] in tcp:
            out["tcp"] += 1
        else:
            out[target.split(":")[0].split("[")[0]] += 1
    return dict(out)


def schedstat(pid):
    """(seconds on a CPU, seconds waiting in the run queue) of pid."""
    with open("/proc/%d/schedstat" % pid) as f:
        run, wait = f.read().split()[:2]
    return int(run) / 1e9, int(wait) / 1e9


def sample(mirror):
    """{"fetcher": (rss KiB, fds), "nginx workers": (rss, fds) summed}."""
    workers = children(mirror.nginx.popen.pid)
    fetcher = mirror.fetcher.popen.pid
    kinds = fd_kinds(fetcher)
    # the fetcher's TCP connections are libcurl's cache of idle upstream
    # connections (the fetcher is idle when sampled): as many as recent
    # concurrency and faults left, at most max_transfers; they are
    # counted apart
    return {
        "fetcher": (rss_kib(fetcher),
                    fd_count(fetcher) - kinds.get("tcp", 0)),
        "fetcher tcp": kinds.get("tcp", 0),
        "nginx workers": (sum(rss_kib(w) for w in workers),
                          sum(fd_count(w) for w in workers)),
        "worker pids": workers,
        "fetcher fds": kinds,
        "fetcher sched": schedstat(fetcher),
    }


SAMPLE_RX = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')


def metrics(mirror):
    """{name: summed value} of the mirror's /metrics (labels summed)."""
    r = mirror.get("/metrics", timeout=10)
    assert r.status == 200, r
    out = collections.Counter()
    for line in r.body.decode().splitlines():
        m = SAMPLE_RX.match(line)
        if m:
            out[m[1]] += float(m[3])
    return out


def quiesce(soak, mirror, timeout=150):
    """Pause the clients, wait for the fetcher to have no job, then for
    nginx's idle descriptors to close (open_file_cache inactive=2s, closed
    within 4 s); returns the sample taken then."""
    soak.gate.open.clear()
    wait_for(soak.gate.idle, timeout, interval=0.2,
             what="every client paused")
    return settle(mirror)


def settle(mirror):
    """With no client at work: wait for the fetcher to have no job, then
    for nginx's idle descriptors to close; sample."""
    def no_jobs():
        m = metrics(mirror)
        return m["ocimirror_fetcher_jobs"] == 0 and \
            m["ocimirror_fetcher_waiters"] == 0
    wait_for(no_jobs, 60, interval=0.5, what="the fetcher without jobs")
    time.sleep(5)
    s = sample(mirror)
    s["t"] = time.monotonic()
    return s


def stall_counts(mirror):
    """(batches, over 10 ms, over 50 ms, over 100 ms) of the fetcher's
    loop stall histogram."""
    r = mirror.get("/metrics", timeout=10)
    buckets = {}
    total = 0
    for line in r.body.decode().splitlines():
        m = SAMPLE_RX.match(line)
        if not m:
            continue
        if m[1] == "ocimirror_fetcher_loop_stall_seconds_bucket":
            le = re.search(r'le="([^"]+)"', m[2])[1]
            buckets[float(le)] = float(m[3])
        elif m[1] == "ocimirror_fetcher_loop_stall_seconds_count":
            total = float(m[3])

    def over(limit):
        under = max((v for le, v in buckets.items() if le <= limit),
                    default=0)
        return total - under
    return total, over(0.01), over(0.05), over(0.1)


class Timeline(threading.Thread):
    """The fetcher's RSS and the store's file count every `every`
    seconds, under load (for the summary: does it level off?)."""

    def __init__(self, mirror, every, stop):
        threading.Thread.__init__(self, name="soak-timeline", daemon=True)
        self.mirror = mirror
        self.every = every
        self.stop_event = stop
        self.points = []             # (seconds, RSS KiB, files in sha256/)

    def run(self):
        t0 = time.monotonic()
        while not self.stop_event.wait(self.every):
            try:
                rss = rss_kib(self.mirror.fetcher.popen.pid)
            except (OSError, AssertionError):
                continue
            files = sum(len(f) for _, _, f in os.walk(
                os.path.join(self.mirror.store, "sha256")))
            self.points.append((time.monotonic() - t0, rss, files))

    def text(self, n=12):
        pts = self.points
        if len(pts) > n:
            pts = [pts[i * (len(pts) - 1) // (n - 1)] for i in range(n)]
        return ", ".join("%.0fs %d KiB %d files" % p for p in pts)


def growth(a, b):
    return (b - a) / a if a else 0.0
