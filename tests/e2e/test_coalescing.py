"""One download per digest, however many clients wait on it."""

import http.client
import threading

from harness import fake_registry_entry, random_bytes, sha256_hex

MiB = 1024 * 1024


def _throttled_blob(fake, seed, size, rate):
    data = random_bytes(seed, size)
    digest = fake.add_blob(data)
    fake.throttle[digest] = rate
    return data, digest


def test_eight_clients_one_upstream_get(mirror_factory, fake_upstream):
    data, digest = _throttled_blob(fake_upstream, "coalesce", 4 * MiB,
                                   2 * MiB)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    path = "/v2/team/app/blobs/" + digest
    barrier = threading.Barrier(8)
    results = [None] * 8

    def pull(i):
        barrier.wait()
        results[i] = m.get(path, timeout=60)

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for i, r in enumerate(results):
        assert r is not None, "client %d got nothing" % i
        assert r.status == 200 and r.error is None, (i, r)
        assert r.header("Content-Length") == str(len(data))
        assert sha256_hex(r.body) == digest.split(":")[1], i
    assert fake_upstream.count("GET", "/blobs/" + digest) == 1
    assert m.has_blob(digest)


def test_client_leaving_does_not_stop_the_download(mirror_factory,
                                                   fake_upstream):
    data, digest = _throttled_blob(fake_upstream, "leaver", 3 * MiB,
                                   2 * MiB)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    path = "/v2/team/app/blobs/" + digest
    conn = http.client.HTTPConnection("127.0.0.1", m.port, timeout=30)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read(100000) == data[:100000]
    conn.close()                               # the first client leaves
    r = m.get(path, timeout=60)
    assert r.status == 200 and r.error is None, r
    assert r.body == data
    assert fake_upstream.count("GET", "/blobs/" + digest) == 1
