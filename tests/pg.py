"""A PostgreSQL for the tests: which server, a fresh database per run, one schema per test.

Which server: ``MFD_TEST_PG`` (a server URL such as ``postgresql://postgres@127.0.0.1:5433/
postgres``; scripts/test.sh sets it when it starts a private cluster), else the local service on
127.0.0.1:5432 as ``postgres``. The URL's database is only where we connect to create ours.

Each test run creates ``mfdkit_test_<random>`` and drops it at the end, also when tests fail;
several runs (or several engineers) on one server never see each other's rows. Inside it each
test gets its own schema, which is cheaper than a database per test and as isolated.

No server: the PostgreSQL tests fail, naming where they looked and what to do. Never a skip,
in CI or not: the test command starts a server when none answers, and a skipped backend would
hide a store that was never tested.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

ENV = "MFD_TEST_PG"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT = 3


def server_url() -> str:
    return os.environ.get(ENV) or DEFAULT_URL


def unavailable(reason: str) -> NoReturn:
    """Fail the calling test: the PostgreSQL it needs is not there (``reason`` says why)."""
    pytest.fail(f"PostgreSQL is required and {reason}", pytrace=False)


def with_database(url: str, dbname: str, search_path: str | None = None) -> str:
    """``url`` pointed at another database (and schema, through libpq's ``options``)."""
    parts = urlsplit(url)
    query = parts.query
    if search_path:
        option = "options=" + quote(f"-csearch_path={search_path}", safe="")
        query = f"{query}&{option}" if query else option
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, query, parts.fragment))


class NoServer(Exception):
    """No PostgreSQL answered; the message says where we looked and what to do."""


class ScratchDatabase:
    """A database of our own on the server, until :meth:`drop`."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.name = f"mfdkit_test_{secrets.token_hex(6)}"
        self.url = with_database(server, self.name)
        self._schemas = itertools.count(1)
        try:
            with self._admin() as con:
                con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        except psycopg.OperationalError as exc:
            where = urlsplit(server)
            raise NoServer(f"no PostgreSQL at {where.hostname}:{where.port or 5432} "
                           f"({str(exc).strip().splitlines()[0]}); set {ENV} to a server URL "
                           "or run scripts/test.sh, which starts one") from exc

    def _admin(self, url: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(url or self.server, autocommit=True,
                               connect_timeout=CONNECT_TIMEOUT)

    def schema_url(self) -> str:
        """A URL whose connections work in a new, empty schema of this database."""
        schema = f"t{next(self._schemas)}"
        with self._admin(self.url) as con:
            con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        return with_database(self.server, self.name, schema)

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """An extra connection to this database (to end another connection's backend, say)."""
        return self._admin(self.url)

    def drop(self) -> None:
        # FORCE ends connections a failed test left open (PostgreSQL 13 and later).
        with self._admin() as con:
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(self.name)))


@contextlib.contextmanager
def fresh_database() -> Iterator[ScratchDatabase]:
    """A new database for this run on :func:`server_url`, dropped afterwards, on failure too.
    Raises :class:`NoServer` when nothing answers there."""
    db = ScratchDatabase(server_url())
    try:
        yield db
    finally:
        db.drop()
