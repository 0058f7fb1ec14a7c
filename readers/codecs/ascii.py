"""ASCII line readers (RFIDeas pcProx serial / virtual COM, Elatec TWN4). Pure: no I/O.

Theory of operation
-------------------
These readers print one line of text per card read::

    PRE | [FACILITY SEP] ID | POST | TERM
    e.g.  "12:3456\\r"   "#0001E240/\\r\\n"   "04A1B2C3\\r"

``PRE``/``POST`` are fixed delimiter strings (pcProx allows three characters in all), ``SEP``
the facility-code separator (absent when the reader does not send the facility code), the
numbers are decimal or hex digits, ``ID`` optionally zero-padded to a fixed width, and
``TERM`` is CR, LF or CR LF. :class:`AsciiFormat` holds one such layout; the reader and the
host must agree on it, because nothing on the wire says which one is in use -- ``1234`` is a
valid decimal *and* hex number, and reading it with the wrong base silently gives the wrong
card. That is why the pcProx decoder (:mod:`readers.codecs.pcprox`) tracks the reader's
settings through its command protocol instead of trusting configuration alone.

Frames are lines. :class:`AsciiDecoder` splits the byte stream at the configured terminator
(with the line buffer all codecs share, ``readers.codecs._receivebuffer``) and parses each
line on its own, so a bad line costs exactly that line: garbage, a missing delimiter, a
character that is not a digit of the base or a wrong fixed width is reported as an
:class:`AsciiFrameError` (a :class:`~protocol.errors.FrameError`, never raised) and
decoding resumes after the next terminator. A line with no terminator within
:attr:`AsciiFormat.line_limit` bytes is reported once as ``overlong`` and the rest of it
discarded up to the next terminator: that bounds memory whatever arrives (a reader set to
the wrong baud rate produces exactly such endless garbage).

A CR or LF directly next to a terminator is tolerated (stripped from both ends of a line), so
a reader that ends lines with CR LF still decodes on a host set for CR, and vice versa; the
*configured* terminator still decides when a line is complete, which is when the read is
delivered. Blank lines are skipped silently: they are line-end noise, not frames.

The canonical card number (:attr:`AsciiCard.number`) is the ID in decimal without leading
zeros, prefixed with ``FACILITY:`` when the reader sends a facility code: the same card then
reads the same whether the reader prints hex or decimal, padded or not.

Usage, h11-style: ``decoder.receive_data(chunk)`` then ``decoder.next_event()`` until
``None``, or ``decoder.feed(chunk)``. Nothing here raises on bad input from the wire;
encoders raise :class:`ValueError` for out-of-range arguments (a caller bug) and
:class:`AsciiFormat` raises :class:`~protocol.errors.ConfigError` naming the bad setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias, TypeVar, cast

from protocol.errors import ConfigError, FrameError
from readers.codecs._receivebuffer import LineBuffer

__all__ = [
    "MAX_DIGITS",
    "TERMINATORS",
    "AsciiCard",
    "AsciiDecoder",
    "AsciiEvent",
    "AsciiFormat",
    "AsciiFrameError",
    "CardLineBuffer",
    "LineFault",
    "decode_line",
    "encode_line",
]

CR = 0x0D
LF = 0x0A
_LINE_ENDS = b"\r\n"

#: Spec names of the terminators a reader can be set to.
TERMINATORS: dict[str, bytes] = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}
#: Longest number (facility code or ID) accepted, in digits: 128 bits in hex, ~106 in decimal.
MAX_DIGITS = 32
_MAX_DELIMS = 16

_DIGITS: dict[int, frozenset[int]] = {
    10: frozenset(b"0123456789"),
    16: frozenset(b"0123456789abcdefABCDEF"),
}
_BASE_NAMES = {10: "decimal", 16: "hex"}


# -- card lines --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AsciiFormat:
    """One line layout. Validated on construction (:class:`ConfigError` naming the field).

    ``sep`` empty means the reader sends no facility code. ``width`` 0 means unpadded IDs.
    """

    pre: bytes = b""
    post: bytes = b""
    sep: bytes = b""
    term: bytes = b"\r"
    base: int = 10
    width: int = 0

    def __post_init__(self) -> None:
        if self.term not in TERMINATORS.values():
            raise ConfigError(f"ASCII reader 'term' must be CR, LF or CRLF, got {self.term!r}")
        if self.base not in _DIGITS:
            raise ConfigError(f"ASCII reader 'base' must be 10 or 16, got {self.base!r}")
        if not 0 <= self.width <= MAX_DIGITS:
            raise ConfigError(f"ASCII reader 'width' must be 0..{MAX_DIGITS} digits (0: no "
                              f"padding), got {self.width!r}")
        for name, value in (("pre", self.pre), ("post", self.post), ("sep", self.sep)):
            if len(value) > _MAX_DELIMS:
                raise ConfigError(f"ASCII reader {name!r} is longer than {_MAX_DELIMS} bytes")
            # A CR or LF inside a delimiter would end the line in the middle of the frame.
            if any(b in _LINE_ENDS for b in value):
                raise ConfigError(f"ASCII reader {name!r} must not contain CR or LF, "
                                  f"got {value!r}")
        # The separator is found by searching between the numbers; a digit would be ambiguous.
        digits = _DIGITS[self.base]
        if any(b in digits for b in self.sep):
            raise ConfigError(f"ASCII reader 'sep' {self.sep!r} contains a "
                              f"{_BASE_NAMES[self.base]} digit, so it cannot be told apart "
                              "from the numbers (check 'base')")

    @property
    def line_limit(self) -> int:
        """Longest line accepted before its terminator: the layout at its widest, plus slack
        for a stray CR/LF and a pcProx prompt; anything longer is garbage."""
        return len(self.pre) + len(self.post) + len(self.sep) + 2 * MAX_DIGITS + 16

    @property
    def has_facility(self) -> bool:
        return bool(self.sep)


@dataclass(frozen=True, slots=True)
class AsciiCard:
    """One good card line. ``raw`` is the line as received, terminator included."""

    card: int
    facility: int | None
    raw: bytes = field(repr=False)

    @property
    def number(self) -> str:
        """Canonical number: decimal ID, ``FACILITY:ID`` when the reader sends a facility."""
        if self.facility is None:
            return str(self.card)
        return f"{self.facility}:{self.card}"

    def __repr__(self) -> str:
        # Card identities must be safe to drop into a log line by accident.
        has_fac = self.facility is not None
        return f"AsciiCard(card=<hidden>, facility={'<hidden>' if has_fac else None})"


class LineFault(StrEnum):
    """Why a line was rejected; stable strings for counters, logs and ``--json`` output."""

    OVERLONG = "overlong"  # no terminator within the line limit (garbage, wrong baud rate)
    DELIMITER = "delimiter"  # pre- or post-delimiters missing or different
    SEPARATOR = "separator"  # facility separator missing, or more than one
    NON_DIGIT = "non_digit"  # a character that is not a digit of the configured base
    EMPTY = "empty"  # a number with no digits
    WIDTH = "width"  # wrong number of digits for the fixed width, or too many
    FORMAT = "format"  # pcProx: the reader's reported settings give no decodable layout
    REPLY = "reply"  # pcProx: a malformed command reply
    UNFRAMED = "unframed"  # decode_line only: not exactly one line


class AsciiFrameError(FrameError):
    """A rejected line. ``raw`` holds its bytes (at most the line limit), never in the message:
    a near-miss is still most of a card number, and these errors end up in logs."""

    def __init__(self, fault: LineFault, message: str, raw: bytes) -> None:
        super().__init__(f"bad ASCII reader line: {message}")
        self.fault = fault
        self.raw = raw


AsciiEvent: TypeAlias = AsciiCard | AsciiFrameError


def _number(text: bytes, base: int, what: str, width: int, raw: bytes) -> int:
    if not text:
        raise AsciiFrameError(LineFault.EMPTY, f"the {what} has no digits", raw)
    digits = _DIGITS[base]
    for pos, byte in enumerate(text):
        if byte not in digits:
            raise AsciiFrameError(
                LineFault.NON_DIGIT,
                f"byte 0x{byte:02X} at position {pos + 1} of the {what} is not a "
                f"{_BASE_NAMES[base]} digit", raw)
    if width and len(text) != width:
        raise AsciiFrameError(LineFault.WIDTH,
                              f"the {what} has {len(text)} digits, expected {width}", raw)
    if len(text) > MAX_DIGITS:
        raise AsciiFrameError(LineFault.WIDTH,
                              f"the {what} has {len(text)} digits, more than {MAX_DIGITS}", raw)
    return int(text, base)


def _parse_card(fmt: AsciiFormat, body: bytes, raw: bytes) -> AsciiCard:
    """Parse a line without its line ends; raises AsciiFrameError (caught by the decoder)."""
    if len(body) < len(fmt.pre) + len(fmt.post) or not body.startswith(fmt.pre):
        raise AsciiFrameError(LineFault.DELIMITER,
                              f"line does not start with the pre-delimiter {fmt.pre!r}", raw)
    if not body.endswith(fmt.post):
        raise AsciiFrameError(LineFault.DELIMITER,
                              f"line does not end with the post-delimiter {fmt.post!r}", raw)
    middle = body[len(fmt.pre):len(body) - len(fmt.post)]
    facility: int | None = None
    if fmt.sep:
        fac_text, found, id_text = middle.partition(fmt.sep)
        if not found:
            raise AsciiFrameError(LineFault.SEPARATOR,
                                  f"no facility separator {fmt.sep!r} in the line", raw)
        if fmt.sep in id_text:
            raise AsciiFrameError(LineFault.SEPARATOR,
                                  f"more than one facility separator {fmt.sep!r}", raw)
        facility = _number(fac_text, fmt.base, "facility code", 0, raw)
    else:
        id_text = middle
    card = _number(id_text, fmt.base, "card ID", fmt.width, raw)
    return AsciiCard(card=card, facility=facility, raw=raw)


def encode_line(fmt: AsciiFormat, card: int, facility: int | None = None) -> bytes:
    """The line a reader set to ``fmt`` prints for ``card`` (upper-case hex, like pcProx)."""
    if card < 0 or (facility is not None and facility < 0):
        raise ValueError("card and facility numbers must be >= 0")
    if fmt.has_facility != (facility is not None):
        raise ValueError("a facility code is required exactly when the format has a "
                         f"separator (sep={fmt.sep!r}, facility given: {facility is not None})")
    spec = "X" if fmt.base == 16 else "d"
    digits = format(card, spec)
    if fmt.width:
        if len(digits) > fmt.width:
            raise ValueError(f"card needs {len(digits)} digits, more than width {fmt.width}")
        digits = digits.zfill(fmt.width)
    fac = b""
    if facility is not None:
        fac_digits = format(facility, spec)
        if len(fac_digits) > MAX_DIGITS:
            raise ValueError(f"facility code needs more than {MAX_DIGITS} digits")
        fac = fac_digits.encode("ascii") + fmt.sep
    if len(digits) > MAX_DIGITS:
        raise ValueError(f"card needs more than {MAX_DIGITS} digits")
    return fmt.pre + fac + digits.encode("ascii") + fmt.post + fmt.term


def decode_line(data: bytes, fmt: AsciiFormat) -> AsciiCard:
    """Decode exactly one complete line (terminator included), for tools holding one in hand.

    Raises :class:`AsciiFrameError`: the decoder's report for a bad line, or ``UNFRAMED`` if
    ``data`` is not one terminated line with nothing after it.
    """
    decoder = AsciiDecoder(fmt)
    card = decoder.feed_one(data)
    if isinstance(card, AsciiCard):
        return card
    what = "no complete line (missing terminator?)" if not decoder.frames else "more than one line"
    raise AsciiFrameError(LineFault.UNFRAMED, f"expected exactly one line, found {what}",
                          bytes(data))


_E = TypeVar("_E")


class CardLineBuffer(LineBuffer[_E]):
    """Card lines in an :class:`AsciiFormat`, over the shared line buffer.

    ``_E`` is :data:`AsciiEvent`, or a wider union for a decoder that also sees other lines
    (the pcProx's command replies); the casts below hold for both.
    """

    def __init__(self, fmt: AsciiFormat | None = None) -> None:
        super().__init__()
        self.format = fmt if fmt is not None else AsciiFormat()

    def _terminator(self) -> int:
        # Read per line: a pcProx reply may have just changed the terminator.
        return self.format.term[-1]

    def _line_limit(self) -> int:
        return self.format.line_limit

    def _overlong(self, raw: bytes) -> None:
        self._reject(cast(_E, AsciiFrameError(
            LineFault.OVERLONG,
            f"no {_term_name(self.format.term)} terminator within {len(raw)} bytes "
            "(garbage, wrong baud rate, or check 'term')", raw)))

    def _handle_line(self, raw: bytes) -> None:
        body = raw.strip(_LINE_ENDS)
        if not body:
            self.skipped_bytes += len(raw)
            return
        self._card_line(body, raw)

    def _card_line(self, body: bytes, raw: bytes) -> None:
        try:
            card = _parse_card(self.format, body, raw)
        except AsciiFrameError as exc:
            self._reject(cast(_E, exc))
            return
        self._emit(cast(_E, card))


class AsciiDecoder(CardLineBuffer[AsciiEvent]):
    """Incremental decoder of card lines: :meth:`receive_data`, then :meth:`next_event`
    until ``None`` (or :meth:`feed` for both)."""


def _term_name(term: bytes) -> str:
    return {b"\r": "CR", b"\n": "LF", b"\r\n": "CRLF"}[term]
