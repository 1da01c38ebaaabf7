"""Range requests on a blob that is still downloading.

A single range that ends before the blob does is answered as soon as the
fetcher has written its bytes: the client verifies the blob's digest
itself once it has assembled it.  A range that runs to the end (a resume,
"bytes=N-") and a whole GET end only after the fetcher verified the
digest.  The fake upstream's throttle keeps the download in flight."""

import http.client
import threading

import pytest

from harness import (assert_store_consistent, fake_registry_entry,
                     random_bytes, sha256_hex, store_tmp_files, wait_for)

MiB = 1024 * 1024


def _slow_blob(fake, seed, size, rate):
    data = random_bytes(seed, size)
    digest = fake.add_blob(data)
    fake.throttle[digest] = rate
    return data, digest


def _mirror(mirror_factory, fake):
    return mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                          fetch_timeout="30s")


def _assert_range(r, data, start, end):
    """r is a complete 206 for bytes [start, end) of data."""
    assert r.status == 206, r
    assert r.error is None, r
    assert r.header("Content-Range") == "bytes %d-%d/%d" % (
        start, end - 1, len(data)), r
    assert r.header("Content-Length") == str(end - start), r
    assert r.body == data[start:end], "wrong bytes for %d-%d" % (start, end)


@pytest.mark.parametrize("start,end", [(0, 65536), (1000, 300000)],
                         ids=["head", "first-part"])
def test_early_range_completes_before_the_download(mirror_factory,
                                                   fake_upstream, start,
                                                   end):
    data, digest = _slow_blob(fake_upstream, "early-%d" % start, 8 * MiB,
                              1 * MiB)                        # about 8 s
    m = _mirror(mirror_factory, fake_upstream)
    path = "/v2/team/app/blobs/" + digest

    r = m.get(path, {"Range": "bytes=%d-%d" % (start, end - 1)})
    in_store = m.has_blob(digest)

    _assert_range(r, data, start, end)
    assert r.header("Docker-Content-Digest") == digest, r
    assert not in_store, "the range waited for the whole download"

    # the request left, the download went on for the store
    wait_for(lambda: m.has_blob(digest), 30, what="the blob in the store")
    assert fake_upstream.count("GET", "/blobs/" + digest) == 1
    assert_store_consistent(m)


def test_range_in_the_middle_waits_only_for_its_bytes(mirror_factory,
                                                      fake_upstream):
    data, digest = _slow_blob(fake_upstream, "middle", 8 * MiB, 2 * MiB)
    m = _mirror(mirror_factory, fake_upstream)
    path = "/v2/team/app/blobs/" + digest
    start, end = 3 * MiB, 3 * MiB + 100000

    r = m.get(path, {"Range": "bytes=%d-%d" % (start, end - 1)})
    in_store = m.has_blob(digest)

    _assert_range(r, data, start, end)
    assert not in_store, "the range waited for the whole download"
    wait_for(lambda: m.has_blob(digest), 30, what="the blob in the store")
    assert fake_upstream.count("GET", "/blobs/" + digest) == 1


def test_ranges_on_one_keepalive_connection(mirror_factory, fake_upstream):
    """A range that ends early leaves the connection clean: nothing past
    its end is written, and the next request on it is answered."""
    data, digest = _slow_blob(fake_upstream, "keepalive", 8 * MiB, 1 * MiB)
    m = _mirror(mirror_factory, fake_upstream)
    path = "/v2/team/app/blobs/" + digest
    conn = http.client.HTTPConnection("127.0.0.1", m.port, timeout=20)
    try:
        for start, end in ((0, 4096), (100000, 200000), (4096, 8192)):
            conn.request("GET", path,
                         headers={"Range": "bytes=%d-%d" % (start, end - 1)})
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 206, resp.status
            assert resp.getheader("Content-Range") == "bytes %d-%d/%d" % (
                start, end - 1, len(data))
            assert body == data[start:end]
            assert not resp.will_close
        assert not m.has_blob(digest)
    finally:
        conn.close()
    wait_for(lambda: m.has_blob(digest), 30, what="the blob in the store")
    assert fake_upstream.count("GET", "/blobs/" + digest) == 1


@pytest.mark.parametrize("spelling", ["open", "last-byte", "suffix"])
def test_resume_in_flight_ends_after_the_download(mirror_factory,
                                                  fake_upstream, spelling):
    """bytes=N- (or a range naming the last byte) on a blob another client
    is downloading: exactly the bytes from N, complete only once the blob
    is verified and in the store."""
    size = 4 * MiB
    data, digest = _slow_blob(fake_upstream, "resume-" + spelling, size,
                              2 * MiB)                        # about 2 s
    m = _mirror(mirror_factory, fake_upstream)
    path = "/v2/team/app/blobs/" + digest
    start = size // 2 + 12345
    header = {"open": "bytes=%d-" % start,
              "last-byte": "bytes=%d-%d" % (start, size - 1),
              "suffix": "bytes=-%d" % (size - start)}[spelling]

    first = http.client.HTTPConnection("127.0.0.1", m.port, timeout=30)
    try:
        first.request("GET", path)
        whole = first.getresponse()
        assert whole.status == 200
        assert whole.read(256 * 1024) == data[:256 * 1024]
        assert not m.has_blob(digest), "not in flight any more"

        r = m.get(path, {"Range": header})
        in_store = m.has_blob(digest)
        _assert_range(r, data, start, size)
        assert in_store, "the resume ended before the digest was verified"

        rest = whole.read()
    finally:
        first.close()
    assert sha256_hex(data[:256 * 1024] + rest) == digest.split(":")[1]
    assert fake_upstream.count("GET", "/blobs/" + digest) == 1


def test_whole_get_and_early_range_together(mirror_factory, fake_upstream):
    """The early range leaving (CANCEL) costs the whole GET nothing."""
    data, digest = _slow_blob(fake_upstream, "together", 4 * MiB, 2 * MiB)
    m = _mirror(mirror_factory, fake_upstream)
    path = "/v2/team/app/blobs/" + digest
    result = {}

    def pull():
        result["r"] = m.get(path, timeout=60)

    t = threading.Thread(target=pull)
    t.start()
    try:
        wait_for(lambda: store_tmp_files(m), 10, what="a download")
        r = m.get(path, {"Range": "bytes=0-99999"})
        _assert_range(r, data, 0, 100000)
        assert not m.has_blob(digest)
    finally:
        t.join(60)
    whole = result.get("r")
    assert whole is not None and whole.status == 200, whole
    assert whole.error is None, whole
    assert sha256_hex(whole.body) == digest.split(":")[1]
    assert fake_upstream.count("GET", "/blobs/" + digest) == 1


def test_early_range_of_a_corrupt_blob(mirror_factory, fake_upstream):
    """The range before a flipped byte is served (it is what the upstream
    sent; the client's digest check catches the blob); the failure that
    follows is not that request's any more, and the blob never lands."""
    size = 3 * MiB
    data, digest = _slow_blob(fake_upstream, "corrupt-range", size, 2 * MiB)
    bad = bytearray(data)
    bad[size - 100] ^= 0xff
    fake_upstream.corrupt[digest] = bytes(bad)
    m = _mirror(mirror_factory, fake_upstream)
    path = "/v2/team/app/blobs/" + digest

    r = m.get(path, {"Range": "bytes=0-65535"})
    _assert_range(r, data, 0, 65536)

    # the tail range, which holds the flipped byte, is never complete
    r = m.get(path, {"Range": "bytes=%d-" % (size - 1000)})
    if r.status == 206:
        assert r.error is not None or len(r.body) < 1000, r
    else:
        assert r.status == 502, r
    wait_for(lambda: store_tmp_files(m) == [], 10,
             what="temp file of the failed download removed")
    assert not m.has_blob(digest)
    assert m.alive()
    assert_store_consistent(m)


def test_covered_range_outlives_a_later_failure(mirror_factory,
                                                fake_upstream):
    """Once a range that ends early is on disk, the request no longer
    depends on the download: a client too slow to have read it all when
    the digest check fails still gets every byte of it."""
    size, end = 24 * MiB, 16 * MiB           # more than socket buffers
    data, digest = _slow_blob(fake_upstream, "outlives", size, 8 * MiB)
    bad = bytearray(data)
    bad[size - 100] ^= 0xff                  # past the range
    fake_upstream.corrupt[digest] = bytes(bad)
    m = _mirror(mirror_factory, fake_upstream)
    path = "/v2/team/app/blobs/" + digest

    conn = http.client.HTTPConnection("127.0.0.1", m.port, timeout=30)
    try:
        conn.request("GET", path,
                     headers={"Range": "bytes=0-%d" % (end - 1)})
        resp = conn.getresponse()
        assert resp.status == 206, resp.status
        got = resp.read(65536)
        # the client stalls until the download has failed
        wait_for(lambda: fake_upstream.count("GET", "/blobs/" + digest)
                 and store_tmp_files(m) == [], 30,
                 what="the failed download cleaned up")
        got += resp.read()
    finally:
        conn.close()
    assert len(got) == end, "range cut short: %d of %d" % (len(got), end)
    assert got == data[:end]
    assert not m.has_blob(digest)

