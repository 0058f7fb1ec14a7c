"""A virtual contactless card for vsmartcard's vpcd driver, for tests, benches and demos.

vpcd is a pcscd reader driver whose "reader" is a TCP port: a card is a client that connects
to it (``DEVICENAME /dev/null:PORT`` in pcscd's reader.conf; the second slot is PORT+1).
Connecting is putting the card on the reader, disconnecting is taking it off. pcscd notices
either at its next presence poll (every 400 ms, compiled in), which it does by asking the
card for its ATR.

Wire format, both directions: a 2-byte big-endian length, then that many bytes. From vpcd, a
1-byte payload is a control code (:data:`POWER_OFF`, :data:`POWER_ON`, :data:`RESET`,
:data:`GET_ATR`; only GET_ATR is answered, with the ATR); anything longer is a C-APDU that
must be answered with an R-APDU. vpcd waits for that answer without a timeout, so a card that
stays silent hangs the reader (and any application transmitting to it) until it is removed;
:attr:`VirtualCard.silent` reproduces that on purpose.

The card is a contactless card behind a PC/SC part 3 reader: it answers the pseudo-APDU
GET DATA UID (``FF CA 00 00 00``) with ``UID 90 00``, as a reader does for the card in its
field, and presents the MIFARE Classic 1K ATR of PC/SC part 3 by default. Tests make it
misbehave through :attr:`VirtualCard.uid_status` (answer GET UID with only that status word,
e.g. ``6A 81`` "not supported" or ``63 00`` "failed") and :attr:`VirtualCard.silent`.

Layers: :class:`MessageBuffer` (framing) and :class:`CardLogic` (what the card answers) are
pure and tested on their own; :class:`VirtualCard` only moves bytes between them and a socket.

Latency: vpcd writes a message's length and payload as separate small segments. With
Linux's delayed ACK the second one waits ~40 ms for the ACK of the first (Nagle on vpcd's
side), so every APDU would cost ~44 ms. ``TCP_QUICKACK`` on the card's socket makes the
kernel ACK at once -- but the kernel drops back to delayed-ACK mode on its own, so it must be
re-armed after every receive, not set once. ``TCP_NODELAY`` keeps our own answers from
waiting on vpcd's ACKs the same way.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType

__all__ = ["GET_ATR", "GET_UID", "MIFARE_CLASSIC_1K_ATR", "POWER_OFF", "POWER_ON", "RESET",
           "CardLogic", "MessageBuffer", "VirtualCard", "encode_message"]

_log = logging.getLogger(__name__)

#: Control codes vpcd sends as 1-byte messages.
POWER_OFF = 0
POWER_ON = 1
RESET = 2
GET_ATR = 4

#: PC/SC part 3 ATR of a MIFARE Classic 1K card seen through a contactless reader.
MIFARE_CLASSIC_1K_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")
#: GET DATA, UID of the card in the field, full length (PC/SC part 3, 3.2.2.1.3).
GET_UID = bytes.fromhex("FFCA000000")

SW_OK = b"\x90\x00"
SW_END_OF_DATA = b"\x62\x82"  # Le asked for more than there is: data follows anyway
SW_WRONG_LENGTH = b"\x67\x00"
SW_NOT_SUPPORTED = b"\x6a\x81"
SW_WRONG_P1P2 = b"\x6b\x00"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_CLA_NOT_SUPPORTED = b"\x6e\x00"

_MAX_MESSAGE = 0xFFFF
_JOIN_TIMEOUT_S = 2.0


def encode_message(payload: bytes) -> bytes:
    """One vpcd message: the 2-byte big-endian length, then ``payload``."""
    if len(payload) > _MAX_MESSAGE:
        raise ValueError(f"vpcd message of {len(payload)} bytes exceeds {_MAX_MESSAGE}")
    return struct.pack(">H", len(payload)) + payload


class MessageBuffer:
    """Reassembles vpcd messages from a byte stream cut anywhere (sans-I/O).

    ``feed(data)`` returns the payloads completed by ``data``, in order; a partial message
    waits for more. Every byte sequence is a valid stream, so there is no error case.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 2:
            size = (self._buf[0] << 8) | self._buf[1]
            if len(self._buf) < 2 + size:
                break
            out.append(bytes(self._buf[2:2 + size]))
            del self._buf[:2 + size]
        return out

    @property
    def pending(self) -> int:
        """Bytes held for a message not yet complete."""
        return len(self._buf)


class CardLogic:
    """What the card answers to each vpcd message (pure; no sockets, no threads).

    ``handle(payload)`` returns the answer payload, or None when nothing is to be sent
    (power and reset codes, or any APDU while :attr:`silent`).
    """

    def __init__(self, uid: bytes, *, atr: bytes = MIFARE_CLASSIC_1K_ATR,
                 uid_status: bytes | None = None, silent: bool = False) -> None:
        if not uid:
            raise ValueError("a card needs a UID of at least one byte")
        if not atr:
            raise ValueError("a card needs an ATR")
        self.uid = bytes(uid)
        self.atr = bytes(atr)
        #: When set, GET UID is answered with only this status word (e.g. ``6A 81``).
        self.uid_status = uid_status
        #: When set, APDUs are never answered (control codes still are).
        self.silent = silent
        self.powered = False
        self.atr_requests = 0
        self.apdus: list[bytes] = []

    def handle(self, payload: bytes) -> bytes | None:
        if len(payload) == 1:
            return self._control(payload[0])
        if not payload:
            return None  # vpcd never sends these; nothing sensible to answer
        self.apdus.append(payload)
        if self.silent:
            return None
        return self._apdu(payload)

    def _control(self, code: int) -> bytes | None:
        if code == GET_ATR:
            self.atr_requests += 1
            return self.atr
        if code in (POWER_ON, RESET):
            self.powered = True
        elif code == POWER_OFF:
            self.powered = False
        else:
            _log.debug("virtual card: unknown vpcd control code %d ignored", code)
        return None

    def _apdu(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[:4]
        if cla != 0xFF:
            # A MIFARE Classic has no ISO 7816-4 application; only the reader's class FF
            # pseudo-APDUs mean anything here.
            return SW_CLA_NOT_SUPPORTED
        if ins != 0xCA:
            return SW_INS_NOT_SUPPORTED
        if p1 == 0x01 and p2 == 0x00:
            return SW_NOT_SUPPORTED  # historical bytes / ATS: a Classic has none
        if (p1, p2) != (0x00, 0x00):
            return SW_WRONG_P1P2
        if self.uid_status is not None:
            return bytes(self.uid_status)
        le = apdu[4] if len(apdu) >= 5 else 0
        if le == 0:
            return self.uid + SW_OK  # Le = 00: the whole UID, whatever its length
        if le < len(self.uid):
            return b"\x6c" + bytes([len(self.uid)])  # wrong Le; XX is the right one
        if le > len(self.uid):
            return self.uid + SW_END_OF_DATA
        return self.uid + SW_OK


class VirtualCard:
    """A contactless card on a vpcd slot: :meth:`insert` puts it on the reader, :meth:`remove`
    takes it off.

    ``port`` is the vpcd slot's TCP port. One reader thread per insertion answers vpcd; it
    ends when the card is removed or vpcd closes the connection (pcscd stopped). Counters
    and the last APDUs are kept in :attr:`logic` for tests; :meth:`wait_for` waits on them.
    """

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1",
                 atr: bytes = MIFARE_CLASSIC_1K_ATR, uid_status: bytes | None = None,
                 silent: bool = False, quickack: bool = True) -> None:
        self.host = host
        self.port = port
        self.atr = bytes(atr)
        self.quickack = quickack
        self._uid_status = uid_status
        self._silent = silent
        self.logic: CardLogic | None = None
        #: ``time.perf_counter()`` when the card last connected (the physical "tap").
        self.inserted_at: float | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "inserted" if self.inserted else "removed"
        return f"VirtualCard({self.host}:{self.port}, {state})"

    def __enter__(self) -> VirtualCard:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.remove()

    # -- behaviour switches (take effect on the next APDU) -----------------------------------

    @property
    def uid_status(self) -> bytes | None:
        return self._uid_status

    @uid_status.setter
    def uid_status(self, value: bytes | None) -> None:
        self._uid_status = value
        if self.logic is not None:
            self.logic.uid_status = value

    @property
    def silent(self) -> bool:
        return self._silent

    @silent.setter
    def silent(self, value: bool) -> None:
        self._silent = value
        if self.logic is not None:
            self.logic.silent = value

    # -- insertion and removal ---------------------------------------------------------------

    @property
    def inserted(self) -> bool:
        """True while the connection to vpcd is up (vpcd may still drop it)."""
        return self._thread is not None and self._thread.is_alive()

    def insert(self, uid: bytes, *, timeout: float = 2.0) -> None:
        """Put a card with ``uid`` on the reader: connect to vpcd on :attr:`port`."""
        if not self.port:
            raise ValueError("VirtualCard.insert needs the vpcd port")
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.attach(sock, uid)

    def attach(self, sock: socket.socket, uid: bytes) -> None:
        """Serve an already connected socket (a socketpair in unit tests) as card ``uid``."""
        self.remove()
        logic = CardLogic(uid, atr=self.atr, uid_status=self._uid_status, silent=self._silent)
        with self._lock:
            self.logic = logic
            self._sock = sock
            self.inserted_at = time.perf_counter()
            self._thread = threading.Thread(target=self._serve, args=(sock, logic),
                                            name=f"vpcd-card-{self.port}", daemon=True)
            self._thread.start()

    def remove(self) -> None:
        """Take the card off the reader (close the connection). Idempotent."""
        with self._lock:
            sock, thread = self._sock, self._thread
            self._sock = self._thread = None
        if sock is not None:
            # shutdown() wakes the thread's blocking recv(); close() alone would not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
        if sock is not None:
            sock.close()

    def wait_for(self, predicate: Callable[[CardLogic], bool], timeout: float) -> bool:
        """Wait until ``predicate(logic)`` holds (checked after each message handled)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                logic = self.logic
                if logic is not None and predicate(logic):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)

    # -- card thread ---------------------------------------------------------------------

    def _arm_quickack(self, sock: socket.socket) -> None:
        if self.quickack and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def _serve(self, sock: socket.socket, logic: CardLogic) -> None:
        buffer = MessageBuffer()
        self._arm_quickack(sock)
        try:
            while True:
                data = sock.recv(4096)
                if not data:
                    break  # vpcd closed: pcscd stopped or the slot was reset
                self._arm_quickack(sock)  # the kernel drops quick-ACK mode by itself
                for payload in buffer.feed(data):
                    answer = logic.handle(payload)
                    if answer is not None:
                        sock.sendall(encode_message(answer))
                    with self._changed:
                        self._changed.notify_all()
        except OSError as exc:
            # remove() shuts the socket down under us; anything else is vpcd going away.
            _log.debug("virtual card on port %s: connection ended: %s", self.port, exc)
        finally:
            with self._changed:
                self._changed.notify_all()
