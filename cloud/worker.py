"""The cloud's MQTT adapter: paho in, CloudService, paho out.

Workers share one subscription (``$share/cloud/...``), so the broker hands each request to one of
them and adding workers spreads the load.

By default each request is handled on paho's network thread, in the callback. That departs
from "callbacks only hand off" on purpose: measured here, handing each message to a second
thread cost a third of the throughput (GIL and wake-up ping-pong on 2 cores), and the work per
request is ~50 us of SQLite access that nothing else in this process waits for. Housekeeping
runs on its own thread with its own store connection.

Lanes (``lanes=N``, ``mfd cloud --lanes N``) are for a store across a network (PostgreSQL): a
request there is several round trips of waiting (4 for a known badge, 6 for an unknown one),
and one thread doing requests one after another leaves the worker idle through them. With
lanes, requests are done on N threads of their own, each with its store connection. A device's
requests always take the same lane (by its topic), so they are done in the order it sent them,
one at a time, as before; one device's slow request holds up only the devices of its lane. A
request is acknowledged to the broker (manual acknowledgement) only once it has been answered,
and acknowledgements go out in the order the messages came (see ``_Leg.unacked``), so the
broker's Receive Maximum still bounds what a worker holds and a backlog still waits at the
broker, where its wait is measured (below); the time a request waited in its lane counts too.

Statuses are the exception: they are not shared (retained messages reach no shared
subscription), so every worker gets every device's status at every connect, a fleet's worth at
once, and written one commit each on the paho thread they held the requests behind them
(issue 14). The paho thread hands them to the worker's status thread (cloud/statuses.py), which
coalesces them per device and writes only those that change something, many in one
transaction, on its own store connection. A request never waits behind a status.

Overload: a request that waited in the broker past :data:`BUSY_AFTER` is answered ``busy`` at once
instead of being done late. The wait is read from the MQTT 5 Message Expiry Interval the device
sets (:data:`protocol.topics.REQUEST_EXPIRY`): the broker hands the message over with the interval
reduced by the time it queued, in whole seconds.

Answers: a worker may have up to :data:`ANSWERS_IN_FLIGHT` answers unacknowledged at a broker
(never more than the broker's Receive Maximum), not paho's 20: under a backlog the broker's
acknowledgements reach the worker only behind the requests queued ahead of them, and a window
of 20 held the answers in the worker while the devices timed out (issue 14).

Malformed input: every request with a Response Topic is answered, malformed ones with the
protocol's error; a request without one, and malformed statuses and events (which have nobody to
answer), are dropped by design and counted. The counters below are what tests and operators wait
on: a message counted was processed to the end.

Several brokers: a site may give its devices a list of brokers to fail over between
(device_app/link.py), so the cloud serves every one of them. A worker holds one MQTT client per
broker (a *leg*), each with its own store connection on its own paho thread, all on the same
store: a request asked again on another broker after a failover, with the same request_id, is
answered from the stored reply, as a repeat on the same broker is. Answers go out on the leg the
request came in on. Notices, config pushes and release orders go out on every leg that is
connected (the device listens on the one it is on); a config push that reached no device is
pushed again later (cloud/devices.py), so a leg that was down when it was made catches up.

The device id is read from the request's topic: the broker's ACL (``%u``) guarantees a device can
publish only under its own id. The Response Topic is checked to be that device's own reply topic,
so a device cannot aim answers at another device.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud import devices, release_orders
from cloud.service import CloudService
from cloud.statuses import StatusWriter
from cloud.storage.factory import is_postgres
from cloud.storage.port import CloudStore
from mqtt_client import jitter_reconnect, new_client, publish_properties
from mqtt_client.endpoint import BrokerEndpoint, endpoint
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
#: Answers (QoS 1) a worker may have unacknowledged at one broker, if the broker's Receive
#: Maximum allows as many. paho's default is 20: a leg whose incoming stream holds a backlog
#: reads each PUBACK only behind the requests queued ahead of it, so answers went out only as
#: fast as those came back and the rest piled up in paho, unseen by the broker's wait (measured
#: in a reconnect storm of 2,000 devices: up to 5,000 answers held on the leg of the restarted
#: broker, the devices timing out and asking again; issue 14).
ANSWERS_IN_FLIGHT = 1000
#: The keep-alive of a worker's broker connections (s). A broker notices a worker host lost to
#: the network only after 1.5 times this, and until then goes on handing it its share of the
#: requests, which the devices get answered only by asking again: measured with 30 s, 45 s of
#: answers at a third of their rate (docs/fleet.md). Not shorter than twice the longest a store
#: call may hold paho's thread (SQLite's 10 s busy timeout, without lanes), or two such waits
#: in a row would get a healthy worker dropped.
KEEPALIVE_S = 20
#: Request threads a worker may have (each holds a store connection).
MAX_LANES = 64
#: Lanes a worker has unless told (``mfd cloud --lanes``): on PostgreSQL, 4 (measured at
#: 10,000 devices, 2 workers: 9,309 requests unanswered without lanes, none with 4; BENCHMARKS.md
#: Fleet); on SQLite none, where a request is ~50 us in-process and a hand-off costs more.
NETWORK_STORE_LANES = 4


def default_lanes(store_url: str) -> int:
    """The lanes for a worker on the store at ``store_url`` (see NETWORK_STORE_LANES)."""
    return NETWORK_STORE_LANES if is_postgres(store_url) else 0
#: The longest wait between two attempts to reach the broker again (it was 5 s unjittered).
RECONNECT_MAX_S = 5


def worker_brokers(urls: Sequence[str], username: str, password: str, *,
                   ca_file: str = "") -> tuple[BrokerEndpoint, ...]:
    """The brokers a worker serves, from ``mfd cloud --broker URL [--broker URL2 ...]`` (or a
    config's list): each URL checked (mqtt:// or mqtts://, TLS against ``ca_file``), each
    broker once, the worker's account on every one. ConfigError names the offending URL."""
    from protocol.errors import ConfigError
    from protocol.redact import redact

    if not urls:
        raise ConfigError("--broker: name at least one broker (mqtt://HOST:1883)")
    out: list[BrokerEndpoint] = []
    for url in urls:
        # tcp:// is what mfd cloud always took beside mqtt://.
        plain = "mqtt://" + url[len("tcp://"):] if url.startswith("tcp://") else url
        ep = endpoint(plain, username, password, ca_file=ca_file, key="--broker")
        if any((o.host, o.port) == (ep.host, ep.port) for o in out):
            raise ConfigError(f"--broker {redact(url)!r} is given twice: name each broker once")
        out.append(ep)
    return tuple(out)


def start_workers(service_factory: Callable[[], CloudService],
                  brokers: Sequence[BrokerEndpoint], count: int = 1,
                  lanes: int = 0) -> list[CloudWorker]:
    """``count`` workers, each serving every broker of ``brokers`` (from
    :func:`worker_brokers`), with ``lanes`` request threads each (0: on paho's), started.
    With ``count`` > 1 the usernames get ``-0``, ``-1``, ... appended, as the broker's
    starting file names them. A worker that does not start stops those started before it and
    raises its LinkError."""
    if count < 1:
        raise LinkError("--workers must be at least 1", code="config_invalid")
    if not 0 <= lanes <= MAX_LANES:
        raise LinkError(f"--lanes must be between 0 and {MAX_LANES}", code="config_invalid")
    base = brokers[0].username
    workers: list[CloudWorker] = []
    try:
        for i in range(count):
            user = base if count == 1 else f"{base}-{i}"
            eps = [replace(ep, username=user) for ep in brokers]
            workers.append(CloudWorker(service_factory, eps, name=user, lanes=lanes).start())
    except BaseException:
        for worker in workers:
            worker.stop()
        raise
    return workers


@dataclass(eq=False)
class _Lane:
    """A request thread of a worker with lanes and its queue (the lane's store connection is
    made and used on that thread only). A device's requests always take the same lane, so they
    are done in the order they came, one at a time, as on a single thread."""

    index: int
    #: (request, the leg it came on, its place in that leg's acknowledgements, when queued)
    inbox: queue.SimpleQueue[tuple[mqtt.MQTTMessage, _Leg, _Ack, float] | None] = field(
        default_factory=queue.SimpleQueue)
    thread: threading.Thread | None = None


@dataclass(eq=False)
class _Ack:
    """A message of a worker with lanes, to acknowledge once done."""

    mid: int
    qos: int
    #: The leg's connection it came on (``_Leg.generation``).
    generation: int
    done: bool = False


@dataclass(eq=False)
class _Leg:
    """One broker of a worker: its client, whether it is connected, and the store connection
    used on its paho thread (created there, used only there)."""

    endpoint: BrokerEndpoint
    client: Any = None
    connected: threading.Event = field(default_factory=threading.Event)
    service: CloudService | None = None
    #: Answers this leg may have unacknowledged at its broker (see ANSWERS_IN_FLIGHT).
    window: int = ANSWERS_IN_FLIGHT
    #: With lanes: this connection's messages not acknowledged yet, in the order they came.
    #: Lanes finish out of order, but acknowledgements go out in order: Mosquitto (2.0), given
    #: them out of order, was seen to deliver a device's later requests before its earlier ones
    #: (a burst of 60 from one device: 42, 43, 46 handed over before 26). Emptied at each
    #: connection: a packet id of an earlier one may name another message now.
    unacked: collections.deque[_Ack] = field(default_factory=collections.deque)
    acking: threading.Lock = field(default_factory=threading.Lock)
    #: Counts this leg's connections, moved on when one ends: a message of an earlier
    #: connection is never acknowledged (paho would send it ahead of the next CONNECT while
    #: it reconnects, and the broker closes a connection whose first packet is not CONNECT).
    generation: int = 0

    def connection_ended(self) -> None:
        with self.acking:
            self.generation += 1
            self.unacked.clear()  # the broker forgets them with the connection

    def ack_when_done(self, ack: _Ack) -> None:
        """Mark ``ack`` done and acknowledge every message up to the first one not done."""
        with self.acking:
            ack.done = True
            if ack.generation != self.generation:
                return
            while self.unacked and self.unacked[0].done:
                first = self.unacked.popleft()
                self.client.ack(first.mid, first.qos)

    @property
    def where(self) -> str:
        return f"{self.endpoint.host}:{self.endpoint.port}"


class CloudWorker:
    def __init__(self, service_factory: Callable[[], CloudService],
                 broker: BrokerAddress | Sequence[BrokerEndpoint],
                 *, name: str | None = None, busy_after: int = BUSY_AFTER,
                 receive_maximum: int = RECEIVE_MAXIMUM,
                 tls_ca_file: str | None = None, lanes: int = 0) -> None:
        """``broker``: one broker (``tls_ca_file`` for TLS), or every broker to serve (see
        :func:`worker_brokers`), each with its own TLS setting. ``lanes``: requests are done
        on that many threads of their own (each with its store connection), chosen by device,
        instead of on the paho thread they came in on (0): see the module's "Lanes" and
        :func:`default_lanes`."""
        endpoints = ((BrokerEndpoint(broker.host, broker.port, broker.username,
                                     broker.password, tls_ca_file),)
                     if isinstance(broker, BrokerAddress) else tuple(broker))
        if not endpoints:
            raise LinkError("a worker needs a broker", code="config_invalid")
        self.service_factory = service_factory
        first = endpoints[0]
        self.broker = BrokerAddress(first.host, first.port, first.username, first.password)
        self.name = name or self.broker.username
        self._stopping = threading.Event()
        self.busy_after = busy_after
        self.receive_maximum = receive_maximum
        self.busy = 0
        # The counters below are bumped on each leg's paho thread: one lock, so that a test
        # waiting on a count never misses one.
        self._counting = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Requests answered; requests dropped (no Response Topic); statuses and events
        #: processed (recorded, ignored or dropped as malformed); messages that failed with an
        #: unexpected exception (a bug: logged with its traceback).
        self.handled = 0
        self.dropped = 0
        self.statuses = 0
        self.events = 0
        self.failed = 0
        #: The longest wait at the broker (whole seconds, from the expiry interval) of a
        #: request seen since an operator's tool last set it to 0 (diagnostics).
        self.max_waited = 0
        #: Statuses go to their own thread and store connection (cloud/statuses.py).
        self.status_writer = StatusWriter(service_factory, self._statuses_done, name=self.name)
        #: Notices published ("your user's jobs changed"), one per device told.
        self.notified = 0
        #: Release orders published (a repeat counts again), and whether this worker has
        #: published every pending order once since it started.
        self.orders_pushed = 0
        self._orders_pushed = False
        self.legs: list[_Leg] = []
        for ep in endpoints:
            # The device's set-up (MQTT 5, no Nagle, TLS, jittered reconnects), with a short
            # longest wait: a worker is one of a few, and the devices wait on it.
            leg = _Leg(ep)
            c = new_client(ep.username, ep.username, ep.password,
                           tls_ca_file=ep.tls_ca_file, max_backoff_s=RECONNECT_MAX_S)
            c.user_data_set(leg)  # each callback knows its leg
            c.max_inflight_messages_set(leg.window)
            # With lanes a request is acknowledged when it has been answered, not when paho
            # hands it over: the broker's Receive Maximum keeps bounding what a worker holds,
            # and a backlog keeps waiting at the broker, where its wait is measured.
            c.manual_ack_set(lanes > 0)
            c.on_connect = self._on_connect
            c.on_message = self._on_message
            c.on_disconnect = self._on_disconnect
            leg.client = c
            self.legs.append(leg)
        #: The first broker's client (the only one of a single-broker worker).
        self.client = self.legs[0].client
        self.lanes = [_Lane(i) for i in range(lanes)]

    def start(self, timeout: float = 10.0) -> CloudWorker:
        """Connect to every broker. Raises LinkError if none accepts this worker within
        ``timeout``; a broker that is down while another accepts is tried again in the
        background (devices may be on the others), and said in the log."""
        self._thread = threading.Thread(target=self._chores, name=f"chores-{self.name}",
                                        daemon=True)
        self._thread.start()
        self.status_writer.start()
        for lane in self.lanes:
            lane.thread = threading.Thread(target=self._lane, args=(lane,), daemon=True,
                                           name=f"lane-{lane.index}-{self.name}")
            lane.thread.start()
        errors: list[str] = []
        refused: list[_Leg] = []
        for leg in self.legs:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.ReceiveMaximum = self.receive_maximum
            try:
                leg.client.connect(leg.endpoint.host, leg.endpoint.port,
                                   keepalive=KEEPALIVE_S, clean_start=True, properties=props)
            except OSError as exc:
                errors.append(f"cannot reach the broker at {leg.where}: {exc}")
                refused.append(leg)
                if len(refused) == len(self.legs):
                    self.stop()
                    raise LinkError("; ".join(errors)) from exc
                # paho's loop keeps trying it, as after a lost connection.
                leg.client.connect_async(leg.endpoint.host, leg.endpoint.port,
                                         keepalive=KEEPALIVE_S, clean_start=True, properties=props)
            leg.client.loop_start()
        # A broker that refused the connection is not waited for (start-up is not held up by
        # one that is down); one that took it gets until ``timeout`` to accept this worker.
        deadline = time.monotonic() + timeout
        for leg in self.legs:
            if leg not in refused:
                leg.connected.wait(max(0.0, deadline - time.monotonic()))
        missing = [leg for leg in self.legs if not leg.connected.is_set()]
        if len(missing) == len(self.legs):
            self.stop()
            where = ", ".join(leg.where for leg in missing)
            raise LinkError(f"the broker at {where} did not accept worker {self.name}; check "
                            "its username and password" + "".join(f" ({e})" for e in errors))
        for leg in missing:
            log.warning("worker %s: the broker at %s is not answering yet; devices that fail "
                        "over to it are served once it does", self.name, leg.where)
        return self

    def _statuses_done(self, count: int, failed: int) -> None:
        with self._counting:
            self.statuses += count
            self.failed += failed

    def _bump(self, counter: str) -> None:
        with self._counting:
            setattr(self, counter, getattr(self, counter) + 1)

    @property
    def connected_legs(self) -> list[_Leg]:
        return [leg for leg in self.legs if leg.connected.is_set()]

    def stop(self) -> None:
        self._stopping.set()  # first: lanes skip what they still hold
        for leg in self.legs:
            leg.client.disconnect()
            leg.client.loop_stop()
        self.status_writer.stop()
        for lane in self.lanes:
            lane.inbox.put(None)
        deadline = time.monotonic() + 5
        for lane in self.lanes:
            if lane.thread is not None:
                lane.thread.join(timeout=max(0.0, deadline - time.monotonic()))
                lane.thread = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _on_connect(self, client: mqtt.Client, leg: _Leg, _flags: Any, rc: Any,
                    props: Any) -> None:
        if rc.is_failure:
            log.error("worker %s: broker %s refused the connection: %s", self.name, leg.where,
                      rc)
            return
        # As many answers in flight as this broker takes (its Receive Maximum; 65,535 when it
        # names none). paho's window is fixed for a connection: a broker that takes fewer gets
        # its own number from the next connection on. Mosquitto acknowledges QoS 1 on receipt
        # and was measured not to hold the worker to it meanwhile.
        allowed = int(getattr(props, "ReceiveMaximum", 65535) if props is not None else 65535)
        if allowed < leg.window:
            leg.window = max(1, allowed)
            log.warning("worker %s: broker %s takes %d unacknowledged messages (Receive "
                        "Maximum), fewer than the %d answers a worker keeps in flight; using "
                        "%d from its next connection (Mosquitto: max_inflight_messages 0)",
                        self.name, leg.where, allowed, ANSWERS_IN_FLIGHT, leg.window)
        client.subscribe(topics.CLOUD_REQUEST_SUBSCRIPTION, qos=1)
        client.subscribe(topics.CLOUD_STATUS_SUBSCRIPTION, qos=1)
        client.subscribe(topics.CLOUD_EVENTS_SUBSCRIPTION, qos=1)
        log.info("worker %s connected to %s", self.name, leg.where)
        leg.connected.set()

    def _on_disconnect(self, client: mqtt.Client, leg: _Leg, _flags: Any, rc: Any,
                       _props: Any) -> None:
        leg.connected.clear()
        leg.connection_ended()
        with contextlib.suppress(RuntimeError):  # paho sets it only between connections
            client.max_inflight_messages_set(leg.window)
        jitter_reconnect(client, RECONNECT_MAX_S)  # a new random first wait per outage
        if rc.is_failure:
            log.warning("worker %s lost the broker %s (%s); reconnecting", self.name,
                        leg.where, rc)

    def _on_message(self, client: mqtt.Client, leg: _Leg, msg: mqtt.MQTTMessage) -> None:
        ack: _Ack | None = None
        if self.lanes and msg.qos > 0:
            with leg.acking:
                ack = _Ack(msg.mid, msg.qos, leg.generation)
                leg.unacked.append(ack)
            if msg.topic.endswith(("/req", "/events")):
                # By device: a device's requests stay in order on one lane. Events too, so
                # that this thread never waits on the store (it must keep answering the
                # broker's pings). Only what the broker counts against its Receive Maximum
                # (QoS 1): a QoS 0 request, which no real device sends, is done here, held
                # back by TCP, rather than piling up in a lane without bound.
                lane = self.lanes[zlib.crc32(msg.topic.encode()) % len(self.lanes)]
                lane.inbox.put((msg, leg, ack, time.monotonic()))
                return
        try:
            if leg.service is None:
                leg.service = self.service_factory()
            self._process(leg.service, msg, client)
        except Exception:
            self._bump("failed")
            log.exception("worker %s failed on a message on %s", self.name, msg.topic)
        finally:
            if ack is not None:
                leg.ack_when_done(ack)

    def _lane(self, lane: _Lane) -> None:
        service: CloudService | None = None
        while (item := lane.inbox.get()) is not None:
            msg, leg, ack, since = item
            try:
                if self._stopping.is_set():
                    continue  # disconnected: the broker has forgotten it, the device resends
                if service is None:
                    service = self.service_factory()
                self._process(service, msg, leg.client, queued=time.monotonic() - since)
            except Exception:
                self._bump("failed")
                log.exception("worker %s failed on a message on %s", self.name, msg.topic)
            finally:
                leg.ack_when_done(ack)

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
        legs = self.connected_legs
        if not legs:
            return  # the notices wait in the store until a broker is back
        payload = m.encode(m.JobsChanged())
        for device_id in service.devices_to_tell():
            # Taken from the store already: a notice lost to a disconnect here costs only the
            # prompt to re-list (the Refresh button and the same badge still do it). On every
            # broker: the device listens on the one it is on.
            rcs = [leg.client.publish(topics.notify_topic(device_id), payload, qos=1).rc
                   for leg in legs]
            if all(rc != 0 for rc in rcs):
                log.warning("could not tell device %s its user's jobs changed (rc %s)",
                            device_id, rcs)
                continue
            self.notified += 1
            log.debug("told device %s its user's jobs changed", device_id)

    def _push_configs(self, service: CloudService) -> None:
        """Publish every device's newest managed config, retained on its cmd topic, so the
        device gets it now or when it next connects. Several workers may publish the same
        version: the device ignores a version it already has."""
        store = service.store
        legs = self.connected_legs
        if not isinstance(store, CloudStore) or not legs:
            return
        for device_id, payload, version in devices.pending_pushes(store, service.clock()):
            # Retained on every broker: the device may connect to any of them.
            infos = [leg.client.publish(topics.command_topic(device_id), payload, qos=1,
                                        retain=True) for leg in legs]
            for info in infos:
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
        legs = self.connected_legs
        if not isinstance(store, release_orders.Outbox) or not legs:
            return
        everything = not self._orders_pushed
        # Claimed as they are read: a publish that fails is tried again REPUSH_AFTER later.
        # On every broker: the device is on one of them, and takes an order once.
        for release_id, device_id, payload in release_orders.pending_pushes(
                store, service.clock(), everything=everything):
            rcs = [leg.client.publish(topics.command_topic(device_id), payload, qos=1).rc
                   for leg in legs]
            if all(rc != 0 for rc in rcs):
                log.warning("could not push release order %s to device %s (rc %s)",
                            release_id, device_id, rcs)
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

    def _process(self, service: CloudService, msg: mqtt.MQTTMessage,
                 client: mqtt.Client, queued: float = 0.0) -> None:
        try:
            device_id, leaf = topics.parse_device_topic(msg.topic)
        except ProtocolError:
            log.info("ignoring a message on %s", msg.topic)
            return
        if leaf == "status":
            # Handed to the status thread: every worker gets every retained status again at
            # each (re)connect, and written here they held a fleet's requests behind
            # thousands of commits (issue 14). Counted there, once written.
            self.status_writer.put(device_id, bytes(msg.payload))
            return
        if leaf == "events":
            self._event(service, device_id, bytes(msg.payload))
            self._bump("events")
            return
        payload = bytes(msg.payload)
        props = msg.properties
        reply_to = getattr(props, "ResponseTopic", None) if props else None
        correlation = getattr(props, "CorrelationData", None) if props else None
        remaining = getattr(props, "MessageExpiryInterval", None) if props else None
        waited: float = (topics.REQUEST_EXPIRY - remaining if isinstance(remaining, int) else 0)
        with self._counting:
            self.max_waited = max(self.max_waited, int(waited))
        waited += queued  # and in this worker's lane, if it has lanes
        own = topics.response_topic(device_id)
        if reply_to is None:
            log.info("device %s sent a request without a Response Topic; dropped", device_id)
            self._bump("dropped")
            return
        if reply_to != own:
            reply = m.encode_error(m.request_type_of(payload), ErrorCode.WRONG_REPLY_TOPIC,
                                   f"answers go to {own} only", "ResponseTopic")
        elif waited >= self.busy_after:
            # The device gives up after its request timeout; doing the work now would only
            # delay the requests behind this one. Say "busy" at once instead (nothing done).
            self._bump("busy")
            reply = m.encode_error(m.request_type_of(payload), ErrorCode.BUSY,
                                   "the print service is busy; try again", retry_after=1)
        else:
            reply = service.handle(device_id, payload)
        # A new Properties per answer: paho keeps the object with a queued QoS 1 message and
        # packs it only when the message goes out (past its in-flight window), so a reused
        # one would carry the wrong correlation (seen: answers lost in a 20,000 burst).
        out = publish_properties()
        if correlation is not None:
            out.CorrelationData = correlation
        client.publish(own, reply, qos=1, properties=out)  # on the broker it came from
        self._bump("handled")
