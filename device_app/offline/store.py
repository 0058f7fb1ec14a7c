"""Where offline mode keeps what it needs across restarts: one SQLite file beside the journal.

What is here, and what is not:

* the accepted bundle as the cloud signed it (body, signature, its seq): it is checked again
  against the cloud's key each time it is loaded, so a row changed on disk is refused, not used;
* the highest wall-clock time ever seen (a clock set back does not revive an expired bundle);
* the offline lockout (wrong codes/PINs, and the seconds code entry stays locked) and the
  unknown-badge bucket (seconds ahead, seconds of throttle left);
* pre-delivered documents as SEALED chunks, byte for byte what the cloud sent: never opened at
  rest; only a user who presents their card or code unwraps their key, in memory;
* the offline journal (sign-ins, refusals, prints, failures) and the request id of the report
  of it under way, so a report sent again after a crash is the same report;
* which jobs were released and printed offline, so a printed job never shows or prints again.

No card number, code, session token or key is ever written here. Thread-safe (one lock): the
app's loop, the printer's threads and the offline link's worker all use it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from device_app.offline.desk import PendingReport, StoredBundle
from protocol import messages as m
from protocol.errors import ProtocolError, StoreError

log = logging.getLogger(__name__)

FILE_NAME = "offline.db"
#: The high-water clock is written when it moves by at least this much.
HIGH_WATER_STEP_S = 1.0
#: Offline events kept unreported before refusals stop being journalled one by one.
MAX_EVENTS = 20_000
SCHEMA_VERSION = 1
#: How long a statement waits for a lock another process holds (the old one exiting).
BUSY_TIMEOUT_S = 5.0
#: A report's encoded size stays this far under the cloud's bound (the envelope, a margin).
REPORT_MARGIN = 2048
#: The smallest byte budget a report shrinks to after ``too_large`` (one event always goes).
MIN_REPORT_BYTES = 1024
#: SQLite's result codes that say the file is not (or no longer) a database.
_DAMAGE_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE chunks (job_id TEXT NOT NULL, offset INTEGER NOT NULL, total INTEGER NOT NULL,
                     data BLOB NOT NULL, PRIMARY KEY (job_id, offset));
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL,
                     kind TEXT NOT NULL, at REAL NOT NULL, user_id TEXT NOT NULL,
                     job_id TEXT NOT NULL, detail TEXT NOT NULL, release_id TEXT NOT NULL);
CREATE TABLE released (release_id TEXT NOT NULL, job_id TEXT NOT NULL, user_id TEXT NOT NULL,
                       state TEXT NOT NULL, PRIMARY KEY (release_id, job_id));
"""


def path_beside(journal_file: str | os.PathLike[str]) -> Path:
    """Where the offline store lives: next to the release journal."""
    return Path(journal_file).parent / FILE_NAME


class OfflineStore:
    """The SQLite adapter of the desk's store port (device_app/offline/desk.py ``Store``)."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._db = conn
        self.path = path
        self._lock = threading.RLock()
        #: The byte budget of a report: halved by each ``too_large`` and kept so for this
        #: process (a cloud's bound does not move between two reports).
        self._report_bytes = m.MAX_REQUEST_BYTES - REPORT_MARGIN
        #: Printed events the cloud refused as they are: kept (a later version may take them),
        #: not sent again by this process.
        self._parked: set[int] = set()

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, durable: bool = True) -> OfflineStore:
        """Open or create the store. A file that is damaged (quick_check fails, SQLite says
        corrupt or not a database) or not one of ours is set aside under a unique name with
        its -wal/-shm and a fresh one made: offline mode starts again from the next bundle
        (unreported events in it are lost, which the log says). Any other error (a lock the
        exiting old process still holds, a full disk) raises StoreError and keeps the file:
        the runner runs without offline mode and the next start tries again.
        ``durable=False`` (tests that reopen the file many times) skips waiting for the disk
        at each commit: a power cut may then lose the last ones."""
        p = os.fspath(path)
        try:
            Path(p).parent.mkdir(parents=True, exist_ok=True)
            return cls(cls._connect(p, durable), p)
        except (sqlite3.Error, StoreError) as exc:
            if not _damaged(exc):
                raise StoreError(f"cannot open the offline store {p} now: {exc}") from exc
            aside = f"{p}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
            log.error("the offline store %s is damaged (%s); set aside as %s and started "
                      "afresh: offline events not yet reported in it are lost", p, exc, aside)
            try:
                for suffix in ("-wal", "-shm", ""):
                    if os.path.exists(p + suffix):
                        os.replace(p + suffix, aside + suffix)
                return cls(cls._connect(p, durable), p)
            except (OSError, sqlite3.Error, StoreError) as again:
                raise StoreError(f"cannot start the offline store {p} afresh: {again}") \
                    from exc
        except OSError as exc:
            raise StoreError(f"cannot open the offline store {p}: {exc}") from exc

    @classmethod
    def memory(cls) -> OfflineStore:
        return cls(cls._connect(":memory:"), ":memory:")

    @staticmethod
    def _connect(p: str, durable: bool = True) -> sqlite3.Connection:
        conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_S)
        try:
            if p != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            # A printed job's event must survive a power cut: it is what stops it printing
            # again elsewhere once reported.
            conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=OFF")
            if conn.execute("PRAGMA quick_check").fetchall() != [("ok",)]:
                raise _Damaged(f"{p} is damaged")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                if conn.execute("SELECT name FROM sqlite_master").fetchall():
                    raise _Damaged(f"{p} holds tables but is not an offline store")
                conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION};"
                                   " COMMIT;")
            elif version != SCHEMA_VERSION:
                raise StoreError(f"{p} has schema {version}, this app knows {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"offline store: {exc}") from exc
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return list(self._db.execute(sql, args).fetchall())
            except sqlite3.Error as exc:
                raise StoreError(f"offline store: {exc}") from exc

    # ------------------------------------------------------------ meta

    def _get(self, key: str) -> object:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def _put(self, db: sqlite3.Connection, key: str, value: object) -> None:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def bundle(self) -> StoredBundle | None:
        body, sig, seq = self._get("body"), self._get("signature"), self._get("seq")
        if not isinstance(body, bytes) or not isinstance(sig, bytes) \
                or not isinstance(seq, int):
            return None
        return StoredBundle(body, sig, seq)

    def last_seq(self) -> int:
        """The highest seq ever accepted (kept apart from the bundle: a damaged bundle row must
        not let an older bundle in again)."""
        seq = self._get("last_seq")
        return seq if isinstance(seq, int) else 0

    def save_bundle(self, body: bytes, signature: bytes, seq: int) -> None:
        with self._tx() as db:
            self._put(db, "body", body)
            self._put(db, "signature", signature)
            self._put(db, "seq", seq)
            self._put(db, "last_seq", max(seq, self.last_seq()))

    def high_water(self) -> float:
        value = self._get("high_water")
        return float(value) if isinstance(value, int | float) else 0.0

    def raise_high_water(self, now: float) -> float:
        """The latest time seen, ``now`` counted. Written when it moves by a second or more:
        not a disk write for every chunk of a document printed offline, and a second is
        nothing beside the skew a bundle's checks allow (protocol.offline.SKEW_S)."""
        old = self.high_water()
        if now < old + HIGH_WATER_STEP_S:
            return max(old, now)
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'high_water'").fetchone()
            old = float(row[0]) if row and isinstance(row[0], int | float) else 0.0
            if now > old:
                self._put(db, "high_water", now)
            return max(old, now)

    def lockout(self) -> tuple[tuple[float, ...], float]:
        """(times of the recent wrong codes/PINs, seconds code entry stays locked)."""
        raw = self._get("failures")
        try:
            times = tuple(float(t) for t in json.loads(raw)) if isinstance(raw, str) else ()
        except (ValueError, TypeError):
            times = ()
        left = self._get("lock_left")
        return times, float(left) if isinstance(left, int | float) else 0.0

    def save_lockout(self, failures: Iterable[float], lock_left: float) -> None:
        with self._tx() as db:
            self._put(db, "failures", json.dumps(list(failures)))
            self._put(db, "lock_left", lock_left)

    def badges(self) -> tuple[float, float]:
        """The unknown-badge bucket: (seconds its arrival time is ahead, seconds of throttle
        left)."""
        ahead, left = self._get("badge_ahead"), self._get("badge_throttle_left")
        return (float(ahead) if isinstance(ahead, int | float) else 0.0,
                float(left) if isinstance(left, int | float) else 0.0)

    def save_badges(self, ahead: float, throttle_left: float) -> None:
        with self._tx() as db:
            self._put(db, "badge_ahead", ahead)
            self._put(db, "badge_throttle_left", throttle_left)

    def drop_bundle(self, keep: Iterable[str] = ()) -> None:
        """Offline mode ended (not allowed, or the bundle expired): the bundle, the sealed
        chunks (but those of the jobs in ``keep``: printing now) and the rows of jobs printed
        offline go. last_seq, the high water, the lockout, the badge bucket and the journal
        stay (the unreported events are still reported)."""
        kept = set(keep)
        with self._tx() as db:
            db.execute("DELETE FROM meta WHERE key IN ('body', 'signature', 'seq')")
            for (job_id,) in db.execute("SELECT DISTINCT job_id FROM chunks").fetchall():
                if job_id not in kept:
                    db.execute("DELETE FROM chunks WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM released WHERE state = 'printed'")

    # ------------------------------------------------------------ sealed chunks

    def put_chunk(self, job_id: str, offset: int, total: int, sealed: bytes) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO chunks (job_id, offset, total, data) "
                       "VALUES (?, ?, ?, ?)", (job_id, offset, total, sealed))

    def chunk(self, job_id: str, offset: int) -> tuple[int, bytes] | None:
        """(plaintext total, sealed bytes) of a stored chunk; None if it is not here or its
        row is not what this store writes."""
        rows = self._read("SELECT total, data FROM chunks WHERE job_id = ? AND offset = ?",
                          (job_id, offset))
        if not rows:
            return None
        total, data = rows[0]
        if not isinstance(total, int) or not isinstance(data, bytes):
            return None
        return total, data

    def chunk_sizes(self) -> dict[str, dict[int, tuple[object, int]]]:
        """For every stored job: offset -> (plaintext total, sealed length), read without the
        data."""
        out: dict[str, dict[int, tuple[object, int]]] = {}
        for job_id, offset, total, length in self._read(
                "SELECT job_id, offset, total, length(data) FROM chunks"):
            if isinstance(job_id, str) and isinstance(offset, int) \
                    and isinstance(length, int):
                out.setdefault(job_id, {})[offset] = (total, length)
        return out

    def stored_bytes(self) -> int:
        rows = self._read("SELECT coalesce(sum(length(data)), 0) FROM chunks")
        value = rows[0][0]
        return value if isinstance(value, int) else 0

    def drop_chunks(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM chunks WHERE job_id = ?", (job_id,))

    def keep_only(self, job_ids: set[str]) -> int:
        """Drop the chunks of every job not in ``job_ids`` (the bundle's, and those printing
        now) and the rows of jobs printed offline that the bundle no longer lists: the store
        stays bounded by the bundle. A job released offline and not printed yet keeps its
        row, so its outcome is still journalled when it comes. Returns the jobs whose chunks
        went."""
        stored = {r[0] for r in self._read("SELECT DISTINCT job_id FROM chunks")}
        gone = [j for j in stored if j not in job_ids]
        with self._tx() as db:
            for job_id in gone:
                db.execute("DELETE FROM chunks WHERE job_id = ?", (job_id,))
            for (job_id,) in db.execute("SELECT DISTINCT job_id FROM released WHERE "
                                        "state = 'printed'").fetchall():
                if job_id not in job_ids:
                    db.execute("DELETE FROM released WHERE job_id = ? AND state = 'printed'",
                               (job_id,))
        return len(gone)

    # ------------------------------------------------------------ offline releases

    def released(self) -> dict[str, str]:
        """job id -> "released" or "printed", for jobs released offline and not failed."""
        out: dict[str, str] = {}
        for job_id, state in self._read("SELECT job_id, state FROM released"):
            if isinstance(job_id, str) and isinstance(state, str):
                if out.get(job_id) != "printed":
                    out[job_id] = state
        return out

    def release_row(self, release_id: str, job_id: str) -> tuple[str, str] | None:
        """(user id, state) of a job of an offline release."""
        rows = self._read("SELECT user_id, state FROM released WHERE release_id = ? AND "
                          "job_id = ?", (release_id, job_id))
        if not rows or not all(isinstance(v, str) for v in rows[0]):
            return None
        return str(rows[0][0]), str(rows[0][1])

    def release(self, release_id: str, user_id: str, job_ids: Iterable[str]) -> None:
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO released (release_id, job_id, user_id, state)"
                           " VALUES (?, ?, ?, 'released')",
                           [(release_id, j, user_id) for j in job_ids])

    def outcome(self, release_id: str, job_id: str, ok: bool, event: m.OfflineEvent,
                seq: int) -> None:
        """A job of an offline release printed (it never shows again) or failed (it is offered
        again), journalled with its event, in one commit."""
        with self._tx() as db:
            if ok:
                db.execute("UPDATE released SET state = 'printed' WHERE release_id = ? AND "
                           "job_id = ?", (release_id, job_id))
            else:
                db.execute("DELETE FROM released WHERE release_id = ? AND job_id = ?",
                           (release_id, job_id))
            self._event(db, event, seq)

    # ------------------------------------------------------------ the offline journal

    def _event(self, db: sqlite3.Connection, event: m.OfflineEvent, seq: int) -> None:
        db.execute("INSERT INTO events (seq, kind, at, user_id, job_id, detail, release_id) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (seq, event.kind, event.at, event.user_id, event.job_id, event.detail,
                    event.release_id))

    def journal(self, event: m.OfflineEvent, seq: int) -> None:
        with self._tx() as db:
            if event.kind == "refused":
                # Refusals are counted by the cloud, not needed one by one: past the bound a
                # badge held to the reader all day cannot fill the disk. Sign-ins and prints
                # are always kept.
                count = db.execute("SELECT count(*) FROM events").fetchone()[0]
                if count >= MAX_EVENTS:
                    return
            self._event(db, event, seq)

    def events(self) -> list[m.OfflineEvent]:
        """Every event not reported yet, oldest first (for tests and a technician's look)."""
        return [e for _, _, e in self._events(10**9)]

    def _events(self, limit: int, ids: list[int] | None = None,
                damaged: list[int] | None = None) -> list[tuple[int, int, m.OfflineEvent]]:
        out = []
        if ids is None:
            rows = self._read("SELECT id, seq, kind, at, user_id, job_id, detail, release_id "
                              "FROM events ORDER BY id LIMIT ?", (limit,))
        else:
            wanted = set(ids)
            rows = [r for r in self._read(
                "SELECT id, seq, kind, at, user_id, job_id, detail, release_id FROM events "
                "WHERE id BETWEEN ? AND ? ORDER BY id", (min(ids, default=0),
                                                         max(ids, default=-1)))
                if r[0] in wanted]
        for row in rows:
            try:
                event = m.validate(m.OfflineEvent(
                    kind=str(row[2]), at=float(row[3]),  # type: ignore[arg-type]
                    user_id=str(row[4]), job_id=str(row[5]), detail=str(row[6]),
                    release_id=str(row[7])))
            except (ProtocolError, TypeError, ValueError):
                log.warning("offline journal row %s is damaged; it is left out of the report",
                            row[0])
                if damaged is not None and isinstance(row[0], int):
                    damaged.append(row[0])
                continue
            if isinstance(row[0], int) and isinstance(row[1], int):
                out.append((row[0], row[1], event))
        return out

    def unreported_prints(self) -> set[str]:
        """Jobs printed offline whose event the cloud has not taken yet."""
        return {str(r[0]) for r in self._read("SELECT DISTINCT job_id FROM events "
                                              "WHERE kind = 'printed'")}

    def pending_report(self, new_id: str, limit: int = 500) -> PendingReport | None:
        """The report to send: the one under way (same request id, same events) if there is
        one, else under ``new_id`` the oldest events of one bundle, at most ``limit``, added
        while the encoded report fits the byte budget (the cloud refuses a request past
        MAX_REQUEST_BYTES); its id and events are kept before it is sent."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'report'").fetchone()
            under_way = _report_meta(row[0] if row else None)
        if under_way is not None:
            request_id, ids = under_way
            picked = [(i, s, e) for i, s, e in self._events(10**9, ids)]
            if picked:
                return PendingReport(request_id, picked[0][1],
                                     tuple(e for _, _, e in picked), picked[-1][0])
            self._clear_report(ids)
        while True:
            damaged: list[int] = []
            candidates = [p for p in self._events(limit + len(self._parked), None, damaged)
                          if p[0] not in self._parked][:limit]
            if not damaged:
                break
            # Rows that can never be reported: they go, or they would hide those behind.
            with self._tx() as db:
                db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in damaged])
        if not candidates:
            return None
        seq = candidates[0][1]
        picked = []
        size = len(m.encode(m.OfflineReport(request_id=new_id, seq=seq,
                                            events=(candidates[0][2],))))
        picked.append(candidates[0])
        for cand in candidates[1:]:
            # Events of one bundle only, in order: stop at the first of another.
            if cand[1] != seq:
                break
            grown = size + len(m.encode(cand[2])) + 1  # the event and its comma
            if grown > self._report_bytes:
                break
            size = grown
            picked.append(cand)
        events = tuple(e for _, _, e in picked)
        while len(picked) > 1 and len(m.encode(m.OfflineReport(
                request_id=new_id, seq=seq, events=events))) > self._report_bytes:
            picked.pop()  # the estimate was short (it never is; the check is the rule)
            events = events[:-1]
        ids = [i for i, _, _ in picked]
        with self._tx() as db:
            self._put(db, "report", json.dumps({"id": new_id, "ids": ids}))
        return PendingReport(new_id, seq, events, ids[-1])

    def report_answered(self, request_id: str) -> None:
        """The cloud took the report: its events leave the journal."""
        with self._lock:
            meta = _report_meta(self._get("report"))
            if meta is None or meta[0] != request_id:
                return
            self._clear_report(meta[1])

    def report_refused(self, request_id: str, code: str) -> None:
        """The cloud refused the report as it is. ``too_large``: nothing was done; the next
        report carries fewer events under a new id. Anything else: its sign-ins, refusals and
        failures are dropped (they would be refused again), but a ``printed`` event is never
        dropped (it is what stops the job printing again): it is kept and not sent again by
        this process (a later version may take it)."""
        with self._lock:
            meta = _report_meta(self._get("report"))
            if meta is None or meta[0] != request_id:
                return
            ids = meta[1]
            if code == "too_large":
                self._report_bytes = max(self._report_bytes // 2, MIN_REPORT_BYTES)
                with self._tx() as db:
                    db.execute("DELETE FROM meta WHERE key = 'report'")
                return
            printed = {i for i, _, e in self._events(10**9, ids) if e.kind == "printed"}
            if printed:
                log.error("the print service refused %d printed job(s) of the offline report "
                          "(%s); they are kept here and not sent again until a restart",
                          len(printed), code)
            self._parked |= printed
            self._clear_report(ids)

    def _clear_report(self, ids: list[int]) -> None:
        # Every row up to the report's last one but the parked ones: the report's events and
        # any damaged row among them (left out of it, and never sent).
        with self._tx() as db:
            if ids:
                below = [r[0] for r in db.execute("SELECT id FROM events WHERE id <= ?",
                                                  (max(ids),)).fetchall()]
                db.executemany("DELETE FROM events WHERE id = ?",
                               [(i,) for i in below if i not in self._parked])
            db.execute("DELETE FROM meta WHERE key = 'report'")

    # ------------------------------------------------------------ tests and tools

    def raw_bytes(self) -> bytes:
        """Every byte of the store's file(s) (a test scans them for secrets)."""
        if self.path == ":memory:":
            with self._lock:
                return b"".join(line.encode() for line in self._db.iterdump())
        # The main file and its write-ahead log together hold every byte written.
        out = b""
        for suffix in ("", "-wal"):
            try:
                out += Path(self.path + suffix).read_bytes()
            except OSError:
                pass
        return out


def _report_meta(raw: object) -> tuple[str, list[int]] | None:
    """(request id, event ids) of the report under way."""
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
        request_id, ids = data["id"], data["ids"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(request_id, str) and isinstance(ids, list) \
            and all(isinstance(i, int) for i in ids):
        return request_id, ids
    return None


class _Damaged(StoreError):
    """The file is not (or no longer) an offline store: it is set aside."""


def _damaged(exc: BaseException) -> bool:
    if isinstance(exc, _Damaged):
        return True
    code = getattr(exc, "sqlite_errorcode", None)  # extended: the primary is its low byte
    return isinstance(exc, sqlite3.DatabaseError) and isinstance(code, int) \
        and code & 0xFF in _DAMAGE_CODES
