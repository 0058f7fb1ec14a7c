"""What the badge-to-paper tests share: a device as a copier has it, every part real (an EM4100
badge on a pty read by the serial reader, paho to the world's broker, the engine stub)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from conftest import World

from device_app.app import DeviceApp
from device_app.link import MqttCloudLink
from firmware_stubs.mfd_controller import MfdControllerStub
from firmware_stubs.serial_readers import Em4100Stub
from readers.pty import PtyPort
from readers.spec import open_reader


@contextmanager
def serial_device(world: World) -> Iterator[tuple[DeviceApp, Em4100Stub, MfdControllerStub]]:
    """copier-1, connected and running: its app, the badge stub that taps its reader, and its
    engine. Stopped, link closed and engine closed after the block."""
    with PtyPort() as pty:
        reader = open_reader(f"serial:{pty.device}?family=em4100&baud=9600",
                             reader_id="front")
        link = MqttCloudLink(world.broker.address("copier-1"), "copier-1").start()
        assert link.connected
        engine = MfdControllerStub()
        app = DeviceApp(link, engine, readers=(reader,), device_name="Copier 1").start()
        try:
            yield app, Em4100Stub(pty), engine
        finally:
            app.stop()
            link.close()
            engine.close()
