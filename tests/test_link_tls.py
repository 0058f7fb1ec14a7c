"""The device link over TLS (mqtts): it verifies the broker's certificate against the site CA,
and refuses a broker it cannot verify (stays offline, says so) instead of talking in clear."""

from __future__ import annotations

from pathlib import Path

import pytest
from tls_certs import ca_and_server

from device_app.config import parse_config
from device_app.link import MqttCloudLink
from protocol import messages as m
from protocol.address import BrokerAddress
from protocol.errors import LinkError
from simulator.broker import MosquittoBroker

pytestmark = pytest.mark.integration


def test_tls_link_verifies_the_broker(tmp_path: Path) -> None:
    ca, cert, key = ca_and_server(tmp_path, "site")
    other_ca, _, _ = ca_and_server(tmp_path, "other")
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
