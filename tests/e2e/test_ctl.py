"""ocimirrorctl, the operator's CLI, through its binary: each command
against a running mirror (real nginx, fetcher and upstream), du's numbers
against the store's files, the errors an operator meets without a fetcher
or without the right to use it, and the watching of warm and scrub
against a fake fetcher on a socket of the test's own (what the real warm
and scrub do is tested with them; here, that the CLI passes them through
and follows them)."""

import fcntl
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import threading
import time

import pytest

from harness import (ACCEPT_ALL, assert_blob, assert_manifest,
                     render_libconfig, upstream_registry, wait_for)

SETPRIV = shutil.which("setpriv")
NOBODY = 65534
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error")

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def ctl(binary, *args, config=None, sock=None, as_nobody=False, timeout=60):
    """Run ocimirrorctl; fail on any sanitizer report on its stderr."""
    cmd = [binary]
    if config is not None:
        cmd += ["-c", str(config)]
    if sock is not None:
        cmd += ["-s", str(sock)]
    cmd += list(args)
    if as_nobody:
        cmd = [SETPRIV, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
               "--clear-groups", "--"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    for word in SANITIZER:
        assert word not in p.stderr, p.stderr
    return p


def assert_error(p, status, *needles):
    """An error as the CLI gives one: the exit status, and one line on
    stderr that starts with "ocimirrorctl: " and says what it must."""
    assert p.returncode == status, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("ocimirrorctl: "), p.stderr
    for n in needles:
        assert n in lines[0], (n, p.stderr)
    return lines[0]


def raw_ctl(path, text):
    """The fetcher's own answer to a command line: (OUT texts, status)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(path)
        s.sendall(b"CTL 7 " + text.encode() + b"\n")
        buf = b""
        while True:
            data = s.recv(65536)
            assert data, "the fetcher hung up: %r" % buf
            buf += data
            m = re.search(rb"^END 7 (\d+)\n", buf, re.M)
            if m:
                break
    finally:
        s.close()
    out = []
    for line in buf[:m.start()].decode().splitlines():
        assert line == "OUT 7" or line.startswith("OUT 7 "), line
        out.append(line[6:])
    return out, int(m.group(1))


def disk(mirror, digest):
    """What a stored file takes on disk, as the CLI and the cache count."""
    return os.stat(mirror.blob_path(digest)).st_blocks * 512


def pull_tag(mirror, repo, image):
    """A client's pull of the tag v1: the manifest; prefetch brings the
    rest (waited for)."""
    assert_manifest(mirror.get("/v2/%s/manifests/v1" % repo,
                               {"Accept": ACCEPT_ALL}), image.top)


def wait_stored(mirror, blobs):
    wait_for(lambda: all(mirror.has_blob(b.digest) for b in blobs), 60,
             what="%d files in the store" % len(blobs))


def index_files(store):
    """(files, bytes) of what the fetcher's index covers."""
    files = size = 0
    for top in ("sha256", "tags", "taglists", "referrers"):
        for d, _, names in os.walk(os.path.join(store, top)):
            for n in names:
                files += 1
                size += os.lstat(os.path.join(d, n)).st_blocks * 512
    return files, size


UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3,
         "TiB": 1024 ** 4}


def human(text):
    """(bytes, unit) of "12.3 MiB"."""
    num, unit = text.split()
    return float(num) * UNITS[unit], UNITS[unit]


# --- against a running mirror ---------------------------------------------

def test_status_shows_the_store(mirror, upstream, catalog, ctl_bin):
    small = catalog["small"]
    pull_tag(mirror, "e2e/small", small)
    wait_stored(mirror, small.blobs())
    upstream.access.settle()

    def indexed():
        p = ctl(ctl_bin, "status", config=mirror.config_path)
        assert p.returncode == 0, p.stderr
        m = re.search(r"^used\s+(\S+ \S+) of .*, (\d+) files", p.stdout,
                      re.M)
        assert m, p.stdout
        files, size = index_files(mirror.store)
        return int(m.group(2)) == files and (p, m, files, size)

    p, m, files, size = wait_for(indexed, 30, what="status to count the "
                                 "store's files")
    assert files >= 4          # manifest, config, layer, tag record
    shown, unit = human(m.group(1))
    assert abs(shown - size) <= 0.05 * unit, (m.group(1), size)
    lines = p.stdout.splitlines()
    assert lines[0] == "store       %s" % mirror.store, p.stdout
    assert re.search(r"^pinned\s+0 pins hold 0 files, 0 B$", p.stdout,
                     re.M), p.stdout
    assert p.stderr == ""


def test_pin_pins_unpin(mirror, upstream, catalog, ctl_bin):
    small = catalog["small"]
    ref = "%s/e2e/small:v1" % upstream.hostport
    pull_tag(mirror, "e2e/small", small)
    wait_stored(mirror, small.blobs())

    def run(*args):
        return ctl(ctl_bin, *args, config=mirror.config_path)

    p = run("pin", ref)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert p.stdout == ("pinned %s until the fetcher restarts (store.pin in "
                        "the config keeps it for good)\n" % ref)

    def holding(n):
        p = run("pins")
        assert p.returncode == 0, p.stderr
        m = re.match(r"(\d+) pins?, holding (\d+) stored files", p.stdout)
        assert m, p.stdout
        return (m.group(1), int(m.group(2))) == (str(n and 1), n) and p

    # the tag record, the manifest, its config and its layer
    p = wait_for(lambda: holding(4), 30, what="the pin to hold the image")
    assert p.stdout.splitlines()[1:] == ["  %s  (every platform)" % ref]
    assert re.search(r"^pinned\s+1 pin hold 4 files",
                     run("status").stdout, re.M)

    p = run("pin", ref)
    assert p.returncode == 1
    assert p.stdout == "%s is pinned already\n" % ref

    plat = "%s/e2e/plat:v1" % upstream.hostport
    p = run("pin", plat, "linux/arm64")
    assert p.returncode == 0, p.stdout
    assert "  %s  linux/arm64" % plat in run("pins").stdout.splitlines()
    assert run("unpin", plat).returncode == 0

    p = run("unpin", ref)
    assert p.returncode == 0, p.stdout
    assert p.stdout == "unpinned %s until the fetcher restarts\n" % ref
    wait_for(lambda: holding(0), 30, what="the pins to let go")

    p = run("unpin", ref)
    assert p.returncode == 1
    assert "%s is not pinned" % ref in p.stdout

    # the fetcher's grammar, its usage status
    p = run("pin", "no-registry")
    assert p.returncode == 2, p.stdout
    assert p.stdout.startswith('"no-registry": ')


def test_purge_removes_an_image_and_the_next_pull_fetches_it(
        mirror, upstream, catalog, ctl_bin):
    small = catalog["small"]
    reg = upstream.hostport
    ref = "%s/e2e/small:v1" % reg
    pull_tag(mirror, "e2e/small", small)
    wait_stored(mirror, small.blobs())
    upstream.access.settle()
    tag = os.path.join(mirror.store, "tags", reg, "e2e", "small", "@v1")
    mtype = os.path.join(mirror.store, "types", "sha256",
                         small.manifest.hex[:2], small.manifest.hex)
    assert os.path.exists(tag) and os.path.exists(mtype)

    p = ctl(ctl_bin, "purge", ref, config=mirror.config_path)
    assert p.returncode == 0, (p.stdout, p.stderr)
    # the tag record, the manifest, its config and its layer
    assert re.match(r"purged 4 files, .*; a later pull fetches them again\n$",
                    p.stdout), p.stdout
    for b in small.blobs():
        assert not mirror.has_blob(b.digest), b
    assert not os.path.exists(tag)
    assert not os.path.exists(mtype)

    p = ctl(ctl_bin, "purge", ref, config=mirror.config_path)
    assert p.returncode == 1
    assert "is not in the store" in p.stdout, p.stdout
    p = ctl(ctl_bin, "purge", "sha256:" + "0" * 64, config=mirror.config_path)
    assert p.returncode == 0
    assert p.stdout.startswith("nothing to purge"), p.stdout

    mark = upstream.access.mark()
    pull_tag(mirror, "e2e/small", small)
    for b in small.layer_blobs():
        assert_blob(mirror.get("/v2/e2e/small/blobs/" + b.digest), b)
    wait_stored(mirror, small.blobs())
    upstream.access.settle()
    assert upstream.access.count("GET", r"/v2/e2e/small/manifests/", mark) \
        >= 1, upstream.access.entries(mark)
    for b in small.layer_blobs():
        assert upstream.access.count("GET", "/blobs/" + b.digest, mark) \
            >= 1, (b, upstream.access.entries(mark))


def test_evict_dry_run_lists_least_recently_used_first(
        mirror, upstream, catalog, ctl_bin):
    reg = upstream.hostport
    old, new = catalog["small"], catalog["shared_a"]
    for repo, image in (("e2e/small", old), ("e2e/shared-a", new)):
        pull_tag(mirror, repo, image)
        wait_stored(mirror, image.blobs())
    upstream.access.settle()

    def files(repo, image):
        return (["sha256/%s/%s" % (b.hex[:2], b.hex) for b in image.blobs()]
                + ["tags/%s/%s/@v1" % (reg, repo)])

    old_files = files("e2e/small", old)
    new_files = files("e2e/shared-a", new)

    # the fetcher takes the last use from the files when it starts: make
    # one image two hours unused, the other one hour
    mirror.stop_fetcher()
    now = time.time()
    for rel, age in [(f, 7200) for f in old_files] + \
            [(f, 3600) for f in new_files]:
        os.utime(os.path.join(mirror.store, rel), (now - age, now - age))
    mirror.start_fetcher()
    wait_for(lambda: re.search(r"^state\s+ok$", ctl(
        ctl_bin, "status", config=mirror.config_path).stdout, re.M), 30,
        what="the index loaded")

    p = ctl(ctl_bin, "evict", "--dry-run", "100", config=mirror.config_path)
    assert p.returncode == 0, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert lines[0] == "next to go, least recently used first:"
    assert lines[-1].startswith("no eviction is due"), p.stdout
    listed = []
    for line in lines[1:-1]:
        m = re.match(r"  (\S+ \S+)\s+unused (.+?)\s+(\S+)$", line)
        assert m, line
        age = sum(int(n) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[u]
                  for n, u in re.findall(r"(\d+)([dhms])", m.group(2)))
        listed.append((m.group(3), age))
    paths = [x for x, _ in listed]

    # nothing else, and all of it but a manifest a worker may have served
    # since (the workers report what they serve): blobs nginx never sent
    # (prefetch brought them) and tag records must be there
    assert set(paths) <= set(old_files + new_files), paths
    must = [f for f in old_files + new_files
            if f.startswith("tags/")
            or f.split("/")[-1] not in (old.manifest.hex, new.manifest.hex)]
    assert set(must) <= set(paths), (must, paths)
    olds = [i for i, x in enumerate(paths) if x in old_files]
    news = [i for i, x in enumerate(paths) if x in new_files]
    assert max(olds) < min(news), paths
    assert all(age >= 7200 for x, age in listed if x in old_files), listed
    assert all(3600 <= age < 7200 for x, age in listed if x in new_files), \
        listed

    p = ctl(ctl_bin, "evict", "--dry-run", "1", config=mirror.config_path)
    assert p.returncode == 0
    assert len(p.stdout.splitlines()) == 3, p.stdout
    assert p.stdout.splitlines()[1].endswith(" " + paths[0])

    # eviction runs on its own: the fetcher's usage status
    p = ctl(ctl_bin, "evict", config=mirror.config_path)
    assert p.returncode == 2
    assert p.stdout.startswith("usage: evict --dry-run [N]"), p.stdout


def test_du_counts_what_the_store_holds(mirror, upstream, catalog, ctl_bin):
    reg = upstream.hostport
    plat = catalog["plat"]
    amd64 = plat.images[0]
    assert amd64.arch == "amd64"
    held = {"e2e/multi": catalog["multi"].blobs(),
            "e2e/shared-a": catalog["shared_a"].blobs(),
            "e2e/shared-b": catalog["shared_b"].blobs(),
            "e2e/plat": [plat.index] + amd64.blobs()}
    for repo in ("e2e/multi", "e2e/shared-a", "e2e/shared-b"):
        pull_tag(mirror, repo, catalog[repo[4:].replace("-", "_")])
    pull_tag(mirror, "e2e/plat", plat)
    assert_manifest(mirror.get("/v2/e2e/plat/manifests/" +
                               amd64.manifest.digest,
                               {"Accept": ACCEPT_ALL}), amd64.manifest)
    # by digest only: no tag reaches these
    small = catalog["small"]
    assert_manifest(mirror.get("/v2/e2e/small/manifests/" +
                               small.manifest.digest,
                               {"Accept": ACCEPT_ALL}), small.manifest)
    for blobs in list(held.values()) + [small.blobs()]:
        wait_stored(mirror, blobs)
    upstream.access.settle()

    # the expected numbers, from the images and stat()
    repo_set = {r: {b.digest for b in bs} for r, bs in held.items()}
    reached = set().union(*repo_set.values())
    stored = mirror.stored_digests()
    assert reached <= stored
    repo_bytes = {r: sum(disk(mirror, d) for d in s)
                  for r, s in repo_set.items()}
    reached_bytes = sum(disk(mirror, d) for d in reached)
    unreached = stored - reached
    assert {b.digest for b in small.blobs()} <= unreached
    # the shared base layer counts in both repositories, once in all
    base = catalog["shared_a"].layers[0].blob.digest
    assert base in repo_set["e2e/shared-a"] & repo_set["e2e/shared-b"]
    assert reached_bytes < sum(repo_bytes.values())

    p = ctl(ctl_bin, "du", "--bytes", "--top", "3",
            config=mirror.config_path)
    assert p.returncode == 0, (p.stdout, p.stderr)
    out = p.stdout
    assert out.splitlines()[0] == "store %s" % mirror.store

    def num(pattern):
        m = re.search(pattern, out, re.M)
        assert m, (pattern, out)
        return tuple(int(x) for x in m.groups())

    assert num(r"^  blobs and manifests\s+(\d+) files?\s+(\d+)$") == \
        (len(stored), sum(disk(mirror, d) for d in stored))
    assert num(r"^  reached from tags\s+(\d+) files?\s+(\d+)$") == \
        (len(reached), reached_bytes)
    assert num(r"^  not reached\s+(\d+) files?\s+(\d+)  ") == \
        (len(unreached), sum(disk(mirror, d) for d in unreached))
    assert num(r"^  (\d+) tag records?$") == (4,)

    regs = re.findall(r"^  (\S+)\s+(\d+)  (\d+) repositor(?:y|ies), (\d+) "
                      r"tags?, (\d+) files?$", out, re.M)
    assert regs == [(reg, str(reached_bytes), "4", "4", str(len(reached)))]
    repos = re.findall(r"^    (\S+)\s+(\d+)  (\d+) tags?, (\d+) files?$",
                       out, re.M)
    want = sorted(((r, repo_bytes[r], 1, len(repo_set[r]))
                   for r in held), key=lambda x: (-x[1], x[0]))
    assert [(r, int(b), int(t), int(f)) for r, b, t, f in repos] == want

    top = re.findall(r"^  +(\d+)  (\S+)  (\d+) files?$",
                     out.split("largest images:\n", 1)[1], re.M)
    assert [(int(b), ref, int(f)) for b, ref, f in top] == \
        [(b, "%s/%s:v1" % (reg, r), f) for r, b, _, f in want[:3]]

    assert "\nfetcher\n  pinned: 0 pins, holding 0 stored files" in out, out
    assert "\n  next to go, least recently used first:\n" in out, out

    # for people: binary units
    p = ctl(ctl_bin, "du", config=mirror.config_path)
    assert p.returncode == 0
    assert re.search(r"^    multi\s+\d+\.\d MiB  1 tag, 7 files$",
                     p.stdout.replace("e2e/", ""), re.M), p.stdout
    assert len(re.findall(r"^  +\S+ \S+  \S+:v1  \d+ files$", p.stdout,
                          re.M)) == 4, p.stdout

    # without the fetcher: the store's part all the same, exit 0
    mirror.stop_fetcher()
    p = ctl(ctl_bin, "du", "--bytes", "--top", "3",
            config=mirror.config_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\nfetcher\n")[0] == out.split("\nfetcher\n")[0]
    assert "\nfetcher\n  unavailable: the fetcher is not running: " \
           in p.stdout, p.stdout
    assert mirror.socket_path in p.stdout
    mirror.start_fetcher()


def _normal(lines):
    """An answer with its numbers left out: two answers to the same
    question may differ in an id or a count."""
    return [re.sub(r"\d+", "N", x) for x in lines]


def test_warm_and_scrub_are_passed_through(mirror, ctl_bin):
    """What the CLI prints and its exit status are the fetcher's own
    answer to the same command line on the socket."""
    unknown = "unknown.example/team/app:v1"
    for args, text in ((["warm", "--no-wait", unknown], "warm " + unknown),
                       (["warm-status"], "warm-status"),
                       (["warm-status", "424242"], "warm-status 424242"),
                       (["scrub", "--deep", unknown],
                        "scrub --deep " + unknown),
                       (["scrub-status"], "scrub-status")):
        lines, status = raw_ctl(mirror.socket_path, text)
        p = ctl(ctl_bin, *args, config=mirror.config_path)
        assert p.returncode == status, (args, p.stdout, lines, status)
        assert _normal(p.stdout.splitlines()) == _normal(lines), \
            (args, p.stdout, lines)


# --- who may do what ------------------------------------------------------

@pytest.fixture
def world(ctl_bin):
    """A folder any user may enter, with a copy of ocimirrorctl: what a
    test runs as another uid must be able to reach both."""
    if SETPRIV is None:
        pytest.skip("setpriv(1) is not installed: no way to run as "
                    "another uid")
    if os.geteuid() != 0:
        pytest.skip("running as another uid needs root")
    d = tempfile.mkdtemp(prefix="octl-")
    try:
        os.chmod(d, 0o755)
        exe = os.path.join(d, "ocimirrorctl")
        shutil.copy2(ctl_bin, exe)
        os.chmod(exe, 0o755)
        p = ctl(exe, "help", as_nobody=True)
        if p.returncode != 0:
            pytest.skip("uid %d cannot run %s: %s" % (NOBODY, exe,
                                                      p.stderr.strip()))
        yield d, exe
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_admin_commands_are_refused_to_other_users(mirror_factory, upstream,
                                                  catalog, world):
    d, exe = world
    sockdir = os.path.join(d, "run")
    os.mkdir(sockdir)
    os.chmod(sockdir, 0o755)
    m = mirror_factory(upstream.hostport, [upstream_registry(upstream)],
                       socket_dir=sockdir)
    ref = "%s/e2e/small:v1" % upstream.hostport
    pull_tag(m, "e2e/small", catalog["small"])
    wait_stored(m, catalog["small"].blobs())

    p = ctl(exe, "status", sock=m.socket_path, as_nobody=True)
    if p.returncode != 0:
        pytest.skip("uid %d cannot use the fetcher's socket here: %s"
                    % (NOBODY, p.stderr.strip()))
    # reading is anyone's who can reach the socket
    assert p.stdout.splitlines()[0] == "store       %s" % m.store

    for args in (["pin", ref], ["unpin", ref], ["purge", ref],
                 ["warm", ref], ["scrub", ref]):
        p = ctl(exe, *args, sock=m.socket_path, as_nobody=True)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert p.stdout == ("\"%s\" changes the mirror: run it as root or "
                            "as the fetcher's user (uid %d)\n"
                            % (args[0], os.geteuid())), p.stdout

    # nothing happened
    p = ctl(exe, "pins", sock=m.socket_path, as_nobody=True)
    assert p.stdout.startswith("0 pins"), p.stdout
    for b in catalog["small"].blobs():
        assert m.has_blob(b.digest)

    # root may
    p = ctl(exe, "pin", ref, sock=m.socket_path)
    assert p.returncode == 0, p.stdout


def test_socket_the_user_may_not_use(world):
    d, exe = world
    private = os.path.join(d, "private")
    os.mkdir(private, 0o700)
    path = os.path.join(private, "fetcher.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    try:
        p = ctl(exe, "status", sock=path, as_nobody=True)
    finally:
        s.close()
    assert_error(p, 1, "cannot use the fetcher's socket %s: " % path,
                 "Permission denied",
                 "run as root or as a user allowed to use the socket")


def test_config_the_user_may_not_read(world):
    d, exe = world
    cfg = os.path.join(d, "ocimirror.cfg")
    with open(cfg, "w") as f:
        f.write(render_libconfig(os.path.join(d, "store"),
                                 os.path.join(d, "f.sock"), "127.0.0.1:1",
                                 [{"name": "127.0.0.1:1",
                                   "endpoints": ["http://127.0.0.1:1"]}]))
    os.chmod(cfg, 0o600)
    p = ctl(exe, "status", config=cfg, as_nobody=True)
    assert_error(p, 1, "%s:0: " % cfg)
    assert p.stderr.startswith("ocimirrorctl: %s:0: " % cfg), p.stderr


# --- without a fetcher ----------------------------------------------------

def _config(tmp_path, sock):
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    cfg = tmp_path / "ocimirror.cfg"
    cfg.write_text(render_libconfig(str(store), str(sock), "127.0.0.1:1",
                                    [{"name": "127.0.0.1:1",
                                      "endpoints": ["http://127.0.0.1:1"]}]))
    return cfg, store


def test_no_fetcher(ctl_bin, tmp_path):
    sock = tmp_path / "fetcher.sock"
    cfg, store = _config(tmp_path, sock)

    p = ctl(ctl_bin, "status", config=cfg)
    assert_error(p, 1, "the fetcher is not running", str(sock))
    assert p.stdout == ""

    # what a killed fetcher leaves: a socket file nobody listens on
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock))
    s.close()
    p = ctl(ctl_bin, "pins", config=cfg)
    assert_error(p, 1, "the fetcher is not running: nothing listens on %s"
                 % sock)

    # -s names the socket instead of the config's
    other = tmp_path / "other.sock"
    p = ctl(ctl_bin, "status", sock=other)
    assert_error(p, 1, "the fetcher is not running", str(other))

    # du measures the store all the same
    p = ctl(ctl_bin, "du", config=cfg)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("store %s\n" % store), p.stdout
    assert "\nfetcher\n  unavailable: the fetcher is not running: nothing " \
           "listens on %s" % sock in p.stdout, p.stdout
    assert p.stderr == ""

    # ... which it must be able to read
    shutil.rmtree(store)
    p = ctl(ctl_bin, "du", config=cfg)
    assert_error(p, 1, "cannot read the store %s: No such file" % store)


def test_config_errors(ctl_bin, tmp_path):
    missing = tmp_path / "none.cfg"
    p = ctl(ctl_bin, "status", config=missing)
    assert_error(p, 1)
    assert p.stderr.startswith("ocimirrorctl: %s:0: " % missing), p.stderr

    cfg, _ = _config(tmp_path, tmp_path / "f.sock")
    good = cfg.read_text()
    assert "fsync = false;" in good.splitlines()[0]
    cfg.write_text(good.replace("fsync = false;",
                                "fsync = false; nonsense = 1;"))
    p = ctl(ctl_bin, "status", config=cfg)
    assert_error(p, 1, "nonsense")
    assert p.stderr.startswith("ocimirrorctl: %s:1: " % cfg), p.stderr

    cfg.write_text(good + "this is not libconfig\n")
    p = ctl(ctl_bin, "pins", config=cfg)
    assert_error(p, 1)
    assert p.stderr.startswith("ocimirrorctl: %s:%d: "
                               % (cfg, len(good.splitlines()) + 1)), p.stderr

    # du needs the config for the store
    p = ctl(ctl_bin, "du", config=cfg, sock=tmp_path / "f.sock")
    assert_error(p, 1, "%s:" % cfg)


def test_usage(ctl_bin):
    p = ctl(ctl_bin, "frobnicate")
    assert_error(p, 2, "unknown command frobnicate;", "ocimirrorctl help")
    assert_error(ctl(ctl_bin), 2, "no command")
    assert_error(ctl(ctl_bin, "-x", "status"), 2, "unknown option -x;")
    assert_error(ctl(ctl_bin, "-t"), 2, "option -t needs a value;")
    assert_error(ctl(ctl_bin, "-t", "0", "status"), 2, "-t 0")
    assert_error(ctl(ctl_bin, "-t", "soon", "status"), 2, '-t "soon"')
    assert_error(ctl(ctl_bin, "pin", "a b"), 2, '"a b" holds a space')
    assert_error(ctl(ctl_bin, "pin", "a\tb"), 2, "control byte")
    assert_error(ctl(ctl_bin, "pin", ""), 2, "argument 2 is empty")
    assert_error(ctl(ctl_bin, "purge", "x" * 3000), 2,
                 "longer than 2047 bytes")
    assert_error(ctl(ctl_bin, "du", "--top"), 2, "--top needs a number")
    assert_error(ctl(ctl_bin, "du", "--next", "-1"), 2, '--next "-1"')
    assert_error(ctl(ctl_bin, "du", "--all"), 2, 'unknown argument "--all"')

    p = ctl(ctl_bin, "help")
    assert p.returncode == 0 and p.stderr == ""
    for cmd in ("status", "du [--top N] [--next N] [--bytes]",
                "evict --dry-run [N]", "pins", "pin REF [PLATFORM...]",
                "unpin REF", "purge REF|DIGEST",
                "warm [--no-wait] REF [PLATFORM...]", "warm-status [ID]",
                "scrub [--wait] [--deep] [REF]", "scrub-status",
                "clients --mirror URL [--out DIR] [--format F] [--ca FILE]",
                "help"):
        assert re.search(r"^    %s( |$)" % re.escape(cmd), p.stdout, re.M), \
            cmd
    assert "EXIT STATUS" in p.stdout
    assert max(len(x) for x in p.stdout.splitlines()) <= 80
    assert ctl(ctl_bin, "-h").stdout == p.stdout
    assert ctl(ctl_bin, "--help").stdout == p.stdout


# --- watching warm and scrub: a fake fetcher -------------------------------

def answer(lines, status=0):
    """OUT lines and the END, for the request id the fake fills in."""
    return "".join("OUT {id}%s\n" % (" " + x if x else "")
                   for x in lines) + "END {id} %d\n" % status


class FakeFetcher:
    """A unix socket that answers CTL lines: reply(text) gives the bytes
    to send back ("{id}" is the request's id), None for nothing ever,
    "close" to hang up.  received: the command lines, in order."""

    def __init__(self, path, reply):
        self.path = path
        self.reply = reply
        self.received = []
        self.conns = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        buf = b""
        while True:
            try:
                data = c.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                verb, rid, text = line.decode().split(" ", 2)
                assert verb == "CTL", line
                self.received.append(text)
                out = self.reply(text)
                if out == "close":
                    c.shutdown(socket.SHUT_RDWR)
                    return
                if out is not None:
                    c.sendall(out.replace("{id}", rid).encode())

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(5)


@pytest.fixture
def fake_fetcher(tmp_path):
    made = []

    def make(reply):
        f = FakeFetcher(str(tmp_path / ("fake%d.sock" % len(made))), reply)
        made.append(f)
        return f

    yield make
    for f in made:
        f.stop()


REF = "reg.example/team/app:v1"
QUEUED = answer(["#5 queued " + REF])
RESOLVING = answer(["#5 resolving %s 0/0 0/0" % REF])
FETCHING = answer(["#5 fetching %s 1/2 100/300" % REF,
                   "  %s stored 100/100" % D1,
                   "  %s fetching 0/200" % D2])
DONE = answer(["#5 done %s 2/2 300/300" % REF,
               "  %s stored 100/100" % D1,
               "  %s stored 200/200" % D2])
FAILED = answer(["#5 failed %s 1/2 100/300" % REF,
                 "  %s stored 100/100" % D1,
                 "  %s failed 0/200" % D2])


def warm_script(*statuses, queued=QUEUED):
    """warm answers queued; warm-status 5 answers statuses in turn, the
    last one again and again."""
    seq = list(statuses)

    def reply(text):
        if text.startswith("warm "):
            return queued
        if text == "warm-status 5":
            return seq.pop(0) if len(seq) > 1 else seq[0]
        return answer(["unexpected: " + text], 2)
    return reply


def test_warm_follows_the_warm_until_done(ctl_bin, fake_fetcher):
    f = fake_fetcher(warm_script(RESOLVING, FETCHING, FETCHING, DONE))
    p = ctl(ctl_bin, "warm", REF, "linux/amd64", sock=f.path)
    assert p.returncode == 0, (p.stdout, p.stderr)
    # not a terminal: a line when a state changes, the end last
    assert p.stdout == (
        "#5 queued %s\n"
        "#5 resolving %s 0/0 0/0\n"
        "#5 fetching %s 1/2 100/300\n"
        "  %s stored 100/100\n"
        "  %s fetching 0/200\n"
        "  %s stored 200/200\n"
        "#5 done %s 2/2 300/300\n" % (REF, REF, REF, D1, D2, D2, REF))
    assert p.stderr == ""
    assert f.received == ["warm %s linux/amd64" % REF] + \
        ["warm-status 5"] * 4


def test_warm_no_wait(ctl_bin, fake_fetcher):
    f = fake_fetcher(warm_script(FETCHING))
    p = ctl(ctl_bin, "warm", "--no-wait", REF, sock=f.path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "#5 queued %s\n" % REF
    assert f.received == ["warm " + REF]


def test_warm_that_fails(ctl_bin, fake_fetcher):
    f = fake_fetcher(warm_script(FETCHING, FAILED))
    p = ctl(ctl_bin, "warm", REF, sock=f.path)
    assert_error(p, 1, "warm #5 of %s failed" % REF)
    assert p.stdout.endswith("  %s failed 0/200\n#5 failed %s 1/2 100/300\n"
                             % (D2, REF)), p.stdout


def test_warm_refused_or_unknown(ctl_bin, fake_fetcher):
    # the fetcher's refusal: its words, its status, no polling
    f = fake_fetcher(lambda text: answer(["warm: no registry \"x\""], 1))
    p = ctl(ctl_bin, "warm", REF, sock=f.path)
    assert p.returncode == 1
    assert p.stdout == "warm: no registry \"x\"\n" and p.stderr == ""
    assert f.received == ["warm " + REF]

    # the warm is gone by the time it is asked about
    f = fake_fetcher(warm_script(answer(["no warm #5"], 1)))
    p = ctl(ctl_bin, "warm", REF, sock=f.path)
    assert p.returncode == 1
    assert p.stdout == "#5 queued %s\nno warm #5\n" % REF

    # an answer to warm that names no warm
    f = fake_fetcher(warm_script(DONE, queued=answer(["queued, somehow"])))
    p = ctl(ctl_bin, "warm", REF, sock=f.path)
    assert_error(p, 1, "malformed answer to warm")

    # a status that is not warm-status's grammar
    f = fake_fetcher(warm_script(answer(["#5 fetching %s soon" % REF])))
    p = ctl(ctl_bin, "warm", REF, sock=f.path)
    assert_error(p, 1, 'malformed answer to "warm-status 5"', "soon")

    # another warm's status
    f = fake_fetcher(warm_script(answer(["#6 done %s 0/0 0/0" % REF])))
    p = ctl(ctl_bin, "warm", REF, sock=f.path)
    assert_error(p, 1, 'malformed answer to "warm-status 5"', "#6 done")


def test_ctrl_c_stops_waiting_not_the_warm(ctl_bin, fake_fetcher):
    f = fake_fetcher(warm_script(FETCHING))
    p = subprocess.Popen([ctl_bin, "-s", f.path, "warm", REF],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: f.received.count("warm-status 5") >= 2, 30,
                 what="the CLI polling warm-status")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, (out, err)
    assert err == ("ocimirrorctl: stopped waiting; warm #5 goes on in the "
                   "fetcher (\"ocimirrorctl warm-status 5\" shows it)\n")
    assert out.startswith("#5 queued %s\n#5 fetching" % REF), out
    # no cancel: nothing but status questions after the warm
    assert set(f.received[1:]) == {"warm-status 5"}


def _run_on_a_terminal(cmd, cols=100, rows=24):
    """Run cmd with its stdout on a pseudo-terminal: (status, what the
    terminal got, stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ,
                struct.pack("HHHH", rows, cols, 0, 0))
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=subprocess.PIPE)
    os.close(slave)
    got = b""
    try:
        while True:
            r, _, _ = select.select([master], [], [], 30)
            if not r:
                break
            try:
                data = os.read(master, 65536)
            except OSError:           # EIO: the last writer closed
                break
            if not data:
                break
            got += data
        err = p.stderr.read().decode()
        p.wait(30)
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
            p.wait()
    for word in SANITIZER:
        assert word not in err, err
    return p.returncode, got.decode().replace("\r\n", "\n"), err


def test_warm_on_a_terminal_redraws_in_place(ctl_bin, fake_fetcher):
    f = fake_fetcher(warm_script(FETCHING, DONE))
    rc, out, err = _run_on_a_terminal([ctl_bin, "-s", f.path, "warm", REF])
    assert rc == 0, (out, err)
    assert out.startswith("#5 queued %s\n" % REF), out
    # the progress frame: the image, a bar a blob (short digests)
    assert "\r\033[2K#5 fetching %s  1/2 blobs  100 B of 300 B  33%%\n" \
        % REF in out, out
    assert "\r\033[2K  111111111111  stored   [####################] " \
        "100%  100 B of 100 B\n" in out, out
    assert "\r\033[2K  222222222222  fetching [                    ]   " \
        "0%  0 B of 200 B\n" in out, out
    # then up over those three lines, and the last frame in their place
    last = out.rsplit("\033[3A", 1)
    assert len(last) == 2, out
    assert last[1].startswith("\r\033[2K#5 done %s  2/2 blobs  300 B of "
                              "300 B  100%%\n" % REF), last[1]
    # nothing of the log's lines
    assert "  %s stored" % D1 not in out


def scrub_script(*statuses):
    seq = list(statuses)

    def reply(text):
        if text.startswith("scrub ") or text == "scrub":
            return answer(["scrub started: 12 files"])
        if text == "scrub-status":
            return seq.pop(0) if len(seq) > 1 else seq[0]
        return answer(["unexpected: " + text], 2)
    return reply


def test_scrub_wait(ctl_bin, fake_fetcher):
    running = answer(["state       running, 3 of 12 files", "bad         0"])
    idle = answer(["state       idle", "last        12 files, 0 bad"])
    f = fake_fetcher(scrub_script(running, running, idle))
    p = ctl(ctl_bin, "scrub", "--wait", "--deep", sock=f.path)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert p.stdout == ("scrub started: 12 files\nstate       idle\n"
                        "last        12 files, 0 bad\n")
    assert f.received == ["scrub --deep"] + ["scrub-status"] * 3

    # without --wait: the answer, no polling
    f = fake_fetcher(scrub_script(idle))
    p = ctl(ctl_bin, "scrub", sock=f.path)
    assert p.returncode == 0
    assert p.stdout == "scrub started: 12 files\n"
    assert f.received == ["scrub"]


def test_answers_passed_through(ctl_bin, fake_fetcher):
    f = fake_fetcher(lambda text: answer(
        ["first", "", "  third, indented"], {"status": 0, "pins": 1,
                                             "evict": 2}[text]))
    for cmd, status in (("status", 0), ("pins", 1), ("evict", 2)):
        p = ctl(ctl_bin, cmd, sock=f.path)
        assert p.returncode == status
        assert p.stdout == "first\n\n  third, indented\n"
        assert p.stderr == ""


def test_fetcher_faults(ctl_bin, fake_fetcher):
    f = fake_fetcher(lambda text: "close")
    assert_error(ctl(ctl_bin, "status", sock=f.path), 1,
                 "the fetcher closed the connection", f.path)

    f = fake_fetcher(lambda text: "OUT {id} half\n")
    p = ctl(ctl_bin, "-t", "1", "status", sock=f.path)
    assert_error(p, 1, "the fetcher did not answer within 1 s", f.path)
    assert p.stdout == "half\n"

    f = fake_fetcher(lambda text: "garbage\n")
    assert_error(ctl(ctl_bin, "status", sock=f.path), 1,
                 "malformed answer from the fetcher", '"garbage"')

    f = fake_fetcher(lambda text: "END 99 0\n")
    assert_error(ctl(ctl_bin, "status", sock=f.path), 1,
                 "another request's id")
