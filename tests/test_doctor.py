"""mfd doctor against real parts: the private Mosquitto with dynsec roles, a TLS Mosquitto, the
cloud worker and portal, a pcProx stub on a pty, the emulated engine. A good device passes
every check; each fault is found by the check it belongs to, with the advice that fixes it."""

from __future__ import annotations

import email.utils
import http.server
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Broker, World
from pcprox_line import pcprox_fixture
from tls_certs import ca_and_server

from cloud import devices
from cloud.broker_accounts import DynsecAccounts, _Session
from cloud.portal import start_portal
from device_app.runner import from_config_file
from firmware_stubs.mcuboot import Bootloader, factory_flash
from firmware_stubs.mfd_controller import MfdControllerStub
from firmware_stubs.serial_readers import PcProxStub
from firmware_stubs.smp.reader_device import ReaderDevice
from firmware_stubs.smp.server import DeviceIdentity
from mfdkit.cli import main
from mfdkit.cli.doctor import _DeviceSide
from mqtt_client import new_client
from protocol import messages as m
from protocol import topics
from protocol.errors import RemoteError
from provisioning import image as img
from provisioning import keys as keymod
from provisioning.doctor import DoctorOptions, Report, Status, diagnose
from readers.pty import PtyPort
from simulator.broker import MosquittoBroker, free_port

pytestmark = pytest.mark.integration


def new_device(broker: Broker) -> tuple[str, str]:
    # A new id per test: the broker lives for the session and keeps retained configs.
    dev, pw = f"copier-doc-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    broker.mosquitto.add_user(dev, pw)
    return dev, pw


def provision(tmp: Path, dev: str, pw: str, url: str, *extra: str) -> Path:
    (tmp / "pw").write_text(pw + "\n")
    directory = tmp / "dev"
    assert main(["provision", str(directory), "--device-id", dev, "--broker", url,
                 "--username", dev, "--password-file", str(tmp / "pw"), "--engine",
                 "emulator", "--ledger", str(tmp / "ledger.jsonl"), *extra]) == 0
    return directory


def doctor(directory: Path, **options: object) -> Report:
    return diagnose(directory, _DeviceSide(),
                    DoctorOptions(**{"timeout_s": 3.0, **options}))  # type: ignore[arg-type]


pcprox = pcprox_fixture()


def statuses(report: Report) -> dict[str, Status]:
    return {c.name: c.status for c in report.checks}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_good_device_passes_and_a_running_one_is_left_alone(
        world: World, tmp_path: Path, pcprox: tuple[PtyPort, PcProxStub],
        capsys: pytest.CaptureFixture[str]) -> None:
    dev, pw = new_device(world.broker)
    devices.add_device(world.store, "org_demo", dev, "Doctor", time.time())
    port, stub = pcprox
    directory = provision(tmp_path, dev, pw, world.broker.mosquitto.url,
                          "--reader", f"serial:{port.device}?family=pcprox&lockout=0")
    v1 = devices.set_device_config(world.store, dev, {"policy": {"idle_timeout": 90}},
                                   time.time())
    portal = start_portal(world.store_url)
    device = from_config_file(directory / "device.toml", engine=MfdControllerStub()).start()
    try:
        assert device.app.run_until(lambda a: device.cfg.version == v1, 8)
        epoch = device.link.epoch
        # While it runs: nothing that would take its session over or steal its reader port.
        live = doctor(directory)
        for name in ("credentials", "acl", "config version", "reader 1"):
            assert live.check(name).status is Status.WARN
            assert "runs on this configuration" in live.check(name).finding
        assert live.check("broker reachable").status is Status.OK
        try:  # a round trip on the device's own link: it was never thrown off
            device.link.call(m.Identify("card", "4242"), timeout=5)
        except RemoteError:
            pass
        assert device.link.connected and device.link.epoch == epoch
    finally:
        device.stop()
    try:
        report = diagnose(directory, _DeviceSide(),
                          DoctorOptions(portal=portal.url, tap_s=5, timeout_s=3),
                          tap_sink=lambda _text: stub.present(4242))
        got = statuses(report)
        assert got.pop("tls") is Status.WARN  # plain mqtt:// on this bench: said, not failed
        assert set(got.values()) == {Status.OK}, report.to_json()
        assert report.check("config version").finding == f"version {v1} (the cloud's latest)"
        assert "present and reading" in report.check("reader 1").finding
        assert "4242" not in json.dumps(report.to_json())  # a badge number is a credential
        assert report.exit_code == 0
        # The cloud moves on while the device is off: doctor says it is behind, and what to do.
        v2 = devices.set_device_config(world.store, dev, {"policy": {"idle_timeout": 120}},
                                       time.time())
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            behind = doctor(directory, portal=portal.url)
            if behind.check("config version").status is Status.FAIL:
                break
            time.sleep(0.1)  # the worker publishes the new version on its next chore
        check = behind.check("config version")
        assert check.status is Status.FAIL and behind.exit_code == 1
        assert f"runs version {v1}, the cloud's latest is {v2}" in check.finding
        assert "start mfd device" in check.fix
        # The CLI: --json, one object, exit 1; no secret in it.
        capsys.readouterr()
        assert main(["doctor", str(directory), "--json", "--timeout", "3"]) == 1
        out = json.loads(capsys.readouterr().out)
        assert out["device"] == dev and out["ok"] is False
        assert pw not in json.dumps(out)
    finally:
        portal.close()


def test_wrong_password_is_refused_with_the_way_out(broker: Broker, tmp_path: Path) -> None:
    dev, _pw = new_device(broker)
    directory = provision(tmp_path, dev, "not-the-password", broker.mosquitto.url)
    report = doctor(directory)
    check = report.check("credentials")
    assert check.status is Status.FAIL and "refused" in check.finding
    assert "register the device again" in check.fix
    assert report.exit_code == 1


def test_broker_down(broker: Broker, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    dev, pw = new_device(broker)
    directory = provision(tmp_path, dev, pw, f"mqtt://127.0.0.1:{free_port()}")
    report = doctor(directory)
    assert report.check("broker reachable").status is Status.FAIL
    assert "[broker] url" in report.check("broker reachable").fix
    # The same cause is not failed twice: the checks behind it say they did not run.
    assert report.check("credentials").status is Status.WARN
    assert report.check("credentials").finding.startswith("not checked")
    # The CLI: each finding with its fix, exit 1; a usage error is 2.
    capsys.readouterr()
    assert main(["doctor", str(directory), "--timeout", "2"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  broker reachable: no TCP connection" in out
    assert "fix: check [broker] url in device.toml" in out
    with pytest.raises(SystemExit) as usage:
        main(["doctor", str(directory), "--tap", "soon"])
    assert usage.value.code == 2


def test_an_engine_that_cannot_be_reached(broker: Broker, tmp_path: Path) -> None:
    dev, pw = new_device(broker)
    (tmp_path / "pw").write_text(pw + "\n")
    directory = tmp_path / "dev"
    assert main(["provision", str(directory), "--device-id", dev, "--broker",
                 broker.mosquitto.url, "--username", dev, "--password-file",
                 str(tmp_path / "pw"), "--engine", f"socket:{tmp_path / 'no-engine.sock'}",
                 "--ledger", str(tmp_path / "ledger.jsonl")]) == 0
    check = doctor(directory).check("engine")
    assert check.status is Status.FAIL and check.finding.startswith("socket:")
    assert "printer is on and reachable" in check.fix


def test_an_absent_reader(broker: Broker, tmp_path: Path) -> None:
    dev, pw = new_device(broker)
    directory = provision(tmp_path, dev, pw, broker.mosquitto.url, "--reader",
                          "serial:/dev/ttyMFDNONE?family=pcprox")
    report = doctor(directory)
    check = report.check("reader 1")
    assert check.status is Status.FAIL and "absent" in check.finding
    assert "plug the reader in" in check.fix
    assert report.check("credentials").status is Status.OK


def test_an_acl_that_does_not_confine_is_found(broker: Broker, tmp_path: Path) -> None:
    dev, pw = new_device(broker)
    directory = provision(tmp_path, dev, pw, broker.mosquitto.url)
    assert doctor(directory).check("acl").status is Status.OK
    # An administrator's mistake: the device's role given the whole tree.
    with _Session(DynsecAccounts(broker.mosquitto.admin_address, timeout=5)) as session:
        session.run({"command": "addRoleACL", "rolename": topics.device_role_name(dev),
                     "acltype": "subscribePattern", "topic": "mfd/v1/#", "priority": 0,
                     "allow": True})
    check = doctor(directory).check("acl")
    assert check.status is Status.FAIL and "does not confine" in check.finding
    assert topics.device_role_name(dev) in check.fix


def test_tls_verified_and_a_wrong_ca_named(tmp_path: Path) -> None:
    ca, cert, key = ca_and_server(tmp_path, "site")
    other_ca, _, _ = ca_and_server(tmp_path, "other")
    tls = MosquittoBroker(tmp_path / "b", {"copier-t": "pw-t", "cloud-0": "pwc"},
                          cloud_users=("cloud-0",))
    tls.enable_tls(cert, key)
    tls.start()
    try:
        url = f"mqtts://127.0.0.1:{tls.tls_port}"
        (tmp_path / "good").mkdir()
        good = provision(tmp_path / "good", "copier-t", "pw-t", url, "--ca", str(ca))
        report = doctor(good)
        assert report.check("tls").status is Status.OK
        assert "verified" in report.check("tls").finding
        assert report.check("credentials").status is Status.OK
        assert report.check("acl").status is Status.OK
        # mfd device runs from what was provisioned: the CA found wherever it starts from.
        device = from_config_file(good / "device.toml", engine=MfdControllerStub()).start()
        try:
            assert device.link.connected
        finally:
            device.stop()
        (tmp_path / "bad").mkdir()
        bad = provision(tmp_path / "bad", "copier-t", "pw-t", url, "--ca", str(other_ca))
        report = doctor(bad)
        check = report.check("tls")
        assert check.status is Status.FAIL and "not trusted" in check.finding
        assert "ca_file" in check.fix
        assert report.check("credentials").status is Status.WARN  # never sent in clear
        assert report.exit_code == 1
    finally:
        tls.stop()


class _SkewedPortal(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()

    def date_time_string(self, timestamp: float | None = None) -> str:
        return email.utils.formatdate(time.time() - 300, usegmt=True)  # 5 minutes behind

    def log_message(self, *args: object) -> None:
        pass


def test_clock_skew_against_the_portal(broker: Broker, tmp_path: Path) -> None:
    dev, pw = new_device(broker)
    directory = provision(tmp_path, dev, pw, broker.mosquitto.url)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SkewedPortal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check = doctor(directory, portal=f"http://127.0.0.1:{server.server_port}/"
                       ).check("clock")
    finally:
        server.shutdown()
        server.server_close()
    assert check.status is Status.FAIL
    assert "ahead of the cloud" in check.finding and "NTP" in check.fix


def test_firmware_and_slots_read_over_smp(broker: Broker, tmp_path: Path) -> None:
    key = keymod.generate()
    image = img.build(b"\x5a" * 9_000, version="1.0.0", model="reader-em4100",
                      security_counter=1, key=key)
    der = keymod.public_der(key)
    boot = Bootloader(factory_flash(tmp_path / "flash.bin", image), model="reader-em4100",
                      trusted_keys=[der])
    reader = ReaderDevice(boot, DeviceIdentity("reader-em4100", (keymod.key_id(key),), (der,)))
    dev, pw = new_device(broker)
    directory = provision(tmp_path, dev, pw, broker.mosquitto.url)
    try:
        with PtyPort() as silent:
            report = doctor(directory, smp_ports=(reader.device, silent.device), timeout_s=1.0)
    finally:
        reader.close()
    check = report.check(f"firmware {reader.device}")
    assert check.status is Status.OK
    assert "reader-em4100" in check.finding and "1.0.0 active confirmed" in check.finding
    assert boot.running() is not None and boot.running().confirmed  # read only: unchanged
    assert report.check(f"firmware {silent.device}").status is Status.FAIL


def test_a_pcprox_printing_another_layout_than_its_spec(
        broker: Broker, tmp_path: Path, pcprox: tuple[PtyPort, PcProxStub]) -> None:
    port, _stub = pcprox
    dev, pw = new_device(broker)
    directory = provision(tmp_path, dev, pw, broker.mosquitto.url, "--reader",
                          f"serial:{port.device}?family=pcprox")
    assert doctor(directory).check("reader 1").status is Status.OK
    # Someone set the reader to hex; the spec still reads decimal.
    assert main(["provision", "--reader-config", port.device, "--format", "hex"]) == 0
    check = doctor(directory).check("reader 1")
    assert check.status is Status.FAIL
    assert "the reader prints hex" in check.finding and "the spec decodes dec" in check.finding
    assert "--reader-config" in check.fix


def test_doctor_leaves_a_running_mfd_device_process_alone(
        broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev, pw = new_device(broker)
    directory = provision(tmp_path, dev, pw, broker.mosquitto.url,
                          "--reader", "sim:doc?lockout=0")
    # The cloud's view of the device: every connection says "online" with a new epoch.
    seen: queue.Queue[m.DeviceStatus] = queue.Queue()
    cloud = new_client("cloud-1", "cloud-1", broker.address("cloud-1").password)
    cloud.on_message = lambda _c, _u, msg: seen.put(m.decode_status(bytes(msg.payload)))
    cloud.connect(broker.mosquitto.host, broker.mosquitto.port)
    cloud.subscribe(topics.status_topic(dev), qos=1)
    cloud.loop_start()
    proc = subprocess.Popen([sys.executable, "-m", "mfdkit", "device", "--config",
                             str(directory / "device.toml"), "--headless"],
                            env={**os.environ, "SDL_VIDEODRIVER": "dummy"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        online = seen.get(timeout=20)
        assert online.state == "online"
        capsys.readouterr()
        assert main(["doctor", str(directory), "--json", "--timeout", "3"]) == 0
        report = json.loads(capsys.readouterr().out)
        checks = {c["name"]: c for c in report["checks"]}
        for name in ("credentials", "acl", "config version", "reader 1"):
            assert checks[name]["status"] == "warn"
            assert f"pid {proc.pid}" in checks[name]["finding"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        # Its clean goodbye carries the epoch of its first and only connection: doctor never
        # took its session over (that would have meant a reconnection, a new epoch).
        last = seen.get(timeout=10)
        assert (last.state, last.epoch) == ("offline", online.epoch)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        cloud.loop_stop()
        cloud.disconnect()
