"""Bandwidth limits: fetcher.bandwidth_limit holds over 64 concurrent
transfers (never more than 10% over it), shared fairly; a registry's own
limit holds for it alone; the pauses are counted.

Only the cap is asserted here: how close to the limit the transfers get
on a loaded machine is a speed, and speeds are the benchmark's (make
bench), not a test's."""

import http.client
import threading
import time

import pytest

from fakeregistry import FakeRegistry
from harness import fake_registry_entry, random_bytes, sha256_hex, wait_for
from test_metrics import scrape, value

# serial (conftest.py): fairness is when each transfer got its bytes,
# which other tests' load would skew
pytestmark = pytest.mark.serial

KiB = 1024
MiB = 1024 * KiB
NO_PREFETCH = {"enabled": False}


def _many(fake, n, size, seed):
    blobs = []
    for i in range(n):
        data = random_bytes("%s-%d" % (seed, i), size)
        blobs.append((fake.add_blob(data), data))
    return blobs


class _Pull(threading.Thread):
    """GET one blob through the mirror, noting when bytes arrived."""

    def __init__(self, hostport, path, start):
        super().__init__(daemon=True)
        self.hostport, self.path, self.start_evt = hostport, path, start
        self.status = None
        self.body = b""
        self.t0 = self.first = self.end = None

    def run(self):
        host, port = self.hostport.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.start_evt.wait(10)
        self.t0 = time.monotonic()
        try:
            conn.request("GET", self.path)
            r = conn.getresponse()
            self.status = r.status
            parts = []
            while True:
                chunk = r.read1(64 * KiB)
                if not chunk:
                    break
                if self.first is None:
                    self.first = time.monotonic()
                parts.append(chunk)
            self.body = b"".join(parts)
        finally:
            self.end = time.monotonic()
            conn.close()


def _pull_all(m, paths, gated=(), asked=None):
    """GET every path at once; returns (pulls, when the gates opened).
    gated: FakeRegistry instances whose blob answers are held until
    `asked` (their blob GETs in all) have reached them, so that every
    transfer competes from the same instant however late a client
    thread of a busy machine got to send its request."""
    for f in gated:
        f.blob_gate.clear()
    start = threading.Event()
    pulls = [_Pull(m.hostport, p, start) for p in paths]
    try:
        for p in pulls:
            p.start()
        start.set()
        if gated:
            wait_for(lambda: sum(f.count("GET", "/blobs/") for f in gated)
                     == asked, 60, what="%d blob requests upstream" % asked)
    finally:
        released = time.monotonic()
        for f in gated:
            f.blob_gate.set()
    for p in pulls:
        p.join(120)
    assert not any(p.is_alive() for p in pulls)
    return pulls, released


def _check(pulls, blobs):
    for p, (digest, data) in zip(pulls, blobs):
        assert p.status == 200, (p.path, p.status)
        assert len(p.body) == len(data) and \
            "sha256:" + sha256_hex(p.body) == digest, p.path


def _rate(pulls, t0):
    t1 = max(p.end for p in pulls)
    return sum(len(p.body) for p in pulls) / (t1 - t0), t0, t1


def test_global_limit_64_transfers_fair(mirror_factory, fake_upstream):
    cap = 2 * MiB
    blobs = _many(fake_upstream, 64, 160 * KiB, "bw64")   # 10 MiB: ~5 s
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       fetcher={"max_transfers": 64, "max_per_host": 64,
                                "chunks_per_blob": 0,
                                "bandwidth_limit": "2M"},
                       prefetch=NO_PREFETCH)
    pulls, released = _pull_all(m, ["/v2/team/app/blobs/" + d
                                     for d, _ in blobs],
                                gated=[fake_upstream], asked=64)
    _check(pulls, blobs)
    rate, t0, t1 = _rate(pulls, released)
    assert rate <= 1.1 * cap, (rate, cap, t1 - t0)
    # fair: every transfer got bytes in the first half of the run, and
    # none was done in its first third (equal shares end together; one
    # transfer after another would finish the first at 1/64 of the run)
    half = t0 + (t1 - t0) / 2
    third = t0 + (t1 - t0) / 3
    assert all(p.first < half for p in pulls), \
        sorted(p.first - t0 for p in pulls)
    assert all(p.end > third for p in pulls), \
        sorted(p.end - t0 for p in pulls)
    # the upstream was asked once per blob: pauses are no new requests
    assert fake_upstream.count("GET", "/blobs/") == 64
    # and the pauses are counted: at 2M/s, 10 MiB cannot go without many
    assert value(scrape(m), "ocimirror_fetcher_bandwidth_pauses_total",
                 registry=fake_upstream.hostport) >= 64


def test_registry_limit(mirror_factory, fake_upstream):
    cap = 1 * MiB
    free = FakeRegistry().start()
    try:
        capped = _many(fake_upstream, 16, 192 * KiB, "bwreg")  # 3 MiB: ~3 s
        fast = _many(free, 1, 4 * MiB, "bwfree")
        m = mirror_factory(fake_upstream.hostport,
                           [fake_registry_entry(fake_upstream,
                                                bandwidth_limit="1M"),
                            fake_registry_entry(free)],
                           fetcher={"max_transfers": 64, "max_per_host": 64,
                                    "chunks_per_blob": 0},
                           prefetch=NO_PREFETCH)
        paths = ["/v2/team/app/blobs/" + d for d, _ in capped]
        paths.append("/v2/%s/team/app/blobs/%s" % (free.hostport,
                                                    fast[0][0]))
        pulls, released = _pull_all(m, paths, gated=[fake_upstream, free],
                                    asked=17)
        _check(pulls, capped + fast)
        rate, t0, t1 = _rate(pulls[:-1], released)
        assert rate <= 1.1 * cap, (rate, cap, t1 - t0)
        # the other registry is not held back by it
        assert pulls[-1].end < min(p.end for p in pulls[:-1])
        # only the capped registry's transfers were paused
        s = scrape(m)
        assert value(s, "ocimirror_fetcher_bandwidth_pauses_total",
                     registry=fake_upstream.hostport) >= 16, s
        assert value(s, "ocimirror_fetcher_bandwidth_pauses_total",
                     registry=free.hostport) == 0, s
    finally:
        free.stop()
