"""EM4100 frames as sent by RDM6300-style 125 kHz readers. Pure: bytes in, frames out, no I/O.

Theory of operation
-------------------
An RDM6300 module has no commands; it prints one 14-byte frame on its UART each time it reads
a tag, and keeps reading (and printing) for as long as the tag stays in the field::

    0x02 | V V | T T T T T T T T | C C | 0x03
    STX    version  32-bit tag     XOR    ETX     (V, T, C are ASCII hex digits)

``V`` is the version / customer byte, ``T`` the tag (the number printed on fobs is the tag in
decimal, zero-padded to 10 digits), ``C`` the XOR of the five data bytes. Lower-case hex is
accepted on input (some clones send it); :func:`encode_frame` writes upper case like the
original module.

The line is noisy in practice: power-up glitches, a reader hot-plugged mid-frame, a tag
leaving the field while a frame is on the wire. So :class:`Em4100Decoder` is a small state
machine that never trusts a frame boundary it has not seen:

* **hunting** -- skip everything up to the next STX, silently (noise is not a frame);
* **in frame** -- collect exactly 12 hex digits, then require ETX.

A frame that goes wrong is *reported*, not raised: the decoder yields an
:class:`Em4100FrameError` (a :class:`~protocol.errors.FrameError`) and goes back to hunting.
If the byte that broke the frame is itself an STX, it starts the next frame -- that is what a
reader sending a fresh frame after a cut-off one looks like, and dropping it would lose a
good read. Every byte is looked at once, in order, whatever the chunking, so a stream decodes
to the same events however it is split.

Memory is bounded by design: garbage is discarded as it is scanned, a partial frame is at
most 13 bytes, and the only other state is the queue of decoded events the caller has not
collected yet (at most one per STX received).

Usage, h11-style::

    decoder = Em4100Decoder()
    decoder.receive_data(chunk)
    while (event := decoder.next_event()) is not None:
        if isinstance(event, Em4100Frame): ...   # a good read
        else: ...                                # an Em4100FrameError, already counted

or ``for event in decoder.feed(chunk): ...`` which does both. Nothing here raises on bad
input; :func:`encode_frame` raises :class:`ValueError` for out-of-range arguments because that
is a bug in the caller, not bad data on a wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from protocol.errors import FrameError
from readers.codecs._receivebuffer import ReceiveBuffer

__all__ = [
    "ETX",
    "FRAME_LEN",
    "STX",
    "Em4100Decoder",
    "Em4100Event",
    "Em4100Frame",
    "Em4100FrameError",
    "FrameFault",
    "checksum",
    "decode_frame",
    "encode_frame",
]

STX = 0x02
ETX = 0x03
_BODY_LEN = 12  # 2 version + 8 tag + 2 checksum hex digits
FRAME_LEN = 1 + _BODY_LEN + 1

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class Em4100Frame:
    """One good frame. ``raw`` is the 14 bytes as received (STX and ETX included)."""

    version: int
    tag: int
    raw: bytes = field(repr=False)

    @property
    def number(self) -> str:
        """The 10-digit decimal printed on EM4100 fobs (leading zeros kept: they are printed)."""
        return f"{self.tag:010d}"

    def __repr__(self) -> str:
        # The tag is a card identity; a frame must be safe to drop into a log line by accident.
        return f"Em4100Frame(version=0x{self.version:02X}, tag=<hidden>)"


class FrameFault(StrEnum):
    """Why a frame was rejected; stable strings for counters, logs and ``--json`` output."""

    CHECKSUM = "checksum"  # well formed, but the XOR does not match: a misread
    NON_HEX = "non_hex"  # a byte that is not a hex digit inside the frame
    SHORT = "short"  # ETX before the 12th digit
    TRUNCATED = "truncated"  # a new STX before the frame finished (cut off, then resent)
    OVERLONG = "overlong"  # 12 digits and then no ETX
    UNFRAMED = "unframed"  # decode_frame only: not one frame from STX to ETX


class Em4100FrameError(FrameError):
    """A rejected frame. ``raw`` holds the bytes of the broken frame, never put in the message.

    The message says what failed but not the digits, because the digits of a near-miss are
    still most of a card number and these errors end up in logs.
    """

    def __init__(self, fault: FrameFault, message: str, raw: bytes, *,
                 expected: int | None = None, found: int | None = None) -> None:
        super().__init__(f"bad EM4100 frame: {message}")
        self.fault = fault
        self.raw = raw
        self.expected = expected  # checksum the data XORs to (CHECKSUM only)
        self.found = found  # checksum the frame carried (CHECKSUM only)


Em4100Event: TypeAlias = Em4100Frame | Em4100FrameError


def checksum(version: int, tag: int) -> int:
    """XOR of the version byte and the four tag bytes (both assumed in range, as encoded)."""
    value = version
    for byte in tag.to_bytes(4, "big"):
        value ^= byte
    return value


def encode_frame(version: int, tag: int) -> bytes:
    """The 14 bytes an RDM6300 sends for ``tag``; upper-case hex like the real module."""
    if not 0 <= version <= 0xFF:
        raise ValueError(f"EM4100 version must fit in one byte (0..255), got {version}")
    if not 0 <= tag <= 0xFFFF_FFFF:
        raise ValueError(f"EM4100 tag must fit in 32 bits (0..4294967295), got {tag}")
    body = f"{version:02X}{tag:08X}{checksum(version, tag):02X}".encode("ascii")
    return bytes([STX]) + body + bytes([ETX])


def decode_frame(data: bytes) -> Em4100Frame:
    """Decode exactly one complete frame, for tools that hold a whole frame in hand.

    Raises :class:`Em4100FrameError`: the decoder's own report for a bad frame, or
    ``UNFRAMED`` if ``data`` is not one frame from STX to ETX with nothing around it.
    """
    decoder = Em4100Decoder()
    frame = decoder.feed_one(data)
    if isinstance(frame, Em4100Frame) and decoder.skipped_bytes == 0:
        return frame
    if not decoder.frames:
        what = "no complete frame (missing STX or ETX?)"
    else:
        what = "bytes outside the frame"
    raise Em4100FrameError(
        FrameFault.UNFRAMED,
        f"expected exactly one frame from STX to ETX and nothing else, found {what}",
        bytes(data),
    )


class Em4100Decoder(ReceiveBuffer[Em4100Event]):
    """Incremental decoder: :meth:`receive_data`, then :meth:`next_event` until ``None``.

    ``bad_frames`` counts reported errors and ``skipped_bytes`` the noise discarded while
    hunting for STX; both are there for a technician's health display.
    """

    __slots__ = ("_frame",)

    def __init__(self) -> None:
        super().__init__()
        # None while hunting; while in a frame, the bytes so far (STX included).
        self._frame: bytearray | None = None

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished frame held back until more data arrives (at most 13)."""
        return 0 if self._frame is None else len(self._frame)

    def receive_data(self, data: bytes) -> None:
        """Take bytes from the wire. Processed at once; only the events are queued."""
        pos = 0
        end = len(data)
        while pos < end:
            frame = self._frame
            if frame is None:
                # Hunting in bulk: noise can be long and this is the hot path on a bad line.
                start = data.find(STX, pos)
                if start < 0:
                    self.skipped_bytes += end - pos
                    return
                self.skipped_bytes += start - pos
                self._frame = bytearray((STX,))
                pos = start + 1
            else:
                self._step(frame, data[pos])
                pos += 1

    def _step(self, frame: bytearray, byte: int) -> None:
        digits = len(frame) - 1
        if digits < _BODY_LEN:
            if byte in _HEX_DIGITS:
                frame.append(byte)
            elif byte == STX:
                self._fail(frame, FrameFault.TRUNCATED,
                           f"new STX after {digits} of {_BODY_LEN} hex digits")
                self._frame = bytearray((STX,))  # the STX that cut it off starts the next one
            elif byte == ETX:
                frame.append(byte)
                self._fail(frame, FrameFault.SHORT,
                           f"ETX after {digits} of {_BODY_LEN} hex digits")
            else:
                frame.append(byte)
                self._fail(frame, FrameFault.NON_HEX,
                           f"byte 0x{byte:02X} at position {digits + 1} is not a hex digit")
        elif byte == ETX:
            frame.append(byte)
            self._finish(frame)
        elif byte == STX:
            self._fail(frame, FrameFault.OVERLONG,
                       f"new STX where ETX was due after {_BODY_LEN} digits")
            self._frame = bytearray((STX,))
        else:
            frame.append(byte)
            self._fail(frame, FrameFault.OVERLONG,
                       f"byte 0x{byte:02X} where ETX was due after {_BODY_LEN} digits")

    def _finish(self, frame: bytearray) -> None:
        raw = bytes(frame)
        version = int(raw[1:3], 16)
        tag = int(raw[3:11], 16)
        found = int(raw[11:13], 16)
        expected = checksum(version, tag)
        if found != expected:
            self._fail(
                frame, FrameFault.CHECKSUM,
                f"checksum mismatch: frame says 0x{found:02X}, data XOR to 0x{expected:02X}",
                expected=expected, found=found)
            return
        self._frame = None
        self._emit(Em4100Frame(version=version, tag=tag, raw=raw))

    def _fail(self, frame: bytearray, fault: FrameFault, message: str, *,
              expected: int | None = None, found: int | None = None) -> None:
        self._frame = None
        self._reject(
            Em4100FrameError(fault, message, bytes(frame), expected=expected, found=found))
