"""Suppress the repeated reads of a card held on a reader. Pure: time arrives as an argument.

Theory of operation
-------------------
Many readers (RDM6300, most 125 kHz modules) report a card again and again while it stays in
the field. To the release station each report would look like a fresh tap -- and a fresh tap
by the logged-in user means "log out". So a read of a card is *accepted* only if that card
has not been seen for ``window_s`` seconds; every read, accepted or not, restarts that card's
window. Holding a card on the reader therefore yields one accepted read, however long it is
held; lifting it for longer than the window and tapping again yields another.

The window is per card, not global: a *different* card is accepted at once (the TWN4 and
pcProx lock-out behave the same way), so a second user is never made to wait.

Memory: cards are kept in least-recently-seen order. Entries older than the window can no
longer suppress anything and are dropped as time moves on; ``max_cards`` caps the rest, so a
stream of distinct numbers (a fuzzing test, a broken reader) cannot grow the table. Evicting
a card early can only let one repeated read through, which is the safe direction.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from protocol.errors import ConfigError

__all__ = ["Debouncer"]


class Debouncer:
    """``accept(number, now)`` is True for a read to act on, False for a held card's repeat.

    ``now`` must come from a monotonic clock (seconds); wall-clock jumps would hold a card
    back or let repeats through.
    """

    __slots__ = ("_last_seen", "max_cards", "window_s")

    def __init__(self, window_s: float = 2.0, *, max_cards: int = 256) -> None:
        if not (math.isfinite(window_s) and window_s >= 0):
            raise ValueError(f"debounce window must be a finite number >= 0 s, got {window_s}")
        if max_cards < 1:
            raise ValueError(f"max_cards must be at least 1, got {max_cards}")
        self.window_s = window_s
        self.max_cards = max_cards
        self._last_seen: OrderedDict[str, float] = OrderedDict()

    @classmethod
    def for_lockout(cls, lockout_s: float, reader: str) -> Debouncer:
        """A reader's held-card window from its configuration: a bad one is a
        :class:`ConfigError` naming ``reader`` (e.g. "serial reader") and its lockout."""
        try:
            return cls(lockout_s)
        except ValueError as exc:
            raise ConfigError(f"{reader} lockout: {exc}") from exc

    def __len__(self) -> int:
        """Cards currently remembered (for tests and health displays)."""
        return len(self._last_seen)

    def accept(self, number: str, now: float) -> bool:
        self._forget_expired(now)
        last = self._last_seen.pop(number, None)
        # Re-inserting moves the card to the newest end, keeping the order by last sighting.
        self._last_seen[number] = now
        if len(self._last_seen) > self.max_cards:
            self._last_seen.popitem(last=False)
        return last is None or now - last >= self.window_s

    def _forget_expired(self, now: float) -> None:
        # Oldest first, so stop at the first card still inside its window. The test is the
        # same expression as in accept(), so forgetting a card never changes a decision even
        # where float rounding makes ``now - seen >= w`` and ``seen <= now - w`` disagree.
        while self._last_seen:
            number, seen = next(iter(self._last_seen.items()))
            if now - seen < self.window_s:
                return
            del self._last_seen[number]
