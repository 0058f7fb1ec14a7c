"""The device link's outcomes (device_app/link.py) through the private Mosquitto, with a
scripted responder in the cloud's place: a read times out; a mutating request is asked again
with the same request_id until an answer says what happened, and a ``busy`` about one copy of a
request sent twice does not settle it (the other copy may be done)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import Broker
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_app.link import MqttCloudLink
from protocol import messages as m
from protocol import topics
from protocol.errors import LinkError, MfdError, RemoteError

pytestmark = pytest.mark.integration

DEVICE = "copier-2"

#: What the responder does with the n-th copy it receives: None (no answer) or a payload maker.
Script = Callable[[int, m.Request], bytes | None]


class Responder:
    """Stands where the cloud's worker stands (a cloud account), answering as scripted."""

    def __init__(self, broker: Broker, script: Script) -> None:
        self.script = script
        self.received: queue.Queue[m.Request] = queue.Queue()
        self._count = 0
        address = broker.address("cloud-1")
        self._ready = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cloud-1", protocol=mqtt.MQTTv5)
        c.username_pw_set(address.username, address.password)
        c.on_connect = lambda cl, *_: cl.subscribe(topics.request_topic(DEVICE), qos=1)
        c.on_subscribe = lambda *_: self._ready.set()
        c.on_message = self._on_message
        c.connect(address.host, address.port)
        c.loop_start()
        assert self._ready.wait(5)
        self.client = c

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        request = m.decode_request(bytes(msg.payload))
        self._count += 1
        self.received.put(request)
        payload = self.script(self._count, request)
        if payload is None:
            return
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.CorrelationData = msg.properties.CorrelationData  # type: ignore[union-attr]
        self.client.publish(msg.properties.ResponseTopic, payload, qos=1,  # type: ignore[union-attr]
                            properties=props)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def link(broker: Broker) -> Iterator[MqttCloudLink]:
    lk = MqttCloudLink(broker.address(DEVICE), DEVICE, timeout=0.5, resolve_within=4.0).start()
    assert lk.connected
    yield lk
    lk.close()


def outcome_of(link: MqttCloudLink, request: m.Request, wait: float = 10
               ) -> m.Result | MfdError:
    box: queue.Queue[m.Result | MfdError] = queue.Queue()
    link.request(request, box.put)
    return box.get(timeout=wait)


RELEASE = m.Release(request_id="rq-0001", session="tok", job_ids=("j1",))
BUSY = m.encode_error(m.Release.TYPE, "busy", "the print service is busy; try again",
                      retry_after=1)
DONE = m.encode_result(m.ReleaseResult("rel-1", ()), m.Release.TYPE)


def test_a_read_without_an_answer_times_out(broker: Broker, link: MqttCloudLink) -> None:
    responder = Responder(broker, lambda n, r: None)
    try:
        outcome = outcome_of(link, m.ListJobs(session="tok"))
        assert isinstance(outcome, LinkError) and outcome.code == "timeout"
        assert responder.received.get(timeout=1) == m.ListJobs(session="tok")
        assert responder.received.empty()  # a read is never sent again by the link
    finally:
        responder.close()


def test_a_mutating_request_unanswered_is_sent_again_and_its_answer_settles_it(
        broker: Broker, link: MqttCloudLink) -> None:
    # The first copy's answer is lost; the second gets the (stored) answer.
    responder = Responder(broker, lambda n, r: None if n == 1 else DONE)
    try:
        outcome = outcome_of(link, RELEASE)
        assert outcome == m.ReleaseResult("rel-1", ())
        first, second = responder.received.get(timeout=1), responder.received.get(timeout=1)
        assert first == second == RELEASE  # the same request_id: the cloud's store answers
    finally:
        responder.close()


def test_busy_about_one_copy_of_a_request_sent_twice_does_not_settle_it(
        broker: Broker, link: MqttCloudLink) -> None:
    # Copy 1 unanswered, copy 2 answered busy (not done), copy 3 done: done is the outcome;
    # "busy" would have told the user nothing happened while the cloud did it.
    responder = Responder(broker, lambda n, r: {1: None, 2: BUSY}.get(n, DONE))
    try:
        assert outcome_of(link, RELEASE) == m.ReleaseResult("rel-1", ())
        assert [responder.received.get(timeout=1) for _ in range(3)] == [RELEASE] * 3
    finally:
        responder.close()


def test_busy_to_a_request_sent_once_is_its_outcome(broker: Broker,
                                                    link: MqttCloudLink) -> None:
    responder = Responder(broker, lambda n, r: BUSY)
    try:
        outcome = outcome_of(link, RELEASE)
        assert isinstance(outcome, RemoteError) and outcome.code == "busy"
        assert outcome.retry_after == 1
    finally:
        responder.close()


def test_a_mutating_request_never_answered_has_an_unknown_outcome(
        broker: Broker, link: MqttCloudLink) -> None:
    responder = Responder(broker, lambda n, r: None)
    try:
        outcome = outcome_of(link, RELEASE)
        assert isinstance(outcome, LinkError) and outcome.code == "unknown_outcome"
        copies = responder.received.qsize()
        assert copies >= 3  # asked again every 0.5 s for 4 s
    finally:
        responder.close()
