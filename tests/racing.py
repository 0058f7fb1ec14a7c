"""Run one piece of work on several threads at once, each on its own store connection: how the
store tests and the linking tests race two workers (or apps) for the same row."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol


class Closable(Protocol):
    def close(self) -> None: ...


def race(store: Closable, n: int, work: Callable[[int], Any], *,
         together: bool = False) -> list[Any]:
    """``work(i)`` on n threads; what each returned or raised. ``together``: the threads wait
    for each other first, so the work itself starts at the same moment. Each thread closes its
    own connection (the stores keep one per thread)."""
    results: list[Any] = [None] * n
    barrier = threading.Barrier(n, timeout=10) if together else None

    def run(i: int) -> None:
        try:
            if barrier is not None:
                barrier.wait()
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc
        finally:
            store.close()  # this thread's connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    return results
