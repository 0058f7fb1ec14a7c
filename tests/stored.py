"""Everything a cloud store keeps, as bytes to search for a secret, on either backend.

SQLite: the database file and its WAL byte for byte, so a secret in a freed page or a
not-yet-checkpointed write is found too. PostgreSQL: the server's files are not ours to read, so
every row of every table in the store's schema, as PostgreSQL prints it, plus every ``bytea``
value raw (its printed form is hex, where a secret in clear would not show).
"""

from __future__ import annotations

from pathlib import Path

from cloud.storage.sql import SqlStore
from cloud.storage.sqlite import SqliteStore


def stored_bytes(store: SqlStore) -> bytes:
    if isinstance(store, SqliteStore):
        base = Path(store.path)
        return b"".join(p.read_bytes() for p in sorted(base.parent.glob(base.name + "*")))
    parts: list[bytes] = []
    tables = store.query_all("SELECT table_name FROM information_schema.tables "
                             "WHERE table_schema = current_schema()")
    assert tables, "no tables in the store's schema"
    for (table,) in tables:
        quoted = '"' + str(table).replace('"', '""') + '"'
        parts += [str(text).encode() for (text,) in
                  store.query_all(f"SELECT CAST(t AS text) FROM {quoted} t")]
        blobs = store.query_all("SELECT column_name FROM information_schema.columns WHERE "
                                "table_schema = current_schema() AND table_name = ? AND "
                                "data_type = 'bytea'", table)
        for (column,) in blobs:
            col = '"' + str(column).replace('"', '""') + '"'
            parts += [bytes(value) for (value,) in
                      store.query_all(f"SELECT {col} FROM {quoted} WHERE {col} IS NOT NULL")]
    return b"\n".join(parts)
