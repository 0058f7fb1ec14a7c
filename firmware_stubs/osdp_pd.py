"""An emulated OSDP reader (peripheral device, PD) on a pseudo-terminal, for tests and demos.

The reader is libosdp's own PD implementation (``osdp_sys.PeripheralDevice``), so the control
panel under test talks to the same Secure Channel, sequence-number and retry logic a
libosdp-based reader firmware runs. This module only gives it a wire and a card to read.

Transport: a pty, not libosdp's in-memory channel
-------------------------------------------------
In the field the panel talks RS-485 through a USB adapter that shows up as ``/dev/ttyUSB0``.
Here the PD owns the master side of a :class:`~readers.pty.PtyPort` and
the adapter under test opens the slave path with pyserial, exactly as it opens a real
adapter: its port opening, non-blocking reads, flushes and error handling all run for real.
Two in-process ``Channel`` objects wired to each other would skip all of that, and the
tests would prove less. The pty is reliable on Linux and needs no extra process.

What "power" means here
-----------------------
:meth:`OsdpPdStub.stop` is the reader losing power: it stops answering, but the wire (the
pty) stays, as the cable does. :meth:`OsdpPdStub.start` powers it up again with a fresh
libosdp context -- sequence numbers and any Secure Channel session are gone, as on a real
reboot -- and drops whatever the panel sent while it was off (a reader that was off did not
hear it). Keys survive, as they do in a reader's flash, including a key the panel set with
osdp_KEYSET while the reader was in install mode.

Secure Channel modes
--------------------
* ``scbk=<16 bytes>``: the reader has that key; a panel with another key fails the SC
  handshake (its cryptogram does not verify).
* ``scbk=None``: install mode. libosdp then accepts the public default key SCBK-D, so that a
  panel can set the real key with osdp_KEYSET. Meant for provisioning on a bench only.
* ``secure_channel=False``: a reader with Secure Channel disabled or unsupported (many ship
  that way). libosdp 3.2.9's PD always advertises and accepts SC, so the stub emulates it on
  the wire: any reply that would carry a security block (the answer to osdp_CHLNG) is
  replaced by ``osdp_NAK`` with error code 5, "security block not supported", which is what
  such a reader sends. libosdp's own sequence bookkeeping is untouched, so the panel can
  carry on in plaintext if it chooses to.

A wire tap: :attr:`OsdpPdStub.cleartext_card_replies` counts card reads (osdp_RAW replies)
the reader put on the wire without a security block, so a test can show that a refused
reader never sent a card number in clear.

Threads: the stub runs one daemon thread (``osdp-pd-<address>``) that owns the libosdp
context. :meth:`present` only queues the read; the thread submits it, so libosdp is never
called from two threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import threading
from enum import StrEnum
from types import TracebackType
from typing import Any

import osdp_sys

from readers.pty import PtyPort

log = logging.getLogger(__name__)

__all__ = ["SCBK_D", "CardFormat", "OsdpPdStub", "h10301"]

#: The OSDP default install key SCBK-D (public, from the standard): 0x30..0x3F.
SCBK_D = bytes(range(0x30, 0x40))

# libosdp must be refreshed at least every 50 ms; 10 ms keeps a reply within a few ms of the
# command arriving (the loop also wakes as soon as the panel's bytes arrive).
_TICK_S = 0.01
_JOIN_TIMEOUT_S = 2.0

# OSDP framing, only as much as the "no Secure Channel" emulation needs.
_SOM = 0x53
_CTRL_SEQ = 0x03
_CTRL_CRC = 0x04
_CTRL_SCB = 0x08
_REPLY_NAK = 0x41
_REPLY_RAW = 0x50  # osdp_RAW: a card read
_NAK_SC_UNSUPPORTED = 0x05


class CardFormat(StrEnum):
    """How the reader reports a card: osdp_RAW format codes.

    There is no ASCII (osdp_FMT) option: OSDP 2.2 deprecated it and libosdp 3.2.9's PD drops
    such events ("CardRead::format::OSDP_CARD_FMT_ASCII is deprecated. Ignoring").
    """

    WIEGAND = "wiegand"  # raw bits in the p/data/p Wiegand layout (format code 1)
    RAW = "raw"  # raw bits, layout not specified (format code 0)


_FORMAT_CODES = {
    CardFormat.RAW: osdp_sys.CARD_FMT_RAW_UNSPECIFIED,
    CardFormat.WIEGAND: osdp_sys.CARD_FMT_RAW_WIEGAND,
}


def h10301(facility: int, card: int) -> int:
    """The 26-bit HID H10301 frame for ``facility``/``card``, parity bits included.

    Bit 25 makes the first 13 bits even, bit 0 makes the last 13 odd; facility is 8 bits,
    card 16. ``h10301(2, 10482) == 0x00451E5``, the card in FIELD_NOTES.
    """
    if not (0 <= facility < 1 << 8 and 0 <= card < 1 << 16):
        raise ValueError(f"H10301 holds an 8-bit facility and a 16-bit card, got "
                         f"{facility}/{card}")
    body = facility << 16 | card
    even = (body >> 12).bit_count() & 1
    odd = 1 - ((body & 0xFFF).bit_count() & 1)
    return even << 25 | body << 1 | odd


def _crc16(data: bytes) -> int:
    # OSDP's CRC-16: polynomial 0x1021, initial value 0x1D0F, no reflection.
    crc = 0x1D0F
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = (crc << 1 ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _nak_sc_unsupported(reply: bytes) -> bytes:
    """The osdp_NAK(5) a reader without Secure Channel sends instead of ``reply``."""
    ctrl = reply[4] & _CTRL_SEQ | _CTRL_CRC  # same sequence number, CRC, no security block
    body = bytes([_SOM, reply[1], 9, 0, ctrl, _REPLY_NAK, _NAK_SC_UNSUPPORTED])
    crc = _crc16(body)
    return body + bytes([crc & 0xFF, crc >> 8])


class _PtyChannel:
    """libosdp's channel (``read``/``write``/``flush``) on the pty's master side.

    libosdp calls these from inside ``refresh()`` and cannot take a Python exception: one
    escaping would be left pending and break the next call. So every method swallows
    OS errors and reports "nothing read" / "nothing written" instead.
    """

    def __init__(self, fd: int, *, secure_channel: bool) -> None:
        self._fd = fd
        self._secure_channel = secure_channel
        #: Card reads this reader put on the wire without Secure Channel: what a tap on the
        #: RS-485 pair would read in clear.
        self.cleartext_card_replies = 0

    def read(self, max_bytes: int) -> bytes:
        try:
            ready, _, _ = select.select([self._fd], [], [], 0)
            return os.read(self._fd, max_bytes) if ready else b""
        except (OSError, ValueError):
            return b""

    def write(self, buf: bytes) -> int:
        data = bytes(buf)
        if (not self._secure_channel and len(data) > 4 and data[0] == _SOM
                and data[4] & _CTRL_SCB):
            # libosdp wrote one whole reply per call (checked against its 3.2.9 output).
            data = _nak_sc_unsupported(data)
        elif len(data) > 5 and data[0] == _SOM and not data[4] & _CTRL_SCB:
            self.cleartext_card_replies += data[5] == _REPLY_RAW
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            return -1
        return len(buf)

    def flush(self) -> None:
        while self.read(4096):
            pass


class OsdpPdStub:
    """An OSDP card reader on ``line`` at ``address``; see the module docstring for modes."""

    def __init__(self, line: PtyPort, *, address: int = 1, scbk: bytes | None,
                 secure_channel: bool = True, reader_no: int = 0) -> None:
        if not 0 <= address <= 126:
            raise ValueError(f"OSDP PD address must be 0..126, got {address}")
        if scbk is not None and len(scbk) != 16:
            raise ValueError(f"SCBK must be 16 bytes, got {len(scbk)}")
        self.line = line
        self.address = address
        self.scbk = scbk
        self.secure_channel = secure_channel
        self.reader_no = reader_no
        #: Commands the panel sent, as libosdp decoded them (dicts), oldest first.
        self.commands: list[dict[str, Any]] = []
        self._channels: list[_PtyChannel] = []
        self._online = False
        self._secure = False
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Unplugging the line powers the reader off first: the PD thread must not be left
        # selecting on a closed fd number that the next openpty() may reuse.
        line._on_close.append(self.stop)

    def __enter__(self) -> OsdpPdStub:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        mode = ("no-SC" if not self.secure_channel
                else "install-mode" if self.scbk is None else "SC")
        return f"OsdpPdStub({self.line.device!r}, address={self.address}, {mode})"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def online(self) -> bool:
        """libosdp's PD hears a panel talking to it (not: the panel accepted it)."""
        return self._online

    @property
    def secure(self) -> bool:
        """A Secure Channel session is active (as the PD sees it)."""
        return self._secure

    @property
    def cleartext_card_replies(self) -> int:
        """Card reads sent without Secure Channel since this stub was made: what a tap on
        the RS-485 pair would have read in clear."""
        return sum(c.cleartext_card_replies for c in self._channels)

    def start(self) -> None:
        """Power up: a fresh libosdp PD context on the line, listening for the panel."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        fd = self.line.fileno()
        channel = _PtyChannel(fd, secure_channel=self.secure_channel)
        channel.flush()  # what the panel sent while we were off was never heard
        self._channels.append(channel)
        with contextlib.suppress(queue.Empty):
            while True:  # nor were cards presented to a reader that was off
                self._events.get_nowait()
        info = {
            "name": f"pd-{self.address}", "address": self.address, "flags": 0,
            "channel": channel, "scbk": self.scbk,
            "version": 1, "model": 1, "vendor_code": 0x00A0_0B1C,
            "serial_number": 0x0001_0000 + self.address, "firmware_version": 0x0100,
        }
        if self.scbk is None:
            del info["scbk"]  # libosdp: no key means install mode
        caps = [{"function_code": osdp_sys.CAP_CARD_DATA_FORMAT, "compliance_level": 1,
                 "num_items": 1},
                {"function_code": osdp_sys.CAP_READERS, "compliance_level": 0,
                 "num_items": 1}]
        # libosdp prints its log to stdout and each context keeps the level it was created
        # with; keep the emulated firmware as quiet as the adapter keeps its own side.
        osdp_sys.set_loglevel(osdp_sys.LOG_CRIT)
        ctx = osdp_sys.PeripheralDevice(info, capabilities=caps)
        ctx.set_command_callback(self._on_command)
        self._online = self._secure = False
        self._stopping = stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ctx, fd, stopping),
                                        name=f"osdp-pd-{self.address}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Power off: stop answering. The line stays. Idempotent."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
        self._online = self._secure = False

    def present(self, card: bytes | int, fmt: CardFormat = CardFormat.WIEGAND, *,
                bits: int | None = None) -> bytes:
        """A card read, sent to the panel at its next poll; returns the card data bytes.

        ``card`` is the frame as an int (``bits`` long, default 26) or as bytes (``bits``
        default all of them), sent MSB first and padded with zero bits at the end.
        A read presented while the panel is not connected waits in libosdp's event queue;
        presenting a card to a reader that is off (not started) is a RuntimeError.
        """
        if not self.running:
            raise RuntimeError(f"{self!r} is off; start() it before presenting a card")
        if isinstance(card, int):
            nbits = 26 if bits is None else bits
            if card < 0 or card >> nbits:
                raise ValueError(f"card {card:#x} does not fit in {nbits} bits")
            nbytes = (nbits + 7) // 8
            data = (card << (nbytes * 8 - nbits)).to_bytes(nbytes, "big")
        else:
            data = bytes(card)
            nbits = len(data) * 8 if bits is None else bits
        if nbits < 0 or len(data) * 8 < nbits:
            # libosdp would send ``nbits`` bits read past the data (or die on none at all).
            raise ValueError(f"{len(data)} byte(s) of card data cannot carry {nbits} bits")
        self._events.put({"event": osdp_sys.EVENT_CARDREAD, "reader_no": self.reader_no,
                          "format": _FORMAT_CODES[fmt], "direction": 0, "length": nbits,
                          "data": data})
        return data

    # -- PD thread -------------------------------------------------------------------------

    def _on_command(self, command: dict[str, Any]) -> tuple[int, None]:
        # Called by libosdp inside refresh(), on the PD thread; must not raise.
        try:
            self.commands.append(command)
            if command.get("command") == osdp_sys.CMD_KEYSET:
                # Keep the key the panel set, as a reader stores it in flash.
                self.scbk = bytes(command["data"])
        except Exception:  # one escaping into libosdp would poison its next call
            return -1, None
        return 0, None

    def _run(self, ctx: Any, fd: int, stopping: threading.Event) -> None:
        while not stopping.is_set():
            with contextlib.suppress(queue.Empty):
                while True:
                    event = self._events.get_nowait()
                    try:
                        ctx.submit_event(event)
                    except (TypeError, ValueError) as exc:
                        # One bad event must not end the emulated reader's thread.
                        log.warning("emulated OSDP reader dropped an event: %s", exc)
            ctx.refresh()
            self._online = bool(ctx.is_online())
            self._secure = bool(ctx.is_sc_active())
            try:
                select.select([fd], [], [], _TICK_S)  # wake early when the panel sends
            except (OSError, ValueError):
                stopping.wait(_TICK_S)  # line closed (unplugged): idle until stopped
