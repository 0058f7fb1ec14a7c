"""The emulated engine, telling how far it is with a job: page by page, at ``page_time`` a page.

Theory of operation
-------------------
:class:`PagedEngineCore` is :class:`~firmware_stubs.mfd_controller.EngineCore` with two things a
real engine has and the core lacks: it prints as many pages as the document has (a real engine
interprets the PDF; here :func:`pdf_page_count` reads the page tree's count, and a document it
cannot read counts one page), times the copies; and after each page it calls ``on_page`` with the
job's engine id and the impressions done so far, before the job's outcome. Everything else (the
log, the SHA-256 check, faults armed after some pages, holds, fencing) is the core's.

:class:`PagedControllerStub` hosts it in the app's process behind the PrintEngine port, with
``on_pages`` (device_app.ports.ReportsPages) set by whoever drives it: the printer thread does.
firmware_stubs/engine_server.py hosts it as its own process and pushes each count to the apps.

Why a subclass and not the core itself: the core's module belongs to another part of the tree;
once EngineCore calls a page hook of its own, this module shrinks to :func:`pdf_page_count`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable

from device_app.engines import registry
from device_app.ports import EnginePages
from firmware_stubs.mfd_controller import CoreDone, EngineCore, MfdControllerStub
from protocol.engine import EngineDone, EngineJob, EngineOutcome, EngineState

log = logging.getLogger(__name__)

#: (engine id, impressions done so far), on the engine's thread, never with its lock held.
PageDone = Callable[[str, int], None]

# A page-tree node: ``<< ... /Type /Pages ... /Count n ... >>``, keys in any order. The root's
# count is the largest: it counts every leaf below it.
_PAGES_NODE = re.compile(rb"<<((?:(?!<<|>>).)*?/Type\s*/Pages\b(?:(?!<<|>>).)*?)>>", re.S)
_COUNT = re.compile(rb"/Count\s+(\d{1,7})\b")


def pdf_page_count(document: bytes) -> int | None:
    """The pages of a PDF as its page tree counts them; None if it shows no readable page tree
    (not a PDF, or one whose page tree is compressed into an object stream)."""
    if not document.startswith(b"%PDF-"):
        return None
    counts = [int(c.group(1)) for node in _PAGES_NODE.finditer(document)
              if (c := _COUNT.search(node.group(1))) is not None]
    best = max(counts, default=0)
    return best if best > 0 else None


def impressions(job: EngineJob) -> int:
    """What the emulated engine prints for ``job``: its pages, times its copies."""
    return (pdf_page_count(job.document) or 1) * max(1, job.copies)


class PagedEngineCore(EngineCore):
    def __init__(self, *, page_time: float = 0.0,
                 state_dir: str | os.PathLike[str] | None = None,
                 on_done: CoreDone | None = None, on_page: PageDone | None = None) -> None:
        self.on_page = on_page
        super().__init__(page_time=page_time, state_dir=state_dir, on_done=on_done)

    def _print(self, job: EngineJob) -> tuple[EngineOutcome, str]:
        # EngineCore._print, with pages counted from the document and the hook after each page.
        digest = hashlib.sha256(job.document).hexdigest()
        with self._cond:
            if digest != job.sha256:
                return self._finish(job, EngineOutcome.FAILED,
                                    "document damaged (SHA-256 mismatch); not printed",
                                    "checksum")
            if not self._state.can_print:
                return self._finish(job, EngineOutcome.FAILED,
                                    f"engine {self._state.value}; not printed", self._state.value)
            self._sync()
            self._state = EngineState.PRINTING
            pages = impressions(job)
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
                     len(job.document))
            return self._finish(job, EngineOutcome.PRINTED, "")

    def _tell_page(self, job: EngineJob, done: int) -> None:
        # Outside the lock: a host that sends it over a socket must not stall the engine (a
        # state question, a fault injected) while it writes.
        assert self.on_page is not None
        self._cond.release()
        try:
            self.on_page(job.engine_id, done)
        except Exception:
            log.exception("engine page callback failed for %s", job.engine_id)
        finally:
            self._cond.acquire()


class PagedControllerStub(MfdControllerStub):
    """The paged engine in the app's process, behind PrintEngine and ReportsPages."""

    def __init__(self, *, page_time: float = 0.0,
                 state_dir: str | os.PathLike[str] | None = None) -> None:
        # Not MfdControllerStub.__init__: it would start (and open the log of) a plain core.
        self._callbacks: dict[str, EngineDone] = {}
        self._lock = threading.Lock()
        self.on_pages: EnginePages | None = None
        self.core = PagedEngineCore(page_time=page_time, state_dir=state_dir,
                                    on_done=self._done, on_page=self._page)

    def _page(self, engine_id: str, done: int) -> None:
        on_pages = self.on_pages
        if on_pages is not None:
            on_pages(engine_id, done)


def register_paged_emulator(page_time: float = 0.0) -> None:
    """Let ``engine.kind = "emulator"`` open the paged stub in this process, ``page_time``
    seconds a page (see firmware_stubs.mfd_controller.register_emulator)."""
    registry.register("emulator", lambda _engine: PagedControllerStub(page_time=page_time))
