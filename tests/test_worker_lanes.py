"""A worker with lanes (``CloudWorker(lanes=N)``, ``mfd cloud --lanes N``): requests are done on
N threads of their own, a device's always on the same one, and acknowledged to the broker only
once answered. What a copier notices: another copier's slow request does not hold its own up;
its own requests are done in the order it sent them; a backlog is still answered ``busy`` from
the broker's measured wait; nothing is dropped. Real Mosquitto, both stores."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from waiting import eventually

from cloud.demo import DEMO_USERS, seed_demo
from cloud.service import CloudService
from cloud.storage.factory import open_store
from cloud.throttle import NO_THROTTLES
from cloud.worker import NETWORK_STORE_LANES, CloudWorker, default_lanes
from protocol import messages as m
from protocol import topics
from protocol.address import BrokerAddress
from protocol.errors import RemoteError
from simulator.broker import MosquittoBroker

pytestmark = pytest.mark.integration

LANES = 4


class Copier:
    """A device's client that sends identifies and records each answer, in arrival order."""

    def __init__(self, broker: MosquittoBroker, name: str) -> None:
        self.name = name
        self.answers: list[tuple[int, str]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        c.username_pw_set(name, f"pw-{name}")
        c.max_queued_messages_set(0)
        c.on_connect = lambda cl, *_a: cl.subscribe(topics.response_topic(name), qos=1)
        c.on_subscribe = lambda *_a: self.subscribed.set()
        c.on_message = self._on_message
        c.connect(broker.host, broker.port)
        c.loop_start()
        self.client = c

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        corr = int.from_bytes(msg.properties.CorrelationData, "big")  # type: ignore[union-attr]
        try:
            m.decode_response(bytes(msg.payload), "identify")
            outcome = "ok"
        except RemoteError as exc:
            outcome = exc.code
        with self.lock:
            self.answers.append((corr, outcome))

    def send(self, i: int, card: str) -> None:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = topics.response_topic(self.name)
        props.CorrelationData = i.to_bytes(4, "big")
        props.MessageExpiryInterval = topics.REQUEST_EXPIRY
        self.client.publish(topics.request_topic(self.name), m.encode(m.Identify("card", card)),
                            qos=1, properties=props)

    def count(self, since: int = 0) -> int:
        """Answers to requests numbered ``since`` or later."""
        with self.lock:
            return sum(1 for corr, _ in self.answers if corr >= since)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def lane_of(device: str, lanes: int = LANES) -> int:
    return zlib.crc32(topics.request_topic(device).encode()) % lanes


def world(tmp_path: Path, store_url: str, names: list[str],
          service: Callable[[], CloudService], *, lanes: int,
          receive_maximum: int = 100) -> tuple[
              MosquittoBroker, CloudWorker, list[Copier]]:
    users = {"cloud-0": "pw-cloud-0"} | {n: f"pw-{n}" for n in names}
    broker = MosquittoBroker(tmp_path / "b", users, cloud_users=("cloud-0",)).start()
    store = open_store(store_url)
    seed_demo(store, now=time.time(), devices=tuple(names), jobs=False)
    store.close()
    worker = CloudWorker(service, BrokerAddress(broker.host, broker.port, "cloud-0",
                                                "pw-cloud-0"), lanes=lanes,
                         receive_maximum=receive_maximum).start()
    copiers = [Copier(broker, n) for n in names]
    assert all(c.subscribed.wait(10) for c in copiers)  # SUBACK: no answer can be missed
    return broker, worker, copiers


def test_a_slow_request_of_one_copier_does_not_hold_up_another(tmp_path: Path,
                                                               store_url: str) -> None:
    slow = "lane-slow"
    fast = next(f"lane-fast-{i}" for i in range(100)
                if lane_of(f"lane-fast-{i}") != lane_of(slow))
    release = threading.Event()

    class OneSlowCopier(CloudService):
        def handle(self, device_id: str, payload: bytes) -> bytes:
            if device_id == slow:
                release.wait(30)  # its store is slow today: held until the test says so
            return super().handle(device_id, payload)

    broker, worker, (held, quick) = world(
        tmp_path, store_url, [slow, fast], lambda: OneSlowCopier(open_store(store_url)),
        lanes=LANES)
    try:
        held.send(1, DEMO_USERS[0].badge)
        quick.send(1, DEMO_USERS[1].badge)
        # The other copier is answered while the slow one is still being worked on.
        assert eventually(lambda: quick.count() == 1, 10), "the fast copier waited"
        assert held.count() == 0
        assert quick.answers == [(1, "ok")]
        release.set()
        assert eventually(lambda: held.count() == 1, 10)
        assert held.answers == [(1, "ok")]
    finally:
        release.set()
        for c in (held, quick):
            c.close()
        worker.stop()
        broker.stop()


def test_a_burst_is_answered_in_each_copiers_order_and_nothing_is_dropped(
        tmp_path: Path, store_url: str) -> None:
    names = [f"lanes-{i:02d}" for i in range(40)]
    per_device = 60
    broker, worker, copiers = world(
        tmp_path, store_url, names,
        lambda: CloudService(open_store(store_url), throttles=NO_THROTTLES), lanes=LANES)
    try:
        assert {lane_of(n) for n in names} == set(range(LANES))  # every lane has work
        for i in range(per_device):
            for c in copiers:
                c.send(i, DEMO_USERS[i % 3].badge if i % 4 else "0000000001")
        assert eventually(lambda: all(c.count() == per_device for c in copiers), 120), [
            c.count() for c in copiers]
        outcomes: dict[str, int] = {}
        for c in copiers:
            # A copier's requests were done one after another, in the order it sent them.
            assert [corr for corr, _ in c.answers] == list(range(per_device)), c.name
            for _, outcome in c.answers:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert set(outcomes) <= {"ok", "unknown_card", "busy"}, outcomes
        assert outcomes.get("ok", 0) > 0 and outcomes.get("unknown_card", 0) > 0
        assert worker.handled == len(names) * per_device
        assert worker.busy == outcomes.get("busy", 0)
    finally:
        for c in copiers:
            c.close()
        worker.stop()
        broker.stop()


def test_with_lanes_a_backlog_is_still_answered_busy_from_the_brokers_wait(
        tmp_path: Path, store_url: str) -> None:
    """0.3 s a request, 16 at once, one request unacknowledged at a time: the backlog waits at
    the broker (a request is acknowledged only once answered), so those that waited 2 s or
    more there are answered busy at once, the others are done. Every one is answered."""

    class Slow(CloudService):
        def handle(self, device_id: str, payload: bytes) -> bytes:
            time.sleep(0.3)
            return super().handle(device_id, payload)

    broker, worker, (copier,) = world(tmp_path, store_url, ["lane-busy"],
                                      lambda: Slow(open_store(store_url)), lanes=LANES,
                                      receive_maximum=1)
    try:
        for i in range(16):
            copier.send(i, DEMO_USERS[0].badge)
        assert eventually(lambda: copier.count() == 16, 30), copier.answers
        outcomes = [outcome for _, outcome in copier.answers]
        oks = outcomes.count("ok")
        assert outcomes == ["ok"] * oks + ["busy"] * (16 - oks), outcomes
        assert 2 <= oks <= 9, outcomes
        assert worker.busy == 16 - oks
    finally:
        copier.close()
        worker.stop()
        broker.stop()


def test_lanes_are_on_by_default_for_postgresql_only() -> None:
    # mfd cloud without --lanes: PostgreSQL's round trips are overlapped, SQLite stays inline.
    assert default_lanes("postgresql://cloud@db/mfd") == NETWORK_STORE_LANES > 0
    assert default_lanes("postgres://cloud@db/mfd") == NETWORK_STORE_LANES
    assert default_lanes("sqlite:////var/lib/mfd/cloud.db") == 0


def test_after_the_broker_restarts_mid_burst_a_worker_with_lanes_answers_again(
        tmp_path: Path, store_url: str) -> None:
    """The broker goes away while lanes still hold requests of the old connection. Those are
    never acknowledged on the new one (the broker forgot them), and they must not hold the new
    connection's acknowledgements back: with a Receive Maximum of 10, a stuck queue would stop
    the worker after ten new requests."""
    names = [f"restart-{i}" for i in range(8)]

    class Slowish(CloudService):
        def handle(self, device_id: str, payload: bytes) -> bytes:
            time.sleep(0.01)  # so that lanes still hold work when the broker goes
            return super().handle(device_id, payload)

    broker, worker, copiers = world(tmp_path, store_url, names,
                                    lambda: Slowish(open_store(store_url),
                                                    throttles=NO_THROTTLES),
                                    lanes=LANES, receive_maximum=10)
    again: list[Copier] = []
    try:
        for i in range(30):
            for c in copiers:
                c.send(i, DEMO_USERS[0].badge)
        assert eventually(lambda: worker.handled >= 5, 10)  # under way
        broker.stop()
        for c in copiers:
            c.close()
        broker.start(timeout=30)
        assert eventually(lambda: len(worker.connected_legs) == 1, 30), "no reconnect"
        again = [Copier(broker, n) for n in names]
        assert all(c.subscribed.wait(10) for c in again)
        for i in range(40):
            for c in again:
                c.send(1000 + i, DEMO_USERS[i % 3].badge)
        # Requests of the old connections that the broker kept (persisted, QoS 1) may be
        # answered too, on the new copiers' topics: a copier drops answers it did not ask for.
        assert eventually(lambda: all(c.count(since=1000) == 40 for c in again), 60), [
            c.count(since=1000) for c in again]
        for c in again:  # in order, as ever
            assert [corr for corr, _ in c.answers if corr >= 1000] == list(range(1000, 1040)), \
                c.name
    finally:
        for c in again:
            c.close()
        worker.stop()
        broker.stop()
