"""The device's release journal: what it was given to print and what became of it, on disk.

Theory of operation
-------------------
The cloud moves a released job to RELEASING and waits for the device to say PRINTED or FAILED.
Between those two words the device can lose power at any instant, and the only thing that
survives is this file. So every step that matters is committed here *before* it takes effect:

* ``RECEIVED``  the app was given the job to print (one row per (release_id, job_id); the row's
  request ids for the ``jobs.printed`` / ``jobs.failed`` reports are drawn now and never change,
  so a report repeated after a crash gets the cloud's stored answer instead of a second effect);
* ``FETCHED``   the document is here and matches its SHA-256;
* ``HANDED``    written *before* the engine is given the job, with the engine id it will carry.
  This is the step that prevents double printing: :meth:`Journal.hand_over` is a guarded
  transition, so a redelivered release, a repeated tap or a restarted app can never hand the same
  (release_id, job_id) to the engine twice;
* ``PRINTED`` / ``FAILED``  the engine's outcome (or a failure before hand-over);
* ``CONFIRMED`` the cloud acknowledged the report (or gave a final answer that repeating would
  only repeat).

On start-up the app reconciles every row that is not CONFIRMED (reconcile.py): a row before
HANDED was never printed, so the job goes back to HELD; a HANDED row is asked of the engine,
which keeps its own record of what it printed.

Durability: WAL with ``synchronous=FULL``. In WAL mode ``NORMAL`` only syncs at checkpoints, so a
power cut can silently drop the last commits — and a lost HANDED row is exactly the case this
file exists for (the device would not know to ask the engine, and the job would sit RELEASING or
be printed twice). ``FULL`` syncs the WAL on every commit (~0.3 ms on an idle development SSD,
a few ms on a busy one), so steps that happen together share one commit (:meth:`Journal.batch`:
a release's RECEIVED rows, a group of hand-overs, outcomes that piled up).

A journal that cannot be read is never papered over: :class:`JournalError` (code
``journal_unreadable``) tells the technician what to do, and the device does not release until
they have (printing without a journal would be printing blind).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from protocol import messages as m
from protocol.errors import MfdError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: CONFIRMED rows are kept this long (diagnostics, and a redelivery long after the fact still
#: finds its row), then dropped by :meth:`Journal.purge`.
RETENTION_S = 30 * 24 * 3600


class JournalState(StrEnum):
    RECEIVED = "RECEIVED"
    FETCHED = "FETCHED"
    HANDED = "HANDED"
    PRINTED = "PRINTED"
    FAILED = "FAILED"
    CONFIRMED = "CONFIRMED"


S = JournalState
# The whole life of a row, as data. FAILED is reachable from every state before the engine's
# outcome: a failure before hand-over (engine fault, bad checksum, fetch error) is a failure too.
TRANSITIONS: dict[JournalState, frozenset[JournalState]] = {
    S.RECEIVED: frozenset({S.FETCHED, S.FAILED}),
    S.FETCHED: frozenset({S.HANDED, S.FAILED}),
    S.HANDED: frozenset({S.PRINTED, S.FAILED}),
    S.PRINTED: frozenset({S.CONFIRMED}),
    S.FAILED: frozenset({S.CONFIRMED}),
    S.CONFIRMED: frozenset(),
}
#: The column stamped when a row enters each state.
_STAMPS = {S.RECEIVED: "received_at", S.FETCHED: "fetched_at", S.HANDED: "handed_at",
           S.PRINTED: "done_at", S.FAILED: "done_at", S.CONFIRMED: "confirmed_at"}

TECHNICIAN_HELP = (
    "This device will not release jobs until it is resolved. Technician: run "
    "`python -m device_app.printing.journal show {path}` to see what can still be read; "
    "then `python -m device_app.printing.journal set-aside {path}` (keeps the file for "
    "diagnosis, the next start creates an empty journal) and, in the cloud admin, check jobs "
    "left RELEASING on this device against the engine's printed log before putting them back "
    "to HELD."
)


class JournalError(MfdError):
    """The journal cannot be read or written; the device must not release."""

    code = "journal_unreadable"


class IllegalTransition(JournalError):
    """A step the table does not allow (a bug, or a repeat that must not take effect)."""

    code = "journal_transition"


class AlreadyHanded(IllegalTransition):
    """A (release_id, job_id) past hand-over (handed, finished or failed) was about to be
    handed to the engine again. Never print it: this is the double-print guard firing."""

    code = "already_handed"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    release_id: str
    job_id: str
    name: str
    state: JournalState
    sha256: str
    size: int
    copies: int
    #: The engine's id for this hand-over (protocol.engine.engine_id), once HANDED.
    engine_id: str
    #: The request ids of the two possible reports, drawn when the row was created.
    printed_request_id: str
    failed_request_id: str
    #: Why it failed (engine or device words), or what the cloud answered at confirmation.
    detail: str
    #: "printed" / "failed" once the outcome is known (kept after CONFIRMED).
    result: str
    answer: str
    received_at: float
    fetched_at: float | None
    handed_at: float | None
    done_at: float | None
    confirmed_at: float | None

    @property
    def key(self) -> tuple[str, str]:
        return self.release_id, self.job_id

    def report(self) -> m.JobPrinted | m.JobFailed:
        """The report the cloud is owed for this row, with its journaled request id."""
        if self.result == "printed":
            return m.JobPrinted(request_id=self.printed_request_id, release_id=self.release_id,
                                job_id=self.job_id)
        if self.result != "failed":
            raise IllegalTransition(f"job {self.job_id} of {self.release_id} has no outcome yet "
                                    f"({self.state})")
        return m.JobFailed(request_id=self.failed_request_id, release_id=self.release_id,
                           job_id=self.job_id, reason=self.detail[:200])


_COLUMNS = ("release_id, job_id, name, state, sha256, size, copies, engine_id, "
            "printed_request_id, failed_request_id, detail, result, answer, received_at, "
            "fetched_at, handed_at, done_at, confirmed_at")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    release_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    copies INTEGER NOT NULL DEFAULT 1,
    engine_id TEXT NOT NULL DEFAULT '',
    printed_request_id TEXT NOT NULL UNIQUE,
    failed_request_id TEXT NOT NULL UNIQUE,
    detail TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '',
    answer TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL,
    fetched_at REAL,
    handed_at REAL,
    done_at REAL,
    confirmed_at REAL,
    PRIMARY KEY (release_id, job_id)
);
CREATE INDEX IF NOT EXISTS journal_open ON journal (state) WHERE state != 'CONFIRMED';
"""


def new_request_id() -> str:
    return "j" + secrets.token_hex(12)


class Journal:
    """One SQLite file (or memory, for hosts that accept losing crash safety). Thread-safe: the
    printer thread writes, the start-up reconciliation and the app's report wiring read."""

    def __init__(self, conn: sqlite3.Connection, path: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = conn
        self.path = path
        self.clock = clock
        self._lock = threading.RLock()
        self._depth = 0  # transactions open (batch nesting)

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | os.PathLike[str], *,
             clock: Callable[[], float] = time.time) -> Journal:
        """Open (or create) the journal at ``path``; :class:`JournalError` if it is unreadable,
        damaged or from a newer version of the app."""
        p = os.fspath(path)
        try:
            Path(p).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False,
                                   timeout=5.0)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the release journal {p}: {exc}. "
                               + TECHNICIAN_HELP.format(path=p)) from exc
        try:
            cls._prepare(conn, p)
        except JournalError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise JournalError(f"the release journal {p} is unreadable ({exc}). "
                               + TECHNICIAN_HELP.format(path=p)) from exc
        return cls(conn, p, clock=clock)

    @classmethod
    def memory(cls, *, clock: Callable[[], float] = time.time) -> Journal:
        """A journal that dies with the process: double hand-over is still refused, but nothing
        survives a crash. For tests and hosts without a writable disk."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        cls._prepare(conn, ":memory:")
        return cls(conn, ":memory:", clock=clock)

    @staticmethod
    def _prepare(conn: sqlite3.Connection, path: str) -> None:
        # The cheap checks first: a file that is not SQLite fails here, a damaged one in
        # quick_check (which reads every page: the journal is small, so this costs
        # milliseconds at start-up, and catches the torn file before it is trusted).
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if path != ":memory:" and str(mode).lower() != "wal":
            raise JournalError(f"the release journal {path} cannot use write-ahead logging "
                               f"(got {mode}); is the directory read-only? "
                               + TECHNICIAN_HELP.format(path=path))
        conn.execute("PRAGMA synchronous=FULL")
        check = conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            problems = "; ".join(str(r[0]) for r in check[:3])
            raise JournalError(f"the release journal {path} is damaged ({problems}). "
                               + TECHNICIAN_HELP.format(path=path))
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(f"the release journal {path} was written by a newer app "
                               f"(schema {version}, this app knows {SCHEMA_VERSION}); "
                               "install that version again or " + TECHNICIAN_HELP.format(
                                   path=path))
        if version == 0:
            tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
            if tables:
                raise JournalError(f"{path} holds tables but is not a release journal. "
                                   + TECHNICIAN_HELP.format(path=path))
            # One transaction: a power cut mid-creation leaves an empty file, never tables
            # without a version (which the next start would refuse as foreign).
            conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------ plumbing

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # Re-entrant: inside :meth:`batch` a step joins the open transaction (and one that is
        # refused, e.g. IllegalTransition, has written nothing, so the batch goes on).
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._depth = 1
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                finally:
                    self._depth = 0
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise JournalError(f"the release journal {self.path} could not be written "
                                   f"({exc}). " + TECHNICIAN_HELP.format(path=self.path)
                                   ) from exc

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Several steps in one commit (one fsync): for bookkeeping that arrives together, e.g.
        engine outcomes and cloud answers. Nothing in it is durable before the block ends."""
        with self._tx():
            yield

    def _row(self, db: sqlite3.Connection, release_id: str, job_id: str) -> JournalEntry | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM journal WHERE release_id=? AND job_id=?",  # noqa: S608
                         (release_id, job_id)).fetchone()
        return _entry(row) if row else None

    def _move(self, release_id: str, job_id: str, *steps: JournalState,
              **columns: str | float | None) -> JournalEntry:
        """Take the row through ``steps`` (each checked against the table) in one commit."""
        with self._tx() as db:
            entry = self._row(db, release_id, job_id)
            if entry is None:
                raise IllegalTransition(f"job {job_id} of {release_id} is not in the journal")
            state = entry.state
            if S.HANDED in steps and state not in (S.RECEIVED, S.FETCHED):
                raise AlreadyHanded(f"job {job_id} of {release_id} is {state}: past hand-over, "
                                    "it is never handed to the engine again")
            now = self.clock()
            values: dict[str, str | float | None] = {}
            for to in steps:
                if to not in TRANSITIONS[state]:
                    raise IllegalTransition(f"job {job_id} of {release_id} cannot go from "
                                            f"{state} to {to}")
                values[_STAMPS[to]] = now
                state = to
            values = {"state": state.value, **values, **columns}
            sets = ", ".join(f"{k}=?" for k in values)
            db.execute(f"UPDATE journal SET {sets} WHERE release_id=? AND job_id=?",  # noqa: S608
                       (*values.values(), release_id, job_id))
            moved = self._row(db, release_id, job_id)
            assert moved is not None
            return moved

    # ------------------------------------------------------------ the printer's steps

    def receive(self, release_id: str, job: m.ReleasedJob) -> tuple[JournalEntry, bool]:
        """Record that the app was given ``job`` of ``release_id`` to print. Returns the row and
        whether it is new; an existing row (a redelivered or repeated release) is returned as
        it is, and the caller must not print it again."""
        with self._tx() as db:
            existing = self._row(db, release_id, job.job_id)
            if existing is not None:
                return existing, False
            db.execute(
                "INSERT INTO journal (release_id, job_id, name, state, sha256, size, copies, "
                "printed_request_id, failed_request_id, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (release_id, job.job_id, job.name, S.RECEIVED.value, job.sha256, job.size,
                 job.copies, new_request_id(), new_request_id(), self.clock()))
            entry = self._row(db, release_id, job.job_id)
            assert entry is not None
            return entry, True

    def fetched(self, release_id: str, job_id: str) -> JournalEntry:
        return self._move(release_id, job_id, S.FETCHED)

    def hand_over(self, release_id: str, job_id: str, engine_id: str, *,
                  fetched: bool = False) -> JournalEntry:
        """Commit HANDED before the engine is given the job. :class:`AlreadyHanded` if this
        (release_id, job_id) got this far before: the caller must not submit it.

        ``fetched=True``: the document was fetched and checked just now, so FETCHED and HANDED
        go in one commit: one fsync saved per job, and nothing lost, since a crash between two
        separate commits would be reconciled exactly like one before FETCHED."""
        steps = (S.FETCHED, S.HANDED) if fetched else (S.HANDED,)
        return self._move(release_id, job_id, *steps, engine_id=engine_id)

    def printed(self, release_id: str, job_id: str, detail: str = "") -> JournalEntry:
        return self._move(release_id, job_id, S.PRINTED, result="printed", detail=detail)

    def failed(self, release_id: str, job_id: str, detail: str) -> JournalEntry:
        return self._move(release_id, job_id, S.FAILED, result="failed", detail=detail)

    def confirmed(self, release_id: str, job_id: str, answer: str = "ack") -> JournalEntry:
        """The cloud acknowledged the report (``answer`` = "ack"), or answered with a final
        error code that a repeat would only repeat."""
        return self._move(release_id, job_id, S.CONFIRMED, answer=answer[:200])

    # ------------------------------------------------------------ queries

    def get(self, release_id: str, job_id: str) -> JournalEntry | None:
        with self._lock:
            try:
                return self._row(self._db, release_id, job_id)
            except sqlite3.Error as exc:
                raise JournalError(f"the release journal {self.path} cannot be read ({exc}). "
                                   + TECHNICIAN_HELP.format(path=self.path)) from exc

    def unconfirmed(self) -> list[JournalEntry]:
        """Every row the cloud has not acknowledged yet, oldest first."""
        return self._select("WHERE state != 'CONFIRMED' ORDER BY received_at, rowid")

    def entries(self, limit: int = 1000) -> list[JournalEntry]:
        """The newest rows first (diagnostics)."""
        return self._select("ORDER BY received_at DESC, rowid DESC LIMIT ?", (limit,))

    def by_request(self, request_id: str) -> JournalEntry | None:
        rows = self._select("WHERE printed_request_id=? OR failed_request_id=?",
                            (request_id, request_id))
        return rows[0] if rows else None

    def _select(self, where: str, args: tuple[object, ...] = ()) -> list[JournalEntry]:
        with self._lock:
            try:
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM journal {where}",  # noqa: S608
                                        args).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"the release journal {self.path} cannot be read ({exc}). "
                                   + TECHNICIAN_HELP.format(path=self.path)) from exc
        return [_entry(r) for r in rows]

    def purge(self, older_than: float | None = None) -> int:
        """Drop CONFIRMED rows confirmed before ``older_than`` (default: the retention)."""
        cutoff = older_than if older_than is not None else self.clock() - RETENTION_S
        with self._tx() as db:
            return db.execute("DELETE FROM journal WHERE state='CONFIRMED' AND confirmed_at < ?",
                              (cutoff,)).rowcount


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    (release_id, job_id, name, state, sha256, size, copies, engine_id, prid, frid, detail,
     result, answer, received_at, fetched_at, handed_at, done_at, confirmed_at) = row
    return JournalEntry(
        str(release_id), str(job_id), str(name), JournalState(state), str(sha256), int(size),
        int(copies), str(engine_id), str(prid), str(frid), str(detail), str(result), str(answer),
        float(received_at), _opt(fetched_at), _opt(handed_at), _opt(done_at), _opt(confirmed_at))


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def set_aside(path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> Path:
    """Rename a journal (and its WAL and shared-memory files) out of the way, keeping it for
    diagnosis; the next start creates an empty journal. Returns the new name of the main file."""
    p = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(clock()))
    target = p.with_name(f"{p.name}.set-aside-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{p}{suffix}")
        if src.exists():
            src.rename(Path(f"{target}{suffix}"))
    return target


def main(argv: list[str] | None = None) -> int:
    """Technician's tool: ``show`` what a journal holds, ``set-aside`` a damaged one."""
    ap = argparse.ArgumentParser(prog="python -m device_app.printing.journal",
                                 description=main.__doc__)
    ap.add_argument("command", choices=("show", "set-aside"))
    ap.add_argument("path")
    args = ap.parse_args(argv)
    if args.command == "set-aside":
        print(f"journal kept as {set_aside(args.path)}; the next start creates a new one")
        return 0
    try:
        journal = Journal.open(args.path)
    except JournalError as exc:
        print(f"error [{exc.code}]: {exc}")
        return 2
    for e in journal.entries():
        print(f"{e.state:<9} {e.release_id}/{e.job_id}  {e.name!r}  engine={e.engine_id or '-'}"
              f"  {e.detail or e.answer}")
    journal.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
