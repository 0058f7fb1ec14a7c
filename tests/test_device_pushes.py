"""Config pushes as the device runner (device_app/runner.py) takes them: the broker hands the
retained push over again at every reconnect, and a device must not refuse, ack and have audited
the same bad version again each time; a push that cannot be saved still applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device_app.config import DeviceConfig, EngineConfig, save_credentials, to_toml
from device_app.runner import MANAGED_FILE, Device, from_config_file
from firmware_stubs.mfd_controller import MfdControllerStub
from protocol import messages as m


@pytest.fixture
def device(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = DeviceConfig(device_id="copier-7", broker_url="mqtt://127.0.0.1:9",
                       engine=EngineConfig("emulator"))
    (tmp_path / "device.toml").write_text(to_toml(cfg), encoding="utf-8")
    save_credentials(tmp_path / "credentials", "copier-7", "pw")
    dev = from_config_file(tmp_path / "device.toml", engine=MfdControllerStub())
    acks: list[m.ConfigAck] = []
    # The link is never started (no broker here): its outgoing events are what we look at.
    dev.link.publish_event = acks.append  # type: ignore[method-assign]
    dev.acks = acks  # type: ignore[attr-defined]
    yield dev
    # The whole device, printer thread included: a printer left running on a closed journal
    # logs an error at every turn into every later test.
    dev.stop()


def push(version: int, **sections: object) -> bytes:
    return json.dumps({"version": version, **sections}).encode()


def test_a_refused_version_delivered_again_is_not_refused_again(device: Device) -> None:
    bad = push(3, readers={"specs": ["replay:/nonexistent/badges.rec"]})
    device._apply(bad)
    device._apply(bad)  # the retained push again, after a reconnect
    assert [(a.version, a.applied) for a in device.acks] == [(3, False)]  # type: ignore[attr-defined]
    device._apply(push(4, policy={"idle_timeout": 90}))  # the next version is taken
    assert [(a.version, a.applied) for a in device.acks][1:] == [(4, True)]  # type: ignore[attr-defined]
    assert device.app.machine.policy.idle_timeout == 90


def test_a_push_that_cannot_be_saved_still_applies_and_is_acked(
        device: Device, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / MANAGED_FILE).mkdir()  # writing the file fails with an OSError
    device._apply(push(5, policy={"idle_timeout": 120}))
    assert device.app.machine.policy.idle_timeout == 120
    assert [(a.version, a.applied) for a in device.acks] == [(5, True)]  # type: ignore[attr-defined]
    assert "could not save it" in caplog.text
