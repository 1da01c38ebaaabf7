#!/usr/bin/python3
"""ocimirror benchmark (`make bench`): the mirror side by side with static
nginx (the limit for hits), Docker's registry in proxy mode (the peer) and
a direct pull across a simulated WAN.

    make bench                 full run (about 7 minutes)
    BENCH_QUICK=1 make bench   smaller blobs, shorter wrk runs, a smaller
                               synthetic store (about 4 minutes)

Everything runs on 127.0.0.1 with ports chosen at run time, in one temp
directory that is removed at the end; every process is stopped by PID.

    upstream   docker-registry, filesystem storage, filled by skopeo (the
               10-layer image) and the registry API (raw blobs)
    wan        tests/bench/wanproxy.py in front of the upstream: latency,
               a per-connection bandwidth cap, byte counters; for the
               second set of cold pulls, a cap on the whole link too
    static     plain nginx serving the same blob files (sendfile)
    peer       docker-registry with proxy.remoteurl = the wan
    cluster    three mirrors (fetcher + nginx each) on 127.0.0.2-4 with one
               peers list and a shared secret, and a fourth alone with the
               same settings: the cold pull through the cluster against
               one node (time, upstream bytes, the tag's upstream
               requests) and the time to first byte of a blob miss asked
               of a node that is not the blob's owner against its owner
    ocimirror  build/ocimirror-fetcher + nginx with the module, the wan as
               its default registry
    recency-on, recency-off
               two more nginx with the module in front of ocimirror's
               fetcher and store, their copies of the config differing in
               store.recency alone: the hit path with and without it
    lone       ocimirror-fetcher alone (no nginx, no upstream traffic) on a
               synthetic store of BENCH_STORE_FILES blobs: the index load,
               memory per indexed file, one eviction of 10 %, and the
               event loop's longest stall during each
    scrub      ocimirror-fetcher alone on a synthetic store of
               BENCH_SCRUB_MIB of blobs of 256 KiB-8 MiB, one of them
               damaged: a pass at store.scrub_rate = 200M (the rate it
               achieves, how far it ever ran ahead, the loop's longest
               stall, its memory, what it quarantined), one unthrottled
               (the hash ceiling), a deep one over a few gzip images; then
               nginx with the module and a fetcher of their own on part of
               that store: hits with a pass at the default rate running
               and without, in pairs of wrk runs

The table goes to stdout and into BENCHMARKS.md at the top of the repo.
A figure the product could not produce is printed as "failed: <reason>".

Environment: BENCH_QUICK=1; BENCH_RTT_MS (40); BENCH_RATE_MIB (8, MiB/s
per connection); BENCH_LINK_MIB (twice BENCH_RATE_MIB: MiB/s of the
whole WAN link, shared by every connection, for the second set of cold
pulls; 0 leaves them out); BENCH_WRK_SECONDS; BENCH_STORE_FILES (100000, quick
20000); BENCH_SCRUB_MIB (1536, quick 256); BENCH_STORE_DIR=DIR writes the
synthetic stores under DIR (default: a tmpfs at /dev/shm if there is one
with room, else the temp directory);
BENCH_KEEP=1 keeps the temp directory (its path is printed);
BENCH_OUTPUT=FILE writes the report elsewhere; OCIMIRROR_BUILD_DIR
measures another build.
"""

import datetime
import hashlib
import http.client
import json
import math
import os
import platform
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import benchdata  # noqa: E402
import commitstall  # noqa: E402
import wanproxy  # noqa: E402

BUILD = os.environ.get("OCIMIRROR_BUILD_DIR") or os.path.join(REPO, "build")
FETCHER_BIN = os.path.join(BUILD, "ocimirror-fetcher")
MODULE_SO = os.path.join(BUILD, "ngx_http_ocimirror_module.so")
NGINX_INCLUDE = os.path.join(REPO, "conf", "ocimirror-nginx.conf")

CACHE_H = os.path.join(REPO, "src", "fetcher", "cache.h")
SCRUB_H = os.path.join(REPO, "src", "fetcher", "scrub.h")
OCI_CONFIG_H = os.path.join(REPO, "src", "oci_config.h")

NGINX_BIN = "/usr/sbin/nginx"
REGISTRY_BIN = "/usr/bin/docker-registry"
SKOPEO_BIN = "/usr/bin/skopeo"
WRK_BIN = "/usr/bin/wrk"
PYTHON_BIN = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable

MiB = 1024 * 1024

ACCEPT_ALL = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json"])

IMAGE_REPO = "bench/image"         # the cold pulls only
LINK_IMAGE_REPO = "bench/image-link"    # the cold pulls under a link cap
TAGGED_REPO = "bench/tagged"       # manifest by tag (small layers)
BLOB_REPO = "bench/blobs"
TAG = "v1"
TAG_TTL = 300                      # ocimirror's, in seconds


def env_flag(name):
    return os.environ.get(name, "") not in ("", "0", "no", "false")


def env_num(name, default):
    v = os.environ.get(name)
    return float(v) if v else default


class Params:
    def __init__(self):
        self.quick = env_flag("BENCH_QUICK")
        q = self.quick
        self.rtt_ms = env_num("BENCH_RTT_MS", 40.0)
        self.rate_mib = env_num("BENCH_RATE_MIB", 8.0)
        # a region caps its link as a whole, not only each connection:
        # twice a connection's rate lets parallel downloads gain, but
        # not without limit
        self.link_mib = env_num("BENCH_LINK_MIB", 2 * self.rate_mib)
        self.layers = 10
        self.layer_mib = 2 if q else 6
        self.small_mib = 1
        self.large_mib = 64
        self.coalesce_mib = 16 if q else 64
        self.coalesce_clients = 32
        self.fanout_n = 64
        self.fanout_mib = 1 if q else 2
        self.ttfb_mib = 64 if q else 256
        # a cluster of three mirrors (127.0.0.2-4) against one: the cold
        # pull of the 10-layer image, and the time to first byte of a
        # blob miss asked of a node that is not the blob's owner against
        # one asked of its owner, in pairs of cold blobs
        self.cluster_nodes = 3
        self.cluster_pairs = 4 if q else 8
        self.cluster_blob_mib = 4
        self.cluster_hits = 20      # GETs of a stored layer, each side
        self.wrk_seconds = int(env_num("BENCH_WRK_SECONDS", 2 if q else 5))
        self.wrk_rounds = 2 if q else 3
        self.wrk_threads = 2
        self.wrk_conns = 16
        # recency on and off: a 4 KiB blob (where the cost per request
        # shows) and the manifest by tag, in pairs of runs at the same
        # time; many short pairs rather than a few long ones
        self.tiny_bytes = 4096
        self.ab_rounds = 4 if q else 10
        self.ab_seconds = 2
        self.store_files = int(env_num("BENCH_STORE_FILES",
                                       20000 if q else 100000))
        self.store_poll = 0.005     # seconds between scrapes of eviction
        # the scrub: a synthetic store of blobs of 256 KiB-8 MiB, scrubbed
        # by a fetcher alone at a rate that keeps the pass short yet paced,
        # then unthrottled (the hash ceiling); a deep pass over a few gzip
        # images; hits through nginx while a pass runs at the default rate
        self.scrub_mib = int(env_num("BENCH_SCRUB_MIB", 256 if q else 1536))
        self.scrub_min = 256 * 1024
        self.scrub_max = 8 * MiB
        self.scrub_rate = "200M"
        self.scrub_fast = "100G"
        self.scrub_poll = 0.1
        self.deep_images = 3
        self.deep_layers = 2 if q else 4
        self.deep_layer_mib = 4 if q else 6
        self.scrub_ab_rounds = 2 if q else 6
        # one blob downloaded and committed with store.fsync = true by a
        # fetcher alone: the loop's longest stall (commitstall.py)
        self.commit_mib = int(env_num("BENCH_COMMIT_MIB", 256 if q else 1024))
        # past this, the remaining steps are skipped (their cells say so)
        self.budget = 240.0 if q else 780.0


# --- small helpers ----------------------------------------------------------

class Failure:
    """A cell the run could not measure."""

    def __init__(self, reason):
        self.reason = reason

    def __str__(self):
        return self.reason


class StepError(Exception):
    pass


def ok(v):
    return v is not None and not isinstance(v, Failure)


def one_line(text, limit=120):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise StepError("timed out after %.0fs waiting for %s"
                            % (timeout, what))
        time.sleep(interval)


def read_text(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def tail(path, n=15):
    return "\n".join(read_text(path).splitlines()[-n:])


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


def proc_status(pid):
    """(VmRSS, VmHWM) of a process in KiB, or None if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            text = f.read()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def cpu_seconds(pids):
    """User + system CPU time of the processes, in seconds."""
    ticks = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / float(os.sysconf("SC_CLK_TCK"))


def children_of(ppid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == ppid:
            out.append(int(d))
    return out


# --- the fetcher's metrics, its store, its loop ------------------------------

LOOP_LONGEST = "ocimirror_fetcher_loop_longest_stall_seconds"
LOOP_STALL = "ocimirror_fetcher_loop_stall_seconds"


def parse_metrics(text):
    """{sample name with its labels, as written: value} of Prometheus
    text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            raise StepError("not a metric line: %r" % line)
    return out


def stall_buckets(m):
    """{upper bound in seconds (inf last): cumulative count} of the
    loop's histogram in the scrape m."""
    prefix = LOOP_STALL + '_bucket{le="'
    out = {float(k[len(prefix):-2]): v for k, v in m.items()
           if k.startswith(prefix)}
    if float("inf") not in out:
        raise StepError("the fetcher exports no %s (an older build?)"
                        % LOOP_STALL)
    return out


class StallWindow:
    """The event loop's turns between two scrapes a and b of the fetcher:
    how many, how many passed each bound of the histogram, and the longest
    one: exact when it is a new record since the start (the gauge rose),
    else bounded by the first bucket that holds every turn of the window
    and by the record."""

    def __init__(self, a, b):
        ba, bb = stall_buckets(a), stall_buckets(b)
        self.turns = b[LOOP_STALL + "_count"] - a[LOOP_STALL + "_count"]
        self.busy = b[LOOP_STALL + "_sum"] - a[LOOP_STALL + "_sum"]
        self.over = {le: self.turns - (bb[le] - ba[le]) for le in bb}
        bound = min(le for le, n in self.over.items() if n == 0)
        if b[LOOP_LONGEST] > a[LOOP_LONGEST]:
            self.exact, self.bound = b[LOOP_LONGEST], b[LOOP_LONGEST]
        else:
            self.exact, self.bound = None, min(bound, a[LOOP_LONGEST])

    def over_ms(self, ms):
        return int(self.over[ms / 1000.0])

    def longest_text(self):
        if self.exact is not None:
            return "%.1f ms" % (self.exact * 1000)
        return "≤ %.3g ms" % (self.bound * 1000)


CLUSTER_FORWARDED = "ocimirror_cluster_forwarded_total"
CLUSTER_PEER_REQUESTS = "ocimirror_cluster_peer_requests_total"
CLUSTER_METRICS = (CLUSTER_FORWARDED, CLUSTER_PEER_REQUESTS,
                   "ocimirror_cluster_peer_refused_total",
                   "ocimirror_cluster_list_mismatch_total")

SCRUB_BYTES = "ocimirror_fetcher_scrub_checked_bytes_total"
SCRUB_FILES = "ocimirror_fetcher_scrub_checked_total"
SCRUB_CORRUPT = "ocimirror_fetcher_scrub_corrupt_total"
SCRUB_MISMATCHES = "ocimirror_fetcher_scrub_diff_id_mismatches_total"
SCRUB_SKIPPED = "ocimirror_fetcher_scrub_skipped_total"
SCRUB_RUNNING = "ocimirror_fetcher_scrub_running"

UNITS = {"": 1, "B": 1, "K": 1024, "KiB": 1024, "M": MiB, "MiB": MiB,
         "G": 1024 * MiB, "GiB": 1024 * MiB, "T": MiB * MiB,
         "TiB": MiB * MiB}


def size_of(text):
    """Bytes of a size as the config writes it ("200M", binary units) or
    as ocimirrorctl prints it ("12.3 MiB")."""
    m = re.fullmatch(r"([\d.]+)\s*([KMGT]?(?:iB)?|B)", text.strip())
    if m is None or m.group(2) not in UNITS:
        raise StepError("not a size: %r" % text)
    return float(m.group(1)) * UNITS[m.group(2)]


def c_define(path, name):
    """An integer #define of a header: a product of integer literals
    ("(50LL * 1024 * 1024)")."""
    m = re.search(r"#define\s+%s\s+\(?([\dL\s*]+)\)?" % name,
                  read_text(path))
    if m is None:
        raise StepError("no %s in %s" % (name, os.path.relpath(path, REPO)))
    return math.prod(int(x) for x in re.findall(r"\d+", m.group(1)))


def scrub_status(fs):
    """scrub-status over a FetcherSocket: {first word: [the lines' rest]}
    (the words ctl_scrub.c fixes)."""
    status, out = fs.ctl("scrub-status")
    if status != 0:
        raise StepError("scrub-status answered %d: %s"
                        % (status, one_line(" / ".join(out))))
    lines = {}
    for line in out:
        word, _, rest = line.partition(" ")
        lines.setdefault(word, []).append(rest.strip())
    return lines


SCRUB_DONE = re.compile(
    r"scrub: the (deep )?pass of (.*) is done in ([\d.]+) s: (\d+) files "
    r"checked, (\d+) bytes read \(([\d.]+) MiB/s\), (\d+) corrupt, (\d+) "
    r"diff_id mismatches, (\d+) skipped, (\d+) vanished")


def scrub_passes(log_path):
    """The passes a fetcher's log says it ended, oldest first: the pass's
    own account, from its start to its end on the fetcher's clock
    (scrub-status prints the rate with two or three digits; the log with
    a tenth of a MiB/s)."""
    out = []
    for line in read_text(log_path).splitlines():
        m = SCRUB_DONE.search(line)
        if m:
            out.append({"deep": bool(m.group(1)), "files": int(m.group(4)),
                        "read": int(m.group(5)),
                        "rate": float(m.group(6)) * MiB,
                        "corrupt": int(m.group(7)),
                        "mismatches": int(m.group(8)),
                        "skipped": int(m.group(9)),
                        "vanished": int(m.group(10))})
    return out


def mount_of(path):
    """(mount point, filesystem type) that holds path."""
    path = os.path.realpath(path)
    best = ("/", "unknown")
    for line in read_text("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or not rfields:
            continue
        mnt = fields[4].replace("\\040", " ")
        if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) \
                and len(mnt) >= len(best[0]):
            best = (mnt, rfields[0])
    return best


def store_parent(workdir, need_bytes):
    """Where the synthetic store goes: BENCH_STORE_DIR; else a tmpfs at
    /dev/shm with room for it (writing 100k small files on a journaled
    disk takes a minute, on tmpfs seconds); else workdir."""
    d = os.environ.get("BENCH_STORE_DIR")
    if d:
        return d
    shm = "/dev/shm"
    if os.path.isdir(shm) and mount_of(shm)[1] == "tmpfs":
        st = os.statvfs(shm)
        if st.f_bavail * st.f_frsize > 2 * need_bytes:
            return shm
    return workdir


def cache_grace():
    """CACHE_GRACE (src/fetcher/cache.h): seconds a used file may not
    go."""
    m = re.search(r"#define\s+CACHE_GRACE\s+(\d+)", read_text(CACHE_H))
    if m is None:
        raise StepError("no CACHE_GRACE in src/fetcher/cache.h")
    return int(m.group(1))


# --- processes ---------------------------------------------------------------

class Proc:
    """A child process, output appended to a log file, stopped by PID."""

    def __init__(self, name, args, log_path, stdout=None, env=None):
        self.name = name
        self.args = args
        self.log_path = log_path
        self.stdout = stdout
        self.env = env
        self.popen = None

    def start(self):
        with open(self.log_path, "ab") as err:
            self.popen = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL,
                stdout=self.stdout if self.stdout is not None else err,
                stderr=err, env=self.env)
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout=10):
        if self.popen is None or self.popen.poll() is not None:
            return
        workers = children_of(self.popen.pid) if self.name.startswith(
            "nginx") else []
        try:
            os.kill(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            log("%s (pid %d) ignored SIGTERM for %ds: SIGKILL"
                % (self.name, self.popen.pid, timeout))
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        except ProcessLookupError:
            pass
        # an nginx master that had to be killed leaves its workers behind
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- HTTP --------------------------------------------------------------------

class Fetch:
    """The outcome of one streamed GET."""

    def __init__(self):
        self.status = None
        self.headers = {}
        self.nbytes = 0
        self.sha256 = None
        self.ttfb = None            # seconds to the first body byte
        self.total = None           # seconds to the end of the body
        self.error = None
        self.body = b""             # all of it with keep_body
        self.start = b""            # its first 512 bytes, for messages


def fetch(hostport, path, headers=None, timeout=120, keep_body=False,
          max_bytes=None):
    """GET path; reads the body in chunks, hashing it.  max_bytes stops
    after that much body (then the connection is dropped)."""
    r = Fetch()
    host, port = hostport.rsplit(":", 1)
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        r.status = resp.status
        r.headers = {k.lower(): v for k, v in resp.getheaders()}
        h = hashlib.sha256()
        body = []
        while True:
            want = 256 * 1024
            if max_bytes is not None:
                want = min(want, max_bytes - r.nbytes)
                if want <= 0:
                    break
            chunk = resp.read1(want)
            if not chunk:
                break
            if r.ttfb is None:
                r.ttfb = time.monotonic() - t0
            if len(r.start) < 512:
                r.start += chunk[:512 - len(r.start)]
            r.nbytes += len(chunk)
            h.update(chunk)
            if keep_body:
                body.append(chunk)
        r.total = time.monotonic() - t0
        r.sha256 = h.hexdigest()
        r.body = b"".join(body)
    except (OSError, http.client.HTTPException) as e:
        r.error = "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()
    return r


def expect_blob(r, blob, what):
    """Raise StepError unless r is the complete, right blob."""
    if r.error:
        raise StepError("%s: %s after %d bytes" % (what, r.error, r.nbytes))
    if r.status != 200:
        raise StepError("%s: HTTP %s %s" % (what, r.status,
                                            one_line(r.start[:200])))
    if r.nbytes != blob.size or r.sha256 != blob.hex:
        raise StepError("%s: got %d bytes (sha256 %s...), want %d (%s...)"
                        % (what, r.nbytes, (r.sha256 or "")[:12], blob.size,
                           blob.hex[:12]))


def _read_small_answer(s, deadline):
    """Read one complete small answer with a Content-Length."""
    buf = b""
    while True:
        head, sep, body = buf.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if m and len(body) >= int(m.group(1)):
                return
        if time.monotonic() > deadline:
            raise StepError("no answer to the priming request")
        chunk = s.recv(65536)
        if not chunk:
            raise StepError("closed during the priming request")
        buf += chunk


def ttfb_probe(hostport, path, timeout=60, reuse=False):
    """Seconds to the first body byte of a GET; the connection is then
    dropped.  Fresh: counted from connect().  reuse: a GET /v2/ on the
    same connection first, and the count starts when the blob request is
    sent (a kept-alive connection).  StepError on a non-200."""
    host, port = hostport.rsplit(":", 1)
    t0 = time.monotonic()
    deadline = t0 + timeout
    s = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if reuse:
            s.sendall(("GET /v2/ HTTP/1.1\r\nHost: %s\r\n\r\n"
                       % hostport).encode())
            _read_small_answer(s, deadline)
            t0 = time.monotonic()
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n"
                   "Connection: close\r\n\r\n" % (path, hostport)).encode())
        buf = b""
        while True:
            if time.monotonic() > deadline:
                raise StepError("no first byte in %ds" % timeout)
            chunk = s.recv(65536)
            if not chunk:
                raise StepError("connection closed after %d bytes: %s"
                                % (len(buf), one_line(buf[:200])))
            buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep and body:
                t = time.monotonic() - t0
                status = int(head.split(b" ", 2)[1])
                if status != 200:
                    raise StepError("HTTP %d: %s" % (status,
                                                     one_line(body[:200])))
                return t
    finally:
        s.close()


def push_blob(hostport, repo, blob, timeout=300):
    """Monolithic upload with the registry API (POST, then PUT)."""
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout,
                                      blocksize=1 << 20)
    try:
        conn.request("POST", "/v2/%s/blobs/uploads/" % repo,
                     headers={"Content-Length": "0"})
        r = conn.getresponse()
        r.read()
        if r.status != 202:
            raise StepError("upload POST: HTTP %d" % r.status)
        loc = urllib.parse.urlsplit(r.getheader("Location"))
        path = loc.path + "?" + (loc.query + "&" if loc.query else "") + \
            "digest=" + urllib.parse.quote(blob.digest)
        with open(blob.path, "rb") as f:
            conn.request("PUT", path, body=f,
                         headers={"Content-Length": str(blob.size),
                                  "Content-Type":
                                  "application/octet-stream"})
            r = conn.getresponse()
            r.read()
        if r.status != 201:
            raise StepError("upload PUT: HTTP %d" % r.status)
    finally:
        conn.close()


# --- RSS sampling ------------------------------------------------------------

class RssSampler:
    """Samples VmRSS of named process groups every 50 ms in a thread.
    phase(name) starts a phase: the baseline of every PID is its first
    sample, and the phase keeps each PID's peak."""

    def __init__(self):
        self.groups = {}            # name -> callable returning [pid]
        self.pids = {}              # name -> [pid], refreshed
        self.phases = {}            # phase -> {group: {pid: [base, peak]}}
        self.current = None
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.thread = None

    def add(self, name, pid_fn):
        self.groups[name] = pid_fn

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def phase(self, name):
        with self.lock:
            self._refresh()
            self.current = name
            self.phases.setdefault(name, {})
        self._sample()

    def end_phase(self):
        self._sample()
        with self.lock:
            self.current = None

    def _refresh(self):
        for name, fn in self.groups.items():
            try:
                self.pids[name] = fn()
            except OSError:
                self.pids[name] = []

    def _sample(self):
        with self.lock:
            if self.current is None:
                return
            ph = self.phases[self.current]
            for name, pids in self.pids.items():
                g = ph.setdefault(name, {})
                for pid in pids:
                    st = proc_status(pid)
                    if st is None:
                        continue
                    rec = g.get(pid)
                    if rec is None:
                        g[pid] = [st[0], st[0]]
                    elif st[0] > rec[1]:
                        rec[1] = st[0]

    def _run(self):
        last_refresh = 0
        while not self.stop_ev.wait(0.05):
            if time.monotonic() - last_refresh > 0.5:
                self._refresh()
                last_refresh = time.monotonic()
            self._sample()

    def stop(self):
        self.stop_ev.set()
        if self.thread:
            self.thread.join(5)

    def peak(self, phase, group):
        """Largest VmRSS (KiB) of one process of the group in the phase."""
        g = self.phases.get(phase, {}).get(group, {})
        return max((p for _, p in g.values()), default=None)

    def growth(self, phase, group):
        """Largest per-process VmRSS growth (KiB) in the phase."""
        g = self.phases.get(phase, {}).get(group, {})
        return max((p - b for b, p in g.values()), default=None)


# --- the cast ----------------------------------------------------------------

def registry_config(path, root, hostport, remote=None):
    with open(path, "w") as f:
        f.write("version: 0.1\n"
                "log:\n  level: warn\n  accesslog:\n    disabled: %s\n"
                "storage:\n  filesystem:\n    rootdirectory: %s\n"
                "  delete:\n    enabled: true\n"
                "http:\n  addr: %s\n  secret: ocimirror-bench\n"
                % ("true" if remote else "false", root, hostport))
        if remote:
            f.write("proxy:\n  remoteurl: %s\n" % remote)


def start_registry(name, workdir, remote=None):
    os.makedirs(workdir, exist_ok=True)
    port = free_port()
    hostport = "127.0.0.1:%d" % port
    cfg = os.path.join(workdir, "config.yml")
    registry_config(cfg, os.path.join(workdir, "data"), hostport, remote)
    access = open(os.path.join(workdir, "access.log"), "ab")
    try:
        p = Proc(name, [REGISTRY_BIN, "serve", cfg],
                 os.path.join(workdir, "registry.log"), stdout=access).start()
    finally:
        access.close()
    p.hostport = hostport

    def up():
        if not p.alive():
            raise StepError("%s exited: %s" % (
                name, one_line(tail(p.log_path, 5))))
        try:
            return fetch(hostport, "/v2/", timeout=2).status == 200
        except OSError:
            return False
    wait_for(up, 20, "%s on %s" % (name, hostport))
    return p


def start_wanproxy(workdir, upstream, rtt_ms, rate_mib):
    logp = os.path.join(workdir, "wanproxy.log")
    p = Proc("wanproxy", [PYTHON_BIN, os.path.join(HERE, "wanproxy.py"),
                          "--upstream", upstream, "--rtt-ms", str(rtt_ms),
                          "--rate-mib", str(rate_mib)],
             logp, stdout=subprocess.PIPE).start()
    deadline = time.monotonic() + 15
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not p.alive():
            p.stop()
            raise StepError("wanproxy did not start: %s"
                            % one_line(tail(logp, 5)))
        r, _, _ = select.select([p.popen.stdout], [], [], left)
        if r:
            b = os.read(p.popen.stdout.fileno(), 1)
            if not b:
                continue
            line += b
    parts = line.decode().split()
    if len(parts) != 3 or parts[0] != "READY":
        p.stop()
        raise StepError("wanproxy said %r" % line)
    p.port, p.control = int(parts[1]), int(parts[2])
    p.hostport = "127.0.0.1:%d" % p.port
    return p


def wan_stats(wan):
    return wanproxy.query(wan.control)


def wait_wan_quiet(wan, quiet=0.5, timeout=90):
    """Wait until no byte crossed the WAN for `quiet` seconds."""
    last = wan_stats(wan)["down_bytes"]
    still = time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = wan_stats(wan)["down_bytes"]
        if now != last:
            last, still = now, time.monotonic()
        elif time.monotonic() - still >= quiet:
            return last
    raise StepError("the WAN was still busy after %ds" % timeout)


def nginx_main_conf(prefix, http_body, module_so=None):
    temps = "\n".join("    %s_temp_path %s;" % (
        k, os.path.join(prefix, k + "_temp"))
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return ("%s%s"
            "worker_processes 2;\n"
            "daemon off;\n"
            "error_log %s warn;\n"
            "pid %s;\n"
            "events { worker_connections 4096; }\n"
            "http {\n%s\n"
            "    access_log off;\n"
            "    default_type application/octet-stream;\n"
            "%s\n"
            "}\n"
            % ("load_module %s;\n" % module_so if module_so else "",
               "user root;\n" if os.geteuid() == 0 else "",
               os.path.join(prefix, "error.log"),
               os.path.join(prefix, "nginx.pid"), temps, http_body))


def start_nginx(name, prefix, conf_text, hostport, health_path):
    os.makedirs(prefix, exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    errlog = os.path.join(prefix, "error.log")
    p = Proc(name, [NGINX_BIN, "-p", prefix, "-e", errlog, "-c", conf],
             os.path.join(prefix, "nginx.out")).start()
    p.hostport = hostport

    def up():
        if not p.alive():
            raise StepError("%s exited: %s %s" % (
                name, one_line(tail(errlog, 5)),
                one_line(tail(p.log_path, 5))))
        try:
            return fetch(hostport, health_path, timeout=2).status == 200
        except OSError:
            return False
    wait_for(up, 20, "%s on %s" % (name, hostport))
    return p


def product_open_file_cache():
    """The open_file_cache directives of conf/ocimirror-nginx.conf: the
    static nginx compared with ocimirror caches files the same way."""
    lines = re.findall(r"^\s*(open_file_cache\w*\s[^;]*;)",
                       read_text(NGINX_INCLUDE), re.M)
    if not lines:
        raise StepError("conf/ocimirror-nginx.conf has no open_file_cache")
    return "".join("        %s\n" % line for line in lines)


def start_static(workdir, root, store):
    """nginx serving root, and under /store/ ocimirror's store."""
    prefix = os.path.join(workdir, "static-nginx")
    port = free_port()
    hostport = "127.0.0.1:%d" % port
    body = ("    server {\n"
            "        listen %s;\n"
            "        sendfile on;\n"
            "        tcp_nopush on;\n"
            "%s"
            "        root %s;\n"
            "        location /store/ { alias %s/; }\n"
            "        location = /healthz { return 200; }\n"
            "    }" % (hostport, product_open_file_cache(), root, store))
    return start_nginx("nginx-static", prefix,
                       nginx_main_conf(prefix, body), hostport, "/healthz")


def render_include(prefix, hostport, config):
    """conf/ocimirror-nginx.conf listening on hostport and reading config,
    written under prefix; its path."""
    text = read_text(NGINX_INCLUDE)
    access = "access_log /var/log/nginx/ocimirror-access.log ocimirror;"
    for needle in ("listen 127.0.0.1:5000;",
                   "ocimirror_config /etc/ocimirror/ocimirror.cfg;", access):
        if needle not in text:
            raise StepError("conf/ocimirror-nginx.conf no longer has %r"
                            % needle)
    text = text.replace("listen 127.0.0.1:5000;", "listen %s;" % hostport)
    text = text.replace("ocimirror_config /etc/ocimirror/ocimirror.cfg;",
                        "ocimirror_config %s;" % config)
    # measured as before the include logged: no access log
    text = text.replace(access, "access_log off;")
    path = os.path.join(prefix, "ocimirror-nginx.conf")
    os.makedirs(prefix, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


class Mirror:
    """ocimirror: the fetcher and nginx with the module."""

    def __init__(self, workdir, wan_hostport, store=None, store_extra="",
                 host="127.0.0.1", name="ocimirror"):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.store = store or os.path.join(workdir, "store")
        self.store_extra = store_extra
        self.name = name
        # top-level groups written after the others (a node's cluster)
        self.extra_groups = ""
        self.socket = os.path.join(workdir, "fetcher.sock")
        self.config = os.path.join(workdir, "ocimirror.cfg")
        self.prefix = os.path.join(workdir, "nginx")
        self.fetcher_log = os.path.join(workdir, "fetcher.log")
        self.error_log = os.path.join(self.prefix, "error.log")
        self.port = free_port(host)
        self.hostport = "%s:%d" % (host, self.port)
        self.wan = wan_hostport
        self.fetcher = None
        self.nginx = None
        # copies: `make` rewrites build/*.so in place, and an nginx that
        # mapped it would die if a rebuild ran meanwhile
        bindir = os.path.join(workdir, "bin")
        os.makedirs(bindir, exist_ok=True)
        for src in (FETCHER_BIN, MODULE_SO):
            if not os.path.exists(src):
                raise StepError("%s is missing (make all)"
                                % os.path.relpath(src, REPO))
            shutil.copy2(src, bindir)
        self.fetcher_bin = os.path.join(bindir, os.path.basename(FETCHER_BIN))
        self.module_so = os.path.join(bindir, os.path.basename(MODULE_SO))

    def config_text(self, fetcher_extra="", store_extra=""):
        """Everything not written here keeps the product's default."""
        return ('store = { path = "%s"; fsync = false; '
                'min_free = "1M"; %s};\n'
                'fetcher = { socket = "%s"; max_transfers = 64;\n'
                '            connect_timeout = 10; '
                'low_speed_time = 30; %s};\n'
                'default_registry = "%s";\n'
                'registries = (\n'
                '    { name = "%s"; endpoints = ( "http://%s" ); '
                'tag_ttl = %d; }\n'
                ');\n%s' % (self.store, store_extra, self.socket,
                            fetcher_extra, self.wan, self.wan, self.wan,
                            TAG_TTL, self.extra_groups))

    def write_config(self, fetcher_extra=""):
        os.makedirs(self.store, exist_ok=True)
        with open(self.config, "w") as f:
            f.write(self.config_text(fetcher_extra, self.store_extra))

    def start(self):
        self.write_config()
        self.start_fetcher()
        include = render_include(self.prefix, self.hostport, self.config)
        conf = nginx_main_conf(self.prefix, "    include %s;" % include,
                               self.module_so)
        self.nginx = start_nginx("nginx-" + self.name, self.prefix, conf,
                                 self.hostport, "/readyz")

    def restart_fetcher(self, fetcher_extra):
        """A new fetcher with other fetcher settings; nginx stays (the
        settings written here are the fetcher's alone)."""
        self.fetcher.stop()
        self.write_config(fetcher_extra)
        self.start_fetcher()

        def ready():
            try:
                return fetch(self.hostport, "/readyz", timeout=2).status \
                    == 200
            except OSError:
                return False
        wait_for(ready, 20, "/readyz after the fetcher's restart",
                 interval=0.1)

    def start_fetcher(self):
        self.fetcher = Proc("%s-fetcher" % self.name,
                            [self.fetcher_bin, "-c", self.config],
                            self.fetcher_log).start()

        def sock_up():
            if not self.fetcher.alive():
                raise StepError("fetcher exited: %s"
                                % one_line(tail(self.fetcher_log, 5)))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                return True
            except OSError:
                return False
            finally:
                s.close()
        wait_for(sock_up, 15, "the fetcher's socket")

    def worker_pids(self):
        if self.nginx is None or not self.nginx.alive():
            return []
        return children_of(self.nginx.pid)

    def fetcher_pids(self):
        return [self.fetcher.pid] if self.fetcher and self.fetcher.alive() \
            else []

    def alive(self):
        return bool(self.nginx and self.nginx.alive() and self.fetcher
                    and self.fetcher.alive())

    def down_reason(self):
        """'' while both run, else which one ended and how."""
        out = []
        for p in (self.fetcher, self.nginx):
            if p is not None and p.popen is not None and not p.alive():
                rc = p.popen.returncode
                out.append("%s %s" % (p.name, "killed by signal %d" % -rc
                                      if rc < 0 else "exited %d" % rc))
        return " (%s)" % ", ".join(out) if out else ""

    def stop(self):
        if self.nginx:
            self.nginx.stop()
        if self.fetcher:
            self.fetcher.stop()

    def problems(self):
        out = []
        for line in read_text(self.error_log).splitlines():
            if "[alert]" in line or "[emerg]" in line or \
                    "exited on signal" in line:
                out.append("nginx: " + line)
        for line in read_text(self.fetcher_log).splitlines():
            if " error " in line or " crit " in line:
                out.append("fetcher: " + line)
        return out


class MirrorNginx:
    """A second nginx with the module in front of a Mirror's fetcher and
    store (the same files, the same page cache), reading a copy of its
    config with other store settings: what the workers do differently is
    all that differs."""

    def __init__(self, mirror, name, store_extra):
        self.mirror = mirror
        self.name = name
        self.workdir = os.path.join(mirror.workdir, name)
        self.config = os.path.join(self.workdir, "ocimirror.cfg")
        self.prefix = os.path.join(self.workdir, "nginx")
        self.error_log = os.path.join(self.prefix, "error.log")
        self.hostport = "127.0.0.1:%d" % free_port()
        self.store_extra = store_extra
        self.nginx = None

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.config, "w") as f:
            f.write(self.mirror.config_text(store_extra=self.store_extra))
        include = render_include(self.prefix, self.hostport, self.config)
        conf = nginx_main_conf(self.prefix, "    include %s;" % include,
                               self.mirror.module_so)
        self.nginx = start_nginx("nginx-" + self.name, self.prefix, conf,
                                 self.hostport, "/readyz")

    def worker_pids(self):
        if self.nginx is None or not self.nginx.alive():
            return []
        return children_of(self.nginx.pid)

    def stop(self):
        if self.nginx:
            self.nginx.stop()

    def problems(self):
        return ["nginx (%s): %s" % (self.name, line)
                for line in read_text(self.error_log).splitlines()
                if "[alert]" in line or "[emerg]" in line
                or "exited on signal" in line]


class FetcherSocket:
    """A connection to a fetcher's socket, as a worker's or ocimirrorctl's:
    STATS (BODY <id> 200 <a temp file, ours to remove>) and CTL commands
    (OUT <id> <text> lines, then END <id> <status>)."""

    def __init__(self):
        self.conn = None
        self.buf = b""
        self.next_id = 0

    def connect(self, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        except OSError:
            s.close()
            return False
        self.conn = s
        return True

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise StepError("the fetcher closed its socket")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def stats(self, timeout=10):
        self.next_id += 1
        self.conn.settimeout(timeout)
        self.conn.sendall(b"STATS %d\n" % self.next_id)
        line = self._line()
        parts = line.split(" ")
        if len(parts) < 4 or parts[:3] != ["BODY", str(self.next_id),
                                          "200"]:
            raise StepError("STATS answered %r" % one_line(line))
        try:
            with open(parts[3]) as f:
                text = f.read()
        finally:
            os.unlink(parts[3])
        return parse_metrics(text)

    def ctl(self, command, timeout=10):
        """(END status, [OUT texts]) of one command."""
        self.next_id += 1
        rid = str(self.next_id)
        self.conn.settimeout(timeout)
        self.conn.sendall(("CTL %s %s\n" % (rid, command)).encode())
        out = []
        while True:
            line = self._line()
            verb, _, rest = line.partition(" ")
            got, _, text = rest.partition(" ")
            if got != rid or verb not in ("OUT", "END"):
                raise StepError("%s answered %r" % (command,
                                                    one_line(line)))
            if verb == "END":
                return int(text), out
            out.append(text)


class LoneFetcher(FetcherSocket):
    """ocimirror-fetcher alone, without nginx, on a store of its own; its
    metrics come over its socket with a STATS line, as a worker asks for
    them."""

    def __init__(self, workdir, fetcher_bin, store, name):
        FetcherSocket.__init__(self)
        self.store = store
        self.fetcher_bin = fetcher_bin
        self.name = name
        self.socket = os.path.join(workdir, name + ".sock")
        self.config = os.path.join(workdir, name + ".cfg")
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = None
        self.expected = []      # log lines naming these are the bench's
        #                         own planted damage, not problems

    def start(self, store_settings):
        """Scrub off and an upstream that is never asked: the loop runs
        the cache manager, its ticks and our STATS, nothing else."""
        with open(self.config, "w") as f:
            f.write('store = { path = "%s"; fsync = false; min_free = 0;\n'
                    '          scrub_interval = 0; %s };\n'
                    'fetcher = { socket = "%s"; };\n'
                    'default_registry = "unused.invalid";\n'
                    'registries = ( { name = "unused.invalid"; '
                    'endpoints = ( "http://127.0.0.1:%d" ); } );\n'
                    % (self.store, store_settings, self.socket,
                       free_port()))
        self.proc = Proc("fetcher-" + self.name,
                         [self.fetcher_bin, "-c", self.config],
                         self.log_path).start()

        def connected():
            if not self.proc.alive():
                raise StepError("fetcher exited: %s"
                                % one_line(tail(self.log_path, 5)))
            return self.connect(self.socket)
        wait_for(connected, 15, "the fetcher's socket", interval=0.01)

    @property
    def pid(self):
        return self.proc.pid

    def wait_loaded(self, timeout):
        """The first scrape after the index is loaded."""
        def loaded():
            m = self.stats()
            if m.get("ocimirror_fetcher_store_loading") == 0 and \
                    "ocimirror_fetcher_store_index_load_seconds" in m:
                return m
            return None
        return wait_for(loaded, timeout, "the index loaded", interval=0.02)

    def rss_kib(self):
        st = proc_status(self.pid)
        if st is None:
            raise StepError("the fetcher is gone")
        return st

    def stop(self):
        self.close()
        if self.proc is not None:
            self.proc.stop()

    def problems(self):
        return ["fetcher (%s): %s" % (self.name, line)
                for line in read_text(self.log_path).splitlines()
                if (" error " in line or " crit " in line)
                and not any(x in line for x in self.expected)]


# --- the run -----------------------------------------------------------------

class Bench:
    def __init__(self, params):
        self.p = params
        self.t0 = time.monotonic()
        self.tmp = tempfile.mkdtemp(prefix="ocimirror-bench-")
        self.procs = []
        self.mirror = None
        self.r = {}                 # figure key -> value or Failure
        self.notes = []
        self.rss = RssSampler()
        self.ready = {}
        self.start_errors = {}
        self.cpu = {}               # (test, target) -> [CPU s/request]
        self.static_paths = {}      # hex -> what static nginx serves
        self.static_fallbacks = set()
        self.recency = {}           # "on"/"off": nginx (MirrorNginx)
        self.store_where = "not run"    # the synthetic store's filesystem
        self.scrub_where = "not run"    # the scrub's store's
        self.scrub_gen = None           # (files, bytes, seconds written)
        self.scrub_mirror = None        # nginx + fetcher for hits
        self.scrub_hits_store = 0       # bytes in its store
        self.scrub_hits_load = None     # load averages around the pairs
        self.lone_problems = []     # from the fetchers run alone
        self.cluster_nodes = []     # the cluster step's mirrors
        self.cluster_single = None  # ... and the one node against them
        self.cluster_problems = []  # their logs' problem lines
        self.load_at_start = " ".join(read_text("/proc/loadavg").split()[:3])

    # --- infrastructure -----------------------------------------------

    def remaining(self):
        return self.p.budget - (time.monotonic() - self.t0)

    def sanitize(self, text):
        return str(text).replace(self.tmp, "<tmp>").replace(REPO, ".")

    def step(self, keys, fn, needs=()):
        """Run fn (which fills self.r); on an exception, every key it did
        not fill becomes a Failure with the reason."""
        missing = [k for k in needs if not self.ready.get(k)]
        if missing:
            reason = "failed: %s did not start: %s" % (
                missing[0], self.start_errors.get(missing[0], "see notes"))
            reason = one_line(reason, 100)
        elif self.remaining() <= 0:
            reason = "skipped: time budget spent"
        else:
            try:
                fn()
                return
            except Exception as e:      # a figure, not the whole run
                reason = "failed: " + one_line(self.sanitize(
                    e if isinstance(e, StepError)
                    else "%s: %s" % (type(e).__name__, e)))
                if "ocimirror" in needs and self.mirror is not None:
                    reason += self.mirror.down_reason()
                log(reason)
        for k in keys:
            if k not in self.r:
                self.r[k] = Failure(reason)

    def cap(self, seconds):
        return max(10.0, min(seconds, self.remaining() + 30))

    # --- setup --------------------------------------------------------

    def make_content(self):
        p = self.p
        static = os.path.join(self.tmp, "static")
        blobs = os.path.join(static, "blobs")
        self.static_root = static
        self.small = benchdata.write_random(blobs, "small", p.small_mib * MiB)
        self.tiny = benchdata.write_random(blobs, "tiny", p.tiny_bytes)
        self.large = benchdata.write_random(blobs, "large", p.large_mib * MiB)
        self.coal = benchdata.write_random(blobs, "coalesce",
                                           p.coalesce_mib * MiB)
        self.ttfb_blob = benchdata.write_random(blobs, "ttfb",
                                                p.ttfb_mib * MiB)
        self.cluster_blobs = [
            benchdata.write_random(blobs, "cluster-%d" % i,
                                   p.cluster_blob_mib * MiB)
            for i in range(2 * p.cluster_pairs)]
        self.fanout = [benchdata.write_random(blobs, "fanout-%d" % i,
                                              p.fanout_mib * MiB)
                       for i in range(p.fanout_n)]
        self.layout = os.path.join(self.tmp, "layout")
        self.man, self.cfg, self.layers = benchdata.write_image_layout(
            self.layout, "bench-image", TAG, p.layers, p.layer_mib * MiB)
        # the cold pulls under the link cap need an image no target has
        # seen: the same shape, other bytes
        self.link_layout = None
        if p.link_mib > 0:
            self.link_layout = os.path.join(self.tmp, "link-layout")
            _, self.link_cfg, self.link_layers = \
                benchdata.write_image_layout(self.link_layout,
                                             "bench-image-link", TAG,
                                             p.layers, p.layer_mib * MiB)
        # A mirror may prefetch the layers of a manifest it brings: the
        # manifest-by-tag test uses an image of its own (as many layers,
        # 4 KiB each) so that the cold pull stays cold.
        self.tlayout = os.path.join(self.tmp, "tagged-layout")
        self.tman, _, _ = benchdata.write_image_layout(
            self.tlayout, "bench-tagged", TAG, p.layers, 4096)
        # the static twin of the manifest-by-tag answer
        shutil.copyfile(self.tman.path,
                        os.path.join(static, "manifest.json"))

    def start_upstream(self):
        self.upstream = start_registry("upstream",
                                       os.path.join(self.tmp, "upstream"))
        self.procs.append(self.upstream)
        up = self.upstream.hostport
        layouts = [(self.layout, IMAGE_REPO), (self.tlayout, TAGGED_REPO)]
        if self.link_layout:
            layouts.append((self.link_layout, LINK_IMAGE_REPO))
        for layout, repo in layouts:
            cmd = [SKOPEO_BIN, "--insecure-policy", "copy",
                   "--preserve-digests", "--dest-tls-verify=false",
                   "oci:%s:%s" % (layout, TAG),
                   "docker://%s/%s:%s" % (up, repo, TAG)]
            pr = subprocess.run(cmd, capture_output=True, text=True,
                                timeout=180, env=self.skopeo_env())
            if pr.returncode != 0:
                raise StepError("skopeo push: %s" % one_line(pr.stderr))
        for b in [self.small, self.tiny, self.large, self.coal,
                  self.ttfb_blob] + self.fanout + self.cluster_blobs:
            push_blob(up, BLOB_REPO, b)

    def skopeo_env(self):
        env = dict(os.environ)
        d = os.path.join(self.tmp, "skopeo-tmp")
        os.makedirs(d, exist_ok=True)
        env["TMPDIR"] = d
        return env

    def start_all(self):
        t = time.monotonic()
        self.make_content()
        log("content generated in %.1fs" % (time.monotonic() - t))
        self.start_upstream()
        self.ready["upstream"] = True
        self.wan = start_wanproxy(self.tmp, self.upstream.hostport,
                                  self.p.rtt_ms, self.p.rate_mib)
        self.procs.append(self.wan)
        self.ready["wan"] = True
        log("upstream filled and WAN up in %.1fs" % (time.monotonic() - t))

        def static():
            self.static = start_static(self.tmp, self.static_root,
                                       os.path.join(self.tmp, "mirror",
                                                    "store"))
            self.procs.append(self.static)
            self.ready["static"] = True

        def peer():
            self.peer = start_registry(
                "peer", os.path.join(self.tmp, "peer"),
                remote="http://" + self.wan.hostport)
            self.procs.append(self.peer)
            self.ready["peer"] = True

        def mirror():
            self.mirror = Mirror(os.path.join(self.tmp, "mirror"),
                                 self.wan.hostport)
            try:
                self.mirror.start()
            finally:
                self.procs.append(self.mirror)
            self.ready["ocimirror"] = True

        for name, fn in (("static", static), ("peer", peer),
                         ("ocimirror", mirror)):
            try:
                fn()
            except Exception as e:
                err = self.sanitize(one_line(e))
                self.start_errors[name] = err
                self.notes.append("%s did not start: %s" % (name, err))
                log("%s did not start: %s" % (name, err))
        self.rss.add("workers", lambda: self.mirror.worker_pids()
                     if self.mirror else [])
        self.rss.add("fetcher", lambda: self.mirror.fetcher_pids()
                     if self.mirror else [])
        self.rss.add("peer", lambda: [self.peer.pid]
                     if self.ready.get("peer") and self.peer.alive()
                     else [])
        self.rss.start()

    def stop_all(self):
        self.rss.stop()
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:
                log("stopping %s: %s" % (getattr(p, "name", p), e))

    # --- measurements -------------------------------------------------

    def server_pids(self, name):
        if name == "static":
            return children_of(self.static.pid)
        if name == "ocimirror":
            return self.mirror.worker_pids()
        if name.startswith("recency-"):
            return self.recency[name[8:]].worker_pids()
        if name == "scrub-hits":
            return self.scrub_mirror.worker_pids()
        return [self.peer.pid]

    def wrk(self, hostport, path, headers=(), cpu_of=None, seconds=None):
        """(bytes/s, requests/s, server CPU seconds per request) of a wrk
        run (seconds: p.wrk_seconds if not given), the CPU of the
        processes of target cpu_of (None if not given); StepError if any
        answer was not 2xx/3xx or nothing completed."""
        p = self.p
        seconds = seconds or p.wrk_seconds
        pids = self.server_pids(cpu_of) if cpu_of else []
        cpu0 = cpu_seconds(pids)
        script = os.path.join(self.tmp, "report.lua")
        if not os.path.exists(script):
            with open(script, "w") as f:
                f.write(WRK_LUA)
        cmd = [WRK_BIN, "-t%d" % p.wrk_threads, "-c%d" % p.wrk_conns,
               "-d%ds" % seconds, "--timeout", "30s", "-s", script]
        for h in headers:
            cmd += ["-H", h]
        cmd.append("http://%s%s" % (hostport, path))
        pr = subprocess.run(cmd, capture_output=True, text=True,
                            timeout=seconds + 60)
        m = re.search(r"^BENCHJSON (\{.*\})$", pr.stdout, re.M)
        if pr.returncode != 0 or not m:
            raise StepError("wrk exited %d: %s" % (
                pr.returncode, one_line(pr.stderr or pr.stdout)))
        s = json.loads(m.group(1))
        errs = s["connect"] + s["read"] + s["write"] + s["timeout"]
        if s["requests"] == 0:
            raise StepError("wrk completed no request (%d socket errors)"
                            % errs)
        if s["status"]:
            raise StepError("%d of %d answers were HTTP errors"
                            % (s["status"], s["requests"]))
        if errs:
            self.notes.append("wrk against %s%s: %d socket errors "
                              "(connect %d, read %d, write %d, timeout %d)"
                              % (self.name_of(hostport), path, errs,
                                 s["connect"], s["read"], s["write"],
                                 s["timeout"]))
        dur = s["duration_us"] / 1e6
        cpu = (cpu_seconds(pids) - cpu0) / s["requests"] if pids else None
        return s["bytes"] / dur, s["requests"] / dur, cpu

    def name_of(self, hostport):
        for side, n in self.recency.items():
            if n.hostport == hostport:
                return "ocimirror, recency " + side
        if self.scrub_mirror and self.scrub_mirror.hostport == hostport:
            return "ocimirror, scrub store"
        for name in ("static", "peer", "mirror", "wan", "upstream"):
            obj = getattr(self, name, None)
            if obj is not None and getattr(obj, "hostport", None) == hostport:
                return {"mirror": "ocimirror"}.get(name, name)
        return hostport

    def static_path(self, hexd, fallback):
        """Static nginx serves ocimirror's own copy of the file when there
        is one (the same inode, hence the same page cache: how a file was
        written changes how fast sendfile reads it), else the generated
        file at fallback."""
        if self.mirror is not None:
            p = os.path.join(self.mirror.store, "sha256", hexd[:2], hexd)
            if os.path.exists(p):
                return "/store/sha256/%s/%s" % (hexd[:2], hexd)
        self.static_fallbacks.add(fallback)
        return fallback

    def targets(self):
        out = [("static", "static",
                lambda b: self.static_paths.get(b.hex, "/blobs/" + b.hex))]
        out.append(("peer", "peer",
                    lambda b: "/v2/%s/blobs/%s" % (BLOB_REPO, b.digest)))
        out.append(("ocimirror", "mirror",
                    lambda b: "/v2/%s/blobs/%s" % (BLOB_REPO, b.digest)))
        return out

    def warm_blobs(self):
        """One GET of each warm blob through every target, in parallel
        per target; then wait for the peer's background store to end."""
        errors = {}

        def one(name, attr, pathfn):
            try:
                for b in (self.small, self.large):
                    r = fetch(getattr(self, attr).hostport, pathfn(b),
                              timeout=self.cap(180))
                    expect_blob(r, b, "warm-up GET of %d MiB"
                                % (b.size // MiB))
            except Exception as e:
                errors[name] = self.sanitize(one_line(e))
        threads = [threading.Thread(target=one, args=t)
                   for t in self.targets()
                   if self.ready.get(t[0]) and t[0] != "static"]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.cap(240))
        wait_wan_quiet(self.wan, timeout=self.cap(90))
        # static last: it serves ocimirror's copies if they are there
        for b in (self.small, self.large):
            self.static_paths[b.hex] = self.static_path(b.hex,
                                                        "/blobs/" + b.hex)
        if self.ready.get("static"):
            one(*self.targets()[0])
        self.warm_errors = errors

    # Every target runs p.wrk_rounds times, in the order A B C C B A A B C
    # ..., and keeps its best run: a drift of the machine falls on all
    # alike, and a run that other work on the machine disturbed does not
    # count.
    def warm_order(self):
        fwd = ["static", "ocimirror", "peer"]
        out = []
        for i in range(self.p.wrk_rounds):
            out += fwd if i % 2 == 0 else fwd[::-1]
        return out

    def measure_warm(self):
        self.step([], self.warm_blobs, needs=("wan",))
        targets = {t[0]: t for t in self.targets()}
        for size_key, blob in (("blob1", self.small), ("blob64", self.large)):
            samples = {}
            for name in self.warm_order():
                _, attr, pathfn = targets[name]
                key = "%s.%s" % (size_key, name)

                def run(attr=attr, pathfn=pathfn, name=name, blob=blob):
                    err = getattr(self, "warm_errors", {}).get(name)
                    if err:
                        raise StepError(err)
                    bps, _, cpu = self.wrk(getattr(self, attr).hostport,
                                           pathfn(blob), cpu_of=name)
                    samples.setdefault(name, []).append(bps / MiB)
                    self.cpu.setdefault((size_key, name), []).append(cpu)
                    log("warm %s %s: %.0f MiB/s" % (size_key, name,
                                                    bps / MiB))
                if not isinstance(self.r.get(key), Failure):
                    self.step([key], run, needs=(name,))
            for name, vals in samples.items():
                key = "%s.%s" % (size_key, name)
                if not isinstance(self.r.get(key), Failure):
                    self.r[key] = max(vals)

    def measure_manifest(self):
        accept = "Accept: " + ACCEPT_ALL
        mpath = "/v2/%s/manifests/%s" % (TAGGED_REPO, TAG)
        where = {"peer": ("peer", mpath), "ocimirror": ("mirror", mpath)}

        # warm-ups, ocimirror first: static serves its copy if it has one
        def warm_up(name):
            attr, path = where[name]
            r = fetch(getattr(self, attr).hostport, path,
                      {"Accept": ACCEPT_ALL}, timeout=self.cap(60),
                      keep_body=True)
            if r.error:
                raise StepError("warm-up GET: %s" % r.error)
            if r.status != 200 or r.sha256 != self.tman.hex:
                raise StepError("warm-up GET: HTTP %s, %d bytes, not "
                                "the pushed manifest: %s" % (
                                    r.status, r.nbytes,
                                    one_line(r.start[:120])))
            # whatever it set off upstream (a prefetch) ends before the
            # measurement
            wait_wan_quiet(self.wan, timeout=self.cap(60))
        for name in ("ocimirror", "peer", "static"):
            if name == "static":
                where[name] = ("static", self.static_path(self.tman.hex,
                                                          "/manifest.json"))
            self.step(["manifest." + name], lambda n=name: warm_up(n),
                      needs=(name,))
        samples = {}
        for name in self.warm_order():
            attr, path = where[name]
            key = "manifest.%s" % name
            if isinstance(self.r.get(key), Failure):
                continue

            def run(attr=attr, path=path, name=name):
                hp = getattr(self, attr).hostport
                _, rps, cpu = self.wrk(hp, path, [accept], cpu_of=name)
                samples.setdefault(name, []).append(rps)
                self.cpu.setdefault(("manifest", name), []).append(cpu)
                log("manifest by tag %s: %.0f req/s" % (name, rps))
            self.step([key], run, needs=(name,))
        for name, vals in samples.items():
            key = "manifest.%s" % name
            if not isinstance(self.r.get(key), Failure):
                self.r[key] = max(vals)

    def upstream_tag_requests(self):
        """Requests for the manifest-by-tag image's tag in the upstream's
        access log."""
        text = read_text(os.path.join(self.tmp, "upstream", "access.log"))
        return len(re.findall(r'"(?:GET|HEAD) /v2/%s/manifests/%s HTTP'
                              % (re.escape(TAGGED_REPO), re.escape(TAG)),
                              text))

    def measure_tag_policy(self):
        """What a GET by tag costs upstream once the tag is cached: a few
        GETs one after another through each cache, and the requests for
        the tag the upstream saw meanwhile.  The peer asks upstream every
        time (docker-registry's proxy tag service checks the remote
        first), the mirror once per tag_ttl: what the manifest-by-tag
        ratio to the peer measures."""
        n = 10
        path = "/v2/%s/manifests/%s" % (TAGGED_REPO, TAG)
        for name, attr in (("ocimirror", "mirror"), ("peer", "peer")):
            key = "tagpolicy.%s" % name

            def run(attr=attr, name=name, key=key):
                wait_wan_quiet(self.wan, quiet=0.3, timeout=self.cap(60))
                before = self.upstream_tag_requests()
                t = time.monotonic()
                for _ in range(n):
                    r = fetch(getattr(self, attr).hostport, path,
                              {"Accept": ACCEPT_ALL}, timeout=self.cap(60))
                    if r.error or r.status != 200 or \
                            r.sha256 != self.tman.hex:
                        raise StepError("GET by tag: HTTP %s %s" % (
                            r.status, r.error or one_line(r.start[:120])))
                took = time.monotonic() - t
                # the upstream logs a request once it has answered it
                wait_wan_quiet(self.wan, quiet=0.3, timeout=self.cap(60))
                self.r[key] = (n, self.upstream_tag_requests() - before,
                               took / n)
                log("%d GETs by tag through %s: %d upstream requests for "
                    "the tag, %.1f ms each" % (n, name, self.r[key][1],
                                               took / n * 1000))
            self.step([key], run, needs=(name,))

    def skopeo_pull(self, hostport, dest, repo=IMAGE_REPO, blobs=None):
        """Seconds skopeo took to copy repo's image to dest (then
        removed); blobs: the hex digests it must have written (default:
        the image of IMAGE_REPO)."""
        cmd = [SKOPEO_BIN, "--insecure-policy", "copy",
               "--src-tls-verify=false",
               "docker://%s/%s:%s" % (hostport, repo, TAG),
               "dir:" + dest]
        t = time.monotonic()
        pr = subprocess.run(cmd, capture_output=True, text=True,
                            timeout=self.cap(300), env=self.skopeo_env())
        took = time.monotonic() - t
        if pr.returncode != 0:
            raise StepError("skopeo copy exited %d: %s"
                            % (pr.returncode, one_line(pr.stderr, 200)))
        want = blobs or ({l.hex for l in self.layers} | {self.cfg.hex})
        have = set(os.listdir(dest))
        if not want <= have:
            raise StepError("skopeo copy left %d of %d blobs"
                            % (len(want & have), len(want)))
        shutil.rmtree(dest, ignore_errors=True)
        return took

    def cold_pulls(self, prefix, repo, blobs):
        """One cold skopeo pull of repo through each target in turn, each
        started on a quiet WAN; figures prefix.<target>, and with each
        what crossed the WAN while it ran."""
        for name, attr, need in (("direct", "wan", "wan"),
                                 ("peer", "peer", "peer"),
                                 ("ocimirror", "mirror", "ocimirror")):
            key = "%s.%s" % (prefix, name)

            def run(attr=attr, name=name, key=key):
                wait_wan_quiet(self.wan, timeout=self.cap(60))
                before = wan_stats(self.wan)
                self.rss.phase("cold-pull-" + name)
                try:
                    took = self.skopeo_pull(
                        getattr(self, attr).hostport,
                        os.path.join(self.tmp, "%s-%s" % (prefix, name)),
                        repo, blobs)
                finally:
                    self.rss.end_phase()
                after = wan_stats(self.wan)
                self.r[key] = took
                self.r[key + ".wan"] = (
                    after["down_bytes"] - before["down_bytes"],
                    after["link_held_bytes"] - before["link_held_bytes"])
                log("cold pull %s %s: %.2fs" % (prefix, name, took))
            self.step([key], run, needs=(need,))

    def measure_cold_pull(self):
        self.cold_pulls("pull", IMAGE_REPO, None)

        def warm():
            self.r["pull.warm"] = self.skopeo_pull(
                self.mirror.hostport, os.path.join(self.tmp, "pull-warm"))
            log("warm pull ocimirror: %.2fs" % self.r["pull.warm"])
        if ok(self.r.get("pull.ocimirror")):
            self.step(["pull.warm"], warm, needs=("ocimirror",))

        # The same again under a cap on the whole link (another image, so
        # that every target is cold again): without it, the mirror's
        # parallel downloads multiply the bandwidth a region gives.
        p = self.p
        if p.link_mib <= 0:
            return
        keys = ["wan.one", "wan.many"] + ["pull_link.%s" % n for n in
                                          ("direct", "peer", "ocimirror")]
        try:
            st = wanproxy.query(self.wan.control,
                                command="link %r" % p.link_mib)
            if st.get("link_mib") != p.link_mib:
                raise StepError("the WAN answered %s" % one_line(st))
        except (OSError, ValueError, StepError) as e:
            for k in keys:
                self.r[k] = Failure("failed: link cap: %s"
                                    % one_line(self.sanitize(e)))
            return
        try:
            self.step(["wan.one", "wan.many"], self.wan_check,
                      needs=("wan",))
            self.cold_pulls("pull_link", LINK_IMAGE_REPO,
                            {l.hex for l in self.link_layers} |
                            {self.link_cfg.hex})
        finally:
            try:
                wanproxy.query(self.wan.control, command="link 0")
            except (OSError, ValueError) as e:
                self.notes.append("the WAN's link cap stayed on: %s" % e)

    def wan_check(self):
        """The simulator under the link cap, on the upstream's own blob:
        one connection alone must keep to its own cap (the link would
        allow more), several at once to the link's."""
        p = self.p
        blob = self.large
        path = "/v2/%s/blobs/%s" % (BLOB_REPO, blob.digest)
        secs = 1.0 if p.quick else 2.0
        # enough connections to ask twice what the link carries
        n = min(16, max(2, 2 * int(math.ceil(p.link_mib / p.rate_mib))))

        def run(count, nbytes):
            wait_wan_quiet(self.wan, timeout=self.cap(60))
            held0 = wan_stats(self.wan)["link_held_bytes"]
            results = [None] * count
            starts = [0.0] * count

            def client(i):
                off = (i * nbytes) % max(1, blob.size - nbytes)
                starts[i] = time.monotonic()
                results[i] = fetch(self.wan.hostport, path,
                                   {"Range": "bytes=%d-%d"
                                    % (off, off + nbytes - 1)},
                                   timeout=self.cap(60), max_bytes=nbytes)
            threads = [threading.Thread(target=client, args=(i,),
                                        daemon=True) for i in range(count)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + self.cap(120)
            for t in threads:
                t.join(max(0.1, deadline - time.monotonic()))
            own = []
            for i, r in enumerate(results):
                if r is None:
                    raise StepError("connection %d still running" % i)
                if r.error or r.status not in (200, 206) or \
                        r.nbytes != nbytes:
                    raise StepError("connection %d: HTTP %s, %d of %d "
                                    "bytes %s" % (i, r.status, r.nbytes,
                                                  nbytes, r.error or ""))
                # from the first byte: the round trips are not bandwidth
                own.append(nbytes / MiB / (r.total - r.ttfb))
            first = min(starts[i] + r.ttfb for i, r in enumerate(results))
            last = max(starts[i] + r.total for i, r in enumerate(results))
            held = wan_stats(self.wan)["link_held_bytes"] - held0
            return own, count * nbytes / MiB / (last - first), held
        own, _, held = run(1, int(p.rate_mib * secs * MiB))
        self.r["wan.one"] = (own[0], held)
        log("WAN under a %g MiB/s link: one connection %.1f MiB/s"
            % (p.link_mib, own[0]))
        own, agg, held = run(n, int(p.link_mib * secs * MiB / n))
        self.r["wan.many"] = (n, agg, max(own), held)
        log("WAN under a %g MiB/s link: %d connections %.1f MiB/s in all, "
            "the fastest %.1f" % (p.link_mib, n, agg, max(own)))

    def coalesce(self, hostport, n):
        """n clients GET the cold coalescing blob at once.  Returns
        (upstream bytes / size, upstream GETs, slowest client seconds)."""
        blob = self.coal
        path = "/v2/%s/blobs/%s" % (BLOB_REPO, blob.digest)
        before = wait_wan_quiet(self.wan, timeout=self.cap(60))
        gets_before = self.upstream_gets(blob)
        barrier = threading.Barrier(n)
        results = [None] * n

        def client(i):
            try:
                barrier.wait(30)
            except threading.BrokenBarrierError:
                pass
            results[i] = fetch(hostport, path, timeout=self.cap(120))
        threads = [threading.Thread(target=client, args=(i,), daemon=True)
                   for i in range(n)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + self.cap(240)
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        bad = []
        for i, r in enumerate(results):
            if r is None:
                bad.append("client %d still running" % i)
                continue
            try:
                expect_blob(r, blob, "client %d" % i)
            except StepError as e:
                bad.append(str(e))
        after = wait_wan_quiet(self.wan, timeout=self.cap(120))
        gets = self.upstream_gets(blob) - gets_before
        if bad:
            raise StepError("%d of %d clients failed; first: %s"
                            % (len(bad), n, bad[0]))
        slowest = max(r.total for r in results)
        return (after - before) / blob.size, gets, slowest

    def upstream_gets(self, blob):
        text = read_text(os.path.join(self.tmp, "upstream", "access.log"))
        return len(re.findall(r'"GET /v2/%s/blobs/%s HTTP'
                              % (re.escape(BLOB_REPO),
                                 re.escape(blob.digest)), text))

    def measure_coalescing(self):
        n = self.p.coalesce_clients

        def mirror_run():
            self.rss.phase("coalesce")
            try:
                f, gets, slow = self.coalesce(self.mirror.hostport, n)
            finally:
                self.rss.end_phase()
            self.r["coalesce.ocimirror"] = f
            self.r["coalesce.ocimirror.gets"] = gets
            self.r["coalesce.ocimirror.slowest"] = slow
            g = self.rss.growth("coalesce", "workers")
            self.r["rss.worker_growth"] = g / 1024.0 if g is not None \
                else Failure("failed: no nginx worker sampled")
            log("coalescing ocimirror: %.3f (%d upstream GETs, slowest "
                "client %.1fs)" % (f, gets, slow))
        self.step(["coalesce.ocimirror", "rss.worker_growth"], mirror_run,
                  needs=("ocimirror",))

        def peer_run():
            f, gets, slow = self.coalesce(self.peer.hostport, n)
            self.r["coalesce.peer"] = f
            self.r["coalesce.peer.gets"] = gets
            log("coalescing peer: %.3f (%d upstream GETs, slowest client "
                "%.1fs)" % (f, gets, slow))
        self.step(["coalesce.peer"], peer_run, needs=("peer",))

    def measure_fanout(self):
        """p.fanout_n distinct cold blobs at once through the mirror: the
        fetcher runs that many transfers."""
        def run():
            # max_per_host (default 16) would hold the transfers to one
            # upstream host below the 64 the target speaks of
            self.mirror.restart_fetcher("max_per_host = %d; "
                                        % self.p.fanout_n)
            wait_wan_quiet(self.wan, timeout=self.cap(60))
            wanproxy.query(self.wan.control, command="reset-peak")
            self.rss.phase("fanout")
            results = [None] * len(self.fanout)

            def client(i, b):
                results[i] = fetch(self.mirror.hostport, "/v2/%s/blobs/%s"
                                   % (BLOB_REPO, b.digest),
                                   timeout=self.cap(120))
            threads = [threading.Thread(target=client, args=(i, b),
                                        daemon=True)
                       for i, b in enumerate(self.fanout)]
            t = time.monotonic()
            try:
                for th in threads:
                    th.start()
                deadline = time.monotonic() + self.cap(180)
                for th in threads:
                    th.join(max(0.1, deadline - time.monotonic()))
            finally:
                self.rss.end_phase()
            took = time.monotonic() - t
            for i, r in enumerate(results):
                if r is None:
                    raise StepError("client %d still running" % i)
                expect_blob(r, self.fanout[i], "blob %d" % i)
            peak = self.rss.peak("fanout", "fetcher")
            if peak is None:
                raise StepError("the fetcher was not sampled")
            self.r["rss.fetcher64"] = peak / 1024.0
            self.r["fanout.seconds"] = took
            self.r["fanout.wan_conns"] = wan_stats(self.wan)["peak_active"]
            log("fan-out %d cold blobs: %.1fs, fetcher peak %.1f MiB"
                % (len(self.fanout), took, peak / 1024.0))
        self.step(["rss.fetcher64"], run, needs=("ocimirror",))

    def measure_ttfb(self):
        path = "/v2/%s/blobs/%s" % (BLOB_REPO, self.ttfb_blob.digest)

        def direct():
            wait_wan_quiet(self.wan, timeout=self.cap(60))
            for key, reuse in (("ttfb.direct", False),
                               ("ttfb.direct_reused", True)):
                samples = []
                for _ in range(3):
                    samples.append(ttfb_probe(self.wan.hostport, path,
                                              timeout=self.cap(60),
                                              reuse=reuse))
                    # the dropped transfer drains before the next probe
                    wait_wan_quiet(self.wan, quiet=0.2,
                                   timeout=self.cap(60))
                self.r[key] = statistics.median(samples) * 1000
                log("TTFB %s: %.1f ms (samples %s)" % (
                    key, self.r[key],
                    ", ".join("%.1f" % (x * 1000) for x in samples)))
        self.step(["ttfb.direct", "ttfb.direct_reused"], direct,
                  needs=("wan",))

        # Each cache's probe on a quiet WAN: both go on downloading the
        # blob after the probe drops its connection (the mirror for its
        # store, the peer in a download of its own for its storage), and
        # a probe taken meanwhile would share the proxy with that
        # transfer.  The mirror first: its ranged download ends soonest.
        for name, attr in (("ocimirror", "mirror"), ("peer", "peer")):
            key = "ttfb.%s" % name

            def run(attr=attr, name=name, key=key):
                t = time.monotonic()
                wait_wan_quiet(self.wan, timeout=self.cap(120))
                # the quiet spell itself is part of the wait
                self.r[key + ".waited"] = time.monotonic() - t
                self.rss.phase("ttfb-" + name)
                try:
                    t = ttfb_probe(getattr(self, attr).hostport, path,
                                   timeout=self.cap(60))
                finally:
                    self.rss.end_phase()
                self.r[key] = t * 1000
                log("TTFB cold %s: %.1f ms (on a WAN quiet after %.1f s)"
                    % (name, t * 1000, self.r[key + ".waited"]))
            self.step([key], run, needs=(name,))

        # the peer's download goes on after its probe: the steps after
        # this one measure CPU, and the WAN simulator would share it
        def drained():
            t = time.monotonic()
            wait_wan_quiet(self.wan, timeout=self.cap(120))
            self.r["ttfb.drained"] = time.monotonic() - t
            log("WAN quiet %.1f s after the peer's probe"
                % self.r["ttfb.drained"])
        self.step([], drained, needs=("wan",))

    # --- a cluster of three mirrors -----------------------------------

    def upstream_count(self, regex):
        """Lines of the upstream's access log that match regex."""
        text = read_text(os.path.join(self.tmp, "upstream", "access.log"))
        return len(re.findall(regex, text))

    def image_blob_gets(self, repo, hexes):
        """GETs of these blobs of repo the upstream answered."""
        return self.upstream_count(r'"GET /v2/%s/blobs/sha256:(?:%s) HTTP'
                                   % (re.escape(repo), "|".join(hexes)))

    def image_tag_requests(self, repo):
        return self.upstream_count(r'"(?:GET|HEAD) /v2/%s/manifests/%s HTTP'
                                   % (re.escape(repo), re.escape(TAG)))

    def start_cluster(self):
        """Three mirrors on 127.0.0.2..4, one peers list, one secret file,
        each its own store and fetcher, all behind the WAN; and a single
        mirror with the same settings and no cluster (the one node the
        cluster is held against)."""
        p = self.p
        work = os.path.join(self.tmp, "cluster")
        os.makedirs(work, exist_ok=True)
        secret = os.path.join(work, "cluster.secret")
        with open(secret, "w") as f:
            f.write(os.urandom(24).hex() + "\n")
        os.chmod(secret, 0o640)
        nodes = [Mirror(os.path.join(work, "node%d" % i), self.wan.hostport,
                        host="127.0.0.%d" % (2 + i), name="cluster-%d" % i)
                 for i in range(p.cluster_nodes)]
        peers = ", ".join('"%s"' % n.hostport for n in nodes)
        for n in nodes:
            n.extra_groups = (
                'cluster = {\n'
                '    self = "%s";\n'
                '    peers = ( %s );\n'
                '    secret_file = "%s";\n'
                '    replicate = "none";\n'
                '};\n' % (n.hostport, peers, secret))
        single = Mirror(os.path.join(work, "single"), self.wan.hostport,
                        name="single")
        self.cluster_nodes = nodes
        self.cluster_single = single
        for m in nodes + [single]:
            try:
                m.start()
            finally:
                self.procs.append(m)
        # a build without the cluster would start all the same if it
        # ignored the group: its metrics must be there
        for n in nodes:
            m = self.node_metrics(n)
            if CLUSTER_FORWARDED not in m:
                raise StepError("%s's /metrics has no %s: a build without "
                                "the cluster?" % (n.name, CLUSTER_FORWARDED))

    def stop_cluster(self):
        for m in self.cluster_nodes + ([self.cluster_single]
                                       if self.cluster_single else []):
            self.cluster_problems += m.problems()
            for line in read_text(m.error_log).splitlines():
                if "cluster" in line and "[error]" in line:
                    self.cluster_problems.append("nginx: " + line)
            m.stop()

    def node_metrics(self, node):
        """{metric name: the sum of its samples} of a node's /metrics."""
        r = fetch(node.hostport, "/metrics", timeout=self.cap(10),
                  keep_body=True)
        if r.error or r.status != 200:
            raise StepError("%s /metrics: HTTP %s %s" % (
                node.name, r.status, r.error or one_line(r.start[:120])))
        out = {}
        for k, v in parse_metrics(r.body.decode("utf-8", "replace")).items():
            name = k.split("{", 1)[0]
            out[name] = out.get(name, 0.0) + v
        return out

    def cluster_counters(self):
        """[{cluster metric: value}] of every node."""
        return [{k: m.get(k, 0.0) for k in CLUSTER_METRICS}
                for m in (self.node_metrics(n) for n in self.cluster_nodes)]

    def stored_on(self, mirror, hexd):
        return os.path.exists(os.path.join(mirror.store, "sha256", hexd[:2],
                                           hexd))

    def cluster_pull(self, mirror, label):
        """One skopeo pull of the 10-layer image through mirror, started
        on a quiet WAN: seconds, WAN bytes until skopeo ended and until
        the WAN was quiet again (what the mirror's prefetch and its peers
        went on fetching counts too), upstream GETs of the image's blobs
        and requests for its tag."""
        hexes = [l.hex for l in self.layers] + [self.cfg.hex]
        wait_wan_quiet(self.wan, timeout=self.cap(60))
        before = wan_stats(self.wan)["down_bytes"]
        gets0 = self.image_blob_gets(IMAGE_REPO, hexes)
        tags0 = self.image_tag_requests(IMAGE_REPO)
        took = self.skopeo_pull(mirror.hostport, os.path.join(
            self.tmp, "cluster-pull-%s" % label))
        during = wan_stats(self.wan)["down_bytes"] - before
        total = wait_wan_quiet(self.wan, timeout=self.cap(90)) - before
        out = {"seconds": took, "wan_during": during, "wan_total": total,
               "blob_gets": self.image_blob_gets(IMAGE_REPO, hexes) - gets0,
               "tag_requests": self.image_tag_requests(IMAGE_REPO) - tags0}
        log("cluster: pull through %s (%s): %.2fs, %.1f MiB across the "
            "WAN (%.1f MiB while skopeo ran), %d blob GETs, %d tag "
            "requests upstream" % (label, mirror.hostport, took,
                                   total / MiB, during / MiB,
                                   out["blob_gets"], out["tag_requests"]))
        return out

    def measure_cluster(self):
        self.cluster_nodes = []
        self.cluster_single = None
        self.cluster_problems = []

        def start():
            self.start_cluster()
            self.ready["cluster"] = True
        t = time.monotonic()
        try:
            self.step(["cluster.pull", "cluster.hit", "cluster.ttfb"], start,
                      needs=("wan",))
            if not self.ready.get("cluster"):
                return
            self.step(["cluster.pull"], self.cluster_pulls,
                      needs=("cluster",))
            if ok(self.r.get("cluster.pull")):
                self.step(["cluster.hit"], self.cluster_hit_hop,
                          needs=("cluster",))
            self.step(["cluster.ttfb"], self.cluster_ttfb,
                      needs=("cluster",))
        finally:
            self.stop_cluster()
            self.r["cluster.seconds"] = time.monotonic() - t
            log("cluster: the step took %.0f s" % self.r["cluster.seconds"])

    def cluster_pulls(self):
        """The image, cold, through one node alone and through the
        cluster (every request to its first node); then, warm, through
        each of the others."""
        nodes = self.cluster_nodes
        size = sum(l.size for l in self.layers) + self.cfg.size
        c0 = self.cluster_counters()
        single = self.cluster_pull(self.cluster_single, "one node")
        cold = self.cluster_pull(nodes[0], "the cluster")
        c1 = self.cluster_counters()
        warm = [self.cluster_pull(n, "node %d, warm" % i)
                for i, n in enumerate(nodes) if i > 0]
        c2 = self.cluster_counters()
        hexes = [l.hex for l in self.layers] + [self.cfg.hex]
        stored = [sum(self.stored_on(n, h) for h in hexes) for n in nodes]
        self.r["cluster.pull"] = {
            "single": single, "cold": cold, "warm": warm, "size": size,
            "blobs": len(hexes), "stored": stored,
            "stored_single": sum(self.stored_on(self.cluster_single, h)
                                 for h in hexes),
            "cold_counters": [{k: b[k] - a[k] for k in a}
                              for a, b in zip(c0, c1)],
            "warm_counters": [{k: b[k] - a[k] for k in a}
                              for a, b in zip(c1, c2)]}
        log("cluster: the image's %d blobs stored per node %s (one node: "
            "%d)" % (len(hexes), " / ".join(map(str, stored)),
                     self.r["cluster.pull"]["stored_single"]))

    def cluster_hit_hop(self):
        """The hop alone, without the WAN's noise: a layer the pull left
        on one node (its owner), asked of the owner and of the others in
        turn, the time to first byte of each GET on a new connection."""
        nodes = self.cluster_nodes
        layer, owner = None, None
        for l in self.layers:
            on = [i for i, n in enumerate(nodes)
                  if self.stored_on(n, l.hex)]
            if len(on) == 1:
                layer, owner = l, on[0]
                break
        if layer is None:
            raise StepError("no layer of the image is stored on one node "
                            "alone")
        path = "/v2/%s/blobs/%s" % (IMAGE_REPO, layer.digest)
        others = [i for i in range(len(nodes)) if i != owner]
        f0 = sum(c[CLUSTER_FORWARDED] for c in self.cluster_counters())
        samples = {"owner": [], "other": []}
        for j in range(self.p.cluster_hits):
            order = [("owner", owner), ("other", others[j % len(others)])]
            if j % 2:
                order.reverse()
            for kind, i in order:
                samples[kind].append(ttfb_probe(
                    nodes[i].hostport, path, timeout=self.cap(30)) * 1000)
        f = sum(c[CLUSTER_FORWARDED] for c in self.cluster_counters()) - f0
        if f != self.p.cluster_hits:
            raise StepError("%d GETs of a stored layer asked of nodes that "
                            "do not hold it were forwarded %d times"
                            % (self.p.cluster_hits, f))
        self.r["cluster.hit"] = {k: statistics.median(v)
                                 for k, v in samples.items()}
        self.r["cluster.hit"]["size"] = layer.size
        log("cluster: TTFB of a stored %.0f MiB layer, not the owner / the "
            "owner: %.2f / %.2f ms (median of %d)" % (
                layer.size / MiB, self.r["cluster.hit"]["other"],
                self.r["cluster.hit"]["owner"], self.p.cluster_hits))

    def blob_owner(self, blob):
        """The node that owns blob, by asking: a HEAD at the first node,
        then which node's counters moved (the first node's forwarded, the
        owner's peer requests; none if the first node is the owner)."""
        nodes = self.cluster_nodes
        a = self.cluster_counters()
        host, port = nodes[0].hostport.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port),
                                          timeout=self.cap(60))
        try:
            conn.request("HEAD", "/v2/%s/blobs/%s" % (BLOB_REPO, blob.digest))
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        finally:
            conn.close()
        if status != 200:
            raise StepError("HEAD of a cold blob at %s: HTTP %d"
                            % (nodes[0].name, status))
        b = self.cluster_counters()
        fwd = b[0][CLUSTER_FORWARDED] - a[0][CLUSTER_FORWARDED]
        peer = [y[CLUSTER_PEER_REQUESTS] - x[CLUSTER_PEER_REQUESTS]
                for x, y in zip(a, b)]
        if fwd == 0 and not any(peer):
            return 0
        got = [i for i, d in enumerate(peer) if d > 0]
        if fwd != 1 or len(got) != 1 or got[0] == 0:
            raise StepError("a HEAD at %s: forwarded %+d, peer requests "
                            "%s: no single owner" % (
                                nodes[0].name, fwd,
                                " / ".join("%+d" % d for d in peer)))
        return got[0]

    def cluster_ttfb(self):
        """Pairs of cold blobs of the same size: one asked of its owner,
        the other of a node that is not its owner (which forwards it),
        each on a quiet WAN, the order alternating; the first node's
        counters must agree on which was forwarded."""
        nodes, blobs = self.cluster_nodes, self.cluster_blobs
        owners = [self.blob_owner(b) for b in blobs]
        wait_wan_quiet(self.wan, timeout=self.cap(60))
        pairs = []
        kept = {"entry": 0, "owner": 0}
        for i in range(self.p.cluster_pairs):
            a, b = blobs[2 * i], blobs[2 * i + 1]
            oa, ob = owners[2 * i], owners[2 * i + 1]
            other = (ob + 1 + i % 2) % len(nodes)
            probes = [("owner", a, oa, oa), ("other", b, ob, other)]
            if i % 2:
                probes.reverse()
            got = {}
            for kind, blob, owner, entry in probes:
                wait_wan_quiet(self.wan, timeout=self.cap(60))
                f0 = self.cluster_counters()[entry][CLUSTER_FORWARDED]
                t = ttfb_probe(nodes[entry].hostport, "/v2/%s/blobs/%s"
                               % (BLOB_REPO, blob.digest),
                               timeout=self.cap(60))
                # what the probe set off ends before the counters are
                # read and the next probe starts
                wait_wan_quiet(self.wan, timeout=self.cap(60))
                f = self.cluster_counters()[entry][CLUSTER_FORWARDED] - f0
                if f != (1 if kind == "other" else 0):
                    raise StepError("the probe of %s at %s (owner %s) "
                                    "forwarded %d times" % (
                                        blob.digest[:19], nodes[entry].name,
                                        nodes[owner].name, f))
                if kind == "other":
                    kept["entry"] += self.stored_on(nodes[entry], blob.hex)
                    kept["owner"] += self.stored_on(nodes[owner], blob.hex)
                got[kind] = t * 1000
            pairs.append((got["other"], got["owner"]))
            log("cluster: TTFB of a cold %d MiB blob, not the owner / the "
                "owner: %.1f / %.1f ms" % (self.p.cluster_blob_mib,
                                           got["other"], got["owner"]))
        self.r["cluster.ttfb"] = {"pairs": pairs, "kept": kept,
                                  "owners": [owners.count(i) for i in
                                             range(len(nodes))]}

    # --- recency on and off -------------------------------------------

    def recency_pair(self, path, headers, first):
        """One wrk run against each side, first first and the other right
        after: ((req/s, CPU s/request) on, (...) off).  Two runs next to
        each other see nearly the same machine; run at the same time
        instead, the two nginx fight for the CPUs and the scheduler's
        choices spread the pairs far wider."""
        out = {}
        for side in (first, "off" if first == "on" else "on"):
            _, rps, cpu = self.wrk(self.recency[side].hostport, path,
                                   headers, cpu_of="recency-" + side,
                                   seconds=self.p.ab_seconds)
            out[side] = (rps, cpu)
        return out["on"], out["off"]

    def measure_recency(self):
        """The hit path with recency tracking and without it, side by
        side: two fresh nginx with the module in front of ocimirror's
        fetcher and store (the same files, the same page cache), their
        configs differing in store.recency alone; wrk against each in
        turn, in pairs of runs.  Both fresh, so that neither carries what
        earlier steps left in its workers."""
        blob = self.tiny
        bpath = "/v2/%s/blobs/%s" % (BLOB_REPO, blob.digest)
        mpath = "/v2/%s/manifests/%s" % (TAGGED_REPO, TAG)
        tests = (("recency.blob", bpath, []),
                 ("recency.manifest", mpath, ["Accept: " + ACCEPT_ALL]))

        def setup():
            # through ocimirror's own nginx first: it fetches the blob
            expect_blob(fetch(self.mirror.hostport, bpath,
                              timeout=self.cap(60)), blob,
                        "cold GET of the %d-byte blob" % blob.size)
            wait_wan_quiet(self.wan, timeout=self.cap(60))
            for side, value in (("on", "true"), ("off", "false")):
                n = MirrorNginx(self.mirror, "recency-" + side,
                                "recency = %s; " % value)
                self.procs.append(n)
                self.recency[side] = n
                n.start()
            for n in self.recency.values():
                expect_blob(fetch(n.hostport, bpath, timeout=self.cap(60)),
                            blob, "warm-up GET of the %d-byte blob"
                            % blob.size)
                r = fetch(n.hostport, mpath, {"Accept": ACCEPT_ALL},
                          timeout=self.cap(60))
                if r.error or r.status != 200 or r.sha256 != self.tman.hex:
                    raise StepError("warm-up GET of the manifest: HTTP %s, "
                                    "%s" % (r.status, r.error or one_line(
                                        r.start[:120])))
            wait_wan_quiet(self.wan, timeout=self.cap(60))
        self.step([t[0] for t in tests], setup, needs=("ocimirror", "wan"))

        for key, path, headers in tests:
            if isinstance(self.r.get(key), Failure):
                continue

            def run(key=key, path=path, headers=headers):
                pairs = []
                for i in range(self.p.ab_rounds):
                    on, off = self.recency_pair(path, headers,
                                                "on" if i % 2 == 0 else "off")
                    pairs.append((on, off))
                    log("%s: recency on %.0f req/s, %.1f µs CPU/request; "
                        "off %.0f req/s, %.1f µs" % (
                            key, on[0], on[1] * 1e6, off[0], off[1] * 1e6))
                self.r[key] = pairs
            self.step([key], run, needs=("ocimirror",))

        for n in self.recency.values():
            n.stop()

    # --- a synthetic store: the index, memory, eviction ---------------

    def measure_store(self):
        self.step(["store.load", "store.evict"], self.store_run)

    def lone_setup(self, name, need):
        """(work folder, a copy of the fetcher binary, a store root with
        room for need bytes, where that root is in words) for fetchers
        run alone."""
        work = os.path.join(self.tmp, name)
        os.makedirs(work, exist_ok=True)
        if not os.path.exists(FETCHER_BIN):
            raise StepError("%s is missing (make all)"
                            % os.path.relpath(FETCHER_BIN, REPO))
        shutil.copy2(FETCHER_BIN, work)     # a rebuild may replace it
        fbin = os.path.join(work, os.path.basename(FETCHER_BIN))
        parent = store_parent(self.tmp, need)
        root = tempfile.mkdtemp(prefix="ocimirror-bench-%s-" % name,
                                dir=parent)
        where = "%s (%s)" % (
            "BENCH_STORE_DIR" if os.environ.get("BENCH_STORE_DIR")
            else "the temp directory" if parent == self.tmp else parent,
            mount_of(root)[1])
        return work, fbin, root, where

    def lone_stop(self, lone, root):
        for f in lone:
            f.stop()
            self.lone_problems += f.problems()
        shutil.rmtree(root, ignore_errors=True)

    def store_run(self):
        work, fbin, root, self.store_where = self.lone_setup(
            "lone", self.p.store_files * 4096)
        lone = []
        try:
            self.store_steps(root, work, fbin, lone)
        finally:
            self.lone_stop(lone, root)

    def store_steps(self, root, work, fbin, lone):
        n = self.p.store_files
        store = os.path.join(root, "store")
        empty = os.path.join(root, "empty")
        os.makedirs(empty)
        t = time.monotonic()
        hexes = benchdata.write_store_blobs(store, n, "index")
        gen = time.monotonic() - t
        log("synthetic store: %d blobs written in %.1fs in %s"
            % (n, gen, self.store_where))

        def fetcher(name, where, settings):
            f = LoneFetcher(work, fbin, where, name)
            lone.append(f)
            f.start(settings)
            return f

        # what a fetcher takes before it indexes anything
        unbounded = 'max_size = "1T"; '
        f = fetcher("empty", empty, unbounded)
        f.wait_loaded(30)
        rss0 = f.rss_kib()[0]
        f.stop()

        # the load, from the start of the process: nothing else runs
        f = fetcher("load", store, unbounded)
        m = f.wait_loaded(self.cap(300))
        rss, hwm = f.rss_kib()
        f.stop()
        files = int(m["ocimirror_fetcher_store_files"])
        total = int(m["ocimirror_fetcher_store_bytes"])
        if files != n:
            raise StepError("the index holds %d files, %d were written"
                            % (files, n))
        start = {k: 0.0 for k in m if k.startswith(LOOP_STALL)}
        start[LOOP_LONGEST] = 0.0
        load = {"files": n, "generated": gen,
                "seconds": m["ocimirror_fetcher_store_index_load_seconds"],
                "rss0": rss0, "rss": rss, "hwm": hwm,
                "per_file": (rss - rss0) * 1024.0 / n,
                "stall": StallWindow(start, m)}
        self.r["store.load"] = load
        log("index of %d files loaded in %.3fs; RSS %.1f -> %.1f MiB (%.0f "
            "B/file); longest stall %s" % (
                n, load["seconds"], rss0 / 1024.0, rss / 1024.0,
                load["per_file"], load["stall"].longest_text()))

        # One eviction of a tenth: max_size = 1.125 x the indexed bytes,
        # high 85 %, low 80 % (90 % of the bytes).  The oldest tenth is a
        # second older than the rest.  Every file's time keeps it within
        # CACHE_GRACE until the load's end has been scraped, so that the
        # eviction starts in a window of its own, at a tick; until then
        # the cache manager finds nothing it may evict (and says so once
        # in its log).
        grace = cache_grace()
        k = n // 10
        offset = max(0, math.ceil(2 * load["seconds"] + 2 - grace))
        t0 = math.ceil(time.time()) + offset
        shard = os.path.join(store, "sha256")
        for i, h in enumerate(hexes):
            os.utime(os.path.join(shard, h[:2], h),
                     (t0 - 1, t0 - 1) if i < k else (t0, t0))
        f = fetcher("evict", store, 'max_size = "%d"; high_watermark = 85; '
                    'low_watermark = 80; ' % ((total * 9 + 7) // 8))
        m = f.wait_loaded(self.cap(300))
        if m["ocimirror_fetcher_store_evictions_total"] != 0:
            raise StepError("eviction began before the load's end was "
                            "seen (the load took %.1f s)" % m[
                                "ocimirror_fetcher_store_index_load_seconds"])
        poll = self.p.store_poll
        deadline = time.monotonic() + self.cap(offset + grace + 30)
        # the last scrape before the first file went opens the window
        while True:
            m1, t1 = m, time.monotonic()
            m = f.stats()
            if m["ocimirror_fetcher_store_evictions_total"] > 0:
                break
            if time.monotonic() > deadline:
                raise StepError("no eviction began: %s" % one_line(
                    tail(f.log_path, 3)))
            time.sleep(poll)
        # the first at the low watermark with nothing evicting closes it
        while m["ocimirror_fetcher_store_evicting"] != 0 or \
                m["ocimirror_fetcher_store_bytes"] > \
                m["ocimirror_fetcher_store_low_watermark_bytes"]:
            if time.monotonic() > deadline:
                raise StepError("eviction still under way: %d files gone"
                                % m["ocimirror_fetcher_store_evictions_total"])
            time.sleep(poll)
            m = f.stats()
        t2 = time.monotonic()
        f.stop()
        evicted = int(m["ocimirror_fetcher_store_evictions_total"])
        low = int(m["ocimirror_fetcher_store_low_watermark_bytes"])
        if total % n == 0 and evicted != n - low // (total // n):
            # every file takes the same room: the count is exact
            raise StepError("%d files evicted, %d expected"
                            % (evicted, n - low // (total // n)))
        if abs(evicted - k) > max(1, n // 100):
            raise StepError("%d files evicted, about %d expected"
                            % (evicted, k))
        gone = {h for h in hexes
                if not os.path.exists(os.path.join(shard, h[:2], h))}
        old = set(hexes[:k])
        if len(gone) != evicted or not (gone <= old or old <= gone):
            raise StepError("%d files gone, %d of them of the oldest tenth: "
                            "not the least recently used first"
                            % (len(gone), len(gone & old)))
        ev = {"files": evicted, "seconds": t2 - t1,
              "stall": StallWindow(m1, m)}
        self.r["store.evict"] = ev
        log("evicted %d files in %.3fs; longest stall %s, %d turns over "
            "10 ms" % (evicted, ev["seconds"], ev["stall"].longest_text(),
                       ev["stall"].over_ms(10)))

    # --- the scrub: its pace, its ceiling, deep, and hits meanwhile ---

    def measure_commit(self):
        self.step(["commit"], self.commit_run)

    def commit_run(self):
        # on the temp directory's disk: an fsync on a tmpfs costs nothing
        work = os.path.join(self.tmp, "commit")
        os.makedirs(work, exist_ok=True)
        try:
            # one stream: the turns of a ranged download that hash the
            # chunks finished further out would hide what the commit costs
            self.r["commit"] = commitstall.measure(FETCHER_BIN, work,
                                                   self.p.commit_mib,
                                                   ranges=False)
        except commitstall.Failed as e:
            raise StepError(str(e))
        finally:
            shutil.rmtree(os.path.join(work, "commit-store"),
                          ignore_errors=True)

    def measure_scrub(self):
        self.step(["scrub.paced", "scrub.fast", "scrub.deep",
                   "scrub.hits.blob1", "scrub.hits.tiny"], self.scrub_run)

    def scrub_run(self):
        work, fbin, root, self.scrub_where = self.lone_setup(
            "scrub", self.p.scrub_mib * MiB)
        lone = []
        try:
            self.scrub_steps(root, work, fbin, lone)
        finally:
            if self.scrub_mirror is not None:
                self.scrub_mirror.stop()
                self.lone_problems += self.scrub_mirror.problems()
            self.lone_stop(lone, root)

    def scrub_steps(self, root, work, fbin, lone):
        p = self.p
        store = os.path.join(root, "store")
        t = time.monotonic()
        blobs = benchdata.write_store_sized(store, p.scrub_mib * MiB,
                                            "scrub", p.scrub_min,
                                            p.scrub_max)
        total = sum(b.size for b in blobs)
        self.scrub_gen = (len(blobs), total, time.monotonic() - t)
        # one file damaged as a disk would: a byte in its middle
        planted = blobs[len(blobs) // 3]
        with open(planted.path, "r+b") as f:
            f.seek(planted.size // 2)
            byte = f.read(1)
            f.seek(planted.size // 2)
            f.write(bytes([byte[0] ^ 0x01]))
        log("scrub store: %d blobs, %.0f MiB written in %.1fs in %s"
            % (len(blobs), total / MiB, self.scrub_gen[2], self.scrub_where))

        def fetcher(name, where, settings):
            f = LoneFetcher(work, fbin, where, name)
            lone.append(f)
            f.start(settings)
            f.wait_loaded(self.cap(60))
            return f

        def paced():
            limit = size_of(p.scrub_rate)
            f = fetcher("scrub-paced", store, 'max_size = "1T"; '
                        'scrub_rate = "%s"; ' % p.scrub_rate)
            f.expected = [planted.hex]
            r = self.scrub_pass(f, False, limit,
                                self.cap(2 * total / limit + 30))
            status = scrub_status(f)
            f.stop()
            if r["files"] != len(blobs):
                raise StepError("the pass checked %d files of %d"
                                % (r["files"], len(blobs)))
            qdir = os.path.join(store, "quarantine")
            names = sorted(os.listdir(qdir)) if os.path.isdir(qdir) else []
            want = re.compile(re.escape(planted.hex) + r"\.\d+")
            gone = [b for b in blobs if not os.path.exists(b.path)]
            found = [x for x in status.get("finding", [])
                     if " corrupt %s hashes to " % planted.digest in x]
            r["quarantine_ok"] = (len(names) == 1 and want.fullmatch(
                names[0]) is not None and gone == [planted]
                and r["corrupt"] == 1 and len(found) == 1)
            r["quarantine"] = (
                "the planted file" if r["quarantine_ok"] else
                "%d corrupt, quarantine/ holds %d file(s)%s, %d gone "
                "from sha256/, the finding %s" % (
                    r["corrupt"], len(names),
                    " (the planted one)" if len(names) == 1 and
                    want.fullmatch(names[0]) else "", len(gone),
                    "listed" if found else "missing"))
            r["limit"] = limit
            r["slice"] = c_define(SCRUB_H, "SCRUB_SLICE_BYTES")
            self.r["scrub.paced"] = r
            log("scrub at %s: %.1f MiB/s, %.2f s for %.0f MiB; at most "
                "%+.2f MiB over rate x elapsed; longest stall %s; RSS %+.0f "
                "KiB; quarantined: %s" % (
                    p.scrub_rate, r["rate"] / MiB, r["seconds"],
                    r["read"] / MiB, r["excess"] / MiB,
                    r["stall"].longest_text(), r["rss_growth"],
                    r["quarantine"]))
        self.step(["scrub.paced"], paced)

        def fast():
            f = fetcher("scrub-fast", store, 'max_size = "1T"; '
                        'scrub_rate = "%s"; ' % p.scrub_fast)
            f.expected = [planted.hex]
            r = self.scrub_pass(f, False, None, self.cap(total / MiB + 30))
            f.stop()
            self.r["scrub.fast"] = r
            log("scrub unthrottled: %.1f MiB/s, %.2f s for %.0f MiB; "
                "longest stall %s; fetcher CPU %.2f s" % (
                    r["rate"] / MiB, r["seconds"], r["read"] / MiB,
                    r["stall"].longest_text(), r["cpu"]))
        self.step(["scrub.fast"], fast)

        self.step(["scrub.deep"], lambda: self.scrub_deep(root, fetcher))
        self.step(["scrub.hits.blob1", "scrub.hits.tiny"],
                  lambda: self.scrub_hits(root, [b for b in blobs
                                                 if b is not planted]))

    def scrub_pass(self, f, deep, limit, timeout):
        """Start a pass over f's socket (a FetcherSocket with a pid and a
        log_path) and follow it, a scrape every p.scrub_poll, until
        ocimirror_fetcher_scrub_running is 0.  The bench's clock starts
        before the command is sent, so that at every scrape the bytes read
        so far can be held against limit × elapsed: the scrape's bytes
        were counted before its answer came, so the bound errs, by the
        scrape's own latency, on the fetcher's side."""
        poll = self.p.scrub_poll
        m0 = f.stats()
        if m0[SCRUB_RUNNING] != 0:
            raise StepError("a scrub was running already")
        passes = len(scrub_passes(f.log_path))
        rss0 = f.rss_kib()[0]
        cpu0 = cpu_seconds([f.pid])
        t0 = time.monotonic()
        status, out = f.ctl("scrub --deep" if deep else "scrub")
        if status != 0 or not out or not out[0].startswith("scrub started"):
            raise StepError("scrub answered %d: %s"
                            % (status, one_line(" / ".join(out))))
        samples = []                # (s since t0, bytes read, VmRSS KiB)
        while True:
            time.sleep(poll)
            m = f.stats()
            t = time.monotonic() - t0
            samples.append((t, m[SCRUB_BYTES] - m0[SCRUB_BYTES],
                            f.rss_kib()[0]))
            if m[SCRUB_RUNNING] == 0:
                break
            if t > timeout:
                raise StepError("the scrub still ran after %.0f s, %.0f "
                                "MiB read" % (t, samples[-1][1] / MiB))
        cpu = cpu_seconds([f.pid]) - cpu0
        done = scrub_passes(f.log_path)
        if len(done) != passes + 1:
            raise StepError("the fetcher's log has %d new ends of passes, "
                            "not 1: %s" % (len(done) - passes,
                                           one_line(tail(f.log_path, 2))))
        own = done[-1]
        read = m[SCRUB_BYTES] - m0[SCRUB_BYTES]
        if read != own["read"]:
            raise StepError("the metrics count %d bytes read, the log %d"
                            % (read, own["read"]))
        return {"read": read, "rate": own["rate"],
                "seconds": read / own["rate"] if own["rate"] else 0.0,
                "window": samples[-1][0], "scrapes": len(samples),
                "files": int(m[SCRUB_FILES] - m0[SCRUB_FILES]),
                "corrupt": int(m[SCRUB_CORRUPT] - m0[SCRUB_CORRUPT]),
                "mismatches": int(m[SCRUB_MISMATCHES]
                                  - m0[SCRUB_MISMATCHES]),
                "skipped": int(m[SCRUB_SKIPPED] - m0[SCRUB_SKIPPED]),
                "excess": max(b - limit * t for t, b, _ in samples)
                if limit else None,
                "rss0": rss0,
                "rss_growth": max(r for _, _, r in samples) - rss0,
                "cpu": cpu, "stall": StallWindow(m0, m)}

    def scrub_deep(self, root, fetcher):
        """A deep pass, unthrottled, over a store of a few gzip images; one
        config names a wrong diff_id for one layer."""
        p = self.p
        store = os.path.join(root, "deep")
        t = time.monotonic()
        wrong = (p.deep_images - 1, 0)
        images = benchdata.write_store_images(
            store, "deep", p.deep_images, p.deep_layers,
            p.deep_layer_mib * MiB, wrong_diff_id=wrong)
        gen = time.monotonic() - t
        bad = images[wrong[0]]["layers"][wrong[1]]
        f = fetcher("scrub-deep", store, 'max_size = "1T"; '
                    'scrub_rate = "%s"; ' % p.scrub_fast)
        f.expected = [bad.hex]
        r = self.scrub_pass(f, True, None, self.cap(60))
        status = scrub_status(f)
        f.stop()
        m = [x for x in status.get("progress", [])
             if "image manifests checked" in x]
        m = re.match(r"(\d+) of (\d+) image manifests", m[0]) if m else None
        if m is None or int(m.group(1)) != len(images) or \
                int(m.group(2)) != len(images):
            raise StepError("the deep pass did not check the %d images: %s"
                            % (len(images), one_line(" / ".join(
                                status.get("progress", [])))))
        found = [x for x in status.get("finding", [])
                 if "diff_id" in x and " layer %s " % bad.digest in x]
        r["mismatch_ok"] = r["mismatches"] == 1 and len(found) == 1 and \
            r["skipped"] == 0 and r["corrupt"] == 0
        r["images"] = len(images)
        r["layers"] = sum(len(i["layers"]) for i in images)
        r["tar_bytes"] = sum(i["tar_bytes"] for i in images)
        r["gz_bytes"] = sum(l.size for i in images for l in i["layers"])
        r["generated"] = gen
        r["unpacked_rate"] = r["tar_bytes"] / r["seconds"]
        self.r["scrub.deep"] = r
        log("deep scrub of %d images (%d layers, %.0f MiB gzip, %.0f MiB "
            "unpacked): %.2f s, %.1f MiB/s unpacked, %.1f MiB/s read; "
            "%d mismatch(es), %d skipped; longest stall %s" % (
                len(images), r["layers"], r["gz_bytes"] / MiB,
                r["tar_bytes"] / MiB, r["seconds"],
                r["unpacked_rate"] / MiB, r["rate"] / MiB, r["mismatches"],
                r["skipped"], r["stall"].longest_text()))

    def scrub_hits(self, root, blobs):
        """ocimirror's nginx and fetcher on a store of its own (hard links
        to the synthetic blobs, enough for a pass at the default rate to
        outlast a wrk run, and the two blobs the runs GET); wrk runs in
        pairs, the scrub idle, then a pass started right before the run
        (or the other way round, alternately); each pass runs to its end
        before the next run."""
        p = self.p
        limit = c_define(OCI_CONFIG_H, "OCI_DEFAULT_SCRUB_RATE")
        slice_bytes = c_define(SCRUB_H, "SCRUB_SLICE_BYTES")
        store = os.path.join(root, "hits")
        rng = random.Random("ocimirror-bench-scrub-hits")
        small = benchdata.store_put(store, rng.randbytes(p.small_mib * MiB))
        tiny = benchdata.store_put(store, rng.randbytes(p.tiny_bytes))
        want = limit * (p.ab_seconds + 0.5)
        have = small.size + tiny.size
        for b in blobs:
            if have >= want:
                break
            d = os.path.join(store, "sha256", b.hex[:2])
            os.makedirs(d, exist_ok=True)
            os.link(b.path, os.path.join(d, b.hex))
            have += b.size
        if have < want:
            raise StepError("the synthetic store holds %.0f MiB, a pass at "
                            "%.0f MiB/s must outlast %d s (BENCH_SCRUB_MIB)"
                            % (have / MiB, limit / MiB, p.ab_seconds))
        self.scrub_hits_store = have
        m = Mirror(os.path.join(self.tmp, "scrub-hits"),
                   "127.0.0.1:%d" % free_port(), store=store,
                   store_extra='max_size = "1T"; scrub_interval = 0; ')
        self.scrub_mirror = m
        m.start()
        fs = FetcherSocket()
        if not fs.connect(m.socket):
            raise StepError("cannot connect to the fetcher's socket")
        load = " ".join(read_text("/proc/loadavg").split()[:3])
        try:
            self.scrub_hit_pairs(m, fs, small, tiny, limit, slice_bytes)
        finally:
            fs.close()
            self.scrub_hits_load = (load, " ".join(
                read_text("/proc/loadavg").split()[:3]))

    def scrub_hit_pairs(self, m, fs, small, tiny, limit, slice_bytes):
        p = self.p
        for b in (small, tiny):
            expect_blob(fetch(m.hostport, "/v2/%s/blobs/%s"
                              % (BLOB_REPO, b.digest), timeout=self.cap(30)),
                        b, "a hit on the %d-byte blob" % b.size)
        fpid = m.fetcher.pid

        def run(path, side):
            c0, w0 = cpu_seconds([fpid]), time.monotonic()
            bps, rps, cpu = self.wrk(m.hostport, path, cpu_of="scrub-hits",
                                     seconds=p.ab_seconds)
            fcpu = (cpu_seconds([fpid]) - c0) / (time.monotonic() - w0)
            return {"bps": bps, "rps": rps, "cpu": cpu, "fetcher": fcpu}

        def running(path):
            m0 = fs.stats()
            if m0[SCRUB_RUNNING] != 0:
                raise StepError("a scrub was running already")
            passes = len(scrub_passes(m.fetcher_log))
            t0 = time.monotonic()
            status, out = fs.ctl("scrub")
            if status != 0:
                raise StepError("scrub answered %d: %s"
                                % (status, one_line(" / ".join(out))))
            r = run(path, "running")
            m1 = fs.stats()
            t1 = time.monotonic() - t0
            if m1[SCRUB_RUNNING] != 1:
                raise StepError("the pass ended before the wrk run did: "
                                "the store is too small for the rate")
            read = m1[SCRUB_BYTES] - m0[SCRUB_BYTES]
            r["scrub_rate"] = read / t1
            r["excess"] = read - limit * t1
            deadline = time.monotonic() + self.cap(60)
            while True:
                m2 = fs.stats()
                t2 = time.monotonic() - t0
                r["excess"] = max(r["excess"], m2[SCRUB_BYTES]
                                  - m0[SCRUB_BYTES] - limit * t2)
                if m2[SCRUB_RUNNING] == 0:
                    break
                if time.monotonic() > deadline:
                    raise StepError("the pass did not end")
                time.sleep(p.scrub_poll)
            done = scrub_passes(m.fetcher_log)
            if len(done) != passes + 1:
                raise StepError("the fetcher's log has %d new ends of "
                                "passes, not 1" % (len(done) - passes))
            r["pass_rate"] = done[-1]["rate"]
            r["stall"] = StallWindow(m0, m2)
            return r

        def idle(path):
            if fs.stats()[SCRUB_RUNNING] != 0:
                raise StepError("a scrub was running")
            return run(path, "idle")

        for key, blob in (("scrub.hits.blob1", small),
                          ("scrub.hits.tiny", tiny)):
            path = "/v2/%s/blobs/%s" % (BLOB_REPO, blob.digest)

            def pairs(key=key, path=path, blob=blob):
                out = []
                for i in range(p.scrub_ab_rounds):
                    pair = {}
                    for side in (("idle", "running") if i % 2 == 0
                                 else ("running", "idle")):
                        pair[side] = (running if side == "running"
                                      else idle)(path)
                    out.append(pair)
                    log("%s: scrub running %.0f req/s, %.1f MiB/s, %.1f µs "
                        "CPU/request, scrub %.1f MiB/s; idle %.0f req/s, "
                        "%.1f MiB/s, %.1f µs" % (
                            key, pair["running"]["rps"],
                            pair["running"]["bps"] / MiB,
                            pair["running"]["cpu"] * 1e6,
                            pair["running"]["scrub_rate"] / MiB,
                            pair["idle"]["rps"], pair["idle"]["bps"] / MiB,
                            pair["idle"]["cpu"] * 1e6))
                self.r[key] = {"pairs": out, "limit": limit,
                               "slice": slice_bytes, "size": blob.size}
            self.step([key], pairs)

    def collect_rss(self):
        def peak(phases, group):
            vals = [self.rss.peak(ph, group) for ph in phases]
            vals = [v for v in vals if v is not None]
            return max(vals) / 1024.0 if vals else None
        om = ["cold-pull-ocimirror", "coalesce", "fanout", "ttfb-ocimirror"]
        w = peak(om, "workers")
        f = peak(om, "fetcher")
        if w is not None and f is not None:
            self.r["rss.cold.ocimirror"] = (w, f)
        elif "ocimirror" in self.ready:
            self.r["rss.cold.ocimirror"] = Failure("failed: not sampled")
        pe = peak(["cold-pull-peer", "ttfb-peer"], "peer")
        if pe is not None:
            self.r["rss.cold.peer"] = pe

    def run(self):
        self.start_all()
        self.measure_warm()
        self.measure_manifest()
        self.measure_tag_policy()
        # the WAN's steps before the long local ones: a quick run's time
        # budget runs out at the end, and these are what the bench is for
        self.measure_cold_pull()
        self.measure_coalescing()
        self.measure_fanout()
        self.measure_ttfb()
        self.measure_cluster()
        self.measure_recency()
        self.measure_store()
        self.measure_scrub()
        self.measure_commit()
        self.collect_rss()
        if self.mirror is not None and self.mirror.alive():
            hwm = [proc_status(pid) for pid in self.mirror.worker_pids()]
            f = proc_status(self.mirror.fetcher.pid)
            hwm = [h[1] for h in hwm if h]
            if hwm and f:
                self.notes.append("VmHWM over the whole run: nginx workers "
                                  "%s MiB, fetcher %.1f MiB." % (
                                      " / ".join("%.1f" % (h / 1024.0)
                                                 for h in hwm),
                                      f[1] / 1024.0))
        if self.mirror is not None and not self.mirror.alive():
            self.notes.append("ocimirror was not running at the end "
                              "(nginx %s, fetcher %s)" % (
                                  "up" if self.mirror.nginx and
                                  self.mirror.nginx.alive() else "down",
                                  "up" if self.mirror.fetcher and
                                  self.mirror.fetcher.alive() else "down"))

    def finish_notes(self):
        probs = []
        for who in [self.mirror] + list(self.recency.values()):
            if who is not None:
                probs += who.problems()
        probs += self.lone_problems
        probs += self.cluster_problems
        for line in probs[:8]:
            self.notes.append(self.sanitize(one_line(line, 240)))
        if len(probs) > 8:
            self.notes.append("... and %d more problem lines in the "
                              "ocimirror logs" % (len(probs) - 8))


WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\"requests\":%d,\"bytes\":%d,\"duration_us\":%d," ..
    "\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d," ..
    "\"timeout\":%d,\"p50_us\":%d,\"p99_us\":%d}\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


# --- the report --------------------------------------------------------------

def fmt(v, spec):
    if v is None:
        return "—"
    if isinstance(v, Failure):
        return v.reason
    return spec % v


def ratio(a, b):
    if ok(a) and ok(b) and b > 0:
        return a / b
    return None


def verdict(value, test, short_by):
    """'yes', 'no (<how far>)' or 'n/a'."""
    if value is None:
        return "n/a"
    return "yes" if test(value) else "no (%s)" % short_by(value)


def ab_figures(pairs):
    """Of [((req/s, CPU s/request) on, (...) off)], pairs of runs made one
    right after the other: for req/s (0) and CPU per request (1), the
    median of each side,
    and the cost of recency in each pair (on / off - 1 for CPU, 1 - on /
    off for req/s): their median, and their range, the noise the median
    has to beat."""
    out = {}
    for i, sign in ((0, -1), (1, 1)):
        costs = sorted(sign * (on[i] / off[i] - 1) for on, off in pairs)
        out[i] = {"on": statistics.median(on[i] for on, _ in pairs),
                  "off": statistics.median(off[i] for _, off in pairs),
                  "cost": statistics.median(costs),
                  "low": costs[0], "high": costs[-1]}
    return out[0], out[1]


def stall_verdict(w):
    """Every turn of the window under 50 ms: from the exact longest if the
    window set a record, else from the histogram (turns over 50 ms)."""
    if w.exact is not None:
        return verdict(w.exact * 1000, lambda x: x < 50,
                       lambda x: "%.1f ms over" % (x - 50))
    n = w.over_ms(50)
    return "yes" if n == 0 else "no (%d turns over 50 ms)" % n


def slice_text(v):
    """One slice of the scrub (SCRUB_SLICE_BYTES, as the step read it)."""
    if not ok(v):
        return "SCRUB_SLICE_BYTES"
    n = v["slice"]
    return "%g MiB" % (n / MiB) if n >= MiB else "%g KiB" % (n / 1024.0)


def scrub_store_text(b):
    """The scrub's synthetic store in a few words."""
    if b.scrub_gen is None:
        return "%d MiB (not written)" % b.p.scrub_mib
    return "%d blobs, %.0f MiB" % (b.scrub_gen[0], b.scrub_gen[1] / MiB)


def scrub_ab(v):
    """Of the pairs of wrk runs (scrub running, scrub idle): for req/s,
    MiB/s and CPU per request, the median of each side and of running ÷
    idle per pair, and its range; the fetcher's CPU share, median of each
    side; the scrub's highest rate in a run and its largest excess over
    rate × elapsed."""
    pairs = v["pairs"]
    out = {}
    for field in ("rps", "bps", "cpu", "fetcher"):
        ratios = sorted(pr["running"][field] / pr["idle"][field]
                        for pr in pairs if pr["idle"][field])
        out[field] = {
            "running": statistics.median(pr["running"][field]
                                         for pr in pairs),
            "idle": statistics.median(pr["idle"][field] for pr in pairs),
            "median": statistics.median(ratios) if ratios else None,
            "low": ratios[0] if ratios else None,
            "high": ratios[-1] if ratios else None}
    out["scrub_rate"] = max(pr["running"]["scrub_rate"] for pr in pairs)
    out["excess"] = max(pr["running"]["excess"] for pr in pairs)
    return out


def cluster_rows(b):
    """The cluster against one node: the cold pull's time and upstream
    bytes, the tag's upstream requests over a pull through every node,
    and the extra hop of a miss asked of a node that is not the owner."""
    p, r = b.p, b.r
    n = p.cluster_nodes
    rows = []
    v = r.get("cluster.pull", Failure("not run"))
    label = ("cold pull through a %d-node cluster (every request to one "
             "node) / one node, %d layers × %d MiB, skopeo (s)"
             % (n, p.layers, p.layer_mib))
    blabel = ("upstream bytes of that cold pull, until the WAN was quiet "
              "(MiB; cluster / one node)")
    tlabel = ("upstream requests for the tag: a pull through each of the "
              "%d nodes (the first cold) / one cold pull through one node"
              % n)
    if not ok(v):
        for lab, target in ((label, "—"), (blabel, "≤ 1.05× one node"),
                            (tlabel, "≤ one node's")):
            rows.append([lab, "—", "—", "—", fmt(v, "%s"), "—", target,
                         "n/a"])
    else:
        one, cold = v["single"], v["cold"]
        rows.append([label, "—", "—", "—", "%.2f / %.2f" % (
            cold["seconds"], one["seconds"]),
            "%.2f× one node" % (cold["seconds"] / one["seconds"]),
            "—", "—"])
        rb = cold["wan_total"] / one["wan_total"] \
            if one["wan_total"] else None
        rows.append([blabel, "—", "—", "—", "%.1f / %.1f (the image: "
                     "%.1f)" % (cold["wan_total"] / MiB,
                                one["wan_total"] / MiB, v["size"] / MiB),
                     "—" if rb is None else "%.2f× one node" % rb,
                     "≤ 1.05× one node",
                     verdict(rb, lambda x: x <= 1.05,
                             lambda x: "%.2f× over" % (x - 1.05))])
        tags = cold["tag_requests"] + sum(w["tag_requests"]
                                          for w in v["warm"])
        rows.append([tlabel, "—", "—", "—", "%d / %d" % (
            tags, one["tag_requests"]), "—", "≤ one node's",
            verdict(tags, lambda x: x <= one["tag_requests"],
                    lambda x: "%d more" % (x - one["tag_requests"]))])
    v = r.get("cluster.hit", Failure("not run"))
    label = ("time to first byte, a stored layer (a hit) asked of a node "
             "that does not hold it / of its owner (ms, median of %d each)"
             % p.cluster_hits)
    if not ok(v):
        rows.append([label, "—", "—", "—", fmt(v, "%s"), "—", "—", "n/a"])
    else:
        rows.append([label, "—", "—", "—", "%.2f / %.2f" % (
            v["other"], v["owner"]), "the hop: %+.2f ms" % (
            v["other"] - v["owner"]), "—", "—"])
    v = r.get("cluster.ttfb", Failure("not run"))
    label = ("time to first byte, cold %d MiB blob asked of a node that is "
             "not its owner / of its owner (ms, median of %d each)"
             % (p.cluster_blob_mib, p.cluster_pairs))
    if not ok(v):
        rows.append([label, "—", "—", "—", fmt(v, "%s"), "—", "—", "n/a"])
    else:
        pairs = v["pairs"]
        other = statistics.median(x for x, _ in pairs)
        owner = statistics.median(y for _, y in pairs)
        d = sorted(x - y for x, y in pairs)
        rows.append([label, "—", "—", "—", "%.1f / %.1f" % (other, owner),
                     "the hop: %+.1f ms (pairs %+.1f … %+.1f)" % (
                         statistics.median(d), d[0], d[-1]),
                     "—", "—"])
    return rows


def cluster_notes(b):
    p, out = b.p, []
    if ok(b.r.get("cluster.seconds")):
        out.append("The cluster step (four mirrors started, its pulls and "
                   "probes, the mirrors stopped) took %.0f s."
                   % b.r["cluster.seconds"])
    v = b.r.get("cluster.pull")
    if ok(v):
        one, cold = v["single"], v["cold"]
        out.append("Cluster, cold pull: through one node %.2f s, %.1f MiB "
                   "across the WAN while skopeo ran and %.1f MiB in all, "
                   "%d upstream GETs of the image's %d blobs; through the "
                   "cluster %.2f s, %.1f and %.1f MiB, %d GETs. The "
                   "image's blobs stored per node afterwards: %s (one "
                   "node: %d), %d copies in all." % (
                       one["seconds"], one["wan_during"] / MiB,
                       one["wan_total"] / MiB, one["blob_gets"], v["blobs"],
                       cold["seconds"], cold["wan_during"] / MiB,
                       cold["wan_total"] / MiB, cold["blob_gets"],
                       " / ".join(map(str, v["stored"])),
                       v["stored_single"], sum(v["stored"])))
        out.append("Cluster, the same pull again through node %s (warm): "
                   "%s; upstream bytes %s; tag requests upstream %s." % (
                       " and ".join(str(i + 1) for i in
                                    range(len(v["warm"]))),
                       ", ".join("%.2f s" % w["seconds"]
                                 for w in v["warm"]),
                       ", ".join("%.1f KiB" % (w["wan_total"] / 1024.0)
                                 for w in v["warm"]),
                       ", ".join("%d" % w["tag_requests"]
                                 for w in v["warm"])))
        for what, cs in (("the cold pull", v["cold_counters"]),
                         ("the warm pulls", v["warm_counters"])):
            out.append("Cluster counters per node during %s (forwarded / "
                       "peer requests / peer refused / list mismatch): %s."
                       % (what, "; ".join(
                           "node %d %s" % (i, " / ".join(
                               "%d" % c[k] for k in CLUSTER_METRICS))
                           for i, c in enumerate(cs))))
    v = b.r.get("cluster.ttfb")
    if ok(v):
        out.append("Cluster TTFB, every pair (not the owner / the owner, "
                   "ms): %s. Owners of the %d probe blobs per node: %s; "
                   "of the %d blobs asked of a node that was not their "
                   "owner, that node stored %d, the owner %d (a miss left "
                   "at its first byte may be dropped)." % (
                       "; ".join("%.1f / %.1f" % pr for pr in v["pairs"]),
                       2 * p.cluster_pairs,
                       " / ".join(map(str, v["owners"])), p.cluster_pairs,
                       v["kept"]["entry"], v["kept"]["owner"]))
    return out


def build_rows(b):
    p, r = b.p, b.r

    def g(key):
        return r.get(key, Failure("not run"))
    rows = []

    def xr(v):
        return "—" if v is None else "%.2f×" % v

    for key, label in (("blob1", "warm blob GET, %d MiB (MiB/s)"
                        % p.small_mib),
                       ("blob64", "warm blob GET, %d MiB (MiB/s)"
                        % p.large_mib)):
        s, pe, o = g(key + ".static"), g(key + ".peer"), g(key + ".ocimirror")
        rs, rp = ratio(o, s), ratio(o, pe)
        rows.append([label, fmt(s, "%.0f"), fmt(pe, "%.0f"), "—",
                     fmt(o, "%.0f"),
                     "%s static; %s peer" % (xr(rs), xr(rp)),
                     "≥ 0.95× static; ≥ 5× peer",
                     "%s; %s" % (
                         verdict(rs, lambda x: x >= 0.95,
                                 lambda x: "%.1f%% short" %
                                 ((0.95 - x) / 0.95 * 100)),
                         verdict(rp, lambda x: x >= 5,
                                 lambda x: "%.1f× short" % (5 - x)))])

    s, pe = g("manifest.static"), g("manifest.peer")
    o = g("manifest.ocimirror")
    rs, rp = ratio(o, s), ratio(o, pe)
    rows.append(["warm manifest GET by tag (req/s; static: the same bytes "
                 "as a file)", fmt(s, "%.0f"), fmt(pe, "%.0f"), "—",
                 fmt(o, "%.0f"),
                 "%s static; %s peer" % (xr(rs), xr(rp)),
                 "≥ 0.8× static; ≥ 5× peer",
                 "%s; %s" % (
                     verdict(rs, lambda x: x >= 0.8,
                             lambda x: "%.1f%% short" %
                             ((0.8 - x) / 0.8 * 100)),
                     verdict(rp, lambda x: x >= 5,
                             lambda x: "%.1f× short" % (5 - x)))])

    for prefix, label in (
            ("pull", "cold pull, %d layers × %d MiB, skopeo (s)"
             % (p.layers, p.layer_mib)),
            ("pull_link", "cold pull, %d layers × %d MiB, skopeo, the WAN "
             "link capped at %g MiB/s in all (s)"
             % (p.layers, p.layer_mib, p.link_mib))):
        if prefix == "pull_link" and p.link_mib <= 0:
            continue
        d, pe = g(prefix + ".direct"), g(prefix + ".peer")
        o = g(prefix + ".ocimirror")
        rd, rpd = ratio(o, d), ratio(pe, d)
        rows.append([label, "—", fmt(pe, "%.2f"),
                     fmt(d, "%.2f"), fmt(o, "%.2f"),
                     "%s direct (peer %s)" % (xr(rd), xr(rpd)),
                     "≤ 0.7× direct",
                     verdict(rd, lambda x: x <= 0.7,
                             lambda x: "%.2f× over" % (x - 0.7))])

    if p.link_mib > 0:
        one, many = g("wan.one"), g("wan.many")
        conn_cap = min(p.rate_mib, p.link_mib)
        if ok(one) and ok(many):
            n, agg, fastest, _ = many
            cells = ("%.1f / %.1f (fastest of the %d: %.1f)"
                     % (one[0], agg, n, fastest),
                     "%.2f× the connection's cap; %.2f× the link's"
                     % (one[0] / conn_cap, agg / p.link_mib),
                     "%s; %s" % (
                         verdict(one[0], lambda x: 0.8 * conn_cap <= x <=
                                 1.05 * conn_cap,
                                 lambda x: "%.2f× its cap" %
                                 (x / conn_cap)),
                         verdict(agg, lambda x: 0.8 * p.link_mib <= x <=
                                 1.05 * p.link_mib,
                                 lambda x: "%.2f× the link's" %
                                 (x / p.link_mib))))
            n_text = "%d" % n
        else:
            bad = one if not ok(one) else many
            cells = (fmt(bad, "%s"), "—", "n/a")
            n_text = "several"
        rows.append(["the WAN simulator under the link cap: one "
                     "connection / %s at once (MiB/s of body)" % n_text,
                     "—", "—", cells[0], "—", cells[1],
                     "one: 0.8–1.05× %g MiB/s (its own cap); all: "
                     "0.8–1.05× %g MiB/s (the link)"
                     % (conn_cap, p.link_mib), cells[2]])

    pe, o = g("coalesce.peer"), g("coalesce.ocimirror")
    extra = ""
    if ok(o) and ok(g("coalesce.ocimirror.gets")):
        extra = " (%d upstream GET%s)" % (
            r["coalesce.ocimirror.gets"],
            "" if r["coalesce.ocimirror.gets"] == 1 else "s")
    rows.append(["coalescing: upstream bytes ÷ blob size, %d cold GETs of "
                 "%d MiB" % (p.coalesce_clients, p.coalesce_mib), "—",
                 fmt(pe, "%.2f"), "—", fmt(o, "%.3f") + extra,
                 "—", "≤ 1.05",
                 verdict(o if ok(o) else None, lambda x: x <= 1.05,
                         lambda x: "%.2f over" % (x - 1.05))])

    d, dr = g("ttfb.direct"), g("ttfb.direct_reused")
    pe, o = g("ttfb.peer"), g("ttfb.ocimirror")
    delta = o - dr if ok(o) and ok(dr) else None
    delta_fresh = o - d if ok(o) and ok(d) else None
    rows.append(["time to first byte, cold %d MiB blob (ms; direct = the "
                 "upstream's own: kept-alive / new connection)"
                 % p.ttfb_mib, "—", fmt(pe, "%.1f"),
                 "%s / %s" % (fmt(dr, "%.1f"), fmt(d, "%.1f")),
                 fmt(o, "%.1f"),
                 "%s vs kept-alive; %s vs new" % (
                     "—" if delta is None else "%+.1f ms" % delta,
                     "—" if delta_fresh is None
                     else "%+.1f ms" % delta_fresh),
                 "within +20 ms of kept-alive",
                 verdict(delta, lambda x: x <= 20,
                         lambda x: "%.1f ms over" % (x - 20))])

    rows += cluster_rows(b)

    for key, label in (("recency.blob", "warm hit with recency on / off, "
                        "%d-byte blob (req/s, median)" % p.tiny_bytes),
                       ("recency.manifest", "warm hit with recency on / off, "
                        "manifest by tag (req/s, median)")):
        v = g(key)
        if not ok(v):
            rows.append([label, "—", "—", "—", fmt(v, "%s"), "—",
                         "≤ 2 % cost (CPU per request)", "n/a"])
            continue
        rps, cpu = ab_figures(v)
        met = verdict(cpu["cost"], lambda x: x <= 0.02,
                      lambda x: "%.1f %% over%s" % (
                          (x - 0.02) * 100, ", within the pairs' range"
                          if cpu["low"] <= 0.02 else ""))
        rows.append([label, "—", "—", "—",
                     "%.0f / %.0f; CPU %.1f / %.1f µs per request" % (
                         rps["on"], rps["off"], cpu["on"] * 1e6,
                         cpu["off"] * 1e6),
                     "cost %+.1f %% CPU per request (pairs %+.1f … %+.1f "
                     "%%), %+.1f %% req/s (pairs %+.1f … %+.1f %%)" % (
                         cpu["cost"] * 100, cpu["low"] * 100,
                         cpu["high"] * 100, rps["cost"] * 100,
                         rps["low"] * 100, rps["high"] * 100),
                     "≤ 2 % cost (CPU per request)", met])

    v = g("store.load")
    label = ("index load at start, %d synthetic blobs (s; fetcher RSS; "
             "the loop's longest stall)" % p.store_files)
    if ok(v):
        rows.append([label, "—", "—", "—",
                     "%.2f s; %.1f → %.1f MiB, %.0f B/file; stall %s"
                     % (v["seconds"], v["rss0"] / 1024.0, v["rss"] / 1024.0,
                        v["per_file"], v["stall"].longest_text()),
                     "—", "stall < 50 ms", stall_verdict(v["stall"])])
    else:
        rows.append([label, "—", "—", "—", fmt(v, "%s"), "—",
                     "stall < 50 ms", "n/a"])

    v = g("store.evict")
    label = ("one eviction of 10 %% of %d files (s; the loop's longest "
             "stall)" % p.store_files)
    if ok(v):
        rows.append([label, "—", "—", "—",
                     "%.3f s (%d files); stall %s" % (
                         v["seconds"], v["files"],
                         v["stall"].longest_text()),
                     "—", "stall < 50 ms", stall_verdict(v["stall"])])
    else:
        rows.append([label, "—", "—", "—", fmt(v, "%s"), "—",
                     "stall < 50 ms", "n/a"])

    v = g("scrub.paced")
    label = ("scrub of the synthetic store (%s), store.scrub_rate = %s "
             "(MiB/s; s; the loop's longest stall; fetcher RSS growth)"
             % (scrub_store_text(b), p.scrub_rate))
    target = ("within ±10 %% of scrub_rate, never over rate × elapsed + 1 "
              "slice (%s); stall < 50 ms; RSS < +1 MiB; only the planted "
              "file quarantined" % slice_text(v))
    if ok(v):
        share = v["rate"] / v["limit"]
        rows.append([label, "—", "—", "—",
                     "%.1f MiB/s, %.2f s (bytes ÷ rate %.2f s); at most "
                     "%+.2f MiB over rate × elapsed; stall %s; RSS %+.1f "
                     "MiB; quarantined: %s" % (
                         v["rate"] / MiB, v["seconds"],
                         v["read"] / v["limit"], v["excess"] / MiB,
                         v["stall"].longest_text(),
                         v["rss_growth"] / 1024.0, v["quarantine"]),
                     "%.3f× scrub_rate" % share, target,
                     "; ".join([
                         verdict(share, lambda x: abs(x - 1) <= 0.1,
                                 lambda x: "%+.1f %%" % ((x - 1) * 100)),
                         verdict(v["excess"], lambda x: x <= v["slice"],
                                 lambda x: "%.2f MiB over" % (x / MiB)),
                         stall_verdict(v["stall"]),
                         verdict(v["rss_growth"], lambda x: x < 1024,
                                 lambda x: "%+.1f MiB" % (x / 1024.0)),
                         "yes" if v["quarantine_ok"] else "no"])])
    else:
        rows.append([label, "—", "—", "—", fmt(v, "%s"), "—", target,
                     "n/a"])

    v = g("scrub.fast")
    label = ("scrub of the same store, scrub_rate = %s: the hash ceiling "
             "(MiB/s; the loop's longest stall)" % p.scrub_fast)
    if ok(v):
        rows.append([label, "—", "—", "—",
                     "%.0f MiB/s, %.2f s; fetcher CPU %.2f s; stall %s" % (
                         v["rate"] / MiB, v["seconds"], v["cpu"],
                         v["stall"].longest_text()),
                     "—", "stall < 50 ms", stall_verdict(v["stall"])])
    else:
        rows.append([label, "—", "—", "—", fmt(v, "%s"), "—",
                     "stall < 50 ms", "n/a"])

    v = g("scrub.deep")
    label = ("deep scrub, %d images × %d gzip layers of %d MiB, "
             "scrub_rate = %s (MiB/s unpacked; read; the loop's longest "
             "stall)" % (p.deep_images, p.deep_layers, p.deep_layer_mib,
                         p.scrub_fast))
    target = "stall < 50 ms; only the planted diff_id mismatch"
    if ok(v):
        rows.append([label, "—", "—", "—",
                     "%.0f MiB/s unpacked, %.0f MiB/s read, %.2f s; %d "
                     "diff_id mismatch%s%s; stall %s" % (
                         v["unpacked_rate"] / MiB, v["rate"] / MiB,
                         v["seconds"], v["mismatches"],
                         "" if v["mismatches"] == 1 else "es",
                         ": the planted one" if v["mismatch_ok"] else
                         ", %d skipped, %d corrupt" % (v["skipped"],
                                                       v["corrupt"]),
                         v["stall"].longest_text()),
                     "—", target, "%s; %s" % (
                         stall_verdict(v["stall"]),
                         "yes" if v["mismatch_ok"] else "no")])
    else:
        rows.append([label, "—", "—", "—", fmt(v, "%s"), "—", target,
                     "n/a"])

    for key, what, unit in (("scrub.hits.blob1", "%d MiB blob"
                             % p.small_mib, "MiB/s"),
                            ("scrub.hits.tiny", "%d-byte blob"
                             % p.tiny_bytes, "req/s")):
        v = g(key)
        label = ("warm hit, %s, a scrub at the default rate running / "
                 "idle (%s, median)" % (what, unit))
        target = ("%sscrub ≤ rate × elapsed + 1 slice (%s)"
                  % ("≥ 0.95× idle (MiB/s); " if unit == "MiB/s" else "",
                     slice_text(v)))
        if not ok(v):
            rows.append([label, "—", "—", "—", fmt(v, "%s"), "—", target,
                         "n/a"])
            continue
        f = scrub_ab(v)
        field = "bps" if unit == "MiB/s" else "rps"
        scale = MiB if unit == "MiB/s" else 1
        thr, cpu = f[field], f["cpu"]
        met = [verdict(thr["median"], lambda x: x >= 0.95,
                       lambda x: "%.1f %% short%s" % (
                           (0.95 - x) / 0.95 * 100,
                           ", within the pairs' range"
                           if thr["high"] >= 0.95 else ""))] \
            if unit == "MiB/s" else []
        met.append(verdict(f["excess"], lambda x: x <= v["slice"],
                           lambda x: "%.2f MiB over" % (x / MiB)))
        rows.append([label, "—", "—", "—",
                     "%.0f / %.0f %s; CPU %.1f / %.1f µs per request; "
                     "fetcher %.1f / %.1f %% of a core; scrub %.1f MiB/s "
                     "in the runs (limit %.0f)" % (
                         thr["running"] / scale, thr["idle"] / scale, unit,
                         cpu["running"] * 1e6, cpu["idle"] * 1e6,
                         f["fetcher"]["running"] * 100,
                         f["fetcher"]["idle"] * 100,
                         f["scrub_rate"] / MiB, v["limit"] / MiB),
                     "%.3f× %s (pairs %.3f … %.3f); CPU per request %+.1f "
                     "%% (pairs %+.1f … %+.1f %%)" % (
                         thr["median"], unit, thr["low"], thr["high"],
                         (cpu["median"] - 1) * 100, (cpu["low"] - 1) * 100,
                         (cpu["high"] - 1) * 100),
                     target, "; ".join(met)])

    v = g("commit")
    label = ("one %d MiB blob downloaded in one stream and committed, "
             "store.fsync = true, fetcher alone: the loop's longest stall "
             "(the commit on its thread; the download)" % p.commit_mib)
    if ok(v):
        rows.append([label, "—", "—", "—",
                     "stall %.1f ms (%d turns > 10 ms, %d > 50 ms); commit "
                     "%s; %.1f s" % (
                         v["stall"] * 1000, v["turns_over_10ms"],
                         v["turns_over_50ms"],
                         "%.0f ms" % (v["commit"] * 1000)
                         if v["commit"] is not None else "on the loop",
                         v["seconds"]),
                     "—", "stall < 50 ms",
                     verdict(v["stall"], lambda x: x < 0.05,
                             lambda x: "%.0f ms" % (x * 1000))])
    else:
        rows.append([label, "—", "—", "—", fmt(v, "%s"), "—",
                     "stall < 50 ms", "n/a"])

    o = g("rss.worker_growth")
    rows.append(["nginx worker RSS growth streaming %d × %d MiB (MiB)"
                 % (p.coalesce_clients, p.coalesce_mib), "—", "—", "—",
                 fmt(o, "%.1f"), "—", "< 8 MiB",
                 verdict(o if ok(o) else None, lambda x: x < 8,
                         lambda x: "%.1f MiB over" % (x - 8))])

    o = g("rss.fetcher64")
    rows.append(["fetcher peak RSS, %d cold %d MiB blobs at once (MiB)"
                 % (p.fanout_n, p.fanout_mib), "—", "—", "—",
                 fmt(o, "%.1f"), "—", "< 64 MiB",
                 verdict(o if ok(o) else None, lambda x: x < 64,
                         lambda x: "%.1f MiB over" % (x - 64))])

    o, pe = g("rss.cold.ocimirror"), g("rss.cold.peer")
    rows.append(["peak RSS during the cold runs (MiB; ocimirror: nginx "
                 "worker / fetcher)", "—", fmt(pe, "%.1f"), "—",
                 "%.1f / %.1f" % o if ok(o) else fmt(o, "%s"), "—", "—",
                 "—"])
    return rows


HEADER = ["figure", "static nginx", "peer (registry proxy)", "direct (WAN)",
          "ocimirror", "ratio", "target", "met"]


def markdown_table(rows):
    out = ["| " + " | ".join(HEADER) + " |",
           "|" + "|".join(" --- " for _ in HEADER) + "|"]
    for row in rows:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in row)
                   + " |")
    return "\n".join(out)


def first_line(cmd):
    try:
        pr = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (pr.stdout or pr.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def machine(load):
    model = "unknown"
    for line in read_text("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = "unknown"
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem = "%.1f GiB" % (int(line.split()[1]) / 1024.0 / 1024.0)
    curl = first_line(["curl", "--version"])
    m = re.search(r"libcurl/\S+", curl)
    return [
        ("date (UTC)", datetime.datetime.now(datetime.timezone.utc)
         .strftime("%Y-%m-%d %H:%M")),
        ("CPU", "%s, %d online (nproc)" % (model, os.cpu_count() or 0)),
        ("memory", mem),
        ("load average at the start", load),
        ("kernel", "%s %s" % (platform.system(), platform.release())),
        ("nginx", first_line([NGINX_BIN, "-v"]).replace("nginx version: ",
                                                        "")),
        ("libcurl", m.group(0) if m else curl),
        ("docker-registry", first_line([REGISTRY_BIN, "--version"])
         .replace(REGISTRY_BIN, "docker-registry")),
        ("skopeo", first_line([SKOPEO_BIN, "--version"])),
        ("wrk", first_line([WRK_BIN, "-v"]).split(" Copyright")[0]),
        ("python", platform.python_version()),
    ]


def scrub_notes(b):
    p, out = b.p, []
    if b.scrub_gen is not None:
        out.append("Scrub store: %d blobs, %.0f MiB, written in %.1f s in "
                   "%s." % (b.scrub_gen[0], b.scrub_gen[1] / MiB,
                            b.scrub_gen[2], b.scrub_where))
    for key, what in (("scrub.paced", "The pass at %s" % p.scrub_rate),
                      ("scrub.fast", "The pass at %s" % p.scrub_fast),
                      ("scrub.deep", "The deep pass")):
        v = b.r.get(key)
        if not ok(v):
            continue
        w = v["stall"]
        out.append("%s: %d files, %.1f MiB read in %.3f s by the fetcher's "
                   "clock (the bench saw its end %.2f s after the command, "
                   "%d scrapes); %d loop turns (%.3f s busy), %d over 10 "
                   "ms; fetcher CPU %.2f s (%.2f s per GiB read); VmRSS "
                   "%.1f MiB before, %+.0f KiB at most." % (
                       what, v["files"], v["read"] / MiB, v["seconds"],
                       v["window"], v["scrapes"], w.turns, w.busy,
                       w.over_ms(10), v["cpu"],
                       v["cpu"] / (v["read"] / 1024.0 / MiB),
                       v["rss0"] / 1024.0, v["rss_growth"]))
    v = b.r.get("scrub.deep")
    if ok(v):
        out.append("Deep store: %d images, %d layers, %.1f MiB of gzip "
                   "unpacking to %.1f MiB (%.2f:1), written in %.1f s."
                   % (v["images"], v["layers"], v["gz_bytes"] / MiB,
                      v["tar_bytes"] / MiB, v["tar_bytes"] / v["gz_bytes"],
                      v["generated"]))
    for key, what, unit in (("scrub.hits.blob1", "%d MiB blob"
                             % p.small_mib, "MiB/s"),
                            ("scrub.hits.tiny", "%d-byte blob"
                             % p.tiny_bytes, "req/s")):
        v = b.r.get(key)
        if not ok(v):
            continue
        field, scale = ("bps", MiB) if unit == "MiB/s" else ("rps", 1)
        out.append("Hits on the %s, scrub running / idle, every pair of "
                   "runs (%s, µs CPU per request, the fetcher's %% of a "
                   "core; the scrub's MiB/s in the run and over its whole "
                   "pass, the loop's longest stall in the pass): %s." % (
                       what, unit, "; ".join(
                           "%.0f / %.0f, %.1f / %.1f, %.1f / %.1f; %.1f, "
                           "%.1f, %s" % (
                               pr["running"][field] / scale,
                               pr["idle"][field] / scale,
                               pr["running"]["cpu"] * 1e6,
                               pr["idle"]["cpu"] * 1e6,
                               pr["running"]["fetcher"] * 100,
                               pr["idle"]["fetcher"] * 100,
                               pr["running"]["scrub_rate"] / MiB,
                               pr["running"]["pass_rate"] / MiB,
                               pr["running"]["stall"].longest_text())
                           for pr in v["pairs"])))
    if b.scrub_hits_load is not None:
        out.append("The load average was %s before the hits under a scrub "
                   "and %s after them." % b.scrub_hits_load)
    return out


def link_notes(b):
    """What crossed the WAN during each cold pull, and what the link cap
    held back."""
    p, out = b.p, []
    for prefix, what in (("pull", "without a link cap"),
                         ("pull_link", "under the %g MiB/s link cap"
                          % p.link_mib)):
        parts = []
        for name in ("direct", "peer", "ocimirror"):
            t, w = b.r.get("%s.%s" % (prefix, name)), \
                b.r.get("%s.%s.wan" % (prefix, name))
            if not ok(t) or not ok(w):
                continue
            text = "%s %.0f MiB in %.2f s (%.1f MiB/s)" % (
                name, w[0] / MiB, t, w[0] / MiB / t)
            if prefix == "pull_link":
                text += ", %.0f MiB of it held back by the link" % (
                    w[1] / MiB)
            parts.append(text)
        if parts:
            out.append("Across the WAN during each cold pull %s (until "
                       "skopeo ended; the peer's own downloads to its "
                       "storage included): %s." % (what, "; ".join(parts)))
    one, many = b.r.get("wan.one"), b.r.get("wan.many")
    if ok(one) and ok(many):
        out.append("The simulator under the %g MiB/s link: one connection "
                   "alone %.2f MiB/s (%.0f KiB held back by the link), %d "
                   "at once %.2f MiB/s in all, the fastest of them %.2f "
                   "MiB/s (%.1f MiB held back)." % (
                       p.link_mib, one[0], one[1] / 1024.0, many[0],
                       many[1], many[2], many[3] / MiB))
    return out


def tag_policy_notes(b):
    """Why the manifest-by-tag ratio to the peer is a policy's."""
    pe, o = b.r.get("tagpolicy.peer"), b.r.get("tagpolicy.ocimirror")
    measured = ""
    if ok(pe):
        measured = (" Here %d GETs of the tag, one after another, through "
                    "the peer led to %d requests for it upstream (%.1f ms "
                    "a GET)" % (pe[0], pe[1], pe[2] * 1000))
        if ok(o):
            measured += ", through ocimirror to %d (%.1f ms a GET)" % (
                o[1], o[2] * 1000)
        measured += "."
    return ["The peer revalidates every tag request upstream: "
            "docker-registry in proxy mode asks the remote for a tag's "
            "digest on each GET by tag and uses its own copy only when "
            "the remote fails, so each answer waits for at least one WAN "
            "round trip; ocimirror asks once per tag_ttl (%d s here). The "
            "warm manifest-by-tag ratio to the peer therefore measures "
            "that policy, not serving speed.%s" % (TAG_TTL, measured)]


def report(b, rows):
    p = b.p
    mode = "quick (BENCH_QUICK=1)" if p.quick else "full"
    lines = ["# ocimirror benchmarks", "",
             "Written by `make bench` (tests/bench/bench.py); numbers from "
             "one run, %s mode, in %.0f s." % (mode,
                                               time.monotonic() - b.t0), "",
             "## Machine", ""]
    lines += ["- %s: %s" % kv for kv in machine(b.load_at_start)]
    lines += ["", "## Setup", "",
              "- Everything on loopback, on the machine above; clients, "
              "servers and the WAN simulator share its CPUs.",
              "- WAN (tests/bench/wanproxy.py) between the upstream "
              "(docker-registry) and everyone who talks to it: %.0f ms "
              "RTT, %.0f MiB/s per connection and direction; a new "
              "connection costs one RTT. %s" % (
                  p.rtt_ms, p.rate_mib,
                  "No cap on the link as a whole, except for the second "
                  "set of cold pulls and the check of the simulator "
                  "before them: there every connection shares %g MiB/s "
                  "per direction (one token bucket, 64 KiB of burst; a "
                  "real region caps both), and each keeps its own %g "
                  "MiB/s too." % (p.link_mib, p.rate_mib)
                  if p.link_mib > 0 else
                  "No cap on the link as a whole (BENCH_LINK_MIB = 0): "
                  "parallel connections multiply the bandwidth."),
              "- static nginx and ocimirror's nginx: 2 workers, sendfile, "
              "tcp_nopush, open_file_cache, access_log off; ocimirror with "
              "fsync = false, max_transfers = 64, tag_ttl = 300, every "
              "other setting at its default; the fan-out step and the "
              "steps after it (TTFB, recency) run with a fetcher "
              "restarted with max_per_host = 64.",
              "- peer: docker-registry in proxy mode "
              "(proxy.remoteurl = the WAN), filesystem storage.",
              "- warm: wrk -t%d -c%d -d%ds after one GET through each "
              "target, best of %d runs (order A B C C B A ...); cold: "
              "the first request for that content through each target."
              % (p.wrk_threads, p.wrk_conns, p.wrk_seconds, p.wrk_rounds),
              "- static nginx serves the very files ocimirror serves, from "
              "ocimirror's store (same inode, same page cache); the "
              "generated files only when ocimirror has no copy.",
              "- manifest by tag: a 10-layer image of its own (so that a "
              "prefetch it sets off cannot warm the cold pull), Accept: "
              "all four manifest types; static serves the same bytes.",
              "- recency on / off: two fresh nginx with the module (2 "
              "workers each) in front of ocimirror's fetcher and store "
              "(the same files, the same page cache), their copies of the "
              "config differing in `store.recency` alone (false: no "
              "recency table, a hit notes nothing); %d pairs of wrk -t%d "
              "-c%d -d%ds runs, one against each side right after the "
              "other (on off, off on, ...: a drift of the machine falls "
              "on both alike), on a %d-byte blob (where a request's own "
              "cost shows) and on the manifest by tag. CPU per request = "
              "the nginx workers' user + system time (/proc) ÷ requests: "
              "the cost a hit pays, and what the target judges; req/s on "
              "a 2-core machine shared with wrk follows whatever else "
              "runs. Cost = how much worse with recency, per pair; the "
              "table gives the median and the range of the pairs."
              % (p.ab_rounds, p.wrk_threads, p.wrk_conns, p.ab_seconds,
                 p.tiny_bytes),
              "- synthetic store: %d blobs of 256 B–2 KiB random bytes "
              "under sha256/<2>/<64>, named by their own digests, written "
              "by the bench in %s; ocimirror-fetcher alone (no nginx; "
              "scrub off; an upstream that is never asked), its metrics "
              "read over its socket with STATS lines as a worker asks. "
              "RSS: the fetcher on an empty store, then on this one "
              "once loaded (VmRSS). Load: "
              "`ocimirror_fetcher_store_index_load_seconds`, the longest "
              "stall since the process started. Eviction: a fetcher "
              "restarted with max_size = 1.125 × the indexed bytes, high "
              "85 %%, low 80 %%: exactly a tenth must go, and it must be "
              "the oldest tenth (a second older than the rest); the "
              "files' times hold eviction back (CACHE_GRACE) until the "
              "load's end has been scraped; then STATS every %.0f ms, "
              "from the last scrape before the first file went to the "
              "first at the low watermark with nothing evicting; its "
              "longest stall is exact when it is a record since the "
              "start, else the histogram's bound." % (
                  p.store_files, b.store_where, p.store_poll * 1000),
              "- scrub: a second synthetic store, %s, of blobs of "
              "256 KiB–8 MiB (a 16-byte header of each file's own, then "
              "pseudo-random bytes of a shared pool), named by their "
              "digests, written by the bench in %s (the scrub reads from "
              "memory there: what it costs in CPU, not a disk's I/O); one "
              "of them damaged, a byte flipped in its middle. A fetcher "
              "alone (as above) with store.scrub_rate = %s runs one pass "
              "started with `scrub` over its socket, scraped (STATS) "
              "every %.0f ms until `ocimirror_fetcher_scrub_running` is "
              "0; then a fresh one at %s, a rate the hash never reaches "
              "(its ceiling). The achieved rate is the fetcher's own, "
              "bytes read ÷ the pass's duration from its end-of-pass log "
              "line; the bytes at every scrape are held against rate × the "
              "time since the bench sent the command (the scrub promises "
              "at most one slice more); stall: the window from the scrape "
              "before the command to the first after the end; RSS: VmRSS "
              "at every scrape against the one before. Deep: `scrub "
              "--deep` at %s over a store of its own, %d images × %d "
              "gzip tar layers (level 6, as docker's) of %d MiB of "
              "text-like bytes, with their configs and types/ lines as the "
              "fetcher stores a pull; one config names a wrong diff_id for "
              "one layer; unpacked = the layers' tar bytes ÷ the pass's "
              "duration. Hits: ocimirror's nginx (2 workers) and a fetcher "
              "of their own, scrub_rate at its default, on a store of hard "
              "links to the synthetic blobs (%.0f MiB, more than a pass "
              "reads at that rate in a wrk run and a second) and a %d MiB "
              "and a %d-byte blob; %d pairs of wrk -t%d -c%d -d%ds per "
              "blob, one with the scrub idle and one right after `scrub` "
              "(idle running, running idle, ...), each pass run to its end "
              "before the next run; CPU per request as for recency, the "
              "fetcher's CPU ÷ the run's wall time; running ÷ idle per "
              "pair, the table gives the median and the range." % (
                  scrub_store_text(b),
                  b.scrub_where, p.scrub_rate, p.scrub_poll * 1000,
                  p.scrub_fast, p.scrub_fast, p.deep_images, p.deep_layers,
                  p.deep_layer_mib, b.scrub_hits_store / MiB, p.small_mib,
                  p.tiny_bytes, p.scrub_ab_rounds, p.wrk_threads,
                  p.wrk_conns, p.ab_seconds),
              "- cold pull: `skopeo copy docker://... dir:`; the direct "
              "column pulls from the upstream through the WAN; one target "
              "at a time, each started on a quiet WAN (no byte across it "
              "for 0.5 s). %s" % (
                  "Then the same with the link capped at %g MiB/s, of "
                  "another image of the same shape (so that every target "
                  "is cold again): ocimirror's parallel downloads (the "
                  "prefetch of every layer at once, ranged chunks) and the "
                  "peer's second download of each blob (one to the "
                  "client, one to its storage) then share the link, as "
                  "they would in a real region. Before those pulls, a "
                  "check of the simulator on the upstream's %d MiB blob "
                  "(Range GETs through the WAN, the rate counted from "
                  "each connection's first body byte): one connection "
                  "alone must keep to its own cap, %s at once to the "
                  "link's." % (p.link_mib, p.large_mib,
                               "several" if not ok(b.r.get("wan.many"))
                               else "%d" % b.r["wan.many"][0])
                  if p.link_mib > 0 else ""),
              "- TTFB: to the first body byte, one cold probe per cache. "
              "Direct is the median of 3 probes at the upstream through "
              "the WAN, on a kept-alive connection (the request's round "
              "trip: what the mirror's fetcher, holding its upstream "
              "connections open, can at best achieve; the target is "
              "judged against it) and on a new one (one more round trip "
              "for the handshake: what a client pulling directly sees). "
              "Every probe starts on a quiet WAN (no byte across it for "
              "0.5 s; no link cap): direct, then ocimirror, then the peer "
              "once ocimirror's download of the blob, which goes on "
              "after its probe left, has ended.",
              "- cluster: %d mirrors on 127.0.0.2–%d (each its own nginx "
              "with 2 workers, fetcher and store, the settings above), "
              "one peers list, one secret file, replicate = \"none\", "
              "the same WAN to the upstream (no link cap); one node: a "
              "fresh mirror "
              "with the same settings and no cluster group. Cold pull: "
              "the cold-pull image, cold for both, through the one node, "
              "then through the cluster with every request of skopeo to "
              "its first node (the others' blobs and tag are forwarded); "
              "upstream bytes: the WAN's counter from the start of skopeo "
              "to a quiet WAN (0.5 s), so that what a node fetched after "
              "skopeo ended counts; then the same pull through each other "
              "node, warm. TTFB: %d pairs of cold %d MiB blobs; each "
              "blob's owner found by asking (a HEAD at the first node, "
              "and which node's /metrics counters moved: its "
              "`ocimirror_cluster_forwarded_total`, the owner's "
              "`ocimirror_cluster_peer_requests_total`); per pair one "
              "blob asked of its owner and one of a node that is not its "
              "owner (the order alternating), each a GET on a new "
              "connection on a quiet WAN, and the asked node's forwarded "
              "counter checked afterwards (+1 for the latter, +0 for the "
              "former). The hop = not the owner − the owner, per pair. "
              "The hop on a hit: a layer the pull left on one node, "
              "%d GETs of it at its owner and %d at the others, "
              "alternating, time to the first byte on a new connection "
              "(no WAN in the way)." % (
                  p.cluster_nodes, 1 + p.cluster_nodes, p.cluster_pairs,
                  p.cluster_blob_mib, p.cluster_hits, p.cluster_hits),
              "", "## Results", "", markdown_table(rows), ""]
    extra = []
    if ok(b.r.get("fanout.seconds")):
        extra.append("%d cold %d MiB blobs at once through ocimirror took "
                     "%.1f s, with at most %d upstream connections open "
                     "at once (idle kept-alive ones included)."
                     % (p.fanout_n, p.fanout_mib, b.r["fanout.seconds"],
                        b.r["fanout.wan_conns"]))
    if ok(b.r.get("coalesce.ocimirror.slowest")):
        extra.append("Slowest of the %d coalesced clients: %.1f s for %d "
                     "MiB at %.0f MiB/s per WAN connection."
                     % (p.coalesce_clients,
                        b.r["coalesce.ocimirror.slowest"], p.coalesce_mib,
                        p.rate_mib))
    if ok(b.r.get("coalesce.peer.gets")):
        extra.append("The peer sent %d GETs upstream for the coalescing "
                     "blob." % b.r["coalesce.peer.gets"])
    if ok(b.r.get("pull.direct")):
        size = sum(l.size for l in b.layers) + b.cfg.size
        extra.insert(0, "The direct pull moved %.0f MiB in %.2f s, %.1f "
                     "MiB/s: skopeo's dir: destination takes the layers "
                     "one at a time, so a client alone uses one capped "
                     "connection." % (size / MiB, b.r["pull.direct"],
                                      size / MiB / b.r["pull.direct"]))
    if ok(b.r.get("pull.warm")):
        extra.insert(0, "The same skopeo pull from ocimirror once warm took "
                     "%.2f s: skopeo's own floor on this machine."
                     % b.r["pull.warm"])
    extra += link_notes(b)
    extra += cluster_notes(b)
    extra += tag_policy_notes(b)
    w = b.r.get("ttfb.peer.waited")
    if ok(w) and ok(b.r.get("ttfb.peer")):
        extra.append("The peer's cold TTFB probe waited %.1f s for a quiet "
                     "WAN (0.5 s of it the quiet spell) while ocimirror's "
                     "download of the blob went on after its own probe%s."
                     % (w, "" if not ok(b.r.get("ttfb.drained")) else
                        "; the WAN was quiet again %.1f s after the "
                        "peer's probe (its own download went on; the "
                        "quiet spell included)" % b.r["ttfb.drained"]))
    try:
        load1 = float(b.load_at_start.split()[0])
    except (ValueError, IndexError):
        load1 = 0.0
    if load1 > 0.5 * (os.cpu_count() or 1):
        extra.append("The load average was %s when the run started: other "
                     "work shared the CPUs, so the throughput figures are "
                     "noisier than usual." % b.load_at_start)
    for test, label in (("blob1", "%d MiB blob GET" % p.small_mib),
                        ("blob64", "%d MiB blob GET" % p.large_mib),
                        ("manifest", "manifest GET by tag")):
        med = {}
        for name in ("static", "ocimirror", "peer"):
            vals = b.cpu.get((test, name))
            if vals:
                med[name] = statistics.median(vals) * 1e6
        if med:
            parts = ["%s %.0f µs" % (n, med[n]) for n in
                     ("static", "ocimirror", "peer") if n in med]
            if "static" in med and "ocimirror" in med and med["static"]:
                parts[1] += " (%.2f× static)" % (med["ocimirror"] /
                                                 med["static"])
            extra.append("Server CPU per warm %s during wrk (median of "
                         "the runs; nginx workers, or the peer's "
                         "process): %s." % (label, ", ".join(parts)))
    for key, label in (("recency.blob", "%d-byte blob" % p.tiny_bytes),
                       ("recency.manifest", "manifest by tag")):
        v = b.r.get(key)
        if ok(v):
            extra.append("Recency on / off, %s, every pair of runs (req/s "
                         "and µs CPU per request, on / off): %s." % (
                             label, "; ".join(
                                 "%.0f / %.0f, %.1f / %.1f" % (
                                     on[0], off[0], on[1] * 1e6,
                                     off[1] * 1e6) for on, off in v)))
    v = b.r.get("store.load")
    if ok(v):
        w = v["stall"]
        extra.append("Synthetic store: %d blobs written in %.1f s in %s. "
                     "The load ran %d loop turns (%.3f s busy), %d over "
                     "10 ms; the fetcher's peak RSS (VmHWM) was %.1f MiB."
                     % (v["files"], v["generated"], b.store_where,
                        w.turns, w.busy, w.over_ms(10), v["hwm"] / 1024.0))
    v = b.r.get("store.evict")
    if ok(v):
        w = v["stall"]
        extra.append("The eviction of %d files: %d loop turns (%.3f s "
                     "busy, the scrapes' own included), %d over 10 ms, %d "
                     "over 50 ms; its duration is good to about twice the "
                     "%.0f ms between scrapes." % (
                         v["files"], w.turns, w.busy, w.over_ms(10),
                         w.over_ms(50), p.store_poll * 1000))
    extra += scrub_notes(b)
    if b.static_fallbacks:
        extra.append("static nginx served the generated file for %s: "
                     "ocimirror had no copy." % ", ".join(
                         sorted(b.static_fallbacks)))
    notes = extra + b.notes
    if notes:
        lines += ["## Notes", ""] + ["- " + n for n in notes] + [""]
    return "\n".join(lines)


def text_table(rows):
    widths = [max(len(r[i]) for r in rows + [HEADER])
              for i in range(len(HEADER))]
    widths = [min(w, 48) for w in widths]
    out = []
    for row in [HEADER] + rows:
        out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)))
        if row is HEADER:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main():
    missing = [x for x in (NGINX_BIN, REGISTRY_BIN, SKOPEO_BIN, WRK_BIN)
               if not os.path.exists(x)]
    if missing:
        sys.stderr.write("bench: missing %s (make deps; apt install wrk)\n"
                         % ", ".join(missing))
        return 2
    params = Params()

    def on_term(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)

    b = Bench(params)
    log("%s mode; temp dir %s" % ("quick" if params.quick else "full",
                                  b.tmp))
    interrupted = False
    try:
        try:
            b.run()
        except KeyboardInterrupt:
            interrupted = True
            b.notes.append("interrupted")
        except Exception as e:
            b.notes.append("setup failed: " + b.sanitize(one_line(e, 300)))
            log("setup failed: %s" % e)
        b.finish_notes()
    finally:
        b.stop_all()
        if env_flag("BENCH_KEEP"):
            log("kept %s" % b.tmp)
        else:
            shutil.rmtree(b.tmp, ignore_errors=True)
    rows = build_rows(b)
    print(text_table(rows))
    out = os.environ.get("BENCH_OUTPUT") or os.path.join(REPO,
                                                         "BENCHMARKS.md")
    text = report(b, rows)
    # the Fuzzing section is make fuzz's record, not this run's: kept
    try:
        with open(out) as f:
            old = f.read()
        i = old.find("\n## Fuzzing\n")
        if i >= 0:
            text = text.rstrip("\n") + "\n" + old[i:]
    except OSError:
        pass
    if not interrupted:
        with open(out, "w") as f:
            f.write(text)
        log("wrote %s" % os.path.relpath(out, REPO))
    if b.notes:
        print("\nnotes:\n" + "\n".join("  - " + n for n in b.notes))
    log("done in %.0fs" % (time.monotonic() - b.t0))
    return 1 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
