"""Release to a chosen copier, every part real: the portal's use-case on the cloud's store, the
worker pushing the order over a private Mosquitto, the device app printing it through its
journal on the engine stub, and the cloud marking it printed (cloud/release_orders.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import World
from e2e_helpers import running_app, sim_reader
from paho.mqtt.enums import CallbackAPIVersion
from waiting import eventually

from cloud.release_orders import release_to_device
from device_app.app import DeviceApp
from device_app.link import MqttCloudLink
from device_app.printing.journal import Journal, JournalState
from device_app.session import State
from device_app.view import Action, Screen
from firmware_stubs.mfd_controller import MfdControllerStub
from protocol import topics

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    # The SQL of orders runs on both backends in test_release_orders.py; here the path
    # through the broker and the device is what is tested, once.
    return str(request.param)


@pytest.fixture
def copier(world: World) -> Iterator[tuple[DeviceApp, MfdControllerStub]]:
    link = MqttCloudLink(world.broker.address("copier-1"), "copier-1").start()
    assert link.connected
    with running_app(link, sim_reader("orders"), device_name="Copier 1") as parts:
        yield parts


def _user(world: World, email: str) -> str:
    user = world.store.user_by_email(email)
    assert user is not None
    return user.id


def _held(world: World, user_id: str) -> list[str]:
    return [j.id for j in world.store.all_jobs("HELD") if j.owner_id == user_id]


def _cloud_publisher(world: World) -> mqtt.Client:
    """A second cloud account's client: it publishes on a device's cmd topic as a worker
    does (a copy of an order delivered again)."""
    addr = world.broker.address("cloud-1")
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cloud-1", protocol=mqtt.MQTTv5)
    c.username_pw_set(addr.username, addr.password)
    up = threading.Event()
    c.on_connect = lambda *_a: up.set()
    c.connect(addr.host, addr.port)
    c.loop_start()
    assert up.wait(5)
    return c


def _order_payload(world: World, release_id: str) -> bytes:
    row = world.store.query_one("SELECT payload FROM release_orders WHERE release_id=?",
                                release_id)
    assert row is not None
    return str(row[0]).encode()


def _taken(world: World, release_id: str) -> bool:
    row = world.store.query_one("SELECT taken_at FROM release_orders WHERE release_id=?",
                                release_id)
    return row is not None and row[0] is not None


def test_an_order_prints_once_shows_whose_it_is_and_is_printed_in_the_cloud(
        world: World, copier: Any) -> None:
    app, engine = copier
    alice = _user(world, "alice@example.org")
    job = _held(world, alice)[0]
    titles: set[str] = set()
    release_id = release_to_device(world.store, alice, [job], "copier-1", time.time())

    def seen(a: DeviceApp) -> bool:
        titles.add(a.view().title)
        return len(engine.printed) == 1 and a.machine.state is State.IDLE

    assert app.run_until(seen, 10)
    assert engine.printed[0].job_id == job
    assert "Printing for Alice Martin" in titles
    assert eventually(lambda: world.store.jobs([job])[0].state == "PRINTED", 5)
    assert _taken(world, release_id)
    # The panel is idle for the next person: nobody's name or jobs stay on it.
    assert app.view().user_name == "" and app.view().screen is Screen.IDLE
    actions = {a for _t, _actor, a, subject, _d in world.store.audit_log(50)
               if subject in (release_id, f"job:{job}")}
    assert {"release", "release.order", "release.order_taken", "printed"} <= actions

    # Delivered again (QoS 1 redelivery, a worker's push after a reconnect): printed once.
    publisher = _cloud_publisher(world)
    try:
        for _ in range(2):
            publisher.publish(topics.command_topic("copier-1"), _order_payload(world, release_id),
                              qos=1).wait_for_publish(5)
        assert app.run_until(lambda a: a.orders_repeated == 2, 5)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    assert len(engine.printed) == 1 and app.machine.state is State.IDLE


def test_an_order_delivered_twice_at_once_prints_once(world: World, copier: Any) -> None:
    app, engine = copier
    bob = _user(world, "bob@example.org")
    jobs = _held(world, bob)[:2]
    release_id = release_to_device(world.store, bob, jobs, "copier-1", time.time())
    publisher = _cloud_publisher(world)
    try:
        # Two copies land together, maybe with the worker's push, before anything printed
        # (the worker stops pushing once the device took it: it may not push at all).
        payload = _order_payload(world, release_id)
        for _ in range(2):
            publisher.publish(topics.command_topic("copier-1"), payload, qos=1)
        assert app.run_until(lambda a: a.orders_repeated >= 1 and len(engine.printed) == 2
                             and a.machine.state is State.IDLE, 10)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    assert sorted(p.job_id for p in engine.printed) == sorted(jobs)
    assert eventually(lambda: {j.state for j in world.store.jobs(jobs)} == {"PRINTED"}, 5)


def test_an_order_waits_for_the_signed_in_user_to_leave(world: World, copier: Any) -> None:
    app, engine = copier
    chen = _user(world, "chen@example.org")
    job = _held(world, chen)[0]
    app.enter_code("730158")  # Bob signs in at the copier
    assert app.run_until(lambda a: a.machine.state is State.JOBS, 5)
    release_to_device(world.store, chen, [job], "copier-1", time.time())
    # Bob's session goes on: the order waits, and nothing of Chen's shows to him.
    assert app.run_until(lambda a: len(a.orders) == 1, 5)
    view = app.view()
    assert view.screen is Screen.JOBS and view.user_name == "Bob Okafor"
    assert job not in {j.job_id for j in view.jobs} and engine.printed == []
    app.tap(Action.LOGOUT)
    assert app.run_until(lambda a: len(engine.printed) == 1 and a.machine.state is State.IDLE,
                         10)
    assert engine.printed[0].job_id == job
    assert eventually(lambda: world.store.jobs([job])[0].state == "PRINTED", 5)


def test_an_order_for_an_offline_copier_prints_when_it_comes_online(world: World) -> None:
    alice = _user(world, "alice@example.org")
    job = _held(world, alice)[1]
    release_id = release_to_device(world.store, alice, [job], "copier-2", time.time())
    assert not _taken(world, release_id)
    link = MqttCloudLink(world.broker.address("copier-2"), "copier-2").start()
    assert link.connected
    with running_app(link, sim_reader("orders-2")) as (app, engine):
        assert app.run_until(lambda a: len(engine.printed) == 1
                             and a.machine.state is State.IDLE, 10)
    assert engine.printed[0].job_id == job
    assert eventually(lambda: world.store.jobs([job])[0].state == "PRINTED", 5)
    assert _taken(world, release_id)


def test_a_restart_mid_order_reconciles_and_the_order_again_prints_nothing(
        world: World, tmp_path: Path) -> None:
    chen = _user(world, "chen@example.org")
    job = _held(world, chen)[0]
    engine = MfdControllerStub()
    engine.hold(True)  # the engine takes the job and sits on it: the device dies meanwhile
    path = tmp_path / "journal.db"
    try:
        link = MqttCloudLink(world.broker.address("copier-1"), "copier-1").start()
        journal = Journal.open(path)
        app = DeviceApp(link, engine, readers=(sim_reader("orders-3"),),
                        journal=journal).start()
        rid = release_to_device(world.store, chen, [job], "copier-1", time.time())

        def handed(a: DeviceApp) -> bool:
            entry = journal.get(rid, job)
            return entry is not None and entry.state is JournalState.HANDED
        assert app.run_until(handed, 10)
        # The cut: nothing more is journaled nor told (the loop stops, the link drops).
        app.stop()
        link.close()
        journal.close()
        assert world.store.jobs([job])[0].state == "RELEASING"
        engine.hold(False)
        assert engine.wait_printed(1)

        # Started again: the journal's HANDED row is asked of the engine (printed), reported.
        link = MqttCloudLink(world.broker.address("copier-1"), "copier-1").start()
        journal = Journal.open(path)
        app = DeviceApp(link, engine, readers=(sim_reader("orders-4"),),
                        journal=journal).start()
        try:
            assert eventually(lambda: world.store.jobs([job])[0].state == "PRINTED", 5)
            # The order delivered again after the restart prints nothing.
            publisher = _cloud_publisher(world)
            try:
                publisher.publish(topics.command_topic("copier-1"),
                                  _order_payload(world, rid), qos=1).wait_for_publish(5)
                assert app.run_until(lambda a: a.orders_repeated == 1, 5)
            finally:
                publisher.loop_stop()
                publisher.disconnect()
            assert len(engine.printed) == 1 and app.machine.state is State.IDLE
        finally:
            app.stop()
            link.close()
            journal.close()
    finally:
        engine.close()
    printed = [a for a in world.store.audit_log(100) if a[2] == "printed"
               and a[3] == f"job:{job}"]
    assert len(printed) == 1
