"""Ranged chunks: a blob at or above chunk_threshold from an upstream that
answers Range is fetched as parallel ranges and reassembled into the right
digest; an upstream that ignores Range gets one plain stream; a chunk that
fails is fetched again alone."""

import re

from fakeregistry import FakeRegistry
from harness import (assert_blob, assert_json_error, assert_store_consistent,
                     fake_registry_entry, random_bytes, sha256_hex,
                     store_tmp_files, upstream_registry, wait_for)

KiB = 1024
MiB = 1024 * KiB
CHUNK = 256 * KiB

# small chunks, so that the suite's 3 MiB and 64 MiB layers are chunked
CHUNKED = {"chunk_threshold": "1M", "chunk_size": "256K",
           "chunks_per_blob": 4}
NO_PREFETCH = {"enabled": False}


def _ranges(size, chunk=CHUNK):
    """The Range headers of a blob fetched in chunks, in offset order."""
    return ["bytes=%d-%d" % (o, min(o + chunk, size) - 1)
            for o in range(0, size, chunk)]


def _chunked_mirror(mirror_factory, upstream_hostport, registries, **kw):
    return mirror_factory(upstream_hostport, registries, fetcher=CHUNKED,
                          prefetch=NO_PREFETCH, **kw)


def _blob_fake(fake, seed, size, ranges=True):
    data = random_bytes(seed, size)
    digest = fake.add_blob(data)
    fake.accept_ranges = ranges
    return data, digest


def test_chunks_reassemble_from_docker_registry(mirror_factory, upstream,
                                                 catalog):
    """Against the real upstream: every chunk is one ranged GET answered
    206, no whole GET, and the bytes are the blob's."""
    m = _chunked_mirror(mirror_factory, upstream.hostport,
                        [upstream_registry(upstream)])
    blobs = [("e2e/multi", max(catalog["multi"].layer_blobs(),
                               key=lambda b: b.size)),
             ("e2e/large", catalog["large"].layers[0].blob)]
    mark = upstream.access.mark()
    for repo, b in blobs:
        assert b.size >= 3 * MiB
        r = m.get("/v2/%s/blobs/%s" % (repo, b.digest), timeout=120)
        assert_blob(r, b)
        assert m.has_blob(b.digest)
    upstream.access.settle()
    for repo, b in blobs:
        rx = r"^/v2/%s/blobs/%s$" % (re.escape(repo), b.digest)
        n = (b.size + CHUNK - 1) // CHUNK
        assert upstream.access.count("GET", rx, mark, status=206) == n
        assert upstream.access.count("GET", rx, mark) == n
    assert_store_consistent(m)


def test_every_range_once(mirror_factory, fake_upstream):
    """The probe first, then each chunk once.  (The order the others reach
    the upstream in depends on how fast their connections open; the unit
    tests check that the lowest one is always started first.)"""
    data, digest = _blob_fake(fake_upstream, "chunks-once", 3 * MiB + 1000)
    m = _chunked_mirror(mirror_factory, fake_upstream.hostport,
                        [fake_registry_entry(fake_upstream)])
    r = m.get("/v2/team/app/blobs/" + digest)
    assert r.status == 200 and r.error is None, r
    assert r.body == data
    seen = fake_upstream.ranges(digest)
    want = _ranges(len(data))
    assert seen[0] == want[0]
    assert sorted(seen) == sorted(want), seen


def test_upstream_ignoring_range_falls_back(mirror_factory, fake_upstream):
    """The probe's 200 is the whole blob: one GET, right digest."""
    data, digest = _blob_fake(fake_upstream, "no-ranges", 3 * MiB,
                              ranges=False)
    m = _chunked_mirror(mirror_factory, fake_upstream.hostport,
                        [fake_registry_entry(fake_upstream)])
    r = m.get("/v2/team/app/blobs/" + digest)
    assert r.status == 200 and r.error is None, r
    assert sha256_hex(r.body) == digest.split(":")[1]
    assert fake_upstream.ranges(digest) == ["bytes=0-%d" % (CHUNK - 1)]
    assert m.has_blob(digest)


def test_small_blob_below_threshold(mirror_factory, fake_upstream):
    """Below chunk_threshold: the probe, then the rest in one range."""
    data, digest = _blob_fake(fake_upstream, "small-rest", 700 * KiB)
    m = _chunked_mirror(mirror_factory, fake_upstream.hostport,
                        [fake_registry_entry(fake_upstream)])
    r = m.get("/v2/team/app/blobs/" + digest)
    assert r.status == 200 and r.body == data, r
    assert fake_upstream.ranges(digest) == [
        "bytes=0-%d" % (CHUNK - 1), "bytes=%d-%d" % (CHUNK, len(data) - 1)]


def test_failed_chunk_is_retried_alone(mirror_factory, fake_upstream):
    """One range gets a 500 once, another breaks half way once: only
    those are asked for again (the broken one from where it broke), the
    others once, and the blob is right."""
    data, digest = _blob_fake(fake_upstream, "retry-one", 3 * MiB)
    fake_upstream.range_faults[(digest, 2 * CHUNK)] = ["500"]
    fake_upstream.range_faults[(digest, 5 * CHUNK)] = ["cut"]
    m = _chunked_mirror(mirror_factory, fake_upstream.hostport,
                        [fake_registry_entry(fake_upstream)])
    r = m.get("/v2/team/app/blobs/" + digest)
    assert r.status == 200 and r.error is None, r
    assert r.body == data
    seen = fake_upstream.ranges(digest)
    want = _ranges(len(data))
    failed = "bytes=%d-%d" % (2 * CHUNK, 3 * CHUNK - 1)
    cut = "bytes=%d-%d" % (5 * CHUNK, 6 * CHUNK - 1)
    rest_of_cut = "bytes=%d-%d" % (5 * CHUNK + CHUNK // 2, 6 * CHUNK - 1)
    assert seen.count(failed) == 2, seen
    assert seen.count(cut) == 1, seen
    assert seen.count(rest_of_cut) == 1, seen
    assert sorted(seen) == sorted(want + [failed, rest_of_cut]), seen
    assert m.has_blob(digest)
    assert_store_consistent(m)


def test_chunk_failing_for_good_fails_the_blob(mirror_factory,
                                               fake_upstream):
    """A range that keeps failing: the client's stream is cut, nothing is
    stored, the temp file goes, and the next request starts afresh."""
    data, digest = _blob_fake(fake_upstream, "retry-out", 2 * MiB)
    fake_upstream.range_faults[(digest, 3 * CHUNK)] = ["500"] * 4
    m = _chunked_mirror(mirror_factory, fake_upstream.hostport,
                        [fake_registry_entry(fake_upstream)])
    path = "/v2/team/app/blobs/" + digest
    r = m.get(path)
    if r.status == 200:
        # headers went out with the probe's answer: a cut stream
        assert r.error is not None, r
        assert len(r.body) < len(data)
        assert r.body == data[:len(r.body)]
    else:
        assert_json_error(r, 503, "UNAVAILABLE")
    assert not m.has_blob(digest)
    wait_for(lambda: store_tmp_files(m) == [], 5, what="temp file removed")
    assert fake_upstream.ranges(digest).count(
        "bytes=%d-%d" % (3 * CHUNK, 4 * CHUNK - 1)) == 4
    r = m.get(path)
    assert r.status == 200 and r.error is None and r.body == data, r


def test_chunks_follow_the_redirect_without_the_token(mirror_factory,
                                                      fake_upstream):
    """A registry that redirects blobs to a CDN: the chunks go to the URL
    the probe ended at, and the registry's token never goes there."""
    cdn = FakeRegistry().start()
    try:
        data, digest = _blob_fake(cdn, "cdn", 2 * MiB)
        fake_upstream.blobs[digest] = data
        fake_upstream.require_token("registry-token")
        fake_upstream.blob_redirect = cdn.url
        m = _chunked_mirror(mirror_factory, fake_upstream.hostport,
                            [fake_registry_entry(fake_upstream)])
        r = m.get("/v2/team/app/blobs/" + digest)
        assert r.status == 200 and r.error is None, r
        assert r.body == data
        # the registry saw the probe (with the token), the CDN every range
        assert fake_upstream.count("GET", "/blobs/" + digest) == 2
        assert sorted(cdn.ranges(digest)) == sorted(_ranges(len(data)))
        with cdn._lock:
            sent = [(p, h) for meth, p, h in cdn.requests if meth == "GET"]
        assert all("sig=s3cr3t" in p for p, _ in sent), sent
        assert not any("Authorization" in h for _, h in sent), sent
        with fake_upstream._lock:
            auth = [h.get("Authorization") for meth, p, h
                    in fake_upstream.requests if "/blobs/" in p]
        assert auth[-1] == "Bearer registry-token", auth
        # the CDN's signed query stays out of the fetcher's log
        with open(m.fetcher_log) as f:
            assert "s3cr3t" not in f.read()
    finally:
        cdn.stop()
