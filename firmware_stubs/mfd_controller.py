"""An emulated MFD controller: the print engine the device app drives in tests and the simulator.

Theory of operation
-------------------
:class:`EngineCore` is the engine itself; two hosts wrap it. :class:`MfdControllerStub` runs it
in the app's process (tests, the simulator); firmware_stubs/engine_server.py runs it as its own
process behind a Unix socket, so it outlives a crashed device app like a real controller does.

Each job is named by its engine id (protocol.engine.engine_id). The engine:

* records every job it accepts, prints or fails (with a state directory: a JSON-lines log,
  ``engine-log.jsonl``, fsynced before a job prints and when it is done), so "did you print job
  X?" has an answer after either side restarts;
* checks every document against its SHA-256 before printing (a damaged one fails, never prints);
* prints as many pages as the document has, times its copies (firmware_stubs.pdf_pages reads the
  PDF's page tree; a document it cannot read counts one page a copy), ``page_time`` a page, on
  its own thread, like a real engine. Digest and page count are read from the document once,
  in pieces, when the job's turn to print comes, on the engine's thread (a document may be a
  spool file hundreds of MB long: the hand-over is not held up by reading it, and the host
  keeps it readable until the job's outcome); the document itself is never copied;
* after each page calls ``on_page`` with the job's engine id and the impressions done so far
  (device_app.ports.ReportsPages), outside its lock and before the job's outcome;
* refuses an engine id it has seen before: it never prints the same hand-over twice;
* answers :meth:`EngineCore.outcome` ``UNKNOWN`` only as a promise: the id is fenced, so a
  hand-over that arrives after the question (still in a socket buffer of a dead app) is refused;
* accepts injected faults (jam, no paper, door open, offline), at once or armed to strike after
  n pages of the first job that gets that far (pages counted as above, copies included), which
  fails that job before output; and a *hold* that keeps accepted jobs queued, so a test can
  catch the engine between "accepted" and "printed";
* on start, fails jobs a previous run accepted but never finished ("engine restarted before
  output"): a real controller loses its queue on a power cycle too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_app.engines import registry
from device_app.ports import EnginePages
from firmware_stubs.pdf_pages import pdf_page_count
from protocol.engine import Document, EngineDone, EngineJob, EngineOutcome, EngineState
from protocol.errors import EngineError

log = logging.getLogger(__name__)

LOG_NAME = "engine-log.jsonl"


@dataclass(frozen=True, slots=True)
class PrintedJob:
    job_id: str
    name: str
    sha256: str
    size: int
    copies: int
    engine_id: str = ""


@dataclass(frozen=True, slots=True)
class _Read:
    """What the engine took from a document when it accepted the job."""

    sha256: str
    pages: int  # one copy's; 1 for a document whose page tree it cannot read
    size: int


#: A page-tree node is far shorter than this: pieces are read with this much of the previous
#: one before them, so a node cut by a piece boundary is seen whole in the next.
_OVERLAP = 4096


def read_document(document: Document) -> _Read:
    """Digest and pages of ``document`` in one pass, in pieces (bounded memory).
    pdf_page_count on each piece with the tail of the one before; the largest count wins, as
    it does over a whole document (the root counts every page)."""
    digest = hashlib.sha256()
    best = 0
    tail = b""
    pdf: bool | None = None
    for piece in document.chunks():
        digest.update(piece)
        window = tail + piece
        if pdf is None:
            pdf = window.startswith(b"%PDF-")
        if pdf:
            # The header is the whole document's, not this piece's: say it again for the count.
            best = max(best, pdf_page_count(window if not tail else b"%PDF-" + window) or 0)
        tail = window[-_OVERLAP:]
    return _Read(digest.hexdigest(), best or 1, document.size)


@dataclass(slots=True)
class _Record:
    outcome: EngineOutcome
    detail: str = ""


#: (engine id, cloud job id, outcome printed/failed, detail), on the engine's thread.
CoreDone = Callable[[str, str, EngineOutcome, str], None]
#: (engine id, impressions done so far), on the engine's thread, never with its lock held.
PageDone = Callable[[str, int], None]


class EngineCore:
    def __init__(self, *, page_time: float = 0.0, state_dir: str | os.PathLike[str] | None = None,
                 on_done: CoreDone | None = None, on_page: PageDone | None = None) -> None:
        self.page_time = page_time
        self.on_done = on_done
        self.on_page = on_page
        self._cond = threading.Condition()
        self._state = EngineState.READY
        self._armed: tuple[EngineState, int] | None = None
        self._held = False
        self._closed = False
        self._jobs: dict[str, _Record] = {}
        self._queue: deque[EngineJob] = deque()
        self.printed: list[PrintedJob] = []
        self.refused: list[tuple[str, str]] = []
        self._log_file = None
        self._unsynced = False
        if state_dir is not None:
            path = Path(state_dir)
            path.mkdir(parents=True, exist_ok=True)
            self._replay(path / LOG_NAME)
            self._log_file = open(path / LOG_NAME, "a", encoding="utf-8")
            for engine_id, rec in self._jobs.items():
                if rec.outcome is EngineOutcome.PRINTING:
                    rec.outcome, rec.detail = EngineOutcome.FAILED, "engine restarted before output"
                    self._append({"ev": "failed", "id": engine_id, "detail": rec.detail})
        self._thread = threading.Thread(target=self._run, name="mfd-engine", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ persistence

    def _replay(self, path: Path) -> None:
        if not path.exists():
            return
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                # Only the last line can be torn (power cut mid-append); what it said never
                # took effect, because nothing acts on a record before it is synced.
                log.warning("engine log %s line %d is torn; ignored", path, n)
                continue
            ev, engine_id = rec.get("ev"), rec.get("id", "")
            if ev == "accepted":
                self._jobs[engine_id] = _Record(EngineOutcome.PRINTING)
            elif ev == "fenced":
                self._jobs[engine_id] = _Record(EngineOutcome.UNKNOWN, "fenced")
            elif ev == "printed":
                self._jobs[engine_id] = _Record(EngineOutcome.PRINTED)
                self.printed.append(_printed_from(rec))
            elif ev == "failed":
                self._jobs[engine_id] = _Record(EngineOutcome.FAILED, rec.get("detail", ""))

    def _append(self, record: dict[str, Any], *, sync: bool = True) -> None:
        # Called with the condition held: records are written in the order things happened.
        if self._log_file is None:
            return
        self._log_file.write(json.dumps({"t": time.time(), **record}) + "\n")
        self._log_file.flush()  # in the OS now: survives this process being killed
        if sync:
            os.fsync(self._log_file.fileno())
        self._unsynced = not sync

    def _sync(self) -> None:
        if self._log_file is not None and self._unsynced:
            os.fsync(self._log_file.fileno())
            self._unsynced = False

    # ------------------------------------------------------------ the engine's face

    def state(self) -> EngineState:
        with self._cond:
            return self._state

    def inject(self, state: EngineState, *, after_pages: int | None = None) -> None:
        """Set a fault now (or READY to clear it), or arm it to strike the first job that gets
        to ``after_pages`` pages (a job's pages are its document's pages times its copies): that
        job's count stops there and it fails before output; a shorter job prints."""
        with self._cond:
            if after_pages is not None:
                self._armed = (state, after_pages)
            else:
                self._state = state
                if state is EngineState.READY:
                    self._armed = None
            self._cond.notify_all()

    def hold(self, on: bool) -> None:
        with self._cond:
            self._held = on
            self._cond.notify_all()

    def submit(self, job: EngineJob) -> None:
        """Accept ``job`` (durably, before returning) or raise EngineError("duplicate_job")."""
        key = job.engine_id
        with self._cond:
            if self._closed:
                raise EngineError("the engine is shutting down", code="engine_closed")
            known = self._jobs.get(key)
            if known is not None:
                self.refused.append((job.job_id, "duplicate"))
                if known.outcome is EngineOutcome.UNKNOWN:
                    raise EngineError(f"job {key} was reported unknown to this engine before it "
                                      "arrived; a late hand-over is never printed",
                                      code="duplicate_job")
                raise EngineError(f"job {key} was handed to this engine before; it is not "
                                  "printed twice", code="duplicate_job")
            # Synced lazily, before the job's first sheet moves (see _print): a power cut
            # before that loses the record, and the engine then answers UNKNOWN for a job it
            # indeed never printed. A killed engine process loses nothing (flushed to the OS).
            self._append({"ev": "accepted", "id": key, "job_id": job.job_id, "name": job.name,
                          "sha256": job.sha256, "size": job.body.size,
                          "copies": job.copies}, sync=False)
            self._jobs[key] = _Record(EngineOutcome.PRINTING)
            self._queue.append(job)
            self._cond.notify_all()

    def outcome(self, engine_id: str) -> tuple[EngineOutcome, str]:
        with self._cond:
            rec = self._jobs.get(engine_id)
            if rec is None:
                # The promise behind UNKNOWN: this id will never be printed now.
                self._append({"ev": "fenced", "id": engine_id})
                self._jobs[engine_id] = rec = _Record(EngineOutcome.UNKNOWN, "fenced")
            return rec.outcome, rec.detail

    def wait_printed(self, count: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.printed) >= count, timeout)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Until no accepted job is waiting or printing."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not any(r.outcome is EngineOutcome.PRINTING
                                for r in self._jobs.values()), timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=2)
        with self._cond:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    # ------------------------------------------------------------ the engine's insides

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or (self._queue and not self._held))
                if self._closed:
                    return
                job = self._queue.popleft()
            try:
                read: _Read | None = read_document(job.body)  # without the lock: it may be large
            except OSError as exc:
                log.error("engine cannot read the document of %s: %s", job.engine_id, exc)
                read = None
            outcome, detail = self._print(job, read)
            if self.on_done is not None:
                try:
                    self.on_done(job.engine_id, job.job_id, outcome, detail)
                except Exception:
                    log.exception("engine outcome callback failed for %s", job.engine_id)

    def _finish(self, job: EngineJob, outcome: EngineOutcome, detail: str,
                why: str = "") -> tuple[EngineOutcome, str]:
        # Called with the condition held.
        key = job.engine_id
        if outcome is EngineOutcome.PRINTED:
            printed = PrintedJob(job.job_id, job.name, job.sha256, job.body.size, job.copies,
                                 key)
            self._append({"ev": "printed", "id": key, "job_id": job.job_id, "name": job.name,
                          "sha256": job.sha256, "size": printed.size, "copies": job.copies})
            self.printed.append(printed)
        else:
            self._append({"ev": "failed", "id": key, "detail": detail})
            self.refused.append((job.job_id, why))
        self._jobs[key] = _Record(outcome, detail)
        if self._state is EngineState.PRINTING:
            self._state = EngineState.READY
        self._cond.notify_all()
        return outcome, detail

    def _print(self, job: EngineJob, read: _Read | None) -> tuple[EngineOutcome, str]:
        with self._cond:
            if read is None:
                return self._finish(job, EngineOutcome.FAILED,
                                    "the document could not be read; not printed", "unreadable")
            if read.sha256 != job.sha256:
                return self._finish(job, EngineOutcome.FAILED,
                                    "document damaged (SHA-256 mismatch); not printed",
                                    "checksum")
            if not self._state.can_print:
                return self._finish(job, EngineOutcome.FAILED,
                                    f"engine {self._state.value}; not printed", self._state.value)
            self._sync()
            self._state = EngineState.PRINTING
            pages = read.pages * max(1, job.copies)
            for page in range(pages):
                if self._armed is not None and self._armed[1] <= page:
                    self._state, self._armed = self._armed[0], None
                if not self._state.can_print:
                    # Sheets still in the paper path never reach the tray: the job failed
                    # before output and goes back to its owner.
                    state = self._state
                    return self._finish(job, EngineOutcome.FAILED,
                                        f"engine {state.value} during the job; not printed",
                                        state.value)
                if self.page_time > 0:
                    # A fault injected meanwhile wakes the wait and fails the job above.
                    self._cond.wait_for(lambda: not self._state.can_print or self._closed,
                                        self.page_time)
                if self.on_page is not None and self._state.can_print:
                    self._tell_page(job, page + 1)
            if self._armed is not None and self._armed[1] <= pages:
                self._state, self._armed = self._armed[0], None
                return self._finish(job, EngineOutcome.FAILED,
                                    f"engine {self._state.value} during the job; not printed",
                                    self._state.value)
            log.info("engine printed job %s (%d pages, %d bytes)", job.engine_id, pages,
                     read.size)
            return self._finish(job, EngineOutcome.PRINTED, "")

    def _tell_page(self, job: EngineJob, done: int) -> None:
        # Called with the condition held; calls the hook without it: a host that sends the count
        # over a socket must not stall the engine (a state question, a fault injected) while it
        # writes. The loop in _print looks at the state afresh after this returns.
        assert self.on_page is not None
        self._cond.release()
        try:
            self.on_page(job.engine_id, done)
        except Exception:
            log.exception("engine page callback failed for %s", job.engine_id)
        finally:
            self._cond.acquire()


def _printed_from(rec: dict[str, Any]) -> PrintedJob:
    return PrintedJob(str(rec.get("job_id", "")), str(rec.get("name", "")),
                      str(rec.get("sha256", "")), int(rec.get("size", 0)),
                      int(rec.get("copies", 1)), str(rec.get("id", "")))


def printed_log(state_dir: str | os.PathLike[str]) -> list[PrintedJob]:
    """Every job an engine with this state directory ever printed, in order (for tests,
    benchmarks and a technician's "what came out of this copier?")."""
    path = Path(state_dir) / LOG_NAME
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("ev") == "printed":
            out.append(_printed_from(rec))
    return out


class MfdControllerStub:
    """The engine in the app's process, behind the PrintEngine and ReportsPages ports: whoever
    drives it (the printer thread does) sets ``on_pages`` to hear each page as it prints."""

    def __init__(self, *, page_time: float = 0.0,
                 state_dir: str | os.PathLike[str] | None = None) -> None:
        self._callbacks: dict[str, EngineDone] = {}
        self._lock = threading.Lock()
        self.on_pages: EnginePages | None = None
        self.core = EngineCore(page_time=page_time, state_dir=state_dir, on_done=self._done,
                               on_page=self._page)

    @property
    def page_time(self) -> float:
        return self.core.page_time

    @property
    def printed(self) -> list[PrintedJob]:
        return self.core.printed

    @property
    def refused(self) -> list[tuple[str, str]]:
        return self.core.refused

    def state(self) -> EngineState:
        return self.core.state()

    def inject(self, state: EngineState, *, after_pages: int | None = None) -> None:
        """Set a fault (or READY to clear it); see :meth:`EngineCore.inject`."""
        self.core.inject(state, after_pages=after_pages)

    def hold(self, on: bool) -> None:
        self.core.hold(on)

    def submit(self, job: EngineJob, done: EngineDone) -> None:
        with self._lock:
            self._callbacks[job.engine_id] = done
        try:
            self.core.submit(job)
        except EngineError:
            with self._lock:
                self._callbacks.pop(job.engine_id, None)
            raise

    def outcome(self, engine_id: str) -> EngineOutcome:
        return self.core.outcome(engine_id)[0]

    def wait_printed(self, count: int, timeout: float = 5.0) -> bool:
        return self.core.wait_printed(count, timeout)

    def close(self) -> None:
        self.core.close()

    def _done(self, engine_id: str, job_id: str, outcome: EngineOutcome, detail: str) -> None:
        with self._lock:
            done = self._callbacks.pop(engine_id, None)
        if done is not None:
            done(job_id, outcome is EngineOutcome.PRINTED, detail)

    def _page(self, engine_id: str, done: int) -> None:
        on_pages = self.on_pages  # read once: the driver may set it from another thread
        if on_pages is not None:
            on_pages(engine_id, done)


def register_emulator(page_time: float = 0.0) -> None:
    """Let ``engine.kind = "emulator"`` open this stub in this process, ``page_time`` seconds a
    page.

    The device app's engine registry knows only the production engines (IPP, the socket): the
    emulator is emulated hardware, which production code never imports. Programs that offer
    it on purpose (``mfd device`` on a bench, tests) call this first.
    """
    registry.register("emulator", lambda _engine: MfdControllerStub(page_time=page_time))
