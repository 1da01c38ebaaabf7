"""Bounded throttles.  A 429 from a redirect target (a blob CDN) holds
back that host, not the registry's endpoint: for min(Retry-After,
max_retry_after) seconds (60 without Retry-After) a job whose redirect
leads there ends with 429 TOOMANYREQUESTS at once, without a request to
it (a chunked download too, and a chunk answered 429 ends its download),
while other blobs, other repositories and another CDN keep coming
through the same endpoint; it is logged ("redirect target <origin>
answered 429, not asked for <n>s") and counted in
ocimirror_fetcher_hosts_throttled_total.  An endpoint's own 429 with
Retry-After 86400 keeps requests off it only for max_retry_after (here
2 s, from the fetcher group), then a GET /v2/ probe brings it back."""

import time

import pytest

from harness import (ACCEPT_ALL, assert_json_error, assert_manifest,
                     named_url, random_bytes, read_text, sha256_hex,
                     store_tmp_files, wait_for)
from test_metrics import scrape, value

# serial (conftest.py): a throttled answer must come within 1 or 2 s
pytestmark = pytest.mark.serial

NAME = "throttled.test"
NO_PREFETCH = {"enabled": False}
KiB = 1024
CHUNK = 256 * KiB
CHUNKED = {"chunk_threshold": "512K", "chunk_size": "256K",
           "chunks_per_blob": 2}


def _mirror(mirror_factory, hosts, fetcher=None, **settings):
    reg, cdn, cdn2 = hosts
    entry = {"name": NAME,
             "endpoints": [named_url(reg, "registry.test")],
             "resolve": ["registry.test:%d:127.0.0.1" % reg.port,
                         "cdn.test:%d:127.0.0.3" % cdn.port,
                         "cdn2.test:%d:127.0.0.4" % cdn2.port],
             "redirect_hosts": ["cdn.test", "cdn2.test"]}
    entry.update(settings)
    return mirror_factory(NAME, [entry], prefetch=NO_PREFETCH,
                          fetcher=fetcher)


def _blob(fakes, seed, size=4096):
    data = random_bytes(seed, size)
    for f in fakes:
        digest = f.add_blob(data)
    return digest, data


def _get(m, digest, repo="team/app"):
    t = time.monotonic()
    r = m.get("/v2/%s/blobs/%s" % (repo, digest))
    return r, time.monotonic() - t


def _ok(r, digest, data):
    assert r.status == 200 and r.error is None, r
    assert r.body == data
    assert sha256_hex(r.body) == digest.split(":")[1]


def _throttled(r):
    assert_json_error(r, 429, "TOOMANYREQUESTS")


def _cdn_gets(cdn):
    return cdn.count("GET", "^/cdn/")


def _held(m):
    return value(scrape(m), "ocimirror_fetcher_hosts_throttled_total",
                 registry=NAME)


@pytest.mark.parametrize("retry_after,held_for", [(86400, 300),
                                                  (None, 60)])
def test_cdn_429_holds_the_host_not_the_endpoint(mirror_factory, hosts,
                                                 catalog, retry_after,
                                                 held_for):
    reg, cdn, cdn2 = hosts
    small = catalog["small"]
    reg.add_image("team/other", "v1", small)
    d1, data1 = _blob([reg, cdn], "held-1")
    d2, data2 = _blob([reg, cdn], "held-2")
    d3, data3 = _blob([reg], "direct")
    d4, data4 = _blob([reg, cdn2], "other-cdn")
    # a chunked one (probe, then ranges), redirected to the same CDN
    d5, data5 = _blob([reg, cdn], "held-chunked", 3 * CHUNK)
    cdn.accept_ranges = True
    reg.blob_redirect = named_url(cdn, "cdn.test")
    reg.redirect_digests = {d1, d2, d5}
    reg.blob_redirect_for[d4] = named_url(cdn2, "cdn2.test")
    cdn.too_many[r"^/cdn/"] = retry_after
    m = _mirror(mirror_factory, hosts, fetcher=CHUNKED)
    assert _held(m) == 0

    r, _ = _get(m, d1)
    _throttled(r)
    assert _cdn_gets(cdn) == 1
    assert not m.has_blob(d1)
    assert ("redirect target http://cdn.test:%d answered 429, not asked "
            "for %ds" % (cdn.port, held_for)) in read_text(m.fetcher_log)
    assert _held(m) == 1

    # the endpoint is not held: right after, what does not go to
    # cdn.test comes, from the same repository and from another one
    r, took = _get(m, d3)
    _ok(r, d3, data3)
    assert took < 2, took
    assert_manifest(m.get("/v2/team/other/manifests/v1",
                          {"Accept": ACCEPT_ALL}), small.manifest)
    for layer in small.layer_blobs():
        r, _ = _get(m, layer.digest, "team/other")
        _ok(r, layer.digest, layer.data)
    r, _ = _get(m, d4)
    _ok(r, d4, data4)
    assert cdn2.count("GET", "^/cdn/" + d4) == 1

    # what goes to cdn.test ends at once, cdn.test not asked
    for d in (d2, d1, d5):
        r, took = _get(m, d)
        _throttled(r)
        assert took < 2, took
        assert not m.has_blob(d)
    assert _cdn_gets(cdn) == 1
    assert reg.count("GET", "/blobs/" + d2) == 1

    s = scrape(m)
    assert value(s, "ocimirror_fetcher_endpoint_up", registry=NAME,
                 endpoint=named_url(reg, "registry.test")) == 1
    assert value(s, "ocimirror_fetcher_endpoint_throttled_total",
                 registry=NAME, endpoint=named_url(reg, "registry.test")) == 0
    assert value(s, "ocimirror_fetcher_hosts_throttled_total",
                 registry=NAME) == 1
    wait_for(lambda: store_tmp_files(m) == [], 5, what="no temp files")


def test_cdn_429_capped_by_max_retry_after(mirror_factory, hosts):
    reg, cdn, _ = hosts
    d1, data1 = _blob([reg, cdn], "capped-1")
    reg.blob_redirect = named_url(cdn, "cdn.test")
    cdn.too_many[r"^/cdn/"] = 86400
    m = _mirror(mirror_factory, hosts, max_retry_after=2)

    r, _ = _get(m, d1)
    t0 = time.monotonic()
    _throttled(r)
    assert ("redirect target http://cdn.test:%d answered 429, not asked "
            "for 2s" % cdn.port) in read_text(m.fetcher_log)
    del cdn.too_many[r"^/cdn/"]
    assert _cdn_gets(cdn) == 1

    # still held for a while, then asked again: the blob comes
    def pulled():
        r, _ = _get(m, d1)
        if r.status == 200:
            return r
        _throttled(r)
        assert _cdn_gets(cdn) == 1
        return None
    r = wait_for(pulled, 8, interval=0.2, what="cdn.test asked again")
    waited = time.monotonic() - t0
    _ok(r, d1, data1)
    assert 1.5 <= waited <= 5, waited
    assert _cdn_gets(cdn) == 2
    assert m.has_blob(d1)
    assert _held(m) == 1


def test_chunk_429_holds_the_cdn(mirror_factory, hosts):
    """A CDN answering one chunk 429: the download ends (nothing
    stored), the CDN is held, a retry within the hold ends at once."""
    reg, cdn, _ = hosts
    d, data = _blob([reg, cdn], "chunk-429", 6 * CHUNK)
    cdn.accept_ranges = True
    cdn.range_faults[(d, 3 * CHUNK)] = ["429:86400"]
    reg.blob_redirect = named_url(cdn, "cdn.test")
    m = _mirror(mirror_factory, hosts, fetcher=CHUNKED)

    r, _ = _get(m, d)
    if r.status == 200:
        # the headers went out with the probe: a cut stream
        assert r.error is not None and len(r.body) < len(data), r
        assert r.body == data[:len(r.body)]
    else:
        _throttled(r)
    assert not m.has_blob(d)
    assert _held(m) == 1
    assert ("redirect target http://cdn.test:%d answered 429, not asked "
            "for 300s" % cdn.port) in read_text(m.fetcher_log)
    seen = _cdn_gets(cdn)
    assert "bytes=%d-%d" % (3 * CHUNK, 4 * CHUNK - 1) in cdn.ranges(d)

    r, took = _get(m, d)
    _throttled(r)
    assert took < 2, took
    assert _cdn_gets(cdn) == seen
    wait_for(lambda: store_tmp_files(m) == [], 5, what="temp file removed")


def test_endpoint_429_capped_then_probed(mirror_factory, fake_upstream,
                                         catalog):
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    fake_upstream.add_image("team/app", "v2", small)
    d, data = _blob([fake_upstream], "endpoint-429")
    entry = {"name": NAME, "endpoints": [fake_upstream.url]}
    m = mirror_factory(NAME, [entry], prefetch=NO_PREFETCH,
                       fetcher={"max_retry_after": 2})
    fake_upstream.too_many[r"/manifests/"] = 86400

    r = m.get("/v2/team/app/manifests/v1", {"Accept": ACCEPT_ALL})
    t0 = time.monotonic()
    _throttled(r)
    del fake_upstream.too_many[r"/manifests/"]
    assert fake_upstream.count(None, r"^/v2/team/") == 1
    assert ("endpoint %s answered 429, no requests for 2s"
            % fake_upstream.url) in read_text(m.fetcher_log)
    probes = fake_upstream.count("GET", r"^/v2/$")

    # fail fast, upstream untouched, for the capped Retry-After
    n = 0
    while time.monotonic() - t0 < 1.3 and n < 20:
        t = time.monotonic()
        r = m.get("/v2/team/app/manifests/v%d" % (1 + n % 2),
                  {"Accept": ACCEPT_ALL})
        _throttled(r)
        r, _ = _get(m, d)
        _throttled(r)
        assert time.monotonic() - t < 1
        n += 1
    assert n >= 2
    assert fake_upstream.count(None, r"^/v2/team/") == 1

    # then a probe, and the endpoint is used again
    def served():
        r = m.get("/v2/team/app/manifests/v1", {"Accept": ACCEPT_ALL})
        if r.status == 200:
            return r
        _throttled(r)
        return None
    r = wait_for(served, 8, interval=0.2, what="the endpoint used again")
    waited = time.monotonic() - t0
    assert_manifest(r, small.manifest)
    assert 1.5 <= waited <= 6, waited
    assert fake_upstream.count("GET", r"^/v2/$") > probes
    with fake_upstream._lock:
        paths = [p for _, p, _ in fake_upstream.requests]
    # the 429, then the probe, then the manifest again
    throttled = paths.index("/v2/team/app/manifests/v1")
    again = len(paths) - 1 - paths[::-1].index("/v2/team/app/manifests/v1")
    assert "/v2/" in paths[throttled + 1:again], paths
    r, _ = _get(m, d)
    _ok(r, d, data)
    s = scrape(m)
    assert value(s, "ocimirror_fetcher_endpoint_throttled_total",
                 registry=NAME, endpoint=fake_upstream.url) == 1
    assert value(s, "ocimirror_fetcher_endpoint_up", registry=NAME,
                 endpoint=fake_upstream.url) == 1
