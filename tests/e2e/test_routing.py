"""Which registry a request goes to: the default registry, a leading
path part naming a configured registry, containerd's ?ns=, docker.io's
library/ prefix; anything else is refused (no open proxy)."""

import os

import pytest

from harness import (ACCEPT_ALL, assert_blob, assert_json_error,
                     assert_manifest, upstream_registry)

ALIAS = "mirror.test"


@pytest.fixture
def routed(mirror_factory, upstream, fake_upstream, catalog):
    """Default: the upstream.  Also: the upstream as "mirror.test" and as
    "docker.io" (with library/), and the fake as "fake.test"."""
    fake_upstream.add_image("team/app", "v1", catalog["multi"])
    return mirror_factory(upstream.hostport, [
        upstream_registry(upstream),
        {"name": ALIAS, "endpoints": [upstream.url]},
        {"name": "docker.io", "endpoints": [upstream.url],
         "library_prefix": True},
        {"name": "fake.test", "endpoints": [fake_upstream.url]},
    ])


def _tag_record(m, registry, name, tag):
    return os.path.join(m.store, "tags", registry, name, "@" + tag)


def test_default_registry(routed, upstream, catalog):
    small = catalog["small"]
    assert_manifest(routed.get("/v2/e2e/small/manifests/v1",
                               {"Accept": ACCEPT_ALL}), small.manifest)
    assert os.path.exists(_tag_record(routed, upstream.hostport,
                                      "e2e/small", "v1"))


@pytest.mark.parametrize("prefix", ["alias", "hostport"])
def test_registry_prefix_in_path(routed, upstream, catalog, prefix):
    name = ALIAS if prefix == "alias" else upstream.hostport
    small = catalog["small"]
    base = "/v2/%s/e2e/small" % name
    assert_manifest(routed.get(base + "/manifests/v1",
                               {"Accept": ACCEPT_ALL}), small.manifest)
    for b in small.layer_blobs():
        assert_blob(routed.get(base + "/blobs/" + b.digest), b)
    assert os.path.exists(_tag_record(routed, name, "e2e/small", "v1"))


def test_ns_query(routed, upstream, catalog):
    small = catalog["small"]
    mark = upstream.access.mark()
    assert_manifest(routed.get("/v2/e2e/small/manifests/v1?ns=" + ALIAS,
                               {"Accept": ACCEPT_ALL}), small.manifest)
    b = small.layers[0].blob
    assert_blob(routed.get("/v2/e2e/small/blobs/%s?ns=%s" % (b.digest,
                                                              ALIAS)), b)
    assert os.path.exists(_tag_record(routed, ALIAS, "e2e/small", "v1"))
    # the upstream saw the repository without any registry part
    assert upstream.access.count(None, r"^/v2/e2e/small/manifests/v1$",
                                 mark) >= 1


def test_prefix_reaches_its_own_upstream(routed, upstream, fake_upstream,
                                         catalog):
    multi = catalog["multi"]
    mark = upstream.access.mark()
    assert_manifest(routed.get("/v2/fake.test/team/app/manifests/v1",
                               {"Accept": ACCEPT_ALL}), multi.manifest)
    b = multi.layers[0].blob
    assert_blob(routed.get("/v2/team/app/blobs/%s?ns=fake.test" % b.digest),
                b)
    assert fake_upstream.count(None, r"^/v2/team/app/manifests/v1$") >= 1
    assert fake_upstream.count("GET", r"^/v2/team/app/blobs/" + b.digest) \
        == 1
    upstream.access.settle()
    assert upstream.access.count(None, r"/team/app/", mark) == 0


@pytest.mark.parametrize("how", ["ns", "prefix"])
def test_docker_io_library_prefix(routed, upstream, catalog, how):
    small = catalog["small"]
    mark = upstream.access.mark()
    path = ("/v2/xyz/manifests/v1?ns=docker.io" if how == "ns"
            else "/v2/docker.io/xyz/manifests/v1")
    assert_manifest(routed.get(path, {"Accept": ACCEPT_ALL}), small.manifest)
    assert upstream.access.count(None, r"^/v2/library/xyz/manifests/v1$",
                                 mark) >= 1
    assert os.path.exists(_tag_record(routed, "docker.io", "library/xyz",
                                      "v1"))


def test_docker_io_as_default_registry(mirror_factory, upstream, catalog):
    """Docker's registry-mirrors: /v2/xyz/... is docker.io's library/xyz."""
    m = mirror_factory("docker.io", [
        {"name": "docker.io", "endpoints": [upstream.url],
         "library_prefix": True}])
    small = catalog["small"]
    assert_manifest(m.get("/v2/xyz/manifests/v1", {"Accept": ACCEPT_ALL}),
                    small.manifest)
    assert_manifest(m.get("/v2/library/xyz/manifests/v1",
                          {"Accept": ACCEPT_ALL}), small.manifest)
    b = small.layers[0].blob
    assert_blob(m.get("/v2/xyz/blobs/" + b.digest), b)
    # two-part names are left alone
    assert_manifest(m.get("/v2/e2e/small/manifests/v1",
                          {"Accept": ACCEPT_ALL}), small.manifest)


@pytest.mark.parametrize("path", [
    "/v2/e2e/small/manifests/v1?ns=unknown.example",
    "/v2/e2e/small/manifests/v1?ns=docker.io.evil",
    "/v2/ghcr.io/org/app/manifests/v1",
    "/v2/localhost:5000/org/app/manifests/v1",
    "/v2/registry.example.com/app/blobs/sha256:" + "a" * 64,
])
def test_unknown_registry_is_denied(routed, upstream, fake_upstream, path):
    mark = upstream.access.mark()
    r = routed.get(path, {"Accept": ACCEPT_ALL})
    assert_json_error(r, 403, "DENIED")
    upstream.access.settle(quiet=0.2)
    assert upstream.access.entries(mark) == []
    assert fake_upstream.requests == []


@pytest.mark.parametrize("ns", ["UPPER.example", "a/b", "..",
                                "x" * 300])
def test_invalid_ns_is_refused(routed, upstream, ns):
    mark = upstream.access.mark()
    r = routed.get("/v2/e2e/small/manifests/v1?ns=" + ns,
                   {"Accept": ACCEPT_ALL})
    assert_json_error(r, 403, "DENIED")
    upstream.access.settle(quiet=0.2)
    assert upstream.access.entries(mark) == []


def test_empty_ns_is_no_ns(routed, upstream, fake_upstream, catalog):
    """`?ns=` with no value names no registry, so the request routes as
    one without it: nginx's own $arg_ns is "" for both, containerd never
    sends an empty ns (it names the host of the image it pulls), and a
    refusal would fail a pull that the path alone routes well.  It opens
    nothing: a path naming an unknown registry is refused as ever."""
    small, multi = catalog["small"], catalog["multi"]
    mark = upstream.access.mark()
    # the default registry
    assert_manifest(routed.get("/v2/e2e/small/manifests/v1?ns=",
                               {"Accept": ACCEPT_ALL}), small.manifest)
    assert os.path.exists(_tag_record(routed, upstream.hostport,
                                      "e2e/small", "v1"))
    assert upstream.access.count(None, r"^/v2/e2e/small/manifests/v1$",
                                 mark) >= 1
    # a registry named by the path
    assert_manifest(routed.get("/v2/fake.test/team/app/manifests/v1?ns=",
                               {"Accept": ACCEPT_ALL}), multi.manifest)
    assert os.path.exists(_tag_record(routed, "fake.test", "team/app",
                                      "v1"))
    # docker.io's library/ prefix, as without ns
    assert_manifest(routed.get("/v2/docker.io/xyz/manifests/v1?ns=",
                               {"Accept": ACCEPT_ALL}), small.manifest)
    assert os.path.exists(_tag_record(routed, "docker.io", "library/xyz",
                                      "v1"))
    # an unknown registry in the path is still refused
    before = len(fake_upstream.requests)
    mark = upstream.access.mark()
    assert_json_error(routed.get("/v2/ghcr.io/org/app/manifests/v1?ns=",
                                 {"Accept": ACCEPT_ALL}), 403, "DENIED")
    upstream.access.settle(quiet=0.2)
    assert upstream.access.entries(mark) == []
    assert len(fake_upstream.requests) == before
