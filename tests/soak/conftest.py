"""Fixtures of the soak and the chaos loop (tests/soak/): the e2e
suite's harness and fake registry, reused as they are.

  binaries     copies of the fetcher and the module (OCIMIRROR_FETCHER
               picks another fetcher, as in the e2e suite)
  soak_dir     a temp directory for one mirror (store, logs, socket)
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402


def pytest_configure(config):
    if not os.path.exists(harness.NGINX_BIN):
        raise pytest.UsageError("soak: nginx is missing (run `make deps`)")


@pytest.fixture(scope="session")
def binaries(tmp_path_factory):
    return harness.copy_binaries(str(tmp_path_factory.mktemp("bin")))


@pytest.fixture
def soak_dir(tmp_path_factory):
    # short: the fetcher's socket path must fit in sun_path
    return str(tmp_path_factory.mktemp("soak"))


def env_number(name, default, kind=int):
    """A duration or count from the environment (make soak SOAK_SECONDS=N)."""
    v = os.environ.get(name, "")
    return kind(v) if v.strip() else default
