"""The one MQTT client set-up (mqtt_client) as the device and the cloud worker get it: MQTT 5,
no Nagle on the live socket, TLS verified against the site CA, jittered reconnects. The cloud
worker had neither TLS nor jitter before it shared the device's set-up."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import MQTTErrorCode
from tls_certs import ca_and_server

from cloud.worker import RECONNECT_MAX_S, CloudWorker
from device_app.link import MqttCloudLink
from mqtt_client import new_client
from protocol.address import BrokerAddress
from protocol.errors import LinkError
from simulator.broker import MosquittoBroker


class _IdleService:
    """What the worker's chores thread needs of a service when only its connection is under
    test: no message arrives, so nothing is looked up and no store is needed."""

    store = None

    def housekeeping(self) -> None:
        pass


def _no_service() -> Any:
    return _IdleService()


def test_worker_reconnects_are_jittered_and_short() -> None:
    workers = [CloudWorker(_no_service, BrokerAddress("127.0.0.1", 1, f"cloud-{i}", "pw"))
               for i in range(8)]
    delays = {w.client._reconnect_min_delay for w in workers}  # paho's backoff start
    assert len(delays) > 1 and all(0.5 <= d <= 1.5 for d in delays)
    assert {w.client._reconnect_max_delay for w in workers} == {RECONNECT_MAX_S}


def test_an_unusable_ca_file_is_a_config_error_at_once(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-ca.pem")
    for build in (lambda: new_client("c", "c", "pw", tls_ca_file=missing),
                  lambda: CloudWorker(_no_service, BrokerAddress("127.0.0.1", 1, "cloud", "pw"),
                                      tls_ca_file=missing),
                  lambda: MqttCloudLink(BrokerAddress("127.0.0.1", 1, "d1", "pw"), "d1",
                                        tls_ca_file=missing)):
        with pytest.raises(LinkError) as info:
            build()
        assert info.value.code == "config_invalid" and "no-such-ca.pem" in str(info.value)


@pytest.mark.integration
def test_worker_over_tls_verifies_the_broker_and_sets_no_delay(tmp_path: Path) -> None:
    ca, cert, key = ca_and_server(tmp_path, "site")
    other_ca, _, _ = ca_and_server(tmp_path, "other")
    broker = MosquittoBroker(tmp_path / "b", {"cloud-0": "pwc"}, cloud_users=("cloud-0",))
    broker.enable_tls(cert, key)
    broker.start()
    try:
        addr = BrokerAddress("127.0.0.1", broker.tls_port, "cloud-0", "pwc")
        worker = CloudWorker(_no_service, addr, tls_ca_file=str(ca)).start(5)
        try:
            sock = worker.client.socket()
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            worker.stop()
        stranger = CloudWorker(_no_service, addr, tls_ca_file=str(other_ca))
        with pytest.raises(LinkError):  # an unverifiable broker is never talked to
            stranger.start(2)
    finally:
        broker.stop()


def test_a_callback_that_raises_is_logged_and_the_client_goes_on_receiving(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A bug in one of our callbacks must not end paho's network thread (a copier would stay
    connected and deaf): paho logs it at ERROR through mqtt_client's logger and goes on. Its
    packet trace is not logged at all."""
    import threading

    from protocol import topics

    users = {"dev": "pw-dev", "cloud": "pw-cloud"}
    broker = MosquittoBroker(tmp_path / "b", users, cloud_users=("cloud",)).start()
    cloud = new_client("cloud", "cloud", "pw-cloud")
    got: list[bytes] = []
    second = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        got.append(bytes(msg.payload))
        if msg.payload == b"boom":
            raise RuntimeError("a bug in a callback")
        second.set()

    c = new_client("dev", "dev", "pw-dev")
    c.on_message = on_message
    c.on_subscribe = lambda *_a: subscribed.set()
    try:
        with caplog.at_level("DEBUG"):
            c.connect(broker.host, broker.port)
            c.loop_start()
            c.subscribe(topics.response_topic("dev"), qos=1)
            assert subscribed.wait(10)
            cloud.connect(broker.host, broker.port)
            cloud.loop_start()
            cloud.publish(topics.response_topic("dev"), b"boom", qos=1)
            cloud.publish(topics.response_topic("dev"), b"after", qos=1)
            assert second.wait(10), got  # the thread lived on and took the next message
        assert got == [b"boom", b"after"]
        logged = [r for r in caplog.records if r.name == "mqtt_client.paho"]
        assert any(r.levelname == "ERROR" and "a bug in a callback" in r.getMessage()
                   for r in logged), [r.getMessage() for r in logged]
        assert not [r for r in logged if r.levelname == "DEBUG"]  # no packet trace
    finally:
        for client in (c, cloud):
            client.disconnect()
            client.loop_stop()
        broker.stop()


def test_paho_saying_not_connected_after_a_clean_disconnect_is_not_logged_as_an_error(
        caplog: pytest.LogCaptureFixture) -> None:
    """paho's loop turning once more without a socket (after a disconnect from another thread)
    logs "Client is not connected" at ERROR: nothing failed, and mfd's logs must not say so.
    The same logger still carries paho's real errors (the callback test above)."""
    c = new_client("dev", "dev", "pw-dev")
    with caplog.at_level("DEBUG"):
        # paho's own loop step on a client without a socket: the path its thread takes. Not
        # disconnected by us (never connected here; an outage's failing reconnects alike):
        # said, it is news.
        assert c._loop(0.0) == MQTTErrorCode.MQTT_ERR_NO_CONN
        c.disconnect()  # ours: from here on the same words are the clean stop's noise
        assert c._loop(0.0) == MQTTErrorCode.MQTT_ERR_NO_CONN
        c._easy_log(mqtt.MQTT_LOG_ERR, "a real paho error")
    logged = [r.getMessage() for r in caplog.records if r.name == "mqtt_client.paho"]
    assert len(logged) == 2, logged
    assert logged[0].startswith("Client is not connected") and "MQTT_CS_NEW" in logged[0]
    assert logged[1] == "a real paho error"
