"""Release to a chosen copier: the User Portal's "print this on that copier", for a web page or
a phone that scanned the QR code on the copier's idle screen.

Theory of operation
-------------------
A release ordered here is the very release a person taps on the copier's panel
(cloud/jobs.py ``open_release``: the same checks, the same release row, every job RELEASING,
the same audit), made in one transaction with a row in ``release_orders``: an outbox. The
workers (cloud/worker.py) publish each order on its device's command topic (QoS 1, not
retained) while the device is online: at once, when the device comes online again, and every
:data:`REPUSH_AFTER` until the device *takes* it. The device's first request about the release
(a document fetched, a job's outcome reported) takes it (:func:`taken`, from cloud/service.py):
no acknowledgement of its own, since those requests are what proves the device has it.

Exactly-once rests where a panel release's does: the device journals the order's jobs before
printing them and ignores a job it journaled already, so an order pushed twice, or delivered
again by QoS 1, prints once; the cloud's job states are guarded. An order whose device never
takes it lapses like any release whose documents nobody fetched (cloud/service.py,
``RELEASE_LEASE``): its jobs go back to HELD, and the order is no longer pushed (the push
looks for a job still RELEASING).

Decisions:

* A copier that is **offline** is accepted: the order waits and is pushed when the copier
  comes back, or lapses with the lease. :class:`Copier` says whether it is online, so a page
  can warn before the user chooses it.
* A copier of **another org** is refused exactly like one that does not exist
  (``unknown_device``), as another user's job is refused like a missing one: the portal
  cannot be used to probe other orgs' copiers.
* Refusals are :class:`StoreError` with the protocol's error codes: ``invalid_field`` (no
  jobs, a job twice), ``job_not_found`` (not the user's, or no such job), ``job_not_held``
  (printed, releasing, expired, deleted), ``unknown_device``, ``not_found`` (no such user).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cloud.jobs import ReleaseStore, open_release, owned_held
from cloud.refusal import Refused, shown
from cloud.storage.port import OrgSettings, User
from protocol import messages as m
from protocol.errors import ErrorCode, StoreError

#: An order the device has not taken is published again after this long (seconds): a device
#: that was reconnecting may have missed it, and a broker restart loses it. The device ignores
#: a copy it has (its journal, or its queue of orders waiting for a signed-in user to leave).
REPUSH_AFTER = 10.0
#: Orders published per round of a worker: the rest wait for the next round.
PUSH_BATCH = 100
_EVER = float(2**53)


@dataclass(frozen=True, slots=True)
class Copier:
    """A copier the user may release to: a device of their org."""

    device_id: str
    name: str
    online: bool
    #: When the cloud last heard the device's status (seconds since the epoch; 0: never).
    last_seen: float


class OrderStore(ReleaseStore, Protocol):
    """What these use-cases ask of storage (cloud/storage/sql_release_orders.py and the
    core queries): the panel release's own view (cloud/jobs.py), and the orders; a narrow view
    of the store, kept here rather than in the port."""

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...
    def user(self, user_id: str) -> User | None: ...
    def device_org(self, device_id: str) -> str | None: ...
    def org_settings(self, org_id: str) -> OrgSettings: ...
    def org_copiers(self, org_id: str) -> list[tuple[str, str, str, float]]: ...
    def add_release_order(self, release_id: str, device_id: str, user_id: str, payload: str,
                          now: float) -> None: ...
    def release_orders_to_push(self, pushed_before: float, limit: int = 100
                               ) -> list[tuple[str, str, str, float]]: ...
    def claim_order_push(self, release_id: str, seen_pushed_at: float, now: float) -> bool: ...
    def take_release_order(self, release_id: str, device_id: str, now: float) -> bool: ...


@runtime_checkable
class Outbox(Protocol):
    """A store the workers push orders from (cloud/worker.py asks before each round)."""

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...
    def release_orders_to_push(self, pushed_before: float, limit: int = 100
                               ) -> list[tuple[str, str, str, float]]: ...
    def claim_order_push(self, release_id: str, seen_pushed_at: float, now: float) -> bool: ...


@runtime_checkable
class TakesOrders(Protocol):
    """A store that keeps release orders (the service asks before marking one taken)."""

    def take_release_order(self, release_id: str, device_id: str, now: float) -> bool: ...


def copiers_for(store: OrderStore, user_id: str) -> list[Copier]:
    """The devices of the user's org, by name; none for an unknown user."""
    with store.transaction():
        user = store.user(user_id)
        if user is None:
            return []
        rows = store.org_copiers(user.org_id)
    return [Copier(device_id, name, status == "online", at)
            for device_id, name, status, at in rows]


def release_to_device(store: OrderStore, user_id: str, job_ids: Sequence[str], device_id: str,
                      now: float) -> str:
    """Release the user's held jobs ``job_ids`` to the copier ``device_id``; returns the
    release id. Refused (:class:`StoreError` with a code, nothing written) for an empty list,
    a job listed twice, a job not the user's or not held, or a copier not of the user's org.
    The release, its order for the workers to push and the audit entry commit together."""
    ids = tuple(job_ids)
    if not ids:
        raise StoreError("choose at least one job to print", code=ErrorCode.INVALID_FIELD.value)
    with store.transaction():
        user = store.user(user_id)
        if user is None:
            raise StoreError(f"no user {user_id}", code="not_found")
        if store.device_org(device_id) != user.org_id:
            raise StoreError(f"there is no copier {device_id!r} in your organisation",
                             code=ErrorCode.UNKNOWN_DEVICE.value)
        try:
            jobs = owned_held(store, user, ids, now)
        except Refused as exc:
            raise StoreError(exc.message, code=exc.code) from None
        result = open_release(store, user, device_id, jobs, now,
                              via="ordered from the portal")
        order = m.ReleaseOrder(release_id=result.release_id, jobs=result.jobs,
                               user_name=shown(user.display_name)[:128],
                               language=user.language if m.is_language_tag(user.language)
                               else "")
        store.add_release_order(result.release_id, device_id, user.id,
                                m.encode(order).decode("utf-8"), now)
        store.audit(now, f"user:{user.id}", "release.order", result.release_id,
                    f"to device {device_id}: {len(jobs)} job(s)")
    return result.release_id


def pending_pushes(store: Outbox, now: float, *, everything: bool = False
                   ) -> list[tuple[str, str, bytes]]:
    """(release_id, device_id, payload) of the orders to publish now: never pushed, pushed
    before their device last came online, or :data:`REPUSH_AFTER` ago and not taken
    (``everything``: every order not taken, as a worker that just started publishes). Each
    is claimed for this caller as it is read: of several workers asking at once, one gets it
    (a copy more would do no harm, the device keeps one; it would only be noise)."""
    out = []
    with store.transaction():
        # "Everything": pushed before any time at all (a bound a float column holds).
        rows = store.release_orders_to_push(_EVER if everything else now - REPUSH_AFTER,
                                            PUSH_BATCH)
    for release_id, device_id, payload, pushed_at in rows:
        with store.transaction():
            if store.claim_order_push(release_id, pushed_at, now):
                out.append((release_id, device_id, payload.encode("utf-8")))
    return out


def taken(store: object, device_id: str, release_id: str, now: float) -> None:
    """The device asked about ``release_id`` (a document, an outcome): if it is an order of
    that device's, it has it, and the workers stop pushing it. Called in the request's
    transaction; a store without orders (a test's) has nothing to mark."""
    if isinstance(store, TakesOrders) and store.take_release_order(release_id, device_id, now):
        audit = getattr(store, "audit", None)
        if audit is not None:
            audit(now, f"device:{device_id}", "release.order_taken", release_id)
