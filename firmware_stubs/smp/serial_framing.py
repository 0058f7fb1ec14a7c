"""The SMP serial transport ("SMP over console"), device side, sans-I/O.

Theory of operation. An SMP packet (8-byte header + CBOR body) crosses a UART as text lines:

* the packet becomes a *frame*: ``uint16 length | packet | uint16 CRC16``, big-endian, where
  ``length`` counts the packet and the CRC (not itself) and the CRC is CRC16-CCITT as XMODEM
  computes it (polynomial 0x1021, initial value 0) over the packet;
* the frame is base64-encoded and cut into lines: the first starts with ``0x06 0x09``, each
  further one with ``0x04 0x14``, every line ends with ``\\n``, and a line is at most
  ``max_line`` bytes (127 by default: Zephyr's 128-byte line buffer less its terminator). Each
  line's base64 is a multiple of 4 characters, so each line decodes on its own.

:class:`FrameDecoder` is the receiving half: bytes in (:meth:`~FrameDecoder.receive_data`),
packets out (:meth:`~FrameDecoder.next_packet`). It never returns a packet it has not checked
(length and CRC); anything else on the line -- console text, a frame cut short, a flipped,
dropped or duplicated byte -- yields either nothing or one :class:`SmpFramingError`, after which
the decoder has already resynchronised on the next start delimiter. A CRC16 catches every
burst error up to 16 bits, which covers any one damaged base64 character (6 bits); what it cannot
catch (a 2^-16 chance for wilder damage) is caught above it by the image's SHA-256 and
signature, which the bootloader checks before it boots anything.

:func:`encode_frame` is the sending half: a packet to the lines to write.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from typing import Final

from protocol.errors import MfdError

__all__ = [
    "CONTINUE",
    "DEFAULT_MAX_LINE",
    "START",
    "FrameDecoder",
    "SmpFramingError",
    "crc16_xmodem",
    "encode_frame",
    "frame_ceiling",
]

START: Final = b"\x06\x09"
CONTINUE: Final = b"\x04\x14"
END: Final = b"\n"
DEFAULT_MAX_LINE: Final = 127
# The largest frame a device accepts (length field); Zephyr's default netbuf is far smaller.
DEFAULT_MAX_FRAME: Final = 8192


class SmpFramingError(MfdError):
    """Bytes on the line that are not a valid SMP serial frame. The decoder has resynchronised."""

    code = "smp_bad_frame"


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def crc16_xmodem(data: bytes, crc: int = 0) -> int:
    """CRC16-CCITT with initial value 0, unreflected (the XMODEM variant SMP uses)."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def _b64_per_line(max_line: int) -> int:
    per_line = (max_line - len(START) - len(END)) // 4 * 4
    if per_line < 4:
        raise ValueError(f"a line of {max_line} bytes cannot carry base64")
    return per_line


def encode_frame(packet: bytes, max_line: int = DEFAULT_MAX_LINE) -> list[bytes]:
    """The lines (each ending in ``\\n``, none longer than ``max_line``) that carry ``packet``."""
    if len(packet) + 2 > 0xFFFF:
        raise ValueError(f"a packet of {len(packet)} bytes does not fit an SMP serial frame")
    frame = ((len(packet) + 2).to_bytes(2, "big") + packet
             + crc16_xmodem(packet).to_bytes(2, "big"))
    text = base64.b64encode(frame)
    per_line = _b64_per_line(max_line)
    return [(START if i == 0 else CONTINUE) + text[i:i + per_line] + END
            for i in range(0, len(text), per_line)]


def frame_ceiling(packet_size: int, max_line: int = DEFAULT_MAX_LINE) -> int:
    """Bytes on the wire for one packet of ``packet_size`` bytes (for throughput ceilings)."""
    return sum(len(line) for line in encode_frame(bytes(packet_size), max_line))


class FrameDecoder:
    """Receive bytes, get checked packets. One instance per line direction.

    ``max_line`` is the longest line accepted (a longer one is dropped as the device's line
    buffer would overflow); ``max_frame`` bounds the length field, so a damaged length cannot
    make the decoder wait for 64 KiB that never come.
    """

    def __init__(self, *, max_line: int = 512, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_line = max_line
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._overflow = False  # dropping the rest of an over-long line
        self._frame: bytearray | None = None  # decoded bytes of the frame in progress
        self._expected = 0  # its length field plus the 2 bytes of the field itself
        self._ready: deque[bytes | SmpFramingError] = deque()
        self.noise_bytes = 0  # bytes seen outside SMP lines (console text, line noise)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the line, in any pieces."""
        self._buffer += data
        while True:
            cut = self._buffer.find(END)
            if cut < 0:
                if len(self._buffer) > self.max_line:
                    if not self._overflow:
                        self._fail(f"line longer than {self.max_line} bytes")
                    self._overflow = True
                    self.noise_bytes += len(self._buffer)
                    self._buffer.clear()
                return
            line = bytes(self._buffer[:cut])
            del self._buffer[:cut + 1]
            if self._overflow:  # the tail of a line already refused
                self._overflow = False
                self.noise_bytes += len(line) + 1
                continue
            self._line(line)

    def next_packet(self) -> bytes | None:
        """The next packet, ``None`` if none is complete yet; raises :class:`SmpFramingError`
        once per bad frame (call again: the decoder goes on with the bytes after it)."""
        if not self._ready:
            return None
        item = self._ready.popleft()
        if isinstance(item, SmpFramingError):
            raise item
        return item

    @property
    def in_frame(self) -> bool:
        """A frame has started and is not complete yet."""
        return self._frame is not None

    def _fail(self, reason: str) -> None:
        self._frame = None
        self._ready.append(SmpFramingError(f"SMP serial frame refused: {reason}"))

    def _line(self, line: bytes) -> None:
        if len(line) + 1 > self.max_line:
            self._fail(f"line longer than {self.max_line} bytes")
            return
        # Base64 never contains 0x04 or 0x06, so a delimiter can only be where SMP starts: what
        # precedes the first one is console text or noise, and a line that holds several (a lost
        # newline joined two) is cut at each, so the next frame is not lost with the damaged one.
        cuts = sorted({i for d in (START, CONTINUE) for i in _find_all(line, d)})
        if not cuts:
            self.noise_bytes += len(line) + 1
            if self._frame is not None:
                # A continuation whose delimiter was damaged: the frame cannot complete.
                self._fail("a line of the frame lost its delimiter")
            return
        self.noise_bytes += cuts[0]
        for at, end in zip(cuts, [*cuts[1:], len(line)], strict=True):
            self._segment(line[at:at + 2], line[at + 2:end])

    def _segment(self, delimiter: bytes, text: bytes) -> None:
        if delimiter == START:
            if self._frame is not None:
                self._fail("a new frame started before the last one ended")
            self._frame = bytearray()
            self._expected = 0
        elif self._frame is None:
            self._fail("a continuation line outside a frame")
            return
        if len(text) % 4 or not text:
            self._fail("base64 of a wrong length")
            return
        try:
            chunk = base64.b64decode(text, validate=True)
        except binascii.Error:
            self._fail("not base64")
            return
        frame = self._frame
        assert frame is not None
        frame += chunk
        if not self._expected and len(frame) >= 2:
            length = int.from_bytes(frame[:2], "big")
            # At least an SMP header and the CRC; at most what this device would buffer.
            if not 8 + 2 <= length <= self.max_frame:
                self._fail(f"length field {length} out of range")
                return
            self._expected = length + 2
        if not self._expected or len(frame) < self._expected:
            return
        if len(frame) > self._expected:
            self._fail("more data than the length field says")
            return
        packet, crc = bytes(frame[2:-2]), int.from_bytes(frame[-2:], "big")
        self._frame = None
        if crc16_xmodem(packet) != crc:
            self._ready.append(SmpFramingError("SMP serial frame refused: CRC mismatch"))
            return
        self._ready.append(packet)


def _find_all(data: bytes, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found
