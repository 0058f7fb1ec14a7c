"""Wiegand card formats: where the facility code, card number and parity bits sit. Pure.

Theory of operation
-------------------
A Wiegand reader sends a card as a fixed number of bits, first bit first. Here a frame is an
integer whose *most significant* bit is the first bit sent, together with its bit count: leading
zero bits are part of the frame, so the count cannot be recovered from the integer, and the same
integer means different things in different formats. Bit positions in this module and in
docs/card-formats.md are numbered the way HID's format documents number them: bit 1 is the
first transmitted, bit N the last.

A format puts a facility code (FC, the same for a whole site or batch) and a card number in
fixed bit ranges and adds parity bits, each covering a fixed set of other bits. An *even*
parity bit makes the number of ones among itself and the bits it covers even; an *odd* one
makes it odd. Parity is the only error detection Wiegand has: a bit lost or added on the
wire shifts everything and (usually) breaks it.

=======  ====  ==========  ===========  ==============================================
format   bits  FC          card         parity
=======  ====  ==========  ===========  ==============================================
h10301   26    2-9 (8)     10-25 (16)   1 even over 2-13; 26 odd over 14-25
h10306   34    2-17 (16)   18-33 (16)   1 even over 2-17; 34 odd over 18-33
c1000    35    3-14 (12)   15-34 (20)   2 even over 3-34 except every third bit from 5;
                                        35 odd over 2-34 except every third bit from 4;
                                        then 1 odd over 2-35 (all other bits)
h10304   37    2-17 (16)   18-36 (19)   1 even over 2-19; 37 odd over 19-36
h10302   37    --          2-36 (35)    1 even over 2-19; 37 odd over 19-36
=======  ====  ==========  ===========  ==============================================

The layouts follow HID's published format descriptions; Corporate-1000's interleaved parity
sets were checked against Proxmark3's packer (RfidResearchGroup/proxmark3,
client/src/wiegand_formats.c) and a real 35-bit read. In H10304/H10302, bit 19 is covered by
both parity bits; that is the published layout, not a slip.

**Same length is not same layout.** A 37-bit frame may be H10304 (FC 16 + card 19) or H10302
(no FC, one 35-bit number); both have the same parity bits, so parity cannot tell them apart.
:func:`formats_for_length` therefore returns a list, and choosing is configuration, not
guesswork.

Decoding does not raise for a parity failure: :attr:`WiegandCard.parity_ok` is False and
:attr:`WiegandCard.parity_failures` says which parity bits failed, because what to do with a
misread is the caller's decision (a reader drops and counts it; a technician's tool shows it).
A frame of the wrong length, a value that does not fit, or an unknown format name is a
:class:`WiegandError`. :func:`encode` raises :class:`ValueError` for out-of-range numbers: that
is a bug in the caller, not bad data from a wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.errors import FrameError

__all__ = [
    "FORMATS",
    "Parity",
    "WiegandCard",
    "WiegandError",
    "WiegandFormat",
    "decode",
    "encode",
    "formats_for_length",
    "get_format",
]


class WiegandError(FrameError):
    """A frame that no Wiegand format here can take: unknown format, wrong length, too wide.

    The message names the format and the lengths involved, never the bits: a frame is a
    card identity and these errors end up in logs.
    """

    code = "bad_wiegand_frame"


def _ranges(positions: tuple[int, ...]) -> str:
    """``2-13`` or ``3-4, 6-7, 9-10`` for a sorted tuple of bit positions."""
    parts: list[str] = []
    start = prev = positions[0]
    for pos in positions[1:]:
        if pos != prev + 1:
            parts.append(f"{start}-{prev}" if prev > start else f"{start}")
            start = pos
        prev = pos
    parts.append(f"{start}-{prev}" if prev > start else f"{start}")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Parity:
    """One parity bit: its position, its sense, and the positions it covers (itself excluded)."""

    position: int
    odd: bool
    covers: tuple[int, ...]

    @property
    def kind(self) -> str:
        return "odd" if self.odd else "even"

    def describe(self) -> str:
        """``bit 26 (odd parity over bits 14-25)``: what a technician needs to find it."""
        return f"bit {self.position} ({self.kind} parity over bits {_ranges(self.covers)})"


@dataclass(frozen=True, slots=True)
class WiegandFormat:
    """A fixed Wiegand layout. Fields are ``(first bit, width)`` with bit 1 sent first.

    ``parity`` is in the order :func:`encode` computes the bits: a later parity bit may cover
    an earlier one (Corporate-1000's bit 1 covers every other bit, parity bits included).
    """

    name: str
    title: str
    bit_count: int
    facility: tuple[int, int] | None
    card: tuple[int, int]
    parity: tuple[Parity, ...]

    @property
    def max_facility(self) -> int | None:
        return None if self.facility is None else (1 << self.facility[1]) - 1

    @property
    def max_card(self) -> int:
        return (1 << self.card[1]) - 1

    def bit(self, value: int, position: int) -> int:
        return (value >> (self.bit_count - position)) & 1

    def get_field(self, value: int, spec: tuple[int, int]) -> int:
        first, width = spec
        shift = self.bit_count - (first + width - 1)
        return (value >> shift) & ((1 << width) - 1)

    def put_field(self, value: int, spec: tuple[int, int], number: int) -> int:
        first, width = spec
        return value | (number << (self.bit_count - (first + width - 1)))

    def _ones(self, value: int, positions: tuple[int, ...]) -> int:
        return sum(self.bit(value, pos) for pos in positions)

    def parity_failures(self, value: int) -> tuple[Parity, ...]:
        """The parity bits of ``value`` (a frame of this format) that do not hold."""
        failed: list[Parity] = []
        for par in self.parity:
            ones = self._ones(value, par.covers) + self.bit(value, par.position)
            if ones % 2 != (1 if par.odd else 0):
                failed.append(par)
        return tuple(failed)

    def with_parity(self, value: int) -> int:
        """``value`` with every parity bit set correctly, in the documented order."""
        for par in self.parity:
            value &= ~(1 << (self.bit_count - par.position))
            ones = self._ones(value, par.covers)
            # Even: the bit makes the count even, so it is the count's parity; odd: its inverse.
            bit = (ones % 2) ^ (1 if par.odd else 0)
            value |= bit << (self.bit_count - par.position)
        return value


def _span(first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1))


# Corporate-1000 35-bit: bit 2 is even parity over two bits of every three from bit 3 (3, 4,
# 6, 7, ... 33, 34), bit 35 odd over two of every three from bit 2 (2, 3, 5, 6, ... 32, 33),
# and bit 1 odd over all 34 other bits, the two parity bits included, so it is computed last.
_C1000_EVEN = tuple(p for p in range(3, 35) if p % 3 != 2)
_C1000_ODD = tuple(p for p in range(2, 35) if p % 3 != 1)

# H10304 and H10302 share their parity: both halves overlap at bit 19.
_P37 = (Parity(1, False, _span(2, 19)), Parity(37, True, _span(19, 36)))

#: Every supported layout, shortest first (the order tools list and try them in).
FORMATS: dict[str, WiegandFormat] = {
    f.name: f
    for f in (
        WiegandFormat("h10301", "HID H10301 26-bit", 26, (2, 8), (10, 16),
                      (Parity(1, False, _span(2, 13)), Parity(26, True, _span(14, 25)))),
        WiegandFormat("h10306", "HID H10306 34-bit", 34, (2, 16), (18, 16),
                      (Parity(1, False, _span(2, 17)), Parity(34, True, _span(18, 33)))),
        WiegandFormat("c1000", "HID Corporate-1000 35-bit", 35, (3, 12), (15, 20),
                      (Parity(2, False, _C1000_EVEN), Parity(35, True, _C1000_ODD),
                       Parity(1, True, _span(2, 35)))),
        WiegandFormat("h10304", "HID H10304 37-bit", 37, (2, 16), (18, 19), _P37),
        WiegandFormat("h10302", "HID H10302 37-bit", 37, None, (2, 35), _P37),
    )
}


@dataclass(frozen=True, slots=True)
class WiegandCard:
    """A decoded frame. ``bits`` is the whole frame (parity included), ``bit_count`` its length.

    ``facility`` is None for formats without one (H10302). ``repr`` hides the card number and
    the bits, which identify the card; the facility code is shared by a whole site.
    """

    format: str
    facility: int | None
    card: int = field(repr=False)
    parity_ok: bool
    bits: int = field(repr=False)
    bit_count: int

    @property
    def parity_failures(self) -> tuple[Parity, ...]:
        """Which parity bits failed (empty when ``parity_ok``)."""
        return FORMATS[self.format].parity_failures(self.bits)


def get_format(name: str) -> WiegandFormat:
    """The format called ``name`` (case-insensitive); WiegandError listing the known ones."""
    fmt = FORMATS.get(name.strip().lower())
    if fmt is None:
        raise WiegandError(f"unknown Wiegand format {name!r}; known formats: "
                           + ", ".join(FORMATS))
    return fmt


def formats_for_length(n: int) -> list[str]:
    """Names of the formats whose frames are ``n`` bits, in :data:`FORMATS` order.

    A list, because 37 bits is both H10304 and H10302: the length alone cannot decide.
    """
    return [name for name, fmt in FORMATS.items() if fmt.bit_count == n]


def decode(fmt: str, value: int, bit_count: int) -> WiegandCard:
    """Decode the ``bit_count``-bit frame ``value`` (first bit sent = most significant).

    Raises :class:`WiegandError` for an unknown format, a frame of another length, or a value
    wider than ``bit_count`` bits. A parity failure is reported in the result, not raised.
    """
    layout = get_format(fmt)
    if bit_count != layout.bit_count:
        others = formats_for_length(bit_count)
        hint = f" ({bit_count} bits is {', '.join(others)})" if others else ""
        raise WiegandError(f"{layout.name} frames are {layout.bit_count} bits, "
                           f"got {bit_count}{hint}")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WiegandError(f"a {layout.name} frame must be a non-negative integer")
    if value >> bit_count:
        raise WiegandError(f"value has {value.bit_length()} significant bits, more than the "
                           f"{bit_count} of {layout.name} frames")
    facility = None if layout.facility is None else layout.get_field(value, layout.facility)
    return WiegandCard(
        format=layout.name,
        facility=facility,
        card=layout.get_field(value, layout.card),
        parity_ok=not layout.parity_failures(value),
        bits=value,
        bit_count=bit_count,
    )


def encode(fmt: str, facility: int | None, card: int) -> int:
    """The frame (as an integer, first bit most significant) for ``facility`` and ``card``.

    ``facility`` must be None for a format without one (H10302) and an integer in range for
    the others; out-of-range numbers raise :class:`ValueError`. Parity is computed.
    """
    layout = get_format(fmt)
    value = 0
    if layout.facility is None:
        if facility is not None:
            raise ValueError(f"{layout.name} has no facility code; pass None")
    else:
        top = layout.max_facility
        if facility is None or isinstance(facility, bool) or not 0 <= facility <= (top or 0):
            raise ValueError(f"{layout.name} facility code must be 0..{top}, got {facility!r}")
        value = layout.put_field(value, layout.facility, facility)
    if isinstance(card, bool) or not 0 <= card <= layout.max_card:
        raise ValueError(f"{layout.name} card number must be 0..{layout.max_card}, got {card!r}")
    value = layout.put_field(value, layout.card, card)
    return layout.with_parity(value)
