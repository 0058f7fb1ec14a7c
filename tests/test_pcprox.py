"""The pcProx command subset: known commands and replies, every error, round trips, hostile
input, and a decoder that follows the reader's settings through the replies mid-stream."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_ascii import cards_of, formats, key, split_feed

from protocol.errors import ConfigError, FrameError
from readers.codecs.ascii import AsciiCard, AsciiFormat, AsciiFrameError, LineFault, encode_line
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
