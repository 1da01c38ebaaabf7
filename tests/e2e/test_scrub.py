"""The store scrub end to end: a layer whose stored bytes were damaged is
found by `scrub`, moved to quarantine/, counted in /metrics, and the next
pull fetches it again; an image whose config names a wrong diff_id is
reported by `scrub --deep` (image, tag, layer and both diff_ids); a zstd
layer is skipped and counted; one pass at a time.

The commands go over the fetcher's socket as ocimirrorctl sends them
(CTL <id> <command>, answered by OUT lines and END <id> <status>); one
goes through ocimirrorctl itself, whose --wait follows the "state" line.
"""

import os
import re
import socket
import subprocess

import images
from harness import (ACCEPT_ALL, assert_blob, assert_manifest,
                     fake_registry_entry, sha256_hex, wait_for)

FAST = {"scrub_rate": "1G"}


def ctl(m, command, timeout=30):
    """Send one command; (status, [OUT texts])."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(m.socket_path)
        s.sendall(b"CTL 7 " + command.encode() + b"\n")
        buf, out = b"", []
        while True:
            chunk = s.recv(65536)
            assert chunk, "the fetcher closed the socket: %r" % out
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                verb, _, rest = line.decode().partition(" ")
                rid, _, text = rest.partition(" ")
                assert rid == "7", line
                if verb == "OUT":
                    out.append(text)
                elif verb == "END":
                    return int(text), out
                else:
                    raise AssertionError("unexpected line %r" % line)
    finally:
        s.close()


def scrub_status(m):
    """scrub-status as {first word: [lines]}."""
    status, out = ctl(m, "scrub-status")
    assert status == 0, out
    lines = {}
    for line in out:
        lines.setdefault(line.split(" ", 1)[0], []).append(line)
    return lines


def wait_done(m, timeout=60):
    """Until the pass this process ran is over; its scrub-status."""
    def done():
        st = scrub_status(m)
        if st["state"][0].split()[1] == "idle" and \
                st["progress"][0].split()[1] == "last":
            return st
        return None
    return wait_for(done, timeout, interval=0.1, what="the scrub pass")


def metrics(m):
    """The unlabelled samples of /metrics."""
    r = m.get("/metrics")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def pull(m, repo, tag, image):
    assert_manifest(m.get("/v2/%s/manifests/%s" % (repo, tag),
                          {"Accept": ACCEPT_ALL}), image.manifest)
    for b in image.layer_blobs():
        assert_blob(m.get("/v2/%s/blobs/%s" % (repo, b.digest)), b)
    for b in image.blobs():
        wait_for(lambda: m.has_blob(b.digest), 10, what="stored " + b.digest)


def quarantine(m):
    d = os.path.join(m.store, "quarantine")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def _layer(seed, size, **kw):
    return images.Layer("ocimirror-e2e:scrub-" + seed,
                        [("data/%s.bin" % seed, size)], **kw)


def test_flipped_layer_is_quarantined_and_fetched_again(mirror_factory,
                                                        fake_upstream):
    image = images.Image("scrub-flip", [_layer("flip-1", 300000),
                                        _layer("flip-2", 5000)])
    target = image.layers[0].blob
    fake_upstream.add_image("e2e/flip", "v1", image)

    # The layer reaches the client streamed from its temp file, never as a
    # hit: an nginx worker that served it from the store would keep its
    # descriptor in the open_file_cache (the quarantined inode) for up to
    # open_file_cache_valid, which is nginx's, not the scrub's.  No
    # prefetch, and an upstream slow enough for the worker to open the
    # temp file before the download ends.
    fake_upstream.throttle[target.digest] = 1000000
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       store_settings=FAST, prefetch={"enabled": False})
    pull(m, "e2e/flip", "v1", image)

    with open(m.blob_path(target.digest), "r+b") as f:
        f.seek(target.size // 2)
        byte = f.read(1)
        f.seek(target.size // 2)
        f.write(bytes([byte[0] ^ 0x40]))
    damaged = bytearray(target.data)
    damaged[target.size // 2] ^= 0x40

    status, out = ctl(m, "scrub")
    assert status == 0, out
    assert out[0].startswith("scrub started: the whole store"), out
    st = wait_done(m)

    # counted, named, moved with the bytes it held
    assert "corrupt 1," in st["counts"][0], st
    assert "checked 4," in st["counts"][0], st
    finding = st["finding"][0]
    assert " corrupt %s hashes to sha256:%s" % (
        target.digest, sha256_hex(bytes(damaged))) in finding, finding
    assert not m.has_blob(target.digest)
    names = quarantine(m)
    assert len(names) == 1 and re.fullmatch(target.hex + r"\.\d+",
                                            names[0]), names
    assert names[0] in finding, finding
    with open(os.path.join(m.store, "quarantine", names[0]), "rb") as f:
        assert f.read() == bytes(damaged)
    assert "does not match its digest" in open(m.fetcher_log).read()

    got = metrics(m)
    assert got["ocimirror_fetcher_scrub_corrupt_total"] == 1, got
    assert got["ocimirror_fetcher_scrub_checked_total"] == 4, got
    assert got["ocimirror_fetcher_quarantine_files"] == 1, got
    assert got["ocimirror_fetcher_scrub_running"] == 0, got
    assert got["ocimirror_fetcher_scrub_last_completed_timestamp_seconds"] \
        > 0, got
    assert got["ocimirror_fetcher_scrub_checked_bytes_total"] == sum(
        b.size for b in image.blobs()), got

    # the next pull is a miss: the right bytes, fetched again
    path = r"/blobs/" + target.digest
    before = fake_upstream.count("GET", path)
    assert_blob(m.get("/v2/e2e/flip/blobs/" + target.digest), target)
    assert fake_upstream.count("GET", path) == before + 1
    with open(m.blob_path(target.digest), "rb") as f:
        assert f.read() == target.data

    # the pass left the schedule's state, and status has its line
    assert os.path.exists(os.path.join(m.store, "scrub.state"))
    status, out = ctl(m, "status")
    assert status == 0, out
    assert [l for l in out if l.startswith("scrub       idle")], out


def test_deep_scrub_reports_a_wrong_diff_id(mirror_factory, fake_upstream,
                                           ctl_bin):
    layer = _layer("deep", 200000)
    wrong = images.sha256_digest(b"not the layer's tar")
    image = images.Image("scrub-deep", [layer], diff_ids=[wrong])
    fake_upstream.add_image("e2e/wrong", "v1", image)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       store_settings=FAST)
    pull(m, "e2e/wrong", "v1", image)

    # the blobs match their digests: a plain scrub has nothing to say
    status, out = ctl(m, "scrub")
    assert status == 0, out
    st = wait_done(m)
    assert "corrupt 0, diff_id mismatches 0," in st["counts"][0], st

    # through the operator's CLI, which polls scrub-status until idle
    p = subprocess.run([ctl_bin, "-c", m.config_path, "scrub", "--wait",
                        "--deep"], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, (p.stdout, p.stderr)
    out = p.stdout.splitlines()
    assert out[0].startswith("scrub started: the whole store, deep"), out
    assert "state       idle" in out, out
    assert [l for l in out if l.startswith("finding     ")], out
    st = wait_done(m)

    assert "corrupt 0, diff_id mismatches 1," in st["counts"][0], st
    assert st["state"][0] == "state       idle", st
    finding = st["finding"][0]
    assert "diff_id image %s (%s/e2e/wrong:v1) layer %s expected %s " \
        "computed %s" % (image.manifest.digest, fake_upstream.hostport,
                         layer.blob.digest, wrong, layer.diff_id) \
        in finding, finding

    # not quarantined: the blob is what upstream serves
    assert m.has_blob(layer.blob.digest)
    assert quarantine(m) == []
    got = metrics(m)
    assert got["ocimirror_fetcher_scrub_diff_id_mismatches_total"] == 1, got
    assert got["ocimirror_fetcher_scrub_corrupt_total"] == 0, got
    assert got["ocimirror_fetcher_quarantine_files"] == 0, got
    log = open(m.fetcher_log).read()
    assert "config names %s" % wrong in log


def test_deep_scrub_of_one_image_skips_zstd(mirror_factory, fake_upstream):
    gz = _layer("zstd-gz", 30000)
    zst = _layer("zstd-zst", 30000, zstd=True)
    image = images.Image("scrub-zstd", [gz, zst])
    other = images.Image("scrub-other", [_layer("other", 4000)])
    fake_upstream.add_image("e2e/zstd", "v1", image)
    fake_upstream.add_image("e2e/other", "v1", other)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       store_settings=FAST)
    pull(m, "e2e/zstd", "v1", image)
    pull(m, "e2e/other", "v1", other)

    ref = "%s/e2e/zstd:v1" % fake_upstream.hostport
    status, out = ctl(m, "scrub --deep " + ref)
    assert status == 0, out
    assert out[0].startswith("scrub started: %s (%s), deep"
                             % (ref, image.manifest.digest)), out
    st = wait_done(m)

    # only this image's files: the manifest, the config, two layers
    assert "4 of 4 files checked" in st["progress"][0], st
    assert "checked 4, corrupt 0, diff_id mismatches 0, skipped 1," \
        in st["counts"][0], st
    assert st["findings"] == ["findings    none since the fetcher started"]
    got = metrics(m)
    assert got["ocimirror_fetcher_scrub_skipped_total"] == 1, got
    assert got["ocimirror_fetcher_scrub_checked_total"] == 4, got
    # an image's pass is no pass of the store
    assert got["ocimirror_fetcher_scrub_last_completed_timestamp_seconds"] \
        == 0, got

    # a reference the store does not hold
    status, out = ctl(m, "scrub %s/e2e/nothing:v9" % fake_upstream.hostport)
    assert status == 1, out
    assert "not in the store" in out[0], out


def test_one_pass_at_a_time(mirror_factory, fake_upstream):
    # 1 MiB at the lowest rate the config allows: the pass lasts long
    # after the second request, and the teardown stops it midway
    image = images.Image("scrub-slow", [_layer("slow", 1024 * 1024,
                                               level=0)])
    fake_upstream.add_image("e2e/slow", "v1", image)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       store_settings={"scrub_rate": "64K"})
    pull(m, "e2e/slow", "v1", image)

    status, out = ctl(m, "scrub")
    assert status == 0, out
    status, out = ctl(m, "scrub --deep")
    assert status == 1, out
    assert out[0].startswith("a scrub is running already"), out

    st = scrub_status(m)
    assert st["state"][0].startswith("state       running: the whole "
                                     "store"), st
    assert "limit 64.0 KiB/s" in st["rate"][0], st
    assert metrics(m)["ocimirror_fetcher_scrub_running"] == 1
    status, out = ctl(m, "status")
    assert [l for l in out if l.startswith("scrub       running")], out

    # usage
    status, out = ctl(m, "scrub --fast")
    assert status == 2, out
