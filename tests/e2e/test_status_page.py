"""The status page: /status (one self-contained HTML page) and
/status.json (its data: nginx's counters and the fetcher's STATUS).

The JSON is checked for its schema and bounds, a download that lists
while a slow upstream feeds it and is gone once stored, and a digest
mismatch in the last errors.  The page is read in a real headless
Chromium (Debian's chromium, chromium-driver and python3-selenium) while
a cold blob downloads at a bounded rate for about ten seconds: the
download is on it with a progress bar that advances between two reads,
and once it is stored and hit the page's store and traffic figures are
those of /status.json and /metrics.  A screenshot is kept under
build/test-artifacts/.  /status from another address than 127.0.0.1 is
refused by the packaged include."""

import http.client
import json
import os
import shutil
import threading
import time

import pytest

from harness import (fake_registry_entry, random_bytes, sha256_hex,
                     wait_for)
from test_metrics import scrape, value

MiB = 1024 * 1024
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
ARTIFACTS = os.path.join(ROOT, "build", "test-artifacts")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

DOWNLOAD_KEYS = {"registry", "repository", "digest", "bytes", "total",
                 "rate", "eta", "waiters", "seconds", "prefetch"}
STORE_KEYS = {"bytes", "files", "max", "high", "low", "reserved",
              "fs_free", "min_free", "loading", "evicting", "evictions"}
ENDPOINT_KEYS = {"url", "state", "fails", "requests", "failures",
                 "throttled", "rtt_ms"}
ERROR_KEYS = {"time", "status", "what", "message"}


def _status(m):
    r = m.get("/status.json")
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/json", r
    assert r.header("Cache-Control") == "no-store", r
    assert int(r.header("Content-Length")) == len(r.body), r
    return json.loads(r.body)


def _check_schema(s, m):
    n = s["nginx"]
    for k in ("hits", "misses", "sent_bytes", "stale_served"):
        assert isinstance(n[k], int) and n[k] >= 0, (k, n)
    assert n["hits"] == n["blob"]["hit"] + n["manifest"]["hit"], n
    assert n["misses"] == n["blob"]["miss"] + n["manifest"]["miss"], n
    assert s["fetcher_up"] is True, s
    f = s["fetcher"]
    assert abs(f["time"] - time.time()) < 60, f["time"]
    assert f["downloads_max"] == 50, f
    assert len(f["downloads"]) <= f["downloads_max"], f
    assert f["downloads_in_flight"] >= len(f["downloads"]), f
    for d in f["downloads"]:
        assert set(d) == DOWNLOAD_KEYS, d
        assert d["digest"].startswith("sha256:"), d
        assert 0 <= d["bytes"], d
        assert d["total"] == -1 or d["bytes"] <= d["total"], d
    assert set(f["store"]) == STORE_KEYS, f["store"]
    st = f["store"]
    assert 0 < st["low"] <= st["high"] <= st["max"], st
    assert [r["name"] for r in f["registries"]] == \
        [r["name"] for r in m.registries], f["registries"]
    for r in f["registries"]:
        assert len(r["endpoints"]) == len(m.registries[0]["endpoints"])
        for e in r["endpoints"]:
            assert set(e) == ENDPOINT_KEYS, e
            assert e["state"] in ("up", "down", "throttled"), e
    assert f["upstream_bytes"] == sum(r["upstream_bytes"]
                                      for r in f["registries"]), f
    assert f["errors_max"] == 20, f
    assert len(f["errors"]) <= f["errors_max"], f
    assert f["errors_total"] >= len(f["errors"]), f
    for e in f["errors"]:
        assert set(e) == ERROR_KEYS, e


def _slow_blob(fake, seed, size, rate):
    data = random_bytes(seed, size)
    digest = fake.add_blob(data)
    fake.throttle[digest] = rate
    return data, digest


def _pull_in_background(m, digest):
    """GET the blob in a thread: (thread, result dict)."""
    got = {}

    def pull():
        got["r"] = m.get("/v2/team/app/blobs/" + digest, timeout=120)

    t = threading.Thread(target=pull, daemon=True)
    t.start()
    return t, got


def _download(s, digest):
    for d in s["fetcher"]["downloads"]:
        if d["digest"] == digest:
            return d
    return None


def _mirror(mirror_factory, fake):
    return mirror_factory(fake.hostport, [fake_registry_entry(fake)],
                          fetch_timeout="60s")


def test_status_json(mirror_factory, fake_upstream):
    size = 4 * MiB
    data, digest = _slow_blob(fake_upstream, "status-json", size, 1 * MiB)
    m = _mirror(mirror_factory, fake_upstream)

    s = _status(m)
    _check_schema(s, m)
    assert s["fetcher"]["downloads"] == [], s
    assert s["nginx"]["hits"] == 0 and s["nginx"]["misses"] == 0, s

    t, got = _pull_in_background(m, digest)
    seen = []

    def listed():
        s = _status(m)
        d = _download(s, digest)
        if d is not None and d["bytes"] > 0:
            seen.append((s, d))
            return True
        return False

    wait_for(listed, 10, interval=0.2, what="the download on the status")
    s, d = seen[-1]
    _check_schema(s, m)
    assert d["registry"] == fake_upstream.hostport, d
    assert d["repository"] == "team/app", d
    assert d["total"] == size, d
    assert 0 < d["bytes"] < size, d
    assert d["waiters"] == 1 and d["prefetch"] is False, d
    assert d["rate"] > 0 and d["eta"] is not None and d["eta"] > 0, d
    assert s["fetcher"]["downloads_in_flight"] == 1, s

    t.join(60)
    assert not t.is_alive(), "the pull did not end"
    r = got["r"]
    assert r.status == 200 and sha256_hex(r.body) == digest[7:], r
    wait_for(lambda: m.has_blob(digest), 10, what="the blob stored")

    # the finished download is gone; the store and the counters have it
    def gone():
        return _download(_status(m), digest) is None
    wait_for(gone, 10, what="the download gone from the status")
    r = m.get("/v2/team/app/blobs/" + digest)
    assert r.status == 200 and r.body == data, r
    s = _status(m)
    _check_schema(s, m)
    assert s["fetcher"]["downloads"] == [], s
    assert s["fetcher"]["store"]["bytes"] >= size, s
    assert s["fetcher"]["upstream_bytes"] == size, s
    assert s["nginx"]["blob"] == {"hit": 1, "miss": 1}, s
    assert s["nginx"]["sent_bytes"] == 2 * size, s

    # a digest mismatch: the client fails, the error is listed first
    bad = random_bytes("status-bad", 1000)
    bad_digest = fake_upstream.add_blob(bad)
    fake_upstream.corrupt[bad_digest] = random_bytes("status-other", 1000)
    r = m.get("/v2/team/app/blobs/" + bad_digest)
    # a 502, or a 200 whose stream was cut (it had begun)
    assert r.status >= 500 or (r.status == 200 and r.body != bad), r
    assert not m.has_blob(bad_digest)
    s = _status(m)
    _check_schema(s, m)
    errors = s["fetcher"]["errors"]
    assert errors, s
    e = errors[0]
    assert e["status"] == 502 and e["message"] == "digest mismatch", e
    assert bad_digest in e["what"] and "team/app" in e["what"], e
    assert s["fetcher"]["errors_total"] == len(errors), s

    # the fetcher gone: nginx still answers, with its own counters
    m.stop_fetcher()
    r = m.get("/status.json")
    assert r.status == 200, r
    s = json.loads(r.body)
    assert s["fetcher_up"] is False and s["fetcher"] is None, s
    assert s["nginx"]["blob"]["hit"] == 1, s


def test_status_page_is_self_contained(mirror_factory, fake_upstream):
    m = _mirror(mirror_factory, fake_upstream)
    r = m.get("/status")
    assert r.status == 200, r
    assert r.header("Content-Type") == "text/html; charset=utf-8", r
    assert r.header("Cache-Control") == "no-store", r
    csp = r.header("Content-Security-Policy")
    assert csp.startswith("default-src 'none';"), csp
    html = r.body.decode()
    assert html.startswith("<!DOCTYPE html>"), html[:40]
    for needle in ("src=", "href=", "http://", "https://", "@import",
                   "url("):
        assert needle not in html, "the page loads something: " + needle
    assert int(r.header("Content-Length")) == len(r.body), r
    r = m.request("POST", "/status.json")
    assert r.status == 405, r


def _get_from(hostport, source, path):
    host, port = hostport.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10,
                                   source_address=(source, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def test_status_refused_off_loopback(mirror_factory, fake_upstream):
    """The include allows 127.0.0.1 and ::1 only: a client at 127.0.0.2
    (another address, still on the loopback interface) is refused, as for
    /metrics, while /v2/ answers it."""
    m = _mirror(mirror_factory, fake_upstream)
    for path in ("/status", "/status.json", "/metrics"):
        assert _get_from(m.hostport, "127.0.0.1", path) == 200, path
        assert _get_from(m.hostport, "127.0.0.2", path) == 403, path
    assert _get_from(m.hostport, "127.0.0.2", "/v2/") == 200


# --- the page in a browser ---------------------------------------------

def _browser(tmp_path):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("python3-selenium")
    if missing:
        pytest.skip("the browser test needs %s (scripts/install-deps.sh)"
                    % ", ".join(missing))
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--user-data-dir=%s" % profile,
                 "--window-size=1280,1100",
                 # nothing but the mirror: no Google services, no name
                 # resolves but loopback's
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions",
                 "--disable-domain-reliability", "--no-pings",
                 "--disable-client-side-phishing-detection",
                 "--host-resolver-rules=MAP * ~NOTFOUND, "
                 "EXCLUDE 127.0.0.1"):
        opts.add_argument(flag)
    service = Service(CHROMEDRIVER,
                      log_output=str(tmp_path / "chromedriver.log"))
    return webdriver.Chrome(service=service, options=opts)


def _page(driver):
    """What the page shows now (read in one script run)."""
    return driver.execute_script("""
        var out = {downloads: [], figures: {}}, i, rows, b;
        rows = document.querySelectorAll("#downloads tr.download");
        for (i = 0; i < rows.length; i++) {
          b = rows[i].querySelector("progress");
          out.downloads.push({digest: rows[i].getAttribute("data-digest"),
                              value: b.value, max: b.max,
                              text: rows[i].textContent});
        }
        ["store-bytes", "store-max", "store-high", "store-low",
         "store-files", "hits", "misses", "sent-bytes", "upstream-bytes",
         "saved-bytes", "hit-ratio"].forEach(function (id) {
          out.figures[id] = document.getElementById(id)
                                    .getAttribute("data-value");
        });
        out.fetcher = document.getElementById("fetcher-state").textContent;
        out.endpoints = document.querySelectorAll("#endpoints tr").length;
        return out;""")


def test_status_page_in_chromium(mirror_factory, fake_upstream, tmp_path):
    # about ten seconds of download: the page is read while it runs
    size = 8 * MiB
    data, digest = _slow_blob(fake_upstream, "status-page", size,
                              800 * 1024)
    m = _mirror(mirror_factory, fake_upstream)
    driver = _browser(tmp_path)
    try:
        t0 = time.monotonic()
        driver.get("http://%s/status" % m.hostport)
        wait_for(lambda: _page(driver)["fetcher"] == "up", 10,
                 what="the page's first refresh")

        t, got = _pull_in_background(m, digest)
        reads = []

        def shown():
            p = _page(driver)
            rows = [d for d in p["downloads"] if d["digest"] == digest]
            if rows and rows[0]["value"] > 0:
                reads.append(rows[0])
                return True
            return False

        wait_for(shown, 10, interval=0.2, what="the download on the page")
        first = reads[-1]
        assert first["max"] == size, first
        assert digest[7:19] in first["text"], first
        assert "team/app" in first["text"], first

        # the bar advances: read again after two refreshes
        time.sleep(2.5)
        assert shown(), "the download left the page too early"
        second = reads[-1]
        assert first["value"] < second["value"] < size, (first, second)

        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "status-page-downloading.png")
        assert driver.save_screenshot(shot), shot
        print("\nstatus page screenshot (download in flight): " + shot)

        t.join(60)
        assert not t.is_alive(), "the pull did not end"
        assert got["r"].status == 200 and got["r"].body == data, got["r"]
        r = m.get("/v2/team/app/blobs/" + digest)     # a hit
        assert r.status == 200 and r.body == data, r

        # idle now: the page's figures are the JSON's and /metrics'
        def settled():
            p = _page(driver)
            s = _status(m)
            return (not p["downloads"]
                    and p["figures"]["hits"] == str(s["nginx"]["hits"])
                    and p["figures"]["store-bytes"]
                    == str(s["fetcher"]["store"]["bytes"]))
        wait_for(settled, 10, interval=0.2, what="the page settled")
        p = _page(driver)
        s = _status(m)
        f, st, n = p["figures"], s["fetcher"]["store"], s["nginx"]
        assert f["store-bytes"] == str(st["bytes"]), (f, st)
        assert f["store-max"] == str(st["max"]), (f, st)
        assert f["store-high"] == str(st["high"]), (f, st)
        assert f["store-low"] == str(st["low"]), (f, st)
        assert f["store-files"] == str(st["files"]), (f, st)
        assert f["hits"] == str(n["hits"]) == "1", (f, n)
        assert f["misses"] == str(n["misses"]) == "1", (f, n)
        assert f["hit-ratio"] == "0.5000", f
        assert f["sent-bytes"] == str(n["sent_bytes"]) == str(2 * size), f
        assert f["upstream-bytes"] == str(size), f
        assert f["saved-bytes"] == str(size), f
        assert p["endpoints"] == 1, p

        mx = scrape(m)
        assert value(mx, "ocimirror_fetcher_store_bytes") == st["bytes"]
        assert value(mx, "ocimirror_fetcher_store_max_bytes") == st["max"]
        assert value(mx, "ocimirror_fetcher_store_high_watermark_bytes") \
            == st["high"]
        assert value(mx, "ocimirror_requests_total", endpoint="blob",
                     outcome="hit") == 1
        assert value(mx, "ocimirror_requests_total", endpoint="blob",
                     outcome="miss") == 1
        assert value(mx, "ocimirror_sent_bytes_total") == 2 * size
        assert value(mx, "ocimirror_fetcher_upstream_bytes_total",
                     registry=fake_upstream.hostport) == size

        shot = os.path.join(ARTIFACTS, "status-page-idle.png")
        assert driver.save_screenshot(shot), shot
        print("status page screenshot (stored and hit): " + shot)
        print("status page test: %.1f s" % (time.monotonic() - t0))
    finally:
        driver.quit()
        shutil.rmtree(str(tmp_path / "chromium-profile"),
                      ignore_errors=True)
