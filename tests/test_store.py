"""One store suite, run against every backend: SQLite on a temporary file and PostgreSQL in a
fresh schema (the ``store_url`` fixture of tests/conftest.py; tests/pg.py finds the server).
What a user of the store would notice: results, orders, guards, errors, transactions that roll
back whole, and races that exactly one wins."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pg import ScratchDatabase
from psycopg import sql
from racing import race

from cloud.demo import DEMO_USERS, seed_demo
from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.storage.port import ClientInstall, ConflictError, JobStateError, OrgSettings
from cloud.storage.postgres import PostgresStore, pg_sql
from cloud.storage.sql import SqlStore
from protocol import messages as m
from protocol.errors import ErrorCode, RemoteError, StoreError

NOW = 1_800_000_000.0


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    # store_url (tests/conftest.py): a fresh store per test, on each backend in turn.
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def pg_store(pg_database: ScratchDatabase) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_database.schema_url())
    yield s
    s.close()


@pytest.fixture
def org(store: SqlStore) -> str:
    return store.create_org("Acme", org_id="org_acme")


@pytest.fixture
def alice(store: SqlStore, org: str) -> str:
    return store.add_user(org, "alice@acme.test", "Alice")


def add_job(store: SqlStore, owner: str | None, name: str = "doc.pdf", *, at: float = NOW,
            data: bytes = b"%PDF-1.4 a small document", hold: float = 3600.0,
            state: str = "HELD", client_id: str | None = None) -> str:
    return store.add_job(owner, name, data, hashlib.sha256(data).hexdigest(), pages=3,
                         color=True, duplex=False, copies=2, source="WS-7", submitted_at=at,
                         expires_at=at + hold, state=state, client_id=client_id)




# ---------------------------------------------------------------------------- orgs


def test_orgs_have_a_secret_and_validated_settings(store: SqlStore, org: str) -> None:
    assert store.orgs() == [("org_acme", "Acme")]
    secret = store.org_secret(org)
    assert isinstance(secret, bytes) and len(secret) == 32
    assert store.org_secret(store.create_org("Other")) != secret
    assert store.org_settings(org) == OrgSettings()
    changed = OrgSettings(hold_hours=0.5, card_policy="refuse", release_changes=False,
                          aop_pending="join")
    store.set_org_settings(org, changed)
    assert store.org_settings(org) == changed
    with pytest.raises(StoreError, match="hold time") as info:
        OrgSettings(hold_hours=100)
    assert info.value.code == "config_invalid"
    with pytest.raises(StoreError, match="no org"):
        store.set_org_settings("org_missing", changed)
    with pytest.raises(StoreError, match="no org"):
        store.org_secret("org_missing")
    with pytest.raises(StoreError, match="exists already"):
        store.create_org("Again", org_id=org)


# ---------------------------------------------------------------------------- users


def test_users_are_found_by_id_and_case_insensitive_email(store: SqlStore, org: str) -> None:
    bob = store.add_user(org, " Bob@Acme.TEST ", "Bob")
    alice = store.add_user(org, "alice@acme.test", "Alice")
    found = store.user_by_email("BOB@acme.test ")
    assert found is not None and found == store.user(bob)
    assert (found.org_id, found.email, found.display_name) == (org, "bob@acme.test", "Bob")
    assert [u.id for u in store.users(org)] == [alice, bob]  # by email
    assert store.user("u_missing") is None and store.user_by_email("x@y.z") is None
    with pytest.raises(StoreError, match="exists already"):
        store.add_user(org, "ALICE@acme.test", "Alice again")
    assert store.password_hash(alice) is None
    store.set_password_hash(alice, "scrypt$...")
    assert store.password_hash(alice) == "scrypt$..."
    store.set_password_hash(alice, None)
    assert store.password_hash(alice) is None


# ---------------------------------------------------------------------------- cards, codes


def test_cards_are_listed_oldest_first_and_can_be_removed(store: SqlStore, org: str,
                                                          alice: str) -> None:
    store.add_card(org, "h-new", alice, NOW + 10)
    store.add_card(org, "h-old", alice, NOW)
    assert store.user_cards(alice) == [("h-old", NOW), ("h-new", NOW + 10)]
    assert store.user_by_card(org, "h-old") == store.user(alice)
    assert store.user_by_card("org_other", "h-old") is None
    with pytest.raises(StoreError, match="linked to a user already"):
        store.add_card(org, "h-old", alice, NOW)
    assert store.remove_card(org, "h-old") is True
    assert store.remove_card(org, "h-old") is False
    assert store.user_by_card(org, "h-old") is None
    store.add_card(org, "h-3", alice, NOW + 20)
    assert store.remove_cards_of(alice) == 2
    assert store.user_cards(alice) == []


def test_a_new_access_code_replaces_the_old_and_a_taken_one_changes_nothing(
        store: SqlStore, org: str, alice: str) -> None:
    bob = store.add_user(org, "bob@acme.test", "Bob")
    store.set_access_code(org, "code-1", alice)
    store.set_access_code(org, "code-2", alice)
    assert store.user_by_code(org, "code-1") is None
    assert store.user_by_code(org, "code-2") == store.user(alice)
    store.set_access_code(org, "code-b", bob)
    with pytest.raises(StoreError, match="taken"), store.transaction():
        store.set_access_code(org, "code-2", bob)
    # The failed change rolled back whole: Bob kept his code.
    assert store.user_by_code(org, "code-b") == store.user(bob)
    assert store.user_by_code(org, "code-2") == store.user(alice)


# ---------------------------------------------------------------------------- guessing


def test_failures_count_within_the_window_and_locks_expire(store: SqlStore) -> None:
    assert store.record_failure("device", "copier-1", NOW, 600) == 1
    assert store.record_failure("device", "copier-1", NOW + 1, 600) == 2
    assert store.record_failure("device", "copier-2", NOW + 1, 600) == 1
    # The first two fall out of the window.
    assert store.record_failure("device", "copier-1", NOW + 601, 600) == 1
    store.clear_failures("device", "copier-1")
    assert store.record_failure("device", "copier-1", NOW + 602, 600) == 1

    assert store.locked_until("user", "a@b.c", NOW) is None
    store.lock("user", "a@b.c", NOW + 900)
    assert store.locked_until("user", "a@b.c", NOW) == NOW + 900
    store.lock("user", "a@b.c", NOW + 1800)  # a second lock extends the first
    assert store.locked_until("user", "a@b.c", NOW + 1000) == NOW + 1800
    assert store.locked_until("user", "a@b.c", NOW + 1800) is None  # expired
    store.unlock("user", "a@b.c")
    assert store.locked_until("user", "a@b.c", NOW) is None


# ---------------------------------------------------------------------------- devices


def test_devices_belong_to_an_org_and_keep_their_status(store: SqlStore, org: str) -> None:
    store.add_device("copier-2", org, "Floor 2")
    store.add_device("copier-1", org, "Floor 1")
    assert store.devices() == [("copier-1", org, "Floor 1", "unknown"),
                               ("copier-2", org, "Floor 2", "unknown")]
    assert store.devices("org_other") == []
    assert store.device_org("copier-1") == org and store.device_org("nope") is None
    assert store.device_status("copier-1") == ("unknown", -1)
    store.record_status("copier-1", "idle", 7, NOW)
    assert store.device_status("copier-1") == ("idle", 7)
    with pytest.raises(StoreError, match="exists already"):
        store.add_device("copier-1", org, "again")
    with pytest.raises(StoreError, match="unknown"):
        store.add_device("copier-3", "org_missing", "orphan")


# ---------------------------------------------------------------------------- sessions


def test_sessions_extend_end_and_are_purged(store: SqlStore, alice: str) -> None:
    store.create_session("t1", "copier-1", alice, NOW + 300)
    s = store.session("t1")
    assert s is not None and (s.device_id, s.user_id, s.expires_at, s.ended) == (
        "copier-1", alice, NOW + 300, False)
    store.extend_session("t1", NOW + 600)
    store.end_session("t1")
    s = store.session("t1")
    assert s is not None and s.expires_at == NOW + 600 and s.ended is True
    store.create_session("t2", "copier-1", alice, NOW + 1000)
    assert store.purge_sessions(NOW + 601) == 1
    assert store.session("t1") is None and store.session("t2") is not None


# ---------------------------------------------------------------------------- jobs


def test_a_job_keeps_what_was_submitted(store: SqlStore, alice: str) -> None:
    data = bytes(range(256)) * 3  # every byte value, NUL included
    job_id = add_job(store, alice, "Report.pdf", data=data, client_id="cli-1")
    [job] = store.jobs([job_id])
    assert (job.owner_id, job.name, job.pages, job.color, job.duplex, job.copies, job.size,
            job.sha256, job.submitted_at, job.source, job.state, job.release_id, job.device_id,
            job.expires_at, job.client_id) == (
        alice, "Report.pdf", 3, True, False, 2, 768, hashlib.sha256(data).hexdigest(), NOW,
        "WS-7", "HELD", None, None, NOW + 3600, "cli-1")
    assert isinstance(job.submitted_at, float) and isinstance(job.size, int)
    assert store.jobs([]) == [] and store.jobs(["j_missing"]) == []
    assert [j.id for j in store.jobs_of_client("cli-1", "HELD")] == [job_id]
    assert store.document(job_id, 0, 10_000) == data


def test_held_jobs_are_newest_first_paged_and_exclude_expired_and_others(
        store: SqlStore, org: str, alice: str) -> None:
    bob = store.add_user(org, "bob@acme.test", "Bob")
    ids = [add_job(store, alice, f"doc {i}", at=NOW - 60 * i) for i in range(5)]
    add_job(store, alice, "stale", at=NOW - 7200)  # expired an hour ago
    add_job(store, alice, "pending", state="PENDING_AUTH")
    add_job(store, bob, "bob's")
    page, total = store.held_jobs(alice, 0, 3, NOW)
    assert total == 5 and [j.id for j in page] == ids[:3]
    page, total = store.held_jobs(alice, 3, 3, NOW)
    assert total == 5 and [j.id for j in page] == ids[3:]
    assert store.held_jobs(alice, 10, 3, NOW) == ([], 5)
    # A job is held until its expiry, not at it.
    assert store.held_jobs(alice, 0, 50, NOW - 240 + 3600)[1] == 4
    assert [j.name for j in store.all_jobs("PENDING_AUTH")] == ["pending"]
    assert len(store.all_jobs()) == 8


def test_release_printed_and_held_follow_the_job_states(store: SqlStore, alice: str) -> None:
    job_id = add_job(store, alice)
    store.create_release("rel-1", "copier-1", alice, NOW, '{"copies": 3}')
    assert store.release_device("rel-1") == "copier-1"
    assert store.release_options("rel-1") == '{"copies": 3}'
    assert store.release_device("rel-x") is None and store.release_options("rel-x") == ""
    store.set_releasing(job_id, "rel-1", "copier-1", NOW)
    [job] = store.jobs([job_id])
    assert (job.state, job.release_id, job.device_id) == ("RELEASING", "rel-1", "copier-1")
    # Not HELD any more: a second release is refused and changes nothing.
    with pytest.raises(JobStateError) as info:
        store.set_releasing(job_id, "rel-2", "copier-2", NOW)
    assert info.value.error_code is ErrorCode.JOB_NOT_HELD and info.value.job_id == job_id
    assert store.jobs([job_id])[0].release_id == "rel-1"
    # The engine failed: back to HELD, free for another release.
    store.set_held(job_id, NOW)
    [job] = store.jobs([job_id])
    assert (job.state, job.release_id, job.device_id) == ("HELD", None, None)
    store.set_printed(job_id, NOW)  # only a RELEASING job can be printed
    assert store.jobs([job_id])[0].state == "HELD"
    store.set_releasing(job_id, "rel-1", "copier-1", NOW)
    store.set_printed(job_id, NOW)
    assert store.jobs([job_id])[0].state == "PRINTED"
    store.set_held(job_id, NOW)  # a printed job stays printed
    assert store.jobs([job_id])[0].state == "PRINTED"
    with pytest.raises(JobStateError) as info:
        store.document(job_id, 0, 10)  # the document went with the print
    assert info.value.error_code is ErrorCode.JOB_NOT_FOUND


def test_documents_are_read_in_slices(store: SqlStore, alice: str) -> None:
    data = bytes((i * 7) % 256 for i in range(100_000))
    job_id = add_job(store, alice, data=data)
    chunks = [store.document(job_id, off, 32_768) for off in range(0, len(data), 32_768)]
    assert [len(c) for c in chunks] == [32_768, 32_768, 32_768, 1_696]
    assert b"".join(chunks) == data
    assert store.document(job_id, 99_999, 10) == data[-1:]
    assert store.document(job_id, len(data), 10) == b""
    with pytest.raises(JobStateError):
        store.document("j_missing", 0, 10)


def test_deleting_and_expiring_only_touch_waiting_jobs(store: SqlStore, alice: str) -> None:
    held, pending, releasing = (add_job(store, alice, s, state=s)
                                for s in ("HELD", "PENDING_AUTH", "HELD"))
    store.set_releasing(releasing, "rel-1", "copier-1", NOW)
    assert store.delete_job(held, NOW) is True
    assert store.delete_job(held, NOW) is False  # already gone
    assert store.delete_job(releasing, NOW) is False
    assert store.jobs([held])[0].state == "DELETED"
    with pytest.raises(JobStateError):
        store.document(held, 0, 10)
    old = [add_job(store, alice, f"old {i}", at=NOW - 7200) for i in range(3)]
    assert len(store.expire_jobs(NOW, limit=2)) == 2
    expired = store.expire_jobs(NOW)
    assert len(expired) == 1
    assert {j.state for j in store.jobs(old)} == {"EXPIRED"}
    assert {j.id for j in store.expire_jobs(NOW + 3600)} == {pending}
    assert store.jobs([releasing])[0].state == "RELEASING"


# ---------------------------------------------------------------------------- answers, audit


def test_stored_answers_are_unique_per_device_request_and_purged(store: SqlStore) -> None:
    assert store.stored_reply("copier-1", "r-1") is None
    store.store_reply("copier-1", "r-1", "jobs.release", b'{"ok":true}', NOW)
    assert store.stored_reply("copier-1", "r-1") == ("jobs.release", b'{"ok":true}')
    with pytest.raises(ConflictError):
        store.store_reply("copier-1", "r-1", "jobs.release", b"again", NOW)
    store.store_reply("copier-2", "r-1", "jobs.release", b"other device", NOW + 10)
    assert store.purge_replies(NOW + 5) == 1
    assert store.stored_reply("copier-1", "r-1") is None
    assert store.stored_reply("copier-2", "r-1") is not None


def test_the_audit_log_is_newest_first(store: SqlStore) -> None:
    for i in range(5):
        store.audit(NOW + i, "admin", f"act-{i}", "user:u", "detail" if i == 4 else "")
    log = store.audit_log(limit=3)
    assert log == [(NOW + 4, "admin", "act-4", "user:u", "detail"),
                   (NOW + 3, "admin", "act-3", "user:u", ""),
                   (NOW + 2, "admin", "act-2", "user:u", "")]


def test_an_audit_row_lands_in_the_org_of_its_subject_else_of_its_actor(
        store: SqlStore, org: str, alice: str) -> None:
    """The org is found inside the row's INSERT (one statement): a user by id or by email in
    any case, a device, a technician, a queue, a print client, a job by its owner or else its
    client; a subject of no org gives way to the actor; a row that names no org at all, or
    only things that do not exist, has none (never another org's)."""
    other = store.create_org("Other", org_id="org_other")
    store.add_device("copier-x", other, "Copier X")
    store.add_technician("tech-1", other, "Tess", "badge", "h" * 64, NOW)
    store.add_queue("queue-1", other, "Colour A3", NOW)
    store.add_install(ClientInstall("inst-1", other, "windows", "PC-7", "kim", None, "link",
                                    NOW, None, None), "t" * 64)
    job = add_job(store, alice)
    waiting = add_job(store, None, client_id="inst-1")  # a client's job, nobody's yet
    for actor, action, subject in [
            ("device:copier-x", "a", f"user:{alice}"),
            ("admin", "b", "user:ALICE@acme.test "),
            ("admin", "c", "device:copier-x"),
            ("device:copier-x", "d", f"job:{job}"),
            (f"user:{alice}", "e", "release-without-a-kind"),
            ("device:copier-x", "f", "user:nobody"),
            ("someone", "g", "no-kind-either"),
            ("admin", "h", f"org:{other}"),
            ("admin", "j", "technician:tech-1"),
            ("admin", "k", "queue:queue-1"),
            ("admin", "l", "client:inst-1"),
            ("admin", "m", f"job:{waiting}"),
            ("device:nowhere", "n", "user:nobody")]:
        store.audit(NOW, actor, action, subject)
    store.audit(NOW, "device:copier-x", "i", f"user:{alice}", org_id=other)  # the caller knows
    assert sorted((a, o) for a, _, o in store.audit_org_of(20)) == [
        ("a", org), ("b", org), ("c", other), ("d", org), ("e", org), ("f", other), ("g", ""),
        ("h", other), ("i", other), ("j", other), ("k", other), ("l", other), ("m", other),
        ("n", "")]


# ---------------------------------------------------------------------------- transactions


def test_a_failed_transaction_leaves_nothing_half_written(store: SqlStore, alice: str) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        job_id = add_job(store, alice)
        with store.transaction():  # an inner level joins the outer one
            store.audit(NOW, "admin", "job.submit", job_id)
        raise RuntimeError("the request failed after writing")
    assert store.all_jobs() == [] and store.audit_log() == []
    with pytest.raises(StoreError), store.transaction():
        store.add_user("org_acme", "carol@acme.test", "Carol")
        store.add_user("org_acme", "alice@acme.test", "Alice twice")  # taken: abandons all
    assert store.user_by_email("carol@acme.test") is None
    with store.transaction():  # and the store goes on working
        job_id = add_job(store, alice)
    assert store.document(job_id, 0, 4) == b"%PDF"


def test_racing_releases_of_one_job_have_exactly_one_winner(store: SqlStore, backend: str,
                                                            alice: str) -> None:
    job_id = add_job(store, alice)
    n = 4
    barrier = threading.Barrier(n, timeout=10)
    saw_held: list[bool] = []

    def release(i: int) -> str:
        if backend == "sqlite":
            barrier.wait()  # SQLite queues writers at BEGIN IMMEDIATE: race to get there
        with store.transaction():
            if backend == "postgres":
                barrier.wait()  # all transactions open at once, each about to write
            saw_held.append(store.jobs([job_id])[0].state == "HELD")
            store.create_release(f"rel-{i}", f"copier-{i}", alice, NOW)
            store.set_releasing(job_id, f"rel-{i}", f"copier-{i}", NOW)
            time.sleep(0.05)  # hold the row: the others must wait on the guarded UPDATE
        return f"rel-{i}"

    results = race(store, n, release)
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1, results
    assert all(isinstance(r, JobStateError) for r in results if r not in winners), results
    [job] = store.jobs([job_id])
    assert (job.state, job.release_id) == ("RELEASING", winners[0])
    # The losers' releases rolled back with their refusals.
    assert [store.release_device(f"rel-{i}") is not None for i in range(n)].count(True) == 1
    if backend == "postgres":
        # Every worker read HELD, yet only one could act on it: the guard, not isolation.
        assert saw_held == [True] * n


def test_racing_stores_of_one_answer_keep_exactly_one(store: SqlStore, backend: str) -> None:
    n = 4
    barrier = threading.Barrier(n, timeout=10)

    def answer(i: int) -> int:
        if backend == "sqlite":
            barrier.wait()
        with store.transaction():
            if backend == "postgres":
                barrier.wait()
            store.store_reply("copier-1", "r-1", "jobs.release", f"answer {i}".encode(), NOW)
            time.sleep(0.05)
        return i

    results = race(store, n, answer)
    winners = [r for r in results if isinstance(r, int)]
    assert len(winners) == 1, results
    assert sum(isinstance(r, ConflictError) for r in results) == n - 1, results
    assert store.query_one("SELECT count(*) FROM replies") == (1,)
    assert store.stored_reply("copier-1", "r-1") == ("jobs.release",
                                                     f"answer {winners[0]}".encode())


# ---------------------------------------------------------------------------- the service


def ask(service: CloudService, device: str, req: m.Request) -> m.Result:
    return m.decode_response(service.handle(device, m.encode(req)), req.TYPE)


def test_the_cloud_service_works_on_either_backend(store: SqlStore) -> None:
    seed_demo(store, now=time.time())
    service = CloudService(store)
    alice = ask(service, "copier-1", m.Identify("card", DEMO_USERS[0].badge))
    assert isinstance(alice, m.IdentifyResult) and alice.display_name == "Alice Martin"
    jobs = ask(service, "copier-1", m.ListJobs(alice.session, limit=2))
    assert isinstance(jobs, m.JobList) and jobs.total == 5 and len(jobs.jobs) == 2
    job = jobs.jobs[0]
    req = m.Release("r-1", alice.session, (job.job_id,), copies=3)
    first = service.handle("copier-1", m.encode(req))
    assert service.handle("copier-1", m.encode(req)) == first  # the stored answer
    rel = m.decode_response(first, req.TYPE)
    assert isinstance(rel, m.ReleaseResult) and rel.jobs[0].copies == 3
    chunk = ask(service, "copier-1", m.FetchDocument(rel.release_id, job.job_id))
    assert isinstance(chunk, m.DocumentChunk) and chunk.data.startswith(b"%PDF")
    ask(service, "copier-1", m.JobPrinted("p-1", rel.release_id, job.job_id))
    assert store.jobs([job.job_id])[0].state == "PRINTED"
    after = ask(service, "copier-1", m.ListJobs(alice.session))
    assert isinstance(after, m.JobList) and after.total == 4


def test_two_copiers_releasing_one_job_at_once_print_it_once(store: SqlStore) -> None:
    seed_demo(store, now=time.time())
    sessions = {}
    for device in ("copier-1", "copier-2"):
        r = ask(CloudService(store), device, m.Identify("card", DEMO_USERS[0].badge))
        assert isinstance(r, m.IdentifyResult) and r.display_name == DEMO_USERS[0].name
        sessions[device] = r.session
    user = store.user_by_email(DEMO_USERS[0].email)
    assert user is not None
    job_id = store.held_jobs(user.id, 0, 1, time.time())[0][0].id
    barrier = threading.Barrier(2, timeout=10)
    devices = list(sessions)

    def release(i: int) -> m.Result:
        service = CloudService(store)  # each worker its own service and connection
        barrier.wait()
        return ask(service, devices[i], m.Release(f"r-{i}", sessions[devices[i]], (job_id,)))

    results = race(store, 2, release)
    assert sum(isinstance(r, m.ReleaseResult) for r in results) == 1, results
    [refused] = [r for r in results if isinstance(r, RemoteError)]
    assert refused.code == "job_not_held"


class ReadThenWrite:
    """The store, but ``set_printed`` waits until every racing worker has got that far: all of
    them read the job as RELEASING before any writes, the interleaving a loaded PostgreSQL
    gives now and then, made certain. SQLite serialises whole requests (BEGIN IMMEDIATE), so
    there no two workers can both have read RELEASING: it gets no rendezvous, only the race."""

    def __init__(self, store: SqlStore, barrier: threading.Barrier | None) -> None:
        self._store, self._barrier = store, barrier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def set_printed(self, job_id: str, now: float) -> Any:
        if self._barrier is not None:
            self._barrier.wait()
        return self._store.set_printed(job_id, now)

    def set_held(self, job_id: str, now: float) -> Any:
        if self._barrier is not None:
            self._barrier.wait()
        return self._store.set_held(job_id, now)


@pytest.mark.parametrize("report_type", ["printed", "failed"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_racing_reports_of_one_job_are_recorded_once(store: SqlStore, backend: str,
                                                     report_type: str) -> None:
    """A live report and its repeats (a QoS 1 redelivery, a reconcile after a restart) reach
    two workers at once, each with its own request id: both are answered, the job ends
    PRINTED (or back in HELD), and the cloud records the outcome once."""
    seed_demo(store, now=time.time())
    service = CloudService(store)
    alice = ask(service, "copier-1", m.Identify("card", DEMO_USERS[0].badge))
    assert isinstance(alice, m.IdentifyResult) and alice.display_name == DEMO_USERS[0].name
    user = store.user_by_email(DEMO_USERS[0].email)
    assert user is not None
    job_id = store.held_jobs(user.id, 0, 1, time.time())[0][0].id
    rel = ask(service, "copier-1", m.Release("r-1", alice.session, (job_id,)))
    assert isinstance(rel, m.ReleaseResult) and [j.job_id for j in rel.jobs] == [job_id]
    ask(service, "copier-1", m.FetchDocument(rel.release_id, job_id))
    rendezvous = threading.Barrier(2, timeout=10) if backend == "postgres" else None

    def report(i: int) -> m.Result:
        # Each worker its own service and connection.
        mine = CloudService(ReadThenWrite(store, rendezvous))  # type: ignore[arg-type]
        request: m.Request = (
            m.JobPrinted(f"p-{i}", rel.release_id, job_id) if report_type == "printed" else
            m.JobFailed(f"f-{i}", rel.release_id, job_id, "jam"))
        return ask(mine, "copier-1", request)

    results = race(store, 2, report)
    # Every report is answered. A repeat of "printed" is acknowledged; a repeat of "failed"
    # that comes after the job left the release may be told the job is no longer in it.
    assert any(isinstance(r, m.Ack) for r in results), results
    assert all(isinstance(r, m.Ack) or (report_type == "failed" and isinstance(r, RemoteError)
                                        and r.code == "job_not_found") for r in results), results
    state, action = ("PRINTED", "printed") if report_type == "printed" else (
        "HELD", "print.failed")
    assert store.jobs([job_id])[0].state == state
    rows = store.query_all("SELECT actor FROM audit WHERE action = ? AND subject = ?",
                           action, f"job:{job_id}")
    assert rows == [("device:copier-1",)]


# ---------------------------------------------------------------------------- PostgreSQL


def test_placeholders_become_psycopg_style_outside_quotes() -> None:
    assert pg_sql("SELECT a FROM t WHERE b=? AND c IN (?,?)") == (
        "SELECT a FROM t WHERE b=%s AND c IN (%s,%s)")
    assert pg_sql("SELECT '?', \"odd?\" FROM t WHERE x LIKE 'a%' AND y=?") == (
        "SELECT '?', \"odd?\" FROM t WHERE x LIKE 'a%%' AND y=%s")
    assert pg_sql("SELECT 'it''s ?' -- why?\n, ?") == "SELECT 'it''s ?' -- why?\n, %s"
    assert pg_sql("SELECT 1") is pg_sql("SELECT 1")  # translated once


def test_percent_signs_and_question_marks_in_sql_reach_the_database(store: SqlStore,
                                                                     org: str) -> None:
    store.create_org("50% off?", org_id="org_sale")
    assert store.query_all("SELECT id FROM orgs WHERE name LIKE '50%' AND name LIKE ?",
                           "%?") == [("org_sale",)]


def test_open_store_opens_postgresql_urls(pg_database: ScratchDatabase) -> None:
    s = open_store(pg_database.schema_url())
    try:
        assert isinstance(s, PostgresStore) and s.orgs() == []
    finally:
        s.close()


def test_an_unreachable_server_is_a_store_error_naming_where_and_what_to_check() -> None:
    with pytest.raises(StoreError) as info:
        PostgresStore("postgresql://mfd:s3cret@127.0.0.1:1/cloud")
    message = str(info.value)
    assert "127.0.0.1:1" in message and "database cloud" in message and "as mfd" in message
    assert "running" in message and "s3cret" not in message
    with pytest.raises(StoreError) as info:
        PostgresStore("postgresql://127.0.0.1/cloud?no_such_option=1")
    assert info.value.code == "config_invalid"


def test_a_missing_database_is_named_with_the_command_that_creates_it(
        pg_database: ScratchDatabase) -> None:
    with pytest.raises(StoreError, match=r"createdb .* mfdkit_absent"):
        PostgresStore(pg_database.server.rsplit("/", 1)[0] + "/mfdkit_absent")


def end_backend(db: ScratchDatabase, store: PostgresStore) -> None:
    row = store.query_one("SELECT pg_backend_pid()")
    assert row is not None
    with db.connect() as admin:  # waits (up to 5 s) until the backend is gone
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (row[0],))


def test_a_connection_lost_between_requests_is_reopened(pg_database: ScratchDatabase,
                                                        pg_store: PostgresStore) -> None:
    pg_store.create_org("Acme", org_id="org_acme")
    end_backend(pg_database, pg_store)
    with pg_store.transaction():
        assert pg_store.orgs() == [("org_acme", "Acme")]


@pytest.fixture
def badge_cloud(pg_database: ScratchDatabase) -> Iterator[tuple[PostgresStore, CloudService,
                                                                bytes]]:
    """A PostgreSQL store with the demo org, its cloud, and a known badge's identify."""
    store = PostgresStore(pg_database.schema_url())
    seed_demo(store, now=time.time(), devices=("copier-1",))
    yield store, CloudService(store), m.encode(m.Identify("card", DEMO_USERS[0].badge))
    store.close()


def test_a_connection_lost_between_badges_is_reopened_for_the_one_statement_sign_in(
        pg_database: ScratchDatabase,
        badge_cloud: tuple[PostgresStore, CloudService, bytes]) -> None:
    # A known badge's sign-in is one statement outside any transaction (card_sign_in): the
    # server's "terminating connection" answered in its place means it never ran, so it is
    # sent once more on a new connection, and the badge is answered, not told "busy".
    store, service, badge = badge_cloud
    first = m.decode_response(service.handle("copier-1", badge), "identify")
    end_backend(pg_database, store)
    again = m.decode_response(service.handle("copier-1", badge), "identify")
    assert isinstance(first, m.IdentifyResult) and isinstance(again, m.IdentifyResult)
    assert again.session != first.session and again.user_id == first.user_id
    logins = [row for row in store.audit_log() if row[2] == "login"]
    assert len(logins) == 2  # the statement ran once per badge


def test_a_sign_in_stuck_behind_a_lock_is_busy_and_keeps_its_connection(
        pg_database: ScratchDatabase,
        badge_cloud: tuple[PostgresStore, CloudService, bytes]) -> None:
    # The one-statement sign-in waits for the device's sign-in budget row while another session
    # holds it; past the lock timeout the badge is told busy, and the connection, still good,
    # is kept (a lock timeout is not a lost connection), so the next badge is served on it.
    store, service, badge = badge_cloud
    for _ in range(2):  # the first makes the budget's row
        assert isinstance(m.decode_response(service.handle("copier-1", badge), "identify"),
                          m.IdentifyResult)
    store.execute("SET lock_timeout = 300")  # this connection's, for the test's sake
    pid = store.query_one("SELECT pg_backend_pid()")
    schema = store.query_one("SELECT current_schema()")
    assert schema is not None
    with pg_database.connect() as holder:
        holder.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(str(schema[0]))))
        holder.execute("BEGIN")
        holder.execute("SELECT * FROM throttles WHERE scope='login' AND subject='copier-1' "
                       "FOR UPDATE")
        with pytest.raises(RemoteError) as refused:
            m.decode_response(service.handle("copier-1", badge), "identify")
        assert refused.value.code == ErrorCode.BUSY
        holder.execute("ROLLBACK")
    assert store.query_one("SELECT pg_backend_pid()") == pid
    assert isinstance(m.decode_response(service.handle("copier-1", badge), "identify"),
                      m.IdentifyResult)


def test_a_connection_lost_during_a_transaction_saves_none_of_it(
        pg_database: ScratchDatabase, pg_store: PostgresStore) -> None:
    with pytest.raises(StoreError, match=r"PostgreSQL at \S+, database "), \
            pg_store.transaction():
        pg_store.create_org("Half", org_id="org_half")
        end_backend(pg_database, pg_store)
        with pytest.raises(StoreError):
            pg_store.create_org("Other", org_id="org_other")
        # Carrying on regardless must not reconnect and save the rest on its own.
        pg_store.create_org("Rest", org_id="org_rest")
    assert pg_store.orgs() == []


def test_a_swallowed_conflict_is_not_committed_silently(pg_store: PostgresStore) -> None:
    # PostgreSQL aborts the whole transaction at a failed statement; a COMMIT then would quietly
    # roll back. The store says so instead.
    pg_store.create_org("Acme", org_id="org_acme")
    with pytest.raises(StoreError, match="nothing was saved"), pg_store.transaction():
        pg_store.create_org("Beta", org_id="org_beta")
        with pytest.raises(StoreError):
            pg_store.create_org("Acme again", org_id="org_acme")
    assert pg_store.orgs() == [("org_acme", "Acme")]
    with pg_store.transaction():  # the connection is usable again
        pg_store.create_org("Beta", org_id="org_beta")
    assert len(pg_store.orgs()) == 2
