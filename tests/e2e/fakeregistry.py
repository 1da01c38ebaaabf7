"""A programmable fake upstream registry for the faults the real one
cannot produce.

It serves the pull side of the distribution API from dicts:

    reg = FakeRegistry()
    reg.add_image("team/app", "v1", image)      # images.Image or Index
    reg.start()
    ... reg.hostport, reg.url ...
    reg.stop()

and lets a test inject behaviours, all plain attributes:

    reg.throttle[digest] = bytes_per_second   slow blob download
    reg.corrupt[digest] = b"..."              other bytes under the digest
    reg.require_token("secret")               Bearer token flow (/token)
    reg.accept_ranges = True                  honour Range on blobs
    reg.fail[path_regex] = (status, code)     answer matching requests
                                              with this error
    reg.delay[path_regex] = seconds           answer matching requests
                                              this much later
    reg.range_faults[(digest, first)] = ["500", "cut"]
                                              the next GETs of the blob
                                              whose Range starts at first
                                              get these, one each: a 500,
                                              "429:<secs>" (a 429 with
                                              that Retry-After), or half
                                              the body and a closed
                                              connection ("cut")
    reg.latency = seconds                     every request (any path)
                                              is answered this much later
    reg.reset.add(path_regex)                 matching requests get no
                                              answer: the connection is
                                              reset (RST)
    reg.too_many[path_regex] = retry_after    matching requests get 429
                                              TOOMANYREQUESTS, with
                                              Retry-After unless None
    reg.blob_redirect = "http://host:port"    blob GETs answer 307 to
                                              <that>/cdn/<digest>?sig=...
                                              &t=<issue time>, a route
                                              every FakeRegistry serves
                                              (no token, ranges as
                                              accept_ranges says)
    reg.redirect_digests = {digest, ...}      only these blobs are
                                              redirected (None: all)
    reg.blob_redirect_for[digest] = "http://host:port"
                                              this blob is redirected
                                              there, whatever the above
    reg.cdn_redirect = "http://host:port"     the /cdn/ route answers 307
                                              to <that>/cdn/<digest>?<its
                                              query> (a hop further)
    reg.url_ttl = seconds                     the /cdn/ route answers 403
                                              (reg.url_expired_status) to
                                              a URL whose t= is older (a
                                              signed URL that expired)
    reg.manifest_redirect = "http://host:port"
                                              manifest GETs (not HEADs)
                                              answer 307 to
                                              <that>/cdnm/<repo>/<digest>,
                                              with Docker-Content-Digest
                                              unless
                                              reg.manifest_redirect_digest
                                              is False; the /cdnm/ route
                                              serves the manifest from the
                                              FakeRegistry's own dicts
                                              (corrupt applies), without
                                              Docker-Content-Digest, with
                                              reg.cdn_manifest_type as
                                              Content-Type if set (else
                                              the manifest's)
    reg.stall[digest] = n                     a blob GET sends its headers
                                              and n bytes, then nothing
                                              more, the connection held
                                              open until the fake stops
                                              (an upstream that stalls)
    reg.blob_gate.clear()                     blob GETs wait (at most 60
                                              s) until reg.blob_gate.set():
                                              transfers that must compete
                                              from one instant start so
    reg.headers = {name: value}               sent with every answer (the
                                              RateLimit-* of Docker Hub)
    reg.cdn_challenge = 'Bearer realm=...'    that /cdn/ route answers 401
                                              with this WWW-Authenticate
                                              (a redirect target that
                                              asks for credentials)

Credentials and TLS (H1):

    FakeRegistry(ssl_context=ctx)             serve HTTPS (reg.url is then
                                              https://...)
    reg.require_scoped_tokens(expires_in=300, credentials=None)
                                              Bearer flow whose /token
                                              issues a new token per call,
                                              bound to the scope asked for
                                              and valid expires_in seconds;
                                              credentials=(user, password):
                                              /token wants them as Basic
                                              (401 otherwise)
    reg.require_basic(user, password)         Basic auth on /v2/
    reg.realm = "http://host:port"            the Bearer challenges name
                                              <that>/token as realm
                                              (default: the registry's own
                                              url)
    reg.token_prefix = "a"                    scoped tokens are named
                                              tok-a<n>-<repo>: two fakes'
                                              tokens differ
    reg.expired_seen, reg.wrong_scope_seen    requests that carried an
                                              expired token / a token of
                                              another repository
    reg.auth_refused                          401s answered to requests
                                              that carried credentials

Referrers and tag lists (H3):

    reg.add_referrer(repo, subject, artifact_type, tag=None,
                     annotations=None)        push an OCI image manifest
                                              whose subject is the digest
                                              subject (its descriptor is
                                              returned)
    reg.add_referrers_tag(repo, subject, descriptors)
                                              the referrers tag schema:
                                              an index of descriptors
                                              under tag sha256-<hex>
    reg.referrers_api = False                 /v2/<name>/referrers/<digest>
                                              answers 404 (no API), as
                                              docker-registry 2.8 does;
                                              with the API (the default)
                                              it lists the stored
                                              manifests whose subject is
                                              the digest, artifactType
                                              filter included
    reg.referrers_page_size = n               the API answers n
                                              descriptors a page, with a
                                              Link to the next
    reg.tags_page_size = n                    tags/list without n answers
                                              n tags a page, with a Link

Fault injection (the soak, tests/soak/):

    reg.faults = FaultPlan(rate, kinds=FAULT_KINDS, match=regex,
                           stall=seconds, seed=seed)
                                              each request whose path
                                              matches gets, with
                                              probability rate, one fault
                                              of kinds: "reset" (no
                                              answer, a RST), "5xx" (500,
                                              502 or 503), "truncate"
                                              (headers with the full
                                              length, half the body,
                                              closed), "stall" (the same
                                              after `stall` seconds of
                                              silence), "wrong" (the full
                                              length, one byte flipped
                                              mid-body; content-addressed
                                              answers only, blobs and
                                              manifests: a list has no
                                              digest, no one could tell);
                                              reg.faults.log holds (time,
                                              kind, method, path) of each,
                                              the last max_log of them,
                                              reg.faults.counts all
    reg.record = False                        keep no reg.requests nor
                                              reg.served (a long run's
                                              memory stays flat)

and counts what it saw: reg.count("GET", r"/blobs/sha256:..."),
reg.ranges(digest) (the Range headers of the GETs of a blob, None for
none), reg.token_calls, reg.requests (method, path, headers) in order,
reg.served (digest, first byte, bytes written, status) of every blob
body it sent, reg.redirected (the digest of every blob GET it answered
with a redirect), reg.expired_urls (403s of url_ttl).
"""

import base64
import collections
import http.server
import json
import random
import re
import socket
import struct
import threading
import time
import urllib.parse

from images import MT_OCI_INDEX, MT_OCI_MANIFEST, Index, sha256_digest

CHUNK = 16 * 1024

FAULT_KINDS = ("reset", "5xx", "truncate", "stall", "wrong")
# answers whose bytes a digest vouches for: only these get "wrong"
_DIGESTED = re.compile(r"/(blobs|manifests)/|^/cdn/")


class FaultPlan:
    """Faults injected at random into a share of the matching requests;
    the same seed gives the same sequence of draws."""

    def __init__(self, rate, kinds=FAULT_KINDS, match=r"^/v2/.+/",
                 stall=5.0, seed=0, max_log=100000):
        for k in kinds:
            if k not in FAULT_KINDS:
                raise ValueError("unknown fault kind %r" % k)
        self.rate = rate
        self.kinds = tuple(kinds)
        self.match = re.compile(match)
        self.stall = stall
        self.log = collections.deque(maxlen=max_log)
        self.counts = collections.Counter()
        self._rng = random.Random("fakeregistry-faults:%s" % seed)
        self._lock = threading.Lock()

    def draw(self, method, path):
        """The fault for this request, or None (and log it)."""
        if not self.match.search(path):
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            kinds = [k for k in self.kinds
                     if k not in ("truncate", "stall", "wrong")
                     or method == "GET"]
            kinds = [k for k in kinds
                     if k != "wrong" or _DIGESTED.search(path)]
            if not kinds:
                return None
            kind = self._rng.choice(kinds)
            status = self._rng.choice((500, 502, 503))
            self.log.append((time.time(), kind, method, path))
            self.counts[kind] += 1
        return kind if kind != "5xx" else "5xx:%d" % status

    def since(self, t0):
        """The log from time t0 on."""
        with self._lock:
            return [e for e in self.log if e[0] >= t0]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128     # many transfers connect at once

    def __init__(self, *args, **kw):
        # the connections being served: stop() ends them, or a client
        # that keeps its connection alive would still be answered by a
        # registry the test has stopped
        self.open_requests = set()
        self.open_lock = threading.Lock()
        super().__init__(*args, **kw)

    def process_request(self, request, client_address):
        with self.open_lock:
            self.open_requests.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.open_lock:
            self.open_requests.discard(request)
        super().shutdown_request(request)

    def close_open_requests(self):
        with self.open_lock:
            open_requests = list(self.open_requests)
        for request in open_requests:
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        # a TLS client that gives up the handshake (a refused certificate)
        # is what some tests want: keep the output quiet
        pass


class FakeRegistry:

    def __init__(self, host="127.0.0.1", ssl_context=None):
        self.host = host
        self.ssl_context = ssl_context
        self.scoped = None       # (expires_in, credentials) of
        self.issued = {}         # token -> (repository, expiry)
        self.basic = None        # "Basic ..." required when set
        self.expired_seen = 0
        self.wrong_scope_seen = 0
        self.auth_refused = 0
        self.blobs = {}          # digest -> bytes
        self.manifests = {}      # (repo, digest) -> (media type, bytes)
        self.tags = {}           # repo -> {tag: digest}
        self.referrers_api = True
        self.referrers_page_size = None
        self.tags_page_size = None
        self.throttle = {}       # digest -> bytes per second
        self.stall = {}          # digest -> bytes sent before silence
        self.blob_gate = threading.Event()   # clear: blob GETs wait
        self.blob_gate.set()
        self.headers = {}        # name -> value, on every answer
        self.corrupt = {}        # digest -> bytes served instead
        self.accept_ranges = False
        self.range_faults = {}   # (digest, first byte) -> [fault, ...]
        self.blob_redirect = None
        self.redirect_digests = None   # None: every blob is redirected
        self.blob_redirect_for = {}    # digest -> base URL
        self.cdn_redirect = None
        self.url_ttl = None      # seconds a /cdn/ URL lives (None: ever)
        self.url_expired_status = 403
        self.expired_urls = 0    # /cdn/ requests answered 403 for it
        self.manifest_redirect = None
        self.manifest_redirect_digest = True
        self.cdn_manifest_type = None
        self.served = []         # (digest, first, bytes written, status)
        self.sending = {}        # digest -> bodies being written now
        self.redirected = []     # digests of blob GETs answered 307
        self.realm = None        # base URL of the token realm
        self.token_prefix = ""
        self.cdn_challenge = None
        self.fail = {}           # path regex -> (status, error code)
        self.delay = {}          # path regex -> seconds
        self.latency = 0.0       # seconds before any answer
        self.reset = set()       # path regexes answered by a reset
        self.too_many = {}       # path regex -> Retry-After or None
        self.token = None        # Bearer token required when set
        self.token_expires_in = 300
        self.token_calls = 0
        self.token_scopes = []
        self.requests = []       # (method, path with query, headers dict)
        self.record = True       # False: keep no requests nor served
        self.faults = None       # a FaultPlan
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = None
        self._thread = None

    # --- content -------------------------------------------------------

    def add_blob(self, data):
        digest = sha256_digest(data)
        self.blobs[digest] = data
        return digest

    def add_manifest(self, repo, media_type, data, tag=None):
        digest = sha256_digest(data)
        self.manifests[(repo, digest)] = (media_type, data)
        if tag is not None:
            self.tags.setdefault(repo, {})[tag] = digest
        return digest

    def add_image(self, repo, tag, image):
        """Serve an images.Image or images.Index as repo:tag."""
        if isinstance(image, Index):
            for im in image.images:
                self.add_image(repo, None, im)
            top = image.index
        else:
            for b in image.layer_blobs():
                self.blobs[b.digest] = b.data
            top = image.manifest
        self.add_manifest(repo, top.media_type, top.data, tag)

    def add_referrer(self, repo, subject, artifact_type, tag=None,
                     annotations=None):
        """An artifact manifest referring to subject (a digest); returns
        its descriptor as a referrers list shows it."""
        layer = self.add_blob(("%s refers to %s as %s" % (
            repo, subject, artifact_type)).encode())
        empty = self.add_blob(b"{}")
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/octet-stream",
                        "digest": layer,
                        "size": len(self.blobs[layer])}],
            "subject": {"mediaType": MT_OCI_MANIFEST, "digest": subject,
                        "size": 1},
        }
        if annotations:
            manifest["annotations"] = annotations
        data = json.dumps(manifest, sort_keys=True).encode()
        digest = self.add_manifest(repo, MT_OCI_MANIFEST, data, tag)
        return _descriptor(MT_OCI_MANIFEST, digest, data)

    def add_referrers_tag(self, repo, subject, descriptors):
        """What a client pushes to a registry without the referrers API:
        an image index of the referrers under tag sha256-<hex>."""
        index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
                 "manifests": descriptors}
        return self.add_manifest(repo, MT_OCI_INDEX,
                                 json.dumps(index).encode(),
                                 subject.replace(":", "-"))

    def require_token(self, token, expires_in=300):
        self.token = token
        self.token_expires_in = expires_in

    def require_scoped_tokens(self, expires_in=300, credentials=None):
        self.scoped = (expires_in, _basic(credentials) if credentials
                       else None)

    def require_basic(self, user, password):
        self.basic = _basic((user, password))

    # --- observation ---------------------------------------------------

    def count(self, method, path_regex):
        """Requests seen with this method (None: any) whose path and
        query match the regex."""
        rx = re.compile(path_regex)
        with self._lock:
            return sum(1 for m, p, _ in self.requests
                       if (method is None or m == method) and rx.search(p))

    def ranges(self, digest):
        """The Range header (None if absent) of every GET of the blob, by
        the registry route or the /cdn/ one, in order."""
        rx = re.compile(r"/(blobs|cdn)/%s(\?|$)" % re.escape(digest))
        with self._lock:
            return [h.get("Range") for m, p, h in self.requests
                    if m == "GET" and rx.search(p)]

    def served_bytes(self, digest, settle=2.0):
        """(first, bytes written) of every body of the blob sent.  A body
        is noted once its last byte is written, and its reader may be
        quicker: bodies still being written are waited for, settle seconds
        at most (a stalled one is counted as far as it went)."""
        deadline = time.monotonic() + settle
        while True:
            with self._lock:
                if not self.sending.get(digest) \
                        or time.monotonic() >= deadline:
                    return [(f, n) for d, f, n, _ in self.served
                            if d == digest]
            time.sleep(0.01)

    def reset_counts(self):
        with self._lock:
            self.requests.clear()
            self.served.clear()
            self.redirected.clear()
            self.token_calls = 0
            self.token_scopes.clear()

    def _record(self, method, path, headers):
        if not self.record:
            return
        with self._lock:
            self.requests.append((method, path, headers))

    # --- life cycle ----------------------------------------------------

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def hostport(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def url(self):
        return ("https://" if self.ssl_context else "http://") + self.hostport

    def start(self):
        registry = self

        class Handler(_Handler):
            reg = registry

        self._server = _Server((self.host, 0), Handler)
        if self.ssl_context is not None:
            # the handshake happens in the handler's thread, at its first
            # read: a failing one does not hold up the others
            self._server.socket = self.ssl_context.wrap_socket(
                self._server.socket, server_side=True,
                do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fakeregistry", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_open_requests()
            self._server = None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakeregistry/1"
    reg = None                                # set by FakeRegistry.start
    fault = None                              # this request's (FaultPlan)

    def log_message(self, fmt, *args):        # keep pytest output quiet
        pass

    # --- plumbing ------------------------------------------------------

    def _send(self, status, body=b"", ctype="application/json",
              headers=None, head=False):
        self.send_response(status)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if body or status not in (204, 304):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in list((headers or {}).items()) \
                + list(self.reg.headers.items()):
            self.send_header(k, v)
        self.end_headers()
        if not head and body:
            self._write_body(body)

    def _write_body(self, body):
        """The body, or what the request's injected fault makes of it."""
        if self.fault == "wrong":
            body = _flipped(body, len(body) // 2)
        elif self.fault in ("truncate", "stall"):
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            if self.fault == "stall":
                self.reg._stopping.wait(self.reg.faults.stall)
            self.close_connection = True
            return
        self.wfile.write(body)

    def _error(self, status, code, message, headers=None, head=False):
        body = json.dumps({"errors": [{"code": code, "message": message,
                                       "detail": None}]}).encode()
        self._send(status, body, headers=headers, head=head)

    def _authorized(self, repo, head):
        reg = self.reg
        if reg.basic is not None or reg.scoped is not None:
            return self._authorized_h1(repo, head)
        if reg.token is None:
            return True
        if self.headers.get("Authorization") == "Bearer " + reg.token:
            return True
        scope = "repository:%s:pull" % repo if repo else ""
        challenge = ('Bearer realm="%s/token",service="fakeregistry"'
                     % (reg.realm or reg.url))
        if scope:
            challenge += ',scope="%s"' % scope
        self._error(401, "UNAUTHORIZED", "authentication required",
                    {"WWW-Authenticate": challenge}, head)
        return False

    # --- routes --------------------------------------------------------

    ROUTE = re.compile(r"^/v2/(?P<repo>.+)/(?P<kind>manifests|blobs)/"
                       r"(?P<ref>[^/]+)$")
    TAGS = re.compile(r"^/v2/(?P<repo>.+)/tags/list$")
    REFERRERS = re.compile(r"^/v2/(?P<repo>.+)/referrers/(?P<digest>[^/]+)$")
    CDN = re.compile(r"^/cdn/(?P<digest>[^/]+)$")
    CDNM = re.compile(r"^/cdnm/(?P<repo>.+)/(?P<digest>[^/]+)$")

    def do_GET(self):
        self._dispatch(head=False)

    def do_HEAD(self):
        self._dispatch(head=True)

    def _dispatch(self, head):
        reg = self.reg
        url = urllib.parse.urlsplit(self.path)
        reg._record(self.command, self.path, dict(self.headers.items()))
        if reg.latency:
            reg._stopping.wait(reg.latency)
        for rx, seconds in list(reg.delay.items()):
            if re.search(rx, url.path):
                reg._stopping.wait(seconds)
        self.fault = None
        if reg.faults is not None:
            self.fault = reg.faults.draw(self.command, url.path)
        try:
            if self.fault == "reset":
                return self._reset()
            if self.fault is not None and self.fault.startswith("5xx:"):
                return self._error(int(self.fault[4:]), "UNAVAILABLE",
                                   "injected fault", head=head)
            for rx in list(reg.reset):
                if re.search(rx, url.path):
                    return self._reset()
            for rx, retry_after in list(reg.too_many.items()):
                if re.search(rx, url.path):
                    headers = {}
                    if retry_after is not None:
                        headers["Retry-After"] = str(retry_after)
                    return self._error(429, "TOOMANYREQUESTS",
                                       "injected rate limit", headers, head)
            if url.path == "/token":
                return self._token(url.query)
            m = self.CDN.match(url.path)
            if m:
                if reg.cdn_challenge is not None:
                    return self._error(401, "UNAUTHORIZED",
                                       "authentication required",
                                       {"WWW-Authenticate":
                                        reg.cdn_challenge}, head)
                if reg.cdn_redirect is not None:
                    return self._send(307, headers={
                        "Location": "%s/cdn/%s?%s" % (
                            reg.cdn_redirect, m["digest"], url.query)},
                        head=head)
                if reg.url_ttl is not None:
                    q = urllib.parse.parse_qs(url.query)
                    issued = float(q.get("t", ["0"])[0])
                    if time.time() - issued > reg.url_ttl:
                        with reg._lock:
                            reg.expired_urls += 1
                        return self._send(
                            reg.url_expired_status,
                            b"<Error><Code>AccessDenied</Code>"
                            b"<Message>Request has expired</Message>"
                            b"</Error>", ctype="application/xml",
                            head=head)
                return self._blob(m["digest"], head)
            m = self.CDNM.match(url.path)
            if m:
                return self._cdn_manifest(m["repo"], m["digest"], head)
            for rx, (status, code) in list(reg.fail.items()):
                if re.search(rx, url.path):
                    return self._error(status, code, "injected failure",
                                       head=head)
            if url.path == "/v2/" or url.path == "/v2":
                if not self._authorized(None, head):
                    return
                return self._send(200, b"{}", head=head)
            m = self.TAGS.match(url.path)
            if m:
                if not self._authorized(m["repo"], head):
                    return
                return self._tags(m["repo"], url.query, head)
            m = self.REFERRERS.match(url.path)
            if m:
                if not self._authorized(m["repo"], head):
                    return
                return self._referrers(m["repo"], m["digest"], url.query,
                                       head)
            m = self.ROUTE.match(url.path)
            if m:
                if not self._authorized(m["repo"], head):
                    return
                if m["kind"] == "manifests":
                    if reg.manifest_redirect is not None and not head:
                        return self._manifest_redirect(m["repo"], m["ref"])
                    return self._manifest(m["repo"], m["ref"], head)
                target = reg.blob_redirect_for.get(m["ref"])
                if target is None and (reg.redirect_digests is None
                                       or m["ref"] in reg.redirect_digests):
                    target = reg.blob_redirect
                if target is not None:
                    with reg._lock:
                        reg.redirected.append(m["ref"])
                    return self._send(307, headers={
                        "Location": "%s/cdn/%s?sig=s3cr3t&t=%.3f" % (
                            target, m["ref"], time.time())}, head=head)
                return self._blob(m["ref"], head)
            self._error(404, "UNSUPPORTED", "no such endpoint", head=head)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True

    def _reset(self):
        """No answer: close with SO_LINGER 0, so the peer gets a RST."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.close_connection = True

    def _authorized_h1(self, repo, head):
        """Basic, or the scope-checking token flow."""
        reg = self.reg
        auth = self.headers.get("Authorization")
        if reg.basic is not None:
            if auth == reg.basic:
                return True
            with reg._lock:
                reg.auth_refused += auth is not None
            self._error(401, "UNAUTHORIZED", "authentication required",
                        {"WWW-Authenticate": 'Basic realm="fakeregistry"'},
                        head)
            return False
        if auth is not None and auth.startswith("Bearer "):
            with reg._lock:
                issued = reg.issued.get(auth[7:])
                if issued is None:
                    reg.auth_refused += 1
                elif time.monotonic() >= issued[1]:
                    reg.expired_seen += 1
                elif repo is not None and issued[0] != repo:
                    reg.wrong_scope_seen += 1
                else:
                    return True
        scope = "repository:%s:pull" % repo if repo else ""
        challenge = ('Bearer realm="%s/token",service="fakeregistry"'
                     % (reg.realm or reg.url))
        if scope:
            challenge += ',scope="%s"' % scope
        self._error(401, "UNAUTHORIZED", "authentication required",
                    {"WWW-Authenticate": challenge}, head)
        return False

    def _token(self, query):
        reg = self.reg
        q = urllib.parse.parse_qs(query)
        with reg._lock:
            reg.token_calls += 1
            reg.token_scopes.append(q.get("scope", [""])[0])
        if reg.scoped is not None:
            return self._scoped_token(q)
        body = json.dumps({"token": reg.token,
                           "expires_in": reg.token_expires_in,
                           "issued_at": "2024-01-01T00:00:00Z"}).encode()
        self._send(200, body)

    def _scoped_token(self, q):
        reg = self.reg
        expires_in, credentials = reg.scoped
        if credentials is not None \
                and self.headers.get("Authorization") != credentials:
            with reg._lock:
                reg.auth_refused += 1
            return self._error(401, "UNAUTHORIZED", "bad credentials",
                               {"WWW-Authenticate":
                                'Basic realm="fakeregistry-token"'})
        m = re.match(r"^repository:([^:]+):pull", q.get("scope", [""])[0])
        with reg._lock:
            token = "tok-%s%d-%s" % (reg.token_prefix, len(reg.issued) + 1,
                                     m[1].replace("/", "-") if m
                                     else "none")
            reg.issued[token] = (m[1] if m else None,
                                 time.monotonic() + expires_in)
        body = json.dumps({"token": token, "expires_in": expires_in,
                           "issued_at": "2024-01-01T00:00:00Z"}).encode()
        self._send(200, body)

    def _tags(self, repo, query, head):
        reg = self.reg
        if repo not in reg.tags:
            return self._error(404, "NAME_UNKNOWN", "repository unknown",
                               head=head)
        q = urllib.parse.parse_qs(query)
        tags = sorted(reg.tags[repo])
        if "last" in q:
            tags = [t for t in tags if t > q["last"][0]]
        headers = {}
        n = int(q["n"][0]) if "n" in q else reg.tags_page_size
        if n is not None:
            if len(tags) > n:
                tags = tags[:n]
                headers["Link"] = ('</v2/%s/tags/list?n=%d&last=%s>; '
                                   'rel="next"' % (repo, n, tags[-1]))
        body = json.dumps({"name": repo, "tags": tags}).encode()
        self._send(200, body, headers=headers, head=head)

    def _referrers(self, repo, digest, query, head):
        reg = self.reg
        if not reg.referrers_api:
            return self._send(404, b"404 page not found\n",
                              ctype="text/plain; charset=utf-8", head=head)
        q = urllib.parse.parse_qs(query)
        wanted = q.get("artifactType", [None])[0]
        found = []
        for (r, d), (media_type, data) in sorted(reg.manifests.items()):
            if r != repo:
                continue
            try:
                m = json.loads(data)
            except ValueError:
                continue
            if (m.get("subject") or {}).get("digest") != digest:
                continue
            desc = _descriptor(media_type, d, data)
            if wanted is None or desc.get("artifactType") == wanted:
                found.append(desc)
        headers = {}
        if wanted is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        if "last" in q:
            found = [f for f in found if f["digest"] > q["last"][0]]
        size = reg.referrers_page_size
        if size is not None and len(found) > size:
            found = found[:size]
            headers["Link"] = ('<%s/v2/%s/referrers/%s?last=%s>; '
                               'rel="next"' % (reg.url, repo, digest,
                                               found[-1]["digest"]))
        body = json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
                           "manifests": found}).encode()
        self._send(200, body, ctype=MT_OCI_INDEX, headers=headers,
                   head=head)

    def _manifest(self, repo, ref, head):
        reg = self.reg
        digest = ref if ":" in ref else reg.tags.get(repo, {}).get(ref)
        entry = reg.manifests.get((repo, digest)) if digest else None
        if entry is None:
            return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown",
                               head=head)
        media_type, data = entry
        self._send(200, data, ctype=media_type,
                   headers={"Docker-Content-Digest": digest,
                            "ETag": '"%s"' % digest}, head=head)

    def _manifest_redirect(self, repo, ref):
        """307 to <manifest_redirect>/cdnm/<repo>/<digest>, vouching for
        the digest with Docker-Content-Digest (unless told not to)."""
        reg = self.reg
        digest = ref if ":" in ref else reg.tags.get(repo, {}).get(ref)
        if digest is None or (repo, digest) not in reg.manifests:
            return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        headers = {"Location": "%s/cdnm/%s/%s" % (reg.manifest_redirect,
                                                  repo, digest)}
        if reg.manifest_redirect_digest:
            headers["Docker-Content-Digest"] = digest
        self._send(307, headers=headers)

    def _cdn_manifest(self, repo, digest, head):
        """A manifest as a CDN serves it: its bytes (or corrupt's) and
        its media type, no digest header."""
        reg = self.reg
        entry = reg.manifests.get((repo, digest))
        if entry is None:
            return self._send(404, b"not found", ctype="text/plain",
                              head=head)
        media_type, data = entry
        data = reg.corrupt.get(digest, data)
        self._send(200, data, ctype=reg.cdn_manifest_type or media_type,
                   head=head)

    def _blob(self, digest, head):
        reg = self.reg
        if not head:
            reg.blob_gate.wait(60)
        if digest not in reg.blobs:
            return self._error(404, "BLOB_UNKNOWN", "blob unknown",
                               head=head)
        data = reg.corrupt.get(digest, reg.blobs[digest])
        start, end, status = 0, len(data), 200
        headers = {"Docker-Content-Digest": digest}
        fault = None
        if reg.accept_ranges:
            headers["Accept-Ranges"] = "bytes"
            rng = re.match(r"^bytes=(\d+)-(\d*)$",
                           self.headers.get("Range", ""))
            if rng:
                start = int(rng[1])
                end = min(int(rng[2]) + 1 if rng[2] else len(data),
                          len(data))
                status = 206
                headers["Content-Range"] = "bytes %d-%d/%d" % (
                    start, end - 1, len(data))
                with reg._lock:
                    faults = reg.range_faults.get((digest, start))
                    if faults:
                        fault = faults.pop(0)
        if fault == "500" and not head:
            return self._error(500, "UNKNOWN", "injected range failure")
        if fault is not None and fault.startswith("429:") and not head:
            return self._error(429, "TOOMANYREQUESTS", "injected rate limit",
                               {"Retry-After": fault[4:]})
        self.send_response(status)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        for k, v in list(headers.items()) + list(reg.headers.items()):
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        if digest in reg.stall:
            # the promised length never comes: a stalled upstream, whose
            # connection stays open until the fake stops
            self.wfile.write(data[start:start + reg.stall[digest]])
            self.wfile.flush()
            with reg._lock:
                reg.served.append((digest, start, reg.stall[digest],
                                   status))
            reg._stopping.wait()
            self.close_connection = True
            return
        if fault == "cut":
            end = start + (end - start) // 2
            self.close_connection = True
        stall = self.fault == "stall"
        if self.fault in ("truncate", "stall"):
            end = start + (end - start) // 2
            self.close_connection = True
        elif self.fault == "wrong" and end > start:
            data = _flipped(data, start + (end - start) // 2)
        rate = reg.throttle.get(digest)
        # CHUNK at a time (paced to `rate` bytes per second if throttled),
        # noting in reg.served how much went out
        t0 = time.monotonic()
        pos = start
        with reg._lock:
            reg.sending[digest] = reg.sending.get(digest, 0) + 1
        try:
            while pos < end and not reg._stopping.is_set():
                n = min(CHUNK, end - pos)
                self.wfile.write(data[pos:pos + n])
                self.wfile.flush()
                pos += n
                if rate:
                    delay = t0 + (pos - start) / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
            if stall:
                reg._stopping.wait(reg.faults.stall)
        finally:
            with reg._lock:
                if reg.record:
                    reg.served.append((digest, start, pos - start, status))
                reg.sending[digest] -= 1
        if pos < end:
            self.close_connection = True


def _flipped(data, at):
    """data with the byte at `at` inverted (an empty body stays so)."""
    if not data:
        return data
    return data[:at] + bytes([data[at] ^ 0xff]) + data[at + 1:]


def _basic(credentials):
    user, password = credentials
    return "Basic " + base64.b64encode(
        ("%s:%s" % (user, password)).encode()).decode()


def _descriptor(media_type, digest, data):
    """A referrers list's descriptor of a stored manifest: artifactType
    from the manifest, else its config's media type (the spec's rule)."""
    m = json.loads(data)
    desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
    at = m.get("artifactType") or (m.get("config") or {}).get("mediaType")
    if at:
        desc["artifactType"] = at
    if m.get("annotations"):
        desc["annotations"] = m["annotations"]
    return desc
