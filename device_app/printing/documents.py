"""Where a released job's document comes from: the cloud, in chunks bound to the release,
spooled to the device's disk as it arrives.

Theory of operation
-------------------
:func:`fetch_document` keeps a *window* of ``jobs.document`` requests in flight (WINDOW chunks,
the link is asynchronous), so a document costs about one round trip plus its transfer time
instead of one round trip per chunk. :class:`Reassembly` (pure: asks and answers in, bytes in
order out) decides what to ask for and checks each answer against what was asked (offset,
total size, no more than asked); anything else is an MfdError, so a confused or hostile answer
fails the job before output. A short answer (the cloud decides its chunk size) is not an error:
the rest of that chunk is asked for next. Bytes are written to a private spool file (spool.py)
in order and hashed as they are written, so memory holds at most the window whatever the size,
and the SHA-256 is known when the last byte lands.

A chunk request is a read: when it fails because the link dropped (or timed out), it is asked
again once the link is back, up to RETRIES times per chunk, instead of failing the job.

:class:`Prefetcher` fetches the documents of waiting jobs ahead of their hand-over
(PREFETCH_JOBS at once, PREFETCH_BYTES at most: that bounds the spool on disk, not memory), so
the cloud round trips overlap instead of adding up. Whether a document matches its SHA-256 is
the printer's check (release.py), made before any byte goes to the engine.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from device_app.ports import CloudLink
from device_app.printing.spool import Spool
from device_app.session import PrintJob
from protocol import messages as m
from protocol.engine import Document
from protocol.errors import LinkError, MfdError

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
#: Documents fetched at once ahead of their hand-over, and the bytes fetched ahead may hold.
PREFETCH_JOBS = 4
PREFETCH_BYTES = 64 * 1024 * 1024
#: Chunk requests in flight per document: 16 x 256 KiB = 4 MiB per round trip (100 MiB/s at
#: 40 ms, more than one cloud worker serves), and below paho's 20 messages in flight.
WINDOW = 16
#: Times one chunk is asked again after the link dropped or it went unanswered.
RETRIES = 5
#: How long a fetch waits for the link to come back before a retry (seconds).
RECONNECT_WAIT = 20.0
#: How long one chunk request may go unanswered (seconds). Longer than the link's default:
#: the cloud serves a window's requests one after another, so the last of them waits for the
#: others (a cloud store that reads a large document slowly makes that seconds).
CHUNK_TIMEOUT = 10.0
#: Longest wait for any answer: the link times reads out itself (3 s); this only guards a
#: link that breaks its promise to reply.
ANSWER_WAIT = 60.0

Key = tuple[str, str]  # (release_id, job_id)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A document on the device's disk and the SHA-256 of the bytes that arrived."""

    document: Document
    sha256: str


class Reassembly:
    """Which chunks to ask for, and the document's bytes in order from answers in any order.

    Pure. :meth:`asks` hands out (offset, length) requests while fewer than ``window`` are
    outstanding and the bytes held out of order stay within ``window`` chunks of the first byte
    not yet delivered; :meth:`answer` takes the answer to one of them and returns the bytes that
    are now contiguous (possibly none), raising MfdError for an answer that is not to what was
    asked."""

    def __init__(self, total: int, *, chunk: int = m.DOCUMENT_CHUNK_BYTES,
                 window: int = WINDOW) -> None:
        self.total = total
        self.chunk = chunk
        self.window = window
        self.delivered = 0  # bytes handed out in order
        self._next = 0  # first byte never asked for
        self._outstanding: dict[int, int] = {}  # offset -> length asked
        self._gaps: list[tuple[int, int]] = []  # rests of short answers, to ask first
        self._held: dict[int, bytes] = {}  # arrived ahead of ``delivered``

    @property
    def complete(self) -> bool:
        return self.delivered >= self.total

    def asks(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        limit = self.delivered + self.window * self.chunk
        while len(self._outstanding) < self.window:
            if self._gaps:
                offset, length = self._gaps.pop(0)
            elif self._next < self.total and self._next < limit:
                offset, length = self._next, min(self.chunk, self.total - self._next)
                self._next += length
            else:
                break
            self._outstanding[offset] = length
            out.append((offset, length))
        return out

    def answer(self, offset: int, chunk: m.DocumentChunk) -> list[bytes]:
        length = self._outstanding.pop(offset, None)
        if length is None:
            raise MfdError(f"an answer for bytes {offset}.. that were not asked for")
        if chunk.offset != offset or chunk.total != self.total:
            raise MfdError(f"the service sent bytes {chunk.offset}.. of {chunk.total} when "
                           f"{offset}.. of {self.total} were asked for")
        if not chunk.data:
            raise MfdError(f"document ended at {offset} of {self.total} bytes")
        if len(chunk.data) > length:
            raise MfdError(f"the service sent {len(chunk.data)} bytes at {offset} when "
                           f"{length} were asked for")
        if len(chunk.data) < length:
            self._gaps.append((offset + len(chunk.data), length - len(chunk.data)))
        self._held[offset] = chunk.data
        ready: list[bytes] = []
        while self.delivered in self._held:
            piece = self._held.pop(self.delivered)
            self.delivered += len(piece)
            ready.append(piece)
        return ready


def fetch_document(link: CloudLink, release_id: str, job: m.ReleasedJob, spool: Spool, *,
                   window: int = WINDOW, reconnect_wait: float = RECONNECT_WAIT) -> Fetched:
    """``job``'s document, fetched with a window of chunk requests in flight into a spool file,
    hashed as it is written (blocking: a worker's thread). MfdError if it cannot be had; the
    spool file is gone then."""
    if job.size > MAX_DOCUMENT_BYTES:
        raise MfdError(f"document of {job.size} bytes is larger than this device takes")
    plan = Reassembly(job.size, window=window)
    answers: queue.Queue[tuple[int, int, m.Result | MfdError]] = queue.Queue()
    tries: dict[int, int] = {}

    def ask(offset: int, length: int) -> None:
        # The reply comes on the link's thread (or at once): handed to this thread.
        link.request(m.FetchDocument(release_id=release_id, job_id=job.job_id, offset=offset,
                                     length=length),
                     lambda result: answers.put((offset, length, result)), CHUNK_TIMEOUT)

    digest = hashlib.sha256()
    out, path = spool.create()
    try:
        with out:
            for offset, length in plan.asks():
                ask(offset, length)
            while not plan.complete:
                try:
                    offset, length, result = answers.get(timeout=ANSWER_WAIT)
                except queue.Empty:
                    raise LinkError("no answer from the print service", code="timeout") \
                        from None
                if isinstance(result, LinkError):
                    # A read: asking again is harmless. Once the link is back.
                    tries[offset] = tries.get(offset, 0) + 1
                    if tries[offset] > RETRIES or not _link_back(link, reconnect_wait):
                        raise result
                    log.info("document %s: bytes %d.. asked again (%s)", job.job_id, offset,
                             result.message)
                    ask(offset, length)
                    continue
                if isinstance(result, MfdError):
                    raise result
                if not isinstance(result, m.DocumentChunk):
                    raise MfdError(f"the service answered a document request with {result.TYPE}")
                for piece in plan.answer(offset, result):
                    out.write(piece)
                    digest.update(piece)
                for offset, length in plan.asks():
                    ask(offset, length)
    except BaseException:
        spool.remove(path)
        raise
    return Fetched(Document.file(path, job.size), digest.hexdigest())


def _link_back(link: CloudLink, wait: float) -> bool:
    """Wait (polling: a worker thread; the link's callback is the app's) until the link is up."""
    deadline = time.monotonic() + wait
    while not link.connected:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class Prefetcher:
    """Documents being fetched ahead of their hand-over. Used by the printer thread only."""

    def __init__(self, fetch: Callable[[str, m.ReleasedJob], Fetched],
                 discard: Callable[[Fetched], None]) -> None:
        self._fetch = fetch
        self._discard = discard
        self._pending: dict[Key, tuple[int, Future[Fetched]]] = {}
        self._pool = ThreadPoolExecutor(max_workers=PREFETCH_JOBS,
                                        thread_name_prefix="printer-fetch")

    def ahead(self, upcoming: Iterable[PrintJob], can_print: Callable[[], bool]) -> None:
        """Queue the fetches of the waiting jobs' documents, in order, while earlier ones are
        journaled and handed over: a fetch starts as soon as one of the PREFETCH_JOBS fetchers
        is free. At most PREFETCH_BYTES ahead (a large document is fetched alone, when its turn
        comes), and only while the engine can print (``can_print``, asked once, and only if
        there is something to fetch): a job refused up front is never fetched."""
        ahead = sum(size for size, _ in self._pending.values())
        checked = False
        for effect in upcoming:
            key = (effect.release_id, effect.job.job_id)
            if key in self._pending:
                continue
            size = effect.job.size
            if self._pending and ahead + size > PREFETCH_BYTES:
                return
            if not checked:
                if not can_print():
                    return
                checked = True
            self._pending[key] = (size, self._pool.submit(self._fetch, effect.release_id,
                                                          effect.job))
            ahead += size

    def take(self, key: Key) -> Future[Fetched] | None:
        """The fetch of ``key``'s document, if one was started; it is forgotten here."""
        pending = self._pending.pop(key, None)
        return None if pending is None else pending[1]

    def drop(self, key: Key) -> None:
        """Forget ``key``'s fetch; its spool file goes when (if) it is done."""
        pending = self.take(key)
        if pending is not None:
            pending.add_done_callback(self._drop_result)

    def _drop_result(self, future: Future[Fetched]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._discard(future.result())

    def ready(self, effect: PrintJob) -> bool:
        """Is this job's document here already?"""
        pending = self._pending.get((effect.release_id, effect.job.job_id))
        return pending is not None and pending[1].done()

    def close(self) -> None:
        for key in list(self._pending):
            self.drop(key)
        self._pool.shutdown(wait=False, cancel_futures=True)
