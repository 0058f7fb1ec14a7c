"""A TCP relay that delays what crosses it: the "latency on the link" fault, on real sockets.

Each device of a scenario reaches the broker through its own relay, so a latency fault slows
that device's link and nothing else. The delay applies to every chunk each way; order is kept.
Setting it is thread-safe and takes effect for the next chunk.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time

log = logging.getLogger(__name__)


class DelayRelay:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.delay = 0.0  # seconds, each way
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._closing = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="mfd-sim-relay", daemon=True).start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                down, _ = self._server.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(self.upstream, timeout=2)
                up.settimeout(None)  # the timeout was for connecting; a quiet link is fine
            except OSError:
                down.close()  # the broker is down: the device sees its connection refused
                continue
            with self._lock:
                self._socks += [down, up]
            for a, b in ((down, up), (up, down)):
                pipe: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
                threading.Thread(target=self._read, args=(a, b, pipe), daemon=True).start()
                threading.Thread(target=self._write, args=(b, a, pipe), daemon=True).start()

    def _read(self, src: socket.socket, dst: socket.socket,
              pipe: queue.SimpleQueue[tuple[float, bytes]]) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            pipe.put((time.monotonic() + self.delay, data))
            if not data:
                return

    def _write(self, dst: socket.socket, src: socket.socket,
               pipe: queue.SimpleQueue[tuple[float, bytes]]) -> None:
        while True:
            due, data = pipe.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # the latency itself: the one place a sleep is the point
            if not data:
                # One side closed: close both, as a cut link does.
                for s in (dst, src):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                    s.close()
                return
            try:
                dst.sendall(data)
            except OSError:
                src.close()
                return

    def close(self) -> None:
        self._closing.set()
        self._server.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.close()
