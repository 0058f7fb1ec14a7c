"""ASCII line readers (pcProx, TWN4): known lines, every fault, round trips, hostile input,
chunking independence. The pcProx's commands are test_pcprox's; it shares the helpers here."""

from __future__ import annotations

import codec_feed
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ConfigError, FrameError
from readers.codecs.ascii import (
    MAX_DIGITS,
    AsciiCard,
    AsciiDecoder,
    AsciiFormat,
    AsciiFrameError,
    LineFault,
    decode_line,
    encode_line,
)
from readers.codecs.pcprox import AcpResult, PcProxDecoder

PCPROX = AsciiFormat(sep=b":")  # "12:3456\r"
TWN4 = AsciiFormat(base=16)  # "04A1B2C3\r"


def split_feed(decoder: AsciiDecoder | PcProxDecoder, data: bytes,
               cuts: list[int]) -> list[object]:
    """``data`` cut at ``cuts``; a line held back never passes the decoder's current limit."""
    return list(codec_feed.split_feed(decoder, data, cuts,
                                      max_pending=lambda: decoder.format.line_limit))


def key(event: object) -> tuple[object, ...]:
    """What must match when two decodings are compared (cards hide their numbers in repr)."""
    if isinstance(event, AsciiCard):
        return ("card", event.facility, event.card, event.raw)
    if isinstance(event, AsciiFrameError):
        return ("error", event.fault, event.raw, str(event))
    assert isinstance(event, AcpResult)
    return ("result", event.command, event.reply.text, event.value)


def cards_of(events: list[object]) -> list[tuple[int | None, int]]:
    return [(e.facility, e.card) for e in events if isinstance(e, AsciiCard)]


# -- known lines -------------------------------------------------------------------------


def test_facility_separator_line() -> None:
    card = decode_line(b"12:3456\r", PCPROX)
    assert (card.facility, card.card, card.number, card.raw) == (12, 3456, "12:3456", b"12:3456\r")


def test_pcprox_manual_style_delimiters_may_contain_digits() -> None:
    # RF IDeas' own example precedes the ID with "#1/": a digit inside a delimiter is fine,
    # because delimiters are matched as fixed strings at the ends of the line.
    fmt = AsciiFormat(pre=b"#1/", term=b"\r\n")
    assert decode_line(b"#1/0012345\r\n", fmt).number == "12345"


def test_hex_fixed_width_and_lower_case() -> None:
    fmt = AsciiFormat(base=16, width=8)
    assert encode_line(fmt, 123456) == b"0001E240\r"
    assert decode_line(b"0001e240\r", fmt).card == 123456


def test_number_is_the_same_in_hex_and_decimal_padded_or_not() -> None:
    numbers = {decode_line(encode_line(fmt, 10482), fmt).number
               for fmt in (AsciiFormat(), AsciiFormat(base=16), AsciiFormat(width=10),
                           AsciiFormat(base=16, width=8, term=b"\r\n"))}
    assert numbers == {"10482"}


def test_twn4_style_uid_line() -> None:
    assert decode_line(b"04A1B2C3D4E5F6\r", TWN4).card == 0x04A1B2C3D4E5F6


def test_repr_and_messages_hide_the_number() -> None:
    card = decode_line(b"12:3456\r", PCPROX)
    assert "3456" not in repr(card) and "12" not in repr(card)
    (error,) = AsciiDecoder(PCPROX).feed(b"12:3456X\r")
    assert isinstance(error, AsciiFrameError) and "3456" not in str(error)


@pytest.mark.parametrize(
    ("fmt", "wire", "fault"),
    [
        (AsciiFormat(pre=b"#"), b"1234\r", LineFault.DELIMITER),
        (AsciiFormat(post=b"/"), b"1234\r", LineFault.DELIMITER),
        (PCPROX, b"123456\r", LineFault.SEPARATOR),
        (PCPROX, b"12:34:56\r", LineFault.SEPARATOR),
        (PCPROX, b":3456\r", LineFault.EMPTY),
        (AsciiFormat(), b"12A4\r", LineFault.NON_DIGIT),
        (AsciiFormat(), b"12 34\r", LineFault.NON_DIGIT),
        (TWN4, b"12G4\r", LineFault.NON_DIGIT),
        (AsciiFormat(), b"\x00\xff\x1b[2J\r", LineFault.NON_DIGIT),
        (AsciiFormat(width=8), b"1234\r", LineFault.WIDTH),
        (AsciiFormat(), b"1" * (MAX_DIGITS + 1) + b"\r", LineFault.WIDTH),
        (AsciiFormat(), b"1" * 500 + b"\r", LineFault.OVERLONG),
    ],
)
def test_each_fault_is_reported_and_the_next_line_decodes(
    fmt: AsciiFormat, wire: bytes, fault: LineFault
) -> None:
    good = encode_line(fmt, 42, 7 if fmt.has_facility else None)
    decoder = AsciiDecoder(fmt)
    events = decoder.feed(wire + good)
    assert isinstance(events[0], AsciiFrameError) and isinstance(events[0], FrameError)
    assert events[0].fault is fault
    assert cards_of(events) == [(7 if fmt.has_facility else None, 42)]
    assert decoder.bad_frames == 1 and decoder.frames == 1


def test_overlong_line_is_one_error_and_memory_stays_bounded() -> None:
    decoder = AsciiDecoder()
    assert [e.fault for e in decoder.feed(b"\xff" * 100_000) if isinstance(e, AsciiFrameError)] \
        == [LineFault.OVERLONG]
    assert decoder.pending_bytes == 0  # the rest of the line is skipped, not kept
    assert decoder.feed(b"tail\r4711\r") == [AsciiCard(4711, None, b"4711\r")]


def test_blank_lines_and_a_neighbouring_cr_or_lf_are_tolerated() -> None:
    # A reader sending CR LF to a host set for CR (and vice versa) still decodes; blank
    # lines are not frames.
    for term in (b"\r", b"\n", b"\r\n"):
        decoder = AsciiDecoder(AsciiFormat(term=term))
        events = decoder.feed(b"\r\n\r\n1234\r\n5678\r\n")
        assert cards_of(events) == [(None, 1234), (None, 5678)], term
        assert decoder.bad_frames == 0


def test_only_the_configured_terminator_ends_a_line() -> None:
    decoder = AsciiDecoder(AsciiFormat(term=b"\r"))
    assert decoder.feed(b"1234\n") == []  # an LF alone: still waiting for CR
    assert decoder.pending_bytes == 5


def test_decode_line_refuses_anything_but_one_line() -> None:
    for bad in (b"", b"1234", b"1234\r5678\r", b"1234\r56"):
        with pytest.raises(AsciiFrameError):
            decode_line(bad, AsciiFormat())


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"term": b"\x03"}, "'term'"),
        ({"base": 8}, "'base'"),
        ({"width": -1}, "'width'"),
        ({"width": MAX_DIGITS + 1}, "'width'"),
        ({"pre": b"a\rb"}, "'pre'"),
        ({"post": b"\n"}, "'post'"),
        ({"sep": b"1"}, "'sep'"),
        ({"sep": b"A", "base": 16}, "'sep'"),
        ({"pre": b"x" * 17}, "'pre'"),
    ],
)
def test_format_validation_names_the_setting(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        AsciiFormat(**kwargs)  # type: ignore[arg-type]


def test_hex_letter_is_a_fine_separator_in_decimal() -> None:
    assert decode_line(b"12A3456\r", AsciiFormat(sep=b"A")).number == "12:3456"


@pytest.mark.parametrize(
    ("fmt", "card", "facility"),
    [(AsciiFormat(), -1, None), (PCPROX, 1, None), (AsciiFormat(), 1, 2),
     (AsciiFormat(width=3), 1234, None), (AsciiFormat(), 10 ** MAX_DIGITS, None)],
)
def test_encode_line_rejects_what_the_format_cannot_print(
    fmt: AsciiFormat, card: int, facility: int | None
) -> None:
    with pytest.raises(ValueError):
        encode_line(fmt, card, facility)


# -- properties: card lines --------------------------------------------------------------

delim_bytes = st.binary(max_size=4).filter(lambda b: b"\r" not in b and b"\n" not in b)


@st.composite
def formats(draw: st.DrawFn) -> AsciiFormat:
    base = draw(st.sampled_from([10, 16]))
    digits = b"0123456789abcdefABCDEF" if base == 16 else b"0123456789"
    sep = draw(st.one_of(st.just(b""), delim_bytes.filter(
        lambda b: b != b"" and not any(c in digits for c in b))))
    return AsciiFormat(pre=draw(delim_bytes), post=draw(delim_bytes), sep=sep,
                       term=draw(st.sampled_from([b"\r", b"\n", b"\r\n"])), base=base,
                       width=draw(st.sampled_from([0, 0, 8, 12])))


@st.composite
def format_and_cards(draw: st.DrawFn) -> tuple[AsciiFormat, list[tuple[int | None, int]]]:
    fmt = draw(formats())
    top = (fmt.base ** fmt.width - 1) if fmt.width else (1 << 64)
    fac = st.integers(0, 0xFFFF) if fmt.has_facility else st.none()
    return fmt, draw(st.lists(st.tuples(fac, st.integers(0, top)), max_size=6))


@given(format_and_cards())
def test_round_trip(case: tuple[AsciiFormat, list[tuple[int | None, int]]]) -> None:
    fmt, cards = case
    for facility, card in cards:
        line = encode_line(fmt, card, facility)
        decoded = decode_line(line, fmt)
        assert (decoded.facility, decoded.card, decoded.raw) == (facility, card, line)
        assert len(line) <= fmt.line_limit


@given(formats(), st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=20))
def test_arbitrary_bytes_give_only_cards_or_frame_errors(
    fmt: AsciiFormat, data: bytes, cuts: list[int]
) -> None:
    decoder = AsciiDecoder(fmt)
    events = split_feed(decoder, data, cuts)
    assert all(isinstance(e, AsciiCard | FrameError) for e in events)
    assert decoder.bad_frames == sum(isinstance(e, FrameError) for e in events)
    assert all(len(e.raw) <= fmt.line_limit + 1 for e in events
               if isinstance(e, AsciiCard | AsciiFrameError))
    whole = AsciiDecoder(fmt).feed(data)
    assert [key(e) for e in events] == [key(e) for e in whole]


# Noise lines: anything without the terminator's last byte, then the terminator.
noise_lines = st.binary(max_size=30)


@given(format_and_cards(), st.lists(noise_lines, max_size=6),
       st.lists(st.integers(min_value=0), max_size=30))
def test_valid_stream_with_noise_lines_decodes_the_same_however_split(
    case: tuple[AsciiFormat, list[tuple[int | None, int]]], noise: list[bytes], cuts: list[int]
) -> None:
    fmt, cards = case
    end = fmt.term[-1:]
    gaps = [n.replace(end, b"") + fmt.term for n in noise] + [b""] * len(cards)
    wire = b"".join(encode_line(fmt, c, f) + gap for (f, c), gap in zip(cards, gaps, strict=False))
    events = split_feed(AsciiDecoder(fmt), wire, cuts)
    # A noise line may happen to be a valid card line itself; the real cards are all there,
    # in order, and nothing is lost to the noise.
    decoded = cards_of(events)
    it = iter(decoded)
    assert all(card in it for card in cards)
    one_by_one = split_feed(AsciiDecoder(fmt), wire, list(range(len(wire))))
    assert [key(e) for e in one_by_one] == [key(e) for e in events]


@given(format_and_cards(), st.lists(st.integers(min_value=0), max_size=30))
def test_clean_stream_gives_exactly_the_cards(
    case: tuple[AsciiFormat, list[tuple[int | None, int]]], cuts: list[int]
) -> None:
    fmt, cards = case
    wire = b"".join(encode_line(fmt, c, f) for f, c in cards)
    decoder = AsciiDecoder(fmt)
    assert cards_of(split_feed(decoder, wire, cuts)) == cards
    assert decoder.bad_frames == 0
