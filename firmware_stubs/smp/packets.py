"""SMP packets: the 8-byte header and the CBOR body, for the groups the emulated reader serves.

Theory of operation. Every SMP message is ``header | CBOR map``. The header, big-endian::

    byte 0   res:3 | version:2 | op:3     op: 0 read, 1 read response, 2 write, 3 write response
    byte 1   flags
    bytes 2-3  length of the CBOR body
    bytes 4-5  group id                    0 OS, 1 image, 3 settings
    byte 6   sequence number              a response repeats its request's
    byte 7   command id

Version 1 (``SMPv2`` in Zephyr's words, header value 1) may report a group's errors as
``{"err": {"group": G, "rc": RC}}`` with the group's own codes; every version takes the generic
``{"rc": RC, "rsn": REASON}`` with the ``MGMT_ERR`` codes, which is what the emulated reader
sends (its reasons say what to do). A response answers in its request's version.

:func:`decode_packet` turns bytes into a :class:`Packet` (or raises :class:`SmpPacketError`, and
nothing else, on any input); :func:`parse_request` turns a packet into one of the typed requests
below, or raises :class:`SmpRequestError` carrying the ``MGMT_ERR`` code to answer with.
:func:`encode_request` and :func:`encode_response` go the other way. Unknown keys in a request
are ignored, as Zephyr's decoder ignores them.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

import cbor2

from protocol.errors import MfdError

__all__ = [
    "HEADER_SIZE",
    "AppInfoRead",
    "Echo",
    "Group",
    "Header",
    "ImageCommand",
    "ImageErase",
    "ImageStateRead",
    "ImageStateWrite",
    "ImageUpload",
    "MgmtErr",
    "Op",
    "OsCommand",
    "Packet",
    "ParamsRead",
    "Request",
    "Reset",
    "SettingDelete",
    "SettingRead",
    "SettingWrite",
    "SettingsCommand",
    "SettingsCommit",
    "SettingsLoad",
    "SettingsSave",
    "SmpPacketError",
    "SmpRequestError",
    "decode_packet",
    "encode_error",
    "encode_packet",
    "encode_request",
    "encode_response",
    "parse_request",
]


class Op(IntEnum):
    READ = 0
    READ_RSP = 1
    WRITE = 2
    WRITE_RSP = 3


class Group(IntEnum):
    OS = 0
    IMAGE = 1
    SETTINGS = 3


class OsCommand(IntEnum):
    ECHO = 0
    RESET = 5
    PARAMS = 6
    APP_INFO = 7


class ImageCommand(IntEnum):
    STATE = 0
    UPLOAD = 1
    ERASE = 5


class SettingsCommand(IntEnum):
    READ_WRITE = 0
    DELETE = 1
    COMMIT = 2
    LOAD_SAVE = 3  # read: load, write: save


class MgmtErr(IntEnum):
    """The generic SMP return codes (version 0 errors)."""

    EOK = 0
    EUNKNOWN = 1
    ENOMEM = 2
    EINVAL = 3
    ETIMEOUT = 4
    ENOENT = 5
    EBADSTATE = 6
    EMSGSIZE = 7
    ENOTSUP = 8
    ECORRUPT = 9
    EBUSY = 10
    EACCESSDENIED = 11


HEADER_SIZE: Final = 8
_HEADER: Final = struct.Struct(">BBHHBB")


class SmpPacketError(MfdError):
    """Bytes that are not an SMP packet (header, length or CBOR body)."""

    code = "smp_bad_packet"


class SmpRequestError(MfdError):
    """A well-formed packet that is not a request this device serves; ``rc`` is the MGMT_ERR
    code the device answers with."""

    code = "smp_bad_request"

    def __init__(self, message: str, rc: MgmtErr) -> None:
        super().__init__(message)
        self.rc = rc


@dataclass(frozen=True, slots=True)
class Header:
    op: Op
    group: int
    command: int
    sequence: int
    length: int = 0
    version: int = 1
    flags: int = 0

    def pack(self) -> bytes:
        return _HEADER.pack((self.version & 0b11) << 3 | self.op, self.flags, self.length,
                            self.group, self.sequence, self.command)

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        if len(data) < HEADER_SIZE:
            raise SmpPacketError(f"SMP packet of {len(data)} bytes: shorter than its header")
        first, flags, length, group, sequence, command = _HEADER.unpack_from(data)
        if first & 0b111 > Op.WRITE_RSP:
            raise SmpPacketError(f"SMP header with unknown op {first & 0b111}")
        return cls(op=Op(first & 0b111), group=group, command=command, sequence=sequence,
                   length=length, version=(first >> 3) & 0b11, flags=flags)


@dataclass(frozen=True, slots=True)
class Packet:
    header: Header
    body: dict[str, object] = field(default_factory=dict)


def encode_packet(header: Header, body: dict[str, object]) -> bytes:
    """``header`` with its length set to the CBOR body's, then the body."""
    data = cbor2.dumps(body)
    h = Header(op=header.op, group=header.group, command=header.command,
               sequence=header.sequence, length=len(data), version=header.version,
               flags=header.flags)
    return h.pack() + data


def decode_packet(data: bytes) -> Packet:
    """Header and CBOR map; raises :class:`SmpPacketError` for anything else."""
    header = Header.unpack(data)
    body = data[HEADER_SIZE:]
    if header.length != len(body):
        raise SmpPacketError(f"SMP header says {header.length} body bytes, {len(body)} came")
    if not body:
        return Packet(header, {})
    stream = io.BytesIO(body)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:
        # cbor2 raises CBORDecodeError for most damage but ValueError, TypeError, OverflowError
        # or RecursionError for some (huge lengths, unhashable map keys, deep nesting): every
        # one of them means "not a CBOR body".
        raise SmpPacketError(f"SMP body is not CBOR: {type(exc).__name__}") from None
    if stream.tell() != len(body):
        raise SmpPacketError("SMP body has bytes after its CBOR map")
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise SmpPacketError("SMP body is not a CBOR map with text keys")
    return Packet(header, value)


# --- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Echo:
    d: str


@dataclass(frozen=True, slots=True)
class Reset:
    force: bool = False


@dataclass(frozen=True, slots=True)
class ParamsRead:
    pass


@dataclass(frozen=True, slots=True)
class AppInfoRead:
    format: str | None = None


@dataclass(frozen=True, slots=True)
class ImageStateRead:
    pass


@dataclass(frozen=True, slots=True)
class ImageStateWrite:
    hash: bytes | None = None
    confirm: bool = False


@dataclass(frozen=True, slots=True)
class ImageUpload:
    off: int
    data: bytes
    len: int | None = None
    sha: bytes | None = None
    image: int = 0
    upgrade: bool = False


@dataclass(frozen=True, slots=True)
class ImageErase:
    slot: int = 1


@dataclass(frozen=True, slots=True)
class SettingRead:
    name: str
    max_size: int | None = None


@dataclass(frozen=True, slots=True)
class SettingWrite:
    name: str
    val: bytes


@dataclass(frozen=True, slots=True)
class SettingDelete:
    name: str


@dataclass(frozen=True, slots=True)
class SettingsCommit:
    pass


@dataclass(frozen=True, slots=True)
class SettingsLoad:
    pass


@dataclass(frozen=True, slots=True)
class SettingsSave:
    pass


Request = (Echo | Reset | ParamsRead | AppInfoRead | ImageStateRead | ImageStateWrite
           | ImageUpload | ImageErase | SettingRead | SettingWrite | SettingDelete
           | SettingsCommit | SettingsLoad | SettingsSave)

_ROUTES: Final[dict[tuple[Op, int, int], type]] = {
    (Op.WRITE, Group.OS, OsCommand.ECHO): Echo,
    (Op.WRITE, Group.OS, OsCommand.RESET): Reset,
    (Op.READ, Group.OS, OsCommand.PARAMS): ParamsRead,
    (Op.READ, Group.OS, OsCommand.APP_INFO): AppInfoRead,
    (Op.READ, Group.IMAGE, ImageCommand.STATE): ImageStateRead,
    (Op.WRITE, Group.IMAGE, ImageCommand.STATE): ImageStateWrite,
    (Op.WRITE, Group.IMAGE, ImageCommand.UPLOAD): ImageUpload,
    (Op.WRITE, Group.IMAGE, ImageCommand.ERASE): ImageErase,
    (Op.READ, Group.SETTINGS, SettingsCommand.READ_WRITE): SettingRead,
    (Op.WRITE, Group.SETTINGS, SettingsCommand.READ_WRITE): SettingWrite,
    (Op.WRITE, Group.SETTINGS, SettingsCommand.DELETE): SettingDelete,
    (Op.WRITE, Group.SETTINGS, SettingsCommand.COMMIT): SettingsCommit,
    (Op.READ, Group.SETTINGS, SettingsCommand.LOAD_SAVE): SettingsLoad,
    (Op.WRITE, Group.SETTINGS, SettingsCommand.LOAD_SAVE): SettingsSave,
}
_EMPTY: Final[dict[type, Request]] = {ParamsRead: ParamsRead(), ImageStateRead: ImageStateRead(),
                 SettingsCommit: SettingsCommit(), SettingsLoad: SettingsLoad(),
                 SettingsSave: SettingsSave()}
_WHERE: Final = {kind: key for key, kind in _ROUTES.items()}


def _get(body: dict[str, object], key: str, kind: type, *, required: bool = False) -> object:
    value = body.get(key)
    if value is None:
        if required:
            raise SmpRequestError(f"request lacks {key!r}", MgmtErr.EINVAL)
        return None
    # bool is an int in Python but not in CBOR: an int field refuses true/false.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SmpRequestError(f"{key!r} is not {kind.__name__}", MgmtErr.EINVAL)
    if kind is int and not 0 <= value <= 0xFFFF_FFFF:  # type: ignore[operator]
        raise SmpRequestError(f"{key!r} out of range", MgmtErr.EINVAL)
    return value


def parse_request(packet: Packet) -> Request:
    """The typed request, or :class:`SmpRequestError` with the code to answer."""
    h, b = packet.header, packet.body
    kind = _ROUTES.get((h.op, h.group, h.command))
    if kind is None:
        raise SmpRequestError(f"group {h.group} command {h.command} op {h.op} not served",
                              MgmtErr.ENOTSUP)
    if kind is Echo:
        return Echo(str(_get(b, "d", str, required=True)))
    if kind is Reset:
        force = _get(b, "force", int)
        return Reset(bool(force))
    if kind in _EMPTY:
        return _EMPTY[kind]
    if kind is SettingRead:
        size = _get(b, "max_size", int)
        return SettingRead(str(_get(b, "name", str, required=True)),
                           size if isinstance(size, int) else None)
    if kind is SettingWrite:
        val = _get(b, "val", bytes, required=True)
        assert isinstance(val, bytes)
        return SettingWrite(str(_get(b, "name", str, required=True)), val)
    if kind is SettingDelete:
        return SettingDelete(str(_get(b, "name", str, required=True)))
    if kind is AppInfoRead:
        fmt = _get(b, "format", str)
        return AppInfoRead(fmt if isinstance(fmt, str) else None)
    if kind is ImageStateWrite:
        digest = _get(b, "hash", bytes)
        confirm = _get(b, "confirm", bool)
        return ImageStateWrite(digest if isinstance(digest, bytes) else None, confirm is True)
    if kind is ImageErase:
        slot = _get(b, "slot", int)
        return ImageErase(slot if isinstance(slot, int) else 1)
    off, data = _get(b, "off", int, required=True), _get(b, "data", bytes, required=True)
    length, sha = _get(b, "len", int), _get(b, "sha", bytes)
    image, upgrade = _get(b, "image", int), _get(b, "upgrade", bool)
    assert isinstance(off, int) and isinstance(data, bytes)
    return ImageUpload(off, data, length if isinstance(length, int) else None,
                       sha if isinstance(sha, bytes) else None,
                       image if isinstance(image, int) else 0, upgrade is True)


def encode_request(request: Request, sequence: int, *, version: int = 1) -> bytes:
    """A client's packet for ``request`` (tests and tools that talk to the device directly)."""
    op, group, command = _WHERE[type(request)]
    body: dict[str, object] = {}
    for name in request.__slots__:
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if isinstance(request, Reset):
        body = {"force": 1} if request.force else {}
    return encode_packet(Header(Op(op), group, command, sequence, version=version), body)


def encode_response(request: Header, body: dict[str, object]) -> bytes:
    """The response to ``request`` (same group, command, sequence and version)."""
    op = Op.READ_RSP if request.op == Op.READ else Op.WRITE_RSP
    return encode_packet(Header(op, request.group, request.command, request.sequence,
                                version=request.version, flags=request.flags), body)


def encode_error(request: Header, rc: int, *, group_rc: int | None = None,
                 reason: str | None = None) -> bytes:
    """An error response. With ``group_rc`` and a version 1 request: the group's own code
    (``{"err": {"group", "rc"}}``); otherwise the generic ``{"rc"}`` with, when given, the
    reason (``rsn``, as Zephyr's verbose error responses), which every client reads."""
    if group_rc is not None and request.version >= 1:
        body: dict[str, object] = {"err": {"group": request.group, "rc": group_rc}}
    else:
        body = {"rc": rc}
        if reason:
            body["rsn"] = reason
    return encode_response(request, body)
