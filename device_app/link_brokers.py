"""The device link's several brokers (device.toml ``[broker] url`` a list): the part of
:class:`device_app.link.MqttCloudLink` that moves it between them, as
mqtt_client/failover.py decides, on the link's supervising thread (its request timer).

- **Failover** (``switch``): the client of the broker that is gone is let go, a new one made
  for the next broker; what is in flight is asked again there by the link's usual reconnect
  path (same request_id, same Correlation Data).
- **Probes**: one MQTT connection to the primary as the device, on a thread of its own, no Will
  and nothing subscribed; healthy if the broker accepts it in time.
- **Return** (make before break): a client for the primary is connected beside the current
  one; when the primary accepts it, it becomes the link (``MqttCloudLink._on_connect``), and the
  secondary is let go a request timeout later, so answers on their way still land.
- **Silence**: a request the broker does not acknowledge (QoS 1 PUBACK) in time drops the
  connection, as if it had died: a black hole is left while someone waits, not after the
  keep-alive.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from mqtt_client import new_client
from mqtt_client.endpoint import BrokerEndpoint
from mqtt_client.failover import Failover
from protocol.address import BrokerAddress
from protocol.errors import LinkError

log = logging.getLogger("device_app.link")

__all__ = ["BrokerSupervision", "endpoint_address"]


def endpoint_address(ep: BrokerEndpoint) -> BrokerAddress:
    return BrokerAddress(ep.host, ep.port, ep.username, ep.password)


class BrokerSupervision:
    """Mixed into MqttCloudLink, whose constructor sets all of these."""

    device_id: str
    endpoints: tuple[BrokerEndpoint, ...]
    client: mqtt.Client
    broker: BrokerAddress
    current: int
    connected: bool
    timeout: float
    moves: deque[tuple[float, int]]
    probes: deque[tuple[float, bool]]
    _lock: threading.Lock
    _closed: threading.Event
    _failover: Failover
    _pending: dict[bytes, Any]
    _trial: mqtt.Client | None
    _trial_until: float
    _probing: bool
    _unacked: dict[int, float]
    _acked_early: set[int]
    _ack_lock: threading.Lock
    _client_for: Callable[[BrokerEndpoint], mqtt.Client]
    _connect: Callable[[mqtt.Client, BrokerEndpoint], None]

    @property
    def broker_label(self) -> str:
        """The broker in use, as ``mqtt(s)://host:port`` (diagnostics, logs)."""
        return self.endpoints[self.current].label

    def _on_publish(self, client: mqtt.Client, _ud: Any, mid: int, _rc: Any,
                    _props: Any) -> None:
        if client is not self.client:
            return
        with self._ack_lock:
            if self._unacked.pop(mid, None) is None:
                if len(self._acked_early) > 1000:  # statuses and events, never noted
                    self._acked_early.clear()
                self._acked_early.add(mid)

    def _forget_acks(self) -> None:
        with self._ack_lock:
            self._unacked.clear()
            self._acked_early.clear()

    def _note_publish(self, client: mqtt.Client, mid: int) -> None:
        """A request published: watched for the broker's acknowledgement (several brokers)."""
        if len(self.endpoints) > 1 and self.connected and client is self.client:
            with self._ack_lock:
                if mid in self._acked_early:
                    self._acked_early.discard(mid)
                else:
                    self._unacked[mid] = time.monotonic()


    def _label_of(self, client: mqtt.Client) -> str:
        host, port = getattr(client, "host", "?"), getattr(client, "port", "?")
        return f"{host}:{port}"

    def _supervise(self, now: float) -> None:
        """Failover, probes and the return to the primary, as mqtt_client/failover.py says."""
        with self._ack_lock:
            oldest = min(self._unacked.values(), default=now)
        if self.connected and now - oldest >= self._failover.timing.ack_timeout:
            # The broker took a request and says nothing: a black hole. Drop the connection
            # as if it had died (paho then reports it lost, and the switch delay runs); the
            # keep-alive would notice only 30 to 60 s later.
            log.warning("device %s: broker %s has not acknowledged a request for %.0f s; "
                        "taking it as gone", self.device_id, self.broker_label, now - oldest)
            self._forget_acks()
            sock = self.client.socket()
            shutdown = getattr(sock, "shutdown", None)  # a socket, or paho's TLS wrapper
            if shutdown is not None:
                with contextlib.suppress(OSError):
                    shutdown(socket.SHUT_RDWR)
        with self._lock:
            if self._trial is not None and now >= self._trial_until:
                # The primary did not accept the return in time: a failed probe.
                stale, self._trial = self._trial, None
                self._failover.probe_result(False, now)
                self.probes.append((now, False))
                threading.Thread(target=self._retire, args=(stale, 0.0), name="mqtt-retire",
                                 daemon=True).start()
            idle = (self._trial is None and not self._probing
                    and not any(p.payload is None for p in self._pending.values()))
            action = self._failover.next_action(now, connected=self.connected, idle=idle)
            if action is None:
                return
            kind, index = action
            ep = self.endpoints[index]
            if kind == "switch":
                old, trial = self.client, self._trial
                self._trial = None
                self.client = self._client_for(ep)
                self.current = index
                self.broker = endpoint_address(ep)
                self.moves.append((now, index))
            elif kind == "probe":
                self._probing = True
            else:
                self._trial = candidate = self._client_for(ep)
                self._trial_until = now + self._failover.timing.probe_timeout
        if kind == "switch":
            log.warning("device %s: moving to broker %s (the one before did not answer)",
                        self.device_id, ep.label)
            for gone in (old, trial):
                if gone is not None:
                    threading.Thread(target=self._retire, args=(gone, 0.0),
                                     name="mqtt-retire", daemon=True).start()
            self._connect(self.client, ep)
        elif kind == "probe":
            threading.Thread(target=self._probe, args=(ep,), name="mqtt-probe",
                             daemon=True).start()
        else:
            log.info("device %s: its first broker %s looks healthy again; going back",
                     self.device_id, ep.label)
            self._connect(candidate, ep)

    def _probe(self, ep: BrokerEndpoint) -> None:
        """One MQTT connection to ``ep`` as the device (no Will, nothing subscribed): healthy if
        the broker accepts it within the probe timeout. Runs on its own thread."""
        timeout = self._failover.timing.probe_timeout
        accepted: list[bool] = []
        done = threading.Event()

        def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            accepted.append(not rc.is_failure)
            done.set()

        healthy = False
        try:
            c = new_client(f"{self.device_id}-probe", ep.username or self.device_id,
                           ep.password, tls_ca_file=ep.tls_ca_file)
            c.on_connect = on_connect
            c.connect_timeout = timeout
            c.reconnect_delay_set(3600, 3600)  # one attempt: the answer is the finding
            try:
                c.connect(ep.host, ep.port, keepalive=max(1, int(timeout)),
                          clean_start=True)
                c.loop_start()
                healthy = done.wait(timeout) and accepted[0]
            except (OSError, ValueError):
                healthy = False
            finally:
                c.disconnect()
                c.loop_stop()
        except LinkError:
            healthy = False  # a CA file that went away: not healthy, and said at connect
        now = time.monotonic()
        with self._lock:
            self._probing = False
            if self._closed.is_set():
                return
            self._failover.probe_result(healthy, now)
            self.probes.append((now, healthy))
        log.info("device %s: probe of broker %s: %s", self.device_id, ep.label,
                 "healthy" if healthy else "not answering")

    def _retire(self, client: mqtt.Client, after: float) -> None:
        """Let a client go (after ``after`` seconds): a clean DISCONNECT, so no Will."""
        if after > 0:
            self._closed.wait(after)
        client.disconnect()
        client.loop_stop()
