"""Recordings (readers.record.recording) and their replay through the live path
(readers.record.replay).

The integration tests record a real SerialCardReader on a pty fed by the RDM6300 stub, then
replay the file through ``open_reader("replay:...")`` and compare what came out. Waiting is by
event: a live run ends with a sentinel card; a replay ends with ``done``.
"""

from __future__ import annotations

import json
import os
import queue
import stat
import threading
import time
from pathlib import Path

import pytest

from firmware_stubs.serial_readers import Em4100Stub
from protocol.errors import ConfigError, ReaderError
from readers.adapters.serial_reader import SerialCardReader
from readers.codecs.em4100 import encode_frame
from readers.events import CardRead
from readers.pty import PtyPort
from readers.record.recording import (
    FORMAT_VERSION,
    Chunk,
    Recorder,
    RecordingHeader,
    header_for_spec,
    load_recording,
)
from readers.record.replay import ReplayReader
from readers.spec import open_reader

TIMEOUT = 2.0
ALICE = 1234567
BOB = 7654321
SENTINEL = 42
ALICE_FRAME = encode_frame(0x0A, ALICE)
BOB_FRAME = encode_frame(0x0A, BOB)


def write_recording(path: Path, chunks: list[tuple[float, bytes]],
                    header: RecordingHeader | None = None) -> Path:
    """A recording with exactly these chunk times (a recorder on a clock stuck at 0)."""
    with Recorder(path, header or RecordingHeader(), clock=lambda: 0.0) as rec:
        for t, data in chunks:
            rec.on_raw(data, t)
    return path


def replay_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t.name.startswith(("reader-", "replay-")) and t.is_alive()]


def play(spec: str) -> tuple[ReplayReader, list[CardRead]]:
    """Replay to the end; the reader and every read it delivered."""
    reader = open_reader(spec)
    assert isinstance(reader, ReplayReader)
    reads: queue.Queue[CardRead] = queue.Queue()
    reader.start(reads.put)
    try:
        assert reader.done.wait(5), "replay did not finish"
    finally:
        reader.stop()
    return reader, [reads.get_nowait() for _ in range(reads.qsize())]


# -- the file format -------------------------------------------------------------------


def test_recorder_writes_a_header_and_one_line_per_chunk(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    now = [100.0]
    rec = Recorder(path, RecordingHeader(params={"lockout": "0.5"}, reader="door"),
                   clock=lambda: now[0])
    rec.on_raw(b"\x020A", 100.25)
    rec.on_raw(b"0012D68749\x03", 101.5)
    rec.close()
    rec.on_raw(b"late", 102.0)  # after close: dropped, not an error

    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["mfdkit_recording"] == FORMAT_VERSION == 1
    assert (header["scheme"], header["family"], header["baud"]) == ("serial", "em4100", 9600)
    assert header["params"] == {"lockout": "0.5"} and header["reader"] == "door"
    assert [json.loads(line) for line in lines[1:]] == [
        {"t": 0.25, "hex": "023041"}, {"t": 1.5, "hex": "3030313244363837343903"}]

    loaded = load_recording(path)
    assert loaded.header.params == {"lockout": "0.5"}
    assert loaded.header.started is not None and loaded.header.started.tzinfo is not None
    assert loaded.chunks == (Chunk(0.25, b"\x020A"), Chunk(1.5, b"0012D68749\x03"))
    assert loaded.duration == 1.5 and loaded.total_bytes == 14
    assert rec.chunks == 2 and rec.closed and rec.error is None


def test_recording_is_private_even_over_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("old")
    path.chmod(0o644)
    Recorder(path, RecordingHeader()).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_recording(path).chunks == ()


def test_times_never_go_back_and_chunks_hide_their_bytes(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "r.jsonl", [(1.0, b"a"), (0.5, b"b"), (-3.0, b"c")])
    chunks = load_recording(path).chunks
    assert [c.t for c in chunks] == [1.0, 1.0, 1.0]
    assert "a" not in repr(chunks[0]).replace("bytes", "") and "1 bytes" in repr(chunks[0])


def test_recorder_is_thread_safe(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = Recorder(path, RecordingHeader())

    def writer(i: int) -> None:
        for _ in range(200):
            rec.on_raw(bytes([i]) * 7, time.monotonic())

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    chunks = load_recording(path).chunks  # every line whole, times in order
    assert len(chunks) == 1600 and all(len(set(c.data)) == 1 for c in chunks)


def test_recorder_cannot_create_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere"):
        Recorder(tmp_path / "nowhere" / "r.jsonl", RecordingHeader())


GOOD_HEADER = ('{"mfdkit_recording":1,"scheme":"serial","family":"em4100","baud":9600,'
               '"params":{},"started":"2025-01-31T09:14:03.250+00:00"}')


@pytest.mark.parametrize(
    ("text", "line", "named"),
    [
        ("", 1, "empty"),
        ("\n\n", 1, "empty"),
        ('{"scheme":"serial"}', 1, "not an mfdkit recording"),
        (GOOD_HEADER.replace('"mfdkit_recording":1', '"mfdkit_recording":2'), 1, "version 2"),
        (GOOD_HEADER.replace("9600", '"fast"'), 1, "'baud'"),
        (GOOD_HEADER.replace("9600", "true"), 1, "'baud'"),
        (GOOD_HEADER.replace('"serial"', "null"), 1, "'scheme'"),
        (GOOD_HEADER.replace('"params":{}', '"params":{"lockout":2}'), 1, "'params'"),
        (GOOD_HEADER.replace("2025-01-31T09:14:03.250+00:00", "yesterday"), 1, "'started'"),
        ("[1, 2]", 1, "JSON object"),
        (GOOD_HEADER + '\n{"t":0.1,"hex":"02"}\n{"t":0.2,"hex":"0"}', 3, "'hex'"),
        (GOOD_HEADER + '\n{"t":0.1,"hex":"zz"}', 2, "'hex'"),
        (GOOD_HEADER + '\n{"t":0.1,"hex":""}', 2, "'hex'"),
        (GOOD_HEADER + '\n{"t":0.1,"hex":"02 03"}', 2, "'hex'"),
        (GOOD_HEADER + '\n{"t":-1,"hex":"02"}', 2, "'t'"),
        (GOOD_HEADER + '\n{"t":NaN,"hex":"02"}', 2, "JSON"),
        (GOOD_HEADER + '\n{"t":"0","hex":"02"}', 2, "'t'"),
        (GOOD_HEADER + '\n{"t":0.5,"hex":"02"}\n\n{"t":0.25,"hex":"03"}', 4, "goes back"),
        (GOOD_HEADER + '\n{"t":0.5,"hex":"02"', 2, "not valid JSON"),  # cut off mid-line
        (GOOD_HEADER + "\n" + GOOD_HEADER, 2, "second header"),
    ],
)
def test_a_bad_file_is_a_config_error_naming_the_line(tmp_path: Path, text: str, line: int,
                                                      named: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"bad.jsonl line {line}: .*{named}"):
        load_recording(path)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(GOOD_HEADER.encode() + b'\n{"t":0,"hex":"\xff"}\n')
    with pytest.raises(ConfigError, match="line 2: not UTF-8"):
        load_recording(path)


def test_bad_hex_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD_HEADER + '\n{"t":0,"hex":"0230413030313244363837343"}')
    with pytest.raises(ConfigError) as info:
        load_recording(path)
    assert "303132" not in str(info.value)


def test_unknown_header_keys_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(GOOD_HEADER[:-1] + ',"firmware":"v2"}\n{"t":0,"hex":"02"}\n')
    assert load_recording(path).chunks == (Chunk(0.0, b"\x02"),)


def test_header_for_spec_keeps_what_decoding_depends_on() -> None:
    header = header_for_spec("serial:/dev/ttyUSB0?family=twn4&baud=19200&term=crlf&id=door")
    assert (header.scheme, header.family, header.baud, header.reader) == (
        "serial", "twn4", 19200, "door")
    assert header.params == {"term": "crlf", "lockout": "2"}  # the default written out
    assert header_for_spec("serial:loop://?lockout=0.25").params == {"lockout": "0.25"}
    with pytest.raises(ConfigError, match="only serial"):
        header_for_spec("sim:front")
    with pytest.raises(ConfigError, match="'wiegand26'"):
        header_for_spec("serial:/dev/ttyUSB0?family=wiegand26")


# -- replay specs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("speed=-1", "'speed'"),
        ("speed=fast", "'speed'"),
        ("speed=inf", "'speed'"),
        ("loop=yes", "'loop'"),
        ("lockout=1", "'lockout'"),  # the lock-out is the recording's, not the replay's
    ],
)
def test_bad_replay_spec_names_the_part(tmp_path: Path, query: str, named: str) -> None:
    path = write_recording(tmp_path / "r.jsonl", [(0.0, ALICE_FRAME)])
    with pytest.raises(ConfigError, match=named):
        open_reader(f"replay:{path}?{query}")


def test_replay_spec_errors_about_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="names no recording"):
        open_reader("replay:")
    with pytest.raises(ConfigError, match=r"missing\.jsonl"):
        open_reader(f"replay:{tmp_path / 'missing.jsonl'}")
    for header, named in [(RecordingHeader(family="wiegand26"), "'wiegand26'"),
                          (RecordingHeader(scheme="pcsc"), "'pcsc'"),
                          (RecordingHeader(params={"parity": "N"}), "'parity'"),
                          (RecordingHeader(family="twn4", params={"term": "tab"}), "'term'"),
                          (RecordingHeader(params={"lockout": "soon"}), "'lockout'")]:
        path = write_recording(tmp_path / "h.jsonl", [], header)
        with pytest.raises(ConfigError, match=f"h.jsonl line 1: .*{named}"):
            open_reader(f"replay:{path}")


def test_replay_spec_parameters(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "r.jsonl", [(0.0, ALICE_FRAME)])
    reader = open_reader(f"replay:{path}?speed=2.5&loop=1&id=front")
    assert isinstance(reader, ReplayReader)
    assert (reader.speed, reader.loop, reader.reader_id) == (2.5, True, "front")
    reader = open_reader(f"replay:{path}")
    assert isinstance(reader, ReplayReader)
    assert (reader.speed, reader.loop, reader.reader_id) == (1.0, False, f"replay:{path}")


# -- record live, replay -----------------------------------------------------------------


@pytest.mark.integration
def test_live_recording_replays_to_the_same_reads(tmp_path: Path) -> None:
    path = tmp_path / "door.jsonl"
    live: queue.Queue[CardRead] = queue.Queue()
    with PtyPort() as pty:
        recorder = Recorder(path, RecordingHeader(params={"lockout": "0.1"}, reader="door"))
        reader = SerialCardReader(pty.device, reader_id="door", lockout_s=0.1,
                                  on_raw=recorder.on_raw)
        reader.start(live.put)
        try:
            stub = Em4100Stub(pty)
            stub.noise(b"\x00\xff power-on junk \x02ZZ\x03")
            stub.present(ALICE)
            stub.hold(BOB, times=4, interval_s=0.01)  # held: one read, three suppressed
            time.sleep(0.15)  # lifted, and tapped again after the lock-out: a second read
            stub.present(BOB)
            stub.noise(b"\x020A00")  # cut off by the next frame's STX
            stub.present(SENTINEL)
            numbers = []
            while (read := live.get(timeout=TIMEOUT)).number != f"{SENTINEL:010d}":
                numbers.append(read.number)
        finally:
            reader.stop()
            recorder.close()
    assert numbers == [f"{ALICE:010d}", f"{BOB:010d}", f"{BOB:010d}"]
    assert reader.health.bad_frames == 2 and reader.health.suppressed == 3
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    replay, reads = play(f"replay:{path}?speed=0")
    assert [r.number for r in reads] == [*numbers, f"{SENTINEL:010d}"]
    assert all(r.reader_id == f"replay:{path}?speed=0" for r in reads)
    assert replay.health.bad_frames == reader.health.bad_frames
    assert replay.health.suppressed == reader.health.suppressed
    assert replay.health.reads == reader.health.reads == 4
    assert replay_threads() == []


@pytest.mark.integration
def test_family_options_reach_the_replayed_codec(tmp_path: Path) -> None:
    # A TWN4 sending hex lines ended by CR LF, recorded live with the header a spec gives.
    path = tmp_path / "twn4.jsonl"
    spec_options = "family=twn4&term=crlf&lockout=0"
    live: queue.Queue[CardRead] = queue.Queue()
    with PtyPort() as pty:
        recorder = Recorder(path, header_for_spec(f"serial:{pty.device}?{spec_options}"))
        reader = SerialCardReader(pty.device, reader_id="desk", family="twn4", lockout_s=0,
                                  options={"term": "crlf"}, on_raw=recorder.on_raw)
        reader.start(live.put)
        try:
            pty.write(b"0012D687\r\nZZ\r\nABCDEF01\r\n")
            numbers = [live.get(timeout=TIMEOUT).number for _ in range(2)]
        finally:
            reader.stop()
            recorder.close()
    replay, reads = play(f"replay:{path}?speed=0")
    assert [r.number for r in reads] == numbers
    assert replay.health.bad_frames == reader.health.bad_frames == 1


@pytest.mark.integration
def test_replay_does_not_depend_on_chunking(tmp_path: Path) -> None:
    stream = b"junk" + ALICE_FRAME + b"\x02ZZ\x03" + BOB_FRAME
    whole = write_recording(tmp_path / "whole.jsonl", [(0.0, stream)])
    bytewise = write_recording(tmp_path / "bytes.jsonl",
                               [(i * 0.001, stream[i:i + 1]) for i in range(len(stream))])
    for path in (whole, bytewise):
        replay, reads = play(f"replay:{path}?speed=0")
        assert [r.number for r in reads] == [f"{ALICE:010d}", f"{BOB:010d}"]
        assert [r.raw for r in reads] == [ALICE_FRAME, BOB_FRAME]
        assert replay.health.bad_frames == 1


@pytest.mark.integration
def test_fast_replay_keeps_the_recorded_lockout_decisions(tmp_path: Path) -> None:
    # Alice held for 1.5 s (repeats every 0.5 s), lifted, tapped again 3 s later. Played as
    # fast as possible, the debouncer still sees recorded time: two reads, as live.
    chunks = [(t, ALICE_FRAME) for t in (0.0, 0.5, 1.0, 1.5, 4.5)]
    path = write_recording(tmp_path / "r.jsonl", chunks, RecordingHeader(params={"lockout": "2"}))
    started = time.monotonic()
    replay, reads = play(f"replay:{path}?speed=0")
    assert time.monotonic() - started < 1.0
    assert len(reads) == 2 and replay.health.suppressed == 3
    assert reads[1].at - reads[0].at == pytest.approx(4.5)


@pytest.mark.integration
def test_real_time_replay_keeps_the_timing(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "r.jsonl", [(0.1, ALICE_FRAME), (0.4, BOB_FRAME)])
    reader = open_reader(f"replay:{path}?speed=1")
    arrivals: queue.Queue[tuple[float, CardRead]] = queue.Queue()
    started = time.monotonic()
    reader.start(lambda read: arrivals.put((time.monotonic(), read)))
    try:
        (t1, first), (t2, second) = arrivals.get(timeout=TIMEOUT), arrivals.get(timeout=TIMEOUT)
    finally:
        reader.stop()
    assert (first.number, second.number) == (f"{ALICE:010d}", f"{BOB:010d}")
    assert 0.1 <= t1 - started < 0.5
    assert 0.2 <= t2 - t1 < 0.5  # 0.3 s recorded, give or take the scheduler
    assert second.at - first.at == pytest.approx(0.3)


@pytest.mark.integration
def test_speed_scales_the_timing(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "r.jsonl", [(0.0, ALICE_FRAME), (0.9, BOB_FRAME)])
    started = time.monotonic()
    play(f"replay:{path}?speed=3")
    assert 0.3 <= time.monotonic() - started < 0.75  # 0.9 s at three times the speed


@pytest.mark.integration
def test_loop_replays_until_stopped(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "r.jsonl", [(0.0, ALICE_FRAME), (0.01, BOB_FRAME)])
    reader = open_reader(f"replay:{path}?speed=0&loop=1")
    assert isinstance(reader, ReplayReader)
    reads: queue.Queue[CardRead] = queue.Queue()
    reader.start(reads.put)
    try:
        numbers = [reads.get(timeout=TIMEOUT).number for _ in range(6)]
    finally:
        reader.stop()
    # Each pass starts after more than the lock-out, so Alice is not a held card's repeat.
    assert numbers == [f"{ALICE:010d}", f"{BOB:010d}"] * 3
    assert reader.passes >= 2 and not reader.done.is_set()
    assert replay_threads() == []


@pytest.mark.integration
def test_stop_midway_and_from_the_sink(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "r.jsonl", [(0.0, ALICE_FRAME), (5.0, BOB_FRAME)])
    reader = open_reader(f"replay:{path}")
    assert isinstance(reader, ReplayReader)
    got = threading.Event()

    def sink(read: CardRead) -> None:
        reader.stop()  # on the reader thread: must neither deadlock nor raise
        got.set()

    reader.start(sink)
    assert got.wait(TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while replay_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert replay_threads() == [] and not reader.done.is_set()
    reader.stop()
    reader.stop()

    # And it can be started again, from the beginning.
    reads: queue.Queue[CardRead] = queue.Queue()
    reader.start(reads.put)
    try:
        assert reads.get(timeout=TIMEOUT).number == f"{ALICE:010d}"
        with pytest.raises(ReaderError, match="already started"):
            reader.start(reads.put)
    finally:
        reader.stop()
    assert replay_threads() == []
