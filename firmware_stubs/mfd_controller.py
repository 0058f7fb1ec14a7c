"""An emulated MFD controller: the print engine the device app drives in tests and the simulator.

It checks every document against its SHA-256 before "printing" (a damaged document is refused,
never printed), keeps what it printed for tests to inspect, takes ``page_time`` per page on its own
thread like a real engine, and accepts injected faults (jam, no paper, door open, offline).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from dataclasses import dataclass

from protocol.engine import EngineDone, EngineJob, EngineState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PrintedJob:
    job_id: str
    name: str
    sha256: str
    size: int
    copies: int


class MfdControllerStub:
    def __init__(self, *, page_time: float = 0.0) -> None:
        self.page_time = page_time
        self._state = EngineState.READY
        self._lock = threading.Lock()
        self.printed: list[PrintedJob] = []
        self.refused: list[tuple[str, str]] = []
        self._queue: queue.Queue[tuple[EngineJob, EngineDone] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mfd-engine", daemon=True)
        self._thread.start()
        self._printed_event = threading.Condition(self._lock)

    def state(self) -> EngineState:
        with self._lock:
            return self._state

    def inject(self, state: EngineState) -> None:
        """Set a fault (or READY to clear it)."""
        with self._lock:
            self._state = state

    def submit(self, job: EngineJob, done: EngineDone) -> None:
        self._queue.put((job, done))

    def wait_printed(self, count: int, timeout: float = 5.0) -> bool:
        with self._printed_event:
            return self._printed_event.wait_for(lambda: len(self.printed) >= count, timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            job, done = item
            ok, detail = self._print(job)
            done(job.job_id, ok, detail)

    def _print(self, job: EngineJob) -> tuple[bool, str]:
        digest = hashlib.sha256(job.document).hexdigest()
        state = self.state()
        if digest != job.sha256:
            self.refused.append((job.job_id, "checksum"))
            return False, "document damaged (SHA-256 mismatch); not printed"
        if not state.can_print:
            self.refused.append((job.job_id, state.value))
            return False, f"engine {state.value}"
        with self._lock:
            self._state = EngineState.PRINTING
        # A real engine takes time per page; tests use 0.
        threading.Event().wait(self.page_time * max(1, job.copies))
        with self._printed_event:
            self.printed.append(PrintedJob(job.job_id, job.name, digest, len(job.document),
                                           job.copies))
            if self._state is EngineState.PRINTING:
                self._state = EngineState.READY
            self._printed_event.notify_all()
        log.info("engine printed job %s (%d bytes)", job.job_id, len(job.document))
        return True, ""
