"""The simulator's device is the one a copier runs (issue 9): built by the device's composition
root from a device.toml, so a push from the cloud is applied live, kept in managed.json and
acknowledged, and releases go through the journal."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable

import pytest

from cloud import devices
from device_app.runner import MANAGED_FILE, Device
from simulator.world import SimWorld

pytestmark = pytest.mark.integration


def _run_until(world: SimWorld, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Drive the panel's loop, as the window and the headless demo do, until ``predicate``."""
    assert world.app is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        world.app.step(0.05)
    return predicate()


def test_the_sim_device_takes_config_pushes_and_keeps_a_journal() -> None:
    with SimWorld(page_time=0.0) as world:
        assert isinstance(world.device, Device) and world.app is world.device.app
        assert world.store is not None and world.workdir is not None
        assert world.device.journal is not None  # a release survives a crash of the sim too
        assert world.device.cfg.engine.emulated and world.device.link.engine == "emulator"
        store = world.store
        version = devices.set_device_config(store, world.device_id,
                                            {"policy": {"idle_timeout": 95}}, time.time())
        # The worker pushes it; the device applies it between two events and acknowledges it.
        assert _run_until(world, lambda: world.app is not None
                          and world.app.machine.policy.idle_timeout == 95)
        assert _run_until(world, lambda: devices.config_state(
            store, world.device_id)["applied"] == version)
        managed = json.loads((world.workdir / "device" / MANAGED_FILE).read_text())
        assert managed["version"] == version and managed["policy"] == {"idle_timeout": 95}


def _round_trip(link: Device, timeout: float = 10.0) -> float:
    """Seconds for one request to the cloud and its answer (a refusal is an answer too)."""
    from protocol import messages as m
    from protocol.errors import RemoteError

    start = time.monotonic()
    with contextlib.suppress(RemoteError):
        link.link.call(m.Logout(request_id=secrets.token_hex(8), session="probe"), timeout)
    return time.monotonic() - start


def test_the_latency_fault_delays_the_devices_link_each_way() -> None:
    from simulator.netem import LinkProfile
    from simulator.scenarios.parse import parse_scenario
    from simulator.scenarios.world import ScenarioWorld

    scenario = parse_scenario('[[device]]\nid = "copier-1"\n[[device]]\nid = "copier-2"\n'
                              '[[step]]\nadvance = 1\n', "latency")
    with ScenarioWorld(scenario) as world:
        one, two = world.devices["copier-1"], world.devices["copier-2"]
        assert _round_trip(one.device) < 1.0
        one.relay.set_profile(LinkProfile(1000, 1000))
        # Out through the relay and back through it: at least twice the delay.
        assert _round_trip(one.device) >= 2.0
        # The other copier's link is its own.
        assert _round_trip(two.device) < 1.0
