"""skopeo (containers/image) as a real client of the mirror."""

from harness import oci_layout_digests, skopeo_copy, upstream_registry


def _copy(src, out):
    p = skopeo_copy(src, "oci:%s:v1" % out)
    assert p.returncode == 0, p.stderr
    return oci_layout_digests(str(out))


def test_multi_platform_copy_reproduces_every_digest(mirror, upstream,
                                                     catalog, tmp_path):
    plat = catalog["plat"]
    direct = _copy("docker://%s/e2e/plat:v1" % upstream.hostport,
                   tmp_path / "direct")
    via = _copy("docker://%s/e2e/plat:v1" % mirror.hostport,
                tmp_path / "via")
    assert via == direct
    assert via[0] == plat.index.digest
    assert via[1] == {b.digest for b in plat.blobs()}


def test_large_image_copy_through_a_cold_mirror(mirror, catalog, tmp_path):
    large = catalog["large"]
    top, blobs = _copy("docker://%s/e2e/large:v1" % mirror.hostport,
                       tmp_path / "large")
    assert top == large.manifest.digest
    assert blobs == {b.digest for b in large.blobs()}


def test_copy_with_registry_prefix_to_dir(mirror_factory, upstream,
                                          catalog, tmp_path):
    """A client naming the registry in the path (/v2/mirror.test/...):
    every blob arrives byte for byte."""
    m = mirror_factory(upstream.hostport, [
        upstream_registry(upstream),
        {"name": "mirror.test", "endpoints": [upstream.url]}])
    multi = catalog["multi"]
    out = tmp_path / "dir"
    p = skopeo_copy("docker://%s/mirror.test/e2e/multi:v1" % m.hostport,
                    "dir:%s" % out)
    assert p.returncode == 0, p.stderr + m.diagnostics()
    for b in multi.layer_blobs():
        assert (out / b.hex).read_bytes() == b.data
