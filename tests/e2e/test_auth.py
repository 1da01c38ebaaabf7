"""The upstream's Bearer token flow, done by the mirror: one token per
registry and scope, cached; the client's credentials never forwarded."""

from harness import (ACCEPT_ALL, assert_blob, assert_manifest,
                     fake_registry_entry)

TOKEN = "e2e-upstream-token-7f3a"
CLIENT_AUTH = "Basic Y2xpZW50OnNlY3JldA=="      # client:secret


def test_bearer_token_fetched_once_and_cached(mirror_factory, fake_upstream,
                                              catalog):
    multi, small = catalog["multi"], catalog["small"]
    fake_upstream.add_image("team/app", "v1", multi)
    fake_upstream.add_image("team/other", "v1", small)
    fake_upstream.require_token(TOKEN)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    client = {"Accept": ACCEPT_ALL, "Authorization": CLIENT_AUTH}
    assert_manifest(m.get("/v2/team/app/manifests/v1", client),
                    multi.manifest)
    for b in multi.layer_blobs():
        assert_blob(m.get("/v2/team/app/blobs/" + b.digest, client), b)
    assert_manifest(m.get("/v2/team/app/manifests/" + multi.manifest.digest,
                          client), multi.manifest)

    assert fake_upstream.token_calls == 1, fake_upstream.token_scopes
    assert "repository:team/app:pull" in fake_upstream.token_scopes[0]

    # every upstream request that got content carried the token; none
    # carried the client's credentials
    for method, path, headers in fake_upstream.requests:
        auth = headers.get("Authorization")
        assert auth != CLIENT_AUTH, (method, path)
        if path.startswith("/token"):
            continue
        assert auth in (None, "Bearer " + TOKEN), (method, path, auth)
    served = [p for meth, p, h in fake_upstream.requests
              if "/blobs/" in p and h.get("Authorization") == "Bearer "
              + TOKEN]
    assert served

    # another repository is another scope: one more token
    assert_manifest(m.get("/v2/team/other/manifests/v1", client),
                    small.manifest)
    assert_blob(m.get("/v2/team/other/blobs/"
                      + small.layers[0].blob.digest, client),
                small.layers[0].blob)
    assert fake_upstream.token_calls == 2, fake_upstream.token_scopes
    assert "repository:team/other:pull" in fake_upstream.token_scopes[1]
