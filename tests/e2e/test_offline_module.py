"""Offline serving by nginx itself: with the fetcher down, a tag the
store holds is served stale (with a Warning) only within the registry's
stale_if_error window, and digests are always served from the store."""

import time

from harness import (ACCEPT_ALL, assert_blob, assert_json_error,
                     assert_manifest, fake_registry_entry)

TTL = 1
# long enough that the stale answer inside it is never late on a loaded
# machine; the test waits it out once
WINDOW = 10


def test_fetcher_down_serves_stale_only_within_the_window(mirror_factory,
                                                          fake_upstream,
                                                          catalog):
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, tag_ttl=TTL,
                                            stale_if_error=WINDOW)])
    path = "/v2/team/app/manifests/v1"
    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, small.manifest)
    assert r.header("Warning") is None, r
    fetched = time.monotonic()
    layer = small.layer_blobs()[0]
    assert_blob(m.get("/v2/team/app/blobs/" + layer.digest), layer)

    m.stop_fetcher()

    # past the TTL, inside the window: stale, and said so
    time.sleep(max(0.0, fetched + TTL + 0.5 - time.monotonic()))
    r = m.get(path, {"Accept": ACCEPT_ALL})
    assert_manifest(r, small.manifest)
    assert r.header("Warning") == '110 - "Response is Stale"', r

    # past the window: no more stale answers, a clear 503
    time.sleep(max(0.0, fetched + TTL + WINDOW + 1.2 - time.monotonic()))
    assert_json_error(m.get(path, {"Accept": ACCEPT_ALL}), 503,
                      "UNAVAILABLE")

    # what is addressed by digest never goes stale
    assert_manifest(m.get("/v2/team/app/manifests/" + small.manifest.digest,
                          {"Accept": ACCEPT_ALL}), small.manifest)
    assert_blob(m.get("/v2/team/app/blobs/" + layer.digest), layer)
    m.start_fetcher()
