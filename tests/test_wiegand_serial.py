"""Wiegand over serial (``W<bits>:<hex>``): known frames, every fault, format choice, round
trips, hostile input, chunking independence."""

from __future__ import annotations

import pytest
from codec_feed import split_feed
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ConfigError, FrameError
from readers.codecs.wiegand_serial import (
    LINE_LIMIT,
    WiegandFault,
    WiegandFrame,
    WiegandSerialDecoder,
    WiegandSerialError,
    WiegandSerialEvent,
    decode_frame,
    encode_card,
    encode_frame,
)
from readers.numbers import wiegand

# FIELD_NOTES' real case: a HID Prox card printed 10482 reads 000451E5 as a raw 26-bit frame.
# 0x00451E5 = 00 0000 0100 0101 0001 1110 0101 (26 bits): parity 0, FC 0000 0010 = 2,
# card 1000 1111 0010 = 0x28F2 = 10482, parity 1.
KNOWN = b"W26:00451E5\r\n"




def key(event: WiegandSerialEvent) -> tuple[object, ...]:
    if isinstance(event, WiegandFrame):
        return ("frame", event.card, event.raw)
    return ("error", event.fault, event.raw, str(event))


def frames_of(events: list[WiegandSerialEvent]) -> list[tuple[str, int | None, int]]:
    return [(e.card.format, e.card.facility, e.card.card) for e in events
            if isinstance(e, WiegandFrame)]


# -- known frames ------------------------------------------------------------------------


def test_known_frame() -> None:
    assert encode_card("h10301", 2, 10482) == KNOWN
    frame = decode_frame(KNOWN)
    assert (frame.card.format, frame.card.facility, frame.card.card) == ("h10301", 2, 10482)
    assert frame.number == "2:10482" and frame.raw == KNOWN
    assert (0x00451E5 >> 1) & 0xFFFF == 10482  # the FIELD_NOTES arithmetic, same bits


def test_lower_case_and_bare_lf_are_accepted() -> None:
    # Only the start byte must be upper case: a 'w' is not a frame start.
    assert decode_frame(b"W26:00451e5\n").card.card == 10482


def test_repr_and_messages_hide_the_card() -> None:
    assert "10482" not in repr(decode_frame(KNOWN))
    (error,) = WiegandSerialDecoder().feed(encode_card("h10301", 2, 10482, bad_parity=True))
    assert "451E" not in str(error) and "10482" not in str(error)


@pytest.mark.parametrize("name", sorted(wiegand.FORMATS))
def test_every_format_with_configuration(name: str) -> None:
    layout = wiegand.FORMATS[name]
    facility = None if layout.facility is None else 123
    frame = decode_frame(encode_card(name, facility, 4567), name)
    assert (frame.card.format, frame.card.facility, frame.card.card) == (name, facility, 4567)
    assert frame.number == ("4567" if facility is None else "123:4567")


@pytest.mark.parametrize(("name", "bits"), [("h10301", 26), ("h10306", 34), ("c1000", 35)])
def test_format_is_inferred_from_an_unambiguous_length(name: str, bits: int) -> None:
    frame = decode_frame(encode_card(name, 1, 2))
    assert frame.card.format == name and frame.card.bit_count == bits


def test_37_bits_needs_configuration_and_says_so() -> None:
    wire = encode_card("h10304", 1, 2)
    with pytest.raises(WiegandSerialError, match="format=") as info:
        decode_frame(wire)
    assert info.value.fault is WiegandFault.AMBIGUOUS
    assert "h10304" in str(info.value) and "h10302" in str(info.value)
    # Same bits, two readings: that is why it is configuration.
    assert decode_frame(wire, "h10304").number == "1:2"
    assert decode_frame(wire, "H10302").number == str((1 << 19) | 2)


def test_unknown_format_is_a_config_error_naming_the_parameter() -> None:
    with pytest.raises(ConfigError, match=r"'format'.*h10301"):
        WiegandSerialDecoder("hid26")


GOOD = encode_card("h10306", 500, 60000)


@pytest.mark.parametrize(
    ("wire", "fault", "fmt"),
    [
        (b"hello\r\n", WiegandFault.NOISE, None),
        (b"\x00\xff", WiegandFault.NOISE, None),  # noise just before a frame's W
        (b"W26:004", WiegandFault.TRUNCATED, None),  # cut off by the next frame
        (b"W26:" + b"0" * 40 + b"\r\n", WiegandFault.OVERLONG, None),
        (b"W2x:00451E5\r\n", WiegandFault.SYNTAX, None),
        (b"W26-00451E5\r\n", WiegandFault.SYNTAX, None),
        (b"W00:\r\n", WiegandFault.SYNTAX, None),
        (b"W26:00451G5\r\n", WiegandFault.NON_HEX, None),
        (b"W26:0451E5\r\n", WiegandFault.DIGITS, None),
        (b"W26:40451E5\r\n", WiegandFault.PADDING, None),
        (b"W08:FF\r\n", WiegandFault.UNKNOWN_LENGTH, None),
        (encode_card("h10301", 2, 10482), WiegandFault.LENGTH, "h10306"),
        (encode_card("h10306", 1, 1, bad_parity=True), WiegandFault.PARITY, None),
    ],
)
def test_each_fault_is_reported_and_the_next_frame_decodes(
    wire: bytes, fault: WiegandFault, fmt: str | None
) -> None:
    decoder = WiegandSerialDecoder(fmt)
    events = decoder.feed(wire + GOOD)
    assert isinstance(events[0], WiegandSerialError) and isinstance(events[0], FrameError)
    assert events[0].fault is fault
    assert frames_of(events) == [("h10306", 500, 60000)]
    assert decoder.bad_frames == 1 and decoder.frames == 1


def test_parity_failure_names_the_parity_bit() -> None:
    (error,) = WiegandSerialDecoder().feed(encode_card("h10301", 2, 10482, bad_parity=True))
    assert isinstance(error, WiegandSerialError)
    assert "bit 26 (odd parity over bits 14-25)" in str(error)


def test_blank_lines_are_not_frames() -> None:
    decoder = WiegandSerialDecoder()
    assert frames_of(decoder.feed(b"\r\n\n\r\r\n" + KNOWN + b"\r\n")) == [("h10301", 2, 10482)]
    assert decoder.bad_frames == 0


def test_garbage_is_bounded() -> None:
    decoder = WiegandSerialDecoder()
    events = decoder.feed(b"\xff" * 100_000 + KNOWN)
    # One report for the whole run of garbage; the frame's W ends the skipping.
    assert [e.fault for e in events if isinstance(e, WiegandSerialError)] == \
        [WiegandFault.OVERLONG]
    assert frames_of(events) == [("h10301", 2, 10482)]
    assert decoder.pending_bytes == 0


def test_decode_frame_refuses_anything_but_one_frame() -> None:
    for bad in (b"", KNOWN[:-2], KNOWN + KNOWN):
        with pytest.raises(WiegandSerialError):
            decode_frame(bad)


@pytest.mark.parametrize(("count", "bits"), [(0, 0), (100, 0), (26, 1 << 26), (26, -1)])
def test_encode_frame_rejects_out_of_range(count: int, bits: int) -> None:
    with pytest.raises(ValueError):
        encode_frame(count, bits)


# -- properties --------------------------------------------------------------------------


@st.composite
def cards(draw: st.DrawFn) -> tuple[str, int | None, int]:
    layout = wiegand.FORMATS[draw(st.sampled_from(sorted(wiegand.FORMATS)))]
    facility = None if layout.max_facility is None else draw(
        st.integers(0, layout.max_facility))
    return layout.name, facility, draw(st.integers(0, layout.max_card))


@given(cards())
def test_round_trip(card: tuple[str, int | None, int]) -> None:
    name, facility, number = card
    wire = encode_card(name, facility, number)
    frame = decode_frame(wire, name)
    assert (frame.card.format, frame.card.facility, frame.card.card) == card
    assert frame.card.parity_ok and frame.raw == wire and len(wire) <= LINE_LIMIT + 1


@given(st.integers(1, 99).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, (1 << n) - 1))))
def test_any_frame_reaches_the_format_stage(frame: tuple[int, int]) -> None:
    # Framing round trip for every length: what comes back is a frame or a format-stage
    # rejection (length, parity, ambiguity), never a framing error.
    count, bits = frame
    events = WiegandSerialDecoder().feed(encode_frame(count, bits))
    assert len(events) == 1
    event = events[0]
    if isinstance(event, WiegandSerialError):
        assert event.fault in (WiegandFault.UNKNOWN_LENGTH, WiegandFault.AMBIGUOUS,
                               WiegandFault.PARITY)
    else:
        assert (event.card.bits, event.card.bit_count) == (bits, count)


@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=20),
       st.sampled_from([None, "h10301", "h10304"]))
def test_arbitrary_bytes_give_only_frames_or_frame_errors(
    data: bytes, cuts: list[int], fmt: str | None
) -> None:
    decoder = WiegandSerialDecoder(fmt)
    events = split_feed(decoder, data, cuts, max_pending=LINE_LIMIT)
    assert all(isinstance(e, WiegandFrame | FrameError) for e in events)
    assert decoder.bad_frames == sum(isinstance(e, FrameError) for e in events)
    assert [key(e) for e in events] == [key(e) for e in WiegandSerialDecoder(fmt).feed(data)]


# Noise between frames: no 'W' (that would start a frame), ended by a line end.
noise = st.binary(max_size=30).map(lambda b: b.replace(b"W", b"").replace(b"\n", b"") + b"\r\n")


@given(st.lists(st.tuples(cards().filter(lambda c: c[0] not in ("h10304", "h10302")), noise),
                max_size=8),
       st.lists(st.integers(min_value=0), max_size=30))
def test_noisy_stream_decodes_the_same_however_split(
    items: list[tuple[tuple[str, int | None, int], bytes]], cuts: list[int]
) -> None:
    wire = b"".join(encode_card(*card) + gap for card, gap in items)
    events = split_feed(WiegandSerialDecoder(), wire, cuts, max_pending=LINE_LIMIT)
    assert frames_of(events) == [card for card, _ in items]
    # Each non-blank noise line is one bad frame (longer ones are overlong, also one).
    assert sum(isinstance(e, WiegandSerialError) for e in events) == \
        sum(bool(gap.strip(b"\r\n")) for _, gap in items)
    one_by_one = split_feed(WiegandSerialDecoder(), wire, list(range(len(wire))),
                            max_pending=LINE_LIMIT)
    assert [key(e) for e in one_by_one] == [key(e) for e in events]


@given(cards(), cards())
def test_bad_parity_is_a_counted_bad_frame_and_the_next_decodes(
    bad: tuple[str, int | None, int], good: tuple[str, int | None, int]
) -> None:
    decoder = WiegandSerialDecoder()
    events = decoder.feed(encode_card(*bad, bad_parity=True) + encode_card(*good))
    first = events[0]
    assert isinstance(first, WiegandSerialError)
    assert first.fault in (WiegandFault.PARITY, WiegandFault.AMBIGUOUS)
    if good[0] not in ("h10304", "h10302"):
        assert frames_of(events) == [good]
    assert decoder.bad_frames == len(events) - len(frames_of(events))
