"""The cloud's MQTT adapter: paho in, CloudService, paho out.

Workers share one subscription (``$share/cloud/...``), so the broker hands each request to one of
them and adding workers spreads the load.

Each request is handled on paho's network thread, in the callback. That departs from "callbacks
only hand off" on purpose: measured here, handing each message to a second thread cost a third
of the throughput (GIL and wake-up ping-pong on 2 cores), and the work per request is ~50 us of
store access that nothing else in this process waits for. Housekeeping runs on its own thread
with its own store connection.

Overload: a request that waited in the broker past :data:`BUSY_AFTER` is answered ``busy`` at once
instead of being done late. The wait is read from the MQTT 5 Message Expiry Interval the device
sets (:data:`protocol.topics.REQUEST_EXPIRY`): the broker hands the message over with the interval
reduced by the time it queued, in whole seconds.

Malformed input: every request with a Response Topic is answered, malformed ones with the
protocol's error; a request without one, and malformed statuses and events (which have nobody to
answer), are dropped by design and counted. The counters below are what tests and operators wait
on: a message counted was processed to the end.

The device id is read from the request's topic: the broker's ACL (``%u``) guarantees a device can
publish only under its own id. The Response Topic is checked to be that device's own reply topic,
so a device cannot aim answers at another device.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud import devices, release_orders
from cloud.service import CloudService, record_status
from cloud.storage.port import CloudStore
from mqtt_client import jitter_reconnect, new_client
from protocol import messages as m
from protocol import topics
from protocol.address import BrokerAddress
from protocol.errors import ErrorCode, LinkError, ProtocolError

log = logging.getLogger(__name__)

#: How often each worker expires held jobs and purges stale answers and sessions.
HOUSEKEEPING_INTERVAL = 30.0
#: How often each worker looks for device configs to publish.
CONFIG_PUSH_INTERVAL = 1.0
#: How often each worker looks for devices to tell that their user's jobs changed: a job sent
#: from a computer shows on the copier where its owner stands within about this long.
NOTIFY_INTERVAL = 0.2
#: A request that waited at least this long (whole seconds, from the expiry interval) is
#: answered "busy" without being done: below the devices' 3 s timeout, so the device hears
#: "busy" rather than nothing. 2 means a wait of at least 1 s, at most 2 s before the answer.
BUSY_AFTER = 2
#: Unacknowledged requests the broker may push to one worker. A backlog must wait at the broker,
#: where its wait is measured (above), not in this worker's socket buffer, where it is not.
RECEIVE_MAXIMUM = 100
#: The longest wait between two attempts to reach the broker again (it was 5 s unjittered).
RECONNECT_MAX_S = 5


class CloudWorker:
    def __init__(self, service_factory: Callable[[], CloudService], broker: BrokerAddress,
                 *, name: str | None = None, busy_after: int = BUSY_AFTER,
                 receive_maximum: int = RECEIVE_MAXIMUM,
                 tls_ca_file: str | None = None) -> None:
        self.service_factory = service_factory
        self.broker = broker
        self.name = name or broker.username
        self._stopping = threading.Event()
        self._service: CloudService | None = None  # created on paho's thread, used only there
        self.busy_after = busy_after
        self.receive_maximum = receive_maximum
        self.busy = 0
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        #: Requests answered; requests dropped (no Response Topic); statuses and events
        #: processed (recorded, ignored or dropped as malformed); messages that failed with an
        #: unexpected exception (a bug: logged with its traceback).
        self.handled = 0
        self.dropped = 0
        self.statuses = 0
        self.events = 0
        self.failed = 0
        #: Notices published ("your user's jobs changed"), one per device told.
        self.notified = 0
        #: Release orders published (a repeat counts again), and whether this worker has
        #: published every pending order once since it started.
        self.orders_pushed = 0
        self._orders_pushed = False
        # The device's set-up (MQTT 5, no Nagle, TLS, jittered reconnects), with a short
        # longest wait: a worker is one of a few, and the devices wait on it.
        c = new_client(broker.username, broker.username, broker.password,
                       tls_ca_file=tls_ca_file, max_backoff_s=RECONNECT_MAX_S)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        self.client = c

    def start(self, timeout: float = 10.0) -> CloudWorker:
        self._thread = threading.Thread(target=self._chores, name=f"chores-{self.name}",
                                        daemon=True)
        self._thread.start()
        try:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.ReceiveMaximum = self.receive_maximum
            self.client.connect(self.broker.host, self.broker.port, keepalive=30,
                                clean_start=True, properties=props)
        except OSError as exc:
            self.stop()
            raise LinkError(f"cannot reach the broker at {self.broker.host}:{self.broker.port}:"
                            f" {exc}") from exc
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.stop()
            raise LinkError(f"the broker at {self.broker.host}:{self.broker.port} did not accept "
                            f"worker {self.name}; check its username and password")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any,
                    _props: Any) -> None:
        if rc.is_failure:
            log.error("worker %s: broker refused the connection: %s", self.name, rc)
            return
        client.subscribe(topics.CLOUD_REQUEST_SUBSCRIPTION, qos=1)
        client.subscribe(topics.CLOUD_STATUS_SUBSCRIPTION, qos=1)
        client.subscribe(topics.CLOUD_EVENTS_SUBSCRIPTION, qos=1)
        log.info("worker %s connected", self.name)
        self._connected.set()

    def _on_disconnect(self, _c: Any, _ud: Any, _flags: Any, rc: Any, _props: Any) -> None:
        self._connected.clear()
        jitter_reconnect(self.client, RECONNECT_MAX_S)  # a new random first wait per outage
        if rc.is_failure:
            log.warning("worker %s lost the broker (%s); reconnecting", self.name, rc)

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        if self._service is None:
            self._service = self.service_factory()
        try:
            self._process(self._service, msg)
        except Exception:
            self.failed += 1
            log.exception("worker %s failed on a message on %s", self.name, msg.topic)

    def _chores(self) -> None:
        service = self.service_factory()
        next_housekeeping = next_push = 0.0
        while True:
            now = time.monotonic()
            try:
                if now >= next_housekeeping:
                    next_housekeeping = now + HOUSEKEEPING_INTERVAL
                    service.housekeeping()
                if now >= next_push:
                    next_push = now + CONFIG_PUSH_INTERVAL
                    self._push_configs(service)
                    self._push_orders(service)
                self._notify(service)
            except Exception:
                log.exception("worker %s: housekeeping failed; will retry", self.name)
            if self._stopping.wait(NOTIFY_INTERVAL):
                return

    def _notify(self, service: CloudService) -> None:
        """Tell each device where the owner of a newly held job is signed in, on that device's
        own notify topic (its role lets only it read there). The notice names nobody: a device
        can only re-list whoever is signed in on it."""
        if not self._connected.is_set():
            return  # the notices wait in the store until the broker is back
        payload = m.encode(m.JobsChanged())
        for device_id in service.devices_to_tell():
            # Taken from the store already: a notice lost to a disconnect here costs only the
            # prompt to re-list (the Refresh button and the same badge still do it).
            info = self.client.publish(topics.notify_topic(device_id), payload, qos=1)
            if info.rc != 0:
                log.warning("could not tell device %s its user's jobs changed (rc %s)",
                            device_id, info.rc)
                continue
            self.notified += 1
            log.debug("told device %s its user's jobs changed", device_id)

    def _push_configs(self, service: CloudService) -> None:
        """Publish every device's newest managed config, retained on its cmd topic, so the
        device gets it now or when it next connects. Several workers may publish the same
        version: the device ignores a version it already has."""
        store = service.store
        if not isinstance(store, CloudStore) or not self._connected.is_set():
            return
        for device_id, payload, version in devices.pending_pushes(store, service.clock()):
            info = self.client.publish(topics.command_topic(device_id), payload, qos=1,
                                       retain=True)
            info.wait_for_publish(5)
            with store.transaction():
                devices.mark_pushed(store, device_id, version, service.clock())
            log.info("pushed config version %d to device %s", version, device_id)

    def _push_orders(self, service: CloudService) -> None:
        """Publish the release orders the portal made (cloud/release_orders.py) on their
        devices' cmd topics, QoS 1 and not retained (an order is for the device that is
        online now; a retained one would outlive its release). The first round after the
        broker accepted this worker publishes every order not taken; later rounds those new,
        those whose device came online since, and those not taken a while after."""
        store = service.store
        if not isinstance(store, release_orders.Outbox) or not self._connected.is_set():
            return
        everything = not self._orders_pushed
        # Claimed as they are read: a publish that fails is tried again REPUSH_AFTER later.
        for release_id, device_id, payload in release_orders.pending_pushes(
                store, service.clock(), everything=everything):
            info = self.client.publish(topics.command_topic(device_id), payload, qos=1)
            if info.rc != 0:
                log.warning("could not push release order %s to device %s (rc %s)",
                            release_id, device_id, info.rc)
                continue
            self.orders_pushed += 1
            log.info("pushed release order %s to device %s", release_id, device_id)
        self._orders_pushed = True

    def _event(self, service: CloudService, device_id: str, payload: bytes) -> None:
        try:
            ack = m.decode_event(payload)
        except ProtocolError as exc:
            log.info("device %s sent a bad event: %s", device_id, exc.message)
            return
        store = service.store
        if not isinstance(store, CloudStore) or not devices.record_ack(
                store, device_id, ack, service.clock()):
            # Nothing new (a repeat, a version never pushed): not logged at warning either, or
            # a device could flood the log as it could the audit.
            log.debug("device %s: config.ack for version %d changes nothing", device_id,
                      ack.version)
            return
        if not ack.applied:
            log.warning("device %s refused config version %d: %s", device_id, ack.version,
                        devices.refusal_reason(ack))

    def _process(self, service: CloudService, msg: mqtt.MQTTMessage) -> None:
        try:
            device_id, leaf = topics.parse_device_topic(msg.topic)
        except ProtocolError:
            log.info("ignoring a message on %s", msg.topic)
            return
        if leaf == "status":
            record_status(service.store, device_id, bytes(msg.payload), service.clock())
            if isinstance(service.store, CloudStore):
                # Which engine it prints on: an emulated one must show in `mfd admin devices`.
                devices.record_engine(service.store, device_id, bytes(msg.payload),
                                      service.clock())
            self.statuses += 1
            return
        if leaf == "events":
            self._event(service, device_id, bytes(msg.payload))
            self.events += 1
            return
        payload = bytes(msg.payload)
        props = msg.properties
        reply_to = getattr(props, "ResponseTopic", None) if props else None
        correlation = getattr(props, "CorrelationData", None) if props else None
        remaining = getattr(props, "MessageExpiryInterval", None) if props else None
        waited = topics.REQUEST_EXPIRY - remaining if isinstance(remaining, int) else 0
        own = topics.response_topic(device_id)
        if reply_to is None:
            log.info("device %s sent a request without a Response Topic; dropped", device_id)
            self.dropped += 1
            return
        if reply_to != own:
            reply = m.encode_error(m.request_type_of(payload), ErrorCode.WRONG_REPLY_TOPIC,
                                   f"answers go to {own} only", "ResponseTopic")
        elif waited >= self.busy_after:
            # The device gives up after its request timeout; doing the work now would only
            # delay the requests behind this one. Say "busy" at once instead (nothing done).
            self.busy += 1
            reply = m.encode_error(m.request_type_of(payload), ErrorCode.BUSY,
                                   "the print service is busy; try again", retry_after=1)
        else:
            reply = service.handle(device_id, payload)
        # A new Properties per answer: paho keeps the object with a queued QoS 1 message and
        # packs it only when the message goes out (past its in-flight window), so a reused
        # one would carry the wrong correlation (seen: answers lost in a 20,000 burst).
        out = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if correlation is not None:
            out.CorrelationData = correlation
        self.client.publish(own, reply, qos=1, properties=out)
        self.handled += 1
