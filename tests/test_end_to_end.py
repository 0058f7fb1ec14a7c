"""Badge to paper, every layer real: an EM4100 frame on a pty, the serial reader, the session
machine, paho over a private Mosquitto with ACLs, the cloud (on SQLite and on PostgreSQL), the
engine stub."""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import Broker, World
from e2e_helpers import serial_device
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.demo import DEMO_USERS, UNKNOWN_BADGE_TAG
from device_app.app import DeviceApp
from device_app.link import MqttCloudLink
from device_app.session import State
from device_app.view import Action, Screen
from firmware_stubs.mfd_controller import MfdControllerStub
from firmware_stubs.serial_readers import Em4100Stub
from protocol import messages as m
from protocol import topics
from protocol.errors import RemoteError, StoreError

pytestmark = pytest.mark.integration


@pytest.fixture
def device(world: World) -> Iterator[tuple[DeviceApp, Em4100Stub, MfdControllerStub]]:
    with serial_device(world) as parts:
        yield parts


def test_badge_lists_and_releases_a_job_to_paper(device: Any, world: World) -> None:
    app, badge, engine = device
    alice = DEMO_USERS[0]
    badge.present(alice.badge_tag)
    assert app.run_until(lambda a: a.machine.state is State.JOBS, 5)
    view = app.view()
    assert view.screen is Screen.JOBS
    assert view.user_name == "Alice Martin"
    assert view.total_jobs == 5
    wanted = view.jobs[0]
    owner_ids = {j.owner_id for j in world.store.all_jobs() if j.id in
                 {v.job_id for v in view.jobs}}
    assert len(owner_ids) == 1  # only Alice's jobs

    held = world.store.jobs([wanted.job_id])[0]
    doc = world.store.document(wanted.job_id, 0, held.size)
    app.tap(Action.SELECT, wanted.job_id)
    app.tap(Action.RELEASE)
    assert app.run_until(lambda a: len(engine.printed) == 1
                         and a.machine.state is State.JOBS, 5)
    printed = engine.printed[0]
    assert printed.job_id == wanted.job_id
    stored = world.store.jobs([wanted.job_id])[0]
    assert printed.sha256 == hashlib.sha256(doc).hexdigest() == stored.sha256
    assert stored.state == "PRINTED"
    # A printed document is not kept: the cloud holds documents only while they wait.
    with pytest.raises(StoreError):
        world.store.document(wanted.job_id, 0, stored.size)
    assert app.view().total_jobs == 4
    assert "1 printed" in app.view().message

    app.tap(Action.LOGOUT)
    assert app.run_until(lambda a: a.machine.state is State.IDLE, 2)


def test_access_code_logs_in_and_lists_that_users_jobs(device: Any) -> None:
    app, _badge, _engine = device
    bob = DEMO_USERS[1]
    app.enter_code(bob.access_code)
    assert app.run_until(lambda a: a.machine.state is State.JOBS, 5)
    assert app.view().user_name == "Bob Okafor"
    assert app.view().total_jobs == 4


def test_unknown_badge_is_refused_then_linked_by_its_holder(device: Any, world: World) -> None:
    app, badge, engine = device
    badge.present(UNKNOWN_BADGE_TAG)
    assert app.run_until(lambda a: a.machine.state is State.ENTRY, 5)
    view = app.view()
    assert view.title.startswith("Badge not recognised")
    assert engine.printed == []
    for key in DEMO_USERS[2].access_code:
        app.key(key)
    app.key("ENTER")
    assert app.run_until(lambda a: a.machine.state is State.JOBS, 5)
    assert app.view().user_name == "Chen Wei"
    assert "linked" in app.view().message
    app.tap(Action.LOGOUT)
    assert app.run_until(lambda a: a.machine.state is State.IDLE, 2)
    # The badge now identifies Chen directly.
    result = app.link.call(m.Identify("card", f"{UNKNOWN_BADGE_TAG:010d}"))
    assert isinstance(result, m.IdentifyResult) and result.display_name == "Chen Wei"


def _props(**kw: Any) -> Properties:
    p = Properties(PacketTypes.PUBLISH)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def _client(broker: Broker, user: str) -> tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage]]:
    addr = broker.address(user)
    inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    connected = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
    c.username_pw_set(addr.username, addr.password)
    c.on_message = lambda _c, _u, msg: inbox.put(msg)
    c.on_connect = lambda *_a: connected.set()
    c.connect(addr.host, addr.port)
    c.loop_start()
    assert connected.wait(5)
    return c, inbox


def test_a_device_with_another_devices_topics_gets_nothing(world: World) -> None:
    """copier-2's credentials cannot read copier-1's answers nor speak for copier-1."""
    victim = MqttCloudLink(world.broker.address("copier-1"), "copier-1").start()
    spy, spy_inbox = _client(world.broker, "copier-2")
    try:
        # Subscribing to another device's reply topic delivers nothing (whatever the SUBACK).
        subacks: queue.Queue[object] = queue.Queue()
        spy.on_subscribe = lambda *_a: subacks.put(None)
        spy.subscribe([(topics.response_topic("copier-1"), 1),
                       (topics.response_topic("copier-2"), 1)])
        subacks.get(timeout=5)  # the broker has both subscriptions: nothing can slip past
        result = victim.call(m.Identify("card", DEMO_USERS[0].badge))
        assert isinstance(result, m.IdentifyResult) and result.display_name == "Alice Martin"

        def logins() -> int:
            return len(world.store.query_all(
                "SELECT 1 FROM audit WHERE action = ? AND actor = ?", "login",
                "device:copier-1"))

        before = logins()
        # Publishing as copier-1 (its req topic) is dropped by the broker: no answer comes back
        # to copier-2's own reply topic either, and the cloud never sees the request.
        spy.publish(topics.request_topic("copier-1"),
                    m.encode(m.Identify("card", DEMO_USERS[0].badge)), qos=1,
                    properties=_props(ResponseTopic=topics.response_topic("copier-2"),
                                      CorrelationData=b"x"))
        # copier-2 aiming its replies at copier-1 is refused by the cloud, answered to copier-2.
        spy.publish(topics.request_topic("copier-2"),
                    m.encode(m.Identify("card", DEMO_USERS[0].badge)), qos=1,
                    properties=_props(ResponseTopic=topics.response_topic("copier-1"),
                                      CorrelationData=b"y"))
        # The "y" answer is the proof the "x" request had its chance: the broker passes on one
        # client's messages in order and the worker handles them in order, so an answer to
        # "x" (or victim's answer leaking) would have come first, and its login would be
        # audited by now.
        answer = spy_inbox.get(timeout=3)
        assert (answer.topic, bytes(answer.properties.CorrelationData)) == (  # type: ignore[union-attr]
            topics.response_topic("copier-2"), b"y")
        with pytest.raises(RemoteError) as info:
            m.decode_response(answer.payload, "identify")
        assert info.value.code == "wrong_reply_topic"
        assert spy_inbox.empty()
        assert logins() == before
        # And copier-1's session token is useless from copier-2.
        thief = MqttCloudLink(world.broker.address("copier-2"), "copier-2").start()
        with pytest.raises(RemoteError) as info:
            thief.call(m.ListJobs(session=result.session))
        assert info.value.code == "wrong_device"
        thief.close()
    finally:
        spy.disconnect()
        spy.loop_stop()
        victim.close()


def test_status_is_retained_with_epochs_and_the_will_reports_death(world: World) -> None:
    link = MqttCloudLink(world.broker.address("copier-2"), "copier-2").start()
    assert link.connected
    deadline = time.time() + 3
    while time.time() < deadline and world.store.device_status("copier-2") != (
            "online", link.epoch):
        time.sleep(0.02)
    assert world.store.device_status("copier-2") == ("online", link.epoch)
    link.close()
    deadline = time.time() + 3
    while time.time() < deadline and world.store.device_status("copier-2")[0] != "offline":
        time.sleep(0.02)
    assert world.store.device_status("copier-2") == ("offline", link.epoch)


def test_broker_loss_shows_offline_and_the_panel_recovers_by_itself(tmp_path: Any,
                                                                    world: World) -> None:
    from firmware_stubs.mfd_controller import MfdControllerStub
    from protocol.address import BrokerAddress
    from simulator.broker import MosquittoBroker

    own = MosquittoBroker(tmp_path / "b", {"copier-9": "pw9"}).start()
    link = MqttCloudLink(BrokerAddress(own.host, own.port, "copier-9", "pw9"), "copier-9").start()
    engine = MfdControllerStub()
    app = DeviceApp(link, engine)
    try:
        assert app.run_until(lambda a: a.machine.state is State.IDLE, 2)
        own.stop()
        assert app.run_until(lambda a: a.view().screen is Screen.OFFLINE, 5)
        own.start()
        assert app.run_until(lambda a: a.machine.state is State.IDLE, 10)
        assert link.connected
    finally:
        app.stop()
        link.close()
        engine.close()
        own.stop()


def test_a_logged_in_user_sees_their_jobs_again_after_the_broker_comes_back(
        tmp_path: Any, store_url: str) -> None:
    from cloud.demo import seed_demo
    from cloud.service import CloudService
    from cloud.storage.factory import open_store
    from cloud.worker import CloudWorker
    from protocol.address import BrokerAddress
    from readers.adapters.sim_reader import SimReader
    from simulator.broker import MosquittoBroker

    own = MosquittoBroker(tmp_path / "b", {"copier-9": "pw9", "cloud-0": "pwc"},
                          cloud_users=("cloud-0",)).start()
    store = open_store(store_url)
    seed_demo(store, now=time.time(), devices=("copier-9",))
    store.close()
    worker = CloudWorker(lambda: CloudService(open_store(store_url)),
                         BrokerAddress(own.host, own.port, "cloud-0", "pwc")).start()
    link = MqttCloudLink(BrokerAddress(own.host, own.port, "copier-9", "pw9"), "copier-9").start()
    reader = SimReader("outage", lockout_s=0)
    engine = MfdControllerStub()
    app = DeviceApp(link, engine, readers=(reader,)).start()
    try:
        reader.present(DEMO_USERS[0].badge)
        assert app.run_until(lambda a: a.machine.state is State.JOBS, 5)
        own.stop()
        assert app.run_until(lambda a: a.view().screen is Screen.OFFLINE, 5)
        assert "jobs will show again" in app.view().message
        own.start()
        assert app.run_until(lambda a: a.machine.state is State.JOBS, 15)
        assert app.view().user_name == "Alice Martin" and app.view().total_jobs == 5
    finally:
        app.stop()
        link.close()
        engine.close()
        worker.stop()
        own.stop()
