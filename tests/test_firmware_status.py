"""Firmware versions in a device's status (issue 11): the device app reports ``firmware``
(its own version, each reader's that reports one) in its "online" status; the cloud keeps it
(schema step 6) and ``mfd admin devices`` shows it. Older devices omit it. On SQLite and
PostgreSQL, through the private Mosquitto and the cloud worker."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import World
from hypothesis import given, settings
from hypothesis import strategies as st
from utf8 import utf8_encodable

from cloud import devices
from cloud.storage import schema
from device_app.config import parse_config
from device_app.runner import Device, app_version
from mfdkit.cli import main
from protocol import messages as m
from protocol.errors import ProtocolError

# Any text at all, NUL and lone surrogates included (those must be refused, not crash).
_any_text = st.text(max_size=80)


def _limits_hold(firmware: dict[str, str]) -> bool:
    return (len(firmware) <= m.MAX_FIRMWARE_ENTRIES
            and all(k and len(k) <= m.MAX_FIRMWARE_TEXT and len(v) <= m.MAX_FIRMWARE_TEXT
                    for k, v in firmware.items())
            and all("\x00" not in t and utf8_encodable(t) for kv in firmware.items() for t in kv))


@settings(max_examples=400, deadline=None)
@given(firmware=st.dictionaries(_any_text, _any_text, max_size=40)
       | st.dictionaries(st.text(min_size=1, max_size=64).filter(utf8_encodable),
                         st.text(max_size=64).filter(utf8_encodable), max_size=32))
def test_any_firmware_mapping_round_trips_or_is_refused_by_name(firmware: dict[str, str]) -> None:
    status = m.DeviceStatus("online", 7, since=1.0, engine="ipp", firmware=firmware)
    if _limits_hold(firmware):
        m.validate(status)
        assert m.decode_status(m.encode(status)) == status
    else:
        with pytest.raises(ProtocolError) as info:
            m.validate(status)
        assert info.value.field is not None and info.value.field.startswith("firmware")
        assert "firmware" in info.value.message


def test_the_limits_are_said_in_the_error() -> None:
    too_many = {f"reader:{i}": "1.0" for i in range(m.MAX_FIRMWARE_ENTRIES + 1)}
    with pytest.raises(ProtocolError, match="at most 32 entries, it has 33"):
        m.validate(m.DeviceStatus("online", 1, firmware=too_many))
    with pytest.raises(ProtocolError, match=r'firmware\["app"\]: .* at most 64 characters'):
        m.validate(m.DeviceStatus("online", 1, firmware={"app": "9" * 65}))
    wire = json.loads(m.encode(m.DeviceStatus("online", 1)))
    wire["firmware"] = ["app", "1.0"]
    with pytest.raises(ProtocolError, match="must be an object"):
        m.decode_status(json.dumps(wire).encode())


def test_an_older_device_omits_it() -> None:
    old = b'{"v":1,"type":"status","state":"online","epoch":3,"since":0.5,"engine":"ipp"}'
    assert m.decode_status(old).firmware is None
    # And a peer that knows no firmware field ignores it (tolerant reader): the other fields
    # are all there as before.
    new = json.loads(m.encode(m.DeviceStatus("online", 3, 0.5, "ipp", {"app": "1.0"})))
    assert {k: v for k, v in new.items() if k != "firmware"} == json.loads(old)


def _wait_for(what: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("not seen in time")


def _device(world: World, firmware_version: str | None) -> Device:
    from firmware_stubs.mfd_controller import register_emulator

    register_emulator()
    addr = world.broker.address("copier-2")
    cfg = parse_config({"device": {"id": "copier-2"},
                        "broker": {"url": f"mqtt://{addr.host}:{addr.port}"},
                        "engine": {"kind": "emulator"},
                        "readers": {"specs": ["sim:front?id=front", "sim:side?id=side"]}})
    device = Device(cfg, addr.password or "")
    if firmware_version is not None:
        # As a reader adapter that knows its firmware's version tells it; "side" does not.
        device.readers[0].firmware_version = firmware_version  # type: ignore[attr-defined]
    return device


@pytest.mark.integration
def test_admin_devices_shows_the_versions_a_device_reported(world: World, capsys) -> None:
    assert world.store.schema_version() == schema.LATEST >= 6
    device = _device(world, "1.2.3").start()
    try:
        fw = _wait_for(lambda: devices.device_firmware(world.store, "copier-2"))
    finally:
        device.stop()
        device.engine.close()  # type: ignore[attr-defined]
    assert fw == {"app": app_version(), "reader:front": "1.2.3"}
    assert app_version() not in ("", "unknown")  # the installed mfdkit's own version
    assert main(["admin", "--store", world.store_url, "devices"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("copier-2\t"))
    # id, org, status, name, firmware, config state (last, as scripts read it).
    assert line.split("\t")[4] == f"app {app_version()}, reader:front 1.2.3"
    assert line.split("\t")[5] == "no pushed config"
    other = next(x for x in out.splitlines() if x.startswith("copier-1\t"))
    assert other.split("\t")[4] == "-"  # never online here: no versions


@pytest.mark.integration
def test_versions_past_the_limit_are_left_out_and_the_device_still_shows_online(
        world: World, caplog) -> None:
    device = _device(world, "v" * 65)
    with caplog.at_level(logging.WARNING, logger="device_app.link"):
        device.start()
        try:
            _wait_for(lambda: devices.device_engine(world.store, "copier-2") == "emulator")
        finally:
            device.stop()
            device.engine.close()  # type: ignore[attr-defined]
    # The status arrived (online, its engine kept) without the versions, and the log says why.
    assert devices.device_firmware(world.store, "copier-2") == {}
    assert "firmware versions left out of the status" in caplog.text
    assert "at most 64 characters" in caplog.text


def test_the_store_keeps_any_reported_mapping_and_forgets_it_when_a_status_has_none(
        world: World) -> None:
    firmware = {"app": "0.9.0", "reader:Empfang \u2603 \U0001f600": "1.2.3+g\u00e9", "x": ""}
    online = m.encode(m.DeviceStatus("online", 1, 1.0, "ipp", firmware))
    devices.record_engine(world.store, "copier-1", online, 1.0)
    assert devices.device_firmware(world.store, "copier-1") == firmware
    # The same device after a downgrade to a release that does not report versions: what it
    # said before is not shown as what it runs now.
    devices.record_engine(world.store, "copier-1", m.encode(m.DeviceStatus("online", 2, 2.0)),
                          2.0)
    assert devices.device_firmware(world.store, "copier-1") == {}
    # An offline status changes nothing; an unregistered device is not recorded.
    devices.record_engine(world.store, "copier-1", online, 3.0)
    devices.record_engine(world.store, "copier-1",
                          m.encode(m.DeviceStatus("offline", 3, 4.0)), 4.0)
    assert devices.device_firmware(world.store, "copier-1") == firmware
    devices.record_engine(world.store, "nobody", online, 5.0)
    assert devices.device_firmware(world.store, "nobody") == {}
