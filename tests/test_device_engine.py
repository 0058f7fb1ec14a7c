"""A device names its print engine: no file, option or registration falls back to the emulator,
and a device on the emulator says so at start and in its status (issue 8, defect 3). And
device.toml is TOML whatever the names in it (defect 12)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import Broker, World
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from device_app.config import (
    ConfigError,
    DeviceConfig,
    EngineConfig,
    engine_choice,
    load_config,
    parse_config,
    save_credentials,
    to_toml,
)
from device_app.runner import from_config_file
from protocol import messages as m
from protocol import topics

MFD = [sys.executable, "-m", "mfdkit"]
ENV = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MFD, *args], capture_output=True, text=True, timeout=60, env=ENV,
                          check=False)


def test_a_device_toml_without_an_engine_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "device.toml"
    path.write_text('[device]\nid = "copier-1"\n[broker]\nurl = "mqtt://127.0.0.1:1883"\n')
    save_credentials(tmp_path / "credentials", "copier-1", "pw")
    with pytest.raises(ConfigError, match=r"'engine\.kind' is required"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"'engine\.kind' is required"):
        from_config_file(path)  # what `mfd device --config` runs
    # What the old `register` wrote without asking anyone is not a choice either.
    path.write_text('[device]\nid = "copier-1"\n[engine]\nkind = "stub"\nuri = ""\n')
    with pytest.raises(ConfigError, match=r"engine\.kind.*emulator"):
        load_config(path)
    path.write_text('[device]\nid = "copier-1"\n[engine]\nkind = "emulator"\n')
    assert load_config(path).engine == EngineConfig("emulator")
    path.write_text('[device]\nid = "copier-1"\n[engine]\nkind = "ipp"\n'
                    'uri = "ipp://printer.test/ipp/print"\n')
    assert load_config(path).engine == EngineConfig("ipp", "ipp://printer.test/ipp/print")


def test_engine_choices_on_the_command_line() -> None:
    assert engine_choice("emulator") == EngineConfig("emulator")
    assert engine_choice("ipp://p.test:631/ipp/print") == EngineConfig(
        "ipp", "ipp://p.test:631/ipp/print")
    assert engine_choice("socket:/run/engine.sock") == EngineConfig("socket", "/run/engine.sock")
    for bad in ("", "stub", "ipp://", "lpr://p", "socket:", "emulated"):
        with pytest.raises(ConfigError, match="--engine"):
            engine_choice(bad)


def test_mfd_device_without_an_engine_is_a_one_line_error(tmp_path: Path) -> None:
    # register: refused before the portal is asked, so the one-time code is not spent (the
    # portal address here answers nothing).
    out = run("device", "register", "--portal", "http://127.0.0.1:9", "--code", "AAAA-BBBB",
              "--dir", str(tmp_path / "dev"))
    assert out.returncode == 1, out.stderr
    assert "--engine" in out.stderr and out.stderr.strip().count("\n") == 0
    assert not (tmp_path / "dev").exists()
    out = run("device", "--broker", "mqtt://127.0.0.1:9", "--device-id", "copier-1",
              "--password", "x", "--headless")
    assert out.returncode == 1 and "--engine" in out.stderr
    assert out.stderr.strip().count("\n") == 0


def _status_watch(broker: Broker, device_id: str) -> tuple[mqtt.Client, queue.Queue[bytes]]:
    addr = broker.address("cloud-1")
    inbox: queue.Queue[bytes] = queue.Queue()
    subscribed = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cloud-1", protocol=mqtt.MQTTv5)
    c.username_pw_set(addr.username, addr.password)
    c.on_message = lambda _c, _u, msg: inbox.put(bytes(msg.payload))
    c.on_connect = lambda cl, *_a: cl.subscribe(topics.status_topic(device_id), qos=1)
    c.on_subscribe = lambda *_a: subscribed.set()
    c.connect(addr.host, addr.port)
    c.loop_start()
    assert subscribed.wait(5)
    return c, inbox


def _online(inbox: queue.Queue[bytes], timeout: float = 15) -> m.DeviceStatus:
    while True:
        status = m.decode_status(inbox.get(timeout=timeout))
        if status.state == "online":
            return status


@pytest.mark.integration
def test_a_device_on_the_emulator_warns_at_start_and_in_its_status(broker: Broker) -> None:
    watch, inbox = _status_watch(broker, "copier-9")
    addr = broker.address("copier-9")
    proc = subprocess.Popen([*MFD, "device", "--broker", f"mqtt://{addr.host}:{addr.port}",
                             "--device-id", "copier-9", "--engine", "emulator", "--headless"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**ENV, "MFD_DEVICE_PASSWORD": addr.password or ""})
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "EMULATED engine" in line and "no paper" in line, line
        status = _online(inbox)
        assert status.engine == "emulator"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        watch.loop_stop()
        watch.disconnect()


@pytest.mark.integration
def test_a_device_on_a_real_engine_reports_its_kind(broker: Broker, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from firmware_stubs.mfd_controller import MfdControllerStub

    addr = broker.address("copier-9")
    (tmp_path / "device.toml").write_text(to_toml(parse_config({
        "device": {"id": "copier-9"}, "broker": {"url": f"mqtt://{addr.host}:{addr.port}"},
        "engine": {"kind": "ipp", "uri": "ipp://printer.test/ipp/print"}})))
    save_credentials(tmp_path / "credentials", "copier-9", addr.password or "")
    watch, inbox = _status_watch(broker, "copier-9")
    # The engine is injected (no printer here); the status reports what the config names.
    device = from_config_file(tmp_path / "device.toml", engine=MfdControllerStub()).start()
    try:
        assert _online(inbox).engine == "ipp"
        assert "EMULATED" not in caplog.text
    finally:
        device.stop()
        device.engine.close()  # type: ignore[attr-defined]
        watch.loop_stop()
        watch.disconnect()


# Any text TOML can hold: every code point but lone surrogates (not encodable as UTF-8).
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(name=_text, ca_file=_text, uri_tail=_text.filter(bool), broker_tail=_text,
       journal=_text.filter(lambda t: t not in ("", ".", "..") and "/" not in t
                            and "\x00" not in t),
       sims=st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1,
                             max_size=12), max_size=3))
def test_device_toml_round_trips_any_text(name: str, ca_file: str, uri_tail: str,
                                          broker_tail: str, journal: str,
                                          sims: list[str]) -> None:
    cfg = DeviceConfig(device_id="copier-1", name=name, ca_file=ca_file,
                       broker_url="mqtts://" + broker_tail, journal_file=journal,
                       readers=tuple(f"sim:{n}?id={n}" for n in sims),
                       engine=EngineConfig("ipp", "ipp://" + uri_tail))
    text = to_toml(cfg)
    back = parse_config(tomllib.loads(text))
    assert back == cfg


def test_device_toml_with_a_del_character_in_the_name() -> None:
    """The case found by hand: JSON quoting leaves DEL raw, which tomllib refuses."""
    cfg = DeviceConfig(device_id="c1", name="Floor\x7f3 \"east\" \\ \u2028",
                       engine=EngineConfig("emulator"))
    assert parse_config(tomllib.loads(to_toml(cfg))) == cfg
    assert json.loads(json.dumps(cfg.name)) == cfg.name  # (JSON itself was never the problem)


@pytest.mark.integration
def test_the_cloud_shows_a_device_on_the_emulator(world: World) -> None:
    """What `mfd admin devices` shows once the device's status arrived through the worker."""
    from cloud import devices
    from device_app.runner import Device
    from firmware_stubs.mfd_controller import register_emulator

    register_emulator()  # as `mfd device` does: device_app alone opens only real engines
    addr = world.broker.address("copier-2")
    cfg = parse_config({"device": {"id": "copier-2"},
                        "broker": {"url": f"mqtt://{addr.host}:{addr.port}"},
                        "engine": {"kind": "emulator"}})
    before = world.worker.statuses
    device = Device(cfg, addr.password or "").start()
    try:
        deadline = time.monotonic() + 10
        while (devices.device_engine(world.store, "copier-2") != "emulator"
               and time.monotonic() < deadline):
            time.sleep(0.05)
        assert world.worker.statuses > before
        assert devices.device_engine(world.store, "copier-2") == "emulator"
        out = run("admin", "--store", world.store_url, "devices")
        line = next(x for x in out.stdout.splitlines() if x.startswith("copier-2\t"))
        assert "online (EMULATED engine: prints nothing)" in line
        other = next(x for x in out.stdout.splitlines() if x.startswith("copier-1\t"))
        assert "EMULATED" not in other
    finally:
        device.stop()


@given(state=st.sampled_from(["online", "offline"]), epoch=st.integers(0, 2**53 - 1),
       engine=st.sampled_from(["", "ipp", "socket", "emulator"])
       | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                 max_size=32))
def test_the_status_engine_field_round_trips_and_is_optional(state: str, epoch: int,
                                                             engine: str) -> None:
    status = m.DeviceStatus(state=state, epoch=epoch, since=1.5, engine=engine)
    assert m.decode_status(m.encode(status)) == status
    # An older device sends no engine: still a status, with the field empty.
    old = json.loads(m.encode(status))
    del old["engine"]
    assert m.decode_status(json.dumps(old).encode()).engine == ""


def test_the_emulator_is_opened_only_where_a_program_registered_it() -> None:
    """device_app never imports emulated hardware: its registry opens the real kinds, and the
    emulator only once a program that ships it (`mfd device`, the simulator) registered it."""
    from device_app.engines import registry
    from firmware_stubs.mfd_controller import MfdControllerStub, register_emulator

    saved = dict(registry._OPENERS)
    try:
        registry._OPENERS.pop("emulator", None)
        assert registry.registered() == ("ipp", "socket")
        with pytest.raises(ConfigError, match=r"'engine\.kind': 'emulator' is not available"):
            registry.open_engine(EngineConfig("emulator"))
        with pytest.raises(ConfigError, match=r"'engine\.kind' is required"):
            registry.open_engine(EngineConfig(""))
        with pytest.raises(ValueError, match="not one the config accepts"):
            registry.register("stub", lambda _e: MfdControllerStub())
        register_emulator()
        engine = registry.open_engine(EngineConfig("emulator"))
        assert isinstance(engine, MfdControllerStub)
        engine.close()
    finally:
        registry._OPENERS.clear()
        registry._OPENERS.update(saved)
