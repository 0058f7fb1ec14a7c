"""The device's cloud link over MQTT 5 (paho): request/response, status, Last Will.

Requests go to ``mfd/v1/dev/<id>/req`` at QoS 1 with Response Topic and a fresh Correlation Data;
answers come back on ``.../resp`` and are matched by correlation. paho calls back on its network
thread; ``reply`` callbacks therefore run there and must only hand off (the app queues them).

A request made while the broker is unreachable fails at once with LinkError("unreachable") rather
than queueing: nothing was sent, and a person at a copier should be told now, not in a minute.

Once sent, a request's fate depends on whether it changes anything:

* A read (``identify``, ``jobs.list``, ``jobs.document``) without an answer within ``timeout``
  fails with LinkError("timeout"), and one in flight when the connection drops fails with
  LinkError("unreachable"): asking again is harmless, so the caller decides.
* A mutating request (one with a ``request_id``: release, delete, printed/failed reports, ...)
  has an *unknown* outcome once sent: QoS 1 may deliver it after a reconnect and the cloud then
  does it. So it is never failed on a lost connection. It stays pending and is published again,
  the same payload (same ``request_id``) under the same Correlation Data, after every
  reconnect and after every ``timeout`` without an answer; the cloud answers a repeat from its
  store, so the answer that comes is the outcome. ``busy`` or ``internal`` about one copy of a
  request sent more than once settles nothing (that copy was not done; another may be): it is
  asked again. Only if no answer settles it within ``resolve_within`` of the first send does it
  fail, with LinkError("unknown_outcome"), never "unreachable".

Several brokers (device.toml ``[broker] url`` as a list): the link is on one at a time and
moves between them as mqtt_client/failover.py decides (its module doc: the switch delay, probes
of the primary, the hysteresis). To the app a failover is a link drop and a reconnect: reads in
flight fail, mutating requests stay pending and are asked again on the new broker, same
``request_id``, same Correlation Data, and the cloud (which serves every broker from one store)
answers a repeat from its stored reply. A return to the primary is made before the secondary is
let go, and only while no read is in flight, so it cuts nothing.

Status: every connection bumps ``epoch`` (milliseconds since the epoch, kept strictly increasing)
and publishes a retained "online"; the Last Will, set before each connect with the same epoch and
a short Will Delay, turns it "offline" if the device dies. The epoch rule
(protocol.messages.status_supersedes) keeps a late Will from overwriting a fresh "online".
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_app.link_brokers import BrokerSupervision, endpoint_address
from device_app.ports import Reply
from mqtt_client import jitter_reconnect, new_client, publish_properties
from mqtt_client.endpoint import BrokerEndpoint
from mqtt_client.failover import Failover, FailoverTiming
from protocol import messages as m
from protocol import topics
from protocol.address import BrokerAddress
from protocol.errors import LinkError, MfdError, ProtocolError, RemoteError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 3.0
#: How long a mutating request in flight is kept (and sent again after reconnects) before its
#: outcome is declared unknown: long enough for a few of paho's reconnect attempts (0.5-1.5 s,
#: doubling), short enough for a person waiting at the copier.
RESOLVE_WITHIN = 20.0
#: Answers that say "not done" about one copy of a request: nothing was done and nothing stored
#: (protocol.md, Idempotency). Final for a request sent once; for one sent again, another copy
#: may still be done, so the request is kept and asked again.
INCONCLUSIVE = frozenset({"busy", "internal"})
WILL_DELAY_S = 5
#: Round-trip times kept for the technician's diagnostics (the newest).
ROUND_TRIPS_KEPT = 50
#: MQTT keep-alive: paho notices a connection that died quietly (a black hole) within one to
#: two of these, and only then can the link reconnect or fail over.
KEEPALIVE_S = 30
#: Broker moves and probe results kept for tests and diagnostics (the newest).
HISTORY_KEPT = 100


@dataclass(slots=True)
class _Pending:
    answering: str  # the request's type, for decoding its answer
    reply: Reply
    deadline: float  # of this try (monotonic)
    #: Mutating requests only: the encoded request, published again until answered, and when
    #: its outcome is declared unknown.
    payload: bytes | None = None
    resolve_by: float = 0.0
    sends: int = 1  # copies published so far
    sent_at: float = 0.0  # when the first copy was published (monotonic)


def _overdue(entry: _Pending, *, now: float) -> bool:
    return entry.deadline <= now


def _props(**values: Any) -> Properties:
    props = publish_properties()
    for k, v in values.items():
        setattr(props, k, v)
    return props


class MqttCloudLink(BrokerSupervision):
    def __init__(self, broker: BrokerAddress | Sequence[BrokerEndpoint], device_id: str, *,
                 timeout: float = DEFAULT_TIMEOUT,
                 on_connection: Callable[[bool], None] | None = None,
                 on_command: Callable[[bytes], None] | None = None,
                 tls_ca_file: str | None = None,
                 resolve_within: float = RESOLVE_WITHIN,
                 failover: FailoverTiming | None = None,
                 keepalive: int = KEEPALIVE_S) -> None:
        """``broker``: one address (with ``tls_ca_file`` for TLS), or the brokers in the order
        to try them, the first the primary, each with its own TLS setting."""
        if isinstance(broker, BrokerAddress):
            endpoints: tuple[BrokerEndpoint, ...] = (BrokerEndpoint(
                broker.host, broker.port, broker.username, broker.password, tls_ca_file),)
        else:
            endpoints = tuple(broker)
            if not endpoints:
                raise LinkError("no broker to connect to", code="config_invalid")
        self.endpoints = endpoints
        self.broker = endpoint_address(endpoints[0])
        self.device_id = topics.check_device_id(device_id)
        self.timeout = timeout
        self.resolve_within = resolve_within
        self.keepalive = keepalive
        self.on_connection = on_connection
        #: Called on paho's thread with each payload on the device's cmd topic (a config push).
        self.on_command = on_command
        #: Called on paho's thread with each payload on the device's notify topic (the cloud's
        #: "your user's jobs changed"); the app sets it (device_app/app.py).
        self.on_notify: Callable[[bytes], None] | None = None
        self.connected = False
        self.epoch = 0
        #: The print engine's kind, reported in the "online" status: a device on the emulated
        #: engine prints nothing, and the cloud must be able to see that.
        self.engine = ""
        #: Firmware versions for the "online" status (the app's, each reader's), asked at each
        #: connection: a reader may learn its version after the link was made (runner.py).
        self.firmware: Callable[[], dict[str, str]] | None = None
        self._pending: dict[bytes, _Pending] = {}
        self._round_trips: deque[float] = deque(maxlen=ROUND_TRIPS_KEPT)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._connected_evt = threading.Event()
        self._resp = topics.response_topic(device_id)
        self._req = topics.request_topic(device_id)
        self._status = topics.status_topic(device_id)
        self._cmd = topics.command_topic(device_id)
        self._notify = topics.notify_topic(device_id)
        self._events = topics.events_topic(device_id)
        self._failover = Failover(len(endpoints), failover)
        #: The index in ``endpoints`` of the broker in use, and since when (monotonic).
        self.current = 0
        #: (monotonic time, index) of every move to another broker; (time, healthy) of every
        #: probe of the primary: what tests wait on and a technician may read.
        self.moves: deque[tuple[float, int]] = deque(maxlen=HISTORY_KEPT)
        self.probes: deque[tuple[float, bool]] = deque(maxlen=HISTORY_KEPT)
        #: A return to the primary under way (its client), until when it may take, and whether
        #: a probe is under way.
        self._trial: mqtt.Client | None = None
        self._trial_until = 0.0
        self._probing = False
        #: Requests published on the current connection and not acknowledged by the broker
        #: yet (mid -> when), and acknowledgements that came before their publish was noted.
        self._unacked: dict[int, float] = {}
        self._acked_early: set[int] = set()
        self._ack_lock = threading.Lock()  # never held while calling paho
        self.client = self._client_for(endpoints[0])
        for ep in endpoints[1:]:
            # Each broker's client is made when the link moves there; a CA file that cannot be
            # used is said now, at start, as for the first (LinkError "config_invalid").
            new_client(self.device_id, ep.username or self.device_id, ep.password,
                       tls_ca_file=ep.tls_ca_file)
        self._reaper = threading.Thread(target=self._reap, name="mqtt-timeouts", daemon=True)

    def _client_for(self, ep: BrokerEndpoint) -> mqtt.Client:
        # MQTT 5, no Nagle, mqtts verified against the site's CA, jittered reconnects.
        c = new_client(self.device_id, ep.username or self.device_id,
                       ep.password, tls_ca_file=ep.tls_ca_file)
        c.on_pre_connect = self._on_pre_connect
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        return c

    def _connect(self, client: mqtt.Client, ep: BrokerEndpoint) -> None:
        try:
            client.connect_async(ep.host, ep.port, keepalive=self.keepalive,
                                 clean_start=True)
        except (OSError, ValueError) as exc:
            raise LinkError(f"bad broker address {ep.host}:{ep.port}: {exc}",
                            code="config_invalid") from exc
        client.loop_start()

    # ------------------------------------------------------------ lifecycle

    def start(self, wait: float = 5.0) -> MqttCloudLink:
        """Connect (in the background); returns once connected or after ``wait`` seconds.

        Not being connected is not an error here: the panel shows "can't reach the print service"
        and paho keeps retrying.
        """
        with self._lock:
            self._failover.connecting(time.monotonic())
        self._connect(self.client, self.endpoints[0])
        self._reaper.start()
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
        with self._lock:
            trial, self._trial = self._trial, None
        for client in (self.client, trial):
            if client is not None:
                client.disconnect()
                client.loop_stop()
        self._fail_all(LinkError("the link was closed"))

    # ------------------------------------------------------------ paho callbacks

    def _on_pre_connect(self, client: mqtt.Client, _ud: Any) -> None:
        self.epoch = max(self.epoch + 1, int(time.time() * 1000))
        will = m.encode(m.DeviceStatus(state="offline", epoch=self.epoch, since=time.time()))
        props = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
        props.WillDelayInterval = WILL_DELAY_S
        client.will_set(self._status, will, qos=1, retain=True, properties=props)

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any,
                    _props: Any) -> None:
        if rc.is_failure:
            log.error("broker %s refused device %s: %s", self._label_of(client),
                      self.device_id, rc)
            return
        with self._lock:
            if client is self._trial:
                # The primary accepted the return: it is the link from now on. The secondary
                # is let go a request timeout later, so answers on their way there still land.
                old, self.client, self._trial = self.client, client, None
                self.current = 0
                self.broker = endpoint_address(self.endpoints[0])
                self._failover.returned(time.monotonic())
                self.moves.append((time.monotonic(), 0))
                threading.Thread(target=self._retire, args=(old, self.timeout),
                                 name="mqtt-retire", daemon=True).start()
                log.info("device %s is back on its first broker %s", self.device_id,
                         self.broker_label)
            elif client is not self.client:
                return  # a client being let go: it is no longer the link
            self._failover.connected(time.monotonic())
        self._forget_acks()  # mids are per connection
        client.subscribe(self._resp, qos=1)
        client.subscribe(self._cmd, qos=1)
        client.subscribe(self._notify, qos=0)
        # After the subscriptions (the broker keeps the order): what was in flight when the
        # connection dropped is asked again, so its stored answer comes back on this one.
        self._resend(lambda p: True)
        client.publish(self._status, m.encode(self._online()), qos=1, retain=True)
        self.connected = True
        self._connected_evt.set()
        log.info("device %s connected (epoch %d)", self.device_id, self.epoch)
        if self.on_connection:
            self.on_connection(True)

    def _online(self) -> m.DeviceStatus:
        status = m.DeviceStatus(state="online", epoch=self.epoch, since=time.time(),
                                engine=self.engine)
        try:
            firmware = self.firmware() if self.firmware is not None else None
        except Exception:  # a reader's version is not worth the connection
            log.exception("device %s: cannot collect firmware versions", self.device_id)
            firmware = None
        if not firmware:
            return status
        with_fw = m.DeviceStatus(state=status.state, epoch=status.epoch, since=status.since,
                                 engine=status.engine, firmware=dict(firmware))
        try:
            return m.validate(with_fw)
        except ProtocolError as exc:
            # The cloud would drop the whole status, and the device would look offline: send
            # it without the versions, and say why.
            log.warning("device %s: firmware versions left out of the status: %s",
                        self.device_id, exc.message)
            return status

    def _on_disconnect(self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any,
                       _props: Any) -> None:
        with self._lock:
            if client is not self.client:
                return  # a probe, a return that failed or a client let go: not the link
            self._failover.lost(time.monotonic())
        was = self.connected
        self.connected = False
        if was:
            jitter_reconnect(self.client)  # a new random first wait for each outage
        self._connected_evt.clear()
        if not self._closed.is_set():
            log.warning("device %s lost the broker %s: %s", self.device_id, self.broker_label,
                        rc)
        # Reads fail now; mutating requests stay, their outcome not known yet (module doc).
        with self._lock:
            lost = {k: p for k, p in self._pending.items() if p.payload is None}
            for k in lost:
                del self._pending[k]
        for p in lost.values():
            p.reply(LinkError("the connection to the print service was lost"))
        if was and self.on_connection:
            self.on_connection(False)

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self._cmd:
            if self.on_command is not None:
                self.on_command(bytes(msg.payload))
            return
        if msg.topic == self._notify:
            if self.on_notify is not None:
                self.on_notify(bytes(msg.payload))
            return
        corr = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        if corr is None:
            log.info("answer without correlation data on %s dropped", msg.topic)
            return
        key = bytes(corr)
        with self._lock:
            entry = self._pending.get(key)
        if entry is None:
            log.debug("late or unknown answer dropped")
            return
        outcome: m.Result | MfdError
        try:
            outcome = m.decode_response(bytes(msg.payload), entry.answering)
        except (RemoteError, ProtocolError) as exc:
            outcome = exc
        now = time.monotonic()
        with self._lock:
            if (entry.sends > 1 and isinstance(outcome, RemoteError)
                    and outcome.code in INCONCLUSIVE and now < entry.resolve_by):
                # This copy was not done, but another one may be, later: only the answer of
                # one that was done (or refused for good) settles it. Asked again shortly.
                entry.deadline = now + min(self.timeout, float(outcome.retry_after or 1))
                return
            if self._pending.pop(key, None) is None:
                return  # settled meanwhile (the reaper, another copy's answer)
            if entry.sends == 1:
                # Only a request published once is timed: the answer to one sent again could
                # be to either copy (Karn's rule), and would time the reconnect, not the link.
                self._round_trips.append(now - entry.sent_at)
        entry.reply(outcome)

    def round_trips(self) -> tuple[float, ...]:
        """Seconds from request to answer of the last answered requests, oldest first (for a
        technician's diagnostics: device_app/session/diagnostics.py)."""
        with self._lock:
            return tuple(self._round_trips)

    # ------------------------------------------------------------ requests

    def request(self, request: m.Request, reply: Reply, timeout: float | None = None) -> None:
        if not self.connected:
            reply(LinkError("can't reach the print service", code="unreachable"))
            return
        corr = os.urandom(12)
        now = time.monotonic()
        payload = m.encode(request)
        entry = _Pending(request.TYPE, reply, now + (timeout or self.timeout), sent_at=now)
        if m.is_mutating(request):
            entry.payload = payload
            entry.resolve_by = now + self.resolve_within
        with self._lock:
            self._pending[corr] = entry
        self._publish(corr, payload)

    def _publish(self, corr: bytes, payload: bytes) -> None:
        client = self.client
        info = client.publish(self._req, payload, qos=1,
                              properties=_props(ResponseTopic=self._resp, CorrelationData=corr,
                                                MessageExpiryInterval=topics.REQUEST_EXPIRY))
        self._note_publish(client, info.mid)  # a silent broker is left (link_brokers.py)

    def _resend(self, due: Callable[[_Pending], bool]) -> None:
        """Publish again the mutating requests in flight that ``due`` picks: the same bytes
        under the same Correlation Data, so whichever answer comes first settles it."""
        now = time.monotonic()
        with self._lock:
            again = [(k, p.answering, p.payload) for k, p in self._pending.items()
                     if p.payload is not None and due(p)]
            for k, _, _ in again:
                self._pending[k].deadline = now + self.timeout
                self._pending[k].sends += 1
        for corr, answering, payload in again:
            assert payload is not None
            log.info("asking the print service again about a %s in flight", answering)
            self._publish(corr, payload)

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
        # Not resolve_within for a mutating request: a blocking caller (start-up reconciliation)
        # must not hold the panel that long per request, and the caller repeats it later with
        # the same request_id; a late answer then lands here unread, which is harmless.
        done.wait((timeout or self.timeout) + 1.0)
        if not box:
            raise LinkError("no answer from the print service", code="timeout")
        if isinstance(box[0], MfdError):
            raise box[0]
        return box[0]

    def _fail_all(self, error: MfdError) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for entry in pending.values():
            entry.reply(error)

    def _reap(self) -> None:
        while not self._closed.wait(0.05):
            now = time.monotonic()
            with self._lock:
                timed_out = [k for k, p in self._pending.items()
                             if p.payload is None and p.deadline <= now]
                unknown = [k for k, p in self._pending.items()
                           if p.payload is not None and p.resolve_by <= now]
                reads = [self._pending.pop(k) for k in timed_out]
                writes = [self._pending.pop(k) for k in unknown]
            for entry in reads:
                entry.reply(LinkError("the print service did not answer in time", code="timeout"))
            for entry in writes:
                entry.reply(LinkError(
                    f"no answer to {entry.answering} within {self.resolve_within:g} s; whether "
                    "the print service did it is not known", code="unknown_outcome"))
            if self.connected:
                # Connected but no answer yet: the request or its answer may be lost (a
                # connection that died quietly); the same request again is answered from the
                # cloud's store if it was done.
                self._resend(functools.partial(_overdue, now=now))
            if len(self.endpoints) > 1:
                try:
                    self._supervise(now)
                except Exception:  # this thread also times requests out: it must go on
                    log.exception("device %s: failover supervision failed; trying again",
                                  self.device_id)
