"""A small HTTP forward proxy on loopback, counting what it forwards.

    proxy = FakeProxy().start()
    ... proxy.url ("http://127.0.0.1:port") ...
    proxy.requests      [(method, target)] in order: "GET", the absolute
                        URI; "CONNECT", "host:port"
    proxy.count(method=None, target_regex="")
    proxy.stop()

It forwards absolute-URI GET and HEAD requests (one upstream connection
per request, the answer streamed back with its own framing) and tunnels
CONNECT (for https:// targets).  Only loopback targets are allowed.
"""

import http.server
import re
import select
import socket
import threading
import urllib.parse

BUF = 64 * 1024


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass


class FakeProxy:

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.requests = []
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def count(self, method=None, target_regex=""):
        rx = re.compile(target_regex)
        with self._lock:
            return sum(1 for m, t in self.requests
                       if (method is None or m == method) and rx.search(t))

    def _record(self, method, target):
        with self._lock:
            self.requests.append((method, target))

    def start(self):
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _Server((self.host, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fakeproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner = None

    def log_message(self, fmt, *args):
        pass

    def _refuse(self, status, why):
        body = why.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    @staticmethod
    def _loopback(host):
        return host in ("127.0.0.1", "localhost", "::1")

    def do_CONNECT(self):
        self.owner._record("CONNECT", self.path)
        host, _, port = self.path.rpartition(":")
        if not self._loopback(host) or not port.isdigit():
            return self._refuse(403, "loopback targets only")
        try:
            up = socket.create_connection((host, int(port)), timeout=10)
        except OSError as e:
            return self._refuse(502, str(e))
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        conns = [self.connection, up]
        try:
            while True:
                ready, _, _ = select.select(conns, [], [], 30)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(BUF)
                    if not data:
                        return
                    (up if s is self.connection else
                     self.connection).sendall(data)
        except OSError:
            return
        finally:
            up.close()

    def do_GET(self):
        self._forward()

    def do_HEAD(self):
        self._forward()

    def _forward(self):
        self.owner._record(self.command, self.path)
        url = urllib.parse.urlsplit(self.path)
        if url.scheme != "http" or not self._loopback(url.hostname or ""):
            return self._refuse(403, "absolute http URIs to loopback only")
        target = url.path + ("?" + url.query if url.query else "")
        lines = ["%s %s HTTP/1.1" % (self.command, target or "/")]
        for k, v in self.headers.items():
            if k.lower() in ("proxy-connection", "connection",
                             "keep-alive", "proxy-authorization"):
                continue
            lines.append("%s: %s" % (k, v))
        lines.append("Connection: close")
        try:
            up = socket.create_connection((url.hostname, url.port or 80),
                                          timeout=30)
        except OSError as e:
            return self._refuse(502, str(e))
        # the answer goes back as it comes, up to the upstream's close
        self.close_connection = True
        try:
            up.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            while True:
                data = up.recv(BUF)
                if not data:
                    break
                self.wfile.write(data)
        except OSError:
            pass
        finally:
            up.close()
