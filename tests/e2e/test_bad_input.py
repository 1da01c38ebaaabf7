"""Hostile and malformed requests: each gets a 4xx with the spec's JSON
error, never a 500, never a crash, never a file outside the store, and
nothing reaches the upstream."""

import json
import os

import pytest

from harness import (ACCEPT_ALL, SPEC_CODES, assert_blob,
                     assert_json_error, assert_manifest, parse_raw_response,
                     raw_request, tree_snapshot)

GOOD_HEX = "a" * 64
LONG_NAME = "/".join(["abcdefghij"] * 24)            # 263 bytes, valid parts

# (path, expected status(es), expected code(s)); None = any 4xx / spec code
CASES = [
    # names
    ("/v2/e2e/../e2e/small/manifests/v1", 400, "NAME_INVALID"),
    ("/v2/../../../etc/passwd/manifests/v1", (400, 404), None),
    # nginx decodes and merges this one out of /v2/: its own 404
    ("/v2/e2e/..%2F..%2Fetc/manifests/v1", (400, 404), None),
    ("/v2/e2e//small/manifests/v1", 400, "NAME_INVALID"),
    ("/v2/E2E/Small/manifests/v1", 400, "NAME_INVALID"),
    ("/v2/e2e/small./manifests/v1", 400, "NAME_INVALID"),
    ("/v2/-e2e/small/manifests/v1", 400, "NAME_INVALID"),
    ("/v2/" + "a" * 256 + "/manifests/v1", 400, "NAME_INVALID"),
    ("/v2/" + LONG_NAME + "/manifests/v1", 400, "NAME_INVALID"),
    ("/v2/a%2Fb/manifests/v1", 400, "NAME_INVALID"),
    ("/v2/e2e%2Fsmall/blobs/sha256:" + GOOD_HEX, 400, "NAME_INVALID"),
    ("/v2/e2e/sm%61ll/manifests/v1", 400, "NAME_INVALID"),
    # tags
    ("/v2/e2e/small/manifests/-v1", 400, "MANIFEST_INVALID"),
    ("/v2/e2e/small/manifests/" + "t" * 129, 400, "MANIFEST_INVALID"),
    ("/v2/e2e/small/manifests/v1%00", 400, None),
    ("/v2/e2e/small/manifests/.v1", 400, "MANIFEST_INVALID"),
    # digests
    ("/v2/e2e/small/blobs/sha512:" + "a" * 128, (400, 404),
     ("DIGEST_INVALID", "UNSUPPORTED")),
    ("/v2/e2e/small/manifests/sha512:" + "a" * 128, (400, 404),
     ("DIGEST_INVALID", "MANIFEST_INVALID", "UNSUPPORTED")),
    ("/v2/e2e/small/blobs/sha256:" + "a" * 63, 400, "DIGEST_INVALID"),
    ("/v2/e2e/small/blobs/sha256:" + "a" * 65, 400, "DIGEST_INVALID"),
    ("/v2/e2e/small/blobs/sha256:" + "A" * 64, 400, "DIGEST_INVALID"),
    ("/v2/e2e/small/blobs/sha256:" + "g" * 64, 400, "DIGEST_INVALID"),
    ("/v2/e2e/small/blobs/sha256:", 400, "DIGEST_INVALID"),
    ("/v2/e2e/small/blobs/v1", 400, "DIGEST_INVALID"),
    ("/v2/e2e/small/blobs/sha256:../../" + "a" * 58, (400, 404), None),
    ("/v2/e2e/small/manifests/sha256:" + "a" * 63,
     400, ("DIGEST_INVALID", "MANIFEST_INVALID")),
    # registries
    ("/v2/e2e/small/manifests/v1?ns=nowhere.example", 403, "DENIED"),
    ("/v2/nowhere.example/e2e/small/manifests/v1", 403, "DENIED"),
    ("/v2/e2e/small/manifests/v1?ns=..%2F..", (400, 403),
     ("DENIED", "NAME_INVALID")),
    # endpoints the mirror does not have
    ("/v2/_catalog", 404, "UNSUPPORTED"),
    ("/v2/e2e/small/foo", 404, "UNSUPPORTED"),
    ("/v2/e2e/small/blobs/uploads/", (404, 405), "UNSUPPORTED"),
    ("/v2/e2e/small/manifests/", (400, 404), None),
    ("/v2/e2e/small/tags/list/extra", (400, 404), None),
    ("/v2/e2e/small/manifests/v1/extra", (400, 404), None),
    # referrers: only by a valid digest, filtered by a media type
    ("/v2/e2e/small/referrers/v1", 400, "DIGEST_INVALID"),
    ("/v2/e2e/small/referrers/sha256:" + "a" * 63, 400, "DIGEST_INVALID"),
    ("/v2/e2e/small/referrers/sha512:" + "a" * 128, 400, "DIGEST_INVALID"),
    ("/v2/e2e/small/referrers/sha256:" + GOOD_HEX + "?artifactType=a%20b",
     400, "UNSUPPORTED"),
    ("/v2/e2e/small/referrers/", (400, 404), None),
]


@pytest.fixture
def snapshot(mirror):
    """Every path under the test's temp dir (the mirror's work dir, store
    included) and the socket dir, before; check() compares after.
    check(store=False) ignores the store: for requests that are odd but
    valid, and may fill it."""
    roots = [os.path.dirname(mirror.workdir),
             os.path.dirname(mirror.socket_path)]
    before = [tree_snapshot(r) for r in roots]

    def check(store=True):
        exclude = () if store else (mirror.store,)
        for root, b in zip(roots, before):
            a = tree_snapshot(root, exclude)
            if not store:
                b = tree_snapshot_filter(b, root, mirror.store)
            assert a == b, "files appeared under %s: %s; vanished: %s" % (
                root, sorted(a - b), sorted(b - a))
    return check


def tree_snapshot_filter(paths, root, excluded):
    rel = os.path.relpath(excluded, root)
    return {p for p in paths if p != rel and not p.startswith(rel + "/")}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_malformed_requests(mirror, upstream, snapshot, method):
    mark = upstream.access.mark()
    failures = []
    for path, status, code in CASES:
        r = mirror.request(method, path)
        try:
            if method == "HEAD":
                assert r.body == b""
                assert r.status != 500 and 400 <= r.status < 500, r
                if isinstance(status, int):
                    assert r.status == status, r
                elif status is not None:
                    assert r.status in status, r
            else:
                assert 400 <= r.status < 500, r
                assert_json_error(r, status, code)
                assert r.body, r
        except AssertionError as e:
            failures.append("%s %s: %s" % (method, path[:120], e))
    assert mirror.alive(), mirror.diagnostics()
    assert failures == [], "\n".join(failures)
    snapshot()
    upstream.access.settle(quiet=0.2)
    assert upstream.access.entries(mark) == []


def _raw_get(mirror, extra_headers=b"", path=b"/v2/"):
    return raw_request(mirror.hostport,
                       b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n"
                       + extra_headers + b"Connection: close\r\n\r\n")


def test_oversized_header(mirror, snapshot):
    raw = _raw_get(mirror, b"X-Big: " + b"a" * 65536 + b"\r\n",
                   b"/v2/e2e/small/manifests/v1")
    status, headers, body = parse_raw_response(raw)
    assert status in (400, 431, 494), raw[:400]
    assert headers.get("content-type", "").startswith("application/json"), \
        raw[:400]
    assert json.loads(body)["errors"][0]["code"] in SPEC_CODES, body
    assert mirror.alive()
    snapshot()


def test_oversized_request_line(mirror, snapshot):
    raw = _raw_get(mirror, path=b"/v2/" + b"a" * 40000 + b"/manifests/v1")
    status, headers, body = parse_raw_response(raw)
    assert status in (400, 414), raw[:400]
    assert headers.get("content-type", "").startswith("application/json"), \
        raw[:400]
    assert mirror.alive()
    snapshot()


CLOSE = b"Connection: close\r\n\r\n"


@pytest.mark.parametrize("garbage", [
    b"GET /v2/\x00 HTTP/1.1\r\nHost: x\r\n" + CLOSE,
    b"GET /v2/e2e/small/manifests/v1 HTTP/1.1\r\nHost: x\r\n"
    b"Accept: " + b"application/json, " * 2000 + b"\r\n" + CLOSE,
    b"GET /v2/e2e/small/manifests/v1 HTTP/1.1\r\nHost: x\r\n"
    b"Accept: \x01\x02;;;,,,*/*;q=abc\r\n" + CLOSE,
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
], ids=["nul", "huge-accept", "odd-accept", "tls-hello"])
def test_garbage_never_crashes(mirror, snapshot, garbage):
    raw = raw_request(mirror.hostport, garbage, timeout=5)
    if raw:
        status, headers, body = parse_raw_response(raw)
        assert status != 500 and status < 600, raw[:400]
        if status >= 400:
            assert headers.get("content-type", "").startswith(
                "application/json"), raw[:400]
            assert json.loads(body)["errors"][0]["code"] in SPEC_CODES
    assert mirror.alive()
    assert mirror.get("/v2/").status == 200
    snapshot(store=False)


# what a stored blob answers each Range: nginx's own rules (its range
# filter, and the module's copy of its parser for the 416 it must send
# before the file is opened for the body)
UNSATISFIABLE = ["bytes=oops", "bytes=%(size)d-", "bytes=%(size)d-%(end)d",
                 "bytes=-0", "bytes=10-5", "bytes=0-1,oops",
                 "bytes=%(size)d-,%(end)d-"]
IGNORED = ["items=0-1", "bytes", "bytes=0-%(big)d,1-2"]


def _multipart(r):
    """[(Content-Range, bytes)] of a multipart/byteranges body."""
    ctype = r.header("Content-Type")
    prefix = "multipart/byteranges; boundary="
    assert ctype.startswith(prefix), r
    boundary = ctype[len(prefix):].encode()
    parts = r.body.split(b"\r\n--" + boundary)
    assert parts[0] == b"", r
    assert parts[-1] == b"--\r\n", r
    out = []
    for part in parts[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0] == "", part[:200]
        hdrs = dict(ln.split(": ", 1) for ln in lines[1:])
        assert hdrs["Content-Type"] == "application/octet-stream", hdrs
        out.append((hdrs["Content-Range"], data))
    return out


def test_ranges_have_exact_answers(mirror, upstream, catalog):
    """Of a stored blob: an unsatisfiable or malformed range is 416
    SIZE_INVALID with Content-Range bytes */<size> (RFC 7233 4.4); a
    range of another unit, or ranges adding up to more than the blob, are
    ignored (200, the whole blob); several ranges are one 206
    multipart/byteranges answer, each part with its Content-Range.  A
    manifest is never served in ranges: 200, the whole of it."""
    small = catalog["small"]
    blob = max(small.layer_blobs(), key=lambda b: b.size)
    size = blob.size
    path = "/v2/e2e/small/blobs/" + blob.digest
    assert_blob(mirror.get(path), blob)
    subst = {"size": size, "end": size + 10, "big": size}

    for rng in UNSATISFIABLE:
        r = mirror.get(path, {"Range": rng % subst})
        assert_json_error(r, 416, "SIZE_INVALID")
        assert r.header("Content-Range") == "bytes */%d" % size, (rng, r)
        r = mirror.head(path, {"Range": rng % subst})
        assert r.status == 416 and r.body == b"", (rng, r)
        assert r.header("Content-Range") == "bytes */%d" % size, (rng, r)

    for rng in IGNORED:
        r = mirror.get(path, {"Range": rng % subst})
        assert_blob(r, blob)
        assert r.header("Content-Range") is None, (rng, r)
        assert r.header("Accept-Ranges") == "bytes", (rng, r)

    r = mirror.get(path, {"Range": "bytes=0-9,100-199,-5"})
    assert r.status == 206, r
    assert r.error is None, r
    assert r.header("Content-Range") is None, r
    assert int(r.header("Content-Length")) == len(r.body), r
    assert r.header("Docker-Content-Digest") == blob.digest, r
    assert _multipart(r) == [
        ("bytes 0-9/%d" % size, blob.data[0:10]),
        ("bytes 100-199/%d" % size, blob.data[100:200]),
        ("bytes %d-%d/%d" % (size - 5, size - 1, size), blob.data[-5:])]

    # a manifest: no ranges, whatever is asked
    path = "/v2/e2e/small/manifests/v1"
    for rng in ("bytes=0-1,2-3,4-5", "bytes=0-9", "bytes=oops",
                "bytes=%d-" % (small.manifest.size + 1)):
        r = mirror.get(path, {"Accept": ACCEPT_ALL, "Range": rng})
        assert_manifest(r, small.manifest)
        assert r.header("Content-Range") is None, (rng, r)
        assert r.header("Accept-Ranges") is None, (rng, r)
    assert mirror.alive()
