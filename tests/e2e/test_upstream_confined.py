"""Redirects and token realms are confined: the registry's endpoint is
registry.test (a `resolve` entry for 127.0.0.1), and a blob redirect, a
manifest-by-tag redirect or a Bearer realm that leads to another host name
at a loopback address (secret.test on 127.0.0.3, auth.test on 127.0.0.4)
(or written as an address) is refused once connected, before a byte of
the request goes out, at every hop: the client gets 503 UNAVAILABLE (502
for a realm), nothing of the target's body, the target sees no request,
the refusal is logged and counted in
ocimirror_fetcher_redirects_refused_total; another endpoint is tried
if there is one, and a stored tag is served stale.  The same hosts
listed in redirect_hosts are followed, and so is the endpoint's own host
on another port.  Through a proxy, a host written as an address is still
judged.  A manifest by tag that a redirect target
sends is stored only if it parses as the type it claims and matches the
Docker-Content-Digest of the registry's redirect: otherwise 502 "manifest
from a redirect target does not verify", and nothing is stored.  A
redirect from https down to http is refused whatever the host."""

import json
import time

import pytest

from fakeproxy import FakeProxy
from fakeregistry import FakeRegistry
from harness import (ACCEPT_ALL, assert_blob, assert_json_error,
                     assert_manifest, assert_store_consistent,
                     fake_registry_entry, named_url, random_bytes, read_text)
from images import MT_OCI_MANIFEST
from test_metrics import scrape, value
from tlsutil import make_pki, server_context

NAME = "confined.test"
WARNING = '110 - "Response is Stale"'
NO_PREFETCH = {"enabled": False}
SECRET = b"TOP-SECRET-METADATA-" + random_bytes("confined-secret", 2000)


def resolve(fake, host):
    return "%s:%d:%s" % (host, fake.port, fake.host)


def _mirror(mirror_factory, hosts, **settings):
    reg, secret, auth = hosts
    entry = {"name": NAME,
             "endpoints": [named_url(reg, "registry.test")],
             "resolve": [resolve(reg, "registry.test"),
                         resolve(secret, "secret.test"),
                         resolve(auth, "auth.test")]}
    entry.update(settings)
    return mirror_factory(NAME, [entry], prefetch=NO_PREFETCH)


def _message(r):
    return r.json()["errors"][0]["message"]


def _refused(m):
    return value(scrape(m), "ocimirror_fetcher_redirects_refused_total",
                 registry=NAME)


def _untouched(fake):
    with fake._lock:
        assert fake.requests == [], fake.requests


def _no_secret(*responses):
    for r in responses:
        assert SECRET[:20] not in r.body, r


def _secret_manifest(secret, repo="team/app", tag="v1"):
    """An OCI image manifest whose annotation is the secret, as
    secret.test would serve it; (digest, bytes)."""
    layer = secret.add_blob(SECRET)
    manifest = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                           "digest": secret.add_blob(b"{}"), "size": 2},
                "layers": [{"mediaType": "application/octet-stream",
                            "digest": layer, "size": len(SECRET)}],
                "annotations": {"secret": SECRET[:40].decode("latin-1")}}
    data = json.dumps(manifest, sort_keys=True).encode()
    digest = secret.add_manifest(repo, MT_OCI_MANIFEST, data, tag)
    return digest, data


@pytest.mark.parametrize("target", ["secret.test", "127.0.0.3"])
def test_blob_redirect_to_loopback_host_refused(mirror_factory, hosts,
                                                catalog, target):
    reg, secret, auth = hosts
    small = catalog["small"]
    reg.add_image("team/app", "v1", small)
    digest = secret.add_blob(SECRET)
    reg.blobs[digest] = b"the registry never serves it itself"
    reg.blob_redirect = named_url(secret, target)
    reg.redirect_digests = {digest}
    m = _mirror(mirror_factory, hosts)
    assert _refused(m) == 0

    # the endpoint's own host is fine: the manifest and a blob come
    assert_manifest(m.get("/v2/team/app/manifests/v1",
                          {"Accept": ACCEPT_ALL}), small.manifest)
    layer = small.layer_blobs()[0]
    assert_blob(m.get("/v2/team/app/blobs/" + layer.digest), layer)

    r = m.get("/v2/team/app/blobs/" + digest)
    assert_json_error(r, 503, "UNAVAILABLE")
    assert _message(r) == ("upstream registry unavailable: redirect to "
                           "%s (a loopback address) refused" % target), r
    h = m.head("/v2/team/app/blobs/" + digest)
    assert h.status == 503, h
    _no_secret(r, h)
    assert not m.has_blob(digest)
    # asked at the registry (which redirected), never at the target
    assert reg.count("GET", "/blobs/" + digest) >= 1
    _untouched(secret)
    assert "redirect to %s (a loopback address) refused" % target in \
        read_text(m.fetcher_log)
    assert "s3cr3t" not in read_text(m.fetcher_log)
    assert _refused(m) >= 1


def test_blob_redirect_allowed_by_redirect_hosts(mirror_factory, hosts):
    reg, secret, auth = hosts
    digest = secret.add_blob(SECRET)
    reg.blob_redirect = named_url(secret, "secret.test")
    m = _mirror(mirror_factory, hosts, redirect_hosts=["secret.test"])
    r = m.get("/v2/team/app/blobs/" + digest)
    assert r.status == 200 and r.error is None, r
    assert r.body == SECRET
    assert r.header("Docker-Content-Digest") == digest, r
    assert m.has_blob(digest)
    assert secret.count("GET", "^/cdn/" + digest) == 1
    assert _refused(m) == 0
    assert_store_consistent(m)


def test_manifest_redirect_to_loopback_host_refused(mirror_factory, hosts):
    reg, secret, auth = hosts
    digest, data = _secret_manifest(secret)
    reg.add_manifest("team/app", MT_OCI_MANIFEST, data, "v1")
    reg.manifest_redirect = named_url(secret, "secret.test")
    m = _mirror(mirror_factory, hosts)
    path = "/v2/team/app/manifests/v1"

    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_json_error(r, 503, "UNAVAILABLE")
    assert _message(r) == ("upstream registry unavailable: redirect to "
                           "secret.test (a loopback address) refused"), r
    r2 = m.get("/v2/team/app/manifests/" + digest, {"Accept": ACCEPT_ALL})
    assert_json_error(r2, 503, "UNAVAILABLE")
    _no_secret(r, r2)
    assert reg.count("GET", r"/manifests/v1$") >= 1
    _untouched(secret)
    assert m.stored_digests() == set()
    assert "redirect to secret.test (a loopback address) refused" in \
        read_text(m.fetcher_log)
    assert _refused(m) >= 2


@pytest.mark.parametrize("cdn_type", [None, "application/octet-stream"])
def test_manifest_redirect_allowed_by_redirect_hosts(mirror_factory, hosts,
                                                     catalog, cdn_type):
    """cdn_type: the Content-Type the target answers with (None: the
    manifest's own; a storage bucket's generic one: the type is the
    body's)."""
    reg, secret, auth = hosts
    small = catalog["small"]
    for f in (reg, secret):
        f.add_image("team/app", "v1", small)
    secret.cdn_manifest_type = cdn_type
    reg.manifest_redirect = named_url(secret, "secret.test")
    m = _mirror(mirror_factory, hosts, redirect_hosts=["secret.test"])
    r = m.get("/v2/team/app/manifests/v1", {"Accept": ACCEPT_ALL})
    assert_manifest(r, small.manifest)
    assert secret.count("GET", "^/cdnm/team/app/" + small.manifest.digest) \
        == 1
    assert m.has_blob(small.manifest.digest)
    # stored: by digest from the store, no upstream request
    n = reg.count(None, "")
    assert_manifest(m.get("/v2/team/app/manifests/" + small.manifest.digest,
                          {"Accept": ACCEPT_ALL}), small.manifest)
    assert reg.count(None, "") == n
    assert _refused(m) == 0


def test_bearer_realm_on_loopback_host_refused(mirror_factory, hosts,
                                               catalog):
    reg, secret, auth = hosts
    small = catalog["small"]
    reg.add_image("team/app", "v1", small)
    reg.require_token("realm-token")
    reg.realm = named_url(auth, "auth.test")
    auth.require_token("realm-token")
    m = _mirror(mirror_factory, hosts)

    r = m.get("/v2/team/app/manifests/v1", {"Accept": ACCEPT_ALL})
    assert_json_error(r, 502, "UNKNOWN")
    assert _message(r) == ("token realm refused: a local or private "
                           "address"), r
    _untouched(auth)
    assert auth.token_calls == 0
    assert ("token request for %s failed: redirect to auth.test (a "
            "loopback address) refused" % NAME) in read_text(m.fetcher_log)
    assert _refused(m) >= 1
    assert m.stored_digests() == set()


def test_bearer_realm_allowed_by_redirect_hosts(mirror_factory, hosts,
                                                catalog):
    reg, secret, auth = hosts
    small = catalog["small"]
    reg.add_image("team/app", "v1", small)
    reg.require_token("realm-token")
    reg.realm = named_url(auth, "auth.test")
    auth.require_token("realm-token")
    m = _mirror(mirror_factory, hosts, redirect_hosts=["auth.test"])
    assert_manifest(m.get("/v2/team/app/manifests/v1",
                          {"Accept": ACCEPT_ALL}), small.manifest)
    assert auth.token_calls == 1
    assert reg.token_calls == 0
    assert _refused(m) == 0


@pytest.mark.parametrize("case", ["other-bytes", "not-a-manifest",
                                  "other-type"])
def test_manifest_redirect_that_does_not_verify(mirror_factory, hosts,
                                                catalog, case):
    """other-bytes: the target sends another (valid) manifest than the
    digest the registry's 307 named; not-a-manifest: the 307 names no
    digest and the target sends bytes that are no manifest; other-type:
    the 307 names no digest and the target sends an image index as the
    image manifest type it claims."""
    reg, secret, auth = hosts
    small, multi = catalog["small"], catalog["multi"]
    for f in (reg, secret):
        f.add_image("team/app", "v1", small)
    want = small.manifest.digest
    if case == "other-bytes":
        bad = multi.manifest.data
    elif case == "not-a-manifest":
        reg.manifest_redirect_digest = False
        bad = b'{"schemaVersion": 2, "hello": "' + SECRET[:20] + b'"}'
    else:
        reg.manifest_redirect_digest = False
        bad = catalog["plat"].index.data
    secret.corrupt[want] = bad
    reg.manifest_redirect = named_url(secret, "secret.test")
    m = _mirror(mirror_factory, hosts, redirect_hosts=["secret.test"])
    path = "/v2/team/app/manifests/v1"

    s0 = value(scrape(m), "ocimirror_fetcher_digest_mismatches_total",
               registry=NAME)
    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_json_error(r, 502, "UNKNOWN")
    assert _message(r) == "manifest from a redirect target does not " \
                          "verify", r
    assert bad not in r.body
    assert secret.count("GET", "^/cdnm/") == 1
    assert m.stored_digests() == set()

    # nothing remembered: the next request asks again and fails again
    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_json_error(r, 502, "UNKNOWN")
    assert secret.count("GET", "^/cdnm/") == 2
    assert m.stored_digests() == set()
    assert value(scrape(m), "ocimirror_fetcher_digest_mismatches_total",
                 registry=NAME) == s0 + 2

    # the target mended: the same request verifies and is stored
    del secret.corrupt[want]
    assert_manifest(m.get(path, {"Accept": ACCEPT_ALL}), small.manifest)
    assert m.stored_digests() == {want}


def test_redirect_from_https_down_to_http_refused(mirror_factory, catalog,
                                                  tmp_path):
    """An https endpoint redirecting a blob to http on its own host (so
    no address rule applies, and listing it in redirect_hosts changes
    nothing): refused, the http server sees no request."""
    pki = make_pki(str(tmp_path / "pki"))
    reg = FakeRegistry(ssl_context=server_context(pki)).start()
    plain = FakeRegistry().start()
    try:
        digest = plain.add_blob(SECRET)
        reg.blobs[digest] = SECRET
        reg.blob_redirect = plain.url
        entry = fake_registry_entry(reg, name=NAME, ca_file=pki.ca,
                                    redirect_hosts=["127.0.0.1"])
        m = mirror_factory(NAME, [entry], prefetch=NO_PREFETCH)
        r = m.get("/v2/team/app/blobs/" + digest)
        assert_json_error(r, 503, "UNAVAILABLE")
        assert _message(r) == ("upstream registry unavailable: redirect "
                               "from https down to http refused"), r
        _no_secret(r)
        assert reg.count("GET", "/blobs/" + digest) >= 1
        _untouched(plain)
        assert not m.has_blob(digest)
        assert "redirect from https down to http refused" in \
            read_text(m.fetcher_log)
        assert _refused(m) >= 1
    finally:
        plain.stop()
        reg.stop()


def test_refused_hop_fails_over_to_next_endpoint(mirror_factory, hosts):
    reg, secret, auth = hosts
    other = FakeRegistry().start()
    try:
        data = random_bytes("confined-failover", 5000)
        digest = reg.add_blob(data)
        other.add_blob(data)
        secret.blobs[digest] = SECRET
        reg.blob_redirect = named_url(secret, "secret.test")
        m = _mirror(mirror_factory, hosts,
                    endpoints=[named_url(reg, "registry.test"), other.url])
        r = m.get("/v2/team/app/blobs/" + digest)
        assert r.status == 200 and r.error is None, r
        assert r.body == data
        assert reg.count("GET", "/blobs/" + digest) == 1
        assert other.served_bytes(digest) == [(0, len(data))]
        _untouched(secret)
        assert _refused(m) == 1
    finally:
        other.stop()


def test_stored_tag_served_stale_when_redirect_refused(mirror_factory,
                                                       hosts, catalog):
    reg, secret, auth = hosts
    small, multi = catalog["small"], catalog["multi"]
    reg.add_image("team/app", "v1", small)
    m = _mirror(mirror_factory, hosts, tag_ttl=1)
    path = "/v2/team/app/manifests/v1"
    assert_manifest(m.get(path, {"Accept": ACCEPT_ALL}), small.manifest)

    # the tag moved, and its GET is redirected where it may not go
    time.sleep(1.5)
    reg.add_image("team/app", "v1", multi)
    secret.add_image("team/app", "v1", multi)
    reg.manifest_redirect = named_url(secret, "secret.test")
    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, small.manifest)
    assert r.header("Warning") == WARNING, r
    _untouched(secret)
    assert not m.has_blob(multi.manifest.digest)
    assert _refused(m) >= 1


def test_endpoints_own_host_other_port_allowed(mirror_factory, hosts):
    """Ports do not matter: registry.test on another port (another
    server) is the endpoint's own host, no redirect_hosts needed."""
    reg, secret, auth = hosts
    cdn = FakeRegistry().start()
    try:
        data = random_bytes("confined-own-host", 5000)
        digest = cdn.add_blob(data)
        reg.blob_redirect = named_url(cdn, "registry.test")
        m = _mirror(mirror_factory, hosts,
                    resolve=[resolve(reg, "registry.test"),
                             resolve(cdn, "registry.test")])
        r = m.get("/v2/team/app/blobs/" + digest)
        assert r.status == 200 and r.body == data, r
        assert cdn.count("GET", "^/cdn/" + digest) == 1
        assert _refused(m) == 0
    finally:
        cdn.stop()


def test_every_hop_is_checked(mirror_factory, hosts):
    """registry.test -> auth.test (listed in redirect_hosts, here a CDN)
    -> secret.test (not listed): the second hop is refused."""
    reg, secret, cdn = hosts
    digest = secret.add_blob(SECRET)
    cdn.cdn_redirect = named_url(secret, "secret.test")
    reg.blob_redirect = named_url(cdn, "auth.test")
    m = _mirror(mirror_factory, hosts, redirect_hosts=["auth.test"])
    r = m.get("/v2/team/app/blobs/" + digest)
    assert_json_error(r, 503, "UNAVAILABLE")
    assert _message(r) == ("upstream registry unavailable: redirect to "
                           "secret.test (a loopback address) refused"), r
    _no_secret(r)
    assert cdn.count("GET", "^/cdn/" + digest) == 1
    _untouched(secret)
    assert not m.has_blob(digest)
    assert _refused(m) == 1


def test_through_a_proxy_an_address_is_still_judged(mirror_factory, hosts):
    """Through the registry's proxy the connected address is the
    proxy's: a hop to a host written as a loopback address is refused
    all the same, and the proxy is not asked for it."""
    reg, secret, auth = hosts
    proxy = FakeProxy().start()
    try:
        digest = secret.add_blob(SECRET)
        reg.blob_redirect = secret.url              # http://127.0.0.3:port
        m = mirror_factory(NAME, [fake_registry_entry(reg, name=NAME,
                                                      proxy=proxy.url)],
                           prefetch=NO_PREFETCH)
        r = m.get("/v2/team/app/blobs/" + digest)
        assert_json_error(r, 503, "UNAVAILABLE")
        assert _message(r) == ("upstream registry unavailable: redirect to "
                               "127.0.0.3 (a loopback address) refused"), r
        _no_secret(r)
        assert proxy.count("GET", "/blobs/" + digest) >= 1
        assert proxy.count(None, "127.0.0.3") == 0, proxy.requests
        _untouched(secret)
        assert _refused(m) >= 1
    finally:
        proxy.stop()
