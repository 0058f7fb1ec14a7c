"""Which broker a device uses first, and in what order it fails over to the others.

A site with several brokers (issue 14's fleet; docs/fleet.md) spreads its devices over them by
rendezvous hashing: each broker gets a weight from SHA-256 of ``broker|device``, and a device's
brokers are tried in falling weight. Every party computes the same order from the same names
alone (the cloud when it registers a device, the fleet simulator, a technician's check), and
adding or removing a broker moves only the devices that must move (those whose first broker it
becomes, or was), not a share of every broker's.

Pure and standalone, like the other protocol modules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def broker_order(device_id: str, brokers: Sequence[str]) -> tuple[str, ...]:
    """``brokers`` (named as the site names them: URLs, host names) in the order ``device_id``
    should use them: its home broker first, then where to fail over. Duplicates are kept once."""
    unique = list(dict.fromkeys(brokers))
    return tuple(sorted(unique, reverse=True,
                        key=lambda b: hashlib.sha256(f"{b}|{device_id}".encode()).digest()))


def home_broker(device_id: str, brokers: Sequence[str]) -> str:
    """The first of :func:`broker_order`; ValueError without brokers."""
    if not brokers:
        raise ValueError("a device needs at least one broker")
    return broker_order(device_id, brokers)[0]


__all__ = ["broker_order", "home_broker"]
