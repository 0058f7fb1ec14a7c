"""Access-code (PIN) entry as an event source: a pure key buffer and a reader-shaped adapter.

Theory of operation
-------------------
:class:`KeypadBuffer` is the whole logic, and pure: keys in, outcomes out, time passed in as
an argument (no clock is read). Keys are the strings ``"0"``-``"9"``, ``"A"``-``"Z"`` when
letters are allowed, and :class:`Key` for BACKSPACE, CLEAR and ENTER. Each key yields one
outcome:

* ``None`` -- taken (a character added or removed, the buffer cleared);
* :class:`Rejected` -- refused with a reason a panel can show: a character not on this keypad,
  a full buffer, or ENTER with too few characters;
* :class:`CodeEntry` -- ENTER with a complete code.

ENTER always empties the buffer, accepted or not: a refused code should not linger on a
shared panel, and re-typing from the start is what PIN pads do. An **inactivity timeout**
empties it too: a key (or a :meth:`~KeypadBuffer.expire` tick) arriving ``timeout_s`` or more
after the previous key starts from an empty buffer, so digits left by someone who walked away
are never completed by the next person. A clock that goes backwards expires nothing.

The code itself never leaves the buffer except inside a :class:`CodeEntry`, whose ``repr``
hides it; the panel shows :attr:`~KeypadBuffer.display`, one bullet per character.

:class:`KeypadSource` wraps a buffer in the ``start(sink)`` / ``stop()`` shape of the card
readers and hands each completed code to the sink (``DeviceApp.enter_code``); the touch UI or a
hardware PIN pad calls :meth:`KeypadSource.press`.

Note the cloud's own rule for access codes (6-10 letters or digits, case-sensitive); the
buffer's ``min_length`` defaults to 4 so that PIN-style keypads also fit, and a deployment
with cloud codes should set it to 6.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from protocol.errors import ConfigError

__all__ = ["DIGITS", "LETTERS", "MASK_CHAR", "MAX_LENGTH", "CodeEntry", "CodeSink", "Key",
           "KeyOutcome", "KeypadBuffer", "KeypadSource", "RejectReason", "Rejected"]

_log = logging.getLogger(__name__)

DIGITS = frozenset("0123456789")
LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
MASK_CHAR = "\u2022"  # bullet
#: Longest code any keypad takes: the cloud's access codes are at most 10 characters.
MAX_LENGTH = 10


class Key(StrEnum):
    """The keys that are not characters."""

    BACKSPACE = "backspace"
    CLEAR = "clear"
    ENTER = "enter"


class RejectReason(StrEnum):
    """Why a key was refused; stable strings for a panel's message table and for tests."""

    NOT_ALLOWED = "not_allowed"  # not a key of this keypad (a letter on a digits-only one)
    FULL = "full"  # the buffer already holds max_length characters
    TOO_SHORT = "too_short"  # ENTER with fewer than min_length characters (or none)
    INACTIVE = "inactive"  # KeypadSource only: pressed while the source is stopped


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectReason
    message: str


@dataclass(frozen=True, slots=True)
class CodeEntry:
    """A completed code. ``repr`` shows only its length."""

    code: str = field(repr=False)

    def __repr__(self) -> str:
        return f"CodeEntry(<{len(self.code)} chars>)"


KeyOutcome = CodeEntry | Rejected | None


class KeypadBuffer:
    """The characters typed so far; see the module docstring for the rules."""

    __slots__ = ("_chars", "_last_key", "allowed", "max_length", "min_length", "timeout_s")

    def __init__(self, *, min_length: int = 4, max_length: int = MAX_LENGTH,
                 letters: bool = False, timeout_s: float = 30.0) -> None:
        if not 1 <= max_length <= MAX_LENGTH:
            raise ConfigError(f"keypad max_length must be 1..{MAX_LENGTH}, got {max_length}")
        if not 1 <= min_length <= max_length:
            raise ConfigError(f"keypad min_length must be 1..max_length ({max_length}), "
                              f"got {min_length}")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ConfigError(f"keypad timeout_s must be a finite number > 0, got {timeout_s}")
        self.min_length = min_length
        self.max_length = max_length
        self.allowed: frozenset[str] = DIGITS | LETTERS if letters else DIGITS
        self.timeout_s = timeout_s
        self._chars: list[str] = []
        self._last_key: float | None = None

    def __len__(self) -> int:
        return len(self._chars)

    def __repr__(self) -> str:
        return f"KeypadBuffer({len(self._chars)} of {self.max_length} chars)"

    @property
    def display(self) -> str:
        """What the panel shows: one bullet per character typed."""
        return MASK_CHAR * len(self._chars)

    def press(self, key: str, now: float) -> KeyOutcome:
        """Apply one key pressed at ``now`` (seconds, any monotonic clock)."""
        self.expire(now)
        self._last_key = now
        if key == Key.ENTER:
            return self._enter()
        if key == Key.BACKSPACE:
            if self._chars:
                self._chars.pop()
            return None
        if key == Key.CLEAR:
            self._chars.clear()
            return None
        if len(key) != 1 or key not in self.allowed:
            what = "digits and letters A-Z" if LETTERS <= self.allowed else "digits"
            return Rejected(RejectReason.NOT_ALLOWED, f"this keypad takes {what} only")
        if len(self._chars) >= self.max_length:
            return Rejected(RejectReason.FULL,
                            f"a code has at most {self.max_length} characters")
        self._chars.append(key)
        return None

    def expire(self, now: float) -> bool:
        """Empty the buffer if the last key is ``timeout_s`` old at ``now``; True if it did."""
        if self._last_key is not None and now - self._last_key >= self.timeout_s:
            self._last_key = None
            had_chars = bool(self._chars)
            self._chars.clear()
            return had_chars
        return False

    def clear(self) -> None:
        self._chars.clear()
        self._last_key = None

    def _enter(self) -> CodeEntry | Rejected:
        code = "".join(self._chars)
        self._chars.clear()
        if len(code) < self.min_length:
            return Rejected(RejectReason.TOO_SHORT,
                            f"enter at least {self.min_length} characters")
        return CodeEntry(code)


#: Where a :class:`KeypadSource` delivers completed codes: ``DeviceApp.enter_code`` fits.
CodeSink = Callable[[str], None]


class KeypadSource:
    """A keypad as an input source: ``start(sink)``, ``press(key)``, ``stop()``.

    ``press`` may be called from a UI thread; a completed code is handed to the sink on that
    thread, so the sink must only enqueue (as for card readers). Keys pressed while stopped
    are refused, and stopping forgets a half-typed code.
    """

    def __init__(self, buffer: KeypadBuffer | None = None, *, source_id: str = "keypad",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.buffer = buffer if buffer is not None else KeypadBuffer()
        self.source_id = source_id
        self.codes = 0  # codes handed on, for a health display
        self._clock = clock
        self._sink: CodeSink | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "running" if self._sink is not None else "stopped"
        return f"KeypadSource({self.source_id!r}, {state})"

    @property
    def running(self) -> bool:
        return self._sink is not None

    @property
    def display(self) -> str:
        with self._lock:
            return self.buffer.display

    def start(self, sink: CodeSink) -> None:
        with self._lock:
            self._sink = sink
            self.buffer.clear()

    def stop(self) -> None:
        """Idempotent; safe to call from the sink."""
        with self._lock:
            self._sink = None
            self.buffer.clear()

    def press(self, key: str) -> KeyOutcome:
        """One key; a completed code goes to the sink and is returned as well."""
        with self._lock:
            sink = self._sink
            if sink is None:
                return Rejected(RejectReason.INACTIVE, "the keypad is not active")
            outcome = self.buffer.press(key, self._clock())
            if isinstance(outcome, CodeEntry):
                self.codes += 1
        if isinstance(outcome, CodeEntry):
            _log.debug("keypad %s: code entered (%d chars)", self.source_id, len(outcome.code))
            # Outside the lock: a sink that stops the source must not deadlock.
            sink(outcome.code)
        return outcome

    def expire(self) -> bool:
        """Apply the inactivity timeout now (call from the UI's tick); True if it cleared."""
        with self._lock:
            return self.buffer.expire(self._clock())
