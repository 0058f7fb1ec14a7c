"""The queries of the copier-facing service and of administration: stored answers, orgs, users,
cards and codes, guessing and throttles, devices and their status, sessions, jobs, audit.

Written once for both backends with ``?`` placeholders (cloud/storage/sql_base.py). Every state
change is a guarded ``UPDATE ... WHERE state = ...`` whose row count says whether it won.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from cloud.storage.port import (
    ACTING_ADMIN,
    ConflictError,
    FirstPage,
    Job,
    JobStateError,
    OrgSettings,
    Session,
    User,
    new_id,
)
from cloud.storage.sql_base import SqlBase
from protocol.errors import ErrorCode, StoreError

# SQL below is built only from these constants and "?" placeholders (hence the S608 noqa marks);
# every value travels as a bound parameter.
_JOB_COLS = ("id, owner_id, name, pages, color, duplex, copies, size, sha256, submitted_at, "
             "source, state, release_id, device_id, expires_at, client_id")
_USER_COLS = "id, org_id, email, display_name, language, role"
#: Device ids per ``IN (...)`` list: well inside every backend's bound on parameters.
_STATUS_BATCH = 500


#: The org an audit subject or actor belongs to, by its kind (see CoreQueries.audit).
_ORG_OF = {
    "user": "SELECT org_id FROM users WHERE id=?",
    "email": "SELECT org_id FROM users WHERE email=?",
    "device": "SELECT org_id FROM devices WHERE id=?",
    "technician": "SELECT org_id FROM technicians WHERE id=?",
    "client": "SELECT org_id FROM client_installs WHERE id=?",
    "installer": "SELECT org_id FROM installer_tokens WHERE id=?",
    "invitation": "SELECT org_id FROM invitations WHERE id=?",
    "queue": "SELECT org_id FROM print_queues WHERE id=?",
    # A job is its owner's, or (waiting for sign-in) its client's.
    "job": "SELECT COALESCE(u.org_id, ci.org_id) FROM jobs j "
           "LEFT JOIN users u ON u.id = j.owner_id "
           "LEFT JOIN client_installs ci ON ci.id = j.client_id WHERE j.id=?",
}


def _audit_org(who: str) -> tuple[str, str] | None:
    """The SQL expression (one parameter) for the org of ``who`` ("user:ID", "device:ID",
    "org:ID"...) and its parameter; None where the name says nothing of an org. The
    expression is NULL where no row is found; a lookup by email takes any one match."""
    kind, sep, ident = who.partition(":")
    if not sep or not ident:
        return None
    if kind == "org":
        return "CAST(? AS TEXT)", ident
    if kind == "user" and "@" in ident:  # lockouts name a user by email
        kind, ident = "email", ident.strip().lower()
    sql = _ORG_OF.get(kind)
    return None if sql is None else (f"({sql} LIMIT 1)", ident)


#: A first page and its counts in one statement (``CoreQueries.first_page``): one row per job
#: of the page after the four counts, or one row of counts and NULLs for an empty page.
_FIRST_PAGE = (
    "WITH u AS (SELECT id, org_id, lower(email) AS email FROM users WHERE id = ?), "  # noqa: S608
    "o AS (SELECT hold_hours FROM orgs WHERE id = (SELECT org_id FROM u)), "
    "c AS (SELECT "
    "(SELECT count(*) FROM jobs, u WHERE owner_id = u.id AND state = 'HELD' "
    "AND expires_at > ?) AS total, "
    "(SELECT hold_hours FROM o) AS hold, "
    "(SELECT count(*) FROM jobs, u WHERE owner_id = u.id AND state IN ('HELD', 'EXPIRED') "
    "AND expires_at > ? - (SELECT hold_hours FROM o) * 3600 AND expires_at <= ?) AS expired, "
    "(SELECT count(*) FROM jobs j JOIN client_installs ci ON ci.id = j.client_id, u "
    "WHERE j.owner_id IS NULL AND j.state = 'PENDING_AUTH' AND j.expires_at > ? "
    "AND ci.org_id = u.org_id AND ci.user_id IS NULL AND ci.revoked_at IS NULL "
    "AND ci.os_user <> '' "
    "AND (lower(ci.os_user) || '@' = substr(u.email, 1, length(ci.os_user) + 1) "
    "OR lower(ci.os_user) IN (SELECT lower(os_user) FROM client_installs "
    "WHERE user_id = ? AND os_user <> ''))) AS unlinked), "
    f"p AS (SELECT {_JOB_COLS} FROM jobs WHERE owner_id = ? AND state = 'HELD' "
    "AND expires_at > ? ORDER BY submitted_at DESC, id LIMIT ?) "
    "SELECT c.total, c.hold, c.expired, c.unlinked, p.* FROM c LEFT JOIN p ON 1 = 1 "
    "ORDER BY p.submitted_at DESC, p.id")


def _job(row: Sequence[Any]) -> Job:
    return Job(row[0], row[1], row[2], row[3], bool(row[4]), bool(row[5]), row[6], row[7],
               row[8], row[9], row[10], row[11], row[12], row[13], row[14], row[15])


#: A taken email, to someone who may not learn in which org it is taken.
_EMAIL_UNUSABLE = "this email cannot be used; choose another"


class CoreQueries(SqlBase):
    """The service's and the administrator's queries."""

    # -- idempotency
    def stored_reply(self, device_id: str, request_id: str) -> tuple[str, bytes] | None:
        row = self.query_one("SELECT kind, reply FROM replies WHERE device_id=? AND request_id=?",
                             device_id, request_id)
        return (str(row[0]), bytes(row[1])) if row else None

    def store_reply(self, device_id: str, request_id: str, kind: str, reply: bytes,
                    now: float) -> None:
        self.execute("INSERT INTO replies VALUES (?,?,?,?,?)", device_id, request_id, kind,
                     reply, now)

    def purge_replies(self, before: float) -> int:
        return self.execute("DELETE FROM replies WHERE created_at < ?", before)

    # -- orgs
    def create_org(self, name: str, org_id: str | None = None,
                   settings: OrgSettings | None = None) -> str:
        org_id = org_id or new_id("org")
        s = settings or OrgSettings()
        try:
            self.execute("INSERT INTO orgs (id, name, secret, hold_hours, card_policy, "
                         "release_changes, aop_pending) VALUES (?,?,?,?,?,?,?)", org_id, name,
                         secrets.token_bytes(32), s.hold_hours, s.card_policy,
                         int(s.release_changes), s.aop_pending)
        except ConflictError:
            raise StoreError(f"org {org_id} exists already") from None
        return org_id

    def orgs(self) -> list[tuple[str, str]]:
        return [(str(r[0]), str(r[1])) for r in self.query_all(
            "SELECT id, name FROM orgs ORDER BY name")]

    def org_secret(self, org_id: str) -> bytes:
        row = self.query_one("SELECT secret FROM orgs WHERE id=?", org_id)
        if row is None:
            raise StoreError(f"no org {org_id}")
        return bytes(row[0])

    def org_settings(self, org_id: str) -> OrgSettings:
        row = self.query_one("SELECT hold_hours, card_policy, release_changes, aop_pending "
                             "FROM orgs WHERE id=?", org_id)
        if row is None:
            raise StoreError(f"no org {org_id}")
        return OrgSettings(float(row[0]), str(row[1]), bool(row[2]), str(row[3]))

    def set_org_settings(self, org_id: str, settings: OrgSettings) -> None:
        names = [f.name for f in fields(OrgSettings)]
        values = [getattr(settings, n) for n in names]
        sets = ", ".join(f"{n}=?" for n in names)
        if not self.execute(f"UPDATE orgs SET {sets} WHERE id=?", *values, org_id):  # noqa: S608
            raise StoreError(f"no org {org_id}")

    # -- users
    def add_user(self, org_id: str, email: str, display_name: str,
                 user_id: str | None = None, language: str = "") -> str:
        user_id = user_id or new_id("u")
        # Whether an email is taken in another org is not for this org's administrator to
        # learn: only a user of the same org is named.
        taken = self.query_one("SELECT org_id FROM users WHERE email=?", email.strip().lower())
        if taken is not None:
            raise StoreError(f"user {email} exists already" if str(taken[0]) == org_id
                             else _EMAIL_UNUSABLE)
        try:
            self.execute("INSERT INTO users (id, org_id, email, display_name, language) "
                         "VALUES (?,?,?,?,?)",
                         user_id, org_id, email.strip().lower(), display_name, language)
        except ConflictError:
            raise StoreError(_EMAIL_UNUSABLE) from None  # taken meanwhile, or a user id
        return user_id

    def user(self, user_id: str) -> User | None:
        row = self.query_one(f"SELECT {_USER_COLS} FROM users WHERE id=?", user_id)  # noqa: S608
        return User(*row) if row else None

    def user_by_email(self, email: str) -> User | None:
        row = self.query_one(f"SELECT {_USER_COLS} FROM users WHERE email=?",  # noqa: S608
                             email.strip().lower())
        return User(*row) if row else None

    def users(self, org_id: str) -> list[User]:
        return [User(*r) for r in self.query_all(
            f"SELECT {_USER_COLS} FROM users WHERE org_id=? ORDER BY email",  # noqa: S608
            org_id)]

    def set_user_role(self, user_id: str, role: str) -> bool:
        """Whether the user exists (and now has ``role``)."""
        return self.execute("UPDATE users SET role=? WHERE id=?", role, user_id) > 0

    def set_user_language(self, user_id: str, language: str) -> bool:
        """Whether the user exists (and now has ``language``)."""
        return self.execute("UPDATE users SET language=? WHERE id=?", language, user_id) > 0

    def set_password_hash(self, user_id: str, password_hash: str | None) -> None:
        self.execute("UPDATE users SET password_hash=? WHERE id=?", password_hash, user_id)

    def password_hash(self, user_id: str) -> str | None:
        row = self.query_one("SELECT password_hash FROM users WHERE id=?", user_id)
        return str(row[0]) if row and row[0] is not None else None

    # -- cards and codes
    def add_card(self, org_id: str, card_hash: str, user_id: str, now: float) -> None:
        try:
            self.execute("INSERT INTO cards VALUES (?,?,?,?)", org_id, card_hash, user_id, now)
        except ConflictError:
            raise StoreError("that card is linked to a user already") from None

    def user_cards(self, user_id: str) -> list[tuple[str, float]]:
        """(card_hash, added_at), oldest first."""
        return [(str(r[0]), float(r[1])) for r in self.query_all(
            "SELECT card_hash, added_at FROM cards WHERE user_id=? ORDER BY added_at, card_hash",
            user_id)]

    def remove_card(self, org_id: str, card_hash: str) -> bool:
        return self.execute("DELETE FROM cards WHERE org_id=? AND card_hash=?", org_id,
                            card_hash) > 0

    def remove_cards_of(self, user_id: str) -> int:
        return self.execute("DELETE FROM cards WHERE user_id=?", user_id)

    def user_by_card(self, org_id: str, card_hash: str) -> User | None:
        row = self.query_one(
            "SELECT u.id, u.org_id, u.email, u.display_name, u.language, u.role FROM cards c "
            "JOIN users u "
            "ON u.id = c.user_id WHERE c.org_id=? AND c.card_hash=?", org_id, card_hash)
        return User(*row) if row else None

    def set_access_code(self, org_id: str, code_hash: str, user_id: str) -> None:
        """A user has one access code; setting a new one replaces the old."""
        self.execute("DELETE FROM access_codes WHERE user_id=?", user_id)
        try:
            self.execute("INSERT INTO access_codes VALUES (?,?,?)", org_id, code_hash, user_id)
        except ConflictError:
            raise StoreError("that access code is taken; choose another") from None

    def user_by_code(self, org_id: str, code_hash: str) -> User | None:
        row = self.query_one(
            "SELECT u.id, u.org_id, u.email, u.display_name, u.language, u.role "
            "FROM access_codes c JOIN users u "
            "ON u.id = c.user_id WHERE c.org_id=? AND c.code_hash=?", org_id, code_hash)
        return User(*row) if row else None

    # -- guessing: failures within a window, and locks; both survive a restart
    def record_failure(self, scope: str, subject: str, now: float, window: float) -> int:
        self.execute("DELETE FROM failures WHERE scope=? AND subject=? AND at <= ?", scope,
                     subject, now - window)
        self.execute("INSERT INTO failures VALUES (?,?,?)", scope, subject, now)
        row = self.query_one("SELECT count(*) FROM failures WHERE scope=? AND subject=?", scope,
                             subject)
        return int(row[0]) if row else 0

    def clear_failures(self, scope: str, subject: str) -> None:
        self.execute("DELETE FROM failures WHERE scope=? AND subject=?", scope, subject)

    def lock(self, scope: str, subject: str, until: float) -> None:
        if not self.execute("UPDATE lockouts SET until=? WHERE scope=? AND subject=?", until,
                            scope, subject):
            self.execute("INSERT INTO lockouts VALUES (?,?,?)", scope, subject, until)

    def locked_until(self, scope: str, subject: str, now: float) -> float | None:
        row = self.query_one("SELECT until FROM lockouts WHERE scope=? AND subject=? AND "
                             "until > ?", scope, subject, now)
        return float(row[0]) if row else None

    def unlock(self, scope: str, subject: str) -> None:
        self.execute("DELETE FROM lockouts WHERE scope=? AND subject=?", scope, subject)
        self.clear_failures(scope, subject)

    # -- card-lookup throttles (cloud/throttle.py): a GCRA bucket per device and per org
    def throttled(self, device_id: str, org_id: str,
                  now: float) -> tuple[str, str, float] | None:
        """The throttle in force on this device or its org, the longer one: (scope, subject,
        until); counted as one more refused lookup."""
        row = self.query_one(
            "SELECT scope, subject, until FROM throttles WHERE until > ? AND "
            "((scope='device' AND subject=?) OR (scope='org' AND subject=?)) "
            "ORDER BY until DESC LIMIT 1", now, device_id, org_id)
        if row is None:
            return None
        self.execute("UPDATE throttles SET refused = refused + 1 WHERE scope=? AND subject=?",
                     row[0], row[1])
        return str(row[0]), str(row[1]), float(row[2])

    def _throttle_row(self, scope: str, subject: str) -> None:
        # ON CONFLICT: two workers meeting a device's first unknown badge both succeed.
        self.execute("INSERT INTO throttles (scope, subject) VALUES (?,?) "
                     "ON CONFLICT (scope, subject) DO NOTHING", scope, subject)

    def spend_token(self, scope: str, subject: str, now: float, interval: float) -> float:
        """One token of the bucket; how far (seconds) its arrival time now runs ahead of
        ``now``. One upsert computes it from the stored value (or creates the bucket), so
        concurrent workers queue on the row and never both spend the same token; and every
        badge sign-in pays one statement for it, not three."""
        rows = self.query_all(
            "INSERT INTO throttles (scope, subject, tat) VALUES (?,?,?) "
            "ON CONFLICT (scope, subject) DO UPDATE SET tat = (CASE WHEN throttles.tat > ? "
            "THEN throttles.tat ELSE ? END) + ? RETURNING tat",
            scope, subject, now + interval, now, now, interval)
        return float(rows[0][0]) - now if rows else 0.0

    def start_throttle(self, scope: str, subject: str, now: float, until: float) -> bool:
        """Throttle until ``until``, with a full bucket then. False if one is in force already
        (another worker started it), so it is audited once."""
        # The scope's row may not exist yet: a flood of known badges spends the device's
        # "login" bucket, not its unknown-badge one.
        self._throttle_row(scope, subject)
        return self.execute("UPDATE throttles SET until=?, started_at=?, refused=0, tat=? "
                            "WHERE scope=? AND subject=? AND until <= ?", until, now, until,
                            scope, subject, now) > 0

    def lift_throttle(self, scope: str, subject: str, now: float) -> tuple[float, int] | None:
        """End a throttle in force: (started_at, refused lookups), or None if there is none."""
        row = self.query_one("SELECT started_at, refused FROM throttles WHERE scope=? AND "
                             "subject=? AND until > ?", scope, subject, now)
        if row is None:
            return None
        self.execute("UPDATE throttles SET until=0, tat=0, refused=0 WHERE scope=? AND "
                     "subject=?", scope, subject)
        if scope == "device":
            # Its badge sign-in bucket is full again too: a throttle begun by a flood of
            # known badges would otherwise start again at the next sign-in.
            self.execute("UPDATE throttles SET tat=0 WHERE scope='login' AND subject=?",
                         subject)
        return float(row[0]), int(row[1])

    def active_throttles(self, now: float) -> list[tuple[str, str, float, float, int]]:
        """(scope, subject, started_at, until, refused) of every throttle in force."""
        rows = self.query_all("SELECT scope, subject, started_at, until, refused FROM throttles "
                              "WHERE until > ? ORDER BY until, scope, subject", now)
        return [(str(a), str(b), float(c), float(d), int(e)) for a, b, c, d, e in rows]

    def unknown_card_to_audit(self, device_id: str, now: float, every: float) -> int:
        """Count one unknown badge; how many to write to the audit log now (0: wait, they
        are written with a later one). At most one row per device per ``every`` seconds."""
        self._throttle_row("device", device_id)
        self.execute("UPDATE throttles SET unaudited = unaudited + 1 WHERE scope='device' AND "
                     "subject=?", device_id)
        return self._take_unaudited(device_id, now, now - every)

    def _take_unaudited(self, device_id: str, now: float, before: float) -> int:
        row = self.query_one("SELECT unaudited FROM throttles WHERE scope='device' AND "
                             "subject=? AND audited_at <= ? AND unaudited > 0", device_id,
                             before)
        if row is None:
            return 0
        # Guarded like every change here: of two workers, one takes the count.
        taken = self.execute("UPDATE throttles SET unaudited = unaudited - ?, audited_at=? "
                             "WHERE scope='device' AND subject=? AND audited_at <= ? AND "
                             "unaudited >= ?", int(row[0]), now, device_id, before, int(row[0]))
        return int(row[0]) if taken else 0

    def unknown_cards_unaudited(self, now: float, every: float) -> list[tuple[str, int]]:
        """For housekeeping: (device, count) of unknown badges not yet written, of devices
        last written ``every`` seconds ago or more; taken, so they are written once."""
        before = now - every
        rows = self.query_all("SELECT subject FROM throttles WHERE scope='device' AND "
                              "unaudited > 0 AND audited_at <= ? ORDER BY subject LIMIT 500",
                              before)
        out = []
        for (device_id,) in rows:
            n = self._take_unaudited(str(device_id), now, before)
            if n:
                out.append((str(device_id), n))
        return out

    # -- devices
    def add_device(self, device_id: str, org_id: str, name: str) -> None:
        taken = self.query_one("SELECT org_id FROM devices WHERE id=?", device_id)
        if taken is not None:  # named only to its own org's administrators (as users above)
            raise StoreError(f"device {device_id} exists already" if str(taken[0]) == org_id
                             else "this device id cannot be used; choose another")
        try:
            self.execute("INSERT INTO devices (id, org_id, name) VALUES (?,?,?)", device_id,
                         org_id, name)
        except ConflictError:
            raise StoreError(f"device {device_id} cannot be added (taken meanwhile, or org "
                             f"{org_id} is unknown)") from None

    def devices(self, org_id: str | None = None) -> list[tuple[str, str, str, str]]:
        """(id, org_id, name, status)."""
        if org_id is None:
            rows = self.query_all("SELECT id, org_id, name, status FROM devices ORDER BY id")
        else:
            rows = self.query_all("SELECT id, org_id, name, status FROM devices WHERE org_id=? "
                                  "ORDER BY id", org_id)
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    def device_org(self, device_id: str) -> str | None:
        row = self.query_one("SELECT org_id FROM devices WHERE id=?", device_id)
        return str(row[0]) if row else None

    def device_status(self, device_id: str) -> tuple[str, int] | None:
        row = self.query_one("SELECT status, epoch FROM devices WHERE id=?", device_id)
        return (str(row[0]), int(row[1])) if row else None

    def device_statuses(self, device_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """(status, epoch) of each registered device among ``device_ids`` (a batch of statuses:
        one query per :data:`_STATUS_BATCH` devices, not one per device)."""
        known: dict[str, tuple[str, int]] = {}
        ids = list(dict.fromkeys(device_ids))
        for i in range(0, len(ids), _STATUS_BATCH):
            batch = ids[i:i + _STATUS_BATCH]
            marks = ",".join("?" * len(batch))
            for row in self.query_all(
                    f"SELECT id, status, epoch FROM devices WHERE id IN ({marks})",  # noqa: S608
                    *batch):
                known[str(row[0])] = (str(row[1]), int(row[2]))
        return known

    def record_status(self, device_id: str, state: str, epoch: int, now: float) -> None:
        """Set the device's status whatever it was (set-up, tests); statuses that come in
        are written with :meth:`supersede_status`."""
        self.execute("UPDATE devices SET status=?, epoch=?, status_at=? WHERE id=?", state, epoch,
                     now, device_id)

    def supersede_status(self, device_id: str, state: str, epoch: int, now: float) -> bool:
        """Write a status only if it supersedes the stored one and differs from it (the epoch
        rule, ``protocol.messages.status_supersedes``, minus the status already there), decided
        by the update itself: of two workers racing, an older status written last changes
        nothing. True if it was written."""
        return self.execute(
            "UPDATE devices SET status=?, epoch=?, status_at=? WHERE id=? AND (epoch < 0 OR "
            "epoch < ? OR (epoch = ? AND status <> ? AND ? = 'offline'))", state, epoch, now,
            device_id, epoch, epoch, state, state) > 0

    # -- sessions
    def create_session(self, token_hash: str, device_id: str, user_id: str,
                       expires_at: float) -> None:
        self.execute("INSERT INTO sessions VALUES (?,?,?,?,0)", token_hash, device_id, user_id,
                     expires_at)

    def session(self, token_hash: str) -> Session | None:
        row = self.query_one("SELECT device_id, user_id, expires_at, ended FROM sessions "
                             "WHERE token_hash=?", token_hash)
        return Session(row[0], row[1], row[2], bool(row[3])) if row else None

    def extend_session(self, token_hash: str, expires_at: float) -> None:
        self.execute("UPDATE sessions SET expires_at=? WHERE token_hash=?", expires_at,
                     token_hash)

    def end_session(self, token_hash: str) -> None:
        self.execute("UPDATE sessions SET ended=1 WHERE token_hash=?", token_hash)

    def purge_sessions(self, before: float) -> int:
        return self.execute("DELETE FROM sessions WHERE expires_at < ?", before)

    # -- jobs
    def add_job(self, owner_id: str | None, name: str, data: bytes, sha256: str, *, pages: int,
                color: bool, duplex: bool, copies: int, source: str, submitted_at: float,
                expires_at: float, state: str = "HELD", client_id: str | None = None,
                job_id: str | None = None) -> str:
        job_id = job_id or new_id("j")
        self.execute(f"INSERT INTO jobs ({_JOB_COLS}, updated_at) VALUES "  # noqa: S608
                     "(?,?,?,?,?,?,?,?,?,?,?,?,NULL,NULL,?,?,?)",
                     job_id, owner_id, name, pages, int(color), int(duplex), copies, len(data),
                     sha256, submitted_at, source, state, expires_at, client_id, submitted_at)
        self.execute("INSERT INTO documents VALUES (?,?)", job_id, data)
        if state == "HELD" and owner_id is not None:
            self.note_jobs_changed(owner_id, submitted_at)
        return job_id

    def held_jobs(self, user_id: str, offset: int, limit: int,
                  now: float) -> tuple[list[Job], int]:
        rows = self.query_all(
            f"SELECT {_JOB_COLS} FROM jobs WHERE owner_id=? AND state='HELD' "  # noqa: S608
            "AND expires_at > ? ORDER BY submitted_at DESC, id LIMIT ? OFFSET ?",
            user_id, now, limit, offset)
        total = self.query_one("SELECT count(*) FROM jobs WHERE owner_id=? AND state='HELD' "
                               "AND expires_at > ?", user_id, now)
        return [_job(r) for r in rows], int(total[0]) if total else 0

    def first_page(self, user_id: str, limit: int, now: float) -> FirstPage | None:
        """``held_jobs`` at offset 0, its total, and in the same statement the counts beside it;
        None for no user. Expired: the user's jobs that reached their expiry unreleased within
        the org's hold time (swept to EXPIRED already, or still HELD until the next sweep).
        Unlinked: jobs waiting for sign-in (PENDING_AUTH) from a computer that is not linked,
        in the user's org, sent under an OS login the user's own linked computers have used or
        that is the local part of the user's email: the user's, as far as the cloud can tell
        before the sign-in that links it (an OS login is the local part when the email starts
        with it and "@": a test both backends' SQL takes)."""
        rows = self.query_all(_FIRST_PAGE, user_id, now, now, now, now, user_id, user_id,
                              now, limit)
        if not rows or rows[0][1] is None:
            return None
        total, hold, expired, unlinked = (int(rows[0][0]), float(rows[0][1]),
                                          int(rows[0][2]), int(rows[0][3]))
        jobs = [_job(r[4:]) for r in rows if r[4] is not None]
        return FirstPage(jobs, total, hold, expired, unlinked)

    def all_jobs(self, state: str | None = None) -> list[Job]:
        if state is None:
            rows = self.query_all(f"SELECT {_JOB_COLS} FROM jobs "  # noqa: S608
                                  "ORDER BY submitted_at DESC")
        else:
            rows = self.query_all(f"SELECT {_JOB_COLS} FROM jobs WHERE state=? "  # noqa: S608
                                  "ORDER BY submitted_at DESC", state)
        return [_job(r) for r in rows]

    def jobs(self, job_ids: Sequence[str]) -> list[Job]:
        if not job_ids:
            return []
        marks = ",".join("?" * len(job_ids))
        rows = self.query_all(f"SELECT {_JOB_COLS} FROM jobs WHERE id IN ({marks})",  # noqa: S608
                              *job_ids)
        return [_job(r) for r in rows]

    def jobs_of_client(self, client_id: str, state: str) -> list[Job]:
        rows = self.query_all(f"SELECT {_JOB_COLS} FROM jobs WHERE client_id=? AND "  # noqa: S608
                              "state=? ORDER BY submitted_at", client_id, state)
        return [_job(r) for r in rows]

    def set_owner(self, job_id: str, owner_id: str, state: str, now: float) -> None:
        self.execute("UPDATE jobs SET owner_id=?, state=?, updated_at=? WHERE id=?", owner_id,
                     state, now, job_id)
        if state == "HELD":
            self.note_jobs_changed(owner_id, now)

    def create_release(self, release_id: str, device_id: str, user_id: str, now: float,
                       options: str = "") -> None:
        self.execute("INSERT INTO releases VALUES (?,?,?,?,?)", release_id, device_id, user_id,
                     now, options)

    def release_device(self, release_id: str) -> str | None:
        row = self.query_one("SELECT device_id FROM releases WHERE id=?", release_id)
        return str(row[0]) if row else None

    def release_options(self, release_id: str) -> str:
        row = self.query_one("SELECT options FROM releases WHERE id=?", release_id)
        return str(row[0]) if row else ""

    def set_releasing(self, job_id: str, release_id: str, device_id: str, now: float) -> None:
        if not self.execute("UPDATE jobs SET state='RELEASING', release_id=?, device_id=?, "
                            "updated_at=? WHERE id=? AND state='HELD'",
                            release_id, device_id, now, job_id):
            raise JobStateError(f"job {job_id} is not held", ErrorCode.JOB_NOT_HELD, job_id)

    def set_printed(self, job_id: str, now: float) -> bool:
        """RELEASING to PRINTED; False if the job was not RELEASING any more (another worker
        won), so the caller records the printing only once."""
        won = self.execute("UPDATE jobs SET state='PRINTED', updated_at=? WHERE id=? AND "
                           "state='RELEASING'", now, job_id) > 0
        self.execute("DELETE FROM documents WHERE job_id=?", job_id)
        return won

    def set_held(self, job_id: str, now: float) -> bool:
        """RELEASING back to HELD; False if the job was not RELEASING any more."""
        if not self.execute("UPDATE jobs SET state='HELD', release_id=NULL, device_id=NULL, "
                            "fetched_at=NULL, updated_at=? WHERE id=? AND state='RELEASING'",
                            now, job_id):
            return False
        self._note_owner_of(job_id, now)
        return True

    def _note_owner_of(self, job_id: str, now: float) -> None:
        row = self.query_one("SELECT owner_id FROM jobs WHERE id=?", job_id)
        if row is not None and row[0] is not None:
            self.note_jobs_changed(str(row[0]), now)

    def mark_fetched(self, job_id: str, now: float) -> None:
        self.execute("UPDATE jobs SET fetched_at=? WHERE id=? AND fetched_at IS NULL", now,
                     job_id)

    def lapse_unfetched_releases(self, before: float, now: float) -> list[str]:
        """RELEASING jobs whose document no device ever fetched, released before ``before``,
        go back to HELD. Safe: a device that never fetched a document cannot have printed it
        (a lost release answer, a device that died at once)."""
        rows = self.query_all("SELECT id FROM jobs WHERE state='RELEASING' AND fetched_at IS "
                              "NULL AND updated_at < ?", before)
        lapsed = []
        for (job_id,) in rows:
            if self.execute("UPDATE jobs SET state='HELD', release_id=NULL, device_id=NULL, "
                            "updated_at=? WHERE id=? AND state='RELEASING' AND fetched_at IS "
                            "NULL", now, job_id):
                lapsed.append(str(job_id))
                self._note_owner_of(str(job_id), now)
        return lapsed

    def delete_job(self, job_id: str, now: float, state: str = "DELETED") -> bool:
        """Held job to DELETED or EXPIRED; its document goes, its row stays for the audit."""
        if not self.execute("UPDATE jobs SET state=?, updated_at=? WHERE id=? AND "
                            "state IN ('HELD', 'PENDING_AUTH')", state, now, job_id):
            return False
        self.execute("DELETE FROM documents WHERE job_id=?", job_id)
        return True

    def expire_jobs(self, now: float, limit: int = 500) -> list[Job]:
        rows = self.query_all(f"SELECT {_JOB_COLS} FROM jobs WHERE state IN "  # noqa: S608
                              "('HELD', 'PENDING_AUTH') AND expires_at <= ? LIMIT ?", now, limit)
        expired = [_job(r) for r in rows]
        return [j for j in expired if self.delete_job(j.id, now, "EXPIRED")]

    def note_jobs_changed(self, user_id: str, now: float) -> None:
        self.execute("INSERT INTO job_notices (user_id, at) VALUES (?,?)", user_id, now)

    def take_job_notices(self, now: float, limit: int = 500) -> list[str]:
        """Take (delete) up to ``limit`` notices; the devices where their users are signed in
        now, each once. Workers racing for the same rows each get those they deleted."""
        rows = self.query_all("DELETE FROM job_notices WHERE id IN (SELECT id FROM job_notices "
                              "ORDER BY id LIMIT ?) RETURNING user_id", limit)
        users = sorted({str(r[0]) for r in rows})
        if not users:
            return []
        marks = ",".join("?" * len(users))
        found = self.query_all("SELECT DISTINCT device_id FROM sessions WHERE ended=0 AND "  # noqa: S608
                               f"expires_at > ? AND user_id IN ({marks}) ORDER BY device_id",
                               now, *users)
        return [str(r[0]) for r in found]

    def document(self, job_id: str, offset: int, length: int) -> bytes:
        row = self.query_one(self._document_slice_sql(), offset + 1, length, job_id)
        if row is None:
            raise JobStateError(f"job {job_id} has no document", ErrorCode.JOB_NOT_FOUND, job_id)
        return bytes(row[0])

    # -- audit
    def audit(self, now: float, actor: str, action: str, subject: str, detail: str = "",
              org_id: str | None = None) -> None:
        """One audit entry, in the org it concerns: ``org_id`` where the caller knows it, else
        the org of its subject ("user:ID", "device:ID", "job:ID"...) or, failing that, of its
        actor (a device refusing a card names no subject): so the call sites need not say.
        An administrator's action through the admin console names them (ACTING_ADMIN)."""
        if actor == "admin" and (acting := ACTING_ADMIN.get()):
            actor = f"admin:{acting}"
        if org_id is not None:
            org_sql, org_args = "?", [org_id]
        else:
            # The org found inside the INSERT: one round trip where a lookup first made two (a
            # release's and a logout's audit rows are in every badge at a copier).
            found = [org for org in (_audit_org(subject), _audit_org(actor)) if org is not None]
            org_sql = ("COALESCE(" + "".join(f"NULLIF({sql}, ''), " for sql, _ in found) + "'')"
                       if found else "''")  # SQLite's COALESCE wants two arguments at least
            org_args = [arg for _, arg in found]
        # The expressions are _ORG_OF's constants; what the caller gave is only parameters.
        self.execute("INSERT INTO audit (at, actor, action, subject, detail, org_id) "  # noqa: S608
                     f"VALUES (?,?,?,?,?,{org_sql})", now, actor, action, subject, detail,
                     *org_args)

    def audit_log(self, limit: int = 100) -> list[tuple[float, str, str, str, str]]:
        rows = self.query_all("SELECT at, actor, action, subject, detail FROM audit "
                              "ORDER BY id DESC LIMIT ?", limit)
        return [(float(a), str(b), str(c), str(d), str(e)) for a, b, c, d, e in rows]

