"""Wiegand layouts: known frames, parity bit by bit, round trips, same length != same layout."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import FrameError
from readers.numbers.wiegand import (
    FORMATS,
    WiegandError,
    decode,
    encode,
    formats_for_length,
    get_format,
)

# Worked by hand: FC 12 = 00001100, card 3456 = 0000110110000000.
# Bits 2-13 = 00001100 0000 hold two ones -> even parity bit 1 = 0.
# Bits 14-25 = 110110000000 hold four ones -> odd parity bit 26 = 1.
# Frame 0 00001100 0000110110000000 1 = 0x181B01.
H10301_FC12_3456 = 0x181B01

# FIELD_NOTES: one HID Prox card, printed number 10482, gives 000451E5 on a USB reader: the raw
# 26-bit frame with its parity bits still on, so the number is (x >> 1) & 0xFFFF.
USB_READER_10482 = 0x000451E5

# A real Corporate-1000 read as a Proxmark-style tool logs it: "Hex_Value: 2D4A64FB8E,
# Facility_Code: 2643, Card_Number: 163271". The hex carries a 3-bit preamble above the 35 bits.
C1000_READ = 0x2D4A64FB8E & ((1 << 35) - 1)


def test_h10301_known_vector() -> None:
    assert encode("h10301", 12, 3456) == H10301_FC12_3456
    card = decode("h10301", H10301_FC12_3456, 26)
    assert (card.format, card.facility, card.card, card.parity_ok) == ("h10301", 12, 3456, True)
    assert (card.bits, card.bit_count) == (H10301_FC12_3456, 26)


def test_field_notes_usb_reader_case() -> None:
    assert (USB_READER_10482 >> 1) & 0xFFFF == 10482
    card = decode("h10301", USB_READER_10482, 26)
    assert card.card == 10482
    assert card.facility == 2
    assert card.parity_ok
    assert encode("h10301", 2, 10482) == USB_READER_10482


def test_c1000_real_read() -> None:
    card = decode("c1000", C1000_READ, 35)
    assert (card.facility, card.card, card.parity_ok) == (2643, 163271, True)
    assert encode("c1000", 2643, 163271) == C1000_READ


def test_c1000_parity_sets() -> None:
    # Two of every three bits, offset differently for the two inner parity bits; bit 1 last.
    even, odd, outer = FORMATS["c1000"].parity
    assert (even.position, even.odd) == (2, False)
    assert even.covers[:6] == (3, 4, 6, 7, 9, 10) and even.covers[-2:] == (33, 34)
    assert (odd.position, odd.odd) == (35, True)
    assert odd.covers[:6] == (2, 3, 5, 6, 8, 9) and odd.covers[-2:] == (32, 33)
    assert (outer.position, outer.odd, outer.covers) == (1, True, tuple(range(2, 36)))


@pytest.mark.parametrize(("fmt", "ranges"), [
    ("h10301", [(1, False, 2, 13), (26, True, 14, 25)]),
    ("h10306", [(1, False, 2, 17), (34, True, 18, 33)]),
    ("h10304", [(1, False, 2, 19), (37, True, 19, 36)]),
    ("h10302", [(1, False, 2, 19), (37, True, 19, 36)]),
])
def test_contiguous_parity_ranges(fmt: str, ranges: list[tuple[int, bool, int, int]]) -> None:
    got = [(p.position, p.odd, p.covers[0], p.covers[-1]) for p in FORMATS[fmt].parity]
    assert got == ranges
    assert all(p.covers == tuple(range(p.covers[0], p.covers[-1] + 1))
               for p in FORMATS[fmt].parity)


def test_all_zero_fields_show_the_parity_senses() -> None:
    # With FC and card 0, every even parity bit is 0 and every odd one 1.
    assert encode("h10301", 0, 0) == 0b1
    assert encode("h10306", 0, 0) == 0b1
    assert encode("h10304", 0, 0) == 0b1
    assert encode("h10302", None, 0) == 0b1
    # C1000: bit 35 odd over zeros -> 1; bit 2 even -> 0; bit 1 odd over a single one -> 0.
    assert encode("c1000", 0, 0) == 0b1


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_single_bit_flip_breaks_parity_or_changes_the_number(fmt: str) -> None:
    layout = FORMATS[fmt]
    frame = encode(fmt, None if layout.facility is None else 5, 1234)
    for pos in range(1, layout.bit_count + 1):
        flipped = frame ^ (1 << (layout.bit_count - pos))
        card = decode(fmt, flipped, layout.bit_count)
        # Every bit of these layouts is covered by at least one parity bit (or is one).
        assert not card.parity_ok, f"{fmt}: flipping bit {pos} went unnoticed"


def test_parity_failure_names_the_bit() -> None:
    bad = H10301_FC12_3456 ^ 1  # flip bit 26, the odd parity bit itself
    card = decode("h10301", bad, 26)
    assert not card.parity_ok
    assert [p.position for p in card.parity_failures] == [26]
    assert card.parity_failures[0].describe() == "bit 26 (odd parity over bits 14-25)"
    # Flipping bit 2 (the FC's top bit) breaks the even parity at bit 1 only.
    card = decode("h10301", H10301_FC12_3456 ^ (1 << 24), 26)
    assert [p.describe() for p in card.parity_failures] == ["bit 1 (even parity over bits 2-13)"]
    assert card.facility == 12 + 128


def test_c1000_parity_description_lists_the_interleave() -> None:
    text = FORMATS["c1000"].parity[0].describe()
    assert text.startswith("bit 2 (even parity over bits 3-4, 6-7, 9-10,")
    assert text.endswith("33-34)")


def test_same_length_is_not_same_layout() -> None:
    assert formats_for_length(37) == ["h10304", "h10302"]
    assert formats_for_length(26) == ["h10301"]
    assert formats_for_length(35) == ["c1000"]
    assert formats_for_length(40) == []
    frame = encode("h10304", 1000, 123456)
    as_h10304 = decode("h10304", frame, 37)
    as_h10302 = decode("h10302", frame, 37)
    # Same parity bits, so both "decode fine" -- to different numbers.
    assert as_h10304.parity_ok and as_h10302.parity_ok
    assert (as_h10304.facility, as_h10304.card) == (1000, 123456)
    assert (as_h10302.facility, as_h10302.card) == (None, 1000 * 2**19 + 123456)


def test_wrong_length_names_the_formats_of_that_length() -> None:
    with pytest.raises(WiegandError, match=r"h10301 frames are 26 bits, got 37.*h10304, h10302"):
        decode("h10301", 0, 37)


@pytest.mark.parametrize(("fmt", "value", "bits"), [
    ("h10301", (1 << 26) | 10482, 26),
    ("h10301", -10482, 26),
    ("wiegand26", 10482, 26),
    ("h10306", 10482, 26),
])
def test_decode_errors_are_frame_errors_without_the_bits(fmt: str, value: int,
                                                         bits: int) -> None:
    with pytest.raises(WiegandError) as info:
        decode(fmt, value, bits)
    assert isinstance(info.value, FrameError)
    message = str(info.value)
    assert str(abs(value)) not in message and "10482" not in message
    assert f"{abs(value):X}" not in message.upper()


def test_format_names_are_case_insensitive() -> None:
    assert get_format(" H10301 ").name == "h10301"
    assert decode("C1000", C1000_READ, 35).card == 163271


def test_repr_hides_the_card_number() -> None:
    text = repr(decode("h10301", USB_READER_10482, 26))
    assert "10482" not in text and str(USB_READER_10482) not in text
    assert "h10301" in text


@pytest.mark.parametrize(("fmt", "facility", "card"), [
    ("h10301", 256, 0),
    ("h10301", -1, 0),
    ("h10301", 0, 1 << 16),
    ("h10301", None, 1),
    ("h10302", 0, 1),  # H10302 has no facility code
    ("h10302", None, 1 << 35),
    ("c1000", 4096, 0),
    ("c1000", 0, 1 << 20),
    ("h10304", 0, 1 << 19),
    ("h10306", 1 << 16, 0),
])
def test_encode_rejects_out_of_range(fmt: str, facility: int | None, card: int) -> None:
    with pytest.raises(ValueError):
        encode(fmt, facility, card)


def test_encode_unknown_format_is_a_wiegand_error() -> None:
    with pytest.raises(WiegandError, match="known formats: h10301"):
        encode("h99999", 1, 1)


# -- properties --------------------------------------------------------------------------


@st.composite
def cards(draw: st.DrawFn) -> tuple[str, int | None, int]:
    name = draw(st.sampled_from(sorted(FORMATS)))
    layout = FORMATS[name]
    facility = (None if layout.max_facility is None
                else draw(st.integers(0, layout.max_facility)))
    return name, facility, draw(st.integers(0, layout.max_card))


@given(cards())
def test_round_trip(item: tuple[str, int | None, int]) -> None:
    name, facility, card = item
    layout = FORMATS[name]
    frame = encode(name, facility, card)
    assert 0 <= frame < 1 << layout.bit_count
    got = decode(name, frame, layout.bit_count)
    assert (got.format, got.facility, got.card, got.parity_ok) == (name, facility, card, True)
    assert got.parity_failures == ()


@given(st.sampled_from(sorted(FORMATS)), st.integers(min_value=0, max_value=(1 << 37) - 1))
def test_any_frame_of_the_right_length_decodes(name: str, raw: int) -> None:
    layout = FORMATS[name]
    frame = raw & ((1 << layout.bit_count) - 1)
    got = decode(name, frame, layout.bit_count)
    # Re-encoding the decoded numbers gives the frame back exactly when parity held.
    again = encode(name, got.facility, got.card)
    assert (again == frame) == got.parity_ok
    assert got.parity_ok == (not got.parity_failures)


@given(st.sampled_from(sorted(FORMATS)), st.integers(), st.integers(min_value=0, max_value=80))
def test_arbitrary_input_gives_a_card_or_a_wiegand_error(name: str, value: int,
                                                          bit_count: int) -> None:
    try:
        got = decode(name, value, bit_count)
    except WiegandError:
        return
    assert got.bit_count == FORMATS[name].bit_count == bit_count
