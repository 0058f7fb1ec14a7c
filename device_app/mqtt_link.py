"""The device's cloud link over MQTT 5 (paho): request/response, status, Last Will.

Requests go to ``mfd/v1/dev/<id>/req`` at QoS 1 with Response Topic and a fresh Correlation Data;
answers come back on ``.../resp`` and are matched by correlation. paho calls back on its network
thread; ``reply`` callbacks therefore run there and must only hand off (the app queues them).

A request made while the broker is unreachable fails at once with LinkError("unreachable") rather
than queueing: a person at a copier should be told now, not in a minute. A request without an
answer within ``timeout`` fails with LinkError("timeout"); a late answer is then dropped.

Status: every connection bumps ``epoch`` (milliseconds since the epoch, kept strictly increasing)
and publishes a retained "online"; the Last Will, set before each connect with the same epoch and
a short Will Delay, turns it "offline" if the device dies. The epoch rule
(protocol.messages.status_supersedes) keeps a late Will from overwriting a fresh "online".
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_app.ports import Reply
from protocol import messages as m
from protocol import topics
from protocol.address import BrokerAddress
from protocol.errors import LinkError, MfdError, ProtocolError, RemoteError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 3.0
WILL_DELAY_S = 5


def _props(**values: Any) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for k, v in values.items():
        setattr(props, k, v)
    return props


class MqttCloudLink:
    def __init__(self, broker: BrokerAddress, device_id: str, *,
                 timeout: float = DEFAULT_TIMEOUT,
                 on_connection: Callable[[bool], None] | None = None,
                 on_command: Callable[[bytes], None] | None = None,
                 tls_ca_file: str | None = None) -> None:
        self.broker = broker
        self.device_id = topics.check_device_id(device_id)
        self.timeout = timeout
        self.on_connection = on_connection
        #: Called on paho's thread with each payload on the device's cmd topic (a config push).
        self.on_command = on_command
        self.connected = False
        self.epoch = 0
        #: The print engine's kind, reported in the "online" status: a device on the emulated
        #: engine prints nothing, and the cloud must be able to see that.
        self.engine = ""
        self._pending: dict[bytes, tuple[str, Reply, float]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._connected_evt = threading.Event()
        self._resp = topics.response_topic(device_id)
        self._req = topics.request_topic(device_id)
        self._status = topics.status_topic(device_id)
        self._cmd = topics.command_topic(device_id)
        self._events = topics.events_topic(device_id)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
        c.username_pw_set(broker.username or device_id, broker.password)
        c.on_pre_connect = self._on_pre_connect
        c.on_socket_open = self._on_socket_open
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        if tls_ca_file is not None:
            # mqtts: verify the broker's certificate against the site's CA (never unverified).
            try:
                c.tls_set(ca_certs=tls_ca_file or None)
            except (OSError, ValueError) as exc:
                raise LinkError(f"cannot use TLS CA file {tls_ca_file!r}: {exc}",
                                code="config_invalid") from exc
        self.client = c
        self._jitter()
        self._reaper = threading.Thread(target=self._reap, name="mqtt-timeouts", daemon=True)

    # ------------------------------------------------------------ lifecycle

    def start(self, wait: float = 5.0) -> MqttCloudLink:
        """Connect (in the background); returns once connected or after ``wait`` seconds.

        Not being connected is not an error here: the panel shows "can't reach the print service"
        and paho keeps retrying.
        """
        self._reaper.start()
        try:
            self.client.connect_async(self.broker.host, self.broker.port, keepalive=30,
                                      clean_start=True)
        except (OSError, ValueError) as exc:
            raise LinkError(f"bad broker address {self.broker.host}:{self.broker.port}: {exc}",
                            code="config_invalid") from exc
        self.client.loop_start()
        self._connected_evt.wait(wait)
        return self

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self.connected:
            # A clean goodbye: say offline ourselves (the Will is only for dying).
            info = self.client.publish(self._status, m.encode(m.DeviceStatus(
                state="offline", epoch=self.epoch, since=time.time())), qos=1, retain=True)
            info.wait_for_publish(1.0)
        self.client.disconnect()
        self.client.loop_stop()
        self._fail_all(LinkError("the link was closed"))

    # ------------------------------------------------------------ paho callbacks

    def _jitter(self) -> None:
        # paho doubles its reconnect delay from the minimum up to the maximum; a random minimum
        # per outage spreads a fleet's reconnects after a broker restart (FIELD_NOTES:
        # reconnect storms need jittered backoff).
        self.client.reconnect_delay_set(random.uniform(0.5, 1.5), 30)  # type: ignore[arg-type]

    def _on_pre_connect(self, client: mqtt.Client, _ud: Any) -> None:
        self.epoch = max(self.epoch + 1, int(time.time() * 1000))
        will = m.encode(m.DeviceStatus(state="offline", epoch=self.epoch, since=time.time()))
        props = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
        props.WillDelayInterval = WILL_DELAY_S
        client.will_set(self._status, will, qos=1, retain=True, properties=props)

    def _on_socket_open(self, _c: Any, _ud: Any, sock: Any) -> None:
        # Nagle plus delayed ACK costs 44-88 ms per round trip on loopback (FIELD_NOTES).
        if hasattr(sock, "setsockopt"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any,
                    _props: Any) -> None:
        if rc.is_failure:
            log.error("broker refused device %s: %s", self.device_id, rc)
            return
        client.subscribe(self._resp, qos=1)
        client.subscribe(self._cmd, qos=1)
        client.publish(self._status, m.encode(m.DeviceStatus(
            state="online", epoch=self.epoch, since=time.time(), engine=self.engine)), qos=1,
            retain=True)
        self.connected = True
        self._connected_evt.set()
        log.info("device %s connected (epoch %d)", self.device_id, self.epoch)
        if self.on_connection:
            self.on_connection(True)

    def _on_disconnect(self, _c: Any, _ud: Any, _flags: Any, rc: Any, _props: Any) -> None:
        was = self.connected
        self.connected = False
        if was:
            self._jitter()
        self._connected_evt.clear()
        if not self._closed.is_set():
            log.warning("device %s lost the broker: %s", self.device_id, rc)
        self._fail_all(LinkError("the connection to the print service was lost"))
        if was and self.on_connection:
            self.on_connection(False)

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self._cmd:
            if self.on_command is not None:
                self.on_command(bytes(msg.payload))
            return
        corr = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        if corr is None:
            log.info("answer without correlation data on %s dropped", msg.topic)
            return
        with self._lock:
            entry = self._pending.pop(bytes(corr), None)
        if entry is None:
            log.debug("late or unknown answer dropped")
            return
        answering, reply, _deadline = entry
        outcome: m.Result | MfdError
        try:
            outcome = m.decode_response(bytes(msg.payload), answering)
        except (RemoteError, ProtocolError) as exc:
            outcome = exc
        reply(outcome)

    # ------------------------------------------------------------ requests

    def request(self, request: m.Request, reply: Reply, timeout: float | None = None) -> None:
        if not self.connected:
            reply(LinkError("can't reach the print service", code="unreachable"))
            return
        corr = os.urandom(12)
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._lock:
            self._pending[corr] = (request.TYPE, reply, deadline)
        self.client.publish(self._req, m.encode(request), qos=1,
                            properties=_props(ResponseTopic=self._resp, CorrelationData=corr,
                                              MessageExpiryInterval=topics.REQUEST_EXPIRY))

    def publish_event(self, event: m.Message) -> None:
        """A device event (e.g. a config acknowledgement) on ``.../events``, QoS 1."""
        self.client.publish(self._events, m.encode(event), qos=1)

    def call(self, request: m.Request, timeout: float | None = None) -> m.Result:
        done = threading.Event()
        box: list[m.Result | MfdError] = []

        def reply(outcome: m.Result | MfdError) -> None:
            box.append(outcome)
            done.set()

        self.request(request, reply, timeout)
        done.wait((timeout or self.timeout) + 1.0)
        if not box:
            raise LinkError("no answer from the print service", code="timeout")
        if isinstance(box[0], MfdError):
            raise box[0]
        return box[0]

    def _fail_all(self, error: MfdError) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for _answering, reply, _deadline in pending.values():
            reply(error)

    def _reap(self) -> None:
        while not self._closed.wait(0.05):
            now = time.monotonic()
            with self._lock:
                expired = [k for k, (_, _, d) in self._pending.items() if d <= now]
                entries = [self._pending.pop(k) for k in expired]
            for _answering, reply, _deadline in entries:
                reply(LinkError("the print service did not answer in time", code="timeout"))
