"""Storage port of the reference cloud, and its SQLite adapter.

The service (cloud/service.py) speaks only to the :class:`Store` protocol. Every request the
service handles runs inside one ``transaction()``: the work and the stored answer of a mutating
request commit together or not at all, so a crash between them cannot do half of it, and a
repeat of the same request finds the answer instead of doing the work again.

Secrets never sit in clear: card numbers are stored as HMAC-SHA256 under the org's secret
(``card_hash``), session tokens as SHA-256 of the token.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from protocol.errors import ErrorCode, StoreError


@dataclass(frozen=True, slots=True)
class User:
    id: str
    org_id: str
    email: str
    display_name: str


@dataclass(frozen=True, slots=True)
class Session:
    device_id: str
    user_id: str
    expires_at: float
    ended: bool


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    owner_id: str
    name: str
    pages: int
    color: bool
    duplex: bool
    copies: int
    size: int
    sha256: str
    submitted_at: float
    source: str
    state: str  # HELD, RELEASING, PRINTED
    release_id: str | None
    device_id: str | None


class JobStateError(StoreError):
    """A job operation that the job's state does not allow (names the job)."""

    def __init__(self, message: str, code: ErrorCode, job_id: str) -> None:
        super().__init__(message, code=code.value)
        self.error_code = code
        self.job_id = job_id


class Store(Protocol):
    """What the cloud service needs from storage. All calls run inside ``transaction()``."""

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...
    def stored_reply(self, device_id: str, request_id: str) -> tuple[str, bytes] | None: ...
    def store_reply(self, device_id: str, request_id: str, kind: str, reply: bytes,
                    now: float) -> None: ...
    def device_org(self, device_id: str) -> str | None: ...
    def org_secret(self, org_id: str) -> bytes: ...
    def user_by_card(self, org_id: str, card_hash: str) -> User | None: ...
    def user_by_code(self, org_id: str, code_hash: str) -> User | None: ...
    def user(self, user_id: str) -> User | None: ...
    def create_session(self, token_hash: str, device_id: str, user_id: str,
                       expires_at: float) -> None: ...
    def session(self, token_hash: str) -> Session | None: ...
    def extend_session(self, token_hash: str, expires_at: float) -> None: ...
    def end_session(self, token_hash: str) -> None: ...
    def held_jobs(self, user_id: str, offset: int, limit: int) -> tuple[list[Job], int]: ...
    def jobs(self, job_ids: list[str]) -> list[Job]: ...
    def set_releasing(self, job_id: str, release_id: str, device_id: str, now: float) -> None: ...
    def create_release(self, release_id: str, device_id: str, user_id: str, now: float) -> None: ...
    def release_device(self, release_id: str) -> str | None: ...
    def document(self, job_id: str, offset: int, length: int) -> bytes: ...
    def set_printed(self, job_id: str, now: float) -> None: ...
    def set_held(self, job_id: str, now: float) -> None: ...
    def device_status(self, device_id: str) -> tuple[str, int] | None: ...
    def record_status(self, device_id: str, state: str, epoch: int, now: float) -> None: ...
    def audit(self, now: float, actor: str, action: str, subject: str,
              detail: str = "") -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS orgs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, secret BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id),
    email TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cards (
    org_id TEXT NOT NULL, card_hash TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users(id),
    added_at REAL NOT NULL, PRIMARY KEY (org_id, card_hash));
CREATE TABLE IF NOT EXISTS access_codes (
    org_id TEXT NOT NULL, code_hash TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (org_id, code_hash));
CREATE UNIQUE INDEX IF NOT EXISTS access_codes_user ON access_codes (user_id);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'unknown', epoch INTEGER NOT NULL DEFAULT -1,
    status_at REAL NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, device_id TEXT NOT NULL, user_id TEXT NOT NULL,
    expires_at REAL NOT NULL, ended INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner_id TEXT NOT NULL REFERENCES users(id), name TEXT NOT NULL,
    pages INTEGER NOT NULL, color INTEGER NOT NULL, duplex INTEGER NOT NULL,
    copies INTEGER NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
    submitted_at REAL NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL,
    release_id TEXT, device_id TEXT, updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_owner_state ON jobs (owner_id, state, submitted_at);
CREATE TABLE IF NOT EXISTS documents (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id), data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS releases (
    id TEXT PRIMARY KEY, device_id TEXT NOT NULL, user_id TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS replies (
    device_id TEXT NOT NULL, request_id TEXT NOT NULL, kind TEXT NOT NULL, reply BLOB NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (device_id, request_id));
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '');
"""

# SQL below is built only from these constants and "?" placeholders (hence the S608 noqa marks);
# every value travels as a bound parameter.
_JOB_COLS = ("id, owner_id, name, pages, color, duplex, copies, size, sha256, submitted_at, "
             "source, state, release_id, device_id")


def _job(row: tuple) -> Job:  # type: ignore[type-arg]
    return Job(row[0], row[1], row[2], row[3], bool(row[4]), bool(row[5]), row[6], row[7],
               row[8], row[9], row[10], row[11], row[12], row[13])


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class SqliteStore:
    """SQLite (WAL) store. One connection per thread; each transaction is ``BEGIN IMMEDIATE`` so
    two workers on one file serialise their writes instead of failing half-way."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        con = self._con()
        con.executescript(SCHEMA)

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        if url.startswith("sqlite:///"):
            return cls(url[len("sqlite:///"):])
        if url.startswith("sqlite://"):
            return cls(url[len("sqlite://"):] or ":memory:")
        raise StoreError(f"unsupported store URL {url!r}; use sqlite:///relative.db or "
                         "sqlite:////absolute/path.db",
                         code="config_invalid")

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.path, isolation_level=None, timeout=10,
                                      check_same_thread=False)
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open store {self.path}: {exc}") from exc
            self._local.con = con
            self._local.depth = 0
        return con

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        con = self._con()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        con.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield
        except BaseException:
            con.execute("ROLLBACK")
            raise
        else:
            con.execute("COMMIT")
        finally:
            self._local.depth = 0

    def _one(self, sql: str, *args: object) -> tuple | None:  # type: ignore[type-arg]
        row: tuple | None = self._con().execute(sql, args).fetchone()  # type: ignore[type-arg]
        return row

    def _exec(self, sql: str, *args: object) -> int:
        return self._con().execute(sql, args).rowcount

    # -- idempotency
    def stored_reply(self, device_id: str, request_id: str) -> tuple[str, bytes] | None:
        row = self._one("SELECT kind, reply FROM replies WHERE device_id=? AND request_id=?",
                        device_id, request_id)
        return (str(row[0]), bytes(row[1])) if row else None

    def store_reply(self, device_id: str, request_id: str, kind: str, reply: bytes,
                    now: float) -> None:
        self._exec("INSERT INTO replies VALUES (?,?,?,?,?)", device_id, request_id, kind, reply,
                   now)

    # -- directory
    def create_org(self, name: str, org_id: str | None = None) -> str:
        org_id = org_id or new_id("org")
        try:
            self._exec("INSERT INTO orgs VALUES (?,?,?)", org_id, name, secrets.token_bytes(32))
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"org {org_id} exists already") from exc
        return org_id

    def org_secret(self, org_id: str) -> bytes:
        row = self._one("SELECT secret FROM orgs WHERE id=?", org_id)
        if row is None:
            raise StoreError(f"no org {org_id}")
        return bytes(row[0])

    def add_user(self, org_id: str, email: str, display_name: str,
                 user_id: str | None = None) -> str:
        user_id = user_id or new_id("u")
        try:
            self._exec("INSERT INTO users VALUES (?,?,?,?)", user_id, org_id, email.lower(),
                       display_name)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"user {email} exists already or the org is unknown") from exc
        return user_id

    def user(self, user_id: str) -> User | None:
        row = self._one("SELECT id, org_id, email, display_name FROM users WHERE id=?", user_id)
        return User(*row) if row else None

    def user_by_email(self, email: str) -> User | None:
        row = self._one("SELECT id, org_id, email, display_name FROM users WHERE email=?",
                        email.lower())
        return User(*row) if row else None

    def users(self, org_id: str) -> list[User]:
        rows = self._con().execute(
            "SELECT id, org_id, email, display_name FROM users WHERE org_id=? ORDER BY email",
            (org_id,)).fetchall()
        return [User(*r) for r in rows]

    def add_card(self, org_id: str, card_hash: str, user_id: str, now: float) -> None:
        try:
            self._exec("INSERT INTO cards VALUES (?,?,?,?)", org_id, card_hash, user_id, now)
        except sqlite3.IntegrityError as exc:
            raise StoreError("that card is linked to a user already") from exc

    def user_by_card(self, org_id: str, card_hash: str) -> User | None:
        row = self._one(
            "SELECT u.id, u.org_id, u.email, u.display_name FROM cards c JOIN users u "
            "ON u.id = c.user_id WHERE c.org_id=? AND c.card_hash=?", org_id, card_hash)
        return User(*row) if row else None

    def set_access_code(self, org_id: str, code_hash: str, user_id: str) -> None:
        """A user has one access code; setting a new one replaces the old."""
        self._exec("DELETE FROM access_codes WHERE user_id=?", user_id)
        try:
            self._exec("INSERT INTO access_codes VALUES (?,?,?)", org_id, code_hash, user_id)
        except sqlite3.IntegrityError as exc:
            raise StoreError("that access code is taken; choose another") from exc

    def user_by_code(self, org_id: str, code_hash: str) -> User | None:
        row = self._one(
            "SELECT u.id, u.org_id, u.email, u.display_name FROM access_codes c JOIN users u "
            "ON u.id = c.user_id WHERE c.org_id=? AND c.code_hash=?", org_id, code_hash)
        return User(*row) if row else None

    def add_device(self, device_id: str, org_id: str, name: str) -> None:
        try:
            self._exec("INSERT INTO devices (id, org_id, name) VALUES (?,?,?)", device_id,
                       org_id, name)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"device {device_id} exists already or org {org_id} is unknown"
                             ) from exc

    def device_org(self, device_id: str) -> str | None:
        row = self._one("SELECT org_id FROM devices WHERE id=?", device_id)
        return str(row[0]) if row else None

    def device_status(self, device_id: str) -> tuple[str, int] | None:
        row = self._one("SELECT status, epoch FROM devices WHERE id=?", device_id)
        return (row[0], row[1]) if row else None

    def record_status(self, device_id: str, state: str, epoch: int, now: float) -> None:
        self._exec("UPDATE devices SET status=?, epoch=?, status_at=? WHERE id=?", state, epoch,
                   now, device_id)

    # -- sessions
    def create_session(self, token_hash: str, device_id: str, user_id: str,
                       expires_at: float) -> None:
        self._exec("INSERT INTO sessions VALUES (?,?,?,?,0)", token_hash, device_id, user_id,
                   expires_at)

    def session(self, token_hash: str) -> Session | None:
        row = self._one("SELECT device_id, user_id, expires_at, ended FROM sessions "
                        "WHERE token_hash=?", token_hash)
        return Session(row[0], row[1], row[2], bool(row[3])) if row else None

    def extend_session(self, token_hash: str, expires_at: float) -> None:
        self._exec("UPDATE sessions SET expires_at=? WHERE token_hash=?", expires_at, token_hash)

    def end_session(self, token_hash: str) -> None:
        self._exec("UPDATE sessions SET ended=1 WHERE token_hash=?", token_hash)

    # -- jobs
    def add_job(self, owner_id: str, name: str, data: bytes, sha256: str, *, pages: int,
                color: bool, duplex: bool, copies: int, source: str, submitted_at: float,
                job_id: str | None = None) -> str:
        job_id = job_id or new_id("j")
        self._exec(f"INSERT INTO jobs ({_JOB_COLS}, updated_at) VALUES "  # noqa: S608
                   "(?,?,?,?,?,?,?,?,?,?,?,'HELD',NULL,NULL,?)",
                   job_id, owner_id, name, pages, int(color), int(duplex), copies, len(data),
                   sha256, submitted_at, source, submitted_at)
        self._exec("INSERT INTO documents VALUES (?,?)", job_id, data)
        return job_id

    def held_jobs(self, user_id: str, offset: int, limit: int) -> tuple[list[Job], int]:
        con = self._con()
        rows = con.execute(
            f"SELECT {_JOB_COLS} FROM jobs WHERE owner_id=? AND state='HELD' "  # noqa: S608
            "ORDER BY submitted_at DESC, id LIMIT ? OFFSET ?", (user_id, limit, offset)).fetchall()
        total = con.execute("SELECT count(*) FROM jobs WHERE owner_id=? AND state='HELD'",
                            (user_id,)).fetchone()[0]
        return [_job(r) for r in rows], int(total)

    def all_jobs(self) -> list[Job]:
        rows = self._con().execute(
            f"SELECT {_JOB_COLS} FROM jobs ORDER BY submitted_at DESC").fetchall()  # noqa: S608
        return [_job(r) for r in rows]

    def jobs(self, job_ids: list[str]) -> list[Job]:
        marks = ",".join("?" * len(job_ids))
        rows = self._con().execute(f"SELECT {_JOB_COLS} FROM jobs WHERE id IN ({marks})",  # noqa: S608
                                   job_ids).fetchall()
        return [_job(r) for r in rows]

    def create_release(self, release_id: str, device_id: str, user_id: str, now: float) -> None:
        self._exec("INSERT INTO releases VALUES (?,?,?,?)", release_id, device_id, user_id, now)

    def release_device(self, release_id: str) -> str | None:
        row = self._one("SELECT device_id FROM releases WHERE id=?", release_id)
        return str(row[0]) if row else None

    def set_releasing(self, job_id: str, release_id: str, device_id: str, now: float) -> None:
        if not self._exec("UPDATE jobs SET state='RELEASING', release_id=?, device_id=?, "
                          "updated_at=? WHERE id=? AND state='HELD'",
                          release_id, device_id, now, job_id):
            raise JobStateError(f"job {job_id} is not held", ErrorCode.JOB_NOT_HELD, job_id)

    def set_printed(self, job_id: str, now: float) -> None:
        self._exec("UPDATE jobs SET state='PRINTED', updated_at=? WHERE id=?", now, job_id)

    def set_held(self, job_id: str, now: float) -> None:
        self._exec("UPDATE jobs SET state='HELD', release_id=NULL, device_id=NULL, updated_at=? "
                   "WHERE id=?", now, job_id)

    def document(self, job_id: str, offset: int, length: int) -> bytes:
        # substr() is 1-based; reading a slice keeps a large document out of memory.
        row = self._one("SELECT substr(data, ?, ?) FROM documents WHERE job_id=?",
                        offset + 1, length, job_id)
        if row is None:
            raise JobStateError(f"job {job_id} has no document", ErrorCode.JOB_NOT_FOUND, job_id)
        return bytes(row[0])

    # -- audit
    def audit(self, now: float, actor: str, action: str, subject: str, detail: str = "") -> None:
        self._exec("INSERT INTO audit (at, actor, action, subject, detail) VALUES (?,?,?,?,?)",
                   now, actor, action, subject, detail)

    def audit_log(self, limit: int = 100) -> list[tuple[float, str, str, str, str]]:
        rows = self._con().execute(
            "SELECT at, actor, action, subject, detail FROM audit ORDER BY id DESC LIMIT ?",
            (limit,)).fetchall()
        return [tuple(r) for r in rows]


def now() -> float:
    return time.time()
