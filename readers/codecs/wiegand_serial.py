"""Wiegand frames carried over a serial line as bit count + bits. Pure: bytes in, frames out.

Theory of operation
-------------------
A Wiegand reader has no serial port: it pulses D0/D1 once per bit. To get it onto a USB or
RS-232 line, a small bridge (a microcontroller on D0/D1, or the "Wiegand to RS-232"
converters sold for the purpose) counts the bits and prints them. Commercial converters
disagree on how, and most drop the parity bits, which throws away the only error check
Wiegand has and, with it, the information that tells a 26-bit from a 34-bit card. So mfdkit
defines one line format that keeps everything, and this module decodes it::

    W NN : HHHH...H CR LF
    e.g.  W26:00451E5\\r\\n    (HID H10301, facility 2, card 10482)

* ``W`` -- start of frame (never a digit, so it also marks where to resynchronise);
* ``NN`` -- the bit count, exactly two decimal digits, ``01`` to ``99``;
* ``:`` -- separator;
* ``H...H`` -- the bits as they arrived, first bit = most significant, right-aligned in
  exactly ``ceil(NN / 4)`` hex digits (upper case when sent; lower case accepted), parity
  bits included; bits above ``NN`` must be zero;
* CR LF -- end of frame (a bare LF is accepted; the CR is optional).

Who emits it: mfdkit's own D0/D1 bridge firmware and :class:`WiegandSerialStub` in
``firmware_stubs.serial_readers``. No off-the-shelf converter is known to emit exactly this;
one that prints just the data bits as hex (``XXYYZZ`` CR) is an ASCII reader to mfdkit (family
``twn4`` with ``base=hex``), with the card number conversion done by the site's pipeline.
The ``RR0026...`` style some serial readers use (bit count, then the bits) carries the same
information in a different spelling; it is not decoded here.

The frame is then decoded with :mod:`readers.numbers.wiegand`. The layout comes from configuration
(``format=h10301`` in the reader spec) or, when that is not set, from the bit count -- if the
count names exactly one known format. 37 bits is H10304 *and* H10302, which parity cannot
tell apart, so a 37-bit frame without configuration is rejected (``ambiguous``, the message
says to set ``format=``) rather than guessed. A parity failure is a misread: the frame is
rejected and counted like any other bad frame, never delivered.

The decoder is a line machine: bytes up to LF form a line; a ``W`` inside a line starts a new
frame, so noise before a frame costs no good read. Anything that is not a valid frame --
noise, a cut-off frame, a wrong length -- is reported as a :class:`WiegandSerialError` (a
:class:`~protocol.errors.FrameError`) and decoding resumes. A line with no end within
:data:`LINE_LIMIT` bytes is reported once as ``overlong`` and skipped up to the next LF or
``W``. Blank lines are skipped silently. Memory is bounded by :data:`LINE_LIMIT` plus the
events not yet collected.

The canonical card number (:attr:`WiegandFrame.number`) is ``FACILITY:CARD`` in decimal, or
``CARD`` for formats without a facility code (H10302).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from protocol.errors import ConfigError, FrameError
from readers.codecs._receivebuffer import ReceiveBuffer
from readers.numbers import wiegand

__all__ = [
    "LINE_LIMIT",
    "START",
    "WiegandFault",
    "WiegandFrame",
    "WiegandSerialDecoder",
    "WiegandSerialError",
    "WiegandSerialEvent",
    "decode_frame",
    "encode_card",
    "encode_frame",
]

START = ord("W")
_LF = 0x0A
_LINE_ENDS = b"\r\n"
_MAX_BITS = 99
#: Longest line kept: ``W99:`` + 25 hex digits + CR, with a little slack.
LINE_LIMIT = 32
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DEC = frozenset(b"0123456789")


class WiegandFault(StrEnum):
    """Why a frame was rejected; stable strings for counters, logs and ``--json`` output."""

    NOISE = "noise"  # bytes that are not a frame (no 'W' at the start)
    TRUNCATED = "truncated"  # a new 'W' before the frame ended
    OVERLONG = "overlong"  # no line end within LINE_LIMIT bytes
    SYNTAX = "syntax"  # not W, two digits, ':' (or a bit count of 00)
    NON_HEX = "non_hex"  # a byte that is not a hex digit among the bits
    DIGITS = "digits"  # the wrong number of hex digits for the bit count
    PADDING = "padding"  # bits set above the bit count
    UNKNOWN_LENGTH = "unknown_length"  # no supported format has that many bits
    AMBIGUOUS = "ambiguous"  # several formats have that many bits; configure format=
    LENGTH = "length"  # the configured format has another length
    PARITY = "parity"  # a parity bit does not hold: a misread
    UNFRAMED = "unframed"  # decode_frame only: not exactly one frame


class WiegandSerialError(FrameError):
    """A rejected frame. ``raw`` holds its bytes, never put in the message (they are the card)."""

    def __init__(self, fault: WiegandFault, message: str, raw: bytes) -> None:
        super().__init__(f"bad Wiegand serial frame: {message}")
        self.fault = fault
        self.raw = raw


@dataclass(frozen=True, slots=True)
class WiegandFrame:
    """One good frame: the decoded card and the line as received (line end included)."""

    card: wiegand.WiegandCard
    raw: bytes = field(repr=False)

    @property
    def number(self) -> str:
        """Canonical number: ``FACILITY:CARD`` in decimal, or ``CARD`` without a facility."""
        if self.card.facility is None:
            return str(self.card.card)
        return f"{self.card.facility}:{self.card.card}"

    def __repr__(self) -> str:
        return f"WiegandFrame(format={self.card.format!r}, bits={self.card.bit_count})"


WiegandSerialEvent: TypeAlias = WiegandFrame | WiegandSerialError


def encode_frame(bit_count: int, bits: int) -> bytes:
    """The line for a ``bit_count``-bit frame ``bits`` (first bit most significant)."""
    if not 1 <= bit_count <= _MAX_BITS:
        raise ValueError(f"bit count must be 1..{_MAX_BITS}, got {bit_count}")
    if not 0 <= bits < (1 << bit_count):
        raise ValueError(f"bits must fit in {bit_count} bits")
    digits = -(-bit_count // 4)
    return f"W{bit_count:02d}:{bits:0{digits}X}\r\n".encode("ascii")


def encode_card(fmt: str, facility: int | None, card: int, *, bad_parity: bool = False) -> bytes:
    """The line for a card in Wiegand format ``fmt``; ``bad_parity`` flips the last bit (a
    parity bit in every supported format) to make a misread."""
    layout = wiegand.get_format(fmt)
    bits = wiegand.encode(layout.name, facility, card)
    if bad_parity:
        bits ^= 1
    return encode_frame(layout.bit_count, bits)


def decode_frame(data: bytes, fmt: str | None = None) -> WiegandFrame:
    """Decode exactly one complete frame, for tools. Raises :class:`WiegandSerialError`."""
    decoder = WiegandSerialDecoder(fmt)
    frame = decoder.feed_one(data)
    if isinstance(frame, WiegandFrame):
        return frame
    what = "no complete frame (missing line end?)" if not decoder.frames else "more than one frame"
    raise WiegandSerialError(WiegandFault.UNFRAMED,
                             f"expected exactly one frame, found {what}", bytes(data))


class WiegandSerialDecoder(ReceiveBuffer[WiegandSerialEvent]):
    """Incremental decoder: :meth:`receive_data`, then :meth:`next_event` until ``None``.

    ``fmt`` names the Wiegand format (:data:`readers.numbers.wiegand.FORMATS`); ``None`` infers it
    from the bit count where that is unambiguous. An unknown name is a :class:`ConfigError`.
    """

    __slots__ = ("_line", "_skipping", "format")

    def __init__(self, fmt: str | None = None) -> None:
        if fmt is not None:
            try:
                fmt = wiegand.get_format(fmt).name
            except wiegand.WiegandError as exc:
                raise ConfigError(f"Wiegand serial reader 'format': {exc}") from None
        super().__init__()
        self.format = fmt
        self._line = bytearray()
        self._skipping = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished line held back (at most :data:`LINE_LIMIT`)."""
        return len(self._line)

    def receive_data(self, data: bytes) -> None:
        """Take bytes from the wire. Processed at once; only the events are queued."""
        line = self._line
        for byte in data:
            if byte == _LF:
                if self._skipping:
                    self._skipping = False
                    self.skipped_bytes += 1
                else:
                    self._end_line(bytes(line) + b"\n")
                    line.clear()
            elif byte == START:
                self._skipping = False
                if line.strip(_LINE_ENDS):
                    fault = WiegandFault.TRUNCATED if line[:1] == b"W" else WiegandFault.NOISE
                    what = ("a new 'W' before the frame ended" if fault is WiegandFault.TRUNCATED
                            else f"{len(line)} bytes that are not a frame before a 'W'")
                    self._fail(fault, what, bytes(line))
                else:
                    self.skipped_bytes += len(line)
                line.clear()
                line.append(byte)
            elif self._skipping:
                self.skipped_bytes += 1
            else:
                line.append(byte)
                if len(line) > LINE_LIMIT:
                    self._fail(WiegandFault.OVERLONG,
                               f"no line end within {LINE_LIMIT} bytes", bytes(line))
                    line.clear()
                    self._skipping = True

    def _end_line(self, raw: bytes) -> None:
        body = raw.strip(_LINE_ENDS)
        if not body:
            self.skipped_bytes += len(raw)
            return
        try:
            card = self._parse(body, raw)
        except WiegandSerialError as exc:
            self._reject(exc)
            return
        self._emit(WiegandFrame(card, raw))

    def _parse(self, body: bytes, raw: bytes) -> wiegand.WiegandCard:
        def bad(fault: WiegandFault, message: str) -> WiegandSerialError:
            return WiegandSerialError(fault, message, raw)

        if body[:1] != b"W":
            raise bad(WiegandFault.NOISE, f"a line of {len(body)} bytes that is not a frame")
        count_text, colon, hex_text = body[1:3], body[3:4], body[4:]
        if len(count_text) != 2 or any(b not in _DEC for b in count_text) or colon != b":":
            raise bad(WiegandFault.SYNTAX, "expected 'W', two decimal digits, ':'")
        bit_count = int(count_text)
        if bit_count == 0:
            raise bad(WiegandFault.SYNTAX, "bit count 00")
        for pos, byte in enumerate(hex_text):
            if byte not in _HEX:
                raise bad(WiegandFault.NON_HEX,
                          f"byte 0x{byte:02X} at position {pos + 5} is not a hex digit")
        expected = -(-bit_count // 4)
        if len(hex_text) != expected:
            raise bad(WiegandFault.DIGITS, f"{len(hex_text)} hex digits for a {bit_count}-bit "
                      f"frame, expected {expected}")
        bits = int(hex_text, 16)
        if bits >> bit_count:
            raise bad(WiegandFault.PADDING, f"bits set above the {bit_count} of the frame")
        name = self.format
        if name is None:
            names = wiegand.formats_for_length(bit_count)
            if not names:
                known = ", ".join(f"{f.bit_count} ({f.name})" for f in wiegand.FORMATS.values())
                raise bad(WiegandFault.UNKNOWN_LENGTH,
                          f"no supported format has {bit_count} bits; known: {known}")
            if len(names) > 1:
                raise bad(WiegandFault.AMBIGUOUS,
                          f"{bit_count}-bit frames can be {' or '.join(names)}, which parity "
                          "cannot tell apart: set format= in the reader spec")
            name = names[0]
        try:
            card = wiegand.decode(name, bits, bit_count)
        except wiegand.WiegandError as exc:
            raise bad(WiegandFault.LENGTH, str(exc)) from None
        if not card.parity_ok:
            failed = "; ".join(p.describe() for p in card.parity_failures)
            raise bad(WiegandFault.PARITY, f"{card.format} parity failed: {failed}")
        return card

    def _fail(self, fault: WiegandFault, message: str, raw: bytes) -> None:
        self._reject(WiegandSerialError(fault, message, raw))
