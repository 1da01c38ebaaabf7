#!/usr/bin/python3
"""The fetcher's event loop while it downloads and commits one large blob
with store.fsync = true: the longest turn of the loop (the stall every
other client's miss waits behind), the longest commit (fsync of the file,
rename, fsync of the directory) and the whole download, from the
fetcher's own metrics over its socket.

A fetcher alone (no nginx) on a store in a directory of the caller's, on
the disk (an fsync on a tmpfs costs nothing), and an upstream of its own:
a small HTTP server on 127.0.0.1 that answers GET /v2/ and the blob, a
1 MiB block repeated, with Range (the fetcher then downloads it as
parallel chunks, as from a real registry) or without (one stream).  Used by bench.py's "commit" step; standalone:

    tests/bench/commitstall.py FETCHER_BIN WORKDIR [MIB]

prints the figures as JSON.  Every process it starts it stops by PID.
"""

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

MiB = 1024 * 1024
LOOP_LONGEST = "ocimirror_fetcher_loop_longest_stall_seconds"
LOOP_STALL = "ocimirror_fetcher_loop_stall_seconds"
COMMIT_LONGEST = "ocimirror_fetcher_commit_longest_seconds"


class Failed(Exception):
    pass


def _block():
    # not compressible, the same every run
    out, seed = bytearray(), b"ocimirror commit stall"
    while len(out) < MiB:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return bytes(out[:MiB])


def _digest(block, mib):
    h = hashlib.sha256()
    for _ in range(mib):
        h.update(block)
    return "sha256:" + h.hexdigest()


class _Upstream(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _start_upstream(block, mib, digest, ranges):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def do_GET(self):
            if self.path == "/v2/":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                return
            if self.path != "/v2/bench/big/blobs/" + digest:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            total = mib * MiB
            first, last = 0, total - 1
            rng = self.headers.get("Range")
            if ranges and rng and rng.startswith("bytes="):
                a, _, b = rng[6:].partition("-")
                first = int(a)
                last = min(int(b) if b else total - 1, total - 1)
                self.send_response(206)
                self.send_header("Content-Range", "bytes %d-%d/%d"
                                 % (first, last, total))
            else:
                self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(last - first + 1))
            self.end_headers()
            try:
                # the content repeats every MiB: any range is slices of it
                off = first
                while off <= last:
                    n = min(MiB - off % MiB, last + 1 - off)
                    self.wfile.write(block[off % MiB:off % MiB + n])
                    off += n
            except OSError:
                pass

    srv = _Upstream(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv


def _metrics(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


class _Socket:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""

    def line(self, timeout):
        self.s.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise Failed("the fetcher closed its socket")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def stats(self, rid):
        self.s.sendall(b"STATS %d\n" % rid)
        while True:
            parts = self.line(30).split(" ")
            if parts[0] == "BODY" and parts[1] == str(rid):
                break
        with open(parts[3]) as f:
            text = f.read()
        os.unlink(parts[3])
        return _metrics(text)

    def close(self):
        self.s.close()


def measure(fetcher_bin, workdir, mib, fsync=True, ranges=True,
            timeout=600):
    """{'digest', 'stall': s, 'stall_before': s, 'commit': s or None,
    'seconds': s, 'turns_over_10ms': n, 'turns_over_50ms': n} for one blob
    of mib MiB, left in workdir/commit-store."""
    block = _block()
    digest = _digest(block, mib)
    up = _start_upstream(block, mib, digest, ranges)
    store = os.path.join(workdir, "commit-store")
    sock = os.path.join(workdir, "commit.sock")
    cfg = os.path.join(workdir, "commit.cfg")
    log_path = os.path.join(workdir, "commit-fetcher.log")
    os.makedirs(store, exist_ok=True)
    with open(cfg, "w") as f:
        f.write('store = { path = "%s"; fsync = %s; min_free = 0;\n'
                '          scrub_interval = 0; };\n'
                'prefetch = { enabled = false; };\n'
                'fetcher = { socket = "%s"; };\n'
                'default_registry = "up.test";\n'
                'registries = ( { name = "up.test"; endpoints = '
                '( "http://127.0.0.1:%d" ); } );\n'
                % (store, "true" if fsync else "false", sock,
                   up.server_address[1]))
    logf = open(log_path, "w")
    proc = subprocess.Popen([fetcher_bin, "-c", cfg], stdout=logf,
                            stderr=subprocess.STDOUT)
    conn = None
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise Failed("the fetcher exited: see %s" % log_path)
            try:
                conn = _Socket(sock)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise Failed("the fetcher's socket never came up")
                time.sleep(0.02)

        before = conn.stats(1)
        t0 = time.monotonic()
        conn.s.sendall(("BLOB 2 up.test bench/big %s\n" % digest).encode())
        while True:
            verb, rid = conn.line(timeout).split(" ")[:2]
            if rid != "2":
                continue
            if verb == "DONE":
                break
            if verb == "FAIL":
                raise Failed("the download failed: see %s" % log_path)
        seconds = time.monotonic() - t0
        after = conn.stats(3)

        def over(ms):
            le = '%s_bucket{le="%g"}' % (LOOP_STALL, ms / 1000.0)
            turns = after[LOOP_STALL + "_count"] - before[LOOP_STALL +
                                                          "_count"]
            return int(turns - (after[le] - before[le]))

        return {"digest": digest,
                "stall": after[LOOP_LONGEST],
                "stall_before": before[LOOP_LONGEST],
                "commit": after.get(COMMIT_LONGEST),
                "seconds": seconds,
                "turns_over_10ms": over(10),
                "turns_over_50ms": over(50)}
    finally:
        if conn is not None:
            conn.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logf.close()
        up.shutdown()
        up.server_close()


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: commitstall.py FETCHER_BIN WORKDIR [MIB]")
    mib = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    print(json.dumps(measure(sys.argv[1], sys.argv[2], mib), indent=1))


if __name__ == "__main__":
    main()
