"""$ocimirror_cache_status, as the include's access log ("ocimirror"
format) shows it: each outcome provoked through a real nginx and a real
fetcher, against a FakeRegistry upstream, and read back from the log."""

import re
import threading
import time

from fakeregistry import FakeRegistry
from harness import (ACCEPT_ALL, assert_blob, assert_json_error,
                     assert_manifest, fake_registry_entry, random_bytes,
                     sha256_hex, wait_for)

NO_PREFETCH = {"enabled": False}
TTL = 1

# the tail of the include's format: ... "$http_user_agent"
# $ocimirror_cache_status $request_time
LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
                  r'(?P<status>\d{3}) \S+ "[^"]*" "[^"]*" '
                  r'(?P<cache>\S+) (?P<time>\d+\.\d{3})$')


def log_lines(mirror, since):
    with open(mirror.access_log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", "replace")
    out = []
    for line in text.splitlines():
        m = LINE.search(line)
        assert m, "not the ocimirror format: %r" % line
        out.append((m["method"], m["path"], int(m["status"]), m["cache"]))
    return out


def logged(mirror, method, path, since, n=1):
    """The cache statuses of the first n lines since the mark for
    method and path, once they are all in the log (nginx writes a line
    as it finalizes, which may be just after the client has its
    answer)."""
    def found():
        got = [(s, c) for m, p, s, c in log_lines(mirror, since)
               if m == method and p == path]
        return got if len(got) >= n else None
    return wait_for(found, 10, what="%d log line(s) for %s %s"
                    % (n, method, path))


def outcome(mirror, method, path, headers=None, status=200):
    """Request path, check the status and return its logged outcome."""
    mark = mirror.access.mark()
    r = mirror.request(method, path, headers)
    assert r.status == status, r
    [(logged_status, cache)] = logged(mirror, method, path, mark)
    assert logged_status == status
    return cache, r


def _image(fake, catalog, tag):
    small = catalog["small"]
    fake.add_image("team/app", tag, small)
    return small


def test_hit_miss_revalidated_stale_negative_bypass_error(mirror_factory,
                                                          fake_upstream,
                                                          catalog):
    """A tag: MISS, then HIT while fresh, REVALIDATED once expired, STALE
    when the upstream fails and when the fetcher is down; a blob MISS
    then HIT, its HEAD when it is not stored BYPASS, a GET of it with
    the fetcher down ERROR; a missing tag ERROR (the upstream's 404), then
    NEGATIVE (remembered); the base, a tag list BYPASS; an invalid name
    and digest ERROR; a path outside the API "-"."""
    small = _image(fake_upstream, catalog, "v1")
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, tag_ttl=TTL,
                                            stale_if_error=60,
                                            negative_ttl=60)],
                       prefetch=NO_PREFETCH)
    tag = "/v2/team/app/manifests/v1"
    accept = {"Accept": ACCEPT_ALL}

    assert outcome(m, "GET", "/v2/")[0] == "BYPASS"

    cache, r = outcome(m, "GET", tag, accept)
    assert_manifest(r, small.manifest)
    fetched = time.monotonic()
    assert cache == "MISS"
    cache, r = outcome(m, "GET", tag, accept)
    assert_manifest(r, small.manifest)
    assert cache == "HIT"
    cache, r = outcome(m, "HEAD", tag, accept)
    assert cache == "HIT"
    by_digest = "/v2/team/app/manifests/" + small.manifest.digest
    cache, r = outcome(m, "GET", by_digest, accept)
    assert_manifest(r, small.manifest)
    assert cache == "HIT"

    layer = small.layer_blobs()[0]
    other = small.layer_blobs()[1] if len(small.layer_blobs()) > 1 \
        else small.config
    blob = "/v2/team/app/blobs/" + layer.digest
    cache, r = outcome(m, "GET", blob)
    assert_blob(r, layer)
    assert cache == "MISS"
    cache, r = outcome(m, "GET", blob)
    assert_blob(r, layer)
    assert cache == "HIT"
    cache, r = outcome(m, "HEAD", "/v2/team/app/blobs/" + other.digest)
    assert r.header("Content-Length") == str(other.size), r
    assert cache == "BYPASS"

    missing = "/v2/team/app/manifests/nope"
    cache, r = outcome(m, "GET", missing, accept, status=404)
    assert_json_error(r, 404, "MANIFEST_UNKNOWN")
    assert cache == "ERROR"
    asked = fake_upstream.count(None, "/manifests/nope$")
    cache, r = outcome(m, "GET", missing, accept, status=404)
    assert_json_error(r, 404, "MANIFEST_UNKNOWN")
    assert cache == "NEGATIVE"
    assert fake_upstream.count(None, "/manifests/nope$") == asked

    assert outcome(m, "GET", "/v2/team/app/tags/list")[0] == "BYPASS"

    cache, r = outcome(m, "GET", "/v2/Team/App/manifests/v1", accept,
                       status=400)
    assert_json_error(r, 400, "NAME_INVALID")
    assert cache == "ERROR"
    cache, r = outcome(m, "GET", "/v2/team/app/blobs/sha256:zz", status=400)
    assert_json_error(r, 400, "DIGEST_INVALID")
    assert cache == "ERROR"

    # not the registry API: nothing to say
    assert outcome(m, "GET", "/elsewhere", status=404)[0] == "-"

    # past the TTL: the record is revalidated upstream
    time.sleep(max(0.0, fetched + TTL + 0.2 - time.monotonic()))
    cache, r = outcome(m, "GET", tag, accept)
    assert_manifest(r, small.manifest)
    assert r.header("Warning") is None, r
    assert cache == "REVALIDATED"
    revalidated = time.monotonic()

    # past it again with the upstream failing: served stale
    fake_upstream.fail[r"/manifests/"] = (500, "UNKNOWN")
    time.sleep(max(0.0, revalidated + TTL + 0.2 - time.monotonic()))
    cache, r = outcome(m, "GET", tag, accept)
    assert_manifest(r, small.manifest)
    assert r.header("Warning") == '110 - "Response is Stale"', r
    assert cache == "STALE"

    # the fetcher down: nginx serves the old record itself (STALE), a
    # blob it does not hold is a 503 (ERROR), a stored one a HIT
    m.stop_fetcher()
    try:
        cache, r = outcome(m, "GET", tag, accept)
        assert_manifest(r, small.manifest)
        assert r.header("Warning") == '110 - "Response is Stale"', r
        assert cache == "STALE"
        cache, r = outcome(m, "GET", "/v2/team/app/blobs/" + other.digest,
                           status=503)
        assert_json_error(r, 503, "UNAVAILABLE")
        assert cache == "ERROR"
        assert outcome(m, "GET", blob)[0] == "HIT"
    finally:
        m.start_fetcher()


def test_two_gets_of_a_slow_cold_blob_miss_and_stream(mirror_factory,
                                                      fake_upstream):
    """Two GETs of a cold blob the upstream sends slowly: the first
    starts the download (MISS), the second joins it (STREAM); the
    upstream sends it once."""
    data = random_bytes("cache-status-stream", 192 * 1024)
    digest = fake_upstream.add_blob(data)
    fake_upstream.throttle[digest] = 128 * 1024
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       prefetch=NO_PREFETCH)
    path = "/v2/team/app/blobs/" + digest
    mark = m.access.mark()
    results = {}

    def get(key):
        results[key] = m.get(path)

    first = threading.Thread(target=get, args=("first",))
    first.start()
    try:
        wait_for(lambda: fake_upstream.sending.get(digest), 10,
                 what="the upstream sending the blob")
        get("second")
    finally:
        first.join(30)
    assert not first.is_alive()
    for key in ("first", "second"):
        r = results[key]
        assert r.status == 200 and r.error is None, (key, r)
        assert sha256_hex(r.body) == digest[7:], key
    got = sorted(c for s, c in logged(m, "GET", path, mark, n=2))
    assert got == ["MISS", "STREAM"], got
    assert fake_upstream.count("GET", "/blobs/" + digest) == 1


def test_peer(cluster_factory):
    """A node asked for a blob another node owns passes it on: PEER in
    its log; the owner, which downloads it, logs MISS."""
    fake = FakeRegistry().start()
    try:
        c = cluster_factory(2, fake.hostport, [fake_registry_entry(fake)],
                            prefetch=NO_PREFETCH)
        for i in range(64):
            data = random_bytes("cache-status-peer-%d" % i, 4096)
            digest = "sha256:" + sha256_hex(data)
            if c.owner(digest) == 1:
                break
        else:
            raise AssertionError("node 2 owns none of 64 digests")
        fake.add_blob(data)
        path = "/v2/team/app/blobs/" + digest
        marks = [n.access.mark() for n in c.nodes]
        r = c.nodes[0].get(path)
        assert r.status == 200 and r.body == data, r
        assert logged(c.nodes[0], "GET", path, marks[0]) == [(200, "PEER")]
        assert logged(c.nodes[1], "GET", path, marks[1]) == [(200, "MISS")]
    finally:
        fake.stop()
