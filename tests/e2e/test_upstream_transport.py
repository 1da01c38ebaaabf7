"""Upstream transport: a forward proxy used when (and only when) the
config names one, never from the environment; TLS upstreams with the
registry's own CA, a refused CA, a ca_file that replaces the system's CA
store, failover from an endpoint whose certificate is refused, and client
certificates (mTLS)."""

import os
import shlex
import shutil
import subprocess

import pytest

from fakeproxy import FakeProxy
from fakeregistry import FakeRegistry
from harness import (ACCEPT_ALL, assert_blob, assert_json_error,
                     assert_manifest, fake_registry_entry, store_tmp_files)
from test_metrics import scrape, value
from tlsutil import make_ca, make_cert_dir, make_pki, server_context

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


# libcurl's built-in CA directory on Debian (curl-config --configure:
# --with-ca-path); its bundle, --with-ca-bundle, lives in it too
CURL_CA_DIR = "/etc/ssl/certs"
SHIM_SRC = os.path.join(os.path.dirname(__file__), "certdir_shim.c")


def _fetcher_with_cert_dir(tmp_path, fetcher, cert_dir):
    """A fetcher command that reads cert_dir wherever it would read
    libcurl's CA directory: certdir_shim.c, preloaded into that process
    alone (no privilege, nothing of the machine's changed)."""
    shim = str(tmp_path / "certdir_shim.so")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler for certdir_shim.c (run `make deps`)",
                    pytrace=False)
    p = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror",
                        "-o", shim, SHIM_SRC, "-ldl"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    script = tmp_path / "fetcher-with-cert-dir"
    # ASan wants its runtime first among the libraries; the shim only
    # forwards to the next definition, so that order does not matter
    script.write_text(
        "#!/bin/sh\n"
        "OCIMIRROR_SHIM_FROM=%s OCIMIRROR_SHIM_TO=%s LD_PRELOAD=%s "
        "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}"
        "verify_asan_link_order=0\" exec %s \"$@\"\n"
        % (shlex.quote(CURL_CA_DIR), shlex.quote(cert_dir),
           shlex.quote(shim), shlex.quote(fetcher)))
    script.chmod(0o755)
    return str(script)


def test_tls_ca_file_replaces_system_store(mirror_factory, catalog, pki,
                                           binaries, tmp_path):
    """A registry pinned to its own CA (ca_file) refuses a certificate
    that the system's CA store trusts: curl's default CA directory must
    not stay in use beside the file."""
    small = catalog["small"]
    pinned_ca, _ = make_ca(str(tmp_path / "pinned"), "pinned")
    unrelated_ca, _ = make_ca(str(tmp_path / "unrelated"), "unrelated")
    # the "system" trusts the server's CA through the hashed directory
    # only; its bundle holds an unrelated CA
    cert_dir = make_cert_dir(str(tmp_path / "certs"), pki.ca, unrelated_ca)
    fetcher = _fetcher_with_cert_dir(tmp_path, binaries[0], cert_dir)
    reg = FakeRegistry(ssl_context=server_context(pki)).start()
    try:
        reg.add_image("team/app", "v1", small)
        # the stand-in store is what curl uses: without ca_file the
        # server's certificate verifies through the directory
        trusting = mirror_factory(reg.hostport, [fake_registry_entry(reg)],
                                  prefetch=NO_PREFETCH,
                                  binaries=(fetcher, binaries[1]))
        _pull(trusting, small)
        seen = len(reg.requests)
        assert seen > 0

        pinned = mirror_factory(reg.hostport,
                                [fake_registry_entry(reg,
                                                     ca_file=pinned_ca)],
                                prefetch=NO_PREFETCH,
                                binaries=(fetcher, binaries[1]))
        blob = small.layers[0].blob
        for path in ("/v2/team/app/manifests/v1",
                     "/v2/team/app/blobs/" + blob.digest):
            r = pinned.get(path, {"Accept": ACCEPT_ALL})
            assert_json_error(r, 503, "UNAVAILABLE")
            assert "TLS certificate refused" in r.json()["errors"][0][
                "message"], r
        assert len(reg.requests) == seen
        assert pinned.stored_digests() == set()
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


def test_tls_failover_between_endpoints(mirror_factory, catalog, pki,
                                        tmp_path):
    """Two https endpoints under one ca_file: the first shows a
    certificate of another CA, the second one of the registry's.  Every
    pull fails over to the second (a refused certificate is that
    endpoint's failure, not the registry's); nothing is ever asked of the
    first past its handshake, and the failovers are counted."""
    small = catalog["small"]
    rogue = make_pki(str(tmp_path / "rogue"))
    bad = FakeRegistry(ssl_context=server_context(rogue)).start()
    good = FakeRegistry(ssl_context=server_context(pki)).start()
    try:
        for reg in (bad, good):
            reg.add_image("team/app", "v1", small)
        name = "tls.test"
        m = mirror_factory(name, [{"name": name,
                                   "endpoints": [bad.url, good.url],
                                   "ca_file": pki.ca}],
                           prefetch=NO_PREFETCH)
        _pull(m, small)
        assert bad.requests == []
        assert good.count("GET", r"/manifests/v1$") == 1
        for b in small.layer_blobs():
            assert good.count("GET", "/blobs/" + b.digest) == 1
            assert m.has_blob(b.digest)
        s = scrape(m)
        # the manifest and the blobs, one after the other, tried the first
        # endpoint until its third failure backed it off (for 10 s, the
        # default): the rest went straight to the second
        expected = min(3, 1 + len(small.layer_blobs()))
        assert value(s, "ocimirror_fetcher_failovers_total",
                     registry=name) == expected, s
        assert value(s, "ocimirror_fetcher_endpoint_failures_total",
                     registry=name, endpoint=bad.url) == expected, s
        assert value(s, "ocimirror_fetcher_endpoint_failures_total",
                     registry=name, endpoint=good.url) == 0, s
        with open(m.fetcher_log) as f:
            assert "certificate" in f.read().lower()
    finally:
        bad.stop()
        good.stop()
