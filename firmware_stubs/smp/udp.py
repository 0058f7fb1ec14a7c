"""SMP over UDP, the device's side: one SMP packet per datagram, each reply to its sender.

This is the transport of Zephyr's ``CONFIG_MCUMGR_TRANSPORT_UDP`` (port 1337 by default), the
one smpclient's ``SMPUDPTransport`` and ``smpmgr --ip`` speak. Unlike the serial transport there
is no framing, no base64 and no CRC: the datagram is the packet and UDP's checksum guards it. A
datagram that is not an SMP packet is dropped without an answer (the pure server decides that,
firmware_stubs/smp/server.py), and a reply goes back to the address the request came from, so
several tools may talk to one device.

The endpoint owns the socket and one thread; what a datagram means is its ``handle`` callable
(the device's, under the device's own lock). A reply that asks for a reset is sent first, then
``on_reset`` runs on the same thread: while it runs nothing is read, and what arrived meanwhile
is thrown away afterwards (:meth:`UdpEndpoint.drain`), as a board in reset loses what is sent
to it. The socket stays bound through the reboot so the device keeps its address.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable

from firmware_stubs.smp.server import Reply

__all__ = ["DEFAULT_PORT", "MAX_DATAGRAM", "UdpEndpoint"]

log = logging.getLogger(__name__)

#: Zephyr's CONFIG_MCUMGR_TRANSPORT_UDP_PORT, and the only port ``smpmgr --ip`` can reach.
DEFAULT_PORT = 1337
#: The largest datagram read; SMP's own length field bounds a packet far below it.
MAX_DATAGRAM = 65535


class UdpEndpoint:
    """A bound UDP socket whose thread hands each datagram to ``handle`` and sends back its
    reply. ``port=0`` takes a free port; :attr:`address` says which. Runs from :meth:`start`
    until :meth:`close`."""

    def __init__(self, handle: Callable[[bytes], Reply], *, host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, on_reset: Callable[[], None] | None = None) -> None:
        self._handle = handle
        self._on_reset = on_reset
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.settimeout(0.05)  # how soon close() is noticed
        self.requests = 0
        self.dropped = 0  # datagrams that arrived while the device was rebooting
        self._stopping = threading.Event()
        self._boot: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name=f"smp-udp-{self.port}",
                                        daemon=True)

    @property
    def host(self) -> str:
        return str(self.sock.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def address(self) -> str:
        """The address as ``mfd flash --port`` takes it: ``udp:HOST:PORT``."""
        return f"udp:{self.host}:{self.port}"

    def start(self, *, boot: Callable[[], None] | None = None) -> UdpEndpoint:
        """Start the thread; it runs ``boot`` first (the device's power-on), then serves."""
        self._boot = boot
        self._thread.start()
        return self

    def stop_serving(self) -> None:
        """Stop answering (the board lost power); callable from the thread itself."""
        self._stopping.set()

    def close(self) -> None:
        """Stop the thread, then release the socket. Idempotent."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(30.0)
        self.sock.close()

    def drain(self) -> int:
        """Throw away every datagram waiting in the socket; return how many."""
        n = 0
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    self.sock.recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break  # an ICMP error queued for an earlier reply: nothing to read
                n += 1
        finally:
            self.sock.settimeout(0.05)
        self.dropped += n
        return n

    def _run(self) -> None:
        if self._boot is not None:
            self._boot()
            self.drain()
        while not self._stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError as exc:
                # A peer that went away makes the next recv report its ICMP error on Linux.
                if self._stopping.is_set():
                    return
                log.debug("udp: %s", exc)
                continue
            self.requests += 1
            reply = self._handle(data)
            if reply.packet is not None:
                with contextlib.suppress(OSError):
                    self.sock.sendto(reply.packet, peer)
            if reply.reset and self._on_reset is not None:
                self._on_reset()
                self.drain()
