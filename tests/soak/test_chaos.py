"""The chaos loop: CHAOS_KILLS SIGKILLs (20 in `make test`, 100 in `make
chaos`) at random instants, 0.3 to 2 s apart, while CHAOS_CLIENTS (8)
clients pull cold images (manifest by tag, config, layers, one layer
also as a Range) from a mirror whose upstream sends blobs at 8 MiB/s, so
that every kill lands in the middle of pulls.  Each kill takes, at
random, the fetcher (started again CHAOS_RESTART_DELAY seconds later, 1
by default: what systemd's Restart= with the unit's RestartSec=1s does)
or one nginx worker (nginx's master starts another itself).  A client
asks again for whatever failed, up to PULL_TRIES times per request.

Checked at the end:
  - every pull completed, with the right bytes for every request, and
    every image pulled is served again, byte for byte;
  - every file under sha256/ hashes to its name;
  - no temp file survives a restart: after a last SIGKILL and start of
    the fetcher, its sweep leaves store/tmp empty;
  - nginx logged no [alert] or [emerg] but the deaths of the workers
    killed here, the fetcher (the ASan build in `make chaos`) no
    sanitizer report.
"""

import collections
import os
import random
import re
import signal
import threading
import time

from content import Catalog
from conftest import env_number
from fakeregistry import FakeRegistry
from harness import (ACCEPT_ALL, Mirror, assert_store_consistent, request,
                     sha256_hex, store_tmp_files, wait_for)
import soaklib

NAME = "chaos.test"
PULL_TRIES = 60
MiB = 1024 * 1024


class _EveryBlob:
    """FakeRegistry.throttle for every digest: bytes per second."""

    def __init__(self, rate):
        self.rate = rate

    def get(self, digest, default=None):
        return self.rate


class Pullers:
    """Clients that pull cold images one after the other, asking again
    for whatever failed."""

    def __init__(self, mirror, cat, n, seed):
        self.mirror = mirror
        self.cat = cat
        self.seed = seed
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.next = 0
        self.pulled = []                 # image numbers, complete
        self.failed = []                 # (image, path, last error)
        self.retried_requests = 0
        self.retried_pulls = 0
        self.max_tries = 0
        self.errors = collections.Counter()
        self.threads = [threading.Thread(target=self._run, args=(i,),
                                         name="chaos-client-%d" % i,
                                         daemon=True) for i in range(n)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self, timeout):
        self.stop.set()
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def _run(self, i):
        rng = random.Random("chaos-client:%s:%d" % (self.seed, i))
        while not self.stop.is_set():
            with self.lock:
                n = self.next
                self.next += 1
            self._pull(n, rng)

    def _pull(self, n, rng):
        im = self.cat.cold(n)
        wanted = [("/v2/%s/manifests/%s" % (im.repo, im.tag),
                   {"Accept": ACCEPT_ALL}, 200, im.manifest.data)]
        for b in im.blobs():
            wanted.append(("/v2/%s/blobs/%s" % (im.repo, b.digest), None,
                           200, b.data))
        layer = rng.choice(im.layers)
        first = rng.randrange(len(layer.data))
        wanted.append(("/v2/%s/blobs/%s" % (im.repo, layer.digest),
                       {"Range": "bytes=%d-" % first}, 206,
                       layer.data[first:]))
        retried = False
        for path, headers, status, data in wanted:
            tries, err = self._get(path, headers, status, data)
            if tries > 1:
                retried = True
            if err is not None:
                with self.lock:
                    self.failed.append((n, path, err))
                return
        with self.lock:
            self.pulled.append(n)
            self.retried_pulls += retried

    def _get(self, path, headers, status, data):
        """(tries, None) once the right answer came, or (tries, the
        last error) after PULL_TRIES."""
        err = None
        for tries in range(1, PULL_TRIES + 1):
            try:
                r = request(self.mirror.hostport, "GET", path, headers,
                            timeout=90)
                if r.status == status and r.error is None \
                        and r.body == data:
                    if tries > 1:
                        with self.lock:
                            self.retried_requests += 1
                            self.max_tries = max(self.max_tries, tries)
                    return tries, None
                if r.status == status and r.error is None:
                    # a complete answer of the wrong bytes: never
                    # acceptable, not retried
                    return tries, "wrong bytes (sha256 %s)" % sha256_hex(
                        r.body)[:16]
                err = "%d %s" % (r.status, r.error or r.body[:80])
                why = "cut" if r.error is not None else str(r.status)
            except OSError as e:
                err, why = repr(e), type(e).__name__
            with self.lock:
                self.errors[why] += 1
            time.sleep(min(1.0, 0.1 * tries))
        return PULL_TRIES, err


def killed_worker_alert(line, killed):
    m = re.search(r"worker process (\d+) exited on signal 9", line)
    return m is not None and int(m[1]) in killed


def test_chaos(binaries, soak_dir):
    kills = env_number("CHAOS_KILLS", 20)
    clients = env_number("CHAOS_CLIENTS", 8)
    restart_delay = env_number("CHAOS_RESTART_DELAY", 1.0, float)
    seed = env_number("CHAOS_SEED", 1)
    rng = random.Random("chaos:%s" % seed)
    cat = Catalog()
    up = FakeRegistry()
    up.blobs, up.manifests, up.tags = cat.blobs, cat.manifests, cat.tags
    up.accept_ranges = True
    up.record = False
    up.throttle = _EveryBlob(8 * MiB)
    up.start()
    m = Mirror(soak_dir, NAME, [{"name": NAME, "endpoints": [up.url]}],
               binaries=binaries, fetcher={"low_speed_time": 3})
    killed_workers = set()
    by_target = collections.Counter()
    problems = []
    try:
        m.start()
        pullers = Pullers(m, cat, clients, seed)
        t0 = time.monotonic()
        pullers.start()
        for _ in range(kills):
            time.sleep(rng.uniform(0.3, 2.0))
            workers = soaklib.children(m.nginx.popen.pid)
            if rng.random() < 0.5 or not workers:
                m.stop_fetcher(signal.SIGKILL)
                by_target["fetcher"] += 1
                time.sleep(restart_delay)
                m.start_fetcher()
            else:
                pid = rng.choice(workers)
                os.kill(pid, signal.SIGKILL)
                killed_workers.add(pid)
                by_target["nginx worker"] += 1
        t_kills = time.monotonic() - t0
        # the pulls under way finish (each request has PULL_TRIES tries)
        left = pullers.join(240)
        assert not left, "clients still pulling: %s" % left

        print("\n=== chaos: %d kills (%s) in %.0f s, the fetcher started "
              "again %.1f s after each of its deaths\n"
              "pulls complete: %d; failed: %d; pulls that needed a retry: "
              "%d; requests retried: %d (at most %d tries); errors the "
              "clients saw: %s"
              % (kills, ", ".join("%s %d" % kv for kv in
                                  sorted(by_target.items())),
                 t_kills, restart_delay, len(pullers.pulled),
                 len(pullers.failed), pullers.retried_pulls,
                 pullers.retried_requests, pullers.max_tries,
                 dict(pullers.errors)))
        assert not pullers.failed, "pulls that never completed: %s" % \
            pullers.failed[:10]
        assert len(pullers.pulled) >= clients, "hardly any pull completed"

        # a last death, and the sweep of what it left in tmp/
        m.stop_fetcher(signal.SIGKILL)
        m.start_fetcher()
        wait_for(lambda: store_tmp_files(m) == [], 10,
                 what="store/tmp swept after a restart")
        m.wait_ready()
        assert_store_consistent(m)

        # every image pulled is served again, whole
        for n in sorted(pullers.pulled):
            im = cat.cold(n)
            r = m.get("/v2/%s/manifests/%s" % (im.repo, im.tag),
                      {"Accept": ACCEPT_ALL})
            assert r.status == 200 and r.body == im.manifest.data, r
            for b in im.blobs():
                r = m.get("/v2/%s/blobs/%s" % (im.repo, b.digest))
                assert r.status == 200 and r.error is None and \
                    r.body == b.data, r
    finally:
        problems = [p for p in m.stop()
                    if not killed_worker_alert(p, killed_workers)]
        up.stop()
    assert not problems, "\n".join(problems)
