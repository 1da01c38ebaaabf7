"""The soak: SOAK_CLIENTS (200) connections of mixed traffic for
SOAK_SECONDS (60 in `make test`, 600 in `make soak`) through the real
mirror (nginx with the module, the fetcher), while the first of its two
upstream endpoints injects faults into SOAK_FAULT_RATE (5 %) of the
requests: resets, 5xx, truncated bodies, stalls, wrong bytes.

Traffic: hits on a few hot images (blobs, manifests by tag, HEAD,
Range), cold pulls of images never asked before (manifest by tag,
config and layers, some as a Range or a HEAD; two clients in turn pull
each, the second often joining the first's download), a tag list, a
referrers list.  Tag records live 5 s, so the hot manifests are checked
upstream all along.  The store is bounded (64M), so eviction runs all
along too.

Checked at the end:
  - no client error that the second endpoint could have avoided, none
    unexplained, no complete answer with wrong bytes (soaklib.classify
    says which errors are acceptable and why);
  - the fetcher's and the nginx workers' RSS and descriptors grow less
    than 5 % from the first mark (at 60 s, or a quarter of a shorter
    run: 15 s of the 60 s one) to the end, both measured with the
    clients paused and the fetcher idle, so that in-flight work is not
    counted.  The fetcher's TCP sockets are counted apart: they are
    libcurl's cache of idle upstream connections, as many as recent
    concurrency and faults left, checked against max_transfers.  A
    burst of BURST_SECONDS of the same traffic comes before the run, so
    that the heaps start at this load's high-water mark, which a 60 s
    run would otherwise still be climbing to at 15 s (RSS levels off
    after some 30 s of this load: see the timeline in the summary);
  - every file under sha256/ hashes to its name, and no temp file
    survives a restart of the fetcher (SIGKILL, then its sweep);
  - nginx logged no [alert] or [emerg], the fetcher no sanitizer report.
It prints a summary: requests by kind, errors by cause, the faults
injected, RSS and descriptors at the mark and the end, the fetcher's
longest loop stall.
"""

import collections
import os
import signal
import time

from content import Catalog
from conftest import env_number
from fakeregistry import FakeRegistry, FaultPlan
from harness import (ACCEPT_ALL, Mirror, assert_store_consistent,
                     store_tmp_files, wait_for)
import soaklib

NAME = "soak.test"
STALL = 5                    # seconds a stalled answer stays silent
LOW_SPEED_TIME = 3           # the fetcher gives a silent transfer up
MAX_GROWTH = 0.05
BURST_SECONDS = 10
MAX_TRANSFERS = 16           # the harness's fetcher.max_transfers
# Small enough that the store is full and evicting from the first mark
# on (cold pulls bring some 8 MiB a second): the cache index is then at
# its steady size when RSS is first measured.
MAX_SIZE = "64M"


def warm_up(m, cat, deadline=120):
    """Pull the hot images, the tag list and the referrers once (with
    retries: the faults are on), so that the run starts with hits."""
    paths = []
    for im in cat.hot:
        paths.append(("/v2/%s/manifests/%s" % (im.repo, im.tag),
                      {"Accept": ACCEPT_ALL}))
        paths += [("/v2/%s/blobs/%s" % (im.repo, b.digest), None)
                  for b in im.blobs()]
    paths.append(("/v2/soak/tagged/tags/list", None))
    paths.append(("/v2/%s/referrers/%s" % (cat.subject.repo,
                                           cat.subject.manifest.digest),
                  None))
    end = time.monotonic() + deadline
    for path, headers in paths:
        wait_for(lambda: m.get(path, headers).status == 200,
                 end - time.monotonic(), interval=0.2, what="GET " + path)


def summary(soak, burst, causes, faults, first, last, stall, seconds,
            rate):
    lines = ["",
             "=== soak: %d s, %d clients, faults in %.1f %% of the first "
             "endpoint's requests" % (seconds, soak.n, rate * 100),
             "requests by kind (ok / errors):"]
    rec = soak.record
    for kind in soaklib.RECORD_KINDS:
        lines.append("  %-14s %8d / %d" % (kind, rec.ok[kind],
                                           rec.failed[kind]))
    lines.append("  %-14s %8d / %d" % ("all", sum(rec.ok.values()),
                                       sum(rec.failed.values())))
    lines.append("  keep-alive connections closed by nginx and asked "
                 "again: %d" % rec.reconnects)
    lines.append("  before the run, a burst of %d s not counted above: %d "
                 "requests, %d errors (classified below with the run's)"
                 % (BURST_SECONDS, sum(burst.record.ok.values()),
                    sum(burst.record.failed.values())))
    by_cause = collections.Counter(c for c, _ in causes)
    lines.append("errors by cause: %s" % (
        ", ".join("%s %d" % kv for kv in sorted(by_cause.items()))
        or "none"))
    lines.append("faults injected: %s" % ", ".join(
        "%s %d" % kv for kv in sorted(faults.counts.items())))
    for who in ("fetcher", "nginx workers"):
        (r0, f0), (r1, f1) = first[who], last[who]
        lines.append("%-14s RSS %d -> %d KiB (%+.1f %%), fds %d -> %d "
                     "(%+.1f %%)" % (who, r0, r1,
                                     100 * soaklib.growth(r0, r1), f0, f1,
                                     100 * soaklib.growth(f0, f1)))
    lines.append("  (first at %.0f s, end at %.0f s, clients paused and "
                 "the fetcher idle for both)" % (first["at"], last["at"]))
    lines.append("  the fetcher's descriptors: %s -> %s (its idle upstream "
                 "connections, tcp, not in the fds above: at most "
                 "max_transfers, %d)" % (first["fetcher fds"],
                                         last["fetcher fds"], MAX_TRANSFERS))
    (cpu0, wait0), (cpu1, wait1) = first["fetcher sched"], \
        last["fetcher sched"]
    lines.append("fetcher between them: %.1f s on a CPU, %.1f s ready but "
                 "waiting for one (the machine's other load)"
                 % (cpu1 - cpu0, wait1 - wait0))
    longest, (batches, over10, over50, over100) = stall
    lines.append("fetcher's longest loop stall: %.1f ms (of %d batches, "
                 "%d over 10 ms, %d over 50 ms, %d over 100 ms)"
                 % (longest * 1000, batches, over10, over50, over100))
    return "\n".join(lines)


def test_soak(binaries, soak_dir):
    seconds = env_number("SOAK_SECONDS", 60)
    clients = env_number("SOAK_CLIENTS", 200)
    rate = env_number("SOAK_FAULT_RATE", 0.05, float)
    seed = env_number("SOAK_SEED", 1)
    cat = Catalog()
    faulty, clean = FakeRegistry(), FakeRegistry()
    for f in (faulty, clean):
        f.blobs, f.manifests, f.tags = cat.blobs, cat.manifests, cat.tags
        f.accept_ranges = True
        f.record = False
    faulty.faults = FaultPlan(rate, stall=STALL, seed=seed)
    faulty.start()
    clean.start()
    m = Mirror(soak_dir, NAME,
               [{"name": NAME, "endpoints": [faulty.url, clean.url],
                 "tag_ttl": 5, "backoff": 5}],
               binaries=binaries,
               fetcher={"low_speed_time": LOW_SPEED_TIME},
               store_settings={"max_size": MAX_SIZE})
    problems = []
    try:
        m.start()
        warm_up(m, cat)
        # the same traffic for BURST_SECONDS, not counted in the run's
        # figures (its errors are checked all the same): the processes'
        # heaps reach the high-water mark of this load before the first
        # mark, which a 60 s run would otherwise still be climbing to
        burst = soaklib.Soak(m, cat, clients, BURST_SECONDS, seed + 1,
                             cold_base=10 ** 7)
        burst.start()
        left = burst.join(2 * soaklib.REQUEST_TIMEOUT)
        assert not left, "clients still running: %s" % left[:5]
        t_start = time.monotonic()
        soak = soaklib.Soak(m, cat, clients, seconds, seed)
        timeline = soaklib.Timeline(m, max(2, seconds / 60), soak.stop)
        timeline.start()
        soak.start()
        mark = min(60, seconds / 4)
        time.sleep(max(0, t_start + mark - time.monotonic()))
        first = soaklib.quiesce(soak, m)
        soak.gate.open.set()
        left = soak.join(2 * soaklib.REQUEST_TIMEOUT)
        assert not left, "clients still running: %s" % left[:5]
        last = soaklib.settle(m)
        assert last["worker pids"] == first["worker pids"], \
            "an nginx worker died during the soak"
        for s in (first, last):
            s["at"] = s["t"] - t_start
        stall = (soaklib.metrics(m)[
            "ocimirror_fetcher_loop_longest_stall_seconds"],
            soaklib.stall_counts(m))
        causes = soaklib.classify(burst.record.errors + soak.record.errors,
                                  faulty.faults.since(0))
        text = summary(soak, burst, causes, faulty.faults, first, last,
                       stall, seconds, rate)
        text += "\nthe fetcher under load: " + timeline.text()
        print(text)
        with open(os.path.join(soak_dir, "summary.txt"), "w") as f:
            f.write(text + "\n")

        with open(os.path.join(soak_dir, "errors.txt"), "w") as f:
            for c, e in causes:
                f.write("%s: %s %s at %.3f-%.3f %s\n" % (
                    c, e[0], e[1], e[2], e[3], e[4]))
        bad = [(c, e) for c, e in causes if c not in soaklib.ACCEPTABLE]
        assert not bad, "errors a client should not have seen:\n" + \
            "\n".join("%s: %s %s %s" % (c, e[0], e[1], e[4])
                      for c, e in bad[:30])
        assert sum(soak.record.ok.values()) > 0
        for kind in soaklib.RECORD_KINDS:
            assert soak.record.ok[kind] > 0, "no %s answered" % kind
        for s in (first, last):
            assert s["fetcher tcp"] <= MAX_TRANSFERS, s
        for who in ("fetcher", "nginx workers"):
            for i, what in ((0, "RSS"), (1, "descriptors")):
                g = soaklib.growth(first[who][i], last[who][i])
                assert g < MAX_GROWTH, "%s %s grew %.1f %%" % (
                    who, what, 100 * g)

        # nothing torn or unverified in the store; a killed fetcher's
        # temp files are swept by the next one
        assert_store_consistent(m)
        m.restart_fetcher(signal.SIGKILL)
        wait_for(lambda: store_tmp_files(m) == [], 10,
                 what="store/tmp swept after a restart")
        m.wait_ready()
    finally:
        problems = m.stop()
        faulty.stop()
        clean.stop()
    assert not problems, "\n".join(problems)
