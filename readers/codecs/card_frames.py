"""What a serial reader of each family sends for one card: the frames an emulated reader writes.

Theory of operation
-------------------
``mfd reader emulate`` (and the firmware stubs) play a real reader on a serial line so that a
copier can be tested without a badge. What they write must be exactly what the real reader
writes, so the bytes come from the same pure encoders the codecs are tested with
(:func:`readers.codecs.em4100.encode_frame`, :func:`readers.codecs.ascii.encode_line`,
:func:`readers.codecs.wiegand_serial.encode_card`); this module only adds, per family, how a
technician writes the card number and which numbers the family can carry.

The card is given as the number the device will report (the canonical number of the family's
codec) or a shorter spelling of it: ``1234567`` for EM4100 is sent as tag 1234567 and read
back as ``0001234567``; for Wiegand it is ``FACILITY:CARD`` (``CARD`` alone for H10302).
:attr:`CardFrames.number` is the canonical form, which is what the host's codec yields.

Each family sends its readers' *default* layout: EM4100 frames with version 0x0A; pcProx
decimal lines ending in CR; TWN4 upper-case hex lines ending in CR; Wiegand ``W<bits>:<hex>``
lines in the format named (``h10301`` unless told). :attr:`CardFrames.spec_options` are the
reader-spec parameters a host needs to read them (``format=`` for Wiegand, since a 37-bit frame
is two formats). A number a family cannot carry is a :class:`ConfigError` that says the range,
never the number: card numbers do not go into messages that end in logs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from protocol.errors import ConfigError
from readers.codecs.ascii import MAX_DIGITS, AsciiFormat, encode_line
from readers.codecs.em4100 import encode_frame as encode_em4100
from readers.codecs.wiegand_serial import encode_card
from readers.numbers import wiegand

__all__ = ["EMULATED_FAMILIES", "PCPROX_FORMAT", "TWN4_FORMAT", "CardFrames", "FamilyEncoder",
           "encode_card_frames"]

#: Layouts of the line readers as they leave the factory (and as a reader spec without layout
#: parameters reads them: readers.adapters.serial_reader).
PCPROX_FORMAT = AsciiFormat(base=10)
TWN4_FORMAT = AsciiFormat(base=16)
_EM4100_VERSION = 0x0A
_EM4100_MAX = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class CardFrames:
    """One read of a card: the bytes a reader of ``family`` sends, and the number it means.

    ``spec_options`` are the reader-spec parameters the host must set to decode them.
    ``repr`` hides the number and the bytes (both are the card).
    """

    family: str
    number: str = field(repr=False)
    frame: bytes = field(repr=False)
    spec_options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class FamilyEncoder:
    """How to write a card for one family: ``syntax`` for help and errors, ``encode`` the
    function (card text, Wiegand format or None) -> frames."""

    syntax: str
    encode: Callable[[str, str | None], CardFrames]
    takes_wiegand_format: bool = False


def _digits(text: str, family: str, syntax: str) -> int:
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():
        raise ConfigError(f"a {family} card number is {syntax}")
    return int(text)


def _em4100(text: str, fmt: str | None) -> CardFrames:
    syntax = "decimal digits, 0 to 4294967295 (the 10 digits printed on the fob)"
    tag = _digits(text, "em4100", syntax)
    if tag > _EM4100_MAX:
        raise ConfigError(f"card number too big for em4100: its tags are 32 bits, {syntax}")
    return CardFrames("em4100", f"{tag:010d}", encode_em4100(_EM4100_VERSION, tag))


def _line_reader(family: str, layout: AsciiFormat) -> Callable[[str, str | None], CardFrames]:
    base_name = "hex" if layout.base == 16 else "decimal"
    syntax = f"decimal digits (sent as up to {MAX_DIGITS} {base_name} digits)"

    def encode(text: str, fmt: str | None) -> CardFrames:
        card = _digits(text, family, syntax)
        if card >= layout.base ** MAX_DIGITS:
            raise ConfigError(f"card number too big for {family}: its lines carry at most "
                              f"{MAX_DIGITS} {base_name} digits")
        return CardFrames(family, str(card), encode_line(layout, card))

    return encode


def _wiegand(text: str, fmt: str | None) -> CardFrames:
    try:
        layout = wiegand.get_format(fmt or "h10301")
    except wiegand.WiegandError as exc:
        raise ConfigError(str(exc)) from None
    if layout.facility is None:
        syntax = f"CARD (decimal, 0..{layout.max_card}: {layout.name} has no facility code)"
    else:
        syntax = (f"FACILITY:CARD (decimal, facility 0..{layout.max_facility}, "
                  f"card 0..{layout.max_card})")
    parts = text.strip().split(":")
    if len(parts) != (1 if layout.facility is None else 2) or not all(
            p.isascii() and p.isdigit() for p in parts):
        raise ConfigError(f"a wiegand {layout.name} card number is {syntax}")
    numbers = [int(p) for p in parts]
    card = numbers[-1]
    facility = numbers[0] if len(numbers) == 2 else None
    if card > layout.max_card or (facility is not None
                                  and facility > (layout.max_facility or 0)):
        raise ConfigError(f"card number too big for wiegand {layout.name}: it is {syntax}")
    number = str(card) if facility is None else f"{facility}:{card}"
    return CardFrames("wiegand", number, encode_card(layout.name, facility, card),
                      (("format", layout.name),))


#: Family name (as in a reader spec's ``family=``) -> its encoder. Every serial family the
#: device reads has one; tests/test_reader_emulate.py holds this to the adapter's registry.
EMULATED_FAMILIES: dict[str, FamilyEncoder] = {
    "em4100": FamilyEncoder("decimal tag number, e.g. 0012345678", _em4100),
    "pcprox": FamilyEncoder("decimal card number, e.g. 123456",
                            _line_reader("pcprox", PCPROX_FORMAT)),
    "twn4": FamilyEncoder("decimal card number, e.g. 123456 (sent in hex)",
                          _line_reader("twn4", TWN4_FORMAT)),
    "wiegand": FamilyEncoder("FACILITY:CARD, e.g. 2:10482 (CARD alone for h10302)", _wiegand,
                             takes_wiegand_format=True),
}


def encode_card_frames(family: str, card: str, *,
                       wiegand_format: str | None = None) -> CardFrames:
    """The frames a ``family`` reader sends for ``card``; :class:`ConfigError` if the family
    is unknown, the number is not one the family carries, or a Wiegand format is given to a
    family that has none."""
    encoder = EMULATED_FAMILIES.get(family)
    if encoder is None:
        raise ConfigError(f"unknown reader family {family!r}; known families: "
                          + ", ".join(sorted(EMULATED_FAMILIES)))
    if wiegand_format is not None and not encoder.takes_wiegand_format:
        raise ConfigError(f"family {family!r} carries no Wiegand bits; --wiegand applies to: "
                          + ", ".join(f for f, e in EMULATED_FAMILIES.items()
                                      if e.takes_wiegand_format))
    return encoder.encode(card, wiegand_format)
