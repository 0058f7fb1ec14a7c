"""IppEngine: the PrintEngine port over IPP.

Three layers, fastest first:

* the state mapping and URI parsing, as pure functions;
* the engine against a scripted printer in this process (``FakePrinter``: an HTTP server that
  answers with :mod:`device_app.engines.ipp.codec`), for what a real printer will not do on
  cue: jam, run out of paper, forget a job, go silent, refuse with "busy";
* the engine against CUPS' ippeveprinter (integration), for the wire: the PDF lands in its
  spool byte for byte, a refused format, an aborted job, options as the printer saw them, and
  what a new engine object (the device restarted) finds out about jobs by their engine id.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ipp_printer import ABORT, HOLD, DnsSd, IppEvePrinter, free_port

from cloud.demo import demo_document
from device_app.engines.ipp import codec as ipp
from device_app.engines.ipp.codec import Attribute, AttributeGroup, GroupTag, Message, ValueTag
from device_app.engines.ipp.engine import MAX_JOB_NAME_BYTES, IppEngine, job_name
from device_app.engines.ipp.printer_state import engine_state
from device_app.engines.ipp.transport import PrinterUnreachable, parse_printer_uri
from device_app.ports import PrintEngine
from protocol.engine import ENGINE_REASONS, EngineJob, EngineOutcome, EngineState
from protocol.errors import ConfigError, EngineError

# --------------------------------------------------------------------------- helpers


def make_job(name: str, pages: int = 1, **options: object) -> EngineJob:
    """Job ``job-<name>``; options: copies, release_id, color, duplex."""
    document = demo_document(name, pages)
    return EngineJob(f"job-{name}", name, document, hashlib.sha256(document).hexdigest(),
                     **options)  # type: ignore[arg-type]


class Outcomes:
    """A done callback that records (job_id, ok, detail) and lets a test wait for them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool, str]] = []
        self.threads: list[str] = []
        self._cv = threading.Condition()

    def __call__(self, job_id: str, ok: bool, detail: str) -> None:
        with self._cv:
            self.calls.append((job_id, ok, detail))
            self.threads.append(threading.current_thread().name)
            self._cv.notify_all()

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[tuple[str, bool, str]]:
        with self._cv:
            assert self._cv.wait_for(lambda: len(self.calls) >= count, timeout), \
                f"only {len(self.calls)} of {count} outcomes after {timeout} s: {self.calls}"
            return list(self.calls)


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def test_ipp_engine_implements_the_port() -> None:
    engine: PrintEngine = IppEngine(f"ipp://127.0.0.1:{free_port()}/ipp/print")
    assert isinstance(engine, IppEngine)
    engine.close()


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(("printer_state", "reasons", "expected"), [
    (3, ["none"], EngineState.READY),
    (4, ["none"], EngineState.PRINTING),
    (5, ["none"], EngineState.OFFLINE),
    (None, [], EngineState.OFFLINE),
    (9, [], EngineState.OFFLINE),
    (5, ["media-jam-error"], EngineState.JAM),
    (5, ["media-jam"], EngineState.JAM),  # no suffix means error (RFC 8011 5.4.12)
    (5, ["media-empty-error"], EngineState.NO_PAPER),
    (5, ["media-needed-error"], EngineState.NO_PAPER),
    (5, ["door-open-error"], EngineState.DOOR_OPEN),
    (5, ["cover-open"], EngineState.DOOR_OPEN),
    (5, ["paused"], EngineState.OFFLINE),
    (5, ["media-empty-warning"], EngineState.NO_PAPER),  # a stopped printer: any severity
    (3, ["media-jam-report"], EngineState.READY),  # history, left after a cleared jam
    (4, ["media-empty-warning"], EngineState.PRINTING),  # another tray still has paper
    (3, ["media-low-report", "toner-low-warning"], EngineState.READY),
    (5, ["media-empty-error", "cover-open-error", "media-jam-error"], EngineState.JAM),
    (5, ["media-empty-error", "door-open-error"], EngineState.DOOR_OPEN),
])
def test_engine_state_mapping(printer_state: int | None, reasons: list[str],
                              expected: EngineState) -> None:
    state, unknown = engine_state(printer_state, reasons)
    assert state is expected
    assert unknown == ()


def test_unknown_reasons_are_returned_for_logging_and_do_not_change_the_state() -> None:
    assert engine_state(3, ["none", "flux-capacitor-error"]) == (EngineState.READY,
                                                                 ("flux-capacitor-error",))


def test_a_printer_not_accepting_jobs_is_offline() -> None:
    assert engine_state(3, ["none"], accepting=False)[0] is EngineState.OFFLINE


@pytest.mark.parametrize(("uri", "wire", "host", "port", "path", "printer_uri"), [
    ("ipp://printer.local/ipp/print", "http", "printer.local", 631, "/ipp/print",
     "ipp://printer.local/ipp/print"),
    ("ipps://10.0.0.5:8443/ipp/print", "https", "10.0.0.5", 8443, "/ipp/print",
     "ipps://10.0.0.5:8443/ipp/print"),
    ("http://[::1]:8631/printers/a", "http", "::1", 8631, "/printers/a",
     "ipp://[::1]:8631/printers/a"),
    ("ipp://host", "http", "host", 631, "/", "ipp://host/"),
])
def test_printer_uris(uri: str, wire: str, host: str, port: int, path: str,
                      printer_uri: str) -> None:
    target = parse_printer_uri(uri)
    assert (target.scheme, target.host, target.port, target.path, target.printer_uri) == (
        wire, host, port, path, printer_uri)


@pytest.mark.parametrize("uri", ["lpd://host/queue", "ipp:///ipp/print", "ipp://host:99999/",
                                 "printer"])
def test_bad_printer_uris_are_config_errors(uri: str) -> None:
    with pytest.raises(ConfigError, match="printer uri"):
        IppEngine(uri)


def test_bad_intervals_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="poll_interval"):
        IppEngine("ipp://127.0.0.1/ipp/print", poll_interval=0)


def test_the_job_name_carries_the_engine_id_after_the_human_name() -> None:
    assert job_name("Quarterly report.pdf", "rel_x/j_y") == "Quarterly report.pdf [rel_x/j_y]"
    assert job_name("", "rel_x/j_y") == "untitled [rel_x/j_y]"
    long = job_name("é" * 300, "rel_x/j_y")
    assert long is not None and long.endswith(" [rel_x/j_y]")
    assert len(long.encode()) <= MAX_JOB_NAME_BYTES
    assert set(long.removesuffix(" [rel_x/j_y]")) == {"é"}  # cut between characters
    assert MAX_JOB_NAME_BYTES - len(long.encode()) < 2
    assert job_name("x", "r" * MAX_JOB_NAME_BYTES) is None  # no room for the tag


# --------------------------------------------------------------------------- scripted printer


@dataclass
class FakePrinter:
    """What the scripted printer answers. Tests change these fields while it runs."""

    printer_state: int = 3
    reasons: list[str] = field(default_factory=lambda: ["none"])
    accepting: bool = True
    sides: tuple[str, ...] = ("one-sided", "two-sided-long-edge", "two-sided-short-edge")
    color_modes: tuple[str, ...] = ("auto", "color", "monochrome")
    copies: tuple[int, int] = (1, 99)
    print_status: int = 0
    #: job-state answered by Print-Job, then by each Get-Job-Attributes (the last one repeats).
    job_states: list[int] = field(default_factory=lambda: [3, 5, 9])
    job_lookup_status: int = 0
    #: job-name answered by Get-Job-Attributes (None: not answered).
    job_name: str | None = None
    #: The printer's job list for Get-Jobs: (job-id, job-name or None if hidden, job-state).
    listed: list[tuple[int, str | None, int]] = field(default_factory=list)
    #: Status for Get-Jobs (0: answer with ``listed``).
    list_status: int = 0
    #: IPP versions it answers; others get server-error-version-not-supported.
    versions: tuple[tuple[int, int], ...] = ((1, 1), (2, 0))
    #: Close the connection without answering (a printer gone from the network).
    gone: bool = False
    #: Connections closed unanswered while gone: proof that a client met the outage.
    dropped: int = 0
    #: Answer nothing until released (a printer that hangs).
    hang: threading.Event | None = None
    garbage: bool = False
    requests: list[Message] = field(default_factory=list)
    documents: list[bytes] = field(default_factory=list)

    def operations(self, operation: int) -> list[Message]:
        return [r for r in self.requests if r.code == operation]

    def answer(self, request: Message) -> Message:
        self.requests.append(request)
        if request.version not in self.versions:
            return self._reply(request, ipp.Status.SERVER_ERROR_VERSION_NOT_SUPPORTED)
        if request.code == ipp.Operation.GET_PRINTER_ATTRIBUTES:
            return self._reply(request, 0, AttributeGroup(GroupTag.PRINTER, (
                Attribute.of("printer-state", ValueTag.ENUM, self.printer_state),
                Attribute.of("printer-state-reasons", ValueTag.KEYWORD, *self.reasons),
                Attribute.of("printer-is-accepting-jobs", ValueTag.BOOLEAN, self.accepting),
                Attribute.of("sides-supported", ValueTag.KEYWORD, *self.sides),
                Attribute.of("print-color-mode-supported", ValueTag.KEYWORD, *self.color_modes),
                Attribute.of("copies-supported", ValueTag.RANGE_OF_INTEGER,
                             ipp.RangeOfInteger(*self.copies)),
            )))
        if request.code == ipp.Operation.PRINT_JOB:
            self.documents.append(request.data)
            if self.print_status:
                return self._reply(request, self.print_status)
            return self._reply(request, 0, self._job())
        if request.code == ipp.Operation.GET_JOB_ATTRIBUTES:
            if self.job_lookup_status:
                return self._reply(request, self.job_lookup_status)
            if len(self.job_states) > 1:
                self.job_states.pop(0)
            return self._reply(request, 0, self._job())
        if request.code == ipp.Operation.GET_JOBS:
            if self.list_status:
                return self._reply(request, self.list_status)
            completed = request.first(GroupTag.OPERATION, "which-jobs") == "completed"
            jobs = []
            for job_id, name, state in self.listed:
                if (state >= ipp.JobState.CANCELED) != completed:
                    continue
                attrs = [Attribute.of("job-id", ValueTag.INTEGER, job_id),
                         Attribute.of("job-state", ValueTag.ENUM, state)]
                if name is not None:
                    attrs.append(Attribute.of("job-name", ValueTag.NAME, name))
                jobs.append(AttributeGroup(GroupTag.JOB, tuple(attrs)))
            return self._reply(request, 0, *jobs)
        return self._reply(request, ipp.Status.SERVER_ERROR_OPERATION_NOT_SUPPORTED)

    def _job(self) -> AttributeGroup:
        state = self.job_states[0]
        attrs = [Attribute.of("job-id", ValueTag.INTEGER, 42),
                 Attribute.of("job-state", ValueTag.ENUM, state)]
        if self.job_name is not None:
            attrs.append(Attribute.of("job-name", ValueTag.NAME, self.job_name))
        if state == ipp.JobState.ABORTED:
            attrs += [Attribute.of("job-state-reasons", ValueTag.KEYWORD, "aborted-by-system"),
                      Attribute.of("job-state-message", ValueTag.TEXT, "Fuser too hot.")]
        return AttributeGroup(GroupTag.JOB, tuple(attrs))

    @staticmethod
    def _reply(request: Message, status: int, *groups: AttributeGroup) -> Message:
        return Message(status, request.request_id, (
            AttributeGroup(GroupTag.OPERATION, (
                Attribute.of("attributes-charset", ValueTag.CHARSET, "utf-8"),
                Attribute.of("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, "en"))),
            *groups))


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        fake = self.server.fake
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if fake.hang is not None:
            fake.hang.wait(10)
        if fake.gone:
            fake.dropped += 1
            self.close_connection = True
            return
        out = b"\x02\x00garbage" if fake.garbage else ipp.encode(fake.answer(ipp.decode(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/ipp")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the engine hung up on a hanging printer: expected, not worth a traceback

    def __init__(self, fake: FakePrinter) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


@dataclass
class Rig:
    fake: FakePrinter
    uri: str
    engines: list[IppEngine] = field(default_factory=list)

    def engine(self, **kwargs: float) -> IppEngine:
        options: dict[str, float] = {"timeout": 2.0, "poll_interval": 0.01,
                                     "status_interval": 0.02}
        engine = IppEngine(self.uri, **(options | kwargs))  # type: ignore[arg-type]
        self.engines.append(engine)
        return engine


@pytest.fixture
def rig() -> Iterator[Rig]:
    fake = FakePrinter()
    server = _Server(fake)
    # A short poll interval: shutdown() waits for the loop to look (0.5 s by default).
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    rig = Rig(fake, f"ipp://127.0.0.1:{server.server_address[1]}/ipp/print")
    yield rig
    if fake.hang is not None:
        fake.hang.set()
    for engine in rig.engines:
        engine.close()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("printer_state", "reasons", "expected"), [
    (5, ["media-jam-error"], EngineState.JAM),
    (5, ["media-empty-error"], EngineState.NO_PAPER),
    (5, ["door-open-error"], EngineState.DOOR_OPEN),
    (5, ["none"], EngineState.OFFLINE),
    (4, ["none"], EngineState.PRINTING),
])
def test_state_follows_the_printer(rig: Rig, printer_state: int, reasons: list[str],
                                   expected: EngineState) -> None:
    engine = rig.engine()
    assert engine.wait_status(5)
    assert engine.state() is EngineState.READY
    rig.fake.printer_state, rig.fake.reasons = printer_state, reasons
    assert wait_until(lambda: engine.state() is expected)
    rig.fake.printer_state, rig.fake.reasons = 3, ["media-jam-report"]
    assert wait_until(lambda: engine.state() is EngineState.READY)


def test_unknown_reasons_are_logged_once(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.fake.reasons = ["none", "flux-capacitor-error"]
    with caplog.at_level("INFO", logger="device_app.engines.ipp.engine"):
        engine = rig.engine()
        assert wait_until(lambda: len(rig.fake.requests) >= 4)
    logged = [r for r in caplog.records if "does not map" in r.getMessage()]
    assert len(logged) == 1
    assert engine.state() is EngineState.READY


def test_a_completed_job_is_printed_and_sent_as_asked(rig: Rig) -> None:
    engine, outcomes = rig.engine(), Outcomes()
    job = make_job("report", copies=2, duplex=True, color=False)
    engine.submit(job, outcomes)
    assert outcomes.wait() == [(job.job_id, True, "")]
    assert outcomes.threads == ["ipp-jobs"]
    assert rig.fake.documents == [job.document]
    (request,) = rig.fake.operations(ipp.Operation.PRINT_JOB)
    assert request.first(GroupTag.OPERATION, "document-format") == "application/pdf"
    assert request.first(GroupTag.OPERATION, "job-name") == "report [job-report]"
    assert request.first(GroupTag.JOB, "copies") == 2
    assert request.first(GroupTag.JOB, "sides") == "two-sided-long-edge"
    assert request.first(GroupTag.JOB, "print-color-mode") == "monochrome"
    # The charset and language come first, in that order, as RFC 8011 4.1.4 requires.
    operation = request.group(GroupTag.OPERATION)
    assert operation is not None
    assert [a.name for a in operation.attributes[:3]] == [
        "attributes-charset", "attributes-natural-language", "printer-uri"]


def test_only_supported_options_are_sent(rig: Rig) -> None:
    rig.fake.sides, rig.fake.color_modes = ("one-sided",), ("monochrome",)
    engine, outcomes = rig.engine(), Outcomes()
    engine.submit(make_job("plain", duplex=True, color=True), outcomes)
    assert outcomes.wait()[0][1] is True
    (request,) = rig.fake.operations(ipp.Operation.PRINT_JOB)
    assert request.get(GroupTag.JOB, "sides") is None
    assert request.get(GroupTag.JOB, "print-color-mode") is None


def test_a_job_without_options_leaves_the_printer_defaults(rig: Rig) -> None:
    engine, outcomes = rig.engine(), Outcomes()
    document = demo_document("bare", 1)
    engine.submit(EngineJob("bare", "bare", document, hashlib.sha256(document).hexdigest()),
                  outcomes)
    assert outcomes.wait()[0][1] is True
    (request,) = rig.fake.operations(ipp.Operation.PRINT_JOB)
    assert request.get(GroupTag.JOB, "sides") is None
    assert request.get(GroupTag.JOB, "print-color-mode") is None


def test_more_copies_than_the_printer_takes_are_refused_before_sending(rig: Rig) -> None:
    rig.fake.copies = (1, 1)
    engine, outcomes = rig.engine(), Outcomes()
    engine.submit(make_job("many", copies=3), outcomes)
    assert outcomes.wait() == [("job-many", False, "the printer cannot print 3 copies of a job")]
    assert rig.fake.operations(ipp.Operation.PRINT_JOB) == []


@pytest.mark.parametrize(("reasons", "state"), [(["media-jam-error"], EngineState.JAM),
                                                (["media-empty-error"], EngineState.NO_PAPER),
                                                (["door-open-error"], EngineState.DOOR_OPEN)])
def test_a_printer_that_cannot_print_now_is_not_sent_the_job(rig: Rig, reasons: list[str],
                                                             state: EngineState) -> None:
    rig.fake.printer_state, rig.fake.reasons = 5, reasons
    engine, outcomes = rig.engine(status_interval=60), Outcomes()
    engine.submit(make_job("blocked"), outcomes)
    assert outcomes.wait() == [("job-blocked", False, ENGINE_REASONS[state])]
    assert rig.fake.operations(ipp.Operation.PRINT_JOB) == []
    assert engine.state() is state  # the check before the job refreshed the state too


def test_a_refusal_says_why(rig: Rig) -> None:
    rig.fake.print_status = ipp.Status.SERVER_ERROR_BUSY
    engine, outcomes = rig.engine(), Outcomes()
    engine.submit(make_job("busy"), outcomes)
    ((_, ok, detail),) = outcomes.wait()
    assert not ok
    assert detail == "printer refused the job: it is busy; try again shortly (server-error-busy)"


def test_an_aborted_job_is_not_printed(rig: Rig) -> None:
    rig.fake.job_states = [3, 5, ipp.JobState.ABORTED]
    engine, outcomes = rig.engine(), Outcomes()
    engine.submit(make_job("hot"), outcomes)
    assert outcomes.wait() == [("job-hot", False, "the printer aborted the job (Fuser too hot.; "
                                                  "aborted-by-system)")]


def test_a_job_canceled_at_the_printer_is_not_printed(rig: Rig) -> None:
    rig.fake.job_states = [5, ipp.JobState.CANCELED]
    engine, outcomes = rig.engine(), Outcomes()
    engine.submit(make_job("cancel"), outcomes)
    assert outcomes.wait() == [("job-cancel", False, "the job was canceled at the printer")]


def test_a_job_the_printer_forgot_is_taken_as_printed(rig: Rig) -> None:
    rig.fake.job_states = [5]
    rig.fake.job_lookup_status = ipp.Status.CLIENT_ERROR_NOT_FOUND
    engine, outcomes = rig.engine(), Outcomes()
    engine.submit(make_job("purged"), outcomes)
    assert outcomes.wait() == [("job-purged", True, "")]


def test_losing_contact_after_the_printer_took_the_job_fails_it_with_advice(rig: Rig) -> None:
    rig.fake.job_states = [5]
    engine, outcomes = rig.engine(lost_after=0.3, timeout=0.5), Outcomes()
    engine.submit(make_job("lost"), outcomes)
    assert wait_until(lambda: len(rig.fake.operations(ipp.Operation.GET_JOB_ATTRIBUTES)) >= 2)
    rig.fake.gone = True
    ((_, ok, detail),) = outcomes.wait()
    assert not ok
    assert detail.startswith("printer unreachable: ")
    assert "check its output" in detail


def test_contact_lost_briefly_is_survived(rig: Rig) -> None:
    rig.fake.job_states = [5]
    engine, outcomes = rig.engine(lost_after=30), Outcomes()
    engine.submit(make_job("blip"), outcomes)
    assert wait_until(lambda: len(rig.fake.operations(ipp.Operation.GET_JOB_ATTRIBUTES)) >= 1)
    rig.fake.gone = True
    # Gone for two of the engine's polls, not for a fixed time: the outage was lived through.
    assert wait_until(lambda: rig.fake.dropped >= 2)
    rig.fake.gone = False
    rig.fake.job_states = [9]
    assert outcomes.wait() == [("job-blip", True, "")]


def test_a_damaged_document_is_refused_and_never_sent(rig: Rig) -> None:
    engine, outcomes = rig.engine(), Outcomes()
    job = make_job("damaged")
    engine.submit(EngineJob(job.job_id, job.name, job.document + b"x", job.sha256), outcomes)
    assert outcomes.wait() == [("job-damaged", False,
                                "document damaged (SHA-256 mismatch); not printed")]
    assert rig.fake.documents == []


def test_an_ipp_1_1_printer_is_spoken_to_in_1_1(rig: Rig) -> None:
    rig.fake.versions = ((1, 1),)
    engine, outcomes = rig.engine(), Outcomes()
    assert wait_until(lambda: engine.state() is EngineState.READY)
    engine.submit(make_job("old"), outcomes)
    assert outcomes.wait() == [("job-old", True, "")]
    (request,) = rig.fake.operations(ipp.Operation.PRINT_JOB)
    assert request.version == (1, 1)


def test_garbage_from_the_printer_is_a_failure_not_a_crash(rig: Rig) -> None:
    rig.fake.garbage = True
    engine, outcomes = rig.engine(), Outcomes()
    assert engine.wait_status(5)
    assert engine.state() is EngineState.OFFLINE
    engine.submit(make_job("garbled"), outcomes)
    ((_, ok, detail),) = outcomes.wait()
    assert not ok and detail.startswith("the printer's answer is not valid IPP: ")


def test_a_hanging_printer_never_blocks_the_caller(rig: Rig) -> None:
    rig.fake.hang = threading.Event()
    engine, outcomes = rig.engine(timeout=0.5), Outcomes()
    started = time.monotonic()
    for n in range(3):
        engine.submit(make_job(f"slow{n}"), outcomes)
        assert engine.state() is EngineState.OFFLINE
    assert time.monotonic() - started < 0.1
    calls = outcomes.wait(3, timeout=10)
    assert [ok for _, ok, _ in calls] == [False, False, False]
    assert all(detail == "printer unreachable: no answer in time" for _, _, detail in calls)


def test_close_fails_the_job_being_followed_and_the_queued_ones(rig: Rig) -> None:
    rig.fake.job_states = [5]  # processing for ever
    engine, outcomes = rig.engine(), Outcomes()
    engine.submit(make_job("first"), outcomes)
    engine.submit(make_job("second"), outcomes)
    assert wait_until(lambda: len(rig.fake.operations(ipp.Operation.GET_JOB_ATTRIBUTES)) >= 1)
    engine.close()
    engine.submit(make_job("third"), outcomes)
    assert outcomes.wait(3) == [
        ("job-first", False, "the device stopped before the printer finished the job; check "
                             "the printer's output"),
        ("job-second", False, "the device is shutting down; not printed"),
        ("job-third", False, "the device is shutting down; not printed"),
    ]
    assert len(rig.fake.documents) == 1


def test_a_failing_done_callback_does_not_stop_the_engine(rig: Rig) -> None:
    engine, outcomes = rig.engine(), Outcomes()

    def broken(job_id: str, ok: bool, detail: str) -> None:
        raise RuntimeError("callback bug")

    engine.submit(make_job("one"), broken)
    engine.submit(make_job("two"), outcomes)
    assert outcomes.wait() == [("job-two", True, "")]


def test_unreachable_printer() -> None:
    engine, outcomes = IppEngine(f"ipp://127.0.0.1:{free_port()}/ipp/print"), Outcomes()
    try:
        assert engine.state() is EngineState.OFFLINE  # before any answer
        assert engine.wait_status(5)
        assert engine.state() is EngineState.OFFLINE
        assert engine.state_detail.startswith("printer unreachable: ")
        started = time.monotonic()
        engine.submit(make_job("nowhere"), outcomes)
        ((job_id, ok, detail),) = outcomes.wait(timeout=5)
        assert time.monotonic() - started < 1.0
        assert (job_id, ok) == ("job-nowhere", False)
        assert detail.startswith("printer unreachable: ")
    finally:
        engine.close()


# --------------------------------------------------------------------------- outcome (scripted)

EID = "rel-1/job-1"
#: Jobs on the printer that are not rel-1/job-1: another release of the same job, a longer id
#: ending the same way, and a job from elsewhere.
DECOYS: list[tuple[int, str | None, int]] = [
    (1, "report.pdf [rel-0/job-1]", ipp.JobState.COMPLETED),
    (2, "report.pdf [rel-1/job-10]", ipp.JobState.COMPLETED),
    (3, "x [rel-0/rel-1/job-1]", ipp.JobState.COMPLETED),
    (4, "Microsoft Word - minutes.docx", ipp.JobState.PROCESSING),
]


def _eid_job() -> EngineJob:
    """The job named ``EID``."""
    document = demo_document("report", 1)
    return EngineJob("job-1", "report.pdf", document, hashlib.sha256(document).hexdigest(),
                     release_id="rel-1")


def test_outcome_of_a_job_this_engine_took_is_its_own_record(rig: Rig) -> None:
    rig.fake.job_states = [5]  # processing until the test says otherwise
    engine, outcomes = rig.engine(), Outcomes()
    job = make_job("own", release_id="rel-own")
    engine.submit(job, outcomes)
    assert engine.outcome(job.engine_id) is EngineOutcome.PRINTING  # queued or printing
    assert wait_until(lambda: len(rig.fake.operations(ipp.Operation.GET_JOB_ATTRIBUTES)) >= 1)
    assert engine.outcome(job.engine_id) is EngineOutcome.PRINTING
    rig.fake.job_states = [9]
    assert outcomes.wait() == [(job.job_id, True, "")]
    assert engine.outcome(job.engine_id) is EngineOutcome.PRINTED

    rig.fake.print_status = ipp.Status.SERVER_ERROR_BUSY
    failed = make_job("own-failed", release_id="rel-own")
    engine.submit(failed, outcomes)
    assert outcomes.wait(2)[1][1] is False
    assert engine.outcome(failed.engine_id) is EngineOutcome.FAILED
    assert rig.fake.operations(ipp.Operation.GET_JOBS) == []  # never asked the printer


def test_a_hand_over_is_taken_once(rig: Rig) -> None:
    engine, outcomes = rig.engine(), Outcomes()
    job = make_job("once", release_id="rel-once")
    engine.submit(job, outcomes)
    assert outcomes.wait() == [(job.job_id, True, "")]
    with pytest.raises(EngineError) as info:
        engine.submit(job, outcomes)
    assert info.value.code == "duplicate_job"
    # Proof that nothing was queued: a later job goes through the same job thread, and by its
    # outcome the refused one would have been sent before it.
    later, after = make_job("later", release_id="rel-once"), Outcomes()
    engine.submit(later, after)
    assert after.wait() == [(later.job_id, True, "")]
    sent = rig.fake.operations(ipp.Operation.PRINT_JOB)
    assert [r.first(GroupTag.OPERATION, "job-name") for r in sent] == [
        job_name(job.name, job.engine_id), job_name(later.name, later.engine_id)]
    assert len(outcomes.calls) == 1


@pytest.mark.parametrize(("state", "expected"), [
    (ipp.JobState.COMPLETED, EngineOutcome.PRINTED),
    (ipp.JobState.ABORTED, EngineOutcome.FAILED),
    (ipp.JobState.CANCELED, EngineOutcome.FAILED),
    (ipp.JobState.PROCESSING, EngineOutcome.PRINTING),
    (ipp.JobState.PENDING, EngineOutcome.PRINTING),
    (ipp.JobState.PENDING_HELD, EngineOutcome.PRINTING),
    (ipp.JobState.PROCESSING_STOPPED, EngineOutcome.PRINTING),
])
def test_outcome_after_a_restart_is_the_printers_word(rig: Rig, state: int,
                                                      expected: EngineOutcome) -> None:
    rig.fake.listed = [*DECOYS, (9, f"report.pdf [{EID}]", state)]
    engine = rig.engine()  # a fresh object: it never saw the job
    assert engine.outcome(EID) is expected
    asked = rig.fake.operations(ipp.Operation.GET_JOBS)
    assert [r.first(GroupTag.OPERATION, "which-jobs") for r in asked] == [
        "not-completed", "completed"]
    requested = asked[0].get(GroupTag.OPERATION, "requested-attributes")
    assert requested is not None
    assert set(requested.natives) == {"job-id", "job-name", "job-state"}
    # The printer has it: handing it over again is refused, nothing sent.
    with pytest.raises(EngineError) as info:
        engine.submit(_eid_job(), Outcomes())
    assert info.value.code == "duplicate_job"
    assert rig.fake.operations(ipp.Operation.PRINT_JOB) == []


def test_a_job_sent_twice_counts_as_printed_if_either_printed(rig: Rig) -> None:
    rig.fake.listed = [(1, f"a [{EID}]", ipp.JobState.ABORTED),
                       (2, f"a [{EID}]", ipp.JobState.COMPLETED)]
    assert rig.engine().outcome(EID) is EngineOutcome.PRINTED


def test_an_id_the_printer_never_got_is_unknown_and_fenced(rig: Rig) -> None:
    rig.fake.listed = list(DECOYS)
    engine, outcomes = rig.engine(), Outcomes()
    assert engine.outcome(EID) is EngineOutcome.UNKNOWN
    with pytest.raises(EngineError, match="reported unknown") as info:
        engine.submit(_eid_job(), outcomes)
    assert info.value.code == "duplicate_job"
    # Proof that nothing was queued: a later job's outcome comes after the refused one would.
    later, after = make_job("later"), Outcomes()
    engine.submit(later, after)
    assert after.wait() == [(later.job_id, True, "")]
    sent = rig.fake.operations(ipp.Operation.PRINT_JOB)
    assert [r.first(GroupTag.OPERATION, "job-name") for r in sent] == [
        job_name(later.name, later.engine_id)]
    assert outcomes.calls == []
    # The answer stands, even if the job turned up now.
    rig.fake.listed.append((9, f"report.pdf [{EID}]", ipp.JobState.COMPLETED))
    assert engine.outcome(EID) is EngineOutcome.UNKNOWN


def test_a_job_seen_on_the_printer_then_gone_was_purged_after_printing(rig: Rig) -> None:
    rig.fake.listed = [(9, f"report.pdf [{EID}]", ipp.JobState.PROCESSING)]
    engine = rig.engine()
    assert engine.outcome(EID) is EngineOutcome.PRINTING
    rig.fake.listed = []
    assert engine.outcome(EID) is EngineOutcome.PRINTED
    assert engine.outcome(EID) is EngineOutcome.PRINTED


def test_hidden_job_names_are_no_proof_of_absence(rig: Rig) -> None:
    rig.fake.listed = [(1, None, ipp.JobState.COMPLETED), *DECOYS]
    engine = rig.engine()
    with pytest.raises(EngineError, match="does not show the names of 1 of its jobs"):
        engine.outcome(EID)
    # Not fenced: once the job shows, it is answered.
    rig.fake.listed.append((9, f"report.pdf [{EID}]", ipp.JobState.COMPLETED))
    assert engine.outcome(EID) is EngineOutcome.PRINTED


def test_a_printer_refusing_get_jobs_cannot_say(rig: Rig) -> None:
    rig.fake.list_status = ipp.Status.CLIENT_ERROR_NOT_AUTHORIZED
    engine = rig.engine()
    with pytest.raises(EngineError, match="client-error-not-authorized") as info:
        engine.outcome(EID)
    assert not isinstance(info.value, PrinterUnreachable)
    rig.fake.list_status = 0
    assert engine.outcome(EID) is EngineOutcome.UNKNOWN  # now the printer said so


def test_outcome_of_an_unreachable_printer_is_an_error_not_a_guess(rig: Rig) -> None:
    rig.fake.gone = True
    engine, outcomes = rig.engine(), Outcomes()
    with pytest.raises(PrinterUnreachable, match="printer unreachable"):
        engine.outcome(EID)
    rig.fake.gone = False
    # Nothing was fenced: the hand-over goes through.
    engine.submit(_eid_job(), outcomes)
    assert outcomes.wait() == [("job-1", True, "")]

    nowhere = IppEngine(f"ipp://127.0.0.1:{free_port()}/ipp/print", timeout=1.0)
    try:
        with pytest.raises(EngineError) as info:
            nowhere.outcome(EID)
        assert info.value.code == PrinterUnreachable.code
    finally:
        nowhere.close()


def test_a_printer_that_drops_the_engine_id_is_reported(rig: Rig,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    engine, outcomes = rig.engine(), Outcomes()
    with caplog.at_level("WARNING", logger="device_app.engines.ipp.engine"):
        rig.fake.job_name = "kept [job-kept]"
        engine.submit(make_job("kept"), outcomes)
        outcomes.wait()
        assert not [r for r in caplog.records if "cannot find it again" in r.getMessage()]
        rig.fake.job_states, rig.fake.job_name = [3, 5, 9], "cut [job-c"
        engine.submit(make_job("cut"), outcomes)
        outcomes.wait(2)
    (warning,) = [r for r in caplog.records if "cannot find it again" in r.getMessage()]
    assert "'cut [job-c'" in warning.getMessage()


# --------------------------------------------------------------------------- ippeveprinter



@contextlib.contextmanager
def _printer(workdir: Path, name: str, **kwargs: object) -> Iterator[IppEvePrinter]:
    printer = IppEvePrinter(workdir, name, **kwargs)  # type: ignore[arg-type]
    printer.start()
    try:
        yield printer
    finally:
        printer.stop()


@pytest.fixture(scope="module")
def printer(dnssd: DnsSd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IppEvePrinter]:
    with _printer(tmp_path_factory.mktemp("ippeve"), "mfdkit test printer") as printer:
        yield printer


@pytest.fixture(scope="module")
def raster_printer(dnssd: DnsSd,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[IppEvePrinter]:
    # Takes PWG raster only (what the cheapest IPP Everywhere printers take), not PDF.
    with _printer(tmp_path_factory.mktemp("ippeve-raster"), "mfdkit raster printer",
                  formats=("image/pwg-raster",), duplex=False, color=False) as printer:
        yield printer


@pytest.fixture
def engine(printer: IppEvePrinter) -> Iterator[IppEngine]:
    engine = IppEngine(printer.uri, timeout=5.0, poll_interval=0.02, status_interval=0.05)
    yield engine
    engine.close()


def _spool_names(printer: IppEvePrinter, job: EngineJob) -> list[Path]:
    # ippeveprinter -k names the file <job-id>-<job-name>.pdf, the name lowercased and each run
    # of characters other than letters, digits and "-" made one "_".
    name = job_name(job.name, job.engine_id)
    assert name is not None
    want = re.sub(r"[^a-z0-9-]+", "_", name.lower()) + ".pdf"
    return [p for p in printer.spooled() if p.name.split("-", 1)[1] == want]


def _spooled(printer: IppEvePrinter, job: EngineJob) -> Path:
    (path,) = _spool_names(printer, job)
    return path


@pytest.mark.integration
def test_ippeveprinter_is_ready(engine: IppEngine) -> None:
    assert engine.wait_status(5)
    assert engine.state() is EngineState.READY
    assert engine.state_detail == "Idle."


@pytest.mark.integration
def test_ippeveprinter_prints_the_pdf_byte_for_byte(engine: IppEngine,
                                                    printer: IppEvePrinter) -> None:
    job, outcomes = make_job("byte-for-byte", pages=3), Outcomes()
    engine.submit(job, outcomes)
    assert outcomes.wait() == [(job.job_id, True, "")]
    kept = _spooled(printer, job).read_bytes()
    assert kept == job.document
    assert hashlib.sha256(kept).hexdigest() == job.sha256


@pytest.mark.integration
def test_ippeveprinter_sees_the_options(engine: IppEngine, printer: IppEvePrinter) -> None:
    job, outcomes = make_job("options", copies=2, duplex=True, color=False), Outcomes()
    engine.submit(job, outcomes)
    assert outcomes.wait() == [(job.job_id, True, "")]
    printer_job = int(_spooled(printer, job).name.split("-", 1)[0])
    seen = printer.job_attributes(printer_job)
    assert seen is not None
    assert seen.first(GroupTag.JOB, "job-name") == "options [job-options]"
    assert seen.first(GroupTag.JOB, "copies") == 2
    assert seen.first(GroupTag.JOB, "sides") == "two-sided-long-edge"
    assert seen.first(GroupTag.JOB, "print-color-mode") == "monochrome"
    assert seen.first(GroupTag.JOB, "document-format-supplied") == "application/pdf"
    assert seen.first(GroupTag.JOB, "job-originating-user-name") == "mfdkit"


@pytest.mark.integration
def test_ippeveprinter_aborts_a_job(engine: IppEngine, printer: IppEvePrinter) -> None:
    outcomes = Outcomes()
    engine.submit(make_job(ABORT), outcomes)
    ((job_id, ok, detail),) = outcomes.wait()
    assert (job_id, ok) == (f"job-{ABORT}", False)
    assert detail.startswith("the printer aborted the job")


@pytest.mark.integration
def test_ippeveprinter_is_printing_until_the_job_ends(engine: IppEngine,
                                                      printer: IppEvePrinter) -> None:
    printer.hold_file.touch()
    outcomes = Outcomes()
    try:
        engine.submit(make_job(HOLD), outcomes)
        assert wait_until(lambda: engine.state() is EngineState.PRINTING)
        assert outcomes.calls == []
    finally:
        printer.hold_file.unlink()
    assert outcomes.wait() == [(f"job-{HOLD}", True, "")]
    assert wait_until(lambda: engine.state() is EngineState.READY)


@pytest.mark.integration
def test_ippeveprinter_refuses_a_format_it_does_not_take(raster_printer: IppEvePrinter) -> None:
    engine, outcomes = IppEngine(raster_printer.uri, poll_interval=0.02), Outcomes()
    try:
        engine.submit(make_job("refused"), outcomes)
        ((job_id, ok, detail),) = outcomes.wait()
    finally:
        engine.close()
    assert (job_id, ok) == ("job-refused", False)
    # ippeveprinter says so with client-error-attributes-or-values-not-supported and
    # document-format in the unsupported group, not with document-format-not-supported.
    assert detail.startswith("printer refused the job: it does not take PDF documents (")
    assert raster_printer.spooled() == []


@pytest.mark.integration
def test_ippeveprinter_gone_mid_way(dnssd: DnsSd, tmp_path: Path) -> None:
    # The printer stops (switched off) while idle: the state goes OFFLINE, a job fails at once.
    with _printer(tmp_path, "mfdkit short-lived printer") as printer:
        engine = IppEngine(printer.uri, timeout=2.0, status_interval=0.05)
        try:
            assert wait_until(lambda: engine.state() is EngineState.READY)
            printer.stop()
            assert wait_until(lambda: engine.state() is EngineState.OFFLINE)
            outcomes = Outcomes()
            engine.submit(make_job("switched-off"), outcomes)
            ((_, ok, detail),) = outcomes.wait(timeout=5)
            assert not ok and detail.startswith("printer unreachable: ")
        finally:
            engine.close()


@pytest.mark.integration
def test_ippeveprinter_a_restarted_engine_finds_a_printed_job(engine: IppEngine,
                                                              printer: IppEvePrinter) -> None:
    job, outcomes = make_job("restart-printed", release_id="rel-restart"), Outcomes()
    engine.submit(job, outcomes)
    assert outcomes.wait() == [(job.job_id, True, "")]
    assert engine.outcome(job.engine_id) is EngineOutcome.PRINTED
    after = IppEngine(printer.uri, timeout=5.0, poll_interval=0.02)  # the device restarted
    try:
        assert after.outcome(job.engine_id) is EngineOutcome.PRINTED
        with pytest.raises(EngineError) as info:
            after.submit(job, Outcomes())
        assert info.value.code == "duplicate_job"
    finally:
        after.close()
    assert len(_spool_names(printer, job)) == 1


@pytest.mark.integration
def test_ippeveprinter_a_restarted_engine_fences_a_job_never_sent(
        printer: IppEvePrinter) -> None:
    job, outcomes = make_job("never-sent", release_id="rel-restart"), Outcomes()
    after = IppEngine(printer.uri, timeout=5.0, poll_interval=0.02)
    try:
        assert after.outcome(job.engine_id) is EngineOutcome.UNKNOWN
        with pytest.raises(EngineError) as info:
            after.submit(job, outcomes)
        assert info.value.code == "duplicate_job"
        # Proof that nothing was queued: a later job's outcome comes after the refused one's
        # hand-over would have.
        later, done = make_job("later-sent", release_id="rel-restart"), Outcomes()
        after.submit(later, done)
        assert done.wait() == [(later.job_id, True, "")]
        assert len(_spool_names(printer, later)) == 1
    finally:
        after.close()
    assert outcomes.calls == []
    assert _spool_names(printer, job) == []
    assert not [p for p in printer.spooled("*") if "never-sent" in p.name]


@pytest.mark.integration
def test_ippeveprinter_a_restarted_engine_finds_an_aborted_job(engine: IppEngine,
                                                               printer: IppEvePrinter) -> None:
    job, outcomes = make_job(ABORT, release_id="rel-restart"), Outcomes()
    engine.submit(job, outcomes)
    assert outcomes.wait()[0][1] is False
    after = IppEngine(printer.uri, timeout=5.0)
    try:
        assert after.outcome(job.engine_id) is EngineOutcome.FAILED
    finally:
        after.close()


@pytest.mark.integration
def test_ippeveprinter_a_restarted_engine_waits_for_a_job_in_progress(
        engine: IppEngine, printer: IppEvePrinter) -> None:
    job, outcomes = make_job(HOLD, release_id="rel-restart"), Outcomes()
    after = IppEngine(printer.uri, timeout=5.0)
    printer.hold_file.touch()
    try:
        engine.submit(job, outcomes)
        assert wait_until(lambda: engine.state() is EngineState.PRINTING)
        assert after.outcome(job.engine_id) is EngineOutcome.PRINTING
    finally:
        printer.hold_file.unlink()
    try:
        assert outcomes.wait() == [(job.job_id, True, "")]
        assert wait_until(lambda: after.outcome(job.engine_id) is EngineOutcome.PRINTED)
    finally:
        after.close()
