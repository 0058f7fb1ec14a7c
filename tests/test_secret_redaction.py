"""An OSDP Secure Channel key in a reader spec never gets out (issue 8, defect 4).

A malformed spec is exactly the one an error quotes whole, and that error is logged, shown, sent
to the cloud as a config refusal and stored there. Here malformed specs carrying a known key go
every way a spec can: opened directly, in device.toml, through `mfd reader watch`, set with
`mfd admin device-config`, and pushed to a real device (its own process, logging at DEBUG)
through the real broker and cloud worker; a refusal quoting the key in clear (an older device)
is published too. Then every log record, every audit row, the stored reasons and the device's
stderr are searched for the key in every spelling it could take.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import World
from e2e_helpers import BrokerUsers
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from waiting import eventually

from cloud import devices
from cloud.portal import start_portal
from device_app.config import ConfigError, EngineConfig, load_credentials, parse_config
from device_app.runner import register
from protocol import messages as m
from protocol import topics
from protocol.redact import redact
from readers.spec import open_reader

MFD = [sys.executable, "-m", "mfdkit"]
KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def spellings(key: str) -> list[str]:
    """Every form the key could leak in: hex either case, pairs with separators, the bytes'
    repr and base64."""
    raw = bytes.fromhex(key)
    pairs = [key[i:i + 2] for i in range(0, len(key), 2)]
    return [key.lower(), key.upper(), ":".join(pairs), " ".join(pairs), repr(raw)[2:-1],
            base64.b64encode(raw).decode(), raw.decode("latin-1")]


def assert_no_key(text: str, where: str, key: str = KEY) -> None:
    for form in spellings(key):
        assert form not in text, f"the key leaked in {where} as {form!r}: {text[:400]!r}"


def malformed_specs(key: str = KEY) -> list[str]:
    return [
        f"osdp:/dev/ttyS0?scbk={key}&address",  # a parameter without '='
        f"osdp:/dev/ttyS0?address=0&scbk={key}&&",
        f"osdpp:/dev/ttyS0?address=0&scbk={key}",  # a mistyped scheme
        f"osdp/dev/ttyS0?scbk={key}",  # no scheme at all
        f"osdp:/dev/ttyS0&scbk={key}",  # no '?'
        f"osdp:?address=0&scbk={key}",  # no port
        f"osdp:/dev/ttyS0?address=0&sckb={key}",  # a misspelled name
        f"osdp:/dev/ttyS0?address=0&scbk={key}x",  # a key one character too long
        f"osdp:/dev/ttyS0?address=0&scbk={key[:-2]}",
        f"osdp:/dev/ttyS0?address=0&scbk={key}&scbk={key}",  # given twice
        f"osdp:/dev/ttyS0?address={key}",  # the key in the wrong parameter
        f"osdp:/dev/ttyS0?address=0&scbk={key}&baud=12",
        f"osdp:/dev/ttyS0?address=0&scbk={key}&plaintext=maybe",
        f"osdp:/dev/ttyS0?address=0&scbk={key}&pipeline=bogus",
        f"osdp:/dev/ttyS0?address=0&scbk={key.upper()}&lockout=-1",
        f"serial:/dev/ttyS0?family=em4100&scbk={key}",  # a key where none belongs
        f"replay:?scbk={key}",
        f"osdp:/dev/ttyS0?address=0&scbk%3D{key}",
    ]


def test_no_reader_spec_error_quotes_the_key() -> None:
    for spec in malformed_specs():
        with pytest.raises(ConfigError) as caught:
            open_reader(spec)
        # The message, and everything a traceback would show (the exception chain).
        assert_no_key("".join(traceback.format_exception(caught.value)), spec)
        with pytest.raises(ConfigError) as caught:
            parse_config({"device": {"id": "c1"}, "readers": {"specs": [spec]}})
        assert_no_key("".join(traceback.format_exception(caught.value)), spec)
        assert "readers.specs[0]" in caught.value.message


@settings(max_examples=400, deadline=None)
@given(key=st.binary(min_size=16, max_size=16).map(bytes.hex),
       upper=st.booleans(),
       name=st.sampled_from(["scbk", "SCBK", "sckb", "key", "master_key", "x"]),
       sep=st.sampled_from(["=", ":", " = ", "%3D"]),
       before=st.text(max_size=30), after=st.text(max_size=30))
def test_redact_masks_any_key_in_any_text(key: str, upper: bool, name: str, sep: str,
                                          before: str, after: str) -> None:
    key = key.upper() if upper else key
    text = f"{before}{name}{sep}{key}{after}"
    out = redact(text)
    assert key not in out
    assert redact(out) == out  # idempotent


def test_redact_keeps_what_a_technician_needs() -> None:
    for text in ["serial:/dev/ttyUSB0?family=em4100&baud=9600&lockout=2",
                 "reader spec parameter 'address' must be an OSDP address 0..126, got '200'",
                 "config key 'policy.idle_timout' is not known; known: allow_code, card_pin",
                 "no device broker password: pass --password or set MFD_DEVICE_PASSWORD",
                 "job j_9585b9431ffc4489 is not held"]:
        assert redact(text) == text


def test_a_bad_broker_url_is_refused_without_its_password(tmp_path: Path) -> None:
    # The URL an operator mistyped is quoted back, so they see which one; its password is not.
    password = "S3cretPw-7d1"
    for url in (f"mqtt://cloud:{password}@127.0.0.1:99999", f"http://cloud:{password}@host"):
        out = subprocess.run([*MFD, "cloud", "--broker", url, "--store",
                              str(tmp_path / "cloud.db")], capture_output=True, text=True,
                             timeout=30, check=False,
                             env={**os.environ, "MFD_CLOUD_PASSWORD": "x"})
        assert out.returncode != 0
        assert "broker URL 'mqtt://cloud:***@" in out.stderr or "http://cloud:***@" in out.stderr
        assert password not in out.stdout + out.stderr


def test_a_stray_argument_with_a_key_is_not_quoted_back_in_clear() -> None:
    # argparse names what it did not expect; a mis-split command line can put a spec there.
    out = subprocess.run([*MFD, "admin", "device-config", "dev1",
                          f"readers.specs=osdp:/dev/ttyUSB0?scbk={KEY}", "stray"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 2 and "unrecognized arguments" in out.stderr
    assert_no_key(out.stdout + out.stderr, "argparse's error")


def test_redact_masks_the_password_of_any_url_and_keeps_the_rest() -> None:
    assert redact("bad port in mqtt://cloud:pw@h:99999") == "bad port in mqtt://cloud:***@h:99999"
    assert redact("postgresql://u:p%40ss@db:5432/x") == "postgresql://u:***@db:5432/x"
    for text in ("mqtt://127.0.0.1:1883", "sqlite:///srv/cloud.db", "https://a.example/x@y"):
        assert redact(text) == text


# A URL's password is any run of characters a URL allows there unescaped ('@', '/' and space
# must be percent-encoded in user information).
_URL_PASSWORD = st.text(alphabet=st.characters(blacklist_characters="@/ \t\n\r'\"",
                                               blacklist_categories=("Cs", "Cc", "Zs")),
                        min_size=6, max_size=40)


@given(scheme=st.sampled_from(["mqtt", "mqtts", "postgresql", "mysql", "https"]),
       user=st.from_regex(r"[a-z][a-z0-9_-]{0,15}", fullmatch=True), password=_URL_PASSWORD,
       around=st.sampled_from(["{}", "broker URL '{}' has a bad port", "({}),", "x {} y"]))
@settings(max_examples=300, deadline=None)
def test_no_url_password_survives_redaction(scheme: str, user: str, password: str,
                                            around: str) -> None:
    url = f"{scheme}://{user}:{password}@db.example:5432/x"
    out = redact(around.format(url))
    assert f"{scheme}://{user}:***@db.example:5432/x" in out
    assert redact(out) == out  # idempotent


def test_mfd_reader_watch_with_a_malformed_spec() -> None:
    for spec in malformed_specs()[:6]:
        out = subprocess.run([*MFD, "reader", "watch", spec], capture_output=True, text=True,
                             timeout=30, check=False)
        assert out.returncode != 0
        assert_no_key(out.stdout + out.stderr, f"mfd reader watch {spec}")


def _events_client(world: World, username: str, password: str) -> mqtt.Client:
    connected = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5)
    c.username_pw_set(username, password)
    c.on_connect = lambda *_a: connected.set()
    c.connect(world.broker.mosquitto.host, world.broker.mosquitto.port)
    c.loop_start()
    assert connected.wait(5)
    return c


def _store_push(world: World, device_id: str, specs: list[str]) -> int:
    """A config version as a cloud from before set-time checks stored it (the mistake then
    reached the device): written straight into the store, which the worker then pushes."""
    store = world.store
    with store.transaction():
        row = store.query_one("SELECT version FROM device_configs WHERE device_id=?", device_id)
        version = (int(row[0]) if row else 0) + 1
        text = json.dumps({"readers": {"specs": specs}})
        if row:
            store.execute("UPDATE device_configs SET version=?, config=? WHERE device_id=?",
                          version, text, device_id)
        else:
            store.execute("INSERT INTO device_configs (device_id, version, config, updated_at) "
                          "VALUES (?,?,?,?)", device_id, version, text, time.time())
    return version


@pytest.mark.integration
def test_malformed_specs_pushed_to_a_device_leak_the_key_nowhere(
        world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = world.store
    dev = f"copier-sc-{os.getpid() % 100000}-{time.monotonic_ns() % 100000}"
    code = devices.add_device(store, "org_demo", dev, "Secure reader", time.time())
    portal = start_portal(world.store_url, accounts=BrokerUsers(world),
                          device_broker_url=world.broker.mosquitto.url)
    try:
        register(portal.url, code, tmp_path / "dev", engine=EngineConfig("emulator"))
    finally:
        portal.close()

    # 1. Set by an administrator: refused at once, the key in no error.
    for spec in malformed_specs():
        with pytest.raises(ConfigError) as caught:
            devices.set_device_config(store, dev, {"readers": {"specs": [spec]}}, time.time())
        assert_no_key("".join(traceback.format_exception(caught.value)), f"set {spec}")

    # 2. Pushed to the device (its own process, every log line on stderr).
    proc = subprocess.Popen([*MFD, "--debug", "device", "--config",
                             str(tmp_path / "dev" / "device.toml"), "--headless"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
    try:
        versions = []
        # One of each kind of mistake (every spec is checked above without the round trip).
        for spec in malformed_specs()[:9] + malformed_specs()[-3:]:
            version = _store_push(world, dev, [spec])
            versions.append(version)
            assert eventually(lambda v=version: devices.config_state(store, dev)["refused"] == v,
                              20.0), (
                f"the device did not refuse version {version} ({spec})")
        # 3. A refusal quoting the key in clear, as a device without redaction sends it: the
        # cloud redacts it before it stores or logs it.
        username, password = load_credentials(tmp_path / "dev" / "credentials")
        proc.send_signal(signal.SIGTERM)
        _, device_err = proc.communicate(timeout=20)
        old = _events_client(world, username, password)
        try:
            last = versions[-1] + 1
            _store_push(world, dev, ["sim:x"])
            reason = f"config key 'readers.specs[0]': reader spec 'osdp:/dev/x?scbk={KEY}&a'"
            old.publish(topics.events_topic(dev), m.encode(m.ConfigAck(
                version=last, applied=False, reason=reason)), qos=1).wait_for_publish(5)
            assert eventually(lambda: devices.config_state(store, dev)["refused"] == last, 20.0)
        finally:
            old.loop_stop()
            old.disconnect()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert "refused pushed config" in device_err  # the device did log its refusals
    assert_no_key(device_err, "the device's stderr (DEBUG log)")
    state = devices.config_state(store, dev)
    assert "***" in state["refusal"]
    assert_no_key(state["refusal"], "the stored refusal reason")
    for row in store.query_all("SELECT refusal FROM device_configs"):
        assert_no_key(str(row[0]), "a stored refusal")
    audit = store.query_all("SELECT * FROM audit")
    assert any("config.refused" in str(r) for r in audit)
    for row in audit:
        assert_no_key(" ".join(map(str, row)), "an audit row")
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        assert_no_key(text, f"a log record of {record.name}")
    listing = subprocess.run([*MFD, "admin", "--store", world.store_url, "devices"],
                             capture_output=True, text=True, timeout=30, check=False)
    assert dev in listing.stdout
    assert_no_key(listing.stdout + listing.stderr, "mfd admin devices")
