"""Signed URLs expire.  A chunked (ranged) download whose blob the
registry redirects to a CDN (cdn.test, listed in redirect_hosts) that
answers 403 (or 401, or 410) to a URL older than 2 s, under a 512K/s
bandwidth cap so that the download lasts several URL lives: each chunk
answered so makes the fetcher ask the registry's blob URL again and
follow the fresh redirect, keeping every byte already fetched, the other
chunks waiting for the fresh URL.  The blob completes with the right
digest, the registry saw one redirect-producing GET per renewal (counted
in ocimirror_fetcher_urls_renewed_total) after the first, and the CDN
served every byte, none twice (an expired URL serves none); the
registry's token (if it wants one) goes with the renewals, never to the
CDN.  A CDN that refuses every URL at once ends the download instead of
a loop of renewals, and is no answer about the repository: once it works
the blob comes."""

import pytest

from fakeregistry import FakeRegistry
from harness import (assert_store_consistent, random_bytes, read_text,
                     sha256_hex, store_tmp_files, wait_for)
from test_metrics import scrape, value

NAME = "signed.test"
KiB = 1024
MiB = 1024 * KiB
CHUNK = 256 * KiB
NO_PREFETCH = {"enabled": False}
FETCHER = {"chunk_threshold": "512K", "chunk_size": "256K",
           "chunks_per_blob": 2, "bandwidth_limit": "512K"}


@pytest.fixture
def hosts():
    reg = FakeRegistry().start()
    cdn = FakeRegistry(host="127.0.0.3").start()
    yield reg, cdn
    cdn.stop()
    reg.stop()


def _mirror(mirror_factory, reg, cdn):
    entry = {"name": NAME,
             "endpoints": ["http://registry.test:%d" % reg.port],
             "resolve": ["registry.test:%d:127.0.0.1" % reg.port,
                         "cdn.test:%d:127.0.0.3" % cdn.port],
             "redirect_hosts": ["cdn.test"]}
    return mirror_factory(NAME, [entry], fetcher=FETCHER,
                          prefetch=NO_PREFETCH)


def _setup(reg, cdn, seed, size, url_ttl):
    data = random_bytes(seed, size)
    digest = reg.add_blob(data)
    cdn.add_blob(data)
    reg.accept_ranges = cdn.accept_ranges = True
    reg.blob_redirect = "http://cdn.test:%d" % cdn.port
    cdn.url_ttl = url_ttl
    return data, digest


def _renewed(m):
    return value(scrape(m), "ocimirror_fetcher_urls_renewed_total",
                 registry=NAME)


@pytest.mark.parametrize("auth,status", [("anonymous", 403),
                                         ("token", 401),
                                         ("short-token", 410)])
def test_expired_chunk_urls_renewed(mirror_factory, hosts, auth, status):
    """token: the registry wants a Bearer token, which the renewals carry
    to the registry and never to the CDN; short-token: tokens live 3 s,
    so that renewals need a new one (and never send one that ran out).
    status: what the CDN answers an expired URL."""
    reg, cdn = hosts
    size = 3 * MiB                       # ~6 s at 512K/s: 3 URL lives
    data, digest = _setup(reg, cdn, "signed-urls", size, url_ttl=2)
    cdn.url_expired_status = status
    if auth != "anonymous":
        reg.require_scoped_tokens(expires_in=3 if auth == "short-token"
                                  else 300)
        # its own name (127.0.0.1 would be another host, at loopback)
        reg.realm = "http://registry.test:%d" % reg.port
    m = _mirror(mirror_factory, reg, cdn)
    assert _renewed(m) == 0

    r = m.get("/v2/team/app/blobs/" + digest, timeout=60)
    assert r.status == 200 and r.error is None, r
    assert len(r.body) == size and r.body == data
    assert r.header("Docker-Content-Digest") == digest, r
    assert sha256_hex(r.body) == digest.split(":")[1]
    assert m.has_blob(digest)
    assert_store_consistent(m)

    # the CDN's URLs did expire, and the registry was asked again
    expired = cdn.expired_urls
    renewed = _renewed(m)
    with reg._lock:
        blob_auth = [h.get("Authorization") for meth, p, h in reg.requests
                     if meth == "GET" and p.endswith("/blobs/" + digest)]
    # the GETs the registry answered with a redirect (not with a 401)
    registry_gets = reg.redirected.count(digest)
    assert expired >= 1, cdn.requests
    assert renewed >= 1
    assert renewed <= expired
    assert registry_gets > 1
    assert registry_gets == 1 + renewed, (registry_gets, renewed)
    # every registry GET was redirected: the registry sent no blob bytes
    assert reg.served_bytes(digest) == []
    with cdn._lock:
        signed = [p for meth, p, _ in cdn.requests if meth == "GET"]
    issued = [float(p.split("&t=")[1]) for p in signed]
    assert len(set(issued)) == registry_gets, signed
    # once a fresh URL is out, no chunk starts on an older one: the
    # others wait for it
    assert issued == sorted(issued), signed

    # every byte served, none twice beyond the chunks that failed
    served = [(f, n) for f, n in cdn.served_bytes(digest) if n > 0]
    total = sum(n for _, n in served)
    assert total <= size + expired * CHUNK, (total, size, expired, served)
    covered = bytearray(size)
    twice = 0
    for first, n in served:
        twice += n - covered[first:first + n].count(0)
        covered[first:first + n] = b"\x01" * n
    assert covered.count(0) == 0, "bytes never served"
    assert twice <= expired * CHUNK, (twice, expired)
    # the registry's token went to the registry only
    with cdn._lock:
        assert not any("Authorization" in h for _, _, h in cdn.requests)
    if auth == "token":
        # one 401 and one token, then the token on every GET
        assert blob_auth[0] is None, blob_auth
        assert all(a is not None and a.startswith("Bearer tok-")
                   for a in blob_auth[1:]), blob_auth
        assert reg.token_calls == 1
    if auth != "anonymous":
        # never an expired token: a token that ran out is asked for again
        assert all(a is None or a.startswith("Bearer tok-")
                   for a in blob_auth), blob_auth
        assert reg.auth_refused == 0 and reg.expired_seen == 0
        assert reg.wrong_scope_seen == 0
    log = read_text(m.fetcher_log)
    assert "asking the registry for a fresh one" in log
    assert "s3cr3t" not in log


def test_cdn_refusing_every_url_ends_the_download(mirror_factory, hosts):
    reg, cdn = hosts
    size = 2 * MiB
    data, digest = _setup(reg, cdn, "signed-never", size, url_ttl=-1)
    m = _mirror(mirror_factory, reg, cdn)

    r = m.get("/v2/team/app/blobs/" + digest, timeout=60)
    if r.status == 200:
        assert r.error is not None and len(r.body) < size, r
    else:
        assert 400 <= r.status < 600 and r.status != 500, r
    assert not m.has_blob(digest)
    # no loop of renewals: a few registry GETs, a few CDN refusals
    assert reg.count("GET", "/blobs/" + digest) <= 5, reg.requests
    assert cdn.expired_urls <= 5
    assert cdn.served_bytes(digest) == []
    wait_for(lambda: store_tmp_files(m) == [], 5, what="temp file removed")

    # a CDN's refusal is no answer about the repository: once its URLs
    # work again the blob comes at the next request
    cdn.url_ttl = None
    r = m.get("/v2/team/app/blobs/" + digest, timeout=60)
    assert r.status == 200 and r.error is None and r.body == data, r
