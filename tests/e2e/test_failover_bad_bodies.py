"""An endpoint that answers 200 with a manifest that does not verify (its
digest, or its Docker-Content-Digest, names other bytes) is as useless
as one that answers 503: the request goes to the next endpoint, and the
client gets the right manifest from there (found by the soak: such a
client error was avoidable).  With no other endpoint, it is 502."""

import pytest

from fakeregistry import FakeRegistry
from harness import ACCEPT_ALL, assert_json_error, assert_manifest

NAME = "multi.test"


@pytest.fixture
def fakes():
    a, b = FakeRegistry().start(), FakeRegistry().start()
    yield a, b
    a.stop()
    b.stop()


def _corrupt_manifest(fake, repo, digest):
    mt, body = fake.manifests[(repo, digest)]
    fake.manifests[(repo, digest)] = (
        mt, body.replace(b'"schemaVersion":2', b'"schemaVersion": 2'))


@pytest.mark.parametrize("ref", ["digest", "tag"])
def test_manifest_that_does_not_verify_fails_over(mirror_factory, fakes,
                                                  catalog, ref):
    a, b = fakes
    small = catalog["small"]
    for f in (a, b):
        f.add_image("team/app", "v1", small)
    _corrupt_manifest(a, "team/app", small.manifest.digest)
    m = mirror_factory(NAME, [{"name": NAME,
                               "endpoints": [a.url, b.url]}])
    path = "/v2/team/app/manifests/" + (small.manifest.digest
                                        if ref == "digest" else "v1")
    assert_manifest(m.get(path, {"Accept": ACCEPT_ALL}), small.manifest)
    assert a.count("GET", r"^/v2/team/app/manifests/") == 1
    assert b.count("GET", r"^/v2/team/app/manifests/") == 1
    assert m.has_blob(small.manifest.digest)
    # stored: asked again, it is a hit
    assert_manifest(m.get("/v2/team/app/manifests/"
                          + small.manifest.digest, {"Accept": ACCEPT_ALL}),
                    small.manifest)
    assert b.count("GET", r"^/v2/team/app/manifests/") == 1


def test_manifest_that_does_not_verify_anywhere(mirror_factory, fakes,
                                                catalog):
    a, b = fakes
    small = catalog["small"]
    for f in (a, b):
        f.add_image("team/app", "v1", small)
        _corrupt_manifest(f, "team/app", small.manifest.digest)
    m = mirror_factory(NAME, [{"name": NAME,
                               "endpoints": [a.url, b.url]}])
    r = m.get("/v2/team/app/manifests/" + small.manifest.digest,
              {"Accept": ACCEPT_ALL})
    assert_json_error(r, 502, "UNKNOWN")
    assert a.count("GET", r"^/v2/team/app/manifests/") == 1
    assert b.count("GET", r"^/v2/team/app/manifests/") == 1
    assert not m.has_blob(small.manifest.digest)
