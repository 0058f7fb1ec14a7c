"""Waiting for something a test expects to happen on another thread or process: poll until it
holds or the time is up, then look once more (a last chance for what came in at the deadline)."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(predicate: Callable[[], object], timeout: float = 10.0,
               every: float = 0.01) -> bool:
    """Whether ``predicate`` came true within ``timeout`` seconds, asked every ``every``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())
