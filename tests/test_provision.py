"""mfd provision against real parts: the device app's own loader and runner on what it wrote,
the private Mosquitto with the device's dynsec role, a pcProx stub on a pty for the reader's
output format, and the fleet ledger."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from conftest import Broker
from hypothesis import given
from hypothesis import strategies as st
from pcprox_line import pcprox_fixture

from device_app.config import load_config
from device_app.runner import from_config_file
from firmware_stubs.mfd_controller import MfdControllerStub
from firmware_stubs.serial_readers import PcProxStub
from mfdkit.cli import main
from protocol.errors import ConfigError
from protocol.managed import Policy, parse_policy
from provisioning.provision import PcProxSettings, parse_policy_options
from readers.codecs.pcprox import format_from_acp
from readers.pty import PtyPort

pytestmark = pytest.mark.integration


def args(tmp: Path, dev: str, url: str, *extra: str, directory: Path | None = None) -> list[str]:
    return ["provision", str(directory or tmp / "dev"), "--device-id", dev, "--broker", url,
            "--username", dev, "--password-file", str(tmp / "pw"), "--engine", "emulator",
            "--ledger", str(tmp / "ledger.jsonl"), *extra]


def ledger(tmp: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp / "ledger.jsonl").read_text().splitlines()]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_provisioned_device_starts_with_its_configuration(
        broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev, pw = f"copier-prov-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    broker.mosquitto.add_user(dev, pw)
    (tmp_path / "pw").write_text(pw + "\n")
    assert main(args(tmp_path, dev, broker.mosquitto.url, "--name", "Floor 3",
                     "--reader", "sim:prov?lockout=0", "--policy", "idle_timeout=90",
                     "--policy", "card_pin=true")) == 0
    out = capsys.readouterr()
    assert pw not in out.out + out.err
    directory = tmp_path / "dev"
    assert {p.name for p in directory.iterdir()} == {"device.toml", "credentials"}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in directory.iterdir())
    assert pw not in (directory / "device.toml").read_text()
    entry = ledger(tmp_path)[-1]
    assert entry["action"] == "provision" and entry["result"] == "ok"
    assert entry["device"] == {"id": dev} and pw not in json.dumps(entry)
    device = from_config_file(directory / "device.toml", engine=MfdControllerStub()).start()
    try:
        assert device.link.connected  # the credentials written are the broker's
        assert device.cfg.name == "Floor 3" and device.cfg.readers == ("sim:prov?lockout=0",)
        assert device.app.machine.policy.idle_timeout == 90
        assert device.app.machine.policy.card_pin
    finally:
        device.stop()


def test_a_mistake_is_named_and_nothing_is_half_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pw").write_text("pw-x\n")
    url = "mqtt://127.0.0.1:1883"
    assert main(["provision", str(tmp_path / "dry"), "--device-id", "copier-x", "--broker", url,
                 "--username", "copier-x", "--password-file", str(tmp_path / "pw"),
                 "--engine", "emulator", "--dry-run"]) == 0
    assert not (tmp_path / "dry").exists()  # a dry run writes nothing, not even the folder
    # A site with two brokers: --broker again, and device.toml lists both, in order.
    assert main(args(tmp_path, "copier-x", url, "--broker", "mqtt://127.0.0.1:1884",
                     directory=tmp_path / "two")) == 0
    two = load_config(tmp_path / "two" / "device.toml")
    assert two.broker_urls == (url, "mqtt://127.0.0.1:1884")
    assert main(args(tmp_path, "copier-x", url)) == 0
    directory = tmp_path / "dev"
    before = snapshot(directory)
    (tmp_path / "not-a-ca.pem").write_text("hello\n")
    mistakes = [
        (["--policy", "idle_timeout=1"], "policy.idle_timeout"),
        (["--policy", "idle_timeot=90"], "policy.idle_timeot"),
        (["--reader", "serial:/dev/ttyUSB0?family=nope"], "family"),
        (["--broker", "http://broker"], "broker.url"),
        (["--ca", str(tmp_path / "not-a-ca.pem")], "no usable certificate"),
    ]
    capsys.readouterr()
    for extra, named in mistakes:
        argv = args(tmp_path, "copier-x", url)
        if extra[0] == "--broker":
            argv[argv.index(url)] = extra[1]
            extra = []
        assert main([*argv, *extra]) == 1, extra
        assert named in capsys.readouterr().err, extra
    # Another identity over this device's folder (its journal, its pushed config): refused.
    assert main(args(tmp_path, "copier-y", url)) == 1
    assert "copier-x" in capsys.readouterr().err
    assert main([*args(tmp_path, "copier-x", url), "--username", "copier-z"]) == 1  # last wins
    assert "--username" in capsys.readouterr().err
    # A write that fails half-way (credentials cannot be replaced): device.toml untouched.
    (directory / "credentials").unlink()
    (directory / "credentials").mkdir()
    assert main(args(tmp_path, "copier-x", url, "--name", "New")) == 1
    assert "device.toml was not changed" in capsys.readouterr().err
    (directory / "credentials").rmdir()
    after = snapshot(directory)
    assert after == {k: v for k, v in before.items() if k != "credentials"}  # no temp files
    results = [e["result"] for e in ledger(tmp_path)]
    assert results[0] == "ok" and results[-1] == "failed" and "refused" in results


pcprox = pcprox_fixture()


def test_pcprox_output_format_set_and_read_back(
        pcprox: tuple[PtyPort, PcProxStub], capsys: pytest.CaptureFixture[str]) -> None:
    port, stub = pcprox
    assert stub.present(0xBEEF) == b"48879\r"  # the factory layout
    assert main(["provision", "--reader-config", port.device, "--format", "hex",
                 "--prefix", ";", "--suffix", "?", "--digits", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reader"]["variables"]["disp.id.hex"] is True
    assert stub.present(0xBEEF, facility=1) == b";0000BEEF?\r"
    assert main(["provision", "--reader-config", port.device, "--format", "dec"]) == 0
    assert stub.present(0xBEEF, facility=2) == b"48879\r"
    # Asked of every variable after setting it: the reads come back as queries.
    assert any(c.endswith(b"disp.id.hex?") for c in stub.commands)
    sent = len(stub.commands)
    capsys.readouterr()
    # What a pcProx cannot do is refused before a byte goes to the reader.
    assert main(["provision", "--reader-config", port.device, "--format", "hex",
                 "--prefix", "ab", "--suffix", "cd"]) == 1
    assert "three delimiter" in capsys.readouterr().err
    assert len(stub.commands) == sent


def test_a_reader_that_does_not_answer(capsys: pytest.CaptureFixture[str]) -> None:
    with PtyPort() as port:  # nothing behind it: an em4100-style reader takes no commands
        assert main(["provision", "--reader-config", port.device, "--format", "hex"]) == 1
    assert "no reply" in capsys.readouterr().err


@given(st.text(max_size=40))
def test_policy_options_parse_or_name_the_key(text: str) -> None:
    try:
        table = parse_policy_options([text])
    except ConfigError as exc:
        assert "policy." in exc.message or "KEY=VALUE" in exc.message
        return
    try:  # typed right; the schema then takes it or names the key it refuses
        parse_policy(table, Policy())
    except ConfigError as exc:
        assert "policy." in exc.message


@given(st.sampled_from([10, 16]), st.text(max_size=4), st.text(max_size=4),
       st.integers(-1, 40))
def test_pcprox_settings_are_what_the_reader_then_prints(base: int, prefix: str, suffix: str,
                                                         digits: int) -> None:
    settings = PcProxSettings(base=base, prefix=prefix, suffix=suffix, digits=digits)
    try:
        variables = settings.variables()
    except ConfigError:
        return
    fmt = format_from_acp(variables)
    assert (fmt.pre, fmt.post) == (prefix.encode("ascii"), suffix.encode("ascii"))
    assert (fmt.base, fmt.width) == (base, digits)


def test_a_planted_link_in_place_of_a_temporary_file_is_not_followed(tmp_path: Path) -> None:
    # Someone who can write the folder links the temporary credentials file elsewhere: the
    # link is removed and the credentials are written in the folder, never through it.
    from provisioning.provision import _write_all

    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("untouched", encoding="utf-8")
    folder = tmp_path / "device"
    folder.mkdir(mode=0o700)
    (folder / ".credentials.provision.tmp").symlink_to(elsewhere)
    _write_all(folder, {"credentials": b"copier-7\nsecret\n"})
    assert elsewhere.read_text(encoding="utf-8") == "untouched"
    assert (folder / "credentials").read_bytes() == b"copier-7\nsecret\n"
    assert (folder / "credentials").stat().st_mode & 0o777 == 0o600
