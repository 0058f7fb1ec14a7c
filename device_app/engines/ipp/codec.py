"""A small sans-I/O codec for IPP messages (RFC 8010 encoding, RFC 8011 model).

Why our own and not a library: the Python IPP clients on the package index are either asyncio
clients built on aiohttp and aimed at *monitoring* printers (pyipp and its fork aioipp: a new
dependency tree and an event loop inside our worker thread, for the three operations we use),
bindings to libcups that talk to a CUPS server rather than to a printer (pycups), or unmaintained
since 2009 (pkipplib). The binary format is small and stable, and a pure codec is what the rest
of mfdkit does (see STYLE.md): bytes in, values out, no sockets; the HTTP POST lives in the
adapter (transport.py) and uses the standard library.

Theory of operation. An IPP message is::

    version-number (2 bytes: major, minor)
    operation-id (requests) or status-code (responses) (2 bytes)
    request-id (4 bytes)
    attribute groups, each: begin-attribute-group-tag (1 byte, 0x01..0x0F except 0x03),
        then attributes: value-tag (1) name-length (2) name value-length (2) value;
        an attribute with name-length 0 is one more value of the attribute before it
    end-of-attributes-tag (0x03)
    document data (the rest)

A collection value (``begCollection`` 0x34) is followed, at name-length 0, by members, each a
``memberAttrName`` (0x4A) whose value is the member's name and then the member's values, and
closed by ``endCollection`` (0x37). Collections nest.

Values are kept with their tag (:class:`Value`), because one attribute may mix syntaxes (a
``1setOf (integer | rangeOfInteger)``), and a value tag we do not know is kept as raw bytes so
that nothing the printer says is lost or refused: only what breaks the framing is an error.

Errors: :func:`decode` raises :class:`RemoteIppError` on any input that is not a well-formed
message, and nothing else; :func:`encode` raises :class:`LocalIppError` on values it cannot
encode. Both derive from :class:`IppProtocolError`, an :class:`~protocol.errors.EngineError`.
The values themselves (tags, messages, attributes) are model.py's; they are named here too, so
``codec.Message`` and ``codec.decode`` read as one wire format.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from device_app.engines.ipp.model import (
    Attribute,
    AttributeGroup,
    Collection,
    DateTime,
    GroupTag,
    IppProtocolError,
    JobState,
    LocalIppError,
    Message,
    Native,
    Operation,
    PrinterState,
    RangeOfInteger,
    RemoteIppError,
    Resolution,
    Status,
    TextWithLanguage,
    Value,
    ValueTag,
    integers,
    is_successful,
    keywords,
    operation_attributes,
    status_name,
)

__all__ = [
    "Attribute", "AttributeGroup", "Collection", "DateTime", "GroupTag", "IppProtocolError",
    "JobState", "LocalIppError", "Message", "Operation", "PrinterState", "RangeOfInteger",
    "RemoteIppError", "Resolution", "Status", "TextWithLanguage", "Value", "ValueTag", "decode",
    "encode", "integers", "is_successful", "keywords", "operation_attributes", "status_name",
]



# Which Python type each tag carries. Tags in neither set nor the out-of-band range are
# "unknown" and carry raw bytes, so a newer printer's syntax round-trips untouched.
_INT_TAGS = frozenset({ValueTag.INTEGER, ValueTag.ENUM})
_STR_TAGS = frozenset({ValueTag.TEXT, ValueTag.NAME, ValueTag.KEYWORD, ValueTag.URI,
                       ValueTag.URI_SCHEME, ValueTag.CHARSET, ValueTag.NATURAL_LANGUAGE,
                       ValueTag.MIME_MEDIA_TYPE, ValueTag.MEMBER_ATTR_NAME})
_LANG_TAGS = frozenset({ValueTag.TEXT_WITH_LANGUAGE, ValueTag.NAME_WITH_LANGUAGE})


def _out_of_band(tag: int) -> bool:
    return 0x10 <= tag <= 0x1F


# Text is UTF-8 (IPP Everywhere requires attributes-charset utf-8). Some printers still put
# Latin-1 in free text such as printer-location; surrogateescape keeps those bytes, so such a
# printer is not reported broken and re-encoding gives back the very same bytes.
_TEXT_ERRORS = "surrogateescape"
_MAX_DEPTH = 16  # nested collections; real printers use 2 or 3
_U16 = 0xFFFF
_I32 = struct.Struct(">i")


# --------------------------------------------------------------------------- encoding


def encode(message: Message) -> bytes:
    """The bytes of ``message``, its ``data`` included (send large documents after
    ``encode(replace(message, data=b""))`` instead, to avoid copying them)."""
    version, code = message.version, message.code
    if not (all(0 <= v <= 0xFF for v in version) and 0 <= code <= _U16
            and 0 <= message.request_id <= 0xFFFF_FFFF):
        raise LocalIppError(f"header out of range: version {version}, code {code}, "
                            f"request-id {message.request_id}")
    out = bytearray(struct.pack(">BBHI", version[0], version[1], code, message.request_id))
    for group in message.groups:
        if not (0x01 <= group.tag <= 0x0F) or group.tag == GroupTag.END:
            raise LocalIppError(f"0x{group.tag:02x} is not a group tag")
        out.append(group.tag)
        for attribute in group.attributes:
            _encode_attribute(out, attribute, 0)
    out.append(GroupTag.END)
    out += message.data
    return bytes(out)


def _encode_attribute(out: bytearray, attribute: Attribute, depth: int) -> None:
    if not attribute.name:
        raise LocalIppError("an attribute needs a name")
    if not attribute.values:
        raise LocalIppError(f"attribute {attribute.name!r} has no value (use an out-of-band "
                            "value such as no-value)")
    name: str | None = attribute.name
    for value in attribute.values:
        _encode_value(out, name or "", value, depth)
        name = None  # the rest are additional values: name-length 0


def _encode_value(out: bytearray, name: str, value: Value, depth: int) -> None:
    tag, native = value.tag, value.value
    if tag == ValueTag.BEG_COLLECTION:
        if not isinstance(native, Collection):
            raise LocalIppError(f"{name!r}: begCollection needs a Collection, not {native!r}")
        if depth >= _MAX_DEPTH:
            raise LocalIppError(f"{name!r}: collections nested deeper than {_MAX_DEPTH}")
        _put(out, tag, name, b"")
        for member in native.members:
            _put(out, ValueTag.MEMBER_ATTR_NAME, "", _text(member.name, name))
            if not member.values:
                raise LocalIppError(f"member {member.name!r} of {name!r} has no value")
            for v in member.values:
                _encode_value(out, "", v, depth + 1)
        _put(out, ValueTag.END_COLLECTION, "", b"")
        return
    _put(out, tag, name, _value_bytes(name, tag, native))


def _value_bytes(name: str, tag: int, native: Native) -> bytes:
    if not 0 <= tag <= 0xFF or tag <= 0x0F or tag in (ValueTag.END_COLLECTION,
                                                     ValueTag.MEMBER_ATTR_NAME):
        # endCollection / memberAttrName only appear inside collections, written above.
        raise LocalIppError(f"{name!r}: 0x{tag:02x} is not a value tag one can send")
    if _out_of_band(tag):
        if native is not None:
            raise LocalIppError(f"{name!r}: an out-of-band value carries None, not {native!r}")
        return b""
    if tag in _INT_TAGS:
        if not _i32(native):
            raise LocalIppError(f"{name!r}: {native!r} is not a 32-bit integer")
        return _I32.pack(native)
    if tag == ValueTag.BOOLEAN:
        if not isinstance(native, bool):
            raise LocalIppError(f"{name!r}: {native!r} is not a boolean")
        return b"\x01" if native else b"\x00"
    if tag in _STR_TAGS:
        if not isinstance(native, str):
            raise LocalIppError(f"{name!r}: {native!r} is not a string")
        return _text(native, name)
    if tag in _LANG_TAGS:
        if not isinstance(native, TextWithLanguage):
            raise LocalIppError(f"{name!r}: {native!r} is not a TextWithLanguage")
        lang, text = _text(native.language, name), _text(native.text, name)
        return struct.pack(">H", len(lang)) + lang + struct.pack(">H", len(text)) + text
    if tag == ValueTag.RESOLUTION:
        if not (isinstance(native, Resolution) and _i32(native.x) and _i32(native.y)
                and 0 <= native.units <= 0xFF):
            raise LocalIppError(f"{name!r}: {native!r} is not a resolution")
        return struct.pack(">iiB", native.x, native.y, native.units)
    if tag == ValueTag.RANGE_OF_INTEGER:
        if not (isinstance(native, RangeOfInteger) and _i32(native.lower)
                and _i32(native.upper)):
            raise LocalIppError(f"{name!r}: {native!r} is not a rangeOfInteger")
        return struct.pack(">ii", native.lower, native.upper)
    if tag == ValueTag.DATE_TIME:
        if not (isinstance(native, DateTime) and len(native.raw) == 11):
            raise LocalIppError(f"{name!r}: {native!r} is not an 11-octet dateTime")
        return native.raw
    # octetString and every tag we do not know carry raw bytes.
    if not isinstance(native, bytes):
        raise LocalIppError(f"{name!r}: tag 0x{tag:02x} carries bytes, not {native!r}")
    return native


def _i32(n: object) -> bool:
    # IntEnum members (JobState.COMPLETED) are welcome; bool, an int too, is not a number here.
    return isinstance(n, int) and not isinstance(n, bool) and -(2**31) <= n < 2**31


def _text(s: str, name: str) -> bytes:
    try:
        return s.encode("utf-8", _TEXT_ERRORS)
    except UnicodeEncodeError as exc:
        raise LocalIppError(f"{name!r}: {s!r} cannot be encoded as UTF-8") from exc


def _put(out: bytearray, tag: int, name: str, value: bytes) -> None:
    raw_name = _text(name, name)
    if len(raw_name) > _U16 or len(value) > _U16:
        raise LocalIppError(f"{name[:40]!r}: name or value longer than 65535 bytes")
    out.append(tag)
    out += struct.pack(">H", len(raw_name)) + raw_name
    out += struct.pack(">H", len(value)) + value


# --------------------------------------------------------------------------- decoding


@dataclass(slots=True)
class _Item:
    """One value-tag/name/value triple as it sits on the wire."""

    tag: int
    name: str
    value: bytes


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise RemoteIppError(f"message truncated in {what} at byte {self.pos} "
                                 f"(needs {n}, has {len(self.data) - self.pos})")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        hi, lo = self.take(2, what)
        return hi << 8 | lo

    def peek(self) -> int:
        if self.pos >= len(self.data):
            raise RemoteIppError("message truncated: no end-of-attributes tag")
        return self.data[self.pos]

    def item(self) -> _Item:
        tag = self.u8("value-tag")
        name = _decode_text(self.take(self.u16("name-length"), "name"))
        return _Item(tag, name, self.take(self.u16("value-length"), "value"))


def decode(data: bytes) -> Message:
    """Parse one whole IPP message. Raises :class:`RemoteIppError`, and only that."""
    r = _Reader(bytes(data))
    major, minor = r.u8("version"), r.u8("version")
    code = r.u16("operation-id/status-code")
    (request_id,) = struct.unpack(">I", r.take(4, "request-id"))
    groups: list[AttributeGroup] = []
    # Values are collected in lists and frozen once complete: appending to tuples would make
    # a 1setOf of n values cost n² (a hostile printer could send 100,000 of them).
    current: tuple[int, list[tuple[str, list[Value]]]] | None = None
    while True:
        tag = r.peek()
        if tag <= 0x0F:  # a delimiter: end, or the start of a group
            r.pos += 1
            if current is not None:
                groups.append(AttributeGroup(current[0], _freeze(current[1])))
                current = None
            if tag == GroupTag.END:
                break
            if tag == 0x00:
                raise RemoteIppError(f"reserved delimiter tag 0x00 at byte {r.pos - 1}")
            current = (tag, [])
            continue
        if current is None:
            raise RemoteIppError(f"attribute at byte {r.pos} before any group tag")
        start = r.pos
        item = r.item()
        attributes = current[1]
        if item.tag == ValueTag.END_COLLECTION or item.tag == ValueTag.MEMBER_ATTR_NAME:
            raise RemoteIppError(f"0x{item.tag:02x} at byte {start} outside a collection")
        value = _decode_value(r, item, 0)
        if item.name:
            attributes.append((item.name, [value]))
        elif not attributes:
            raise RemoteIppError(f"additional value at byte {start} with no attribute before it")
        else:
            attributes[-1][1].append(value)
    return Message(code, request_id, tuple(groups), (major, minor), r.data[r.pos:])


def _decode_value(r: _Reader, item: _Item, depth: int) -> Value:
    if item.tag == ValueTag.BEG_COLLECTION:
        return Value(item.tag, _decode_collection(r, depth + 1))
    return Value(item.tag, _native(item))


def _decode_collection(r: _Reader, depth: int) -> Collection:
    if depth > _MAX_DEPTH:
        raise RemoteIppError(f"collections nested deeper than {_MAX_DEPTH} at byte {r.pos}")
    members: list[tuple[str, list[Value]]] = []
    while True:
        start = r.pos
        item = r.item()
        if item.name:
            raise RemoteIppError(f"named attribute {item.name!r} at byte {start} inside a "
                                 "collection (members are named by memberAttrName)")
        if item.tag in (ValueTag.END_COLLECTION, ValueTag.MEMBER_ATTR_NAME) and members \
                and not members[-1][1]:
            raise RemoteIppError(f"member {members[-1][0]!r} ends at byte {start} with no "
                                 "value")
        if item.tag == ValueTag.END_COLLECTION:
            return Collection(_freeze(members))
        if item.tag == ValueTag.MEMBER_ATTR_NAME:
            member = _decode_text(item.value)
            if not member:
                raise RemoteIppError(f"empty member name at byte {start}")
            members.append((member, []))
            continue
        if not members:
            raise RemoteIppError(f"collection value at byte {start} before any member name")
        if item.tag <= 0x0F:
            raise RemoteIppError(f"delimiter 0x{item.tag:02x} at byte {start} inside a "
                                 "collection")
        members[-1][1].append(_decode_value(r, item, depth))


def _freeze(attributes: list[tuple[str, list[Value]]]) -> tuple[Attribute, ...]:
    return tuple(Attribute(name, tuple(values)) for name, values in attributes)


def _native(item: _Item) -> Native:
    tag, raw = item.tag, item.value
    if _out_of_band(tag):
        return None  # RFC 8010: the value of an out-of-band tag is ignored
    if tag in _INT_TAGS:
        if len(raw) != 4:
            raise RemoteIppError(f"{item.name!r}: integer of {len(raw)} bytes")
        return int(_I32.unpack(raw)[0])
    if tag == ValueTag.BOOLEAN:
        if len(raw) != 1 or raw[0] > 1:
            raise RemoteIppError(f"{item.name!r}: boolean {raw!r}")
        return raw == b"\x01"
    if tag in _STR_TAGS:
        return _decode_text(raw)
    if tag in _LANG_TAGS:
        sub = _Reader(raw)
        lang = _decode_text(sub.take(sub.u16("language length"), "language"))
        text = _decode_text(sub.take(sub.u16("text length"), "text"))
        if sub.pos != len(raw):
            raise RemoteIppError(f"{item.name!r}: {len(raw) - sub.pos} stray bytes after text")
        return TextWithLanguage(lang, text)
    if tag == ValueTag.RESOLUTION:
        if len(raw) != 9:
            raise RemoteIppError(f"{item.name!r}: resolution of {len(raw)} bytes")
        x, y, units = struct.unpack(">iiB", raw)
        return Resolution(x, y, units)
    if tag == ValueTag.RANGE_OF_INTEGER:
        if len(raw) != 8:
            raise RemoteIppError(f"{item.name!r}: rangeOfInteger of {len(raw)} bytes")
        lower, upper = struct.unpack(">ii", raw)
        return RangeOfInteger(lower, upper)
    if tag == ValueTag.DATE_TIME:
        if len(raw) != 11:
            raise RemoteIppError(f"{item.name!r}: dateTime of {len(raw)} bytes")
        return DateTime(raw)
    return raw  # octetString, the 0x7F extension and every tag we do not know


def _decode_text(raw: bytes) -> str:
    # surrogateescape cannot fail on any byte string.
    return raw.decode("utf-8", _TEXT_ERRORS)

