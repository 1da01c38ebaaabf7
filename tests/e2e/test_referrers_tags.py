"""Referrers (distribution spec v1.1) and cached tag lists: forwarded and
kept for referrers_ttl / tags_ttl, the artifactType filter, an empty
index rather than a 404, the referrers tag schema for registries without
the API (the fake with its API switched off, and docker-registry 2.8),
and tags/list paged by the mirror with n, last and Link."""

import json
import os
import threading
import time
import urllib.parse

import images
from harness import (ACCEPT_ALL, assert_json_error, fake_registry_entry,
                     request, store_tmp_files, upstream_registry, wait_for)

INDEX_TYPE = images.MT_OCI_INDEX
SBOM = "application/vnd.example.sbom.v1+json"
SIG = "application/vnd.example.signature.v1"
API_VERSION = "registry/2.0"


def _subject(fake, catalog, repo="team/app"):
    """The small image as repo:v1; returns its manifest digest."""
    fake.add_image(repo, "v1", catalog["small"])
    return catalog["small"].manifest.digest


def _referrers(m, path, artifact_type=None, raw_query=None):
    if raw_query is not None:
        path += "?" + raw_query
    elif artifact_type is not None:
        path += "?artifactType=" + urllib.parse.quote(artifact_type, safe="")
    r = m.get(path)
    assert r.status == 200, r
    assert r.header("Content-Type") == INDEX_TYPE, r
    assert r.header("Docker-Distribution-API-Version") == API_VERSION, r
    body = r.json()
    assert body["schemaVersion"] == 2, r
    assert body["mediaType"] == INDEX_TYPE, r
    return r, body["manifests"]


def _digests(manifests):
    return sorted(d["digest"] for d in manifests)


def _age(path, seconds):
    """Make a file the mirror keeps seconds old (its mtime is its age)."""
    assert os.path.exists(path), path
    t = time.time() - seconds
    os.utime(path, (t, t))


def _no_temp_files(m):
    """The worker unlinks an answer's file just after sending it."""
    wait_for(lambda: store_tmp_files(m) == [], 10,
             what="no temp file in %s/tmp" % m.store)


def _referrers_file(m, registry, name, digest):
    return os.path.join(m.store, "referrers", registry, name,
                        "@" + digest.split(":", 1)[1])


def _taglist_file(m, registry, name):
    return os.path.join(m.store, "taglists", registry, name, "@list")


# --- referrers -------------------------------------------------------------

def test_referrers_forwarded_and_cached(mirror_factory, fake_upstream,
                                        catalog):
    subject = _subject(fake_upstream, catalog)
    sbom = fake_upstream.add_referrer("team/app", subject, SBOM,
                                      annotations={"k": "v"})
    sig = fake_upstream.add_referrer("team/app", subject, SIG)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, referrers_ttl=30)])
    path = "/v2/team/app/referrers/" + subject
    upstream_path = r"^/v2/team/app/referrers/"

    r, manifests = _referrers(m, path)
    assert r.header("OCI-Filters-Applied") is None, r
    assert _digests(manifests) == sorted([sbom["digest"], sig["digest"]])
    by_digest = {d["digest"]: d for d in manifests}
    assert by_digest[sbom["digest"]] == sbom
    assert by_digest[sig["digest"]] == sig
    assert fake_upstream.count("GET", upstream_path) == 1
    # the whole list, never a filter, is asked upstream
    assert fake_upstream.count("GET", r"artifactType") == 0

    # within referrers_ttl: from the store, the filter applied there
    _, again = _referrers(m, path)
    assert again == manifests
    r, filtered = _referrers(m, path, SBOM)
    assert r.header("OCI-Filters-Applied") == "artifactType", r
    assert filtered == [sbom]
    assert fake_upstream.count("GET", upstream_path) == 1

    # a new referrer shows once the TTL has run out
    late = fake_upstream.add_referrer("team/app", subject, SBOM)
    _age(_referrers_file(m, fake_upstream.hostport, "team/app", subject),
         31)
    r, filtered = _referrers(m, path, SBOM)
    assert _digests(filtered) == sorted([sbom["digest"], late["digest"]])
    assert fake_upstream.count("GET", upstream_path) == 2
    _no_temp_files(m)


def test_referrers_artifact_type_filter(mirror_factory, fake_upstream,
                                        catalog):
    subject = _subject(fake_upstream, catalog)
    sbom = fake_upstream.add_referrer("team/app", subject, SBOM)
    sig = fake_upstream.add_referrer("team/app", subject, SIG)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    path = "/v2/team/app/referrers/" + subject

    # percent-encoded as Go clients send it, or raw
    r, got = _referrers(m, path, SIG)
    assert r.header("OCI-Filters-Applied") == "artifactType", r
    assert got == [sig]
    r, got = _referrers(m, path, raw_query="artifactType=" + SBOM)
    assert r.header("OCI-Filters-Applied") == "artifactType", r
    assert got == [sbom]

    # a type nothing has: an empty index, still filtered
    r, got = _referrers(m, path, "application/vnd.nothing")
    assert r.header("OCI-Filters-Applied") == "artifactType", r
    assert got == []

    # an empty argument is no filter
    r, got = _referrers(m, path, raw_query="artifactType=")
    assert r.header("OCI-Filters-Applied") is None, r
    assert len(got) == 2

    # not a media type
    assert_json_error(m.get(path + "?artifactType=no%20type"), 400)


def test_referrers_pages_merged(mirror_factory, fake_upstream, catalog):
    subject = _subject(fake_upstream, catalog)
    want = sorted(fake_upstream.add_referrer("team/app", subject,
                                             SIG if i % 2 else SBOM,
                                             annotations={"i": str(i)})
                  ["digest"] for i in range(5))
    assert len(set(want)) == 5
    fake_upstream.referrers_page_size = 2
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])

    _, got = _referrers(m, "/v2/team/app/referrers/" + subject)
    assert _digests(got) == want
    assert fake_upstream.count("GET", r"^/v2/team/app/referrers/") == 3


def test_referrers_empty_is_an_empty_index(mirror_factory, fake_upstream,
                                           catalog):
    subject = _subject(fake_upstream, catalog)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])

    _, got = _referrers(m, "/v2/team/app/referrers/" + subject)
    assert got == []
    # a digest nothing is known about, in a repository nobody knows
    _, got = _referrers(m, "/v2/no/such/referrers/sha256:" + "e" * 64)
    assert got == []


def test_referrers_bad_requests(mirror_factory, fake_upstream):
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    for ref in ("latest", "sha256:abc", "sha256:" + "A" * 64,
                "sha512:" + "a" * 128):
        assert_json_error(m.get("/v2/team/app/referrers/" + ref), 400,
                          "DIGEST_INVALID")
    r = m.head("/v2/team/app/referrers/latest")
    assert r.status == 400, r
    for method in ("PUT", "DELETE", "POST"):
        assert_json_error(m.request(method, "/v2/team/app/referrers/sha256:"
                                    + "a" * 64, body=b"{}"), 405,
                          "UNSUPPORTED")
    assert fake_upstream.count(None, r"/referrers/") == 0


def test_referrers_tag_schema_without_the_api(mirror_factory, fake_upstream,
                                              catalog):
    subject = _subject(fake_upstream, catalog)
    sbom = fake_upstream.add_referrer("team/app", subject, SBOM)
    sig = fake_upstream.add_referrer("team/app", subject, SIG)
    fake_upstream.add_referrers_tag("team/app", subject, [sbom, sig])
    fake_upstream.referrers_api = False
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    path = "/v2/team/app/referrers/" + subject
    tag_path = "^/v2/team/app/manifests/sha256-" + subject.split(":")[1]

    _, got = _referrers(m, path)
    assert got == [sbom, sig]
    assert fake_upstream.count("GET", r"^/v2/team/app/referrers/") == 1
    assert fake_upstream.count("GET", tag_path) == 1
    tag_request = [h for meth, p, h in fake_upstream.requests
                   if meth == "GET" and p.startswith(tag_path[1:])][0]
    assert tag_request.get("Accept") == INDEX_TYPE

    r, got = _referrers(m, path, SIG)
    assert r.header("OCI-Filters-Applied") == "artifactType", r
    assert got == [sig]
    # answered from the store
    assert fake_upstream.count("GET", tag_path) == 1

    # no tag for another subject: an empty index, not a 404
    other = "sha256:" + "0" * 64
    _, got = _referrers(m, "/v2/team/app/referrers/" + other)
    assert got == []


def test_referrers_routed_by_ns(mirror_factory, fake_upstream, upstream,
                                catalog):
    subject = _subject(fake_upstream, catalog)
    sig = fake_upstream.add_referrer("team/app", subject, SIG)
    m = mirror_factory(upstream.hostport,
                       [upstream_registry(upstream),
                        fake_registry_entry(fake_upstream,
                                            name="fake.test")])

    # containerd names the registry in ?ns=, with artifactType beside it
    r, got = _referrers(m, "/v2/team/app/referrers/%s" % subject,
                        raw_query="ns=fake.test&artifactType="
                        + urllib.parse.quote(SIG, safe=""))
    assert r.header("OCI-Filters-Applied") == "artifactType", r
    assert got == [sig]
    # or a path prefix
    _, got = _referrers(m, "/v2/fake.test/team/app/referrers/" + subject)
    assert got == [sig]
    assert os.path.exists(_referrers_file(m, "fake.test", "team/app",
                                          subject))
    # not configured: refused
    assert_json_error(m.get("/v2/team/app/referrers/%s?ns=other.test"
                            % subject), 403, "DENIED")


def test_referrers_from_docker_registry(mirror, upstream, catalog):
    """docker-registry 2.8 has no referrers API: the tag schema."""
    small = catalog["small"]
    subject = "sha256:" + "5" * 64
    referrer = {"mediaType": small.manifest.media_type,
                "digest": small.manifest.digest,
                "size": small.manifest.size,
                "artifactType": SBOM}
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX_TYPE,
                        "manifests": [referrer]}).encode()
    put = request(upstream.hostport, "PUT",
                  "/v2/e2e/small/manifests/sha256-" + "5" * 64,
                  {"Content-Type": INDEX_TYPE}, index)
    assert put.status == 201, put
    mark = upstream.access.mark()

    _, got = _referrers(mirror, "/v2/e2e/small/referrers/" + subject)
    assert got == [referrer]
    _, got = _referrers(mirror, "/v2/e2e/small/referrers/" + subject, SIG)
    assert got == []
    # no index for the image itself: an empty one
    _, got = _referrers(mirror, "/v2/e2e/small/referrers/"
                        + small.manifest.digest)
    assert got == []
    # the real registry said 404 to the API, then answered the tags
    assert upstream.access.count("GET", r"/referrers/", mark, 404) == 2
    assert upstream.access.count("GET", r"/manifests/sha256-", mark) == 2
    # a pull through the mirror still works beside it
    r = mirror.get("/v2/e2e/small/manifests/v1", {"Accept": ACCEPT_ALL})
    assert r.status == 200, r


def test_referrers_stale_when_upstream_down(mirror_factory, fake_upstream,
                                            catalog):
    subject = _subject(fake_upstream, catalog)
    sig = fake_upstream.add_referrer("team/app", subject, SIG)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, referrers_ttl=5)])
    path = "/v2/team/app/referrers/" + subject

    _, got = _referrers(m, path)
    assert got == [sig]
    _age(_referrers_file(m, fake_upstream.hostport, "team/app", subject), 60)
    fake_upstream.fail[r"/referrers/"] = (503, "UNAVAILABLE")

    _, got = _referrers(m, path, SIG)
    assert got == [sig]
    assert fake_upstream.count("GET", r"/referrers/") == 2


def _store_files(m, top):
    """Every file under <store>/<top>."""
    found = []
    for d, _, files in os.walk(os.path.join(m.store, top)):
        found += [os.path.join(d, f) for f in files]
    return found


def _concurrently(n, fn):
    """fn(i) for i in range(n) in n threads started together; the
    results in order."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        results[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i, r in enumerate(results):
        assert r is not None, "request %d got nothing" % i
    return results


def test_referrers_none_is_not_stored(mirror_factory, fake_upstream,
                                      catalog):
    """Any digest can be asked for: "no referrers" costs no file, and is
    remembered in memory for negative_ttl (one upstream request per
    digest)."""
    subject = _subject(fake_upstream, catalog)
    sig = fake_upstream.add_referrer("team/app", subject, SIG)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, referrers_ttl=60,
                                            negative_ttl=60)])
    digests = ["sha256:%064x" % (0xfeed0000 + i) for i in range(20)]

    for _ in range(2):
        for d in digests:
            _, got = _referrers(m, "/v2/team/app/referrers/" + d)
            assert got == []
    assert fake_upstream.count("GET", r"^/v2/team/app/referrers/") == 20
    assert _store_files(m, "referrers") == []

    # a digest with referrers is kept, as before
    _, got = _referrers(m, "/v2/team/app/referrers/" + subject)
    assert got == [sig]
    assert _store_files(m, "referrers") == [
        _referrers_file(m, fake_upstream.hostport, "team/app", subject)]
    _no_temp_files(m)


def test_referrers_concurrent_requests_one_fetch(mirror_factory,
                                                 fake_upstream, catalog):
    subject = _subject(fake_upstream, catalog)
    sbom = fake_upstream.add_referrer("team/app", subject, SBOM)
    sig = fake_upstream.add_referrer("team/app", subject, SIG)
    fake_upstream.delay[r"/referrers/"] = 1.5
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    path = "/v2/team/app/referrers/" + subject
    filters = [SBOM, SIG, None] * 2

    def get(i):
        if filters[i] is None:
            return m.get(path, timeout=30)
        return m.get(path + "?artifactType="
                     + urllib.parse.quote(filters[i], safe=""), timeout=30)

    for i, r in enumerate(_concurrently(len(filters), get)):
        assert r.status == 200, (i, r)
        want = {SBOM: [sbom], SIG: [sig]}.get(filters[i], None)
        got = r.json()["manifests"]
        if want is None:
            assert _digests(got) == sorted([sbom["digest"], sig["digest"]])
        else:
            assert got == want, (i, r)
    assert fake_upstream.count("GET", r"^/v2/team/app/referrers/") == 1
    _no_temp_files(m)


# --- tag lists -------------------------------------------------------------

TAGS = ["b2", "a1", "c3", "a10", "B0", "v1.0", "v1.1", "_x"]


def _tagged(fake, catalog):
    for t in TAGS:
        fake.add_image("team/app", t, catalog["small"])


def test_tags_list_cached_for_tags_ttl(mirror_factory, fake_upstream,
                                       catalog):
    _tagged(fake_upstream, catalog)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, tags_ttl=30)])

    r = m.get("/v2/team/app/tags/list")
    assert r.status == 200, r
    assert r.header("Content-Type").split(";")[0] == "application/json"
    assert r.json() == {"name": "team/app", "tags": sorted(TAGS)}
    assert r.header("Link") is None, r
    assert fake_upstream.count("GET", r"/tags/list") == 1

    fake_upstream.add_image("team/app", "zz", catalog["small"])
    r = m.get("/v2/team/app/tags/list")
    assert r.json()["tags"] == sorted(TAGS), r
    assert fake_upstream.count("GET", r"/tags/list") == 1

    _age(_taglist_file(m, fake_upstream.hostport, "team/app"), 31)
    r = m.get("/v2/team/app/tags/list")
    assert r.json()["tags"] == sorted(TAGS + ["zz"]), r
    assert fake_upstream.count("GET", r"/tags/list") == 2
    _no_temp_files(m)


def _walk(m, first):
    """Follow Link headers from first; every page and the tags in order."""
    pages, tags, path = [], [], first
    for _ in range(50):
        r = m.get(path)
        assert r.status == 200, r
        pages.append(r.json()["tags"])
        tags += r.json()["tags"]
        link = r.header("Link")
        if link is None:
            return pages, tags
        assert link.startswith("<") and link.endswith('>; rel="next"'), r
        path = link[1:-len('>; rel="next"')]
    raise AssertionError("more than 50 pages")


def test_tags_pages_with_n_last_and_link(mirror_factory, fake_upstream,
                                         catalog):
    _tagged(fake_upstream, catalog)
    # the upstream pages its own answers too: the mirror follows them
    fake_upstream.tags_page_size = 3
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    want = sorted(TAGS)

    pages, tags = _walk(m, "/v2/team/app/tags/list?n=3")
    assert tags == want
    assert pages == [want[0:3], want[3:6], want[6:8]]
    # three upstream pages for the whole list, once
    assert fake_upstream.count("GET", r"/tags/list") == 3

    r = m.get("/v2/team/app/tags/list?n=3")
    assert r.header("Link") == \
        '</v2/team/app/tags/list?n=3&last=%s>; rel="next"' % want[2], r

    # last alone, n = 0, n past the end
    r = m.get("/v2/team/app/tags/list?last=b2")
    assert r.json()["tags"] == [t for t in want if t > "b2"], r
    assert r.header("Link") is None, r
    r = m.get("/v2/team/app/tags/list?n=0")
    assert r.json() == {"name": "team/app", "tags": []}, r
    assert r.header("Link") is None, r
    r = m.get("/v2/team/app/tags/list?n=100")
    assert r.json()["tags"] == want, r
    assert r.header("Link") is None, r
    r = m.get("/v2/team/app/tags/list?n=8")
    assert r.header("Link") is None, r
    assert fake_upstream.count("GET", r"/tags/list") == 3


def test_tags_pages_through_ns(mirror_factory, fake_upstream, upstream,
                               catalog):
    _tagged(fake_upstream, catalog)
    m = mirror_factory(upstream.hostport,
                       [upstream_registry(upstream),
                        fake_registry_entry(fake_upstream,
                                            name="fake.test")])

    pages, tags = _walk(m, "/v2/team/app/tags/list?n=5&ns=fake.test")
    assert tags == sorted(TAGS)
    assert len(pages) == 2
    r = m.get("/v2/team/app/tags/list?n=5&ns=fake.test")
    assert r.header("Link") == \
        '</v2/team/app/tags/list?n=5&last=%s&ns=fake.test>; rel="next"' \
        % sorted(TAGS)[4], r


def test_tags_concurrent_cold_requests_one_fetch(mirror_factory,
                                                 fake_upstream, catalog):
    """Ten clients ask for a list nobody has fetched yet: one upstream
    request, and each client its own page."""
    _tagged(fake_upstream, catalog)
    fake_upstream.delay[r"/tags/list$"] = 1.5
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, tags_ttl=30)])
    want = sorted(TAGS)

    results = _concurrently(10, lambda i: m.get(
        "/v2/team/app/tags/list?n=%d" % (i + 1), timeout=30))

    for i, r in enumerate(results):
        assert r.status == 200, (i, r)
        assert r.json() == {"name": "team/app", "tags": want[:i + 1]}, r
        if i + 1 < len(want):
            assert r.header("Link") == \
                '</v2/team/app/tags/list?n=%d&last=%s>; rel="next"' \
                % (i + 1, want[i]), r
        else:
            assert r.header("Link") is None, r
    assert fake_upstream.count("GET", r"/tags/list") == 1
    _no_temp_files(m)


def test_tags_stale_when_upstream_down(mirror_factory, fake_upstream,
                                       catalog):
    _tagged(fake_upstream, catalog)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, tags_ttl=5)])

    assert m.get("/v2/team/app/tags/list").status == 200
    _age(_taglist_file(m, fake_upstream.hostport, "team/app"), 60)
    fake_upstream.fail[r"/tags/list"] = (503, "UNAVAILABLE")

    r = m.get("/v2/team/app/tags/list?n=2")
    assert r.status == 200, r
    assert r.json()["tags"] == sorted(TAGS)[:2], r
    assert fake_upstream.count("GET", r"/tags/list") == 2


def test_tags_ttl_zero_forwards(mirror_factory, fake_upstream, catalog):
    _tagged(fake_upstream, catalog)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, tags_ttl=0)])

    for _ in range(2):
        r = m.get("/v2/team/app/tags/list?n=2&last=a1")
        assert r.json()["tags"] == ["a10", "b2"], r
    assert fake_upstream.count("GET", r"^/v2/team/app/tags/list\?n=2&last=a1"
                               ) == 2
    assert not os.path.exists(_taglist_file(m, fake_upstream.hostport,
                                            "team/app"))


def test_tags_list_from_docker_registry(mirror, upstream):
    mark = upstream.access.mark()
    want = ["t01", "t02", "t03", "t04", "t05", "v1"]
    pages, tags = _walk(mirror, "/v2/e2e/tagged/tags/list?n=4")
    assert tags == want
    assert pages == [want[:4], want[4:]]
    assert upstream.access.count("GET", r"/tags/list", mark) == 1
    assert_json_error(mirror.get("/v2/e2e/nosuchrepo/tags/list"), 404,
                      "NAME_UNKNOWN")
