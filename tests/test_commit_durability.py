"""Which commits wait for the disk (cloud/storage/durability.py): a badge sign-in's and a
list's need not; a release's, a logout's, a wrong guess's and everything else's must. Proved
on PostgreSQL by reading ``synchronous_commit`` inside each transaction just before it
commits; on SQLite the lazy transaction is an ordinary one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from cloud.demo import DEMO_USERS, seed_demo
from cloud.service import CloudService
from cloud.storage.durability import commit_durably, lazy_transaction
from cloud.storage.factory import open_store
from cloud.storage.postgres import PostgresStore, reads_only
from protocol import messages as m
from tests.pg import ScratchDatabase

DEVICE = "copier-1"


class WatchedStore(PostgresStore):
    """The real store, noting the setting each transaction commits with: an outermost
    transaction's (one that sent nothing commits nothing), and that of a statement that
    commits by itself (a badge's sign-in, a session's use: its column lazy_commit is what
    set_config made the setting)."""

    def __init__(self, url: str) -> None:
        self.commits: list[str] = []
        #: "alone" for each statement on its own, "BEGIN" for each transaction begun.
        self.statements: list[str] = []
        super().__init__(url)

    def _send_begin(self, begin: str) -> Any:
        self.statements.append("BEGIN")  # the statements in a transaction follow it
        return super()._send_begin(begin)

    def _commit(self, con: psycopg.Connection[Any]) -> None:
        if self._pending() is None:
            row = self._current(con).execute(
                "SELECT current_setting('synchronous_commit')").fetchone()
            self.commits.append(str(row[0]) if row else "?")
        super()._commit(con)

    def _run_alone(self, sql: str, args: Any, *, idempotent: bool = False) -> Any:
        self.statements.append("alone")
        cur = super()._run_alone(sql, args, idempotent=idempotent)
        names = [column.name for column in cur.description]
        rows = cur.fetchall()
        if "lazy_commit" in names:  # a statement that writes (one that only reads commits nothing)
            self.commits.append(str(rows[0][names.index("lazy_commit")]))
        return _Fetched(rows)


class _Fetched:
    """The rows of a statement, read already, for the store to read as from its cursor."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows
        self.rowcount = len(rows)

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


@pytest.fixture(scope="module")
def pg(pg_database: ScratchDatabase) -> Iterator[tuple[WatchedStore, CloudService]]:
    store = WatchedStore(pg_database.schema_url())
    seed_demo(store, now=time.time(), devices=(DEVICE,))
    yield store, CloudService(store)
    store.close()


def _ask(store: WatchedStore, service: CloudService, request: m.Request) -> tuple[str, bytes]:
    store.commits.clear()
    answer = service.handle(DEVICE, m.encode(request))
    # One transaction, or on PostgreSQL's fast paths a statement committing by itself and then
    # a transaction for the rest (a first tap's offline bookkeeping): all commit alike.
    assert store.commits and len(set(store.commits)) == 1, store.commits
    return store.commits[0], answer


def test_a_sign_in_commits_lazily_and_a_release_durably(
        pg: tuple[WatchedStore, CloudService]) -> None:
    store, service = pg
    alice = DEMO_USERS[0]
    setting, answer = _ask(store, service, m.Identify("card", alice.badge, page_size=10))
    assert setting == "off"
    signed_in = m.decode_response(answer, "identify")
    assert isinstance(signed_in, m.IdentifyResult)
    assert signed_in.jobs, "the demo user has held jobs to release"
    # The lazily made session is good for a release on another connection (another worker).
    other = CloudService(open_store(store.url))
    store.commits.clear()
    release = m.Release(request_id="r-durable-1", session=signed_in.session,
                        job_ids=(signed_in.jobs[0].job_id,))
    released = m.decode_response(other.handle(DEVICE, m.encode(release)), "jobs.release")
    assert isinstance(released, m.ReleaseResult) and released.jobs
    setting, _ = _ask(store, service, m.Release(request_id="r-durable-2",
                                                session=signed_in.session, job_ids=(),
                                                all_held=True))
    assert setting == "on"
    setting, _ = _ask(store, service, m.ListJobs(session=signed_in.session))
    assert setting == "off"  # only the session's sliding expiry is written
    setting, _ = _ask(store, service, m.Logout(request_id="r-durable-3",
                                               session=signed_in.session))
    assert setting == "on"
    # SET LOCAL ends with its transaction: the connection is back to the server's setting.
    assert store.query_one("SELECT current_setting('synchronous_commit')") == ("on",)


def test_a_known_badge_signs_in_in_one_statement_that_commits_lazily(
        pg: tuple[WatchedStore, CloudService]) -> None:
    store, service = pg
    bob = DEMO_USERS[1]
    # The first tap of a badge in a process also looks for its offline verifier and notes the
    # sign-in at this device (cloud/offline.py), which this process then remembers.
    service.handle(DEVICE, m.encode(m.Identify("card", bob.badge)))
    store.statements.clear()
    setting, answer = _ask(store, service, m.Identify("card", bob.badge))
    assert setting == "off"
    assert store.statements == ["alone"]  # one round trip: no BEGIN, no COMMIT
    signed_in = m.decode_response(answer, "identify")
    assert isinstance(signed_in, m.IdentifyResult) and signed_in.user_id
    # Committed, and seen at once by another worker; the sign-in is audited and the device's
    # budget spent, as in a transaction of the four statements it replaces.
    other = CloudService(open_store(store.url))
    listed = m.decode_response(other.handle(DEVICE, m.encode(m.ListJobs(signed_in.session))),
                               "jobs.list")
    assert isinstance(listed, m.JobList)
    logins = [row for row in store.audit_log() if row[2] == "login"
              and row[3] == f"user:{signed_in.user_id}"]
    assert logins and logins[-1][4] == "card"
    # set_config(..., true) ended with the statement's own transaction.
    assert store.query_one("SELECT current_setting('synchronous_commit')") == ("on",)
    # A list of held jobs (and a badge with its first page): the session used in one statement,
    # the page read in another, neither inside BEGIN and COMMIT.
    store.statements.clear()
    setting, answer = _ask(store, service, m.ListJobs(signed_in.session))
    assert setting == "off" and store.statements == ["alone", "alone"]
    assert isinstance(m.decode_response(answer, "jobs.list"), m.JobList)
    store.statements.clear()
    setting, answer = _ask(store, service, m.Identify("card", bob.badge, page_size=10))
    assert setting == "off" and store.statements == ["alone", "alone"]
    signed_in = m.decode_response(answer, "identify")
    assert isinstance(signed_in, m.IdentifyResult) and signed_in.jobs


def test_a_wrong_guess_in_a_sign_in_is_durable(pg: tuple[WatchedStore, CloudService]) -> None:
    store, service = pg
    setting, answer = _ask(store, service, m.Identify("code", "918273"))
    assert b"unknown_code" in answer
    assert setting == "on"  # it counts towards the device's lockout
    setting, answer = _ask(store, service, m.Identify("card", DEMO_USERS[1].badge, pin="999999"))
    assert b"wrong_pin" in answer
    assert setting == "on"


def test_durable_wins_when_joined(pg: tuple[WatchedStore, CloudService]) -> None:
    store, _service = pg
    store.commits.clear()
    def write() -> None:  # a read would run on its own, outside (cloud/storage/postgres.py)
        store.audit(1.0, "cloud", "test.joined", "-")

    with lazy_transaction(store), store.transaction():
        write()
    with lazy_transaction(store):
        commit_durably(store)
        write()
    with lazy_transaction(store):
        write()
        commit_durably(store)
    with store.transaction(), lazy_transaction(store):
        write()
    with lazy_transaction(store):
        write()
    assert store.commits == ["on", "on", "on", "on", "off"]


def test_reads_before_a_lazy_transactions_first_write_run_on_their_own(
        pg: tuple[WatchedStore, CloudService]) -> None:
    store, _service = pg
    store.statements.clear()
    store.commits.clear()
    with lazy_transaction(store):
        assert store.orgs()  # on its own: no BEGIN for a read
        store.audit(1.0, "cloud", "test.after_read", "-")  # the transaction begins here
        assert store.orgs()  # inside it now
    assert store.statements == ["alone", "BEGIN"] and store.commits == ["off"]
    # A read that locks rows, or that writes through a WITH, is not a plain read.
    assert reads_only("SELECT id FROM orgs WHERE id=?")
    assert reads_only("WITH u AS (SELECT id FROM users) SELECT count(*) FROM u")
    assert not reads_only("SELECT id FROM jobs WHERE id=? FOR UPDATE")
    assert not reads_only("WITH x AS (UPDATE jobs SET state='HELD' RETURNING id) SELECT id FROM x")
    assert not reads_only("INSERT INTO audit (at) VALUES (?) RETURNING id")
    assert not reads_only("SELECT pg_advisory_xact_lock(?)")


def test_a_lazy_transaction_that_runs_nothing_sends_nothing(
        pg: tuple[WatchedStore, CloudService]) -> None:
    store, _service = pg
    store.commits.clear()
    with lazy_transaction(store):
        pass
    with lazy_transaction(store):
        commit_durably(store)
    assert store.commits == []
    with pytest.raises(RuntimeError), lazy_transaction(store):
        raise RuntimeError("rolled back before anything ran")
    # The connection is not left inside a transaction: the next one begins and commits.
    with lazy_transaction(store):
        store.audit(1.0, "cloud", "test.after_empty", "-")
    assert store.commits == ["off"]
    assert "test.after_empty" in [row[2] for row in store.audit_log()]


def test_a_lazy_transaction_commits_and_rolls_back_on_sqlite(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'cloud.db'}")
    with lazy_transaction(store):
        store.audit(1.0, "cloud", "test.kept", "-")
    with pytest.raises(RuntimeError), lazy_transaction(store):
        store.audit(2.0, "cloud", "test.dropped", "-")
        raise RuntimeError("rolled back")
    actions = [row[2] for row in store.audit_log()]
    assert "test.kept" in actions and "test.dropped" not in actions
