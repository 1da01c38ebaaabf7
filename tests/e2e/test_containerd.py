"""containerd pulling through the mirror as its registry mirror
(hosts.toml), the way Kubernetes nodes use it."""

import gzip
import io
import os
import subprocess
import tarfile

import pytest

from harness import CONTAINERD_BIN, CTR_BIN, Process, tail, \
    unix_connectable, wait_for

# one pytest-xdist worker runs them all (Makefile, E2E_JOBS): one
# containerd for the module
pytestmark = pytest.mark.xdist_group("containerd")

NAMESPACE = "e2e"


class Containerd:
    """A private containerd: its own root, state, sockets and config; no
    CRI, the native snapshotter for unpacking."""

    def __init__(self, workdir, sockdir):
        self.workdir = workdir
        self.root = os.path.join(workdir, "root")
        self.address = os.path.join(sockdir, "containerd.sock")
        self.config = os.path.join(workdir, "config.toml")
        self.log = os.path.join(workdir, "containerd.log")
        self.proc = None

    def start(self):
        with open(self.config, "w") as f:
            f.write('version = 2\n'
                    'root = "%s"\n'
                    'state = "%s"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    '[grpc]\n  address = "%s"\n'
                    '[ttrpc]\n  address = "%s.ttrpc"\n'
                    '[debug]\n  address = ""\n'
                    '[metrics]\n  address = ""\n'
                    '[plugins."io.containerd.internal.v1.opt"]\n'
                    '  path = "%s"\n'
                    % (self.root, os.path.join(self.workdir, "state"),
                       self.address, self.address,
                       os.path.join(self.workdir, "opt")))
        self.proc = Process("containerd", [CONTAINERD_BIN, "--config",
                                           self.config], self.log).start()

        def up():
            if not self.proc.alive():
                raise AssertionError("containerd exited:\n" + tail(self.log))
            return unix_connectable(self.address)
        wait_for(up, 20, what="containerd socket")
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop()

    def ctr(self, *args, timeout=120):
        cmd = [CTR_BIN, "-a", self.address, "-n", NAMESPACE] + list(args)
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout)

    def snapshot_dirs(self):
        root = os.path.join(self.root, "io.containerd.snapshotter.v1.native",
                            "snapshots")
        return [os.path.join(root, d) for d in os.listdir(root)]


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    c = Containerd(str(tmp_path_factory.mktemp("containerd")),
                   str(tmp_path_factory.mktemp("c"))).start()
    yield c
    c.stop()


def _hosts_dir(tmp_path, upstream, mirror):
    d = tmp_path / "hosts" / upstream.hostport
    d.mkdir(parents=True)
    (d / "hosts.toml").write_text(
        'server = "%s"\n\n[host."http://%s"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        % (upstream.url, mirror.hostport))
    return str(tmp_path / "hosts")


def _layer_file(blob, member):
    """The bytes of one file in a gzip tar layer."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.data))) as t:
        return t.extractfile(member).read()


def _assert_through_mirror(mirror, upstream, up_mark, digests):
    entries = mirror.access.entries()
    # containerd encodes the query with Go's url.Values: ':' is "%3A"
    ns = "ns=" + upstream.hostport.replace(":", "%3A")
    seen = {p for _, p, s in entries if s == 200 and ns in p}
    for d in digests:
        assert any(d in p for p in seen), (d, entries)
    # containerd itself never went to the upstream (no fallback)
    with open(upstream.access_log_path, "rb") as f:
        f.seek(up_mark)
        direct = [l for l in f.read().decode().splitlines()
                  if "containerd" in l]
    assert direct == [], direct


def _pull(containerd, hosts, ref, *extra):
    p = containerd.ctr("images", "pull", "--hosts-dir", hosts,
                       "--snapshotter", "native", *extra, ref)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def test_pull_and_unpack_through_mirror(containerd, mirror, upstream,
                                        catalog, tmp_path):
    multi = catalog["multi"]
    hosts = _hosts_dir(tmp_path, upstream, mirror)
    ref = "%s/e2e/multi:v1" % upstream.hostport
    up_mark = upstream.access.mark()
    _pull(containerd, hosts, ref, "--platform", "linux/amd64")

    _assert_through_mirror(mirror, upstream, up_mark,
                           [b.digest for b in multi.blobs()])
    assert any("/manifests/v1?" in p for _, p, _ in mirror.access.entries())

    ls = containerd.ctr("images", "ls")
    assert multi.manifest.digest in ls.stdout, ls.stdout

    # unpacked: five snapshots, and a file of the 3 MiB layer is there
    snaps = containerd.ctr("snapshots", "--snapshotter", "native", "ls")
    assert len(snaps.stdout.strip().splitlines()) - 1 >= len(multi.layers), \
        snaps.stdout
    want = _layer_file(multi.layers[2].blob, "opt/two/big.bin")
    found = [d for d in containerd.snapshot_dirs()
             if os.path.exists(os.path.join(d, "opt/two/big.bin"))]
    assert found, containerd.snapshot_dirs()
    with open(os.path.join(found[0], "opt/two/big.bin"), "rb") as f:
        assert f.read() == want


def test_pull_one_platform_of_an_index(containerd, mirror, upstream, catalog,
                                       tmp_path):
    plat = catalog["plat"]
    arm = [im for im in plat.images if im.arch == "arm64"][0]
    amd = [im for im in plat.images if im.arch == "amd64"][0]
    hosts = _hosts_dir(tmp_path, upstream, mirror)
    ref = "%s/e2e/plat:v1" % upstream.hostport
    up_mark = upstream.access.mark()
    _pull(containerd, hosts, ref, "--platform", "linux/arm64")

    _assert_through_mirror(mirror, upstream, up_mark,
                           [plat.index.digest]
                           + [b.digest for b in arm.blobs()])
    ls = containerd.ctr("images", "ls")
    assert plat.index.digest in ls.stdout, ls.stdout
    # containerd asked only for the platform it wanted
    asked = " ".join(p for _, p, _ in mirror.access.entries())
    assert amd.layers[0].blob.digest not in asked
    want = _layer_file(arm.layers[0].blob, "bin/arm")
    found = [d for d in containerd.snapshot_dirs()
             if os.path.exists(os.path.join(d, "bin/arm"))]
    assert found
    with open(os.path.join(found[0], "bin/arm"), "rb") as f:
        assert f.read() == want
