"""Where a store URL picks its adapter: the one module of cloud/storage/ that knows them all, so
the port (cloud/storage/port.py) and the shared SQL never import an adapter."""

from __future__ import annotations

from cloud.storage.sql import SqlStore
from protocol.errors import StoreError
from protocol.redact import redact


def is_postgres(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL store (the schemes :func:`open_store` takes)."""
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str, *, create: bool = True) -> SqlStore:
    """A store from its URL: ``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or
    ``postgresql://user@host:port/dbname``. The schema is brought up to date on opening.

    ``create=False`` opens only a store that is mfdkit's already (it may be upgraded): a new
    file or a database without mfdkit's tables is a ``not_found`` error naming ``mfd admin
    init``. Only what is meant to make a store (``mfd admin init``, ``demo``) creates one."""
    if url.startswith("sqlite:"):
        from cloud.storage.sqlite import SqliteStore

        return SqliteStore.from_url(url, create=create)
    if is_postgres(url):
        # Imported only here: a SQLite-only install need not load psycopg.
        from cloud.storage.postgres import PostgresStore

        return PostgresStore(url, create=create)
    # The URL may carry a password (mysql://user:pw@host/db): quoted back redacted.
    raise StoreError(f"unsupported store URL {redact(url)!r}; use sqlite:///relative.db, "
                     "sqlite:////absolute/path.db or postgresql://user@host/db",
                     code="config_invalid")
