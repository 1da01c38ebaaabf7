"""One download per digest, however many clients wait on it."""

import http.client
import threading
import time

import pytest

from harness import (assert_json_error, fake_registry_entry, random_bytes,
                     sha256_hex, store_tmp_files, wait_for)

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


@pytest.mark.parametrize("read,gets", [(2 * MiB, 1), (100000, 2)],
                         ids=["past-half", "early"])
def test_client_leaving_the_download(mirror_factory, fake_upstream, read,
                                     gets):
    """The only client leaves: past fetcher.finish_fraction (0.5) of the
    bytes the download goes on for the store and the next client joins
    it; before, it is dropped and the next client starts it again."""
    data, digest = _throttled_blob(fake_upstream, "leaver-%d" % read,
                                   3 * MiB, 2 * MiB)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    path = "/v2/team/app/blobs/" + digest
    conn = http.client.HTTPConnection("127.0.0.1", m.port, timeout=30)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read(read) == data[:read]
    conn.close()                               # the first client leaves
    if gets == 2:
        wait_for(lambda: not store_tmp_files(m), 5,
                 what="the dropped download's temp file removed")
    r = m.get(path, timeout=60)
    assert r.status == 200 and r.error is None, r
    assert r.body == data
    assert fake_upstream.count("GET", "/blobs/" + digest) == gets


def test_refused_repository_fails_only_its_clients(mirror_factory,
                                                   fake_upstream):
    """The job is per digest, but a 404 answers only the repository it
    was asked through: a client asking through a repository without the
    blob must not fail the clients asking through one that has it."""
    data, digest = _throttled_blob(fake_upstream, "refused", 2 * MiB,
                                   2 * MiB)
    missing = r"^/v2/team/missing/blobs/"
    fake_upstream.fail[missing] = (404, "BLOB_UNKNOWN")
    fake_upstream.delay[missing] = 1.5         # B joins while A's job waits
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    results = {}

    def pull(repo):
        results[repo] = m.get("/v2/%s/blobs/%s" % (repo, digest),
                              timeout=60)

    a = threading.Thread(target=pull, args=("team/missing",))
    a.start()
    deadline = time.monotonic() + 10
    while fake_upstream.count("GET", missing) == 0:
        assert time.monotonic() < deadline, "no upstream GET for A"
        time.sleep(0.02)
    b = threading.Thread(target=pull, args=("team/app",))
    b.start()
    a.join(90)
    b.join(90)

    ra, rb = results.get("team/missing"), results.get("team/app")
    assert ra is not None and rb is not None
    assert_json_error(ra, 404, "BLOB_UNKNOWN")
    assert rb.status == 200 and rb.error is None, rb
    assert rb.header("Docker-Content-Digest") == digest
    assert sha256_hex(rb.body) == digest.split(":")[1]
    assert fake_upstream.count("GET", missing) == 1
    assert fake_upstream.count("GET", r"^/v2/team/app/blobs/") == 1
    assert m.has_blob(digest)
