"""A device with two brokers fails over and comes back (issue 13, Outages), every part real: two
private Mosquittos, the cloud worker serving both from one store (cloud/worker.py), the device
app on MqttCloudLink with a WAN proxy (simulator/netem.py) between it and each broker.

- the primary killed: the device moves to the secondary, the signed-in user's session goes on
  there, a release prints; the primary back: the device returns to it;
- a primary that comes and goes (a black hole, on and off) is probed but never returned to;
- a release with the primary cut (or reset) at each step, the primary then gone for good: the
  request in flight is asked again on the secondary with the same request_id, prints once and
  ends PRINTED.

Fast failover timing (FAST) keeps these to seconds; the policy itself is tested in
test_broker_list.py with a clock of its own.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from e2e_helpers import running_app, sim_reader
from waiting import eventually

from cloud.broker_accounts import BrokerAccountError, DynsecAccounts, EveryBroker
from cloud.demo import DEMO_USERS, seed_demo
from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.storage.sql import SqlStore
from cloud.worker import CloudWorker, start_workers, worker_brokers
from device_app import config as device_config
from device_app.app import DeviceApp
from device_app.link import MqttCloudLink
from device_app.runner import from_config_file
from device_app.session import State
from device_app.view import Action, Screen
from firmware_stubs.mfd_controller import MfdControllerStub
from mqtt_client.endpoint import BrokerEndpoint
from mqtt_client.failover import FailoverTiming
from provisioning.provision import ProvisionRequest, provision
from readers.adapters.sim_reader import SimReader
from simulator.broker import MosquittoBroker, free_port
from simulator.netem import LinkProfile, WanProxy

pytestmark = pytest.mark.integration

DEVICE, DEVICE_PW = "copier-1", "pw-failover-1"
CLOUD, CLOUD_PW = "cloud-0", "pw-failover-cloud"
#: Seconds, not minutes: a switch after 0.4-0.6 s, a probe every 0.15-0.25 s, three good ones
#: in a row to return.
FAST = FailoverTiming(switch_after=0.4, probe_every=0.2, probe_timeout=0.6, healthy_probes=3,
                      hold=5.0, ack_timeout=1.0)


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MosquittoBroker, ...]]:
    """Two brokers of one site, the same accounts on each (as EveryBroker writes them)."""
    pair = tuple(MosquittoBroker(tmp_path_factory.mktemp(f"mosquitto-{name}"),
                                 {CLOUD: CLOUD_PW, DEVICE: DEVICE_PW}, cloud_users=(CLOUD,))
                 for name in ("primary", "secondary"))
    with contextlib.ExitStack() as stack:
        for b in pair:
            stack.enter_context(b)
        yield pair


@dataclass
class Site:
    primary: MosquittoBroker
    store: SqlStore
    worker: CloudWorker
    nets: tuple[WanProxy, WanProxy]
    link: MqttCloudLink
    app: DeviceApp
    reader: SimReader
    engine: MfdControllerStub

    def until(self, predicate: object, what: str, timeout: float = 15) -> None:
        assert self.app.run_until(predicate, timeout), (  # type: ignore[arg-type]
            f"wanted {what}; panel at {self.app.machine.state}: {self.app.view().title!r} "
            f"{self.app.view().message!r}; link on broker {self.link.current}, "
            f"connected {self.link.connected}")

    def on(self, index: int, what: str) -> None:
        self.until(lambda _a: self.link.current == index and self.link.connected, what)

    def log_in(self, user: int = 0) -> None:
        self.reader.present(DEMO_USERS[user].badge)
        self.until(lambda a: a.machine.state is State.JOBS, "the job list")

    def release_first(self) -> str:
        job = self.app.view().jobs[0]
        self.app.tap(Action.SELECT, job.job_id)
        self.app.tap(Action.RELEASE)
        return job.job_id

    def printed_once(self, job_id: str) -> None:
        self.until(lambda a: a.machine.state is State.JOBS and len(self.engine.printed) >= 1,
                   "the job printed and the list back")
        assert [x.job_id for x in self.engine.printed] == [job_id]
        assert self.app.view().message == "1 printed"
        assert eventually(lambda: self.store.jobs([job_id])[0].state == "PRINTED"), (
            self.store.jobs([job_id])[0].state)
        # One release and one printed report in the cloud, whichever broker carried them.
        assert self.store.query_all("SELECT COUNT(*) FROM audit WHERE action = 'release'") \
            == [(1,)]
        assert self.store.query_all(
            "SELECT COUNT(*) FROM audit WHERE action = 'printed' AND subject = ?",
            f"job:{job_id}") == [(1,)]


@contextlib.contextmanager
def site(brokers: tuple[MosquittoBroker, ...], tmp_path: Path,
         keepalive: int = 30) -> Iterator[Site]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    store = open_store(url)
    assert isinstance(store, SqlStore)
    seed_demo(store, now=time.time())
    # As mfd cloud --broker URL --broker URL2 starts it: one worker, a client per broker.
    (worker,) = start_workers(lambda: CloudService(open_store(url)), worker_brokers(
        [b.url for b in brokers], CLOUD, CLOUD_PW))
    with contextlib.ExitStack() as stack:
        stack.callback(store.close)
        stack.callback(worker.stop)
        nets = tuple(stack.enter_context(WanProxy(b.host, b.port, LinkProfile()))
                     for b in brokers)
        assert len(nets) == 2
        link = MqttCloudLink([BrokerEndpoint(n.host, n.port, DEVICE, DEVICE_PW) for n in nets],
                             DEVICE, failover=FAST, keepalive=keepalive).start()
        assert link.connected and link.current == 0
        reader = sim_reader("failover")
        app, engine = stack.enter_context(running_app(link, reader))
        yield Site(brokers[0], store, worker, (nets[0], nets[1]), link, app, reader, engine)


def test_primary_killed_the_session_goes_on_on_the_secondary_and_comes_back(
        brokers: tuple[MosquittoBroker, ...], tmp_path: Path) -> None:
    with site(brokers, tmp_path) as s:
        s.log_in(0)
        s.primary.stop()  # killed: connections closed, new ones refused
        try:
            s.on(1, "the secondary")
            # The person at the panel was signed in on the primary: the same session, served
            # from the same store, goes on through the secondary.
            s.until(lambda a: a.machine.state is State.JOBS, "the job list, still signed in")
            job_id = s.release_first()
            s.printed_once(job_id)
            # And a new login works there (another badge: its holder in, the first out).
            first = s.app.machine.user
            s.reader.present(DEMO_USERS[1].badge)
            s.until(lambda a: a.machine.state is State.JOBS and a.machine.user != first,
                    "the next user's list, through the secondary")
        finally:
            s.primary.start()  # the same port: the proxy reaches it again
        # The primary healthy again: good probes in a row, then back (made before the
        # secondary is let go).
        s.on(0, "the primary again")
        assert [index for _, index in s.link.moves] == [1, 0]
        assert sum(ok for _, ok in s.link.probes) >= FAST.healthy_probes
        # The cloud is back on the primary too: a request there is answered.
        assert eventually(lambda: all(leg.connected.is_set() for leg in s.worker.legs))
        s.app.tap(Action.REFRESH)
        s.until(lambda a: a.machine.state is State.JOBS and not a.view().message.startswith(
            "Can't"), "the list refreshed through the primary")


def test_a_primary_that_comes_and_goes_is_probed_but_not_returned_to(
        brokers: tuple[MosquittoBroker, ...], tmp_path: Path) -> None:
    # A short keep-alive: a black hole is noticed by its silence, within one to two of these.
    with site(brokers, tmp_path, keepalive=1) as s:
        primary = s.nets[0]
        primary.blackhole()  # the route to the primary silently dies
        s.on(1, "the secondary, after the keep-alive noticed the black hole")
        # Now the black hole comes and goes: gone after each good probe, back after each bad
        # one, so the primary never answers three probes in a row.
        for _ in range(6):
            assert eventually(functools.partial(probed_since, s.link, len(s.link.probes)),
                              timeout=5), "no probe"
            if s.link.probes[-1][1]:
                primary.blackhole()
            else:
                primary.restore()
            assert s.link.current == 1
        results = [ok for _, ok in list(s.link.probes)[-6:]]
        assert True in results and False in results
        assert [index for _, index in s.link.moves] == [1]  # never back, never flapping
        # Healthy for good: back to the primary.
        primary.restore()
        s.on(0, "the primary, healthy for good")
        assert [index for _, index in s.link.moves] == [1, 0]


def test_a_release_into_a_black_hole_is_settled_on_the_secondary(
        brokers: tuple[MosquittoBroker, ...], tmp_path: Path) -> None:
    # The keep-alive (30 s) would notice in 30 to 60 s; the request the primary never
    # acknowledges does within ack_timeout, while the person waits.
    with site(brokers, tmp_path) as s:
        s.log_in(0)
        s.nets[0].blackhole()
        job_id = s.release_first()
        s.on(1, "the secondary, the silence noticed")
        s.printed_once(job_id)
        assert [index for _, index in s.link.moves] == [1]


def test_every_broker_gone_the_panel_says_so_and_any_one_back_serves_it(
        brokers: tuple[MosquittoBroker, ...], tmp_path: Path) -> None:
    with site(brokers, tmp_path) as s:
        for net in s.nets:
            net.cut()
        s.until(lambda a: a.view().screen is Screen.OFFLINE, "the panel saying so")
        assert s.app.view().title == "Can't reach the print service"
        s.nets[1].restore()  # only the secondary comes back: the device finds it
        s.on(1, "the secondary")
        s.until(lambda a: a.machine.state is State.IDLE, "the idle panel")
        s.log_in(1)


def probed_since(link: MqttCloudLink, seen: int) -> bool:
    return len(link.probes) > seen


# Where the primary fails (the message lost with it), and how; it then stays gone, so what was
# in flight is settled through the secondary.
RELEASE_CUTS = [
    pytest.param("up", b'"type":"jobs.release"', "cut", id="release-request-lost"),
    pytest.param("down", b'"type":"jobs.release"', "reset", id="release-done-answer-reset"),
    pytest.param("up", b'"type":"jobs.printed"', "reset", id="printed-report-reset"),
    pytest.param("down", b'"type":"jobs.printed"', "cut", id="printed-done-answer-lost"),
]


@pytest.mark.parametrize(("direction", "needle", "fault"), RELEASE_CUTS)
def test_a_release_with_the_primary_gone_at_any_step_prints_once_and_ends_printed(
        brokers: tuple[MosquittoBroker, ...], tmp_path: Path, direction: str, needle: bytes,
        fault: str) -> None:
    with site(brokers, tmp_path) as s:
        primary = s.nets[0]
        s.log_in(0)
        (primary.cut_at if fault == "cut" else primary.reset_at)(direction, needle)
        job_id = s.release_first()
        s.until(lambda _a: primary.was_cut.is_set(), "the fault")
        primary.cut()  # and the primary stays gone (a reset alone would heal there)
        s.on(1, "the secondary")
        s.printed_once(job_id)
        assert [index for _, index in s.link.moves] == [1]


def test_a_device_account_is_written_on_every_broker(
        brokers: tuple[MosquittoBroker, ...]) -> None:
    accounts = EveryBroker([DynsecAccounts(b.admin_address) for b in brokers])
    accounts.check()
    where = [f"{b.host}:{b.port}" for b in brokers]
    assert accounts.missing_on("copier-7") == where
    accounts.set_password("copier-7", "pw-copier-7")
    assert accounts.missing_on("copier-7") == []
    # The device can use either broker: a link to each alone connects.
    for b in brokers:
        link = MqttCloudLink([BrokerEndpoint(b.host, b.port, "copier-7", "pw-copier-7")],
                             "copier-7").start()
        try:
            assert link.connected
        finally:
            link.close()
    # A broker that cannot take it fails the whole write, named (registration then keeps its
    # one-time code: asking again writes the same account everywhere).
    gone = DynsecAccounts(replace(brokers[0].admin_address, port=free_port()), timeout=2)
    with pytest.raises(BrokerAccountError, match=f"broker 127.0.0.1:{gone.address.port}"):
        EveryBroker([DynsecAccounts(brokers[0].admin_address), gone]).set_password(
            "copier-7", "pw-again")


def test_a_device_from_its_device_toml_skips_a_primary_that_is_not_there(
        brokers: tuple[MosquittoBroker, ...], tmp_path: Path) -> None:
    # As mfd device --config runs it: the list from device.toml, in order, the first gone.
    nowhere = f"mqtt://127.0.0.1:{free_port()}"
    provision(ProvisionRequest(directory=tmp_path / "dev", device_id=DEVICE,
                               broker_url=(nowhere, brokers[1].url), username=DEVICE,
                               password=DEVICE_PW, engine_kind="emulator"), device_config)
    engine = MfdControllerStub()
    device = from_config_file(tmp_path / "dev" / "device.toml", engine=engine, failover=FAST)
    try:
        device.start(wait=5)
        assert device.link.connected and device.link.current == 1
        assert device.link.broker_label == f"mqtt://{brokers[1].host}:{brokers[1].port}"
        assert [index for _, index in device.link.moves] == [1]
    finally:
        device.stop()


def test_the_cloud_starts_with_a_broker_down_and_serves_it_once_it_answers(
        brokers: tuple[MosquittoBroker, ...], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    open_store(url).close()
    late = MosquittoBroker(tmp_path / "late", {CLOUD: CLOUD_PW}, cloud_users=(CLOUD,))
    late.port = free_port()  # nothing listens there yet
    (worker,) = start_workers(lambda: CloudService(open_store(url)), worker_brokers(
        [brokers[0].url, late.url], CLOUD, CLOUD_PW))
    try:
        assert [leg.connected.is_set() for leg in worker.legs] == [True, False]
        with late:
            assert eventually(worker.legs[1].connected.is_set, timeout=15)
    finally:
        worker.stop()
