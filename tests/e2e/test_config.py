"""The shared libconfig file as the operator meets it: `ocimirror-fetcher
--check` and `nginx -t` accept a good file and name the file and line of
a bad one; the fetcher stops cleanly on SIGTERM, even mid-download."""

import os
import signal
import subprocess
import threading

import pytest

from harness import (Mirror, fake_registry_entry, nginx_t, random_bytes,
                     render_libconfig, store_tmp_files, wait_for)

GOOD = {"name": "registry.example", "endpoints": ["http://127.0.0.1:9"]}


def _write(tmp_path, text, name="ocimirror.cfg"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _good_config(tmp_path, **overrides):
    reg = dict(GOOD, **overrides)
    return render_libconfig(str(tmp_path / "store"),
                            str(tmp_path / "f.sock"), reg["name"], [reg])


def _check(binaries, path):
    return subprocess.run([binaries[0], "--check", "-c", path],
                          capture_output=True, text=True, timeout=20)


def test_check_accepts_a_good_file(binaries, tmp_path):
    path = _write(tmp_path, _good_config(tmp_path))
    p = _check(binaries, path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (p.stdout + p.stderr).strip() == "%s: ok" % path


# (mutation of a good file, the line the error must name)
BAD = [
    ("syntax", lambda t: t.replace("default_registry =",
                                   "default_registry = = ", 1)),
    ("unknown-key", lambda t: t.replace("max_transfers = 16;",
                                        "max_transfers = 16; bogus = 1;")),
    ("upper-case-name", lambda t: t.replace('name = "registry.example"',
                                            'name = "Registry.Example"')),
    ("bad-scheme", lambda t: t.replace('"http://127.0.0.1:9"',
                                       '"ftp://127.0.0.1:9"')),
    ("default-not-configured",
     lambda t: t.replace('default_registry = "registry.example"',
                         'default_registry = "other.example"')),
    ("negative-ttl", lambda t: t.replace("tag_ttl = 300;",
                                         "tag_ttl = -5;")),
]


def _line_of(text, mutated):
    for i, (a, b) in enumerate(zip(text.splitlines(),
                                   mutated.splitlines()), 1):
        if a != b:
            return i
    raise AssertionError("mutation changed nothing")


@pytest.mark.parametrize("name,mutate", BAD, ids=[b[0] for b in BAD])
def test_check_names_file_and_line(binaries, tmp_path, name, mutate):
    good = _good_config(tmp_path)
    bad = mutate(good)
    path = _write(tmp_path, bad)
    p = _check(binaries, path)
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 1, out
    assert out.startswith("%s:%d: " % (path, _line_of(good, bad))), out


def test_every_upstream_setting_is_accepted(binaries, tmp_path):
    """Both readers of the file (the fetcher's --check and nginx -t)
    accept every upstream setting of a registry and of the fetcher."""
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    reg = dict(GOOD, select="fastest", probe_interval=5, backoff=2,
               username="bob", password_file=str(pw), ca_file=str(ca),
               tls_verify=True, proxy="", no_proxy="localhost",
               bandwidth_limit="1M", connect_timeout=3, low_speed_time=4,
               stale_if_error=60, negative_ttl=5, tags_ttl=10,
               referrers_ttl=10)
    m = Mirror(str(tmp_path / "m"), GOOD["name"], [reg],
               socket_dir=str(tmp_path), binaries=binaries,
               fetcher={"proxy": "http://127.0.0.1:9",
                        "no_proxy": "127.0.0.1",
                        "bandwidth_limit": "100M"})
    m.write_config()
    m.write_nginx_conf()
    p = _check(binaries, m.config_path)
    assert p.returncode == 0, p.stdout + p.stderr
    t = nginx_t(m)
    assert t.returncode == 0, t.stderr


def test_check_reads_the_secret_files(binaries, tmp_path):
    """A password file that cannot be read is the fetcher's error at
    --check, with the file and the line that names it; the secret itself
    is never printed."""
    pw = tmp_path / "pw"
    pw.write_text("s3cret-value\n")
    good = _good_config(tmp_path, username="bob", password_file=str(pw))
    path = _write(tmp_path, good)
    p = _check(binaries, path)
    assert p.returncode == 0, p.stdout + p.stderr

    os.chmod(str(pw), 0)
    pw.write_text("")
    line = [i for i, l in enumerate(good.splitlines(), 1)
            if "password_file" in l][0]
    p = _check(binaries, path)
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 1, out
    assert out.startswith("%s:%d: " % (path, line)), out
    assert "password_file" in out and "s3cret" not in out, out


def test_nginx_t_reports_a_bad_config(binaries, tmp_path):
    """nginx -t loads the libconfig file at the directive and fails with
    its file and line."""
    m = Mirror(str(tmp_path / "m"), GOOD["name"], [GOOD],
               socket_dir=str(tmp_path), binaries=binaries)
    m.write_config()
    m.write_nginx_conf()
    t = nginx_t(m)
    assert t.returncode == 0, t.stderr

    with open(m.config_path) as f:
        good = f.read()
    bad = good.replace("tag_ttl = 300;", "tag_ttl = 300; nonsense = 1;")
    with open(m.config_path, "w") as f:
        f.write(bad)
    t = nginx_t(m)
    assert t.returncode != 0, t.stderr
    assert "%s:%d: " % (m.config_path, _line_of(good, bad)) in t.stderr, \
        t.stderr


def test_sigterm_mid_download_cleans_up(mirror_factory, fake_upstream):
    data = random_bytes("sigterm", 4 * 1024 * 1024)
    digest = fake_upstream.add_blob(data)
    fake_upstream.throttle[digest] = 512 * 1024        # 8 s: still running
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    result = []
    t = threading.Thread(target=lambda: result.append(
        m.get("/v2/team/app/blobs/" + digest, timeout=30)))
    t.start()
    wait_for(lambda: store_tmp_files(m), 10, what="a download in store/tmp")
    rc = m.stop_fetcher(signal.SIGTERM)
    t.join(30)
    assert rc == 0
    assert store_tmp_files(m) == []
    assert not os.path.exists(m.socket_path)
    assert not m.has_blob(digest)
    r = result[0]
    # the client saw a short transfer, never a complete body
    assert not (r.status == 200 and r.error is None), r
    assert len(r.body) < len(data)
    m.start_fetcher()
