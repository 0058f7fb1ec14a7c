"""Relative paths in device.toml are relative to device.toml's folder, not to the folder the
device was started from (issue 11): a device started by a service manager, or by a technician
standing elsewhere, must find its CA and its engine socket. Each test starts from another
working directory and uses the real part the path is for: a TLS Mosquitto verified against the
CA, the engine server behind its socket."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tls_certs import ca_and_server

from device_app.config import load_config
from device_app.engines.registry import open_engine
from device_app.runner import from_config_file
from firmware_stubs.engine_server import EngineServer
from firmware_stubs.mfd_controller import MfdControllerStub
from mfdkit.cli import main
from protocol.engine import EngineState
from simulator.broker import MosquittoBroker

pytestmark = pytest.mark.integration

DEVICE_TOML = """\
[device]
id = "copier-p"

[broker]
url = "{url}"
ca_file = "{ca_file}"

[engine]
kind = "{kind}"
uri = "{uri}"
"""


def write_config(directory: Path, *, url: str = "mqtt://127.0.0.1:1883", ca_file: str = "",
                 kind: str = "emulator", uri: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "device.toml"
    path.write_text(DEVICE_TOML.format(url=url, ca_file=ca_file, kind=kind, uri=uri))
    return path


def test_relative_paths_resolve_beside_device_toml_and_absolute_ones_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    folder = tmp_path / "etc-mfd"
    cfg = load_config(write_config(folder, ca_file="certs/site-ca.pem", kind="socket",
                                   uri="run/engine.sock"))
    assert cfg.ca_file == str(folder / "certs" / "site-ca.pem")
    assert cfg.engine.uri == str(folder / "run" / "engine.sock")
    assert cfg.credentials_file == str(folder / "credentials")
    absolute = tmp_path / "pki" / "ca.pem"
    cfg = load_config(write_config(folder, ca_file=str(absolute), kind="socket",
                                   uri=str(tmp_path / "engine.sock")))
    assert (cfg.ca_file, cfg.engine.uri) == (str(absolute), str(tmp_path / "engine.sock"))
    # No ca_file: the system CAs, not a folder taken for a CA file.
    assert load_config(write_config(folder)).ca_file == ""
    # An IPP printer's URI is no path.
    cfg = load_config(write_config(folder, kind="ipp", uri="ipp://printer.test/ipp/print"))
    assert cfg.engine.uri == "ipp://printer.test/ipp/print"


def test_device_started_elsewhere_verifies_the_broker_with_its_relative_ca(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert, key = ca_and_server(tmp_path, "site")
    tls = MosquittoBroker(tmp_path / "b", {"copier-p": "pw-p", "cloud-0": "pwc"},
                          cloud_users=("cloud-0",))
    tls.enable_tls(cert, key)
    tls.start()
    try:
        url = f"mqtts://127.0.0.1:{tls.tls_port}"
        (tmp_path / "pw").write_text("pw-p\n")
        # Provisioned: ca_file is written as the bare "ca.pem" beside device.toml ...
        assert main(["provision", str(tmp_path / "staged"), "--device-id", "copier-p",
                     "--broker", url, "--ca", str(ca), "--username", "copier-p",
                     "--password-file", str(tmp_path / "pw"), "--engine", "emulator",
                     "--ledger", str(tmp_path / "ledger.jsonl")]) == 0
        text = (tmp_path / "staged" / "device.toml").read_text()
        assert 'ca_file = "ca.pem"' in text
        # ... so the folder may move (a mounted image copied to the device) and the device
        # be started from anywhere else: it still finds its CA and verifies the broker.
        installed = tmp_path / "installed" / "mfd"
        shutil.move(tmp_path / "staged", installed)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        device = from_config_file(installed / "device.toml", engine=MfdControllerStub()).start()
        try:
            assert device.link.connected
            assert device.cfg.ca_file == str(installed / "ca.pem")
        finally:
            device.stop()
    finally:
        tls.stop()


def test_engine_socket_relative_to_device_toml(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "etc-mfd"
    path = write_config(folder, kind="socket", uri="engine.sock")
    server = EngineServer(folder / "engine.sock", tmp_path / "engine-state").start()
    try:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        engine = open_engine(load_config(path).engine)
        try:
            assert engine.state() is EngineState.READY
        finally:
            engine.close()
    finally:
        server.stop()
