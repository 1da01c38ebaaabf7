"""A tag record whose manifest leaves the store (evicted, purged,
quarantined) while the fetcher revalidates it with a HEAD: the upstream
says the tag has not moved, but the manifest is gone, so the fetcher gets
it again instead of announcing a file no worker can open (found by the
soak: a slow HEAD on a small, busy store ended in 502 "manifest missing
from the store" for every client waiting on the tag)."""

import os
import threading
import time

from harness import (ACCEPT_ALL, assert_manifest, fake_registry_entry,
                     wait_for)


def test_manifest_evicted_during_revalidation(mirror_factory, fake_upstream,
                                              catalog):
    small = catalog["small"]
    fake_upstream.add_image("team/app", "v1", small)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream, tag_ttl=1)])
    path = "/v2/team/app/manifests/v1"
    assert_manifest(m.get(path, {"Accept": ACCEPT_ALL}), small.manifest)
    assert fake_upstream.count("GET", r"/manifests/v1$") == 1

    # the record goes stale (tag_ttl 1 s); the next GET revalidates it
    # with a HEAD, slow here
    time.sleep(1.5)
    heads = fake_upstream.count("HEAD", r"/manifests/v1$")
    fake_upstream.delay[r"/manifests/v1$"] = 2
    result = {}

    def pull():
        result["r"] = m.get(path, {"Accept": ACCEPT_ALL})

    t = threading.Thread(target=pull)
    t.start()
    try:
        wait_for(lambda: fake_upstream.count("HEAD", r"/manifests/v1$")
                 > heads, 10, what="the revalidating HEAD")
        # the file leaves the store while the HEAD is out, as eviction
        # would take it
        os.unlink(m.blob_path(small.manifest.digest))
    finally:
        t.join(30)

    assert_manifest(result.get("r"), small.manifest)
    assert m.has_blob(small.manifest.digest)
    assert fake_upstream.count("GET", r"/manifests/v1$") == 2
