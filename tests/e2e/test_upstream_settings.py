"""The settings of confined upstreams as `ocimirror-fetcher --check` reads
them: endpoints written as groups with credentials of their own,
redirect_hosts, resolve (curl's host:port:address, one answer per
host:port in the whole file) and max_retry_after (1..86400, in a registry
or in the fetcher group).  A good file is accepted; each bad one is
refused naming the file and the line."""

import copy
import subprocess

import pytest

from harness import render_libconfig

# render_libconfig's layout: store, fetcher, default_registry,
# "registries = (", then one registry a line
FETCHER_LINE, R1_LINE, R2_LINE = 2, 5, 6


def _registries(tmp_path):
    pw = tmp_path / "a.pw"
    pw.write_text("secret\n")
    tok = tmp_path / "b.token"
    tok.write_text("token\n")
    r1 = {"name": "one.test",
          "endpoints": [{"url": "http://registry.test:5000",
                         "username": "ua", "password_file": str(pw)},
                        {"url": "http://b.test:5001",
                         "token_file": str(tok)},
                        "http://c.test:5002"],
          "resolve": ["registry.test:5000:127.0.0.1",
                      "b.test:5001:127.0.0.2,127.0.0.3"],
          "redirect_hosts": ["cdn.test", "CDN2.test", "10.1.2.3"],
          "max_retry_after": 1}
    r2 = {"name": "two.test",
          "endpoints": ["http://registry.test:5000"],
          # the same answer again is no conflict
          "resolve": ["registry.test:5000:127.0.0.1"],
          "username": "u2", "password_file": str(pw),
          "max_retry_after": 86400}
    return [r1, r2]


def _render(tmp_path, regs, fetcher=None):
    text = render_libconfig(str(tmp_path / "store"),
                            str(tmp_path / "f.sock"), regs[0]["name"], regs,
                            fetcher=fetcher)
    path = tmp_path / "ocimirror.cfg"
    path.write_text(text)
    return str(path), text


def _check(binaries, path):
    p = subprocess.run([binaries[0], "--check", "-c", path],
                       capture_output=True, text=True, timeout=20)
    return p.returncode, (p.stdout + p.stderr).strip()


def test_check_accepts_the_new_settings(binaries, tmp_path):
    path, text = _render(tmp_path, _registries(tmp_path),
                         fetcher={"max_retry_after": 600})
    assert text.splitlines()[R1_LINE - 1].lstrip().startswith(
        '{ name = "one.test"')
    rc, out = _check(binaries, path)
    assert rc == 0, out + "\n" + text
    assert out == "%s: ok" % path


def _set(i, key, v):
    def mutate(regs):
        regs[i][key] = v
    return mutate


def _endpoint(**fields):
    def mutate(regs):
        regs[0]["endpoints"][0] = fields
    return mutate


def _missing_password_file(regs):
    regs[0]["endpoints"][0]["password_file"] = "/nonexistent/ocimirror.pw"


# (name, mutation of the good registries, line, a part of the message)
BAD = [
    ("resolve-conflict", _set(1, "resolve", ["registry.test:5000:127.0.0.9"]),
     R2_LINE, "registry.test:5000"),
    ("resolve-no-address", _set(0, "resolve", ["registry.test:5000"]),
     R1_LINE, "resolve"),
    ("resolve-port-0", _set(0, "resolve", ["registry.test:0:127.0.0.1"]),
     R1_LINE, "resolve"),
    ("resolve-not-an-address", _set(0, "resolve",
                                    ["registry.test:5000:registry.test"]),
     R1_LINE, "resolve"),
    ("redirect-host-with-port", _set(0, "redirect_hosts", ["cdn.test:443"]),
     R1_LINE, "redirect_hosts"),
    ("redirect-host-a-url", _set(0, "redirect_hosts", ["http://cdn.test"]),
     R1_LINE, "redirect_hosts"),
    ("max-retry-after-0", _set(0, "max_retry_after", 0), R1_LINE,
     "max_retry_after"),
    ("max-retry-after-86401", _set(1, "max_retry_after", 86401), R2_LINE,
     "max_retry_after"),
    ("endpoint-without-url", _endpoint(username="u", password_file="/x"),
     R1_LINE, "url"),
    ("endpoint-username-alone", _endpoint(url="http://a.test:1",
                                          username="u"),
     R1_LINE, "password_file"),
    ("endpoint-token-and-username", _endpoint(url="http://a.test:1",
                                              username="u",
                                              password_file="/x",
                                              token_file="/y"),
     R1_LINE, "token_file"),
    ("endpoint-unknown-key", _endpoint(url="http://a.test:1",
                                       password="hunter2"),
     R1_LINE, "password"),
    ("endpoint-relative-file", _endpoint(url="http://a.test:1",
                                         username="u",
                                         password_file="a.pw"),
     R1_LINE, "absolute"),
    ("endpoint-bad-scheme", _endpoint(url="ftp://a.test:1"), R1_LINE, ""),
    ("endpoint-file-missing", _missing_password_file, R1_LINE,
     "/nonexistent/ocimirror.pw"),
]


@pytest.mark.parametrize("name,mutate,line,fragment", BAD,
                         ids=[b[0] for b in BAD])
def test_check_refuses_bad_settings(binaries, tmp_path, name, mutate, line,
                                    fragment):
    regs = copy.deepcopy(_registries(tmp_path))
    mutate(regs)
    path, text = _render(tmp_path, regs)
    rc, out = _check(binaries, path)
    assert rc == 1, out + "\n" + text
    assert out.startswith("%s:%d: " % (path, line)), out + "\n" + text
    assert fragment in out, out
    assert "hunter2" not in out


@pytest.mark.parametrize("v", [0, 86401])
def test_check_refuses_fetcher_max_retry_after(binaries, tmp_path, v):
    path, text = _render(tmp_path, _registries(tmp_path),
                         fetcher={"max_retry_after": v})
    rc, out = _check(binaries, path)
    assert rc == 1, out
    assert out.startswith("%s:%d: " % (path, FETCHER_LINE)), out
    assert "max_retry_after" in out, out
