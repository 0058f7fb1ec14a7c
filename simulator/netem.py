"""A wide-area link between a device and its broker, on loopback: a TCP proxy that adds delay in
each direction, caps bandwidth, and fails the way real links fail.

Why not the kernel: netem (``tc qdisc ... netem delay``) needs privileges these machines do not
grant, and a proxy can be placed per test between one device and one broker without touching the
host. A proxy models the link at the byte-stream level, which is what MQTT over TCP sees: a chunk
read from one side is delivered to the other ``delay`` later, after the chunks before it, and no
faster than ``bandwidth`` bytes per second (each chunk occupies the link for ``len/bandwidth``
seconds, then travels ``delay``). TCP's own retransmissions are below what a proxy can show, so
loss appears as what an application sees of it: a stalled connection, a reset, a closed one.

Faults, each at any moment, for every connection through the proxy:

- ``blackhole()``: bytes in either direction vanish; connections stay open and new ones are
  accepted but never reach the broker (a route that silently died: only keep-alives notice);
- ``reset()``: every connection is reset (RST) at once, as by a NAT or firewall that forgot it;
  new connections work;
- ``cut()``: every connection is closed (FIN) and new ones are refused until ``restore()`` (a
  broken link or an unplugged cable; the name of "drop" in the issue that asked for this);
- ``restore()``: forward again;
- ``cut_at(direction, needle)`` / ``reset_at(direction, needle)``: the same, at the moment a
  chunk holding ``needle`` would cross in that direction ("up" or "down"); the chunk is lost
  with the connection (a message in flight when the link failed).

``was_cut`` is set whenever a cut or a reset happened: a test waits on it.

    proxy = WanProxy("127.0.0.1", broker_port, LinkProfile.rtt(40))
    device connects to proxy.host:proxy.port
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass

#: Bytes read per chunk: a chunk is the unit of delay and of bandwidth accounting.
CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """One-way delays in milliseconds and a bandwidth cap in bytes per second (0: none), each
    direction ("up" is device to broker)."""

    up_ms: float = 0.0
    down_ms: float = 0.0
    bandwidth: float = 0.0

    def __post_init__(self) -> None:
        if self.up_ms < 0 or self.down_ms < 0 or self.bandwidth < 0:
            raise ValueError("delays and bandwidth must not be negative")

    @classmethod
    def rtt(cls, ms: float, bandwidth: float = 0.0) -> LinkProfile:
        """A symmetric link with ``ms`` of round-trip time."""
        return cls(ms / 2, ms / 2, bandwidth)

    @property
    def rtt_ms(self) -> float:
        return self.up_ms + self.down_ms


class _Pipe:
    """One direction of one connection: a reader thread timestamps chunks, a writer thread
    delivers each when its time comes, in order."""

    def __init__(self, proxy: WanProxy, src: socket.socket, dst: socket.socket,
                 up: bool, conn: _Conn) -> None:
        self.proxy, self.src, self.dst, self.up, self.conn = proxy, src, dst, up, conn
        self._queue: deque[tuple[float, bytes]] = deque()
        self._cv = threading.Condition()
        self._eof = False
        self._link_free = 0.0
        name = "up" if up else "down"
        self._reader = threading.Thread(target=self._read, name=f"wan-{name}-r", daemon=True)
        self._writer = threading.Thread(target=self._write, name=f"wan-{name}-w", daemon=True)

    def start(self) -> None:
        self._reader.start()
        self._writer.start()

    def _read(self) -> None:
        try:
            while True:
                data = self.src.recv(CHUNK)
                if not data:
                    break
                self.proxy._count(self.up, len(data))
                if self.proxy._holed:
                    continue  # the black hole: read and forget
                if self.proxy._fires(self.up, data):
                    return  # lost with the connection
                profile = self.proxy.profile
                now = time.monotonic()
                start = max(now, self._link_free)
                if profile.bandwidth:
                    start += len(data) / profile.bandwidth
                self._link_free = start
                delay = (profile.up_ms if self.up else profile.down_ms) / 1000
                with self._cv:
                    self._queue.append((start + delay, data))
                    self._cv.notify()
        except OSError:
            pass
        with self._cv:
            self._eof = True
            self._cv.notify()

    def _write(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._queue and not self._eof:
                        self._cv.wait()
                    if not self._queue:
                        break
                    due, data = self._queue[0]
                    wait = due - time.monotonic()
                    if wait > 0:
                        # Woken early by a new chunk: it is due no sooner (order is kept).
                        self._cv.wait(wait)
                        continue
                    self._queue.popleft()
                if self.proxy._holed:
                    continue
                self.dst.sendall(data)
            # The sender closed its side: pass the half-close on, after the data before it.
            with contextlib.suppress(OSError):
                self.dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.conn.closed_one()

    def join(self, timeout: float) -> None:
        self._reader.join(timeout)
        self._writer.join(timeout)


class _Conn:
    def __init__(self, proxy: WanProxy, client: socket.socket,
                 server: socket.socket | None) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self._open = 2
        self._lock = threading.Lock()
        self.pipes: list[_Pipe] = []
        if server is not None:
            self.pipes = [_Pipe(proxy, client, server, True, self),
                          _Pipe(proxy, server, client, False, self)]

    def start(self) -> None:
        for p in self.pipes:
            p.start()

    def closed_one(self) -> None:
        with self._lock:
            self._open -= 1
            done = self._open == 0
        if done:
            self.close()

    def close(self, rst: bool = False) -> None:
        for s in (self.client, self.server):
            if s is None:
                continue
            if rst:
                # Linger 0: close sends RST instead of FIN, as a forgotten NAT entry does.
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # Wake the pipe thread blocked in recv on it: until that returns, the socket
                # stays open and the peer of a quiet link would see the reset only when it
                # next sent something.
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RD)
            else:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        self.proxy._forget(self)


class WanProxy:
    """Listens on ``host:port`` (a free loopback port) and forwards to ``target`` through the
    link described by ``profile`` (changeable while running)."""

    def __init__(self, target_host: str, target_port: int,
                 profile: LinkProfile | None = None, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.profile = profile or LinkProfile()
        self._listener = socket.create_server((host, 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._conns: set[_Conn] = set()
        self._holed = False
        self._refusing = False
        self._closed = False
        self._trigger: tuple[bool, bytes, str] | None = None
        self.was_cut = threading.Event()
        #: Connections accepted, and bytes received from each side, swallowed ones included
        #: (a test's positive signals).
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._thread = threading.Thread(target=self._accept, name="wan-accept", daemon=True)
        self._thread.start()

    # -- faults

    def blackhole(self) -> None:
        self._holed = True

    def reset(self) -> None:
        self._trigger = None
        for conn in self._take_all():
            conn.close(rst=True)
        self.was_cut.set()

    def cut(self) -> None:
        # Refusing from here on, and every connection taken, in one step: a connection the
        # accept thread was still setting up is refused when it registers (_accept), never
        # left open past the cut (a fresh-clone CI run saw that once).
        conns = self._take_all(refusing=True)
        self._trigger = None
        for conn in conns:
            conn.close()
        self.was_cut.set()

    def cut_at(self, direction: str, needle: bytes) -> None:
        self._arm(direction, needle, "cut")

    def reset_at(self, direction: str, needle: bytes) -> None:
        self._arm(direction, needle, "reset")

    def _arm(self, direction: str, needle: bytes, kind: str) -> None:
        if direction not in ("up", "down"):
            raise ValueError("direction is 'up' (device to broker) or 'down'")
        self.was_cut.clear()
        self._trigger = (direction == "up", needle, kind)

    def _fires(self, up: bool, data: bytes) -> bool:
        with self._lock:
            trigger = self._trigger
            fire = trigger is not None and trigger[0] == up and trigger[1] in data
            if fire:
                self._trigger = None
        if fire and trigger is not None:
            if trigger[2] == "cut":
                self.cut()
            else:
                self.reset()
        return fire

    def restore(self) -> None:
        self._holed = False
        self._refusing = False

    def set_profile(self, profile: LinkProfile) -> None:
        self.profile = profile

    # -- plumbing

    def _take_all(self, *, refusing: bool = False) -> list[_Conn]:
        """Every connection, forgotten; with ``refusing``, new ones refused from the same
        instant (under the lock that _accept registers them under)."""
        with self._lock:
            if refusing:
                self._refusing = True
            conns, self._conns = list(self._conns), set()
        return conns

    def _forget(self, conn: _Conn) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _count(self, up: bool, n: int) -> None:
        with self._lock:
            if up:
                self.bytes_up += n
            else:
                self.bytes_down += n

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._closed:
                client.close()
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._refusing:
                client.close()
                continue
            server = None
            if not self._holed:
                try:
                    server = socket.create_connection(self.target, timeout=5)
                    server.settimeout(None)
                    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    client.close()
                    continue
            conn = _Conn(self, client, server)
            with self._lock:
                refused = self._refusing  # cut() while it was being set up
                if not refused:
                    self.connections += 1
                    self._conns.add(conn)
            if refused:
                client.close()
                if server is not None:
                    server.close()
                continue
            conn.start()

    def close(self) -> None:
        self._closed = True
        # Shut down before closing: on Linux, close alone does not wake a thread in accept().
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        for conn in self._take_all():
            conn.close()
        self._thread.join(timeout=2)

    def __enter__(self) -> WanProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
