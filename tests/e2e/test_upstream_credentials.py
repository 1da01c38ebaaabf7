"""Upstream credentials: the scope-checking Bearer flow with expiry,
a token service that wants the registry's username and password, Basic
registries, token_file, wrong credentials (a clear error, no storm),
redirects that get no Authorization, client credentials never forwarded.
"""

import os
import threading
import time

from fakeregistry import FakeRegistry, _basic
from harness import (ACCEPT_ALL, assert_blob, assert_json_error,
                     assert_manifest, fake_registry_entry)

CLIENT_AUTH = "Basic Y2xpZW50OnNlY3JldA=="      # client:secret
CLIENT = {"Accept": ACCEPT_ALL, "Authorization": CLIENT_AUTH}
NO_PREFETCH = {"enabled": False}
REFUSED = "refused the configured credentials"
TOKEN_LIFE = 20          # the fake's expires_in
TOKEN_KEPT = 10          # the mirror's use of it: TOKEN_LIFE - 10 s


def _secret(tmp_path, name, value):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        f.write(value + "\n")
    return path


def _rewrite(path, value):
    """A rotated secret: a new file renamed over the old one."""
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(value + "\n")
    os.rename(tmp, path)


def _no_client_auth(reg):
    with reg._lock:
        leaked = [(m, p) for m, p, h in reg.requests
                  if h.get("Authorization") == CLIENT_AUTH]
    assert leaked == [], leaked


def _message(r):
    return r.json()["errors"][0]["message"]


def _parallel(fn, args):
    out = [None] * len(args)

    def run(i, a):
        out[i] = fn(a)
    threads = [threading.Thread(target=run, args=(i, a))
               for i, a in enumerate(args)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_scoped_tokens_expiry_and_client_auth(mirror_factory, fake_upstream,
                                              catalog):
    multi, small = catalog["multi"], catalog["small"]
    fake_upstream.add_image("team/app", "v1", multi)
    fake_upstream.add_image("team/other", "v1", small)
    # tokens live 20 s: the mirror keeps them 10 s (20 - its 10 s
    # margin) and refreshes one in use in the last 2 s of that (a
    # quarter), so the pulls of each part below have 8 s, plenty on a
    # loaded machine, before a third token could be asked for
    fake_upstream.require_scoped_tokens(expires_in=TOKEN_LIFE)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       prefetch=NO_PREFETCH)
    blobs = multi.layer_blobs()

    assert_manifest(m.get("/v2/team/app/manifests/v1", CLIENT),
                    multi.manifest)
    app_token_by = time.monotonic()          # the app token's latest start
    for b in blobs[:2]:
        assert_blob(m.get("/v2/team/app/blobs/" + b.digest, CLIENT), b)
    # another repository: a token of its own (the app token is refused
    # there)
    assert_manifest(m.get("/v2/team/other/manifests/v1", CLIENT),
                    small.manifest)
    assert fake_upstream.token_calls == 2, fake_upstream.token_scopes

    # past the mirror's lifetime of the tokens: a new one, asked for
    # before the old one expired upstream
    time.sleep(max(0.0, app_token_by + TOKEN_KEPT + 0.5 - time.monotonic()))
    for b in blobs[2:]:
        assert_blob(m.get("/v2/team/app/blobs/" + b.digest, CLIENT), b)
    assert fake_upstream.token_calls == 3, fake_upstream.token_scopes
    assert fake_upstream.token_scopes[2] == "repository:team/app:pull"

    assert fake_upstream.wrong_scope_seen == 0
    assert fake_upstream.expired_seen == 0
    assert fake_upstream.auth_refused == 0
    _no_client_auth(fake_upstream)
    # tokens and the client's credentials stay out of the log
    with open(m.fetcher_log) as f:
        log = f.read()
    assert "tok-" not in log and CLIENT_AUTH[6:] not in log


def test_token_service_wants_credentials(mirror_factory, fake_upstream,
                                         catalog, tmp_path):
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    fake_upstream.require_scoped_tokens(credentials=("alice", "pw-1"))
    pw = _secret(tmp_path, "alice.pw", "pw-1")
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, username="alice",
                                            password_file=pw)],
                       prefetch=NO_PREFETCH)
    assert_manifest(m.get("/v2/team/app/manifests/v1", CLIENT),
                    small.manifest)
    blob = small.layers[0].blob
    assert_blob(m.get("/v2/team/app/blobs/" + blob.digest, CLIENT), blob)

    assert fake_upstream.token_calls == 1
    assert fake_upstream.auth_refused == 0
    with fake_upstream._lock:
        token_reqs = [(p, h) for _, p, h in fake_upstream.requests
                      if p.startswith("/token")]
        v2 = [h.get("Authorization") for _, p, h in fake_upstream.requests
              if p.startswith("/v2/")]
    assert token_reqs[0][1].get("Authorization") == _basic(("alice",
                                                             "pw-1"))
    assert "account=alice" in token_reqs[0][0]
    # the registry itself only ever sees the token
    assert all(a is None or a.startswith("Bearer tok-") for a in v2), v2
    _no_client_auth(fake_upstream)
    with open(m.fetcher_log) as f:
        assert "pw-1" not in f.read()


def test_basic_registry_and_redirect(mirror_factory, fake_upstream, catalog,
                                     tmp_path):
    small, multi = catalog["small"], catalog["multi"]
    fake_upstream.add_image("team/app", "v1", multi)
    fake_upstream.require_basic("bob", "s3cret-pw")
    pw = _secret(tmp_path, "bob.pw", "s3cret-pw")
    cdn = FakeRegistry().start()
    try:
        blob = small.layers[0].blob
        cdn.blobs[blob.digest] = blob.data
        fake_upstream.blobs[blob.digest] = blob.data
        m = mirror_factory(fake_upstream.hostport,
                           [fake_registry_entry(fake_upstream,
                                                username="bob",
                                                password_file=pw)],
                           prefetch=NO_PREFETCH)
        assert_manifest(m.get("/v2/team/app/manifests/v1", CLIENT),
                        multi.manifest)
        for b in multi.layer_blobs()[:3]:
            assert_blob(m.get("/v2/team/app/blobs/" + b.digest, CLIENT), b)

        # one anonymous request met the Basic challenge; from then on the
        # registry's requests carry Basic at once
        basic = _basic(("bob", "s3cret-pw"))
        with fake_upstream._lock:
            auth = [h.get("Authorization")
                    for _, p, h in fake_upstream.requests]
        assert auth[0] is None and auth[1:] == [basic] * (len(auth) - 1), \
            auth
        assert fake_upstream.auth_refused == 0

        # a redirect to another host (a CDN) goes without Basic
        fake_upstream.blob_redirect = cdn.url
        assert_blob(m.get("/v2/team/app/blobs/" + blob.digest, CLIENT),
                    blob)
        with cdn._lock:
            sent = [(p, h) for _, p, h in cdn.requests]
        assert sent and all("/cdn/" in p for p, _ in sent), sent
        assert not any("Authorization" in h for _, h in sent), sent
        with fake_upstream._lock:
            last = fake_upstream.requests[-1]
        assert "/blobs/" + blob.digest in last[1]
        assert last[2].get("Authorization") == basic
        _no_client_auth(fake_upstream)
        _no_client_auth(cdn)
        with open(m.fetcher_log) as f:
            assert "s3cret-pw" not in f.read()
    finally:
        cdn.stop()


def test_redirect_target_401_gets_no_credentials(mirror_factory,
                                                fake_upstream, catalog,
                                                tmp_path):
    """A redirect target that answers 401 with a token realm of its own:
    the client gets 401, and neither the target nor its realm ever sees
    the registry's username and password or token."""
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    fake_upstream.require_scoped_tokens(credentials=("alice", "pw-9"))
    pw = _secret(tmp_path, "alice.pw", "pw-9")
    cdn = FakeRegistry().start()
    evil = FakeRegistry().start()
    try:
        blob = small.layers[0].blob
        cdn.cdn_challenge = ('Bearer realm="%s/token",service="cdn"'
                             % evil.url)
        fake_upstream.blob_redirect = cdn.url
        m = mirror_factory(fake_upstream.hostport,
                           [fake_registry_entry(fake_upstream,
                                                username="alice",
                                                password_file=pw)],
                           prefetch=NO_PREFETCH)
        assert_manifest(m.get("/v2/team/app/manifests/v1", CLIENT),
                        small.manifest)
        r = m.get("/v2/team/app/blobs/" + blob.digest, CLIENT)

        # the realm the target named was never asked
        with evil._lock:
            assert evil.requests == [], evil.requests
        assert evil.token_calls == 0
        assert_json_error(r, 401, "UNAUTHORIZED")
        assert "redirect target" in _message(r), r
        with cdn._lock:
            sent = [(p, h) for _, p, h in cdn.requests]
        assert sent and all("/cdn/" in p for p, _ in sent), sent
        assert not any("Authorization" in h for _, h in sent), sent
        # the registry's own token service was asked once, for the
        # manifest; nothing refused, nothing remembered against alice
        assert fake_upstream.token_calls == 1
        assert fake_upstream.auth_refused == 0
        _no_client_auth(cdn)
        with open(m.fetcher_log) as f:
            assert "pw-9" not in f.read()
    finally:
        evil.stop()
        cdn.stop()


def test_token_file_rotated(mirror_factory, fake_upstream, catalog,
                            tmp_path):
    multi = catalog["multi"]
    fake_upstream.add_image("team/app", "v1", multi)
    fake_upstream.require_token("static-token-1")
    tok = _secret(tmp_path, "reg.token", "static-token-1")
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, token_file=tok)],
                       prefetch=NO_PREFETCH)
    blobs = multi.layer_blobs()
    assert_manifest(m.get("/v2/team/app/manifests/v1", CLIENT),
                    multi.manifest)
    assert_blob(m.get("/v2/team/app/blobs/" + blobs[0].digest, CLIENT),
                blobs[0])

    # rotated: the next request carries the new token, no restart
    fake_upstream.require_token("static-token-2")
    _rewrite(tok, "static-token-2")
    assert_blob(m.get("/v2/team/app/blobs/" + blobs[1].digest, CLIENT),
                blobs[1])

    # no token flow, and every request carried the file's token
    assert fake_upstream.token_calls == 0
    with fake_upstream._lock:
        auth = [h.get("Authorization") for _, p, h in fake_upstream.requests]
    assert auth == ["Bearer static-token-1"] * 2 + \
        ["Bearer static-token-2"], auth
    with open(m.fetcher_log) as f:
        assert "static-token" not in f.read()


def _refused_storm(m, paths):
    """Sequential and concurrent requests, all refused clearly."""
    rs = [m.get(paths[0], CLIENT) for _ in range(5)]
    rs += _parallel(lambda p: m.get(p, CLIENT), paths * 3)
    for r in rs:
        assert_json_error(r, 401, "UNAUTHORIZED")
        assert REFUSED in _message(r), r
    return len(rs)


def test_wrong_password_for_token_service(mirror_factory, fake_upstream,
                                          catalog, tmp_path):
    multi = catalog["multi"]
    fake_upstream.add_image("team/app", "v1", multi)
    fake_upstream.require_scoped_tokens(credentials=("alice", "right-pw"))
    pw = _secret(tmp_path, "alice.pw", "wrong")
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, username="alice",
                                            password_file=pw,
                                            negative_ttl=60)],
                       prefetch=NO_PREFETCH)
    paths = ["/v2/team/app/manifests/v1"] + [
        "/v2/team/app/blobs/" + b.digest for b in multi.layer_blobs()]
    n = _refused_storm(m, paths)
    assert n >= 20
    # a handful of upstream requests for all of them
    assert fake_upstream.token_calls <= 2, fake_upstream.token_calls
    assert len(fake_upstream.requests) <= 4, fake_upstream.requests

    # the password file is fixed: used at once, the refusal forgotten
    _rewrite(pw, "right-pw")
    assert_manifest(m.get(paths[0], CLIENT), multi.manifest)


def test_wrong_password_for_basic_registry(mirror_factory, fake_upstream,
                                           catalog, tmp_path):
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    fake_upstream.require_basic("bob", "right-pw")
    pw = _secret(tmp_path, "bob.pw", "wrong")
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, username="bob",
                                            password_file=pw,
                                            negative_ttl=60)],
                       prefetch=NO_PREFETCH)
    paths = ["/v2/team/app/manifests/v1",
             "/v2/team/app/blobs/" + small.layers[0].blob.digest]
    _refused_storm(m, paths)
    # the anonymous request, the one with the wrong password; concurrent
    # first requests may each have met the challenge once
    assert fake_upstream.auth_refused <= 2, fake_upstream.requests
    assert len(fake_upstream.requests) <= 4, fake_upstream.requests
