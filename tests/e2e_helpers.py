"""What the badge-to-paper tests share: a device as a copier has it, every part real (an EM4100
badge on a pty read by the serial reader, or the sim reader; paho to the world's broker; the
engine stub)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from conftest import World

from device_app.app import DeviceApp
from device_app.link import MqttCloudLink
from device_app.session import Policy
from firmware_stubs.mfd_controller import MfdControllerStub
from firmware_stubs.serial_readers import Em4100Stub
from readers.adapters.sim_reader import SimReader
from readers.events import CardReader
from readers.pty import PtyPort
from readers.spec import open_reader

_names = itertools.count()


def sim_reader(prefix: str) -> SimReader:
    """A sim reader without lockout, named ``prefix`` and a number no other in this run has
    (sim readers are found by name, process-wide)."""
    return SimReader(f"{prefix}-{next(_names)}", lockout_s=0.0)


@dataclass
class SimPanel:
    """A running device app, the sim reader a test badges on, and the engine it prints to."""

    app: DeviceApp
    reader: SimReader
    engine: MfdControllerStub


@contextmanager
def running_app(link: MqttCloudLink, reader: CardReader,
                **options: Any) -> Iterator[tuple[DeviceApp, MfdControllerStub]]:
    """A device app on ``link`` and ``reader`` (``options`` as DeviceApp takes them) with a new
    engine stub, started. After the block: the app stopped, the link and the engine closed."""
    engine = MfdControllerStub()
    app = DeviceApp(link, engine, readers=(reader,), **options).start()
    try:
        yield app, engine
    finally:
        app.stop()
        link.close()
        engine.close()


class BrokerUsers:
    """The broker accounts port over the test's private Mosquitto (password file + SIGHUP)."""

    def __init__(self, world: World) -> None:
        self.broker = world.broker.mosquitto

    def set_password(self, username: str, password: str) -> None:
        self.broker.add_user(username, password)


@contextmanager
def serial_device(world: World, device_name: str = "Copier 1", policy: Policy | None = None
                  ) -> Iterator[tuple[DeviceApp, Em4100Stub, MfdControllerStub]]:
    """copier-1, connected and running (named ``device_name``, on ``policy`` or the default
    one): its app, the badge stub that taps its reader, and its engine. Stopped, link closed
    and engine closed after the block."""
    with PtyPort() as pty:
        reader = open_reader(f"serial:{pty.device}?family=em4100&baud=9600",
                             reader_id="front")
        link = MqttCloudLink(world.broker.address("copier-1"), "copier-1").start()
        assert link.connected
        with running_app(link, reader, device_name=device_name, policy=policy) as (app, engine):
            yield app, Em4100Stub(pty), engine
