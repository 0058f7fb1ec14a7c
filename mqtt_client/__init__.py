"""The one MQTT client set-up the device and the cloud share: MQTT 5, no Nagle, a broker
certificate verified against the site's CA, and jittered reconnects.

It sits beside :mod:`protocol` (which it needs only for its errors) and below both
:mod:`device_app` and :mod:`cloud`, which may not import each other: each used to build its own
paho client, and the copies drifted (the cloud worker had neither jitter nor TLS). The callers
set their own callbacks on the client returned; this module sets ``on_socket_open`` only.
"""

from __future__ import annotations

import logging
import random
import socket
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from mqtt_client.properties import LeanProperties, install, publish_properties
from protocol.errors import LinkError

__all__ = ["DEFAULT_MAX_BACKOFF_S", "LeanProperties", "jitter_reconnect", "new_client",
           "publish_properties"]

# paho's decoder builds the lean properties from here on (mqtt_client/properties.py).
install()

#: The longest wait between two reconnect attempts (paho doubles the wait up to this).
DEFAULT_MAX_BACKOFF_S = 30


def new_client(client_id: str, username: str, password: str, *,
               tls_ca_file: str | None = None,
               max_backoff_s: int = DEFAULT_MAX_BACKOFF_S) -> mqtt.Client:
    """A paho client for MQTT 5, not yet connected.

    ``tls_ca_file``: ``None`` for plain TCP; otherwise TLS, the broker's certificate verified
    against that CA file (``""``: the system's CAs), never unverified. A CA file that cannot be
    used is a :class:`LinkError` with code ``config_invalid``, at once rather than at connect.
    """
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(username, password)
    c.on_socket_open = _nodelay
    # An exception in one of our callbacks is a bug, but it must not end paho's network thread
    # (a copier would stay "connected" and deaf): paho logs it (at ERROR, through this logger)
    # and goes on. Every callback of ours catches what it expects itself.
    c.suppress_exceptions = True
    c.enable_logger(_paho_logger)
    if tls_ca_file is not None:
        try:
            c.tls_set(ca_certs=tls_ca_file or None)
        except (OSError, ValueError) as exc:
            raise LinkError(f"cannot use TLS CA file {tls_ca_file!r}: {exc}",
                            code="config_invalid") from exc
    jitter_reconnect(c, max_backoff_s)
    return c


def jitter_reconnect(client: mqtt.Client, max_backoff_s: int = DEFAULT_MAX_BACKOFF_S) -> None:
    """Draw a new random first reconnect wait; call it again on each lost connection.

    paho doubles its reconnect delay from the minimum up to the maximum; a random minimum per
    outage spreads a fleet's reconnects after a broker restart (FIELD_NOTES: reconnect storms
    need jittered backoff).
    """
    client.reconnect_delay_set(random.uniform(0.5, 1.5), max_backoff_s)  # type: ignore[arg-type]


log = logging.getLogger(__name__)
#: paho's own messages: its errors and warnings (a callback's exception among them). Its packet
#: trace (DEBUG) is never logged: wire traces stay below DEBUG. Through a logger rather than
#: ``on_log``: with ``on_log`` set, paho formats every trace line for every packet (the
#: message's properties turned into text) before the callback can drop it, which measured 2 %
#: of a fleet worker's CPU; a logger formats only what it will write.
_paho_logger = logging.getLogger(f"{__name__}.paho")
_paho_logger.setLevel(logging.WARNING)


def _not_connected_noise(record: logging.LogRecord) -> bool:
    """Drop paho's "Client is not connected" (at ERROR) once we disconnected: its loop thread
    says it when it turns once more after the socket closed, which a clean ``disconnect()``
    from another thread makes it do about every other time (seen in half the stops of
    ``mfd cloud --workers 2``: an ERROR line in the log of a clean shutdown). In any other
    state (a reconnect failing through an outage) it stays: there it is news."""
    message = record.getMessage()
    return not (message.startswith("Client is not connected")
                and "Last known Connection State: MQTT_CS_DISCONNECT" in message)


_paho_logger.addFilter(_not_connected_noise)


def _nodelay(_client: Any, _userdata: Any, sock: Any) -> None:
    # Nagle plus delayed ACK costs 44-88 ms per request/response on loopback (FIELD_NOTES).
    # paho may hand over a websocket or TLS wrapper: only a real socket takes the option.
    if hasattr(sock, "setsockopt"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
