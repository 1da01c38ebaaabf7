"""The suite's own guard: a sanitizer report of nginx fails the test that
caused it (conftest's sanitizer_reports fixture), whichever nginx runs
(OCIMIRROR_NGINX; `make e2e-asan-nginx` runs one built with ASan)."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import harness

E2E_DIR = os.path.dirname(os.path.abspath(__file__))

# A session of its own that takes the fixture from this suite's conftest:
# one test plants a report the way ASan writes one, the next one is clean.
INNER_CONFTEST = textwrap.dedent("""\
    import importlib.util
    import sys

    sys.path.insert(0, %r)
    _spec = importlib.util.spec_from_file_location(
        "e2e_conftest", %r)
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    sanitizer_reports = _mod.sanitizer_reports
    """)

INNER_TESTS = textwrap.dedent("""\
    import os

    def test_planted(sanitizer_reports):
        with open(os.path.join(sanitizer_reports.dir, "nginx.4242"),
                  "w") as f:
            f.write("==4242==ERROR: AddressSanitizer: heap-buffer-overflow"
                    " on address 0x602000000011\\n")

    def test_clean(sanitizer_reports):
        assert os.listdir(sanitizer_reports.dir) == []
    """)


def test_planted_report_fails_its_test(tmp_path):
    (tmp_path / "conftest.py").write_text(
        INNER_CONFTEST % (E2E_DIR, os.path.join(E2E_DIR, "conftest.py")))
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA",
                        "-p", "no:cacheprovider",
                        "--basetemp", str(tmp_path / "basetemp"),
                        "test_inner.py"],
                       cwd=str(tmp_path), capture_output=True, text=True,
                       timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    # both tests pass their calls; the planting one errs at teardown,
    # with the report
    assert "2 passed, 1 error" in out, out
    assert "ERROR test_inner.py::test_planted" in out, out
    assert "PASSED test_inner.py::test_clean" in out, out
    assert "heap-buffer-overflow on address 0x602000000011" in out, out
    assert "nginx.4242" in out, out


def _children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        # the command may hold spaces and parentheses: fields follow the
        # last ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d))
    return out


def _worker_pids(mirror):
    return harness.wait_for(lambda: _children(mirror.nginx.popen.pid), 10,
                            what="nginx workers")


def test_asan_report_of_a_worker_is_seen(binaries, tmp_path,
                                        sanitizer_reports):
    """A real report: ASan's handler of a fatal signal writes one from a
    worker.  The master only logs a notice (the worker exited with code
    1) and starts another: without the report file the test would pass.
    The mirror is the test's own, not mirror_factory's, whose teardown
    would fail on the banner ASan also writes to the error log."""
    if not harness.nginx_is_sanitized():
        pytest.skip("%s is not built with ASan (make e2e-asan-nginx)"
                    % harness.NGINX_BIN)
    m = harness.Mirror(str(tmp_path / "m"), "registry.example",
                       [{"name": "registry.example",
                         "endpoints": ["http://127.0.0.1:9"]}],
                       socket_dir=str(tmp_path), binaries=binaries)
    try:
        m.start()
        victim = _worker_pids(m)[0]
        os.kill(victim, signal.SIGSEGV)
        path = os.path.join(sanitizer_reports.dir, "nginx.%d" % victim)
        harness.wait_for(lambda: "SUMMARY" in harness.read_text(path), 20,
                         what="the worker's ASan report")
        harness.wait_for(lambda: len(_children(m.nginx.popen.pid)) == 2
                         and victim not in _children(m.nginx.popen.pid),
                         20, what="a new worker")
        assert m.get("/healthz").status == 200
    finally:
        problems = m.stop()
    reports = sanitizer_reports.take()
    assert len(reports) == 1, reports
    assert "ERROR: AddressSanitizer: SEGV" in reports[0], reports
    assert problems == ["nginx: AddressSanitizer:DEADLYSIGNAL"], problems
