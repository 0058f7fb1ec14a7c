"""Where a released job becomes paper: runs ``PrintJob`` effects off the UI loop (journal,
fetch, check, hand over, report) and, at start-up, reconciles what a previous run left unfinished
(reconcile.py decides each row).

Theory of operation
-------------------
Exactly-once release rests on three records: the cloud's (HELD -> RELEASING -> PRINTED, or back
to HELD), the device's journal (journal.py) and the engine's own memory of what it printed
(protocol.engine.EngineOutcome). The printer keeps them consistent:

1. :meth:`Printer.submit_all` journals a release's jobs (RECEIVED, one commit) before anything
   else happens to them, on the caller's thread, so a crash a moment later still leaves rows to
   reconcile. A job already in the journal (a QoS 1 redelivery, a repeated tap) is ignored: it
   is never printed twice.
2. The printer thread takes jobs in release order. An engine that reports jam / no paper / door
   open / offline refuses the job before its document is fetched: the job fails, the cloud puts
   it back to HELD. Otherwise the document is fetched in chunks bound to the release and checked
   against the SHA-256 given at release; a mismatch fails the job before output. Documents are
   fetched with a window of chunks in flight and ahead of their turn (documents.py), into the
   spool on disk (spool.py), so the round trips overlap and memory stays bounded. The engine
   gets a document only once all of it is here and verified: a damaged one is never sent, not
   even in part (docs/protocol.md, "How the device fetches a document", says why).
3. HANDED is committed *before* the engine is given the job (one commit for the jobs whose
   documents are ready together); the journal refuses a second hand-over of the same
   (release_id, job_id). A job journaled HANDED is never declared failed on a guess: only the
   engine's word (its outcome, or its refusal of the hand-over) fails it.
4. The engine's outcome is journaled (PRINTED / FAILED) and reported (reports.py), with request
   ids drawn when the row was created. CONFIRMED is journaled when the cloud answers. This
   bookkeeping waits while a hand-over is ready (a person is waiting at the copier) and is
   committed in batches.
5. :meth:`Printer.reconcile` at start-up settles every row the cloud has not acknowledged from
   the engine's word, never a guess (reconcile.py says how).

How far a job is (the releasing screen's "page 3 of 12"): an engine that reports it
(ports.ReportsPages) calls back with impressions done; the printer thread turns that into
``PagesPrinted`` on the same path as ``JobDone`` (the app's event queue), at most once per
``pages_interval`` per job, the newest count at the end of each interval. A job's count is
dropped, never posted, once its outcome has arrived: no ``PagesPrinted`` follows its
``JobDone``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

from device_app.ports import (
    ENGINE_REASONS,
    CloudLink,
    EngineDone,
    EngineJob,
    PrintEngine,
    Reply,
    ReportsPages,
)
from device_app.printing.documents import Fetched, Prefetcher, fetch_document
from device_app.printing.journal import (
    IllegalTransition,
    Journal,
    JournalError,
    JournalState,
)
from device_app.printing.pages import Pages as _Pages
from device_app.printing.pages import Paging as _Paging
from device_app.printing.reconcile import Reconciled, ask_outcome, reconcile_row, settle
from device_app.printing.reports import Answered, Reports
from device_app.printing.spool import Spool
from device_app.session import JobDone, PagesPrinted, PrintJob
from protocol import messages as m
from protocol.engine import EngineOutcome, EngineState, engine_id
from protocol.errors import EngineError, MfdError

log = logging.getLogger(__name__)

#: Jobs whose documents are here handed over together (one HANDED commit, one engine write).
HAND_OVER_BATCH = 16
#: How long the printer thread trusts the engine's last state answer (seconds).
STATE_FRESH_S = 0.05
#: A job's page count goes to the panel at most this often (seconds): 4 a second reads as
#: climbing without redrawing the panel at the engine's pace.
PAGES_INTERVAL_S = 0.25

Key = tuple[str, str]  # (release_id, job_id)


@dataclass(frozen=True, slots=True)
class _EngineDone:
    key: Key
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class _Refuse:
    effect: PrintJob
    detail: str


#: Wakes the printer thread to poll (no work of its own).
_IDLE = object()
_Book = _EngineDone | _Refuse | Answered
_Item = PrintJob | _Book | _Pages | object | None


def _sort(item: _Item, jobs: deque[PrintJob], books: list[_Book],
          paging: dict[str, _Paging]) -> bool:
    """File a queue item; True for the stop sentinel. Items arrive in the order the engine
    called back, so a job's page counts are filed before its outcome, which ends them."""
    if isinstance(item, PrintJob):
        jobs.append(item)
    elif isinstance(item, _Pages):
        track = paging.get(item.engine_id)
        if track is not None:
            track.seen(item.impressions)
    elif isinstance(item, _EngineDone | _Refuse | Answered):
        if isinstance(item, _EngineDone):
            paging.pop(engine_id(*item.key), None)  # JobDone follows: no count after it
        books.append(item)
    return item is None


class Printer:
    def __init__(self, link: CloudLink, engine: PrintEngine,
                 report: Callable[[JobDone], None], journal: Journal | None = None, *,
                 retry_interval: float = 30.0, settle_interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic,
                 pages: Callable[[PagesPrinted], None] | None = None,
                 pages_interval: float = PAGES_INTERVAL_S) -> None:
        self.link = link
        self.engine = engine
        self.report = report
        # Page counts go where outcomes go unless told otherwise: the app's event queue, which
        # takes every event (app.py types it for JobDone only; see the module docstring).
        self.report_pages = pages if pages is not None else cast(
            Callable[[PagesPrinted], None], report)
        self.pages_interval = pages_interval
        self._paging: dict[str, _Paging] = {}  # engine id -> its count (printer thread only)
        if journal is None:
            log.warning("no release journal file: jobs are never handed over twice, but a "
                        "crash mid-release leaves them RELEASING")
            journal = Journal.memory()
        self.journal = journal
        self.settle_interval = settle_interval
        self.clock = clock
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._lock = threading.Lock()  # the sets below: the app's thread and ours
        self._awaiting: set[Key] = set()  # handed over; the engine's done callback will come
        self._unsettled: set[Key] = set()  # HANDED, outcome to be asked of the engine
        self._reports = Reports(journal, link, report, self._queue.put, self._lock,
                                retry_interval=retry_interval, clock=clock)
        #: Rounds of the printer thread so far (a test waits on it; a technician may look).
        self.turns = 0
        self._work = threading.Lock()  # one of reconcile / the printer thread at a time
        # Documents on disk until their job is settled; a previous run's leftovers go now.
        self.spool = Spool.beside(journal.path)
        self.spool.clean()
        # Documents being fetched ahead of their hand-over (printer thread only).
        self._prefetched = Prefetcher(self._fetch, self._discard)
        self._state_seen: tuple[float, EngineState] | None = None
        if isinstance(engine, ReportsPages):
            engine.on_pages = self._pages_seen
        self._thread = threading.Thread(target=self._run, name="printer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ the app's side

    def submit(self, effect: PrintJob) -> None:
        """Journal the job (RECEIVED), then queue it; see :meth:`submit_all`."""
        self.submit_all([effect])

    def submit_all(self, effects: Iterable[PrintJob]) -> None:
        """Journal the jobs (RECEIVED, one commit for all of them), then queue them in order.
        The commit is on the caller's thread on purpose: a job must be on disk before anything
        can crash it away. A job the journal already has (a QoS 1 redelivery, a repeated tap, a
        replayed release) is not queued: it is never printed twice."""
        effects = list(effects)
        try:
            with self.journal.batch():
                received = [self.journal.receive(e.release_id, e.job) for e in effects]
        except JournalError as exc:
            log.error("cannot journal %d job(s): %s", len(effects), exc)
            for effect in effects:
                self._queue.put(_Refuse(effect, "this device cannot record the job; not "
                                                "printed (the device needs a technician)"))
            return
        for effect, (entry, new) in zip(effects, received, strict=True):
            if not new:
                log.warning("job %s of release %s was given to print again (it is %s); not "
                            "printed twice", effect.job.job_id, effect.release_id, entry.state)
                continue
            with self._lock:
                self._reports.mine.add((effect.release_id, effect.job.job_id))
            self._queue.put(effect)

    def journaled(self, release_id: str, job_ids: Iterable[str]) -> bool:
        """Was any of the release's jobs given to this printer before (in the journal, in
        whatever state)? A release order delivered again is then not shown nor printed again
        (submit_all would not print it twice either: this spares the panel showing it)."""
        try:
            return any(self.journal.get(release_id, job_id) is not None for job_id in job_ids)
        except JournalError as exc:
            log.error("journal unreadable while checking release %s: %s", release_id, exc)
            return True  # printing blind is what the journal exists to prevent

    def journal_report(self, request: m.Request, reply: Reply) -> tuple[m.Request, Reply]:
        """For a ``jobs.printed`` / ``jobs.failed`` the session is about to send: the same report
        with the journal's request id, and a reply that journals the cloud's answer before
        passing it on. Other requests, and jobs the journal does not know, pass unchanged."""
        return self._reports.journal_report(request, reply)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        self._prefetched.close()
        self.spool.close()

    # ------------------------------------------------------------ start-up reconciliation

    def reconcile(self, wait: float = 5.0) -> list[Reconciled]:
        """Settle every journal row the cloud has not acknowledged, reporting each outcome to
        the cloud exactly once (repeats carry the journaled request id). Jobs the engine is
        still printing are waited for up to ``wait`` seconds, then left to the printer thread,
        which reports them when the engine is done. Blocking: call it before the app's loop."""
        deadline = self.clock() + wait
        results: list[Reconciled] = []
        with self._work:
            try:
                purged = self.journal.purge()
            except JournalError as exc:
                log.warning("journal purge failed: %s", exc)
                purged = 0
            if purged:
                log.info("dropped %d confirmed journal rows past retention", purged)
            with self._lock:
                live = self._reports.mine | self._awaiting | self._unsettled
            for entry in self.journal.unconfirmed():
                if entry.key in live:
                    continue  # this run's own job, on its way: not a leftover
                result = reconcile_row(entry, deadline, journal=self.journal,
                                       engine=self.engine, clock=self.clock,
                                       settle_interval=self.settle_interval,
                                       tell_now=self._reports.tell_now)
                if result.outcome in ("printing", "pending"):
                    with self._lock:  # the printer thread asks the engine again
                        self._unsettled.add(entry.key)
                results.append(result)
        for r in results:
            log.info("reconcile: %s", r.line)
        if any(r.outcome in ("printing", "pending") for r in results):
            self._queue.put(_IDLE)  # wake the printer thread: it polls what is left
        return results

    # ------------------------------------------------------------ the printer thread

    def detach(self, release_id: str) -> None:
        """The user walked away from ``release_id`` ("Done, log me out"): its jobs print on,
        and each outcome goes to the cloud from here (the journal's report), not through the
        session, which is gone. An outcome the session was told but never sent goes now."""
        self._reports.detach(release_id)

    def link_back(self) -> None:
        """The connection to the cloud came back: the reports that did not get through are
        due now, not up to ``retry_interval`` later (their jobs wait RELEASING meanwhile)."""
        self._reports.link_back()
        self.wake()

    def wake(self) -> None:
        """Have the printer thread look at its clock now (it sleeps until the next report is
        due; a test that moves its clock says so here)."""
        self._queue.put(_IDLE)

    def _run(self) -> None:
        jobs: deque[PrintJob] = deque()
        books: list[_Book] = []
        closing = False
        while True:
            if not jobs and not books:
                if closing:
                    return
                with self._lock:
                    polling = bool(self._unsettled)
                    next_retry = self._reports.next_retry
                timeout = self.settle_interval if polling else max(0.0, next_retry - self.clock())
                pages_due = self._pages_due()
                if pages_due is not None:
                    timeout = min(timeout, max(0.0, pages_due - self.clock()))
                try:
                    closing |= _sort(self._queue.get(timeout=timeout), jobs, books, self._paging)
                except queue.Empty:
                    pass
            # Take whatever else is waiting: bookkeeping that piled up (engine outcomes, cloud
            # answers) goes in one commit between two jobs, not one fsync each.
            while True:
                try:
                    closing |= _sort(self._queue.get_nowait(), jobs, books, self._paging)
                except queue.Empty:
                    break
            self._post_pages()
            with self._work:
                taken: list[PrintJob] = []
                try:
                    if jobs:
                        self._prefetched.ahead(
                            jobs, lambda: self._engine_state().can_print)
                    # Hand-overs first: a person is waiting at the copier. Bookkeeping (engine
                    # outcomes, cloud answers: one commit for all that piled up) is done while
                    # the next document is still on its way, or when no job is waiting.
                    if books and not (jobs and self._prefetched.ready(jobs[0])):
                        batch, books = books, []
                        self._bookkeeping(batch)
                    if jobs:
                        taken = [jobs.popleft()]
                        # ... and the jobs behind it whose documents are here already.
                        while (jobs and len(taken) < HAND_OVER_BATCH
                               and self._prefetched.ready(jobs[0])):
                            taken.append(jobs.popleft())
                        self._print(taken)
                    with self._lock:
                        polling = bool(self._unsettled)
                    if polling:
                        self._poll_unsettled()
                    with self._lock:
                        next_retry = self._reports.next_retry
                    if self.clock() >= next_retry:
                        due = self._reports.retry_due()
                        with self._lock:
                            self._reports.next_retry = due
                except Exception:
                    log.exception("printer step failed unexpectedly")
                    for job in taken:
                        try:
                            self._recover((job.release_id, job.job.job_id))
                        except Exception:  # the thread must outlive any one job
                            log.exception("could not settle job %s", job.job.job_id)
            self.turns += 1

    def _pages_seen(self, eid: str, impressions: int) -> None:
        # The engine's thread: hand off to ours, in order with the job's outcome.
        self._queue.put(_Pages(eid, impressions))

    def _pages_due(self) -> float | None:
        """When the next held-back page count may go (None: none is waiting)."""
        due = [t.at + self.pages_interval for t in self._paging.values()
               if t.pending is not None and t.at is not None]
        return min(due) if due else None

    def _post_pages(self) -> None:
        """Post each job's newest page count whose interval has passed."""
        now = self.clock()
        for track in self._paging.values():
            if track.pending is None or (track.at is not None
                                         and now - track.at < self.pages_interval):
                continue
            with self._lock:
                mine = track.key in self._reports.mine  # else nobody is watching it
            track.posted, track.pending, track.at = track.pending, None, now
            if mine:
                self.report_pages(PagesPrinted(*track.key, track.posted))

    def _bookkeeping(self, batch: list[_Book]) -> None:
        tells: list[tuple[Key, bool, str]] = []
        try:
            with self.journal.batch():
                for item in batch:
                    if isinstance(item, _EngineDone):
                        if self._record_outcome(item):
                            tells.append((item.key, item.ok, item.detail))
                    elif isinstance(item, Answered):
                        self._reports.answered(item.key, item.outcome)
        except JournalError as exc:
            # The cloud must still hear every outcome; rows left HANDED are asked of the engine
            # again by reconciliation and reported with the same request ids.
            log.error("cannot journal %d outcome(s): %s", len(batch), exc)
            tells = [(i.key, i.ok, i.detail) for i in batch if isinstance(i, _EngineDone)]
        # Told only after the commit: the report's request id is read from the journal.
        for key, ok, detail in tells:
            self._reports.tell(key, ok, detail)
        for item in batch:
            if isinstance(item, _Refuse):
                self.report(JobDone(item.effect.release_id, item.effect.job.job_id, False,
                                    item.detail))

    def _print(self, batch: list[PrintJob]) -> None:
        """Hand over ``batch`` (the next job, and those after it whose documents are already
        here): each document checked, HANDED committed for all of them at once, then each given
        to the engine in order. One commit for several jobs is as safe as one each: a job
        journaled HANDED that never reached the engine is reconciled as "unknown" (fenced),
        back to HELD."""
        ready: list[tuple[PrintJob, Fetched]] = []
        for effect in batch:
            document = self._checked_document(effect)
            if document is not None:
                ready.append((effect, document))
        if not ready:
            return
        state = self._engine_state()
        if not state.can_print:
            # It faulted while the documents came: still before any hand-over.
            for effect, fetched in ready:
                self._discard(fetched)
                self._fail((effect.release_id, effect.job.job_id),
                           ENGINE_REASONS.get(state, state.value))
            return
        handed: list[tuple[PrintJob, Fetched]] = []
        try:
            with self.journal.batch():
                for effect, document in ready:
                    key = (effect.release_id, effect.job.job_id)
                    try:
                        self.journal.hand_over(*key, engine_id(*key), fetched=True)
                    except IllegalTransition as exc:  # AlreadyHanded above all: never again
                        log.error("%s", exc)
                        self._discard(document)
                        continue
                    handed.append((effect, document))
        except JournalError as exc:
            log.error("cannot journal the hand-over of %d job(s): %s", len(ready), exc)
            for effect, fetched in ready:
                self._discard(fetched)
                self._fail((effect.release_id, effect.job.job_id),
                           "this device cannot record the job; not printed")
            return
        if handed:
            self._hand_over(handed)

    def _checked_document(self, effect: PrintJob) -> Fetched | None:
        """The job's document, fetched (or prefetched) and matching its SHA-256 (computed as it
        arrived); None once the job has been failed (engine fault before fetching, fetch error,
        damaged document: its spool file is gone then)."""
        key = (effect.release_id, effect.job.job_id)
        pending = self._prefetched.take(key)
        try:
            if pending is not None:
                document = pending.result()  # its engine check came before the fetch
            else:
                state = self._engine_state()
                if not state.can_print:
                    self._fail(key, ENGINE_REASONS.get(state, state.value))
                    return None
                document = self._fetch(effect.release_id, effect.job)
        except MfdError as exc:
            self._fail(key, f"could not fetch the document: {exc.message}")
            return None
        if document.sha256 != effect.job.sha256:
            self._discard(document)
            self._fail(key, "document damaged in transit; not printed")
            return None
        return document

    def _hand_over(self, handed: list[tuple[PrintJob, Fetched]]) -> None:
        """Give the engine the jobs journaled HANDED, in order: in one write where the engine
        adapter takes several at once (``submit_many``), else one by one."""
        items: list[tuple[Key, EngineJob, EngineDone]] = []
        for effect, fetched in handed:
            job = effect.job
            key = (effect.release_id, job.job_id)
            with self._lock:
                self._awaiting.add(key)
            self._paging[engine_id(*key)] = _Paging(key, max(1, job.copies))
            if fetched.document.path is not None:  # the engine may read it until its outcome
                self.spool.keep(key, fetched.document.path)
            items.append((key, EngineJob(job.job_id, job.name, fetched.document, job.sha256,
                                         job.copies, effect.release_id, job.color, job.duplex),
                          self._done_for(effect.release_id)))
        many = getattr(self.engine, "submit_many", None)
        errors: list[EngineError | None]
        if many is not None and len(items) > 1:
            errors = many([(ejob, done) for _, ejob, done in items])
        else:
            errors = []
            for _, ejob, done in items:
                try:
                    self.engine.submit(ejob, done)
                    errors.append(None)
                except EngineError as exc:
                    errors.append(exc)
        for (key, _, _), error in zip(items, errors, strict=True):
            if error is None:
                continue
            self.spool.release(key)  # the engine does not have it (or had it before)
            self._paging.pop(engine_id(*key), None)
            with self._lock:
                self._awaiting.discard(key)
            if error.code == "duplicate_job":
                # The engine had this hand-over already (a journal restored from an old copy?):
                # what it did with it is the truth.
                with self._lock:
                    self._unsettled.add(key)
                continue
            # The port's promise: an error from submit means the engine does not have it.
            self._fail(key, f"the printer did not take the job: {error.message}", handed=True)

    def _done_for(self, release_id: str) -> EngineDone:
        def done(job_id: str, ok: bool, detail: str) -> None:
            # The engine's thread (or its adapter's): hand off to ours.
            self._queue.put(_EngineDone((release_id, job_id), ok, detail))
        return done

    def _engine_state(self) -> EngineState:
        # Asked before fetching and again before handing over; a fresh answer is reused for
        # STATE_FRESH_S, since the engine refuses a job itself if it faults meanwhile (failed
        # before output: the same result for the cloud, with the engine's words).
        now = self.clock()
        if self._state_seen is not None and now - self._state_seen[0] < STATE_FRESH_S:
            return self._state_seen[1]
        state = self.engine.state()
        self._state_seen = (now, state)
        return state

    def _recover(self, key: Key) -> None:
        """After a bug mid-job: a job not yet handed over fails (back to HELD); one that may be
        on the engine is asked about, never guessed failed (it may have printed)."""
        self._prefetched.drop(key)
        try:
            entry = self.journal.get(*key)
        except JournalError as exc:
            # Where it got to is unknown: left to the next start's reconciliation.
            log.error("cannot settle job %s of %s now: %s", key[1], key[0], exc)
            return
        if entry is not None and entry.state in (JournalState.RECEIVED, JournalState.FETCHED):
            self._fail(key, "the device failed; the job is kept")
        elif entry is not None and entry.state is JournalState.HANDED:
            with self._lock:
                if key not in self._awaiting:
                    self._unsettled.add(key)

    def _record_outcome(self, item: _EngineDone) -> bool:
        """Journal the engine's outcome; False if it was known already (never told twice)."""
        with self._lock:
            self._awaiting.discard(item.key)
        self.spool.release(item.key)
        try:
            if item.ok:
                self.journal.printed(*item.key)
            else:
                self.journal.failed(*item.key, item.detail or "failed before output")
        except IllegalTransition:
            log.info("outcome of %s known already; not reported again", item.key)
            return False
        return True

    def _fail(self, key: Key, detail: str, *, handed: bool = False) -> None:
        """The job failed before output: journal it and tell. A job journaled HANDED may be on
        the engine, so unless the caller knows the engine does not have it (``handed``), it is
        asked of the engine instead of being guessed failed."""
        try:
            if not handed:
                entry = self.journal.get(*key)
                if entry is not None and entry.state is JournalState.HANDED:
                    log.error("job %s of %s is HANDED: asking the engine, not failing it", key[1],
                              key[0])
                    with self._lock:
                        if key not in self._awaiting:
                            self._unsettled.add(key)
                    return
            self.journal.failed(*key, detail)
        except IllegalTransition:
            return
        except JournalError as exc:
            log.error("cannot journal the failure of %s: %s", key, exc)
        self._reports.tell(key, False, detail)

    def _poll_unsettled(self) -> None:
        with self._lock:
            keys = list(self._unsettled)
        for key in keys:
            entry = self.journal.get(*key)
            if entry is None or entry.state is not JournalState.HANDED:
                with self._lock:
                    self._unsettled.discard(key)
                continue
            try:
                outcome = ask_outcome(self.engine, entry.engine_id)
            except EngineError:
                return  # not back yet; next round
            if outcome is EngineOutcome.PRINTING:
                continue
            with self._lock:
                self._unsettled.discard(key)
            self.spool.release(key)
            entry = settle(self.journal, entry, outcome)
            self._reports.tell(key, entry.result == "printed", entry.detail)

    def _fetch(self, release_id: str, job: m.ReleasedJob) -> Fetched:
        return fetch_document(self.link, release_id, job, self.spool)

    def _discard(self, fetched: Fetched) -> None:
        if fetched.document.path is not None:
            self.spool.remove(fetched.document.path)
