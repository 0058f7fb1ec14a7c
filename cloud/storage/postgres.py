"""The PostgreSQL backend (psycopg 3): for several cloud workers, on one host or many.

Connections
    One connection per thread, opened on first use, as in the SQLite backend: a cloud worker's
    handler thread owns its connection (threads hand off, never share). A connection the server
    dropped while it sat idle between requests (server restart, failover, an idle timeout) is
    noticed when the next transaction begins and replaced once; nothing of that transaction has
    run yet, so the retry is safe. A connection lost *during* a transaction is a
    :class:`StoreError` for that request, and the next transaction reconnects. A statement that
    commits by itself (a badge's sign-in, a session's use) is sent again on a new connection
    only where that cannot do it twice (``_run_alone``); otherwise the device is told busy.

Transactions
    ``transaction()`` is reentrant: only the outermost level sends BEGIN and COMMIT or ROLLBACK,
    inner levels join it, as in the SQLite backend. The connection runs in autocommit mode
    otherwise, so a statement outside ``transaction()`` commits by itself, again as in SQLite.

    The isolation level is PostgreSQL's default, READ COMMITTED, and that is enough: the store
    never decides a state change on what it read earlier. Every change is a guarded ``UPDATE ...
    WHERE state = ...``; under READ COMMITTED a second UPDATE of the same row waits for the first
    transaction and then re-checks its WHERE against the committed row, so the loser changes
    nothing and sees a row count of 0. Stored answers and other unique rows have primary keys; a
    second INSERT of the same key waits for the first and then fails with a unique violation
    (:class:`ConflictError`). SERIALIZABLE would add retries for no gain.

    Unlike SQLite, PostgreSQL aborts the whole transaction after any failed statement. The
    store's contract already says a ConflictError abandons the transaction; should a caller
    swallow one and carry on, the COMMIT would silently roll back, so the outermost level checks
    for that and raises instead of pretending the work was saved.

Durability
    Every commit waits for the disk (``synchronous_commit`` as the server has it, on by
    default), except a lazy transaction's (cloud/storage/durability.py: a badge sign-in), which
    begins with ``SET LOCAL synchronous_commit TO OFF`` in BEGIN's own round trip and is turned
    back on inside the transaction if something in it must last.

    A lazy transaction's BEGIN is sent with its first statement, not when it opens: one that
    runs nothing sends nothing, and a known badge's sign-in (``card_sign_in``) is then one
    statement that commits by itself, lazily (``set_config`` in the statement), in one round
    trip instead of four. Whatever the request does after it begins the transaction then.

SQL
    The shared queries use ``?`` placeholders; psycopg wants ``%s`` and reads every other ``%``
    as the start of one. Each SQL string is translated once (``?`` outside quotes becomes
    ``%s``, every ``%`` is doubled) and the result is cached. Python ``bool`` values are sent as
    integers, because the shared schema keeps flags in INTEGER columns (SQLite has no boolean
    type) and PostgreSQL does not cast boolean to integer on assignment.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import psycopg
from psycopg.adapt import Dumper
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from cloud.storage.port import Session, Technician, User
from cloud.storage.sign_in import (
    Budget,
    CardBudgets,
    CardSession,
    CardSignIn,
    NewSession,
    SessionInUse,
    UnknownCard,
    card_sign_in_steps,
    usable_here,
)
from cloud.storage.sql import SqlStore
from cloud.storage.sql_sign_in import CARD_LOOKUP, SignInQueries
from protocol.errors import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

#: Seconds to wait for the server when connecting, unless the URL sets ``connect_timeout``:
#: without a limit, an unreachable host hangs a worker for the OS's TCP timeout (minutes).
CONNECT_TIMEOUT = 10
#: How long a statement may wait for a lock, and run at all (ms), unless the URL's ``options``
#: set them. A cloud worker's lane acknowledges its requests in order (cloud/worker.py), so
#: one request stuck behind a row another session holds (an idle transaction of an admin's
#: tool, say) would hold every later acknowledgement of its broker connection, and after the
#: broker's Receive Maximum that worker would get nothing more while still answering pings.
#: Past these, the statement fails, the device is told ``busy`` and asks again. Well above
#: what any statement of ours takes; the schema upgrade waits without bound (it must).
LOCK_TIMEOUT_MS = 5000
STATEMENT_TIMEOUT_MS = 30000
#: TCP keep-alive on the connection (libpq): a database host gone from the network is noticed
#: in about 30 s instead of the kernel's default of minutes to hours.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
             "keepalives_count": 3, "tcp_user_timeout": 30000}
#: Workers starting together all upgrade the schema; concurrent ``CREATE TABLE IF NOT EXISTS``
#: of the same table can fail in PostgreSQL, and two would apply one step twice, so upgrades
#: queue behind this advisory lock.
SCHEMA_LOCK_KEY = 0x6D66646B  # "mfdk"
#: Named, not left to the server's default_transaction_isolation: the reasoning in the module
#: docstring is about READ COMMITTED, and under SERIALIZABLE racing workers would get
#: serialization failures instead of a clean "not held".
BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
#: A transaction whose commit need not wait for the disk (cloud/storage/durability.py): the
#: setting sent with BEGIN, in the same round trip (a query without parameters may hold several
#: statements), and LOCAL, so it ends with the transaction.
BEGIN_LAZY = f"{BEGIN}; SET LOCAL synchronous_commit TO OFF"
DURABLE = "SET LOCAL synchronous_commit TO ON"
#: The server's "I ended this connection" (admin shutdown, crash shutdown, idle session
#: timeout): read where a statement's answer was expected, it means the statement never ran.
ENDED_BY_SERVER = frozenset(("57P01", "57P02", "57P05"))


#: Words that make a statement more than a plain read: a write, a row lock (FOR UPDATE/SHARE),
#: a function with an effect. Where one appears anywhere, even in a quoted string, the statement
#: is not taken for a read: it only runs inside the transaction, as every statement did.
_NOT_A_READ = frozenset(("insert", "update", "delete", "merge", "for", "lock", "nextval",
                         "setval", "set_config", "pg_advisory_lock", "pg_advisory_xact_lock",
                         "pg_notify", "into"))


@functools.lru_cache(maxsize=1024)
def reads_only(sql: str) -> bool:
    """Whether ``sql`` only reads: a SELECT (or WITH ... SELECT) naming nothing of
    :data:`_NOT_A_READ`. Cautious by design: a read it does not recognise just stays in the
    transaction."""
    words = re.findall(r"[a-z_]+", sql.lower())
    return bool(words) and words[0] in ("select", "with") and _NOT_A_READ.isdisjoint(words)


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """``?`` placeholders to psycopg's ``%s``, and ``%`` escaped, outside quoted text.

    A ``?`` inside a string literal, a quoted identifier or a ``--`` comment is text, not a
    placeholder. ``%`` is doubled everywhere, because psycopg parses the whole string."""
    out: list[str] = []
    quote = ""  # the quote character we are inside, or "" outside quotes
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "%":
            out.append("%%")
        elif quote:
            out.append(ch)
            if ch == quote:  # a doubled quote ('it''s') closes and reopens: same result
                quote = ""
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


class _FlagDumper(Dumper):
    """A Python bool as an INTEGER 0/1, the shared schema's flags."""

    oid = psycopg.postgres.types["int4"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


#: A badge sign-in's writes in one statement (cloud/storage/sign_in.py): the token of the
#: budget, and only within budget the session and the audit row. The casts name the types of
#: the parameters PostgreSQL cannot infer from an INSERT ... SELECT.
_SIGN_IN = (
    "WITH t AS (INSERT INTO throttles (scope, subject, tat) VALUES (?,?,?) "
    "ON CONFLICT (scope, subject) DO UPDATE SET tat = (CASE WHEN throttles.tat > ? "
    "THEN throttles.tat ELSE ? END) + ? RETURNING tat), "
    "s AS (INSERT INTO sessions (token_hash, device_id, user_id, expires_at, ended) "
    "SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), "
    "CAST(? AS DOUBLE PRECISION), 0 FROM t WHERE t.tat - ? <= ?), "
    "a AS (INSERT INTO audit (at, actor, action, subject, detail, org_id) SELECT "
    "CAST(? AS DOUBLE PRECISION), CAST(? AS TEXT), 'login', CAST(? AS TEXT), CAST(? AS TEXT), "
    "CAST(? AS TEXT) FROM t WHERE t.tat - ? <= ?) "
    "SELECT tat FROM t")

#: A badge's whole lookup in one statement that commits by itself (card_sign_in): the throttle
#: in force (counted as one more refused lookup), the card's user or else the technician whose
#: badge it is; for a user's card _SIGN_IN's writes; for a card no one has, the unknown-badge
#: count and a token of the device's bucket (one upsert of the device's row: a statement may
#: change a row once) and, within the device's limit, of the org's. set_config(..., true) turns
#: synchronous_commit off for this statement's own transaction only: its commit need not wait
#: for the disk, as the lazy transaction it stands for (cloud/storage/durability.py).
#: Data-modifying WITH parts always run; ``lazy`` is read by the last SELECT, so it runs too.
_CARD_SIGN_IN = (
    # k: the badge lookup's own query (cloud/storage/sql_sign_in.py), a constant
    "WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true) AS lazy_commit), "  # noqa: S608
    f"k AS ({CARD_LOOKUP}), "
    "r AS (UPDATE throttles SET refused = throttles.refused + 1 FROM k "
    "WHERE throttles.scope = k.tscope AND throttles.subject = k.tsubject RETURNING 1), "
    # a user's card: the login token, then within budget the session and its audit row
    "t AS (INSERT INTO throttles (scope, subject, tat) SELECT CAST(? AS TEXT), "
    "CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION) FROM k "
    "WHERE k.tscope IS NULL AND k.uid IS NOT NULL "
    "ON CONFLICT (scope, subject) DO UPDATE SET tat = (CASE WHEN throttles.tat > ? "
    "THEN throttles.tat ELSE ? END) + ? RETURNING tat), "
    "s AS (INSERT INTO sessions (token_hash, device_id, user_id, expires_at, ended) "
    "SELECT CAST(? AS TEXT), CAST(? AS TEXT), k.uid, CAST(? AS DOUBLE PRECISION), 0 "
    "FROM k, t WHERE t.tat - ? <= ?), "
    "a AS (INSERT INTO audit (at, actor, action, subject, detail, org_id) SELECT "
    "CAST(? AS DOUBLE PRECISION), CAST(? AS TEXT), 'login', 'user:' || k.uid, "
    "CAST(? AS TEXT), k.uorg FROM k, t WHERE t.tat - ? <= ?), "
    # a card no one has: counted, and a token of the device's bucket, then of the org's
    "d AS (INSERT INTO throttles (scope, subject, tat, unaudited) SELECT 'device', "
    "CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION), 1 FROM k "
    "WHERE k.tscope IS NULL AND k.uid IS NULL AND k.tid IS NULL "
    "ON CONFLICT (scope, subject) DO UPDATE SET tat = (CASE WHEN throttles.tat > ? "
    "THEN throttles.tat ELSE ? END) + ?, unaudited = throttles.unaudited + 1 "
    "RETURNING tat, unaudited, audited_at), "
    "o AS (INSERT INTO throttles (scope, subject, tat) SELECT 'org', CAST(? AS TEXT), "
    "CAST(? AS DOUBLE PRECISION) FROM d WHERE d.tat - ? <= ? "
    "ON CONFLICT (scope, subject) DO UPDATE SET tat = (CASE WHEN throttles.tat > ? "
    "THEN throttles.tat ELSE ? END) + ? RETURNING tat) "
    "SELECT k.*, (SELECT tat FROM t), lazy.lazy_commit, d.tat, d.unaudited, d.audited_at, "
    "(SELECT tat FROM o) FROM k CROSS JOIN lazy LEFT JOIN d ON true")

#: A device's session checked, its user read and its sliding expiry moved, in one statement
#: (use_session). The expiry moves only where the session is good here: not ended, not expired,
#: this device's, its user there. The same CTEs open both forms: on its own, committing lazily
#: (a list before anything else ran; as _CARD_SIGN_IN), and inside a transaction already under
#: way (a release's, a logout's), where it must not touch the transaction's commit setting.
_SESSION_USED = (
    "s AS (SELECT token_hash, device_id, user_id, expires_at, ended FROM sessions "
    "WHERE token_hash=?), "
    "x AS (UPDATE sessions SET expires_at=? FROM s JOIN users u ON u.id = s.user_id "
    "WHERE sessions.token_hash = s.token_hash AND s.ended = 0 AND s.expires_at > ? "
    "AND s.device_id = ? RETURNING 1) "
    "SELECT s.device_id, s.user_id, s.expires_at, s.ended, u.id, u.org_id, u.email, "
    "u.display_name, u.language, u.role")
_USE_SESSION = (
    "WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true) AS lazy_commit), "
    + _SESSION_USED + ", lazy.lazy_commit "
    "FROM lazy LEFT JOIN s ON true LEFT JOIN users u ON u.id = s.user_id")
_USE_SESSION_IN_TRANSACTION = (
    "WITH " + _SESSION_USED + " FROM (SELECT 1) AS one LEFT JOIN s ON true "
    "LEFT JOIN users u ON u.id = s.user_id")


class PostgresStore(SignInQueries, SqlStore):
    BLOB: ClassVar[str] = "BYTEA"
    REAL: ClassVar[str] = "DOUBLE PRECISION"
    AUTO_ID: ClassVar[str] = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    INTEGRITY: ClassVar[tuple[type[Exception], ...]] = (psycopg.IntegrityError,)
    LAZY_COMMITS: ClassVar[bool] = True

    def __init__(self, url: str, *, create: bool = True) -> None:
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StoreError(f"bad PostgreSQL URL: {_first_line(exc)}; use "
                             "postgresql://user@host:port/dbname", code="config_invalid") from exc
        #: As given, so it can open another store; it may hold a password, so messages use
        #: :attr:`where` instead.
        self.url = self._conninfo = url
        self._connect_timeout = None if "connect_timeout" in params else CONNECT_TIMEOUT
        # Added to the URL's own options (a search_path, say) unless it sets them itself.
        given = str(params.get("options") or "")
        ours = [f"-c {name}={ms}" for name, ms in (("lock_timeout", LOCK_TIMEOUT_MS),
                                                     ("statement_timeout", STATEMENT_TIMEOUT_MS))
                if name not in given]
        self._options = " ".join([given, *ours]).strip() or None
        self._keepalive = {k: v for k, v in KEEPALIVE.items() if k not in params}
        self.host = host = str(params.get("host") or "localhost")
        port = str(params.get("port") or "5432")
        self.dbname = str(params.get("dbname") or params.get("user") or "")
        self.db_user = str(params.get("user") or "")
        #: Where, for messages: never the password.
        self.where = f"{host}:{port}, database {self.dbname or '(default)'}"
        self._local = threading.local()
        self.upgrade(create=create)

    # -- connections
    def _con(self) -> psycopg.Connection[Any]:
        con: psycopg.Connection[Any] | None = getattr(self._local, "con", None)
        if con is not None and (con.closed or con.broken):
            self._drop()
            con = None
        if con is None:
            con = self._connect()
            self._local.con = con
        return con

    def _connect(self) -> psycopg.Connection[Any]:
        extra: dict[str, Any] = {"application_name": "mfdkit-cloud"}
        if self._connect_timeout is not None:
            extra["connect_timeout"] = self._connect_timeout
        if self._options is not None:
            extra["options"] = self._options
        extra.update(self._keepalive)
        try:
            con = psycopg.connect(self._conninfo, autocommit=True, **extra)
        except psycopg.Error as exc:
            who = f" as {self.db_user}" if self.db_user else ""
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {self.where}{who}: "
                                   f"{_first_line(exc)}; {_connect_hint(exc, self)}") from exc
        con.adapters.register_dumper(bool, _FlagDumper)
        return con

    def _drop(self) -> None:
        """Forget this thread's connection, closing it if it still can be."""
        con: psycopg.Connection[Any] | None = getattr(self._local, "con", None)
        self._local.con = None
        self._local.cur = None
        if con is not None:
            with contextlib.suppress(psycopg.Error):
                con.close()

    def close(self) -> None:
        """Close the calling thread's connection (each thread closes its own)."""
        if getattr(self._local, "con", None) is not None:
            self._drop()

    # -- transactions (nesting: SqlBase.transaction)
    def _begin(self, *, lazy: bool = False) -> psycopg.Connection[Any]:
        if lazy:
            # Sent with the transaction's first statement, not now: a badge sign-in may need
            # none (card_sign_in below), and one that does pays the same round trip as before.
            self._local.pending = BEGIN_LAZY
            return self._con()
        return self._send_begin(BEGIN)

    def _send_begin(self, begin: str) -> psycopg.Connection[Any]:
        self._local.pending = None
        con = self._con()
        try:
            self._cursor(con).execute(begin)
            return con
        except psycopg.OperationalError as exc:
            # Dropped while idle between requests: nothing has run yet, so start over once on a
            # fresh connection.
            log.info("PostgreSQL connection to %s was lost (%s); reconnecting", self.where,
                     _first_line(exc))
            self._drop()
        con = self._con()
        try:
            self._cursor(con).execute(begin)
        except psycopg.OperationalError as exc:
            self._drop()
            raise StoreUnavailable(f"PostgreSQL at {self.where}: {_first_line(exc)}") from exc
        return con

    def _pending(self) -> str | None:
        """The BEGIN a lazy transaction has not sent yet (nothing has run in it), or None."""
        pending: str | None = getattr(self._local, "pending", None)
        return pending

    def _set_durable(self) -> None:
        if self._pending() is not None:
            self._local.pending = BEGIN  # not begun yet: it begins durable
            return
        self._run(DURABLE, ())

    def _current(self, con: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
        # The transaction's connection is the thread's: a deferred BEGIN may have replaced the
        # one _begin returned (dropped while idle), before anything of the transaction ran.
        current: psycopg.Connection[Any] | None = getattr(self._local, "con", None)
        return con if current is None else current

    def _rollback(self, con: psycopg.Connection[Any]) -> None:
        if self._pending() is not None:
            self._local.pending = None  # nothing was sent: nothing to undo
            return
        con = self._current(con)
        if con.closed or con.broken:
            self._drop()
            return
        try:
            self._cursor(con).execute("ROLLBACK")
        except psycopg.Error as exc:
            # The original exception is what the caller needs to see; this one only means the
            # connection is unusable.
            log.warning("PostgreSQL at %s: rollback failed (%s); reconnecting next time",
                        self.where, _first_line(exc))
            self._drop()

    def _commit(self, con: psycopg.Connection[Any]) -> None:
        if self._pending() is not None:
            self._local.pending = None  # nothing was sent: nothing to commit
            return
        con = self._current(con)
        if con.info.transaction_status == TransactionStatus.INERROR:
            # COMMIT here would answer ROLLBACK without an error: the work would vanish.
            self._rollback(con)
            raise StoreError("a statement in this transaction failed, so PostgreSQL discarded "
                             "it; nothing was saved")
        try:
            self._cursor(con).execute("COMMIT")
        except psycopg.OperationalError as exc:
            self._drop()
            raise StoreUnavailable(f"PostgreSQL at {self.where}: commit failed, so the request "
                                   f"may or may not have been saved: {_first_line(exc)}"
                                   ) from exc

    # -- statements
    def _cursor(self, con: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
        """The thread's one cursor on ``con``, used again for every statement, BEGIN and
        COMMIT included: Connection.execute made a new cursor (and its adapters map) each
        time, ~10 % of a fleet worker's CPU under py-spy --gil. Every caller reads the result
        at once (fetchone, fetchall, rowcount) before the next statement, so nothing is left
        unread when the cursor is reused."""
        cur: psycopg.Cursor[Any] | None = getattr(self._local, "cur", None)
        if cur is None or cur.connection is not con:
            cur = con.cursor()
            self._local.cur = cur
        return cur

    def _run(self, sql: str, args: Sequence[Any]) -> Any:
        if reads_only(sql) and self._nothing_sent():
            # A statement that only reads, before the lazy transaction has written anything,
            # sees on its own what it would see in it (READ COMMITTED: a snapshot per
            # statement; a plain SELECT takes no row locks): no BEGIN and COMMIT for a device's
            # org, a sign-in's first page or a list's.
            return self._run_alone(sql, args, idempotent=True)
        begin = self._pending()
        if begin is not None:
            self._send_begin(begin)
        if self._depth():
            # Inside a transaction, never reconnect: a new connection would run the rest of the
            # transaction's statements on their own, committing half of it.
            con = getattr(self._local, "con", None)
            if con is None or con.closed or con.broken:
                raise StoreUnavailable(f"PostgreSQL at {self.where}: the connection was lost "
                                       "during this transaction; nothing of it was saved")
        else:
            con = self._con()
        try:
            # Always a tuple, even empty: psycopg then parses the query, undoing the %% escapes.
            return self._cursor(con).execute(pg_sql(sql), tuple(args))
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"PostgreSQL at {self.where}: {_first_line(exc)}") from exc

    def sign_in(self, budget: Budget | None, session: NewSession, now: float) -> float:
        if budget is None:
            return super().sign_in(budget, session, now)
        row = self.query_one(
            _SIGN_IN, budget.scope, budget.subject, now + budget.interval, now, now,
            budget.interval, session.token_hash, session.device_id, session.user_id,
            session.expires_at, now, budget.limit, now, f"device:{session.device_id}",
            f"user:{session.user_id}", session.method, session.org_id, now, budget.limit)
        return float(row[0]) - now if row else 0.0

    def card_sign_in(self, device_id: str, org_id: str, card_hash: str,
                     budgets: CardBudgets, session: CardSession, now: float) -> CardSignIn:
        """cloud/storage/sign_in.py's, in one statement where the caller's transaction is a
        lazy one that has sent nothing yet; else as two calls inside it. The one statement
        commits by itself: what the caller does next (a technician's audit, an unknown badge's
        audit row or throttle) begins the transaction as usual, and a failure there leaves
        the statement's writes made (a session never answered expires; a token spent stays
        spent, as it would for a badge refused)."""
        if not self._nothing_sent():
            return card_sign_in_steps(self, device_id, org_id, card_hash, budgets.login,
                                      session, now)
        login, device, org = budgets.login, budgets.device, budgets.org
        row = self._run_alone(
            _CARD_SIGN_IN, (
                now, device_id, org_id, org_id, card_hash, org_id, card_hash,  # k
                login.scope, login.subject, now + login.interval, now, now,  # t
                login.interval,
                session.token_hash, device_id, session.expires_at, now, login.limit,  # s
                now, f"device:{device_id}", session.method, now, login.limit,  # a
                device_id, now + device.interval, now, now, device.interval,  # d
                org_id, now + org.interval, now, device.limit, now, now,  # o
                org.interval)).fetchone()
        if row[0] is not None:
            return CardSignIn((str(row[0]), str(row[1]), float(row[2])))
        if row[3] is not None:
            return CardSignIn(None, User(*row[3:9]), None, float(row[15]) - now)
        if row[9] is not None:
            return CardSignIn(None, None, Technician(
                str(row[9]), str(row[10]), str(row[11]), str(row[12]), float(row[13]), None))
        return CardSignIn(None, unknown=UnknownCard(
            float(row[17]) - now, None if row[20] is None else float(row[20]) - now,
            int(row[18]), float(row[19])))

    def use_session(self, device_id: str, token_hash: str, now: float,
                    expires_at: float) -> SessionInUse:
        """cloud/storage/sign_in.py's, in one statement: on its own, committing lazily, where
        the caller's transaction is a lazy one that has sent nothing yet (a list of held
        jobs); else as a statement of the transaction under way (a release, a logout: three
        round trips before)."""
        args = (token_hash, expires_at, now, device_id)
        if self._nothing_sent():
            # Idempotent: sent again, it sets the same expiry.
            row = self._run_alone(_USE_SESSION, args, idempotent=True).fetchone()
        else:
            row = self._run(_USE_SESSION_IN_TRANSACTION, args).fetchone()
        if row[0] is None:
            return SessionInUse(None, None)
        session = Session(str(row[0]), str(row[1]), float(row[2]), bool(row[3]))
        good = usable_here(session, device_id, now) and row[4] is not None
        return SessionInUse(session, User(*row[4:10]) if good else None)

    def _nothing_sent(self) -> bool:
        """In a lazy transaction (the outermost) that has sent nothing yet."""
        return self._pending() == BEGIN_LAZY and self._depth() == 1

    def _run_alone(self, sql: str, args: Sequence[Any], *, idempotent: bool = False) -> Any:
        """One statement on its own (autocommit), before the open lazy transaction has sent
        anything. A connection found gone is replaced once, as at BEGIN, where sending the
        statement again cannot do it twice: it is ``idempotent`` (a read; a session's expiry
        set to the same value), or the server said it had ended this connection (SQLSTATE
        57P01, 57P02, 57P05: that arrives in place of the answer, so the statement never ran).
        Any other loss may have come after its commit, so it is not repeated: the device is
        told busy and asks again."""
        con = self._con()
        try:
            return self._cursor(con).execute(pg_sql(sql), tuple(args))
        except psycopg.OperationalError as exc:
            gone = con.closed or con.broken
            if gone:
                self._drop()
            if not gone or not (idempotent or exc.sqlstate in ENDED_BY_SERVER):
                # A lock or statement timeout leaves the connection good: kept.
                raise StoreUnavailable(f"PostgreSQL at {self.where}: {_first_line(exc)}") \
                    from exc
            log.info("PostgreSQL connection to %s was lost (%s); reconnecting", self.where,
                     _first_line(exc))
        con = self._con()
        try:
            return self._cursor(con).execute(pg_sql(sql), tuple(args))
        except psycopg.OperationalError as exc:
            if con.closed or con.broken:
                self._drop()
            raise StoreUnavailable(f"PostgreSQL at {self.where}: {_first_line(exc)}") from exc

    def upgrade(self, create: bool = True) -> int:
        with self.transaction():
            # Another process may be upgrading: wait for it, however long it takes.
            self._run("SET LOCAL lock_timeout = 0", ())
            self._run("SET LOCAL statement_timeout = 0", ())
            self._run("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))
            return super().upgrade(create=create)

    def _document_slice_sql(self) -> str:
        # substring() counts from 1 like SQLite's substr(); psycopg sends a large Python int as
        # bigint, for which substring() has no variant, hence the casts.
        return ("SELECT substring(data from CAST(? AS INTEGER) for CAST(? AS INTEGER)) "
                "FROM documents WHERE job_id=?")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if text.startswith("connection failed: "):
        text = text[len("connection failed: "):]
    return text.splitlines()[0] if text else type(exc).__name__


def _connect_hint(exc: psycopg.Error, store: PostgresStore) -> str:
    """What a technician should check. A failed connection carries no SQLSTATE, so this reads
    libpq's message (English unless the server's lc_messages says otherwise)."""
    text = str(exc)
    if 'database "' in text and "does not exist" in text:
        return (f"create it with: createdb -h {store.host} -U {store.db_user or 'USER'} "
                f"{store.dbname or 'DBNAME'}")
    if 'role "' in text and "does not exist" in text:
        return (f"create the role with: createuser -h {store.host} {store.db_user or 'USER'}, "
                "or name an existing user in the URL")
    if "password" in text or "pg_hba.conf" in text:
        return ("check the user and password (in the URL, PGPASSWORD or ~/.pgpass) and that "
                "the server's pg_hba.conf admits this user from this host")
    if "too many" in text:
        return "the server is at max_connections; run fewer workers or raise the limit"
    return ("check that PostgreSQL is running on that host and port and accepts TCP "
            "connections from here (listen_addresses in postgresql.conf, pg_hba.conf, firewall)")
