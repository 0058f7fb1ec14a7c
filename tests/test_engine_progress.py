"""How far a job is, from each engine to the releasing screen: the emulated engine counts page by
page, the engine server pushes its counts over the socket, the IPP engine passes on what
ippeveprinter says, the printer posts at most 4 counts a second per job and none after the job's
outcome, and the panel shows "page N of M" climbing."""

from __future__ import annotations

import hashlib
import itertools
import os
import queue
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from conftest import World
from hypothesis import given, settings
from ipp_printer import DnsSd, IppEvePrinter
from test_printing import FakeLink, doc, released

from cloud.demo import DEMO_USERS, demo_document, seed_demo
from cloud.directory import submit_job
from cloud.storage.factory import open_store
from cloud.storage.port import Job
from device_app.app import DeviceApp
from device_app.engines.ipp.engine import IppEngine
from device_app.engines.socket import EngineClient
from device_app.link import MqttCloudLink
from device_app.ports import EnginePages, PrintEngine, ReportsPages
from device_app.printing.journal import Journal
from device_app.printing.release import Printer
from device_app.session import JobDone, PagesPrinted, PrintJob, State
from device_app.view import Action, Screen
from firmware_stubs.engine_server import EngineProcess
from firmware_stubs.mfd_controller import MfdControllerStub
from firmware_stubs.pdf_pages import pdf_page_count
from protocol.engine import (
    EngineDone,
    EngineJob,
    EngineOutcome,
    EngineState,
    FrameDecoder,
    encode_frame,
    job_to_wire,
)


def make_job(name: str, pages: int, copies: int = 1) -> EngineJob:
    document = demo_document(name, pages)
    return EngineJob(f"job-{name}", name, document, hashlib.sha256(document).hexdigest(),
                     copies=copies, release_id="rel-1")


class Recorder:
    """An engine's on_pages and done callbacks in one: what was called, in order, and on which
    thread; a test waits for the done."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object]] = []
        self.threads: set[str] = set()
        self._done = threading.Event()

    def pages(self, engine_id: str, done: int) -> None:
        self.calls.append(("pages", engine_id, done))
        self.threads.add(threading.current_thread().name)

    def done(self, job_id: str, ok: bool, detail: str) -> None:
        self.calls.append(("done", job_id, ok))
        self._done.set()

    def wait(self, timeout: float = 10.0) -> list[tuple[str, str, object]]:
        assert self._done.wait(timeout), f"no outcome within {timeout} s: {self.calls}"
        return self.calls

    def counts(self) -> list[object]:
        return [value for kind, _, value in self.calls if kind == "pages"]


# --------------------------------------------------------------------------- the page count


@settings(max_examples=200)
@given(st.integers(1, 400), st.text(max_size=40))
def test_a_pdf_page_tree_counts_the_documents_pages(pages: int, name: str) -> None:
    assert pdf_page_count(demo_document(name, pages)) == pages


@settings(max_examples=300)
@given(st.binary(max_size=4000), st.booleans())
def test_any_bytes_count_as_some_pages_or_none(data: bytes, pdf: bool) -> None:
    count = pdf_page_count(b"%PDF-1.7\n" + data if pdf else data)
    assert count is None or count >= 1


def test_a_document_without_a_readable_page_tree_is_one_page_a_copy() -> None:
    assert pdf_page_count(b"%PDF-1.4 job 1\n" * 20) is None
    assert pdf_page_count(b"<< /Type /Pages /Count 4 >>") is None  # not a PDF at all


def test_every_demo_job_prints_as_many_pages_as_its_job_says(tmp_path: Path) -> None:
    # The simulator's panel says "page N of M" with M from the job: the emulator must get to M.
    store = open_store(f"sqlite:///{tmp_path / 'cloud.db'}")
    try:
        now = time.time()
        seed_demo(store, now=now)
        held: list[Job] = []
        for user in DEMO_USERS:
            found = store.user_by_email(user.email)
            assert found is not None
            held += store.held_jobs(found.id, 0, 100, now)[0]
        assert len(held) == 12 and max(j.pages for j in held) == 24
        for job in held:
            document = store.document(job.id, 0, job.size)
            assert pdf_page_count(document) == job.pages, job.name
            assert len(document) <= 400 + 300 * job.pages, (job.name, len(document))  # small
    finally:
        store.close()


# --------------------------------------------------------------------------- the emulator


def test_the_emulator_counts_every_page_of_every_copy_before_the_outcome() -> None:
    engine = MfdControllerStub(page_time=0.005)
    rec = Recorder()
    engine.on_pages = rec.pages
    job = make_job("five", pages=5, copies=2)
    try:
        engine.submit(job, rec.done)
        calls = rec.wait()
    finally:
        engine.close()
    assert calls == [("pages", job.engine_id, n) for n in range(1, 11)] + \
        [("done", job.job_id, True)]
    assert rec.threads == {"mfd-engine"}
    assert isinstance(engine, ReportsPages)


def test_the_emulator_counts_at_its_pace() -> None:
    engine = MfdControllerStub(page_time=0.05)
    stamps: list[float] = []
    rec = Recorder()

    def stamped(eid: str, n: int) -> None:
        stamps.append(time.monotonic())
        rec.pages(eid, n)

    engine.on_pages = stamped
    try:
        engine.submit(make_job("paced", pages=4), rec.done)
        rec.wait()
    finally:
        engine.close()
    assert rec.counts() == [1, 2, 3, 4]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.04, gaps  # a page every page_time, not all at once


def test_a_jam_mid_job_stops_the_count_and_fails_the_job() -> None:
    engine = MfdControllerStub(page_time=0.005)
    rec = Recorder()
    engine.on_pages = rec.pages
    engine.inject(EngineState.JAM, after_pages=2)
    job = make_job("jammed", pages=6)
    try:
        engine.submit(job, rec.done)
        calls = rec.wait()
    finally:
        engine.close()
    assert calls == [("pages", job.engine_id, 1), ("pages", job.engine_id, 2),
                     ("done", job.job_id, False)]


def test_a_document_the_emulator_cannot_read_prints_one_page_a_copy() -> None:
    engine = MfdControllerStub()
    rec = Recorder()
    engine.on_pages = rec.pages
    document = b"%PDF-1.4 job 1\n" * 20  # no page tree in the clear
    job = EngineJob("job-raw", "raw", document, hashlib.sha256(document).hexdigest(), copies=3,
                    release_id="rel-1")
    try:
        engine.submit(job, rec.done)
        assert rec.wait()[-1] == ("done", job.job_id, True)
    finally:
        engine.close()
    assert rec.counts() == [1, 2, 3]


def test_a_jam_armed_after_n_pages_spares_a_shorter_job_and_fails_the_next_long_one() -> None:
    engine = MfdControllerStub()
    engine.inject(EngineState.JAM, after_pages=4)
    short, long = make_job("short", pages=3), make_job("long", pages=2, copies=3)
    first, second = Recorder(), Recorder()
    first_pages: list[int] = []
    engine.on_pages = lambda eid, n: first_pages.append(n) if eid == short.engine_id else None
    try:
        engine.submit(short, first.done)
        assert first.wait() == [("done", short.job_id, True)]
        engine.on_pages = second.pages
        engine.submit(long, second.done)
        calls = second.wait()
    finally:
        engine.close()
    assert first_pages == [1, 2, 3]
    assert calls == [("pages", long.engine_id, n) for n in (1, 2, 3, 4)] + \
        [("done", long.job_id, False)]
    assert engine.state() is EngineState.JAM
    assert [p.job_id for p in engine.printed] == [short.job_id]


# --------------------------------------------------------------------------- the socket engine


@pytest.fixture
def engine_server(tmp_path: Path) -> Iterator[EngineProcess]:
    with EngineProcess(tmp_path / "engine", page_time=0.01) as proc:
        yield proc


def test_the_engine_server_pushes_pages_before_done_on_the_wire(
        engine_server: EngineProcess) -> None:
    job = make_job("wire", pages=3)
    frames: list[dict[str, Any]] = []
    decoder = FrameDecoder()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(engine_server.socket_path)
        sock.sendall(encode_frame({"op": "submit", "id": 1, "job": job_to_wire(job)}))
        while not any(f.get("event") == "done" for f in frames):
            data = sock.recv(65536)
            assert data, "the engine closed the connection"
            frames += decoder.feed(data)
    assert frames[0] == {"v": 1, "id": 1, "ok": True, "outcome": "printing"}
    assert frames[1:] == [{"v": 1, "event": "pages", "job": job.engine_id, "done": n}
                          for n in (1, 2, 3)] + [
        {"v": 1, "event": "done", "job": job.engine_id, "outcome": "printed", "detail": ""}]


def test_the_socket_engine_passes_the_counts_of_its_own_jobs_on(
        engine_server: EngineProcess) -> None:
    mine, other = EngineClient(engine_server.socket_path), EngineClient(engine_server.socket_path)
    rec, overheard = Recorder(), Recorder()
    mine.on_pages, other.on_pages = rec.pages, overheard.pages
    job = make_job("socket", pages=4, copies=2)
    try:
        assert other.state() is EngineState.READY  # connected: the engine pushes to it too
        mine.submit(job, rec.done)
        calls = rec.wait()
        # Answers come after every event pushed before them: once this one is here, the other
        # app has seen the whole job go by.
        assert other.state() is EngineState.READY
    finally:
        mine.close()
        other.close()
    assert calls == [("pages", job.engine_id, n) for n in range(1, 9)] + \
        [("done", job.job_id, True)]
    assert rec.threads == {"engine-reader"}
    assert overheard.calls == []  # another app's job: not its to show


def test_a_malformed_count_is_dropped_and_the_connection_lives_on() -> None:
    # An engine of someone else's making, on the wire: counts that are not counts are ignored.
    # (A short directory of its own: a test's tmp_path can outgrow a socket path's 107 bytes.)
    where = tempfile.mkdtemp(prefix="mfdprog-")
    path = os.path.join(where, "e.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    job = make_job("odd", pages=2)
    eid = job.engine_id

    def serve() -> None:
        conn, _ = listener.accept()
        decoder = FrameDecoder()
        (submit,) = decoder.feed(conn.recv(1 << 20))
        conn.sendall(encode_frame({"id": submit["id"], "ok": True, "outcome": "printing"}))
        for event in ({"job": eid, "done": "1"}, {"job": eid, "done": -1},
                      {"job": eid, "done": True}, {"job": 7, "done": 1}, {"done": 1},
                      {"job": eid}, {"job": eid, "done": 2}):
            conn.sendall(encode_frame({"event": "pages", **event}))
        conn.sendall(encode_frame({"event": "done", "job": eid, "outcome": "printed",
                                   "detail": ""}))
        conn.recv(1)  # until the client goes
        conn.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    client = EngineClient(path)
    rec = Recorder()
    client.on_pages = rec.pages
    try:
        client.submit(job, rec.done)
        assert rec.wait() == [("pages", eid, 2), ("done", job.job_id, True)]
    finally:
        client.close()
        server.join(5)
        listener.close()
        shutil.rmtree(where, ignore_errors=True)


# --------------------------------------------------------------------------- the IPP engine

def counting_command(impressions: int) -> str:
    """A print command that prints ``impressions``, a quarter of a second each, and says so the
    way ippeveprinter listens (lines on stderr)."""
    return f"""#!/bin/sh
echo "ATTR: job-impressions={impressions}" >&2
for n in $(seq 1 {impressions}); do
  sleep 0.25
  echo "ATTR: job-impressions-completed=$n" >&2
done
exit 0
"""


@pytest.fixture
def ippeve(dnssd: DnsSd, tmp_path: Path) -> Iterator[IppEvePrinter]:
    printer = IppEvePrinter(tmp_path / "printer", "mfdkit progress printer")
    printer.workdir.mkdir()
    printer.start()
    yield printer
    printer.stop()


@pytest.fixture
def ipp_engine(ippeve: IppEvePrinter) -> Iterator[IppEngine]:
    engine = IppEngine(ippeve.uri, timeout=5.0, poll_interval=0.02, status_interval=0.05)
    assert engine.wait_status(5)
    yield engine
    engine.close()


@pytest.mark.integration
def test_ipp_passes_on_the_impressions_ippeveprinter_counts(ippeve: IppEvePrinter,
                                                           ipp_engine: IppEngine) -> None:
    # ippeveprinter runs its print command afresh for each job: this one counts.
    (ippeve.workdir / "print-command.sh").write_text(counting_command(4))
    rec = Recorder()
    ipp_engine.on_pages = rec.pages
    job = make_job("counted", pages=4)
    ipp_engine.submit(job, rec.done)
    calls = rec.wait()
    assert calls == [("pages", job.engine_id, n) for n in (1, 2, 3, 4)] + \
        [("done", job.job_id, True)]
    assert rec.threads == {"ipp-jobs"}


@pytest.mark.integration
def test_ipp_reports_no_count_when_the_printer_counts_none(ippeve: IppEvePrinter,
                                                         ipp_engine: IppEngine) -> None:
    # The fixture's own command says nothing: ippeveprinter then answers
    # job-impressions-completed 0 throughout, and the job is only printing, then printed.
    rec = Recorder()
    ipp_engine.on_pages = rec.pages
    job = make_job("uncounted", pages=3)
    ipp_engine.submit(job, rec.done)
    assert rec.wait() == [("done", job.job_id, True)]


# --------------------------------------------------------------------------- the printer


class CountingEngine:
    """A PrintEngine and ReportsPages the test drives by hand: it takes jobs and says nothing
    until told to."""

    def __init__(self) -> None:
        self.on_pages: EnginePages | None = None
        self.handed: queue.Queue[tuple[EngineJob, EngineDone]] = queue.Queue()

    def state(self) -> EngineState:
        return EngineState.READY

    def submit(self, job: EngineJob, done: EngineDone) -> None:
        self.handed.put((job, done))

    def outcome(self, engine_id: str) -> EngineOutcome:
        return EngineOutcome.PRINTING

    def count(self, engine_id: str, impressions: int) -> None:
        assert self.on_pages is not None, "the printer did not listen"
        self.on_pages(engine_id, impressions)


def two_turns(printer: Printer) -> None:
    """Until the printer thread has been round twice after now: whatever was queued before is
    handled (one turn may have been under way already)."""
    for _ in range(2):
        turns = printer.turns
        printer.wake()
        deadline = time.monotonic() + 5
        while printer.turns <= turns:
            assert time.monotonic() < deadline, "the printer thread is stuck"
            time.sleep(0.005)


@pytest.fixture
def counting(tmp_path: Path) -> Iterator[tuple[CountingEngine, FakeLink, Journal]]:
    journal = Journal.open(tmp_path / "journal.db")
    yield CountingEngine(), FakeLink(), journal
    journal.close()


def _hand(printer: Printer, engine: CountingEngine, link: FakeLink, n: int = 1,
          copies: int = 1) -> tuple[EngineJob, EngineDone]:
    job = released(n, copies=copies)
    link.serve(job.job_id, doc(n))
    printer.submit(PrintJob("rel-1", job))
    return engine.handed.get(timeout=5)


def test_the_printer_posts_counts_4_a_second_and_none_after_the_outcome(
        counting: tuple[CountingEngine, FakeLink, Journal]) -> None:
    engine, link, journal = counting
    events: queue.Queue[tuple[float, object]] = queue.Queue()
    printer = Printer(link, engine, lambda e: events.put((time.monotonic(), e)), journal)
    assert isinstance(engine, ReportsPages) and engine.on_pages is not None
    try:
        job, done = _hand(printer, engine, link)
        began = time.monotonic()
        for n in range(1, 41):  # a fast engine: a page every 10 ms, 0.4 s in all
            engine.count(job.engine_id, n)
            time.sleep(0.01)
        counting_took = time.monotonic() - began
        posted: list[tuple[float, PagesPrinted]] = []
        while not posted or posted[-1][1].done < 40:  # the newest count comes, late or not
            at, event = events.get(timeout=5)
            assert isinstance(event, PagesPrinted)
            posted.append((at, event))
        done(job.job_id, True, "")
        engine.count(job.engine_id, 41)  # an engine that counts on after its outcome
        at, outcome = events.get(timeout=5)
        assert outcome == JobDone("rel-1", job.job_id, True, "")
        two_turns(printer)
        assert events.empty(), "a count came after the job's outcome"
    finally:
        printer.close()
    assert all(e.release_id == "rel-1" and e.job_id == job.job_id for _, e in posted)
    counts = [e.done for _, e in posted]
    assert counts == sorted(set(counts)) and counts[0] == 1 and counts[-1] == 40
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(posted)]
    assert gaps and min(gaps) >= 0.24, gaps  # at most 4 a second
    # Not 40 redraws: one at once, then one a quarter second at most (a loaded machine may
    # stretch the 0.4 s), the newest when its quarter is up.
    assert len(posted) <= 2 + counting_took / 0.25, (len(posted), counting_took)


def test_copies_count_once_per_page_of_the_document(
        counting: tuple[CountingEngine, FakeLink, Journal]) -> None:
    engine, link, journal = counting
    events: queue.Queue[object] = queue.Queue()
    printer = Printer(link, engine, events.put, journal, pages_interval=0.0)
    try:
        job, done = _hand(printer, engine, link, copies=2)
        seen: list[object] = []
        for n in range(1, 7):  # 3 pages, 2 copies: a page is done with its second copy
            engine.count(job.engine_id, n)
            if n % 2 == 0:
                seen.append(events.get(timeout=5))
        two_turns(printer)
        assert events.empty(), "a half-done page was counted"
        done(job.job_id, True, "")
        seen.append(events.get(timeout=5))
    finally:
        printer.close()
    assert seen == [PagesPrinted("rel-1", job.job_id, n) for n in (1, 2, 3)] + \
        [JobDone("rel-1", job.job_id, True, "")]


def test_an_engine_that_counts_nothing_is_still_a_print_engine(
        counting: tuple[CountingEngine, FakeLink, Journal]) -> None:
    # The stand-ins and adapters that predate page counts keep working: no on_pages, no counts.
    class Quiet:
        def __init__(self) -> None:
            self.inner = CountingEngine()

        def state(self) -> EngineState:
            return EngineState.READY

        def submit(self, job: EngineJob, done: EngineDone) -> None:
            self.inner.submit(job, done)

        def outcome(self, engine_id: str) -> EngineOutcome:
            return EngineOutcome.PRINTING

    _, link, journal = counting
    quiet = Quiet()
    engine: PrintEngine = quiet
    assert not isinstance(engine, ReportsPages)
    events: queue.Queue[object] = queue.Queue()
    printer = Printer(link, engine, events.put, journal)
    try:
        job = released(1)
        link.serve(job.job_id, doc(1))
        printer.submit(PrintJob("rel-1", job))
        _, done = quiet.inner.handed.get(timeout=5)
        done(job.job_id, True, "")
        assert events.get(timeout=5) == JobDone("rel-1", job.job_id, True, "")
    finally:
        printer.close()


# --------------------------------------------------------------------------- the panel


@pytest.fixture(params=["emulator", "engine-server", "ipp"])
def panel_engine(request: pytest.FixtureRequest, tmp_path: Path
                 ) -> Iterator[tuple[PrintEngine, int]]:
    """An engine that counts as it prints, and the pages of the job to release on it: in the
    app's process, behind the engine socket, or ippeveprinter with a command that counts."""
    if request.param == "emulator":
        stub = MfdControllerStub(page_time=0.1)  # 1.2 s on paper: a person watches it
        yield stub, 12
        stub.close()
    elif request.param == "engine-server":
        with EngineProcess(tmp_path / "engine", page_time=0.1) as proc:
            client = EngineClient(proc.socket_path)
            yield client, 12
            client.close()
    else:
        request.getfixturevalue("dnssd")
        printer = IppEvePrinter(tmp_path / "printer", "mfdkit panel progress printer")
        printer.workdir.mkdir()
        printer.start()
        (printer.workdir / "print-command.sh").write_text(counting_command(6))
        engine = IppEngine(printer.uri, timeout=5.0, poll_interval=0.02, status_interval=0.05)
        assert engine.wait_status(5)
        yield engine, 6  # the command counts 6 impressions, whatever the document
        engine.close()
        printer.stop()


@pytest.mark.integration
def test_the_releasing_screen_shows_the_page_count_climbing(
        world: World, panel_engine: tuple[PrintEngine, int]) -> None:
    engine, pages = panel_engine
    alice = DEMO_USERS[0]
    name = "Progress report.pdf"
    job_id = submit_job(world.store, alice.email, name, demo_document(name, pages), pages=pages)
    link = MqttCloudLink(world.broker.address("copier-1"), "copier-1").start()
    app = DeviceApp(link, engine, device_name="Copier 1").start()
    shown: list[str] = []
    screens: set[Screen] = set()

    def watch(a: DeviceApp) -> bool:
        view = a.view()
        for item in view.progress:
            if item.job_id == job_id and item.detail and (not shown or shown[-1] != item.detail):
                shown.append(item.detail)
                screens.add(view.screen)
        return a.machine.state is State.JOBS and "1 printed" in view.message

    try:
        app.enter_code(alice.access_code)
        assert app.run_until(lambda a: a.machine.state is State.JOBS, 5)
        assert job_id in {j.job_id for j in app.view().jobs}
        app.tap(Action.SELECT, job_id)
        app.tap(Action.RELEASE)
        assert app.run_until(watch, 15), shown
    finally:
        app.stop()
        link.close()
    counts = []
    for said in shown:
        match = re.fullmatch(r"page (\d+) of (\d+)", said)
        assert match is not None and int(match.group(2)) == pages, shown
        counts.append(int(match.group(1)))
    assert len(counts) >= 3, shown  # climbing, not jumping from nothing to printed
    assert counts == sorted(set(counts)) and counts[-1] <= pages, shown
    assert screens == {Screen.RELEASING}
    assert world.store.jobs([job_id])[0].state == "PRINTED"
