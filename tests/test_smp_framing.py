"""The SMP serial framing and packet codecs the emulated reader speaks (firmware_stubs/smp).

Round trips, arbitrary bytes -> packet or protocol error, whole and one byte at a time, and the
line faults of issue 11 (a flipped, dropped or duplicated byte): never a wrong packet, and the
next frame still gets through. smp's own encoder (the one smpclient sends with) is the reference
for the bytes on the wire, so the device is not checked only against itself.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from smp import packet as smp_packet

from firmware_stubs.smp.packets import (
    Echo,
    Header,
    ImageErase,
    ImageStateRead,
    ImageStateWrite,
    ImageUpload,
    MgmtErr,
    Op,
    ParamsRead,
    Reset,
    SmpPacketError,
    SmpRequestError,
    decode_packet,
    encode_error,
    encode_packet,
    encode_request,
    encode_response,
    parse_request,
)
from firmware_stubs.smp.serial_framing import (
    FrameDecoder,
    SmpFramingError,
    crc16_xmodem,
    encode_frame,
)

packets = st.binary(min_size=8, max_size=1500)
line_lengths = st.integers(min_value=8, max_value=300)


def feed(decoder: FrameDecoder, data: bytes, *, bytewise: bool) -> tuple[list[bytes], int]:
    """Packets out and the number of framing errors, feeding whole or one byte at a time."""
    out, errors = [], 0
    pieces = [data[i:i + 1] for i in range(len(data))] if bytewise else [data]
    for piece in pieces:
        decoder.receive_data(piece)
        while True:
            try:
                p = decoder.next_packet()
            except SmpFramingError:
                errors += 1
                continue
            if p is None:
                break
            out.append(p)
    return out, errors


def test_crc_is_xmodem() -> None:
    # The check value of CRC-16/XMODEM from the CRC catalogue.
    assert crc16_xmodem(b"123456789") == 0x31C3


@given(packets, line_lengths)
def test_frame_round_trip_and_same_bytes_as_smp(packet: bytes, max_line: int) -> None:
    lines = encode_frame(packet, max_line)
    assert all(len(line) <= max_line and line.endswith(b"\n") for line in lines)
    # smp's encoder counts a line_length one larger (it keeps room for a CR).
    assert lines == list(smp_packet.encode(packet, line_length=max_line + 1))
    for bytewise in (False, True):
        got, errors = feed(FrameDecoder(max_line=max_line), b"".join(lines), bytewise=bytewise)
        assert (got, errors) == ([packet], 0)


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_give_packets_or_framing_errors_whole_or_bytewise(data: bytes) -> None:
    whole = feed(FrameDecoder(max_line=127), data, bytewise=False)
    bytewise = feed(FrameDecoder(max_line=127), data, bytewise=True)
    assert whole == bytewise


@settings(max_examples=300)
@given(st.lists(st.sampled_from([b"\x06\x09", b"\x04\x14", b"\n", b"AAAA", b"QUJD", b"=",
                                 b"\x00", b"ZZ"]), max_size=80))
def test_delimiter_soup_decodes_the_same_whole_or_bytewise(parts: list[bytes]) -> None:
    # Pieces that look like frames reach the decoder's every branch (start, continuation,
    # base64, padding, lost newlines); the result may not depend on how the bytes arrive.
    data = b"".join(parts)
    assert feed(FrameDecoder(), data, bytewise=False) == feed(FrameDecoder(), data, bytewise=True)


def _mutate(data: bytes, kind: str, at: int, bit: int) -> bytes:
    at %= len(data)
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1:]
    if kind == "drop":
        return data[:at] + data[at + 1:]
    return data[:at] + data[at:at + 1] + data[at:]  # duplicate


@settings(max_examples=500)
@given(packets, packets, st.sampled_from(["flip", "drop", "dup"]), st.integers(0, 10**6),
       st.integers(0, 7), st.booleans())
def test_a_damaged_byte_never_gives_a_wrong_packet_and_the_next_frame_survives(
        p1: bytes, p2: bytes, kind: str, at: int, bit: int, bytewise: bool) -> None:
    first = b"".join(encode_frame(p1))
    damaged = _mutate(first, kind, at, bit)
    decoder = FrameDecoder()
    got, errors = feed(decoder, damaged + b"".join(encode_frame(p2)), bytewise=bytewise)
    # A flip of a padding bit that base64 ignores can leave p1 intact; anything else drops p1,
    # with an error, or as noise when its start delimiter was hit. p1 never comes out changed.
    assert got in ([p2], [p1, p2])
    if got == [p2]:
        assert errors >= 1 or decoder.noise_bytes > 0


def test_console_text_between_frames_is_skipped() -> None:
    d = FrameDecoder()
    pk = encode_request(Echo("hi"), 3)
    got, errors = feed(d, b"uart:~$ help\r\n" + b"".join(encode_frame(pk)) + b"boot\n",
                       bytewise=False)
    assert (got, errors) == ([pk], 0)
    assert d.noise_bytes == len(b"uart:~$ help\r\n") + len(b"boot\n")


def test_an_over_long_line_is_refused_once() -> None:
    d = FrameDecoder(max_line=127)
    got, errors = feed(d, b"\x06\x09" + b"A" * 300 + b"\n", bytewise=True)
    assert (got, errors) == ([], 1)


# --- packets ----------------------------------------------------------------------------------

requests = st.one_of(
    st.builds(Echo, st.text(max_size=40)),
    st.builds(Reset, st.booleans()),
    st.just(ParamsRead()),
    st.just(ImageStateRead()),
    st.builds(ImageStateWrite, st.one_of(st.none(), st.binary(min_size=32, max_size=32)),
              st.booleans()),
    st.builds(ImageUpload, st.integers(0, 2**32 - 1), st.binary(max_size=300),
              st.one_of(st.none(), st.integers(0, 2**32 - 1)),
              st.one_of(st.none(), st.binary(min_size=32, max_size=32)),
              st.integers(0, 3), st.booleans()),
    st.builds(ImageErase, st.integers(0, 3)),
)


@given(requests, st.integers(0, 255), st.sampled_from([0, 1]))
def test_request_round_trip(request: object, sequence: int, version: int) -> None:
    data = encode_request(request, sequence, version=version)  # type: ignore[arg-type]
    packet = decode_packet(data)
    assert packet.header.sequence == sequence and packet.header.version == version
    assert parse_request(packet) == request


@given(requests)
def test_requests_decode_with_smp_models_too(request: object) -> None:
    # The third-party message models read what we encode (the client's side of the contract).
    from smp import image_management as img
    from smp import os_management as os_

    data = encode_request(request, 7)  # type: ignore[arg-type]
    model = {Echo: os_.EchoWriteRequest, ImageStateWrite: img.ImageStatesWriteRequest,
             ImageUpload: img.ImageUploadWriteRequest}.get(type(request))
    if model is not None:
        assert model.loads(data).header.sequence == 7


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.integers(-5, 2**40), st.binary(
    max_size=40), st.text(max_size=10), st.booleans()), max_size=6), st.integers(0, 255))
def test_response_round_trip(body: dict[str, object], sequence: int) -> None:
    request = Header(Op.READ, 1, 0, sequence)
    packet = decode_packet(encode_response(request, body))
    assert packet.header.op == Op.READ_RSP and packet.header.sequence == sequence
    assert packet.body == body


def test_error_responses_per_version() -> None:
    v2 = decode_packet(encode_error(Header(Op.WRITE, 1, 1, 9), MgmtErr.EINVAL, group_rc=5))
    assert v2.body == {"err": {"group": 1, "rc": 5}} and v2.header.op == Op.WRITE_RSP
    v1 = decode_packet(encode_error(Header(Op.WRITE, 1, 1, 9, version=0), MgmtErr.EINVAL,
                                    reason="bad"))
    assert v1.body == {"rc": 3, "rsn": "bad"}


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_packet_or_a_packet_error(data: bytes) -> None:
    try:
        packet = decode_packet(data)
    except SmpPacketError:
        return
    try:
        parse_request(packet)
    except SmpRequestError as exc:
        assert exc.rc in (MgmtErr.EINVAL, MgmtErr.ENOTSUP)


@given(st.binary(max_size=60))
def test_any_cbor_body_behind_a_valid_header(body: bytes) -> None:
    header = Header(Op.WRITE, 1, 1, 1, length=len(body)).pack()
    try:
        packet = decode_packet(header + body)
    except SmpPacketError:
        return
    try:
        request = parse_request(packet)
    except SmpRequestError as exc:
        assert exc.rc == MgmtErr.EINVAL
    else:
        assert isinstance(request, ImageUpload)


def test_wrong_types_are_refused_with_einval() -> None:
    for body in ({"off": True, "data": b""}, {"off": 0, "data": "text"}, {"off": -1, "data": b""},
                 {"data": b""}):
        data = encode_packet(Header(Op.WRITE, 1, 1, 0), body)
        with pytest.raises(SmpRequestError) as info:
            parse_request(decode_packet(data))
        assert info.value.rc == MgmtErr.EINVAL


def test_unknown_group_is_not_supported() -> None:
    data = encode_packet(Header(Op.READ, 9, 0, 0), {})
    with pytest.raises(SmpRequestError) as info:
        parse_request(decode_packet(data))
    assert info.value.rc == MgmtErr.ENOTSUP
