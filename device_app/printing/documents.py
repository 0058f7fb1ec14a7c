"""Where a released job's document comes from: the cloud, in chunks bound to the release.

:func:`fetch_document` asks for the chunks in order and checks each answer against what was
asked (offset, total size); anything else is an MfdError, so a confused or hostile answer fails
the job before output. :class:`Prefetcher` fetches the documents of waiting jobs ahead of their
hand-over (PREFETCH_JOBS at once, PREFETCH_BYTES at most), so the cloud round trips overlap
instead of adding up. Whether a document matches its SHA-256 is the printer's check
(release.py), made on whatever arrives, fetched ahead or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from device_app.ports import CloudLink
from device_app.session import PrintJob
from protocol import messages as m
from protocol.errors import MfdError

MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
#: Documents fetched at once ahead of their hand-over, and the bytes fetched ahead may hold.
PREFETCH_JOBS = 4
PREFETCH_BYTES = 64 * 1024 * 1024

Key = tuple[str, str]  # (release_id, job_id)


def fetch_document(link: CloudLink, release_id: str, job: m.ReleasedJob) -> bytes:
    """The whole document of ``job``, fetched chunk by chunk (blocking: a worker's thread)."""
    if job.size > MAX_DOCUMENT_BYTES:
        raise MfdError(f"document of {job.size} bytes is larger than this device takes")
    parts: list[bytes] = []
    offset = 0
    while offset < job.size:
        chunk = link.call(m.FetchDocument(release_id=release_id, job_id=job.job_id,
                                          offset=offset))
        if not isinstance(chunk, m.DocumentChunk):
            raise MfdError(f"the service answered a document request with {chunk.TYPE}")
        if chunk.offset != offset or chunk.total != job.size:
            raise MfdError(f"the service sent bytes {chunk.offset}.. of {chunk.total} when "
                           f"{offset}.. of {job.size} were asked for")
        if not chunk.data:
            raise MfdError(f"document ended at {offset} of {job.size} bytes")
        parts.append(chunk.data)
        offset += len(chunk.data)
    return b"".join(parts)


class Prefetcher:
    """Documents being fetched ahead of their hand-over. Used by the printer thread only."""

    def __init__(self, fetch: Callable[[str, m.ReleasedJob], bytes]) -> None:
        self._fetch = fetch
        self._pending: dict[Key, tuple[int, Future[bytes]]] = {}
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

    def take(self, key: Key) -> Future[bytes] | None:
        """The fetch of ``key``'s document, if one was started; it is forgotten here."""
        pending = self._pending.pop(key, None)
        return None if pending is None else pending[1]

    def ready(self, effect: PrintJob) -> bool:
        """Is this job's document here already?"""
        pending = self._pending.get((effect.release_id, effect.job.job_id))
        return pending is not None and pending[1].done()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
