"""Fan-out: 64 clients on one cold blob (nginx runs two workers, so both
ask the fetcher) cause one upstream transfer (with ranged chunks: each range once), every
client streams the right bytes, and clients that leave half way stop
nothing for the others."""

import http.client
import threading

from harness import (assert_store_consistent, fake_registry_entry,
                     random_bytes, sha256_hex)

MiB = 1024 * 1024
CLIENTS = 64


def _cold_blob(fake, seed, size, rate, ranges):
    data = random_bytes(seed, size)
    digest = fake.add_blob(data)
    fake.throttle[digest] = rate
    fake.accept_ranges = ranges
    return data, digest


def _stream(port, path, results, i, barrier, leave_after=None):
    """GET path on a connection of its own; with leave_after, read that
    many bytes and close the connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        barrier.wait(30)
        conn.request("GET", path)
        resp = conn.getresponse()
        if leave_after is not None:
            results[i] = (resp.status, resp.read(leave_after), None)
            return
        body = resp.read()
        results[i] = (resp.status, body, resp.getheader("Content-Length"))
    except Exception as e:                   # noqa: BLE001 - reported below
        results[i] = (None, b"", repr(e))
    finally:
        conn.close()


def _fan_out(m, digest, leavers=()):
    path = "/v2/team/app/blobs/" + digest
    results = [None] * CLIENTS
    barrier = threading.Barrier(CLIENTS)
    threads = [threading.Thread(target=_stream,
                                args=(m.port, path, results, i, barrier,
                                      64 * 1024 if i in leavers else None))
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def _assert_all_whole(results, data, leavers=()):
    for i, r in enumerate(results):
        assert r is not None, "client %d got nothing" % i
        status, body, extra = r
        if i in leavers:
            assert status == 200 and body == data[:len(body)], (i, extra)
            continue
        assert status == 200, (i, status, extra)
        assert extra == str(len(data)), (i, extra)
        assert len(body) == len(data), (i, len(body))
        assert sha256_hex(body) == sha256_hex(data), i


def test_64_clients_one_upstream_get(mirror_factory, fake_upstream):
    data, digest = _cold_blob(fake_upstream, "fanout-64", 4 * MiB,
                              4 * MiB, ranges=False)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    results = _fan_out(m, digest)
    _assert_all_whole(results, data)
    assert fake_upstream.count("GET", "/blobs/" + digest) == 1
    assert m.has_blob(digest)


def test_64_clients_chunked_each_range_once(mirror_factory, fake_upstream):
    data, digest = _cold_blob(fake_upstream, "fanout-64-chunks", 4 * MiB,
                              2 * MiB, ranges=True)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       fetcher={"chunk_threshold": "1M",
                                "chunk_size": "512K", "chunks_per_blob": 4})
    results = _fan_out(m, digest)
    _assert_all_whole(results, data)
    seen = fake_upstream.ranges(digest)
    want = ["bytes=%d-%d" % (o, o + 512 * 1024 - 1)
            for o in range(0, len(data), 512 * 1024)]
    assert sorted(seen) == sorted(want), seen
    assert m.has_blob(digest)


def test_clients_leaving_mid_stream(mirror_factory, fake_upstream):
    """A quarter of the clients hang up after 64 KiB: the download goes on,
    the others get every byte, the blob is stored."""
    data, digest = _cold_blob(fake_upstream, "fanout-leavers", 4 * MiB,
                              4 * MiB, ranges=False)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    leavers = set(range(0, CLIENTS, 4))
    results = _fan_out(m, digest, leavers)
    _assert_all_whole(results, data, leavers)
    assert fake_upstream.count("GET", "/blobs/" + digest) == 1
    assert m.has_blob(digest)
    assert_store_consistent(m)
    assert m.alive()
