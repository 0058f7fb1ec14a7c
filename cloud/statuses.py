"""Device statuses, off the request path: handed over by the worker's paho threads, coalesced
per device, written in batches by one thread per worker on its own store connection.

Theory of operation
-------------------
Statuses are retained and their subscription is not shared (a shared subscription gets no
retained messages), so *every* worker gets *every* device's status on every connect: its own to
a broker (the whole broker's fleet at once) and each device's. A fleet of 10,000 connecting is
10,000 statuses on each worker within seconds. Handled on the paho thread like a request, each
was two durable commits (the status, the engine record), and the requests that came in on the
same connection waited behind them (issue 14; measured: 6 ms of a leg's thread, wall time, per
status on PostgreSQL with fsync on, 35 s per worker for 6,000 devices).

So the paho thread only decodes a status and :meth:`StatusWriter.put` s it, and this module's
thread writes them:

* **coalesced**: one entry per device waits, the one the epoch rule keeps
  (:func:`protocol.messages.status_supersedes`: that is the one processing them one by one in
  arrival order would have left in the store); the statuses it stands for are counted with it;
* **batched**: up to :data:`BATCH` devices in one transaction, one commit (one fsync) for the
  batch, gathered for up to :data:`LINGER` when fewer are waiting; devices in id order, so that
  two workers writing the same devices' rows lock them in the same order (no deadlock between
  their batches);
* **only what changes is written**: a status that does not supersede the known one (an older
  epoch, an ``online`` after that connection's ``offline``) and one the store already holds
  (same state, same epoch: the replay every worker gets at every connect, and the second
  worker's copy of a fresh one) write nothing. What the store holds is read for the whole
  batch in one query (``device_statuses``), and each write applies the epoch rule itself
  (``supersede_status``): two workers racing on a device, the older status written last
  changes nothing. A fresh ``online`` also writes the engine the
  device prints on (cloud/devices.py ``record_engine``), in the same transaction;
* **bounded**: at most :data:`LIMIT` devices wait. Coalescing bounds the queue by the devices
  that exist, so the limit is a guard, not a regime: past it ``put`` waits (the broker then
  holds the messages, as it does for requests) rather than grow without end;
* **retried**: a batch that fails (the database restarting) is tried again after 0.5, 1, 2 and
  4 s, newer statuses waiting meanwhile; then it is dropped, counted as failed and logged.
  Nothing is lost for good: every status is retained and comes again at the next connect.

The counter the worker keeps (``statuses``) moves when a status was processed to the end:
written, found to change nothing, or dropped as malformed. Tests and operators wait on it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cloud import devices
from cloud.storage.port import CloudStore, Store
from protocol import messages as m
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

#: Devices written in one transaction. A batch holds its devices' rows locked until it commits
#: (other writers of those rows wait that long): 500 rows are tens of milliseconds.
BATCH = 500
#: How long the thread gathers statuses before writing fewer than a batch (s): a status is
#: written at most this much later, and a fleet connecting at a few hundred a second costs a
#: few commits a second instead of one per status.
LINGER = 0.1
#: Devices whose status may wait at once (see the module docstring: a guard).
LIMIT = 100_000
#: Waits before trying a failed batch again; then it is dropped.
RETRY_WAITS = (0.5, 1.0, 2.0, 4.0)


@dataclass(slots=True)
class _Pending:
    """The status that will be written for one device, and how many statuses it stands for."""

    status: m.DeviceStatus
    payload: bytes
    count: int


def changes(known: tuple[str, int] | None, incoming: m.DeviceStatus) -> bool:
    """Whether ``incoming`` must be written over what the store knows of the device
    (``store.device_status``: None for a device that is not registered, epoch -1 for one never
    heard from). The epoch rule, minus the status the store already holds."""
    if known is None:
        return False
    if known[1] < 0:
        return True
    current = m.DeviceStatus(state=known[0], epoch=known[1])
    if (current.state, current.epoch) == (incoming.state, incoming.epoch):
        return False
    return m.status_supersedes(current, incoming)


def write_batch(store: Store, batch: list[tuple[str, m.DeviceStatus, bytes]],
                now: float) -> int:
    """Write the statuses of ``batch`` (one per device) that change something, in one durable
    transaction; how many were written."""
    written = 0
    with store.transaction():
        # What the store holds of the whole batch, in one query (or one per 500 devices).
        known = store.device_statuses([device_id for device_id, _, _ in batch])
        for device_id, status, payload in sorted(batch, key=lambda e: e[0]):
            if not changes(known.get(device_id), status):
                continue
            # Read above, but another worker may have written a newer status since: the update
            # applies the epoch rule itself, so the newer one stays.
            if not store.supersede_status(device_id, status.state, status.epoch, now):
                continue
            written += 1
            if isinstance(store, CloudStore):
                # Which engine it prints on: an emulated one must show in `mfd admin devices`.
                # Joins this transaction.
                devices.record_engine(store, device_id, payload, now)
    return written


class Service(Protocol):
    """What the status thread needs of a cloud service (cloud/service.py CloudService)."""

    @property
    def store(self) -> Store: ...
    @property
    def clock(self) -> Callable[[], float]: ...


class StatusWriter:
    """One worker's status thread. ``put`` from any thread; ``done(n, failed)`` is called on
    the status thread when ``n`` statuses were processed to the end (``failed`` of them
    dropped after a failure). ``service_factory`` is called once, on the status thread: its
    store connection is the thread's own."""

    def __init__(self, service_factory: Callable[[], Service],
                 done: Callable[[int, int], None], *, name: str = "statuses",
                 batch: int = BATCH, limit: int = LIMIT, linger: float = LINGER,
                 retry_waits: tuple[float, ...] = RETRY_WAITS) -> None:
        self.service_factory = service_factory
        self.done = done
        self.name = name
        self.batch = batch
        self.limit = limit
        self.linger = linger
        self.retry_waits = retry_waits
        self._pending: dict[str, _Pending] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._stopped = threading.Event()  # wakes a retry's wait (a put must not)
        self._thread: threading.Thread | None = None
        #: Transactions committed and statuses written (diagnostics).
        self.batches = 0
        self.written = 0

    def start(self) -> StatusWriter:
        self._thread = threading.Thread(target=self._run, name=f"statuses-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is waiting (within ``timeout``), then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def waiting(self) -> int:
        """Devices whose status waits to be written."""
        with self._cond:
            return len(self._pending)

    def put(self, device_id: str, payload: bytes) -> None:
        """Hand over a status that came in on ``device_id``'s status topic. Decoded here (a
        malformed one is counted as processed at once); the rest happens on the status
        thread."""
        try:
            status = m.decode_status(payload)
        except ProtocolError as exc:
            log.info("device %s sent a bad status: %s", device_id, exc.message)
            self.done(1, 0)
            return
        with self._cond:
            entry = self._pending.get(device_id)
            if entry is not None:
                entry.count += 1
                # What processing them in arrival order would have kept.
                if m.status_supersedes(entry.status, status):
                    entry.status, entry.payload = status, payload
                return
            while len(self._pending) >= self.limit and not self._stopping:
                self._cond.wait(0.5)
            self._pending[device_id] = _Pending(status, payload, 1)
            # Woken for the first (it sleeps on an empty queue) and for a full batch (it
            # lingers for one); not for each in between.
            if len(self._pending) in (1, self.batch):
                self._cond.notify_all()

    def _take(self) -> list[tuple[str, _Pending]] | None:
        with self._cond:
            while not self._pending and not self._stopping:
                self._cond.wait()
            if not self._pending:
                return None
            # A fleet connecting sends its statuses a few at a time: gather for a moment
            # rather than commit (and wake this thread) for each one.
            deadline = time.monotonic() + self.linger
            while len(self._pending) < self.batch and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            # The oldest first: dicts keep insertion order.
            taken = list(itertools.islice(self._pending.items(), self.batch))
            for device_id, _ in taken:
                del self._pending[device_id]
            self._cond.notify_all()  # room for a put waiting at the limit
            return taken

    def _run(self) -> None:
        service: Service | None = None
        while True:
            taken = self._take()
            if taken is None:
                return
            count = sum(p.count for _, p in taken)
            batch = [(device_id, p.status, p.payload) for device_id, p in taken]
            for attempt, wait in enumerate((*self.retry_waits, None)):
                try:
                    if service is None:
                        service = self.service_factory()
                    self.written += write_batch(service.store, batch, service.clock())
                    self.batches += 1
                    self.done(count, 0)
                    break
                except Exception:
                    if wait is None:
                        log.exception("worker %s: %d device status(es) not written; they "
                                      "come again at their next connect", self.name,
                                      len(batch))
                        self.done(count, count)
                        break
                    log.warning("worker %s: writing %d device status(es) failed (attempt %d); "
                                "trying again in %.1f s", self.name, len(batch), attempt + 1,
                                wait, exc_info=attempt == 0)
                    if self._stopped.wait(wait):
                        self.done(count, count)
                        break
