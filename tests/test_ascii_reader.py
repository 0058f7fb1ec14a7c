"""ASCII line readers (pcProx, TWN4) and the pcProx command subset: known lines, every fault,
round trips, hostile input, chunking independence, live reconfiguration through replies."""

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
from readers.codecs.pcprox import (
    ACP_PROMPT,
    ACP_VARIABLES,
    AcpAssign,
    AcpCommand,
    AcpError,
    AcpErrorCode,
    AcpQuery,
    AcpResult,
    AcpType,
    AcpValue,
    PcProxDecoder,
    encode_command,
    encode_reply,
    format_from_acp,
    format_to_acp,
    format_value,
    parse_command,
    parse_reply,
    parse_value,
)

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


# -- pcProx command subset ---------------------------------------------------------------


def test_known_commands_and_replies() -> None:
    assert encode_command(AcpQuery("time.lo")) == b"rfid:time.lo?\r"
    assert encode_command(AcpAssign("disp.id.hex", True)) == b"rfid:disp.id.hex=True\r"
    assert encode_command(AcpAssign("chr.fac", b":")) == b"rfid:chr.fac=':'\r"
    assert encode_command(AcpAssign("chr.eol", b"\r")) == b"rfid:chr.eol='\\x0D'\r"
    assert encode_reply("24") == b"{24}\r\n"
    assert encode_reply(AcpErrorCode.UNKNOWN) == b"{ERR unknown}\r\n"


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"rfid:time.lo?\r\n", AcpQuery("time.lo")),
        (b"RFID:Disp.Id.Hex=t\n", AcpAssign("disp.id.hex", True)),
        (b"rfid:disp.fac.send=0", AcpAssign("disp.fac.send", False)),
        (b"rfid:disp.id.digits=0x0A\r", AcpAssign("disp.id.digits", 10)),
        (b"rfid:chr.fac='x3a'\r", AcpAssign("chr.fac", b":")),  # as in RF IDeas' manual
        (b"rfid:chr.1='\\x02'\r", AcpAssign("chr.1", b"\x02")),
    ],
)
def test_parse_command_accepts_the_manuals_spellings(line: bytes, command: AcpCommand) -> None:
    assert parse_command(line) == command


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"hello\r", AcpErrorCode.SYNTAX),
        (b"rfid:time.lo\r", AcpErrorCode.SYNTAX),  # a function call; none in the subset
        (b"rfid:cfg.write\r", AcpErrorCode.UNKNOWN),
        (b"rfid:out.led=3\r", AcpErrorCode.UNKNOWN),
        (b"rfid:time.lo=256\r", AcpErrorCode.VALUE),
        (b"rfid:time.lo=soon\r", AcpErrorCode.VALUE),
        (b"rfid:chr.count.lead=4\r", AcpErrorCode.VALUE),
        (b"rfid:disp.id.hex=maybe\r", AcpErrorCode.VALUE),
        (b"rfid:chr.fac=::\r", AcpErrorCode.VALUE),
        (b"rfid:chr.fac='ab'\r", AcpErrorCode.VALUE),
        (b"rfid:\xff?\r", AcpErrorCode.SYNTAX),
    ],
)
def test_parse_command_errors(line: bytes, code: AcpErrorCode) -> None:
    with pytest.raises(AcpError) as info:
        parse_command(line)
    assert info.value.acp_code is code and isinstance(info.value, FrameError)


@pytest.mark.parametrize("bad", [b"", b"{", b"24", b"{2{4}", b"{\xff}"])
def test_parse_reply_errors(bad: bytes) -> None:
    with pytest.raises(AcpError):
        parse_reply(bad)


def test_parse_reply_skips_the_prompt_and_knows_errors() -> None:
    assert parse_reply(ACP_PROMPT + b"{24}\r\n").text == "24"
    assert parse_reply(b"{ERR value}\r\n").error is AcpErrorCode.VALUE
    assert parse_reply(b"{ERR 7}").error == "7"
    assert parse_reply(b"{True}").error is None


@st.composite
def variable_values(draw: st.DrawFn) -> tuple[str, AcpValue]:
    var = ACP_VARIABLES[draw(st.sampled_from(sorted(ACP_VARIABLES)))]
    value: AcpValue
    if var.type is AcpType.BOOL:
        value = draw(st.booleans())
    elif var.type is AcpType.INT:
        value = draw(st.integers(var.low, var.high))
    else:
        value = draw(st.binary(min_size=1, max_size=1))
    return var.name, value


@given(variable_values())
def test_command_and_reply_round_trip(case: tuple[str, AcpValue]) -> None:
    name, value = case
    assert parse_command(encode_command(AcpAssign(name, value))) == AcpAssign(name, value)
    assert parse_command(encode_command(AcpQuery(name))) == AcpQuery(name)
    reply = parse_reply(encode_reply(format_value(name, value)))
    assert parse_value(name, reply.text) == value


@given(st.binary(max_size=60))
def test_arbitrary_command_lines_parse_or_raise_acp_error(line: bytes) -> None:
    try:
        command = parse_command(line)
    except AcpError:
        return
    assert command.name in ACP_VARIABLES


def pcprox_representable(fmt: AsciiFormat) -> bool:
    return len(fmt.pre) + len(fmt.post) <= 3 and len(fmt.sep) <= 1 and fmt.term != b"\r\n" \
        and fmt.sep != b"\x00"


@given(formats().filter(pcprox_representable), st.integers(0, 255))
def test_format_to_acp_and_back(fmt: AsciiFormat, ticks: int) -> None:
    variables = format_to_acp(fmt, lockout_ticks=ticks)
    assert format_from_acp(variables) == fmt
    assert variables["time.lo"] == ticks


@pytest.mark.parametrize(
    ("fmt", "named"),
    [(AsciiFormat(pre=b"ab", post=b"cd"), "three delimiter"),
     (AsciiFormat(sep=b"::"), "'sep'"),
     (AsciiFormat(term=b"\r\n"), "'term'")],
)
def test_format_to_acp_refuses_what_a_pcprox_cannot_print(fmt: AsciiFormat, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        format_to_acp(fmt)


def test_format_from_acp_refuses_undecodable_settings() -> None:
    with pytest.raises(ConfigError, match="separator"):
        format_from_acp({"disp.fac.send": True, "chr.fac": b"\x00"})
    with pytest.raises(ConfigError, match=r"chr\.eol"):
        format_from_acp({"chr.eol": b"\x03"})
    with pytest.raises(ConfigError, match="exceed"):
        format_from_acp({"chr.count.lead": 2, "chr.count.trail": 2})


# -- PcProxDecoder: replies reconfigure the host mid-stream -------------------------------


def test_reply_switches_the_base_exactly_where_the_reader_did() -> None:
    decoder = PcProxDecoder()
    wire = decoder.send(AcpAssign("disp.id.hex", True))
    assert wire == b"rfid:disp.id.hex=True\r" and decoder.pending_commands == 1
    events = decoder.feed(b"1234\r" + b"{True}\r\n" + b"1234\r")
    assert isinstance(events[1], AcpResult) and events[1].ok and events[1].value is True
    assert cards_of(events) == [(None, 1234), (None, 0x1234)]
    assert decoder.format.base == 16 and decoder.variables["disp.id.hex"] is True


def test_echo_and_prompt_of_the_real_console_are_skipped() -> None:
    decoder = PcProxDecoder()
    decoder.send(AcpQuery("time.lo"))
    events = decoder.feed(b"rfid:time.lo?\r\n{24}\r\nRF IDeas>1234\r\nRF IDeas>\r\n")
    assert [key(e)[0] for e in events] == ["result", "card"]
    assert decoder.bad_frames == 0


def test_error_reply_leaves_the_settings_alone() -> None:
    decoder = PcProxDecoder()
    decoder.send(AcpAssign("chr.count.trail", 3))
    (result,) = decoder.feed(b"{ERR value}\r\n")
    assert isinstance(result, AcpResult)
    assert not result.ok and result.reply.error is AcpErrorCode.VALUE
    assert decoder.format == AsciiFormat()


def test_unsolicited_and_malformed_replies() -> None:
    decoder = PcProxDecoder()
    (result,) = decoder.feed(b"{24}\r\n")
    assert isinstance(result, AcpResult) and result.command is None and not result.ok
    decoder.send(AcpQuery("disp.id.hex"))
    (garbled,) = decoder.feed(b"{maybe}\r\n")  # a reply that is not a bool
    assert isinstance(garbled, AcpResult) and not garbled.ok
    (bad,) = decoder.feed(b"{x}y}\r\n")
    assert isinstance(bad, AsciiFrameError) and bad.fault is LineFault.REPLY


def test_undecodable_settings_reject_card_lines_until_fixed() -> None:
    decoder = PcProxDecoder()
    decoder.send(AcpAssign("chr.fac", b"\x00"))
    decoder.send(AcpAssign("disp.fac.send", True))
    events = decoder.feed(b"{'\\x00'}\r\n{True}\r\n12\x003456\r")
    assert isinstance(events[-1], AsciiFrameError) and events[-1].fault is LineFault.FORMAT
    decoder.send(AcpAssign("chr.fac", b"/"))
    events = decoder.feed(b"{'/'}\r\n12/3456\r")
    assert cards_of(events) == [(12, 3456)]


@given(st.lists(st.one_of(
    st.tuples(st.just("card"), st.integers(0, 10 ** 9)),
    st.tuples(st.just("cmd"), variable_values()),
), max_size=12), st.lists(st.integers(min_value=0), max_size=30))
def test_mixed_stream_decodes_the_same_however_split(
    items: list[tuple[str, object]], cuts: list[int]
) -> None:
    # A stream the stub could produce: card lines in the current layout, replies to
    # commands that were sent (and accepted). The host must follow every layout change.
    variables = format_to_acp(AsciiFormat())
    commands: list[AcpCommand] = []
    wire = b""
    expected: list[int] = []
    for kind, item in items:
        if kind == "card":
            assert isinstance(item, int)
            fmt = format_from_acp(variables)
            if fmt.width and item >= fmt.base ** fmt.width:
                continue
            wire += encode_line(fmt, item, 0 if fmt.has_facility else None)
            expected.append(item)
        else:
            name, value = item  # type: ignore[misc]
            trial = {**variables, name: value}
            try:
                if format_from_acp(trial).pre[:1] == b"{":
                    continue  # a layout the host refuses (test_a_layout_that_looks_like...)
            except ConfigError:
                continue  # the emulated firmware refuses those; keep the stream decodable
            variables = trial
            commands.append(AcpAssign(name, value))
            wire += encode_reply(format_value(name, value))

    def run(cut: list[int]) -> list[object]:
        decoder = PcProxDecoder()
        for command in commands:
            decoder.send(command)
        return split_feed(decoder, wire, cut)

    events = run(cuts)
    assert [c for _, c in cards_of(events)] == expected
    assert all(isinstance(e, AsciiCard | AcpResult) for e in events)
    assert [key(e) for e in run([])] == [key(e) for e in events]


@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=20))
def test_pcprox_decoder_takes_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    decoder = PcProxDecoder()
    decoder.send(AcpQuery("time.lo"))
    events = split_feed(decoder, data, cuts)
    assert all(isinstance(e, AsciiCard | AsciiFrameError | AcpResult) for e in events)
    again = PcProxDecoder()
    again.send(AcpQuery("time.lo"))
    assert [key(e) for e in again.feed(data)] == [key(e) for e in events]


def test_a_layout_that_looks_like_a_reply_is_refused() -> None:
    with pytest.raises(ConfigError, match="'pre'"):
        PcProxDecoder(AsciiFormat(pre=b"{", post=b"}"))
    decoder = PcProxDecoder()
    decoder.send(AcpAssign("chr.1", b"{"))
    decoder.send(AcpAssign("chr.count.lead", 1))
    assert format_value("chr.1", b"{") == "'\\x7B'"  # braces are escaped inside replies
    events = decoder.feed(b"{'\\x7B'}\r\n{1}\r\n{1234\r")
    assert isinstance(events[-1], AsciiFrameError) and events[-1].fault is LineFault.FORMAT
