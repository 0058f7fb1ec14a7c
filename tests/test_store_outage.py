"""The database goes away under the cloud (issue 14, "Database failure"): a private PostgreSQL
stopped as in a crash, then started again. Devices are answered ``busy`` with a retry time (not
``internal``), the worker logs the outage once (not a traceback per request), it reconnects by
itself, and a release asked during the outage and again afterwards with the same request id is
done exactly once."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator

import pytest

from cloud.demo import DEMO_USERS, seed_demo
from cloud.service import STORE_RETRY_AFTER, CloudService
from cloud.storage.factory import open_store
from protocol import messages as m
from protocol.errors import ErrorCode, RemoteError
from simulator.fleet.cluster import PrivatePostgres

ALICE = DEMO_USERS[0]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres(tmp_path_factory.mktemp("pg")).start()
    yield pg
    pg.remove()


def _ask(service: CloudService, req: m.Request) -> m.Result:
    return m.decode_response(service.handle("copier-1", m.encode(req)), req.TYPE)


def test_a_database_restart_is_busy_then_served(postgres: PrivatePostgres,
                                                caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(postgres.url)
    seed_demo(store, now=time.time())
    service = CloudService(store)
    signed = _ask(service, m.Identify("card", ALICE.badge, page_size=10))
    assert isinstance(signed, m.IdentifyResult) and signed.jobs
    job = signed.jobs[0].job_id
    release = m.Release(request_id=secrets.token_hex(8), session=signed.session,
                        job_ids=(job,))

    postgres.stop("immediate")  # a crash, as far as the worker can tell
    caplog.set_level(logging.INFO)
    caplog.clear()
    for req in (m.Identify("card", ALICE.badge), release, m.ListJobs(signed.session)) * 5:
        with pytest.raises(RemoteError) as refused:
            _ask(service, req)
        assert refused.value.code == ErrorCode.BUSY
        assert refused.value.retry_after == STORE_RETRY_AFTER
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    # One line for the outage, none per request, and no traceback.
    assert len(warnings) == 1 and "cannot be reached" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)

    postgres.start()
    caplog.clear()
    # The session was committed lazily (cloud/storage/durability.py): a crash of the database
    # may lose it, and the person taps again. The release, asked again as the device does after
    # "busy" (same request id), is then done once.
    signed = _ask(service, m.Identify("card", ALICE.badge))
    assert isinstance(signed, m.IdentifyResult)
    assert any("answers again" in r.getMessage() for r in caplog.records)
    release = m.Release(request_id=release.request_id, session=signed.session, job_ids=(job,))
    first = _ask(service, release)
    assert isinstance(first, m.ReleaseResult) and [j.job_id for j in first.jobs] == [job]
    assert _ask(service, release) == first
    listed = _ask(service, m.ListJobs(signed.session))
    assert isinstance(listed, m.JobList) and job not in {j.job_id for j in listed.jobs}


def test_a_request_stuck_behind_a_lock_is_answered_busy_and_the_next_is_served(
        postgres: PrivatePostgres) -> None:
    """Another session holds a table our sign-in writes (an admin's tool left a transaction
    open, say). The request waits at most the lock timeout, then the device is told busy and
    asks again; once the lock is gone it is served. Without a timeout it would wait for as
    long as the other session does, and a worker's lane, which acknowledges in order, would
    hold its whole broker connection behind it (cloud/worker.py)."""
    import psycopg

    from cloud.storage import postgres as pg_store

    with psycopg.connect(postgres.url, autocommit=True) as admin:  # a database of its own
        admin.execute("CREATE DATABASE locks")
    url = postgres.url.rsplit("/", 1)[0] + "/locks"
    store = open_store(url)
    seed_demo(store, now=time.time())
    service = CloudService(store)
    holder = psycopg.connect(url, autocommit=False)
    try:
        holder.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")  # held until rollback
        started = time.monotonic()
        with pytest.raises(RemoteError) as refused:
            _ask(service, m.Identify("card", ALICE.badge))
        waited = time.monotonic() - started
        assert refused.value.code == ErrorCode.BUSY
        assert pg_store.LOCK_TIMEOUT_MS / 1000 - 0.5 <= waited < pg_store.LOCK_TIMEOUT_MS / 1000 + 5
    finally:
        holder.rollback()
        holder.close()
    signed = _ask(service, m.Identify("card", ALICE.badge))
    assert isinstance(signed, m.IdentifyResult)
