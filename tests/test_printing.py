"""The printer with its journal, against the in-process engine stub and against the engine server
in its own process (through the socket client): faults refuse up front, damaged documents never
print, a job is handed over once, reconciliation tells the cloud exactly once."""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import eventually

from device_app.engines.socket import EngineClient, EngineRefused
from device_app.printing.journal import Journal, JournalState
from device_app.printing.release import Printer
from device_app.session import JobDone, PagesPrinted, PrintJob
from firmware_stubs.engine_server import EngineControl, EngineProcess
from firmware_stubs.mfd_controller import MfdControllerStub, printed_log
from protocol import messages as m
from protocol.engine import (
    EngineJob,
    EngineOutcome,
    EngineState,
    FrameDecoder,
    encode_frame,
    engine_id,
    job_from_wire,
    job_to_wire,
)
from protocol.errors import EngineError, LinkError, MfdError, ProtocolError

S = JournalState


def doc(n: int, size: int = 3000) -> bytes:
    return (f"%PDF-1.4 job {n}\n".encode() * (size // 16 + 1))[:size]


def released(n: int, data: bytes | None = None, copies: int = 1) -> m.ReleasedJob:
    data = doc(n) if data is None else data
    return m.ReleasedJob(job_id=f"job-{n}", name=f"Job {n}.pdf", size=len(data),
                         sha256=hashlib.sha256(data).hexdigest(), copies=copies)


class FakeLink:
    """The cloud side of a release: serves documents in small chunks, acknowledges reports,
    records every request. ``answers`` can queue non-default answers for reports."""

    connected = True
    on_connection: Callable[[bool], None] | None = None

    def __init__(self, chunk: int = 1024) -> None:
        self.docs: dict[str, bytes] = {}
        self.chunk = chunk
        self.sent: list[m.Request] = []
        self.answers: list[m.Result | MfdError] = []
        self._lock = threading.Lock()

    def serve(self, job_id: str, data: bytes) -> None:
        self.docs[job_id] = data

    def call(self, request: m.Request, timeout: float | None = None) -> m.Result:
        with self._lock:
            self.sent.append(request)
            if isinstance(request, m.FetchDocument):
                data = self.docs[request.job_id]
                piece = data[request.offset:request.offset + min(self.chunk, request.length)]
                return m.DocumentChunk(job_id=request.job_id, offset=request.offset, data=piece,
                                       total=len(data))
            answer = self.answers.pop(0) if self.answers else m.Ack(of=request.TYPE)
        if isinstance(answer, MfdError):
            raise answer
        return answer

    def request(self, request: m.Request, reply: Callable[[m.Result | MfdError], None],
                timeout: float | None = None) -> None:
        try:
            result: m.Result | MfdError = self.call(request, timeout)
        except MfdError as exc:
            result = exc
        reply(result)

    def close(self) -> None:
        pass

    def fetches(self) -> list[m.FetchDocument]:
        return [r for r in self.sent if isinstance(r, m.FetchDocument)]

    def reports(self) -> list[m.JobPrinted | m.JobFailed]:
        return [r for r in self.sent if isinstance(r, m.JobPrinted | m.JobFailed)]


class Engine:
    """One face over both engines for the tests: the PrintEngine, faults, what came out."""

    def __init__(self, engine: MfdControllerStub | EngineClient, state_dir: Path,
                 process: EngineProcess | None = None) -> None:
        self.engine = engine
        self.state_dir = state_dir
        self.process = process
        # Faults and holds are the emulator's own ops: the in-process stub has them, and an
        # engine server takes them on a control connection, never from the device's client.
        self.control = (EngineControl(process.socket_path) if process is not None
                        else engine)

    def inject(self, state: EngineState, after_pages: int | None = None) -> None:
        self.control.inject(state, after_pages=after_pages)

    def hold(self, on: bool) -> None:
        self.control.hold(on)

    def printed_ids(self) -> list[str]:
        return [p.engine_id for p in printed_log(self.state_dir)]


@pytest.fixture(params=["in-process", "engine-server"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    state_dir = tmp_path / "engine"
    if request.param == "in-process":
        stub = MfdControllerStub(state_dir=state_dir)
        yield Engine(stub, state_dir)
        stub.close()
    else:
        proc = EngineProcess(state_dir).start()
        client = EngineClient(proc.socket_path, retry_interval=0.05)
        yield Engine(client, state_dir, proc)
        client.close()
        proc.stop()


class TimedLink(FakeLink):
    """A FakeLink that notes the (fake) clock each time a report is sent."""

    def __init__(self, now: list[float]) -> None:
        super().__init__()
        self.now = now
        self.times: list[float] = []

    def call(self, request: m.Request, timeout: float | None = None) -> m.Result:
        if isinstance(request, m.JobPrinted | m.JobFailed):
            self.times.append(self.now[0])
        return super().call(request, timeout)


@contextlib.contextmanager
def failed_report_pending(journal: Journal, answers: list[m.Result | MfdError]
                          ) -> Iterator[tuple[list[float], TimedLink, Printer]]:
    """A printer whose journal holds a failed job the cloud has not been told of, its link
    giving ``answers`` to the reports in turn, on a fake clock at 1000 s the test moves.
    Yields the clock, the link and the printer; the printer and its engine closed after."""
    now = [1000.0]
    link = TimedLink(now)
    link.answers = answers
    journal.receive("rel-old", released(1))
    journal.failed("rel-old", "job-1", "Out of paper")
    engine = MfdControllerStub()
    printer = Printer(link, engine, lambda done: None, journal, retry_interval=30.0,
                      clock=lambda: now[0])
    try:
        yield now, link, printer
    finally:
        printer.close()
        engine.close()


def next_turn(printer: Printer) -> None:
    """Wake the printer thread and wait until it has been round once more: the positive signal
    that whatever was due at the fake clock's time was done (or, rightly, not)."""
    turns = printer.turns
    printer.wake()
    assert eventually(lambda: printer.turns > turns)


class Harness:
    def __init__(self, engine: Engine, journal: Journal, link: FakeLink | None = None,
                 **printer_kw: Any) -> None:
        self.link = link or FakeLink()
        self.engine = engine
        self.journal = journal
        self.done: queue.Queue[JobDone] = queue.Queue()
        # Page counts apart: these tests are about outcomes (test_engine_progress.py, counts).
        self.pages: queue.Queue[PagesPrinted] = queue.Queue()
        self.printer = Printer(self.link, engine.engine, self.done.put, journal,
                               pages=self.pages.put, **printer_kw)

    def release(self, release_id: str, *jobs: m.ReleasedJob, docs: dict[str, bytes] | None = None
                ) -> None:
        for job in jobs:
            self.link.serve(job.job_id, (docs or {}).get(job.job_id) or
                            doc(int(job.job_id.split("-")[1])))
            self.printer.submit(PrintJob(release_id, job))

    def outcomes(self, n: int, timeout: float = 5.0) -> list[JobDone]:
        return [self.done.get(timeout=timeout) for _ in range(n)]

    def report_like_the_app(self, done: JobDone) -> m.Request:
        """What the app does with the session's report: the journal's request id, the
        cloud's answer journaled."""
        request: m.Request = (
            m.JobPrinted(request_id="session-id", release_id=done.release_id,
                         job_id=done.job_id) if done.ok else
            m.JobFailed(request_id="session-id", release_id=done.release_id,
                        job_id=done.job_id, reason=done.detail[:200]))
        answered: queue.Queue[m.Result | MfdError] = queue.Queue()
        sent, reply = self.printer.journal_report(request, answered.put)
        self.link.request(sent, reply)
        answered.get(timeout=2)
        return sent


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.open(tmp_path / "journal.db")


# ---------------------------------------------------------------- releasing


def test_a_release_is_journaled_handed_printed_and_confirmed(engine: Engine,
                                                             journal: Journal) -> None:
    h = Harness(engine, journal)
    jobs = [released(1), released(2, doc(2, 5000)), released(3)]
    h.release("rel-1", *jobs, docs={"job-2": doc(2, 5000)})
    outcomes = h.outcomes(3)
    assert [(o.job_id, o.ok) for o in outcomes] == [("job-1", True), ("job-2", True),
                                                    ("job-3", True)]
    assert engine.printed_ids() == [engine_id("rel-1", j.job_id) for j in jobs]
    # Several chunks per document, bound to the release.
    assert len(h.link.fetches()) == 3 + 5 + 3
    assert {f.release_id for f in h.link.fetches()} == {"rel-1"}
    for o in outcomes:
        row = journal.get("rel-1", o.job_id)
        assert row is not None and row.state is S.PRINTED and row.engine_id == \
            f"rel-1/{o.job_id}"
        sent = h.report_like_the_app(o)
        assert sent.request_id == row.printed_request_id  # the journal's, not the session's
    assert eventually(lambda: journal.unconfirmed() == [])
    h.printer.close()


@pytest.mark.parametrize("fault", [EngineState.JAM, EngineState.NO_PAPER,
                                   EngineState.DOOR_OPEN, EngineState.OFFLINE])
def test_an_engine_fault_refuses_the_job_before_anything_is_fetched(
        engine: Engine, journal: Journal, fault: EngineState) -> None:
    engine.inject(fault)
    h = Harness(engine, journal)
    h.release("rel-1", released(1), released(2))
    outcomes = h.outcomes(2)
    assert [o.ok for o in outcomes] == [False, False]
    assert all(("jam" in o.detail.lower() or "paper" in o.detail.lower()
                or "door" in o.detail.lower() or "offline" in o.detail.lower())
               for o in outcomes)
    assert h.link.fetches() == []
    assert engine.printed_ids() == []
    row = journal.get("rel-1", "job-1")
    assert row is not None and row.state is S.FAILED and row.engine_id == ""
    sent = h.report_like_the_app(outcomes[0])
    assert isinstance(sent, m.JobFailed) and sent.request_id == row.failed_request_id
    h.printer.close()


def test_a_document_damaged_in_transit_fails_before_output(engine: Engine,
                                                           journal: Journal) -> None:
    h = Harness(engine, journal)
    job = released(1)
    h.release("rel-1", job, docs={"job-1": doc(1)[:-1] + b"X"})
    [outcome] = h.outcomes(1)
    assert not outcome.ok and "damaged" in outcome.detail
    row = journal.get("rel-1", "job-1")
    assert row is not None and row.state is S.FAILED and row.handed_at is None
    assert engine.printed_ids() == []
    h.printer.close()


def test_the_engine_itself_refuses_a_checksum_mismatch(engine: Engine) -> None:
    got: queue.Queue[tuple[str, bool, str]] = queue.Queue()
    data = doc(1)
    bad = EngineJob("job-1", "Job 1", data, hashlib.sha256(data + b"!").hexdigest(),
                    release_id="rel-1")
    engine.engine.submit(bad, lambda *a: got.put(a))
    job_id, ok, detail = got.get(timeout=5)
    assert (job_id, ok) == ("job-1", False) and "SHA-256" in detail
    assert engine.printed_ids() == []
    assert engine.engine.outcome("rel-1/job-1") is EngineOutcome.FAILED


def test_a_repeated_print_job_is_printed_once(engine: Engine, journal: Journal) -> None:
    h = Harness(engine, journal)
    job = released(1)
    h.release("rel-1", job)
    h.release("rel-1", job)  # a QoS 1 redelivery, a repeated tap: the same release again
    # A later job is the positive signal: the printer takes its queue in order, so once the
    # later job's outcome is here, the repeat was handled before it, and printed nothing.
    h.release("rel-2", released(2))
    assert [(o.release_id, o.job_id, o.ok) for o in h.outcomes(2)] == [
        ("rel-1", "job-1", True), ("rel-2", "job-2", True)]
    assert h.done.empty()
    h.printer.close()
    # And a fresh printer on the same journal (an app restarted mid-release) refuses it too.
    h2 = Harness(engine, journal)
    h2.release("rel-1", job)
    h2.release("rel-3", released(3))
    assert [(o.release_id, o.job_id) for o in h2.outcomes(1)] == [("rel-3", "job-3")]
    assert h2.done.empty()
    assert engine.printed_ids() == ["rel-1/job-1", "rel-2/job-2", "rel-3/job-3"]
    h2.printer.close()


def test_a_fault_mid_job_fails_it_before_output(engine: Engine, journal: Journal) -> None:
    h = Harness(engine, journal)
    engine.inject(EngineState.JAM, after_pages=1)
    h.release("rel-1", released(1, copies=3))
    [outcome] = h.outcomes(1)
    assert not outcome.ok and "during the job" in outcome.detail
    assert engine.printed_ids() == []
    row = journal.get("rel-1", "job-1")
    assert row is not None and row.state is S.FAILED and row.handed_at is not None
    assert engine.engine.state() is EngineState.JAM
    h.printer.close()


def test_the_engine_refuses_a_hand_over_it_reported_unknown(engine: Engine) -> None:
    assert engine.engine.outcome("rel-9/job-1") is EngineOutcome.UNKNOWN
    data = doc(1)
    job = EngineJob("job-1", "Job 1", data, hashlib.sha256(data).hexdigest(), release_id="rel-9")
    with pytest.raises(EngineError) as info:
        engine.engine.submit(job, lambda *a: None)
    assert info.value.code == "duplicate_job"
    assert engine.printed_ids() == []


def test_a_journal_that_fails_refuses_the_job(engine: Engine, tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.db")
    h = Harness(engine, journal)
    journal.close()  # every write now fails
    h.release("rel-1", released(1))
    [outcome] = h.outcomes(1)
    assert not outcome.ok and "cannot record" in outcome.detail
    assert h.link.fetches() == [] and engine.printed_ids() == []
    h.printer.close()


# ---------------------------------------------------------------- reconciliation


def _leftovers(journal: Journal, engine: Engine) -> None:
    """A previous run's journal: a row in every unfinished state, the engine's record to match."""
    got: queue.Queue[Any] = queue.Queue()
    for n in range(1, 8):
        journal.receive("rel-old", released(n))
    journal.fetched("rel-old", "job-2")
    for n in (3, 4, 5):
        journal.fetched("rel-old", f"job-{n}")
        journal.hand_over("rel-old", f"job-{n}", f"rel-old/job-{n}")
    data = doc(3)
    engine.engine.submit(EngineJob("job-3", "Job 3", data, hashlib.sha256(data).hexdigest(),
                                   release_id="rel-old"), lambda *a: got.put(a))
    data = doc(5)
    # job-5 the engine failed (its copy was damaged): failed before output.
    engine.engine.submit(EngineJob("job-5", "Job 5", data, hashlib.sha256(b"?").hexdigest(),
                                   release_id="rel-old"), lambda *a: got.put(a))
    got.get(timeout=5)
    got.get(timeout=5)
    # job-4 handed in the journal, never reached the engine (died in between).
    journal.fetched("rel-old", "job-6")
    journal.hand_over("rel-old", "job-6", "rel-old/job-6")
    journal.printed("rel-old", "job-6")  # printed, the cloud never told
    journal.failed("rel-old", "job-7", "Paper jam")  # failed up front, the cloud never told


def test_reconcile_tells_the_cloud_each_outcome_exactly_once(engine: Engine,
                                                             journal: Journal) -> None:
    _leftovers(journal, engine)
    rows = {e.job_id: e for e in journal.unconfirmed()}
    h = Harness(engine, journal)
    results = h.printer.reconcile(wait=1.0)
    by_job = {r.job_id: r for r in results}
    assert {j: r.outcome for j, r in by_job.items()} == {
        "job-1": "failed", "job-2": "failed", "job-3": "printed", "job-4": "failed",
        "job-5": "failed", "job-6": "printed", "job-7": "failed"}
    assert all(r.told for r in results)
    reports = {r.job_id: r for r in h.link.reports()}
    assert len(h.link.reports()) == 7
    for job_id, report in reports.items():
        row = rows[job_id]
        expected = (row.printed_request_id if isinstance(report, m.JobPrinted)
                    else row.failed_request_id)
        assert report.request_id == expected
    assert journal.unconfirmed() == []
    # The job the engine never got is fenced: a late copy of that hand-over is refused.
    assert engine.engine.outcome("rel-old/job-4") is EngineOutcome.UNKNOWN
    # Nothing was printed by reconciling, nothing is reported twice.
    assert engine.printed_ids() == ["rel-old/job-3"]
    assert h.printer.reconcile() == []
    assert len(h.link.reports()) == 7
    assert h.done.empty()  # none of this went through the session
    h.printer.close()


def test_reconcile_waits_for_a_job_the_engine_is_still_printing(engine: Engine,
                                                                journal: Journal) -> None:
    engine.hold(True)
    journal.receive("rel-old", released(1))
    journal.fetched("rel-old", "job-1")
    journal.hand_over("rel-old", "job-1", "rel-old/job-1")
    data = doc(1)
    engine.engine.submit(EngineJob("job-1", "Job 1", data, hashlib.sha256(data).hexdigest(),
                                   release_id="rel-old"), lambda *a: None)
    h = Harness(engine, journal, settle_interval=0.02)
    [result] = h.printer.reconcile(wait=0.1)
    assert result.outcome == "printing" and not result.told
    assert h.link.reports() == []
    engine.hold(False)
    assert eventually(lambda: journal.unconfirmed() == [])
    [report] = h.link.reports()
    assert isinstance(report, m.JobPrinted)
    assert h.done.empty()
    h.printer.close()


def test_a_report_the_cloud_did_not_answer_is_repeated_with_the_same_request_id(
        engine: Engine, journal: Journal) -> None:
    journal.receive("rel-old", released(1))
    journal.failed("rel-old", "job-1", "Out of paper")
    link = FakeLink()
    link.answers = [LinkError("no answer", code="timeout")]
    h = Harness(engine, journal, link, retry_interval=0.05)
    [result] = h.printer.reconcile()
    assert result.outcome == "failed" and not result.told
    assert eventually(lambda: journal.unconfirmed() == [])
    first, second = link.reports()
    assert first == second  # same request id: the cloud answers a repeat from its store
    h.printer.close()


def test_an_unanswered_report_is_repeated_every_retry_interval_after_its_last_try(
        journal: Journal) -> None:
    """Issue 8, defect 13: on a fixed 30 s round, a report first tried between two rounds was
    repeated up to 60 s later. Each try is due ``retry_interval`` after the one before."""
    with failed_report_pending(journal, [LinkError("no answer", code="timeout"),
                                         LinkError("the connection was lost", code="unreachable"),
                                         m.Ack()]) as (now, link, printer):
        now[0] = 1005.0  # between two of the old fixed rounds (1030, 1060, ...)
        [result] = printer.reconcile()
        assert result.outcome == "failed" and not result.told
        while now[0] < 1080.0:
            now[0] += 1.0
            next_turn(printer)
        assert link.times == [1005.0, 1035.0, 1065.0]
        row = journal.get("rel-old", "job-1")
        assert row is not None and row.state is S.CONFIRMED
        first, second, third = link.reports()
        assert first == second == third  # the same request id every time


def test_reports_that_did_not_get_through_are_repeated_as_soon_as_the_link_is_back(
        journal: Journal) -> None:
    with failed_report_pending(journal, [LinkError("the connection was lost", code="unreachable"),
                                         m.Ack()]) as (now, link, printer):
        [result] = printer.reconcile()
        assert not result.told and link.times == [1000.0]
        now[0] = 1004.0
        printer.link_back()  # the device's link reconnected
        assert eventually(lambda: journal.get("rel-old", "job-1").state is S.CONFIRMED)
        assert link.times == [1000.0, 1004.0]  # not 1030


def test_a_final_refusal_of_a_report_is_journaled_not_repeated(engine: Engine,
                                                               journal: Journal) -> None:
    from protocol.errors import RemoteError
    journal.receive("rel-old", released(1))
    journal.failed("rel-old", "job-1", "Out of paper")
    link = FakeLink()
    link.answers = [RemoteError("job_not_found", "job job-1 is not in release rel-old")]
    now = [1000.0]
    h = Harness(engine, journal, link, retry_interval=30.0, clock=lambda: now[0])
    [result] = h.printer.reconcile()
    assert result.told
    row = journal.get("rel-old", "job-1")
    assert row is not None and row.state is S.CONFIRMED and row.answer == "job_not_found"
    # Three retry intervals pass, the printer thread looks at its reports after each (a
    # counted turn, not a fixed wait): nothing is repeated.
    for _ in range(3):
        now[0] += 31.0
        next_turn(h.printer)
    assert len(link.reports()) == 1
    h.printer.close()


# ---------------------------------------------------------------- the engine process


def test_a_job_on_an_engine_that_restarts_is_failed_not_stranded(tmp_path: Path,
                                                                 journal: Journal) -> None:
    state_dir = tmp_path / "engine"
    proc = EngineProcess(state_dir).start()
    client = EngineClient(proc.socket_path, retry_interval=0.05)
    try:
        EngineControl(proc.socket_path).hold(True)
        h = Harness(Engine(client, state_dir, proc), journal)
        h.release("rel-1", released(1))
        assert eventually(lambda: (journal.get("rel-1", "job-1") or journal.unconfirmed()[0])
                        .state is S.HANDED)
        proc.kill()  # the controller loses power with the job queued
        proc.start()
        [outcome] = h.outcomes(1)
        assert not outcome.ok and "restarted" in outcome.detail
        row = journal.get("rel-1", "job-1")
        assert row is not None and row.state is S.FAILED
        assert printed_log(state_dir) == []
        h.printer.close()
    finally:
        client.close()
        proc.stop()


def test_an_unreachable_engine_is_offline_and_nothing_is_fetched(tmp_path: Path,
                                                                 journal: Journal) -> None:
    client = EngineClient(tmp_path / "nobody.sock")
    assert client.state() is EngineState.OFFLINE
    with pytest.raises(EngineError):
        client.outcome("rel-1/job-1")
    h = Harness(Engine(client, tmp_path), journal)
    h.release("rel-1", released(1))
    [outcome] = h.outcomes(1)
    assert not outcome.ok and "offline" in outcome.detail
    assert h.link.fetches() == []
    h.printer.close()


def test_the_engine_remembers_what_it_printed_across_a_kill(tmp_path: Path) -> None:
    state_dir = tmp_path / "engine"
    got: queue.Queue[Any] = queue.Queue()
    with EngineProcess(state_dir) as proc:
        client = EngineClient(proc.socket_path)
        data = doc(1)
        client.submit(EngineJob("job-1", "Job 1", data, hashlib.sha256(data).hexdigest(),
                                release_id="rel-1"), lambda *a: got.put(a))
        assert got.get(timeout=5)[1] is True
        proc.kill()
        proc.start()
        assert client.outcome("rel-1/job-1") is EngineOutcome.PRINTED
        assert [p["id"] for p in EngineControl(proc.socket_path).printed()] == ["rel-1/job-1"]
        with pytest.raises(EngineRefused):
            client.submit(EngineJob("job-1", "Job 1", data, hashlib.sha256(data).hexdigest(),
                                    release_id="rel-1"), lambda *a: got.put(a))
        client.close()
    assert [p.sha256 for p in printed_log(state_dir)] == [hashlib.sha256(data).hexdigest()]


# ---------------------------------------------------------------- the socket protocol codec


def test_frames_decode_whole_or_one_byte_at_a_time() -> None:
    messages = [{"id": 1, "op": "state"}, {"id": 2, "op": "outcome", "job": "r/j"},
                {"event": "done", "job": "r/j", "outcome": "printed", "detail": ""}]
    stream = b"".join(encode_frame(msg) for msg in messages)
    whole = FrameDecoder().feed(stream)
    decoder = FrameDecoder()
    trickled = [msg for i in range(len(stream)) for msg in decoder.feed(stream[i:i + 1])]
    assert whole == trickled == [{"v": 1, **msg} for msg in messages]
    assert decoder.pending == 0


@pytest.mark.parametrize("garbage", [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
                                     b"\x00\x00\x00\x02[]", b"\x00\x00\x00\x03\xff\xfe\xfd",
                                     b"\x00\x00\x00\x08{\"v\": 2}"])
def test_bad_frames_are_protocol_errors(garbage: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(garbage)


def test_a_job_round_trips_and_bad_fields_are_named() -> None:
    data = doc(1)
    job = EngineJob("job-1", "Job 1", data, hashlib.sha256(data).hexdigest(), 2, "rel-1")
    assert job_from_wire(job_to_wire(job)) == job
    for name, value in [("sha256", "nope"), ("copies", 0), ("document", "%%%"),
                        ("job_id", "a/b")]:
        with pytest.raises(ProtocolError) as info:
            job_from_wire({**job_to_wire(job), name: value})
        assert info.value.field == f"job.{name}"


# ---------------------------------------------------------------- batching and prefetch


def test_a_release_submitted_at_once_prints_in_order_once(engine: Engine,
                                                          journal: Journal) -> None:
    h = Harness(engine, journal)
    jobs = [released(n) for n in range(1, 9)]
    for job in jobs:
        h.link.serve(job.job_id, doc(int(job.job_id.split("-")[1])))
    effects = [PrintJob("rel-1", job) for job in jobs]
    h.printer.submit_all(effects)
    h.printer.submit_all(effects)  # the whole release again: nothing new
    outcomes = h.outcomes(8)
    assert [o.job_id for o in outcomes] == [j.job_id for j in jobs]
    assert all(o.ok for o in outcomes)
    # A later release is the positive signal that the repeat was handled (in order) and
    # printed nothing.
    h.release("rel-2", released(9))
    assert [(o.release_id, o.job_id) for o in h.outcomes(1)] == [("rel-2", "job-9")]
    assert h.done.empty()
    assert engine.printed_ids() == [f"rel-1/{j.job_id}" for j in jobs] + ["rel-2/job-9"]
    h.printer.close()


def test_a_fault_while_documents_are_fetched_ahead_fails_the_rest_before_output(
        engine: Engine, journal: Journal) -> None:
    h = Harness(engine, journal)
    engine.inject(EngineState.NO_PAPER, after_pages=1)  # the first job runs the tray dry
    jobs = [released(1, copies=2), *[released(n) for n in range(2, 7)]]
    for job in jobs:
        h.link.serve(job.job_id, doc(int(job.job_id.split("-")[1])))
    h.printer.submit_all(PrintJob("rel-1", job) for job in jobs)
    outcomes = {o.job_id: o for o in h.outcomes(6)}
    assert not any(o.ok for o in outcomes.values())
    assert engine.printed_ids() == []
    assert set(journal.get("rel-1", j.job_id).state for j in jobs) == {S.FAILED}  # type: ignore[union-attr]
    h.printer.close()


def test_the_client_reconnects_to_a_restarted_engine(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "engine") as proc:
        client = EngineClient(proc.socket_path)
        assert client.state() is EngineState.READY
        proc.kill()
        assert client.state() is EngineState.OFFLINE
        proc.start()
        assert client.state() is EngineState.READY
        client.close()


def test_several_hand_overs_in_one_write_each_answered(tmp_path: Path) -> None:
    got: queue.Queue[Any] = queue.Queue()
    with EngineProcess(tmp_path / "engine") as proc:
        client = EngineClient(proc.socket_path)
        jobs = []
        for n in (1, 2, 3):
            data = doc(n)
            jobs.append(EngineJob(f"job-{n}", f"Job {n}", data, hashlib.sha256(data).hexdigest(),
                                  release_id="rel-1"))
        assert client.outcome("rel-1/job-2") is EngineOutcome.UNKNOWN  # fenced
        errors = client.submit_many([(job, lambda *a: got.put(a)) for job in jobs])
        assert errors[0] is None and errors[2] is None
        assert isinstance(errors[1], EngineRefused) and errors[1].code == "duplicate_job"
        assert sorted(got.get(timeout=5)[0] for _ in range(2)) == ["job-1", "job-3"]
        assert got.empty()
        client.close()
    assert [p.engine_id for p in printed_log(tmp_path / "engine")] == ["rel-1/job-1",
                                                                       "rel-1/job-3"]
