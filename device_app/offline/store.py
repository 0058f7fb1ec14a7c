"""Where offline mode keeps what it needs across restarts: one SQLite file beside the journal.

What is here, and what is not:

* the accepted bundle as the cloud signed it (body, signature, its seq): it is checked again
  against the cloud's key each time it is loaded, so a row changed on disk is refused, not used;
* the highest wall-clock time ever seen (a clock set back does not revive an expired bundle);
* the offline lockout (wrong codes/PINs, and until when code entry is locked);
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
import sqlite3
import threading
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

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, durable: bool = True) -> OfflineStore:
        """Open or create the store; a file that is not one (or damaged) is set aside and a
        fresh one made: offline mode starts again from the next bundle, nothing is lost that
        the cloud does not still have (except unreported events, which the log says).
        ``durable=False`` (tests that reopen the file many times) skips waiting for the disk
        at each commit: a power cut may then lose the last ones."""
        p = os.fspath(path)
        try:
            Path(p).parent.mkdir(parents=True, exist_ok=True)
            return cls(cls._connect(p, durable), p)
        except (sqlite3.Error, StoreError) as exc:
            aside = p + ".damaged"
            log.error("the offline store %s is unusable (%s); set aside as %s and started "
                      "afresh: offline events not yet reported in it are lost", p, exc, aside)
            try:
                os.replace(p, aside)
                return cls(cls._connect(p, durable), p)
            except (OSError, sqlite3.Error) as again:
                raise StoreError(f"cannot start the offline store {p} afresh: {again}") \
                    from exc
        except OSError as exc:
            raise StoreError(f"cannot open the offline store {p}: {exc}") from exc

    @classmethod
    def memory(cls) -> OfflineStore:
        return cls(cls._connect(":memory:"), ":memory:")

    @staticmethod
    def _connect(p: str, durable: bool = True) -> sqlite3.Connection:
        conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False, timeout=5.0)
        try:
            if p != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            # A printed job's event must survive a power cut: it is what stops it printing
            # again elsewhere once reported.
            conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=OFF")
            if conn.execute("PRAGMA quick_check").fetchall() != [("ok",)]:
                raise StoreError(f"{p} is damaged")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                if conn.execute("SELECT name FROM sqlite_master").fetchall():
                    raise StoreError(f"{p} holds tables but is not an offline store")
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
        """(times of the recent wrong codes/PINs, until when code entry is locked)."""
        raw = self._get("failures")
        try:
            times = tuple(float(t) for t in json.loads(raw)) if isinstance(raw, str) else ()
        except (ValueError, TypeError):
            times = ()
        until = self._get("locked_until")
        return times, float(until) if isinstance(until, int | float) else 0.0

    def save_lockout(self, failures: Iterable[float], locked_until: float) -> None:
        with self._tx() as db:
            self._put(db, "failures", json.dumps(list(failures)))
            self._put(db, "locked_until", locked_until)

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

    def _events(self, limit: int) -> list[tuple[int, int, m.OfflineEvent]]:
        out = []
        for row in self._read("SELECT id, seq, kind, at, user_id, job_id, detail, release_id "
                              "FROM events ORDER BY id LIMIT ?", (limit,)):
            try:
                event = m.validate(m.OfflineEvent(
                    kind=str(row[2]), at=float(row[3]),  # type: ignore[arg-type]
                    user_id=str(row[4]), job_id=str(row[5]), detail=str(row[6]),
                    release_id=str(row[7])))
            except (ProtocolError, TypeError, ValueError):
                log.warning("offline journal row %s is damaged; it is left out of the report",
                            row[0])
                continue
            if isinstance(row[0], int) and isinstance(row[1], int):
                out.append((row[0], row[1], event))
        return out

    def pending_report(self, new_id: str, limit: int = 500) -> PendingReport | None:
        """The report to send: the one under way (same request id, same events) if there is
        one, else the oldest ``limit`` events of one bundle under ``new_id``, its id kept
        before it is sent."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'report'").fetchone()
            under_way = _report_meta(row[0] if row else None)
        if under_way is not None:
            request_id, upto = under_way
            picked = [(i, s, e) for i, s, e in self._events(limit) if i <= upto]
            if picked:
                return PendingReport(request_id, picked[0][1],
                                     tuple(e for _, _, e in picked), upto)
            self._clear_report(upto)
        picked = self._events(limit)
        if not picked:
            return None
        seq = picked[0][1]
        picked = [p for p in picked if p[1] == seq]
        # Events of one bundle only, in order: stop at the first of another.
        upto = picked[-1][0]
        with self._tx() as db:
            self._put(db, "report", json.dumps({"id": new_id, "upto": upto}))
        return PendingReport(new_id, seq, tuple(e for _, _, e in picked), upto)

    def report_answered(self, request_id: str) -> None:
        """The cloud took the report: its events leave the journal."""
        with self._lock:
            raw = self._get("report")
            meta = _report_meta(raw)
            if meta is None or meta[0] != request_id:
                return
            self._clear_report(meta[1])

    def _clear_report(self, upto: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM events WHERE id <= ?", (upto,))
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


def _report_meta(raw: object) -> tuple[str, int] | None:
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
        request_id, upto = data["id"], data["upto"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(request_id, str) and isinstance(upto, int):
        return request_id, upto
    return None
