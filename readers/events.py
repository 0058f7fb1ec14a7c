"""The one event every reader family produces, and the port every reader adapter implements."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

# Card numbers are identities: logs show a keyed hash instead. The key is random per process, so
# the same card reads the same within one run's log (useful for support) but cannot be looked up.
_LOG_KEY = secrets.token_bytes(16)


def mask_card(number: str) -> str:
    """A log-safe stand-in for a card number: ``card#`` and 8 hex digits of a keyed hash."""
    digest = hmac.new(_LOG_KEY, number.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"card#{digest[:8]}"


@dataclass(frozen=True, slots=True)
class CardRead:
    """A card presented to a reader, in canonical form.

    ``number`` is the canonical card number (what the user directory holds); ``raw`` the bytes the
    reader sent for it; ``reader_id`` names the reader; ``at`` is a monotonic timestamp (seconds).
    ``repr`` never shows the number in clear.
    """

    number: str = field(repr=False)
    raw: bytes = field(repr=False)
    reader_id: str
    at: float

    @property
    def masked(self) -> str:
        return mask_card(self.number)

    def __repr__(self) -> str:
        return f"CardRead({self.masked}, reader_id={self.reader_id!r}, at={self.at:.3f})"


@dataclass(slots=True)
class ReaderHealth:
    """Counters a technician reads to judge a reader: good reads, bad frames, reconnects."""

    reads: int = 0
    bad_frames: int = 0
    reconnects: int = 0
    suppressed: int = 0  # repeated reads of a card still held on the reader


CardSink = Callable[[CardRead], None]


class CardReader(Protocol):
    """Port for every reader adapter (serial, PC/SC, OSDP, replay, simulated).

    ``start`` begins delivering reads to ``sink``; the sink may be called on the adapter's own
    thread, so it must only hand the event off (put it on a queue). ``stop`` is idempotent.
    """

    reader_id: str
    health: ReaderHealth

    def start(self, sink: CardSink) -> None: ...

    def stop(self) -> None: ...
