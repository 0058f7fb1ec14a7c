"""The behaviour every :class:`~readers.events.CardReader` shows, written once (STYLE.md point 6,
as nfcpy's per-chip tests subclass one shared base test).

:class:`ReaderContract` holds the tests; a subclass per adapter family
(tests/test_reader_contract.py) supplies only a :class:`Bench`: how to build its reader from a
spec string and how to act on its transport -- present a card, send garbage, unplug, replug.
The contract:

* a presented card gives exactly one read, with the right number, raw bytes and reader id, in
  time;
* the same card again within the lock-out gives no second read;
* garbage on the transport gives no read and no crash, and the next card still reads;
* unplugging is reported (a warning naming the reader, ``health.reconnects`` rising, and the
  family's own state), and after a replug the reader reads again;
* a second ``start()`` while running is refused; ``stop()`` is prompt (under 2 s) and
  idempotent, and leaves no thread behind;
* no log record a reader emits (nor a read's ``repr``) carries a card number in clear.

Waiting is by event: "no second read" is shown by a later, different card arriving first (a
transport delivers in order), never by sleeping. A family whose transport cannot do something
declares it with the reason (:attr:`ReaderContract.cannot`); the base then runs, instead of the
test it cannot take, one that checks the declaration (:meth:`Bench.attempt`: the nearest act
the transport has must leave the reader untouched). There are no skips: the suite runs with
``--fail-on-skip``.

Replays play a file written before the reader is built, so every test first states its *plan*
(the cards and garbage it will present, in order); a live bench ignores it, a replay bench
records it and then checks that the test presents exactly that.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from protocol.errors import ReaderError
from readers.events import CardRead, CardReader

__all__ = ["GARBAGE", "UNPLUG", "Bench", "Card", "Garbage", "ReaderContract", "Step",
           "wait_until"]

#: Capabilities a family may declare it lacks (keys of :attr:`ReaderContract.cannot`).
GARBAGE = "garbage"
UNPLUG = "unplug"

#: How long ``stop()`` may take (the lifecycle's join timeout is 2 s: more means a stuck thread).
STOP_WITHIN_S = 2.0


@dataclass(frozen=True)
class Card:
    """Present card ``index`` (0 = A, 1 = B), in whatever form the bench's cards take."""

    index: int


@dataclass(frozen=True)
class Garbage:
    """Whatever counts as garbage on the bench's transport."""


Step = Card | Garbage
A, B = Card(0), Card(1)


def wait_until(condition: Callable[[], bool], what: str, timeout: float) -> None:
    """Poll ``condition`` until it holds; an AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Bench:
    """One reader family on its transport. Subclasses override what their transport has."""

    #: Seconds a card may take from presenting to its read (the transport's own latency).
    deadline_s: float = 2.0
    #: Name prefixes of threads the bench's emulated hardware runs (not the reader's).
    own_threads: ClassVar[tuple[str, ...]] = ()

    def __init__(self, reader_id: str) -> None:
        self.reader_id = reader_id
        self.reader: CardReader | None = None

    # -- building ----------------------------------------------------------------------

    def open(self, plan: Sequence[Step]) -> CardReader:
        """Build (not start) the reader from its spec string; ``plan`` is what the test will
        present, in order (only a replay needs it)."""
        raise NotImplementedError

    def ready(self, reader: CardReader) -> None:
        """Return once the started reader can hear a card (a link up, a service found)."""

    def close(self) -> None:
        """Tear the transport down (after the reader has been stopped)."""

    # -- cards -----------------------------------------------------------------------------

    def number(self, index: int) -> str:
        """The canonical number card ``index`` reads as."""
        raise NotImplementedError

    def raw(self, index: int) -> bytes:
        """The raw bytes card ``index``'s read carries (what the reader sent for it)."""
        raise NotImplementedError

    def clear_forms(self, index: int) -> list[str]:
        """Every way card ``index``'s number could show in a log in clear."""
        return [self.number(index)]

    def present(self, index: int) -> None:
        """Put card ``index`` on the reader (again, if it is there: lifted and tapped)."""
        raise NotImplementedError

    # -- the transport misbehaving ---------------------------------------------------------------

    def garbage(self) -> None:
        """Put garbage on the transport: bytes or a card answer the reader must reject."""
        raise NotImplementedError

    def unplug(self) -> None:
        raise NotImplementedError

    def replug(self) -> None:
        raise NotImplementedError

    def gone(self, reader: CardReader) -> bool:
        """The family's own way of saying the reader is gone (state, fault)."""
        raise NotImplementedError

    def stopped(self, reader: CardReader) -> bool:
        """The family's own way of saying the reader is stopped."""
        return getattr(reader, "running", None) is False

    def attempt(self, capability: str, reader: CardReader) -> None:
        """For a capability the family declares it lacks (:attr:`ReaderContract.cannot`): the
        nearest act the transport has, asserting
        what makes the declaration true. The base then checks the reader went on unharmed."""
        raise NotImplementedError


@dataclass
class Run:
    """A started reader and what it delivered."""

    bench: Bench
    reader: CardReader
    reads: queue.Queue[CardRead]

    def next_read(self) -> CardRead:
        try:
            return self.reads.get(timeout=self.bench.deadline_s)
        except queue.Empty:
            raise AssertionError(f"no read within {self.bench.deadline_s} s") from None

    def reads_until(self, index: int) -> list[str]:
        """The numbers read before card ``index``'s (already presented), which is waited for."""
        want = self.bench.number(index)
        got: list[str] = []
        while (read := self.next_read()).number != want:
            got.append(read.number)
        return got


def _warnings_naming(caplog: pytest.LogCaptureFixture, reader_id: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("readers") and r.levelno >= logging.WARNING
            and reader_id in r.getMessage()]


class ReaderContract:
    """The contract tests. A subclass named ``Test...`` implements :meth:`make_bench`."""

    def make_bench(self, request: pytest.FixtureRequest, tmp_path: Path) -> Bench:
        raise NotImplementedError

    #: Capability -> why this family's transport does not have it (:data:`GARBAGE`,
    #: :data:`UNPLUG`). Each one swaps the capability's test for one checking the declaration.
    cannot: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # Of each pair, the test this family can take runs and the other is not collected.
        cannot = cls.cannot
        if set(cannot) - {GARBAGE, UNPLUG}:
            raise TypeError(f"{cls.__name__}.cannot: unknown capability in {sorted(cannot)}")
        for capability, real, honest in (
                (GARBAGE, "test_garbage_gives_no_read_and_the_next_card_reads",
                 "test_declared_without_garbage_honestly"),
                (UNPLUG, "test_unplug_is_reported_and_replug_reads_again",
                 "test_declared_without_unplug_honestly")):
            setattr(cls, honest if capability not in cannot else real, None)

    @pytest.fixture
    def bench(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
        bench = self.make_bench(request, tmp_path)
        try:
            yield bench
        finally:
            if bench.reader is not None:
                bench.reader.stop()  # before the transport goes (pty numbers are reused)
            bench.close()

    def start(self, bench: Bench, plan: Sequence[Step]) -> Run:
        reader = bench.open(plan)
        bench.reader = reader
        reads: queue.Queue[CardRead] = queue.Queue()
        reader.start(reads.put)
        bench.ready(reader)
        return Run(bench, reader, reads)

    # -- the contract --------------------------------------------------------------------

    @pytest.mark.integration
    def test_a_card_gives_exactly_one_read(self, bench: Bench) -> None:
        run = self.start(bench, [A, B])
        bench.present(0)
        read = run.next_read()  # within the bench's deadline
        assert (read.number, read.raw) == (bench.number(0), bench.raw(0))
        assert read.reader_id == bench.reader_id
        bench.present(1)  # B arriving shows that nothing more came of A
        assert run.reads_until(1) == []
        health = run.reader.health
        assert (health.reads, health.bad_frames, health.suppressed) == (2, 0, 0)

    @pytest.mark.integration
    def test_the_same_card_within_the_lockout_is_not_read_again(self, bench: Bench) -> None:
        run = self.start(bench, [A, A, B])
        bench.present(0)
        assert run.next_read().number == bench.number(0)
        bench.present(0)  # held on, or lifted and tapped again at once
        bench.present(1)
        assert run.reads_until(1) == []
        assert run.reader.health.suppressed == 1

    @pytest.mark.integration
    def test_garbage_gives_no_read_and_the_next_card_reads(self, bench: Bench) -> None:
        run = self.start(bench, [A, Garbage(), B])
        bench.present(0)
        assert run.next_read().number == bench.number(0)
        bench.garbage()
        bench.present(1)
        assert run.reads_until(1) == []
        assert run.reader.health.bad_frames >= 1  # the garbage did reach the reader

    @pytest.mark.integration
    def test_declared_without_garbage_honestly(self, bench: Bench,
                                               caplog: pytest.LogCaptureFixture) -> None:
        self._check_declaration(bench, GARBAGE, caplog)

    @pytest.mark.integration
    def test_unplug_is_reported_and_replug_reads_again(
            self, bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO)
        run = self.start(bench, [A, B])
        bench.present(0)
        assert run.next_read().number == bench.number(0)
        bench.unplug()
        health = run.reader.health
        wait_until(lambda: health.reconnects >= 1 and bench.gone(run.reader)
                   and bool(_warnings_naming(caplog, bench.reader_id)),
                   "the reader to report it is gone", timeout=3.0)
        bench.replug()
        bench.ready(run.reader)
        # A reopened port may have flushed a first tap (pyserial does on open): tap again until
        # the reader hears it, as a user would; the repeats are a held card's.
        deadline = time.monotonic() + 3 * bench.deadline_s
        read: CardRead | None = None
        while read is None:
            assert time.monotonic() < deadline, "no read after the replug"
            bench.present(1)
            try:
                read = run.reads.get(timeout=0.2)
            except queue.Empty:
                pass
        assert read.number == bench.number(1)

    @pytest.mark.integration
    def test_declared_without_unplug_honestly(self, bench: Bench,
                                              caplog: pytest.LogCaptureFixture) -> None:
        self._check_declaration(bench, UNPLUG, caplog)

    @pytest.mark.integration
    def test_stop_is_prompt_idempotent_and_leaves_no_thread(self, bench: Bench) -> None:
        before = set(threading.enumerate())
        run = self.start(bench, [A, B])
        with pytest.raises(ReaderError, match="already started"):
            run.reader.start(run.reads.put)
        bench.present(0)
        assert run.next_read().number == bench.number(0)
        for _ in range(2):
            started = time.monotonic()
            run.reader.stop()
            assert time.monotonic() - started < STOP_WITHIN_S
        assert bench.stopped(run.reader)
        left = [t.name for t in threading.enumerate()
                if t not in before and t.is_alive() and not t.name.startswith(bench.own_threads)]
        assert left == []

    @pytest.mark.integration
    def test_card_numbers_never_reach_the_log(self, bench: Bench,
                                              caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        garbage = GARBAGE not in self.cannot
        run = self.start(bench, [A, A, *([Garbage()] if garbage else []), B])
        bench.present(0)
        read = run.next_read()
        bench.present(0)  # the held card's path logs too
        if garbage:
            bench.garbage()
        bench.present(1)
        run.reads_until(1)
        run.reader.stop()
        ours = [r for r in caplog.records if r.name.startswith("readers")]
        text = "\n".join(caplog.handler.format(r) for r in ours).upper()
        assert read.masked.upper() in text  # the read was logged, masked
        assert bench.number(0) not in repr(read)
        for index in (0, 1):
            for form in bench.clear_forms(index):
                assert form.upper() not in text, f"card {index} in clear in the log"

    # -- declarations ------------------------------------------------------------------------

    def _check_declaration(self, bench: Bench, capability: str,
                           caplog: pytest.LogCaptureFixture) -> None:
        """The bench says it cannot do ``capability``: its nearest act leaves the reader as it
        was -- nothing read, nothing counted bad, nothing reported gone -- and reading on."""
        assert self.cannot[capability], "a declaration needs its reason"
        caplog.set_level(logging.INFO)
        run = self.start(bench, [A, B])
        bench.present(0)
        assert run.next_read().number == bench.number(0)
        bench.attempt(capability, run.reader)
        bench.present(1)
        assert run.reads_until(1) == []
        health = run.reader.health
        assert (health.bad_frames, health.reconnects) == (0, 0)
        assert _warnings_naming(caplog, bench.reader_id) == []
