"""Messages of MQTT contract v1 and their JSON codec.

Theory of operation
-------------------
Every payload is one UTF-8 JSON object with ``"v": 1`` and ``"type"``. Requests travel device to
cloud on ``.../req`` with the MQTT 5 Response Topic and Correlation Data properties; the cloud
answers on the Response Topic, echoing the Correlation Data, with ``"ok": true`` and the result's
fields, or ``"ok": false`` and ``"error": {"code", "message", "field"}``.

Each message is a frozen dataclass registered with :func:`_message`. Its annotated fields *are*
the schema (the machinery is :mod:`protocol.schema`, this module's private part, whose public
names are re-exported here: import this module, not that one). Decoding checks the envelope
here, then every field there, and raises :class:`ProtocolError` naming the first offending one,
so a peer always learns what to fix.

Deliberate choices:

* **Unknown fields are ignored** (tolerant reader): a newer peer may add optional fields within
  v1. A change that an older peer must not ignore bumps ``v``.
* **Unknown versions** are refused with ``unsupported_version`` (never guessed at).
* **Size limits** are checked before parsing (``MAX_REQUEST_BYTES``).
* **Mutating requests** (those with ``request_id``) are idempotent: the cloud stores the answer
  under (device, request_id) and answers a repeat with it, so a QoS 1 redelivery or a retry never
  does the work twice.
* Secrets (card numbers, codes, session tokens) are marked ``secret`` so ``redacted()`` can log
  a message without them.
* **Only what every peer can hold** (I-JSON, RFC 7493: text without NUL or lone surrogates,
  integers within +/- ``MAX_INT``, finite numbers; :mod:`protocol.schema` says why). ``NaN`` and
  ``Infinity`` are refused while parsing here, the rest field by field there. Anything else is
  the protocol's error, never an exception from deeper down, and an error answer can always be
  encoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from protocol.errors import ErrorCode, ProtocolError, RemoteError

# The schema machinery and its public names (re-exported: ``messages.MAX_INT`` and the rest stay
# this module's API). ``_SCHEMAS`` under its old private name: tests read the field tables.
from protocol.schema import ID as ID
from protocol.schema import LANGUAGE as LANGUAGE
from protocol.schema import LANGUAGE_MAX as LANGUAGE_MAX
from protocol.schema import MAX_INT as MAX_INT
from protocol.schema import SCHEMAS as _SCHEMAS
from protocol.schema import M as M
from protocol.schema import Message as Message
from protocol.schema import Part as Part
from protocol.schema import Request as Request
from protocol.schema import Result as Result
from protocol.schema import Spec as Spec
from protocol.schema import (
    from_object,
    is_text,
    printable,
    refuse_constant,
    register,
    to_object,
)
from protocol.schema import is_language_tag as is_language_tag
from protocol.schema import spec as spec
from protocol.schema import validate as validate

VERSION = 1
SUPPORTED_VERSIONS = frozenset({VERSION})
MAX_REQUEST_BYTES = 64 * 1024
MAX_RESPONSE_BYTES = 1024 * 1024
#: Documents travel in chunks of at most this many bytes (before base64).
DOCUMENT_CHUNK_BYTES = 256 * 1024
#: Bounds of a status's ``firmware`` mapping (entries; characters of a name or a version).
MAX_FIRMWARE_ENTRIES = 32
MAX_FIRMWARE_TEXT = 64

#: A device's page size, as its policy bounds it (protocol/managed.py: ``policy.page_size``).
PAGE_SIZE = spec(minimum=10, maximum=500)
# The pieces of a page of jobs, one schema for ``JobList`` and the first page an
# ``IdentifyResult`` may carry: how many jobs there are, and the why-empty counts.
_COUNT = spec(minimum=0)
_HOURS = spec(minimum=0)

REQUESTS: dict[str, type[Request]] = {}
RESULTS: dict[str, type[Result]] = {}


def _message(cls: type[M]) -> type[M]:
    """Register a message class: its schema (see :func:`protocol.schema.register`), and a request
    or result under its wire type."""
    register(cls)
    if issubclass(cls, Request):
        REQUESTS[cls.TYPE] = cls
    elif issubclass(cls, Result):
        RESULTS[cls.TYPE] = cls
    return cls


# --------------------------------------------------------------------------- requests


@_message
@dataclass(frozen=True, slots=True)
class Identify(Request):
    """Who is this? ``method`` "card" carries the canonical card number, "code" an access code."""

    TYPE: ClassVar[str] = "identify"
    method: str = field(metadata=spec(choices=("card", "code", "password")))
    value: str = field(metadata=spec(min_len=1, max_len=128, secret=True))
    #: With method "password": the user's email.
    username: str | None = field(default=None, metadata=spec(min_len=1, max_len=254))
    #: With method "card" on a card + PIN device: the PIN the user typed after the badge.
    pin: str | None = field(default=None, metadata=spec(min_len=1, max_len=16, secret=True))
    #: The device's page size: a user's answer then carries their first page of jobs (see
    #: ``IdentifyResult.jobs``). Optional: a device that leaves it out (an older one, which
    #: would ignore a page) is answered without one, and lists as it always did.
    page_size: int | None = field(default=None, metadata=PAGE_SIZE)


@_message
@dataclass(frozen=True, slots=True)
class Associate(Request):
    """Self-association: an unknown badge, and proof of who the user is (access code or
    username + password). The cloud links the card to that user and logs them in."""

    TYPE: ClassVar[str] = "identify.associate"
    request_id: str = field(metadata=ID)
    card: str = field(metadata=spec(min_len=1, max_len=128, secret=True))
    method: str = field(metadata=spec(choices=("code", "password")))
    value: str = field(metadata=spec(min_len=1, max_len=128, secret=True))
    username: str | None = field(default=None, metadata=spec(min_len=1, max_len=254))
    #: As ``Identify.page_size``: the answer carries the user's first page.
    page_size: int | None = field(default=None, metadata=PAGE_SIZE)


@_message
@dataclass(frozen=True, slots=True)
class ListJobs(Request):
    """The session user's held jobs, newest first, one page."""

    TYPE: ClassVar[str] = "jobs.list"
    session: str = field(metadata=spec(min_len=1, max_len=128, secret=True))
    offset: int = field(default=0, metadata=spec(minimum=0, maximum=1_000_000))
    limit: int = field(default=50, metadata=spec(minimum=1, maximum=500))


@_message
@dataclass(frozen=True, slots=True)
class Release(Request):
    """Release these held jobs to this device. The answer names a release id."""

    TYPE: ClassVar[str] = "jobs.release"
    request_id: str = field(metadata=ID)
    session: str = field(metadata=spec(min_len=1, max_len=128, secret=True))
    #: The jobs to release; empty with ``all_held`` = every held job of the user.
    job_ids: tuple[str, ...] = field(metadata=spec(min_len=0, max_len=500))
    all_held: bool = False
    #: Changes at release, where the org's policy allows them.
    grayscale: bool = False
    duplex: bool = False
    copies: int | None = field(default=None, metadata=spec(minimum=1, maximum=99))


@_message
@dataclass(frozen=True, slots=True)
class DeleteJobs(Request):
    """Delete held jobs of the session's user (all or nothing)."""

    TYPE: ClassVar[str] = "jobs.delete"
    request_id: str = field(metadata=ID)
    session: str = field(metadata=spec(min_len=1, max_len=128, secret=True))
    job_ids: tuple[str, ...] = field(metadata=spec(min_len=1, max_len=500))


@_message
@dataclass(frozen=True, slots=True)
class FetchDocument(Request):
    """A chunk of a released job's document. Bound to the release, not to the session, so a
    print started before logout can finish."""

    TYPE: ClassVar[str] = "jobs.document"
    release_id: str = field(metadata=ID)
    job_id: str = field(metadata=ID)
    offset: int = field(default=0, metadata=spec(minimum=0))
    length: int = field(default=DOCUMENT_CHUNK_BYTES,
                        metadata=spec(minimum=1, maximum=DOCUMENT_CHUNK_BYTES))


@_message
@dataclass(frozen=True, slots=True)
class JobPrinted(Request):
    """The print engine confirmed output of this released job."""

    TYPE: ClassVar[str] = "jobs.printed"
    request_id: str = field(metadata=ID)
    release_id: str = field(metadata=ID)
    job_id: str = field(metadata=ID)


@_message
@dataclass(frozen=True, slots=True)
class JobFailed(Request):
    """The engine failed before output: the job goes back to HELD."""

    TYPE: ClassVar[str] = "jobs.failed"
    request_id: str = field(metadata=ID)
    release_id: str = field(metadata=ID)
    job_id: str = field(metadata=ID)
    reason: str = field(default="", metadata=spec(max_len=200))


@_message
@dataclass(frozen=True, slots=True)
class Logout(Request):
    TYPE: ClassVar[str] = "logout"
    request_id: str = field(metadata=ID)
    session: str = field(metadata=spec(min_len=1, max_len=128, secret=True))


# Offline mode (docs/offline.md; the bundle's format and cryptography are protocol/offline.py's).


@_message
@dataclass(frozen=True, slots=True)
class OfflineSync(Request):
    """Ask for this device's offline bundle: who may sign in here while the cloud is
    unreachable, the jobs they may print then, until when. Refused ``not_allowed`` where the
    org's policy keeps offline mode off for this device (an older cloud: ``unknown_type``)."""

    TYPE: ClassVar[str] = "offline.sync"
    #: The sequence number of the bundle the device holds (0: none), for the cloud's log.
    seq: int = field(default=0, metadata=spec(minimum=0))


@_message
@dataclass(frozen=True, slots=True)
class FetchOffline(Request):
    """A sealed chunk of a job in this device's offline bundle, for pre-delivery: ``offset``
    on the grid of ``protocol.offline.CHUNK_BYTES`` (the length is the grid's), answered with a
    ``DocumentChunk`` whose ``data`` is sealed and whose ``total`` is the plaintext size."""

    TYPE: ClassVar[str] = "offline.document"
    job_id: str = field(metadata=ID)
    offset: int = field(default=0, metadata=spec(minimum=0))


@_message
@dataclass(frozen=True, slots=True)
class OfflineEvent(Part):
    """One thing a device did offline, in the order it happened (its journal's)."""

    #: "login" (a user signed in), "refused" (a badge or code was refused; no user),
    #: "printed" or "failed" (a job of an offline release).
    kind: str = field(metadata=spec(choices=("login", "refused", "printed", "failed")))
    at: float = field(metadata=spec(minimum=0))
    user_id: str = field(default="", metadata=spec(max_len=64))
    job_id: str = field(default="", metadata=spec(max_len=64))
    #: "card" or "code" for sign-ins; the reason for refusals and failures.
    detail: str = field(default="", metadata=spec(max_len=200))
    #: The offline release the job was printed in (``off-...``).
    release_id: str = field(default="", metadata=spec(max_len=64))


@_message
@dataclass(frozen=True, slots=True)
class OfflineReport(Request):
    """What a device did while offline, reported when the cloud is back: a printed job becomes
    PRINTED (never printed again anywhere); one printed elsewhere first is named in the answer's
    ``raced``. Idempotent by ``request_id`` like every mutating request."""

    TYPE: ClassVar[str] = "offline.report"
    request_id: str = field(metadata=ID)
    #: The bundle the events happened under.
    seq: int = field(metadata=spec(minimum=0))
    events: tuple[OfflineEvent, ...] = field(metadata=spec(min_len=1, max_len=500))


# --------------------------------------------------------------------------- results


@_message
@dataclass(frozen=True, slots=True)
class JobSummary(Part):
    job_id: str = field(metadata=ID)
    name: str = field(metadata=spec(max_len=256))
    pages: int = field(metadata=spec(minimum=0))
    color: bool
    duplex: bool
    copies: int = field(metadata=spec(minimum=1, maximum=999))
    size: int = field(metadata=spec(minimum=0))
    submitted_at: float
    source: str = field(default="", metadata=spec(max_len=128))


@_message
@dataclass(frozen=True, slots=True)
class ReleasedJob(Part):
    job_id: str = field(metadata=ID)
    name: str = field(metadata=spec(max_len=256))
    size: int = field(metadata=spec(minimum=0))
    sha256: str = field(metadata=spec(pattern=r"^[0-9a-f]{64}$"))
    pages: int = field(default=0, metadata=spec(minimum=0))
    copies: int = field(default=1, metadata=spec(minimum=1, maximum=999))
    #: As it is to be printed, after any change at release.
    color: bool = False
    duplex: bool = False


#: Who an ``identify`` answer is for (``IdentifyResult.role``): a user (the default, and what an
#: answer without the field means), or a technician, whom the device shows its diagnostics and
#: no one's jobs. A role this device does not know fails decoding: never taken for a user.
ROLE_USER = "user"
ROLE_TECHNICIAN = "technician"


@_message
@dataclass(frozen=True, slots=True)
class IdentifyResult(Result):
    TYPE: ClassVar[str] = "identify"
    session: str = field(metadata=spec(min_len=1, max_len=128, secret=True))
    user_id: str = field(metadata=ID)
    display_name: str = field(metadata=spec(max_len=128))
    expires_in: int = field(metadata=spec(minimum=0))
    #: What else happened, for the panel to say (e.g. "card linked").
    note: str = field(default="", metadata=spec(max_len=200))
    #: ROLE_TECHNICIAN: a technician's badge or code; ``session`` then opens nothing, and
    #: ``user_id`` names the technician's credential, not a user (optional within v1: an older
    #: cloud leaves it out, an older device ignores it and is refused the job list).
    role: str = field(default=ROLE_USER, metadata=spec(choices=(ROLE_USER, ROLE_TECHNICIAN)))
    #: The user's preferred language, a tag ("ja", "fr-CH"), for the panel to speak while they
    #: are signed in; "" (and an answer without the field, from an older cloud) is not known,
    #: and the device's own language stays. ASCII letters, digits and "-" only: anything else
    #: fails decoding.
    language: str = field(default="", metadata=LANGUAGE)
    # The user's first page of jobs, when the request gave a ``page_size``: exactly the
    # ``JobList`` that ``jobs.list`` with offset 0 and that limit would answer, field for field,
    # so the panel shows the list after one round trip. ``jobs`` None (an older cloud, a
    # request without a page size, a technician) is no page: the device lists as before.
    jobs: tuple[JobSummary, ...] | None = None
    total: int = field(default=0, metadata=_COUNT)
    expired: int = field(default=0, metadata=_COUNT)
    hold_hours: float = field(default=0.0, metadata=_HOURS)
    unlinked: int = field(default=0, metadata=_COUNT)

    def first_page(self) -> JobList | None:
        """The first page this answer carries, as ``jobs.list`` would have answered it."""
        if self.jobs is None:
            return None
        return JobList(jobs=self.jobs, total=self.total, offset=0, expired=self.expired,
                       hold_hours=self.hold_hours, unlinked=self.unlinked)

    def with_first_page(self, page: JobList) -> IdentifyResult:
        """This answer with ``page`` (a first page: offset 0) on it."""
        return replace(self, jobs=page.jobs, total=page.total, expired=page.expired,
                       hold_hours=page.hold_hours, unlinked=page.unlinked)


@_message
@dataclass(frozen=True, slots=True)
class JobList(Result):
    TYPE: ClassVar[str] = "jobs.list"
    jobs: tuple[JobSummary, ...]
    total: int = field(metadata=_COUNT)
    offset: int = field(default=0, metadata=spec(minimum=0))
    # Why jobs the user may expect are not on the list (optional: older peers leave them out).
    #: The user's jobs that expired unreleased within the last hold period...
    expired: int = field(default=0, metadata=_COUNT)
    #: ...and that hold period, in hours (0: not said).
    hold_hours: float = field(default=0.0, metadata=_HOURS)
    #: Jobs waiting from a computer of the user's that is not linked yet (they are not held
    #: for the user until it is).
    unlinked: int = field(default=0, metadata=_COUNT)


@_message
@dataclass(frozen=True, slots=True)
class ReleaseResult(Result):
    TYPE: ClassVar[str] = "jobs.release"
    release_id: str = field(metadata=ID)
    jobs: tuple[ReleasedJob, ...]


@_message
@dataclass(frozen=True, slots=True)
class DocumentChunk(Result):
    TYPE: ClassVar[str] = "jobs.document"
    job_id: str = field(metadata=ID)
    offset: int = field(metadata=spec(minimum=0))
    data: bytes
    total: int = field(metadata=spec(minimum=0))


@_message
@dataclass(frozen=True, slots=True)
class Ack(Result):
    """The answer to a request whose only result is that it was done."""

    TYPE: ClassVar[str] = "ack"
    of: str = field(default="", metadata=spec(max_len=32))


@_message
@dataclass(frozen=True, slots=True)
class OfflineBundle(Result):
    """The answer to ``offline.sync``: the bundle's body (canonical JSON, protocol/offline.py)
    and the cloud's Ed25519 signature over exactly those bytes."""

    TYPE: ClassVar[str] = "offline.sync"
    body: bytes
    signature: bytes
    #: ``protocol.offline.key_id`` of the signing key, so a device holding another says so.
    key_id: str = field(default="", metadata=spec(max_len=32))


@_message
@dataclass(frozen=True, slots=True)
class OfflineReportResult(Result):
    TYPE: ClassVar[str] = "offline.report"
    #: Events taken (every event of the report, repeats included).
    accepted: int = field(metadata=spec(minimum=0))
    #: Jobs the device printed offline that had been printed (or released) elsewhere first.
    raced: tuple[str, ...] = field(default=(), metadata=spec(max_len=500))
    #: Jobs the device printed offline that had been deleted or had expired meanwhile.
    gone: tuple[str, ...] = field(default=(), metadata=spec(max_len=500))


@_message
@dataclass(frozen=True, slots=True)
class DeviceStatus(Message):
    """Retained on ``.../status``. The device bumps ``epoch`` on every connection; its Last Will
    carries the same epoch, so a late Will of an old connection cannot overwrite a fresh
    "online" (see :func:`status_supersedes`)."""

    TYPE: ClassVar[str] = "status"
    KIND: ClassVar[str] = "status"
    state: str = field(metadata=spec(choices=("online", "offline")))
    epoch: int = field(metadata=spec(minimum=0))
    since: float = 0.0
    #: The print engine's kind ("ipp", "socket", "emulator"; "" unknown): a device on the
    #: emulator prints nothing, and says so. Optional, so older peers stay compatible.
    engine: str = field(default="", metadata=spec(max_len=32))
    #: Firmware versions the device runs, by part: ``"app"`` (the device app's own version)
    #: and ``"reader:<reader id>"`` for each reader that reports one. Optional (an older
    #: device sends none: ``None``); at most ``MAX_FIRMWARE_ENTRIES`` entries, names and
    #: versions of at most ``MAX_FIRMWARE_TEXT`` characters each.
    firmware: dict[str, str] | None = field(default=None, metadata=spec(
        max_len=MAX_FIRMWARE_ENTRIES, item_max_len=MAX_FIRMWARE_TEXT))


@_message
@dataclass(frozen=True, slots=True)
class ConfigAck(Message):
    """Published by a device on ``.../events`` after a config push: applied, or refused with
    the reason (the running configuration then stays)."""

    TYPE: ClassVar[str] = "config.ack"
    KIND: ClassVar[str] = "event"
    #: Versions are numbered by the cloud and kept in 32-bit columns.
    version: int = field(metadata=spec(minimum=1, maximum=2**31 - 1))
    applied: bool
    reason: str = field(default="", metadata=spec(max_len=500))


@_message
@dataclass(frozen=True, slots=True)
class JobsChanged(Message):
    """Published by the cloud on ``.../notify`` of the one device where the owner of a job that
    just became HELD is signed in: "fetch the list again". It names no user, no job and no
    count on purpose: whoever is signed in there when it lands can only re-list their own jobs,
    so a notice that crosses a logout tells the next user nothing. Not retained, QoS 0: a
    notice missed is a list a tap on Refresh (or the next login) brings."""

    TYPE: ClassVar[str] = "jobs.changed"
    KIND: ClassVar[str] = "notify"


#: What the cloud may publish on ``.../notify``, by wire type.
NOTIFICATIONS: dict[str, type[JobsChanged]] = {JobsChanged.TYPE: JobsChanged}


def decode_notification(data: bytes) -> JobsChanged:
    """A notice from ``.../notify``, or ProtocolError naming what is wrong."""
    obj = _parse(data, MAX_REQUEST_BYTES)
    cls = NOTIFICATIONS.get(obj["type"])
    if cls is None:
        raise ProtocolError(f"unknown notification type {obj['type']!r}",
                            code=ErrorCode.UNKNOWN_TYPE, field="type")
    return from_object(cls, obj)


def decode_event(data: bytes) -> ConfigAck:
    """A device event from ``.../events`` (today: config acknowledgements)."""
    obj = _parse(data, MAX_REQUEST_BYTES)
    if obj["type"] != ConfigAck.TYPE:
        raise ProtocolError(f"unknown event type {obj['type']!r}", code=ErrorCode.UNKNOWN_TYPE,
                            field="type")
    return from_object(ConfigAck, obj)


@_message
@dataclass(frozen=True, slots=True)
class ReleaseOrder(Message):
    """Published by the cloud on the device's ``.../cmd`` (QoS 1, not retained): a release the
    user asked for from the portal, for this copier to print with nobody at its panel. It
    carries what a ``ReleaseResult`` does, and whom it is for (the panel shows the name). The
    device prints it through its journal like a panel release, so a copy delivered again
    prints nothing; the cloud pushes it again until the device fetches a document of it or
    reports one of its jobs (docs/protocol.md, Release orders)."""

    TYPE: ClassVar[str] = "release.order"
    KIND: ClassVar[str] = "command"
    release_id: str = field(metadata=ID)
    jobs: tuple[ReleasedJob, ...] = field(metadata=spec(min_len=1, max_len=500))
    user_name: str = field(default="", metadata=spec(max_len=128))
    #: The user's preferred language ("" not known), as ``IdentifyResult.language``.
    language: str = field(default="", metadata=LANGUAGE)


def decode_command(data: bytes) -> ReleaseOrder:
    """A release order from ``.../cmd``, or ProtocolError (``unknown_type`` for any other
    command, such as a ``config`` push, which its own reader takes)."""
    obj = _parse(data, MAX_RESPONSE_BYTES)
    if obj["type"] != ReleaseOrder.TYPE:
        raise ProtocolError(f"not a release order: {printable(obj['type'])[:32]!r}",
                            code=ErrorCode.UNKNOWN_TYPE, field="type")
    return from_object(ReleaseOrder, obj)


#: Results by the request type they answer (Ack answers several).
RESULT_FOR: dict[str, type[Result]] = {
    Identify.TYPE: IdentifyResult,
    Associate.TYPE: IdentifyResult,
    DeleteJobs.TYPE: Ack,
    ListJobs.TYPE: JobList,
    Release.TYPE: ReleaseResult,
    FetchDocument.TYPE: DocumentChunk,
    JobPrinted.TYPE: Ack,
    JobFailed.TYPE: Ack,
    Logout.TYPE: Ack,
    OfflineSync.TYPE: OfflineBundle,
    FetchOffline.TYPE: DocumentChunk,
    OfflineReport.TYPE: OfflineReportResult,
}


def is_mutating(request: Request) -> bool:
    """Mutating requests carry a request_id and get stored answers on repeats."""
    return any(i.name == "request_id" for i in _SCHEMAS[type(request)])


# --------------------------------------------------------------------------- codec


def _parse(data: bytes, limit: int) -> dict[str, Any]:
    if len(data) > limit:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {limit}",
                            code=ErrorCode.TOO_LARGE)
    try:
        # NaN, Infinity and -Infinity are Python's extensions, not JSON.
        obj = json.loads(data.decode("utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"not a UTF-8 JSON document: {exc}",
                            code=ErrorCode.BAD_REQUEST) from None
    except RecursionError:
        raise ProtocolError("JSON nested too deeply", code=ErrorCode.BAD_REQUEST) from None
    if not isinstance(obj, dict):
        raise ProtocolError("a message must be a JSON object", code=ErrorCode.BAD_REQUEST)
    v = obj.get("v")
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProtocolError("v (the protocol version) is required and must be an integer",
                            code=ErrorCode.INVALID_FIELD, field="v")
    if v not in SUPPORTED_VERSIONS:
        raise ProtocolError(f"protocol version {v} is not supported; this peer speaks "
                            f"{', '.join(map(str, sorted(SUPPORTED_VERSIONS)))}",
                            code=ErrorCode.UNSUPPORTED_VERSION, field="v")
    if not isinstance(obj.get("type"), str):
        raise ProtocolError("type is required and must be a string", code=ErrorCode.INVALID_FIELD,
                            field="type")
    if not is_text(obj["type"]):
        raise ProtocolError("type must be Unicode text without NUL or lone surrogates",
                            code=ErrorCode.INVALID_FIELD, field="type")
    return obj


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode(msg: Message) -> bytes:
    """A request, part-free result or status as its wire payload."""
    obj: dict[str, Any] = {"v": VERSION, "type": msg.TYPE}
    if isinstance(msg, Result):
        obj["ok"] = True
    obj.update(to_object(msg))
    return _dump(obj)


def encode_result(result: Result, answering: str) -> bytes:
    """A result answering a request of type ``answering`` (Ack answers several types)."""
    obj: dict[str, Any] = {"v": VERSION, "type": answering, "ok": True}
    obj.update(to_object(result))
    return _dump(obj)


def encode_error(answering: str, code: ErrorCode | str, message: str,
                 field_name: str | None = None, retry_after: int | None = None) -> bytes:
    # Every string here may echo what a peer sent; an error answer must encode whatever it was.
    error: dict[str, Any] = {"code": str(code), "message": printable(message)}
    if field_name is not None:
        error["field"] = printable(field_name)
    if retry_after is not None:
        error["retry_after"] = retry_after
    return _dump({"v": VERSION, "type": printable(answering), "ok": False, "error": error})


def error_from(exc: ProtocolError, answering: str = "error") -> bytes:
    return encode_error(answering, exc.error_code, exc.message, exc.field)


def request_type_of(data: bytes) -> str:
    """Best-effort type of a raw request, to label an error answer; "error" if unreadable."""
    try:
        obj = json.loads(data[:MAX_REQUEST_BYTES].decode("utf-8"),
                         parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError, ProtocolError):
        return "error"
    t = obj.get("type") if isinstance(obj, dict) else None
    return t if isinstance(t, str) and len(t) <= 32 and is_text(t) else "error"


def decode_request(data: bytes) -> Request:
    """Bytes from ``.../req`` to a Request, or ProtocolError naming what is wrong."""
    obj = _parse(data, MAX_REQUEST_BYTES)
    cls = REQUESTS.get(obj["type"])
    if cls is None:
        raise ProtocolError(f"unknown request type {obj['type']!r}; known: "
                            f"{', '.join(sorted(REQUESTS))}", code=ErrorCode.UNKNOWN_TYPE,
                            field="type")
    return from_object(cls, obj)


def decode_response(data: bytes, answering: str) -> Result:
    """Bytes from ``.../resp`` to the Result for a request of type ``answering``.

    ``ok: false`` raises :class:`RemoteError` with the peer's code; a malformed answer raises
    ProtocolError.
    """
    obj = _parse(data, MAX_RESPONSE_BYTES)
    ok = obj.get("ok")
    if ok is False:
        err = obj.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("code"), str):
            raise ProtocolError("error answer without error.code", code=ErrorCode.INVALID_FIELD,
                                field="error")
        fld = err.get("field")
        retry = err.get("retry_after")
        # What the device shows, logs or waits on: text it can render, a wait it can add to a
        # clock (a huge retry_after would overflow a float deadline).
        return _raise_remote(printable(err["code"]), printable(str(err.get("message", ""))),
                             printable(fld) if isinstance(fld, str) else None,
                             retry if isinstance(retry, int) and not isinstance(retry, bool)
                             and 0 <= retry <= MAX_INT else None)
    if ok is not True:
        raise ProtocolError("ok must be true or false", code=ErrorCode.INVALID_FIELD, field="ok")
    if obj["type"] != answering:
        raise ProtocolError(f"answer of type {obj['type']!r} to a {answering!r} request",
                            code=ErrorCode.INVALID_FIELD, field="type")
    cls = RESULT_FOR.get(answering)
    if cls is None:
        raise ProtocolError(f"unknown request type {answering!r}", code=ErrorCode.UNKNOWN_TYPE,
                            field="type")
    return from_object(cls, obj)


def _raise_remote(code: str, message: str, field_name: str | None,
                  retry_after: int | None) -> Result:
    raise RemoteError(code, message, field_name, retry_after)


def decode_status(data: bytes) -> DeviceStatus:
    obj = _parse(data, MAX_REQUEST_BYTES)
    if obj["type"] != DeviceStatus.TYPE:
        raise ProtocolError("not a status message", code=ErrorCode.UNKNOWN_TYPE, field="type")
    return from_object(DeviceStatus, obj)


def status_supersedes(current: DeviceStatus | None, incoming: DeviceStatus) -> bool:
    """Should ``incoming`` replace ``current`` as the device's known status?

    A newer epoch always wins; an older one never does (a late Last Will of a dead connection).
    Within one epoch "offline" wins, because it can only come after that connection's "online".
    """
    if current is None or incoming.epoch > current.epoch:
        return True
    if incoming.epoch < current.epoch:
        return False
    return incoming.state == "offline" or current.state == incoming.state


def redacted(msg: Message) -> dict[str, Any]:
    """The message as a dict for logs, with secret fields masked."""
    out = to_object(msg)
    for info in _SCHEMAS[type(msg)]:
        if info.spec.secret and out.get(info.name) is not None:
            out[info.name] = "***"
        if info.kind == "bytes" and out.get(info.name) is not None:
            out[info.name] = f"<{len(getattr(msg, info.name))} bytes>"
    return {"type": msg.TYPE, **out}
