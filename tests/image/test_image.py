"""The container image (docker/Dockerfile), built and run.

scripts/image-build.sh makes a Debian 12 base with debootstrap and builds
the Dockerfile on it with buildah (`make test` starts it in the
background first; started here if it was not).  This test waits for it,
then runs the image's own entrypoint, read from the image, in the image's
root filesystem (`buildah run --isolation chroot`, the host's network)
with nginx listening on a free loopback port and a docker-registry of the
suite as its upstream, and checks /readyz, the image's HEALTHCHECK
command (read from the image too) and a skopeo pull through it.

  OCIMIRROR_IMAGE_DIR   the build's folder (build/image)
  OCIMIRROR_IMAGE_WAIT  seconds to wait for the build (1800)
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "e2e"))

import harness  # noqa: E402
import images  # noqa: E402

BUILD_SCRIPT = os.path.join(harness.REPO_ROOT, "scripts", "image-build.sh")
IMAGE_DIR = os.environ.get("OCIMIRROR_IMAGE_DIR") or os.path.join(
    harness.BUILD, "image")
WAIT_S = float(os.environ.get("OCIMIRROR_IMAGE_WAIT", "1800"))
BUILDAH = shutil.which("buildah")

# where the Dockerfile and the default config put them
STORE = "/var/cache/ocimirror"
SOCKET = "/run/ocimirror/fetcher.sock"
CONFIG = "/etc/ocimirror/ocimirror.cfg"

pytestmark = pytest.mark.skipif(
    BUILDAH is None or shutil.which("debootstrap") is None,
    reason="buildah or debootstrap is not installed and could not be "
    "(scripts/install-deps.sh installs both from Debian)")


def buildah(*args, timeout=120, check=True):
    p = subprocess.run([BUILDAH, "--root", os.path.join(IMAGE_DIR, "storage"),
                        "--runroot", os.path.join(IMAGE_DIR, "runroot"),
                        "--storage-driver", "vfs"] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("buildah %s: exit %d\n%s" % (
            " ".join(args), p.returncode, p.stderr))
    return p


def wait_for_build():
    """The background build's times; fails with its log if it failed."""
    status_path = os.path.join(IMAGE_DIR, "status")
    if not os.path.exists(status_path) and not os.path.exists(
            os.path.join(IMAGE_DIR, "pid")):
        subprocess.run([BUILD_SCRIPT, "start", IMAGE_DIR], check=True,
                       timeout=30)
    t0 = time.monotonic()
    harness.wait_for(lambda: os.path.exists(status_path), WAIT_S,
                     interval=2, what="the image build (%s)" % IMAGE_DIR)
    waited = time.monotonic() - t0
    status = harness.read_text(status_path).strip()
    if status != "ok":
        pytest.fail("image build: %s\n%s" % (status, harness.tail(
            os.path.join(IMAGE_DIR, "build.log"), 60)), pytrace=False)
    with open(os.path.join(IMAGE_DIR, "times.json")) as f:
        times = json.load(f)
    times["waited_s"] = round(waited, 1)
    return times


def descendants(pid):
    """The live processes under pid: those of the container (its
    entrypoint runs none apart, nginx runs in the foreground)."""
    out, todo = set(), [pid]
    while todo:
        for child in harness.children_of(todo.pop()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def argv0(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return None


@pytest.fixture(scope="module")
def built():
    times = wait_for_build()
    yield times
    # the storage holds gigabytes (vfs: a full copy per layer)
    subprocess.run([BUILD_SCRIPT, "clean", IMAGE_DIR], check=True,
                   timeout=120)


@pytest.fixture
def upstream(tmp_path):
    (tmp_path / "upstream").mkdir()
    up = harness.Upstream(str(tmp_path / "upstream")).start()
    yield up
    up.stop()


class Container:
    """A working container of the image, its root mounted, its entrypoint
    run in it by `buildah run --isolation chroot --network host`."""

    def __init__(self, image, workdir):
        self.workdir = workdir
        self.ctr = buildah("from", image).stdout.strip()
        self.root = os.path.realpath(buildah("mount", self.ctr)
                                     .stdout.strip())
        self.proc = None
        self.procs = set()
        self.listen = None
        # the fetcher writes the store as the image's www-data
        self.store = os.path.join(workdir, "store")
        os.mkdir(self.store)
        os.chown(self.store, *self.user_ids("www-data"))

    def user_ids(self, name):
        """uid and gid of a user of the image."""
        with open(self.path("/etc/passwd")) as f:
            for line in f:
                fields = line.split(":")
                if fields[0] == name:
                    return int(fields[2]), int(fields[3])
        raise AssertionError("the image has no user " + name)

    def run_args(self, listen, argv):
        # the store: a folder of ours as the VOLUME, as `docker run -v`
        return ["--isolation", "chroot", "--network", "host",
                "--volume", "%s:%s" % (self.store, STORE),
                "--env", "OCIMIRROR_LISTEN=" + listen, self.ctr, "--"] + argv

    def start(self, listen, argv):
        self.listen = listen
        self.proc = harness.Process(
            "image entrypoint",
            [BUILDAH, "--root", os.path.join(IMAGE_DIR, "storage"),
             "--runroot", os.path.join(IMAGE_DIR, "runroot"),
             "--storage-driver", "vfs", "run"] + self.run_args(listen, argv),
            os.path.join(self.workdir, "entrypoint.log")).start()

    def exec(self, argv, listen=None, timeout=60):
        return buildah("run", *self.run_args(listen or self.listen, argv),
                       timeout=timeout, check=False)

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def stop(self, entrypoint=None):
        """SIGTERM to the entrypoint (the image's first word), as `docker
        stop` sends it (buildah run, signalled, would SIGKILL it); buildah
        run returns its exit code.  Every process of the container must
        be gone then."""
        if self.proc is None:
            return None
        procs = descendants(self.proc.popen.pid)
        self.procs |= procs
        for pid in procs:
            if entrypoint is not None and argv0(pid) == entrypoint:
                os.kill(pid, signal.SIGTERM)
                try:
                    self.proc.popen.wait(30)
                except subprocess.TimeoutExpired:
                    pass
                break
        code = self.proc.stop(timeout=30)
        self.proc = None
        harness.wait_for(lambda: not [p for p in procs
                                      if running(p)], 15,
                         what="the container's processes to end")
        return code

    def remove(self):
        for pid in self.procs:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        buildah("rm", self.ctr, check=False)


def image_config(image):
    """The image's Docker config (Entrypoint, Cmd, Healthcheck, Env)."""
    info = json.loads(buildah("inspect", "--type", "image", image).stdout)
    return info["Docker"]["config"]


def healthcheck_argv(config):
    test = (config.get("Healthcheck") or {}).get("Test") or []
    assert test and test[0] in ("CMD", "CMD-SHELL"), (
        "the image has no HEALTHCHECK: %r" % config.get("Healthcheck"))
    if test[0] == "CMD":
        return test[1:]
    return ["/bin/sh", "-c", test[1]]


def test_image_serves_a_pull_through_its_own_entrypoint(built, upstream,
                                                        tmp_path):
    t0 = time.monotonic()
    image = built["image"]
    config = image_config(image)
    entrypoint = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
    assert entrypoint, "the image names no entrypoint"
    health = healthcheck_argv(config)

    img = images.Image("image-test", [
        images.Layer("ocimirror-image:a", [("etc/a.txt", 3000)]),
        images.Layer("ocimirror-image:b", [("opt/b.bin", 2 * images.MiB)],
                     level=0)])
    layout = images.write_layout(str(tmp_path / "layout"), "v1", img)
    images.skopeo_push(layout, "v1", upstream.hostport, "e2e/image")

    c = Container(image, str(tmp_path))
    try:
        with open(c.path(CONFIG), "w") as f:
            f.write(harness.render_libconfig(
                STORE, SOCKET, upstream.hostport,
                [harness.upstream_registry(upstream)]))
        port = harness.free_port()
        hostport = "127.0.0.1:%d" % port
        c.start(hostport, entrypoint)

        def ready():
            if not c.proc.alive():
                raise AssertionError("the entrypoint exited:\n"
                                     + harness.tail(c.proc.log_path))
            try:
                return harness.request(hostport, "GET", "/readyz",
                                       timeout=2).status == 200
            except OSError:
                return False
        harness.wait_for(ready, 60, interval=0.2,
                         what="/readyz of the image on " + hostport)
        r = harness.request(hostport, "GET", "/readyz")
        assert r.status == 200, r
        assert r.json()["status"] == "ok", r.body

        # the image's HEALTHCHECK, run in the container: it succeeds, and
        # fails where nothing listens (it does check something)
        h = c.exec(health)
        assert h.returncode == 0, h.stdout + h.stderr
        h = c.exec(health, listen="127.0.0.1:%d" % harness.free_port())
        assert h.returncode != 0, "the healthcheck passed with no server"

        out = tmp_path / "pulled"
        p = harness.skopeo_copy("docker://%s/e2e/image:v1" % hostport,
                                "oci:%s:v1" % out)
        assert p.returncode == 0, p.stderr + harness.tail(c.proc.log_path)
        top, blobs = harness.oci_layout_digests(str(out))
        assert top == img.manifest.digest
        assert blobs == {b.digest for b in img.blobs()}
        # served by the image's mirror: the layers are in its store
        for b in img.layer_blobs():
            hexd = b.hex
            stored = os.path.join(c.store, "sha256", hexd[:2], hexd)
            with open(stored, "rb") as f:
                assert f.read() == b.data

        # the include's access log, in the image's format: each layer's
        # GET with what the mirror did (a cold pull: fetched, or joined
        # the download the prefetch had begun)
        log = harness.read_text(c.path(
            "/var/log/nginx/ocimirror-access.log")).splitlines()
        for b in img.layer_blobs():
            lines = [line for line in log
                     if '"GET /v2/e2e/image/blobs/%s ' % b.digest in line]
            assert lines, "no GET of %s in the access log:\n%s" % (
                b.digest, "\n".join(log))
            assert lines[-1].split()[-2] in ("MISS", "STREAM", "HIT"), (
                lines[-1])

        code = c.stop(entrypoint[0])
        assert code == 0, "the entrypoint ended with %r:\n%s" % (
            code, harness.tail(str(tmp_path / "entrypoint.log")))
        errors = harness.read_text(c.path("/var/log/nginx/error.log"))
        bad = [line for line in errors.splitlines()
               if "[alert]" in line or "[emerg]" in line]
        assert not bad, "\n".join(bad)
    finally:
        try:
            c.stop()
        finally:
            c.remove()
    print("\nimage: debootstrap %.1fs, build %.1fs (%.0f s of CPU), "
          "waited %.1fs for it, run test %.1fs"
          % (built["debootstrap_s"], built["build_s"],
             built.get("cpu_s", -1), built["waited_s"],
             time.monotonic() - t0))
