"""Where a store URL picks its adapter: the one module of cloud/storage/ that knows them all, so
the port (cloud/storage/port.py) and the shared SQL never import an adapter."""

from __future__ import annotations

from cloud.storage.sql import SqlStore
from protocol.errors import StoreError


def open_store(url: str) -> SqlStore:
    """A store from its URL: ``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or
    ``postgresql://user@host:port/dbname``. The schema is brought up to date on opening."""
    if url.startswith("sqlite:"):
        from cloud.storage.sqlite import SqliteStore

        return SqliteStore.from_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        # Imported only here: a SQLite-only install need not load psycopg.
        from cloud.storage.postgres import PostgresStore

        return PostgresStore(url)
    raise StoreError(f"unsupported store URL {url!r}; use sqlite:///relative.db, "
                     "sqlite:////absolute/path.db or postgresql://user@host/db",
                     code="config_invalid")
