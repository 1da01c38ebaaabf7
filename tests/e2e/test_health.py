"""Liveness and readiness, and cache hits without a fetcher."""

import json
import os
import signal

from harness import (ACCEPT_ALL, assert_blob, assert_json_error,
                     assert_manifest, upstream_registry, wait_for)


def _json(r):
    assert r.header("Content-Type").split(";")[0] == "application/json", r
    return json.loads(r.body)


def test_healthz(mirror):
    r = mirror.get("/healthz")
    assert r.status == 200, r
    assert _json(r) == {"status": "ok"}, r


def test_healthz_stays_ok_with_the_fetcher_down(mirror):
    """/healthz is the process's liveness: a fetcher that is down makes
    the node unready (/readyz), never dead, or a load balancer would
    restart an nginx that still serves every hit."""
    assert mirror.stop_fetcher(signal.SIGTERM) == 0
    # the workers have noticed: readiness fails first
    wait_for(lambda: mirror.get("/readyz").status == 503, 10,
             what="/readyz 503")
    for _ in range(3):
        r = mirror.get("/healthz")
        assert r.status == 200, r
        assert _json(r) == {"status": "ok"}, r
    r = mirror.head("/healthz")
    assert r.status == 200 and r.body == b"", r
    assert mirror.nginx.alive()


CHECKS = {"fetcher", "store_readable", "store_writable", "free_space"}


def test_readyz_ok(mirror):
    r = mirror.get("/readyz")
    assert r.status == 200, r
    body = _json(r)
    assert body["status"] == "ok", body
    assert set(body["checks"]) == CHECKS, body
    assert all(v == "ok" for v in body["checks"].values()), body


def test_readyz_low_disk(mirror_factory, upstream):
    """A free-space floor above what the disk has: reported, but the node
    stays ready (the cache manager evicts; a full disk must not drain a
    node that still serves what it holds)."""
    m = mirror_factory(upstream.hostport, [upstream_registry(upstream)],
                       min_free="1000000G")
    r = m.get("/readyz")
    assert r.status == 200, r
    body = _json(r)
    assert body["status"] == "ok"
    assert body["checks"]["free_space"] == "low", body
    assert body["checks"]["fetcher"] == "ok", body


def test_fetcher_down_readiness_and_hits(mirror, catalog):
    small, multi = catalog["small"], catalog["multi"]
    # warm: a tag (fresh for 300 s) and its blobs
    assert_manifest(mirror.get("/v2/e2e/small/manifests/v1",
                               {"Accept": ACCEPT_ALL}), small.manifest)
    for b in small.layer_blobs():
        assert_blob(mirror.get("/v2/e2e/small/blobs/" + b.digest), b)

    rc = mirror.stop_fetcher(signal.SIGTERM)
    assert rc == 0, "fetcher exit code %s on SIGTERM" % rc
    assert not os.path.exists(mirror.socket_path), \
        "the fetcher left its socket file"

    r = wait_for(lambda: (lambda x: x if x.status == 503 else None)(
        mirror.get("/readyz")), 10, what="/readyz 503")
    body = _json(r)
    assert body["status"] == "fail", body
    assert body["checks"]["fetcher"] != "ok", body
    assert body["checks"]["store_readable"] == "ok", body

    # hits do not need the fetcher
    assert_manifest(mirror.get("/v2/e2e/small/manifests/v1",
                               {"Accept": ACCEPT_ALL}), small.manifest)
    assert_manifest(mirror.head("/v2/e2e/small/manifests/v1",
                                {"Accept": ACCEPT_ALL}), small.manifest,
                    head=True)
    assert_manifest(mirror.get("/v2/e2e/small/manifests/"
                               + small.manifest.digest,
                               {"Accept": ACCEPT_ALL}), small.manifest)
    for b in small.layer_blobs():
        assert_blob(mirror.get("/v2/e2e/small/blobs/" + b.digest), b)
        r = mirror.get("/v2/e2e/small/blobs/" + b.digest,
                       {"Range": "bytes=1-10"})
        assert r.status == 206 and r.body == b.data[1:11], r
    # a miss cannot be served
    assert_json_error(mirror.get("/v2/e2e/multi/blobs/"
                                 + multi.layers[1].blob.digest),
                      503, "UNAVAILABLE")
    assert_json_error(mirror.get("/v2/e2e/multi/manifests/v1",
                                 {"Accept": ACCEPT_ALL}),
                      503, "UNAVAILABLE")
    assert mirror.nginx.alive()

    # and all is well again with a new fetcher
    mirror.start_fetcher()
    mirror.wait_ready()
    assert_blob(mirror.get("/v2/e2e/multi/blobs/"
                           + multi.layers[1].blob.digest),
                multi.layers[1].blob)
