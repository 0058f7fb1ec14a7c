"""The production broker-account writer (cloud/broker_accounts.py) against a real Mosquitto with
the dynamic-security plugin: a device account it creates can connect and is confined; a wrong
password cannot; a reserved name is refused and an existing cloud or admin account is never
overwritten; no password reaches a log line or an error. Then the operator's path end to end:
``mfd admin broker-acl`` makes the broker's starting file, ``mfd cloud --broker-admin`` registers
a device through the portal, and the device logs in with what it was given."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from cloud import devices
from cloud.broker_accounts import (
    BrokerAccountError,
    DynsecAccounts,
    _Session,
    dynsec_config,
    password_hash,
)
from cloud.demo import seed_demo
from cloud.storage.sqlite import SqliteStore
from protocol import topics
from protocol.address import BrokerAddress
from protocol.errors import ProtocolError
from simulator.broker import MosquittoBroker

pytestmark = pytest.mark.integration

CLOUD_PW = "pw-cloud-0"
PRINTSVC_PW = "pw-printsvc"  # a cloud account whose name is not a reserved one


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    b = MosquittoBroker(tmp_path_factory.mktemp("dynsec"),
                        {"cloud-0": CLOUD_PW, "printsvc": PRINTSVC_PW, "copier-cfg": "pw-cfg"},
                        cloud_users=("cloud-0", "printsvc")).start()
    yield b
    b.stop()


@pytest.fixture
def writer(broker: MosquittoBroker) -> DynsecAccounts:
    return DynsecAccounts(broker.admin_address, timeout=5)


class Probe:
    """A raw MQTT 5 connection: the CONNACK, then SUBACK reason codes one filter at a time."""

    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        self.connacks: queue.Queue[Any] = queue.Queue()
        self.subacks: queue.Queue[Any] = queue.Queue()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
        c.username_pw_set(user, password)
        c.on_connect = lambda _c, _u, _f, rc, _p: self.connacks.put(rc)
        c.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.subacks.put(rcs[0])
        c.connect(host, port)
        c.loop_start()
        self.c = c
        self.rc = self.connacks.get(timeout=5)

    def subscribe(self, topic: str) -> Any:
        self.c.subscribe(topic, qos=1)
        return self.subacks.get(timeout=5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def connects(broker: MosquittoBroker, user: str, password: str) -> bool:
    probe = Probe(broker.host, broker.port, user, password)
    probe.close()
    return not probe.rc.is_failure


def test_a_written_device_account_connects_and_is_confined(
        broker: MosquittoBroker, writer: DynsecAccounts,
        caplog: pytest.LogCaptureFixture) -> None:
    password = secrets.token_urlsafe(24)
    with caplog.at_level(logging.DEBUG):
        writer.set_password("copier-w1", password)
    probe = Probe(broker.host, broker.port, "copier-w1", password)
    try:
        assert not probe.rc.is_failure
        assert probe.subscribe(topics.response_topic("copier-w1")).value == 1
        assert probe.subscribe(topics.command_topic("copier-w1")).value == 1
        for other in (topics.CLOUD_REQUEST_SUBSCRIPTION, topics.CLOUD_EVENTS_SUBSCRIPTION,
                      "mfd/v1/#", "#", topics.response_topic("copier-1")):
            assert probe.subscribe(other).value == 0x87, other
    finally:
        probe.close()
    assert not connects(broker, "copier-w1", password + "x")  # a wrong password cannot
    assert not connects(broker, "copier-w2", password)  # nor a name it did not create
    account = writer.get_client("copier-w1")
    assert account is not None
    assert [r["rolename"] for r in account["roles"]] == ["mfd-device-copier-w1"]
    assert password not in caplog.text
    assert "copier-w1" in caplog.text  # the path ran and logged, without the password


def test_registering_again_replaces_the_password(broker: MosquittoBroker,
                                                  writer: DynsecAccounts) -> None:
    first, second = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    writer.set_password("copier-w3", first)
    writer.set_password("copier-w3", second)  # a replaced panel, a new code
    assert connects(broker, "copier-w3", second)
    assert not connects(broker, "copier-w3", first)


def test_a_device_from_the_starting_file_takes_a_new_password(broker: MosquittoBroker,
                                                              writer: DynsecAccounts) -> None:
    """The role the starting file gave it is the writer's role, ACL for ACL."""
    assert connects(broker, "copier-cfg", "pw-cfg")
    writer.set_password("copier-cfg", "pw-cfg-2")
    assert connects(broker, "copier-cfg", "pw-cfg-2")
    assert not connects(broker, "copier-cfg", "pw-cfg")


@pytest.mark.parametrize("name", ["cloud", "cloud-0", "cloud-7", "broker-admin", "admin",
                                  "dynsec", "mfd-ops"])
def test_reserved_names_are_refused_before_the_broker_is_asked(
        broker: MosquittoBroker, writer: DynsecAccounts, name: str) -> None:
    with pytest.raises(ProtocolError, match="reserved") as info:
        writer.set_password(name, "stolen-pw")
    assert "stolen-pw" not in str(info.value)
    # The cloud worker's and the writer's own accounts are untouched.
    assert connects(broker, "cloud-0", CLOUD_PW)
    assert not connects(broker, "cloud-0", "stolen-pw")
    account = writer.get_client("cloud-0")
    assert account is not None and [r["rolename"] for r in account["roles"]] == ["mfd-cloud"]
    assert connects(broker, broker.admin_user, broker.admin_password)


def test_an_existing_account_that_is_not_the_devices_is_never_overwritten(
        broker: MosquittoBroker, writer: DynsecAccounts) -> None:
    # "printsvc" is a cloud worker's account under a name the reserved list does not cover.
    with pytest.raises(BrokerAccountError, match="not this device's") as info:
        writer.set_password("printsvc", "new-secret-pw")
    assert "new-secret-pw" not in str(info.value)
    assert connects(broker, "printsvc", PRINTSVC_PW)
    assert not connects(broker, "printsvc", "new-secret-pw")


def test_a_device_role_with_other_acls_is_not_used(broker: MosquittoBroker,
                                                   writer: DynsecAccounts) -> None:
    # Someone made the role by hand with more than a device's rights: fail closed.
    with DynsecAccounts._lock, _Session(writer) as session:
        session.run({"command": "createRole", "rolename": "mfd-device-copier-w4",
                     "acls": [{"acltype": "subscribePattern", "topic": "#", "allow": True}]})
    with pytest.raises(BrokerAccountError, match="other ACLs"):
        writer.set_password("copier-w4", secrets.token_urlsafe(24))
    assert writer.get_client("copier-w4") is None


def test_admin_failures_are_clear_and_carry_no_password(broker: MosquittoBroker) -> None:
    device_pw = secrets.token_urlsafe(24)
    wrong = DynsecAccounts(BrokerAddress(broker.host, broker.port, broker.admin_user, "nope"),
                           timeout=5)
    with pytest.raises(BrokerAccountError) as info:
        wrong.set_password("copier-w5", device_pw)
    assert info.value.code == "not_authorized" and "refused the admin account" in str(info.value)
    assert device_pw not in str(info.value) and "nope" not in str(info.value)
    # A cloud worker's account has no right to the plugin's API.
    cloud = DynsecAccounts(BrokerAddress(broker.host, broker.port, "cloud-0", CLOUD_PW),
                           timeout=5)
    with pytest.raises(BrokerAccountError, match="may not use the broker's dynamic-security"):
        cloud.set_password("copier-w5", device_pw)
    unreachable = DynsecAccounts(BrokerAddress("127.0.0.1", 1, "broker-admin", "x"), timeout=2)
    with pytest.raises(BrokerAccountError, match="cannot reach the broker"):
        unreachable.check()
    assert DynsecAccounts(broker.admin_address).get_client("copier-w5") is None


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s),
       st.integers(min_value=1, max_value=300))
def test_password_hash_is_mosquittos_pbkdf2_sha512(password: str, iterations: int) -> None:
    fields = password_hash(password, iterations)
    salt = base64.b64decode(fields["salt"])
    assert len(salt) == 12 and fields["iterations"] == iterations
    assert base64.b64decode(fields["password"]) == hashlib.pbkdf2_hmac(
        "sha512", password.encode(), salt, iterations)


def test_starting_file_holds_hashes_only() -> None:
    config = dynsec_config({"cloud": "cloud-secret"}, ("broker-admin", "admin-secret"),
                           devices={"copier-1": "dev-secret"}, iterations=2)
    text = json.dumps(config)
    assert not any(s in text for s in ("cloud-secret", "admin-secret", "dev-secret"))
    assert config["defaultACLAccess"]["subscribe"] is False
    with pytest.raises(BrokerAccountError, match="twice"):
        dynsec_config({"broker-admin": "a"}, ("broker-admin", "b"), iterations=2)


# ---------------------------------------------------------------- the operator's path

MFD = [sys.executable, "-m", "mfdkit"]


def _mfd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MFD, *args], capture_output=True, text=True, timeout=60, env=env,
                          check=False, stdin=subprocess.DEVNULL)


class FileBroker(MosquittoBroker):
    """The private Mosquitto, but with the starting file ``mfd admin broker-acl`` printed."""

    def __init__(self, workdir: Path, config: str) -> None:
        super().__init__(workdir)
        self.config = config

    def _write_accounts(self) -> Path:
        path = self.workdir / "dynamic-security.json"
        path.write_text(self.config)
        path.chmod(0o600)
        return path


def test_operator_path_broker_file_cloud_and_registration(tmp_path: Path) -> None:
    cloud_pw, admin_pw = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    env = {**os.environ, "MFD_CLOUD_PASSWORD": cloud_pw, "MFD_BROKER_ADMIN_PASSWORD": admin_pw}
    # No store needed, none created; hashes only on stdout.
    out = _mfd("admin", "broker-acl", "--cloud-workers", "2", env=env)
    assert out.returncode == 0, out.stderr
    assert cloud_pw not in out.stdout and admin_pw not in out.stdout
    config = json.loads(out.stdout)
    assert sorted(c["username"] for c in config["clients"]) == [
        "broker-admin", "cloud-0", "cloud-1"]
    roles = _mfd("admin", "broker-acl", "--roles-only", env={
        k: v for k, v in env.items() if not k.startswith("MFD_")})
    assert roles.returncode == 0 and "clients" not in json.loads(roles.stdout)
    missing = _mfd("admin", "broker-acl", env={
        k: v for k, v in env.items() if k != "MFD_BROKER_ADMIN_PASSWORD"})
    assert missing.returncode != 0 and "MFD_BROKER_ADMIN_PASSWORD" in missing.stderr

    broker = FileBroker(tmp_path / "b", out.stdout).start()
    db = tmp_path / "cloud.db"
    store = SqliteStore(db)
    seed_demo(store, now=time.time(), devices=())
    code = devices.add_device(store, "org_demo", "copier-op", "Ops", time.time())
    url = f"mqtt://{broker.host}:{broker.port}"
    # The old flags fail closed and say what to do instead.
    old = _mfd("cloud", "--broker", url, "--store", f"sqlite:///{db}", "--workers", "2",
               "--broker-passwd", str(tmp_path / "passwd"), env=env)
    assert old.returncode != 0 and "--broker-admin" in old.stderr
    cloud = subprocess.Popen(
        [*MFD, "cloud", "--broker", url, "--store", f"sqlite:///{db}", "--workers", "2",
         "--http", "127.0.0.1:0", "--broker-admin", "broker-admin"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert cloud.stderr is not None
        portal = None
        for line in cloud.stderr:
            found = re.search(r"client API on (http://\S+)", line)
            if found:
                portal = found.group(1)
                break
        assert portal, "mfd cloud did not start its portal"
        req = urllib.request.Request(f"{portal}/api/v1/devices/register",
                                     data=json.dumps({"code": code}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as resp:
            answer = json.loads(resp.read())
        assert answer["username"] == "copier-op"
        probe = Probe(broker.host, broker.port, "copier-op", answer["password"])
        try:
            assert not probe.rc.is_failure
            assert probe.subscribe(topics.response_topic("copier-op")).value == 1
            assert probe.subscribe(topics.CLOUD_REQUEST_SUBSCRIPTION).value == 0x87
        finally:
            probe.close()
        assert not connects(broker, "copier-op", "wrong")
    finally:
        cloud.send_signal(signal.SIGTERM)
        cloud.wait(20)
        broker.stop()
