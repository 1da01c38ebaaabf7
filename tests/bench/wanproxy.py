#!/usr/bin/python3
"""A WAN simulator for the benchmark: a TCP proxy that adds latency, a
per-connection bandwidth cap and a cap on the whole link, and counts the
bytes it carries.

    wanproxy.py --upstream 127.0.0.1:5000 [--listen 127.0.0.1:0]
                [--rtt-ms 40] [--rate-mib 8] [--buffer-kib 512]
                [--link-mib 0] [--link-burst-kib 64]

Every accepted connection gets its own connection to the upstream.  Each
direction is a link of its own: a chunk read from one side leaves after
the chunks before it have gone at `rate` bytes/s (serialisation) and
arrives at the other side rtt/2 later (propagation).  The connection
set-up costs one round trip (the TCP handshake a real WAN would charge),
so a request on a fresh connection reaches the upstream 1.5 RTT after the
client connected, and its first answer byte is back 2 RTT after.  At most
`buffer` bytes wait in each direction; beyond that the proxy stops reading
and TCP's own flow control pushes back on the sender.

A region's link is capped as a whole too, whatever the number of
connections: with --link-mib (0: no cap) every connection's chunks in one
direction draw from one token bucket (link rate, --link-burst-kib of
burst), and a chunk leaves when both its own connection's serialisation
and the bucket allow it.  Without it, a client that opens more
connections gets more bandwidth without limit.  The per-connection cap
holds under the link cap: a connection's chunks never leave closer
together than its own rate allows.

On start it prints one line to stdout:
    READY <listen port> <control port>
The control port (same host) answers one line per connection:
    "stats\n" -> a JSON object: down_bytes (bytes delivered
                 upstream -> client), up_bytes (client -> upstream),
                 connections (accepted so far), active (open now),
                 peak_active (most open at once since the last reset),
                 link_mib (the link cap now, 0: none), link_held_bytes
                 (bytes delivered upstream -> client whose departure the
                 link cap set, later than their connection's own rate
                 would have)
    "reset-peak\n" -> peak_active = active, then the same object
    "link <MiB/s>\n" -> sets the link cap in both directions (0: none),
                 then the same object
SIGTERM or SIGINT stops it.
"""

import argparse
import asyncio
import collections
import json
import math
import signal
import socket
import sys
import time

MiB = 1024 * 1024


class Stats:
    def __init__(self):
        self.down_bytes = 0
        self.up_bytes = 0
        self.connections = 0
        self.active = 0
        self.peak_active = 0
        self.link_mib = 0.0
        self.link_held_bytes = 0

    def opened(self):
        self.connections += 1
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)

    def as_dict(self):
        return {"down_bytes": self.down_bytes, "up_bytes": self.up_bytes,
                "connections": self.connections, "active": self.active,
                "peak_active": self.peak_active,
                "link_mib": self.link_mib,
                "link_held_bytes": self.link_held_bytes}


class TokenBucket:
    """One direction of the shared link: `rate` bytes/s (0: no cap), at
    most `burst` bytes at once after a quiet spell.  A caller reserves its
    bytes when it has them and is told when they may go: the tokens may
    go negative, so that callers are served in the order they asked (a
    FIFO at the link, as a router's queue is) and no one polls."""

    def __init__(self, rate, burst):
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def set_rate(self, rate):
        self._refill(time.monotonic())
        self.rate = float(rate)
        if self.rate <= 0:
            self.tokens = self.burst

    def _refill(self, now):
        if now > self.stamp:
            if self.rate > 0:
                self.tokens = min(self.burst, self.tokens +
                                  (now - self.stamp) * self.rate)
            self.stamp = now

    def reserve(self, nbytes, now):
        """The time from which nbytes may leave (now if the bucket holds
        them, or there is no cap)."""
        if self.rate <= 0:
            return now
        self._refill(now)
        self.tokens -= nbytes
        if self.tokens >= 0:
            return now
        return now + (-self.tokens) / self.rate


class Link:
    """One direction of one connection: paced, delayed, bounded."""

    HEAD = 4096

    def __init__(self, reader, writer, rate, delay, buffer_bytes,
                 start_at, count, bucket, held=None):
        self.reader = reader
        self.writer = writer
        self.rate = float(rate)
        self.delay = delay
        self.buffer_bytes = buffer_bytes
        self.last_depart = start_at     # handshake: nothing before this
        self.count = count              # callable(nbytes)
        self.bucket = bucket            # the link, shared by all
        self.held = held                # callable(nbytes): bytes the
                                        # link held back (down only)
        self.queue = collections.deque()
        self.queued = 0
        self.changed = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        # ~10 ms of data per read at the capped rate
        self.read_size = max(16 * 1024, min(256 * 1024, int(rate / 100)))

    async def pump_in(self):
        """Read from the sender, stamp each chunk with its arrival time."""
        try:
            while True:
                while self.queued >= self.buffer_bytes:
                    self.room.clear()
                    await self.room.wait()
                data = await self.reader.read(self.read_size)
                if not data:
                    break
                now = time.monotonic()
                pieces = [data]
                if now >= self.last_depart and len(data) > self.HEAD:
                    # an idle link: the first bytes of a burst arrive
                    # after their own serialisation time, not the whole
                    # chunk's (time to first byte stays accurate)
                    pieces = [data[:self.HEAD], data[self.HEAD:]]
                for piece in pieces:
                    # the connection's own cap: a piece leaves no sooner
                    # than its serialisation after the one before it;
                    # the link's: no sooner than the shared bucket has
                    # its bytes.  Whichever is later sets the departure,
                    # so neither cap can lift the other.
                    own = max(now, self.last_depart) + \
                        len(piece) / self.rate
                    link = self.bucket.reserve(len(piece), now)
                    depart = max(own, link)
                    if link > own and self.held is not None:
                        self.held(len(piece))
                    self.last_depart = depart
                    self.queue.append((depart + self.delay, piece))
                    self.queued += len(piece)
                self.changed.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self.queue.append((None, None))     # end of stream
            self.changed.set()

    async def pump_out(self):
        """Deliver chunks to the receiver when they are due."""
        try:
            while True:
                while not self.queue:
                    self.changed.clear()
                    await self.changed.wait()
                due, data = self.queue.popleft()
                if data is None:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.writer.write(data)
                await self.writer.drain()
                self.queued -= len(data)
                self.count(len(data))
                self.room.set()
        except (ConnectionError, OSError):
            pass


class WanProxy:
    def __init__(self, upstream, rtt, rate, buffer_bytes, link_rate=0,
                 link_burst=64 * 1024):
        self.up_host, up_port = upstream.rsplit(":", 1)
        self.up_port = int(up_port)
        self.rtt = rtt
        self.rate = rate
        self.buffer_bytes = buffer_bytes
        self.stats = Stats()
        self.handlers = set()
        # one bucket per direction: a link is full duplex
        self.down_bucket = TokenBucket(link_rate, link_burst)
        self.up_bucket = TokenBucket(link_rate, link_burst)
        self.stats.link_mib = link_rate / MiB

    def set_link(self, mib):
        for b in (self.down_bucket, self.up_bucket):
            b.set_rate(mib * MiB)
        self.stats.link_mib = mib

    def _held(self, n):
        self.stats.link_held_bytes += n

    def _count_down(self, n):
        self.stats.down_bytes += n

    def _count_up(self, n):
        self.stats.up_bytes += n

    async def handle(self, c_reader, c_writer):
        me = asyncio.current_task()
        self.handlers.add(me)
        try:
            await self.relay(c_reader, c_writer)
        finally:
            self.handlers.discard(me)

    async def relay(self, c_reader, c_writer):
        self.stats.opened()
        accepted = time.monotonic()
        u_writer = None
        try:
            try:
                u_reader, u_writer = await asyncio.open_connection(
                    self.up_host, self.up_port)
            except OSError:
                return
            for w in (c_writer, u_writer):
                sock = w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY,
                                    1)
            one_way = self.rtt / 2
            # client -> upstream: the handshake's round trip comes first
            up = Link(c_reader, u_writer, self.rate, one_way,
                      self.buffer_bytes, accepted + self.rtt, self._count_up,
                      self.up_bucket)
            down = Link(u_reader, c_writer, self.rate, one_way,
                        self.buffer_bytes, accepted, self._count_down,
                        self.down_bucket, self._held)
            tasks = [asyncio.ensure_future(t) for t in
                     (up.pump_in(), up.pump_out(), down.pump_in(),
                      down.pump_out())]
            # once the upstream's side has been delivered (its EOF passed
            # on) or the client broke, the connection is over
            try:
                await tasks[3]
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self.stats.active -= 1
            for w in (c_writer, u_writer):
                if w is not None:
                    w.close()

    async def control(self, reader, writer):
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            cmd = line.strip()
            if cmd == b"reset-peak":
                self.stats.peak_active = self.stats.active
                cmd = b"stats"
            elif cmd.startswith(b"link "):
                mib = float(cmd[5:])
                if not math.isfinite(mib) or mib < 0:
                    raise ValueError("link cap %r" % mib)
                self.set_link(mib)
                cmd = b"stats"
            if cmd == b"stats":
                out = json.dumps(self.stats.as_dict())
            else:
                out = json.dumps({"error": "unknown command"})
            writer.write(out.encode() + b"\n")
            await writer.drain()
        except ValueError as e:
            writer.write(json.dumps({"error": str(e)}).encode() + b"\n")
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass
        finally:
            writer.close()


async def main_async(args):
    host, port = args.listen.rsplit(":", 1)
    proxy = WanProxy(args.upstream, args.rtt_ms / 1000.0,
                     args.rate_mib * MiB, args.buffer_kib * 1024,
                     args.link_mib * MiB, args.link_burst_kib * 1024)
    server = await asyncio.start_server(proxy.handle, host, int(port),
                                        backlog=1024)
    ctl = await asyncio.start_server(proxy.control, host, 0)
    lport = server.sockets[0].getsockname()[1]
    cport = ctl.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY %d %d" % (lport, cport), flush=True)
    await stop.wait()
    server.close()
    ctl.close()
    for t in list(proxy.handlers):
        t.cancel()
    await asyncio.gather(*proxy.handlers, return_exceptions=True)


def query(control_port, host="127.0.0.1", timeout=5, command="stats"):
    """The proxy's counters, from another process."""
    with socket.create_connection((host, control_port), timeout) as s:
        s.sendall(command.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--upstream", required=True, help="host:port")
    p.add_argument("--listen", default="127.0.0.1:0", help="host:port")
    p.add_argument("--rtt-ms", type=float, default=40.0)
    p.add_argument("--rate-mib", type=float, default=8.0,
                   help="MiB/s per connection and direction")
    p.add_argument("--buffer-kib", type=int, default=512)
    p.add_argument("--link-mib", type=float, default=0.0,
                   help="MiB/s of the whole link per direction, shared by "
                   "every connection (0: no cap)")
    p.add_argument("--link-burst-kib", type=int, default=64,
                   help="bytes the link lets through at once after a "
                   "quiet spell")
    args = p.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
