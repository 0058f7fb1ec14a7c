"""The user's first page of jobs in the identify answer (issue 13): a device that gives its page
size is answered with the page ``jobs.list`` would give, so the panel shows the list after one
round trip; on SQLite and PostgreSQL (``store_url``), and through the broker (``world``).

A technician's answer carries none, nor does one to a device that did not ask (an older one);
the guessing lockout and the badge throttle refuse exactly as they did."""

from __future__ import annotations

import time

import pytest
from clocks import Clock
from conftest import World

from cloud import admin, throttle
from cloud.demo import DEMO_USERS, seed_demo
from cloud.directory import submit_job
from cloud.service import CloudService
from cloud.storage.factory import open_store
from device_app.link import MqttCloudLink
from protocol import messages as m
from protocol.errors import RemoteError

ALICE, BOB = DEMO_USERS[0], DEMO_USERS[1]


@pytest.fixture
def timed(store_url: str) -> tuple[CloudService, Clock]:
    clock = Clock(time.time())
    store = open_store(store_url)
    seed_demo(store, now=clock.now)
    from cloud.directory import set_password

    set_password(store, ALICE.email, "correct horse battery")
    return CloudService(store, clock=clock), clock


def ask(service: CloudService, device: str, req: m.Request) -> m.Result:
    return m.decode_response(service.handle(device, m.encode(req)), req.TYPE)


def identified(result: m.Result) -> m.IdentifyResult:
    assert isinstance(result, m.IdentifyResult), result
    return result


def listed(service: CloudService, answer: m.IdentifyResult, limit: int) -> m.JobList:
    page = ask(service, "copier-1", m.ListJobs(answer.session, offset=0, limit=limit))
    assert isinstance(page, m.JobList)
    return page


@pytest.mark.parametrize("how", ["card", "code", "password"])
def test_every_way_in_answers_with_the_page_jobs_list_would_give(
        timed: tuple[CloudService, Clock], how: str) -> None:
    service, _ = timed
    request = {"card": m.Identify("card", ALICE.badge, page_size=10),
               "code": m.Identify("code", ALICE.access_code, page_size=10),
               "password": m.Identify("password", "correct horse battery",
                                      username=ALICE.email, page_size=10)}[how]
    answer = identified(ask(service, "copier-1", request))
    page = answer.first_page()
    assert page is not None and page.total == 5 and len(page.jobs) == 5
    assert page == listed(service, answer, 10)
    # Alice's jobs, newest first; nobody else's.
    bob = identified(ask(service, "copier-1", m.Identify("card", BOB.badge, page_size=10)))
    bobs = bob.first_page()
    assert bobs is not None and bobs.jobs
    assert not {j.job_id for j in bobs.jobs} & {j.job_id for j in page.jobs}


def test_the_page_is_one_page_and_says_why_jobs_are_missing(
        timed: tuple[CloudService, Clock]) -> None:
    service, clock = timed
    # Demo jobs were submitted 10..120 minutes before seeding; the default hold is 8 h: the
    # three oldest of Alice's five run out, and the page says so as jobs.list would.
    clock.now += 8 * 3600 - 600 * 3 + 1
    service.housekeeping()
    answer = identified(ask(service, "copier-1", m.Identify("card", ALICE.badge, page_size=10)))
    page = answer.first_page()
    assert page is not None
    assert (page.total, page.expired, page.hold_hours) == (2, 3, 8.0)
    assert page == listed(service, answer, 10)


def test_a_page_is_at_most_the_page_size(timed: tuple[CloudService, Clock]) -> None:
    service, _ = timed
    # The demo users have a handful of jobs: give Alice more than a page of the smallest size.
    for i in range(12):
        submit_job(service.store, ALICE.email, f"report-{i}.pdf", b"%PDF-1.4 page\n")  # type: ignore[arg-type]
    answer = identified(ask(service, "copier-1", m.Identify("card", ALICE.badge, page_size=10)))
    page = answer.first_page()
    assert page is not None and len(page.jobs) == 10 and page.total == 17
    assert page == listed(service, answer, 10)


def test_a_device_that_gives_no_page_size_gets_no_page(timed: tuple[CloudService, Clock]) -> None:
    service, _ = timed
    answer = identified(ask(service, "copier-1", m.Identify("card", ALICE.badge)))
    assert answer.jobs is None and answer.first_page() is None
    assert listed(service, answer, 50).total == 5  # and lists as it always did


def test_self_association_answers_with_the_page_and_the_linked_note(
        timed: tuple[CloudService, Clock]) -> None:
    service, _ = timed
    answer = identified(ask(service, "copier-1", m.Associate(
        "a-1", "0000424242", "code", BOB.access_code, page_size=25)))
    assert answer.display_name == "Bob Okafor" and "linked" in answer.note
    page = answer.first_page()
    assert page is not None and page.jobs
    assert page == listed(service, answer, 25)


def test_a_technician_is_answered_with_no_ones_jobs(timed: tuple[CloudService, Clock]) -> None:
    service, _ = timed
    issued = admin.add_technician(service.store, "org_demo", "Tess Tech", code=True)  # type: ignore[arg-type]
    assert issued.code is not None
    answer = identified(ask(service, "copier-1", m.Identify("code", issued.code,
                                                            page_size=100)))
    assert answer.role == m.ROLE_TECHNICIAN
    assert answer.jobs is None and answer.first_page() is None


def test_the_lockout_refuses_as_before_and_gives_no_page(
        timed: tuple[CloudService, Clock]) -> None:
    service, clock = timed
    for i in range(5):
        with pytest.raises(RemoteError) as info:
            ask(service, "copier-1", m.Identify("code", f"55500{i}", page_size=100))
    assert info.value.code == "locked_out" and info.value.retry_after == 900
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Identify("code", ALICE.access_code, page_size=100))
    assert info.value.code == "locked_out"
    clock.now += 901
    page = identified(ask(service, "copier-1", m.Identify("code", ALICE.access_code,
                                                          page_size=100))).first_page()
    assert page is not None and page.total == 5


def test_the_badge_throttle_refuses_as_before_known_badges_included(
        timed: tuple[CloudService, Clock]) -> None:
    service, _ = timed
    codes = []
    for i in range(throttle.DEVICE_POLICY.burst + 1):
        try:
            ask(service, "copier-1", m.Identify("card", f"00009{i:05d}", page_size=100))
        except RemoteError as exc:
            codes.append(exc.code)
    assert codes == ["unknown_card"] * throttle.DEVICE_POLICY.burst + ["throttled"]
    with pytest.raises(RemoteError) as info:
        ask(service, "copier-1", m.Identify("card", ALICE.badge, page_size=100))
    assert info.value.code == "throttled"


def test_through_the_broker_the_answer_carries_the_page(world: World) -> None:
    link = MqttCloudLink(world.broker.address("copier-1"), "copier-1").start()
    try:
        answer = link.call(m.Identify("card", ALICE.badge, page_size=50))
        assert isinstance(answer, m.IdentifyResult)
        page = answer.first_page()
        assert page is not None and page.total == 5
        assert link.call(m.ListJobs(answer.session, limit=50)) == page
    finally:
        link.close()
