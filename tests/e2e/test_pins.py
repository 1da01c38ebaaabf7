"""Pins and the store's control commands over the fetcher's socket
(what ocimirrorctl sends): a pinned image (store.pin, or pinned at run
time) stays whole however much else goes through a bounded store, counts
against its size, and is refused to purge; unpinned it is evicted like
anything else; status, pins, evict --dry-run and purge answer what the
store holds; a purged image costs the upstream exactly its files again;
pins alone above the high watermark are warned about.
"""

import os
import re
import time

from harness import (ACCEPT_ALL, assert_store_consistent,
                     fake_registry_entry, wait_for)
from test_store_bound import (GRACE, MiB, make_image, pull, rel_blob,
                              settle, store_metrics, whole)


def pinned_bytes(m):
    from test_metrics import scrape, value
    return value(scrape(m), "ocimirror_fetcher_store_pinned_bytes")


def test_pinned_image_stays_whole(mirror_factory, fake_upstream):
    """A 48 MiB store, an image pinned in the config and four others of
    17 MiB pulled after it: the pinned one stays whole (with its tag
    record), the store stays within its bound; unpinned at run time it is
    evicted like the rest; pinned again at run time, it is whole again
    after a pull and stays so."""
    fake = fake_upstream
    pinned = make_image("pinned", (9 * MiB, 6 * MiB, 2 * MiB))
    others = [make_image("other%d" % i, (9 * MiB, 6 * MiB, 2 * MiB))
              for i in range(4)]
    fake.add_image("team/pinned", "v1", pinned)
    for i, im in enumerate(others):
        fake.add_image("team/other%d" % i, "v1", im)
    ref = "%s/team/pinned:v1" % fake.hostport

    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                       min_free="1M", fetcher_args=["-v"],
                       store_settings={"max_size": "48M",
                                       "recency_interval": 1,
                                       "pin": [ref]})

    pull(m, "team/pinned", pinned)
    wait_for(lambda: pinned_bytes(m) >= sum(b.size for b in pinned.blobs()),
             10, interval=0.2, what="the pinned image held")

    for i, im in enumerate(others):
        time.sleep(1.2)
        pull(m, "team/other%d" % i, im)
        settle(m)
        assert whole(m, pinned) == [], "pinned image lost blobs after %d" % i

    st = store_metrics(m)
    assert st["evictions_total"] > 0, st
    assert st["bytes"] <= 48 * MiB, st
    record = os.path.join(m.store, "tags", fake.hostport, "team/pinned",
                          "@v1")
    assert os.path.exists(record)

    # what the commands say
    rc, out = m.ctl("status")
    assert rc == 0, out
    line = [x for x in out if x.startswith("pinned")]
    assert line and re.search(r"\b1 pin hold 6 files\b", line[0]), out
    assert [x for x in out if x.startswith("used")], out

    rc, out = m.ctl("pins")
    assert rc == 0 and out[0].startswith("1 pin,"), out
    assert ref in out[1] and "every platform" in out[1], out

    rc, out = m.ctl("evict", "--dry-run", "50")
    assert rc == 0, out
    listed = " ".join(out)
    for b in pinned.blobs():
        assert b.digest.split(":")[1] not in listed, (b.digest, out)

    rc, out = m.ctl("purge", ref)
    assert rc == 1, out
    assert any("held by a pin" in x for x in out), out
    assert whole(m, pinned) == []

    # unpinned: the oldest files of the store, evicted by the next pulls
    rc, out = m.ctl("unpin", ref)
    assert rc == 0, out
    assert pinned_bytes(m) == 0
    for i in (2, 3):
        time.sleep(1.2)
        pull(m, "team/other%d" % i, others[i])
    settle(m)
    assert whole(m, pinned) != [], "the unpinned image was not evicted"

    # nginx's open_file_cache (inactive=2s, swept every second) serves an
    # evicted file from the descriptor it holds, the right bytes, and asks
    # the fetcher nothing: past that window a pull brings it back
    time.sleep(3.5)

    # pinned at run time: a pull brings back what is missing, it stays
    rc, out = m.ctl("pin", ref)
    assert rc == 0 and "pinned" in out[0], out
    rc, out = m.ctl("pin", ref)
    assert rc == 1 and "already" in out[0], out
    pull(m, "team/pinned", pinned)
    for i in (0, 1):
        time.sleep(1.2)
        pull(m, "team/other%d" % i, others[i])
        settle(m)
    assert whole(m, pinned) == []
    assert_store_consistent(m)


def test_purge_and_dry_run(mirror_factory, fake_upstream):
    """purge REF removes the image's tag record, manifest and blobs; the
    next pull costs the upstream exactly those blobs once each; purge
    DIGEST removes one file; evict --dry-run lists files oldest first and
    says whether eviction is due; bad input gets a usage answer."""
    fake = fake_upstream
    a = make_image("purge-a", (1 * MiB, 2 * MiB))
    b = make_image("purge-b", (1 * MiB,))
    fake.add_image("team/a", "v1", a)
    fake.add_image("team/b", "v1", b)
    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                       store_settings={"recency_interval": 1})

    pull(m, "team/a", a)
    time.sleep(GRACE + 1.5)
    pull(m, "team/b", b)
    wait_for(lambda: whole(m, a) == [] and whole(m, b) == [], 10,
             what="both images stored")

    rc, out = m.ctl("evict", "--dry-run", "3")
    assert rc == 0, out
    assert out[0].startswith("next to go"), out
    rows = [x for x in out if x.startswith("  ")]
    assert len(rows) == 3, out
    # a's files are older than b's: they come first (b is too young)
    a_hexes = {bl.digest.split(":")[1] for bl in a.blobs()}
    for row in rows:
        assert any(h in row for h in a_hexes) or "tags/" in row, (row, out)
    assert "no eviction is due" in out[-1], out

    rc, out = m.ctl("purge", "%s/team/a:v1" % fake.hostport)
    assert rc == 0, out
    n = len(list(a.blobs())) + 1
    assert re.match(r"purged %d files, " % n, out[-1]), out
    for bl in a.blobs():
        assert not m.has_blob(bl.digest), bl.digest
    assert whole(m, b) == []

    # the next pull costs the upstream each of a's blobs once more
    pull(m, "team/a", a)
    for bl in a.layer_blobs():
        assert fake.count("GET", r"/v2/.*/blobs/%s$" % bl.digest) == 2, bl

    # one file by digest
    layer = list(b.layer_blobs())[0]
    rc, out = m.ctl("purge", layer.digest)
    assert rc == 0 and out[-1].startswith("purged 1 file,"), out
    assert not m.has_blob(layer.digest)
    rc, out = m.ctl("purge", layer.digest)
    assert rc == 0 and "nothing to purge" in out[-1], out

    # bad input
    rc, out = m.ctl("purge")
    assert rc == 2 and out[0].startswith("usage: purge"), out
    rc, out = m.ctl("purge", "a:v1")
    assert rc == 2 and "starts with its registry" in out[0], out
    rc, out = m.ctl("purge", "team/a:v1")
    assert rc == 1 and 'no registry "team"' in out[0], out
    rc, out = m.ctl("purge", "nosuch.example/a:v1")
    assert rc == 1 and "no registry" in out[0], out
    rc, out = m.ctl("purge", "sha256:abc")
    assert rc == 2 and "digest" in out[0], out
    rc, out = m.ctl("evict")
    assert rc == 2 and out[0].startswith("usage: evict --dry-run"), out
    rc, out = m.ctl("frobnicate")
    assert rc == 2 and "unknown command" in out[0], out
    assert_store_consistent(m)


def test_pins_above_high_watermark_warned(mirror_factory, fake_upstream):
    """Pins alone above the high watermark: the image stays whole (pins
    are never evicted) and the fetcher says so in its log."""
    fake = fake_upstream
    big = make_image("big-pin", (8 * MiB, 8 * MiB))
    fake.add_image("team/big", "v1", big)
    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                       store_settings={"max_size": "12M",
                                       "pin": ["%s/team/big:*"
                                               % fake.hostport]})
    pull(m, "team/big", big)
    wait_for(lambda: "the pins alone hold" in open(m.fetcher_log).read(),
             10, interval=0.2, what="the warning about pins")
    time.sleep(GRACE + 1)
    assert whole(m, big) == []
    st = store_metrics(m)
    assert st["bytes"] > st["high_watermark_bytes"], st


def test_purged_blob_path(mirror_factory, fake_upstream):
    """A purged file is gone from the store and from the index."""
    fake = fake_upstream
    im = make_image("purge-index", (1 * MiB,))
    fake.add_image("team/p", "v1", im)
    m = mirror_factory(fake.hostport, [fake_registry_entry(fake)])
    pull(m, "team/p", im)
    wait_for(lambda: whole(m, im) == [], 10, what="stored")
    files = store_metrics(m)["files"]
    layer = list(im.layer_blobs())[0]
    rc, out = m.ctl("purge", layer.digest)
    assert rc == 0, out
    assert not os.path.exists(os.path.join(m.store, rel_blob(layer.digest)))
    assert store_metrics(m)["files"] == files - 1
    r = m.get("/v2/team/p/manifests/v1", {"Accept": ACCEPT_ALL})
    assert r.status == 200
