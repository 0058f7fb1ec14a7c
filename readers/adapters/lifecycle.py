"""The reader thread every adapter runs, and the one way a read is handed to the sink.

Each adapter reads its wire on a daemon thread of its own and calls the sink there (threads
hand off, never share: the sink only enqueues). What is the same for all of them is here, so
that it is right once:

* a fresh stop event per run: a thread of an earlier run that is still winding down keeps
  its own (set) event, and a later ``start()`` cannot revive it;
* ``stop()`` is idempotent and safe to call from the sink: on the reader thread it only sets
  the event (the loop ends after this read) instead of joining itself;
* a thread that does not end in time (only a sink that blocks, or a driver call that cannot
  be cancelled, gets there) is reported and let go: it is a daemon, it cannot keep the
  process alive;
* a sink that raises costs that read, not the reader thread and every read after it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from protocol.errors import ReaderError
from readers.events import CardRead, CardSink

__all__ = ["JOIN_TIMEOUT_S", "ReaderThread", "hand_over"]

#: How long ``stop()`` waits for the reader thread before it reports it and lets it go.
JOIN_TIMEOUT_S = 2.0


class ReaderThread:
    """One adapter's reader thread, across its runs. ``log`` is the adapter's logger."""

    def __init__(self, reader_id: str, log: logging.Logger, *, name: str = "reader",
                 join_timeout_s: float = JOIN_TIMEOUT_S) -> None:
        self.reader_id = reader_id
        self._log = log
        self._name = f"{name}-{reader_id}"
        self._join_timeout_s = join_timeout_s
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def started(self) -> bool:
        """Started and not yet stopped (the thread may have ended on its own)."""
        return self._thread is not None

    def on_thread(self) -> bool:
        """Whether the caller is the reader thread itself (for instance, inside the sink)."""
        return self._thread is threading.current_thread()

    def refuse_if_running(self) -> None:
        """:class:`ReaderError` if a run is under way; call before opening anything."""
        if self.running:
            raise ReaderError(f"reader {self.reader_id!r} is already started")

    def start(self, run: Callable[[threading.Event], None]) -> None:
        """Start ``run(stopping)`` on a new daemon thread, with a stop event of its own."""
        self.stopping = stopping = threading.Event()
        self._thread = threading.Thread(target=run, args=(stopping,), name=self._name,
                                        daemon=True)
        self._thread.start()

    def stop(self, *, wake: Callable[[], None] | None = None, wake_every_s: float = 0.05,
             in_sink: Callable[[], bool] | None = None,
             blocked_by: str = "blocked sink?") -> bool:
        """Set the stop event and wait for the thread; True if this ended a run.

        ``wake`` (repeated every ``wake_every_s``: a wake that lands between two waits wakes
        nothing) interrupts a thread blocked in a library call. ``in_sink`` says whether the
        caller is inside the sink when that is not simply the reader thread (a replay's sink
        runs on the serial adapter's thread). ``blocked_by`` ends the warning with the likely
        cause.
        """
        thread = self._thread
        self.stopping.set()
        if thread is None:
            return False
        if thread is threading.current_thread() or (in_sink is not None and in_sink()):
            return False  # called from the sink: the loop ends after this read
        if wake is None:
            thread.join(self._join_timeout_s)
        else:
            deadline = time.monotonic() + self._join_timeout_s
            while thread.is_alive() and time.monotonic() < deadline:
                wake()
                thread.join(wake_every_s)
        if thread.is_alive():
            self._log.warning("reader %s: reader thread did not stop within %.1f s (%s)",
                              self.reader_id, self._join_timeout_s, blocked_by)
        self._thread = None
        return True


def hand_over(sink: CardSink, read: CardRead, log: logging.Logger) -> None:
    """Call the sink with ``read``; a sink that fails costs this read, not the thread."""
    try:
        sink(read)
    except Exception:
        # A sink should only enqueue; losing this read beats losing the reader thread.
        log.exception("reader %s: card sink failed; read %s dropped",
                      read.reader_id, read.masked)
