"""Fixtures of the end-to-end suite.

  binaries         copies of build/ocimirror-fetcher and the module
  ctl_bin          a copy of build/ocimirrorctl
  catalog          the test images (images.build_catalog), built once
  layouts          each image written as an OCI layout, tag "v1"
  upstream         docker-registry with every image pushed (session)
  mirror_factory   start a mirror (fetcher + nginx) with given registries;
                   stopped at teardown, and the test fails on [alert],
                   [emerg] or a sanitizer report in their logs
  mirror           a mirror whose default registry is the upstream
  cluster_factory  start N mirrors as one cluster (harness.Cluster) on
                   127.0.0.2, .3, ...; stopped as mirror_factory's
  fake_upstream    a FakeRegistry, stopped at teardown
  hosts            three FakeRegistry on 127.0.0.1, .3 and .4
  sanitizer_reports  (every test) the folder where the nginx processes
                   of the test write sanitizer reports; the test fails at
                   teardown if one appeared (OCIMIRROR_NGINX built with
                   ASan/UBSan: `make e2e-asan-nginx`)

Repositories in the upstream (all tag "v1" unless said):
  e2e/multi      5 layers, one of 3 MiB
  e2e/shared-a   shares its base layer with e2e/shared-b
  e2e/shared-b
  e2e/plat       multi-platform index (linux/amd64, linux/arm64)
  e2e/large      one 64 MiB layer
  e2e/small      one small layer
  library/xyz    the small image, for the docker.io library/ prefix
  e2e/tagged     the small image under tags v1 and t01..t05
"""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402
import images  # noqa: E402
from fakeregistry import FakeRegistry  # noqa: E402

TAG = "v1"
TAGGED = ["t01", "t02", "t03", "t04", "t05"]

UPSTREAM_REPOS = {
    "e2e/multi": "multi",
    "e2e/shared-a": "shared_a",
    "e2e/shared-b": "shared_b",
    "e2e/plat": "plat",
    "e2e/large": "large",
    "e2e/small": "small",
    "library/xyz": "small",
}


def pytest_configure(config):
    # `make e2e` runs the suite on pytest-xdist workers (E2E_JOBS), then
    # the tests marked serial alone: they bound a time, a rate or a
    # share, or measure RSS and descriptors, which the load of other
    # tests would change, and the cluster's nodes share 127.0.0.2-.5.
    config.addinivalue_line(
        "markers", "serial: runs alone, after the tests run in parallel "
        "(a timed bound, a rate, a resource measurement)")
    missing = [p for p in (harness.NGINX_BIN, harness.REGISTRY_BIN,
                           harness.SKOPEO_BIN, harness.CONTAINERD_BIN,
                           harness.CTR_BIN) if not os.path.exists(p)]
    if missing:
        raise pytest.UsageError("e2e: required binaries missing: %s "
                                "(run `make deps`)" % ", ".join(missing))


class SanitizerReports:
    """The reports the nginx processes of one test wrote."""

    def __init__(self, folder):
        self.dir = folder

    def problems(self):
        return harness.sanitizer_problems(self.dir)

    def take(self):
        """The reports so far, removed: for a test that causes one on
        purpose."""
        out = self.problems()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        return out


@pytest.fixture(autouse=True)
def sanitizer_reports(tmp_path_factory):
    """Autouse, so set up before and torn down after every other fixture
    of the test: the mirrors are stopped (their last reports written)
    when the folder is read, and the failure is this test's."""
    rep = SanitizerReports(str(tmp_path_factory.mktemp("san")))
    harness.set_sanitizer_dir(rep.dir)
    yield rep
    harness.set_sanitizer_dir(None)
    problems = rep.problems()
    if problems:
        pytest.fail("nginx sanitizer reports:\n" + "\n".join(problems),
                    pytrace=False)


@pytest.fixture(scope="session")
def catalog():
    return images.build_catalog()


@pytest.fixture(scope="session")
def layouts(catalog, tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    out = {}
    for role, image in catalog.items():
        out[role] = images.write_layout(str(root / role), TAG, image)
    return out


@pytest.fixture(scope="session")
def upstream(layouts, tmp_path_factory):
    up = harness.Upstream(str(tmp_path_factory.mktemp("upstream"))).start()
    try:
        for repo, role in UPSTREAM_REPOS.items():
            images.skopeo_push(layouts[role], TAG, up.hostport, repo)
        images.skopeo_push(layouts["small"], TAG, up.hostport,
                           "e2e/tagged")
        for tag in TAGGED:
            _retag(up, "e2e/tagged", TAG, tag)
    except Exception:
        up.stop()
        raise
    yield up
    up.stop()


def _retag(up, repo, src, dst):
    """Tag an existing manifest again: PUT the same bytes under dst."""
    r = up.get("/v2/%s/manifests/%s" % (repo, src),
               {"Accept": images.MT_OCI_MANIFEST})
    assert r.status == 200, r
    put = harness.request(up.hostport, "PUT",
                          "/v2/%s/manifests/%s" % (repo, dst),
                          {"Content-Type": r.header("Content-Type")}, r.body)
    assert put.status == 201, put


@pytest.fixture(scope="session")
def binaries(tmp_path_factory):
    """The product's fetcher and module, copied once per session."""
    return harness.copy_binaries(str(tmp_path_factory.mktemp("bin")))


@pytest.fixture(scope="session")
def ctl_bin(tmp_path_factory):
    """ocimirrorctl, copied once per session."""
    return harness.copy_ctl(str(tmp_path_factory.mktemp("ctlbin")))


@pytest.fixture
def mirror_factory(tmp_path, tmp_path_factory, binaries, sanitizer_reports):
    started = []

    def make(default_registry, registries, start=True, **kw):
        # start=False: the Mirror is made (its port chosen) but not
        # started; the caller starts it, and it is stopped at teardown
        workdir = tmp_path / ("mirror%d" % len(started))
        workdir.mkdir()
        kw.setdefault("socket_dir", str(tmp_path_factory.mktemp("s")))
        kw.setdefault("binaries", binaries)
        m = harness.Mirror(str(workdir), default_registry, registries, **kw)
        started.append(m)
        if start:
            m.start()
        return m

    yield make
    problems = []
    for m in started:
        problems += m.stop()
    if problems:
        # with nginx's sanitizer reports: a worker that an ASan report
        # ended makes problems here too, and pytest shows the first
        # failure of a teardown only
        problems += sanitizer_reports.problems()
        pytest.fail("mirror logs show problems:\n" + "\n".join(problems),
                    pytrace=False)
    for m in started:
        # The 64 MiB blobs add up over a session: drop stores we passed.
        shutil.rmtree(m.store, ignore_errors=True)


@pytest.fixture
def mirror(mirror_factory, upstream):
    return mirror_factory(upstream.hostport,
                          [harness.upstream_registry(upstream)])


@pytest.fixture
def cluster_factory(mirror_factory, tmp_path):
    """cluster_factory(n, default_registry, registries, replicate=...,
    fail_timeout=..., **mirror_kw): a started harness.Cluster."""
    made = []

    def make(n, default_registry, registries, **kw):
        c = harness.Cluster(
            lambda **mkw: mirror_factory(default_registry, registries,
                                         start=False, **mkw),
            str(tmp_path / ("cluster%d" % len(made))), n, **kw)
        made.append(c)
        return c.start()
    return make


@pytest.fixture
def fake_upstream():
    reg = FakeRegistry().start()
    yield reg
    reg.stop()


@pytest.fixture
def hosts():
    """Three FakeRegistry instances, on 127.0.0.1, 127.0.0.3 and
    127.0.0.4: an endpoint and two other hosts, which tests name through
    the registry's `resolve` (harness.named_url)."""
    fakes = [FakeRegistry(host=h).start()
             for h in ("127.0.0.1", "127.0.0.3", "127.0.0.4")]
    yield tuple(fakes)
    for f in fakes:
        f.stop()
