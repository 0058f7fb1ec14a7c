"""Which language a copier speaks: the cloud's policy names one, or leaves it to the device's
own ``[ui] language``; without either, English. Through the device's composition root, as a
copier starts and takes a push."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from device_app.config import DeviceConfig, EngineConfig, save_credentials, to_toml
from device_app.runner import Device, from_config_file
from firmware_stubs.mfd_controller import MfdControllerStub


def _device(tmp_path: Path, ui_language: str) -> Device:
    cfg = DeviceConfig(device_id="copier-8", broker_url="mqtt://127.0.0.1:9",
                       engine=EngineConfig("emulator"))
    cfg = replace(cfg, ui=replace(cfg.ui, language=ui_language))
    (tmp_path / "device.toml").write_text(to_toml(cfg), encoding="utf-8")
    save_credentials(tmp_path / "credentials", "copier-8", "pw")
    dev = from_config_file(tmp_path / "device.toml", engine=MfdControllerStub())
    # The link is never started (no broker here): acks are dropped.
    dev.link.publish_event = lambda ack: None  # type: ignore[method-assign,assignment]
    return dev


@pytest.fixture
def german(tmp_path: Path) -> Iterator[Device]:
    dev = _device(tmp_path, "de")
    yield dev
    dev.stop()


def test_the_devices_own_language_speaks_where_the_cloud_names_none(german: Device) -> None:
    assert german.app.machine.view().title == "Karte an den Leser halten"


def test_a_pushed_language_wins_and_unsetting_it_gives_the_devices_back(german: Device) -> None:
    german._apply(json.dumps({"version": 2, "policy": {"language": "fr"}}).encode())
    assert german.app.machine.view().title == "Présentez votre badge"
    german._apply(json.dumps({"version": 3, "policy": {"idle_timeout": 90}}).encode())
    assert german.app.machine.view().title == "Karte an den Leser halten"


def test_without_either_the_panel_speaks_english(tmp_path: Path) -> None:
    dev = _device(tmp_path, "")
    try:
        assert dev.app.machine.view().title == "Tap your badge"
    finally:
        dev.stop()


def test_a_language_the_panel_lacks_is_english_not_an_error(tmp_path: Path) -> None:
    dev = _device(tmp_path, "pt-BR")
    try:
        assert dev.app.machine.view().title == "Tap your badge"
    finally:
        dev.stop()
