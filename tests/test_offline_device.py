"""Offline mode end to end (issue 13): a real device app whose link is the OfflineLink over the
real MQTT link, through a WAN proxy, to the real cloud (cloud/offline.py) and Mosquitto. The
device syncs its bundle and pre-delivers sealed documents while online; the proxy is cut; past
the grace the panel says it is in offline mode; a badge signs in from the bundle, the user's
jobs show, one is released and the engine prints exactly its bytes; the link comes back: the
cloud is told (the job is PRINTED) and the job is not offered again, nor one released
elsewhere during the cut."""

from __future__ import annotations

import hashlib
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from conftest import World
from e2e_helpers import running_app, sim_reader
from waiting import eventually

from cloud.demo import DEMO_USERS, UNKNOWN_BADGE_TAG
from cloud.devices import set_device_config
from cloud.offline import offline_public_key
from device_app.app import DeviceApp
from device_app.link import MqttCloudLink
from device_app.offline.desk import Desk
from device_app.offline.link import OfflineLink
from device_app.offline.store import OfflineStore
from device_app.ports import Reply
from device_app.runner import offline_panel
from device_app.session import State
from device_app.view import Action, Screen
from firmware_stubs.mfd_controller import MfdControllerStub
from protocol import messages as m
from protocol.errors import ConfigError, LinkError, MfdError, RemoteError, StoreError
from protocol.managed import Policy
from protocol.offline import new_signing_key, parse_public_key, public_key_text, sign
from readers.adapters.sim_reader import SimReader
from simulator.netem import WanProxy

pytestmark = pytest.mark.integration

ALICE = DEMO_USERS[0]


@dataclass
class Copier:
    app: DeviceApp
    reader: SimReader
    engine: MfdControllerStub
    net: WanProxy
    link: OfflineLink
    store: OfflineStore

    def until(self, predicate: object, what: str, timeout: float = 20) -> None:
        assert self.app.run_until(predicate, timeout), (  # type: ignore[arg-type]
            f"wanted {what}; panel at {self.app.machine.state}: {self.app.view().title!r} "
            f"{self.app.view().message!r}")

    def badge(self) -> None:
        self.reader.present(ALICE.badge)
        self.until(lambda a: a.machine.state is State.JOBS, "the job list")

    def logout(self) -> None:
        self.app.tap(Action.LOGOUT)
        self.until(lambda a: a.machine.state is State.IDLE, "the idle panel")


@contextmanager
def offline_copier(world: World, tmp_path: Path) -> Iterator[Copier]:
    set_device_config(world.store, "copier-1", {"policy": {"offline": True}}, time.time())
    key = parse_public_key(offline_public_key(world.store))
    address = world.broker.address("copier-1")
    net = WanProxy(address.host, address.port)
    inner = MqttCloudLink(replace(address, host=net.host, port=net.port), "copier-1").start()
    store = OfflineStore.open(tmp_path / "offline.db")
    # A short grace and frequent syncs, so the test is quick (the policy's grace is 30 s at
    # least); the policy itself is the one the cloud also holds: offline mode on.
    link = OfflineLink(inner, Desk(store, key, "copier-1"), policy=lambda: Policy(offline=True),
                       grace=1.0, sync_every=1.0, retry=1.0)
    reader = sim_reader("offline")
    try:
        with running_app(link, reader) as (app, engine):  # type: ignore[arg-type]
            offline_panel(app, link)
            yield Copier(app, reader, engine, net, link, store)
    finally:
        net.close()
        store.close()


def job_state(world: World, job_id: str) -> str:
    return world.store.jobs([job_id])[0].state


def test_offline_sign_in_and_release_then_the_cloud_is_told(world: World,
                                                           tmp_path: Path) -> None:
    with offline_copier(world, tmp_path) as c:
        # Online first: Alice signs in here (so the cloud lists her for this copier), and the
        # device syncs and pre-delivers her jobs' sealed documents.
        c.badge()
        jobs = [j.job_id for j in c.app.view().jobs]
        assert len(jobs) >= 2
        user_id = next(iter(c.store.events()), None)  # nothing offline yet
        assert user_id is None
        c.logout()
        c.until(lambda a: set(jobs) <= c.link.desk.complete_jobs(), "her documents here")
        mine, elsewhere = jobs[0], jobs[1]

        # The network goes; past the grace the panel says it is in offline mode.
        c.net.cut()
        c.until(lambda a: a.machine.state is State.IDLE and a.machine.link_local,
                "offline mode")
        assert c.app.view().message.startswith("Offline mode")
        # Meanwhile Alice releases another of her jobs at another copier, online.
        other = MqttCloudLink(world.broker.address("copier-2"), "copier-2").start()
        try:
            who = other.call(m.Identify(method="card", value=ALICE.badge))
            assert isinstance(who, m.IdentifyResult)
            rel = other.call(m.Release(request_id="r-elsewhere", session=who.session,
                                       job_ids=(elsewhere,)))
            assert isinstance(rel, m.ReleaseResult)
            other.call(m.JobPrinted(request_id="p-elsewhere", release_id=rel.release_id,
                                    job_id=elsewhere))
        finally:
            other.close()
        assert job_state(world, elsewhere) == "PRINTED"

        # Offline, a badge nobody listed is refused plainly (no linking: that needs the cloud).
        c.reader.present(f"{UNKNOWN_BADGE_TAG:010d}")
        c.until(lambda a: a.machine.state is State.NOTICE, "the refusal")
        assert c.app.view().title == "Badge not on this copier's offline list"
        c.app.tap(Action.DISMISS)
        c.until(lambda a: a.machine.state is State.IDLE, "the idle panel")
        # Her badge signs her in from the bundle, her jobs show, one prints.
        c.badge()
        view = c.app.view()
        assert view.screen is Screen.JOBS and view.message.startswith("Offline mode")
        assert {mine, elsewhere} <= {j.job_id for j in view.jobs}
        c.app.tap(Action.SELECT, mine)
        c.app.tap(Action.RELEASE)
        c.until(lambda a: len(c.engine.printed) == 1 and a.machine.state is State.JOBS,
                "the job printed")
        printed = c.engine.printed[0]
        size = world.store.jobs([mine])[0].size
        assert printed.job_id == mine and printed.size == size
        assert printed.sha256 == hashlib.sha256(world.store.document(mine, 0, size)).hexdigest()
        assert mine not in {j.job_id for j in c.app.view().jobs}
        c.logout()
        assert job_state(world, mine) == "HELD"  # the cloud does not know yet

        # The link comes back: the report first (the job becomes PRINTED), then a new bundle
        # without the jobs printed here and elsewhere, whose copies go.
        c.net.restore()
        c.until(lambda a: job_state(world, mine) == "PRINTED", "the cloud told", 30)
        c.until(lambda a: a.machine.state is State.IDLE and not a.machine.link_local,
                "online again")
        c.until(lambda a: not c.store.events(), "the report answered")
        c.until(lambda a: c.link.desk.bundle is not None and not {mine, elsewhere} & {
            j.job_id for j in c.link.desk.bundle.jobs}, "a bundle without them")
        # Their copies go right after the new bundle is taken (desk.accept: the bundle first,
        # then keep_only, on the link's thread): waited for, not read at the same instant
        # (a fresh-clone CI run read them in between once).
        c.until(lambda a: not {mine, elsewhere} & set(c.store.chunk_sizes()),
                "their copies gone")
        # Signed in again, at the cloud this time: neither is offered.
        c.badge()
        shown = {j.job_id for j in c.app.view().jobs}
        assert not c.app.view().message.startswith("Offline mode")
        assert mine not in shown and elsewhere not in shown
        assert len(c.engine.printed) == 1
        assert eventually(lambda: c.link.idle(), timeout=5)


def test_device_toml_names_the_cloud_key_or_is_refused_naming_it() -> None:
    from device_app.config import parse_config, to_toml

    key = public_key_text(new_signing_key())
    base = {"device": {"id": "copier-9"}, "engine": {"kind": "emulator"}}
    cfg = parse_config(base | {"offline": {"cloud_key": key}})
    assert cfg.offline_key == key
    assert parse_config(tomllib.loads(to_toml(cfg))).offline_key == key
    assert parse_config(base).offline_key == "" and "offline" not in to_toml(parse_config(base))
    for bad in ("ed25519:AAAA", "rsa:xyz", 42):
        with pytest.raises(ConfigError, match=r"offline\.cloud_key"):
            parse_config(base | {"offline": {"cloud_key": bad}})


def test_the_runner_wraps_the_link_only_where_the_config_names_a_key(world: World,
                                                                     tmp_path: Path) -> None:
    from device_app.config import parse_config
    from device_app.runner import Device

    addr = world.broker.address("copier-2")
    base = {"device": {"id": "copier-2"}, "broker": {"url": f"mqtt://{addr.host}:{addr.port}"},
            "files": {"journal": str(tmp_path / "journal.db")}}
    plain = Device(parse_config(base), addr.password or "", engine=MfdControllerStub())
    try:
        assert plain.offline is None and plain.app.link is plain.link
    finally:
        plain.stop()
    keyed = parse_config(base | {"offline": {"cloud_key": offline_public_key(world.store)}})
    device = Device(keyed, addr.password or "", config_dir=tmp_path,
                    engine=MfdControllerStub()).start()
    try:
        assert device.offline is not None and device.app.link is device.offline
        assert (tmp_path / "offline.db").exists()
        # Offline mode is off by the policy (the default): no sync is asked for.
        assert device.app.run_until(lambda a: a.link.connected, 5)
        assert device.offline.synced == 0 and device.offline.idle()
        # A push turns it on, live: the device asks for its bundle and takes it.
        set_device_config(world.store, "copier-2", {"policy": {"offline": True}}, time.time())
        assert device.app.run_until(lambda a: device.offline is not None
                                    and device.offline.synced >= 1, 15)
    finally:
        device.stop()


# ---------------------------------------------------------------- the link over a fake cloud


class FakeCloud:
    """A cloud link that answers from protocol/offline.py as cloud/offline.py would: bundles
    signed here, sealed chunks, reports taken (what it was sent, in order, is kept)."""

    def __init__(self) -> None:
        from test_offline_desk import standard_cloud

        self.cloud = standard_cloud()
        self.connected = True
        self.on_connection: Callable[[bool], None] | None = None
        self.sent: list[m.Request] = []
        self.bad_signature = False
        self.lock = threading.Lock()
        #: Answers a test sets, by request type (they win over the ones below).
        self.answers: dict[type, Callable[[m.Request], m.Result | MfdError]] = {}
        self.on_command: Callable[[bytes], None] | None = None

    def request(self, request: m.Request, reply: Reply, timeout: float | None = None) -> None:
        with self.lock:
            self.sent.append(request)
        if not self.connected:
            reply(LinkError("can't reach the print service", code="unreachable"))
            return
        reply(self._answer(request))

    def _answer(self, request: m.Request) -> m.Result | MfdError:
        if type(request) in self.answers:
            return self.answers[type(request)](request)
        if isinstance(request, m.OfflineSync):
            body, sig = self.cloud.bundle(now=time.time())
            if self.bad_signature:
                sig = sign(new_signing_key(), body)
            return m.OfflineBundle(body=body, signature=sig)
        if isinstance(request, m.FetchOffline):
            return next(c for c in self.cloud.chunks(request.job_id)
                        if c.offset == request.offset)
        if isinstance(request, m.OfflineReport):
            return m.OfflineReportResult(accepted=len(request.events), raced=("job-b1",))
        return RemoteError("not_allowed", "not in this fake")

    def call(self, request: m.Request, timeout: float | None = None) -> m.Result:
        outcome = self._answer(request)
        if isinstance(outcome, MfdError):
            raise outcome
        return outcome

    def close(self) -> None:
        pass

    def set(self, up: bool) -> None:
        self.connected = up
        if self.on_connection is not None:
            self.on_connection(up)


def test_the_link_reports_before_it_syncs_and_goes_offline_only_with_a_usable_bundle(
        caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeCloud()
    store = OfflineStore.memory()
    desk = Desk(store, fake.cloud.public(), "dev-offline-1")  # type: ignore[arg-type]
    told: list[bool] = []
    policy = Policy(offline=True)
    # Events from a former outage, waiting to be reported.
    store.journal(m.OfflineEvent(kind="refused", at=1.0, detail="unknown_card"), seq=0)
    link = OfflineLink(fake, desk, policy=lambda: policy, grace=0.3, sync_every=3600,
                       retry=0.2)
    link.on_connection = told.append
    try:
        fake.set(True)
        assert eventually(lambda: desk.complete_jobs() == {"job-a1", "job-a2", "job-b1"})
        kinds = [r.TYPE for r in fake.sent]
        assert kinds.index("offline.report") < kinds.index("offline.sync")
        assert link.raced == ["job-b1"] and not store.events()
        # A bundle that does not verify is refused with its reason, and the old one stays.
        held = desk.bundle
        fake.bad_signature = True
        link._sync_due = 0.0  # next round: a sync (as the timer would, hours later)
        assert eventually(lambda: link.refused == ["bad_signature"])
        assert desk.bundle is held
        assert "bad_signature" in caplog.text and "Ada" not in caplog.text
        # The link goes: down at once, "up" (local) after the grace.
        fake.set(False)
        assert told[-1] is False
        assert eventually(lambda: link.local and told[-1] is True, timeout=5)
        who = link.call(m.Identify(method="card", value="04A1B2C3D4", page_size=10))
        assert isinstance(who, m.IdentifyResult) and who.jobs
        # Back: new sign-ins go to the cloud again; the offline session stays local.
        fake.set(True)
        assert not link.local and told[-1] is True
        listed = link.call(m.ListJobs(session=who.session))
        assert isinstance(listed, m.JobList) and listed.total == 2
        with pytest.raises(RemoteError):
            link.call(m.Identify(method="card", value="04A1B2C3D4"))  # the fake says no
        assert eventually(lambda: not store.events())  # the login reported
        # The cloud goes again while she is still here: her session goes on, locally, at once.
        fake.set(False)
        assert link.local and told[-1] is True
        assert isinstance(link.call(m.ListJobs(session=who.session)), m.JobList)
        link.call(m.Logout(request_id="bye", session=who.session))
        fake.set(True)
        assert not link.local and told[-1] is True
        # No usable bundle (offline mode turned off by the policy): never local.
        policy = Policy(offline=False)
        fake.set(False)
        past_grace = time.monotonic() + 0.3
        assert eventually(lambda: link.stepped_at > past_grace)  # it has looked since
        assert not link.local and told[-1] is False
    finally:
        link.close()


def _summary(job_id: str) -> m.JobSummary:
    return m.JobSummary(job_id=job_id, name=job_id, pages=1, color=False, duplex=False,
                        copies=1, size=10, submitted_at=1.0)


def _released(job_id: str) -> m.ReleasedJob:
    return m.ReleasedJob(job_id=job_id, name=job_id, size=10, sha256="0" * 64, pages=1,
                         copies=1, color=False, duplex=False)


def test_a_job_printed_offline_never_shows_or_prints_online_until_its_report_is_taken() -> None:
    fake = FakeCloud()
    store = OfflineStore.memory()
    desk = Desk(store, fake.cloud.public(), "dev-offline-1")  # type: ignore[arg-type]
    # Printed offline; the report of it is not taken yet (the cloud is busy).
    store.journal(m.OfflineEvent(kind="printed", at=1.0, user_id="u-ada", job_id="job-a1",
                                 release_id="off-1"), seq=0)
    taken = threading.Event()

    def report(request: m.Request) -> m.Result | MfdError:
        if not taken.is_set():
            return RemoteError("busy", "later", retry_after=1)
        assert isinstance(request, m.OfflineReport)
        return m.OfflineReportResult(accepted=len(request.events))

    page = m.JobList(jobs=(_summary("job-a1"), _summary("job-a2")), total=7)
    fake.answers = {
        m.OfflineReport: report,
        m.ListJobs: lambda r: page,
        m.Identify: lambda r: m.IdentifyResult(session="s", user_id="u-ada",
                                               display_name="Ada", expires_in=300
                                               ).with_first_page(page),
        m.Release: lambda r: m.ReleaseResult(release_id="r-1", jobs=(_released("job-a2"),)),
    }
    # The runner wires the cmd topic on the real link before wrapping it (device_app/runner.py).
    orders: list[bytes] = []
    fake.on_command = orders.append
    link = OfflineLink(fake, desk, policy=lambda: Policy(offline=True), sync_every=3600,
                       retry=0.1)
    assert link.on_command == orders.append  # the app then leaves it as it is
    try:
        assert eventually(lambda: any(isinstance(r, m.OfflineReport) for r in fake.sent))
        listed = link.call(m.ListJobs(session="s"))
        assert isinstance(listed, m.JobList)
        assert [j.job_id for j in listed.jobs] == ["job-a2"] and listed.total == 6
        got: list[m.Result | MfdError] = []
        link.request(m.Identify(method="card", value="04A1B2C3D4", page_size=10), got.append)
        who = got[-1]
        assert isinstance(who, m.IdentifyResult) and who.jobs is not None
        assert [j.job_id for j in who.jobs] == ["job-a2"] and who.total == 6
        with pytest.raises(RemoteError) as refused:
            link.call(m.Release(request_id="r", session="s", job_ids=("job-a2", "job-a1")))
        assert refused.value.code == "job_not_held" and "offline" in refused.value.message
        with pytest.raises(RemoteError) as everything:
            link.call(m.Release(request_id="r", session="s", job_ids=(), all_held=True))
        assert everything.value.code == "busy"
        assert isinstance(link.call(m.Release(request_id="r", session="s",
                                              job_ids=("job-a2",))), m.ReleaseResult)
        assert not any(isinstance(r, m.Release) and "job-a1" in r.job_ids for r in fake.sent)
        # A release order naming it is dropped; one that does not is passed on.
        order_a1 = m.encode(m.ReleaseOrder(release_id="r-9", jobs=(_released("job-a1"),)))
        order_a2 = m.encode(m.ReleaseOrder(release_id="r-8", jobs=(_released("job-a2"),)))
        assert fake.on_command is not None
        fake.on_command(order_a1)
        fake.on_command(order_a2)
        assert orders == [order_a2]
        # The report is taken: nothing is filtered any more.
        taken.set()
        assert eventually(lambda: not store.events())
        listed = link.call(m.ListJobs(session="s"))
        assert isinstance(listed, m.JobList) and listed.total == 7 and len(listed.jobs) == 2
        fake.on_command(order_a1)
        assert orders == [order_a2, order_a1]
    finally:
        link.close()


class FailingStore(OfflineStore):
    """The SQLite store, whose writes fail while ``failing`` is set (a full disk)."""

    failing = False

    def _fail(self) -> None:
        if self.failing:
            raise StoreError("offline store: database or disk is full")

    def put_chunk(self, job_id: str, offset: int, total: int, sealed: bytes) -> None:
        self._fail()
        super().put_chunk(job_id, offset, total, sealed)

    def save_bundle(self, body: bytes, signature: bytes, seq: int) -> None:
        self._fail()
        super().save_bundle(body, signature, seq)

    def report_answered(self, request_id: str) -> None:
        self._fail()
        super().report_answered(request_id)

    def high_water(self) -> float:
        self._fail()
        return super().high_water()


def test_a_store_error_in_a_reply_is_caught_and_the_link_tries_again(
        caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeCloud()
    memory = OfflineStore.memory()
    store = FailingStore(memory._db, memory.path)
    desk = Desk(store, fake.cloud.public(), "dev-offline-1")  # type: ignore[arg-type]
    store.journal(m.OfflineEvent(kind="login", at=1.0, user_id="u-ada", detail="card"), seq=0)
    store.failing = True
    link = OfflineLink(fake, desk, policy=lambda: Policy(offline=True), sync_every=3600,
                       retry=0.1)
    try:
        # The real link calls back on paho's thread: what the store raises stays here.
        report = desk.pending_report(lambda: "rep-x")
        assert report is not None
        link._reported(report, m.OfflineReportResult(accepted=1))
        body, sig = fake.cloud.bundle(now=time.time())
        link._synced(m.OfflineBundle(body=body, signature=sig))
        chunk = fake.cloud.chunks("job-a1")[0]
        link._fetched("job-a1", 0, chunk)
        link._inner_changed(False)
        link._inner_changed(True)
        assert "disk is full" in caplog.text
        # The disk has room again: the link gets there by itself.
        store.failing = False
        assert eventually(lambda: desk.complete_jobs() == {"job-a1", "job-a2", "job-b1"}
                          and not store.events())
    finally:
        link.close()


def test_offline_mode_ended_or_expired_drops_the_bundle_and_its_documents() -> None:
    fake = FakeCloud()
    store = OfflineStore.memory()
    desk = Desk(store, fake.cloud.public(), "dev-offline-1")  # type: ignore[arg-type]
    now = [time.time()]
    link = OfflineLink(fake, desk, policy=lambda: Policy(offline=True), sync_every=3600,
                       retry=0.1, clock=lambda: now[0])
    try:
        assert eventually(lambda: desk.complete_jobs() == {"job-a1", "job-a2", "job-b1"})
        store.journal(m.OfflineEvent(kind="login", at=1.0, user_id="u-ada", detail="card"),
                      seq=1)
        store.save_lockout((), 60.0)
        seq = store.last_seq()
        # The org turns offline mode off: the next sync says not_allowed.
        fake.answers[m.OfflineSync] = lambda r: RemoteError("not_allowed", "off here")
        fake.answers[m.OfflineReport] = lambda r: RemoteError("busy", "later")
        link._sync_due = 0.0
        assert eventually(lambda: desk.bundle is None and store.bundle() is None
                          and store.stored_bytes() == 0)
        assert store.last_seq() == seq and store.events() and store.lockout()[1] == 60.0
        # Offline mode on again, then the bundle expires (by the clock): it goes too.
        del fake.answers[m.OfflineSync]
        link._sync_due = 0.0
        assert eventually(lambda: desk.complete_jobs() == {"job-a1", "job-a2", "job-b1"})
        fake.answers[m.OfflineSync] = lambda r: RemoteError("busy", "later")
        now[0] += 100 * 3600
        assert eventually(lambda: desk.bundle is None and store.stored_bytes() == 0)
        assert store.events() and store.last_seq() >= seq
    finally:
        link.close()


def test_a_report_the_cloud_finds_too_large_goes_again_smaller_and_loses_no_print() -> None:
    fake = FakeCloud()
    store = OfflineStore.memory()
    desk = Desk(store, fake.cloud.public(), "dev-offline-1")  # type: ignore[arg-type]
    for i in range(250):
        for kind in ("login", "printed"):
            store.journal(m.OfflineEvent(kind=kind, at=1.0 + i, user_id=f"u{i:063d}",
                                         job_id=f"j{i:063d}", detail="d" * 200,
                                         release_id=f"off-{i:060d}"), seq=0)
    taken: list[m.OfflineEvent] = []
    ids: list[str] = []

    def report(request: m.Request) -> m.Result | MfdError:
        assert isinstance(request, m.OfflineReport)
        ids.append(request.request_id)
        if len(m.encode(request)) > 20_000:  # a cloud with a smaller bound than ours
            return RemoteError("too_large", "request too large")
        taken.extend(request.events)
        return m.OfflineReportResult(accepted=len(request.events))

    fake.answers[m.OfflineReport] = report
    link = OfflineLink(fake, desk, policy=lambda: Policy(offline=False), retry=0.1)
    try:
        assert eventually(lambda: not store.events())
        assert len(taken) == 500 and len(ids) == len(set(ids))  # a new id each time
        assert {e.job_id for e in taken if e.kind == "printed"} == {f"j{i:063d}"
                                                                   for i in range(250)}
    finally:
        link.close()
