"""Runs ``PrintJob`` effects off the UI loop: fetch the document, check it, hand it over.

One thread, one job at a time, in release order. A document is fetched in chunks bound to the
release (protocol FetchDocument) and checked against the SHA-256 the cloud gave at release; a
mismatch or an engine that cannot print fails the job *before output*, so the cloud returns it
to HELD and nothing is lost.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable

from device_app.ports import ENGINE_REASONS, CloudLink, EngineJob, PrintEngine
from device_app.session import JobDone, PrintJob
from protocol import messages as m
from protocol.errors import MfdError

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 512 * 1024 * 1024


class Printer:
    def __init__(self, link: CloudLink, engine: PrintEngine,
                 report: Callable[[JobDone], None]) -> None:
        self.link = link
        self.engine = engine
        self.report = report
        self._queue: queue.Queue[PrintJob | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="printer", daemon=True)
        self._thread.start()

    def submit(self, effect: PrintJob) -> None:
        self._queue.put(effect)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while (effect := self._queue.get()) is not None:
            try:
                self._print(effect)
            except Exception:
                log.exception("printing job %s failed unexpectedly", effect.job.job_id)
                self.report(JobDone(effect.release_id, effect.job.job_id, False,
                                    "the device failed; the job is kept"))

    def _print(self, effect: PrintJob) -> None:
        job = effect.job
        state = self.engine.state()
        if not state.can_print:
            self.report(JobDone(effect.release_id, job.job_id, False,
                                ENGINE_REASONS.get(state, state.value)))
            return
        try:
            document = self._fetch(effect.release_id, job)
        except MfdError as exc:
            self.report(JobDone(effect.release_id, job.job_id, False,
                                f"could not fetch the document: {exc.message}"))
            return
        if hashlib.sha256(document).hexdigest() != job.sha256:
            self.report(JobDone(effect.release_id, job.job_id, False,
                                "document damaged in transit; not printed"))
            return

        def done(job_id: str, ok: bool, detail: str) -> None:
            self.report(JobDone(effect.release_id, job_id, ok, detail))

        self.engine.submit(EngineJob(job.job_id, job.name, document, job.sha256, job.copies),
                           done)

    def _fetch(self, release_id: str, job: m.ReleasedJob) -> bytes:
        if job.size > MAX_DOCUMENT_BYTES:
            raise MfdError(f"document of {job.size} bytes is larger than this device takes")
        parts: list[bytes] = []
        offset = 0
        while offset < job.size:
            chunk = self.link.call(m.FetchDocument(release_id=release_id, job_id=job.job_id,
                                                   offset=offset))
            assert isinstance(chunk, m.DocumentChunk)
            if chunk.offset != offset or chunk.total != job.size:
                raise MfdError(f"the service sent bytes {chunk.offset}.. of {chunk.total} when "
                               f"{offset}.. of {job.size} were asked for")
            if not chunk.data:
                raise MfdError(f"document ended at {offset} of {job.size} bytes")
            parts.append(chunk.data)
            offset += len(chunk.data)
        return b"".join(parts)
