"""mfd doctor on a device with several brokers (``[broker] url`` a list): each broker is checked
as the device would reach it, a fallback's checks named with its place; a fallback the device
could not fail over to (unreachable, or without the device's account) is a warning, not a
failure: the device works on its primary. Real parts: the session's Mosquitto as the primary,
a second private Mosquitto that never heard of the device, and a port where nothing listens."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from conftest import Broker

from device_app import config as device_config
from mfdkit.cli.doctor import _DeviceSide
from provisioning.doctor import DoctorOptions, Status, diagnose
from provisioning.provision import ProvisionRequest, provision
from simulator.broker import MosquittoBroker, free_port

pytestmark = pytest.mark.integration


def test_each_broker_is_checked_and_a_fallback_that_cannot_serve_is_a_warning(
        broker: Broker, tmp_path: Path) -> None:
    dev, pw = f"copier-doc-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    broker.mosquitto.add_user(dev, pw)
    stranger = MosquittoBroker(tmp_path / "other", {"cloud-0": "pw-c"}, cloud_users=("cloud-0",))
    with stranger:
        nowhere = f"mqtt://127.0.0.1:{free_port()}"
        provision(ProvisionRequest(directory=tmp_path / "dev", device_id=dev,
                                   broker_url=(broker.mosquitto.url, stranger.url, nowhere),
                                   username=dev, password=pw, engine_kind="emulator"),
                  device_config)
        report = diagnose(tmp_path / "dev", _DeviceSide(), DoctorOptions(timeout_s=3.0))
    status = {c.name: c.status for c in report.checks}
    # The primary as ever: every check passes.
    for name in ("broker reachable", "credentials", "acl"):
        assert status[name] is Status.OK, report.check(name)
    # Broker 2 answers, but has no account for this device.
    assert status["broker reachable (broker 2)"] is Status.OK
    refused = report.check("credentials (broker 2)")
    assert refused.status is Status.WARN
    assert refused.finding.startswith("the device could not fail over to this broker")
    assert "refused" in refused.finding
    # Broker 3 is not there at all; what depends on it is not checked.
    assert status["broker reachable (broker 3)"] is Status.WARN
    assert "no TCP connection" in report.check("broker reachable (broker 3)").finding
    assert report.check("credentials (broker 3)").finding.startswith("not checked")
    assert report.ok  # warnings only: the device works on its primary
