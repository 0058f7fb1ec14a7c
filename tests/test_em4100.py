"""EM4100 / RDM6300 codec: round trips, hostile input, chunking independence, known frames."""

from __future__ import annotations

import codec_feed
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import FrameError
from readers.codecs.em4100 import (
    ETX,
    FRAME_LEN,
    STX,
    Em4100Decoder,
    Em4100Event,
    Em4100Frame,
    Em4100FrameError,
    FrameFault,
    checksum,
    decode_frame,
    encode_frame,
)

versions = st.integers(min_value=0, max_value=0xFF)
tags = st.integers(min_value=0, max_value=0xFFFF_FFFF)
cards = st.tuples(versions, tags)
noise = st.binary(max_size=40).map(lambda b: b.replace(bytes([STX]), b""))

# Worked by hand: version 0x0A, tag 1234567 = 0x0012D687, so the data bytes are 0A 00 12 D6 87.
# XOR: 0A^00 = 0A, ^12 = 18, ^D6 = CE, ^87 = 49 -> checksum 0x49.
# Frame: STX "0A" "0012D687" "49" ETX; the fob reads 0001234567.
KNOWN = b"\x020A0012D68749\x03"
# The example frame found in RDM6300 write-ups: 62 E3 08 6C ED, XOR = 08.
# Tag 0xE3086CED = 3808980205.
DATASHEET = b"\x0262E3086CED08\x03"


def split_feed(data: bytes, cuts: list[int]) -> tuple[list[Em4100Event], Em4100Decoder]:
    """A fresh decoder fed ``data`` cut at ``cuts``; it never holds a whole frame back."""
    decoder = Em4100Decoder()
    return codec_feed.split_feed(decoder, data, cuts, max_pending=FRAME_LEN - 1), decoder


def key(event: Em4100Event) -> tuple[object, ...]:
    """What must match when two decodings are compared (frames hide their tag in repr)."""
    if isinstance(event, Em4100Frame):
        return ("frame", event.version, event.tag, event.raw)
    return ("error", event.fault, event.raw, str(event))


def frames_of(events: list[Em4100Event]) -> list[tuple[int, int, bytes]]:
    return [(e.version, e.tag, e.raw) for e in events if isinstance(e, Em4100Frame)]


# -- known values ------------------------------------------------------------------------


def test_known_frame_encodes_and_decodes() -> None:
    assert checksum(0x0A, 1234567) == 0x49
    assert encode_frame(0x0A, 1234567) == KNOWN
    frame = decode_frame(KNOWN)
    assert (frame.version, frame.tag, frame.number, frame.raw) == (10, 1234567, "0001234567", KNOWN)


def test_datasheet_frame() -> None:
    frame = decode_frame(DATASHEET)
    assert (frame.version, frame.tag, frame.number) == (0x62, 0xE3086CED, "3808980205")


def test_lower_case_hex_is_accepted() -> None:
    frame = decode_frame(KNOWN.lower())
    assert (frame.version, frame.tag) == (10, 1234567)


def test_number_keeps_leading_zeros() -> None:
    assert decode_frame(encode_frame(0, 0)).number == "0000000000"
    assert decode_frame(encode_frame(0xFF, 0xFFFF_FFFF)).number == "4294967295"


def test_repr_hides_the_tag() -> None:
    assert "1234567" not in repr(decode_frame(KNOWN))


@pytest.mark.parametrize(("version", "tag"), [(-1, 0), (0x100, 0), (0, -1), (0, 1 << 32)])
def test_encode_rejects_out_of_range(version: int, tag: int) -> None:
    with pytest.raises(ValueError):
        encode_frame(version, tag)


@pytest.mark.parametrize(
    ("wire", "fault"),
    [
        (b"\x020A0012D68748\x03", FrameFault.CHECKSUM),
        (b"\x020A0012D6874Z\x03", FrameFault.NON_HEX),
        (b"\x020A0012\x03", FrameFault.SHORT),
        (b"\x020A0012", FrameFault.TRUNCATED),  # cut off by the next frame's STX
        (b"\x020A0012D687490\x03", FrameFault.OVERLONG),
        (b"\x020A0012D68749", FrameFault.OVERLONG),  # ETX lost: next STX where ETX was due
    ],
)
def test_each_fault_is_reported_and_the_next_frame_decodes(wire: bytes, fault: FrameFault) -> None:
    decoder = Em4100Decoder()
    events = decoder.feed(wire + KNOWN)
    assert isinstance(events[0], Em4100FrameError)
    assert isinstance(events[0], FrameError)  # the project's error tree
    assert events[0].fault is fault
    assert frames_of(events) == [(10, 1234567, KNOWN)]
    assert decoder.bad_frames == 1
    assert decoder.frames == 1


def test_checksum_error_carries_both_checksums_but_no_digits_in_message() -> None:
    (error,) = Em4100Decoder().feed(b"\x020A0012D68748\x03")
    assert isinstance(error, Em4100FrameError)
    assert (error.expected, error.found) == (0x49, 0x48)
    assert "0012D687" not in str(error)
    assert error.raw == b"\x020A0012D68748\x03"


def test_truncating_stx_starts_the_next_frame() -> None:
    # The cut-off frame's STX is not thrown away with it: the resent frame decodes.
    events = Em4100Decoder().feed(KNOWN[:6] + KNOWN)
    assert [type(e) for e in events] == [Em4100FrameError, Em4100Frame]


def test_decode_frame_refuses_anything_but_one_frame() -> None:
    for bad in (b"", KNOWN[:-1], b"x" + KNOWN, KNOWN + b"x", KNOWN + KNOWN):
        with pytest.raises(Em4100FrameError):
            decode_frame(bad)


def test_garbage_is_skipped_and_counted_without_being_kept() -> None:
    decoder = Em4100Decoder()
    assert decoder.feed(b"\xff" * 100_000) == []
    assert decoder.skipped_bytes == 100_000
    assert decoder.pending_bytes == 0
    assert decoder.bad_frames == 0


# -- properties --------------------------------------------------------------------------


@given(cards)
def test_round_trip(card: tuple[int, int]) -> None:
    version, tag = card
    wire = encode_frame(version, tag)
    assert len(wire) == FRAME_LEN and wire[0] == STX and wire[-1] == ETX
    frame = decode_frame(wire)
    assert (frame.version, frame.tag, frame.raw) == (version, tag, wire)
    assert frame.number == f"{tag:010d}" and len(frame.number) == 10


@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=20))
def test_arbitrary_bytes_give_only_frames_or_frame_errors(data: bytes, cuts: list[int]) -> None:
    events, decoder = split_feed(data, cuts)
    assert all(isinstance(e, Em4100Frame | FrameError) for e in events)
    assert decoder.bad_frames == sum(isinstance(e, FrameError) for e in events)
    # However it is chunked, the same bytes give the same events.
    whole = Em4100Decoder().feed(data)
    assert [key(e) for e in events] == [key(e) for e in whole]


@given(st.lists(st.tuples(cards, noise), max_size=8), noise,
       st.lists(st.integers(min_value=0), max_size=30))
def test_noisy_stream_decodes_the_same_however_split(
    items: list[tuple[tuple[int, int], bytes]], lead: bytes, cuts: list[int]
) -> None:
    wire = lead + b"".join(encode_frame(v, t) + gap for (v, t), gap in items)
    expected = [(v, t, encode_frame(v, t)) for (v, t), _ in items]
    events, decoder = split_feed(wire, cuts)
    assert frames_of(events) == expected
    assert decoder.bad_frames == 0
    # Byte at a time is the extreme split.
    one_by_one, _ = split_feed(wire, list(range(len(wire))))
    assert frames_of(one_by_one) == expected


@given(cards, cards, st.integers(min_value=1, max_value=0xFF))
def test_bad_checksum_is_reported_and_next_frame_decodes(
    bad: tuple[int, int], good: tuple[int, int], flip: int
) -> None:
    wire = bytearray(encode_frame(*bad))
    wrong = checksum(*bad) ^ flip
    wire[11:13] = f"{wrong:02X}".encode()
    events, decoder = split_feed(bytes(wire) + encode_frame(*good), [7, 15, 20])
    assert len(events) == 2
    assert isinstance(events[0], Em4100FrameError) and events[0].fault is FrameFault.CHECKSUM
    assert frames_of(events) == [(*good, encode_frame(*good))]
    assert decoder.bad_frames == 1


def test_a_lone_stx_counts_as_a_cut_off_frame() -> None:
    # Deliberate: a stray STX is indistinguishable from a frame cut off at its first byte,
    # and bad_frames is the technician's measure of a noisy line.
    decoder = Em4100Decoder()
    events = decoder.feed(b"\x02" + KNOWN)
    assert [key(e)[:2] for e in events] == [("error", FrameFault.TRUNCATED), ("frame", 10)]
