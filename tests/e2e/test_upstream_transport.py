"""Upstream transport: a forward proxy used when (and only when) the
config names one, never from the environment; TLS upstreams with the
registry's own CA, a refused CA, and client certificates (mTLS)."""

import pytest

from fakeproxy import FakeProxy
from fakeregistry import FakeRegistry
from harness import (ACCEPT_ALL, assert_blob, assert_json_error,
                     assert_manifest, fake_registry_entry, store_tmp_files)
from tlsutil import make_ca, make_pki, server_context

NO_PREFETCH = {"enabled": False}
PROXY_ENV = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
             "all_proxy", "ALL_PROXY")


@pytest.fixture
def proxy():
    p = FakeProxy().start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


def _pull(m, image, repo="team/app"):
    assert_manifest(m.get("/v2/%s/manifests/v1" % repo,
                          {"Accept": ACCEPT_ALL}), image.manifest)
    for b in image.layer_blobs():
        assert_blob(m.get("/v2/%s/blobs/%s" % (repo, b.digest)), b)


def test_registry_proxy_carries_everything(mirror_factory, fake_upstream,
                                           catalog, proxy):
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    # the token realm is reached through the proxy too
    fake_upstream.require_scoped_tokens()
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, proxy=proxy.url)],
                       prefetch=NO_PREFETCH)
    _pull(m, small)
    host = fake_upstream.hostport
    assert proxy.count("GET", "^http://%s/v2/team/app/manifests/v1$"
                       % host) >= 1
    assert proxy.count("GET", "^http://%s/token\\?" % host) == 1
    for b in small.layer_blobs():
        assert proxy.count("GET", "/blobs/" + b.digest) >= 1
    # everything upstream saw came through the proxy
    assert proxy.count() >= len(fake_upstream.requests) > 0


def test_environment_proxy_ignored(mirror_factory, fake_upstream, catalog,
                                   proxy, monkeypatch):
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    for var in PROXY_ENV:
        monkeypatch.setenv(var, proxy.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       prefetch=NO_PREFETCH)
    _pull(m, small)
    assert proxy.requests == []
    assert len(fake_upstream.requests) > 0


def test_no_proxy_and_registry_override(mirror_factory, catalog, proxy):
    small = catalog["small"]
    direct, viaproxy, own = (FakeRegistry().start() for _ in range(3))
    try:
        for reg in (direct, viaproxy, own):
            reg.add_image("team/app", "v1", small)
        # the global proxy, bypassed for "localhost" by no_proxy
        direct_entry = fake_registry_entry(direct, name=direct.hostport)
        direct_entry["endpoints"] = ["http://localhost:%d" % direct.port]
        # a registry with proxy = "": no proxy for it
        own_entry = fake_registry_entry(own, proxy="")
        m = mirror_factory(viaproxy.hostport,
                           [direct_entry,
                            fake_registry_entry(viaproxy),
                            own_entry],
                           fetcher={"proxy": proxy.url,
                                    "no_proxy": "localhost"},
                           prefetch=NO_PREFETCH)
        _pull(m, small, "%s/team/app" % direct.hostport)
        assert proxy.requests == []
        _pull(m, small, "%s/team/app" % own.hostport)
        assert proxy.requests == []
        _pull(m, small, "%s/team/app" % viaproxy.hostport)
        assert proxy.count("GET", viaproxy.hostport) >= 1
        assert proxy.count(None, str(direct.port)) == 0
        assert proxy.count(None, str(own.port)) == 0
        assert direct.requests and own.requests
    finally:
        for reg in (direct, viaproxy, own):
            reg.stop()


def test_tls_with_registry_ca(mirror_factory, catalog, pki, proxy):
    small = catalog["small"]
    reg = FakeRegistry(ssl_context=server_context(pki)).start()
    try:
        reg.add_image("team/app", "v1", small)
        # the token realm is https too: the same CA, the same proxy
        reg.require_scoped_tokens()
        assert reg.url.startswith("https://")
        m = mirror_factory(reg.hostport,
                           [fake_registry_entry(reg, ca_file=pki.ca)],
                           prefetch=NO_PREFETCH)
        _pull(m, small)
        assert reg.count("GET", "/blobs/") >= 1

        # through a proxy: a CONNECT tunnel, the same CA
        m2 = mirror_factory(reg.hostport,
                            [fake_registry_entry(reg, ca_file=pki.ca,
                                                 proxy=proxy.url)],
                            prefetch=NO_PREFETCH)
        _pull(m2, small)
        assert proxy.count("CONNECT", "^%s$" % reg.hostport) >= 1
        assert proxy.count("GET") == 0
        assert reg.token_calls == 2 and reg.auth_refused == 0
    finally:
        reg.stop()


def test_tls_wrong_ca_refused(mirror_factory, catalog, pki, tmp_path):
    small = catalog["small"]
    other_ca, _ = make_ca(str(tmp_path / "other"), "other")
    reg = FakeRegistry(ssl_context=server_context(pki)).start()
    try:
        reg.add_image("team/app", "v1", small)
        m = mirror_factory(reg.hostport,
                           [fake_registry_entry(reg, ca_file=other_ca)],
                           prefetch=NO_PREFETCH)
        blob = small.layers[0].blob
        for path in ("/v2/team/app/manifests/v1",
                     "/v2/team/app/blobs/" + blob.digest):
            r = m.get(path, {"Accept": ACCEPT_ALL})
            assert_json_error(r, 503, "UNAVAILABLE")
            # the client is told why, not only that it failed
            message = r.json()["errors"][0]["message"]
            assert "TLS certificate refused" in message, r
        # no request got through the handshake; nothing stored
        assert reg.requests == []
        assert m.stored_digests() == set()
        assert store_tmp_files(m) == []
        with open(m.fetcher_log) as f:
            assert "certificate" in f.read().lower()
    finally:
        reg.stop()


def test_tls_verify_false_warns(mirror_factory, catalog, pki):
    small = catalog["small"]
    reg = FakeRegistry(ssl_context=server_context(pki)).start()
    try:
        reg.add_image("team/app", "v1", small)
        m = mirror_factory(reg.hostport,
                           [fake_registry_entry(reg, tls_verify=False)],
                           prefetch=NO_PREFETCH)
        _pull(m, small)
        with open(m.fetcher_log) as f:
            warned = [ln for ln in f if "tls_verify = false" in ln]
        assert len(warned) == 1 and " warn" in warned[0], warned
    finally:
        reg.stop()


def test_mtls(mirror_factory, catalog, pki):
    small = catalog["small"]
    reg = FakeRegistry(ssl_context=server_context(
        pki, require_client_cert=True)).start()
    try:
        reg.add_image("team/app", "v1", small)
        with_cert = mirror_factory(
            reg.hostport,
            [fake_registry_entry(reg, ca_file=pki.ca,
                                 client_cert=pki.client_cert,
                                 client_key=pki.client_key)],
            prefetch=NO_PREFETCH)
        _pull(with_cert, small)

        seen = len(reg.requests)
        without = mirror_factory(reg.hostport,
                                 [fake_registry_entry(reg, ca_file=pki.ca)],
                                 prefetch=NO_PREFETCH)
        blob = small.layers[0].blob
        r = without.get("/v2/team/app/blobs/" + blob.digest)
        assert_json_error(r, (502, 503))
        assert len(reg.requests) == seen
        assert without.stored_digests() == set()
        assert store_tmp_files(without) == []
    finally:
        reg.stop()
