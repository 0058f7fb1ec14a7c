"""Statuses never hold requests up (issue 14): a fleet's retained statuses, thousands at once at
every connect, are written on the worker's status thread (cloud/statuses.py), coalesced per
device, in batches, only those that change something; requests are answered meanwhile.

Real parts: a private Mosquitto, a worker on a PostgreSQL store. The statuses are held back for
as long as the test likes by a real lock on the devices' rows (another connection's ``LOCK
TABLE devices IN SHARE MODE``: reads go on, the status writes wait), which makes "answered while
the statuses are still being processed" a certainty instead of a race. A worker writing its
statuses on the paho thread, as before, answers nothing until the lock goes (measured with the
fleet: BENCHMARKS.md, "Fleet (issue 14)").
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pg import ScratchDatabase
from waiting import eventually

from cloud.service import CloudService, record_status
from cloud.statuses import StatusWriter, changes, write_batch
from cloud.storage.factory import open_store
from cloud.storage.postgres import PostgresStore
from cloud.storage.sql import SqlStore
from cloud.worker import ANSWERS_IN_FLIGHT, CloudWorker
from mqtt_client import new_client
from protocol import messages as m
from protocol import topics
from protocol.address import BrokerAddress
from simulator.broker import MosquittoBroker, free_port

#: Registered devices whose retained status the worker gets at its connect.
DEVICES = 2000
CLOUD = ("cloud-0", "cloud-1")
ASKER = "copier-1"


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    # Its own broker: the retained statuses stay here and reach no other test's worker.
    users = {u: f"pw-{u}" for u in (*CLOUD, ASKER)}
    b = MosquittoBroker(tmp_path_factory.mktemp("statuses-mosquitto"), users, cloud_users=CLOUD)
    b.start()
    yield b
    b.stop()


def _client(b: MosquittoBroker, user: str) -> mqtt.Client:
    c = new_client(user, user, f"pw-{user}")
    connected = threading.Event()
    c.on_connect = lambda *_a: connected.set()
    c.connect(b.host, b.port)
    c.loop_start()
    assert connected.wait(10)
    return c


def _worker(b: MosquittoBroker, user: str, url: str) -> CloudWorker:
    return CloudWorker(lambda: CloudService(open_store(url, create=False)),
                       BrokerAddress(b.host, b.port, user, f"pw-{user}"))


def dev(i: int) -> str:
    return f"st-{i:05d}"


def _publish_statuses(b: MosquittoBroker) -> int:
    """Every device's retained status, as a fleet leaves them at its broker, plus a few
    devices with several (the broker keeps the last retained; the worker gets only that one):
    the published messages the worker will see."""
    pub = _client(b, "cloud-1")
    try:
        infos = [pub.publish(topics.status_topic(dev(i)),
                             m.encode(m.DeviceStatus("online", 100 + i, engine="ipp")),
                             qos=1, retain=True)
                 for i in range(DEVICES)]
        # Not registered: read, nothing written.
        infos.append(pub.publish(topics.status_topic("st-stranger"),
                                 m.encode(m.DeviceStatus("online", 1)), qos=1, retain=True))
        for info in infos:
            info.wait_for_publish(10)
    finally:
        pub.disconnect()
        pub.loop_stop()
    return DEVICES + 1


def _ask(b: MosquittoBroker) -> float:
    """A device's jobs.list (a session nobody has: refused, an answer all the same), asked
    again every half second as a person would; seconds from the first ask to an answer, or
    inf if none within 5 s."""
    c = _client(b, ASKER)
    answered = threading.Event()
    c.on_message = lambda *_a: answered.set()
    c.subscribe(topics.response_topic(ASKER), qos=1)
    try:
        first = time.monotonic()
        while time.monotonic() - first < 5:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = topics.response_topic(ASKER)
            props.CorrelationData = b"ask"
            props.MessageExpiryInterval = topics.REQUEST_EXPIRY
            c.publish(topics.request_topic(ASKER), m.encode(m.ListJobs("no-such-session")),
                      qos=1, properties=props)
            if answered.wait(0.5):
                return time.monotonic() - first
        return float("inf")
    finally:
        c.disconnect()
        c.loop_stop()


@pytest.fixture
def store(pg_database: ScratchDatabase) -> Iterator[tuple[SqlStore, str]]:
    url = pg_database.schema_url()
    s = open_store(url)
    with s.transaction():
        org = s.create_org("Statuses Org")
        s.add_device(ASKER, org, "Asker")
        for i in range(DEVICES):
            s.add_device(dev(i), org, f"Copier {i}")
    yield s, url
    s.close()


def test_a_request_is_answered_while_a_fleet_of_statuses_waits(
        mosquitto: MosquittoBroker, store: tuple[SqlStore, str]) -> None:
    s, url = store
    published = _publish_statuses(mosquitto)
    locker = open_store(url, create=False)
    worker = _worker(mosquitto, "cloud-0", url)
    try:
        with locker.transaction():
            # The status writes wait on this; reads (the request's) do not.
            locker.execute("LOCK TABLE devices IN SHARE MODE")
            worker.start()
            took = _ask(mosquitto)
            # Answered at once, with every status still waiting behind the lock.
            assert took < 1.0, took
            assert worker.statuses == 0
            assert worker.handled >= 1
        # The lock gone, every status is processed, in batches, each device's written once.
        assert eventually(lambda: worker.statuses == published, timeout=15)
        assert worker.failed == 0
        assert worker.status_writer.written == DEVICES
        assert worker.status_writer.batches <= published // 100
        with s.transaction():
            assert s.device_status(dev(0)) == ("online", 100)
            assert s.device_status(dev(DEVICES - 1)) == ("online", 100 + DEVICES - 1)
            assert s.device_engine(dev(7)) == "ipp"
            assert s.device_status("st-stranger") is None

        # A second worker gets the same retained statuses at its connect: the store holds
        # them already, so it writes nothing (no commit per device, no second engine record).
        second = _worker(mosquitto, "cloud-1", url).start()
        try:
            assert eventually(lambda: second.statuses == published, timeout=15)
            assert second.status_writer.written == 0
            assert second.failed == 0
        finally:
            second.stop()
    finally:
        worker.stop()
        locker.close()
        _clear_retained(mosquitto)


def _clear_retained(b: MosquittoBroker) -> None:
    pub = _client(b, "cloud-1")
    try:
        infos = [pub.publish(topics.status_topic(d), b"", qos=1, retain=True)
                 for d in [*(dev(i) for i in range(DEVICES)), "st-stranger"]]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        pub.disconnect()
        pub.loop_stop()


STATES = st.sampled_from(["online", "offline"])
ARRIVALS = st.lists(st.tuples(st.integers(0, 3), STATES, st.integers(0, 4)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(known=st.lists(st.tuples(STATES, st.integers(-1, 4)), min_size=4, max_size=4),
       arrivals=ARRIVALS)
def test_coalesced_batches_leave_what_one_by_one_would(
        known: list[tuple[str, int]], arrivals: list[tuple[int, str, int]]) -> None:
    """Statuses put while the thread is not running wait coalesced (one entry per device); once
    written, each device holds what record_status, one message at a time in arrival order, would
    have left; and a status equal to the stored one is not written."""
    with tempfile.TemporaryDirectory() as tmp:
        one_by_one = open_store(f"sqlite:///{tmp}/a.db")
        batched = open_store(f"sqlite:///{tmp}/b.db")
        for s in (one_by_one, batched):
            with s.transaction():
                org = s.create_org("Org", org_id="org_x")
                for d, (state, epoch) in enumerate(known):
                    s.add_device(dev(d), org, f"Copier {d}")
                    s.record_status(dev(d), state, epoch, 0.0)
        counted: list[tuple[int, int]] = []
        writer = StatusWriter(lambda: CloudService(batched),
                              lambda n, failed: counted.append((n, failed)), linger=0.0)
        for d, state, epoch in arrivals:
            payload = m.encode(m.DeviceStatus(state, epoch))
            record_status(one_by_one, dev(d), payload, 1.0)
            writer.put(dev(d), payload)
        assert writer.waiting == len({d for d, _, _ in arrivals})
        writer.start()
        assert eventually(lambda: sum(n for n, _ in counted) == len(arrivals), timeout=10)
        writer.stop()
        assert [f for _, f in counted if f] == []
        changed = 0
        with one_by_one.transaction(), batched.transaction():
            for d, before in enumerate(known):
                after = one_by_one.device_status(dev(d))
                assert batched.device_status(dev(d)) == after
                changed += after != before
        # Written: at most the devices that changed (an unchanged one costs no write).
        assert writer.written == changed
        one_by_one.close()
        batched.close()


def test_a_store_that_cannot_be_reached_costs_the_batch_not_the_thread() -> None:
    """Tried again after each wait, then dropped and counted as failed (they are retained: the
    next connect brings them again); the thread goes on with the next batch."""
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    counted: list[tuple[int, int]] = []
    opened: list[float] = []

    def service() -> CloudService:
        opened.append(time.monotonic())
        return CloudService(open_store(nowhere, create=False))

    writer = StatusWriter(service, lambda n, failed: counted.append((n, failed)),
                          linger=0.0, retry_waits=(0.05, 0.1)).start()
    try:
        writer.put(dev(0), m.encode(m.DeviceStatus("online", 1)))
        writer.put(dev(0), m.encode(m.DeviceStatus("offline", 1)))
        assert eventually(lambda: counted == [(2, 2)], timeout=10)
        assert len(opened) == 3  # the first try and one after each wait
        writer.put(dev(1), m.encode(m.DeviceStatus("online", 1)))
        assert eventually(lambda: counted == [(2, 2), (1, 1)], timeout=10)
    finally:
        writer.stop()


def test_answers_in_flight_follow_the_brokers_receive_maximum(
        mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    """A worker's answers are not held back by paho's default window of 20 (under a backlog
    the broker's acknowledgements come behind the queued requests: answers piled up in the
    worker, measured in the fleet's storm), and never exceed what the broker takes."""
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    open_store(url).close()
    worker = _worker(mosquitto, "cloud-0", url).start()
    try:
        # paho has no getter for its window: read for the test only.
        assert worker.client._max_inflight_messages == ANSWERS_IN_FLIGHT
    finally:
        worker.stop()


class RacedStore(PostgresStore):
    """The real store, with another worker's write slipped in right after this one reads the
    devices' statuses (``race``: run once, on its own connection, committed), and its commits
    counted."""

    def __init__(self, url: str) -> None:
        self.race: Callable[[], None] | None = None
        self.commits = 0
        super().__init__(url)

    def _raced(self) -> None:
        race, self.race = self.race, None
        if race is not None:
            race()

    def device_status(self, device_id: str) -> tuple[str, int] | None:
        known = super().device_status(device_id)
        self._raced()
        return known

    def device_statuses(self, device_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        known = super().device_statuses(device_ids)
        self._raced()
        return known

    def _commit(self, con: Any) -> None:
        self.commits += 1
        super()._commit(con)


@pytest.fixture
def raced(pg_database: ScratchDatabase) -> Iterator[tuple[RacedStore, SqlStore]]:
    """Two workers' stores on one database, with two devices at epoch 3."""
    url = pg_database.schema_url()
    mine, other = RacedStore(url), open_store(url, create=False)
    with mine.transaction():
        org = mine.create_org("Race Org")
        for d in (0, 1):
            mine.add_device(dev(d), org, f"Copier {d}")
            mine.record_status(dev(d), "online", 3, 0.0)
    yield mine, other
    mine.close()
    other.close()


def test_two_workers_racing_keep_the_newer_status(raced: tuple[RacedStore, SqlStore]) -> None:
    """A worker reads epoch 3 and is about to write epoch 5 (a batch, and one status); another
    writes epoch 6 meanwhile and commits: written last, the older status changes nothing."""
    mine, other = raced

    def newer(d: int, state: str = "online", epoch: int = 6) -> Callable[[], None]:
        def write() -> None:
            assert record_status(other, dev(d), m.encode(m.DeviceStatus(state, epoch)), 1.0)
        return write

    mine.race = newer(0)
    written = write_batch(mine, [(dev(0), m.DeviceStatus("online", 5), b""),
                                 (dev(1), m.DeviceStatus("online", 5), b"")], 2.0)
    assert mine.race is None  # the other worker did write in between
    assert written == 1
    assert mine.device_status(dev(0)) == ("online", 6)
    assert mine.device_status(dev(1)) == ("online", 5)
    mine.race = newer(1)
    assert record_status(mine, dev(1), m.encode(m.DeviceStatus("offline", 5)), 3.0) is False
    assert mine.device_status(dev(1)) == ("online", 6)
    # Within one epoch "offline" wins over "online", whoever writes last.
    mine.race = newer(1, "offline")
    assert record_status(mine, dev(1), m.encode(m.DeviceStatus("online", 6)), 3.0) is False
    assert mine.device_status(dev(1)) == ("offline", 6)
    mine.race = newer(0, "online", 7)
    assert write_batch(mine, [(dev(0), m.DeviceStatus("offline", 6), b"")], 4.0) == 0
    assert mine.device_status(dev(0)) == ("online", 7)


def test_a_replayed_status_commits_nothing(raced: tuple[RacedStore, SqlStore]) -> None:
    """The status the store holds already (every connect replays it) is one read, no commit;
    a new one is one commit."""
    mine, _ = raced
    mine.commits = 0
    assert record_status(mine, dev(0), m.encode(m.DeviceStatus("online", 3)), 1.0) is False
    assert record_status(mine, dev(0), m.encode(m.DeviceStatus("online", 2)), 1.0) is False
    assert mine.commits == 0
    assert record_status(mine, dev(0), m.encode(m.DeviceStatus("offline", 3)), 1.0) is True
    assert mine.commits == 1
    assert mine.device_status(dev(0)) == ("offline", 3)


def test_device_statuses_reads_a_batch_in_one_query_per_chunk(store_url: str) -> None:
    """Every registered device asked for, past the chunk size, and none of the others."""
    s = open_store(store_url)
    try:
        with s.transaction():
            org = s.create_org("Chunk Org")
            for i in range(620):
                s.add_device(dev(i), org, f"Copier {i}")
                if i % 2:
                    s.record_status(dev(i), "online", i, 0.0)
        asked = [dev(i) for i in range(0, 640)] + ["st-stranger", dev(3)]
        known = s.device_statuses(asked)
        assert set(known) == {dev(i) for i in range(620)}
        assert known[dev(3)] == ("online", 3) and known[dev(4)] == ("unknown", -1)
        assert s.device_statuses([]) == {}
    finally:
        s.close()


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(STATES, st.integers(0, 4)), min_size=1, max_size=20),
       start=st.tuples(st.sampled_from(["unknown", "online", "offline"]), st.integers(-1, 4)))
def test_the_guarded_write_is_the_epoch_rule(start: tuple[str, int],
                                             steps: list[tuple[str, int]]) -> None:
    """``supersede_status`` writes exactly when :func:`cloud.statuses.changes` says the status
    must be written over the stored one, whatever was stored."""
    with tempfile.TemporaryDirectory() as tmp:
        s = open_store(f"sqlite:///{tmp}/c.db")
        try:
            with s.transaction():
                s.add_device(dev(0), s.create_org("Org", org_id="org_x"), "Copier")
                s.record_status(dev(0), *start, 0.0)
            for state, epoch in steps:
                known = s.device_status(dev(0))
                must = changes(known, m.DeviceStatus(state, epoch))
                with s.transaction():
                    assert s.supersede_status(dev(0), state, epoch, 1.0) is must
                assert s.device_status(dev(0)) == ((state, epoch) if must else known)
        finally:
            s.close()
