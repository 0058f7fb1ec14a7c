"""Recordings of a reader's raw byte stream, with timing: for regression tests and field diagnosis.

A recording holds exactly what a reader sent on its wire, chunk by chunk, and when each chunk
arrived -- nothing decoded, nothing added. Replaying it (``replay:FILE``,
readers.record.replay) runs the bytes through the same codec, debouncer and adapter as the
live reader, so a misbehaving reader in the field can be captured once and reproduced on a
laptop or in a test.

**Recordings are sensitive files.** A reader's bytes *are* the card numbers of everyone who
tapped while it was recording, in clear (an EM4100 frame is the tag in ASCII hex). The
recorder creates its file with mode 0600 (owner only); keep recordings out of tickets, mail and
version control, and delete them when the diagnosis is done.

File format (version 1)
-----------------------
UTF-8 text, JSON Lines: one JSON object per line, ``\\n``-terminated.

Line 1 is the header::

    {"mfdkit_recording": 1, "scheme": "serial", "family": "em4100", "baud": 9600,
     "params": {"lockout": "2"}, "started": "2025-01-31T09:14:03.250+00:00",
     "reader": "front-door"}

``mfdkit_recording`` is the format version (this module reads 1 and refuses any other);
``scheme`` the reader backend (only ``serial`` can be replayed today); ``family`` and ``baud``
the serial settings; ``params`` the remaining reader spec parameters that affect decoding, as
the strings a spec would carry: ``lockout`` (the held-card window in seconds) and the family's
own options, e.g. ``{"lockout": "2", "term": "crlf", "base": "hex"}`` for a TWN4;
``started`` the wall-clock time (ISO 8601) at which time 0 was taken; ``reader`` (optional) the
reader id, to tell which wire it was. Unknown header keys are ignored, so a later release can
add information without a version bump; a change of meaning gets a new version number.

Every further line is one chunk, as the adapter read it from the port::

    {"t": 1.482, "hex": "0230413030313244363837343903"}

``t`` is the time in seconds since ``started`` (monotonic clock, so never decreasing from one
line to the next), ``hex`` the bytes in lower-case hex, at least one byte. Blank lines are
ignored. :func:`load_recording` checks all of this and names the first offending line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

from protocol.errors import ConfigError, StoreError

__all__ = ["FORMAT_VERSION", "Chunk", "Recorder", "Recording", "RecordingHeader",
           "header_for_spec", "load_recording"]

_log = logging.getLogger(__name__)

#: The version this module writes and the only one it reads.
FORMAT_VERSION = 1

_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})+")
_FILE_MODE = 0o600  # card numbers inside: owner only


@dataclass(frozen=True, slots=True)
class RecordingHeader:
    """What was recorded: the reader's settings, so a replay decodes as the live reader did.

    ``started`` is filled in by :class:`Recorder` when left ``None``; in a loaded recording it
    is always set.
    """

    scheme: str = "serial"
    family: str = "em4100"
    baud: int = 9600
    params: Mapping[str, str] = field(default_factory=dict)
    started: datetime | None = None
    reader: str | None = None

    def __post_init__(self) -> None:
        # Frozen means frozen: a shared header must not change under a running recorder.
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "mfdkit_recording": FORMAT_VERSION,
            "scheme": self.scheme,
            "family": self.family,
            "baud": self.baud,
            "params": dict(self.params),
            "started": self.started.isoformat(timespec="milliseconds") if self.started else None,
        }
        if self.reader is not None:
            obj["reader"] = self.reader
        return obj


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes as one read from the port returned them, ``t`` seconds after the start.

    ``repr`` shows only the length: the bytes are card numbers.
    """

    t: float
    data: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"Chunk(t={self.t:.3f}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class Recording:
    """A loaded recording: its header and its chunks in time order."""

    header: RecordingHeader
    chunks: tuple[Chunk, ...]
    path: str = ""

    @property
    def duration(self) -> float:
        """Time of the last chunk (0 for an empty recording)."""
        return self.chunks[-1].t if self.chunks else 0.0

    @property
    def total_bytes(self) -> int:
        return sum(len(c.data) for c in self.chunks)


def header_for_spec(spec: str, *, reader_id: str | None = None) -> RecordingHeader:
    """The header for recording the reader ``spec`` names (``serial:`` specs only).

    The spec is checked exactly as :func:`readers.spec.open_reader` checks it (a
    :class:`ConfigError` names the offending part). The lock-out is always written out, even
    when the spec leaves it at its default, so a replay decides "held or new tap" as the live
    reader did even if a later release changes the default.
    """
    from readers.spec import BACKENDS, non_negative_float, open_reader, parse_params, redact_spec

    scheme = spec.partition(":")[0].strip().lower()
    if scheme in BACKENDS and scheme != "serial":
        raise ConfigError(f"reader spec {redact_spec(spec)!r}: only serial readers can be "
                          f"recorded (a {scheme} reader has no raw byte stream to keep)")
    # Builds and validates (a missing or unknown scheme included); opens nothing.
    reader = open_reader(spec, reader_id=reader_id)
    reader = getattr(reader, "inner", reader)  # a pipeline= wrapper records its reader's bytes
    from readers.adapters.serial_reader import SPEC_PARAMS, SerialCardReader

    assert isinstance(reader, SerialCardReader)
    from readers.spec import _take

    query = _take(spec, spec.partition("?")[2], "pipeline")[1]
    params = parse_params(spec, query, tuple(SPEC_PARAMS), "serial")
    lockout = non_negative_float(params, "lockout", 2.0)
    return RecordingHeader(scheme="serial", family=reader.family, baud=reader.baud,
                           params={**reader.options, "lockout": f"{lockout:g}"},
                           reader=reader.reader_id)


class Recorder:
    """Writes a recording as it happens; :meth:`on_raw` fits ``SerialCardReader(on_raw=...)``.

    The file is created (or truncated) with mode 0600 at construction, the header written at
    once and every chunk flushed as it arrives, so a recording cut short by a crash or a
    pulled plug keeps everything up to the last chunk.

    ``t`` given to :meth:`on_raw` must come from the same clock as ``clock`` (both default to
    :func:`time.monotonic`, as does the serial adapter's). It is stored relative to the moment
    the recorder was created, which is the header's ``started``.

    Thread-safe: :meth:`on_raw` may be called from the reader thread while another thread calls
    :meth:`close`. It never raises into the reader: a write failure (disk full) is logged once,
    kept in :attr:`error`, and ends the recording while the reader carries on.
    """

    def __init__(self, path: str | os.PathLike[str], header: RecordingHeader, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._last_t = 0.0
        self.chunks = 0
        self.error: StoreError | None = None
        if header.started is None:
            header = replace(header, started=datetime.now(UTC))
        self.header = header
        self._t0 = clock()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
        except OSError as exc:
            raise ConfigError(f"cannot create recording {self.path}: {exc.strerror or exc}") \
                from exc
        try:
            # O_CREAT's mode does not apply to a file that already existed.
            os.fchmod(fd, _FILE_MODE)
            self._file = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"cannot create recording {self.path}: {exc.strerror or exc}") \
                from exc
        self._closed = False
        try:
            self._file.write(json.dumps(header.to_json(), separators=(",", ":")) + "\n")
            self._file.flush()
        except OSError as exc:
            with contextlib.suppress(OSError):  # the write's error is the one to report
                self._file.close()
            raise ConfigError(f"cannot write recording {self.path}: {exc.strerror or exc}") \
                from exc

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "recording"
        return f"Recorder({self.path!r}, {self.chunks} chunks, {state})"

    @property
    def closed(self) -> bool:
        return self._closed

    def on_raw(self, data: bytes, t: float) -> None:
        """Append one chunk read at monotonic time ``t``. Ignored after :meth:`close`."""
        if not data:
            return
        with self._lock:
            if self._closed:
                return  # the reader may outlive its recorder by a read or two
            # Never decreasing, so the file stays valid even if two threads race here.
            rel = max(self._last_t, t - self._t0)
            self._last_t = rel
            self._write({"t": round(rel, 6), "hex": bytes(data).hex()})
            if not self._closed:
                self.chunks += 1

    def close(self) -> None:
        """Finish the file. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._file.close()
            except OSError as exc:
                self._fail(exc)

    def _write(self, obj: dict[str, Any]) -> None:
        # Caller holds the lock.
        try:
            self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")
            self._file.flush()
        except OSError as exc:
            self._fail(exc)
            self._closed = True
            with contextlib.suppress(OSError):  # the write's error is the one to report
                self._file.close()

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            self.error = StoreError(
                f"recording {self.path} stopped after {self.chunks} chunks: "
                f"{exc.strerror or exc}", code="recording_failed")
            _log.error("%s", self.error)


def load_recording(path: str | os.PathLike[str]) -> Recording:
    """Read and check a recording. Raises :class:`ConfigError` naming the file and line."""
    name = os.fspath(path)
    try:
        raw = Path(name).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read recording {name}: {exc.strerror or exc}") from exc
    header: RecordingHeader | None = None
    chunks: list[Chunk] = []
    last_t = 0.0
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"recording {name} line {lineno}"
        obj = _parse_line(line, where)
        if header is None:
            header = _parse_header(obj, where)
            continue
        chunk = _parse_chunk(obj, where)
        if chunk.t < last_t:
            raise ConfigError(f"{where}: time t={chunk.t} goes back from t={last_t}; "
                              "chunks must be in time order")
        last_t = chunk.t
        chunks.append(chunk)
    if header is None:
        raise ConfigError(f"recording {name} line 1: the file is empty; expected the header "
                          '{"mfdkit_recording": 1, ...}')
    return Recording(header, tuple(chunks), name)


def _parse_line(line: bytes, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(line.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    except ValueError as exc:  # json.JSONDecodeError and _refuse_constant
        raise ConfigError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number this format allows")


def _parse_header(obj: dict[str, Any], where: str) -> RecordingHeader:
    if "mfdkit_recording" not in obj:
        raise ConfigError(f"{where}: not an mfdkit recording (the header's "
                          "'mfdkit_recording' field is missing)")
    version = obj["mfdkit_recording"]
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ConfigError(f"{where}: recording format version {version!r} is not supported "
                          f"(this mfdkit reads version {FORMAT_VERSION})")
    scheme = _str_field(obj, "scheme", where)
    family = _str_field(obj, "family", where)
    baud = obj.get("baud")
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise ConfigError(f"{where}: header field 'baud' must be a positive integer, "
                          f"got {baud!r}")
    params = obj.get("params", {})
    if not isinstance(params, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
        raise ConfigError(f"{where}: header field 'params' must be an object of strings, "
                          f'e.g. {{"lockout": "2"}}')
    started_text = _str_field(obj, "started", where)
    try:
        started = datetime.fromisoformat(started_text)
    except ValueError:
        raise ConfigError(f"{where}: header field 'started' is not an ISO 8601 time: "
                          f"{started_text!r}") from None
    reader = obj.get("reader")
    if reader is not None and not isinstance(reader, str):
        raise ConfigError(f"{where}: header field 'reader' must be a string")
    return RecordingHeader(scheme=scheme, family=family, baud=baud, params=params,
                           started=started, reader=reader)


def _str_field(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: header field {key!r} must be a non-empty string, "
                          f"got {value!r}")
    return value


def _parse_chunk(obj: dict[str, Any], where: str) -> Chunk:
    if "mfdkit_recording" in obj:
        raise ConfigError(f"{where}: a second header; one recording per file")
    t = obj.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
        raise ConfigError(f"{where}: chunk field 't' must be a number of seconds >= 0, "
                          f"got {t!r}")
    text = obj.get("hex")
    if not isinstance(text, str) or not _HEX_RE.fullmatch(text):
        # Not echoing the value: it is probably most of a card number.
        raise ConfigError(f"{where}: chunk field 'hex' must be an even number (at least 2) of "
                          "hex digits")
    return Chunk(float(t), bytes.fromhex(text))
