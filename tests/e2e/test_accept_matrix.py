"""Manifests by tag and the client's Accept header: a matrix against the
real upstream (docker-registry 2.8).

The rule the mirror implements:
  - it asks the upstream for a tag with the full list of the four
    manifest types, whatever the client sent, and only that answer is
    kept (the tag's shared state);
  - a client with no Accept, or only wildcards (*/*, application/*), gets
    the upstream's answer to the full list: the stored manifest;
  - a client naming any concrete media type gets exactly what the
    upstream answers that client directly (status, Content-Type,
    Docker-Content-Digest): a 404 MANIFEST_UNKNOWN for an OCI index or
    manifest it does not accept, the linux/amd64 child of a Docker
    manifest list for a client that takes single manifests only, even a
    schema1 conversion (relayed, never stored);
  - HEAD follows the same rule, and the stored state does not depend on
    which client asked first.

Image kinds: OCI index, OCI manifest, Docker manifest list, Docker v2
manifest, each in a repository accept/<kind> of the session upstream,
the same manifest under many tags so that every (kind, first client) pair
starts on a tag the mirror has never seen.  Run with -s for the tables.
"""

import collections
import subprocess
import time

import pytest

import images
from harness import (ACCEPT_ALL, SKOPEO_BIN, request, sha256_hex,
                     skopeo_copy)
import test_containerd

# one pytest-xdist worker runs them all (Makefile, E2E_JOBS): the kinds
# fixture pushes its repositories once
pytestmark = pytest.mark.xdist_group("accept_matrix")

# containerd pulling through the mirror: test_containerd's fixture (module
# scoped: one containerd for this module) and its hosts.toml helper
containerd = test_containerd.containerd
_hosts_dir = test_containerd._hosts_dir

MT_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"

SHORT = {images.MT_OCI_INDEX: "oci-index",
         images.MT_DOCKER_LIST: "docker-list",
         images.MT_OCI_MANIFEST: "oci-manifest",
         images.MT_DOCKER_MANIFEST: "docker-v2",
         MT_SCHEMA1: "schema1",
         "application/json": "json"}

# (id, Accept header or None).  The ids double as tag suffixes.
ACCEPTS = [
    ("none", None),
    ("star", "*/*"),
    ("app-star", "application/*"),
    ("oci-index", images.MT_OCI_INDEX),
    ("docker-list", images.MT_DOCKER_LIST),
    ("oci-manifest", images.MT_OCI_MANIFEST),
    ("docker-v2", images.MT_DOCKER_MANIFEST),
    ("all", ACCEPT_ALL),
    ("indexes", images.MT_OCI_INDEX + ", " + images.MT_DOCKER_LIST),
    ("singles", images.MT_OCI_MANIFEST + ", " + images.MT_DOCKER_MANIFEST),
]
ACCEPT_BY_ID = dict(ACCEPTS)

# (kind, repository, catalog role, skopeo --format or None)
KINDS = [
    ("oci-index", "accept/oci-index", "plat", None),
    ("oci-manifest", "accept/oci-manifest", "small", None),
    ("docker-list", "accept/docker-list", "plat", "v2s2"),
    ("docker-v2", "accept/docker-manifest", "small", "v2s2"),
]
KIND_TOP_TYPE = {"oci-index": images.MT_OCI_INDEX,
                 "oci-manifest": images.MT_OCI_MANIFEST,
                 "docker-list": images.MT_DOCKER_LIST,
                 "docker-v2": images.MT_DOCKER_MANIFEST}

# tags besides the matrix's first-<accept id>
EXTRA_TAGS = ["bug-star", "bug-oci-v2"]


def _explicit(accept):
    """Does the Accept name a concrete media type (not only wildcards)?"""
    if accept is None:
        return False
    return any(item.split(";")[0].strip() and "*" not in item
               for item in accept.split(","))


def _headers(accept):
    return {"Accept": accept} if accept is not None else {}


def _relayed(accept, stored_type):
    """Is a client with this Accept answered with the upstream's own answer
    (an explicit list that does not name the stored type) rather than from
    the store?"""
    if not _explicit(accept):
        return False
    named = [item.split(";")[0].strip().lower() for item in accept.split(",")]
    return stored_type not in named


# --- answers -----------------------------------------------------------------

Answer = collections.namedtuple("Answer",
                                "status ctype digest code length")


def _answer(r, method):
    """What the matrix compares of one response.  Non-2xx: the media type
    without parameters and the JSON error code (GET); 2xx: the exact
    Content-Type, the digest, and the length (not for schema1, whose
    signature is made per request)."""
    ctype = r.header("Content-Type") or ""
    if 200 <= r.status < 300:
        length = None if ctype == MT_SCHEMA1 else r.header("Content-Length")
        return Answer(r.status, ctype, r.header("Docker-Content-Digest"),
                      None, length)
    code = None
    if method == "GET":
        try:
            code = r.error_code()
        except Exception:                       # noqa: BLE001
            code = "?"
    return Answer(r.status, ctype.split(";")[0].strip(), None, code, None)


def _short(a, digest_len=12):
    if a is None:
        return "-"
    t = SHORT.get(a.ctype, a.ctype or "(none)")
    if a.digest:
        rest = a.digest.split(":", 1)[-1][:digest_len]
    else:
        rest = a.code or ""
    return ("%s %s %s" % (a.status, t, rest)).rstrip()


def _table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w)            # noqa: E731
                               for x, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])]
                     + [line(r) for r in rows])


# --- the upstream: four kinds under many tags --------------------------------

def _retag(up, repo, src, dst):
    """The same manifest bytes under another tag (asked with the full
    list so that an index comes back as itself)."""
    r = up.get("/v2/%s/manifests/%s" % (repo, src), {"Accept": ACCEPT_ALL})
    assert r.status == 200, r
    put = request(up.hostport, "PUT", "/v2/%s/manifests/%s" % (repo, dst),
                  {"Content-Type": r.header("Content-Type")}, r.body)
    assert put.status == 201, put


@pytest.fixture(scope="module")
def kinds(upstream, layouts):
    """{kind: repository} in the session upstream, every repository with
    the tags v1, first-<accept id> for each Accept, and EXTRA_TAGS."""
    out = {}
    for kind, repo, role, fmt in KINDS:
        if fmt is None:
            images.skopeo_push(layouts[role], "v1", upstream.hostport, repo)
        else:
            p = skopeo_copy("oci:%s:v1" % layouts[role],
                            "docker://%s/%s:v1" % (upstream.hostport, repo),
                            ["--format", fmt])
            assert p.returncode == 0, p.stderr
        r = upstream.get("/v2/%s/manifests/v1" % repo, {"Accept": ACCEPT_ALL})
        assert r.status == 200, r
        assert r.header("Content-Type") == KIND_TOP_TYPE[kind], r
        for tag in ["first-" + aid for aid, _ in ACCEPTS] + EXTRA_TAGS:
            _retag(upstream, repo, "v1", tag)
        out[kind] = repo
    return out


class Expect:
    """What the upstream answers, asked directly, cached by (repo, tag,
    Accept, method)."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.cache = {}

    def direct(self, repo, tag, accept, method):
        key = (repo, tag, accept, method)
        if key not in self.cache:
            r = request(self.upstream.hostport, method,
                        "/v2/%s/manifests/%s" % (repo, tag),
                        _headers(accept))
            self.cache[key] = _answer(r, method)
        return self.cache[key]

    def rule(self, repo, tag, accept, method):
        """The mirror's answer by the rule: the upstream's own answer to
        an explicit list, its answer to the full list otherwise."""
        return self.direct(repo, tag,
                           accept if _explicit(accept) else ACCEPT_ALL,
                           method)


def _check(mirror, expect, repo, tag, accept, method):
    """(mirror answer, expected answer, problems) for one cell."""
    r = mirror.request(method, "/v2/%s/manifests/%s" % (repo, tag),
                       _headers(accept))
    got = _answer(r, method)
    want = expect.rule(repo, tag, accept, method)
    problems = []
    if got != want:
        problems.append("answer")
    if method == "GET" and 200 <= r.status < 300 and got.ctype != MT_SCHEMA1:
        if r.error is not None or got.digest is None \
                or sha256_hex(r.body) != got.digest.split(":", 1)[-1]:
            problems.append("body does not hash to its digest")
    return got, want, problems


# --- the upstream's own table ------------------------------------------------

def test_upstream_answers_by_accept(kinds, upstream):
    """The expectations' source: docker-registry asked directly, once per
    kind and Accept (tag v1).  Pins the 2.8 behaviour the matrix relies
    on, so a changed upstream shows here rather than as mirror bugs."""
    expect = Expect(upstream)
    rows = []
    for kind, repo in kinds.items():
        for aid, accept in ACCEPTS:
            g = expect.direct(repo, "v1", accept, "GET")
            h = expect.direct(repo, "v1", accept, "HEAD")
            rows.append([kind, aid, _short(g), _short(h)])
    print("\nupstream asked directly (tag v1):\n"
          + _table(["kind", "accept", "GET", "HEAD"], rows))

    def d(kind, aid, method="GET"):
        return expect.direct(kinds[kind], "v1", ACCEPT_BY_ID[aid], method)

    # an OCI index or manifest is refused to a client that does not name
    # it, a Docker v2 manifest is converted to schema1
    for aid in ("none", "star", "app-star"):
        assert d("oci-index", aid).status == 404
        assert d("oci-index", aid).code == "MANIFEST_UNKNOWN"
        assert d("oci-manifest", aid).status == 404
        assert d("docker-v2", aid).ctype == MT_SCHEMA1
        assert d("docker-list", aid).ctype == MT_SCHEMA1
    assert d("oci-index", "singles").status == 404
    # a list to a client of single manifests: the linux/amd64 child
    child = d("docker-list", "singles")
    assert child.ctype == images.MT_DOCKER_MANIFEST
    lst = upstream.get("/v2/%s/manifests/v1" % kinds["docker-list"],
                       {"Accept": ACCEPT_ALL}).json()
    amd64 = [m["digest"] for m in lst["manifests"]
             if m["platform"]["architecture"] == "amd64"]
    assert [child.digest] == amd64, lst
    for kind in KIND_TOP_TYPE:
        assert d(kind, "all").ctype == KIND_TOP_TYPE[kind]
        assert d(kind, "all", "HEAD") == d(kind, "all")


# --- the matrix --------------------------------------------------------------

def test_accept_matrix(mirror, upstream, kinds, containerd, tmp_path):
    """Every (kind, first client) on its own fresh tag: the first client's
    GET, then GET and HEAD for every Accept, each compared with the
    upstream asked directly; then skopeo and containerd pull each kind
    through the mirror."""
    t0 = time.monotonic()
    expect = Expect(upstream)
    # cells: (kind, first id, client id, method, mirror, upstream, problems)
    cells = []
    # the upstream requests for a tag the mirror made, where the rule says
    # how many: one fetch of its own for the first client, then one per
    # relayed answer; every other answer comes from the store
    asked = []
    for kind, repo in kinds.items():
        stored = KIND_TOP_TYPE[kind]
        for first_id, first in ACCEPTS:
            tag = "first-" + first_id
            # the expectations first: asking the upstream directly leaves
            # the mirror untouched
            for _, accept in ACCEPTS:
                for method in ("GET", "HEAD"):
                    expect.rule(repo, tag, accept, method)
            mark = upstream.access.mark()
            got, want, problems = _check(mirror, expect, repo, tag, first,
                                         "GET")
            cells.append((kind, first_id, first_id + " (first)", "GET",
                          got, want, problems))
            want_asked = 1 + _relayed(first, stored)
            for aid, accept in ACCEPTS:
                for method in ("GET", "HEAD"):
                    got, want, problems = _check(mirror, expect, repo, tag,
                                                 accept, method)
                    cells.append((kind, first_id, aid, method, got, want,
                                  problems))
                    want_asked += _relayed(accept, stored)
            upstream.access.settle(quiet=0.1)
            n = upstream.access.count(None, r"/v2/%s/manifests/%s$"
                                      % (repo, tag), since=mark)
            if n != want_asked:
                asked.append("%s %s: the mirror asked upstream %d times, "
                             "the rule says %d" % (kind, tag, n, want_asked))
    t_matrix = time.monotonic() - t0

    bad = [c for c in cells if c[6]]
    _print_summary(cells, t_matrix)

    # real clients pull through the mirror: skopeo each kind, containerd
    # each kind (linux/amd64), from a tag the matrix started with */*
    pulls = []
    hosts = _hosts_dir(tmp_path, upstream, mirror)
    for kind, repo in kinds.items():
        tag = "first-star"
        want = expect.direct(repo, tag, ACCEPT_ALL, "GET").digest
        out = tmp_path / ("skopeo-" + kind)
        p = skopeo_copy("docker://%s/%s:%s" % (mirror.hostport, repo, tag),
                        "dir:%s" % out)
        if p.returncode != 0:
            pulls.append("skopeo %s: exit %d: %s" % (kind, p.returncode,
                                                     p.stderr.strip()[-500:]))
        else:
            top = sha256_hex((out / "manifest.json").read_bytes())
            if "sha256:" + top != want:
                pulls.append("skopeo %s: top manifest sha256:%s, upstream "
                             "has %s" % (kind, top, want))
        ref = "%s/%s:%s" % (upstream.hostport, repo, tag)
        up_mark = upstream.access.mark()
        p = containerd.ctr("images", "pull", "--hosts-dir", hosts,
                           "--snapshotter", "native", "--platform",
                           "linux/amd64", ref)
        if p.returncode != 0:
            pulls.append("containerd %s: exit %d: %s"
                         % (kind, p.returncode,
                            (p.stdout + p.stderr).strip()[-500:]))
        else:
            ls = containerd.ctr("images", "ls")
            line = [l for l in ls.stdout.splitlines()
                    if l.split()[:1] == [ref]]
            if not line or want not in line[0]:
                pulls.append("containerd %s: %s not listed with %s:\n%s"
                             % (kind, ref, want, ls.stdout))
        with open(upstream.access_log_path, "rb") as f:
            f.seek(up_mark)
            direct = [l for l in f.read().decode().splitlines()
                      if "containerd" in l]
        if direct:
            # hosts.toml lists the upstream as the server: containerd
            # falls back to it when the mirror's answer does not do
            pulls.append("containerd %s fell back to the upstream: %s"
                         % (kind, direct))
    print("matrix %.1fs (%d mirror requests), pulls done at %.1fs"
          % (t_matrix, len(cells), time.monotonic() - t0))

    msg = []
    if bad:
        msg.append("%d of %d cells differ from the rule:\n" % (len(bad),
                                                               len(cells))
                   + _table(["kind", "first client", "client", "method",
                             "mirror", "expected (upstream)", "problem"],
                            [[k, f, c, m, _short(g), _short(w),
                              ", ".join(p)]
                             for k, f, c, m, g, w, p in bad]))
    if asked:
        msg.append("answers not from the store:\n" + "\n".join(asked))
    if pulls:
        msg.append("pulls through the mirror failed:\n" + "\n".join(pulls))
    assert not msg, "\n\n".join(msg) + "\n\n" + mirror.diagnostics()


def _print_summary(cells, seconds):
    """Rows kind x client Accept: the expected answer, the mirror's GET and
    HEAD answers over all first clients, and how many cells differ."""
    rows = []
    groups = collections.OrderedDict()
    for k, f, c, m, g, w, p in cells:
        groups.setdefault((k, c.split(" ")[0]), []).append((f, m, g, w, p))
    for (kind, client), lst in groups.items():
        def answers(method, which):
            seen = collections.Counter(
                # schema1 digests depend on the tag: drop them here
                _short(x[which] if x[which].ctype != MT_SCHEMA1
                       else x[which]._replace(digest="sha256:(per-tag)"))
                for x in lst if x[1] == method)
            if len(seen) == 1:
                return next(iter(seen))
            return " | ".join("%s x%d" % kv for kv in seen.most_common())
        rows.append([kind, client, answers("GET", 3), answers("GET", 2),
                     answers("HEAD", 2),
                     "%d/%d" % (sum(1 for x in lst if x[4]), len(lst))])
    ndiff = sum(1 for c in cells if c[6])
    print("\naccept matrix (%d cells, %d differ, %.1fs):\n"
          % (len(cells), ndiff, seconds)
          + _table(["kind", "client", "expected GET", "mirror GET",
                    "mirror HEAD", "differ"], rows))


# --- the bug report's scenarios ----------------------------------------------

def test_wildcard_first_then_full_clients_get_the_index(mirror, upstream,
                                                        kinds, catalog):
    """A curl-like GET (Accept: */*) is the first request for an OCI index
    tag; then skopeo inspect and a full-list GET must get the index, not
    MANIFEST_UNKNOWN."""
    repo, tag = kinds["oci-index"], "bug-star"
    index = catalog["plat"].index
    path = "/v2/%s/manifests/%s" % (repo, tag)
    first = mirror.get(path, {"Accept": "*/*"})
    # */* is no concrete type: the stored manifest, the index itself
    assert first.status == 200, first
    assert first.header("Docker-Content-Digest") == index.digest, first

    p = subprocess.run([SKOPEO_BIN, "inspect", "--raw", "--tls-verify=false",
                        "docker://%s/%s:%s" % (mirror.hostport, repo, tag)],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode() + mirror.diagnostics()
    assert sha256_hex(p.stdout) == index.hex

    for method in ("GET", "HEAD"):
        r = mirror.request(method, path, {"Accept": ACCEPT_ALL})
        assert r.status == 200, r
        assert r.header("Content-Type") == images.MT_OCI_INDEX, r
        assert r.header("Docker-Content-Digest") == index.digest, r
        if method == "GET":
            assert r.body == index.data


def test_client_without_list_type_does_not_store_the_child(mirror,
                                                           upstream, kinds):
    """A first client taking the OCI index and the Docker v2 manifest but
    not the Docker list, on a Docker list tag: it gets what the upstream
    gives it (the linux/amd64 child); a full-list client then gets the
    list."""
    repo, tag = kinds["docker-list"], "bug-oci-v2"
    path = "/v2/%s/manifests/%s" % (repo, tag)
    narrow = images.MT_OCI_INDEX + ", " + images.MT_DOCKER_MANIFEST
    direct = upstream.get(path, {"Accept": narrow})
    full = upstream.get(path, {"Accept": ACCEPT_ALL})
    assert direct.header("Content-Type") == images.MT_DOCKER_MANIFEST, direct
    assert full.header("Content-Type") == images.MT_DOCKER_LIST, full

    r = mirror.get(path, {"Accept": narrow})
    assert r.status == 200, r
    assert r.header("Content-Type") == images.MT_DOCKER_MANIFEST, r
    assert r.header("Docker-Content-Digest") \
        == direct.header("Docker-Content-Digest"), r
    assert r.body == direct.body

    for accept in (ACCEPT_ALL, None):
        for method in ("GET", "HEAD"):
            r = mirror.request(method, path, _headers(accept))
            assert r.status == 200, (accept, r)
            assert r.header("Content-Type") == images.MT_DOCKER_LIST, \
                (accept, r)
            assert r.header("Docker-Content-Digest") \
                == full.header("Docker-Content-Digest"), (accept, r)
            if method == "GET":
                assert r.body == full.body, (accept, r)
    # and the narrow client still gets its own answer
    r = mirror.get(path, {"Accept": narrow})
    assert r.status == 200, r
    assert r.header("Docker-Content-Digest") \
        == direct.header("Docker-Content-Digest"), r
