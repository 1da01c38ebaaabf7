"""Bounded fan-out: a manifest that names thousands of things makes the
mirror fetch at most prefetch.max_children platform manifests of an index
and prefetch.max_layers layers of an image, never a platform that is not
configured; past a cap the rest is left out, counted
(ocimirror_fetcher_prefetch_capped_total, _left_out_total) and logged once,
and a client still pulls what it asks for, within the caps or not."""

import json
import re
import time

from harness import (ACCEPT_ALL, assert_store_consistent,
                     fake_registry_entry, sha256_hex, wait_for)
from images import MT_OCI_CONFIG, MT_OCI_INDEX, MT_OCI_LAYER_GZIP, \
    MT_OCI_MANIFEST

CHILDREN = 5000
LAYERS = 20000


def metrics(m):
    r = m.get("/metrics")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, v = line.rpartition(" ")
            out[name] = float(v)
    return out


def capped(m, fake):
    got = metrics(m)
    label = '{registry="%s"}' % fake.hostport
    return (got["ocimirror_fetcher_prefetch_capped_total" + label],
            got["ocimirror_fetcher_prefetch_left_out_total" + label])


def desc(media_type, data):
    return {"mediaType": media_type, "digest": "sha256:" + sha256_hex(data),
            "size": len(data)}


def image(fake, repo, seed, n_layers):
    """An image manifest of n_layers tiny distinct layers; returns
    (manifest bytes, config bytes, [layer bytes])."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "seed": seed}).encode()
    layers = [("%s layer %d" % (seed, i)).encode() for i in range(n_layers)]
    fake.add_blob(config)
    for data in layers:
        fake.add_blob(data)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
        "config": desc(MT_OCI_CONFIG, config),
        "layers": [desc(MT_OCI_LAYER_GZIP, d) for d in layers]},
        separators=(",", ":")).encode()
    fake.add_manifest(repo, MT_OCI_MANIFEST, manifest)
    return manifest, config, layers


def settle(fake, quiet=1.0, timeout=60):
    """Until the fake registry saw no request for `quiet` seconds."""
    state = {"n": -1, "since": None}

    def quiet_now():
        n = len(fake.requests)
        now = time.monotonic()
        if n != state["n"]:
            state["n"], state["since"] = n, now
            return False
        return now - state["since"] >= quiet
    wait_for(quiet_now, timeout, interval=0.1, what="the upstream quiet")


def test_index_children_capped(mirror_factory, fake_upstream):
    """5000 linux/amd64 children and one arm64: max_children (8) child
    manifests fetched, each with its config and layer, the arm64 one
    never; the counters say one index and 4992 children left out."""
    arm, _, arm_layers = image(fake_upstream, "team/wide", "arm", 1)
    children = [image(fake_upstream, "team/wide", "c%d" % i, 1)
                for i in range(CHILDREN)]
    entries = [dict(desc(MT_OCI_MANIFEST, arm),
                    platform={"os": "linux", "architecture": "arm64"})]
    entries += [dict(desc(MT_OCI_MANIFEST, c[0]),
                     platform={"os": "linux", "architecture": "amd64"})
                for c in children]
    index = json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
                        "manifests": entries}).encode()
    fake_upstream.add_manifest("team/wide", MT_OCI_INDEX, index, "v1")
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       prefetch={"max_children": 8})

    r = m.get("/v2/team/wide/manifests/v1", {"Accept": ACCEPT_ALL})
    assert r.status == 200, r
    assert r.body == index
    taken = children[:8]
    wait_for(lambda: all(m.has_blob("sha256:" + sha256_hex(c[2][0]))
                         for c in taken), 60, what="the capped prefetch")
    settle(fake_upstream)

    assert fake_upstream.count("GET", r"/manifests/sha256:") == 8
    for c in taken:
        assert fake_upstream.count(
            "GET", "/manifests/sha256:" + sha256_hex(c[0])) == 1
    # each child's config and layer, nothing else
    assert fake_upstream.count("GET", r"/blobs/") == 16
    assert fake_upstream.count(
        "GET", re.escape(sha256_hex(arm)) + "|" +
        re.escape(sha256_hex(arm_layers[0]))) == 0
    assert capped(m, fake_upstream) == (1, CHILDREN - 8)
    with open(m.fetcher_log) as f:
        assert f.read().count("platform manifests left out, over "
                              "prefetch.max_children (8)") == 1

    # a platform within the caps: from the store, no upstream request
    before = len(fake_upstream.requests)
    c = taken[3]
    r = m.get("/v2/team/wide/manifests/sha256:" + sha256_hex(c[0]),
              {"Accept": ACCEPT_ALL})
    assert r.status == 200 and r.body == c[0], r
    for data in [c[1]] + c[2]:
        r = m.get("/v2/team/wide/blobs/sha256:" + sha256_hex(data))
        assert r.status == 200 and r.body == data, r
    assert len(fake_upstream.requests) == before

    # one past the cap: a miss like any other, and no fan-out counted
    c = children[-1]
    r = m.get("/v2/team/wide/manifests/sha256:" + sha256_hex(c[0]),
              {"Accept": ACCEPT_ALL})
    assert r.status == 200 and r.body == c[0], r
    r = m.get("/v2/team/wide/blobs/sha256:" + sha256_hex(c[2][0]))
    assert r.status == 200 and r.body == c[2][0], r
    assert capped(m, fake_upstream) == (1, CHILDREN - 8)
    assert_store_consistent(m)


def test_image_layers_capped(mirror_factory, fake_upstream):
    """20000 tiny layers: the config and the first max_layers (the
    default, 256) layers are fetched, once each; the rest is left to the
    client, who still gets every layer it asks for."""
    manifest, config, layers = image(fake_upstream, "team/deep", "deep",
                                     LAYERS)
    fake_upstream.tags.setdefault("team/deep", {})["v1"] = \
        "sha256:" + sha256_hex(manifest)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])

    r = m.get("/v2/team/deep/manifests/v1", {"Accept": ACCEPT_ALL})
    assert r.status == 200, r
    assert r.body == manifest
    wait_for(lambda: m.has_blob("sha256:" + sha256_hex(layers[255])), 120,
             what="the last layer within the cap")
    settle(fake_upstream)

    assert fake_upstream.count("GET", r"/blobs/") == 1 + 256
    assert fake_upstream.count(
        "GET", "/blobs/sha256:" + sha256_hex(layers[256])) == 0
    assert len(m.stored_digests()) == 1 + 1 + 256
    assert capped(m, fake_upstream) == (1, LAYERS - 256)
    with open(m.fetcher_log) as f:
        assert f.read().count("%d layers left out, over prefetch.max_layers "
                              "(256)" % (LAYERS - 256)) == 1

    # a layer within the cap is a hit, one past it a miss; both whole
    before = fake_upstream.count("GET", r"/blobs/")
    for i in (0, 255):
        r = m.get("/v2/team/deep/blobs/sha256:" + sha256_hex(layers[i]))
        assert r.status == 200 and r.body == layers[i], r
    assert fake_upstream.count("GET", r"/blobs/") == before
    for i in (256, LAYERS - 1):
        r = m.get("/v2/team/deep/blobs/sha256:" + sha256_hex(layers[i]))
        assert r.status == 200 and r.body == layers[i], r
    assert fake_upstream.count("GET", r"/blobs/") == before + 2
    assert_store_consistent(m)
