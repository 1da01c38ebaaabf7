"""Least privilege: the fetcher as a user of its own, nginx's workers
reading through a group, everyone else kept out; the systemd units'
sandbox; /metrics kept to loopback.

systemd does not run here (no PID 1 of its own in a container), so the
units are checked offline (`systemd-analyze security`, which also parses
them) and what they set up is played by hand: the fetcher started by
setpriv as a uid with no other rights, over a store and a socket folder
it owns (what CacheDirectory= and RuntimeDirectory= make), nginx's master
as root with its workers as www-data, as Debian runs it.
"""

import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

import harness
import images

# one pytest-xdist worker runs them all (Makefile, E2E_JOBS): the
# module's fixtures once
pytestmark = pytest.mark.xdist_group("privileges")

UNIT = os.path.join(harness.REPO_ROOT, "conf", "systemd",
                    "ocimirror-fetcher.service")
NGINX_DROPIN = os.path.join(harness.REPO_ROOT, "conf", "systemd",
                            "nginx.service.d", "ocimirror.conf")
NGINX_UNIT = "/lib/systemd/system/nginx.service"
SYSUSERS = os.path.join(harness.REPO_ROOT, "conf", "sysusers.d",
                        "ocimirror.conf")
DOCKERFILE = os.path.join(harness.REPO_ROOT, "docker", "Dockerfile")
ENTRYPOINT = os.path.join(harness.REPO_ROOT, "docker", "entrypoint.sh")
ANALYZE = "/usr/bin/systemd-analyze"
SYSUSERS_BIN = "/usr/bin/systemd-sysusers"
SETPRIV = "/usr/bin/setpriv"
STRACE = "/usr/bin/strace"

# systemd-analyze's overall exposure, measured when the units were
# hardened (systemd 252): the fetcher's unit 1.2, Debian's nginx.service
# 9.6 alone and 5.4 with the drop-in.  A change that loosens either fails.
FETCHER_EXPOSURE_MAX = 1.2
NGINX_EXPOSURE_MAX = 5.4

# what the fetcher's unit must say, whatever else changes
FETCHER_DIRECTIVES = {
    "User": "ocimirror",
    "Group": "www-data",
    "UMask": "0027",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ReadWritePaths": "/var/cache/ocimirror /run/ocimirror",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "CapabilityBoundingSet": "",
    "SystemCallFilter": "@system-service",
    "MemoryDenyWriteExecute": "yes",
    "LockPersonality": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
}

NGINX_DIRECTIVES = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "full",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
}

# Run as another user: try what a client of the mirror's files would do,
# print what happened to each.
PROBE = r"""
import json, os, socket, sys
sock, store, blob = sys.argv[1:4]
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as e:
        out[name] = e.errno
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sock)
    finally:
        s.close()
attempt("connect", connect)
attempt("list_store", lambda: os.listdir(store))
attempt("read_blob", lambda: open(blob, "rb").read(1))
print(json.dumps(out))
"""


def unit_settings(*paths):
    """The [Service] settings of unit files read in order, as systemd
    merges them: key -> the values, in order."""
    out = {}
    for path in paths:
        section = None
        for line in harness.read_text(path).splitlines():
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                k, v = line.split("=", 1)
                out.setdefault(k.strip(), []).append(v.strip())
    return out


def exposure(unit_path):
    """systemd-analyze's overall exposure of a unit file (with the
    drop-ins of its folder), and what it said on stderr."""
    p = subprocess.run([ANALYZE, "security", "--offline=true", unit_path],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
    assert m, "no exposure level in:\n%s\n%s" % (p.stdout, p.stderr)
    return float(m.group(1)), p.stderr.strip()


def free_ids(n, taken):
    """n ids no user and no group of this machine has."""
    out = []
    i = 61000
    while len(out) < n:
        if i not in taken:
            try:
                pwd.getpwuid(i)
            except KeyError:
                try:
                    grp.getgrgid(i)
                except KeyError:
                    out.append(i)
        i += 1
    return out


def as_user(uid, gid, groups, args, timeout=30):
    cmd = [SETPRIV, "--reuid=%d" % uid, "--regid=%d" % gid]
    cmd += ["--groups=" + ",".join(str(g) for g in groups)] if groups \
        else ["--clear-groups"]
    return subprocess.run(cmd + ["--"] + args, capture_output=True,
                          text=True, timeout=timeout)


def probe(uid, gid, groups, sock, store, blob):
    p = as_user(uid, gid, groups,
                ["/usr/bin/python3", "-c", PROBE, sock, store, blob])
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def process_ids(pid):
    """(uid, gid, supplementary groups) of a running process."""
    ids = {}
    for line in harness.read_text("/proc/%d/status" % pid).splitlines():
        k, _, v = line.partition(":")
        ids[k] = v.split()
    return (int(ids["Uid"][1]), int(ids["Gid"][1]),
            sorted(int(g) for g in ids["Groups"]))


# --- the units, offline ----------------------------------------------------

@pytest.fixture(scope="module")
def analyze():
    harness.require_file(ANALYZE, "systemd-analyze (apt install systemd)")


def test_fetcher_unit_sandbox(analyze):
    """The fetcher's unit parses cleanly, keeps its exposure at most the
    measured one, and says what the sandbox rests on."""
    score, warnings = exposure(UNIT)
    assert warnings == "", warnings
    assert score <= FETCHER_EXPOSURE_MAX, score

    settings = unit_settings(UNIT)
    for key, want in FETCHER_DIRECTIVES.items():
        assert want in settings.get(key, []), (key, settings.get(key))
    # nothing may widen what it writes or what it is
    for key in ("ReadOnlyPaths", "AmbientCapabilities", "DynamicUser",
                "SupplementaryGroups"):
        assert settings.get(key, [""]) == [""], (key, settings[key])


def test_nginx_dropin_sandbox(analyze, tmp_path):
    """Debian's nginx.service with the drop-in: parsed cleanly, hardened
    to the measured exposure."""
    harness.require_file(NGINX_UNIT, "nginx.service (apt install nginx)")
    unit = tmp_path / "nginx.service"
    shutil.copy(NGINX_UNIT, unit)
    alone, _ = exposure(str(unit))
    (tmp_path / "nginx.service.d").mkdir()
    shutil.copy(NGINX_DROPIN, tmp_path / "nginx.service.d" / "ocimirror.conf")
    score, warnings = exposure(str(unit))
    assert warnings == "", warnings
    assert score <= NGINX_EXPOSURE_MAX < alone, (score, alone)

    settings = unit_settings(NGINX_UNIT, NGINX_DROPIN)
    for key, want in NGINX_DIRECTIVES.items():
        assert settings.get(key, [None])[-1] == want, (key, settings.get(key))


def test_sysusers_makes_the_user(tmp_path):
    """conf/sysusers.d makes ocimirror a system user whose group is
    www-data's (in a copy of this machine's user database)."""
    harness.require_file(SYSUSERS_BIN, "systemd-sysusers (apt install "
                         "systemd)")
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        if os.path.exists("/etc/" + name):
            shutil.copy("/etc/" + name, etc / name)
    p = subprocess.run([SYSUSERS_BIN, "--root=%s" % tmp_path, SYSUSERS],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    line = [l for l in harness.read_text(str(etc / "passwd")).splitlines()
            if l.startswith("ocimirror:")]
    assert len(line) == 1, line
    name, _, uid, gid, _, home, shell = line[0].split(":")
    assert int(gid) == grp.getgrnam("www-data").gr_gid
    assert 0 < int(uid) < 1000            # a system user
    assert (home, shell) == ("/var/cache/ocimirror", "/usr/sbin/nologin")


def test_unknown_group_refused(tmp_path):
    """A socket_group that does not exist: --check names file and line."""
    cfg = tmp_path / "ocimirror.cfg"
    cfg.write_text(harness.render_libconfig(
        str(tmp_path / "store"), str(tmp_path / "f.sock"), "127.0.0.1:5",
        [{"name": "127.0.0.1:5", "endpoints": ["http://127.0.0.1:5"]}],
        fetcher={"socket_group": "ocimirror-no-such-group"}))
    p = subprocess.run([harness.FETCHER_BIN, "--check", "-c", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert '%s:2: "fetcher.socket_group": no group ' \
        '"ocimirror-no-such-group"' % cfg in p.stderr, p.stderr
    assert not (tmp_path / "store").exists()


# --- the fetcher as a user of its own --------------------------------------

@pytest.fixture(scope="module")
def priv_upstream():
    """docker-registry with one small image (a folder of our own: the
    suite's temp folders are root's alone, the users below cannot enter
    them)."""
    work = tempfile.mkdtemp(prefix="ocimirror-priv-up-")
    image = images.Image("priv", [
        images._layer("priv-base", [("etc/p.txt", 3000)]),
        images._layer("priv-big", [("opt/p.bin", 1024 * 1024)], level=0)])
    up = harness.Upstream(work).start()
    try:
        images.skopeo_push(images.write_layout(os.path.join(work, "layout"),
                                               "v1", image),
                           "v1", up.hostport, "e2e/priv")
    except Exception:
        up.stop()
        raise
    yield up, image
    up.stop()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def open_root():
    """A temp folder others may pass through (0711), removed after."""
    root = tempfile.mkdtemp(prefix="ocimirror-priv-")
    os.chmod(root, 0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def store_entries(store):
    for dirpath, dirs, files in os.walk(store):
        yield dirpath, os.lstat(dirpath)
        for f in files:
            p = os.path.join(dirpath, f)
            yield p, os.lstat(p)


def own_user_mirror(root, up, fetcher_ids, fetcher_bin, wrap=()):
    """A mirror (not started) whose fetcher setpriv starts as
    fetcher_ids (uid, gid, supplementary groups), under wrap if any, with
    socket_group www-data; nginx's workers www-data.  In root, what the
    units' CacheDirectory= and RuntimeDirectory= make: the socket's
    folder in the workers' group (the unit's Group=), the store in the
    fetcher's own group (it gives the store the workers' itself)."""
    www = grp.getgrnam("www-data").gr_gid
    bindir = os.path.join(root, "bin")
    os.mkdir(bindir, 0o755)
    fetcher_bin = shutil.copy2(fetcher_bin, bindir)
    module_so = shutil.copy2(harness.MODULE_SO, bindir)
    store = os.path.join(root, "store")
    rundir = os.path.join(root, "run")
    for d, gid in ((store, fetcher_ids[1]), (rundir, www)):
        os.mkdir(d, 0o750)
        os.chown(d, fetcher_ids[0], gid)
    workdir = os.path.join(root, "mirror")
    os.mkdir(workdir, 0o755)

    prefix = list(wrap) + [SETPRIV, "--reuid=%d" % fetcher_ids[0],
                           "--regid=%d" % fetcher_ids[1]]
    prefix += ["--groups=" + ",".join(str(g) for g in fetcher_ids[2])] \
        if fetcher_ids[2] else ["--clear-groups"]
    return harness.Mirror(workdir, up.hostport,
                          [harness.upstream_registry(up)],
                          socket_dir=rundir, store_path=store,
                          binaries=(fetcher_bin, module_so),
                          fetcher={"socket_group": "www-data"},
                          nginx_user="www-data www-data",
                          fetcher_prefix=prefix)


@pytest.mark.parametrize("group_is", ["primary", "supplementary"])
def test_fetcher_as_its_own_user(priv_upstream, open_root, group_is):
    """The fetcher runs as a uid of its own; its group for the workers is
    www-data, as its primary group (the unit) or a supplementary one
    (then the socket is chowned and the store's folders pass the group
    on by set-group-ID).  nginx's workers, www-data, serve misses and
    hits and unlink the answers handed to them; the socket is 0660 and
    the store 0750/0640 in www-data; a user outside the group cannot
    connect or read."""
    up, image = priv_upstream
    www = grp.getgrnam("www-data").gr_gid
    www_uid = pwd.getpwnam("www-data").pw_uid
    fetcher_uid, own_gid, outsider = free_ids(3, {www, www_uid})
    if group_is == "primary":
        fetcher_ids = (fetcher_uid, www, [])
    else:
        fetcher_ids = (fetcher_uid, own_gid, [www])

    m = own_user_mirror(open_root, up, fetcher_ids, harness.FETCHER_BIN)
    store = m.store
    try:
        m.start()
        assert process_ids(m.fetcher.popen.pid) == (
            fetcher_ids[0], fetcher_ids[1], sorted(fetcher_ids[2]))
        # the workers reach the fetcher and read the store's marker
        m.wait_ready()

        # a miss of every blob (the workers stream the fetcher's temp
        # file), then the same as hits (the store's files)
        for _ in range(2):
            r = m.get("/v2/e2e/priv/manifests/v1",
                      {"Accept": images.MT_OCI_MANIFEST})
            harness.assert_manifest(r, image.manifest)
            for b in image.layer_blobs():
                harness.assert_blob(m.get("/v2/e2e/priv/blobs/" + b.digest),
                                    b)

        # an answer handed over in a file (BODY): read and unlinked by a
        # worker, another user than the file's
        r = m.get("/v2/e2e/priv/tags/list")
        assert r.status == 200, r
        assert r.json() == {"name": "e2e/priv", "tags": ["v1"]}
        harness.wait_for(lambda: harness.store_tmp_files(m) == [], 5,
                         what="the answer's file unlinked by the worker")

        # the socket: the fetcher's, 0660, www-data
        st = os.lstat(m.socket_path)
        assert stat.S_ISSOCK(st.st_mode)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
            fetcher_uid, www, 0o660)

        # the store: folders 0750 (tmp/ 0770), files 0640, all www-data's;
        # set-group-ID where the group is not the fetcher's own
        setgid = stat.S_ISGID if group_is == "supplementary" else 0
        seen = {"dirs": 0, "files": 0}
        for path, st in store_entries(store):
            assert (st.st_uid, st.st_gid) == (fetcher_uid, www), path
            if stat.S_ISDIR(st.st_mode):
                want = 0o770 if path == os.path.join(store, "tmp") else 0o750
                assert stat.S_IMODE(st.st_mode) == want | setgid, (
                    path, oct(st.st_mode))
                seen["dirs"] += 1
            else:
                assert stat.S_IMODE(st.st_mode) == 0o640, (
                    path, oct(st.st_mode))
                seen["files"] += 1
        # the blobs, the manifest, its type, the tag record, the marker
        assert seen["files"] >= len(image.blobs()) + 3, seen

        blob = m.blob_path(image.layers[1].blob.digest)
        # www-data (nginx's workers) gets in; someone outside does not
        assert probe(www_uid, www, [], m.socket_path, store, blob) == {
            "connect": "ok", "list_store": "ok", "read_blob": "ok"}
        assert probe(outsider, outsider, [], m.socket_path, store,
                     blob) == {"connect": 13, "list_store": 13,
                               "read_blob": 13}

        log = harness.read_text(m.error_log)
        assert "Permission denied" not in log, log
        assert "Permission denied" not in harness.read_text(m.fetcher_log)
    finally:
        problems = m.stop()
    assert problems == [], problems


def syscall_group(name, seen=None):
    """The system calls of a systemd syscall-filter set, nested sets
    expanded."""
    seen = seen if seen is not None else set()
    seen.add(name)
    p = subprocess.run([ANALYZE, "syscall-filter", name],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    out = set()
    for line in p.stdout.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            if line not in seen:
                out |= syscall_group(line, seen)
        else:
            out.add(line)
    return out


def unit_syscalls(settings):
    """What the unit's SystemCallFilter= lines allow: the allow lists
    joined, less the deny (~) lists."""
    allow, deny = set(), set()
    for value in settings["SystemCallFilter"]:
        target = deny if value.startswith("~") else allow
        for name in value.lstrip("~").split():
            target |= syscall_group(name) if name.startswith("@") \
                else {name}
    return allow - deny


def test_fetcher_within_the_unit_sandbox(analyze, priv_upstream,
                                         open_root):
    """The fetcher (the build a unit runs, not the sanitizer's) traced
    through start, misses, hits, a BODY answer, the workers' USED
    batches, ocimirrorctl status, a deep scrub, a purge and a stop: every
    system call it makes is one the unit's SystemCallFilter= lets through
    (a call outside it would fail with EPERM in production, where no test
    runs), its sockets are of the unit's RestrictAddressFamilies=, and
    it opens nothing in /proc or /sys (ProcSubset=pid, ProtectProc=)."""
    harness.require_file(STRACE, "strace (apt install strace)")
    plain = harness.require_file(os.path.join(harness.BUILD,
                                              "ocimirror-fetcher"),
                                 "the fetcher (make fetcher)")
    up, image = priv_upstream
    www = grp.getgrnam("www-data").gr_gid
    uid = free_ids(1, {www, pwd.getpwnam("www-data").pw_uid})[0]
    trace = os.path.join(open_root, "strace.txt")
    m = own_user_mirror(open_root, up, (uid, www, []), plain,
                        wrap=[STRACE, "-f", "-qq", "-o", trace])
    m.store_settings = {"recency_interval": 1}
    stopped = False
    try:
        m.start()
        m.wait_ready()
        for _ in range(2):
            r = m.get("/v2/e2e/priv/manifests/v1",
                      {"Accept": images.MT_OCI_MANIFEST})
            harness.assert_manifest(r, image.manifest)
            for b in image.layer_blobs():
                harness.assert_blob(m.get("/v2/e2e/priv/blobs/" + b.digest),
                                    b)
        assert m.get("/v2/e2e/priv/tags/list").status == 200
        assert m.ctl("status")[0] == 0
        assert m.ctl("scrub", "--deep")[0] == 0
        harness.wait_for(lambda: "state       idle" in m.ctl(
            "scrub-status")[1], 20, what="the scrub's end")
        time.sleep(1.5)                    # a USED batch of each worker
        layer = image.layers[0].blob.digest
        assert m.ctl("purge", layer)[0] == 0
        assert not m.has_blob(layer)

        # strace's child is the fetcher: stop it, strace ends with it
        with open("/proc/%d/task/%d/children" % (m.fetcher.popen.pid,
                                                  m.fetcher.popen.pid)) as f:
            os.kill(int(f.read().split()[0]), signal.SIGTERM)
        assert m.fetcher.popen.wait(20) == 0
        m.fetcher_stopped = stopped = True
    finally:
        problems = m.stop()
    assert stopped and problems == [], problems

    lines = harness.read_text(trace).splitlines()
    start = [i for i, l in enumerate(lines)
             if re.search(r'execve\("[^"]*/ocimirror-fetcher".* = 0$', l)]
    assert len(start) == 1, start
    calls, families, opened = set(), set(), set()
    for line in lines[start[0] + 1:]:
        c = re.match(r"\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", line)
        if c:
            calls.add(c.group(1))
        families |= set(re.findall(r"socket(?:pair)?\((AF_[A-Z0-9]+)",
                                   line))
        opened |= set(re.findall(r'"(/(?:proc|sys)/[^"]*)"', line))
    settings = unit_settings(UNIT)
    # the calls above were made, and a few of them name the work
    assert {"accept4", "epoll_wait", "rename", "unlink", "fsync"} <= calls
    assert calls - unit_syscalls(settings) == set()
    assert families <= set(settings["RestrictAddressFamilies"][0].split())
    assert opened == set()


# --- /metrics ---------------------------------------------------------------

def test_metrics_loopback_only(mirror):
    """The shipped include answers /metrics to loopback only, wherever
    the server listens (the image listens on every address and keeps the
    include's location as it is)."""
    assert mirror.get("/metrics").status == 200

    s = socket.create_connection(("127.0.0.1", mirror.port), timeout=10,
                                 source_address=("127.0.0.3", 0))
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    finally:
        s.close()
    assert raw.startswith(b"HTTP/1.1 403 "), raw[:200]
    assert b"ocimirror_" not in raw

    # /v2/ itself stays open to that address
    s = socket.create_connection(("127.0.0.1", mirror.port), timeout=10,
                                 source_address=("127.0.0.3", 0))
    try:
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 200 ")
    finally:
        s.close()

    # the image's edits of the include (sed s|...|...| in its entrypoint,
    # with the default listen address and config) leave its /metrics
    # location as it is
    include = harness.read_text(harness.NGINX_INCLUDE)
    image = include
    edits = re.findall(r"s\|([^|]*)\|([^|]*)\|",
                       harness.read_text(DOCKERFILE)
                       + harness.read_text(ENTRYPOINT))
    assert edits, "the image no longer edits the include with sed"
    for old, new in edits:
        new = new.replace("$listen", "5000").replace(
            "$cfg", "/etc/ocimirror/ocimirror.cfg")
        image = image.replace(old, new)
    assert image != include
    block = re.compile(r"location = /metrics \{[^}]*\}")
    assert block.findall(image) == block.findall(include)
    assert "deny all;" in block.findall(include)[0]
