"""Types shared by the device app and print-engine firmware (real or emulated): engine states,
the job handed over, the outcome of a job, and the outcome callback. Pure data, no I/O.

Engine ids
----------
A job handed to an engine is named by its *engine id*: ``<release_id>/<job_id>``. The cloud job id
alone is not enough: a job that failed before output goes back to HELD and can be released again
(a new release), and the engine must be able to say what happened to *this* hand-over, not to any
of them. The device journals the engine id before the hand-over, so after a crash it can ask the
engine "what became of it?" (:class:`EngineOutcome`).

The engine socket protocol (v1)
-------------------------------
How the device app talks to a print engine that runs as its own process (the emulated MFD
controller, ``python -m firmware_stubs.engine_server``; a real controller's bridge can speak the
same). A stream socket (a Unix socket today) carries *frames*: a 4-byte big-endian length N
(1..``MAX_FRAME_BYTES``), then N bytes of one UTF-8 JSON object with ``"v": 1``.

* Requests (app -> engine) carry ``"id"`` (an integer the app chooses, echoed in the answer) and
  ``"op"``. Answers are ``{"v": 1, "id": ..., "ok": true, ...}`` or ``{"v": 1, "id": ...,
  "ok": false, "error": {"code": ..., "message": ...}}``.
* ``state`` -> ``{"state": "ready" | "printing" | "jam" | "no_paper" | "door_open" | "offline"}``.
* ``submit`` with ``"job": {"job_id", "release_id", "name", "sha256", "copies", "document"}``
  (the document base64) -> ``{"outcome": "printing"}`` once the engine has recorded the job
  (a record that outlives the engine process, synced to disk before the job prints); the
  engine checks the SHA-256 before printing. ``duplicate_job``: this engine id was submitted
  (or asked about, see UNKNOWN) before and will not be printed again.
* ``hello`` -> ``{"features": [...]}``: what this engine speaks beyond the above. An engine
  that predates it answers ``unknown_op``, which means "no features"; the app asks once per
  connection.
* Feature ``document_frames`` (a streamed submit, so that neither side holds a document, or
  4/3 of it in base64, in memory): the ``submit`` carries ``"job": {..., "document_size": N}``
  instead of ``"document"``, and is followed at once on the same connection by frames
  ``{"v": 1, "op": "document", "id": <the submit's id>, "data": <base64>}`` whose decoded data
  (at most ``DOCUMENT_READ_BYTES`` each; none for an empty document) add up to exactly N bytes.
  They are not answered; the submit is answered once all N bytes are in, as above. Any other
  frame before that, a wrong id, or more than N bytes: ``bad_request`` and the connection is
  closed; a connection that ends before N bytes is a torn hand-over, never printed. The app
  sends it only to an engine whose ``hello`` named the feature; a new engine still takes the
  one-frame ``submit``.
* ``outcome`` with ``"job": <engine id>`` -> ``{"outcome": "printed" | "failed" | "printing" |
  "unknown", "detail": ...}``. Answering ``unknown`` fences the id (see :class:`EngineOutcome`).
* Events (engine -> every connected app, no ``id``): ``{"v": 1, "event": "done", "job": <engine
  id>, "outcome": "printed" | "failed", "detail": ...}`` when a job finishes. An app that was
  disconnected at that moment asks ``outcome`` when it is back.
  ``{"v": 1, "event": "pages", "job": <engine id>, "done": n}`` as the job prints, each time
  ``n`` grows and only before its ``done``: ``n`` the impressions so far, copies counted (a
  3-page document in 2 copies ends at 6). An engine that cannot count sends none.

Unknown fields and events are ignored; an unknown ``op`` is answered ``unknown_op``; a frame that
is not a JSON object is answered ``bad_request`` with ``id`` null and the connection is closed.

The emulated controller answers three more ops of its own (``fault``, ``hold``, ``printed``), for
tests and benches: they are documented with it (firmware_stubs/engine_server.py), not here, and
a device never sends them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from protocol.errors import ErrorCode, ProtocolError


class EngineState(StrEnum):
    READY = "ready"
    PRINTING = "printing"
    JAM = "jam"
    NO_PAPER = "no_paper"
    DOOR_OPEN = "door_open"
    OFFLINE = "offline"

    @property
    def can_print(self) -> bool:
        return self in (EngineState.READY, EngineState.PRINTING)


ENGINE_REASONS = {
    EngineState.JAM: "Paper jam: clear the jam and try again.",
    EngineState.NO_PAPER: "Out of paper: load paper and try again.",
    EngineState.DOOR_OPEN: "A door is open: close it and try again.",
    EngineState.OFFLINE: "The printer is offline.",
}


class EngineOutcome(StrEnum):
    """What an engine says about one engine id.

    ``UNKNOWN`` is a promise, not a shrug: an engine that answers it must refuse that id if it
    arrives later (a hand-over still in a socket buffer when the device died), so the device may
    safely tell the cloud the job failed and let it go back to HELD.
    """

    PRINTED = "printed"
    FAILED = "failed"  # failed before output
    PRINTING = "printing"  # accepted: queued or on paper now; ask again later
    UNKNOWN = "unknown"  # never accepted (and now never will be)

    @property
    def final(self) -> bool:
        return self in (EngineOutcome.PRINTED, EngineOutcome.FAILED, EngineOutcome.UNKNOWN)


def engine_id(release_id: str, job_id: str) -> str:
    """The engine's name for one hand-over of one job (see the module docstring)."""
    return f"{release_id}/{job_id}" if release_id else job_id


#: How much of a document is read at a time (a file's read, a wire frame's payload).
DOCUMENT_READ_BYTES = 1024 * 1024


class Document:
    """A job's document as an engine adapter reads it: ``size`` bytes, in memory or in a file
    (the device spools documents to disk so that memory stays bounded whatever their size).

    Read it with :meth:`chunks` (bounded memory) or :meth:`read` (all of it: tests and small
    documents). A file-backed document stays readable until the job's ``done`` (or until
    ``submit`` raises): the device removes its spool file then, not before, so an adapter may
    read it on its own thread after ``submit`` returned (the IPP engine and the emulated one
    do).
    """

    __slots__ = ("_data", "_path", "size")

    def __init__(self, data: bytes = b"", *, path: str | os.PathLike[str] | None = None,
                 size: int | None = None) -> None:
        if path is None:
            self._data: bytes | None = bytes(data)
            self._path: str | None = None
            self.size = len(self._data)
        else:
            if size is None:
                size = os.stat(path).st_size
            self._data, self._path, self.size = None, os.fspath(path), size

    @classmethod
    def file(cls, path: str | os.PathLike[str], size: int | None = None) -> Document:
        return cls(path=path, size=size)

    @property
    def path(self) -> str | None:
        """The file holding it (None: in memory)."""
        return self._path

    def __len__(self) -> int:
        return self.size

    def chunks(self, size: int = DOCUMENT_READ_BYTES) -> Iterator[bytes]:
        """The document in pieces of at most ``size`` bytes (none for an empty one). OSError
        if its file is gone or short (an adapter turns that into its EngineError)."""
        if self._data is not None:
            view = memoryview(self._data)
            for at in range(0, self.size, size):
                yield bytes(view[at:at + size])
            return
        assert self._path is not None
        left = self.size
        with open(self._path, "rb") as f:
            while left > 0:
                piece = f.read(min(size, left))
                if not piece:
                    raise OSError(f"document file ended {left} bytes short")
                left -= len(piece)
                yield piece

    def read(self) -> bytes:
        """All of it, in memory."""
        return self._data if self._data is not None else b"".join(self.chunks())

    def sha256(self) -> str:
        """Its SHA-256, hex, read in pieces."""
        digest = hashlib.sha256()
        for piece in self.chunks():
            digest.update(piece)
        return digest.hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Document):
            return NotImplemented
        if self is other:
            return True
        return self.size == other.size and all(
            a == b for a, b in zip(self.chunks(), other.chunks(), strict=True))

    def __hash__(self) -> int:
        return hash(self.size)

    def __repr__(self) -> str:
        where = "memory" if self._path is None else "file"
        return f"Document({self.size} bytes in {where})"


@dataclass(frozen=True, slots=True, init=False)
class EngineJob:
    """One hand-over. ``body`` is the document (:class:`Document`); it may be given as bytes,
    and :attr:`document` reads it whole (for tests and small documents only: an adapter
    streams ``body``)."""

    job_id: str
    name: str
    body: Document = field(repr=False)
    sha256: str
    copies: int
    #: The release this hand-over belongs to; "" for callers that predate engine ids.
    release_id: str
    #: As released (after any change at release): None leaves it to the printer's default.
    color: bool | None
    duplex: bool | None

    def __init__(self, job_id: str, name: str, document: bytes | Document, sha256: str,
                 copies: int = 1, release_id: str = "", color: bool | None = None,
                 duplex: bool | None = None) -> None:
        body = document if isinstance(document, Document) else Document(document)
        for key, value in (("job_id", job_id), ("name", name), ("body", body),
                           ("sha256", sha256), ("copies", copies), ("release_id", release_id),
                           ("color", color), ("duplex", duplex)):
            object.__setattr__(self, key, value)

    @property
    def document(self) -> bytes:
        """The whole document in memory (see the class docstring)."""
        return self.body.read()

    @property
    def engine_id(self) -> str:
        return engine_id(self.release_id, self.job_id)


#: Engine outcome callback: (job_id, printed?, detail). Called once per accepted job.
EngineDone = Callable[[str, bool, str], None]


# --------------------------------------------------------------------------- wire (sans-I/O)

WIRE_VERSION = 1
#: A frame holds one JSON object; a submit carries its document base64 (4/3 of its size). The
#: device takes documents up to 512 MiB (device_app/printing/documents.py), so frames stay
#: below this.
MAX_FRAME_BYTES = 720 * 1024 * 1024
#: The largest document a streamed submit announces (the device takes up to 512 MiB).
MAX_DOCUMENT = 1024 * 1024 * 1024
_LEN = 4
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def encode_frame(message: Mapping[str, Any]) -> bytes:
    body = json.dumps({"v": WIRE_VERSION, **message}, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(body)} bytes is larger than {MAX_FRAME_BYTES}",
                            code=ErrorCode.TOO_LARGE)
    return len(body).to_bytes(_LEN, "big") + body


class FrameDecoder:
    """Bytes in, JSON objects out. Feed whatever the socket gave (one byte or many frames);
    get back every frame completed by it. A bad length or a frame that is not a v1 JSON object
    raises :class:`ProtocolError`; the stream cannot be trusted after that."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held of a frame not yet complete (non-zero at EOF = a torn frame)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buf += data
        out: list[dict[str, Any]] = []
        while len(self._buf) >= _LEN:
            size = int.from_bytes(self._buf[:_LEN], "big")
            if size == 0 or size > MAX_FRAME_BYTES:
                raise ProtocolError(f"frame length {size} is out of range",
                                    code=ErrorCode.TOO_LARGE if size else ErrorCode.BAD_REQUEST)
            if len(self._buf) < _LEN + size:
                break
            body = bytes(self._buf[_LEN:_LEN + size])
            del self._buf[:_LEN + size]
            out.append(_decode_body(body))
        return out


def _decode_body(body: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"frame is not UTF-8 JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("frame is not a JSON object")
    if obj.get("v") != WIRE_VERSION:
        raise ProtocolError(f"engine protocol version {obj.get('v')!r} is not spoken here",
                            code=ErrorCode.UNSUPPORTED_VERSION, field="v")
    return obj


#: The feature a streamed submit needs (see the module docstring).
DOCUMENT_FRAMES = "document_frames"


def job_to_wire(job: EngineJob, *, streamed: bool = False) -> dict[str, Any]:
    """The ``job`` of a ``submit``: with the document base64 in it, or (``streamed``) only its
    size, the document following in :func:`document_frames`."""
    head: dict[str, Any] = {"job_id": job.job_id, "release_id": job.release_id,
                            "name": job.name, "sha256": job.sha256, "copies": job.copies}
    if streamed:
        head["document_size"] = job.body.size
    else:
        head["document"] = base64.b64encode(job.body.read()).decode("ascii")
    return head


def document_frames(request_id: int, document: Document) -> Iterator[bytes]:
    """The encoded ``document`` frames of a streamed submit (OSError if the file fails)."""
    for piece in document.chunks(DOCUMENT_READ_BYTES):
        yield encode_frame({"op": "document", "id": request_id,
                            "data": base64.b64encode(piece).decode("ascii")})


def streamed_size(obj: Any) -> int | None:
    """The ``document_size`` of a streamed submit's job; None for a one-frame submit."""
    if not isinstance(obj, dict) or "document" in obj or "document_size" not in obj:
        return None
    size = obj["document_size"]
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_DOCUMENT:
        raise ProtocolError(f"job.document_size must be 0..{MAX_DOCUMENT}",
                            code=ErrorCode.INVALID_FIELD, field="job.document_size")
    return size


def document_data(msg: Mapping[str, Any]) -> bytes:
    """The bytes of one ``document`` frame; ProtocolError if it is not one."""
    data = msg.get("data")
    if msg.get("op") != "document" or not isinstance(data, str):
        raise ProtocolError("a streamed submit's document frame was expected",
                            field="op")
    try:
        piece = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise ProtocolError("document data is not base64", code=ErrorCode.INVALID_FIELD,
                            field="data") from None
    if len(piece) > DOCUMENT_READ_BYTES:
        raise ProtocolError(f"document frame of {len(piece)} bytes; at most "
                            f"{DOCUMENT_READ_BYTES}", code=ErrorCode.TOO_LARGE, field="data")
    return piece


def job_from_wire(obj: Any, document: Document | None = None) -> EngineJob:
    """The job of a ``submit``; :class:`ProtocolError` naming the first bad field. A streamed
    submit's job comes with its ``document``, received from its frames."""
    if not isinstance(obj, dict):
        raise ProtocolError("job must be an object", code=ErrorCode.INVALID_FIELD, field="job")

    def text(name: str, pattern: re.Pattern[str] | None, max_len: int = 256) -> str:
        value = obj.get(name, "")
        if not isinstance(value, str) or len(value) > max_len or (
                pattern is not None and not pattern.fullmatch(value)):
            raise ProtocolError(f"job.{name} is missing or malformed",
                                code=ErrorCode.INVALID_FIELD, field=f"job.{name}")
        return value

    job_id = text("job_id", _ID_RE)
    release_id = obj.get("release_id", "")
    if release_id != "":
        release_id = text("release_id", _ID_RE)
    copies = obj.get("copies", 1)
    if not isinstance(copies, int) or isinstance(copies, bool) or not 1 <= copies <= 999:
        raise ProtocolError("job.copies must be 1..999", code=ErrorCode.INVALID_FIELD,
                            field="job.copies")
    if document is None:
        try:
            document = Document(base64.b64decode(text("document", None, MAX_FRAME_BYTES),
                                                 validate=True))
        except binascii.Error:
            raise ProtocolError("job.document is not base64", code=ErrorCode.INVALID_FIELD,
                                field="job.document") from None
    elif streamed_size(obj) != document.size:
        raise ProtocolError("job.document_size is not the size of the document sent",
                            code=ErrorCode.INVALID_FIELD, field="job.document_size")
    return EngineJob(job_id, text("name", None), document, text("sha256", _SHA_RE), copies,
                     release_id)
