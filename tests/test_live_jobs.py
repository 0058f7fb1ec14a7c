"""What a person at the copier sees, every layer real (issue 10): a private Mosquitto with the
per-device dynsec roles, the cloud worker on SQLite and on PostgreSQL, the device app on its MQTT
link, the print engine stub.

* a job sent from a computer (the print client intake, cloud/linking) while its owner is signed
  in at a copier shows there by itself, within a second, the selection kept; the notice goes to
  that copier only, names nobody, and another copier cannot even subscribe to it;
* a malformed notice is dropped and loses nothing;
* the list says why it is empty (jobs expired lately, jobs behind a computer not linked yet);
* after a release the list says what happened, a failure with the engine's reason, and the
  failed job is still held in the cloud;
* "Done, log me out" mid-release: the panel is idle, every job still prints and is reported.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest
from conftest import World
from test_broker_acl import Client

from cloud.demo import DEMO_USERS
from cloud.directory import set_password
from cloud.linking import Linking
from cloud.service import CloudService
from cloud.storage.factory import open_store
from device_app.app import DeviceApp
from device_app.link import MqttCloudLink
from device_app.session import State
from device_app.view import Action
from firmware_stubs.mfd_controller import MfdControllerStub
from protocol import messages as m
from protocol import topics
from protocol.engine import EngineState

pytestmark = pytest.mark.integration

ALICE, BOB = DEMO_USERS[0], DEMO_USERS[1]
DOC = b"%PDF-1.4 sent while its owner stands at the copier"


@dataclass
class Copier:
    app: DeviceApp
    link: MqttCloudLink
    engine: MfdControllerStub
    #: Every notice payload the link handed over (then passed to the app as usual).
    notices: list[bytes] = field(default_factory=list)
    heard: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def copiers(world: World) -> Iterator[dict[str, Copier]]:
    made: dict[str, Copier] = {}
    for name in ("copier-1", "copier-2"):
        link = MqttCloudLink(world.broker.address(name), name).start()
        assert link.connected
        engine = MfdControllerStub()
        app = DeviceApp(link, engine, device_name=name).start()
        copier = Copier(app, link, engine)

        def hear(payload: bytes, copier: Copier = copier) -> None:
            copier.notices.append(payload)
            copier.heard.set()
            copier.app.notified(payload)

        link.on_notify = hear
        made[name] = copier
    yield made
    for copier in made.values():
        copier.app.stop()
        copier.link.close()
        copier.engine.close()


def sign_in(copier: Copier, code: str) -> None:
    copier.app.enter_code(code)
    assert copier.app.run_until(lambda a: a.machine.state is State.JOBS, 5)


@pytest.fixture
def linking(world: World) -> Iterator[Linking]:
    store = open_store(world.store_url)
    yield Linking(store, base_url="https://print.example.test")
    store.close()


def client_of(linking: Linking, email: str, machine: str) -> str:
    """A print client install linked to ``email``'s account; its client token."""
    installer = linking.invite_classic(email).url.split("#installer=", 1)[1]
    return linking.register(installer, machine=machine, os_user=email.split("@")[0]).token


def test_a_job_sent_meanwhile_shows_by_itself_and_only_there(
        world: World, copiers: dict[str, Copier], linking: Linking) -> None:
    alice, bob = copiers["copier-1"], copiers["copier-2"]
    sign_in(alice, ALICE.access_code)
    sign_in(bob, BOB.access_code)
    first = alice.app.view().jobs[0].job_id
    alice.app.tap(Action.SELECT, first)
    assert alice.app.run_until(lambda a: first in a.view().selected, 2)
    before = alice.app.view().total_jobs

    token = client_of(linking, ALICE.email, "alice-laptop")
    sent_at = time.monotonic()
    job = linking.submit(token, "Sent from the laptop.pdf", DOC)
    assert job.state == "HELD"
    assert alice.app.run_until(
        lambda a: any(j.job_id == job.job_id for j in a.view().jobs), 1.0), \
        "the new job did not show within a second"
    shown_after = time.monotonic() - sent_at
    view = alice.app.view()
    assert view.total_jobs == before + 1 and alice.app.machine.state is State.JOBS
    assert first in view.selected  # what Alice had picked stays picked
    assert alice.notices == [m.encode(m.JobsChanged())]  # the notice names nobody
    assert shown_after < 1.0

    # Bob's copier was told nothing about Alice's job. Positive signal first: a job of Bob's
    # is told to Bob's copier, and it is the only notice that copier ever heard.
    bob_job = linking.submit(client_of(linking, BOB.email, "bob-desk"), "Bob's.pdf", DOC)
    assert bob.heard.wait(2)
    assert bob.app.run_until(lambda a: any(j.job_id == bob_job.job_id for j in a.view().jobs),
                             2)
    assert bob.notices == [m.encode(m.JobsChanged())]
    assert alice.notices == [m.encode(m.JobsChanged())]
    assert all(j.job_id != job.job_id for j in bob.app.view().jobs)


def test_nobody_signed_in_nobody_is_told(world: World, copiers: dict[str, Copier],
                                         linking: Linking) -> None:
    alice = copiers["copier-1"]
    sign_in(alice, ALICE.access_code)
    alice.app.tap(Action.LOGOUT)
    assert alice.app.run_until(lambda a: a.machine.state is State.IDLE, 2)
    # The logout reached the cloud once the session is ended there (positive signal).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and world.store.query_one(
            "SELECT count(*) FROM sessions WHERE ended=0")[0]:  # type: ignore[index]
        time.sleep(0.02)
    sign_in(copiers["copier-2"], BOB.access_code)  # Bob signs in at copier-2 meanwhile
    linking.submit(client_of(linking, ALICE.email, "alice-laptop"), "late.pdf", DOC)
    linking.submit(client_of(linking, BOB.email, "bob-desk"), "bob.pdf", DOC)
    assert copiers["copier-2"].heard.wait(2)  # Bob's was told, after Alice's was taken
    assert alice.notices == [] and copiers["copier-2"].notices == [m.encode(m.JobsChanged())]


def test_another_copier_cannot_subscribe_to_a_copiers_notices(world: World) -> None:
    other = Client(world.broker, "copier-2")
    try:
        assert other.subscribe(topics.notify_topic("copier-1")) >= 0x80
        assert other.subscribe(topics.notify_topic("copier-2")) < 0x80
    finally:
        other.close()


def test_a_malformed_notice_is_dropped_and_loses_nothing(
        world: World, copiers: dict[str, Copier]) -> None:
    alice = copiers["copier-1"]
    sign_in(alice, ALICE.access_code)
    jobs = alice.app.view().jobs
    cloud = Client(world.broker, "cloud-1")
    try:
        for payload in (b"\xff\xfe", b'{"v":1,"type":"jobs.changed","x":1e999}',
                        b'{"v":2,"type":"jobs.changed"}', b'{"v":1,"type":"config.ack"}',
                        m.encode(m.JobsChanged())):
            cloud.c.publish(topics.notify_topic("copier-1"), payload, qos=1).wait_for_publish(2)
        deadline = time.monotonic() + 3
        while len(alice.notices) < 5 and time.monotonic() < deadline:
            alice.app.step(0.01)
        assert len(alice.notices) == 5
        # Only the good one re-listed: one jobs.list after the login's, and the list is whole.
        assert alice.app.run_until(lambda a: not a.machine._pending, 2)
        assert alice.app.view().jobs == jobs and alice.app.machine.state is State.JOBS
    finally:
        cloud.close()


# ------------------------------------------------------------------ why the list is empty


def ask(service: CloudService, device: str, request: m.Request) -> m.Result:
    return m.decode_response(service.handle(device, m.encode(request)), request.TYPE)


def test_the_list_says_why_it_is_empty(world: World, linking: Linking) -> None:
    service = CloudService(open_store(world.store_url))
    now = time.time()
    with world.store.transaction():
        world.store.set_org_settings("org_demo", replace(world.store.org_settings("org_demo"),
                                                         hold_hours=24))
        chen = world.store.user_by_email(DEMO_USERS[2].email)
        assert chen is not None
        for held in world.store.held_jobs(chen.id, 0, 100, now)[0]:
            world.store.delete_job(held.id, now)
        for hours_ago in (1, 20, 30):  # expired 1 h and 20 h ago count; 30 h ago does not
            world.store.add_job(chen.id, f"old {hours_ago}", DOC, "0" * 64, pages=1,
                                color=False, duplex=False, copies=1, source="x",
                                submitted_at=now - (hours_ago + 24) * 3600,
                                expires_at=now - hours_ago * 3600)
    service.housekeeping()  # the sweep moves them to EXPIRED; two of them count
    # A computer of Chen's not linked yet (bulk installer, Chen's OS login): its job waits.
    bulk = linking.bulk_installer("org_demo").token
    pending = linking.submit(linking.register(bulk, machine="lab-7", os_user="chen").token,
                             "lab.pdf", DOC)
    assert pending.state == "PENDING_AUTH"
    stranger = linking.register(bulk, machine="lab-8", os_user="zed").token
    linking.submit(stranger, "not chen's.pdf", DOC)

    who = ask(service, "copier-1", m.Identify(method="code", value=DEMO_USERS[2].access_code))
    assert isinstance(who, m.IdentifyResult)
    listed = ask(service, "copier-1", m.ListJobs(session=who.session))
    assert isinstance(listed, m.JobList)
    assert (listed.total, listed.expired, listed.hold_hours, listed.unlinked) == (0, 2, 24.0, 1)
    # The first page in a sign-in's answer (one statement on SQL stores) says the same.
    paged = ask(service, "copier-1", m.Identify(method="code", value=DEMO_USERS[2].access_code,
                                                page_size=10))
    assert isinstance(paged, m.IdentifyResult) and paged.first_page() == listed
    # Another user hears of neither.
    bob = ask(service, "copier-1", m.Identify(method="code", value=BOB.access_code))
    assert isinstance(bob, m.IdentifyResult)
    theirs = ask(service, "copier-1", m.ListJobs(session=bob.session))
    assert isinstance(theirs, m.JobList) and (theirs.expired, theirs.unlinked) == (0, 0)
    service.store.close()  # type: ignore[attr-defined]


# ------------------------------------------------------------------ releasing


def test_a_failed_job_is_said_with_the_engine_s_reason_and_is_still_held(
        world: World, copiers: dict[str, Copier]) -> None:
    alice = copiers["copier-1"]
    sign_in(alice, ALICE.access_code)
    # One job of one page and one copy, one of two copies: a jam armed to strike after two
    # pages (the document's pages times its copies) spares the first and fails the second
    # before its output.
    jobs = alice.app.view().jobs
    one = next(j for j in jobs if j.copies == 1 and j.pages == 1)
    two = next(j for j in jobs if j.copies == 2)
    picked = [one.job_id, two.job_id]
    for job_id in picked:
        alice.app.tap(Action.SELECT, job_id)
    alice.engine.inject(EngineState.JAM, after_pages=2)
    alice.app.tap(Action.RELEASE)
    assert alice.app.run_until(lambda a: a.machine.state is State.RELEASING, 5)
    assert alice.app.run_until(lambda a: a.machine.state is State.JOBS, 10)
    message = alice.app.view().message
    assert message.startswith("1 printed; 1 failed: engine jam") and \
        message.endswith(", it is still held"), message
    assert {j.id: j.state for j in world.store.jobs(picked)} == {one.job_id: "PRINTED",
                                                                 two.job_id: "HELD"}
    assert two.job_id in {j.job_id for j in alice.app.view().jobs}  # back on the list
    alice.engine.inject(EngineState.READY)


def test_walking_away_mid_release_prints_and_reports_everything(
        world: World, copiers: dict[str, Copier]) -> None:
    alice = copiers["copier-1"]
    sign_in(alice, ALICE.access_code)
    alice.engine.hold(True)  # printing has not started when Alice walks away
    alice.app.tap(Action.RELEASE_ALL)
    assert alice.app.run_until(lambda a: a.view().can_walk_away, 5)
    released = [p.job_id for p in alice.app.view().progress]
    assert len(released) == 5
    alice.app.tap(Action.WALK_AWAY)
    assert alice.app.run_until(lambda a: a.machine.state is State.IDLE, 2)
    assert alice.app.view().user_name == "" and alice.app.view().jobs == ()
    alice.engine.hold(False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alice.app.step(0.02)
        if all(j.state == "PRINTED" for j in world.store.jobs(released)):
            break
    assert [j.state for j in world.store.jobs(released)] == ["PRINTED"] * 5
    assert len(alice.engine.printed) == 5
    assert alice.app.machine.state is State.IDLE


def test_every_way_a_job_becomes_held_is_told_once_to_where_its_owner_is(
        world: World) -> None:
    # The store's outbox alone: the world's worker takes notices every second too, and would
    # race this test for them.
    world.worker.stop()
    store, now = world.store, time.time()
    alice = store.user_by_email(ALICE.email)
    assert alice is not None
    with store.transaction():
        store.take_job_notices(now)  # the demo's own jobs
        store.create_session("h1", "copier-2", alice.id, now + 300)
        job = store.add_job(alice.id, "new.pdf", DOC, "0" * 64, pages=1, color=False,
                            duplex=False, copies=1, source="x", submitted_at=now,
                            expires_at=now + 3600)
    with store.transaction():
        assert store.take_job_notices(now) == ["copier-2"]
        assert store.take_job_notices(now) == []  # taken: told once
        # Back to HELD after a failed release, and after a release nobody fetched.
        store.create_release("rel-x", "copier-2", alice.id, now)
        store.set_releasing(job, "rel-x", "copier-2", now)
        assert store.take_job_notices(now) == []  # releasing is not news to the list
        assert store.set_held(job, now)
        assert store.take_job_notices(now) == ["copier-2"]
        store.set_releasing(job, "rel-x", "copier-2", now - 1000)
        assert store.lapse_unfetched_releases(now - 600, now) == [job]
        store.end_session("h1")  # signed out: held all the same, but nobody to tell
        assert store.take_job_notices(now) == []


def test_a_job_that_joins_its_owner_at_sign_in_is_told_too(world: World,
                                                           linking: Linking) -> None:
    """Authenticate-on-Print with "join": the job behind the sign-in link becomes HELD for the
    user who signs in, and the copier where that user stands is told."""
    store, now = world.store, time.time()
    with store.transaction():
        store.set_org_settings("org_demo", replace(store.org_settings("org_demo"),
                                                   aop_pending="join"))
    bulk = linking.bulk_installer("org_demo").token
    sent = linking.submit(linking.register(bulk, machine="lab-3", os_user="b").token,
                          "lab.pdf", DOC)
    bob = store.user_by_email(BOB.email)
    assert bob is not None and sent.sign_in_url
    with store.transaction():
        store.take_job_notices(now)
        store.create_session("b1", "copier-2", bob.id, now + 300)
    set_password(store, BOB.email, "correct horse battery")
    portal = linking.sign_in(BOB.email, "correct horse battery").token
    out = linking.aop_confirm(portal, sent.sign_in_url.split("#request=", 1)[1])
    assert out.joined == (sent.job_id,)
    with store.transaction():
        assert store.take_job_notices(time.time()) == ["copier-2"]
