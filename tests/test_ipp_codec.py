"""IPP codec: round trips, hostile input, truncation, and bytes worked out by hand from RFC 8010."""

from __future__ import annotations

import struct
import time
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_app.engines.ipp import codec as ipp
from device_app.engines.ipp.codec import (
    Attribute,
    AttributeGroup,
    Collection,
    DateTime,
    GroupTag,
    LocalIppError,
    Message,
    RangeOfInteger,
    RemoteIppError,
    Resolution,
    TextWithLanguage,
    Value,
    ValueTag,
)
from protocol.errors import EngineError

# --------------------------------------------------------------------------- strategies

i32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)
texts = st.text(max_size=30).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
# Tags the codec keeps as bytes: octetString, reserved and extension tags.
raw_tags = st.sampled_from([0x30, 0x38, 0x3F, 0x40, 0x43, 0x4B, 0x5F, 0x60, 0x7F, 0xFF])


def scalar_values() -> st.SearchStrategy[Value]:
    return st.one_of(
        st.builds(Value, st.sampled_from([ValueTag.INTEGER, ValueTag.ENUM]), i32),
        st.builds(Value, st.just(ValueTag.BOOLEAN), st.booleans()),
        st.builds(Value, st.sampled_from([ValueTag.TEXT, ValueTag.NAME, ValueTag.KEYWORD,
                                          ValueTag.URI, ValueTag.CHARSET,
                                          ValueTag.MIME_MEDIA_TYPE]), texts),
        st.builds(Value, st.sampled_from([ValueTag.TEXT_WITH_LANGUAGE,
                                          ValueTag.NAME_WITH_LANGUAGE]),
                  st.builds(TextWithLanguage, texts, texts)),
        st.builds(Value, st.just(ValueTag.RESOLUTION),
                  st.builds(Resolution, i32, i32, st.integers(0, 255))),
        st.builds(Value, st.just(ValueTag.RANGE_OF_INTEGER),
                  st.builds(RangeOfInteger, i32, i32)),
        st.builds(Value, st.just(ValueTag.DATE_TIME),
                  st.builds(DateTime, st.binary(min_size=11, max_size=11))),
        st.builds(Value, st.sampled_from([ValueTag.NO_VALUE, ValueTag.UNKNOWN,
                                          ValueTag.UNSUPPORTED]), st.none()),
        st.builds(Value, raw_tags, st.binary(max_size=20)),
    )


values = st.recursive(
    scalar_values(),
    lambda inner: st.builds(
        Value, st.just(ValueTag.BEG_COLLECTION),
        st.builds(Collection, st.lists(
            st.builds(Attribute, names, st.lists(inner, min_size=1, max_size=3).map(tuple)),
            max_size=3).map(tuple))),
    max_leaves=8)
attributes = st.builds(Attribute, names, st.lists(values, min_size=1, max_size=3).map(tuple))
groups = st.builds(AttributeGroup,
                   st.sampled_from([1, 2, 4, 5, 6, 7, 8, 9, 0x0A, 0x0F]),
                   st.lists(attributes, max_size=4).map(tuple))
messages = st.builds(Message, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF_FFFF),
                     st.lists(groups, max_size=3).map(tuple),
                     st.tuples(st.integers(0, 255), st.integers(0, 255)),
                     st.binary(max_size=40))


# --------------------------------------------------------------------------- properties


@given(messages)
def test_round_trip(message: Message) -> None:
    assert ipp.decode(ipp.encode(message)) == message


@given(messages)
def test_reencoding_a_decoded_message_gives_the_same_bytes(message: Message) -> None:
    wire = ipp.encode(message)
    assert ipp.encode(ipp.decode(wire)) == wire


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_remote_error(data: bytes) -> None:
    try:
        message = ipp.decode(data)
    except RemoteIppError as exc:
        assert isinstance(exc, EngineError) and exc.code == "ipp_protocol"
        return
    # What decodes must survive another trip unchanged.
    assert ipp.decode(ipp.encode(message)) == message


@given(messages, st.data())
def test_arbitrary_mutations_decode_or_raise_remote_error(message: Message,
                                                          data: st.DataObject) -> None:
    # Random bytes rarely get past the header; flipping bytes of real messages reaches the
    # attribute and collection parsers.
    wire = bytearray(ipp.encode(message))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(wire) - 1))
        wire[at] = data.draw(st.integers(0, 255))
    try:
        decoded = ipp.decode(bytes(wire))
    except RemoteIppError:
        return
    assert ipp.decode(ipp.encode(decoded)) == decoded


@given(messages, st.lists(st.integers(min_value=0), min_size=1, max_size=25))
def test_a_cut_before_the_end_tag_is_a_truncation_error(message: Message,
                                                        cuts: list[int]) -> None:
    # Sampled cuts, not all of them: a message of a few kB would make this quadratic.
    wire = ipp.encode(replace(message, data=b""))
    for cut in {c % len(wire) for c in cuts} | {len(wire) - 1}:  # the end tag is the last byte
        with pytest.raises(RemoteIppError):
            ipp.decode(wire[:cut])


def test_every_cut_of_a_real_message_is_a_truncation_error() -> None:
    group = AttributeGroup(GroupTag.PRINTER, (
        Attribute.of("sides-supported", ValueTag.KEYWORD, "one-sided", "two-sided-long-edge"),
        Attribute.of("media-col-default", ValueTag.BEG_COLLECTION, Collection((
            Attribute.of("media-size", ValueTag.BEG_COLLECTION, Collection((
                Attribute.of("x-dimension", ValueTag.INTEGER, 21000),))),
            Attribute.of("media-type", ValueTag.KEYWORD, "stationery")))),
        Attribute.of("printer-info", ValueTag.TEXT_WITH_LANGUAGE, TextWithLanguage("en", "hi")),
    ))
    wire = ipp.encode(Message(0, 1, (ipp.operation_attributes("ipp://p/"), group)))
    for cut in range(len(wire)):
        with pytest.raises(RemoteIppError):
            ipp.decode(wire[:cut])


# --------------------------------------------------------------------------- by hand


def _attr(tag: int, name: bytes, value: bytes) -> bytes:
    return bytes([tag]) + struct.pack(">H", len(name)) + name + struct.pack(">H", len(value)) \
        + value


def test_known_get_printer_attributes_request() -> None:
    # RFC 8010 3.1 layout, written out: version 2.0, operation 0x000B, request-id 7, the
    # operation group with charset, language, uri, then end-of-attributes.
    message = Message(ipp.Operation.GET_PRINTER_ATTRIBUTES, 7,
                      (ipp.operation_attributes("ipp://p/ipp/print"),))
    expected = (b"\x02\x00\x00\x0b\x00\x00\x00\x07" + b"\x01"
                + _attr(0x47, b"attributes-charset", b"utf-8")
                + _attr(0x48, b"attributes-natural-language", b"en")
                + _attr(0x45, b"printer-uri", b"ipp://p/ipp/print")
                + b"\x03")
    assert ipp.encode(message) == expected


def test_additional_values_and_a_collection_by_hand() -> None:
    body = (b"\x02\x00\x00\x00\x00\x00\x00\x01" + b"\x04"
            + _attr(0x44, b"sides-supported", b"one-sided")
            + _attr(0x44, b"", b"two-sided-long-edge")
            + _attr(0x34, b"media-col-default", b"")
            + _attr(0x4A, b"", b"media-size")
            + _attr(0x34, b"", b"")
            + _attr(0x4A, b"", b"x-dimension") + _attr(0x21, b"", struct.pack(">i", 21000))
            + _attr(0x4A, b"", b"y-dimension") + _attr(0x21, b"", struct.pack(">i", 29700))
            + _attr(0x37, b"", b"")
            + _attr(0x4A, b"", b"media-type") + _attr(0x44, b"", b"stationery")
            + _attr(0x37, b"", b"")
            + _attr(0x33, b"copies-supported", struct.pack(">ii", 1, 999))
            + b"\x03%PDF")
    message = ipp.decode(body)
    assert message.code == 0 and message.request_id == 1 and message.data == b"%PDF"
    printer = message.group(GroupTag.PRINTER)
    assert printer is not None
    sides = printer.get("sides-supported")
    assert sides is not None and sides.natives == ("one-sided", "two-sided-long-edge")
    media = message.first(GroupTag.PRINTER, "media-col-default")
    assert isinstance(media, Collection)
    size = media.get("media-size")
    assert size is not None and isinstance(size.first, Collection)
    x = size.first.get("x-dimension")
    assert x is not None and x.first == 21000
    copies = message.first(GroupTag.PRINTER, "copies-supported")
    assert isinstance(copies, RangeOfInteger) and 2 in copies and 1000 not in copies
    assert ipp.encode(message) == body


def test_text_with_language_by_hand() -> None:
    value = struct.pack(">H", 5) + b"fr-ca" + struct.pack(">H", 3) + b"abc"
    body = b"\x02\x00\x00\x00\x00\x00\x00\x01\x04" + _attr(0x35, b"printer-info", value) + b"\x03"
    assert ipp.decode(body).first(GroupTag.PRINTER, "printer-info") == TextWithLanguage("fr-ca",
                                                                                        "abc")


def test_latin1_text_from_an_old_printer_is_kept_not_refused() -> None:
    body = b"\x02\x00\x00\x00\x00\x00\x00\x01\x04" + _attr(0x41, b"printer-location",
                                                            b"B\xe2timent 3") + b"\x03"
    message = ipp.decode(body)
    assert isinstance(message.first(GroupTag.PRINTER, "printer-location"), str)
    assert ipp.encode(message) == body


@pytest.mark.parametrize(("body", "words"), [
    (b"\x02\x00", "truncated"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x01", "no end-of-attributes"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x01" + _attr(0x21, b"x", b"\0\0\0\1") + b"\x03",
     "before any group"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x01\x04" + _attr(0x21, b"", b"\0\0\0\1") + b"\x03",
     "no attribute before it"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x01\x04" + _attr(0x21, b"x", b"\0\1") + b"\x03",
     "integer of 2 bytes"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x01\x04" + _attr(0x22, b"x", b"\2") + b"\x03", "boolean"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x01\x04" + _attr(0x37, b"", b"") + b"\x03",
     "outside a collection"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x01\x04" + _attr(0x34, b"c", b"") + _attr(0x4A, b"", b"m")
     + _attr(0x37, b"", b"") + b"\x03", "with no value"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x01\x04" + _attr(0x34, b"c", b"") + b"\x03", "truncated"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x01\x04" + _attr(0x34, b"c", b"")
     + _attr(0x21, b"", b"\0\0\0\1") + _attr(0x37, b"", b"") + b"\x03", "before any member"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x01\x00\x03", "reserved delimiter"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x01\x04" + _attr(0x35, b"x", b"\0\1a\0\0z") + b"\x03",
     "stray"),
])
def test_malformed_messages_say_what_is_wrong(body: bytes, words: str) -> None:
    with pytest.raises(RemoteIppError, match=words):
        ipp.decode(body)


def test_nesting_is_bounded() -> None:
    deep = b"".join(_attr(0x34, b"c" if i == 0 else b"", b"") + _attr(0x4A, b"", b"m")
                    for i in range(40))
    body = b"\x02\x00\x00\x00\x00\x00\x00\x01\x04" + deep
    with pytest.raises(RemoteIppError, match="nested deeper"):
        ipp.decode(body)


@pytest.mark.parametrize("value", [
    Value(ValueTag.INTEGER, 2**31),
    Value(ValueTag.INTEGER, True),
    Value(ValueTag.BOOLEAN, 1),
    Value(ValueTag.KEYWORD, b"bytes"),
    Value(ValueTag.NO_VALUE, "x"),
    Value(ValueTag.END_COLLECTION, None),
    Value(ValueTag.OCTET_STRING, "text"),
    Value(ValueTag.DATE_TIME, DateTime(b"short")),
    Value(ValueTag.TEXT, "x" * 70000),
    Value(ValueTag.TEXT, "\ud800"),
    Value(0x03, b""),
])
def test_encoding_a_bad_value_raises_local_error(value: Value) -> None:
    message = Message(0, 1, (AttributeGroup(GroupTag.OPERATION, (Attribute("a", (value,)),)),))
    with pytest.raises(LocalIppError):
        ipp.encode(message)


def test_encoding_refuses_empty_attributes_and_bad_groups() -> None:
    with pytest.raises(LocalIppError):
        ipp.encode(Message(0, 1, (AttributeGroup(GroupTag.OPERATION, (Attribute("a", ()),)),)))
    with pytest.raises(LocalIppError):
        ipp.encode(Message(0, 1, (AttributeGroup(GroupTag.END),)))
    with pytest.raises(LocalIppError):
        ipp.encode(Message(0x10000, 1))


def test_status_names() -> None:
    assert ipp.status_name(0x040A) == "client-error-document-format-not-supported"
    assert ipp.status_name(0x0777) == "status 0x0777"
    assert ipp.is_successful(0x0001) and not ipp.is_successful(0x0400)


def test_a_huge_set_of_values_decodes_in_linear_time() -> None:
    # A 1setOf of 50,000 values (what a hostile printer could send in our 4 MiB limit): if
    # each value copied the ones before it, this would take minutes.
    body = (b"\x02\x00\x00\x00\x00\x00\x00\x01\x04" + _attr(0x21, b"n", b"\0\0\0\0")
            + _attr(0x21, b"", b"\0\0\0\1") * 50_000 + b"\x03")
    started = time.perf_counter()
    attribute = ipp.decode(body).get(GroupTag.PRINTER, "n")
    assert time.perf_counter() - started < 5.0
    assert attribute is not None and len(attribute.values) == 50_001
