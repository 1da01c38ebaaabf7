"""connect_timeout and low_speed_time, end to end, on loopback only.

A black hole is a listening socket that never accepts, its accept queue
filled by the test's own connections first: the kernel then drops every
SYN to it, so a connect neither succeeds nor is refused, as with a
firewall that drops.  A stalled upstream is a FakeRegistry that sends a
blob's headers and a first part of its body, then nothing, the
connection held open.

Each registry's own value is set short and the fetcher-wide one (which
it overrides) long, so that the time the client waits tells which one
ended the transfer."""

import socket
import time

import pytest

from harness import (assert_json_error, random_bytes,
                     sha256_hex, store_tmp_files, wait_for)
from test_metrics import scrape, value

KiB = 1024
NAME = "timeouts.test"
SHORT = 2                   # the registry's setting under test, seconds
LONG = 60                   # the fetcher's, which the registry overrides
NO_PREFETCH = {"enabled": False}


class BlackHole:
    """127.0.0.1:<port> where connects hang: listen(0), never accept,
    and the accept queue filled by connections of its own."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.fillers = []
        # listen(0) queues one connection; a few more make sure the
        # queue is full whatever the kernel rounds the backlog to
        for _ in range(4):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(s)
        # proof that it swallows connects before a test relies on it
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", self.port))
            raise AssertionError("the black hole accepted a connection")
        except socket.timeout:
            pass
        finally:
            probe.close()

    def close(self):
        for s in self.fillers:
            s.close()
        self.sock.close()


@pytest.fixture
def black_hole():
    bh = BlackHole()
    yield bh
    bh.close()


def _registry(endpoints, **kw):
    d = {"name": NAME, "endpoints": endpoints}
    d.update(kw)
    return d


def test_connect_timeout_fails_over_from_a_black_hole(mirror_factory,
                                                      black_hole,
                                                      fake_upstream):
    data = random_bytes("connect-timeout", 64 * KiB)
    digest = fake_upstream.add_blob(data)
    m = mirror_factory(NAME, [_registry([black_hole.url, fake_upstream.url],
                                        connect_timeout=SHORT)],
                       fetcher={"connect_timeout": LONG},
                       prefetch=NO_PREFETCH)

    t0 = time.monotonic()
    r = m.get("/v2/team/app/blobs/" + digest, timeout=LONG)
    waited = time.monotonic() - t0
    assert r.status == 200 and r.error is None, r
    assert r.body == data
    assert r.header("Docker-Content-Digest") == digest, r
    # the first endpoint was given its connect_timeout, not the
    # fetcher's, then the second answered
    assert SHORT - 0.5 <= waited < LONG / 2, waited
    assert fake_upstream.count("GET", "/blobs/" + digest) == 1
    assert m.has_blob(digest)

    s = scrape(m)
    assert value(s, "ocimirror_fetcher_failovers_total", registry=NAME) \
        == 1, s
    assert value(s, "ocimirror_fetcher_endpoint_failures_total",
                 registry=NAME, endpoint=black_hole.url) == 1
    assert value(s, "ocimirror_fetcher_endpoint_failures_total",
                 registry=NAME, endpoint=fake_upstream.url) == 0
    with open(m.fetcher_log) as f:
        log = f.read()
    assert "127.0.0.1:%d" % black_hole.port in log
    assert "timed out" in log.lower() or "timeout" in log.lower(), log


def test_connect_timeout_alone_is_unavailable(mirror_factory, black_hole):
    m = mirror_factory(NAME, [_registry([black_hole.url],
                                        connect_timeout=SHORT)],
                       fetcher={"connect_timeout": LONG},
                       prefetch=NO_PREFETCH)
    t0 = time.monotonic()
    r = m.get("/v2/team/app/blobs/sha256:" + "5" * 64, timeout=LONG)
    waited = time.monotonic() - t0
    assert_json_error(r, 503, "UNAVAILABLE")
    assert SHORT - 0.5 <= waited < LONG / 2, waited
    assert m.stored_digests() == set()
    assert store_tmp_files(m) == []


def test_low_speed_time_ends_a_stalled_download(mirror_factory,
                                                fake_upstream):
    size = 256 * KiB
    sent = 64 * KiB
    data = random_bytes("low-speed", size)
    digest = fake_upstream.add_blob(data)
    fake_upstream.stall[digest] = sent
    m = mirror_factory(NAME, [_registry([fake_upstream.url],
                                        low_speed_time=SHORT)],
                       fetcher={"low_speed_time": LONG},
                       prefetch=NO_PREFETCH, fetch_timeout="120s")
    path = "/v2/team/app/blobs/" + digest

    # the client was told the size and given what arrived; then the
    # stalled transfer is ended and the client's connection closed short
    # of the length: never a complete answer with missing bytes
    t0 = time.monotonic()
    r = m.get(path, timeout=LONG)
    waited = time.monotonic() - t0
    assert r.status == 200, r
    assert r.header("Content-Length") == str(size), r
    assert r.error is not None, r
    assert len(r.body) < size and data.startswith(r.body), len(r.body)
    assert SHORT - 0.5 <= waited < LONG / 2, waited
    assert not m.has_blob(digest)
    wait_for(lambda: store_tmp_files(m) == [], 10,
             what="the stalled download's temp file removed")

    s = scrape(m)
    assert value(s, "ocimirror_fetcher_endpoint_failures_total",
                 registry=NAME, endpoint=fake_upstream.url) >= 1, s
    assert value(s, "ocimirror_fetcher_blobs_fetched_total",
                 registry=NAME) == 0, s
    with open(m.fetcher_log) as f:
        log = f.read()
    assert "too slow" in log.lower(), log

    # the upstream recovers: the next pull fetches the whole blob
    del fake_upstream.stall[digest]
    r = m.get(path, timeout=LONG)
    assert r.status == 200 and r.error is None, r
    assert sha256_hex(r.body) == digest.split(":")[1]
    assert m.has_blob(digest)
