"""The counters and gauges the README lists, scraped from a real /metrics
after the events that move them: failovers, negative hits, refused
credentials, a 429 (endpoint_throttled), an endpoint backed off
(endpoint_up 0, then 1 again), Docker Hub's RateLimit-* headers; and
nginx's own counters across a reload of nginx (SIGHUP to the master)."""

import os
import signal

from fakeregistry import FakeRegistry
from harness import (ACCEPT_ALL, assert_blob, assert_json_error,
                     assert_manifest, random_bytes, read_text, wait_for)
from test_metrics import requests_of, scrape, value

NAME = "events.test"
NO_PREFETCH = {"enabled": False}


def _registry(fakes, **kw):
    d = {"name": NAME, "endpoints": [f.url for f in fakes]}
    d.update(kw)
    return d


def _blob(fakes, seed, size=4096):
    data = random_bytes(seed, size)
    for f in fakes:
        digest = f.add_blob(data)
    return digest, data


def _pull_blob(m, digest, data):
    r = m.get("/v2/team/app/blobs/" + digest)
    assert r.status == 200 and r.error is None and r.body == data, r


def _ep(s, metric, fake):
    return value(s, "ocimirror_fetcher_endpoint_" + metric, registry=NAME,
                 endpoint=fake.url)


def test_failovers_and_endpoint_up(mirror_factory):
    """Three 503s of the first endpoint: each request fails over to the
    second (failovers 3, failures 3), and the third puts the first down
    (endpoint_up 0) for its back-off; a probe that is answered brings it
    back (endpoint_up 1)."""
    a, b = FakeRegistry().start(), FakeRegistry().start()
    try:
        a.fail[r"^/v2/"] = (503, "UNAVAILABLE")
        m = mirror_factory(NAME, [_registry([a, b], backoff=3)],
                           prefetch=NO_PREFETCH)
        s = scrape(m)
        assert value(s, "ocimirror_fetcher_failovers_total",
                     registry=NAME) == 0
        assert _ep(s, "up", a) == 1 and _ep(s, "up", b) == 1

        for i in range(3):
            _pull_blob(m, *_blob([a, b], "failover-%d" % i))
        s = scrape(m)
        assert value(s, "ocimirror_fetcher_failovers_total",
                     registry=NAME) == 3, s
        assert _ep(s, "failures_total", a) == 3
        assert _ep(s, "failures_total", b) == 0
        assert _ep(s, "requests_total", a) == 3
        assert _ep(s, "requests_total", b) == 3
        assert _ep(s, "up", a) == 0
        assert _ep(s, "up", b) == 1

        # while it is down nothing fails over: the second is asked first
        _pull_blob(m, *_blob([a, b], "failover-down"))
        s = scrape(m)
        assert value(s, "ocimirror_fetcher_failovers_total",
                     registry=NAME) == 3, s
        assert _ep(s, "requests_total", a) == 3

        # healthy again: the probe after the back-off brings it back
        del a.fail[r"^/v2/"]
        wait_for(lambda: _ep(scrape(m), "up", a) == 1, 20,
                 what="endpoint_up 1 after a probe was answered")
        assert a.count("GET", r"^/v2/$") >= 1
    finally:
        a.stop()
        b.stop()


def test_negative_hits(mirror_factory, fake_upstream):
    fake_upstream.add_blob(b"unused")
    m = mirror_factory(NAME, [_registry([fake_upstream], negative_ttl=300)],
                       prefetch=NO_PREFETCH)
    path = "/v2/team/app/manifests/missing"
    for _ in range(5):
        assert_json_error(m.get(path, {"Accept": ACCEPT_ALL}), 404,
                          "MANIFEST_UNKNOWN")
    assert fake_upstream.count(None, r"/manifests/missing$") == 1
    s = scrape(m)
    # the first asked upstream; the four others were answered from memory
    assert value(s, "ocimirror_fetcher_negative_hits_total",
                 registry=NAME) == 4, s


def test_auth_failures(mirror_factory, fake_upstream, catalog, tmp_path):
    """A password the registry refuses: the client gets 401 UNAUTHORIZED,
    the refusal is counted once and remembered (more pulls of the same
    repository ask nothing upstream)."""
    fake_upstream.add_image("team/app", "v1", catalog["small"])
    fake_upstream.require_basic("alice", "right")
    pw = tmp_path / "alice.pw"
    pw.write_text("wrong\n")
    m = mirror_factory(NAME, [_registry([fake_upstream], username="alice",
                                        password_file=str(pw))],
                       prefetch=NO_PREFETCH)
    s = scrape(m)
    assert value(s, "ocimirror_fetcher_auth_failures_total",
                 registry=NAME) == 0
    path = "/v2/team/app/manifests/v1"
    assert_json_error(m.get(path, {"Accept": ACCEPT_ALL}), 401,
                      "UNAUTHORIZED")
    seen = len(fake_upstream.requests)
    assert fake_upstream.auth_refused >= 1
    for _ in range(3):
        assert_json_error(m.get(path, {"Accept": ACCEPT_ALL}), 401,
                          "UNAUTHORIZED")
    assert len(fake_upstream.requests) == seen
    s = scrape(m)
    assert value(s, "ocimirror_fetcher_auth_failures_total",
                 registry=NAME) == 1, s


def test_endpoint_throttled(mirror_factory, fake_upstream, catalog):
    fake_upstream.add_image("team/app", "v1", catalog["small"])
    fake_upstream.too_many[r"^/v2/team/"] = 120
    m = mirror_factory(NAME, [_registry([fake_upstream])],
                       prefetch=NO_PREFETCH)
    path = "/v2/team/app/manifests/v1"
    assert_json_error(m.get(path, {"Accept": ACCEPT_ALL}), 429,
                      "TOOMANYREQUESTS")
    # throttled: answered at once, nothing asked upstream
    for _ in range(3):
        assert_json_error(m.get(path, {"Accept": ACCEPT_ALL}), 429,
                          "TOOMANYREQUESTS")
    assert fake_upstream.count(None, r"^/v2/team/") == 1
    s = scrape(m)
    assert _ep(s, "throttled_total", fake_upstream) == 1, s
    assert _ep(s, "up", fake_upstream) == 1, s
    assert _ep(s, "failures_total", fake_upstream) == 0, s


def test_ratelimit_headers_in_docker_hub_form(mirror_factory, fake_upstream,
                                              catalog):
    """Docker Hub sends `ratelimit-limit: 100;w=21600`: the number is the
    limit, `;w=` the window.  The gauges follow the last answer, and the
    log warns once a tenth of the limit or less is left."""
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    m = mirror_factory(NAME, [_registry([fake_upstream])],
                       prefetch=NO_PREFETCH)
    s = scrape(m)
    # absent until seen
    assert value(s, "ocimirror_fetcher_ratelimit_limit",
                 registry=NAME) is None, s
    assert value(s, "ocimirror_fetcher_ratelimit_remaining",
                 registry=NAME) is None, s

    fake_upstream.headers = {"ratelimit-limit": "100;w=21600",
                             "ratelimit-remaining": "76;w=21600"}
    assert_manifest(m.get("/v2/team/app/manifests/v1",
                          {"Accept": ACCEPT_ALL}), small.manifest)
    s = scrape(m)
    assert value(s, "ocimirror_fetcher_ratelimit_limit",
                 registry=NAME) == 100, s
    assert value(s, "ocimirror_fetcher_ratelimit_remaining",
                 registry=NAME) == 76, s
    assert "left" not in read_text(m.fetcher_log)

    fake_upstream.headers = {"RateLimit-Limit": "100;w=21600",
                             "RateLimit-Remaining": "7;w=21600"}
    b = small.layers[0].blob
    assert_blob(m.get("/v2/team/app/blobs/" + b.digest), b)
    s = scrape(m)
    assert value(s, "ocimirror_fetcher_ratelimit_limit",
                 registry=NAME) == 100, s
    assert value(s, "ocimirror_fetcher_ratelimit_remaining",
                 registry=NAME) == 7, s
    warned = [ln for ln in read_text(m.fetcher_log).splitlines()
              if " warn " in ln and "7" in ln and "100" in ln]
    assert len(warned) == 1, read_text(m.fetcher_log)


def _nginx_pids(m):
    """The pids of the nginx master's children (its workers), from /proc."""
    master = m.nginx.popen.pid
    kids = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            kids.add(int(d))
    return kids


def test_nginx_counters_survive_a_reload(mirror, catalog):
    """nginx's counters live in a shared zone that a reload keeps: the
    new workers go on from the old workers' numbers."""
    small = catalog["small"]
    b = small.layers[0].blob
    path = "/v2/e2e/small/blobs/" + b.digest
    assert_blob(mirror.get(path), b)                 # miss
    assert_blob(mirror.get(path), b)                 # hit
    assert_json_error(mirror.get("/v2/e2e/small/blobs/sha256:xyz"), 400)

    def counted():
        s = scrape(mirror)
        if value(s, "ocimirror_responses_total", code="4xx") == 1 \
                and value(s, "ocimirror_responses_total", code="2xx") == 2:
            return s
    before = wait_for(counted, 5, what="three answers counted")
    assert requests_of(before, "blob", "miss") == 1
    assert requests_of(before, "blob", "hit") == 1
    sent = value(before, "ocimirror_sent_bytes_total")
    assert sent >= 2 * b.size

    old_workers = _nginx_pids(mirror)
    assert old_workers
    os.kill(mirror.nginx.popen.pid, signal.SIGHUP)
    wait_for(lambda: (lambda now: now and not now & old_workers)(
        _nginx_pids(mirror)), 20, what="new workers, the old ones gone")
    assert mirror.nginx.alive()

    after = scrape(mirror)
    assert requests_of(after, "blob", "miss") == 1, after
    assert requests_of(after, "blob", "hit") == 1, after
    assert value(after, "ocimirror_responses_total", code="2xx") == 2
    assert value(after, "ocimirror_responses_total", code="4xx") == 1
    assert value(after, "ocimirror_sent_bytes_total") == sent
    assert value(after, "ocimirror_fetcher_up") == 1

    # and they go on counting from there
    assert_blob(mirror.get(path), b)
    s = wait_for(lambda: (lambda s: s if value(
        s, "ocimirror_responses_total", code="2xx") == 3 else None)(
        scrape(mirror)), 5, what="the hit after the reload counted")
    assert requests_of(s, "blob", "hit") == 2
    assert value(s, "ocimirror_sent_bytes_total") == sent + b.size
