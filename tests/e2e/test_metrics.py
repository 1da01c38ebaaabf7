"""/metrics: nginx's counters and the fetcher's, in the Prometheus text
format.  Counters move on a miss and then a hit; an upstream serving
bytes that do not match their digest stores nothing, fails the client and
counts a digest mismatch; a stale tag served with a Warning is counted
(by the fetcher's word, and by nginx's own when the fetcher is down); and
with the fetcher stopped /metrics still answers, with ocimirror_fetcher_up
0.  A manifest nginx cannot read from the store is neither a hit nor a
stale serve, and what nginx answers without asking the fetcher is no
miss."""

import os
import re
import time

from harness import (ACCEPT_ALL, assert_blob, assert_json_error,
                     assert_manifest, assert_store_consistent,
                     fake_registry_entry, random_bytes, sha256_hex,
                     store_tmp_files, wait_for)

CONTENT_TYPE = "text/plain; version=0.0.4"
WARNING = '110 - "Response is Stale"'

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
                   r'(,|$)')


def parse(text):
    """{(name, ((label, value), ...)): float}, checking the format: each
    sample's family was declared (HELP, then TYPE) once, before it;
    counters end in _total; a histogram's samples are its name with
    _bucket, _sum or _count."""
    types, samples, help_of = {}, {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            help_of = line.split(" ", 3)[2]
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == help_of, line
            assert name not in types, "family declared twice: " + name
            assert kind in ("counter", "gauge", "histogram"), line
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels, value = m.groups()
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and \
                    types.get(name[:-len(suffix)]) == "histogram":
                family = name[:-len(suffix)]
        assert family in types, "sample before its TYPE: " + line
        if types[family] == "histogram":
            assert family != name, "a histogram's own name: " + line
        if types[family] == "counter":
            assert name.endswith("_total"), line
        pairs = []
        rest = labels or ""
        while rest:
            lm = LABEL.match(rest)
            assert lm, "bad labels: %r" % line
            pairs.append((lm[1], lm[2]))
            rest = rest[lm.end():]
        key = (name, tuple(sorted(pairs)))
        assert key not in samples, "sample twice: " + line
        samples[key] = float(value)
    return samples


def scrape(m):
    r = m.get("/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type") == CONTENT_TYPE, r
    assert int(r.header("Content-Length")) == len(r.body), r
    return parse(r.body.decode())


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def histogram(samples, name):
    """[(le, cumulative count)] of a histogram, checked: the bounds grow,
    the counts never fall, +Inf last holds _count."""
    out = sorted((float(dict(labels)["le"]), v)
                 for (n, labels), v in samples.items()
                 if n == name + "_bucket")
    assert out and out[-1][0] == float("inf"), out
    assert all(a[1] <= b[1] for a, b in zip(out, out[1:])), out
    assert out[-1][1] == value(samples, name + "_count"), out
    return out


def requests_of(samples, endpoint, outcome):
    return value(samples, "ocimirror_requests_total", endpoint=endpoint,
                 outcome=outcome)


def test_metrics_miss_then_hit(mirror, upstream, catalog):
    reg = upstream.hostport
    small = catalog["small"]
    blob = small.layers[0].blob

    s0 = scrape(mirror)
    # nginx's families, with every sample at 0 on a fresh mirror
    for endpoint, outcome in (("base", "hit"), ("blob", "hit"),
                              ("blob", "miss"), ("manifest", "hit"),
                              ("manifest", "miss"), ("tags", "miss"),
                              ("referrers", "miss")):
        assert requests_of(s0, endpoint, outcome) == 0, (endpoint, outcome)
    assert value(s0, "ocimirror_stale_served_total", source="fetcher") == 0
    assert value(s0, "ocimirror_stale_served_total", source="cache") == 0
    assert value(s0, "ocimirror_fetcher_up") == 1
    # the fetcher's, by registry and by endpoint
    assert value(s0, "ocimirror_fetcher_blobs_fetched_total",
                 registry=reg) == 0
    assert value(s0, "ocimirror_fetcher_digest_mismatches_total",
                 registry=reg) == 0
    assert value(s0, "ocimirror_fetcher_endpoint_up", registry=reg,
                 endpoint=upstream.url) == 1
    assert value(s0, "ocimirror_fetcher_jobs", kind="blob") == 0

    # a blob: miss, then hit
    assert_blob(mirror.get("/v2/e2e/small/blobs/" + blob.digest), blob)
    s1 = scrape(mirror)
    assert requests_of(s1, "blob", "miss") == 1
    assert requests_of(s1, "blob", "hit") == 0
    assert value(s1, "ocimirror_fetcher_blobs_fetched_total",
                 registry=reg) == 1
    assert value(s1, "ocimirror_fetcher_upstream_bytes_total",
                 registry=reg) >= blob.size

    assert_blob(mirror.get("/v2/e2e/small/blobs/" + blob.digest), blob)
    s2 = scrape(mirror)
    assert requests_of(s2, "blob", "miss") == 1
    assert requests_of(s2, "blob", "hit") == 1
    assert value(s2, "ocimirror_fetcher_blobs_fetched_total",
                 registry=reg) == 1

    # a manifest by tag: miss, then hit
    path = "/v2/e2e/small/manifests/v1"
    assert_manifest(mirror.get(path, {"Accept": ACCEPT_ALL}), small.manifest)
    assert_manifest(mirror.get(path, {"Accept": ACCEPT_ALL}), small.manifest)
    assert mirror.get("/v2/").status == 200
    s3 = scrape(mirror)
    assert requests_of(s3, "manifest", "miss") == 1
    assert requests_of(s3, "manifest", "hit") == 1
    assert requests_of(s3, "base", "hit") == 1
    assert value(s3, "ocimirror_fetcher_manifests_fetched_total",
                 registry=reg) == 1

    # the fetcher's loop: every turn counted; the longest since the start
    # lies in the first bucket that holds every turn, and no turn is
    # longer than all of them together
    loop = "ocimirror_fetcher_loop_stall_seconds"
    turns0 = value(s0, loop + "_count")
    turns3 = value(s3, loop + "_count")
    assert turns3 > turns0 > 0, (turns0, turns3)
    buckets = histogram(s3, loop)
    longest = value(s3, "ocimirror_fetcher_loop_longest_stall_seconds")
    assert 0 < longest <= value(s3, loop + "_sum"), longest
    full = [i for i, (_, n) in enumerate(buckets) if n == turns3][0]
    assert longest <= buckets[full][0], (longest, buckets)
    assert full == 0 or longest > buckets[full - 1][0], (longest, buckets)
    assert value(s3, "ocimirror_fetcher_loop_longest_stall_seconds") >= \
        value(s0, "ocimirror_fetcher_loop_longest_stall_seconds")

    # answers are counted once they are logged: 2 blobs, 2 manifests, /v2/
    def logged():
        s = scrape(mirror)
        if value(s, "ocimirror_responses_total", code="2xx") >= 5:
            return s
    s4 = wait_for(logged, 5, what="five 2xx answers counted")
    assert value(s4, "ocimirror_responses_total", code="2xx") == 5
    assert value(s4, "ocimirror_sent_bytes_total") >= \
        2 * blob.size + 2 * small.manifest.size + 2

    # an error is counted by its class; /metrics is no /v2/ answer
    assert_json_error(mirror.get("/v2/e2e/small/blobs/sha256:xyz"), 400)
    s5 = wait_for(lambda: (lambda s: s if value(
        s, "ocimirror_responses_total", code="4xx") == 1 else None)(
        scrape(mirror)), 5, what="the 400 counted")
    assert value(s5, "ocimirror_responses_total", code="2xx") == 5

    # read-only, in the registry's error format
    r = mirror.request("POST", "/metrics", body=b"x")
    assert_json_error(r, 405, "UNSUPPORTED")
    r = mirror.head("/metrics")
    assert r.status == 200 and r.body == b"", r
    assert r.header("Content-Type") == CONTENT_TYPE, r


def test_metrics_digest_mismatch(mirror_factory, fake_upstream, catalog):
    reg = fake_upstream.hostport
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    data = random_bytes("metrics-corrupt", 2000)
    digest = fake_upstream.add_blob(data)
    bad = bytearray(data)
    bad[1000] ^= 0xff
    fake_upstream.corrupt[digest] = bytes(bad)
    m = mirror_factory(reg, [fake_registry_entry(fake_upstream)])

    def mismatches():
        return value(scrape(m), "ocimirror_fetcher_digest_mismatches_total",
                     registry=reg)
    assert mismatches() == 0

    # a blob whose bytes are not its digest's: a client error, not stored
    r = m.get("/v2/team/app/blobs/" + digest)
    if r.status == 200:
        assert r.error is not None and len(r.body) < len(data), r
    else:
        assert_json_error(r, 502, "UNKNOWN")
    assert not m.has_blob(digest)
    assert mismatches() == 1

    # a manifest by digest whose body is another one's
    mt, body = fake_upstream.manifests[("team/app", small.manifest.digest)]
    fake_upstream.manifests[("team/app", small.manifest.digest)] = (
        mt, body.replace(b'"schemaVersion":2', b'"schemaVersion": 2'))
    r = m.get("/v2/team/app/manifests/" + small.manifest.digest,
              {"Accept": ACCEPT_ALL})
    assert_json_error(r, 502, "UNKNOWN")
    assert mismatches() == 2

    # the same by tag: the body disagrees with Docker-Content-Digest
    r = m.get("/v2/team/app/manifests/v1", {"Accept": ACCEPT_ALL})
    assert_json_error(r, 502, "UNKNOWN")
    assert mismatches() == 3

    assert not m.has_blob(small.manifest.digest)
    s = scrape(m)
    assert value(s, "ocimirror_fetcher_blobs_fetched_total",
                 registry=reg) == 0
    assert value(s, "ocimirror_fetcher_manifests_fetched_total",
                 registry=reg) == 0
    wait_for(lambda: store_tmp_files(m) == [], 5,
             what="temp files of the refused bodies removed")
    assert_store_consistent(m)


def test_metrics_stale_and_fetcher_down(mirror_factory, fake_upstream,
                                        catalog):
    """tag_ttl 1, the default stale_if_error, every endpoint down."""
    reg = fake_upstream.hostport
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    m = mirror_factory(reg, [fake_registry_entry(fake_upstream,
                                                 tag_ttl=1)])
    path = "/v2/team/app/manifests/v1"
    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, small.manifest)
    assert r.header("Warning") is None, r
    fetched = time.time()

    fake_upstream.fail[r"^/v2/"] = (503, "UNAVAILABLE")
    time.sleep(max(0.0, fetched + 1.5 - time.time()))   # the tag is stale

    # the fetcher's word: every endpoint failed, the record is served
    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, small.manifest)
    assert r.header("Warning") == WARNING, r
    r = m.head(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, small.manifest, head=True)
    assert r.header("Warning") == WARNING, r
    s = scrape(m)
    assert value(s, "ocimirror_stale_served_total", source="fetcher") == 2
    assert value(s, "ocimirror_stale_served_total", source="cache") == 0
    assert value(s, "ocimirror_fetcher_stale_served_total",
                 registry=reg) == 2
    assert value(s, "ocimirror_fetcher_up") == 1
    # the first GET, then the GET and the HEAD the fetcher answered stale
    assert requests_of(s, "manifest", "miss") == 3

    # no fetcher: nginx serves the stale record itself, and /metrics
    # still answers with its own counters; what nginx answers without
    # asking the fetcher (the stale record, a 503) is no miss
    assert m.stop_fetcher() == 0
    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, small.manifest)
    assert r.header("Warning") == WARNING, r
    assert_json_error(m.get("/v2/team/app/manifests/v2",
                            {"Accept": ACCEPT_ALL}), 503, "UNAVAILABLE")
    assert_json_error(m.get("/v2/team/app/blobs/sha256:" + "0" * 64), 503,
                      "UNAVAILABLE")

    s = scrape(m)
    assert value(s, "ocimirror_fetcher_up") == 0
    assert value(s, "ocimirror_stale_served_total", source="cache") == 1
    assert value(s, "ocimirror_stale_served_total", source="fetcher") == 2
    assert requests_of(s, "manifest", "miss") == 3
    assert requests_of(s, "manifest", "hit") == 0
    assert requests_of(s, "blob", "miss") == 0
    assert not any(name.startswith("ocimirror_fetcher_")
                   and name != "ocimirror_fetcher_up" for name, _ in s), s
    r = m.head("/metrics")
    assert r.status == 200 and r.body == b"", r

    # and the fetcher's counters are back with a new fetcher
    m.start_fetcher()
    m.wait_ready()
    s = scrape(m)
    assert value(s, "ocimirror_fetcher_up") == 1
    assert value(s, "ocimirror_fetcher_stale_served_total",
                 registry=reg) == 0


def assert_store_error(r):
    """nginx's "cannot read the store" (assert_json_error takes no 500)."""
    assert r.status == 500, r
    assert r.error_code() == "UNKNOWN", r
    assert r.json()["errors"][0]["message"] == "cannot read the store", r


def test_metrics_unreadable_manifest_is_no_hit(mirror_factory,
                                               fake_upstream):
    """A directory where a stored manifest should be: nginx answers 500
    "cannot read the store", by digest, by a fresh tag and by a stale one
    with the fetcher down, and counts none of them as served."""
    reg = fake_upstream.hostport
    m = mirror_factory(reg, [fake_registry_entry(fake_upstream,
                                                 tag_ttl=1)])
    digest = "sha256:" + sha256_hex(b"metrics-unreadable")
    os.makedirs(m.blob_path(digest))
    record = os.path.join(m.store, "tags", reg, "team/app", "@v1")
    os.makedirs(os.path.dirname(record))

    def write_record(fetched_at):
        with open(record, "w") as f:
            f.write("%s 100 application/vnd.oci.image.manifest.v1+json "
                    "%d\n" % (digest, fetched_at))

    def error_answers(code, n):
        def logged():
            s = scrape(m)
            if value(s, "ocimirror_responses_total", code=code) >= n:
                return s
        return wait_for(logged, 5, what="%d %s answers counted" % (n, code))

    r = m.get("/v2/team/app/manifests/" + digest, {"Accept": ACCEPT_ALL})
    assert_store_error(r)
    write_record(time.time())
    r = m.get("/v2/team/app/manifests/v1", {"Accept": ACCEPT_ALL})
    assert_store_error(r)

    s = error_answers("5xx", 2)
    assert value(s, "ocimirror_responses_total", code="5xx") == 2
    assert requests_of(s, "manifest", "hit") == 0
    assert requests_of(s, "manifest", "miss") == 0

    # the same record, too old, with the fetcher down: nginx's own stale
    # serve fails the same way
    assert m.stop_fetcher() == 0
    write_record(time.time() - 30)
    r = m.get("/v2/team/app/manifests/v1", {"Accept": ACCEPT_ALL})
    assert_store_error(r)

    s = error_answers("5xx", 3)
    assert value(s, "ocimirror_responses_total", code="5xx") == 3
    assert value(s, "ocimirror_stale_served_total", source="cache") == 0
    assert requests_of(s, "manifest", "hit") == 0
    assert requests_of(s, "manifest", "miss") == 0
