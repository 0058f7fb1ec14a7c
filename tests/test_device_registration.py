"""A new device registers with a one-time code, runs from its config file, and takes pushed
configuration live (or refuses it with the reason, keeping what it runs): real Mosquitto,
the cloud worker, the portal over HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import World

from cloud import devices
from cloud.portal import start_portal
from device_app.config import ConfigError, EngineConfig, load_config, parse_config
from device_app.runner import from_config_file, register
from firmware_stubs.mfd_controller import MfdControllerStub
from protocol.errors import MfdError

pytestmark = pytest.mark.integration


class BrokerUsers:
    """The broker accounts port over the test's private Mosquitto (password file + SIGHUP)."""

    def __init__(self, world: World) -> None:
        self.broker = world.broker.mosquitto

    def set_password(self, username: str, password: str) -> None:
        self.broker.add_user(username, password)


def wait_for(predicate, timeout: float = 8.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_register_run_and_take_pushed_config(world: World, tmp_path: Path) -> None:
    store = world.store
    code = devices.add_device(store, "org_demo", "copier-new", "Floor 2", time.time())
    portal = start_portal(world.store_url, accounts=BrokerUsers(world),
                          device_broker_url=world.broker.mosquitto.url)
    try:
        cfg = register(portal.url, code, tmp_path / "dev", engine=EngineConfig("emulator"))
        assert cfg.device_id == "copier-new" and cfg.name == "Floor 2"
        assert cfg.engine == EngineConfig("emulator")
        creds = tmp_path / "dev" / "credentials"
        assert creds.stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "dev" / "device.toml").stat().st_mode & 0o777 == 0o600
        assert "password" not in (tmp_path / "dev" / "device.toml").read_text()
        with pytest.raises(MfdError, match="not valid"):
            register(portal.url, code, tmp_path / "again",  # a code works once
                     engine=EngineConfig("emulator"))
    finally:
        portal.close()

    engine = MfdControllerStub()
    device = from_config_file(tmp_path / "dev" / "device.toml", engine=engine).start()
    try:
        assert device.link.connected  # the broker took the new account
        assert device.app.run_until(lambda a: True, 0.1)
        # A push is applied live and acknowledged.
        v1 = devices.set_device_config(store, "copier-new", {
            "policy": {"idle_timeout": 90, "card_pin": True}}, time.time())
        assert wait_for(lambda: (device.app.step(0.01) or True)
                        and device.app.machine.policy.card_pin)
        assert device.app.machine.policy.idle_timeout == 90
        assert wait_for(lambda: devices.config_state(store, "copier-new")["applied"] == v1)
        # An invalid push is refused with the reason; the running config stays.
        v2 = devices.set_device_config(store, "copier-new", {"policy": {"idle_timeout": 1}},
                                       time.time())
        assert wait_for(lambda: (device.app.step(0.01) or True)
                        and devices.config_state(store, "copier-new")["refused"] == v2)
        state = devices.config_state(store, "copier-new")
        assert "idle_timeout" in state["refusal"]
        assert device.app.machine.policy.idle_timeout == 90
    finally:
        device.stop()
    # Only what the cloud pushed is kept (so device.toml's own readers still count), owner-only.
    import json

    managed = tmp_path / "dev" / "managed.json"
    kept = json.loads(managed.read_text())
    assert kept["version"] == v1 and kept["policy"]["card_pin"] is True and "readers" not in kept
    assert managed.stat().st_mode & 0o777 == 0o600
    # After a restart the applied push is still in force (kept beside the config file).
    again = from_config_file(tmp_path / "dev" / "device.toml", engine=MfdControllerStub())
    assert again.cfg.policy.card_pin and again.cfg.version == v1
    again.engine.close()  # type: ignore[attr-defined]


def test_a_wrong_code_gets_nothing(world: World, tmp_path: Path) -> None:
    portal = start_portal(world.store_url, accounts=BrokerUsers(world))
    try:
        with pytest.raises(MfdError, match="not valid"):
            register(portal.url, "AAAA-BBBB-CCCC-DDDD", tmp_path,
                     engine=EngineConfig("ipp", "ipp://printer.test/ipp/print"))
        assert not (tmp_path / "credentials").exists()
    finally:
        portal.close()


def test_registration_is_off_without_a_broker_password_file(world: World,
                                                            tmp_path: Path) -> None:
    code = devices.add_device(world.store, "org_demo", "copier-off", "", time.time())
    portal = start_portal(world.store_url)
    try:
        with pytest.raises(MfdError, match="not enabled"):
            register(portal.url, code, tmp_path, engine=EngineConfig("emulator"))
    finally:
        portal.close()


def test_config_files_are_validated_naming_the_key(tmp_path: Path) -> None:
    good = tmp_path / "device.toml"
    good.write_text('[device]\nid = "copier-1"\n[policy]\nidle_timeout = 45\n'
                    '[readers]\nspecs = ["serial:/dev/ttyUSB0?family=em4100"]\n'
                    '[engine]\nkind = "ipp"\nuri = "ipp://printer.test/ipp/print"\n')
    cfg = load_config(good)
    assert cfg.policy.idle_timeout == 45.0 and cfg.readers == (
        "serial:/dev/ttyUSB0?family=em4100",)
    for text, named in [
        ('[device]\nname = "x"\n', "device.id"),
        ('[device]\nid = "Copier 1"\n', "device id"),
        ('[device]\nid = "c1"\n[policy]\nidle_timout = 45\n', "idle_timout"),
        ('[device]\nid = "c1"\n[policy]\nidle_timeout = "45"\n', "policy.idle_timeout"),
        ('[device]\nid = "c1"\n[readers]\nspecs = ["usb:x"]\n', "readers.specs[0]"),
        ('[device]\nid = "c1"\n[engine]\nkind = "ipp"\n', "engine.uri"),
        ('[device]\nid = "c1"\n[broker]\nurl = "http://x"\n', "broker.url"),
        ('[devices]\nid = "c1"\n', "devices"),
        ('[device\n', "not valid TOML"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=named.replace(".", r"\.").replace("[", r"\[")):
            load_config(bad)
    with pytest.raises(ConfigError, match="card_pin"):
        parse_config({"device": {"id": "c1"},
                      "policy": {"card_pin": True, "allow_code": False}})
