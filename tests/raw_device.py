"""A copier's broker credentials in a plain paho client, for tests that speak the wire protocol
themselves: it sends whatever bytes it is given and collects the answers by correlation."""

from __future__ import annotations

import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import topics


class RawDevice:
    def __init__(self, host: str, port: int, device_id: str, password: str,
                 username: str | None = None) -> None:
        self.device_id = device_id
        self.answers: queue.Queue[tuple[bytes, bytes]] = queue.Queue()
        ready = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
        c.username_pw_set(username or device_id, password)
        c.on_message = lambda _c, _u, msg: self.answers.put(
            (bytes(msg.properties.CorrelationData),  # type: ignore[union-attr]
             bytes(msg.payload)))
        c.on_subscribe = lambda *_a: ready.set()
        c.on_connect = lambda cl, *_a: cl.subscribe(topics.response_topic(device_id), qos=1)
        c.connect(host, port)
        c.loop_start()
        assert ready.wait(10), "the raw device could not subscribe"
        self.client = c
        self._n = 0

    def request(self, payload: bytes, *, reply_to: str | None = "own") -> bytes:
        """Send ``payload`` as a request; its correlation data (answers come back with it)."""
        self._n += 1
        corr = f"{self.device_id}/{self._n}".encode()
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if reply_to is not None:
            props.ResponseTopic = topics.response_topic(self.device_id)
        props.CorrelationData = corr
        props.MessageExpiryInterval = topics.REQUEST_EXPIRY
        self.client.publish(topics.request_topic(self.device_id), payload, qos=1,
                            properties=props).wait_for_publish(5)
        return corr

    def answer(self, corr: bytes, timeout: float = 10.0) -> bytes:
        """The answer to ``corr``; answers arrive in order, so an earlier one never waits."""
        deadline = time.monotonic() + timeout
        while True:
            got, payload = self.answers.get(timeout=max(0.01, deadline - time.monotonic()))
            if got == corr:
                return payload

    def publish(self, leaf: str, payload: bytes) -> None:
        topic = f"{topics.PREFIX}/{self.device_id}/{leaf}"
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
