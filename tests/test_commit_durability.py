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
from cloud.storage.postgres import PostgresStore
from protocol import messages as m
from tests.pg import ScratchDatabase

DEVICE = "copier-1"


class WatchedStore(PostgresStore):
    """The real store, noting the setting each outermost transaction commits with."""

    def __init__(self, url: str) -> None:
        self.commits: list[str] = []
        super().__init__(url)

    def _commit(self, con: psycopg.Connection[Any]) -> None:
        row = con.execute("SELECT current_setting('synchronous_commit')").fetchone()
        self.commits.append(str(row[0]) if row else "?")
        super()._commit(con)


@pytest.fixture(scope="module")
def pg(pg_database: ScratchDatabase) -> Iterator[tuple[WatchedStore, CloudService]]:
    store = WatchedStore(pg_database.schema_url())
    seed_demo(store, now=time.time(), devices=(DEVICE,))
    yield store, CloudService(store)
    store.close()


def _ask(store: WatchedStore, service: CloudService, request: m.Request) -> tuple[str, bytes]:
    store.commits.clear()
    answer = service.handle(DEVICE, m.encode(request))
    assert len(store.commits) == 1, store.commits  # one request, one transaction
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
    with lazy_transaction(store), store.transaction():
        pass
    with lazy_transaction(store):
        commit_durably(store)
    with store.transaction(), lazy_transaction(store):
        pass
    with lazy_transaction(store):
        pass
    assert store.commits == ["on", "on", "on", "off"]


def test_a_lazy_transaction_commits_and_rolls_back_on_sqlite(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'cloud.db'}")
    with lazy_transaction(store):
        store.audit(1.0, "cloud", "test.kept", "-")
    with pytest.raises(RuntimeError), lazy_transaction(store):
        store.audit(2.0, "cloud", "test.dropped", "-")
        raise RuntimeError("rolled back")
    actions = [row[2] for row in store.audit_log()]
    assert "test.kept" in actions and "test.dropped" not in actions
