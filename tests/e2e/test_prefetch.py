"""Prefetch: a manifest the mirror fetches brings its config and layers
into the store without any client asking (an index: only the platforms of
prefetch.platforms), each fetched once upstream even when clients ask for
them meanwhile; prefetch.enabled = false and prefetch.max_bytes hold it
back."""

import re
import threading

from harness import (ACCEPT_ALL, assert_blob, assert_manifest,
                     assert_store_consistent, fake_registry_entry,
                     upstream_registry, wait_for)


def _blob_gets(access, digest, since):
    return access.count("GET", r"/blobs/%s$" % re.escape(digest), since)


def _wait_stored(m, blobs, timeout=30):
    wait_for(lambda: all(m.has_blob(b.digest) for b in blobs), timeout,
             what="prefetched blobs in the store")


def test_manifest_by_tag_prefetches_its_blobs(mirror_factory, upstream,
                                              catalog):
    multi = catalog["multi"]
    m = mirror_factory(upstream.hostport, [upstream_registry(upstream)])
    mark = upstream.access.mark()
    r = m.get("/v2/e2e/multi/manifests/v1", {"Accept": ACCEPT_ALL})
    assert_manifest(r, multi.manifest)
    _wait_stored(m, multi.layer_blobs())
    upstream.access.settle()
    for b in multi.layer_blobs():
        assert _blob_gets(upstream.access, b.digest, mark) == 1, b
    # served from the store now: no upstream request
    mark = upstream.access.mark()
    for b in multi.layer_blobs():
        assert_blob(m.get("/v2/e2e/multi/blobs/" + b.digest), b)
    upstream.access.settle()
    assert upstream.access.entries(mark) == []
    assert_store_consistent(m)
    with open(m.fetcher_log) as f:
        assert ("prefetch %s/e2e/multi@%s: %d blobs" % (
            upstream.hostport, multi.manifest.digest,
            len(multi.layer_blobs()))) in f.read()


def test_clients_join_the_prefetch(mirror_factory, fake_upstream, catalog):
    """Clients ask for every layer while the prefetch of each is under
    way: one upstream GET per layer, every client gets the right bytes."""
    multi = catalog["multi"]
    fake_upstream.add_image("team/app", "v1", multi)
    for b in multi.layer_blobs():
        fake_upstream.throttle[b.digest] = 2 * 1024 * 1024
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    r = m.get("/v2/team/app/manifests/v1", {"Accept": ACCEPT_ALL})
    assert_manifest(r, multi.manifest)
    results = {}

    def pull(b, i):
        results[(b.digest, i)] = m.get("/v2/team/app/blobs/" + b.digest,
                                       timeout=60)

    threads = [threading.Thread(target=pull, args=(b, i))
               for b in multi.layer_blobs() for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for b in multi.layer_blobs():
        for i in range(2):
            assert_blob(results[(b.digest, i)], b)
        assert fake_upstream.count("GET", "/blobs/" + b.digest) == 1, b
    assert_store_consistent(m)


def test_index_prefetches_only_the_configured_platform(mirror_factory,
                                                       upstream, catalog):
    plat = catalog["plat"]
    amd, arm = plat.images
    assert (amd.arch, arm.arch) == ("amd64", "arm64")
    m = mirror_factory(upstream.hostport, [upstream_registry(upstream)])
    mark = upstream.access.mark()
    r = m.get("/v2/e2e/plat/manifests/v1", {"Accept": ACCEPT_ALL})
    assert_manifest(r, plat.index)
    _wait_stored(m, [amd.manifest] + amd.layer_blobs())
    upstream.access.settle()
    for b in [arm.manifest] + arm.layer_blobs():
        assert not m.has_blob(b.digest), b
        assert upstream.access.count(
            "GET", re.escape(b.digest), mark) == 0, b
    assert upstream.access.count(
        "GET", r"/manifests/%s$" % amd.manifest.digest, mark) == 1
    for b in amd.layer_blobs():
        assert _blob_gets(upstream.access, b.digest, mark) == 1, b


def test_prefetch_disabled(mirror_factory, upstream, catalog):
    multi = catalog["multi"]
    m = mirror_factory(upstream.hostport, [upstream_registry(upstream)],
                       prefetch={"enabled": False})
    mark = upstream.access.mark()
    assert_manifest(m.get("/v2/e2e/multi/manifests/v1",
                          {"Accept": ACCEPT_ALL}), multi.manifest)
    upstream.access.settle(quiet=1.0)
    assert upstream.access.count("GET", r"/blobs/", mark) == 0
    assert m.stored_digests() == {multi.manifest.digest}


def test_prefetch_max_bytes(mirror_factory, upstream, catalog):
    """The config and the layers in manifest order while they fit in
    max_bytes; the first layer that does not fit ends the prefetch."""
    multi = catalog["multi"]
    blobs = multi.layer_blobs()
    sizes = [b.size for b in blobs]
    big = sizes.index(max(sizes))
    assert 2 <= big < len(blobs) - 1        # something fits after it
    budget = sum(sizes[:big])
    m = mirror_factory(upstream.hostport, [upstream_registry(upstream)],
                       prefetch={"max_bytes": budget})
    assert_manifest(m.get("/v2/e2e/multi/manifests/v1",
                          {"Accept": ACCEPT_ALL}), multi.manifest)
    _wait_stored(m, blobs[:big])
    upstream.access.settle(quiet=1.0)
    assert m.stored_digests() == {multi.manifest.digest} | {
        b.digest for b in blobs[:big]}
