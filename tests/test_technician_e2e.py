"""A technician at a real device, every layer real (issue 10): an EM4100 badge on a pty, the
serial reader, paho over the private Mosquitto with ACLs, the cloud on SQLite and PostgreSQL,
the engine stub. A user prints a job and leaves; a technician types the code an administrator
issued on the panel's keypad and sees the diagnostics: the last badge as the reader sent it, the
engine's state and what it printed since start, the link's state and round trips, the config
version, and no one's name; then Done, and the panel is idle again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import World
from e2e_helpers import serial_device

from cloud import admin
from cloud.demo import DEMO_USERS
from device_app.app import DeviceApp
from device_app.session import State
from device_app.view import Action, Screen
from firmware_stubs.mfd_controller import MfdControllerStub
from firmware_stubs.serial_readers import Em4100Stub

pytestmark = pytest.mark.integration


@pytest.fixture
def device(world: World) -> Iterator[tuple[DeviceApp, Em4100Stub, MfdControllerStub]]:
    with serial_device(world) as (app, badge, engine):
        # As device_app/runner.py sets it for a device on its own device.toml (version 0).
        app.config_version = lambda: 0
        yield app, badge, engine


def test_a_technician_code_typed_at_the_device_shows_the_diagnostics(
        device: Any, world: World) -> None:
    app, badge, engine = device
    issued = admin.add_technician(world.store, "org_demo", "Tess Tech", code=True)
    assert issued.code is not None
    alice = DEMO_USERS[0]
    frame = badge.present(alice.badge_tag)
    assert app.run_until(lambda a: a.machine.state is State.JOBS, 5)
    app.tap(Action.SELECT, app.view().jobs[0].job_id)
    app.tap(Action.RELEASE)
    assert app.run_until(lambda a: len(engine.printed) == 1
                         and a.machine.state is State.JOBS, 5)
    app.tap(Action.LOGOUT)
    assert app.run_until(lambda a: a.machine.state is State.IDLE, 2)

    app.tap(Action.ENTER_CODE)
    for key in issued.code:
        app.key(key)
    app.key("ENTER")
    assert app.run_until(lambda a: a.machine.state is State.DIAGNOSTICS, 5)
    view = app.view()
    assert view.screen is Screen.DIAGNOSTICS and view.user_name == "" and view.jobs == ()
    rows = {r.label: r.value for r in view.rows}
    assert rows["Raw bytes"] == frame.hex(" ").upper()
    assert rows["Reader"] == "front" and rows["Number sent"] == alice.badge
    assert rows["Text sent"] == frame[1:-1].decode()
    assert rows["Printed since start"] == "1" and rows["Failed since start"] == "0"
    assert [r.value for r in view.rows if r.label == "State"] == ["ready", "connected"]
    # identify, jobs.list, jobs.release, jobs.document, jobs.printed, ...: each timed.
    assert rows["Last round trip"].endswith(" ms")
    assert rows["Median round trip"].split(" of ")[1].isdigit()
    assert rows["Version"] == "0 (the device's own file)"
    shown = " ".join(f"{r.label} {r.value}" for r in view.rows)
    assert alice.name not in shown and "Tess" not in shown
    uses = [row for row in admin.audit_log(world.store, 50) if row[2] == "technician.use"]
    assert [(actor, subject) for _at, actor, _a, subject, _d in uses] == [
        ("device:copier-1", f"technician:{issued.technician.id}")]

    app.tap(Action.DISMISS)
    assert app.run_until(lambda a: a.machine.state is State.IDLE, 2)
    assert app.view().screen is Screen.IDLE and app.machine.session_token is None
