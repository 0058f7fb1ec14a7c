"""Runs ``PrintJob`` effects off the UI loop: journal, fetch, check, hand over, report; and, at
start-up, reconciles what a previous run left unfinished.

Theory of operation
-------------------
Exactly-once release rests on three records: the cloud's (HELD -> RELEASING -> PRINTED, or back
to HELD), the device's journal (device_app/journal.py) and the engine's own memory of what it
printed (protocol.engine.EngineOutcome). The printer keeps them consistent:

1. :meth:`Printer.submit_all` journals a release's jobs (RECEIVED, one commit) before anything
   else happens to them, on the caller's thread, so a crash a moment later still leaves rows to
   reconcile. A job already in the journal (a QoS 1 redelivery, a repeated tap) is ignored: it
   is never printed twice.
2. The printer thread takes jobs in release order. An engine that reports jam / no paper / door
   open / offline refuses the job before its document is fetched: the job fails, the cloud puts
   it back to HELD. Otherwise the document is fetched in chunks bound to the release and checked
   against the SHA-256 given at release; a mismatch fails the job before output. Documents are
   fetched ahead (PREFETCH_JOBS at once, PREFETCH_BYTES at most), so the cloud round trips
   overlap the hand-overs.
3. HANDED is committed *before* the engine is given the job (one commit for the jobs whose
   documents are ready together); the journal refuses a second hand-over of the same
   (release_id, job_id). A job journaled HANDED is never declared failed on a guess: only the
   engine's word (its outcome, or its refusal of the hand-over) fails it.
4. The engine's outcome is journaled (PRINTED / FAILED) and reported. Reports carry request ids
   drawn when the row was created, so a report repeated after a crash or a lost answer gets the
   cloud's stored answer. CONFIRMED is journaled when the cloud answers. This bookkeeping waits
   while a hand-over is ready (a person is waiting at the copier) and is committed in batches.
5. :meth:`Printer.reconcile` at start-up: a row before HANDED was never printed -> ``jobs.failed``
   (back to HELD); a HANDED row is asked of the engine: printed -> ``jobs.printed``; failed, or
   unknown (the engine never got it, and now never will) -> ``jobs.failed``; still printing ->
   waited for. These go straight to the cloud through the link: the session machine tracks only
   releases of its own session.

Reports of jobs this process printed for the session are handed to the session (``report``, as
``JobDone``); the app sends them through :meth:`Printer.journal_report`, which swaps in the
journal's request id and journals the cloud's answer. A report that did not get through is
repeated from here every ``retry_interval`` until the cloud answers.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from device_app.journal import (
    IllegalTransition,
    Journal,
    JournalEntry,
    JournalError,
    JournalState,
)
from device_app.ports import (
    ENGINE_REASONS,
    CloudLink,
    EngineDone,
    EngineJob,
    PrintEngine,
    Reply,
)
from device_app.session import JobDone, PrintJob
from protocol import messages as m
from protocol.engine import EngineOutcome, EngineState, engine_id
from protocol.errors import EngineError, MfdError, RemoteError

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
#: Documents fetched at once ahead of their hand-over, and the bytes fetched ahead may hold.
PREFETCH_JOBS = 4
PREFETCH_BYTES = 64 * 1024 * 1024
#: Jobs whose documents are here handed over together (one HANDED commit, one engine write).
HAND_OVER_BATCH = 16
#: How long the printer thread trusts the engine's last state answer (seconds).
STATE_FRESH_S = 0.05
#: Cloud answers to a report that a repeat would only repeat (the cloud decided). Anything else
#: (a timeout, an unreachable broker, ``busy``, ``internal``) is tried again later.
RETRY_CODES = frozenset({"busy", "internal", "unreachable", "timeout", "unknown_outcome"})

Key = tuple[str, str]  # (release_id, job_id)


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What start-up reconciliation did with one journal row."""

    release_id: str
    job_id: str
    #: "printed" / "failed" (reported), "printing" (the engine still has it: reported when it
    #: finishes), "pending" (engine or cloud not reachable: tried again)
    outcome: str
    #: The cloud answered the report (the job is PRINTED, or back to HELD).
    told: bool
    line: str

    def __str__(self) -> str:
        return self.line


@dataclass(frozen=True, slots=True)
class _EngineDone:
    key: Key
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class _Refuse:
    effect: PrintJob
    detail: str


@dataclass(frozen=True, slots=True)
class _Answered:
    key: Key
    outcome: m.Result | MfdError


#: Wakes the printer thread to poll (no work of its own).
_IDLE = object()
_Book = _EngineDone | _Refuse | _Answered
_Item = PrintJob | _Book | object | None


def _sort(item: _Item, jobs: deque[PrintJob], books: list[_Book]) -> bool:
    """File a queue item; True for the stop sentinel."""
    if isinstance(item, PrintJob):
        jobs.append(item)
    elif isinstance(item, _EngineDone | _Refuse | _Answered):
        books.append(item)
    return item is None


def is_final(outcome: m.Result | MfdError) -> bool:
    """Did the cloud decide (so the journal row may be CONFIRMED)?"""
    return not isinstance(outcome, MfdError) or (
        isinstance(outcome, RemoteError) and outcome.code not in RETRY_CODES)


class Printer:
    def __init__(self, link: CloudLink, engine: PrintEngine,
                 report: Callable[[JobDone], None], journal: Journal | None = None, *,
                 retry_interval: float = 30.0, settle_interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.link = link
        self.engine = engine
        self.report = report
        if journal is None:
            log.warning("no release journal file: jobs are never handed over twice, but a "
                        "crash mid-release leaves them RELEASING")
            journal = Journal.memory()
        self.journal = journal
        self.retry_interval = retry_interval
        self.settle_interval = settle_interval
        self.clock = clock
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._lock = threading.Lock()  # the sets below: the app's thread and ours
        self._mine: set[Key] = set()  # submitted by this process's session
        self._awaiting: set[Key] = set()  # handed over; the engine's done callback will come
        self._unsettled: set[Key] = set()  # HANDED, outcome to be asked of the engine
        self._inflight: set[Key] = set()  # a report is on its way to the cloud
        self._last_try: dict[Key, float] = {}
        #: When the printer thread next looks for reports to repeat: never later than the
        #: earliest one is due (its last try + ``retry_interval``).
        self._next_retry = self.clock() + retry_interval
        #: Rounds of the printer thread so far (a test waits on it; a technician may look).
        self.turns = 0
        self._work = threading.Lock()  # one of reconcile / the printer thread at a time
        # Documents being fetched ahead of their hand-over (printer thread only).
        self._prefetched: dict[Key, tuple[int, Future[bytes]]] = {}
        self._state_seen: tuple[float, EngineState] | None = None
        self._fetcher = ThreadPoolExecutor(max_workers=PREFETCH_JOBS,
                                           thread_name_prefix="printer-fetch")
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
                self._mine.add((effect.release_id, effect.job.job_id))
            self._queue.put(effect)

    def journal_report(self, request: m.Request, reply: Reply) -> tuple[m.Request, Reply]:
        """For a ``jobs.printed`` / ``jobs.failed`` the session is about to send: the same report
        with the journal's request id, and a reply that journals the cloud's answer before
        passing it on. Other requests, and jobs the journal does not know, pass unchanged."""
        if not isinstance(request, m.JobPrinted | m.JobFailed):
            return request, reply
        key = (request.release_id, request.job_id)
        try:
            entry = self.journal.get(*key)
        except JournalError as exc:
            log.error("journal unreadable while reporting %s: %s", key, exc)
            return request, reply
        if entry is None or not entry.result:
            return request, reply
        journaled = entry.report()
        if type(journaled) is not type(request):
            log.error("the session reports %s for job %s but the journal says %s; the journal "
                      "is followed", request.TYPE, request.job_id, journaled.TYPE)
        with self._lock:
            self._inflight.add(key)
            self._last_try[key] = self.clock()

        def answered(outcome: m.Result | MfdError) -> None:
            self._queue.put(_Answered(key, outcome))
            reply(outcome)

        return journaled, answered

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        self._fetcher.shutdown(wait=False, cancel_futures=True)

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
                live = self._mine | self._awaiting | self._unsettled
            for entry in self.journal.unconfirmed():
                if entry.key in live:
                    continue  # this run's own job, on its way: not a leftover
                results.append(self._reconcile_one(entry, deadline))
        for r in results:
            log.info("reconcile: %s", r.line)
        if any(r.outcome in ("printing", "pending") for r in results):
            self._queue.put(_IDLE)  # wake the printer thread: it polls what is left
        return results

    def _reconcile_one(self, entry: JournalEntry, deadline: float) -> Reconciled:
        key = entry.key
        if entry.state in (JournalState.RECEIVED, JournalState.FETCHED):
            entry = self.journal.failed(*key, "the device restarted before handing the job to "
                                              "the engine; not printed")
        elif entry.state is JournalState.HANDED:
            try:
                outcome = self._outcome(entry.engine_id)
                while outcome is EngineOutcome.PRINTING and self.clock() < deadline:
                    time.sleep(self.settle_interval)
                    outcome = self._outcome(entry.engine_id)
            except EngineError as exc:
                with self._lock:
                    self._unsettled.add(key)
                return Reconciled(*key, "pending", False,
                                  f"{_name(entry)}: engine not answering ({exc.message}); "
                                  "asked again until it does")
            if outcome is EngineOutcome.PRINTING:
                with self._lock:
                    self._unsettled.add(key)
                return Reconciled(*key, "printing", False,
                                  f"{_name(entry)}: still printing; reported when done")
            entry = self._settled(entry, outcome)
        told, said = self._tell_now(entry)
        word = "printed" if entry.result == "printed" else "failed"
        return Reconciled(*key, word, told,
                          f"{_name(entry)}: {word}; cloud {said}")

    def _settled(self, entry: JournalEntry, outcome: EngineOutcome) -> JournalEntry:
        key = entry.key
        if outcome is EngineOutcome.PRINTED:
            return self.journal.printed(*key)
        if outcome is EngineOutcome.UNKNOWN:
            return self.journal.failed(*key, "the engine never received the job; not printed")
        return self.journal.failed(*key, "the engine failed the job before output")

    def _tell_now(self, entry: JournalEntry) -> tuple[bool, str]:
        """Report ``entry``'s outcome to the cloud, blocking; (acknowledged?, what it said)."""
        key = entry.key
        with self._lock:
            self._last_try[key] = self.clock()
        try:
            result: m.Result | MfdError = self.link.call(entry.report())
        except MfdError as exc:
            result = exc
        return self._answered(key, result), _said(result)

    def _answered(self, key: Key, outcome: m.Result | MfdError) -> bool:
        with self._lock:
            self._inflight.discard(key)
            if not is_final(outcome):
                # Due ``retry_interval`` after it was sent, not at the next round that happens
                # to come after that (which made the gap up to twice as long).
                self._next_retry = min(self._next_retry,
                                       self._last_try.get(key, 0.0) + self.retry_interval)
        if not is_final(outcome):
            log.info("report of %s not answered (%s); tried again later", key, _said(outcome))
            return False
        if isinstance(outcome, MfdError):
            log.warning("the cloud answered the report of job %s of %s with %s: %s", key[1],
                        key[0], outcome.code, outcome.message)
        try:
            self.journal.confirmed(*key, "ack" if not isinstance(outcome, MfdError)
                                   else outcome.code)
        except IllegalTransition:
            pass  # confirmed already (a repeat answered twice)
        except JournalError as exc:
            log.error("cannot journal the cloud's answer for %s: %s", key, exc)
            return False
        with self._lock:  # nothing more will happen to this job
            self._mine.discard(key)
            self._last_try.pop(key, None)
        return True

    # ------------------------------------------------------------ the printer thread

    def link_back(self) -> None:
        """The connection to the cloud came back: the reports that did not get through are
        due now, not up to ``retry_interval`` later (their jobs wait RELEASING meanwhile)."""
        with self._lock:
            for key in self._last_try:
                if key not in self._inflight:
                    self._last_try[key] = float("-inf")
            self._next_retry = float("-inf")
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
                    next_retry = self._next_retry
                timeout = self.settle_interval if polling else max(0.0, next_retry - self.clock())
                try:
                    closing |= _sort(self._queue.get(timeout=timeout), jobs, books)
                except queue.Empty:
                    pass
            # Take whatever else is waiting: bookkeeping that piled up (engine outcomes, cloud
            # answers) goes in one commit between two jobs, not one fsync each.
            while True:
                try:
                    closing |= _sort(self._queue.get_nowait(), jobs, books)
                except queue.Empty:
                    break
            with self._work:
                taken: list[PrintJob] = []
                try:
                    if jobs:
                        self._prefetch(jobs)
                    # Hand-overs first: a person is waiting at the copier. Bookkeeping (engine
                    # outcomes, cloud answers: one commit for all that piled up) is done while
                    # the next document is still on its way, or when no job is waiting.
                    if books and not (jobs and self._fetched(jobs[0])):
                        batch, books = books, []
                        self._bookkeeping(batch)
                    if jobs:
                        taken = [jobs.popleft()]
                        # ... and the jobs behind it whose documents are here already.
                        while jobs and len(taken) < HAND_OVER_BATCH and self._fetched(jobs[0]):
                            taken.append(jobs.popleft())
                        self._print(taken)
                    with self._lock:
                        polling = bool(self._unsettled)
                    if polling:
                        self._poll_unsettled()
                    with self._lock:
                        next_retry = self._next_retry
                    if self.clock() >= next_retry:
                        due = self._retry_reports()
                        with self._lock:
                            self._next_retry = due
                except Exception:
                    log.exception("printer step failed unexpectedly")
                    for job in taken:
                        try:
                            self._recover((job.release_id, job.job.job_id))
                        except Exception:  # the thread must outlive any one job
                            log.exception("could not settle job %s", job.job.job_id)
            self.turns += 1

    def _bookkeeping(self, batch: list[_Book]) -> None:
        tells: list[tuple[Key, bool, str]] = []
        try:
            with self.journal.batch():
                for item in batch:
                    if isinstance(item, _EngineDone):
                        if self._record_outcome(item):
                            tells.append((item.key, item.ok, item.detail))
                    elif isinstance(item, _Answered):
                        self._answered(item.key, item.outcome)
        except JournalError as exc:
            # The cloud must still hear every outcome; rows left HANDED are asked of the engine
            # again by reconciliation and reported with the same request ids.
            log.error("cannot journal %d outcome(s): %s", len(batch), exc)
            tells = [(i.key, i.ok, i.detail) for i in batch if isinstance(i, _EngineDone)]
        # Told only after the commit: the report's request id is read from the journal.
        for key, ok, detail in tells:
            self._tell(key, ok, detail)
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
        ready: list[tuple[PrintJob, bytes]] = []
        for effect in batch:
            document = self._checked_document(effect)
            if document is not None:
                ready.append((effect, document))
        if not ready:
            return
        state = self._engine_state()
        if not state.can_print:
            # It faulted while the documents came: still before any hand-over.
            for effect, _ in ready:
                self._fail((effect.release_id, effect.job.job_id),
                           ENGINE_REASONS.get(state, state.value))
            return
        handed: list[tuple[PrintJob, bytes]] = []
        try:
            with self.journal.batch():
                for effect, document in ready:
                    key = (effect.release_id, effect.job.job_id)
                    try:
                        self.journal.hand_over(*key, engine_id(*key), fetched=True)
                    except IllegalTransition as exc:  # AlreadyHanded above all: never again
                        log.error("%s", exc)
                        continue
                    handed.append((effect, document))
        except JournalError as exc:
            log.error("cannot journal the hand-over of %d job(s): %s", len(ready), exc)
            for effect, _ in ready:
                self._fail((effect.release_id, effect.job.job_id),
                           "this device cannot record the job; not printed")
            return
        if handed:
            self._hand_over(handed)

    def _checked_document(self, effect: PrintJob) -> bytes | None:
        """The job's document, fetched (or prefetched) and matching its SHA-256; None once the
        job has been failed (engine fault before fetching, fetch error, damaged document)."""
        key = (effect.release_id, effect.job.job_id)
        pending = self._prefetched.pop(key, None)
        try:
            if pending is not None:
                document = pending[1].result()  # its engine check came before the fetch
            else:
                state = self._engine_state()
                if not state.can_print:
                    self._fail(key, ENGINE_REASONS.get(state, state.value))
                    return None
                document = self._fetch(effect.release_id, effect.job)
        except MfdError as exc:
            self._fail(key, f"could not fetch the document: {exc.message}")
            return None
        if hashlib.sha256(document).hexdigest() != effect.job.sha256:
            self._fail(key, "document damaged in transit; not printed")
            return None
        return document

    def _hand_over(self, handed: list[tuple[PrintJob, bytes]]) -> None:
        """Give the engine the jobs journaled HANDED, in order: in one write where the engine
        adapter takes several at once (``submit_many``), else one by one."""
        items: list[tuple[Key, EngineJob, EngineDone]] = []
        for effect, document in handed:
            job = effect.job
            key = (effect.release_id, job.job_id)
            with self._lock:
                self._awaiting.add(key)
            items.append((key, EngineJob(job.job_id, job.name, document, job.sha256, job.copies,
                                         release_id=effect.release_id, color=job.color,
                                         duplex=job.duplex),
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

    def _prefetch(self, upcoming: Iterable[PrintJob]) -> None:
        """Queue the fetches of the waiting jobs' documents, in order, while earlier ones are
        journaled and handed over: the cloud round trips overlap instead of adding up, and a
        fetch starts as soon as one of the PREFETCH_JOBS fetchers is free. At most
        PREFETCH_BYTES ahead (a large document is fetched alone, when its turn comes), and only
        while the engine can print: a job refused up front is never fetched."""
        ahead = sum(size for size, _ in self._prefetched.values())
        checked = False
        for effect in upcoming:
            key = (effect.release_id, effect.job.job_id)
            if key in self._prefetched:
                continue
            size = effect.job.size
            if self._prefetched and ahead + size > PREFETCH_BYTES:
                return
            if not checked:
                if not self._engine_state().can_print:
                    return
                checked = True
            self._prefetched[key] = (size, self._fetcher.submit(self._fetch, effect.release_id,
                                                                effect.job))
            ahead += size

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

    def _fetched(self, effect: PrintJob) -> bool:
        pending = self._prefetched.get((effect.release_id, effect.job.job_id))
        return pending is not None and pending[1].done()

    def _recover(self, key: Key) -> None:
        """After a bug mid-job: a job not yet handed over fails (back to HELD); one that may be
        on the engine is asked about, never guessed failed (it may have printed)."""
        self._prefetched.pop(key, None)
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
        self._tell(key, False, detail)

    def _tell(self, key: Key, ok: bool, detail: str) -> None:
        with self._lock:
            mine = key in self._mine
            self._last_try[key] = self.clock()
        if mine:
            self.report(JobDone(key[0], key[1], ok, detail))
            return
        # A job of an earlier run (settled after reconciliation): straight to the cloud.
        entry = self.journal.get(*key)
        if entry is not None and entry.result:
            self._send(entry)

    def _send(self, entry: JournalEntry) -> None:
        key = entry.key
        with self._lock:
            if key in self._inflight:
                return
            self._inflight.add(key)
            self._last_try[key] = self.clock()
        self.link.request(entry.report(), lambda outcome: self._queue.put(_Answered(key, outcome)))

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
                outcome = self._outcome(entry.engine_id)
            except EngineError:
                return  # not back yet; next round
            if outcome is EngineOutcome.PRINTING:
                continue
            with self._lock:
                self._unsettled.discard(key)
            entry = self._settled(entry, outcome)
            self._tell(key, entry.result == "printed", entry.detail)

    def _retry_reports(self) -> float:
        """Repeat every report that is due; returns when the next one will be (a report on
        its way is counted again when its answer comes, in :meth:`_answered`)."""
        now = self.clock()
        next_due = now + self.retry_interval
        for entry in self.journal.unconfirmed():
            if entry.state not in (JournalState.PRINTED, JournalState.FAILED):
                continue
            with self._lock:
                if entry.key in self._inflight:
                    continue
                due = self._last_try.get(entry.key, 0.0) + self.retry_interval
            if due <= now:
                self._send(entry)
                due = now + self.retry_interval
            next_due = min(next_due, due)
        return next_due

    def _outcome(self, eid: str) -> EngineOutcome:
        # Every engine adapter here answers ``outcome`` (the PrintEngine port asks for it); one
        # that does not cannot say what it printed, so its hand-overs stay pending, never
        # guessed at.
        ask = getattr(self.engine, "outcome", None)
        if ask is None:
            raise EngineError("this print engine cannot say what it printed",
                              code="engine_no_outcome")
        outcome: EngineOutcome = ask(eid)
        return outcome

    def _fetch(self, release_id: str, job: m.ReleasedJob) -> bytes:
        if job.size > MAX_DOCUMENT_BYTES:
            raise MfdError(f"document of {job.size} bytes is larger than this device takes")
        parts: list[bytes] = []
        offset = 0
        while offset < job.size:
            chunk = self.link.call(m.FetchDocument(release_id=release_id, job_id=job.job_id,
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



def _name(entry: JournalEntry) -> str:
    return f"job {entry.job_id} ({entry.name}) of {entry.release_id}"


def _said(outcome: m.Result | MfdError) -> str:
    if isinstance(outcome, MfdError):
        return f"{outcome.code}: {outcome.message}"
    return "acknowledged"
