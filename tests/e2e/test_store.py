"""Deduplication: every blob once in the store, across images, and each
crosses the upstream link once."""

import os
import subprocess

from harness import (ACCEPT_ALL, assert_blob, assert_manifest,
                     oci_layout_digests, sha256_hex, skopeo_copy)


def _files_named(root, name):
    return [os.path.join(d, f) for d, _, files in os.walk(root)
            for f in files if f == name]


def _pull(m, repo, image):
    assert_manifest(m.get("/v2/%s/manifests/v1" % repo,
                          {"Accept": ACCEPT_ALL}), image.manifest)
    for b in image.layer_blobs():
        assert_blob(m.get("/v2/%s/blobs/%s" % (repo, b.digest)), b)


def test_shared_base_layer_stored_and_fetched_once(mirror, upstream,
                                                   catalog):
    a, b = catalog["shared_a"], catalog["shared_b"]
    base = a.layers[0].blob
    assert base.digest == b.layers[0].blob.digest
    mark = upstream.access.mark()
    _pull(mirror, "e2e/shared-a", a)
    _pull(mirror, "e2e/shared-b", b)
    upstream.access.settle()
    gets = [e for e in upstream.access.entries(mark)
            if e[0] == "GET" and e[1].endswith("/blobs/" + base.digest)]
    assert len(gets) == 1, gets
    assert _files_named(mirror.store, base.hex) == [mirror.blob_path(
        base.digest)]
    # every stored file is named by the sha256 of its content
    for digest in mirror.stored_digests():
        with open(mirror.blob_path(digest), "rb") as f:
            assert sha256_hex(f.read()) == digest.split(":")[1], digest
    want = {x.digest for x in a.blobs() + b.blobs()}
    assert want <= mirror.stored_digests()


def test_second_skopeo_copy_is_served_from_the_store(mirror, upstream,
                                                     catalog, tmp_path):
    image = catalog["multi"]
    want = {x.digest for x in image.blobs()}
    src = "docker://%s/e2e/multi:v1" % mirror.hostport
    for i in (1, 2):
        if i == 2:
            upstream.access.settle()
            mark = upstream.access.mark()
        out = tmp_path / ("copy%d" % i)
        p = skopeo_copy(src, "oci:%s:v1" % out)
        assert p.returncode == 0, p.stderr + mirror.diagnostics()
        top, blobs = oci_layout_digests(str(out))
        assert top == image.manifest.digest
        assert blobs == want
    upstream.access.settle()
    assert upstream.access.count("GET", r"/blobs/", mark) == 0, \
        upstream.access.entries(mark)
    assert upstream.access.count("GET", r"/manifests/", mark) == 0, \
        upstream.access.entries(mark)


def test_second_fetcher_on_the_store_refuses_and_sweeps_nothing(mirror):
    # a download of the running fetcher, as far as a sweep can tell
    tmp = os.path.join(mirror.store, "tmp", "dl.e2eBusy")
    with open(tmp, "wb") as f:
        f.write(b"partial")
    p = subprocess.run([mirror.fetcher_bin, "-c", mirror.config_path],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0, p.stderr
    assert "another fetcher uses this store" in p.stderr, p.stderr
    assert os.path.exists(tmp)
    # the first one still serves (its socket was left alone)
    assert mirror.get("/v2/").status == 200
    assert mirror.fetcher.alive()
    os.unlink(tmp)
