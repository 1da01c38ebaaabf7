"""Warm lists: images the fetcher pulls into the store with no client
asking (the config's warm, the warm_file, ocimirrorctl warm), only the
platforms asked for; a later pull costs the upstream no blob; the
warm_file is read again when it changes; the warm and warm-status
commands on the fetcher's socket, their errors and warm_max; a round
that failed upstream is retried at the next interval."""

import os
import re
import socket
import time

from harness import (ACCEPT_ALL, assert_blob, assert_manifest,
                     assert_store_consistent, fake_registry_entry, read_text,
                     wait_for)

STATUS_LINE = re.compile(r"^#(\d+) (resolving|fetching|done|failed) (\S+) "
                         r"(\d+)/(\d+) (\d+)/(\d+)$")
BLOB_LINE = re.compile(r"^  (sha256:[0-9a-f]{64}) "
                       r"(queued|fetching|stored|failed) (\d+)/(\d+)$")


def ctl(m, command, timeout=20):
    """One command on the fetcher's socket, as ocimirrorctl sends it:
    (END status, [OUT texts])."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(m.socket_path)
    try:
        s.sendall(("CTL 7 %s\n" % command).encode())
        buf, out = b"", []
        while True:
            chunk = s.recv(65536)
            assert chunk, "the fetcher closed the socket: %r" % out
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode()
                if text == "OUT 7" or text.startswith("OUT 7 "):
                    out.append(text[6:])
                elif text.startswith("END 7 "):
                    return int(text[6:]), out
                else:
                    raise AssertionError("unexpected line %r" % text)
    finally:
        s.close()


def status(m):
    """warm-status as {ref: (id, state, blobs_done, blobs, bytes_done,
    bytes)}; every line must parse."""
    rc, out = ctl(m, "warm-status")
    assert rc == 0, out
    images = {}
    for line in out:
        g = STATUS_LINE.match(line)
        assert g, line
        images[g[3]] = (int(g[1]), g[2], int(g[4]), int(g[5]), int(g[6]),
                        int(g[7]))
    return images


def wait_state(m, ref, state, timeout=60):
    def reached():
        got = status(m).get(ref)
        return got if got is not None and got[1] == state else None
    return wait_for(reached, timeout, interval=0.5,
                    what="%s %s in warm-status (%s)" % (ref, state,
                                                        status(m)))


def metrics(m):
    r = m.get("/metrics")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, v = line.rpartition(" ")
            out[name] = float(v)
    return out


def blob_gets(fake):
    return fake.count("GET", r"/blobs/")


def _fixture(mirror_factory, fake_upstream, catalog, settings, **kw):
    plat = catalog["plat"]
    fake_upstream.add_image("team/plat", "v1", plat)
    fake_upstream.add_image("team/small", "v1", catalog["small"])
    kw.setdefault("prefetch", {"enabled": False})
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       settings=settings, **kw)
    return m, plat


def test_config_warm_list_fills_the_store(mirror_factory, fake_upstream,
                                          catalog):
    """No client: the index's arm64 image lands, amd64 does not; the pull
    that follows costs the upstream no blob and no manifest."""
    ref = "%s/team/plat:v1" % fake_upstream.hostport
    m, plat = _fixture(mirror_factory, fake_upstream, catalog,
                       {"warm": [{"ref": ref,
                                  "platforms": ["linux/arm64"]}]})
    amd, arm = plat.images
    assert (amd.arch, arm.arch) == ("amd64", "arm64")

    got = wait_state(m, ref, "done")
    want = arm.layer_blobs()
    assert got == (1, "done", len(want), len(want),
                   sum(b.size for b in want), sum(b.size for b in want))
    for b in [plat.index, arm.manifest] + want:
        assert m.has_blob(b.digest), b
    for b in [amd.manifest] + amd.layer_blobs():
        assert not m.has_blob(b.digest), b
        assert fake_upstream.count("GET", re.escape(b.digest)) == 0, b
    # the tag was asked at prefetch priority, once, and each blob once
    assert fake_upstream.count("GET", r"/manifests/v1$") == 1
    for b in want:
        assert fake_upstream.count("GET", "/blobs/" + b.digest) == 1, b

    # per blob: digest, stored, its bytes
    rc, out = ctl(m, "warm-status 1")
    assert rc == 0, out
    assert STATUS_LINE.match(out[0]), out
    assert sorted(out[1:]) == sorted("  %s stored %d/%d" % (
        b.digest, b.size, b.size) for b in want)

    rc, out = ctl(m, "status")
    assert rc == 0, out
    assert "warm        1 images: 0 pending, 1 done, 0 failed" in out, out

    samples = metrics(m)
    assert samples['ocimirror_fetcher_warm_images{state="done"}'] == 1
    assert samples['ocimirror_fetcher_warm_images{state="pending"}'] == 0
    assert samples['ocimirror_fetcher_warm_images{state="failed"}'] == 0
    assert samples["ocimirror_fetcher_warm_downloads_total"] == \
        1 + len(want)
    assert samples['ocimirror_fetcher_warm_rounds_total{result="done"}'] \
        == 1

    # a client's pull now: served from the store
    fake_upstream.reset_counts()
    assert_manifest(m.get("/v2/team/plat/manifests/v1",
                          {"Accept": ACCEPT_ALL}), plat.index)
    assert_manifest(m.get("/v2/team/plat/manifests/" + arm.manifest.digest,
                          {"Accept": ACCEPT_ALL}), arm.manifest)
    for b in want:
        assert_blob(m.get("/v2/team/plat/blobs/" + b.digest), b)
    assert blob_gets(fake_upstream) == 0, fake_upstream.requests
    assert fake_upstream.count(None, r"/manifests/") == 0
    assert_store_consistent(m)


def test_no_platforms_means_prefetch_platforms(mirror_factory,
                                               fake_upstream, catalog):
    ref = "%s/team/plat:v1" % fake_upstream.hostport
    m, plat = _fixture(mirror_factory, fake_upstream, catalog,
                       {"warm": [ref]},
                       prefetch={"enabled": False,
                                 "platforms": ["linux/amd64"]})
    amd, arm = plat.images
    wait_state(m, ref, "done")
    for b in [amd.manifest] + amd.layer_blobs():
        assert m.has_blob(b.digest), b
    for b in [arm.manifest] + arm.layer_blobs():
        assert not m.has_blob(b.digest), b


def test_warm_file_read_again_when_it_changes(mirror_factory,
                                              fake_upstream, catalog,
                                              tmp_path):
    path = str(tmp_path / "warm.list")
    host = fake_upstream.hostport
    plat_ref = "%s/team/plat:v1" % host
    small_ref = "%s/team/small:v1" % host
    m, plat = _fixture(mirror_factory, fake_upstream, catalog,
                       {"warm_file": path})
    small = catalog["small"]

    # missing: logged once, an empty list
    wait_for(lambda: "taken as an empty list" in read_text(m.fetcher_log),
             20, what="the missing warm_file logged")
    time.sleep(2.5)
    assert read_text(m.fetcher_log).count("taken as an empty list") == 1
    assert status(m) == {}

    # written: a comment, the small image, a bad line, an unknown registry
    with open(path + ".new", "w") as f:
        f.write("# warmed for the team\n\n%s\nnot a reference\n"
                "nowhere.test/x:1 linux/amd64\n" % small_ref)
    os.replace(path + ".new", path)
    wait_state(m, small_ref, "done")
    for b in small.blobs():
        assert m.has_blob(b.digest), b
    log = read_text(m.fetcher_log)
    assert "%s:4: " % path in log, log
    assert '%s:5: "nowhere.test/x:1": no registry "nowhere.test"' % path \
        in log, log
    assert metrics(m)["ocimirror_fetcher_warm_file_bad_lines"] == 2

    # changed in place (same inode, other size): plat with its arm64
    # platform comes, small leaves
    with open(path, "w") as f:
        f.write("%s   linux/arm64   # the arm boards\n" % plat_ref)
    wait_state(m, plat_ref, "done")
    images = status(m)
    assert list(images) == [plat_ref], images
    assert images[plat_ref][0] == 2
    amd, arm = plat.images
    for b in arm.layer_blobs():
        assert m.has_blob(b.digest), b
    for b in amd.layer_blobs():
        assert not m.has_blob(b.digest), b
    assert metrics(m)["ocimirror_fetcher_warm_file_bad_lines"] == 0


def test_warm_command_and_status(mirror_factory, fake_upstream, catalog):
    m, plat = _fixture(mirror_factory, fake_upstream, catalog, None)
    host = fake_upstream.hostport
    small = catalog["small"]
    ref = "%s/team/small:v1" % host

    rc, out = ctl(m, "warm %s" % ref)
    assert (rc, out) == (0, ["#1 queued %s" % ref])
    wait_state(m, ref, "done")
    for b in small.blobs():
        assert m.has_blob(b.digest), b

    # named again: the same image, resolved again (one more tag request)
    gets = fake_upstream.count(None, r"/team/small/manifests/v1$")
    rc, out = ctl(m, "warm %s" % ref)
    assert (rc, out) == (0, ["#1 queued %s" % ref])
    wait_for(lambda: fake_upstream.count(
        None, r"/team/small/manifests/v1$") > gets, 20,
        what="the tag asked again")
    wait_state(m, ref, "done")
    assert list(status(m)) == [ref]

    # a digest reference, with a platform, as "#2"
    digest_ref = "%s/team/plat@%s" % (host, plat.index.digest)
    rc, out = ctl(m, "warm %s linux/arm64" % digest_ref)
    assert (rc, out) == (0, ["#2 queued %s" % digest_ref])
    wait_state(m, digest_ref, "done")
    rc, out = ctl(m, "warm-status #2")
    assert rc == 0, out
    assert [BLOB_LINE.match(line)[1] for line in out[1:]] == [
        b.digest for b in plat.images[1].layer_blobs()]

    # the errors
    rc, out = ctl(m, "warm-status 99")
    assert rc == 1 and out == ['no warm image #99; "warm-status" lists '
                               'them'], out
    rc, out = ctl(m, "warm-status x1")
    assert rc == 2 and len(out) == 1 and "an ID is a number" in out[0]
    rc, out = ctl(m, "warm %s/Team/small:v1" % host)
    assert rc == 2 and out == ['"%s/Team/small:v1": the repository name '
                               "must be lower-case components separated "
                               "by '/'" % host], out
    rc, out = ctl(m, "warm nginx:1")
    assert rc == 2 and "starts with its registry" in out[0], out
    rc, out = ctl(m, "warm quay.io/org/app:1")
    assert rc == 1 and out == ['"quay.io/org/app:1": no registry '
                               '"quay.io" in the config'], out
    rc, out = ctl(m, "warm %s linux" % ref)
    assert rc == 2 and "a platform is" in out[0], out
    rc, out = ctl(m, "warm")
    assert rc == 2 and out[0].startswith("usage: warm REF"), out
    assert len(status(m)) == 2


def test_warm_max(mirror_factory, fake_upstream, catalog):
    host = fake_upstream.hostport
    ref = "%s/team/small:v1" % host
    m, _ = _fixture(mirror_factory, fake_upstream, catalog,
                    {"warm": [ref], "warm_max": 1})
    rc, out = ctl(m, "warm %s/team/plat:v1" % host)
    assert rc == 1 and out == ["warm_max reached: 1 images are warmed "
                               "already, nothing added"], out
    assert metrics(m)["ocimirror_fetcher_warm_refused_total"] == 1
    # one listed already is no new image
    rc, out = ctl(m, "warm %s" % ref)
    assert (rc, out) == (0, ["#1 queued %s" % ref])
    assert list(status(m)) == [ref]
    assert metrics(m)["ocimirror_fetcher_warm_refused_total"] == 1


def test_failed_round_retried_at_the_next_interval(mirror_factory,
                                                   fake_upstream, catalog):
    small = catalog["small"]
    ref = "%s/team/small:v1" % fake_upstream.hostport
    fake_upstream.fail[r"/team/small/manifests/"] = (503, "UNAVAILABLE")
    m, _ = _fixture(mirror_factory, fake_upstream, catalog,
                    {"warm": [ref], "warm_interval": 10})
    wait_state(m, ref, "failed")
    samples = metrics(m)
    assert samples['ocimirror_fetcher_warm_images{state="failed"}'] == 1
    assert samples['ocimirror_fetcher_warm_rounds_total{result="failed"}'] \
        >= 1
    assert "warm #1 %s: failed: " % ref in read_text(m.fetcher_log)
    assert not m.has_blob(small.manifest.digest)

    # the upstream is back: the next round fetches it
    del fake_upstream.fail[r"/team/small/manifests/"]
    wait_state(m, ref, "done", timeout=60)
    for b in small.blobs():
        assert m.has_blob(b.digest), b
    rc, out = ctl(m, "status")
    assert "warm        1 images: 0 pending, 1 done, 0 failed" in out, out
    assert_store_consistent(m)
