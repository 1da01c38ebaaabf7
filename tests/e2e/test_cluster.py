"""A regional cluster of mirror nodes (issue 12): three (or four) nodes on
127.0.0.2, .3, .4 (.5), each its own nginx, fetcher and store, with one
peers list and one secret file, all in front of the same docker-registry.

The owner of a blob or a manifest by digest is the peer nginx's `hash
$key consistent` picks for the digest; of a tag, for
"<registry>/<name>:<tag>".  harness.ketama_ring is that ring in Python
(checked against nginx's choice through the nodes' own access logs in
test_fourth_node_moves_a_quarter_of_the_keys), so the tests know which
node must hold what.  Upstream bytes are the sizes the docker-registry's
access log gives for its answers."""

import concurrent.futures
import hashlib
import os
import random
import re
import subprocess
import threading
import time

import pytest

import harness
import images
from harness import (ACCEPT_ALL, Mirror, nginx_t, oci_layout_digests,
                     read_text, skopeo_copy, store_tmp_files,
                     upstream_registry, wait_for)

# serial (conftest.py): the nodes share 127.0.0.2-.5, and the tests bound
# the time of a round (tag_ttl) and count the upstream's bytes while
# downloads race a kill
pytestmark = pytest.mark.serial

PEER_HEADER = "X-Ocimirror-Peer"
MIB = 1024 * 1024


# --- what the tests share --------------------------------------------------

@pytest.fixture(scope="module")
def cimages(upstream, tmp_path_factory):
    """The two 10-layer images (images.build_cluster_images), pushed to
    the upstream as e2e/cluster-a:v1 and e2e/cluster-b:v1."""
    out = images.build_cluster_images()
    root = tmp_path_factory.mktemp("cluster-layouts")
    for name, image in out.items():
        layout = images.write_layout(str(root / name), "v1", image)
        images.skopeo_push(layout, "v1", upstream.hostport,
                           "e2e/cluster-" + name)
    return out


def image_bytes(image):
    """What a pull of the image moves: manifest, config and layers."""
    return sum(b.size for b in image.blobs())


def tag_key(upstream, name, tag="v1"):
    """The ring key of a tag: <registry>/<name>:<tag>."""
    return "%s/%s:%s" % (upstream.hostport, name, tag)


def upstream_bytes(upstream, mark, name=None):
    """Body bytes the upstream sent for blobs and manifests (of
    repository name, or of any) since mark: its GETs' (docker-registry
    logs a HEAD with the size of the body it did not send); the access
    log settled first."""
    upstream.access.settle(quiet=0.3)
    repo = re.escape(name) if name else r"[^ ]+"
    return upstream.access.sent_bytes(
        "GET", r"^/v2/%s/(blobs|manifests)/" % repo, mark)


def upstream_gets(upstream, mark, image, name):
    """{digest: upstream GETs since mark} of the image's config and
    layers, and the manifest GETs by tag (key "tag")."""
    out = {b.digest: upstream.access.count(
        "GET", r"^/v2/%s/blobs/%s$" % (re.escape(name), b.digest), mark)
        for b in image.layer_blobs()}
    out["tag"] = upstream.access.count(
        "GET", r"^/v2/%s/manifests/v1$" % re.escape(name), mark)
    return out


def pull(node, name, dest, tag="v1"):
    """skopeo copy of name:tag through node into an OCI layout."""
    return skopeo_copy("docker://%s/%s:%s" % (node.hostport, name, tag),
                       "oci:%s:%s" % (dest, tag), timeout=120)


def assert_pulled(p, dest, image, cluster):
    assert p.returncode == 0, p.stderr[-2000:] + cluster.diagnostics()
    top, blobs = oci_layout_digests(str(dest))
    assert top == image.manifest.digest
    assert blobs == {b.digest for b in image.blobs()}


def metrics(node):
    """{name: sum of the samples of that name, all labels} of a node's
    /metrics."""
    r = node.get("/metrics", timeout=10)
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        name = name.split("{", 1)[0]
        out[name] = out.get(name, 0) + float(value)
    return out


CLUSTER_METRICS = ("ocimirror_cluster_forwarded_total",
                   "ocimirror_cluster_peer_requests_total",
                   "ocimirror_cluster_peer_refused_total",
                   "ocimirror_cluster_list_mismatch_total")


def cluster_metrics(cluster):
    """[{metric: value}] per node, the four cluster counters (each must
    be there)."""
    out = []
    for i, node in enumerate(cluster.nodes):
        m = metrics(node)
        missing = [k for k in CLUSTER_METRICS if k not in m]
        assert not missing, "node %d /metrics lacks %s" % (i + 1, missing)
        out.append({k: int(m[k]) for k in CLUSTER_METRICS})
    return out


def assert_no_loops(before, after):
    """Every request a node forwarded arrived once as a peer request; no
    peer header was refused and no list differed."""
    d = [{k: a[k] - b[k] for k in a} for a, b in zip(after, before)]
    fwd = sum(x["ocimirror_cluster_forwarded_total"] for x in d)
    peer = sum(x["ocimirror_cluster_peer_requests_total"] for x in d)
    assert fwd == peer, d
    assert all(x["ocimirror_cluster_peer_refused_total"] == 0 for x in d), d
    assert all(x["ocimirror_cluster_list_mismatch_total"] == 0
               for x in d), d
    return d


def holders(cluster, digest):
    return [i for i, n in enumerate(cluster.nodes) if n.has_blob(digest)]


def tag_holders(cluster, upstream, name, tag="v1"):
    return [i for i, n in enumerate(cluster.nodes)
            if os.path.exists(os.path.join(n.store, "tags",
                                           upstream.hostport, name,
                                           "@" + tag))]


def expected_holders(cluster, upstream, image, name):
    """{digest: [index of the node that must store it]}: the config and
    layers on their digest's owner, the manifest on its tag's owner."""
    out = {b.digest: [cluster.owner(b.digest)] for b in image.layer_blobs()}
    out[image.manifest.digest] = [cluster.owner(tag_key(upstream, name))]
    return out


def new_cluster(cluster_factory, upstream, n=3, **kw):
    return cluster_factory(n, upstream.hostport,
                           [upstream_registry(upstream, **kw.pop("reg", {}))],
                           **kw)


# --- the tests -------------------------------------------------------------

def test_cold_pull_through_each_node_in_turn(cluster_factory, upstream,
                                             cimages, tmp_path):
    """The 10-layer image pulled cold through node 1, then 2, then 3: the
    upstream sends it once (1.00x), and each blob is stored on exactly
    one node, its owner (replicate "none")."""
    image, name = cimages["a"], "e2e/cluster-a"
    c = new_cluster(cluster_factory, upstream)
    total = image_bytes(image)
    m0 = cluster_metrics(c)
    mark = upstream.access.mark()
    nmarks = [n.access.mark() for n in c.nodes]
    for i, node in enumerate(c.nodes):
        dest = tmp_path / ("pull%d" % i)
        assert_pulled(pull(node, name, dest), dest, image, c)
        got = upstream_bytes(upstream, mark, name)
        print("after the pull through node %d: upstream %d bytes, %.3fx "
              "the image (%d)" % (i + 1, got, got / total, total))
        assert got == total, (i, got, total, upstream_gets(
            upstream, mark, image, name))
    gets = upstream_gets(upstream, mark, image, name)
    assert set(gets.values()) == {1}, gets

    want = expected_holders(c, upstream, image, name)
    got = {d: holders(c, d) for d in want}
    print("owners (node index from 0): %s" % sorted(
        (d[7:19], h) for d, h in got.items()))
    assert got == want
    assert tag_holders(c, upstream, name) == \
        [c.owner(tag_key(upstream, name))]
    forwards = sum(_requests_not_owned(c, upstream, i, name, nmarks[i])
                   for i in range(len(c.nodes)))
    m1 = cluster_metrics(c)
    d = [{k: a[k] - b[k] for k in a} for a, b in zip(m1, m0)]
    print("cluster counters moved: %s; requests to a node not the "
          "owner: %d" % (d, forwards))
    assert sum(x["ocimirror_cluster_forwarded_total"] for x in d) == \
        forwards
    assert_no_loops(m0, m1)


def _requests_not_owned(cluster, upstream, i, name, mark):
    """The requests node i's access log shows since mark for a blob or a
    manifest by tag that another node owns.  Those are a client's or the
    prefetch hints of node i's own fetcher (?ns=...), never a peer's (a
    peer request reaches the owner, with no node down), and node i must
    have forwarded each (replicate "none": it stores nothing of
    another's)."""
    n = 0
    rx = re.compile(r"^/v2/%s/(blobs/(sha256:[0-9a-f]{64})|manifests/(.+))$"
                    % re.escape(name))
    cluster.nodes[i].access.settle(quiet=0.2)
    for _, path, _ in cluster.nodes[i].access.entries(mark):
        path = path.split("?", 1)[0]
        if path == "/v2/":
            continue
        m = rx.match(path)
        assert m, path
        if m.group(2):
            key = m.group(2)
        else:
            assert not m.group(3).startswith("sha256:"), \
                "a manifest by digest: %s" % path
            key = tag_key(upstream, name, m.group(3))
        if cluster.owner(key) != i:
            n += 1
    return n


def test_three_pulls_per_node_at_once(cluster_factory, upstream, cimages,
                                      tmp_path):
    """Nine skopeo pulls at once, three through each node, cold: the
    upstream sends at most 1.05x the image."""
    image, name = cimages["a"], "e2e/cluster-a"
    c = new_cluster(cluster_factory, upstream)
    total = image_bytes(image)
    m0 = cluster_metrics(c)
    mark = upstream.access.mark()
    jobs = [(node, tmp_path / ("pull%d-%d" % (i, k)))
            for i, node in enumerate(c.nodes) for k in range(3)]
    barrier = threading.Barrier(len(jobs))

    def one(job):
        barrier.wait(30)
        return pull(job[0], name, job[1])

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as ex:
        results = list(ex.map(one, jobs))
    took = time.monotonic() - t0
    for (node, dest), p in zip(jobs, results):
        assert_pulled(p, dest, image, c)
    got = upstream_bytes(upstream, mark, name)
    gets = upstream_gets(upstream, mark, image, name)
    print("9 pulls in %.1fs: upstream %d bytes, %.3fx the image; GETs per "
          "blob %s" % (took, got, got / total, sorted(gets.values())))
    assert got <= 1.05 * total, gets
    want = expected_holders(c, upstream, image, name)
    assert {d: holders(c, d) for d in want} == want
    assert_no_loops(m0, cluster_metrics(c))


def _tag_requests(upstream, mark, name):
    return upstream.access.count(None, r"^/v2/%s/manifests/v1$"
                                 % re.escape(name), mark)


def test_tag_revalidated_once_per_ttl(cluster_factory, upstream, cimages,
                                      tmp_path):
    """A tag pulled through all three nodes: only its owner keeps a tag
    record, so the upstream sees one manifest request by tag per
    tag_ttl, however many nodes and clients ask."""
    ttl = 15      # round 1 must fit in it, on a loaded machine too
    image, name = cimages["b"], "e2e/cluster-b"
    c = new_cluster(cluster_factory, upstream, reg={"tag_ttl": ttl})
    path = "/v2/%s/manifests/v1" % name
    mark = upstream.access.mark()

    # round 1: skopeo through each node at once, then GET and HEAD
    t0 = time.monotonic()
    dests = [tmp_path / ("pull%d" % i) for i in range(3)]
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        results = list(ex.map(lambda a: pull(*a),
                              [(n, name, d) for n, d in zip(c.nodes,
                                                            dests)]))
    for p, d in zip(results, dests):
        assert_pulled(p, d, image, c)

    def ask_all():
        for node in c.nodes:
            for method in ("GET", "HEAD"):
                r = node.request(method, path, {"Accept": ACCEPT_ALL})
                assert r.status == 200, (node.hostport, r)
                assert r.header("Docker-Content-Digest") == \
                    image.manifest.digest, r
    ask_all()
    took = time.monotonic() - t0
    assert took < ttl - 1, ("round 1 took %.1fs, not within tag_ttl %ds: "
                            "the machine is too slow for this test" %
                            (took, ttl))
    n1 = _tag_requests(upstream, mark, name)
    print("round 1 (%.1fs): %d upstream manifest requests by tag"
          % (took, n1))
    assert n1 == 1, upstream.access.entries(mark)
    assert tag_holders(c, upstream, name) == \
        [c.owner(tag_key(upstream, name))]

    # round 2, past tag_ttl: 9 clients at once through the three nodes
    time.sleep(max(0, t0 + ttl + 0.5 - time.monotonic()))
    t1 = time.monotonic()
    barrier = threading.Barrier(9)

    def one(node):
        barrier.wait(30)
        return node.get(path, {"Accept": ACCEPT_ALL})
    with concurrent.futures.ThreadPoolExecutor(9) as ex:
        rs = list(ex.map(one, c.nodes * 3))
    for r in rs:
        assert r.status == 200 and r.header("Docker-Content-Digest") == \
            image.manifest.digest, r
    ask_all()
    assert time.monotonic() - t1 < ttl - 1
    n2 = _tag_requests(upstream, mark, name)
    print("round 2: %d upstream manifest requests by tag in all" % n2)
    assert n2 == 2, upstream.access.entries(mark)
    assert tag_holders(c, upstream, name) == \
        [c.owner(tag_key(upstream, name))]


def test_node_killed_during_pulls(cluster_factory, upstream, cimages,
                                  tmp_path):
    """Node 2 is SIGKILLed (nginx master, workers and fetcher) while
    pulls run through nodes 1 and 3: every pull completes, and the
    upstream sends at most (1 + node 2's share) x the image.  A body node
    2 was streaming at the kill is cut (nginx cannot resume a proxied body
    once its headers went out): a pull in flight then is retried once,
    and counted.  Pulls started after the kill, of a cold image, succeed
    at once, the upstream sending that image once."""
    a, b = cimages["a"], cimages["b"]
    # 2 MB/s a node: node 2's share of image a takes about a second.
    # A pull cut by the kill makes skopeo close its other requests too;
    # a download they leave is dropped below finish_fraction (issue 11's
    # rule, tested in test_bounded_work.py) and fetched again by the
    # retry, bytes that are not the failover's: here a download that has
    # begun goes on, and one dropped before its first bytes (the fetchers
    # log it, -v) is allowed its size once more.
    c = new_cluster(cluster_factory, upstream, fail_timeout=10,
                    fetcher={"bandwidth_limit": "2M",
                             "finish_fraction": 0.001},
                    fetcher_args=["-v"])
    n1, n2, n3 = c.nodes
    total = image_bytes(a)
    mine = [x for x in a.layer_blobs() if c.owner(x.digest) == 1]
    share = sum(x.size for x in mine)
    if c.owner(tag_key(upstream, "e2e/cluster-a")) == 1:
        share += a.manifest.size
    mark = upstream.access.mark()
    jobs = [(n, tmp_path / ("a%d-%d" % (i, k)))
            for i, n in ((1, n1), (3, n3)) for k in range(2)]

    def one(job):
        return pull(job[0], "e2e/cluster-a", job[1])
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as ex:
        futs = [ex.submit(one, j) for j in jobs]
        if mine:
            # node 2 is fetching one of its blobs: kill it then
            wait_for(lambda: store_tmp_files(n2) or all(f.done()
                                                        for f in futs),
                     60, 0.01, what="a download on node 2")
        else:
            time.sleep(0.5)
        in_flight = sum(1 for f in futs if not f.done())
        n2.kill()
        t_kill = time.monotonic()
        results = [f.result() for f in futs]
    retries = 0
    for (node, dest), p in zip(jobs, results):
        if p.returncode != 0:
            retries += 1
            print("pull through %s cut by the kill, retried: %s"
                  % (node.hostport, p.stderr.strip()[-300:]))
            p = pull(node, "e2e/cluster-a", dest)
        assert_pulled(p, dest, a, c)
    got = upstream_bytes(upstream, mark, "e2e/cluster-a")
    print("kill: %d of %d pulls in flight, %d retried; %.1fs after the "
          "kill all done; node 2's share %.2f; upstream %d bytes, %.3fx "
          "the image" % (in_flight, len(jobs), retries,
                         time.monotonic() - t_kill, share / total, got,
                         got / total))
    assert retries <= in_flight
    dropped = set()
    for node in (n1, n3):
        for line in harness.read_text(node.fetcher_log).splitlines():
            if line.endswith("every waiter left, dropped"):
                dropped.update(re.findall(r"sha256:[0-9a-f]{64}", line))
    again = sum(x.size for x in a.layer_blobs()
                if x.digest in dropped and x not in mine)
    print("kill: dropped by cut pulls and fetched again, not node 2's: "
          "%d bytes (%d blobs)" % (again, len(dropped)))
    assert got <= total + share + again, upstream_gets(upstream, mark, a,
                                                       "e2e/cluster-a")

    # after the kill: a cold image through nodes 1 and 3, no retry
    mark = upstream.access.mark()
    jobs = [(n, tmp_path / ("b%d-%d" % (i, k)))
            for i, n in ((1, n1), (3, n3)) for k in range(2)]
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as ex:
        results = list(ex.map(lambda j: pull(j[0], "e2e/cluster-b", j[1]),
                              jobs))
    for (node, dest), p in zip(jobs, results):
        assert_pulled(p, dest, b, c)
    got = upstream_bytes(upstream, mark, "e2e/cluster-b")
    gets = upstream_gets(upstream, mark, b, "e2e/cluster-b")
    print("after the kill: 4 cold pulls of image b in %.1fs, upstream "
          "%.3fx the image" % (time.monotonic() - t0,
                               got / image_bytes(b)))
    assert got == image_bytes(b), gets
    # node 2's keys fell to the same next node on the ring from node 1
    # and from node 3: each blob stored once
    for x in b.layer_blobs():
        assert len(holders(c, x.digest)) == 1, (x, holders(c, x.digest))


def _owners_by_logs(cluster, digests, marks):
    """{digest: index of the node that served it} for HEADs sent to node
    1: the one other node whose access log shows the digest (the peer
    request), or node 1 when none does.  Fails on a digest that reached
    two nodes, or one node twice (a loop, a retry)."""
    seen = {d: [] for d in digests}
    rx = re.compile(r"/blobs/(sha256:[0-9a-f]{64})$")
    for i, node in enumerate(cluster.nodes):
        if i == 0:
            continue
        for _, path, _ in node.access.entries(marks[i]):
            m = rx.search(path)
            if m and m.group(1) in seen:
                seen[m.group(1)].append(i)
    bad = {d: s for d, s in seen.items() if len(s) > 1}
    assert not bad, "digests that reached more than one node: %s" % bad
    return {d: (s[0] if s else 0) for d, s in seen.items()}


def _head_all(cluster, name, digests):
    """HEAD each digest through node 1, 8 at once (each a miss
    everywhere: 404);
    returns {digest: owner} from the nodes' access logs."""
    marks = [n.access.mark() for n in cluster.nodes]

    def one(d):
        return cluster.nodes[0].head("/v2/%s/blobs/%s" % (name, d))
    # 8 at once: each waits on its owner's upstream 404
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        for d, r in zip(digests, ex.map(one, digests)):
            assert r.status == 404, (d, r)
    for n in cluster.nodes:
        n.access.settle(quiet=0.2)
    return _owners_by_logs(cluster, digests, marks)


def test_fourth_node_moves_a_quarter_of_the_keys(cluster_factory, upstream,
                                                 cimages, tmp_path):
    """A fourth node added to every config (nginx reloaded on each): the
    share of keys that move is at most 1/4 + 10 %, and every key that
    moves moves to the new node.  Owners are observed, not computed: 400
    random digests asked (HEAD) through node 1 before and after, each
    owner read from the access log that shows the peer request; they
    must also be the owners of harness.ketama_ring, nginx's ring.  While
    node 1 alone has the longer list, a peer request from a node with the
    old list is served by node 1 (not passed on to the new owner), which
    logs and counts that the lists differ.  Then the image pulled through the new node fetches
    from the upstream exactly what moved to it."""
    image, name = cimages["a"], "e2e/cluster-a"
    keys = 400
    c = new_cluster(cluster_factory, upstream)
    rng = random.Random()
    digests = ["sha256:" + hashlib.sha256(rng.randbytes(16)).hexdigest()
               for _ in range(keys)]
    t0 = time.monotonic()
    before = _head_all(c, name, digests)
    assert before == {d: c.owner(d) for d in digests}, \
        "the nodes' owners are not nginx's ring's"
    counts = [list(before.values()).count(i) for i in range(3)]
    print("3 nodes: %d keys owned %s (%.1fs)" % (keys, counts,
                                                 time.monotonic() - t0))
    dest = tmp_path / "pull0"
    assert_pulled(pull(c.nodes[0], name, dest), dest, image, c)

    # the fourth node, and node 1 reloaded first: nodes 2 and 3 still
    # have the three-node list.  Node 2 passes a key node 1 owned to node
    # 1, for which node 4 owns it now: node 1 serves it all the same (a
    # peer's request is never passed on), and logs and counts that the
    # lists differ.
    c.add_node(reload_order=[0])
    m1 = cluster_metrics(c)
    assert all(x["ocimirror_cluster_list_mismatch_total"] == 0 for x in m1)
    k = [d for d in digests if before[d] == 0 and c.owner(d) == 3][0]
    marks = [n.access.mark() for n in c.nodes]
    r = c.nodes[1].head("/v2/%s/blobs/%s" % (name, k))
    assert r.status == 404, r
    for n in c.nodes:
        n.access.settle(quiet=0.2)
    seen = [n.access.count("HEAD", k, marks[i])
            for i, n in enumerate(c.nodes)]
    assert seen == [1, 1, 0, 0], seen
    m2 = cluster_metrics(c)
    d = [{x: a[x] - b[x] for x in a} for a, b in zip(m2, m1)]
    assert [x["ocimirror_cluster_list_mismatch_total"] for x in d] == \
        [1, 0, 0, 0], d
    assert [x["ocimirror_cluster_forwarded_total"] for x in d] == \
        [0, 1, 0, 0], d
    assert "peer lists differ" in read_text(c.nodes[0].error_log)
    for i in (1, 2):
        c.reload(i)

    after = _head_all(c, name, digests)
    assert after == {d: c.owner(d) for d in digests}, \
        "after the reload, the nodes' owners are not nginx's ring's"
    moved = [d for d in digests if before[d] != after[d]]
    share = len(moved) / keys
    print("4 nodes: %d of %d keys moved (%.1f %%), owned %s"
          % (len(moved), keys, 100 * share,
             [list(after.values()).count(i) for i in range(4)]))
    assert {after[d] for d in moved} <= {3}, \
        "a key moved between two old nodes"
    assert 0 < share <= 0.25 + 0.10

    # the image through the new node: what moved to it is fetched again,
    # nothing else
    to_new = [x for x in image.layer_blobs() if c.owner(x.digest) == 3]
    want = sum(x.size for x in to_new)
    if c.owner(tag_key(upstream, name)) == 3:
        want += image.manifest.size
    mark = upstream.access.mark()
    dest = tmp_path / "pull4"
    assert_pulled(pull(c.nodes[3], name, dest), dest, image, c)
    got = upstream_bytes(upstream, mark, name)
    print("image through node 4: %d of %d blobs moved to it, upstream %d "
          "bytes (%.2fx the image)" % (len(to_new), len(image.blobs()),
                                       got, got / image_bytes(image)))
    assert got == want, upstream_gets(upstream, mark, image, name)
    assert {x.digest for x in to_new} == \
        {x.digest for x in image.layer_blobs() if c.nodes[3].has_blob(
            x.digest)}


def test_forged_peer_header_is_a_client(cluster_factory, upstream, cimages):
    """A client that sends its own X-Ocimirror-Peer is treated as a
    client: forwarded to the owner when the node asked is not it (and
    not stored there), served locally when it is; the refusal counted on
    the node asked."""
    image, name = cimages["b"], "e2e/cluster-b"
    c = new_cluster(cluster_factory, upstream)
    blobs = image.layer_blobs()
    # a blob node 1 does not own, and one node 1 owns (found among the
    # image's blobs, or the test asks node 2 and 3 instead)
    other = [x for x in blobs if c.owner(x.digest) != 0]
    own = [x for x in blobs if c.owner(x.digest) == 0]
    assert other, "node 1 owns every blob: nothing to forward"
    x = other[0]
    owner = c.owner(x.digest)
    asked = c.nodes[0]
    forged = {PEER_HEADER: "%064x" % random.getrandbits(256)}
    m0 = cluster_metrics(c)
    marks = [n.access.mark() for n in c.nodes]
    r = asked.get("/v2/%s/blobs/%s" % (name, x.digest), forged)
    assert r.status == 200 and r.error is None, r
    assert hashlib.sha256(r.body).hexdigest() == x.hex
    m1 = cluster_metrics(c)
    d = [{k: a[k] - b[k] for k in a} for a, b in zip(m1, m0)]
    print("forged header to node 1, owner node %d: %s" % (owner + 1, d))
    assert d[0]["ocimirror_cluster_peer_refused_total"] == 1, d
    assert d[0]["ocimirror_cluster_forwarded_total"] == 1, d
    assert d[owner]["ocimirror_cluster_peer_requests_total"] == 1, d
    for n in c.nodes:
        n.access.settle(quiet=0.2)
    assert c.nodes[owner].access.count("GET", x.digest, marks[owner]) == 1
    assert holders(c, x.digest) == [owner]

    # the forged header at the owner: served there, refused, counted
    if own:
        y, at = own[0], 0
    else:
        y = other[1] if len(other) > 1 else other[0]
        at = c.owner(y.digest)
    m1 = cluster_metrics(c)
    r = c.nodes[at].get("/v2/%s/blobs/%s" % (name, y.digest),
                        {PEER_HEADER: "x"})
    assert r.status == 200 and r.error is None, r
    assert hashlib.sha256(r.body).hexdigest() == y.hex
    m2 = cluster_metrics(c)
    d = [{k: a[k] - b[k] for k in a} for a, b in zip(m2, m1)]
    assert d[at]["ocimirror_cluster_peer_refused_total"] == 1, d
    assert d[at]["ocimirror_cluster_forwarded_total"] == 0, d
    assert sum(e["ocimirror_cluster_peer_requests_total"] for e in d) == 0
    assert holders(c, y.digest) == [at]


def _sample(node, name, labels=""):
    """The value of one sample of node's /metrics (labels: the text
    between the braces, "" for none); 0 if absent."""
    r = node.get("/metrics", timeout=10)
    assert r.status == 200, r
    want = name + ("{%s}" % labels if labels else "")
    for line in r.body.decode().splitlines():
        key, _, value = line.rpartition(" ")
        if key == want:
            return float(value)
    return 0


def test_hot_blob_copied_from_its_owner(cluster_factory, upstream, cimages):
    """replicate "hot": a blob a node's clients ask for hot_requests
    times, which another node owns, is copied to that node from the owner
    (over the LAN: the upstream still sends it once), and its next
    clients get it there as a hit.  A node whose clients asked less
    keeps no copy.  The copy request of a node's own fetcher is never
    served there as a miss: at the owner it is refused, and the fetcher
    would ask the upstream."""
    image, name = cimages["a"], "e2e/cluster-a"
    c = new_cluster(cluster_factory, upstream, replicate="hot",
                    cluster_settings={"hot_requests": 2, "hot_window": 60})
    x = max(image.layer_blobs(), key=lambda b: b.size)
    owner = c.owner(x.digest)
    asked, other = [c.nodes[i] for i in range(3) if i != owner]
    path = "/v2/%s/blobs/%s" % (name, x.digest)
    mark = upstream.access.mark()
    m0 = cluster_metrics(c)

    def get(node):
        r = node.get(path)
        assert r.status == 200 and r.error is None, (r, c.diagnostics())
        assert hashlib.sha256(r.body).hexdigest() == x.hex
    get(other)                  # once through the other non-owner
    get(asked)
    assert not asked.has_blob(x.digest)
    hits0 = _sample(asked, "ocimirror_requests_total",
                    'endpoint="blob",outcome="hit"')
    get(asked)                  # hot_requests: a copy is asked
    wait_for(lambda: asked.has_blob(x.digest), timeout=30,
             what="the copy on node %s" % asked.hostport)
    # the fetcher's short-lived BODY files of /metrics may be there a
    # moment: none left
    wait_for(lambda: store_tmp_files(asked) == [], timeout=10,
             what="no temp file left on %s" % asked.hostport)
    fwd = _sample(asked, "ocimirror_cluster_forwarded_total")
    for _ in range(3):
        get(asked)
    assert _sample(asked, "ocimirror_cluster_forwarded_total") == fwd
    assert _sample(asked, "ocimirror_requests_total",
                   'endpoint="blob",outcome="hit"') == hits0 + 3

    upstream.access.settle(quiet=0.3)
    gets = upstream.access.count("GET", r"/blobs/%s$" % x.digest, mark)
    got = upstream_bytes(upstream, mark, name)
    print("blob %s: owner node %d, copied to %s; upstream GETs %d, bytes "
          "%d (blob %d)" % (x.digest[7:19], owner + 1, asked.hostport,
                            gets, got, x.size))
    assert gets == 1 and got == x.size
    assert sorted(holders(c, x.digest)) == \
        sorted([owner, c.nodes.index(asked)])
    assert _sample(asked, "ocimirror_cluster_hot_total") == 1
    assert _sample(asked, "ocimirror_cluster_replica_requests_total") == 1
    assert _sample(asked, "ocimirror_fetcher_cluster_replicas_total",
                   'registry="%s"' % upstream.hostport) == 1
    assert _sample(asked, "ocimirror_fetcher_cluster_replica_fallbacks"
                   "_total", 'registry="%s"' % upstream.hostport) == 0
    assert _sample(other, "ocimirror_cluster_hot_total") == 0
    # the copy's request reached the owner as a peer's (one more than
    # the clients' forwards): no loop, no refusal
    d = [{k: a[k] - b[k] for k in a} for a, b in zip(cluster_metrics(c), m0)]
    assert all(e["ocimirror_cluster_peer_refused_total"] == 0 for e in d), d
    assert d[owner]["ocimirror_cluster_peer_requests_total"] == \
        sum(e["ocimirror_cluster_forwarded_total"] for e in d) + 1, d

    # the copy mark at the node that owns an unstored blob: refused at
    # once (it would wait on its own download), nothing fetched
    other_image = cimages["b"]
    y = [b for b in other_image.layer_blobs() if c.owner(b.digest) == owner]
    assert y, "node %d owns none of the other image's blobs" % (owner + 1)
    r = c.nodes[owner].get("/v2/e2e/cluster-b/blobs/%s" % y[0].digest,
                           {"X-Ocimirror-Replica": "1"})
    assert r.status == 503 and r.error_code() == "UNAVAILABLE", r
    assert not c.nodes[owner].has_blob(y[0].digest)


def test_hot_copy_with_the_owner_down(cluster_factory, upstream, cimages):
    """Two nodes; a blob becomes hot on the node that does not own it
    just as its owner dies.  The copy is asked over the other nodes only
    (the owner, down), never of the node itself, where it would wait on
    its own download: the fetcher gives up on the cluster at once and
    fetches the blob upstream, and the client that made it hot (served
    by this node as the failover, joining that download) gets it
    promptly."""
    image, name = cimages["b"], "e2e/cluster-b"
    c = new_cluster(cluster_factory, upstream, n=2, replicate="hot",
                    cluster_settings={"hot_requests": 2, "hot_window": 60})
    blobs = sorted(image.layer_blobs(), key=lambda b: -b.size)
    x = next(b for b in blobs if c.owner(b.digest) == 1)
    asked, owner = c.nodes
    path = "/v2/%s/blobs/%s" % (name, x.digest)
    mark = upstream.access.mark()

    r = asked.get(path)
    assert r.status == 200 and r.error is None, r
    owner.kill()
    t0 = time.monotonic()
    r = asked.get(path, timeout=60)
    took = time.monotonic() - t0
    assert r.status == 200 and r.error is None, (r, c.diagnostics())
    assert hashlib.sha256(r.body).hexdigest() == x.hex
    wait_for(lambda: asked.has_blob(x.digest), timeout=30,
             what="the blob on the node left")
    reg = 'registry="%s"' % upstream.hostport
    copies = _sample(asked, "ocimirror_fetcher_cluster_replicas_total", reg)
    fallbacks = _sample(asked, "ocimirror_fetcher_cluster_replica_"
                        "fallbacks_total", reg)
    upstream.access.settle(quiet=0.3)
    gets = upstream.access.count("GET", r"/blobs/%s$" % x.digest, mark)
    print("the hot GET with the owner down took %.2fs; copies %d, "
          "fallbacks %d, upstream GETs %d" % (took, copies, fallbacks,
                                             gets))
    # a copy asked of this node itself waits on itself until a timeout
    # breaks it (10 s measured with the others' upstream left out);
    # through the others it takes a few hundredths of a second
    assert took < 5, took
    assert _sample(asked, "ocimirror_cluster_hot_total") == 1
    assert copies == 1 and fallbacks == 1, (copies, fallbacks)
    assert gets == 2
    # the fetcher's short-lived BODY files of /metrics may be there a
    # moment: none left
    wait_for(lambda: store_tmp_files(asked) == [], timeout=10,
             what="no temp file left on %s" % asked.hostport)


# --- the configuration --------------------------------------------------

def _cluster_mirror(tmp_path, binaries, **cluster):
    secret = tmp_path / "cluster.secret"
    secret.write_text("0123456789abcdef0123456789abcdef\n")
    m = Mirror(str(tmp_path / "m"), "registry.example",
               [{"name": "registry.example",
                 "endpoints": ["http://127.0.0.1:9"]}],
               socket_dir=str(tmp_path), binaries=binaries,
               host="127.0.0.2")
    peers = [m.hostport, "127.0.0.3:%d" % m.port, "127.0.0.4:%d" % m.port]
    group = {"self": m.hostport, "peers": peers,
             "secret_file": str(secret), "replicate": "none",
             "fail_timeout": 10}
    group.update(cluster)
    m.settings = {"cluster": group}
    m.write_config()
    m.write_nginx_conf()
    return m


def _check(binaries, path):
    p = subprocess.run([binaries[0], "--check", "-c", path],
                       capture_output=True, text=True, timeout=20)
    return p.returncode, (p.stdout + p.stderr).strip()


@pytest.mark.parametrize("replicate", [
    {}, {"replicate": "hot", "hot_requests": 5, "hot_window": 30,
         "hot_table": 128, "max_replicas": 4}], ids=["none", "hot"])
def test_cluster_group_accepted(binaries, tmp_path, replicate):
    """A good cluster group: both readers of the file accept it, with
    replicate "none" and with "hot" and its settings."""
    m = _cluster_mirror(tmp_path, binaries, **replicate)
    rc, out = _check(binaries, m.config_path)
    assert rc == 0, out
    t = nginx_t(m)
    assert t.returncode == 0, t.stderr


# (id, change, whether the fetcher reads what is wrong: the secret file
# is nginx's master's alone, README "Cluster", so only nginx -t can
# refuse a missing or short one)
BAD_CLUSTER = [
    ("self-not-in-peers", {"self": "127.0.0.9:1"}, True),
    ("missing-secret-file", {"secret_file": "/nonexistent/cluster.secret"},
     False),
    ("duplicate-peer", "dup", True),
    ("bad-replicate", {"replicate": "sometimes"}, True),
    ("hot-table-too-small", {"replicate": "hot", "hot_table": 8}, True),
    ("short-secret", "short", False),
]


@pytest.mark.parametrize("what,change,fetcher", BAD_CLUSTER,
                         ids=[b[0] for b in BAD_CLUSTER])
def test_bad_cluster_group_refused(binaries, tmp_path, what, change,
                                   fetcher):
    """A bad cluster group: `nginx -t` refuses it, and so does
    `ocimirror-fetcher --check` unless the mistake is in the secret file
    (which the fetcher does not read), both naming the file and the line
    of the group."""
    m = _cluster_mirror(tmp_path, binaries)
    if change == "dup":
        peers = m.settings["cluster"]["peers"]
        m.settings["cluster"]["peers"] = peers + [peers[1]]
    elif change == "short":
        (tmp_path / "cluster.secret").write_text("0123456789\n")
    else:
        m.settings["cluster"].update(change)
    m.write_config()
    with open(m.config_path) as f:
        lines = f.read().splitlines()
    line = [i for i, l in enumerate(lines, 1) if "cluster" in l
            and "peers" in l][0]
    rc, out = _check(binaries, m.config_path)
    t = nginx_t(m)
    both = "--check: %s\nnginx -t: %s" % (out, t.stderr)
    if fetcher:
        assert rc == 1, both
        assert out.startswith("%s:%d: " % (m.config_path, line)), both
    assert t.returncode != 0, both
    assert "%s:%d: " % (m.config_path, line) in t.stderr, both


def test_hot_copies_cycle_with_the_owner_down(cluster_factory, upstream,
                                              cimages):
    """Three nodes, the owner of some blobs dies, and the two others'
    clients get those blobs at the same moment (hot_requests 1).  Each
    node's copy goes over the others' upstream: the owner (down), then the
    other non-owner, which refuses a copy of what it does not own and
    hold (409), so the copy is fetched upstream at once; without that,
    each would join the other's copy and both would wait until the
    transfers stall out (low_speed_time, 10 s here)."""
    image, name = cimages["a"], "e2e/cluster-a"
    c = new_cluster(cluster_factory, upstream, replicate="hot",
                    cluster_settings={"hot_requests": 1, "hot_window": 60})
    owner_i = 1
    xs = [b for b in image.layer_blobs() if c.owner(b.digest) == owner_i]
    assert xs, "node 2 owns none of the image's blobs"
    a, b = [c.nodes[i] for i in range(3) if i != owner_i]
    c.nodes[owner_i].kill()
    slow = []
    for x in xs:
        path = "/v2/%s/blobs/%s" % (name, x.digest)
        barrier = threading.Barrier(2)

        def get(node):
            barrier.wait(30)
            t0 = time.monotonic()
            r = node.get(path, timeout=60)
            return r, time.monotonic() - t0
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            res = list(ex.map(get, [a, b]))
        for r, took in res:
            assert r.status == 200 and r.error is None, r
            assert hashlib.sha256(r.body).hexdigest() == x.hex
        took = max(t for _, t in res)
        print("blob %s: %.2fs" % (x.digest[7:19], took))
        if took > 5:
            slow.append((x.digest[7:19], took))
    assert not slow, (slow, c.diagnostics())


def test_hot_counts_client_gets_only(cluster_factory, upstream, cimages):
    """hot_requests counts the client GETs of blobs a node forwards.  The
    manifest's owner M fetches the manifest and sends prefetch hints (a
    GET of the first byte) for the layers other nodes own through its own
    nginx: those are forwarded too, but not counted.  With hot_requests
    2, one client GET of such a layer at M does not make it hot."""
    image, name = cimages["a"], "e2e/cluster-a"
    c = new_cluster(cluster_factory, upstream, replicate="hot",
                    cluster_settings={"hot_requests": 2, "hot_window": 60})
    m = c.owner(tag_key(upstream, name))
    M = c.nodes[m]
    r = M.get("/v2/%s/manifests/v1" % name, {"Accept": ACCEPT_ALL})
    assert r.status == 200, r
    x = [b for b in image.layer_blobs() if c.owner(b.digest) != m][0]
    upstream.access.settle(quiet=0.5)
    fwd0 = _sample(M, "ocimirror_cluster_forwarded_total")
    r = M.get("/v2/%s/blobs/%s" % (name, x.digest))
    assert r.status == 200 and r.error is None, r
    print("forwarded before the client's GET: %d; hot: %d" % (
        fwd0, _sample(M, "ocimirror_cluster_hot_total")))
    assert _sample(M, "ocimirror_cluster_hot_total") == 0
