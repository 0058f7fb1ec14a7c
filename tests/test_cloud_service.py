"""The cloud's request handling against a real store (no broker needed), on SQLite and on
PostgreSQL (the ``store_url`` fixture of tests/conftest.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from clocks import Clock
from stored import stored_bytes

from cloud.demo import DEMO_USERS, seed_demo
from cloud.service import CloudService
from cloud.storage.factory import open_store
from protocol import messages as m
from protocol.errors import RemoteError


@pytest.fixture
def service(store_url: str) -> Iterator[CloudService]:
    store = open_store(store_url)
    seed_demo(store, now=time.time())
    yield CloudService(store)
    store.close()


def ask(service: CloudService, device: str, req: m.Request) -> m.Result:
    return m.decode_response(service.handle(device, m.encode(req)), req.TYPE)


def login(service: CloudService, device: str = "copier-1", user: int = 0) -> m.IdentifyResult:
    r = ask(service, device, m.Identify("card", DEMO_USERS[user].badge))
    assert isinstance(r, m.IdentifyResult) and r.display_name == DEMO_USERS[user].name
    return r


def identified(result: m.Result) -> str:
    """Who an identify answer names (an identity, not merely "an answer")."""
    assert isinstance(result, m.IdentifyResult), result
    return result.display_name


def test_badge_identifies_its_owner_and_lists_only_their_jobs(service: CloudService) -> None:
    alice = login(service)
    assert alice.display_name == "Alice Martin"
    jobs = ask(service, "copier-1", m.ListJobs(alice.session))
    assert isinstance(jobs, m.JobList)
    assert jobs.total == 5
    # Whose they are, by the store's own record, not by count.
    store = service.store
    user = store.user_by_email(DEMO_USERS[0].email)  # type: ignore[attr-defined]
    assert user is not None
    assert {j.owner_id for j in store.jobs([j.job_id for j in jobs.jobs])} == {  # type: ignore[attr-defined]
        user.id}
    assert [j.submitted_at for j in jobs.jobs] == sorted((j.submitted_at for j in jobs.jobs),
                                                         reverse=True)
    bob = login(service, user=1)
    bobs = ask(service, "copier-1", m.ListJobs(bob.session))
    assert isinstance(bobs, m.JobList)
    assert not {j.job_id for j in bobs.jobs} & {j.job_id for j in jobs.jobs}


def test_unknown_card_and_unregistered_device_are_refused(service: CloudService) -> None:
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Identify("card", "0000000001"))
    assert info.value.code == "unknown_card"
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-77", m.Identify("card", DEMO_USERS[0].badge))
    assert info.value.code == "unknown_device"


def test_card_numbers_and_codes_are_not_stored_in_clear(service: CloudService) -> None:
    raw = stored_bytes(service.store)  # type: ignore[arg-type]
    # The search sees what is stored: each user's address is there in clear.
    assert all(u.email.encode() in raw for u in DEMO_USERS)
    for u in DEMO_USERS:
        assert u.badge.encode() not in raw
        assert u.access_code.encode() not in raw


def test_a_session_is_bound_to_its_device(service: CloudService) -> None:
    alice = login(service, "copier-1")
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-2", m.ListJobs(alice.session))
    assert info.value.code == "wrong_device"


def test_release_is_exactly_once_and_a_repeat_gets_the_stored_answer(
        service: CloudService) -> None:
    alice = login(service)
    jobs = ask(service, "copier-1", m.ListJobs(alice.session))
    assert isinstance(jobs, m.JobList)
    job = jobs.jobs[0]
    req = m.Release(request_id="r-1", session=alice.session, job_ids=(job.job_id,))
    first = service.handle("copier-1", m.encode(req))
    again = service.handle("copier-1", m.encode(req))
    assert first == again
    rel = m.decode_response(first, req.TYPE)
    assert isinstance(rel, m.ReleaseResult)
    # A new request for the same job is refused: it is no longer held.
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Release(request_id="r-2", session=alice.session,
                                           job_ids=(job.job_id,)))
    assert info.value.code == "job_not_held"
    chunk = ask(service, "copier-1", m.FetchDocument(rel.release_id, job.job_id))
    assert isinstance(chunk, m.DocumentChunk) and chunk.data.startswith(b"%PDF")
    # Another device may not fetch or confirm it.
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-2", m.FetchDocument(rel.release_id, job.job_id))
    assert info.value.code == "wrong_device"
    report = m.JobPrinted("p-1", rel.release_id, job.job_id)
    ask(service, "copier-1", report)
    ask(service, "copier-1", report)  # the same report again: a QoS 1 redelivery
    ask(service, "copier-1", m.JobPrinted("p-2", rel.release_id, job.job_id))  # idempotent
    state = service.store.jobs([job.job_id])[0].state  # type: ignore[attr-defined]
    assert state == "PRINTED"
    # Recorded once: one audit row for the printing, whatever the number of reports.
    printed = service.store.query_all(  # type: ignore[attr-defined]
        "SELECT actor FROM audit WHERE action = ? AND subject = ?", "printed",
        f"job:{job.job_id}")
    assert printed == [("device:copier-1",)]


def test_a_refused_release_changes_nothing(service: CloudService) -> None:
    alice, bob = login(service), login(service, user=1)
    a = ask(service, "copier-1", m.ListJobs(alice.session))
    b = ask(service, "copier-1", m.ListJobs(bob.session))
    assert isinstance(a, m.JobList) and isinstance(b, m.JobList)
    mixed = (a.jobs[0].job_id, b.jobs[0].job_id)
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Release("r-x", alice.session, mixed))
    assert info.value.code == "job_not_found" and info.value.field == "job_ids[1]"
    after = ask(service, "copier-1", m.ListJobs(alice.session))
    assert isinstance(after, m.JobList) and after.total == a.total


def test_engine_failure_returns_the_job_to_held(service: CloudService) -> None:
    alice = login(service)
    a = ask(service, "copier-1", m.ListJobs(alice.session))
    assert isinstance(a, m.JobList)
    rel = ask(service, "copier-1", m.Release("r", alice.session, (a.jobs[0].job_id,)))
    assert isinstance(rel, m.ReleaseResult)
    ask(service, "copier-1", m.JobFailed("f", rel.release_id, a.jobs[0].job_id, "jam"))
    after = ask(service, "copier-1", m.ListJobs(alice.session))
    assert isinstance(after, m.JobList) and after.total == a.total


def test_malformed_requests_get_answers_naming_the_problem(service: CloudService) -> None:
    for payload, code, field in [
        (b"\xff\xfe", "bad_request", None),
        (b"[1,2]", "bad_request", None),
        (b'{"v":1,"type":"jobs.list"}', "invalid_field", "session"),
        (b'{"v":3,"type":"jobs.list"}', "unsupported_version", "v"),
        (b'{"v":1,"type":"nope"}', "unknown_type", "type"),
    ]:
        answer = json.loads(service.handle("copier-1", payload))
        assert answer["ok"] is False
        assert answer["error"]["code"] == code
        assert answer["error"].get("field") == field
    # and it still serves
    assert login(service).display_name == "Alice Martin"


def test_logout_ends_the_session(service: CloudService) -> None:
    alice = login(service)
    ask(service, "copier-1", m.Logout("l-1", alice.session))
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.ListJobs(alice.session))
    assert info.value.code == "invalid_session"


def test_access_code_identifies_its_owner(service: CloudService) -> None:
    r = ask(service, "copier-1", m.Identify("code", DEMO_USERS[1].access_code))
    assert isinstance(r, m.IdentifyResult) and r.display_name == "Bob Okafor"
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Identify("code", "555123"))
    assert info.value.code == "unknown_code"
    # A card number equal to someone's code is not that someone.
    with pytest.raises(RemoteError):
        ask(service, "copier-1", m.Identify("card", DEMO_USERS[1].access_code))


@pytest.mark.parametrize("code", ["000000", "123456", "987654", "abcdef", "12345", "12 456",
                                  "12345678901"])
def test_trivial_or_malformed_access_codes_are_refused(service: CloudService, code: str) -> None:
    from cloud.directory import set_access_code
    from protocol.errors import StoreError

    with pytest.raises(StoreError):
        set_access_code(service.store, DEMO_USERS[0].email, code)  # type: ignore[arg-type]


def test_a_request_id_reused_for_another_request_is_refused(service: CloudService) -> None:
    alice = login(service)
    ask(service, "copier-1", m.Logout("same-id", alice.session))
    bob = login(service, user=1)
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Release("same-id", bob.session, ("j_x",)))
    assert info.value.code == "invalid_field" and info.value.field == "request_id"


@pytest.fixture
def timed(store_url: str) -> tuple[CloudService, Clock]:
    clock = Clock(time.time())
    store = open_store(store_url)
    seed_demo(store, now=clock.now)
    from cloud.directory import set_password

    set_password(store, DEMO_USERS[0].email, "correct horse battery")
    return CloudService(store, clock=clock), clock


def test_username_and_password_log_in(timed: tuple[CloudService, Clock]) -> None:
    service, _ = timed
    r = ask(service, "copier-1", m.Identify("password", "correct horse battery",
                                            username="ALICE@example.org"))
    assert isinstance(r, m.IdentifyResult) and r.display_name == "Alice Martin"
    for username in ("alice@example.org", "nobody@example.org"):
        with pytest.raises(RemoteError) as info:
            ask(service, "copier-1", m.Identify("password", "wrong", username=username))
        assert info.value.code == "invalid_password"  # the same answer: no user enumeration


def test_five_wrong_codes_lock_the_device_and_say_until_when(
        timed: tuple[CloudService, Clock], store_url: str) -> None:
    service, clock = timed
    codes = ["555001", "555002", "555003", "555004"]
    for code in codes:
        with pytest.raises(RemoteError) as info:
            ask(service, "copier-1", m.Identify("code", code))
        assert info.value.code == "unknown_code"
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Identify("code", "555005"))
    assert info.value.code == "locked_out" and info.value.retry_after == 900
    assert "locked until" in info.value.message
    # Even the right code is refused while locked, on this device only.
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Identify("code", DEMO_USERS[0].access_code))
    assert info.value.code == "locked_out"
    assert identified(ask(service, "copier-2", m.Identify("code", DEMO_USERS[0].access_code))
                      ) == "Alice Martin"
    # The lock survives a restart of the cloud (a new store object on the same store) ...
    restarted = CloudService(open_store(store_url), clock=clock)
    with pytest.raises(RemoteError) as info:
        ask(restarted, "copier-1", m.Identify("code", DEMO_USERS[0].access_code))
    assert info.value.code == "locked_out"
    # ... and ends by itself.
    clock.now += 901
    assert identified(ask(restarted, "copier-1", m.Identify("code", DEMO_USERS[0].access_code))
                      ) == "Alice Martin"


def test_wrong_passwords_lock_the_user_on_every_device(timed: tuple[CloudService, Clock]) -> None:
    service, clock = timed
    for i in range(5):
        with pytest.raises(RemoteError) as info:
            ask(service, f"copier-{1 + i % 2}", m.Identify("password", f"guess-{i}",
                                                            username="alice@example.org"))
    assert info.value.code == "locked_out"
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-2", m.Identify("password", "correct horse battery",
                                            username="alice@example.org"))
    assert info.value.code == "locked_out"
    # Failures older than the window do not count.
    clock.now += 1000
    assert identified(ask(service, "copier-1", m.Identify(
        "password", "correct horse battery", username="alice@example.org"))) == "Alice Martin"


def test_self_association_links_an_unknown_badge(timed: tuple[CloudService, Clock]) -> None:
    service, _ = timed
    with pytest.raises(RemoteError):
        ask(service, "copier-1", m.Identify("card", "0000424242"))
    r = ask(service, "copier-1", m.Associate("a-1", "0000424242", "code",
                                             DEMO_USERS[1].access_code))
    assert isinstance(r, m.IdentifyResult) and r.display_name == "Bob Okafor"
    assert "linked" in r.note
    again = ask(service, "copier-2", m.Identify("card", "0000424242"))
    assert isinstance(again, m.IdentifyResult) and again.display_name == "Bob Okafor"
    audit = [a[2] for a in service.store.audit_log()]  # type: ignore[attr-defined]
    assert "card.self_associate" in audit


def test_a_third_card_replaces_the_oldest_or_is_refused_by_policy(
        timed: tuple[CloudService, Clock]) -> None:
    from cloud.storage.port import OrgSettings

    service, clock = timed
    store = service.store
    clock.now += 10  # after the demo badges were added
    ask(service, "copier-1", m.Associate("a-1", "0000000101", "code", DEMO_USERS[2].access_code))
    clock.now += 1
    # Chen now has two cards (the demo badge, then 101); a third replaces the demo badge.
    r = ask(service, "copier-1", m.Associate("a-2", "0000000102", "code",
                                             DEMO_USERS[2].access_code))
    assert isinstance(r, m.IdentifyResult) and "replaces your oldest" in r.note
    with pytest.raises(RemoteError):
        ask(service, "copier-1", m.Identify("card", DEMO_USERS[2].badge))
    with store.transaction():  # type: ignore[attr-defined]
        store.set_org_settings("org_demo", OrgSettings(card_policy="refuse"))  # type: ignore[attr-defined]
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Associate("a-3", "0000000103", "code",
                                             DEMO_USERS[2].access_code))
    assert info.value.code == "card_limit"


def test_a_card_of_another_user_cannot_be_taken_over(timed: tuple[CloudService, Clock]) -> None:
    service, _ = timed
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Associate("a-1", DEMO_USERS[0].badge, "code",
                                             DEMO_USERS[1].access_code))
    assert info.value.code == "not_allowed"
    r = ask(service, "copier-1", m.Identify("card", DEMO_USERS[0].badge))
    assert isinstance(r, m.IdentifyResult) and r.display_name == "Alice Martin"


def test_release_all_with_changes_and_policy(timed: tuple[CloudService, Clock]) -> None:
    from cloud.storage.port import OrgSettings

    service, _ = timed
    alice = login(service)
    rel = ask(service, "copier-1", m.Release("r-1", alice.session, (), all_held=True,
                                             grayscale=True, duplex=True, copies=3))
    assert isinstance(rel, m.ReleaseResult) and len(rel.jobs) == 5
    assert all(not j.color and j.duplex and j.copies == 3 for j in rel.jobs)
    bob = login(service, user=1)
    with service.store.transaction():  # type: ignore[attr-defined]
        service.store.set_org_settings(  # type: ignore[attr-defined]
            "org_demo", OrgSettings(release_changes=False))
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Release("r-2", bob.session, (), all_held=True,
                                           grayscale=True))
    assert info.value.code == "not_allowed"
    plain = ask(service, "copier-1", m.Release("r-3", bob.session, (), all_held=True))
    assert isinstance(plain, m.ReleaseResult) and len(plain.jobs) == 4
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Release("r-4", bob.session, ()))
    assert info.value.code == "invalid_field"


def test_delete_removes_held_jobs_of_the_user_only(timed: tuple[CloudService, Clock]) -> None:
    service, _ = timed
    alice, bob = login(service), login(service, user=1)
    a = ask(service, "copier-1", m.ListJobs(alice.session))
    b = ask(service, "copier-1", m.ListJobs(bob.session))
    assert isinstance(a, m.JobList) and isinstance(b, m.JobList)
    with pytest.raises(RemoteError):
        ask(service, "copier-1", m.DeleteJobs("d-0", alice.session, (b.jobs[0].job_id,)))
    ask(service, "copier-1", m.DeleteJobs("d-1", alice.session, (a.jobs[0].job_id,)))
    after = ask(service, "copier-1", m.ListJobs(alice.session))
    assert isinstance(after, m.JobList) and after.total == a.total - 1
    assert service.store.jobs([a.jobs[0].job_id])[0].state == "DELETED"  # type: ignore[attr-defined]


def test_held_jobs_expire_after_the_org_hold_time(timed: tuple[CloudService, Clock]) -> None:
    service, clock = timed
    alice = login(service)
    before = ask(service, "copier-1", m.ListJobs(alice.session))
    assert isinstance(before, m.JobList) and before.total == 5
    # Demo jobs were submitted 10..120 minutes before seeding; the default hold is 8 h.
    clock.now += 8 * 3600 - 600 * 3 + 1  # the three oldest of Alice's five are past 8 h now
    alice = login(service)
    listed = ask(service, "copier-1", m.ListJobs(alice.session))
    assert isinstance(listed, m.JobList) and listed.total == 2
    chores = service.housekeeping()
    assert chores["expired"] >= 3
    assert "job.expired" in [a[2] for a in service.store.audit_log()]  # type: ignore[attr-defined]


def test_a_release_nobody_fetched_lapses_back_to_held(timed: tuple[CloudService, Clock]) -> None:
    service, clock = timed
    alice = login(service)
    jobs = ask(service, "copier-1", m.ListJobs(alice.session))
    assert isinstance(jobs, m.JobList)
    first, second = jobs.jobs[0].job_id, jobs.jobs[1].job_id
    rel = ask(service, "copier-1", m.Release("r-1", alice.session, (first, second)))
    assert isinstance(rel, m.ReleaseResult)
    # The device fetched the second one only (then, say, the link died).
    ask(service, "copier-1", m.FetchDocument(rel.release_id, second))
    clock.now += 601
    assert service.housekeeping()["lapsed"] == 1
    states = {j.id: j.state for j in service.store.jobs([first, second])}  # type: ignore[attr-defined]
    assert states == {first: "HELD", second: "RELEASING"}


def test_a_store_from_an_older_release_gets_the_columns_added_since(store_url: str) -> None:
    import sqlite3

    import psycopg

    con: Any = (sqlite3.connect(store_url.removeprefix("sqlite:///"))
                if store_url.startswith("sqlite:") else psycopg.connect(store_url))
    con.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, owner_id TEXT, name TEXT NOT NULL, "
                "pages INTEGER NOT NULL, color INTEGER NOT NULL, duplex INTEGER NOT NULL, "
                "copies INTEGER NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL, "
                "submitted_at REAL NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL, "
                "release_id TEXT, device_id TEXT, updated_at REAL NOT NULL, "
                "expires_at REAL NOT NULL, client_id TEXT)")
    con.commit()
    con.close()
    service = CloudService(open_store(store_url))
    assert service.housekeeping()["lapsed"] == 0  # the query needs jobs.fetched_at
