"""What every SQL query of the cloud stands on: statements with ``?`` placeholders, the
translation of a taken unique key into :class:`ConflictError`, and the schema upgrade.

An adapter (cloud/storage/sqlite.py, cloud/storage/postgres.py) supplies connections,
transactions, column types and its placeholder style; the query classes (sql_core.py,
sql_linking.py, sql_devices.py) are written once, in the SQL both backends share.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from cloud.storage import schema
from cloud.storage.port import ConflictError
from protocol.errors import StoreError


class SqlBase:
    """Statements, rows and the schema; no query of its own."""

    #: Column types and the auto-numbered key, per backend.
    BLOB: ClassVar[str] = "BLOB"
    REAL: ClassVar[str] = "REAL"
    AUTO_ID: ClassVar[str] = "INTEGER PRIMARY KEY AUTOINCREMENT"
    #: The backend's "unique key taken" exceptions (translated into ConflictError).
    INTEGRITY: ClassVar[tuple[type[Exception], ...]] = ()
    #: Whether the backend can commit one transaction without waiting for the disk.
    LAZY_COMMITS: ClassVar[bool] = False

    url: str = ""
    #: The store, for messages: never a password.
    where: str = ""

    #: Per-thread state (``depth``: transactions open; the adapter keeps its connection here).
    _local: threading.local

    # -- transactions: one per thread, nested ones join it
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """All of the block or none of it. A transaction opened inside another joins it: the
        outermost commits (use-cases call each other, each in its own ``with``). Its commit is
        durable: on disk before this returns (cloud/storage/durability.py)."""
        return self._transaction(lazy=False)

    def lazy_transaction(self) -> contextlib.AbstractContextManager[None]:
        """As :meth:`transaction`, but the commit need not wait for the disk, where the
        backend can tell (cloud/storage/durability.py). Opened inside a durable transaction, it
        joins it and stays durable; a durable one opened inside it makes it durable."""
        return self._transaction(lazy=True)

    def commit_durably(self) -> None:
        """The open transaction must be durable after all (a lockout, a throttle started)."""
        if self._depth() and getattr(self._local, "lazy", False):
            self._set_durable()
            self._local.lazy = False

    def committing_lazily(self) -> bool:
        """Whether the open transaction will commit without waiting for the disk."""
        return bool(self._depth() and getattr(self._local, "lazy", False))

    @contextlib.contextmanager
    def _transaction(self, *, lazy: bool) -> Iterator[None]:
        if self._depth():
            if not lazy:  # durable wins
                self.commit_durably()
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        lazy = lazy and self.LAZY_COMMITS
        con = self._begin(lazy=lazy)
        self._local.lazy = lazy
        self._local.depth = 1
        try:
            yield
        except BaseException:
            self._rollback(con)
            raise
        else:
            self._commit(con)
        finally:
            self._local.depth = 0
            self._local.lazy = False

    def _depth(self) -> int:
        return int(getattr(self._local, "depth", 0))

    # -- the backend supplies these
    def _begin(self, *, lazy: bool = False) -> Any:
        """Start a transaction on this thread's connection; returns the connection.
        ``lazy``: its commit need not wait for the disk (only if :attr:`LAZY_COMMITS`)."""
        raise NotImplementedError

    def _set_durable(self) -> None:
        """Make the open lazy transaction's commit durable (only if :attr:`LAZY_COMMITS`)."""
        raise NotImplementedError

    def _commit(self, con: Any) -> None:
        raise NotImplementedError

    def _rollback(self, con: Any) -> None:
        raise NotImplementedError

    def _run(self, sql: str, args: Sequence[Any]) -> Any:
        """Execute with ``?`` placeholders; returns a cursor."""
        raise NotImplementedError

    def _document_slice_sql(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- the schema
    def ddl(self, text: str) -> list[str]:
        text = text.format(blob=self.BLOB, real=self.REAL, auto_id=self.AUTO_ID)
        return [s.strip() for s in text.split(";") if s.strip()]

    def upgrade(self, create: bool = True) -> int:
        """Bring the store to :data:`schema.LATEST`, every missing step in one transaction;
        returns the version the store was at. A store a newer release upgraded is refused
        rather than written with assumptions that no longer hold.

        ``create=False`` upgrades only a store that is mfdkit's already (it has the version
        table, or the ``orgs`` table of a release from before versions): a mistyped database
        name or an empty file is an error naming ``mfd admin init``, not 14 new tables and an
        empty answer that looks like success."""
        with self.transaction():
            if not create and not (self._try("SELECT 1 FROM schema_version WHERE 1 = 0")
                                   or self._try("SELECT 1 FROM orgs WHERE 1 = 0")):
                raise StoreError(f"no mfdkit tables in {self.where} (check --store); create "
                                 "them with: mfd admin --store URL init", code="not_found")
            for statement in self.ddl(schema.VERSION_TABLE):
                self._run(statement, ())
            row = self.query_one("SELECT max(version) FROM schema_version")
            current = int(row[0]) if row and row[0] is not None else 0
            if current > schema.LATEST:
                raise StoreError(f"the store is at schema version {current}, newer than this "
                                 f"release knows ({schema.LATEST}); upgrade mfdkit",
                                 code="config_invalid")
            for step in schema.pending(current):
                for statement in self.ddl(step.ddl):
                    self._run(statement, ())
                if step.add_column is not None:
                    self._add_column_if_missing(*step.add_column)
                self.execute("INSERT INTO schema_version VALUES (?,?,?)", step.version,
                             time.time(), step.what)
        return current

    def schema_version(self) -> int:
        with self.transaction():
            row = self.query_one("SELECT max(version) FROM schema_version")
        return int(row[0]) if row and row[0] is not None else 0

    def _add_column_if_missing(self, table: str, column: str, kind: str) -> None:
        """For the steps from before versioning: a store may have the column already.
        Savepoints keep a failed probe from spoiling the transaction (PostgreSQL)."""
        if self._try(f"SELECT {column} FROM {table} WHERE 1 = 0"):  # noqa: S608
            return
        self._run(f"ALTER TABLE {table} ADD COLUMN {column} "
                  + kind.format(blob=self.BLOB, real=self.REAL), ())

    def _try(self, sql: str) -> bool:
        self._run("SAVEPOINT mfd_try", ())
        try:
            self._run(sql, ())
        except Exception:  # the statement failing is the answer (no such column or table)
            self._run("ROLLBACK TO SAVEPOINT mfd_try", ())
            self._run("RELEASE SAVEPOINT mfd_try", ())
            return False
        self._run("RELEASE SAVEPOINT mfd_try", ())
        return True

    # -- statements: for the query classes, and for tests and tools that inspect a store
    def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; the number of rows it changed. A taken unique key raises
        :class:`ConflictError` (the transaction is then to be abandoned)."""
        try:
            return int(self._run(sql, args).rowcount)
        except self.INTEGRITY as exc:
            raise ConflictError(f"already exists: {exc}".splitlines()[0]) from exc

    def query_one(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        row = self._run(sql, args).fetchone()
        return tuple(row) if row is not None else None

    def query_all(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._run(sql, args).fetchall()]
