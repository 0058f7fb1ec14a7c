"""Where a job's outcome becomes the cloud's record: ``jobs.printed`` / ``jobs.failed``, told
once and repeated until the cloud answers.

A job this process printed for the session is handed to the session (``report``, as
``JobDone``), which sends it; :meth:`Reports.journal_report` swaps in the journal's request id
(drawn when the row was created, so a report repeated after a crash or a lost answer gets the
cloud's stored answer) and journals the answer. A job of an earlier run goes straight to the
cloud through the link. A report that did not get through is repeated every ``retry_interval``,
and at once when the link comes back. An answer is final when the cloud decided (see
:func:`is_final`); then the row is CONFIRMED and nothing more happens to the job.

The state here is shared with the printer (release.py) and guarded by its lock; answers that
arrive on the link's thread are posted to the printer thread (``post``), never handled on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from device_app.ports import CloudLink, Reply
from device_app.printing.journal import (
    IllegalTransition,
    Journal,
    JournalEntry,
    JournalError,
    JournalState,
)
from device_app.session import JobDone
from protocol import messages as m
from protocol.errors import MfdError, RemoteError

log = logging.getLogger(__name__)

#: Cloud answers to a report that a repeat would only repeat (the cloud decided). Anything else
#: (a timeout, an unreachable broker, ``busy``, ``internal``) is tried again later.
RETRY_CODES = frozenset({"busy", "internal", "unreachable", "timeout", "unknown_outcome"})

Key = tuple[str, str]  # (release_id, job_id)


@dataclass(frozen=True, slots=True)
class Answered:
    """The cloud's answer to a report, for the printer thread to journal."""

    key: Key
    outcome: m.Result | MfdError


def is_final(outcome: m.Result | MfdError) -> bool:
    """Did the cloud decide (so the journal row may be CONFIRMED)?"""
    return not isinstance(outcome, MfdError) or (
        isinstance(outcome, RemoteError) and outcome.code not in RETRY_CODES)


def said(outcome: m.Result | MfdError) -> str:
    """The cloud's answer in a few words, for a log line."""
    if isinstance(outcome, MfdError):
        return f"{outcome.code}: {outcome.message}"
    return "acknowledged"


class Reports:
    """What the cloud has been told of each job, and what it still must be."""

    def __init__(self, journal: Journal, link: CloudLink, report: Callable[[JobDone], None],
                 post: Callable[[Answered], None], lock: threading.Lock, *,
                 retry_interval: float, clock: Callable[[], float]) -> None:
        self.journal = journal
        self.link = link
        self.report = report
        self.retry_interval = retry_interval
        self.clock = clock
        self._post = post
        self._lock = lock  # the printer's: guards the sets below and next_retry
        self.mine: set[Key] = set()  # submitted by this process's session
        self._inflight: set[Key] = set()  # a report is on its way to the cloud
        self._last_try: dict[Key, float] = {}
        #: When the printer thread next looks for reports to repeat: never later than the
        #: earliest one is due (its last try + ``retry_interval``).
        self.next_retry = self.clock() + retry_interval

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
            self._post(Answered(key, outcome))
            reply(outcome)

        return journaled, answered

    def tell_now(self, entry: JournalEntry) -> tuple[bool, str]:
        """Report ``entry``'s outcome to the cloud, blocking; (acknowledged?, what it said)."""
        key = entry.key
        with self._lock:
            self._last_try[key] = self.clock()
        try:
            result: m.Result | MfdError = self.link.call(entry.report())
        except MfdError as exc:
            result = exc
        return self.answered(key, result), said(result)

    def answered(self, key: Key, outcome: m.Result | MfdError) -> bool:
        """Journal the cloud's answer; True if it was final (the row is CONFIRMED)."""
        with self._lock:
            self._inflight.discard(key)
            if not is_final(outcome):
                # Due ``retry_interval`` after it was sent, not at the next round that happens
                # to come after that (which made the gap up to twice as long).
                self.next_retry = min(self.next_retry,
                                      self._last_try.get(key, 0.0) + self.retry_interval)
        if not is_final(outcome):
            log.info("report of %s not answered (%s); tried again later", key, said(outcome))
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
            self.mine.discard(key)
            self._last_try.pop(key, None)
        return True

    def link_back(self) -> None:
        """The connection to the cloud came back: the reports that did not get through are
        due now, not up to ``retry_interval`` later (their jobs wait RELEASING meanwhile)."""
        with self._lock:
            for key in self._last_try:
                if key not in self._inflight:
                    self._last_try[key] = float("-inf")
            self.next_retry = float("-inf")

    def detach(self, release_id: str) -> None:
        """The session let go of ``release_id``: its jobs are no longer "mine" (``tell`` sends
        their outcomes straight to the cloud), and an outcome already handed to the session,
        which may never have sent it, is sent now (a repeat carries the same request id)."""
        with self._lock:
            keys = {k for k in self.mine if k[0] == release_id}
            self.mine -= keys
        for key in sorted(keys):
            try:
                entry = self.journal.get(*key)
            except JournalError as exc:
                log.error("journal unreadable while detaching %s: %s", key, exc)
                continue
            if entry is not None and entry.state in (JournalState.PRINTED, JournalState.FAILED):
                self._send(entry)  # not if its report is on its way already (``_send``)

    def tell(self, key: Key, ok: bool, detail: str) -> None:
        """A journaled outcome, to the session if it is its job, else to the cloud."""
        with self._lock:
            mine = key in self.mine
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
        self.link.request(entry.report(), lambda outcome: self._post(Answered(key, outcome)))

    def retry_due(self) -> float:
        """Repeat every report that is due; returns when the next one will be (a report on
        its way is counted again when its answer comes, in :meth:`answered`)."""
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
