"""Module fixes from review: temp files of tag lists nobody waits for
any more, and the Accept-Ranges of a multi-range answer streamed from a
download in flight."""

import json
import os
import socket
import threading
import time

from harness import (fake_registry_entry, random_bytes, sha256_hex,
                     store_tmp_files, wait_for)

MiB = 1024 * 1024
TAGS_PATH = "/v2/team/app/tags/list"
TAGS_DELAY = 2.0


def _tagged_fake(fake, catalog):
    fake.add_image("team/app", "v1", catalog["small"])
    fake.delay[r"/tags/list$"] = TAGS_DELAY


def _no_temp_file_after_the_answer(m, fake, asked_at):
    """The fake answers TAGS_DELAY after it was asked; from then on the
    tag list's temp file must go, whoever (if anyone) still waits."""
    wait_for(lambda: fake.count("GET", r"/tags/list$") == 1, 10,
             what="the tags request upstream")
    time.sleep(max(0.0, asked_at + TAGS_DELAY - time.monotonic()))
    wait_for(lambda: store_tmp_files(m) == [], 10,
             what="no temp file left in %s/tmp (have %r)"
             % (m.store, store_tmp_files(m)))


def test_tags_list_of_a_closed_client_leaves_no_temp_file(mirror_factory,
                                                          fake_upstream,
                                                          catalog):
    _tagged_fake(fake_upstream, catalog)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       fetch_timeout="30s")

    s = socket.create_connection(("127.0.0.1", m.port), timeout=5)
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n"
               % (TAGS_PATH, m.hostport)).encode())
    asked_at = time.monotonic()
    s.close()

    _no_temp_file_after_the_answer(m, fake_upstream, asked_at)

    # the mirror still answers tag lists, and leaves nothing behind (this
    # request may join the closed client's fetch if it is still delayed:
    # that client's file then goes in its own worker, a moment later)
    fake_upstream.delay.clear()
    r = m.get(TAGS_PATH)
    assert r.status == 200, r
    assert r.json() == {"name": "team/app", "tags": ["v1"]}, r
    wait_for(lambda: store_tmp_files(m) == [], 10,
             what="no temp file left in %s/tmp (have %r)"
             % (m.store, store_tmp_files(m)))


def test_tags_list_answered_after_the_timeout_leaves_no_temp_file(
        mirror_factory, fake_upstream, catalog):
    _tagged_fake(fake_upstream, catalog)
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       fetch_timeout="1s")

    asked_at = time.monotonic()
    r = m.get(TAGS_PATH)
    assert r.status == 503, r
    assert r.error_code() == "UNAVAILABLE", r

    _no_temp_file_after_the_answer(m, fake_upstream, asked_at)


def test_multi_range_on_a_download_in_flight_says_accept_ranges(
        mirror_factory, fake_upstream):
    data = random_bytes("review-multi-range", 2 * MiB)
    digest = fake_upstream.add_blob(data)
    fake_upstream.throttle[digest] = 1 * MiB              # about 2 s
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       fetch_timeout="30s")

    r = m.get("/v2/team/app/blobs/" + digest,
              {"Range": "bytes=0-9,1000-1999"})

    # the whole blob (multipart needs it in one buffer), said to be
    # rangeable like any blob answer
    assert r.status == 200, r
    assert r.error is None, r
    assert r.header("Accept-Ranges") == "bytes", r
    assert r.header("Content-Range") is None, r
    assert r.header("Content-Length") == str(len(data)), r
    assert sha256_hex(r.body) == sha256_hex(data)
    assert r.header("Docker-Content-Digest") == digest, r
    assert fake_upstream.count("GET", "/blobs/" + digest) == 1


class _FakeFetcher:
    """Listens on the mirror's fetcher socket in place of the fetcher and
    answers each TAGS line with BODY for a file it wrote first; the test
    can send any line on the connection that asked."""

    def __init__(self, socket_path, tmp_dir):
        self.tmp_dir = tmp_dir
        self.conn = None
        self.asked = threading.Event()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(socket_path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._reader, args=(conn,),
                             daemon=True).start()

    def _reader(self, conn):
        buf = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                words = line.decode().split(" ")
                if words[0] == "TAGS":
                    path = os.path.join(self.tmp_dir, "tags.list")
                    with open(path, "w") as f:
                        json.dump({"name": "team/app", "tags": ["v1"]}, f)
                    # set before answering: the test reads it as soon
                    # as its response is complete
                    self.conn = conn
                    self.asked.set()
                    conn.sendall(("BODY %s 200 %s -\n"
                                  % (words[1], path)).encode())

    def send(self, data):
        self.conn.sendall(data)

    def close(self):
        self.sock.close()
        if self.conn is not None:
            self.conn.close()


def test_body_files_nobody_waits_for_are_removed_from_tmp_only(
        mirror_factory, fake_upstream):
    m = mirror_factory(fake_upstream.hostport,
                       [fake_registry_entry(fake_upstream)],
                       fetch_timeout="10s")
    m.stop_fetcher()
    tmp = os.path.join(m.store, "tmp")
    os.makedirs(tmp, exist_ok=True)

    def touch(path):
        with open(path, "w") as f:
            f.write("x")
        return path

    late = touch(os.path.join(tmp, "dl.late"))
    drained = touch(os.path.join(tmp, "dl.drained"))
    outside = touch(os.path.join(m.store, "keep"))
    # a file outside the store that a BODY line names by its absolute
    # path: what /etc/hostname would be, but the test's own (nginx runs
    # as root here, and a module that unlinked what it is told would
    # take a machine's file)
    sentinel = os.path.join(m.workdir, "sentinel")
    with open(sentinel, "w") as f:
        f.write("not the module's to remove\n")
    nested_dir = os.path.join(tmp, "sub")
    os.makedirs(nested_dir)
    nested = touch(os.path.join(nested_dir, "dl.nested"))

    fetcher = _FakeFetcher(m.socket_path, tmp)
    try:
        # the BODY of the request itself: served, then gone
        r = m.get(TAGS_PATH)
        assert r.status == 200, r
        assert r.json() == {"name": "team/app", "tags": ["v1"]}, r
        assert fetcher.asked.is_set()

        # BODY for ids nobody waits for: only a plain name in tmp/ goes
        fetcher.send(("BODY 90001 200 %s -\n"
                      "BODY 90002 200 %s/../keep -\n"
                      "BODY 90003 200 %s -\n"
                      "BODY 90004 200 %s -\n"
                      % (late, tmp, nested, sentinel)).encode())
        wait_for(lambda: not os.path.exists(late), 5,
                 what="the late BODY file removed")

        # a line too long loses the link: a BODY after it is undelivered
        fetcher.send(b"X" * 9000 + b"\n"
                     + ("BODY 90005 200 %s -\n" % drained).encode())
        wait_for(lambda: not os.path.exists(drained), 5,
                 what="the BODY file after the bad line removed")

        assert os.path.exists(outside)
        assert os.path.exists(nested)
        # only a plain name directly in the store's tmp/ is removed:
        # not a path that climbs out of it, not a subfolder, not an
        # absolute path elsewhere (the sentinel, whole)
        with open(sentinel) as f:
            assert f.read() == "not the module's to remove\n"
        assert not os.path.exists(os.path.join(tmp, "tags.list"))
    finally:
        fetcher.close()
