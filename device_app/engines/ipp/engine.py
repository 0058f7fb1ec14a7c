"""The print engine as an IPP printer: the PrintEngine port over IPP/1.1-2.0 (RFC 8010/8011).

Where this fits. On a copier the device app hands released jobs to the print engine; in a
shop whose copier takes jobs over the network (every IPP Everywhere printer, and most copiers),
that engine is a printer URI such as ``ipp://10.1.2.3/ipp/print``. This adapter implements
:class:`device_app.ports.PrintEngine` against it, with the wire format in codec.py and
model.py (why our own codec: see codec.py's docstring) and the HTTP POST in transport.py,
from the standard library.

Theory of operation.

* Two threads of its own, so the caller never waits on the network. ``ipp-status`` asks the
  printer for its state every ``status_interval`` and keeps the answer; :meth:`IppEngine.state`
  returns that kept answer at once (OFFLINE until the first answer, and whenever the printer
  does not answer). ``ipp-jobs`` takes submitted jobs one at a time, in order.
* A job: Get-Printer-Attributes first, fresh, both to refuse at once a printer that cannot print
  now (jam, no paper, door open, offline: the job goes back to HELD, nothing is lost) and to
  learn which of sides / print-color-mode / copies it supports, so that we only send what it
  takes. Then Print-Job with the PDF, then Get-Job-Attributes every ``poll_interval`` until the
  job is completed (printed), aborted or canceled (not printed). Each answer's
  job-impressions-completed, when it grows, goes to ``on_pages`` (ports.ReportsPages) before
  ``done``: how far the job is, as the printer counts it. ippeveprinter keeps it at 0 unless
  its print command says otherwise (``ATTR: job-impressions-completed=N`` on stderr); a
  printer that never counts leaves the panel at "printing" until the job ends.
* ``done`` is called exactly once per job, on the ``ipp-jobs`` thread (after :meth:`close`, at
  once on the caller's), and nothing raises out of :meth:`IppEngine.submit`: network errors
  become ``done(False, "printer unreachable: ...")``. Like the emulated engine, a document whose
  SHA-256 does not match is refused, never sent.
* A job the printer holds (pending-held) or has stopped on (processing-stopped: a jam mid-job)
  is waited for, however long: it will print once someone at the printer acts.
* Once the printer has taken a job, losing contact does not fail it at once: the job may well be
  printing. We keep asking for ``lost_after`` seconds; after that the job is reported failed with
  a detail that says to check the output, because failing (the job is HELD again) loses nothing
  while claiming it printed could.
* A printer that no longer knows a job it took (client-error-not-found) has purged it after
  completion, which busy printers do within seconds; as CUPS' IPP backend does, we take that as
  printed.
* We speak IPP 2.0 (IPP Everywhere), and 1.1 to a printer that answers
  server-error-version-not-supported.

What became of a job (:meth:`IppEngine.outcome`), also after the device restarted. Every job
carries its engine id (``<release_id>/<job_id>``) at the end of its job-name, after the human
name: ``Quarterly report.pdf [rel_x/j_y]`` (:func:`job_name`; the human part is cut so that the
whole stays within :data:`MAX_JOB_NAME_BYTES`). Printers echo job-name in Get-Jobs, ippeveprinter
and CUPS included, so a new IppEngine finds the job again. A job this object took is answered
from its own record (PRINTED / FAILED as its ``done`` said, PRINTING until then). Any other id
is looked up with Get-Jobs (which-jobs ``not-completed``, then ``completed``: in that order, so a
job that completes in between is still seen): completed -> PRINTED; aborted or canceled ->
FAILED; pending, held, processing, stopped -> PRINTING; no such job -> UNKNOWN, and the id is
fenced: this object refuses it from then on. Printer unreachable, or an answer that cannot
settle it (an error status, jobs whose names the printer hides) -> EngineError; never a guess.
:meth:`IppEngine.submit` refuses an id this object took, saw on the printer or fenced with
EngineError ``duplicate_job`` (as the other engines do), sending nothing.

What UNKNOWN does not cover, because a printer is not a journal:

* The fence lives in this object (the device process); the printer knows nothing of it. It
  holds for what it is for because IPP leaves no hand-over in flight for long: whatever the
  crashed process had sent reaches the printer within moments (its socket buffers, then the
  connection closes), and the printer lists the job as soon as it has read the request
  (ippeveprinter and CUPS abort it if the document was cut short: FAILED). A device restart
  takes longer than that; a printer that sat on a request for longer could still print it.
* A printer forgets finished jobs: ippeveprinter 60 s after they end, most copiers after a few
  hundred jobs. A job that printed and was forgotten before the device asks looks exactly like
  one the printer never got, and is answered UNKNOWN (the cloud puts it back to HELD: it may be
  printed twice). Restarts are quick, so the window is short, but it is there; the printer's
  job history is what bounds it.
* A printer that cuts job names shorter than ours loses the tag: such a job is never found
  again (logged at WARNING when seen, see :meth:`IppEngine._follow`).

Printer state: printer-state and printer-state-reasons map to :class:`EngineState` as
printer_state.py says; reasons it does not know are logged once each.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from device_app.engines.ipp import codec as ipp
from device_app.engines.ipp.answers import job_outcome, refusal, status_message
from device_app.engines.ipp.model import (
    Attribute,
    AttributeGroup,
    GroupTag,
    JobState,
    Message,
    Operation,
    RangeOfInteger,
    Status,
    ValueTag,
)
from device_app.engines.ipp.printer_state import engine_state
from device_app.engines.ipp.transport import PrinterUnreachable, Transport, parse_printer_uri
from device_app.ports import EnginePages
from protocol.engine import ENGINE_REASONS, EngineDone, EngineJob, EngineOutcome, EngineState
from protocol.errors import ConfigError, EngineError

__all__ = ["IppEngine", "PrinterUnreachable", "engine_state", "job_name"]

log = logging.getLogger(__name__)

PDF: Final = "application/pdf"
#: JobFailed.reason on the wire holds 200 characters; details never exceed it.
MAX_DETAIL: Final = 200
#: RFC 8011: name(MAX) is 255 octets. Job names stay well below it: the engine-id tag at the
#: end must survive printers that keep shorter names, and ippeveprinter -k builds its spool file
#: name (255 bytes at most on the file system) from the job name.
MAX_JOB_NAME_BYTES: Final = 200


def _short(text: str, limit: int = MAX_DETAIL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tag(engine_id: str) -> str:
    return f" [{engine_id}]"


def job_name(name: str, engine_id: str, limit: int = MAX_JOB_NAME_BYTES) -> str | None:
    """The job-name sent to the printer: the human name, cut (never mid-character) so that the
    whole fits ``limit`` UTF-8 bytes, then `` [<engine id>]``. None if the tag alone does not
    fit (the job could not be found again)."""
    tag = _tag(engine_id)
    room = limit - len(tag.encode("utf-8"))
    if room < len("untitled"):
        return None
    human = name.encode("utf-8")[:room].decode("utf-8", "ignore").strip() or "untitled"
    return human + tag


def _text_value(attribute: Attribute | None) -> str | None:
    value = attribute.first if attribute is not None else None
    if isinstance(value, ipp.TextWithLanguage):
        return value.text
    return value if isinstance(value, str) else None


# --------------------------------------------------------------------------- the engine

_PRINTER_STATE_ATTRS: Final = ("printer-state", "printer-state-reasons", "printer-state-message",
                               "printer-is-accepting-jobs")
_CAPABILITY_ATTRS: Final = ("sides-supported", "print-color-mode-supported", "copies-supported")
_JOB_ATTRS: Final = ("job-state", "job-state-reasons", "job-state-message", "job-name",
                      "job-impressions-completed")
_LISTED_JOB_ATTRS: Final = ("job-id", "job-name", "job-state")

_SHUTDOWN_QUEUED: Final = "the device is shutting down; not printed"
_SHUTDOWN_TAKEN: Final = ("the device stopped before the printer finished the job; check the "
                          "printer's output")


class _Closing(Exception):
    """close() was called while a job was being followed."""


@dataclass(slots=True)
class _Record:
    """What this object knows of one engine id."""

    outcome: EngineOutcome
    #: submitted: handed to this object; printer: seen in Get-Jobs; fenced: answered UNKNOWN.
    source: str


def _listed_outcome(states: list[int | None]) -> EngineOutcome:
    """The outcome for the job-states of the printer's jobs tagged with one engine id (one,
    unless the id was sent twice): paper out beats all, then still going, then failed."""
    if JobState.COMPLETED in states:
        return EngineOutcome.PRINTED
    if all(s in (JobState.ABORTED, JobState.CANCELED) for s in states):
        return EngineOutcome.FAILED
    return EngineOutcome.PRINTING  # pending, held, processing, stopped, or a state we do not know


class IppEngine:
    """PrintEngine over IPP. ``uri``: ``ipp://host[:port]/path`` (or ipps, http, https).

    ``timeout`` bounds each network operation; ``poll_interval`` is how often a submitted job is
    asked about; ``status_interval`` how often the printer state behind :meth:`state` is
    refreshed; ``lost_after`` how long a job the printer took survives losing contact.
    ``ssl_context`` is used for ipps/https (a context trusting the printer's certificate).
    """

    def __init__(self, uri: str, *, timeout: float = 10.0, poll_interval: float = 0.5,
                 status_interval: float = 2.0, lost_after: float = 60.0,
                 user_name: str = "mfdkit", ssl_context: ssl.SSLContext | None = None) -> None:
        for key, value in (("timeout", timeout), ("poll_interval", poll_interval),
                           ("status_interval", status_interval), ("lost_after", lost_after)):
            if not value > 0:
                raise ConfigError(f"{key} must be positive, not {value!r}")
        self.uri = uri
        self._target = parse_printer_uri(uri)
        self.poll_interval = poll_interval
        self.status_interval = status_interval
        self.lost_after = lost_after
        self.user_name = user_name
        self._transport = Transport(self._target, timeout, ssl_context)
        self._lock = threading.Lock()
        self._state = EngineState.OFFLINE
        self._state_detail = "not reached yet"
        self._reported_unknown: set[str] = set()
        #: Every engine id this object took, saw on the printer or fenced (see outcome()).
        self._records: dict[str, _Record] = {}
        self._status_known = threading.Event()
        self._closing = threading.Event()
        self._jobs: queue.Queue[tuple[EngineJob, EngineDone] | None] = queue.Queue()
        #: Called on the ipp-jobs thread with (engine id, impressions completed) as they grow.
        self.on_pages: EnginePages | None = None
        self._status_thread = threading.Thread(target=self._run_status, name="ipp-status",
                                               daemon=True)
        self._jobs_thread = threading.Thread(target=self._run_jobs, name="ipp-jobs",
                                             daemon=True)
        self._status_thread.start()
        self._jobs_thread.start()

    # ----------------------------------------------------------------- the port

    def state(self) -> EngineState:
        """The printer's state as last seen (never waits on the network)."""
        with self._lock:
            return self._state

    @property
    def state_detail(self) -> str:
        """Why the state is what it is (printer-state-message, or the network error)."""
        with self._lock:
            return self._state_detail

    def submit(self, job: EngineJob, done: EngineDone) -> None:
        """Queue ``job``; ``done`` is called once, later, on this engine's job thread. Raises
        EngineError ``duplicate_job`` (nothing sent, ``done`` never called) for an engine id
        this object took before, saw on the printer, or fenced (answered UNKNOWN for)."""
        eid = job.engine_id
        with self._lock:
            known = self._records.get(eid)
            if known is None:
                self._records[eid] = _Record(EngineOutcome.PRINTING, "submitted")
        if known is not None:
            why = {"fenced": "was reported unknown by this engine before it arrived; a late "
                             "hand-over is never printed",
                   "printer": "is on the printer already; it is not printed twice"}.get(
                       known.source, "was handed to this engine before; it is not printed twice")
            log.warning("printer %s: job %s refused: it %s", self.uri, eid, why)
            raise EngineError(f"job {eid} {why}", code="duplicate_job")
        if self._closing.is_set():
            self._finish(job, done, False, _SHUTDOWN_QUEUED)
            return
        self._jobs.put((job, done))

    def outcome(self, engine_id: str) -> EngineOutcome:
        """What became of ``engine_id`` (see the module docstring): from this object's record
        if it took the job, else from the printer's job list. UNKNOWN fences the id. Raises
        EngineError (PrinterUnreachable when there is no answer) if the printer cannot say.
        Blocking (two IPP requests): not for the UI thread."""
        with self._lock:
            known = self._records.get(engine_id)
            if known is not None and (known.source != "printer" or known.outcome.final):
                return known.outcome
        listed = self._listed_states(engine_id)
        with self._lock:
            now = self._records.get(engine_id)
            if now is not None and now.source != "printer":
                return now.outcome  # submitted (or fenced) while we asked: that record rules
            if listed:
                outcome = _listed_outcome(listed)
            elif now is not None:
                # Seen on the printer, gone now: purged after it ended, as in _follow.
                log.info("printer %s no longer lists job %s; taken as printed", self.uri,
                         engine_id)
                outcome = EngineOutcome.PRINTED
            else:
                self._records[engine_id] = _Record(EngineOutcome.UNKNOWN, "fenced")
                log.warning("printer %s has no job %s: unknown, and refused from now on",
                            self.uri, engine_id)
                return EngineOutcome.UNKNOWN
            self._records[engine_id] = _Record(outcome, "printer")
        log.info("printer %s: job %s is %s", self.uri, engine_id, outcome.value)
        return outcome

    def wait_status(self, timeout: float) -> bool:
        """Wait until the printer has answered, or failed to answer, at least once."""
        return self._status_known.wait(timeout)

    def close(self) -> None:
        """Stop both threads. Queued jobs fail (not printed); a job the printer has already
        taken is reported failed with a detail that says to check the output."""
        self._closing.set()
        self._jobs.put(None)
        wait = self._transport.timeout + 2.0
        self._jobs_thread.join(wait)
        self._status_thread.join(wait)

    # ----------------------------------------------------------------- printer state

    def _run_status(self) -> None:
        while not self._closing.is_set():
            try:
                self._refresh_state()
            except Exception:  # a bug must not stop the state from being kept
                log.exception("reading the printer's state failed unexpectedly")
            self._closing.wait(self.status_interval)

    def _refresh_state(self) -> Message | None:
        """Ask the printer; keep the state it gives. The response, or None if none came."""
        try:
            response = self._get_printer_attributes(_PRINTER_STATE_ATTRS)
        except EngineError as exc:
            self._set_state(EngineState.OFFLINE, exc.message)
            return None
        self._set_state(*self._state_of(response))
        return response

    def _get_printer_attributes(self, names: Iterable[str]) -> Message:
        response = self._transport.call(Operation.GET_PRINTER_ATTRIBUTES, (
            ipp.operation_attributes(
                self._target.printer_uri,
                Attribute.of("requesting-user-name", ValueTag.NAME, self.user_name),
                Attribute.of("requested-attributes", ValueTag.KEYWORD, *names)),))
        if not ipp.is_successful(response.code):
            raise EngineError(f"the printer answered {ipp.status_name(response.code)}"
                              f"{status_message(response)}")
        return response

    def _state_of(self, response: Message) -> tuple[EngineState, str]:
        printer_state = response.first(GroupTag.PRINTER, "printer-state")
        reasons = list(ipp.keywords(response.get(GroupTag.PRINTER, "printer-state-reasons")))
        accepting = response.first(GroupTag.PRINTER, "printer-is-accepting-jobs")
        state, unknown = engine_state(
            printer_state if isinstance(printer_state, int) else None, reasons,
            accepting if isinstance(accepting, bool) else None)
        for reason in unknown:
            if reason not in self._reported_unknown:
                self._reported_unknown.add(reason)
                log.info("printer %s reports %r, which mfdkit does not map; shown as %s",
                         self.uri, reason, state.value)
        message = response.first(GroupTag.PRINTER, "printer-state-message")
        detail = message if isinstance(message, str) and message else ", ".join(reasons)
        return state, detail

    def _set_state(self, state: EngineState, detail: str) -> None:
        with self._lock:
            before, self._state, self._state_detail = self._state, state, detail
        if state is not before:
            level = logging.INFO if state.can_print else logging.WARNING
            log.log(level, "printer %s: %s -> %s (%s)", self.uri, before.value, state.value,
                    detail)
        self._status_known.set()

    def _listed_states(self, engine_id: str) -> list[int | None]:
        """The job-state of each printer job tagged with ``engine_id`` (empty: none). Raises
        EngineError if the printer cannot be asked or its list cannot settle it."""
        tag = _tag(engine_id)
        states: list[int | None] = []
        unnamed = 0
        # not-completed first: a job that completes between the two requests is then listed
        # by the second (the other order could miss it).
        for which in ("not-completed", "completed"):
            response = self._transport.call(Operation.GET_JOBS, (
                ipp.operation_attributes(
                    self._target.printer_uri,
                    Attribute.of("requesting-user-name", ValueTag.NAME, self.user_name),
                    Attribute.of("which-jobs", ValueTag.KEYWORD, which),
                    Attribute.of("requested-attributes", ValueTag.KEYWORD,
                                 *_LISTED_JOB_ATTRS)),))
            if not ipp.is_successful(response.code):
                raise EngineError(f"the printer answered Get-Jobs with "
                                  f"{ipp.status_name(response.code)}{status_message(response)}; "
                                  f"cannot tell what became of job {engine_id}")
            for group in response.groups:
                if group.tag != GroupTag.JOB:
                    continue
                name = _text_value(group.get("job-name"))
                if name is None:
                    unnamed += 1
                elif name.endswith(tag):
                    state = group.get("job-state")
                    raw = state.first if state is not None else None
                    states.append(raw if isinstance(raw, int) and not isinstance(raw, bool)
                                  else None)
        if not states and unnamed:
            # Privacy settings (CUPS' JobPrivateValues) hide names: "not there" is a guess.
            raise EngineError(f"the printer does not show the names of {unnamed} of its jobs; "
                              f"cannot tell whether it has job {engine_id}")
        return states

    # ----------------------------------------------------------------- jobs

    def _run_jobs(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, done = item
            if self._closing.is_set():
                ok, detail = False, _SHUTDOWN_QUEUED
            else:
                try:
                    ok, detail = self._print(job)
                except _Closing:
                    ok, detail = False, _SHUTDOWN_TAKEN
                except Exception:
                    log.exception("printing job %s over IPP failed unexpectedly", job.job_id)
                    ok, detail = False, "the device failed; not printed"
            self._finish(job, done, ok, detail)
        # Jobs submitted while close() ran: fail them, never leave a done uncalled.
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._finish(item[0], item[1], False, _SHUTDOWN_QUEUED)

    def _finish(self, job: EngineJob, done: EngineDone, ok: bool, detail: str) -> None:
        detail = _short(detail)
        with self._lock:  # before done: outcome() agrees with done from then on
            self._records[job.engine_id] = _Record(
                EngineOutcome.PRINTED if ok else EngineOutcome.FAILED, "submitted")
        if ok:
            log.info("printer %s printed job %s", self.uri, job.job_id)
        else:
            log.warning("printer %s did not print job %s: %s", self.uri, job.job_id, detail)
        try:
            done(job.job_id, ok, detail)
        except Exception:
            log.exception("the done callback for job %s failed", job.job_id)

    def _print(self, job: EngineJob) -> tuple[bool, str]:
        # As the emulated engine does: a damaged document is refused, never printed (the caller
        # checked it too, but a copy is cheap next to paper printed from bad bytes).
        try:
            intact = job.body.sha256() == job.sha256  # read in pieces: it may be a large file
        except OSError as exc:
            return False, f"the document cannot be read ({exc}); not printed"
        if not intact:
            return False, "document damaged (SHA-256 mismatch); not printed"
        try:
            printer = self._get_printer_attributes(_PRINTER_STATE_ATTRS + _CAPABILITY_ATTRS)
        except PrinterUnreachable as exc:
            self._set_state(EngineState.OFFLINE, exc.message)
            return False, exc.message
        except EngineError as exc:
            return False, exc.message
        state, detail = self._state_of(printer)
        self._set_state(state, detail)
        if not state.can_print:
            return False, ENGINE_REASONS.get(state, state.value)
        job_attrs = self._job_template(job, printer)
        if isinstance(job_attrs, str):
            return False, job_attrs
        name = job_name(job.name, job.engine_id)
        if name is None:
            return False, "the job's engine id is too long for a job name; not printed"
        groups = (
            ipp.operation_attributes(
                self._target.printer_uri,
                Attribute.of("requesting-user-name", ValueTag.NAME, self.user_name),
                Attribute.of("job-name", ValueTag.NAME, name),
                Attribute.of("document-format", ValueTag.MIME_MEDIA_TYPE, PDF)),
            AttributeGroup(GroupTag.JOB, job_attrs),
        )
        try:
            response = self._transport.call(Operation.PRINT_JOB, groups, job.body)
        except PrinterUnreachable as exc:
            return False, exc.message
        except EngineError as exc:
            return False, exc.message
        if not ipp.is_successful(response.code):
            why = refusal(response)
            why = f"{why} " if why else ""
            return False, (f"printer refused the job: {why}({ipp.status_name(response.code)}"
                           f"{status_message(response)})")
        printer_job = response.first(GroupTag.JOB, "job-id")
        if not isinstance(printer_job, int) or isinstance(printer_job, bool):
            return False, ("the printer took the job but gave no job id to follow it; check its "
                           "output before printing again")
        log.info("printer %s took job %s as its job %d (%d bytes)", self.uri, job.job_id,
                 printer_job, job.body.size)
        return self._follow(printer_job, response, job.engine_id)

    def _tell_pages(self, eid: str, response: Message, before: int) -> int:
        """Pass on job-impressions-completed if it grew; the count now."""
        done = response.first(GroupTag.JOB, "job-impressions-completed")
        on_pages = self.on_pages
        if not isinstance(done, int) or isinstance(done, bool) or done <= before:
            return before
        if on_pages is not None:
            try:
                on_pages(eid, done)
            except Exception:
                log.exception("the page callback for job %s failed", eid)
        return done

    def _job_template(self, job: EngineJob, printer: Message) -> tuple[Attribute, ...] | str:
        """Job attributes for what the printer supports, or why it cannot print the job."""
        attrs: list[Attribute] = []
        copies_supported = printer.first(GroupTag.PRINTER, "copies-supported")
        if isinstance(copies_supported, RangeOfInteger) and job.copies in copies_supported:
            attrs.append(Attribute.of("copies", ValueTag.INTEGER, job.copies))
        elif job.copies > 1:
            return f"the printer cannot print {job.copies} copies of a job"
        # As released; None leaves the printer's default in force.
        duplex, color = job.duplex, job.color
        sides = set(ipp.keywords(printer.get(GroupTag.PRINTER, "sides-supported")))
        if duplex is not None:
            want = "two-sided-long-edge" if duplex else "one-sided"
            if want in sides:
                attrs.append(Attribute.of("sides", ValueTag.KEYWORD, want))
            elif duplex:
                log.info("printer %s has no two-sided printing; job %s prints one-sided",
                         self.uri, job.job_id)
        modes = set(ipp.keywords(printer.get(GroupTag.PRINTER, "print-color-mode-supported")))
        if color is not None:
            want = "color" if color else "monochrome"
            if want in modes:
                attrs.append(Attribute.of("print-color-mode", ValueTag.KEYWORD, want))
        return tuple(attrs)

    def _follow(self, printer_job: int, response: Message, eid: str) -> tuple[bool, str]:
        """Ask about the job until it ends. Raises _Closing if close() is called meanwhile.
        Checks once that the printer kept the engine id's tag in the job-name."""
        tag = _tag(eid)
        last_contact = time.monotonic()
        name_checked = False
        impressions = 0
        while True:
            impressions = self._tell_pages(eid, response, impressions)
            outcome = job_outcome(response)
            if outcome is not None:
                return outcome
            if self._closing.wait(self.poll_interval):
                raise _Closing
            try:
                response = self._transport.call(Operation.GET_JOB_ATTRIBUTES, (
                    ipp.operation_attributes(
                        self._target.printer_uri,
                        Attribute.of("job-id", ValueTag.INTEGER, printer_job),
                        Attribute.of("requesting-user-name", ValueTag.NAME, self.user_name),
                        Attribute.of("requested-attributes", ValueTag.KEYWORD, *_JOB_ATTRS)),))
            except EngineError as exc:
                if time.monotonic() - last_contact > self.lost_after:
                    return False, (f"{exc.message} (lost contact after the printer took the "
                                   "job; check its output before printing again)")
                log.debug("asking about printer job %d: %s; trying again", printer_job,
                          exc.message)
                continue
            if response.code == Status.CLIENT_ERROR_NOT_FOUND:
                log.info("printer %s no longer lists its job %d; taken as printed", self.uri,
                         printer_job)
                return True, ""
            if not ipp.is_successful(response.code):
                # Busy, or a printer that hides jobs for a moment: like losing contact.
                if time.monotonic() - last_contact > self.lost_after:
                    return False, (f"the printer stopped answering about the job "
                                   f"({ipp.status_name(response.code)}); check its output "
                                   "before printing again")
                continue
            last_contact = time.monotonic()
            if not name_checked:
                name = _text_value(response.get(GroupTag.JOB, "job-name"))
                if name is not None:
                    name_checked = True
                    if not name.endswith(tag):
                        log.warning("printer %s keeps its job %d as %r, without the engine id "
                                    "%r: after a restart this device cannot find it again",
                                    self.uri, printer_job, name, tag.strip())
