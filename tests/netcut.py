"""A TCP proxy between a device and the broker whose network a test can cut: at once, or at the
moment a given message passes (the message itself is lost with the connection).

The device connects to ``proxy.port`` instead of the broker's. ``cut()`` closes every
connection through it and refuses new ones until ``restore()``; ``cut_at(direction, needle)``
does the same as soon as a chunk containing ``needle`` would be forwarded in that direction
("up": device -> broker, "down": broker -> device), and drops that chunk. A refused connection
is accepted and closed at once, as a broken network path looks to the device's reconnect loop.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass


@dataclass
class _Trigger:
    direction: str
    needle: bytes


class NetCut:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._up = True
        self._conns: list[socket.socket] = []
        self._trigger: _Trigger | None = None
        #: Set when a cut happened (by ``cut`` or a trigger); a test waits on it.
        self.was_cut = threading.Event()
        #: How many connections were accepted while up (the device's reconnects show here).
        self.connections = 0
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="netcut", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ the test's side

    def cut(self) -> None:
        with self._lock:
            self._up = False
            conns, self._conns = self._conns, []
            self._trigger = None
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.was_cut.set()

    def cut_at(self, direction: str, needle: bytes) -> None:
        assert direction in ("up", "down")
        with self._lock:
            self._trigger = _Trigger(direction, needle)
        self.was_cut.clear()

    def restore(self) -> None:
        with self._lock:
            self._up = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    # ------------------------------------------------------------ forwarding

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                up = self._up
            if not up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns += [client, upstream]
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "down"),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            with self._lock:
                trigger = self._trigger
                fire = (trigger is not None and trigger.direction == direction
                        and trigger.needle in data)
            if fire:
                self.cut()  # the chunk is lost with the connection
                return
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
