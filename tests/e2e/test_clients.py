"""`ocimirrorctl clients` writes the files that point container runtimes
at the mirror; containerd and podman pull through the mirror with exactly
those files, untouched.

The mirror serves the docker-registry upstream under two names:
"upstream.test", a host name that resolves nowhere (only the mirror's
config knows its endpoint), so that a pull of upstream.test/... can only
have come through the mirror; and the upstream's own 127.0.0.1:<port>,
the default registry, which podman reaches through the bare mirror (a
name with a port cannot be a path part) and which the clients could reach
directly: its upstream access log must show no request of theirs."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib

import pytest
import yaml

from harness import free_port, require_file
from test_containerd import Containerd
from test_ctl import assert_error, ctl
from tlsutil import make_pki

PODMAN_BIN = "/usr/bin/podman"
NAME = "upstream.test"


@pytest.fixture
def named_mirror(mirror_factory, upstream):
    return mirror_factory(upstream.hostport, [
        {"name": NAME, "endpoints": [upstream.url], "tag_ttl": 300},
        {"name": upstream.hostport, "endpoints": [upstream.url],
         "tag_ttl": 300},
    ])


def _generate(ctl_bin, mirror, out, *extra):
    p = ctl(ctl_bin, "clients", "--mirror", "http://" + mirror.hostport,
            "--out", str(out), *extra, config=mirror.config_path)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert p.stderr == "", p.stderr
    return p.stdout.splitlines()


def _files(root):
    found = []
    for d, _, names in os.walk(root):
        found += [os.path.relpath(os.path.join(d, n), root) for n in names]
    return sorted(found)


def _through_mirror(mirror, mark, prefix, digests):
    """Every digest was served 200 by the mirror, under /v2/<prefix>."""
    paths = [p for _, p, s in mirror.access.entries(mark) if s == 200]
    for d in digests:
        assert any(p.startswith("/v2/" + prefix) and d in p
                   for p in paths), (d, paths)
    return paths


def _no_client_upstream(upstream, mark, agent):
    """The upstream saw no request of the client (only the fetcher's,
    "ocimirror/...")."""
    with open(upstream.access_log_path, "rb") as f:
        f.seek(mark)
        lines = f.read().decode().splitlines()
    direct = [l for l in lines if agent in l]
    assert direct == [], direct
    # the log names user agents: the fetcher's cold fetches are there
    assert any("ocimirror/" in l for l in lines), lines


def test_generated_layout(named_mirror, upstream, ctl_bin, tmp_path):
    out = tmp_path / "gen"
    lines = _generate(ctl_bin, named_mirror, out)

    hp = upstream.hostport
    assert _files(out) == sorted([
        "containerd/certs.d/%s/hosts.toml" % NAME,
        "containerd/certs.d/%s/hosts.toml" % hp,
        "registries.conf.d/ocimirror.conf",
    ])
    assert lines == ["wrote %s/%s" % (out, f) for f in (
        "containerd/certs.d/%s/hosts.toml" % NAME,
        "containerd/certs.d/%s/hosts.toml" % hp,
        "registries.conf.d/ocimirror.conf")] + [
        "note: no Docker files: docker: default_registry is \"%s\", not "
        "docker.io; Docker's registry-mirrors serve Docker Hub only and "
        "would get another registry's images" % hp]

    toml = (out / "containerd/certs.d" / NAME / "hosts.toml").read_text()
    assert 'server = "https://%s"\n' % NAME in toml
    assert '[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
        % named_mirror.hostport in toml
    # the upstream's own name: it is its own plain-http endpoint
    toml = (out / "containerd/certs.d" / hp / "hosts.toml").read_text()
    assert 'server = "%s"\n' % upstream.url in toml

    for reg in (NAME, hp):
        parsed = tomllib.loads(
            (out / "containerd/certs.d" / reg / "hosts.toml").read_text())
        assert parsed["host"]["http://" + named_mirror.hostport] == {
            "capabilities": ["pull", "resolve"]}, parsed

    conf = (out / "registries.conf.d/ocimirror.conf").read_text()
    assert [(r["prefix"], r["location"], r["mirror"])
            for r in tomllib.loads(conf)["registry"]] == [
        (NAME, NAME, [{"location": "%s/%s" % (named_mirror.hostport, NAME),
                       "insecure": True}]),
        (hp, hp, [{"location": named_mirror.hostport, "insecure": True}])]
    assert ('[[registry.mirror]]\nlocation = "%s/%s"\ninsecure = true\n'
            % (named_mirror.hostport, NAME)) in conf
    assert ('[[registry.mirror]]\nlocation = "%s"\ninsecure = true\n'
            % named_mirror.hostport) in conf

    # Docker alone is refused with the reason; the same bytes again
    before = {f: (out / f).read_bytes() for f in _files(out)}
    p = ctl(ctl_bin, "clients", "--mirror", "http://" + named_mirror.hostport,
            "--out", str(out), "--format", "docker",
            config=named_mirror.config_path)
    assert_error(p, 1, "default_registry is \"%s\", not docker.io" % hp)
    _generate(ctl_bin, named_mirror, out)
    assert {f: (out / f).read_bytes() for f in _files(out)} == before


def test_generated_errors(named_mirror, ctl_bin, tmp_path):
    cfg = named_mirror.config_path
    p = ctl(ctl_bin, "clients", "--mirror", "http://m:5000/prefix",
            "--out", str(tmp_path), config=cfg)
    assert_error(p, 2, "bad mirror URL \"http://m:5000/prefix\"",
                 "the mirror answers /v2/ at its root")
    p = ctl(ctl_bin, "clients", "--out", str(tmp_path), config=cfg)
    assert_error(p, 2, "--mirror URL is needed")
    p = ctl(ctl_bin, "clients", "--mirror", "http://m", "--ca", "/ca.pem",
            config=cfg)
    assert_error(p, 2, "--ca is for an https:// mirror")
    p = ctl(ctl_bin, "clients", "--mirror", "https://m", "--ca", "ca.pem",
            config=cfg)
    assert_error(p, 2, "the path on the nodes, absolute")
    p = ctl(ctl_bin, "clients", "--mirror", "http://m", "--format", "rkt",
            config=cfg)
    assert_error(p, 2, "--format \"rkt\"")
    blocker = tmp_path / "afile"
    blocker.write_text("")
    p = ctl(ctl_bin, "clients", "--mirror", "http://m", "--out",
            str(blocker), config=cfg)
    assert_error(p, 1, "cannot create the folder \"%s/containerd\": Not a "
                 "directory" % blocker)
    p = ctl(ctl_bin, "-c", str(tmp_path / "none.cfg"), "clients",
            "--mirror", "http://m")
    assert_error(p, 1, "none.cfg")


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    c = Containerd(str(tmp_path_factory.mktemp("containerd")),
                   str(tmp_path_factory.mktemp("c"))).start()
    yield c
    c.stop()


def test_containerd_pulls_with_generated_hosts(containerd, named_mirror,
                                               upstream, catalog, ctl_bin,
                                               tmp_path):
    out = tmp_path / "gen"
    _generate(ctl_bin, named_mirror, out, "--format", "containerd")
    hosts = str(out / "containerd" / "certs.d")

    multi, small = catalog["multi"], catalog["small"]
    for ref, image in (("%s/e2e/multi:v1" % NAME, multi),
                       ("%s/e2e/small:v1" % upstream.hostport, small)):
        mark = named_mirror.access.mark()
        up_mark = upstream.access.mark()
        p = containerd.ctr("images", "pull", "--hosts-dir", hosts,
                           "--platform", "linux/amd64", ref)
        assert p.returncode == 0, p.stdout + p.stderr
        # containerd's ?ns= names the registry (":" encoded as %3A)
        ns = "ns=" + ref.split("/")[0].replace(":", "%3A")
        paths = _through_mirror(named_mirror, mark, "",
                                [b.digest for b in image.blobs()])
        for d in [b.digest for b in image.blobs()]:
            assert any(d in p and ns in p for p in paths), (d, ns, paths)
        _no_client_upstream(upstream, up_mark, "containerd")
        ls = containerd.ctr("images", "ls")
        assert image.manifest.digest in ls.stdout, ls.stdout


class Podman:
    """podman with private storage and config, in temp dirs: vfs, no
    runtime needed for a pull; registries.conf is the generated file."""

    def __init__(self, workdir, registries_conf):
        # podman refuses a runroot of more than 50 characters: pytest's
        # temp paths are longer
        self.workdir = workdir
        for d in ("root", "runroot", "tmp"):
            os.makedirs(os.path.join(workdir, d), exist_ok=True)
        conf = os.path.join(workdir, "containers.conf")
        with open(conf, "w") as f:
            f.write("[engine]\nevents_logger = \"none\"\n"
                    "cgroup_manager = \"cgroupfs\"\n")
        storage = os.path.join(workdir, "storage.conf")
        with open(storage, "w") as f:
            f.write('[storage]\ndriver = "vfs"\nrunroot = "%s"\n'
                    'graphroot = "%s"\n'
                    % (os.path.join(workdir, "runroot"),
                       os.path.join(workdir, "root")))
        self.env = dict(os.environ,
                        CONTAINERS_CONF=conf,
                        CONTAINERS_STORAGE_CONF=storage,
                        CONTAINERS_REGISTRIES_CONF=registries_conf,
                        TMPDIR=os.path.join(workdir, "tmp"),
                        XDG_RUNTIME_DIR=os.path.join(workdir, "runroot"))

    def run(self, *args, timeout=180):
        cmd = [PODMAN_BIN,
               "--root", os.path.join(self.workdir, "root"),
               "--runroot", os.path.join(self.workdir, "runroot"),
               "--tmpdir", os.path.join(self.workdir, "tmp"),
               "--storage-driver", "vfs"] + list(args)
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout, env=self.env,
                              stdin=subprocess.DEVNULL)


def test_podman_pulls_with_generated_registries_conf(named_mirror, upstream,
                                                     catalog, ctl_bin,
                                                     tmp_path, request):
    require_file(PODMAN_BIN, "podman (make deps installs it)")
    out = tmp_path / "gen"
    _generate(ctl_bin, named_mirror, out, "--format", "crio")
    short = tempfile.mkdtemp(prefix="ocm-podman.")
    request.addfinalizer(lambda: shutil.rmtree(short, ignore_errors=True))
    podman = Podman(short, str(out / "registries.conf.d" / "ocimirror.conf"))

    pulled = set()
    for ref, image, prefix in (
            # upstream.test resolves nowhere: only the mirror has it
            ("%s/e2e/small:v1" % NAME, catalog["small"], NAME + "/e2e/"),
            # the default registry, through the bare mirror
            ("%s/e2e/multi:v1" % upstream.hostport, catalog["multi"],
             "e2e/")):
        mark = named_mirror.access.mark()
        up_mark = upstream.access.mark()
        p = podman.run("pull", "--quiet", ref)
        assert p.returncode == 0, (p.stdout, p.stderr)
        # the manifest by its tag, then each blob podman did not have
        paths = _through_mirror(
            named_mirror, mark, prefix,
            [b.digest for b in image.layer_blobs()
             if b.digest not in pulled])
        assert "/v2/%smulti/manifests/v1" % prefix in paths \
            or "/v2/%ssmall/manifests/v1" % prefix in paths, paths
        pulled |= {b.digest for b in image.layer_blobs()}
        # c/image's user agent is "containers/..."
        _no_client_upstream(upstream, up_mark, "containers/")

        p = podman.run("image", "inspect", ref)
        assert p.returncode == 0, (p.stdout, p.stderr)
        info = json.loads(p.stdout)[0]
        assert info["Digest"] == image.manifest.digest, info["Digest"]


@pytest.fixture
def tls_mirror(mirror_factory, upstream, tmp_path):
    """named_mirror's registries behind nginx's TLS, as docs/NODES.md
    sets it up: the include's server block listens with "ssl" and the
    certificate (a CA's, for 127.0.0.1) besides its plain loopback port
    (the harness's health checks)."""
    pki = make_pki(str(tmp_path / "pki"))
    m = mirror_factory(upstream.hostport, [
        {"name": NAME, "endpoints": [upstream.url], "tag_ttl": 300},
        {"name": upstream.hostport, "endpoints": [upstream.url],
         "tag_ttl": 300},
    ], start=False)
    m.tls_hostport = "127.0.0.1:%d" % free_port()
    plain = m.render_include

    def render_include():
        path = plain()
        with open(path) as f:
            text = f.read()
        listen = "listen %s;" % m.hostport
        assert listen in text
        text = text.replace(listen, listen + (
            "\n    listen %s ssl;\n"
            "    ssl_certificate     %s;\n"
            "    ssl_certificate_key %s;\n"
            "    ssl_protocols TLSv1.2 TLSv1.3;\n"
            "    ssl_session_cache shared:ocimirror_tls:10m;\n"
            % (m.tls_hostport, pki.server_cert, pki.server_key)))
        with open(path, "w") as f:
            f.write(text)
        return path
    m.render_include = render_include
    m.start()
    return m, pki


def test_pulls_over_tls_with_the_ca(tls_mirror, upstream, catalog, ctl_bin,
                                    tmp_path, tmp_path_factory, request):
    """An https mirror: containerd with the hosts.toml that --ca wrote,
    podman with the drop-in (no insecure) and the CA in its cert dir.
    A containerd of its own: it must fetch every blob of the image."""
    require_file(PODMAN_BIN, "podman (make deps installs it)")
    m, pki = tls_mirror
    containerd = Containerd(str(tmp_path_factory.mktemp("containerd")),
                            str(tmp_path_factory.mktemp("c"))).start()
    request.addfinalizer(containerd.stop)
    out = tmp_path / "gen"
    p = ctl(ctl_bin, "clients", "--mirror", "https://" + m.tls_hostport,
            "--ca", pki.ca, "--out", str(out), config=m.config_path)
    assert p.returncode == 0, (p.stdout, p.stderr)
    toml = (out / "containerd/certs.d" / NAME / "hosts.toml").read_text()
    assert '[host."https://%s"]\n  capabilities = ["pull", "resolve"]\n' \
        '  ca = "%s"\n' % (m.tls_hostport, pki.ca) in toml, toml
    conf = (out / "registries.conf.d/ocimirror.conf").read_text()
    assert "insecure" not in conf, conf

    image = catalog["shared_a"]
    mark = m.access.mark()
    up_mark = upstream.access.mark()
    p = containerd.ctr("images", "pull", "--hosts-dir",
                       str(out / "containerd" / "certs.d"),
                       "--platform", "linux/amd64",
                       "%s/e2e/shared-a:v1" % NAME)
    assert p.returncode == 0, p.stdout + p.stderr
    _through_mirror(m, mark, "", [b.digest for b in image.blobs()])
    _no_client_upstream(upstream, up_mark, "containerd")

    image = catalog["shared_b"]
    short = tempfile.mkdtemp(prefix="ocm-podman.")
    request.addfinalizer(lambda: shutil.rmtree(short, ignore_errors=True))
    podman = Podman(short, str(out / "registries.conf.d" / "ocimirror.conf"))
    certs = os.path.join(short, "certs")
    os.makedirs(certs)
    shutil.copy(pki.ca, os.path.join(certs, "ca.crt"))
    mark = m.access.mark()
    up_mark = upstream.access.mark()
    ref = "%s/e2e/shared-b:v1" % NAME
    p = podman.run("pull", "--quiet", "--cert-dir", certs, ref)
    assert p.returncode == 0, (p.stdout, p.stderr)
    paths = _through_mirror(m, mark, NAME + "/e2e/",
                            [b.digest for b in image.layer_blobs()])
    assert "/v2/%s/e2e/shared-b/manifests/v1" % NAME in paths, paths
    # the mirror's TLS port answered, not its plain one: without the CA
    # podman refuses the certificate
    p = Podman(short, str(out / "registries.conf.d" / "ocimirror.conf")) \
        .run("pull", "--quiet", "%s/e2e/multi:v1" % NAME)
    assert p.returncode != 0, (p.stdout, p.stderr)
    assert "certificate" in p.stderr, p.stderr
    _no_client_upstream(upstream, up_mark, "containers/")


NODES_MD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "..", "docs", "NODES.md")


def _guide_blocks(lang):
    with open(NODES_MD) as f:
        text = f.read()
    return re.findall(r"^```%s\n(.*?)^```$" % lang, text, re.M | re.S)


def test_node_guide_daemonset_installs_the_files(named_mirror, ctl_bin,
                                                 tmp_path):
    """docs/NODES.md's DaemonSet: its init container's script, run by sh
    over a ConfigMap volume laid out as the kubelet does (keys as
    symlinks into ..data, ':' as '_'), leaves exactly the generated
    containerd folder; the YAML and TOML of the guide parse."""
    out = tmp_path / "gen"
    _generate(ctl_bin, named_mirror, out, "--format", "containerd")
    generated = out / "containerd" / "certs.d"

    docs = [d for block in _guide_blocks("yaml")
            for d in yaml.safe_load_all(block)]
    kubelet = [d for d in docs if d.get("kind") == "KubeletConfiguration"]
    assert kubelet and kubelet[0]["serializeImagePulls"] is False
    assert kubelet[0]["maxParallelImagePulls"] > 1
    ds = [d for d in docs if d.get("kind") == "DaemonSet"][0]
    spec = ds["spec"]["template"]["spec"]
    init = spec["initContainers"][0]
    assert init["command"][:2] == ["sh", "-c"]
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["certs"]["hostPath"]["path"] == "/etc/containerd/certs.d"
    assert volumes["config"]["configMap"]["name"] == "ocimirror-hosts"
    assert any("config_path" in tomllib.loads(b).get("plugins", {}).get(
        "io.containerd.grpc.v1.cri", {}).get("registry", {})
        for b in _guide_blocks("toml"))
    # the guide's kubectl line names the keys so
    assert any('--from-file=${r//:/_}=${d}hosts.toml' in b
               for b in _guide_blocks("sh"))

    config = tmp_path / "volume"
    data = config / "..data"
    data.mkdir(parents=True)
    for reg in os.listdir(generated):
        key = reg.replace(":", "_")
        shutil.copy(generated / reg / "hosts.toml", data / key)
        os.symlink(os.path.join("..data", key), config / key)
    host = tmp_path / "host-certs.d"
    script = init["command"][2] \
        .replace(mounts["config"] + "/", str(config) + "/") \
        .replace(mounts["certs"] + "/", str(host) + "/")
    p = subprocess.run(["/bin/sh", "-c", script], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, (p.stdout, p.stderr)

    want = {f: (generated / f).read_bytes() for f in _files(generated)}
    got = {f: (host / f).read_bytes() for f in _files(host)}
    assert got == want
    assert "%s/hosts.toml" % named_mirror.registries[1]["name"] in got
