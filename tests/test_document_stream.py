"""Documents streamed from the cloud to the engine (issue 13): fetched with a window of chunks in
flight into the device's spool, hashed as they arrive, handed to each engine adapter from the
file (the in-process engine, the engine server over its socket in frames, a real IPP printer:
CUPS' ippeveprinter), through private Mosquitto and the cloud worker on the test's backend, with
the real Printer and its journal on disk. Sizes around the chunk edges arrive intact; answers
that are not what was asked, and damaged documents, fail the job before the engine sees a
byte; a link reset mid-fetch is asked again and prints once; the spool never outlives a job."""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import random
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from conftest import World
from hypothesis import given, settings
from hypothesis import strategies as st
from ipp_printer import DnsSd, IppEvePrinter
from waiting import eventually

from cloud.demo import DEMO_USERS, demo_document
from cloud.directory import submit_job
from device_app.engines.ipp.engine import IppEngine
from device_app.engines.socket import EngineClient
from device_app.link import MqttCloudLink
from device_app.ports import PrintEngine
from device_app.printing.documents import Reassembly
from device_app.printing.journal import Journal
from device_app.printing.release import Printer
from device_app.printing.spool import Spool
from device_app.session import JobDone, PrintJob
from firmware_stubs.engine_server import EngineControl, EngineProcess, EngineServer
from firmware_stubs.mfd_controller import MfdControllerStub
from protocol import messages as m
from protocol.engine import (
    EngineJob,
    EngineOutcome,
    FrameDecoder,
    encode_frame,
    job_to_wire,
)
from protocol.errors import EngineError, MfdError
from simulator.netem import LinkProfile, WanProxy

pytestmark = pytest.mark.integration

CHUNK = m.DOCUMENT_CHUNK_BYTES
ALICE = DEMO_USERS[0]
#: The cloud's store is not what these tests are about (one test runs on both backends: chunk
#: edges read from each); the rest run on SQLite only, to keep the suite short.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])


def sized(size: int, seed: int = 0) -> bytes:
    """A PDF (the printer takes PDF only) of exactly ``size`` bytes; its first bytes when the
    size is below a PDF's."""
    rng = random.Random(seed)
    head = demo_document(f"stream {size}", 1)
    if size <= len(head):
        return head[:size]
    # A comment line after %%EOF pads it: the PDF reads the same.
    pad = bytes(rng.getrandbits(8) | 0x80 for _ in range(size - len(head) - 2))
    return head + b"%" + pad + b"\n"


# --------------------------------------------------------------------------- reassembly (pure)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), total=st.integers(0, 40), chunk=st.integers(1, 7),
       window=st.integers(1, 5))
def test_any_chunking_and_any_arrival_order_within_the_window_reassembles_the_document(
        data: st.DataObject, total: int, chunk: int, window: int) -> None:
    document = bytes(range(total))
    plan = Reassembly(total, chunk=chunk, window=window)
    asked: list[tuple[int, int]] = plan.asks()
    out = bytearray()
    while not plan.complete:
        assert asked, "nothing in flight and the document is not complete"
        assert len(asked) <= window
        offset, length = asked.pop(data.draw(st.integers(0, len(asked) - 1), label="arrives"))
        # The cloud may answer less than asked (its chunk size is its own).
        served = data.draw(st.integers(1, length), label="served")
        piece = document[offset:offset + served]
        out += b"".join(plan.answer(offset, m.DocumentChunk(job_id="j", offset=offset,
                                                            data=piece, total=total)))
        assert plan.delivered == len(out)
        asked += plan.asks()
    assert bytes(out) == document and not asked


@pytest.mark.parametrize(("offset", "total", "data", "why"), [
    (4, 10, b"abcd", "bytes 4.. of 10 when 0.. of 10"),  # another chunk than asked for
    (0, 11, b"abcd", "bytes 0.. of 11 when 0.. of 10"),  # another document's size
    (0, 10, b"", "document ended at 0"),
    (0, 10, b"a" * 9, "sent 9 bytes at 0 when 4"),  # more than asked
])
def test_an_answer_that_is_not_what_was_asked_is_refused(offset: int, total: int, data: bytes,
                                                         why: str) -> None:
    plan = Reassembly(10, chunk=4, window=2)
    assert plan.asks() == [(0, 4), (4, 4)]
    with pytest.raises(MfdError, match=why):
        plan.answer(0, m.DocumentChunk(job_id="j", offset=offset, data=data, total=total))


def test_the_spool_is_private_and_cleaned_at_start(tmp_path: Path) -> None:
    spool = Spool.beside(str(tmp_path / "dev" / "journal.db"))
    out, path = spool.create()
    out.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(spool.folder).st_mode) == 0o700
    assert Spool(spool.folder).clean() == 1 and not os.path.exists(path)


# --------------------------------------------------------------------------- the real stack


@dataclass
class Rig:
    world: World
    link: MqttCloudLink
    printer: Printer
    outcomes: queue.Queue[JobDone]
    session: str

    def release(self, documents: list[bytes], *,
                damage: Callable[[str], bytes] | None = None) -> list[tuple[str, JobDone]]:
        """Submit the documents as held jobs, release them all, hand them to the printer as
        the app does; each job's id and outcome, in release order."""
        ids = tuple(submit_job(self.world.store, ALICE.email, f"Stream {i}.pdf", doc, pages=1)
                    for i, doc in enumerate(documents))
        if damage is not None:  # the bytes the cloud serves are no longer those submitted
            for job_id in ids:
                self.world.store.execute("UPDATE documents SET data=? WHERE job_id=?",
                                         damage(job_id), job_id)
        result = self.link.call(m.Release(request_id=f"r-{ids[0]}", session=self.session,
                                          job_ids=ids), timeout=10)
        assert isinstance(result, m.ReleaseResult)
        self.printer.submit_all(PrintJob(result.release_id, job) for job in result.jobs)
        done: dict[str, JobDone] = {}
        while len(done) < len(ids):
            outcome = self.outcomes.get(timeout=30)
            if isinstance(outcome, JobDone):  # not the pages printed so far
                done[outcome.job_id] = outcome
        return [(i, done[i]) for i in ids]

    def spool_is_empty(self) -> bool:
        return self.printer.spool.files() == []


@contextlib.contextmanager
def rig(world: World, tmp_path: Path, engine: PrintEngine,
        profile: LinkProfile | None = None) -> Iterator[tuple[Rig, WanProxy]]:
    address = world.broker.address("copier-1")
    net = WanProxy(address.host, address.port, profile)
    link = MqttCloudLink(replace(address, host=net.host, port=net.port), "copier-1").start()
    journal = Journal.open(tmp_path / "device" / "journal.db")
    outcomes: queue.Queue[Any] = queue.Queue()
    printer = Printer(link, engine, outcomes.put, journal)
    try:
        session = link.call(m.Identify("card", ALICE.badge))
        assert isinstance(session, m.IdentifyResult)
        yield Rig(world, link, printer, outcomes, session.session), net
    finally:
        printer.close()
        link.close()
        net.close()
        journal.close()


SIZES = [0, 1, CHUNK, CHUNK + 1, 3 * 1024 * 1024 + 7]


def test_every_size_arrives_intact_on_the_in_process_engine(world: World,
                                                            tmp_path: Path) -> None:
    engine = MfdControllerStub()
    try:
        with rig(world, tmp_path, engine) as (r, _):
            docs = [sized(n, n) for n in SIZES]
            outcomes = r.release(docs)
            assert [o.ok for _, o in outcomes] == [True] * len(SIZES), outcomes
            assert [(p.size, p.sha256) for p in engine.printed] == [
                (len(d), hashlib.sha256(d).hexdigest()) for d in docs]
            assert r.spool_is_empty()
    finally:
        engine.close()


@SQLITE_ONLY
def test_every_size_arrives_intact_through_the_engine_socket_in_frames(
        world: World, tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "engine") as process:
        client = EngineClient(process.socket_path)
        try:
            with rig(world, tmp_path, client) as (r, _):
                docs = [sized(n, n) for n in SIZES]
                outcomes = r.release(docs)
                assert [o.ok for _, o in outcomes] == [True] * len(SIZES), outcomes
                assert client._streams is True  # the engine said it takes document frames
                printed = EngineControl(process.socket_path).printed()
                assert [(p["size"], p["sha256"]) for p in printed] == [
                    (len(d), hashlib.sha256(d).hexdigest()) for d in docs]
                assert r.spool_is_empty()
                # The engine kept no upload either.
                assert os.listdir(tmp_path / "engine" / "uploads") == []
        finally:
            client.close()


@pytest.fixture
def ipp_printer(dnssd: DnsSd, tmp_path: Path) -> Iterator[IppEvePrinter]:
    printer = IppEvePrinter(tmp_path / "printer", "mfdkit stream printer")
    printer.workdir.mkdir()
    printer.start()
    yield printer
    printer.stop()


@SQLITE_ONLY
def test_documents_arrive_intact_on_a_real_ipp_printer(world: World, tmp_path: Path,
                                                       ipp_printer: IppEvePrinter) -> None:
    engine = IppEngine(ipp_printer.uri, timeout=10.0, poll_interval=0.02, status_interval=0.05)
    try:
        assert engine.wait_status(5)
        with rig(world, tmp_path, engine) as (r, _):
            docs = [sized(n, n) for n in SIZES]
            outcomes = r.release(docs)
            # An IPP printer refuses a Print-Job without document data ("No file in request"):
            # the printer's word, failed before output. Every other size is on it, intact.
            (empty_ok, empty_detail), *rest = [(o.ok, o.detail) for _, o in outcomes]
            assert not empty_ok and "No file in request" in empty_detail
            assert [ok for ok, _ in rest] == [True] * len(rest), outcomes
            kept = sorted(p.read_bytes() for p in ipp_printer.spooled())
            assert kept == sorted(docs[1:])
            assert r.spool_is_empty()
    finally:
        engine.close()


@SQLITE_ONLY
def test_a_damaged_document_never_reaches_the_engine(world: World, tmp_path: Path) -> None:
    engine = MfdControllerStub()
    try:
        with rig(world, tmp_path, engine) as (r, _):
            good = sized(CHUNK * 3 + 5, 1)
            bad = bytearray(good)
            bad[CHUNK * 2 + 1] ^= 1
            ((_, outcome),) = r.release([good], damage=lambda _j: bytes(bad))
            assert not outcome.ok and "damaged" in outcome.detail
            assert engine.printed == [] and engine.refused == []  # never handed over
            assert r.spool_is_empty()
    finally:
        engine.close()


class Lying:
    """The real link, but one document answer is changed on its way to the printer."""

    def __init__(self, link: MqttCloudLink, change: Callable[[m.DocumentChunk], m.Result]
                 ) -> None:
        self._link, self._change, self.changed = link, change, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._link, name)

    def request(self, request: m.Request, reply: Callable[[Any], None],
                timeout: float | None = None) -> None:
        def altered(result: Any) -> None:
            if isinstance(result, m.DocumentChunk) and result.offset > 0 and not self.changed:
                self.changed += 1
                result = self._change(result)
            reply(result)
        self._link.request(request, altered, timeout)


@pytest.mark.parametrize("change", [
    pytest.param(lambda c: replace(c, offset=c.offset + CHUNK), id="another-chunk"),
    pytest.param(lambda c: replace(c, offset=0), id="an-earlier-chunk"),
    pytest.param(lambda c: replace(c, total=c.total + 1), id="another-total"),
])
@SQLITE_ONLY
def test_an_answer_out_of_place_fails_the_job_before_output(
        world: World, tmp_path: Path, change: Callable[[m.DocumentChunk], m.Result]) -> None:
    engine = MfdControllerStub()
    try:
        with rig(world, tmp_path, engine) as (r, _):
            r.printer.link = Lying(r.link, change)
            ((_, outcome),) = r.release([sized(CHUNK * 4, 2)])
            assert not outcome.ok and "could not fetch the document" in outcome.detail
            assert engine.printed == [] and engine.refused == []
            assert r.spool_is_empty()
    finally:
        engine.close()


@SQLITE_ONLY
@pytest.mark.parametrize("fault", ["reset", "cut"])
def test_a_link_failing_mid_fetch_is_asked_again_and_prints_once(world: World, tmp_path: Path,
                                                                 fault: str) -> None:
    engine = MfdControllerStub()
    try:
        with rig(world, tmp_path, engine, LinkProfile.rtt(40)) as (r, net):
            doc = sized(CHUNK * 6 + 3, 3)
            if fault == "reset":  # new connections work at once
                net.reset_at("down", b'"type":"jobs.document"')
            else:  # refused until the link is restored
                net.cut_at("down", b'"type":"jobs.document"')
            results: queue.Queue[Any] = queue.Queue()
            threading.Thread(target=lambda: results.put(r.release([doc])), daemon=True).start()
            assert eventually(net.was_cut.is_set, timeout=20)
            if fault == "cut":
                net.restore()
            ((_, outcome),) = results.get(timeout=40)
            assert outcome.ok, outcome
            assert [(p.size, p.sha256) for p in engine.printed] == [
                (len(doc), hashlib.sha256(doc).hexdigest())]
            assert r.spool_is_empty()
    finally:
        engine.close()


@SQLITE_ONLY
def test_spool_files_a_crash_left_are_removed_when_the_device_starts(world: World,
                                                                     tmp_path: Path) -> None:
    engine = MfdControllerStub()
    try:
        leftover = Spool.beside(str(tmp_path / "device" / "journal.db"))
        out, path = leftover.create()
        out.write(b"half a document from a run that died")
        out.close()
        with rig(world, tmp_path, engine) as (r, _):
            assert not os.path.exists(path) and r.spool_is_empty()
            ((_, outcome),) = r.release([sized(CHUNK + 9, 4)])
            assert outcome.ok and r.spool_is_empty()
    finally:
        engine.close()


# --------------------------------------------------------------------------- the engine socket


class OldEngineServer(EngineServer):
    """The engine server as it was before document frames: no ``hello`` (unknown_op), and a
    submit must carry its document in the one frame."""

    def _begin(self, msg: dict[str, Any]) -> None:
        return None

    def _dispatch(self, msg: dict[str, Any]) -> dict[str, Any]:
        if msg.get("op") == "hello":
            raise EngineError("unknown op 'hello'", code="unknown_op")
        return super()._dispatch(msg)


def job_of(data: bytes, n: int = 1) -> EngineJob:
    return EngineJob(f"job-{n}", f"Job {n}", data, hashlib.sha256(data).hexdigest(),
                     release_id="rel-1")


def test_an_engine_from_before_document_frames_gets_the_document_in_one_frame(
        tmp_path: Path) -> None:
    server = OldEngineServer(tmp_path / "old.sock", tmp_path / "old").start()
    client = EngineClient(tmp_path / "old.sock")
    done: queue.Queue[tuple[str, bool, str]] = queue.Queue()
    try:
        data = sized(CHUNK * 5 + 1, 5)
        client.submit(job_of(data), lambda *a: done.put(a))
        assert done.get(timeout=10) == ("job-1", True, "")
        assert client._streams is False
        assert [(p.size, p.sha256) for p in server.core.printed] == [
            (len(data), hashlib.sha256(data).hexdigest())]
    finally:
        client.close()
        server.stop()


def frames_answered(sock: socket.socket) -> list[dict[str, Any]]:
    """Every frame the engine sends until it closes the connection."""
    decoder, got = FrameDecoder(), []
    while data := sock.recv(65536):
        got += decoder.feed(data)
    return got


@pytest.mark.parametrize("after_head", [
    pytest.param([{"op": "state", "id": 1}], id="another-frame-mid-document"),
    pytest.param([{"op": "document", "id": 2, "data": "YWJj"}], id="another-id"),
    pytest.param([{"op": "document", "id": 1, "data": "YWJjZGVmZ2hpams="}], id="too-many-bytes"),
])
def test_a_streamed_submit_gone_wrong_is_refused_and_leaves_no_job(
        tmp_path: Path, after_head: list[dict[str, Any]]) -> None:
    server = EngineServer(tmp_path / "e.sock", tmp_path / "e").start()
    try:
        head = {**job_to_wire(job_of(b"0123456789"), streamed=True)}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(tmp_path / "e.sock"))
            sock.sendall(encode_frame({"op": "submit", "id": 1, "job": head})
                         + b"".join(encode_frame(f) for f in after_head))
            (answer,) = frames_answered(sock)
        assert answer["ok"] is False and answer["error"]["code"] == "bad_request", answer
        assert server.core.outcome("rel-1/job-1")[0] is EngineOutcome.UNKNOWN
        assert os.listdir(tmp_path / "e" / "uploads") == []
    finally:
        server.stop()


def test_a_connection_lost_mid_document_is_never_a_job(tmp_path: Path) -> None:
    server = EngineServer(tmp_path / "e.sock", tmp_path / "e").start()
    try:
        head = job_to_wire(job_of(b"0123456789"), streamed=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(tmp_path / "e.sock"))
            sock.sendall(encode_frame({"op": "submit", "id": 1, "job": head})
                         + encode_frame({"op": "document", "id": 1, "data": "YWJj"}))
            assert eventually(lambda: os.listdir(tmp_path / "e" / "uploads") != [])
        assert eventually(lambda: os.listdir(tmp_path / "e" / "uploads") == [])
        assert server.core.outcome("rel-1/job-1")[0] is EngineOutcome.UNKNOWN
    finally:
        server.stop()
