"""The IPP model (RFC 8011) as plain values: tags, operations, status codes, printer and job
states, and the message, group, attribute and value types that codec.py turns into bytes and
back. No I/O and no encoding here; the errors of the whole IPP stack live here too, so that the
codec, the transport and the engine raise the same ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeAlias

from protocol.errors import EngineError

__all__ = [
    "Attribute", "AttributeGroup", "Collection", "DateTime", "GroupTag", "IppProtocolError",
    "JobState", "LocalIppError", "Message", "Native", "Operation", "PrinterState",
    "RangeOfInteger", "RemoteIppError", "Resolution", "Status", "TextWithLanguage", "Value",
    "ValueTag", "integers", "is_successful", "keywords", "operation_attributes", "status_name",
]


# --------------------------------------------------------------------------- errors


class IppProtocolError(EngineError):
    """IPP bytes or values that do not satisfy RFC 8010."""

    code = "ipp_protocol"


class RemoteIppError(IppProtocolError):
    """The printer sent bytes that are not a well-formed IPP message."""


class LocalIppError(IppProtocolError):
    """We were asked to encode something IPP cannot carry (a bug on our side)."""


# --------------------------------------------------------------------------- numbers


class GroupTag(IntEnum):
    """Delimiter tags (RFC 8010 3.5.1). 0x0A..0x0F are reserved but still begin a group."""

    OPERATION = 0x01
    JOB = 0x02
    END = 0x03
    PRINTER = 0x04
    UNSUPPORTED = 0x05
    SUBSCRIPTION = 0x06
    EVENT_NOTIFICATION = 0x07
    RESOURCE = 0x08
    DOCUMENT = 0x09
    SYSTEM = 0x0A


class ValueTag(IntEnum):
    """Value tags (RFC 8010 3.5.2) this codec gives a Python type; others stay bytes."""

    # Out-of-band: no value, the tag says why.
    UNSUPPORTED = 0x10
    DEFAULT = 0x11
    UNKNOWN = 0x12
    NO_VALUE = 0x13
    NOT_SETTABLE = 0x15
    DELETE_ATTRIBUTE = 0x16
    ADMIN_DEFINE = 0x17
    # Integers.
    INTEGER = 0x21
    BOOLEAN = 0x22
    ENUM = 0x23
    # Octet strings.
    OCTET_STRING = 0x30
    DATE_TIME = 0x31
    RESOLUTION = 0x32
    RANGE_OF_INTEGER = 0x33
    BEG_COLLECTION = 0x34
    TEXT_WITH_LANGUAGE = 0x35
    NAME_WITH_LANGUAGE = 0x36
    END_COLLECTION = 0x37
    # Character strings.
    TEXT = 0x41
    NAME = 0x42
    KEYWORD = 0x44
    URI = 0x45
    URI_SCHEME = 0x46
    CHARSET = 0x47
    NATURAL_LANGUAGE = 0x48
    MIME_MEDIA_TYPE = 0x49
    MEMBER_ATTR_NAME = 0x4A


class Operation(IntEnum):
    """The operations mfdkit sends (RFC 8011 5.4.15)."""

    PRINT_JOB = 0x0002
    VALIDATE_JOB = 0x0004
    CANCEL_JOB = 0x0008
    GET_JOB_ATTRIBUTES = 0x0009
    GET_JOBS = 0x000A
    GET_PRINTER_ATTRIBUTES = 0x000B


class Status(IntEnum):
    """Status codes (RFC 8011 Appendix B). A printer may send others: see :func:`status_name`."""

    SUCCESSFUL_OK = 0x0000
    SUCCESSFUL_OK_IGNORED_OR_SUBSTITUTED_ATTRIBUTES = 0x0001
    SUCCESSFUL_OK_CONFLICTING_ATTRIBUTES = 0x0002
    CLIENT_ERROR_BAD_REQUEST = 0x0400
    CLIENT_ERROR_FORBIDDEN = 0x0401
    CLIENT_ERROR_NOT_AUTHENTICATED = 0x0402
    CLIENT_ERROR_NOT_AUTHORIZED = 0x0403
    CLIENT_ERROR_NOT_POSSIBLE = 0x0404
    CLIENT_ERROR_TIMEOUT = 0x0405
    CLIENT_ERROR_NOT_FOUND = 0x0406
    CLIENT_ERROR_GONE = 0x0407
    CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE = 0x0408
    CLIENT_ERROR_REQUEST_VALUE_TOO_LONG = 0x0409
    CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED = 0x040A
    CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED = 0x040B
    CLIENT_ERROR_URI_SCHEME_NOT_SUPPORTED = 0x040C
    CLIENT_ERROR_CHARSET_NOT_SUPPORTED = 0x040D
    CLIENT_ERROR_CONFLICTING_ATTRIBUTES = 0x040E
    CLIENT_ERROR_COMPRESSION_NOT_SUPPORTED = 0x040F
    CLIENT_ERROR_COMPRESSION_ERROR = 0x0410
    CLIENT_ERROR_DOCUMENT_FORMAT_ERROR = 0x0411
    CLIENT_ERROR_DOCUMENT_ACCESS_ERROR = 0x0412
    SERVER_ERROR_INTERNAL_ERROR = 0x0500
    SERVER_ERROR_OPERATION_NOT_SUPPORTED = 0x0501
    SERVER_ERROR_SERVICE_UNAVAILABLE = 0x0502
    SERVER_ERROR_VERSION_NOT_SUPPORTED = 0x0503
    SERVER_ERROR_DEVICE_ERROR = 0x0504
    SERVER_ERROR_TEMPORARY_ERROR = 0x0505
    SERVER_ERROR_NOT_ACCEPTING_JOBS = 0x0506
    SERVER_ERROR_BUSY = 0x0507
    SERVER_ERROR_JOB_CANCELED = 0x0508
    SERVER_ERROR_MULTIPLE_DOCUMENT_JOBS_NOT_SUPPORTED = 0x0509


def status_name(code: int) -> str:
    """The RFC keyword of a status code (``client-error-not-found``), or its hex if unknown."""
    try:
        return Status(code).name.lower().replace("_", "-")
    except ValueError:
        return f"status 0x{code:04x}"


def is_successful(code: int) -> bool:
    """Status codes 0x0000..0x00FF are the successful class."""
    return 0 <= code <= 0x00FF


class PrinterState(IntEnum):
    """printer-state (RFC 8011 5.4.11)."""

    IDLE = 3
    PROCESSING = 4
    STOPPED = 5


class JobState(IntEnum):
    """job-state (RFC 8011 5.3.7)."""

    PENDING = 3
    PENDING_HELD = 4
    PROCESSING = 5
    PROCESSING_STOPPED = 6
    CANCELED = 7
    ABORTED = 8
    COMPLETED = 9

    @property
    def terminal(self) -> bool:
        return self in (JobState.CANCELED, JobState.ABORTED, JobState.COMPLETED)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Resolution:
    x: int
    y: int
    #: 3 = dots per inch, 4 = dots per centimetre.
    units: int


@dataclass(frozen=True, slots=True)
class RangeOfInteger:
    lower: int
    upper: int

    def __contains__(self, n: object) -> bool:
        return isinstance(n, int) and self.lower <= n <= self.upper


@dataclass(frozen=True, slots=True)
class TextWithLanguage:
    language: str
    text: str


@dataclass(frozen=True, slots=True)
class DateTime:
    """RFC 2579 DateAndTime, kept as its 11 octets: a printer's clock is no reason to fail a
    response, and nothing in mfdkit computes with these."""

    raw: bytes


@dataclass(frozen=True, slots=True)
class Collection:
    """A collection's members, in order (a member is an :class:`Attribute`)."""

    members: tuple[Attribute, ...] = ()

    def get(self, name: str) -> Attribute | None:
        return next((a for a in self.members if a.name == name), None)


#: The Python side of a value. ``None`` is an out-of-band value (the tag tells which).
Native: TypeAlias = (
    int | bool | str | bytes | Resolution | RangeOfInteger | TextWithLanguage | DateTime
    | Collection | None
)


@dataclass(frozen=True, slots=True)
class Value:
    tag: int
    value: Native


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    values: tuple[Value, ...]

    @classmethod
    def of(cls, name: str, tag: int, *natives: Native) -> Attribute:
        """An attribute whose values all have ``tag`` (the common case)."""
        return cls(name, tuple(Value(tag, n) for n in natives))

    @property
    def first(self) -> Native:
        """The first value (``None`` if there is none or it is out-of-band)."""
        return self.values[0].value if self.values else None

    @property
    def natives(self) -> tuple[Native, ...]:
        return tuple(v.value for v in self.values)


@dataclass(frozen=True, slots=True)
class AttributeGroup:
    tag: int
    attributes: tuple[Attribute, ...] = ()

    def get(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)


@dataclass(frozen=True, slots=True)
class Message:
    """A request (``code`` = operation-id) or a response (``code`` = status-code)."""

    code: int
    request_id: int
    groups: tuple[AttributeGroup, ...] = ()
    version: tuple[int, int] = (2, 0)
    data: bytes = field(default=b"", repr=False)

    def group(self, tag: int) -> AttributeGroup | None:
        return next((g for g in self.groups if g.tag == tag), None)

    def get(self, tag: int, name: str) -> Attribute | None:
        """The first attribute ``name`` in the first group with ``tag``."""
        for g in self.groups:
            if g.tag == tag and (a := g.get(name)) is not None:
                return a
        return None

    def first(self, tag: int, name: str) -> Native:
        a = self.get(tag, name)
        return None if a is None else a.first


# --------------------------------------------------------------------------- helpers


def operation_attributes(printer_uri: str, *extra: Attribute,
                         language: str = "en") -> AttributeGroup:
    """The operation group every request starts with: charset and language first, in that
    order (RFC 8011 4.1.4), then the target printer."""
    return AttributeGroup(GroupTag.OPERATION, (
        Attribute.of("attributes-charset", ValueTag.CHARSET, "utf-8"),
        Attribute.of("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, language),
        Attribute.of("printer-uri", ValueTag.URI, printer_uri),
        *extra,
    ))


def keywords(attribute: Attribute | None) -> Iterator[str]:
    """The string values of an attribute (keywords, mime types), skipping anything else."""
    if attribute is not None:
        for v in attribute.values:
            if isinstance(v.value, str):
                yield v.value


def integers(attribute: Attribute | None) -> Iterable[int]:
    if attribute is None:
        return ()
    return [v.value for v in attribute.values
            if isinstance(v.value, int) and not isinstance(v.value, bool)]
