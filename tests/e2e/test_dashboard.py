"""The Grafana dashboard (conf/grafana/ocimirror-dashboard.json) and the
Prometheus alerting rules (conf/prometheus/ocimirror-alerts.yml) against
the mirror itself.

- The dashboard loads as Grafana imports it: a ${DS_PROMETHEUS} input,
  every panel with that datasource and at least one query.
- Every metric name in every dashboard query, template variable and rule
  expression is one a running mirror exports after a few pulls, with the
  labels its matchers and groupings name and the label values its
  literal matchers ask for (PromQL parsed enough for that: selectors,
  functions, aggregations and their by/without, on/ignoring lists).
- `promtool check rules` passes; every rule has for:, a severity label,
  a summary and a description; `promtool test rules` passes on
  ocimirror-alerts.test.yml, which has for every alert a series that
  fires it and one that does not.
- A real Prometheus scrapes the mirror with the rules loaded: every
  dashboard query answers with data, every rule evaluates without an
  error, none fires on the healthy mirror, and OcimirrorFetcherDown
  becomes pending once the fetcher is stopped.
"""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse

import yaml

from harness import (REPO_ROOT, Process, fake_registry_entry, free_port,
                     request, skopeo_copy, tail, wait_for)

DASHBOARD = os.path.join(REPO_ROOT, "conf", "grafana",
                         "ocimirror-dashboard.json")
RULES = os.path.join(REPO_ROOT, "conf", "prometheus", "ocimirror-alerts.yml")
RULES_TEST = os.path.join(REPO_ROOT, "conf", "prometheus",
                          "ocimirror-alerts.test.yml")
PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
DS = "${DS_PROMETHEUS}"
SEVERITIES = ("critical", "warning", "info")
# labels Prometheus adds to every scraped series
TARGET_LABELS = {"instance", "job"}
# series Prometheus makes of each scrape itself, not the mirror's
SCRAPE_SERIES = {"up"}

# --- PromQL, parsed enough to find the selectors --------------------------

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "day_of_month", "day_of_week", "day_of_year",
    "days_in_month", "delta", "deriv", "exp", "floor", "histogram_count",
    "histogram_fraction", "histogram_quantile", "histogram_sum",
    "holt_winters",
    "hour", "idelta", "increase", "irate", "label_join", "label_replace",
    "ln", "log10", "log2", "minute", "month", "predict_linear", "rate",
    "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time",
    "timestamp", "vector", "year", "avg_over_time", "min_over_time",
    "max_over_time", "sum_over_time", "count_over_time",
    "quantile_over_time", "stddev_over_time", "stdvar_over_time",
    "last_over_time", "present_over_time"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar",
                "count", "count_values", "bottomk", "topk", "quantile"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left",
               "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2"}

TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
  | (?P<num>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[a-zA-Z]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){}\[\],])
)""", re.X)


def tokens(expr):
    out, pos = [], 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        assert m and m.end() > pos, "cannot read %r at %d: %r" % (
            expr, pos, expr[pos:pos + 20])
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def selectors(expr):
    """([(metric, [(label, op, value)])], [grouping label lists]) of a
    PromQL expression; a label value is None where it is a variable."""
    toks = tokens(expr)
    sels, groupings, i = [], [], 0

    def peek(k):
        return toks[k] if k < len(toks) else (None, None)

    def closing(k, op):
        """The index of the first op at or after k (each loop below ends
        there, on a list of tokens it does not grow)."""
        for j in range(k, len(toks)):
            if toks[j] == ("op", op):
                return j
        raise AssertionError("no %r in %r" % (op, expr))

    while i < len(toks):
        kind, text = toks[i]
        if kind == "ident" and text in LABEL_LISTS \
                and peek(i + 1) == ("op", "("):
            end = closing(i + 2, ")")
            labels = []
            for k, t in toks[i + 2:end]:
                assert (k, t) in (("ident", t), ("op", ",")), (expr, t)
                if k == "ident":
                    labels.append(t)
            groupings.append(labels)
            i = end + 1
        elif kind == "ident" and peek(i + 1) == ("op", "("):
            assert text in FUNCTIONS or text in AGGREGATIONS, \
                "not a PromQL function: %s in %r" % (text, expr)
            i += 1
        elif kind == "ident" and text in KEYWORDS | AGGREGATIONS \
                | LABEL_LISTS:
            i += 1              # sum by (x) (...), a and b, group_left
        elif kind == "ident":
            matchers, i = [], i + 1
            if peek(i) == ("op", "{"):
                end = closing(i + 1, "}")
                i += 1
                while i < end:
                    assert i + 3 <= end, "bad matcher in %r" % expr
                    (k1, label), (k2, op), (k3, value) = toks[i:i + 3]
                    assert k1 == "ident" and k2 == "op" \
                        and op in ("=", "!=", "=~", "!~") and k3 == "str", \
                        "bad matcher in %r" % expr
                    literal = value[1:-1]
                    matchers.append((label, op, None if "$" in literal
                                     else literal))
                    i += 3
                    if i < end:
                        assert toks[i] == ("op", ","), expr
                        i += 1
                i = end + 1
            sels.append((text, matchers))
        elif (kind, text) == ("op", "{"):
            raise AssertionError("a selector without a metric name: %r"
                                 % expr)
        elif (kind, text) == ("op", "["):
            i = closing(i, "]") + 1     # a range: 5m, $__rate_interval
        else:
            i += 1
    return sels, groupings


def test_selectors_parse():
    """The parser the name checks rest on, on the shapes they use."""
    sels, groups = selectors(
        'sum by (instance, le) (rate(a_bucket{le="0.1",x=~"$v"}[5m])) '
        '/ on (instance) group_left b_total{job="j"} > 0.5 '
        'or histogram_quantile(0.99, c) and d')
    assert sels == [("a_bucket", [("le", "=", "0.1"), ("x", "=~", None)]),
                    ("b_total", [("job", "=", "j")]), ("c", []),
                    ("d", [])], sels
    assert groups == [["instance", "le"], ["instance"]], groups
    assert selectors("up == 0")[0] == [("up", [])]
    for bad in ('rated(x[5m])', '{__name__="x"}', 'sum by (a (x)',
                'x{a="1"', 'rate(x[5m)', 'x{a}'):
        try:
            selectors(bad)
        except AssertionError:
            continue
        raise AssertionError("parsed: " + bad)


# --- the files ------------------------------------------------------------

def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def rules():
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    out = [r for g in doc["groups"] for r in g["rules"]]
    assert out, "no rules in " + RULES
    return out


def leaf_panels(d):
    out = []
    for p in d["panels"]:
        out += p.get("panels", []) if p["type"] == "row" else [p]
    return out


def dashboard_queries(d):
    """[(where, expr)] of every panel target."""
    return [("panel %r" % p["title"], t["expr"])
            for p in leaf_panels(d) for t in p["targets"]]


def variable_queries(d):
    """[(name, metric selector, label)] of the label_values() variables."""
    out = []
    for v in d["templating"]["list"]:
        assert v["type"] == "query", v["name"]
        q = v["query"]["query"] if isinstance(v["query"], dict) \
            else v["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q)
        assert m, "variable %s: %r" % (v["name"], q)
        out.append((v["name"], m.group(1), m.group(2)))
    return out


def test_dashboard_loads():
    d = dashboard()
    inputs = {i["name"]: i for i in d["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["type"] == "datasource"
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    assert d["uid"] and d["title"] and d["id"] is None
    # Grafana 9 and 10 import schema 36 and later without a migration
    # they would do on their own
    assert 36 <= d["schemaVersion"] <= 39, d["schemaVersion"]
    panels = leaf_panels(d)
    assert len(panels) >= 20, len(panels)
    ids = [p["id"] for p in d["panels"]] + [
        p["id"] for r in d["panels"] for p in r.get("panels", [])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for p in panels:
        assert p["type"] in ("timeseries", "stat"), p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": DS}, \
            p["title"]
        assert p["targets"], "no query: " + p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
            assert t["expr"].strip(), "empty query: " + p["title"]
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, \
            p["title"]
    for v in d["templating"]["list"]:
        assert v["datasource"] == {"type": "prometheus", "uid": DS}, \
            v["name"]
    # what the issue asks the dashboard to show, by the metric that shows
    # it
    used = {s for _, e in dashboard_queries(d) for s, _ in selectors(e)[0]}
    for metric in ("ocimirror_requests_total", "ocimirror_sent_bytes_total",
                   "ocimirror_fetcher_upstream_bytes_total",
                   "ocimirror_fetcher_jobs",
                   "ocimirror_fetcher_store_bytes",
                   "ocimirror_fetcher_store_max_bytes",
                   "ocimirror_fetcher_store_high_watermark_bytes",
                   "ocimirror_fetcher_store_low_watermark_bytes",
                   "ocimirror_fetcher_store_evictions_total",
                   "ocimirror_fetcher_endpoint_failures_total",
                   "ocimirror_fetcher_endpoint_throttled_total",
                   "ocimirror_fetcher_digest_mismatches_total",
                   "ocimirror_stale_served_total",
                   "ocimirror_fetcher_stale_served_total",
                   "ocimirror_fetcher_up",
                   "ocimirror_fetcher_loop_stall_seconds_bucket",
                   "ocimirror_cluster_forwarded_total"):
        assert metric in used, "the dashboard does not show " + metric


def test_rules_promtool():
    rs = rules()
    alerts = [r["alert"] for r in rs]
    assert len(alerts) == len(set(alerts)) == len(rs), alerts
    for r in rs:
        assert "for" in r, r["alert"] + " has no for:"
        assert r["labels"]["severity"] in SEVERITIES, r["alert"]
        assert r["annotations"]["summary"].strip(), r["alert"]
        assert r["annotations"]["description"].strip(), r["alert"]
    # what the issue asks an alert for, by the metric that tells it
    used = {s for r in rs for s, _ in selectors(r["expr"])[0]}
    for metric in ("up", "ocimirror_fetcher_up",
                   "ocimirror_fetcher_store_high_watermark_bytes",
                   "ocimirror_requests_total",
                   "ocimirror_fetcher_endpoint_failures_total",
                   "ocimirror_fetcher_endpoint_throttled_total",
                   "ocimirror_fetcher_digest_mismatches_total",
                   "ocimirror_stale_served_total"):
        assert metric in used, "no rule on " + metric

    p = subprocess.run([PROMTOOL, "check", "rules", RULES],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS: %d rules found" % len(rs) in p.stdout, p.stdout

    # every alert has its test: one eval_time where it fires for a
    # series, while another instance's series leave it silent
    with open(RULES_TEST) as f:
        doc = yaml.safe_load(f)
    assert doc["rule_files"] == [os.path.basename(RULES)], doc["rule_files"]
    tested = set()
    for t in doc["tests"]:
        instances = {re.search(r'instance="([^"]*)"', s["series"]).group(1)
                     for s in t["input_series"]}
        for case in t["alert_rule_test"]:
            firing = {a["exp_labels"]["instance"] for a in case["exp_alerts"]}
            if firing and instances - firing:
                tested.add(case["alertname"])
    assert tested == set(alerts), set(alerts) - tested

    # promtool reads the rule file next to the test file
    t0 = time.monotonic()
    p = subprocess.run([PROMTOOL, "test", "rules",
                        os.path.basename(RULES_TEST)],
                       cwd=os.path.dirname(RULES_TEST),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout and "FAILED" not in p.stdout, p.stdout
    print("promtool test rules: %d alerts in %.1f s"
          % (len(alerts), time.monotonic() - t0))


# --- against a mirror ------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def exported(text):
    """{sample name: {label: {values}}} of a /metrics answer."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = SAMPLE.match(line)
        assert m, line
        labels = out.setdefault(m.group(1), {})
        for lm in LABEL.finditer(m.group(2) or ""):
            labels.setdefault(lm.group(1), set()).add(lm.group(2))
    return out


def check_selector(where, expr, metric, matchers, metrics):
    if metric in SCRAPE_SERIES:
        assert all(label in TARGET_LABELS for label, _, _ in matchers), \
            (where, expr)
        return
    assert metric in metrics, "%s: %s is not exported (%s)" % (
        where, metric, expr)
    have = metrics[metric]
    for label, op, value in matchers:
        if label in TARGET_LABELS:
            continue
        assert label in have, "%s: %s has no label %s" % (where, metric,
                                                          label)
        if value is None:
            continue
        if op == "=":
            assert value in have[label], "%s: %s{%s=%r} not among %s" % (
                where, metric, label, value, sorted(have[label]))
        elif op == "=~":
            assert any(re.fullmatch(value, v) for v in have[label]), \
                "%s: %s{%s=~%r} matches none of %s" % (
                    where, metric, label, value, sorted(have[label]))


def check_expr(where, expr, metrics):
    sels, groupings = selectors(expr)
    assert sels, "%s: no metric in %r" % (where, expr)
    for metric, matchers in sels:
        check_selector(where, expr, metric, matchers, metrics)
    # a grouping label is one some selected metric has
    have = TARGET_LABELS.union(*(metrics.get(m, {}).keys()
                                 for m, _ in sels))
    for labels in groupings:
        for label in labels:
            assert label in have, "%s: no metric of %r has label %s" % (
                where, expr, label)


def busy_mirror(mirror_factory, fake_upstream, catalog, tmp_path, pulls=2):
    """A mirror of a fake upstream that sends Docker Hub's RateLimit
    headers, after `pulls` pulls of one image with skopeo (the first
    misses, the others hit)."""
    fake_upstream.add_image("team/app", "v1", catalog["multi"])
    fake_upstream.headers = {"RateLimit-Limit": "100;w=21600",
                             "RateLimit-Remaining": "76;w=21600"}
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)])
    for i in range(pulls):
        pull(m, tmp_path, i)
    return m


def pull(m, tmp_path, i):
    p = skopeo_copy("docker://%s/team/app:v1" % m.hostport,
                    "dir:" + str(tmp_path / ("pull%d" % i)))
    assert p.returncode == 0, p.stderr


def test_queries_name_exported_metrics(mirror_factory, fake_upstream,
                                       catalog, tmp_path):
    m = busy_mirror(mirror_factory, fake_upstream, catalog, tmp_path)
    r = m.get("/metrics")
    assert r.status == 200, r
    metrics = exported(r.body.decode())
    assert metrics["ocimirror_requests_total"]["outcome"] >= {"hit", "miss"}

    d = dashboard()
    queries = dashboard_queries(d)
    for where, expr in queries:
        check_expr(where, expr, metrics)
    for name, selector, label in variable_queries(d):
        (metric, matchers), = selectors(selector)[0]
        check_selector("variable " + name, selector, metric, matchers,
                       metrics)
        assert label in TARGET_LABELS or label in metrics[metric], \
            (name, label)
    rs = rules()
    for r in rs:
        check_expr("alert " + r["alert"], r["expr"], metrics)
    print("%d dashboard queries, %d variables, %d rules: every metric "
          "exported" % (len(queries), len(variable_queries(d)), len(rs)))


class Prometheus:
    """A real Prometheus on loopback that scrapes one mirror every second
    as job "ocimirror", with the rules of conf/ loaded."""

    def __init__(self, workdir, target):
        self.dir = workdir
        self.port = free_port()
        self.hostport = "127.0.0.1:%d" % self.port
        rules_copy = os.path.join(workdir, "ocimirror-alerts.yml")
        shutil.copy(RULES, rules_copy)
        self.config = os.path.join(workdir, "prometheus.yml")
        with open(self.config, "w") as f:
            yaml.safe_dump({
                "global": {"scrape_interval": "1s",
                           "evaluation_interval": "1s"},
                "rule_files": [rules_copy],
                "scrape_configs": [{
                    "job_name": "ocimirror",
                    "static_configs": [{"targets": [target]}]}]}, f)
        self.log = os.path.join(workdir, "prometheus.log")
        self.proc = Process("prometheus", [
            PROMETHEUS, "--config.file=" + self.config,
            "--storage.tsdb.path=" + os.path.join(workdir, "data"),
            "--web.listen-address=" + self.hostport,
            "--log.level=warn"], self.log)

    def start(self):
        self.proc.start()

        def ready():
            if not self.proc.alive():
                raise AssertionError("prometheus exited:\n" + tail(self.log))
            try:
                return request(self.hostport, "GET", "/-/ready",
                               timeout=2).status == 200
            except OSError:
                return False
        wait_for(ready, 30, interval=0.2, what="prometheus /-/ready")
        return self

    def stop(self):
        self.proc.stop()

    def api(self, path, **params):
        q = urllib.parse.urlencode(params)
        r = request(self.hostport, "GET",
                    "/api/v1/" + path + ("?" + q if q else ""), timeout=10)
        doc = r.json()
        assert r.status == 200 and doc["status"] == "success", (path,
                                                                params, doc)
        return doc["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def samples(self, expr):
        """The value of a query of one series (0 if it has none)."""
        r = self.query(expr)
        return float(r[0]["value"][1]) if r else 0


def grafana_vars(expr):
    """The expression as Grafana sends it with every instance and registry
    chosen, a 15-second rate interval and a 1-minute range."""
    for var, value in (("$__rate_interval", "15s"), ("$__range", "1m"),
                       ("$instance", ".+"), ("$registry", ".+")):
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


def test_real_prometheus(mirror_factory, fake_upstream, catalog, tmp_path):
    m = busy_mirror(mirror_factory, fake_upstream, catalog, tmp_path,
                    pulls=1)
    work = tmp_path / "prometheus"
    work.mkdir()
    prom = Prometheus(str(work), m.hostport).start()
    try:
        points = 'count_over_time(ocimirror_fetcher_up{job="ocimirror"}[1m])'
        wait_for(lambda: prom.samples(points) >= 3, 30, interval=0.5,
                 what="three scrapes of the mirror")
        # a pull the scrapes see: hits now, the first pull's misses before
        t0 = time.monotonic()
        pull(m, tmp_path, 1)
        wait_for(lambda: prom.samples(points) >= 3 + 3, 30, interval=0.5,
                 what="three more scrapes")
        print("pull %.1f s" % (time.monotonic() - t0))

        # every dashboard query answers, with data
        d = dashboard()
        for where, expr in dashboard_queries(d):
            res = prom.query(grafana_vars(expr))
            assert res, "%s: no data for %s" % (where, grafana_vars(expr))
        stat = {p["title"]: p["targets"][0]["expr"] for p in leaf_panels(d)}
        up = prom.query(grafana_vars(stat["Fetcher up"]))
        assert float(up[0]["value"][1]) == 1, up
        ratio = float(prom.query(grafana_vars(
            stat["Blob hit ratio"]))[0]["value"][1])
        assert 0 < ratio <= 1, ratio
        for name, selector, label in variable_queries(d):
            values = prom.api("label/%s/values" % label,
                              **{"match[]": grafana_vars(selector)})
            assert values, (name, selector)

        # every rule evaluated without an error; none fires on a healthy
        # mirror
        n_rules = len(rules())

        def evaluated():
            got = [r for g in prom.api("rules")["groups"]
                   for r in g["rules"]]
            assert len(got) == n_rules, [r["name"] for r in got]
            for r in got:
                assert r["health"] in ("ok", "unknown"), r
            return all(r["health"] == "ok" for r in got)
        wait_for(evaluated, 20, interval=0.5, what="every rule evaluated")

        def alert_names():
            # a batch of the fetcher's loop over 100 ms (a loaded machine,
            # the sanitizer build) is what OcimirrorFetcherLoopStalls
            # tells: it is let be only if the fetcher had one
            names = {a["labels"]["alertname"]
                     for a in prom.api("alerts")["alerts"]}
            if prom.samples("max(max_over_time("
                            "ocimirror_fetcher_loop_longest_stall_seconds"
                            "[5m]))") > 0.1:
                names.discard("OcimirrorFetcherLoopStalls")
            return names
        assert alert_names() == set()

        # the fetcher stopped: nginx says so, the alert goes pending (its
        # for: is 2 minutes)
        m.stop_fetcher()

        def pending():
            return [a for a in prom.api("alerts")["alerts"]
                    if a["labels"]["alertname"] == "OcimirrorFetcherDown"]
        alerts = wait_for(pending, 30, interval=0.5,
                          what="OcimirrorFetcherDown pending")
        assert len(alerts) == 1, alerts
        a = alerts[0]
        assert a["state"] == "pending", a
        assert a["labels"]["instance"] == m.hostport, a
        assert a["labels"]["severity"] == "critical", a
        assert m.hostport in a["annotations"]["summary"], a
        assert alert_names() == {"OcimirrorFetcherDown"}
    finally:
        prom.stop()
    with open(prom.log) as f:
        log = f.read()
    assert "level=error" not in log, tail(prom.log)
