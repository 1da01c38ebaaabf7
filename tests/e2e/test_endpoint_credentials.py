"""Credentials per endpoint.  Two FakeRegistry endpoints A and B of one
registry, both with the scope-checking Bearer flow and a /token of their
own, both holding the same images; A is written as a group with its own
username and password_file.  A pull through A, then A fails (500 on
everything but its token service) and the next pulls fail over to B:

  own        B has credentials of its own: B's token service gets B's
             Basic credentials only, A's gets A's only;
  none       no credentials for B and none at registry level (a
             third-party mirror): B's token service gets no Authorization
             at all, even after the failover;
  registry   B has none of its own, the registry's username and
             password_file apply to it (and not to A, which has its own);
  token_file B has a token_file: B gets that token, no token request.

In every case B never receives a token A's token service issued (tokens
are cached per registry, endpoint and scope), no credentials of one
endpoint reach the other's token service, and every pull succeeds.
Once A is probed back in, it gets its own tokens again, never B's."""

import pytest

from fakeregistry import FakeRegistry, _basic
from harness import (ACCEPT_ALL, assert_blob, assert_manifest, random_bytes,
                     read_text, wait_for)

NAME = "creds.test"
NO_PREFETCH = {"enabled": False}
A_CREDS = ("user-a", "pw-of-a-123")
B_CREDS = ("user-b", "pw-of-b-456")


@pytest.fixture
def pair():
    a, b = FakeRegistry().start(), FakeRegistry().start()
    a.token_prefix, b.token_prefix = "a", "b"
    yield a, b
    a.stop()
    b.stop()


def _secret(tmp_path, name, value):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        f.write(value + "\n")
    return path


def _auth_of(fake, token_route):
    """The Authorization headers (None if absent) of the fake's requests
    to its token service (token_route) or to the rest."""
    with fake._lock:
        return [h.get("Authorization") for _, p, h in fake.requests
                if p.startswith("/token") == token_route]


@pytest.mark.parametrize("b_setup", ["own", "none", "registry",
                                     "token_file"])
def test_tokens_and_credentials_stay_with_their_endpoint(
        mirror_factory, pair, catalog, tmp_path, b_setup):
    a, b = pair
    multi, small = catalog["multi"], catalog["small"]
    for f in (a, b):
        f.add_image("team/app", "v1", multi)
        f.add_image("team/other", "v1", small)
    a.require_scoped_tokens(credentials=A_CREDS)
    pw_a = _secret(tmp_path, "a.pw", A_CREDS[1])
    pw_b = _secret(tmp_path, "b.pw", B_CREDS[1])
    ep_a = {"url": a.url, "username": A_CREDS[0], "password_file": pw_a}
    ep_b = b.url
    registry_creds = {}
    if b_setup == "own":
        b.require_scoped_tokens(credentials=B_CREDS)
        ep_b = {"url": b.url, "username": B_CREDS[0],
                "password_file": pw_b}
    elif b_setup == "none":
        b.require_scoped_tokens()               # anonymous tokens
    elif b_setup == "registry":
        b.require_scoped_tokens(credentials=B_CREDS)
        registry_creds = {"username": B_CREDS[0], "password_file": pw_b}
    else:
        b.require_token("static-b-token")
        ep_b = {"url": b.url,
                "token_file": _secret(tmp_path, "b.token",
                                      "static-b-token")}
    entry = {"name": NAME, "endpoints": [ep_a, ep_b], "backoff": 60}
    entry.update(registry_creds)
    m = mirror_factory(NAME, [entry], prefetch=NO_PREFETCH)
    layers = multi.layer_blobs()

    # through A, with A's token
    assert_manifest(m.get("/v2/team/app/manifests/v1",
                          {"Accept": ACCEPT_ALL}), multi.manifest)
    assert_blob(m.get("/v2/team/app/blobs/" + layers[0].digest), layers[0])
    assert a.token_calls == 1
    with b._lock:
        assert [p for _, p, _ in b.requests if p != "/v2/"] == [], \
            b.requests

    # A fails (its token service still answers): the same scope, and
    # another one, through B
    a.fail[r"^/v2/"] = (500, "UNKNOWN")
    for layer in layers[1:3]:
        assert_blob(m.get("/v2/team/app/blobs/" + layer.digest), layer)
        assert b.served_bytes(layer.digest) == [(0, layer.size)]
    assert_manifest(m.get("/v2/team/other/manifests/v1",
                          {"Accept": ACCEPT_ALL}), small.manifest)
    for layer in small.layer_blobs():
        assert_blob(m.get("/v2/team/other/blobs/" + layer.digest), layer)
    assert a.count(None, r"^/v2/team/") >= 2

    basic_a, basic_b = _basic(A_CREDS), _basic(B_CREDS)
    a_tokens = set(a.issued)
    assert a_tokens and all(t.startswith("tok-a") for t in a_tokens)

    # B never got a token of A's, nor A's credentials anywhere
    b_v2 = _auth_of(b, False)
    assert not any(h is not None and h[7:] in a_tokens for h in b_v2), b_v2
    assert not any(h is not None and h.startswith("Bearer tok-a")
                   for h in b_v2), b_v2
    assert basic_a not in b_v2 + _auth_of(b, True)
    assert b.auth_refused == 0, b_v2
    # A's token service got A's credentials only, A nothing of B's
    assert set(_auth_of(a, True)) <= {basic_a}, _auth_of(a, True)
    assert basic_b not in _auth_of(a, False)
    assert a.auth_refused == 0

    b_token = _auth_of(b, True)
    if b_setup in ("own", "registry"):
        assert b.token_calls >= 1
        assert b_token and set(b_token) == {basic_b}, b_token
    elif b_setup == "none":
        assert b.token_calls >= 1
        assert b_token and set(b_token) == {None}, b_token
    else:
        assert b.token_calls == 0
        assert set(b_v2) <= {None, "Bearer static-b-token"}, b_v2
        assert "Bearer static-b-token" in b_v2
    if b_setup != "token_file":
        assert all(h is None or h.startswith("Bearer tok-b") for h in b_v2), \
            b_v2
    log = read_text(m.fetcher_log)
    for secret in (A_CREDS[1], B_CREDS[1], "tok-a", "tok-b",
                   "static-b-token"):
        assert secret not in log


def test_failback_keeps_each_endpoints_token(mirror_factory, pair, catalog,
                                             tmp_path):
    """A down, B used, A probed back in: A gets its own token again
    (or a new one of its own), never B's; B's never goes to A."""
    a, b = pair
    multi = catalog["multi"]
    for f in (a, b):
        f.add_image("team/app", "v1", multi)
    a.require_scoped_tokens(credentials=A_CREDS)
    b.require_scoped_tokens(credentials=B_CREDS)
    eps = [{"url": a.url, "username": A_CREDS[0],
            "password_file": _secret(tmp_path, "a.pw", A_CREDS[1])},
           {"url": b.url, "username": B_CREDS[0],
            "password_file": _secret(tmp_path, "b.pw", B_CREDS[1])}]
    m = mirror_factory(NAME, [{"name": NAME, "endpoints": eps,
                               "backoff": 1}], prefetch=NO_PREFETCH)
    assert_manifest(m.get("/v2/team/app/manifests/v1",
                          {"Accept": ACCEPT_ALL}), multi.manifest)

    a.fail[r"^/v2/"] = (500, "UNKNOWN")
    layers = multi.layer_blobs()
    for layer in layers[:3]:
        assert_blob(m.get("/v2/team/app/blobs/" + layer.digest), layer)
        assert b.served_bytes(layer.digest) == [(0, layer.size)]
    del a.fail[r"^/v2/"]

    tries = []

    def from_a():
        data = random_bytes("failback-%d" % len(tries), 4096)
        digest = a.add_blob(data)
        b.add_blob(data)
        tries.append(digest)
        r = m.get("/v2/team/app/blobs/" + digest)
        assert r.status == 200 and r.body == data, r
        return a.served_bytes(digest) != []
    wait_for(from_a, 10, interval=0.3, what="a blob pulled from A again")

    with a._lock:
        last = [h.get("Authorization") for _, p, h in a.requests
                if p.endswith("/blobs/" + tries[-1])]
    assert last[-1].startswith("Bearer tok-a"), last
    a_v2, b_v2 = _auth_of(a, False), _auth_of(b, False)
    assert not any(h is not None and h.startswith("Bearer tok-b")
                   for h in a_v2), a_v2
    assert not any(h is not None and h.startswith("Bearer tok-a")
                   for h in b_v2), b_v2
    assert set(_auth_of(a, True)) <= {_basic(A_CREDS)}
    assert set(_auth_of(b, True)) <= {_basic(B_CREDS)}
    assert a.auth_refused == 0 and b.auth_refused == 0
