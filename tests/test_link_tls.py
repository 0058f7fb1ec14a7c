"""The device link over TLS (mqtts): it verifies the broker's certificate against the site CA,
and refuses a broker it cannot verify (stays offline, says so) instead of talking in clear."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from device_app.config import parse_config
from device_app.link import MqttCloudLink
from protocol import messages as m
from protocol.address import BrokerAddress
from protocol.errors import LinkError
from simulator.broker import MosquittoBroker

pytestmark = pytest.mark.integration


def _ca_and_server(d: Path, name: str) -> tuple[Path, Path, Path]:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ca_key, ca = d / f"{name}-ca.key", d / f"{name}-ca.pem"
    key, csr, cert = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem"
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        f"/CN={name} test CA", "-keyout", str(ca_key), "-out", str(ca))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
        "-out", str(csr))
    ext = d / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(ext))
    return ca, cert, key


def test_tls_link_verifies_the_broker(tmp_path: Path) -> None:
    ca, cert, key = _ca_and_server(tmp_path, "site")
    other_ca, _, _ = _ca_and_server(tmp_path, "other")
    broker = MosquittoBroker(tmp_path / "b", {"copier-1": "pw", "cloud-0": "pwc"},
                             cloud_users=("cloud-0",))
    broker.enable_tls(cert, key)
    broker.start()
    try:
        addr = BrokerAddress("127.0.0.1", broker.tls_port, "copier-1", "pw")
        link = MqttCloudLink(addr, "copier-1", tls_ca_file=str(ca), timeout=1.0).start(5)
        try:
            assert link.connected
            with pytest.raises(LinkError) as info:
                link.call(m.Identify("card", "1"), timeout=0.5)
            assert info.value.code == "timeout"  # sent over TLS; no cloud runs to answer
        finally:
            link.close()
        stranger = MqttCloudLink(addr, "copier-1", tls_ca_file=str(other_ca)).start(2)
        try:
            assert not stranger.connected  # an unverifiable broker is never talked to
        finally:
            stranger.close()
    finally:
        broker.stop()


def test_mqtts_urls_in_device_config() -> None:
    cfg = parse_config({"device": {"id": "c1"},
                        "broker": {"url": "mqtts://broker.example:8883", "ca_file": "ca.pem"}})
    assert cfg.broker_url.startswith("mqtts://") and cfg.ca_file == "ca.pem"
