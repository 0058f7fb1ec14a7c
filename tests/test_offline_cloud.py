"""Offline mode, the cloud's side (cloud/offline.py, cloud/offline_report.py), through
``CloudService.handle`` with encoded messages as devices send them, on SQLite and on
PostgreSQL: bundles opened and checked with protocol/offline.py as a device does, sealed
documents opened with the key a real card unwraps, reports reconciled."""

from __future__ import annotations

import hashlib
import itertools
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clocks import Clock
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cloud import devices, directory, offline
from cloud.demo import DEMO_USERS, seed_demo
from cloud.hashing import card_hash
from cloud.linking import Linking
from cloud.portal import start_portal
from cloud.service import BUNDLE_GRACE, CloudService
from cloud.storage.factory import open_store
from cloud.storage.port import Job
from cloud.storage.postgres import PostgresStore
from device_app.config import EngineConfig, load_config
from device_app.runner import register
from mfdkit.cli import main
from protocol import messages as m
from protocol import offline as po
from protocol.errors import RemoteError
from tests.pg import ScratchDatabase

ALICE, BOB, CHEN = DEMO_USERS[:3]
DAY = 86400.0
_ids = itertools.count(1)


class World:
    """A seeded store, a service on a clock the test moves, and the device's side of it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.store: Any = open_store(url)
        self.clock = Clock(time.time())
        seed_demo(self.store, now=self.clock.now)
        self.service = CloudService(self.store, clock=self.clock)
        self.key = po.parse_public_key(offline.offline_public_key(self.store))

    def ask(self, req: m.Request, device: str = "copier-1") -> m.Result:
        return m.decode_response(self.service.handle(device, m.encode(req)), req.TYPE)

    def refused(self, req: m.Request, device: str = "copier-1") -> RemoteError:
        with pytest.raises(RemoteError) as info:
            self.ask(req, device)
        return info.value

    def policy(self, device: str = "copier-1", **values: Any) -> None:
        devices.set_device_config(self.store, device, {"policy": {"offline": True, **values}},
                                  self.clock.now)

    def sign_in(self, user: Any, device: str = "copier-1", method: str = "card") -> str:
        value = user.badge if method == "card" else user.access_code
        r = self.ask(m.Identify(method, value), device)
        assert isinstance(r, m.IdentifyResult) and r.display_name == user.name
        return r.session

    def bundle(self, device: str = "copier-1") -> po.Bundle:
        answer = self.ask(m.OfflineSync(), device)
        assert isinstance(answer, m.OfflineBundle)
        assert answer.key_id == po.key_id(po.public_key_text(self.key))
        return po.open_bundle(self.key, answer.body, answer.signature, device_id=device,
                              now=self.clock.now)

    def user_id(self, user: Any) -> str:
        return str(self.store.user_by_email(user.email).id)

    def job(self, job_id: str) -> Job:
        return self.store.jobs([job_id])[0]  # type: ignore[no-any-return]

    def report(self, *events: m.OfflineEvent, device: str = "copier-1",
               request_id: str | None = None, seq: int = 1) -> bytes:
        req = m.OfflineReport(request_id=request_id or f"rep-{next(_ids)}", seq=seq,
                              events=events)
        return self.service.handle(device, m.encode(req))

    def audits(self, action: str) -> list[tuple[float, str, str, str, str]]:
        return [a for a in self.store.audit_log(10_000) if a[2] == action]


@pytest.fixture
def world(store_url: str) -> Iterator[World]:
    w = World(store_url)
    yield w
    w.store.close()


def printed(user_id: str, job_id: str, release_id: str = "off-r1") -> m.OfflineEvent:
    return m.OfflineEvent(kind="printed", at=time.time(), user_id=user_id, job_id=job_id,
                          release_id=release_id)


def result(answer: bytes) -> m.OfflineReportResult:
    r = m.decode_response(answer, "offline.report")
    assert isinstance(r, m.OfflineReportResult)
    return r


# ---------------------------------------------------------------------------- bundles


def test_a_card_opens_its_owner_and_every_sealed_chunk_of_a_predelivered_job(
        world: World) -> None:
    world.policy()
    world.sign_in(ALICE)
    document = secrets.token_bytes(2 * po.CHUNK_BYTES + 12345)  # three chunks, the last short
    job_id = directory.submit_job(world.store, ALICE.email, "big.pdf", document)
    bundle = world.bundle()
    alice = world.user_id(ALICE)
    assert [u.user_id for u in bundle.users] == [alice]
    assert bundle.jobs_of(alice)[0].job_id == job_id  # newest first
    assert {j.user_id for j in bundle.jobs} == {alice}
    # What the device does with a badge: the verifier of the real number finds Alice.
    found = bundle.find("card", po.verifier(bundle.salt, "card", ALICE.badge, bundle.n))
    assert found is not None and found[0].user_id == alice
    user_key = po.unwrap(po.verifier(bundle.salt, "card", ALICE.badge), found[0].wraps[found[1]])
    # Her code unwraps the same key (she has one; it was set in clear at seeding and passed
    # through the cloud again at this sign-in).
    world.sign_in(ALICE, method="code")
    bundle = world.bundle()
    code = po.verifier(bundle.salt, "code", ALICE.access_code)
    by_code = bundle.find("code", code)
    assert by_code is not None and po.unwrap(code, by_code[0].wraps[by_code[1]]) == user_key
    assert bundle.find("card", po.verifier(bundle.salt, "card", BOB.badge)) is None
    entry = next(j for j in bundle.jobs if j.job_id == job_id)
    got = b""
    for offset in range(0, entry.size, po.CHUNK_BYTES):
        chunk = world.ask(m.FetchOffline(job_id=job_id, offset=offset))
        assert isinstance(chunk, m.DocumentChunk) and chunk.total == entry.size
        assert chunk.data[:64] != document[offset:offset + 64]  # sealed, not in clear
        got += po.open_chunk(user_key, job_id, offset, chunk.total, chunk.data,
                             digest=entry.sha256)
    assert hashlib.sha256(got).hexdigest() == entry.sha256 == hashlib.sha256(document).hexdigest()
    # Off the grid, and a job the bundle does not list (Bob's), are refused by name.
    err = world.refused(m.FetchOffline(job_id=job_id, offset=1000))
    assert (err.code, err.field) == ("invalid_field", "offset")
    bobs = world.store.held_jobs(world.user_id(BOB), 0, 1, world.clock.now)[0][0].id
    assert world.refused(m.FetchOffline(job_id=bobs)).code == "job_not_found"


def test_a_badge_linked_at_the_copier_and_a_pin_are_known_offline(world: World) -> None:
    """Self-association (a new badge, proved by the code) and card + PIN pass the badge and
    the code in clear: both are then found offline."""
    world.policy()
    badge = "4242424242"
    r = world.ask(m.Associate(request_id="assoc-1", card=badge, method="code",
                              value=CHEN.access_code))
    assert isinstance(r, m.IdentifyResult) and r.display_name == CHEN.name
    r = world.ask(m.Identify("card", BOB.badge, pin=BOB.access_code))
    assert isinstance(r, m.IdentifyResult) and r.display_name == BOB.name
    bundle = world.bundle()
    for kind, value, user in (("card", badge, CHEN), ("code", CHEN.access_code, CHEN),
                              ("card", BOB.badge, BOB), ("code", BOB.access_code, BOB)):
        hit = bundle.find(kind, po.verifier(bundle.salt, kind, value))
        assert hit is not None and hit[0].user_id == world.user_id(user), (kind, user.name)
    # A wrong PIN records nothing: no verifier of the badge or the PIN, no sign-in.
    count = "SELECT (SELECT count(*) FROM offline_verifiers) + (SELECT count(*) FROM " \
        "device_sign_ins)"
    before = world.store.query_one(count)[0]
    assert world.refused(m.Identify("card", ALICE.badge, pin="999999")).code == "wrong_pin"
    assert world.store.query_one(count)[0] == before


def test_offline_off_another_device_and_replays_are_refused(world: World) -> None:
    world.sign_in(ALICE)
    assert world.refused(m.OfflineSync()).code == "not_allowed"
    assert world.refused(m.OfflineSync(), "copier-77").code == "unknown_device"
    world.policy()
    answer = world.ask(m.OfflineSync())
    assert isinstance(answer, m.OfflineBundle)
    with pytest.raises(po.OfflineError) as info:
        po.open_bundle(world.key, answer.body, answer.signature, device_id="copier-2",
                       now=world.clock.now)
    assert info.value.code == "wrong_device"
    first = po.open_bundle(world.key, answer.body, answer.signature, device_id="copier-1",
                           now=world.clock.now)
    # copier-2 has no bundle: none of copier-1's jobs is fetched there.
    world.policy("copier-2")
    assert world.refused(m.FetchOffline(job_id=first.jobs[0].job_id), "copier-2").code \
        == "job_not_found"
    second = world.bundle()
    assert second.seq > first.seq and second.list_key != first.list_key
    # The same verifier, another entry in each bundle: entries do not link bundles.
    assert set(second.users[0].cards).isdisjoint(first.users[0].cards)
    with pytest.raises(po.OfflineError) as info:
        po.open_bundle(world.key, answer.body, answer.signature, device_id="copier-1",
                       now=world.clock.now, last_seq=second.seq)
    assert info.value.code == "replayed"
    assert second.expires_at == pytest.approx(world.clock.now + 72 * 3600)
    # Offline mode turned off again: no more documents either.
    devices.set_device_config(world.store, "copier-1", {"policy": {"offline": False}},
                              world.clock.now)
    assert world.refused(m.FetchOffline(job_id=first.jobs[0].job_id)).code == "not_allowed"


def test_the_policy_chooses_who_is_listed(world: World) -> None:
    alice, bob, chen = (world.user_id(u) for u in (ALICE, BOB, CHEN))
    start = world.clock.now
    world.clock.now = start - 20 * DAY
    world.sign_in(CHEN, "copier-1")  # long ago
    world.clock.now = start - 2 * DAY
    world.sign_in(BOB, "copier-2", method="code")  # lately, elsewhere
    world.clock.now = start
    world.sign_in(ALICE, "copier-1")
    world.policy(offline_recent_days=14)
    assert [u.user_id for u in world.bundle().users] == [alice]
    world.policy(offline_users="everyone")
    assert [u.user_id for u in world.bundle().users] == [alice, bob, chen]
    world.policy(offline_users="everyone", offline_max_users=2, offline_documents_mb=0)
    limited = world.bundle()
    assert [u.user_id for u in limited.users] == [alice, bob] and limited.jobs == ()
    world.policy(offline_users="everyone", offline_max_users=200, offline_documents_mb=512)

    # A card removed is no longer listed: its verifier finds nobody, and Chen stays only if
    # a code of hers is known offline (enrolment may have recorded one).
    Linking(world.store).remove_cards(CHEN.email)
    listed = world.bundle()
    assert listed.find("card", po.verifier(listed.salt, "card", CHEN.badge)) is None
    chens = listed.find("code", po.verifier(listed.salt, "code", CHEN.access_code))
    assert (chen in {u.user_id for u in listed.users}) == (chens is not None)
    assert not {j.user_id for j in listed.jobs} - {u.user_id for u in listed.users}
    # And its verifier leaves the store at the next housekeeping (a stolen store holds none).
    count = "SELECT count(*) FROM offline_verifiers"
    before = world.store.query_one(count)[0]
    assert world.service.housekeeping()["verifiers"] == 1
    assert world.store.query_one(count)[0] == before - 1
    # A code replaced: the old one's verifier no longer finds Bob; the new one, reset by an
    # administrator (in clear then), finds him at once.
    new_code = Linking(world.store).reset_access_code(BOB.email)
    listed = world.bundle()
    assert listed.find("code", po.verifier(listed.salt, "code", BOB.access_code)) is None
    hit = listed.find("code", po.verifier(listed.salt, "code", new_code))
    assert hit is not None and hit[0].user_id == bob
    # Replaced again: the reset one is gone too; the newest finds Bob once it has passed
    # through the cloud in clear (here: a sign-in with it).
    directory.set_access_code(world.store, BOB.email, "5820371")
    listed = world.bundle()
    assert listed.find("code", po.verifier(listed.salt, "code", new_code)) is None
    world.ask(m.Identify("code", "5820371"), "copier-2")
    listed = world.bundle()
    hit = listed.find("code", po.verifier(listed.salt, "code", "5820371"))
    assert hit is not None and hit[0].user_id == bob


def test_a_big_org_stays_under_the_response_limit(world: World) -> None:
    """2,000 users with two cards and a code each, and jobs: the bundle lists as many of the
    most recently active as fit in one answer, and the answer fits."""
    store = world.store
    now = world.clock.now
    with store.transaction():
        for i in range(2000):
            uid = store.add_user("org_demo", f"u{i}@big.example", f"User {i} " + "é" * 40)
            for kind, n in (("card", 0), ("card", 1), ("code", 2)):
                h = hashlib.sha256(f"{i}:{n}".encode()).hexdigest()
                if kind == "card":
                    store.add_card("org_demo", h, uid, now)
                else:
                    store.set_access_code("org_demo", h, uid)
                store.add_offline_verifier("org_demo", kind, h, secrets.token_bytes(32), now)
            store.note_device_sign_in("copier-9", uid, now - i)
            if i < 300:
                store.add_job(uid, f"job {i}", b"x" * 100, hashlib.sha256(b"x" * 100).hexdigest(),
                              pages=1, color=False, duplex=False, copies=1, source="",
                              submitted_at=now - i, expires_at=now + 3600)
    world.policy(offline_users="everyone", offline_max_users=5000)
    raw = world.service.handle("copier-1", m.encode(m.OfflineSync()))
    assert len(raw) <= m.MAX_RESPONSE_BYTES
    answer = m.decode_response(raw, "offline.sync")
    assert isinstance(answer, m.OfflineBundle)
    bundle = po.open_bundle(world.key, answer.body, answer.signature, device_id="copier-1",
                            now=now)
    assert 500 < len(bundle.users) < 2000
    # The most recently active first: u0 signed in last.
    assert bundle.users[0].name.startswith("User 0 ")
    assert len(raw) > m.MAX_RESPONSE_BYTES * 0.9  # filled, not cut short


def test_the_signing_key_is_shared_by_stores_and_given_at_registration(world: World) -> None:
    again = open_store(world.url)
    try:
        assert offline.offline_public_key(again) == po.public_key_text(world.key)

        class Accounts:
            def set_password(self, username: str, password: str) -> None:
                self.username = username

        code = devices.new_registration_code(again, "copier-2", world.clock.now)
        reg = devices.register(again, code, Accounts(), world.clock.now)
        assert reg.offline_key == po.public_key_text(world.key)
    finally:
        again.close()


def test_mfd_admin_prints_the_key(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admin", "--store", world.url, "offline-key"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == po.public_key_text(world.key)
    assert po.key_id(out.strip()) in err


def test_a_device_registered_over_the_api_keeps_the_key_in_its_device_toml(
        world: World, tmp_path: Path) -> None:
    """The JSON API's registration answer carries ``offline_key``; the device's registration
    (device_app/runner.py) writes it to device.toml, where the device reads it back."""

    class Accounts:
        def set_password(self, username: str, password: str) -> None:
            self.username = username

    code = devices.new_registration_code(world.store, "copier-2", world.clock.now)
    portal = start_portal(world.url, accounts=Accounts(),
                          device_broker_url="mqtt://127.0.0.1:1883")
    try:
        cfg = register(portal.url, code, tmp_path / "dev", engine=EngineConfig("emulator"))
    finally:
        portal.close()
    assert load_config(tmp_path / "dev" / "device.toml").offline_key \
        == cfg.offline_key == po.public_key_text(world.key)


def test_card_numbers_and_verifiers_stay_out_of_the_logs(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    world.policy(offline_users="everyone")
    world.sign_in(ALICE)
    world.sign_in(BOB, method="code")
    bundle = world.bundle()
    world.report(m.OfflineEvent(kind="login", at=1.0, user_id=world.user_id(ALICE),
                                detail="card"))
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    verifier = po.verifier(bundle.salt, "card", ALICE.badge)
    for secret in (ALICE.badge, BOB.access_code, verifier.hex(),
                   card_hash(world.store.org_secret("org_demo"), ALICE.badge)):
        assert secret not in text
    assert "offline bundle" in text  # the bundle was logged, without them


# ---------------------------------------------------------------------------- reports


def test_a_job_printed_offline_is_printed_for_good(world: World) -> None:
    world.policy()
    session = world.sign_in(ALICE)
    bundle = world.bundle()
    alice = world.user_id(ALICE)
    job = bundle.jobs_of(alice)[0]
    answer = world.report(m.OfflineEvent(kind="login", at=time.time(), user_id=alice,
                                         detail="card"),
                          printed(alice, job.job_id, "off-abc"), request_id="rep-once")
    assert result(answer) == m.OfflineReportResult(accepted=2)
    after = world.job(job.job_id)
    assert (after.state, after.release_id, after.device_id) == ("PRINTED", "off-abc",
                                                                "copier-1")
    assert len(world.audits("job.printed_offline")) == 1
    # The same report again: the same answer, nothing done twice.
    assert world.report(printed(alice, job.job_id, "off-abc"), request_id="rep-once") == answer
    # Another report of the same printing: nothing more either.
    assert result(world.report(printed(alice, job.job_id, "off-abc"))).raced == ()
    assert len(world.audits("job.printed_offline")) == 1
    # Never listed, released, or fetched again.
    assert job.job_id not in {j.job_id for j in world.bundle().jobs}
    listed = world.ask(m.ListJobs(session))
    assert isinstance(listed, m.JobList) and job.job_id not in {j.job_id for j in listed.jobs}
    assert world.refused(m.Release(request_id="rel-1", session=session,
                                   job_ids=(job.job_id,))).code == "job_not_held"
    assert world.refused(m.FetchOffline(job_id=job.job_id)).code == "job_not_held"


def test_printed_elsewhere_first_is_raced_and_deleted_is_gone(world: World) -> None:
    world.policy()
    world.sign_in(ALICE)
    bundle = world.bundle()
    alice = world.user_id(ALICE)
    raced, gone, failed = (j.job_id for j in bundle.jobs_of(alice)[:3])
    # Online at copier-2 meanwhile: one released and printed, one deleted.
    session = world.sign_in(ALICE, "copier-2")
    rel = world.ask(m.Release(request_id="rel-2", session=session, job_ids=(raced,)),
                    "copier-2")
    assert isinstance(rel, m.ReleaseResult)
    world.ask(m.JobPrinted(request_id="p-2", release_id=rel.release_id, job_id=raced),
              "copier-2")
    world.ask(m.DeleteJobs(request_id="d-2", session=session, job_ids=(gone,)), "copier-2")
    r = result(world.report(printed(alice, raced), printed(alice, gone),
                            m.OfflineEvent(kind="failed", at=1.0, user_id=alice, job_id=failed,
                                           detail="paper jam"),
                            m.OfflineEvent(kind="refused", at=2.0, detail="unknown card")))
    assert (r.accepted, r.raced, r.gone) == (4, (raced,), (gone,))
    assert world.job(raced).device_id == "copier-2"  # the online printing stands
    assert world.job(failed).state == "HELD"
    race = world.audits("offline.raced")
    assert len(race) == 1 and race[0][3] == f"user:{alice}" and raced in race[0][4]
    assert len(world.audits("offline.gone")) == 1
    assert len(world.audits("offline.failed")) == 1
    assert "unknown card x1" in world.audits("offline.refused")[0][4]


def test_printed_offline_then_online_at_the_same_copier_is_raced(world: World) -> None:
    """Printed offline, then (link back, report not yet in) released and printed online at
    the same copier: printed twice, not "recorded already"."""
    world.policy()
    world.sign_in(ALICE)
    alice = world.user_id(ALICE)
    twice, once = (j.job_id for j in world.bundle().jobs_of(alice)[:2])
    session = world.sign_in(ALICE)
    rel = world.ask(m.Release(request_id="rel-4", session=session, job_ids=(twice,)))
    assert isinstance(rel, m.ReleaseResult)
    world.ask(m.JobPrinted(request_id="p-4", release_id=rel.release_id, job_id=twice))
    r = result(world.report(printed(alice, twice, "off-t1"), printed(alice, once, "off-t1")))
    assert r.raced == (twice,)
    assert world.job(twice).release_id == rel.release_id  # the online printing stands
    race = world.audits("offline.raced")
    assert len(race) == 1 and twice in race[0][4]
    # The offline printing of the other job, reported again under another id (and under a
    # malformed release id, recorded under the one derived from it): recorded already.
    assert world.job(once).release_id == "off-t1"
    assert result(world.report(printed(alice, once, "off-t1"))).raced == ()
    assert result(world.report(printed(alice, twice, "off-t1"))).raced == (twice,)
    third = world.bundle().jobs_of(alice)[0].job_id
    assert result(world.report(printed(alice, third, "bad id!"))).raced == ()
    assert (world.job(third).release_id or "").startswith(po.OFFLINE_RELEASE_PREFIX)
    assert result(world.report(printed(alice, third, "bad id!"))).raced == ()
    assert len(world.audits("offline.raced")) == 2


def test_a_job_released_here_online_and_printed_offline_is_recorded(world: World) -> None:
    world.policy()
    session = world.sign_in(ALICE)
    alice = world.user_id(ALICE)
    job = world.bundle().jobs_of(alice)[0].job_id
    rel = world.ask(m.Release(request_id="rel-3", session=session, job_ids=(job,)))
    assert isinstance(rel, m.ReleaseResult)
    assert result(world.report(printed(alice, job))).raced == ()
    assert world.job(job).state == "PRINTED"


def test_a_report_is_checked_against_the_bundle_it_names(world: World) -> None:
    """The device kept bundle N while the cloud made N+1 and N+2 (answers lost, a bundle
    refused), neither listing its jobs: what it printed from N is recorded, while N is kept
    (expired too: the report comes when the link is back); housekeeping drops bundles past
    their grace, each device's newest kept."""
    world.policy(offline_valid_hours=1)
    world.sign_in(ALICE)
    alice = world.user_id(ALICE)
    first = world.bundle()
    now_, late, purged = (j.job_id for j in first.jobs_of(alice)[:3])
    world.policy(offline_valid_hours=1, offline_documents_mb=0)  # the next ones list no job
    world.clock.now += 60
    second = world.bundle()
    world.clock.now += 60
    third = world.bundle()
    assert not second.jobs and not third.jobs and first.seq < second.seq < third.seq
    chunk = world.ask(m.FetchOffline(job_id=late))  # N has not expired: still fetched
    assert isinstance(chunk, m.DocumentChunk)
    assert result(world.report(printed(alice, now_), seq=first.seq)).accepted == 1
    assert world.job(now_).state == "PRINTED"
    # Two hours on, every bundle expired: only the one a report names is checked against.
    world.clock.now += 2 * 3600
    unknown = len(world.audits("offline.unknown_job"))
    world.report(printed(alice, late), seq=third.seq)
    assert world.job(late).state == "HELD"
    assert len(world.audits("offline.unknown_job")) == unknown + 1
    world.report(printed(alice, late), seq=first.seq)
    assert world.job(late).state == "PRINTED"
    assert world.refused(m.FetchOffline(job_id=purged)).code == "job_not_found"
    # Past the grace: dropped, but for the newest (the next sequence number grows from it).
    world.clock.now += BUNDLE_GRACE
    assert world.service.housekeeping()["bundles"] == 2
    assert world.store.offline_last_seq("copier-1") == third.seq
    world.report(printed(alice, purged), seq=first.seq)
    assert world.job(purged).state != "PRINTED"
    assert len(world.audits("offline.unknown_job")) == unknown + 2
    assert world.bundle().seq > third.seq


def test_a_device_cannot_end_jobs_it_was_not_given(world: World) -> None:
    world.policy()
    world.sign_in(ALICE)
    world.bundle()
    bob = world.user_id(BOB)
    bobs = world.store.held_jobs(bob, 0, 10, world.clock.now)[0]
    alice = world.user_id(ALICE)
    alices = world.store.held_jobs(alice, 0, 1, world.clock.now)[0][0].id
    result(world.report(printed(bob, bobs[0].id), printed(bob, alices),
                        printed(alice, bobs[1].id), device="copier-1"))
    result(world.report(printed(alice, alices), device="copier-2"))  # never given it
    assert {world.job(j.id).state for j in bobs} == {"HELD"}
    assert world.job(alices).state == "HELD"


_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=80)


@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_report_never_fails_and_ends_only_delivered_jobs_of_their_owner(
        world: World, data: st.DataObject) -> None:
    if not world.store.offline_last_seq("copier-1"):
        world.policy(offline_users="everyone")
        for u in (ALICE, BOB):
            world.sign_in(u)
        world.bundle()
    delivered = world.store.offline_bundle_jobs("copier-1", None, world.clock.now)
    jobs = {j.id: j for j in world.store.all_jobs()}
    users = sorted({j.owner_id for j in jobs.values() if j.owner_id})
    arbitrary = st.builds(
        m.OfflineEvent,
        kind=st.sampled_from(("login", "refused", "printed", "failed")),
        at=st.floats(min_value=0, max_value=1e15, allow_nan=False),
        user_id=st.one_of(st.sampled_from(users), _TEXT.map(lambda t: t[:64])),
        job_id=st.one_of(st.sampled_from(sorted(jobs)), _TEXT.map(lambda t: t[:64])),
        detail=_TEXT.map(lambda t: t[:200]),
        release_id=st.one_of(st.just("off-x"), _TEXT.map(lambda t: t[:64])))
    # Plausible ones too: a delivered job, printed, named with its owner.
    given_jobs = sorted(j for j in delivered if jobs[j].owner_id)
    plausible = st.builds(
        lambda job_id, at, release: m.OfflineEvent(
            kind="printed", at=at, user_id=jobs[job_id].owner_id or "", job_id=job_id,
            release_id=release),
        st.sampled_from(given_jobs), st.floats(min_value=0, max_value=2**40),
        st.sampled_from(("off-a", "off-b", "rel-x", "")))
    events = data.draw(st.lists(st.one_of(arbitrary, plausible), min_size=1, max_size=8))
    device = data.draw(st.sampled_from(("copier-1", "copier-2")))
    answer = m.decode_response(world.report(*events, device=device), "offline.report")
    assert isinstance(answer, m.OfflineReportResult) and answer.accepted == len(events)
    for job_id, before in jobs.items():
        now = world.job(job_id)
        if now.state == before.state:
            continue
        # Only a HELD job of this device's bundle, printed by its owner's event, changed.
        assert device == "copier-1" and job_id in delivered and before.state == "HELD"
        assert now.state == "PRINTED"
        event("a delivered job was printed offline")
        assert any(e.kind == "printed" and e.job_id == job_id and e.user_id == before.owner_id
                   for e in events)


# ---------------------------------------------------------------------------- durability


class WatchedStore(PostgresStore):
    """The real store, noting the ``synchronous_commit`` each outermost transaction commits
    with (as tests/test_commit_durability.py does)."""

    def __init__(self, url: str) -> None:
        self.commits: list[str] = []
        super().__init__(url)

    def _commit(self, con: Any) -> None:
        row = con.execute("SELECT current_setting('synchronous_commit')").fetchone()
        self.commits.append(str(row[0]) if row else "?")
        super()._commit(con)


def test_what_an_offline_device_may_print_is_durable(pg_database: ScratchDatabase) -> None:
    """A bundle listing jobs and a report commit durably (a job printed offline must never be
    printable again after a crash); a bundle without jobs and a sealed chunk need not."""
    store = WatchedStore(pg_database.schema_url())
    try:
        seed_demo(store, now=time.time())
        service = CloudService(store)
        offline.offline_public_key(store)  # the key is made (durably) before we watch

        def setting(req: m.Request) -> str:
            store.commits.clear()
            m.decode_response(service.handle("copier-1", m.encode(req)), req.TYPE)
            assert len(store.commits) == 1, store.commits
            return store.commits[0]

        devices.set_device_config(store, "copier-1", {"policy": {"offline": True}}, time.time())
        assert setting(m.Identify("card", ALICE.badge)) == "off"
        assert setting(m.OfflineSync()) == "on"
        job = store.offline_bundle_jobs("copier-1", None, time.time())
        assert job
        assert setting(m.FetchOffline(job_id=sorted(job)[0])) == "off"
        devices.set_device_config(store, "copier-1", {"policy": {"offline_documents_mb": 0}},
                                  time.time())
        assert setting(m.OfflineSync()) == "off"
        alice = str(store.user_by_email(ALICE.email).id)
        assert setting(m.OfflineReport(request_id="rep-d", seq=1, events=(
            printed(alice, sorted(job)[0]),))) == "on"
    finally:
        store.close()
