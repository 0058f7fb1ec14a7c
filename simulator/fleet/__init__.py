"""A fleet of lightweight simulated copiers, for the fleet benchmark and its tests (issue 14).

Theory of operation
-------------------
* :mod:`simulator.fleet.device`: N devices in one process on one asyncio loop (gmqtt, MQTT 5,
  no thread per device), each with the cycle of a real copier: keep-alive, a badge now and then
  (``identify`` with its user's card, the first page of jobs in the answer), the job list,
  sometimes a release (chunks fetched, SHA-256 checked, ``jobs.printed``), logout. Every
  request is timed and kept until answered; the devices keep their own print records.
* :mod:`simulator.fleet.cluster`: the rest of the world as separate processes, so that a kill
  is a real kill: K private Mosquittos (one dynsec account per device, on its own broker), a
  private PostgreSQL (initdb in a temporary directory: the machine's own is never restarted),
  W cloud workers (:mod:`cloud.worker_process`, the process ``mfd cloud --workers N`` runs), and
  the device processes; CPU seconds per process read from ``/proc/PID/stat``.

Broker assignment is :func:`broker_for`: rendezvous (highest random weight) hashing of the
device id over the brokers' names. It is stable (the same id always lands on the same broker,
in every process, on every host: SHA-256, not Python's salted ``hash``), spreads devices evenly,
and adding a broker moves only the devices that the new broker wins (about 1/(K+1) of them),
where ``hash % K`` would move almost all.
"""

from __future__ import annotations

from collections.abc import Sequence

from protocol.assignment import home_broker

__all__ = ["broker_for", "card_of", "device_id"]


def broker_for(device_id: str, brokers: Sequence[str]) -> str:
    """The broker (one of ``brokers``, named as the site names them: a host name, a URL) that
    ``device_id`` connects to: the one with the highest SHA-256 weight of ``broker|device``."""
    return home_broker(device_id, brokers)  # the cloud hands the same out at registration


def device_id(index: int) -> str:
    """The fleet's device ids: ``fleet-00042``."""
    return f"fleet-{index:05d}"


def card_of(index: int) -> str:
    """The badge of device ``index``'s user, as a reader gives it (10 decimal digits). Each
    device has its own user, so releases never race between devices and every job has one
    owner to count against."""
    return f"{3_000_000_000 + index:010d}"
