"""Endpoints, failover and offline serving, against two FakeRegistry
instances: 5xx and resets fail over to the second endpoint; an endpoint
that keeps failing is skipped for its back-off and probed back in;
select = "fastest" prefers the endpoint with the lower probed round
trip; a 429 with Retry-After throttles the endpoint (a stored tag is
served stale, nothing is asked upstream until Retry-After has passed);
a stale tag is served with a Warning only within stale_if_error while
every endpoint is down; an upstream 404 is remembered for negative_ttl."""

import time

import pytest

from fakeregistry import FakeRegistry
from harness import (ACCEPT_ALL, assert_blob, assert_json_error,
                     assert_manifest, random_bytes, read_text, sha256_hex,
                     wait_for)

NAME = "multi.test"
WARNING = '110 - "Response is Stale"'
REPO_PATH = r"^/v2/team/app/"           # what a pull asks, probes aside
PROBE = r"^/v2/$"
# windows the requests inside them must not outlast, even on a loaded
# machine: a test waits them out, so longer costs seconds, not flakes
RETRY_AFTER = 8
NEGATIVE_TTL = 6


@pytest.fixture
def fakes():
    a, b = FakeRegistry().start(), FakeRegistry().start()
    yield a, b
    a.stop()
    b.stop()


def _mirror(mirror_factory, endpoints, **settings):
    reg = {"name": NAME, "endpoints": [f.url for f in endpoints]}
    reg.update(settings)
    return mirror_factory(NAME, [reg])


def _blob(fake_list, seed, size=4096):
    """A new blob served by every fake of fake_list; (digest, data)."""
    data = random_bytes(seed, size)
    for f in fake_list:
        digest = f.add_blob(data)
    return digest, data


def _get_blob(m, digest, data):
    r = m.get("/v2/team/app/blobs/" + digest)
    assert r.status == 200 and r.error is None, r
    assert r.body == data
    assert sha256_hex(r.body) == digest.split(":")[1]


@pytest.mark.parametrize("fault", ["5xx", "reset"])
def test_failover_to_second_endpoint(mirror_factory, fakes, catalog, fault):
    a, b = fakes
    small = catalog["small"]
    for f in (a, b):
        f.add_image("team/app", "v1", small)
    if fault == "5xx":
        a.fail[r"^/v2/"] = (503, "UNAVAILABLE")
    else:
        a.reset.add(r"^/v2/")
    m = _mirror(mirror_factory, [a, b], backoff=60)

    assert_manifest(m.get("/v2/team/app/manifests/v1",
                          {"Accept": ACCEPT_ALL}), small.manifest)
    for layer in small.layer_blobs():
        assert_blob(m.get("/v2/team/app/blobs/" + layer.digest), layer)
        assert m.has_blob(layer.digest)
    assert a.count(None, REPO_PATH) >= 1
    assert b.count("GET", r"/manifests/") >= 1
    for layer in small.layer_blobs():
        assert b.count("GET", "/blobs/" + layer.digest) == 1


def test_backoff_skips_then_probes_back(mirror_factory, fakes):
    a, b = fakes
    a.fail[r"^/v2/"] = (500, "UNKNOWN")
    m = _mirror(mirror_factory, [a, b], backoff=2)

    # three failures in a row put the first endpoint down
    for i in range(3):
        digest, data = _blob([a, b], "backoff-%d" % i)
        _get_blob(m, digest, data)
        assert a.count("GET", "/blobs/" + digest) == 1
    seen = a.count(None, REPO_PATH)
    assert seen == 3

    # skipped meanwhile: the second endpoint answers alone
    for i in range(3, 6):
        digest, data = _blob([a, b], "backoff-%d" % i)
        _get_blob(m, digest, data)
        assert b.count("GET", "/blobs/" + digest) == 1
    assert a.count(None, REPO_PATH) == seen

    # the back-off ends with a probe of /v2/; it fails: skipped again
    wait_for(lambda: a.count("GET", PROBE) >= 1, 10,
             what="a probe of the failing endpoint")
    digest, data = _blob([a, b], "backoff-6")
    _get_blob(m, digest, data)
    assert a.count(None, REPO_PATH) == seen

    # healthy again: the next probe brings it back, pulls go to it first
    del a.fail[r"^/v2/"]
    probes = a.count("GET", PROBE)
    wait_for(lambda: a.count("GET", PROBE) > probes, 15,
             what="the next probe of the first endpoint")

    def served_by_first():
        d, body = _blob([a, b], "backoff-back-%d" % time.monotonic_ns())
        _get_blob(m, d, body)
        return a.count("GET", "/blobs/" + d) == 1
    wait_for(served_by_first, 5, interval=0.2,
             what="a blob pulled from the first endpoint again")
    assert m.alive()


def test_fastest_prefers_lower_round_trip(mirror_factory, fakes):
    slow, fast = fakes
    slow.latency = 0.15
    # the slow one is written first: only the probes can put it second
    m = _mirror(mirror_factory, [slow, fast], select="fastest",
                probe_interval=1)
    wait_for(lambda: slow.count("GET", PROBE) >= 2
             and fast.count("GET", PROBE) >= 2, 15,
             what="two probe rounds")

    digests = []
    for i in range(4):
        digest, data = _blob([slow, fast], "fastest-%d" % i)
        _get_blob(m, digest, data)
        digests.append(digest)
    for digest in digests:
        assert fast.count("GET", "/blobs/" + digest) == 1
        assert slow.count("GET", "/blobs/" + digest) == 0


def test_429_retry_after_serves_stale_and_waits(mirror_factory,
                                                fake_upstream, catalog):
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    m = _mirror(mirror_factory, [fake_upstream], tag_ttl=1)
    path = "/v2/team/app/manifests/v1"
    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, small.manifest)
    assert r.header("Warning") is None, r

    time.sleep(1.5)                         # the tag is stale now
    # Retry-After: long enough for the requests below on a loaded machine
    fake_upstream.too_many[r"^/v2/"] = RETRY_AFTER
    fake_upstream.reset_counts()
    r = m.get(path, {"Accept": ACCEPT_ALL})
    throttled_at = time.monotonic()
    assert_manifest(r, small.manifest)
    assert r.header("Warning") == WARNING, r
    assert fake_upstream.count(None, "") == 1
    assert fake_upstream.count("HEAD", r"/manifests/v1$") == 1

    # within Retry-After: nothing is asked upstream
    for _ in range(5):
        r = m.get(path, {"Accept": ACCEPT_ALL})
        assert_manifest(r, small.manifest)
        assert r.header("Warning") == WARNING, r
    missing = "sha256:" + "1" * 64
    assert_json_error(m.get("/v2/team/app/blobs/" + missing), 429,
                      "TOOMANYREQUESTS")
    assert_json_error(m.get("/v2/team/app/manifests/v2",
                            {"Accept": ACCEPT_ALL}), 429, "TOOMANYREQUESTS")
    assert fake_upstream.count(None, "") == 1

    # after it the upstream is asked again, once the probe said so: the
    # fetcher probes at its first 1 Hz tick past Retry-After (a fixed
    # sleep raced that tick)
    del fake_upstream.too_many[r"^/v2/"]
    wait_for(lambda: "answers again" in read_text(m.fetcher_log),
             RETRY_AFTER + 10, what="the probe after Retry-After")
    assert time.monotonic() - throttled_at >= RETRY_AFTER - 0.5
    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, small.manifest)
    assert r.header("Warning") is None, r
    assert fake_upstream.count("HEAD", r"/manifests/v1$") == 2


def test_stale_if_error_every_endpoint_down(mirror_factory, fakes, catalog):
    a, b = fakes
    small = catalog["small"]
    for f in (a, b):
        f.add_image("team/app", "v1", small)
    # a window that the requests inside it cannot outlast on a loaded
    # machine
    ttl, window = 1, 10
    m = _mirror(mirror_factory, [a, b], tag_ttl=ttl, stale_if_error=window)
    path = "/v2/team/app/manifests/v1"
    assert_manifest(m.get(path, {"Accept": ACCEPT_ALL}), small.manifest)
    fetched = time.time()
    layer = small.layer_blobs()[0]
    assert_blob(m.get("/v2/team/app/blobs/" + layer.digest), layer)

    a.fail[r"^/v2/"] = (503, "UNAVAILABLE")
    b.reset.add(r"^/v2/")

    # stale, within the window: served with the Warning, every time
    time.sleep(max(0.0, fetched + ttl + 0.5 - time.time()))
    for _ in range(4):
        r = m.get(path, {"Accept": ACCEPT_ALL})
        assert_manifest(r, small.manifest)
        assert r.header("Warning") == WARNING, r
    r = m.head(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, small.manifest, head=True)
    assert r.header("Warning") == WARNING, r

    # past the window: 503
    time.sleep(max(0.0, fetched + ttl + window + 1.2 - time.time()))
    assert_json_error(m.get(path, {"Accept": ACCEPT_ALL}), 503,
                      "UNAVAILABLE")

    # digests are served from the store whatever the upstream does
    assert_manifest(m.get("/v2/team/app/manifests/" + small.manifest.digest,
                          {"Accept": ACCEPT_ALL}), small.manifest)
    assert_blob(m.get("/v2/team/app/blobs/" + layer.digest), layer)


def test_negative_ttl(mirror_factory, fake_upstream, catalog):
    fake_upstream.add_image("team/app", "v1", catalog["small"])
    m = _mirror(mirror_factory, [fake_upstream], negative_ttl=NEGATIVE_TTL)
    path = "/v2/team/app/manifests/missing"
    for _ in range(20):
        assert_json_error(m.get(path, {"Accept": ACCEPT_ALL}), 404,
                          "MANIFEST_UNKNOWN")
    first = time.monotonic()
    assert fake_upstream.count(None, r"/manifests/missing$") == 1

    # another name or reference is not covered
    assert_json_error(m.get("/v2/team/app/manifests/other",
                            {"Accept": ACCEPT_ALL}), 404, "MANIFEST_UNKNOWN")
    assert fake_upstream.count(None, r"/manifests/other$") == 1

    time.sleep(max(0.0, first + NEGATIVE_TTL + 0.3 - time.monotonic()))
    assert_json_error(m.get(path, {"Accept": ACCEPT_ALL}), 404,
                      "MANIFEST_UNKNOWN")
    assert fake_upstream.count(None, r"/manifests/missing$") == 2
