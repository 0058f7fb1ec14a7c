"""A clock the test moves: the code under test is handed it where it would read the time, so
expiries, lockouts and throttles come due without the test sleeping."""

from __future__ import annotations


class Clock:
    """Reads as ``now``; the test sets or advances ``now`` to let time pass."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
