"""The simulated reader (``sim:NAME``): same port and same lock-out as a real reader.

What every reader does, the simulated one included (one read per card, a held card, no way
for garbage in, stop, masked logs), is the reader contract's (test_reader_contract.py); here,
the simulator's own: a fake clock, the registry, the device app driving it.
"""

from __future__ import annotations

import gc
import threading
from typing import cast

import pytest
from clocks import Clock
from fakes import IdleLink

from device_app.app import DeviceApp
from device_app.ports import CloudLink, PrintEngine
from device_app.session import CardPresented
from protocol.errors import ConfigError, ReaderError
from readers.adapters.sim_reader import SimReader, get_sim_reader, sim_reader_names
from readers.events import CardRead
from readers.spec import open_reader

ALICE = "0001234567"
BOB = "0007654321"


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


@pytest.fixture
def reads() -> list[CardRead]:
    return []


@pytest.fixture
def front(clock: Clock, reads: list[CardRead]) -> SimReader:
    reader = SimReader("front", lockout_s=2.0, clock=clock)
    reader.start(reads.append)
    return reader


def test_presented_card_reaches_the_sink(front: SimReader, reads: list[CardRead],
                                         clock: Clock) -> None:
    read = front.present(ALICE)
    assert reads == [read]
    assert read is not None
    assert (read.number, read.raw, read.reader_id, read.at) == (
        ALICE, ALICE.encode(), "sim:front", clock.now)
    assert front.present(BOB, raw=b"\x02xyz\x03") is not None
    assert reads[1].raw == b"\x02xyz\x03"
    assert front.health.reads == 2


def test_held_card_is_read_once_like_a_real_reader(front: SimReader, reads: list[CardRead],
                                                   clock: Clock) -> None:
    for _ in range(5):  # held: a report every half second
        front.present(ALICE)
        clock.now += 0.5
    assert len(reads) == 1 and front.health.suppressed == 4
    assert front.present(BOB) is not None  # another card at once
    clock.now += 2.0  # lifted for the lock-out, tapped again
    assert front.present(ALICE) is not None
    assert [r.number for r in reads] == [ALICE, BOB, ALICE]


def test_zero_lockout_reads_every_report(clock: Clock) -> None:
    reads: list[CardRead] = []
    reader = SimReader("zero", lockout_s=0, clock=clock)
    reader.start(reads.append)
    reader.present(ALICE)
    reader.present(ALICE)
    assert len(reads) == 2


def test_not_started_or_stopped_reads_nothing(clock: Clock) -> None:
    reads: list[CardRead] = []
    reader = SimReader("idle", clock=clock)
    assert reader.present(ALICE) is None
    reader.start(reads.append)
    with pytest.raises(ReaderError, match="already started"):
        reader.start(reads.append)
    reader.stop()
    reader.stop()
    assert reader.present(BOB) is None and reads == [] and not reader.running


def test_sink_may_stop_the_reader(clock: Clock) -> None:
    reader = SimReader("self-stopping", clock=clock)
    reader.start(lambda read: reader.stop())
    assert reader.present(ALICE) is not None
    assert not reader.running


def test_present_from_many_threads_counts_every_report(clock: Clock) -> None:
    reads: list[CardRead] = []
    reader = SimReader("busy", lockout_s=2.0, clock=clock)
    reader.start(reads.append)

    def tap(i: int) -> None:
        for _ in range(50):
            reader.present(f"{i:010d}")

    threads = [threading.Thread(target=tap, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reads) == reader.health.reads == 8
    assert reader.health.suppressed == 8 * 49


# -- specs and the registry --------------------------------------------------------------


def test_spec_opens_a_reader_found_by_name(reads: list[CardRead]) -> None:
    reader = open_reader("sim:lobby?lockout=0.5")
    assert isinstance(reader, SimReader)
    assert get_sim_reader("lobby") is reader
    assert "lobby" in sim_reader_names()
    assert (reader.name, reader.lockout_s, reader.reader_id) == (
        "lobby", 0.5, "sim:lobby?lockout=0.5")
    reader.start(reads.append)
    get_sim_reader("lobby").present(ALICE)
    assert [r.reader_id for r in reads] == ["sim:lobby?lockout=0.5"]
    assert open_reader("sim:lobby?id=door").reader_id == "door"
    assert open_reader("sim:lobby", reader_id="side").reader_id == "side"


def test_newest_reader_of_a_name_wins_and_none_is_kept_alive() -> None:
    first = open_reader("sim:desk")
    second = open_reader("sim:desk")
    assert get_sim_reader("desk") is second and first is not second
    del first, second
    gc.collect()
    with pytest.raises(ReaderError, match=r"no simulated reader named 'desk'.*'sim:desk'"):
        get_sim_reader("desk")


def test_unknown_name_lists_the_open_ones() -> None:
    keep = open_reader("sim:garage")
    with pytest.raises(ReaderError, match=r"open now: .*garage"):
        get_sim_reader("attic")
    del keep


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("sim:", "names no simulated reader"),
        ("sim: ", "names no simulated reader"),
        ("sim:front?lockout=-1", "'lockout'"),
        ("sim:front?lockout=never", "'lockout'"),
        ("sim:front?baud=9600", "'baud'"),
    ],
)
def test_bad_spec_is_a_config_error_naming_the_part(spec: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        open_reader(spec)


def test_bad_lockout_in_code_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="lockout"):
        SimReader("x", lockout_s=float("nan"))


# -- in the device app -------------------------------------------------------------------


def test_device_app_opened_from_a_spec_is_driven_by_name() -> None:
    app = DeviceApp(cast(CloudLink, IdleLink()), cast(PrintEngine, object()),
                    readers=(open_reader("sim:copier-front"),)).start()
    try:
        get_sim_reader("copier-front").present(ALICE)
        assert app.events.get_nowait() == CardPresented(ALICE)
    finally:
        app.stop()
    assert get_sim_reader("copier-front").present(BOB) is None  # the app stopped it
