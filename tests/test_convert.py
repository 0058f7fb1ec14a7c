"""Card-number conversion pipelines: PaperCut's examples, every step, round trips, hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ConfigError, FrameError
from readers.numbers.convert import (
    MAX_LENGTH,
    STEPS,
    ConversionError,
    Pipeline,
    PipelineError,
    describe_input,
    make_step,
)
from readers.numbers.wiegand import encode


def conv(pipeline: str, value: str) -> str:
    return Pipeline.parse(pipeline).apply(value)


# -- PaperCut's documented examples --------------------------------------------------------


def test_papercut_examples() -> None:
    assert conv("hex2dec", "946EBD28") == "2490285352"
    assert conv("dec2hex", "2490285352") == "946EBD28"
    assert conv("ascii-enc", "3934364542443238") == "946EBD28"
    assert conv("ascii-enc|hex2dec", "3934364542443238") == "2490285352"


def test_papercut_steps_are_marked() -> None:
    assert {s.name for s in STEPS.values() if s.papercut} == {"hex2dec", "dec2hex", "ascii-enc"}


# -- each step -----------------------------------------------------------------------------


@pytest.mark.parametrize(("pipeline", "value", "expected"), [
    ("hex2dec", "00ff", "255"),
    ("hex2dec", "0", "0"),
    ("dec2hex", "255", "FF"),
    ("dec2hex", "256", "0100"),  # whole bytes
    ("dec2hex", "0", "00"),
    ("dec2hex", "000123", "7B"),
    ("reverse-bytes", "04A1B2C3", "C3B2A104"),
    ("reverse-bytes", "04a1", "a104"),  # digits kept as they are
    ("reverse-bits", "01", "80"),
    ("reverse-bits", "0001", "8000"),
    ("reverse-bits", "C3", "C3"),
    ("reverse-bits", "1", "8"),  # per whole value: one hex digit is four bits
    ("invert", "00FF", "FF00"),
    ("invert", "a", "5"),
    ("lpad:10", "1234", "0000001234"),
    ("lpad:4", "123456", "123456"),  # never truncates
    ("strip-zeros", "00001234", "1234"),
    ("strip-zeros", "0000", "0"),
    ("strip-zeros", "0", "0"),
    ("strip-zeros", "00AB", "AB"),
    ("substr:2", "RR0026ABCD", "0026ABCD"),
    ("substr:0:2", "RR0026ABCD", "RR"),
    ("substr:2:4", "RR0026ABCD", "0026"),
    ("substr:-4", "RR0026ABCD", "ABCD"),
    ("substr:-4:2", "RR0026ABCD", "AB"),
    ("regex:ID=(\\d+)", "xx ID=1234 yy", "1234"),
    ("regex:\\d+", "abc 42 def 7", "42"),  # no group: the whole (first) match
    ("regex:^(\\d+)=\\d$", "5235092385=8", "5235092385"),  # PaperCut's checksum example
    ("regex:(a\\|b)+", "xxabbax", "a"),  # \| is an alternation inside an argument
    ("regex:k=([^:]+)", "k=ab:cd", "ab"),  # ':' inside a pattern is not split
    ("wiegand:h10301", "000451E5", "10482"),
    ("wiegand:h10301:fc", "000451E5", "2"),
    ("wiegand:h10301", "451e5", "10482"),
    ("wiegand:c1000", f"{encode('c1000', 2643, 163271):X}", "163271"),
    ("wiegand:c1000:fc", f"{encode('c1000', 2643, 163271):X}", "2643"),
    ("wiegand:h10302", f"{encode('h10302', None, 2**34 + 5):X}", str(2**34 + 5)),
    ("wiegand:h10304", f"{encode('h10304', 1000, 123456):X}", "123456"),
    ("wiegand:h10306:fc", f"{encode('h10306', 65535, 1):X}", "65535"),
    ("reverse-bytes|hex2dec", "04A1B2C3", "3283263748"),
    ("dec2hex|lpad:8", "10482", "000028F2"),
    ("  Reverse-Bytes |  HEX2DEC ", "04A1B2C3", "3283263748"),
])
def test_step_examples(pipeline: str, value: str, expected: str) -> None:
    assert conv(pipeline, value) == expected


@pytest.mark.parametrize(("pipeline", "value", "reason"), [
    ("hex2dec", "", "needs hex digits"),
    ("hex2dec", "0x1F", "needs hex digits"),
    ("hex2dec", "1_0", "needs hex digits"),  # int() would take it
    ("hex2dec", " 10", "needs hex digits"),
    ("dec2hex", "12A", "needs decimal digits"),
    ("dec2hex", "\u0663", "needs decimal digits"),  # an Arabic-Indic 3: int() would take it
    ("ascii-enc", "393", "whole bytes"),
    ("ascii-enc", "0041", "not printable ASCII"),
    ("reverse-bytes", "ABC", "whole bytes"),
    ("invert", "xyz", "needs hex digits"),
    ("substr:2:8", "12345", "at least 10 characters"),
    ("substr:-6", "12345", "at least 6 characters"),
    ("substr:5", "12345", "at least 6 characters"),
    ("regex:ID=(\\d+)", "no id here", "does not match"),
    ("regex:x(\\d*)", "x", "empty"),
    ("wiegand:h10301", "000451E4", "bit 26 (odd parity over bits 14-25)"),
    ("wiegand:h10301", "040451E5", "wider than h10301 frames (26 bits)"),
    ("wiegand:h10301", "", "needs hex digits"),
])
def test_refusals_name_the_reason(pipeline: str, value: str, reason: str) -> None:
    with pytest.raises(ConversionError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        conv(pipeline, value)


def test_conversion_error_names_step_index_and_kind_but_not_the_value() -> None:
    with pytest.raises(ConversionError) as info:
        conv("strip-zeros|reverse-bytes|hex2dec", "0012345")
    err = info.value
    assert isinstance(err, FrameError)
    assert (err.step, err.index, err.kind) == ("reverse-bytes", 1, "5 decimal digits")
    assert "step 2 (reverse-bytes)" in str(err)
    assert "12345" not in str(err)


def test_too_long_input_is_refused() -> None:
    with pytest.raises(ConversionError, match="longer than"):
        conv("hex2dec", "1" * (MAX_LENGTH + 1))
    assert conv("hex2dec", "F" * MAX_LENGTH) == str(16**MAX_LENGTH - 1)


def test_empty_pipeline_is_the_identity() -> None:
    for text in ("", "   "):
        pipeline = Pipeline.parse(text)
        assert pipeline == Pipeline() and len(pipeline) == 0 and str(pipeline) == ""
        assert pipeline.apply("anything at all") == "anything at all"


def test_pipelines_compose_with_or() -> None:
    built = Pipeline() | make_step("reverse-bytes") | make_step("hex2dec")
    assert built == Pipeline.parse("reverse-bytes|hex2dec")
    assert built | Pipeline.parse("lpad:12") == Pipeline.parse("reverse-bytes|hex2dec|lpad:12")
    assert make_step("lpad", 10) == Pipeline.parse("lpad:10").steps[0]


# -- parse errors ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "position", "named"), [
    ("hexx2dec", 1, "unknown step 'hexx2dec'"),
    ("hex2dec|dec2hexx", 2, "unknown step 'dec2hexx'"),
    ("hex2dec||dec2hex", 2, "empty"),
    ("hex2dec|", 2, "empty"),
    ("hex2dec:1", 1, "takes no argument"),
    ("lpad", 1, "lpad takes one argument"),
    ("lpad:x", 1, "whole number"),
    ("lpad:0", 1, "1..256"),
    ("lpad:99999999", 1, "1..256"),
    ("substr", 1, "START"),
    ("substr:1:0", 1, "1..256"),
    ("substr:1:2:3", 1, "START or START:LEN"),
    ("substr:-2:3", 1, "runs past the end"),
    ("substr:+2", 1, "whole number"),
    ("regex:", 1, "takes a pattern"),
    ("regex:(", 1, "does not compile"),
    ("wiegand", 1, "takes a format"),
    ("wiegand:h99999", 1, "unknown Wiegand format"),
    ("wiegand:h10301:card", 1, "optionally 'fc'"),
    ("wiegand:h10302:fc", 1, "no facility code"),
    ("dec2hex|reverse-bytes|lpad:-1", 3, "1..256"),
])
def test_parse_errors_name_step_and_position(text: str, position: int, named: str) -> None:
    with pytest.raises(PipelineError, match=named) as info:
        Pipeline.parse(text)
    assert isinstance(info.value, ConfigError)
    assert info.value.position == position
    assert f"step {position}" in str(info.value)


def test_unrepresentable_argument_is_refused() -> None:
    # A pipe right after a lone backslash could not be written back as pipeline text.
    with pytest.raises(PipelineError, match=r"\[\|\]"):
        make_step("regex", "a\\|b")
    with pytest.raises(PipelineError, match="white space"):
        make_step("regex", "a ")


# -- properties ----------------------------------------------------------------------------

hex_values = st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=40)
byte_hex = st.binary(min_size=1, max_size=20).map(bytes.hex)
decimals = st.integers(min_value=0, max_value=10**60).map(str)


@given(decimals)
def test_dec2hex_then_hex2dec(number: str) -> None:
    assert conv("dec2hex|hex2dec", number) == number


@given(hex_values)
def test_hex2dec_then_dec2hex(value: str) -> None:
    canonical = f"{int(value, 16):X}"
    canonical = canonical if len(canonical) % 2 == 0 else "0" + canonical
    assert conv("hex2dec|dec2hex", value) == canonical


@given(byte_hex)
def test_reverse_bytes_twice(value: str) -> None:
    assert conv("reverse-bytes|reverse-bytes", value) == value
    assert conv("reverse-bytes", value) == bytes.fromhex(value)[::-1].hex()


@given(hex_values)
def test_reverse_bits_twice(value: str) -> None:
    assert conv("reverse-bits|reverse-bits", value) == value.upper()


@given(byte_hex)
def test_reverse_bits_is_reverse_bytes_of_each_byte_mirrored(value: str) -> None:
    mirrored = bytes(int(f"{b:08b}"[::-1], 2) for b in bytes.fromhex(value))
    assert conv("reverse-bits", value) == mirrored[::-1].hex().upper()


@given(hex_values)
def test_invert_twice(value: str) -> None:
    inverted = conv("invert", value)
    assert len(inverted) == len(value)
    assert int(inverted, 16) + int(value, 16) == 16 ** len(value) - 1
    assert conv("invert|invert", value) == value.upper()


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1,
               max_size=40))
def test_ascii_enc_of_an_encoded_value(text: str) -> None:
    assert conv("ascii-enc", text.encode("ascii").hex()) == text


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_strip_zeros_then_lpad_restores_the_width(digits: str) -> None:
    stripped = conv("strip-zeros", digits)
    assert int(stripped) == int(digits) and (stripped == "0" or stripped[0] != "0")
    assert conv(f"lpad:{len(digits)}", stripped) == digits


STEP_TEXTS = [
    "hex2dec", "dec2hex", "reverse-bytes", "reverse-bits", "invert", "ascii-enc",
    "strip-zeros", "lpad:12", "substr:1", "substr:-3", "substr:2:4", "regex:(\\d+)",
    "regex:[A-F]+", "wiegand:h10301", "wiegand:h10306:fc", "wiegand:c1000",
    "wiegand:h10304", "wiegand:h10302",
]


@given(st.sampled_from(STEP_TEXTS), st.text(max_size=60))
def test_any_string_gives_a_result_or_a_conversion_error(step: str, value: str) -> None:
    try:
        result = conv(step, value)
    except ConversionError as exc:
        assert exc.step == step and exc.index == 0
        return
    assert isinstance(result, str)


@given(st.lists(st.sampled_from(STEP_TEXTS), max_size=4),
       st.one_of(st.text(max_size=40), hex_values, decimals))
def test_any_pipeline_and_string_gives_a_result_or_a_conversion_error(
    steps: list[str], value: str
) -> None:
    try:
        Pipeline.parse("|".join(steps)).apply(value)
    except ConversionError as exc:
        assert 0 <= exc.index < len(steps)


@given(st.sampled_from(STEP_TEXTS), st.from_regex(r"\A[0-9A-Fa-f]{9,30}\Z"))
def test_errors_never_carry_the_value(step: str, value: str) -> None:
    try:
        conv(step, value)
    except ConversionError as exc:
        assert value not in str(exc)


@given(st.text(max_size=60))
def test_any_text_parses_or_is_a_pipeline_error(text: str) -> None:
    try:
        pipeline = Pipeline.parse(text)
    except PipelineError:
        return
    assert Pipeline.parse(str(pipeline)) == pipeline


regex_patterns = st.text(alphabet="ab|\\:()+*d ", min_size=1, max_size=12)


@st.composite
def pipelines(draw: st.DrawFn) -> Pipeline:
    steps = draw(st.lists(st.sampled_from(STEP_TEXTS), max_size=4))
    pipeline = Pipeline.parse("|".join(steps))
    for pattern in draw(st.lists(regex_patterns, max_size=2)):
        try:
            pipeline = pipeline | make_step("regex", pattern)
        except PipelineError:
            continue  # not a valid regex, or not representable
    return pipeline


@given(pipelines())
def test_str_round_trips(pipeline: Pipeline) -> None:
    text = str(pipeline)
    again = Pipeline.parse(text)
    assert again == pipeline
    assert str(again) == text


@pytest.mark.parametrize(("value", "kind"), [
    ("", "an empty value"),
    ("7", "1 decimal digit"),
    ("0012", "4 decimal digits"),
    ("04A1", "4 hex digits"),
    ("ID=12", "5 characters of text"),
    ("\u00e9\t", "2 characters including non-ASCII or control characters"),
])
def test_describe_input(value: str, kind: str) -> None:
    assert describe_input(value) == kind
