"""Processes and HTTP for the end-to-end tests: a real upstream registry
(Debian's docker-registry), the mirror (nginx with the module plus
ocimirror-fetcher), and small HTTP helpers.

Everything binds 127.0.0.1 on ports chosen at run time and lives in
temp directories handed in by the fixtures.
"""

import bisect
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import zlib

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..",
                                         ".."))
# OCIMIRROR_BUILD_DIR runs the suite against another build, e.g. a
# fetcher built with SANITIZE=1 elsewhere
BUILD = os.environ.get("OCIMIRROR_BUILD_DIR") or os.path.join(REPO_ROOT,
                                                              "build")
# OCIMIRROR_FETCHER: another fetcher binary (`make e2e` uses the one built
# with AddressSanitizer and UBSan, so that any report fails the suite)
FETCHER_BIN = os.environ.get("OCIMIRROR_FETCHER") or os.path.join(
    BUILD, "ocimirror-fetcher")
# OCIMIRROR_MODULE and OCIMIRROR_NGINX: another module and the nginx it
# was built for (`make e2e-asan-nginx`: both from build/asan-nginx, built
# with AddressSanitizer and UBSan; a module loads only into a binary of
# the same configure signature)
MODULE_SO = os.environ.get("OCIMIRROR_MODULE") or os.path.join(
    BUILD, "ngx_http_ocimirror_module.so")
# OCIMIRROR_CTL: another ocimirrorctl (`make e2e` uses the sanitizer
# build; the tests fail on any report on its stderr)
CTL_BIN = os.environ.get("OCIMIRROR_CTL") or os.path.join(BUILD,
                                                         "ocimirrorctl")
NGINX_INCLUDE = os.path.join(REPO_ROOT, "conf", "ocimirror-nginx.conf")

NGINX_BIN = os.environ.get("OCIMIRROR_NGINX") or "/usr/sbin/nginx"
REGISTRY_BIN = "/usr/bin/docker-registry"
SKOPEO_BIN = "/usr/bin/skopeo"
CONTAINERD_BIN = "/usr/bin/containerd"
CTR_BIN = "/usr/bin/ctr"

API_VERSION = "registry/2.0"

# error codes of the distribution spec (plus the mirror's 416 code)
SPEC_CODES = {"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN",
              "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID",
              "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN",
              "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED",
              "TOOMANYREQUESTS", "UNAVAILABLE", "UNKNOWN"}


def require_file(path, what):
    """Fail (never skip) when something the suite needs is missing."""
    if not os.path.exists(path):
        pytest.fail("%s is missing: %s" % (what, path), pytrace=False)
    return path


# Under pytest-xdist (make e2e) each worker hands out ports of a range of
# its own, below the kernel's ephemeral ports (32768-60999 on Linux): a
# port bind(0) gave and free_port() released could go to another worker's
# bind(0) before our server took it, and two nginx on one port answer
# each other's tests (seen at 4 workers).  The next port of the range
# each time, so that mirrors made before either starts differ too.
XDIST_PORT_BASE = 16000
XDIST_PORTS_PER_WORKER = 1000
_next_port = None


def free_port(host="127.0.0.1"):
    """A port no socket of host holds, for a server started next."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((host, 0))
        port = s.getsockname()[1]
        s.close()
        return port
    global _next_port
    first = XDIST_PORT_BASE + int(worker[2:]) * XDIST_PORTS_PER_WORKER
    assert first + XDIST_PORTS_PER_WORKER <= 32768, worker
    if _next_port is None:
        _next_port = random.randrange(XDIST_PORTS_PER_WORKER)
    for _ in range(XDIST_PORTS_PER_WORKER):
        port = first + _next_port
        _next_port = (_next_port + 1) % XDIST_PORTS_PER_WORKER
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free port in %d..%d on %s" % (
        first, first + XDIST_PORTS_PER_WORKER - 1, host))


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def unix_connectable(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def read_text(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def tail(path, n=40):
    return "\n".join(read_text(path).splitlines()[-n:])


# --- sanitizer reports of nginx --------------------------------------------

# The folder where the nginx processes of the running test write their
# sanitizer reports; conftest's sanitizer_reports fixture sets it for each
# test and fails the test if a report appears in it.
_sanitizer_dir = None


def set_sanitizer_dir(path):
    global _sanitizer_dir
    _sanitizer_dir = path


# reports of nginx's own code or design that are not the module's to fix,
# each explained in its file
ASAN_SUPPRESSIONS = os.path.join(os.path.dirname(os.path.abspath(
    __file__)), "asan-nginx.supp")
UBSAN_SUPPRESSIONS = os.path.join(os.path.dirname(os.path.abspath(
    __file__)), "ubsan-nginx.supp")


def nginx_env():
    """The environment of every nginx the suite starts (a stock nginx
    ignores the sanitizer variables).

    ASan's reports go to files of their own, <folder>/nginx.<pid>.  GCC
    links two runtimes, libasan and libubsan, and libubsan's start sets
    the report path of libasan (the symbol resolves there) to its own
    log_path: UBSAN_OPTIONS must name the same one, or ASan's reports go
    to stderr.  UBSan's own reports always go to stderr, which is the
    error log in a worker and nginx.out before the log is open: the
    Mirror reads both (log_problems).

    detect_leaks=0: on SIGTERM the master kills with SIGKILL a worker
    still exiting after about 1.5 s (ngx_master_process_cycle), and
    LeakSanitizer's check at exit takes longer on a busy machine: a full
    run with it at load 12 lost 3 workers that way, each an [alert] that
    failed its test, and a check cut short reports nothing.  That run
    found no leak but nginx's own (a worker's event arrays, left to the
    process's end; the cycle `nginx -t` returns from main() with); the
    module's memory is nginx's pools and its parsed config, freed by a
    pool cleanup.

    halt_on_error=0 for UBSan: go on after a report, so that one run shows
    all of them (an ASan report ends the worker, which the master only
    logs as a notice and respawns: the report file is what fails the
    test)."""
    env = dict(os.environ)
    if _sanitizer_dir is not None:
        prefix = os.path.join(_sanitizer_dir, "nginx")
        env["ASAN_OPTIONS"] = ("log_path=%s:abort_on_error=0:"
                               "detect_leaks=0:suppressions=%s"
                               % (prefix, ASAN_SUPPRESSIONS))
        env["UBSAN_OPTIONS"] = ("print_stacktrace=1:halt_on_error=0:"
                                "log_path=%s:suppressions=%s"
                                % (prefix, UBSAN_SUPPRESSIONS))
    return env


def sanitizer_problems(folder):
    """One problem per report file in folder, with its first lines: any
    file there is a report (the sanitizers create one only to write
    one)."""
    problems = []
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return problems
    for name in names:
        path = os.path.join(folder, name)
        head = "\n".join(read_text(path).splitlines()[:40])
        problems.append("sanitizer report %s:\n%s" % (path, head))
    return problems


def nginx_t(mirror):
    """`nginx -t` of a Mirror's configuration (written first); fails the
    test on a UBSan report, which goes to stderr."""
    p = subprocess.run([NGINX_BIN, "-t", "-p", mirror.prefix,
                        "-e", mirror.error_log, "-c", mirror.nginx_conf],
                       capture_output=True, text=True, timeout=20,
                       env=nginx_env())
    if "runtime error" in p.stderr or "Sanitizer" in p.stderr:
        pytest.fail("nginx -t: sanitizer report:\n" + p.stderr,
                    pytrace=False)
    return p


def nginx_is_sanitized(nginx_bin=None):
    """Whether an nginx binary was built with AddressSanitizer (its
    configure arguments say so)."""
    out = subprocess.run([nginx_bin or NGINX_BIN, "-V"],
                         capture_output=True, text=True, timeout=20,
                         env=nginx_env())
    return "-fsanitize=address" in out.stderr


# --- processes ------------------------------------------------------------

class Process:
    """One child process with its stderr (and stdout, unless stdout_path
    is given) appended to log files; stopped by PID only."""

    def __init__(self, name, args, log_path, stdout_path=None,
                 preexec_fn=None, env=None):
        # preexec_fn, env: as subprocess.Popen's (a resource limit, ...)
        self.name = name
        self.args = args
        self.log_path = log_path
        self.stdout_path = stdout_path
        self.preexec_fn = preexec_fn
        self.env = env
        self.popen = None

    def start(self):
        err = open(self.log_path, "ab")
        out = open(self.stdout_path, "ab") if self.stdout_path else None
        try:
            self.popen = subprocess.Popen(self.args,
                                          stdin=subprocess.DEVNULL,
                                          stdout=out or err, stderr=err,
                                          preexec_fn=self.preexec_fn,
                                          env=self.env)
        finally:
            err.close()
            if out:
                out.close()
        return self

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal and reap; returns the exit code (None if never run)."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
                raise AssertionError("%s (pid %d) ignored signal %d for %ss"
                                     % (self.name, self.popen.pid, sig,
                                        timeout))
        return self.popen.returncode


# --- HTTP -----------------------------------------------------------------

class Response:
    def __init__(self, status, reason, headers, body, error=None,
                 method=None):
        self.method = method             # what was asked ("HEAD": no body)
        self.status = status
        self.reason = reason
        self.headers = headers           # http.client.HTTPMessage
        self.body = body
        self.error = error               # exception that cut the body short

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        return json.loads(self.body)

    def error_code(self):
        return self.json()["errors"][0]["code"]

    def __repr__(self):
        return "<Response %s %s %r %r>" % (self.status, self.reason,
                                           dict(self.headers.items()),
                                           self.body[:300])


def request(hostport, method, path, headers=None, body=None, timeout=30):
    """One request on a fresh connection.  A body cut short (a broken
    transfer) is returned with .error set rather than raised."""
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=False,
                        skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        err = None
        try:
            data = r.read()
        except http.client.IncompleteRead as e:
            data, err = e.partial, e
        except (ConnectionError, socket.timeout) as e:
            data, err = b"", e
        return Response(r.status, r.reason, r.headers, data, err, method)
    finally:
        conn.close()


def raw_request(hostport, data, timeout=10):
    """Send raw bytes, return everything the server answers until it
    closes (or the timeout)."""
    host, port = hostport.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def parse_raw_response(raw):
    """(status, headers dict lower-case, body) of one raw HTTP answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


# --- access logs (nginx and docker-registry: combined format) -------------

class AccessLog:
    """Counts requests in an access log in combined format
    ('"GET /v2/... HTTP/1.1" 200'), from a mark (a byte offset)."""

    LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" '
                      r'(?P<status>\d{3})(?: (?P<bytes>\d+|-))?')

    def __init__(self, path):
        self.path = path

    def mark(self):
        try:
            return os.path.getsize(self.path)
        except FileNotFoundError:
            return 0

    def entries(self, since=0):
        with open(self.path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        out = []
        for line in text.splitlines():
            m = self.LINE.search(line)
            if m:
                out.append((m["method"], m["path"], int(m["status"])))
        return out

    def sent_bytes(self, method=None, path_regex="", since=0):
        """The bytes of the bodies the server sent (the size field after
        the status: docker-registry's and nginx's combined format) for
        the requests that match, from a mark."""
        rx = re.compile(path_regex)
        total = 0
        with open(self.path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        for line in text.splitlines():
            m = self.LINE.search(line)
            if m and (method is None or m["method"] == method) \
                    and rx.search(m["path"]) and m["bytes"] not in (None,
                                                                  "-"):
                total += int(m["bytes"])
        return total

    def count(self, method, path_regex, since=0, status=None):
        rx = re.compile(path_regex)
        return sum(1 for m, p, s in self.entries(since)
                   if (method is None or m == method) and rx.search(p)
                   and (status is None or s == status))

    def settle(self, quiet=0.3, timeout=10):
        """Wait until the log stops growing for `quiet` seconds: work the
        mirror does in the background (prefetch) has then reached it."""
        last = self.mark()
        still_since = time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.mark()
            if now != last:
                last, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                return


# --- the real upstream: Debian's docker-registry ---------------------------

class Upstream:
    """docker-registry on 127.0.0.1:<free port>, filesystem storage in a
    temp dir, its access log (stdout) and its own log (stderr) in files."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.port = free_port()
        self.hostport = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.hostport
        self.access_log_path = os.path.join(workdir, "access.log")
        self.log_path = os.path.join(workdir, "registry.log")
        self.access = AccessLog(self.access_log_path)
        self.proc = None

    def start(self):
        require_file(REGISTRY_BIN, "docker-registry (apt install "
                     "docker-registry)")
        cfg = os.path.join(self.workdir, "config.yml")
        with open(cfg, "w") as f:
            f.write("version: 0.1\n"
                    "log:\n  level: info\n  accesslog:\n"
                    "    disabled: false\n"
                    "storage:\n  filesystem:\n    rootdirectory: %s\n"
                    "  delete:\n    enabled: true\n"
                    "http:\n  addr: %s\n  secret: ocimirror-e2e\n"
                    % (os.path.join(self.workdir, "data"), self.hostport))
        # the access log goes to stdout, everything else to stderr
        self.proc = Process("docker-registry", [REGISTRY_BIN, "serve", cfg],
                            self.log_path, self.access_log_path).start()

        def up():
            if not self.proc.alive():
                raise AssertionError("docker-registry exited:\n"
                                     + tail(self.log_path))
            try:
                return request(self.hostport, "GET", "/v2/",
                               timeout=2).status == 200
            except OSError:
                return False
        wait_for(up, 15, what="docker-registry on " + self.hostport)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop()

    def get(self, path, headers=None):
        return request(self.hostport, "GET", path, headers)


def copy_binaries(dest):
    """Copy the fetcher and the module into dest; returns their paths.
    `make` rewrites build/*.so in place: an nginx that mapped it would
    crash (SIGBUS) if a rebuild ran during the suite."""
    require_file(FETCHER_BIN, "the fetcher (run `make fetcher`)")
    require_file(MODULE_SO, "the nginx module (run `make module`)")
    out = []
    for src in (FETCHER_BIN, MODULE_SO):
        dst = os.path.join(dest, os.path.basename(src))
        shutil.copy2(src, dst)
        out.append(dst)
    return tuple(out)


def copy_ctl(dest):
    """Copy ocimirrorctl into dest (a rebuild during the suite must not
    change the binary a test runs); returns its path."""
    require_file(CTL_BIN, "ocimirrorctl (run `make ctl`)")
    dst = os.path.join(dest, os.path.basename(CTL_BIN))
    shutil.copy2(CTL_BIN, dst)
    return dst


def upstream_registry(up, **kw):
    """An upstream's entry in a mirror's registries list."""
    d = {"name": up.hostport, "endpoints": [up.url], "tag_ttl": 300}
    d.update(kw)
    return d


# --- the mirror: ocimirror-fetcher + nginx with the module -----------------

def libconfig_value(v):
    """A Python value as a libconfig value: bool, int, float, string,
    list, or a dict as a group ({ key = value; ... })."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return "%dL" % v if abs(v) >= 2 ** 31 else str(v)
    if isinstance(v, float):
        return "%.6f" % v
    if isinstance(v, (list, tuple)):
        return "( %s )" % ", ".join(libconfig_value(x) for x in v)
    if isinstance(v, dict):
        return "{%s }" % libconfig_settings(v)
    return '"%s"' % v


def libconfig_settings(d):
    return "".join(" %s = %s;" % (k, libconfig_value(v))
                   for k, v in (d or {}).items())


def render_libconfig(store, socket_path, default_registry, registries,
                     min_free="1M", fsync=False, fetcher=None,
                     prefetch=None, store_settings=None,
                     settings=None):
    """registries: list of dicts name, endpoints, tag_ttl (300 if not
    given), and any other registry setting by its name (select = "fastest",
    password_file = "...", library_prefix = True, redirect_hosts = [...],
    ...).  An endpoint is a URL string, or a dict rendered as a group
    ({"url": ..., "username": ..., "password_file": ...}).
    fetcher: more settings of the fetcher group (chunk_size = "256K", ...);
    prefetch: the prefetch group's settings (none: the defaults);
    store_settings: more settings of the store group (max_size = "48M",
    high_watermark = 90, inactive = 2, recency_interval = 1, ...);
    settings: more top-level settings (warm = [...], warm_file = ...)."""
    regs = []
    for r in registries:
        fields = ['name = "%s";' % r["name"],
                  "endpoints = %s;" % libconfig_value(r["endpoints"]),
                  "tag_ttl = %d;" % r.get("tag_ttl", 300)]
        rest = {k: v for k, v in r.items()
                if k not in ("name", "endpoints", "tag_ttl")}
        regs.append("    { " + " ".join(fields) + libconfig_settings(rest)
                    + " }")
    # the suite's defaults, which `fetcher` may override (libconfig
    # refuses a setting written twice)
    fetcher_all = {"max_transfers": 16, "connect_timeout": 3,
                   "low_speed_time": 10}
    fetcher_all.update(fetcher or {})
    return ("store = { path = \"%s\"; fsync = %s; min_free = \"%s\";%s };\n"
            "fetcher = { socket = \"%s\";%s };\n"
            "%s"
            "default_registry = \"%s\";\n"
            "registries = (\n%s\n);\n"
            "%s"
            % (store, "true" if fsync else "false", min_free,
               libconfig_settings(store_settings), socket_path,
               libconfig_settings(fetcher_all),
               "prefetch = {%s };\n" % libconfig_settings(prefetch)
               if prefetch is not None else "",
               default_registry, ",\n".join(regs),
               libconfig_settings(settings).strip() + "\n"
               if settings else ""))


class Mirror:
    """The product under test.  `registries` as for render_libconfig."""

    def __init__(self, workdir, default_registry, registries,
                 socket_dir=None, fetch_timeout=None, min_free="1M",
                 binaries=None, fetcher=None, prefetch=None,
                 store_path=None, store_settings=None, fetcher_args=(),
                 settings=None, nginx_user="root", fetcher_prefix=(),
                 fetcher_preexec=None, fetcher_env=None, host="127.0.0.1"):
        # store_path: the store elsewhere than <workdir>/store (a small
        # tmpfs); store_settings: more keys of the store group;
        # fetcher_args: more arguments of the fetcher (["-v"]: debug lines);
        # settings: more top-level keys (warm = [...], ...)
        # nginx_user: the user nginx's workers run as ("www-data www-data");
        # fetcher_prefix: a command the fetcher runs under (setpriv ...)
        # binaries: (fetcher, module .so); copies made by the suite, so
        # that a rebuild during the run cannot rewrite a mapped file
        # host: the loopback address nginx listens on (127.0.0.2, ...: the
        # nodes of a cluster, harness.Cluster)
        self.fetcher_bin, self.module_so = binaries or (FETCHER_BIN,
                                                        MODULE_SO)
        self.workdir = workdir
        self.store = store_path or os.path.join(workdir, "store")
        self.store_settings = store_settings
        self.fetcher_args = list(fetcher_args)
        # fetcher_preexec, fetcher_env: run in the fetcher's child before
        # exec (a low RLIMIT_NOFILE), its environment (None: ours)
        self.fetcher_preexec = fetcher_preexec
        self.fetcher_env = fetcher_env
        # sun_path holds 108 bytes: long test names make long tmp paths
        self.socket_path = os.path.join(socket_dir or workdir,
                                        "fetcher.sock")
        self.config_path = os.path.join(workdir, "ocimirror.cfg")
        self.prefix = os.path.join(workdir, "nginx")
        self.nginx_conf = os.path.join(self.prefix, "nginx.conf")
        self.error_log = os.path.join(self.prefix, "error.log")
        self.access_log_path = os.path.join(self.prefix, "access.log")
        self.access = AccessLog(self.access_log_path)
        self.fetcher_log = os.path.join(workdir, "fetcher.log")
        self.host = host
        self.port = free_port(host)
        self.hostport = "%s:%d" % (host, self.port)
        self.default_registry = default_registry
        self.registries = registries
        self.fetch_timeout = fetch_timeout
        self.min_free = min_free
        self.fetcher_settings = fetcher
        self.prefetch_settings = prefetch
        self.settings = settings
        self.fetcher = None
        self.fetcher_stopped = False
        self.nginx = None
        self.fetcher_starts = 0
        self.killed = False
        self.nginx_user = nginx_user
        self.fetcher_prefix = list(fetcher_prefix)
        for d in (self.store, self.prefix):
            os.makedirs(d, exist_ok=True)

    # --- configuration -------------------------------------------------

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write(render_libconfig(self.store, self.socket_path,
                                     self.default_registry, self.registries,
                                     self.min_free,
                                     fetcher=self.fetcher_settings,
                                     prefetch=self.prefetch_settings,
                                     store_settings=self.store_settings,
                                     settings=self.settings))

    def render_include(self):
        text = read_text(require_file(NGINX_INCLUDE,
                                      "the project's nginx include"))
        access = ("access_log /var/log/nginx/ocimirror-access.log "
                  "ocimirror;")
        for needle in ("listen 127.0.0.1:5000;",
                       "ocimirror_config /etc/ocimirror/ocimirror.cfg;",
                       access):
            if needle not in text:
                raise AssertionError("%s no longer contains %r: the suite "
                                     "substitutes it" % (NGINX_INCLUDE,
                                                         needle))
        text = text.replace("listen 127.0.0.1:5000;",
                            "listen %s;" % self.hostport)
        text = text.replace("ocimirror_config /etc/ocimirror/ocimirror.cfg;",
                            "ocimirror_config %s;" % self.config_path)
        # the include's format, into the file the suite reads
        text = text.replace(access, "access_log %s ocimirror;"
                            % self.access_log_path)
        if self.fetch_timeout is not None:
            text = re.sub(r"ocimirror_fetch_timeout\s+\S+;",
                          "ocimirror_fetch_timeout %s;" % self.fetch_timeout,
                          text)
        path = os.path.join(self.prefix, "ocimirror-nginx.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def write_nginx_conf(self):
        include = self.render_include()
        temps = "\n".join("    %s_temp_path %s;" % (
            k, os.path.join(self.prefix, k + "_temp"))
            for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = ("load_module %s;\n"
                "user %s;\n"
                "worker_processes 2;\n"
                "daemon off;\n"
                "error_log %s info;\n"
                "pid %s;\n"
                "events { worker_connections 1024; }\n"
                "http {\n%s\n"
                "    access_log %s;\n"
                "    default_type application/octet-stream;\n"
                "    include %s;\n"
                "}\n"
                % (self.module_so, self.nginx_user, self.error_log,
                   os.path.join(self.prefix, "nginx.pid"), temps,
                   self.access_log_path, include))
        with open(self.nginx_conf, "w") as f:
            f.write(conf)

    # --- life cycle ----------------------------------------------------

    def start(self):
        require_file(self.fetcher_bin, "the fetcher (make fetcher)")
        require_file(self.module_so, "the nginx module (make module)")
        require_file(NGINX_BIN, "nginx (apt install nginx)")
        self.write_config()
        self.write_nginx_conf()
        self.start_fetcher()
        self.nginx = Process("nginx", [NGINX_BIN, "-p", self.prefix,
                                       "-e", self.error_log,
                                       "-c", self.nginx_conf],
                             os.path.join(self.prefix, "nginx.out"),
                             env=nginx_env())
        self.nginx.start()

        def up():
            if not self.nginx.alive():
                raise AssertionError("nginx exited:\n" + tail(self.error_log)
                                     + tail(self.nginx.log_path))
            try:
                return self.get("/healthz", timeout=2).status == 200
            except OSError:
                return False
        wait_for(up, 15, what="nginx /healthz on " + self.hostport)
        return self

    def start_fetcher(self):
        self.fetcher_stopped = False
        self.fetcher_starts += 1
        with open(self.fetcher_log, "a") as f:
            f.write("=== e2e: fetcher start %d\n" % self.fetcher_starts)
        self.fetcher = Process("ocimirror-fetcher",
                               self.fetcher_prefix
                               + [self.fetcher_bin, "-c", self.config_path]
                               + self.fetcher_args,
                               self.fetcher_log,
                               preexec_fn=self.fetcher_preexec,
                               env=self.fetcher_env)
        self.fetcher.start()

        def up():
            if not self.fetcher.alive():
                raise AssertionError("fetcher exited:\n"
                                     + tail(self.fetcher_log))
            return unix_connectable(self.socket_path)
        wait_for(up, 10, what="fetcher socket " + self.socket_path)

    def stop_fetcher(self, sig=signal.SIGTERM):
        self.fetcher_stopped = True
        return self.fetcher.stop(sig)

    def restart_fetcher(self, sig=signal.SIGKILL):
        """Stop the fetcher with sig and start a new one.  A SIGKILLed
        fetcher leaves its socket file behind: the new one must cope."""
        self.stop_fetcher(sig)
        self.start_fetcher()

    def stop_nginx(self, sig=signal.SIGTERM):
        """Stop nginx alone (by PID); returns its exit code."""
        return self.nginx.stop(sig)

    def start_nginx(self):
        """Start nginx again with the same configuration (after
        stop_nginx()) and wait for /healthz."""
        self.nginx = Process("nginx", [NGINX_BIN, "-p", self.prefix,
                                       "-e", self.error_log,
                                       "-c", self.nginx_conf],
                             os.path.join(self.prefix, "nginx.out"),
                             env=nginx_env())
        self.nginx.start()

        def up():
            if not self.nginx.alive():
                raise AssertionError("nginx exited:\n" + tail(self.error_log)
                                     + tail(self.nginx.log_path))
            try:
                return self.get("/healthz", timeout=2).status == 200
            except OSError:
                return False
        wait_for(up, 15, what="nginx /healthz on " + self.hostport)

    def nginx_workers(self):
        """The PIDs of the children of nginx's master (its workers)."""
        if self.nginx is None or not self.nginx.alive():
            return set()
        return children_of(self.nginx.popen.pid)

    def reload(self, timeout=20):
        """Write the libconfig file again (after a change of
        self.settings, ...), SIGHUP nginx's master and wait until every
        worker is a new one: they read the new file."""
        self.write_config()
        old = self.nginx_workers()
        os.kill(self.nginx.popen.pid, signal.SIGHUP)

        def reloaded():
            now = self.nginx_workers()
            return len(now) >= 1 and not (now & old)
        try:
            wait_for(reloaded, timeout, what="new nginx workers on "
                     + self.hostport)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, tail(self.error_log)))

    def kill(self):
        """SIGKILL nginx's master, then its workers, and the fetcher, by
        PID: the node is gone at once, as a crashed machine would be (its
        store stays).  stop() then reports none of them as a problem."""
        self.killed = True
        workers = self.nginx_workers()
        pids = [self.nginx.popen.pid] + sorted(workers)
        if self.fetcher is not None and self.fetcher.alive():
            pids.append(self.fetcher.popen.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.nginx.popen.wait(10)
        if self.fetcher is not None:
            self.fetcher.popen.wait(10)
        self.fetcher_stopped = True
        # the workers were the master's children: init reaps them
        wait_for(lambda: not any(_running(p) for p in workers),
                 10, what="nginx workers killed")

    def wait_ready(self, timeout=10):
        """Poll /readyz until 200 (the workers reconnected)."""
        wait_for(lambda: self.get("/readyz", timeout=2).status == 200,
                 timeout, what="/readyz 200")

    def stop(self):
        """Stop both by PID; returns the problems found: a process that
        died on its own, a bad exit, [alert]/[emerg], sanitizer reports."""
        problems = []
        if self.killed:
            return problems + self.log_problems()
        if self.nginx is not None:
            if not self.nginx.alive():
                problems.append("nginx exited by itself (%s)"
                                % self.nginx.popen.returncode)
            try:
                rc = self.nginx.stop(signal.SIGTERM)
                if rc != 0:
                    problems.append("nginx exited %s on SIGTERM" % rc)
            except AssertionError as e:
                problems.append(str(e))
        if self.fetcher is not None and not self.fetcher_stopped \
                and not self.fetcher.alive():
            problems.append("the fetcher exited by itself (%s)"
                            % self.fetcher.popen.returncode)
        if self.fetcher is not None and self.fetcher.alive():
            try:
                rc = self.fetcher.stop(signal.SIGTERM)
                if rc != 0:
                    problems.append("fetcher exited %s on SIGTERM" % rc)
            except AssertionError as e:
                problems.append(str(e))
        return problems + self.log_problems()

    def log_problems(self):
        problems = []
        for line in read_text(self.error_log).splitlines():
            if "[alert]" in line or "[emerg]" in line:
                problems.append("nginx error.log: " + line)
        for line in read_text(self.fetcher_log).splitlines():
            if "AddressSanitizer" in line or "runtime error" in line \
                    or "LeakSanitizer" in line:
                problems.append("fetcher log: " + line)
        # UBSan writes to stderr (nginx_env()): the error log, and the
        # master's stderr before the log is open
        for path in (self.error_log, os.path.join(self.prefix, "nginx.out")):
            for line in read_text(path).splitlines():
                if "AddressSanitizer" in line or "runtime error" in line:
                    problems.append("nginx: " + line)
        return problems

    def alive(self):
        return self.nginx.alive() and self.fetcher.alive()

    # --- requests ------------------------------------------------------

    def ctl(self, *args, timeout=30):
        """One ocimirrorctl command over the fetcher's socket, as the CLI
        sends it: (END status, [OUT lines])."""
        return ctl_command(self.socket_path, " ".join(args), timeout)

    def request(self, method, path, headers=None, body=None, timeout=30):
        return request(self.hostport, method, path, headers, body, timeout)

    def get(self, path, headers=None, timeout=30):
        return self.request("GET", path, headers, timeout=timeout)

    def head(self, path, headers=None, timeout=30):
        return self.request("HEAD", path, headers, timeout=timeout)

    # --- store ---------------------------------------------------------

    def blob_path(self, digest):
        hexd = digest.split(":", 1)[1]
        return os.path.join(self.store, "sha256", hexd[:2], hexd)

    def has_blob(self, digest):
        return os.path.exists(self.blob_path(digest))

    def stored_digests(self):
        out = set()
        root = os.path.join(self.store, "sha256")
        for dirpath, _, files in os.walk(root):
            for f in files:
                out.add("sha256:" + f)
        return out

    def diagnostics(self):
        return ("--- nginx error.log\n%s\n--- fetcher log\n%s"
                % (tail(self.error_log), tail(self.fetcher_log)))


def _proc_stat(pid):
    """(state, ppid) of a process, None if it is gone."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # pid (comm) state ppid ...: comm may hold spaces and parentheses
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _running(pid):
    st = _proc_stat(pid)
    return st is not None and st[0] != "Z"


def children_of(pid):
    """The PIDs of the live children of pid (a scan of /proc)."""
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(name)
            if st is not None and st[1] == pid and st[0] != "Z":
                out.add(int(name))
    return out


def tree_snapshot(root, exclude=()):
    """Every path under root (files and dirs), minus excluded subtrees."""
    out = set()
    excl = [os.path.abspath(e) for e in exclude]
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames
                       if os.path.abspath(os.path.join(dirpath, d))
                       not in excl]
        for name in dirnames + files:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def skopeo_copy(src, dest, extra=(), timeout=180):
    cmd = [SKOPEO_BIN, "--insecure-policy", "copy", "--all",
           "--src-tls-verify=false", "--dest-tls-verify=false"]
    cmd += list(extra) + [src, dest]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return p


def oci_layout_digests(layout):
    """(top digest of the single tag, set of blob digests) of a layout."""
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    top = idx["manifests"][0]["digest"]
    blobs = {"sha256:" + n for n in
             os.listdir(os.path.join(layout, "blobs", "sha256"))}
    return top, blobs


# --- assertions shared by the tests ----------------------------------------

ACCEPT_ALL = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json"])


def assert_json_error(r, status=None, code=None):
    """r is a registry error: 4xx/5xx (as given; never 500), Content-Type
    application/json, and the distribution spec's error body:
    {"errors": [{"code": ..., "message": ..., "detail": ...}, ...]}, a
    non-empty list whose every entry has a spec code and a message (the
    first code as given).  An answer to HEAD has no body to check: it
    must be empty, and say the type a GET's error body would have."""
    assert r.status != 500, r
    if status is not None:
        if isinstance(status, int):
            assert r.status == status, r
        else:
            assert r.status in status, r
    else:
        assert 400 <= r.status < 600, r
    ctype = r.header("Content-Type") or ""
    assert ctype.split(";")[0].strip() == "application/json", r
    if r.method == "HEAD":
        assert r.body == b"", r
        return r
    assert r.body, "an error without a body: %r" % r
    try:
        doc = json.loads(r.body)
    except ValueError:
        raise AssertionError("an error body that is not JSON: %r" % r)
    errors = doc.get("errors") if isinstance(doc, dict) else None
    assert isinstance(errors, list) and errors, \
        "no \"errors\" list in the body: %r" % r
    for e in errors:
        assert isinstance(e, dict), r
        assert e.get("code") in SPEC_CODES, r
        assert isinstance(e.get("message"), str) and e["message"], r
    got = errors[0]["code"]
    if code is not None:
        if isinstance(code, str):
            assert got == code, r
        else:
            assert got in code, r
    return r


def assert_blob(r, blob, head=False):
    """A complete 200 answer for an images.Blob."""
    assert r.status == 200, r
    assert r.error is None, r
    assert r.header("Docker-Distribution-API-Version") == API_VERSION, r
    assert r.header("Content-Length") == str(blob.size), r
    assert r.header("Docker-Content-Digest") == blob.digest, r
    if head:
        assert r.body == b"", r
    else:
        assert len(r.body) == blob.size, r
        assert sha256_hex(r.body) == blob.hex, r


def assert_manifest(r, blob, head=False):
    assert_blob(r, blob, head)
    assert r.header("Content-Type") == blob.media_type, r
    etag = r.header("ETag")
    assert etag is not None and blob.digest in etag, r


def random_bytes(seed, n):
    """n pseudo-random bytes, the same for the same seed."""
    return random.Random("ocimirror-e2e:" + str(seed)).randbytes(n)


def named_url(fake, host):
    """A fake server's URL with a host name (given an address through the
    registry's `resolve`) instead of its address."""
    return "http://%s:%d" % (host, fake.port)


def ctl_command(socket_path, command, timeout=30):
    """Send "CTL 1 <command>" to a fetcher's socket and read the answer:
    (END status, [OUT lines])."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(socket_path)
        s.sendall(("CTL 1 %s\n" % command).encode())
        buf = b""
        lines = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("the fetcher hung up before END: %r"
                                     % lines)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode()
                if text.startswith("OUT 1 ") or text == "OUT 1":
                    lines.append(text[6:])
                elif text.startswith("END 1 "):
                    return int(text[6:]), lines
                else:
                    raise AssertionError("unexpected line %r" % text)
    finally:
        s.close()


def fake_registry_entry(fake, name=None, **kw):
    """A FakeRegistry's entry in a mirror's registries list."""
    d = {"name": name or fake.hostport, "endpoints": [fake.url]}
    d.update(kw)
    return d


def store_tmp_files(mirror):
    d = os.path.join(mirror.store, "tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def assert_store_consistent(mirror):
    """Every file under sha256/ is named by the sha256 of its content."""
    for digest in mirror.stored_digests():
        with open(mirror.blob_path(digest), "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        assert got == digest.split(":", 1)[1], "torn or wrong blob " + digest


# --- a cluster of mirrors (issue 12) ----------------------------------------

def ketama_ring(peers):
    """The ring nginx's `hash $key consistent` builds over `server peer`
    lines (ngx_http_upstream_init_chash): 160 points a peer (weight 1),
    each crc32(HOST \\0 PORT PREV_HASH), PREV_HASH the previous point's
    hash in little-endian bytes (0 for the first); sorted, equal hashes
    kept once.  Returns (sorted hashes, their peers)."""
    points = []
    for peer in peers:
        host, _, port = peer.rpartition(":")
        base = host.encode() + b"\0" + port.encode()
        prev = 0
        for _ in range(160):
            h = zlib.crc32(base + struct.pack("<I", prev))
            points.append((h, peer))
            prev = h
    points.sort(key=lambda p: p[0])
    hashes, owners = [], []
    for h, peer in points:
        if not hashes or hashes[-1] != h:
            hashes.append(h)
            owners.append(peer)
    return hashes, owners


def ketama_owner(ring, key):
    """The peer nginx picks first for key (ngx_crc32_long of the key, the
    first point at or past it, wrapping; ngx_http_upstream_get_chash_peer
    with no peer failed)."""
    hashes, owners = ring
    i = bisect.bisect_left(hashes, zlib.crc32(key.encode()))
    return owners[i % len(hashes)]


class Cluster:
    """N mirror nodes, each a Mirror (its own store, fetcher and nginx)
    listening on 127.0.0.2, 127.0.0.3, ... (a port each, chosen at run
    time), sharing one secret file and one peers list, all with the same
    registries.  make_mirror(host=...) makes a Mirror, not started (the
    conftest's cluster_factory passes mirror_factory's, which stops it at
    teardown)."""

    def __init__(self, make_mirror, workdir, n, replicate="none",
                 fail_timeout=10, cluster_settings=None, **mirror_kw):
        self.make_mirror = make_mirror
        self.mirror_kw = mirror_kw
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.replicate = replicate
        self.fail_timeout = fail_timeout
        self.cluster_settings = dict(cluster_settings or {})
        self.secret_file = os.path.join(workdir, "cluster.secret")
        with open(self.secret_file, "w") as f:
            f.write("%032x\n" % random.getrandbits(128))
        self.nodes = [self._make(i) for i in range(n)]

    def _make(self, i):
        kw = dict(self.mirror_kw)
        kw["settings"] = dict(kw.get("settings") or {})
        return self.make_mirror(host="127.0.0.%d" % (2 + i), **kw)

    @property
    def peers(self):
        return [m.hostport for m in self.nodes]

    def _configure(self, node, peers):
        node.settings = dict(node.settings or {})
        node.settings["cluster"] = {
            "self": node.hostport, "peers": list(peers),
            "secret_file": self.secret_file, "replicate": self.replicate,
            "fail_timeout": self.fail_timeout, **self.cluster_settings}

    def start(self):
        for m in self.nodes:
            self._configure(m, self.peers)
        for m in self.nodes:
            m.start()
        return self

    def add_node(self, reload_order=None):
        """A node more: started with the longer list, then every other
        node's file rewritten and its nginx reloaded (SIGHUP), in
        reload_order (indexes; default all in order).  Returns it."""
        new = self._make(len(self.nodes))
        self.nodes.append(new)
        self._configure(new, self.peers)
        new.start()
        for i in (range(len(self.nodes) - 1) if reload_order is None
                  else reload_order):
            self.reload(i)
        return new

    def reload(self, i):
        self._configure(self.nodes[i], self.peers)
        self.nodes[i].reload()

    def ring(self, peers=None):
        return ketama_ring(peers or self.peers)

    def owner(self, key, peers=None):
        """The index of the node that owns key on the ring of peers."""
        p = ketama_owner(self.ring(peers), key)
        return [m.hostport for m in self.nodes].index(p)

    def diagnostics(self):
        return "\n".join("=== node %d (%s)\n%s" % (i + 1, m.hostport,
                                                   m.diagnostics())
                         for i, m in enumerate(self.nodes))
