"""Failures: the fetcher dies mid-download, the upstream serves bytes that
do not match their digest, the upstream answers errors.  A client never
gets a complete 200 of wrong or unverified bytes, and the store never
holds them."""

import http.client
import signal
import socket
import time

import pytest

from harness import (ACCEPT_ALL, assert_json_error, assert_store_consistent,
                     fake_registry_entry, free_port, random_bytes, sha256_hex,
                     store_tmp_files, wait_for)
import images

MiB = 1024 * 1024


def _start_get(mirror, path, timeout=20):
    conn = http.client.HTTPConnection("127.0.0.1", mirror.port,
                                      timeout=timeout)
    conn.request("GET", path)
    return conn, conn.getresponse()


def _read_rest(resp):
    """Read until the server closes or stops; returns (bytes, error).
    http.client's read(amt) returns b"" on a connection closed short of
    Content-Length instead of raising, so the caller compares lengths;
    error is set for a timeout or a reset."""
    got = b""
    try:
        while True:
            chunk = resp.read(65536)
            if not chunk:
                return got, None
            got += chunk
    except http.client.IncompleteRead as e:
        return got + e.partial, e
    except (ConnectionError, socket.timeout) as e:
        return got, e


# serial (conftest.py): the abort after the kill is timed, and the
# kill must land while a 2 MiB/s download is under way
@pytest.mark.serial
def test_fetcher_killed_mid_download(mirror_factory, fake_upstream):
    data = random_bytes("killed", 8 * MiB)
    digest = fake_upstream.add_blob(data)
    fake_upstream.throttle[digest] = 2 * MiB            # about 4 s
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       fetch_timeout="30s")
    path = "/v2/team/big/blobs/" + digest
    conn, resp = _start_get(m, path)
    try:
        assert resp.status == 200, resp.status
        assert resp.getheader("Content-Length") == str(len(data))
        got = b""
        while len(got) < 512 * 1024:
            chunk = resp.read(65536)
            assert chunk, "stream ended early before the kill"
            got += chunk
        assert got == data[:len(got)]
        m.stop_fetcher(signal.SIGKILL)
        t_kill = time.monotonic()
        rest, err = _read_rest(resp)
        elapsed = time.monotonic() - t_kill
    finally:
        conn.close()
    total = len(got) + len(rest)
    # a broken transfer, never a complete answer, and noticed promptly
    # (not by the 30 s fetch timeout, nor by the client's 20 s timeout)
    assert total < len(data), "complete body despite the killed fetcher"
    assert not isinstance(err, socket.timeout), "the mirror never closed"
    assert (got + rest) == data[:total], "bytes served out of order"
    assert elapsed < 10, "abort took %.1fs" % elapsed
    assert not m.has_blob(digest)
    assert m.nginx.alive()

    # a new fetcher sweeps the temp file and serves the blob in full
    del fake_upstream.throttle[digest]
    m.start_fetcher()
    wait_for(lambda: store_tmp_files(m) == [], 5, what="store/tmp swept")
    m.wait_ready()
    r = m.get(path)
    assert r.status == 200 and r.error is None, r
    assert sha256_hex(r.body) == digest.split(":")[1]
    assert r.header("Docker-Content-Digest") == digest
    assert m.has_blob(digest)
    assert fake_upstream.count("GET", "/blobs/" + digest) == 2
    assert_store_consistent(m)


def test_fetcher_restart_between_requests(mirror, catalog):
    """A fetcher killed while idle (its socket file left behind) and
    started again: the workers reconnect, misses are served again."""
    multi = catalog["multi"]
    first, second = multi.layers[0].blob, multi.layers[1].blob
    r = mirror.get("/v2/e2e/multi/blobs/" + first.digest)
    assert r.status == 200 and r.body == first.data, r
    mirror.restart_fetcher(signal.SIGKILL)
    mirror.wait_ready()
    r = mirror.get("/v2/e2e/multi/blobs/" + second.digest)
    assert r.status == 200 and r.body == second.data, r
    r = mirror.get("/v2/e2e/multi/blobs/" + first.digest)
    assert r.status == 200 and r.body == first.data, r


@pytest.mark.parametrize("size", [1000, 3 * MiB], ids=["small", "large"])
def test_corrupt_blob_is_never_served_complete(mirror_factory,
                                               fake_upstream, size):
    data = random_bytes("corrupt-%d" % size, size)
    digest = fake_upstream.add_blob(data)
    bad = bytearray(data)
    bad[size // 2] ^= 0xff                   # one flipped byte mid-file
    fake_upstream.corrupt[digest] = bytes(bad)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    path = "/v2/team/app/blobs/" + digest
    for attempt in (1, 2):
        r = m.get(path)
        if r.status == 200:
            # headers were out before the digest check: a cut transfer
            assert r.error is not None, "a complete 200 of corrupt bytes"
            assert len(r.body) < size
        else:
            # 502 UNKNOWN is the contract's answer for a digest mismatch
            assert_json_error(r, 502, "UNKNOWN")
        assert not m.has_blob(digest)
        wait_for(lambda: store_tmp_files(m) == [], 5,
                 what="temp file of the failed download removed")
        # the failure is not cached: each attempt goes upstream
        assert fake_upstream.count("GET", "/blobs/" + digest) == attempt
    assert_store_consistent(m)
    assert m.alive()

    del fake_upstream.corrupt[digest]        # the upstream is repaired
    r = m.get(path)
    assert r.status == 200 and r.error is None, r
    assert sha256_hex(r.body) == digest.split(":")[1]


def test_corrupt_manifest_by_digest(mirror_factory, fake_upstream, catalog):
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    mt, body = fake_upstream.manifests[("team/app", small.manifest.digest)]
    fake_upstream.manifests[("team/app", small.manifest.digest)] = (
        mt, body.replace(b'"schemaVersion":2', b'"schemaVersion": 2'))
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    r = m.get("/v2/team/app/manifests/" + small.manifest.digest,
              {"Accept": ACCEPT_ALL})
    assert_json_error(r, 502, "UNKNOWN")
    assert not m.has_blob(small.manifest.digest)
    assert_store_consistent(m)


@pytest.mark.parametrize("status,code,want_status,want_code", [
    (429, "TOOMANYREQUESTS", 429, "TOOMANYREQUESTS"),
    (500, "UNKNOWN", 503, "UNAVAILABLE"),
    (503, "UNAVAILABLE", 503, "UNAVAILABLE"),
    (404, "NAME_UNKNOWN", 404, "NAME_UNKNOWN"),
    (403, "DENIED", 403, "DENIED"),
])
def test_upstream_errors_are_relayed(mirror_factory, fake_upstream, catalog,
                                     status, code, want_status, want_code):
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    fake_upstream.fail[r"^/v2/team/app/"] = (status, code)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    for path in ("/v2/team/app/manifests/v1",
                 "/v2/team/app/blobs/" + small.layers[0].blob.digest):
        r = m.get(path, {"Accept": ACCEPT_ALL})
        assert_json_error(r, want_status, want_code)
    assert not m.has_blob(small.layers[0].blob.digest)
    assert m.alive()


def test_second_endpoint_is_tried(mirror_factory, fake_upstream, catalog):
    """A registry with a dead first endpoint falls over to the next."""
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    dead = "http://127.0.0.1:%d" % free_port()
    m = mirror_factory("multi.test", [
        {"name": "multi.test", "endpoints": [dead, fake_upstream.url]}])
    r = m.get("/v2/team/app/manifests/v1", {"Accept": ACCEPT_ALL})
    assert r.status == 200 and r.body == small.manifest.data, r
    b = small.layers[0].blob
    r = m.get("/v2/team/app/blobs/" + b.digest)
    assert r.status == 200 and r.body == b.data, r
    assert r.header("Content-Type") == "application/octet-stream"
    assert images.sha256_digest(r.body) == b.digest
