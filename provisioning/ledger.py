"""The fleet ledger: one line for every flash and every provision a technician ran, on every device.

What a fleet manager asks after a site visit ("which readers run 1.1.0, who updated the door
at the loading bay, which ones refused?") is answered here, from an **append-only JSON Lines
file**, one entry a line (:class:`Entry`). Why a file and not the cloud: a technician flashes
readers in a plant room with no network, and the ledger must be written then, not later.

Writing (:func:`record`, :meth:`Ledger.append`):

* **One ``write`` of one whole line, under an exclusive ``flock``, then ``fsync``.** Several
  ``mfd flash`` runs (a technician with two terminals, a script per bench) append to the same
  file; the lock keeps their lines whole and in one order, and fsync puts each line on disk
  before the command reports the device, so a power cut loses at most the line being written.
* **A torn last line** (the power cut came during that write) is left as it is (append-only:
  nothing is ever rewritten); the next entry starts on a line of its own after it, and readers
  skip it with a warning (:meth:`Ledger.read`).
* **No secrets.** Entries carry a key's *id* (a hash of the public key), never a key; the
  free-form ``details`` refuse names that say secret (password, token, private key...), so a
  provisioning step cannot put broker credentials there by mistake.

The path: ``--ledger PATH``, else ``$MFD_LEDGER``, else ``$XDG_DATA_HOME/mfdkit/ledger.jsonl``
(``~/.local/share/mfdkit/ledger.jsonl`` when XDG_DATA_HOME is not set).
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from protocol.errors import MfdError

__all__ = ["ACTIONS", "RESULTS", "Entry", "Ledger", "LedgerError", "default_path",
           "record", "who"]

log = logging.getLogger(__name__)

ACTIONS: Final = ("flash", "provision")
RESULTS: Final = ("ok", "skipped", "refused", "rolled_back", "failed")
# A details name containing one of these is refused: the ledger is read by many, and kept.
_SECRET_WORDS: Final = ("password", "passwd", "secret", "token", "private", "psk", "pin",
                        "credential", "access_code", "key_pem", "pem")
_VERSION: Final = 1  # the entry format; a reader ignores fields it does not know


class LedgerError(MfdError):
    """The ledger cannot be written or read, or an entry is not one it keeps."""

    code = "ledger_error"


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the ledger.

    ``action``: ``flash`` or ``provision``. ``device``: what identifies the device, any of
    ``id`` (its device id, as the cloud knows it), ``port`` (where it was reached), ``serial``
    (its serial number), ``model``. ``result``: ``ok``, ``skipped``, ``refused``,
    ``rolled_back`` or ``failed``, with ``code`` (an error code of the docs) unless ``ok``.
    ``image_hash`` (hex), ``key_id`` (the signing key's id) and ``version`` name what was put
    on the device (``from_version``: what it ran before). ``slots``: the slot states the device
    reported after (slot, version, hash, active, confirmed, pending). ``who``: the OS user or
    ``--who``; ``when``: UTC, ISO 8601, filled in by :meth:`Ledger.append` when empty.
    ``details``: more facts, each a short string, number or boolean (never a secret).
    """

    action: str
    device: Mapping[str, str]
    result: str
    code: str | None = None
    message: str = ""
    image_hash: str | None = None
    key_id: str | None = None
    version: str | None = None
    from_version: str | None = None
    slots: tuple[Mapping[str, Any], ...] = ()
    who: str = ""
    when: str = ""
    details: Mapping[str, str | int | float | bool | None] = field(default_factory=dict)

    def check(self) -> None:
        if self.action not in ACTIONS:
            raise LedgerError(f"ledger: unknown action {self.action!r} (one of "
                              f"{', '.join(ACTIONS)})")
        if self.result not in RESULTS:
            raise LedgerError(f"ledger: unknown result {self.result!r} (one of "
                              f"{', '.join(RESULTS)})")
        if not self.device or not any(self.device.get(k) for k in ("id", "port", "serial")):
            raise LedgerError("ledger: an entry names its device by id, port or serial")
        for name, value in self.details.items():
            lowered = name.lower()
            if any(w in lowered for w in _SECRET_WORDS):
                raise LedgerError(f"ledger: detail {name!r} looks like a secret; the ledger "
                                  "keeps no secrets (record a key's id, not the key)")
            if not isinstance(value, str | int | float | bool | type(None)):
                raise LedgerError(f"ledger: detail {name!r} must be a string, number or "
                                  "boolean")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": _VERSION, "when": self.when, "who": self.who,
                               "action": self.action, "device": dict(self.device),
                               "result": self.result}
        for name in ("code", "image_hash", "key_id", "version", "from_version"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.message:
            out["message"] = self.message
        if self.slots:
            out["slots"] = [dict(s) for s in self.slots]
        if self.details:
            out["details"] = dict(self.details)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Entry:
        return cls(action=str(obj["action"]), device=dict(obj["device"]),
                   result=str(obj["result"]), code=obj.get("code"),
                   message=str(obj.get("message", "")), image_hash=obj.get("image_hash"),
                   key_id=obj.get("key_id"), version=obj.get("version"),
                   from_version=obj.get("from_version"),
                   slots=tuple(obj.get("slots", ())), who=str(obj.get("who", "")),
                   when=str(obj.get("when", "")), details=dict(obj.get("details", {})))


def who() -> str:
    """The OS user running the command (what ``--who`` overrides)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, no LOGNAME (a container)
        return f"uid {os.getuid()}"


def default_path() -> Path:
    env = os.environ.get("MFD_LEDGER")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mfdkit" / "ledger.jsonl"


class Ledger:
    """The ledger file at ``path`` (:func:`default_path` when None)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    def check_writable(self) -> None:
        """Raise :class:`LedgerError` now if entries could not be appended (called before a
        device is touched, so a flash is never done without its line)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))
        except OSError as exc:
            raise LedgerError(f"cannot write the ledger {self.path}: {exc.strerror}; give "
                              "another with --ledger PATH") from None

    def append(self, entry: Entry) -> Entry:
        """Check ``entry``, stamp ``when`` (and ``who``) when empty, and append it as one line,
        on disk when this returns. Returns the entry as written."""
        entry.check()
        stamped = Entry(**{**{f: getattr(entry, f) for f in Entry.__dataclass_fields__},
                           "when": entry.when or _now(), "who": entry.who or who()})
        line = (json.dumps(stamped.to_json(), ensure_ascii=False, sort_keys=True)
                + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as exc:
            raise LedgerError(f"cannot write the ledger {self.path}: {exc.strerror}; give "
                              "another with --ledger PATH") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A line torn by a power cut has no newline: start ours on a line of its own, so
            # one damaged entry never takes a good one with it.
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            view = memoryview(line)
            while view:  # one write on a local file; the loop is for a short one
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock
        return stamped

    def read(self) -> Iterator[Entry]:
        """Every entry in order; a damaged line (a torn last line after a power cut) is skipped
        with a warning naming its line number."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc.strerror}") from None
        with f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)  # not half a line being appended
            for n, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    yield Entry.from_json(json.loads(raw))
                except (ValueError, KeyError, TypeError, AttributeError):
                    log.warning("%s: line %d is damaged (%d bytes; a power cut during its "
                                "write?): skipped", self.path, n, len(raw))

    def for_device(self, device: str) -> list[Entry]:
        """Entries whose device's id, port, serial or model is ``device``."""
        return [e for e in self.read()
                if device in (e.device.get("id"), e.device.get("port"),
                              e.device.get("serial"), e.device.get("model"))]


def record(entry: Entry, path: str | Path | None = None) -> Entry:
    """Append ``entry`` to the ledger at ``path`` (the default ledger when None): what
    ``mfd flash`` and ``mfd provision`` call once per device. Raises :class:`LedgerError`."""
    return Ledger(path).append(entry)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
