"""Which commits must reach the disk before the answer goes out, and which need not.

Every transaction is durable unless its caller says otherwise: a release, a printed report, a
delete, a logout, a configuration change is answered only once its commit is on disk. A
sign-in and a list of held jobs are the exceptions (cloud/service.py): what they write (the
session, the sign-in's audit row, a token of the sign-in budget, a session's sliding expiry)
may be lost in a crash of the database server without harm: the person taps again.

On PostgreSQL such a transaction commits with ``synchronous_commit`` off: it is visible to
every worker at once and reaches the disk when the WAL writer next flushes (every
``wal_writer_delay``, 200 ms by default; PostgreSQL bounds the loss at three times that). A
crash of the server loses at most that tail, whole transactions only, never half of one and
never a corrupt database. Anything that must survive (a lockout, a throttle started) turns the
transaction durable again with :func:`commit_durably`: durable always wins.

Ordering keeps it safe: a durable commit flushes the write-ahead log up to its own commit
record, so everything committed before it, lazily or not, is on disk with it. A release that
used a session made lazily therefore makes that session durable too.

SQLite has no per-transaction equivalent (its WAL commits are already not flushed one by one,
``synchronous=NORMAL``): it ignores both calls.

These are not in the :class:`~cloud.storage.port.Store` protocol yet; a store without them is
simply durable everywhere.
"""

from __future__ import annotations

import contextlib
import typing
from typing import Protocol, runtime_checkable

from cloud.storage.capability import implements


@runtime_checkable
class Durability(Protocol):
    def lazy_transaction(self) -> contextlib.AbstractContextManager[None]: ...
    def commit_durably(self) -> None: ...


def _can(store: object) -> bool:
    return implements(store, Durability)


def lazy_transaction(store: object) -> contextlib.AbstractContextManager[None]:
    """A transaction whose commit need not wait for the disk (see the module docstring);
    joined to the caller's if one is open (then as durable as that one)."""
    if _can(store):
        return typing.cast(Durability, store).lazy_transaction()
    return store.transaction()  # type: ignore[attr-defined, no-any-return]


def commit_durably(store: object) -> None:
    """The open transaction must be on disk before it is answered, whatever it began as."""
    if _can(store):
        typing.cast(Durability, store).commit_durably()
