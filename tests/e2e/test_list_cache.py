"""Stored lists parsed once: a tag list of 50,000 tags paged by the mirror
(n, last, Link) comes out whole and in order, page after page, from one
upstream fetch and one parse (the list cache's hits count every page
after the first); a stored list changed behind the fetcher's back (a new
file, as a restart or an operator leaves) is read again, not served from
memory; a removed one is fetched again; referrers are kept parsed too."""

import json
import os
import re
import time

from harness import fake_registry_entry, wait_for

TAGS = 50000
PAGE = 1000


def metrics(m):
    r = m.get("/metrics")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, v = line.rpartition(" ")
            out[name] = float(v)
    return out


def lists(m):
    got = metrics(m)
    return {k: got["ocimirror_fetcher_list_cache_" + k]
            for k in ("hits_total", "misses_total", "invalidations_total",
                      "evictions_total", "entries", "bytes")}


def taglist_file(m, registry, name):
    return os.path.join(m.store, "taglists", registry, name, "@list")


def walk(m, first):
    """Follow the Link headers from first: the pages, in order."""
    pages, path = [], first
    for _ in range(TAGS // PAGE + 5):
        r = m.get(path)
        assert r.status == 200, r
        pages.append(r.json()["tags"])
        link = r.header("Link")
        if link is None:
            return pages
        assert link.startswith("<") and link.endswith('>; rel="next"'), r
        path = link[1:-len('>; rel="next"')]
    raise AssertionError("more pages than tags")


def test_large_tag_list_paged_from_memory(mirror_factory, fake_upstream,
                                          catalog):
    names = ["t%06d" % i for i in range(TAGS)]
    fake_upstream.add_image("team/big", "v1", catalog["small"])
    digest = fake_upstream.tags["team/big"]["v1"]
    fake_upstream.tags["team/big"] = {t: digest for t in names}
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, tags_ttl=300)])
    want = sorted(names)

    pages = walk(m, "/v2/team/big/tags/list?n=%d" % PAGE)
    assert len(pages) == TAGS // PAGE
    assert all(len(p) == PAGE for p in pages)
    assert [t for p in pages for t in p] == want
    assert fake_upstream.count("GET", r"/tags/list") == 1

    # the fetch kept its parse: every later page was a hit, none read
    # the file
    got = lists(m)
    assert got["hits_total"] == TAGS // PAGE - 1, got
    assert got["misses_total"] == 0, got
    assert got["entries"] == 1 and got["bytes"] > 0, got

    # last= anywhere: a tag of the list, one between two, before all,
    # after all
    r = m.get("/v2/team/big/tags/list?n=3&last=t012345")
    assert r.json()["tags"] == ["t012346", "t012347", "t012348"], r
    assert r.header("Link") == \
        '</v2/team/big/tags/list?n=3&last=t012348>; rel="next"', r
    r = m.get("/v2/team/big/tags/list?n=2&last=t012345x")
    assert r.json()["tags"] == ["t012346", "t012347"], r
    r = m.get("/v2/team/big/tags/list?n=2&last=a")
    assert r.json()["tags"] == ["t000000", "t000001"], r
    r = m.get("/v2/team/big/tags/list?last=t049998")
    assert r.json()["tags"] == ["t049999"], r
    assert r.header("Link") is None, r
    r = m.get("/v2/team/big/tags/list?last=u")
    assert r.json()["tags"] == [], r
    r = m.get("/v2/team/big/tags/list")
    assert r.json()["tags"] == want, r
    assert fake_upstream.count("GET", r"/tags/list") == 1
    assert lists(m)["hits_total"] == TAGS // PAGE - 1 + 6

    # a new file under the name (another inode), as a fetcher before a
    # restart or an operator leaves it: read again, not the old parse
    path = taglist_file(m, fake_upstream.hostport, "team/big")
    tmp = path + ".new"
    with open(tmp, "w") as f:
        json.dump({"name": "team/big", "tags": ["a1", "a2", "a3"]}, f)
    os.rename(tmp, path)
    r = m.get("/v2/team/big/tags/list?n=2")
    assert r.json()["tags"] == ["a1", "a2"], r
    got = lists(m)
    assert got["misses_total"] == 1 and got["invalidations_total"] == 1, got
    r = m.get("/v2/team/big/tags/list?last=a2")
    assert r.json()["tags"] == ["a3"], r
    assert lists(m)["misses_total"] == 1

    # a list not in order is not ours: refused, fetched again
    with open(tmp, "w") as f:
        json.dump({"name": "team/big", "tags": ["b", "a"]}, f)
    os.rename(tmp, path)
    r = m.get("/v2/team/big/tags/list?n=2")
    assert r.json()["tags"] == want[:2], r
    assert fake_upstream.count("GET", r"/tags/list") == 2

    # removed: fetched again, and kept parsed again
    os.unlink(path)
    r = m.get("/v2/team/big/tags/list?n=1&last=t049998")
    assert r.json()["tags"] == ["t049999"], r
    assert fake_upstream.count("GET", r"/tags/list") == 3
    r = m.get("/v2/team/big/tags/list?n=1")
    assert r.json()["tags"] == ["t000000"], r
    assert fake_upstream.count("GET", r"/tags/list") == 3


def test_referrers_kept_parsed(mirror_factory, fake_upstream, catalog):
    fake_upstream.add_image("team/app", "v1", catalog["small"])
    subject = catalog["small"].manifest.digest
    for i in range(20):
        fake_upstream.add_referrer("team/app", subject,
                                   "application/vnd.example.%d" % (i % 2),
                                   annotations={"n": str(i)})
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream,
                                            referrers_ttl=300)])
    path = "/v2/team/app/referrers/" + subject

    r = m.get(path)
    assert r.status == 200 and len(r.json()["manifests"]) == 20, r
    r = m.get(path + "?artifactType=application/vnd.example.1")
    assert r.status == 200 and len(r.json()["manifests"]) == 10, r
    r = m.get(path)
    assert len(r.json()["manifests"]) == 20, r
    assert fake_upstream.count("GET", re.escape("/referrers/")) == 1
    got = lists(m)
    assert got["hits_total"] == 2 and got["misses_total"] == 0, got

    # older than referrers_ttl: fetched again (the age is the file's)
    stored = os.path.join(m.store, "referrers", fake_upstream.hostport,
                          "team/app", "@" + subject.split(":", 1)[1])
    t = time.time() - 301
    os.utime(stored, (t, t))
    r = m.get(path)
    assert len(r.json()["manifests"]) == 20, r
    wait_for(lambda: fake_upstream.count("GET", re.escape("/referrers/"))
             == 2, 10, what="the referrers fetched again")
