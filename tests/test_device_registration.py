"""A new device registers with a one-time code, runs from its config file, and takes pushed
configuration live (or refuses it with the reason, keeping what it runs): real Mosquitto,
the cloud worker, the portal over HTTP."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from conftest import World
from e2e_helpers import BrokerUsers
from waiting import eventually

from cloud import devices
from cloud.portal import start_portal
from device_app.config import ConfigError, EngineConfig, load_config, parse_config
from device_app.runner import from_config_file, register
from firmware_stubs.mfd_controller import MfdControllerStub
from protocol.errors import MfdError

pytestmark = pytest.mark.integration


def test_register_run_and_take_pushed_config(world: World, tmp_path: Path) -> None:
    store = world.store
    # A new id per run: the broker lives for the whole session and keeps each device's last
    # pushed config retained, which another backend's run of this test must not receive.
    dev = f"copier-new-{secrets.token_hex(3)}"
    code = devices.add_device(store, "org_demo", dev, "Floor 2", time.time())
    portal = start_portal(world.store_url, accounts=BrokerUsers(world),
                          device_broker_url=world.broker.mosquitto.url)
    try:
        cfg = register(portal.url, code, tmp_path / "dev", engine=EngineConfig("emulator"))
        assert cfg.device_id == dev and cfg.name == "Floor 2"
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
        v1 = devices.set_device_config(store, dev, {
            "policy": {"idle_timeout": 90, "card_pin": True}}, time.time())
        assert eventually(lambda: (device.app.step(0.01) or True)
                        and device.app.machine.policy.card_pin)
        assert device.app.machine.policy.idle_timeout == 90
        assert eventually(lambda: devices.config_state(store, dev)["applied"] == v1)
        # A mistake is refused when it is set, before any device sees it.
        with pytest.raises(ConfigError, match="idle_timeout"):
            devices.set_device_config(store, dev, {"policy": {"idle_timeout": 1}},
                                      time.time())
        # What only the device can judge (a recording file it does not have) it refuses with
        # the reason; the running config stays.
        v2 = devices.set_device_config(store, dev, {
            "readers": {"specs": ["replay:/nonexistent/badges.rec"]}}, time.time())
        assert eventually(lambda: (device.app.step(0.01) or True)
                        and devices.config_state(store, dev)["refused"] == v2)
        state = devices.config_state(store, dev)
        assert "readers.specs[0]" in state["refusal"]
        assert device.app.machine.policy.idle_timeout == 90 and device.cfg.readers == ()
        # A refused version does not block the next: dropping the bad key is applied, and a
        # key no longer managed goes back to the file's value.
        v3 = devices.set_device_config(store, dev, {}, time.time(),
                                       unset=("readers", "policy.idle_timeout"))
        assert eventually(lambda: (device.app.step(0.01) or True)
                        and devices.config_state(store, dev)["applied"] == v3)
        assert device.app.machine.policy.idle_timeout == 60  # the file's (default) value
        assert device.app.machine.policy.card_pin  # still managed
        v1 = v3
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


class RecordingAccounts:
    """A broker-accounts port that records what it is asked (nothing must reach the broker)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def set_password(self, username: str, password: str) -> None:
        self.asked.append(username)


def test_a_reserved_account_name_is_never_registered(world: World, tmp_path: Path) -> None:
    """A device row named like a cloud worker (added before such names were refused) cannot
    trade a code for that worker's broker account."""
    store = world.store
    with pytest.raises(MfdError, match="reserved"):
        devices.add_device(store, "org_demo", "cloud-1", "", time.time())
    with store.transaction():
        store.add_device("cloud-1", "org_demo", "legacy")  # as an older mfd admin allowed
    with pytest.raises(MfdError, match="reserved"):
        devices.new_registration_code(store, "cloud-1", time.time())
    # A code issued back then (also by an older version): written as it wrote it.
    code = "AAAA-BBBB-CCCC-DDDD"
    from cloud.hashing import token_hash

    with store.transaction():
        store.execute("INSERT INTO device_registrations VALUES (?,?,?,NULL)",
                      token_hash("AAAABBBBCCCCDDDD"), "cloud-1", time.time() + 3600)
    accounts = RecordingAccounts()
    portal = start_portal(world.store_url, accounts=accounts)
    try:
        with pytest.raises(MfdError, match="reserved"):
            register(portal.url, code, tmp_path, engine=EngineConfig("emulator"))
    finally:
        portal.close()
    assert accounts.asked == []
    assert not (tmp_path / "credentials").exists()


def test_a_cloud_of_several_brokers_hands_each_device_its_own_order(world: World,
                                                                     tmp_path: Path) -> None:
    """Registration tells a device every broker, its home broker first (rendezvous order, as
    the fleet spreads devices): device.toml keeps the list, the device fails over along it, and
    an older device, which reads ``broker_url`` only, gets its home broker."""
    import json
    import urllib.request

    from protocol.assignment import broker_order

    urls = (world.broker.mosquitto.url, "mqtt://broker-b.example:1883",
            "mqtt://broker-c.example:1883")
    portal = start_portal(world.store_url, accounts=BrokerUsers(world),
                          device_broker_urls=urls)
    try:
        firsts = set()
        ids = [f"copier-list-{secrets.token_hex(3)}-{n}" for n in range(6)]
        # One draw in ~240 gives all six the same home broker (seen once in a CI run): then
        # nothing here would go to another broker. The last is drawn again until one does.
        while len({broker_order(dev, urls)[0] for dev in ids}) < 2:
            ids[-1] = f"copier-list-{secrets.token_hex(3)}-5"
        for n, dev in enumerate(ids):
            code = devices.add_device(world.store, "org_demo", dev, "Floor 3", time.time())
            if n % 2:
                # An older device's view: the raw answer, of which it reads broker_url.
                request = urllib.request.Request(
                    portal.url + "/api/v1/devices/register",
                    data=json.dumps({"code": code}).encode(), method="POST",
                    headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    answer = json.loads(response.read())
                assert answer["broker_url"] == broker_order(dev, urls)[0]
                assert answer["broker_urls"] == list(broker_order(dev, urls))
                firsts.add(answer["broker_url"])
                continue
            cfg = register(portal.url, code, tmp_path / dev, engine=EngineConfig("emulator"))
            assert cfg.broker_urls == broker_order(dev, urls)
            assert load_config(tmp_path / dev / "device.toml").broker_urls == cfg.broker_urls
            firsts.add(cfg.broker_urls[0])
        # Not everyone's home is the first broker named.
        assert len(firsts) > 1
    finally:
        portal.close()
