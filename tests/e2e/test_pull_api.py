"""The pull side of the distribution API, through the mirror, against a
real upstream (docker-registry)."""

import http.client
import json
import threading
import time

import pytest

from harness import (ACCEPT_ALL, API_VERSION, assert_blob, assert_json_error,
                     assert_manifest, free_port, request, sha256_hex,
                     upstream_registry)
import images

MULTI = "/v2/e2e/multi"
STALE_WARNING = '110 - "Response is Stale"'


def test_base_endpoint(mirror):
    r = mirror.get("/v2/")
    assert r.status == 200, r
    assert json.loads(r.body) == {}
    assert r.header("Content-Type").split(";")[0] == "application/json"
    assert r.header("Docker-Distribution-API-Version") == API_VERSION
    h = mirror.head("/v2/")
    assert h.status == 200 and h.body == b"", h
    assert h.header("Docker-Distribution-API-Version") == API_VERSION


def test_manifest_by_tag_then_digest(mirror, upstream, catalog):
    m = catalog["multi"].manifest
    r = mirror.get(MULTI + "/manifests/v1", {"Accept": ACCEPT_ALL})
    assert_manifest(r, m)
    assert r.body == m.data

    # conditional GET by the ETag the mirror gave
    r304 = mirror.get(MULTI + "/manifests/v1",
                      {"Accept": ACCEPT_ALL,
                       "If-None-Match": r.header("ETag")})
    assert r304.status == 304, r304
    assert r304.body == b""

    mark = upstream.access.mark()
    for method in ("GET", "HEAD"):
        rd = mirror.request(method, MULTI + "/manifests/" + m.digest,
                            {"Accept": ACCEPT_ALL})
        assert_manifest(rd, m, head=(method == "HEAD"))
        rt = mirror.request(method, MULTI + "/manifests/v1",
                            {"Accept": ACCEPT_ALL})
        assert_manifest(rt, m, head=(method == "HEAD"))
    r304 = mirror.get(MULTI + "/manifests/" + m.digest,
                      {"If-None-Match": '"%s"' % m.digest})
    assert r304.status == 304, r304
    # a fresh tag and a digest are answered from the store
    upstream.access.settle()
    assert upstream.access.count(None, r"/manifests/", mark) == 0, \
        upstream.access.entries(mark)


def test_head_cold_tag_is_an_upstream_head(mirror, upstream, catalog):
    m = catalog["multi"].manifest
    idx = catalog["plat"].index
    mark = upstream.access.mark()
    r = mirror.head(MULTI + "/manifests/v1", {"Accept": ACCEPT_ALL})
    assert_manifest(r, m, head=True)
    r = mirror.head("/v2/e2e/plat/manifests/" + idx.digest,
                    {"Accept": ACCEPT_ALL})
    assert_manifest(r, idx, head=True)
    upstream.access.settle()
    assert upstream.access.count("HEAD", r"^/v2/e2e/multi/manifests/v1$",
                                 mark) >= 1, upstream.access.entries(mark)
    assert upstream.access.count("GET", r"/manifests/", mark) == 0, \
        upstream.access.entries(mark)


def test_blobs_cold_then_warm(mirror, upstream, catalog):
    image = catalog["multi"]
    for b in image.layer_blobs():
        path = MULTI + "/blobs/" + b.digest
        for _ in range(2):                     # a miss, then a hit
            r = mirror.get(path)
            assert_blob(r, b)
            assert r.header("Content-Type") == "application/octet-stream"
            assert r.header("ETag") == '"%s"' % b.digest, r
            assert r.header("Accept-Ranges") == "bytes", r
            h = mirror.head(path)
            assert_blob(h, b, head=True)
        assert mirror.has_blob(b.digest)
    assert_json_error(mirror.get(MULTI + "/blobs/sha256:" + "0" * 64),
                      404, "BLOB_UNKNOWN")
    assert_json_error(mirror.get(MULTI + "/manifests/nosuchtag",
                                 {"Accept": ACCEPT_ALL}),
                      404, "MANIFEST_UNKNOWN")


def _big_layer(catalog):
    return max(catalog["multi"].layer_blobs(), key=lambda b: b.size)


@pytest.mark.parametrize("warm", [False, True], ids=["miss", "hit"])
def test_blob_ranges(mirror, catalog, warm):
    b = _big_layer(catalog)
    path = MULTI + "/blobs/" + b.digest
    if warm:
        assert_blob(mirror.get(path), b)
    r = mirror.get(path, {"Range": "bytes=1000-1999"})
    assert r.status == 206, r
    assert r.header("Content-Range") == "bytes 1000-1999/%d" % b.size, r
    assert r.header("Content-Length") == "1000"
    assert r.body == b.data[1000:2000]

    start = b.size - 12345                   # resume: bytes=N-
    r = mirror.get(path, {"Range": "bytes=%d-" % start})
    assert r.status == 206, r
    assert r.header("Content-Range") == "bytes %d-%d/%d" % (
        start, b.size - 1, b.size)
    assert r.body == b.data[start:]

    r = mirror.get(path, {"Range": "bytes=-100"})        # suffix
    assert r.status == 206 and r.body == b.data[-100:], r

    r = mirror.get(path, {"Range": "bytes=%d-" % b.size})
    assert_json_error(r, 416, "SIZE_INVALID")
    assert r.header("Content-Range") == "bytes */%d" % b.size, r


def test_large_blob_streams_and_serves_ranges(mirror, catalog):
    b = catalog["large"].layers[0].blob
    path = "/v2/e2e/large/blobs/" + b.digest
    r = mirror.get(path, timeout=120)
    assert_blob(r, b)
    mid = b.size // 2
    r = mirror.get(path, {"Range": "bytes=%d-%d" % (mid, mid + 65535)})
    assert r.status == 206 and r.body == b.data[mid:mid + 65536], r
    h = mirror.head(path)
    assert_blob(h, b, head=True)


def test_concurrent_clients_on_large_miss(mirror, upstream, catalog):
    """Three clients on one cold 64 MiB blob all get every byte."""
    b = catalog["large"].layers[0].blob
    path = "/v2/e2e/large/blobs/" + b.digest
    mark = upstream.access.mark()
    results = [None] * 3

    def pull(i):
        results[i] = mirror.get(path, timeout=120)

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    for r in results:
        assert_blob(r, b)
    upstream.access.settle()
    # parallel ranged chunks may be several requests, but never one whole
    # download per client
    whole = [e for e in upstream.access.entries(mark)
             if e[0] == "GET" and b.digest in e[1] and e[2] == 200]
    assert len(whole) <= 1, whole


# serial (conftest.py): the second client's 64 MiB is timed
@pytest.mark.serial
def test_slow_client_does_not_hold_back_others(mirror, catalog):
    """A client that stops reading a cold 64 MiB blob costs the others
    nothing: a second client gets all of it, then the first one too."""
    b = catalog["large"].layers[0].blob
    path = "/v2/e2e/large/blobs/" + b.digest
    slow = http.client.HTTPConnection("127.0.0.1", mirror.port, timeout=60)
    try:
        slow.request("GET", path)
        resp = slow.getresponse()
        assert resp.status == 200
        assert resp.read(4096) == b.data[:4096]
        t0 = time.monotonic()
        assert_blob(mirror.get(path, timeout=60), b)
        fast = time.monotonic() - t0
        rest = resp.read()
    finally:
        slow.close()
    assert b.data[:4096] + rest == b.data
    assert fast < 30, "the second client took %.1fs" % fast


def test_tags_list(mirror, upstream):
    r = mirror.get("/v2/e2e/tagged/tags/list")
    assert r.status == 200, r
    assert r.header("Content-Type").split(";")[0] == "application/json"
    body = r.json()
    assert body["name"] == "e2e/tagged"
    assert sorted(body["tags"]) == ["t01", "t02", "t03", "t04", "t05", "v1"]
    assert_json_error(mirror.get("/v2/e2e/nosuchrepo/tags/list"), 404,
                      "NAME_UNKNOWN")


def _paged_fake(fake_upstream, catalog):
    for t in ("a1", "a2", "a3", "a4", "a5"):
        fake_upstream.add_image("team/app", t, catalog["small"])


def test_tags_list_pagination_default_route(mirror_factory, fake_upstream,
                                            catalog):
    _paged_fake(fake_upstream, catalog)
    # tags_ttl = 0: forwarded (a cached list is paged by the mirror, see
    # test_referrers_tags.py)
    m = mirror_factory(fake_upstream.hostport,
                       [{"name": fake_upstream.hostport,
                         "endpoints": [fake_upstream.url], "tags_ttl": 0}])
    r = m.get("/v2/team/app/tags/list?n=2")
    assert r.status == 200, r
    assert r.json()["tags"] == ["a1", "a2"]
    assert r.header("Link") == \
        '</v2/team/app/tags/list?n=2&last=a2>; rel="next"', r
    r = m.get("/v2/team/app/tags/list?n=2&last=a2")
    assert r.json()["tags"] == ["a3", "a4"], r
    r = m.get("/v2/team/app/tags/list?n=2&last=a4")
    assert r.json()["tags"] == ["a5"], r
    assert r.header("Link") is None, r
    # the upstream saw n and last forwarded
    assert fake_upstream.count("GET", r"^/v2/team/app/tags/list\?n=2&last=a4")
    assert fake_upstream.count("GET", r"/tags/list") == 3


def test_tags_list_link_keeps_registry_prefix(mirror_factory, fake_upstream,
                                              upstream, catalog):
    _paged_fake(fake_upstream, catalog)
    m = mirror_factory(upstream.hostport,
                       [upstream_registry(upstream),
                        {"name": "fake.test",
                         "endpoints": [fake_upstream.url]}])
    r = m.get("/v2/fake.test/team/app/tags/list?n=3")
    assert r.status == 200, r
    assert r.json()["tags"] == ["a1", "a2", "a3"]
    assert r.header("Link") == \
        '</v2/fake.test/team/app/tags/list?n=3&last=a3>; rel="next"', r


@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH", "DELETE"])
def test_writes_are_refused(mirror, upstream, method):
    mark = upstream.access.mark()
    body = b"0123456789" if method in ("PUT", "POST", "PATCH") else None
    for path in ("/manifests/v1", "/blobs/uploads/",
                 "/blobs/sha256:" + "a" * 64, "/tags/list"):
        r = mirror.request(method, "/v2/e2e/multi" + path,
                           {"Content-Type": "application/octet-stream"},
                           body)
        assert_json_error(r, 405, "UNSUPPORTED")
        assert r.header("Docker-Distribution-API-Version") == API_VERSION
    assert upstream.access.entries(mark) == []
    assert mirror.stored_digests() == set()


def test_multi_platform_index(mirror, upstream, catalog):
    plat = catalog["plat"]
    r = mirror.get("/v2/e2e/plat/manifests/v1", {"Accept": ACCEPT_ALL})
    assert_manifest(r, plat.index)
    assert r.header("Content-Type") == images.MT_OCI_INDEX
    # a client that names no type gets what the mirror asks for: all
    assert_manifest(mirror.get("/v2/e2e/plat/manifests/v1"), plat.index)
    for im in plat.images:
        rm = mirror.get("/v2/e2e/plat/manifests/" + im.manifest.digest,
                        {"Accept": ACCEPT_ALL})
        assert_manifest(rm, im.manifest)
        for b in im.layer_blobs():
            assert_blob(mirror.get("/v2/e2e/plat/blobs/" + b.digest), b)


def test_narrow_client_does_not_downgrade_the_tag(mirror, upstream, catalog):
    plat = catalog["plat"]
    path = "/v2/e2e/plat/manifests/v1"
    narrow = {"Accept": images.MT_OCI_MANIFEST}
    r = mirror.get(path, narrow)
    # docker-registry refuses an index to a client that cannot take one
    assert not (r.status == 200 and r.header("Content-Type")
                == images.MT_OCI_INDEX), r
    if r.status != 200:
        assert_json_error(r)
    assert_manifest(mirror.get(path, {"Accept": ACCEPT_ALL}), plat.index)
    r = mirror.get(path, narrow)
    assert not (r.status == 200 and r.header("Content-Type")
                == images.MT_OCI_INDEX), r
    # the index's prefetch (its amd64 manifest) is done before the mark
    upstream.access.settle()
    mark = upstream.access.mark()
    assert_manifest(mirror.get(path, {"Accept": ACCEPT_ALL}), plat.index)
    upstream.access.settle()
    assert upstream.access.count("GET", r"/manifests/", mark) == 0


def test_tag_revalidation_with_head(mirror_factory, fake_upstream, catalog):
    """An expired tag is revalidated with a HEAD; a GET only when the tag
    moved; a stale tag is served while the upstream is down."""
    small, multi = catalog["small"], catalog["multi"]
    fake_upstream.add_image("team/app", "v1", small)
    m = mirror_factory(fake_upstream.hostport,
                       [{"name": fake_upstream.hostport,
                         "endpoints": [fake_upstream.url], "tag_ttl": 1}])
    path = "/v2/team/app/manifests/v1"
    assert_manifest(m.get(path, {"Accept": ACCEPT_ALL}), small.manifest)
    time.sleep(1.6)
    fake_upstream.reset_counts()
    assert_manifest(m.get(path, {"Accept": ACCEPT_ALL}), small.manifest)
    assert fake_upstream.count("HEAD", r"^/v2/team/app/manifests/v1$") == 1
    assert fake_upstream.count("GET", r"/manifests/") == 0

    # the tag moves upstream: after the TTL the new manifest is served
    fake_upstream.add_image("team/app", "v1", multi)
    time.sleep(1.6)
    assert_manifest(m.get(path, {"Accept": ACCEPT_ALL}), multi.manifest)

    # fresh answers carry no Warning
    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, multi.manifest)
    assert r.header("Warning") is None, r

    # upstream gone: the stale record is still served, and said to be
    # stale (RFC 7234's warn-code 110, as the README promises)
    fake_upstream.stop()
    time.sleep(1.6)
    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, multi.manifest)
    assert r.header("Warning") == STALE_WARNING, r
    r = m.head(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, multi.manifest, head=True)
    assert r.header("Warning") == STALE_WARNING, r


def test_upstream_down_is_unavailable(mirror_factory):
    dead = "127.0.0.1:%d" % free_port()
    m = mirror_factory(dead, [{"name": dead,
                               "endpoints": ["http://" + dead]}])
    assert_json_error(m.get("/v2/team/app/manifests/v1",
                            {"Accept": ACCEPT_ALL}), 503, "UNAVAILABLE")
    assert_json_error(m.get("/v2/team/app/blobs/sha256:" + "1" * 64),
                      503, "UNAVAILABLE")
    assert m.alive()


def test_manifest_body_matches_digest_for_docker_client_accept(mirror,
                                                               catalog):
    """What docker sends: several Accept headers; the answer is the OCI
    manifest untouched (no conversion by the mirror)."""
    m = catalog["small"].manifest
    r = request(mirror.hostport, "GET", "/v2/e2e/small/manifests/v1",
                {"Accept": images.MT_DOCKER_MANIFEST + ", "
                 + images.MT_OCI_MANIFEST + ";q=0.9"})
    assert_manifest(r, m)
    assert sha256_hex(r.body) == m.hex


def test_cold_manifest_without_accept(mirror, upstream, catalog):
    """No Accept header on a cold tag: the mirror asks upstream for every
    manifest type (docker-registry refuses an index otherwise)."""
    assert_manifest(mirror.get("/v2/e2e/plat/manifests/v1"),
                    catalog["plat"].index)
    assert_manifest(mirror.head("/v2/e2e/multi/manifests/v1"),
                    catalog["multi"].manifest, head=True)
