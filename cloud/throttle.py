"""Card-lookup throttling: what stops a device's credentials from enumerating badge numbers.

Theory of operation
-------------------
An ``identify`` by badge answers ``unknown_card`` or logs someone in, so every lookup tells
whether a number is a card. A real queue at a copier makes few unknown lookups (a new starter, a
wrong card, a second try); a script makes thousands a second. So each unknown badge spends a
token from two buckets, one for the device and one for its org (refilled at a steady rate up to
a burst), and a lookup that finds a bucket empty starts a **throttle** of that device (or of the
whole org) for a fixed time.

While a throttle holds, *every* badge lookup from that device (or org) is refused with the same
``throttled`` answer, before the card is looked at: were known cards still let through, "logged
in" versus "throttled" would keep telling cards from non-cards. ``retry_after`` is the time left
to the end of the throttle, and a full bucket waits at the end, so it tells the truth. A throttle
starts once (a guarded update, so several workers write one audit row), is listed for the
administrator (:func:`active`) and can be lifted early (:func:`lift`), which is audited too.

The buckets are kept in the store as a "theoretical arrival time" (GCRA): one number per bucket,
moved on by one refill interval per unknown badge and never below now; the bucket is empty when
it is more than ``burst`` intervals ahead. One atomic update per unknown badge, so workers
sharing a store agree without locks of their own.

Audit: unknown badges are not one row each (a flood would fill the log); the first one after a
quiet minute is written at once, and the rest of that minute are written as one row with their
count, by the next unknown badge or by housekeeping.

The numbers: a device may look up 10 unknown badges in a row and then one every 15 s (4 a
minute) for ever; an org 100 in a row and then 20 a minute over all its devices. So one stolen
device credential can never pause its whole org (its own bucket stops it first); that takes ten
devices at once, or six for ever. A throttle
lasts 5 minutes. Measured before this existed: one device's credentials tested 1,800 numbers a
second; now at most 10 + 4 a minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cloud.storage.port import CloudStore
from protocol.errors import StoreError


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """``burst`` unknown badges at once, then one per ``interval`` seconds; past that, card
    lookups are refused for ``duration`` seconds."""

    burst: int
    interval: float
    duration: float

    def __post_init__(self) -> None:
        if self.burst < 1 or self.interval <= 0 or self.duration <= 0:
            raise ValueError("a throttle needs burst >= 1, interval > 0 and duration > 0")
        if self.duration < self.headroom:
            # The bucket must be full again when the throttle ends, or retry_after would lie.
            raise ValueError("a throttle must last at least burst x interval")

    @property
    def headroom(self) -> float:
        """How far (seconds) a bucket's arrival time may run ahead of now: ``burst`` tokens."""
        return self.burst * self.interval


DEVICE_POLICY = ThrottlePolicy(burst=10, interval=15.0, duration=300.0)
ORG_POLICY = ThrottlePolicy(burst=100, interval=3.0, duration=300.0)
#: Badge sign-ins by *known* badges, per device: 30 at once, then 30 a minute (a queue at a
#: copier is a person every few seconds at most). Past that the device is throttled like an
#: enumerating one: a stolen device credential replaying a known badge would otherwise write a
#: session and an audit row per request (measured: 2,000 in 0.22 s).
LOGIN_POLICY = ThrottlePolicy(burst=30, interval=2.0, duration=300.0)
#: For load tests and benchmarks that send unknown badges at machine speed on purpose: a
#: bucket no burst empties. Never for a cloud that faces devices.
UNTHROTTLED = ThrottlePolicy(burst=2**40, interval=1e-9, duration=1200.0)


@dataclass(frozen=True, slots=True)
class Throttles:
    """The budgets a cloud applies to badges: unknown badges per device and per org, sign-ins
    by known badges per device."""

    device: ThrottlePolicy = DEVICE_POLICY
    org: ThrottlePolicy = ORG_POLICY
    login: ThrottlePolicy = LOGIN_POLICY


#: What a cloud that faces devices runs with.
THROTTLES = Throttles()
#: Every budget off: for load tests and benchmarks only (see UNTHROTTLED).
NO_THROTTLES = Throttles(UNTHROTTLED, UNTHROTTLED, UNTHROTTLED)
#: Unknown badges of one device are written to the audit log at most once per this long.
UNKNOWN_AUDIT_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class Throttle:
    scope: str  # "device" or "org"
    subject: str  # the device id or org id
    started_at: float
    until: float
    refused: int  # card lookups refused since it started


def active(store: CloudStore, now: float | None = None) -> list[Throttle]:
    """Every throttle in force, the one ending soonest first (for ``mfd admin throttles``)."""
    at = time.time() if now is None else now
    with store.transaction():
        return [Throttle(*row) for row in store.active_throttles(at)]


def lift(store: CloudStore, scope: str, subject: str, now: float | None = None,
         actor: str = "admin") -> Throttle:
    """End a throttle now (audited); the bucket is full again. A device or org that does not
    exist, or is not throttled, is an error, so a mistyped id does not say "lifted"."""
    if scope not in ("device", "org"):
        raise StoreError(f"scope must be device or org, not {scope!r}", code="config_invalid")
    at = time.time() if now is None else now
    with store.transaction():
        # A mistyped id is named as such, not as "not throttled", which reads as all clear.
        known = (store.device_org(subject) if scope == "device"
                 else store.org_name(subject)) is not None
        if not known:
            raise StoreError(f"no {scope} {subject}", code="not_found")
        lifted = store.lift_throttle(scope, subject, at)
        if lifted is None:
            raise StoreError(f"{scope} {subject} is not throttled (mfd admin throttles lists "
                             "those that are)", code="not_found")
        store.audit(at, actor, "throttle.lifted", f"{scope}:{subject}",
                    f"{lifted[1]} card lookup(s) refused since it started")
    return Throttle(scope, subject, lifted[0], at, lifted[1])
