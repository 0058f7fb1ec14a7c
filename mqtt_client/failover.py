"""Which of a device's brokers to use now: failover to the next, and back to the first.

Theory of operation. The brokers are tried in the order the configuration lists them; the first
is the *primary*. Pure: time comes in as ``now`` and the link (device_app/link.py) does what
:meth:`Failover.next_action` says.

- **Failover.** While the current broker is not connected (connect refused, TLS refused, no
  CONNACK, keep-alive lost, a black hole that paho's keep-alive noticed), a clock runs. The
  client keeps retrying the *same* broker meanwhile, so a short drop heals where it happened,
  as it did with one broker. When the clock passes the switch delay (``switch_after``, drawn
  anew per outage between 1 and 1.5 times it: a fleet that lost the same broker does not
  stampede the next one in step), the link moves to the next broker in the list, wrapping
  around to the primary after the last, and the clock starts again there.
- **Silence.** A broker that takes a request and does not acknowledge it (QoS 1 PUBACK) within
  ``ack_timeout`` is taken as gone at once (a black hole, noticed while someone waits), rather
  than after the keep-alive (one to two keep-alive intervals, 30 to 60 s by default).
- **And back.** While connected to a secondary, the primary is probed every ``probe_every``
  (drawn between 0.75 and 1.25 times it): one MQTT connection as the device, healthy if the
  broker accepts it within ``probe_timeout``. After ``healthy_probes`` good probes in a row the
  link connects to the primary beside the secondary, moves over once the primary accepts it,
  and only then lets the secondary go (make before break: nothing in flight is cut).
- **No flapping (hysteresis).** One bad probe sets the count of good ones back to zero, so a
  primary that comes and goes is never returned to: it must answer every probe for about
  ``(healthy_probes - 1) * probe_every``. And a return that does not hold (the primary lost
  again within ``hold`` of the return) doubles the good probes needed next time, up to
  ``max_healthy_probes``; the need falls back to ``healthy_probes`` once a return has held for
  ``hold``. A failover itself is never delayed by this: a broker that is gone is left after
  the switch delay, whatever happened before.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Failover", "FailoverTiming"]


@dataclass(frozen=True, slots=True)
class FailoverTiming:
    #: Seconds without a connection to the current broker before moving to the next; the
    #: same broker is retried meanwhile (a short drop heals where it happened).
    switch_after: float = 4.0
    #: Seconds between two probes of the primary while on a secondary.
    probe_every: float = 30.0
    #: How long a probe (or the return itself) may wait for the primary's CONNACK.
    probe_timeout: float = 5.0
    #: A request the broker has not acknowledged (PUBACK) within this many seconds: the
    #: connection is taken as dead (a black hole) and dropped, which starts the switch delay.
    ack_timeout: float = 6.0
    #: Good probes in a row before going back to the primary.
    healthy_probes: int = 3
    #: A return to the primary lost again within this many seconds did not hold.
    hold: float = 120.0
    max_healthy_probes: int = 24

    def __post_init__(self) -> None:
        if min(self.switch_after, self.probe_every, self.probe_timeout, self.hold,
               self.ack_timeout) <= 0:
            raise ValueError("failover times must be positive")
        if not 1 <= self.healthy_probes <= self.max_healthy_probes:
            raise ValueError("healthy_probes must be 1 to max_healthy_probes")


class Failover:
    """The decision, over ``count`` brokers (index 0 the primary). Not thread-safe: the link
    calls it from its supervising thread and under its own lock."""

    def __init__(self, count: int, timing: FailoverTiming | None = None, *,
                 rng: Callable[[float, float], float] = random.uniform) -> None:
        if count < 1:
            raise ValueError("at least one broker")
        self.count = count
        self.timing = timing or FailoverTiming()
        self._rng = rng
        self.current = 0
        #: Since when the current broker is not connected (None: connected).
        self.down_since: float | None = None
        self._switch_delay = 0.0
        self._next_probe = 0.0
        self.good_probes = 0
        self.needed = self.timing.healthy_probes
        self._returned_at: float | None = None

    # ------------------------------------------------------------ what happened

    def connecting(self, now: float) -> None:
        """The link starts (or starts again) trying the current broker."""
        if self.down_since is None:
            self.down_since = now
            self._switch_delay = self.timing.switch_after * self._rng(1.0, 1.5)

    def connected(self, now: float) -> None:
        self.down_since = None
        if self.current != 0:
            self._schedule_probe(now)

    def lost(self, now: float) -> None:
        """The current broker's connection is gone."""
        if (self.current == 0 and self._returned_at is not None
                and now - self._returned_at < self.timing.hold):
            # A return that did not hold: ask for longer health next time.
            self.needed = min(self.needed * 2, self.timing.max_healthy_probes)
            self._returned_at = None
        self.connecting(now)

    def probe_result(self, healthy: bool, now: float) -> None:
        """A probe of the primary (or a return to it that did not connect in time)."""
        self.good_probes = self.good_probes + 1 if healthy else 0
        self._schedule_probe(now)

    def returned(self, now: float) -> None:
        """The link is on the primary again (its connection accepted)."""
        self.current = 0
        self.down_since = None
        self.good_probes = 0
        self._returned_at = now

    # ------------------------------------------------------------ what to do

    def next_action(self, now: float, *, connected: bool, idle: bool) -> tuple[str, int] | None:
        """``("switch", i)``: leave the current broker for broker ``i`` now (it is gone);
        ``("probe", 0)``: probe the primary; ``("return", 0)``: connect to the primary beside
        the current one and move over when it accepts; None: nothing now. ``connected``: the
        current broker's connection is up; ``idle``: no probe or return under way and nothing
        in flight that a move would disturb."""
        if self._returned_at is not None and now - self._returned_at >= self.timing.hold:
            self._returned_at = None  # the return held: the usual need again
            self.needed = self.timing.healthy_probes
        if not connected:
            if self.down_since is None:
                self.connecting(now)
            assert self.down_since is not None
            if self.count > 1 and now - self.down_since >= self._switch_delay:
                self.current = (self.current + 1) % self.count
                self.down_since = None
                self.good_probes = 0
                self.connecting(now)
                return ("switch", self.current)
            return None
        if self.current == 0 or not idle or now < self._next_probe:
            return None
        if self.good_probes >= self.needed:
            self.good_probes = 0
            self._next_probe = now + self.timing.probe_timeout  # the return is its own probe
            return ("return", 0)
        self._next_probe = float("inf")  # until the result comes
        return ("probe", 0)

    def _schedule_probe(self, now: float) -> None:
        self._next_probe = now + self.timing.probe_every * self._rng(0.75, 1.25)
