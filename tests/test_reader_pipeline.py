"""A reader spec's pipeline= converts numbers before anyone sees them; watch records and
converts; a recording replays to the same converted numbers."""

from __future__ import annotations

import argparse
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_stubs.serial_readers import Em4100Stub
from protocol.errors import ConfigError
from readers import cli
from readers.events import CardRead
from readers.pty import PtyPort
from readers.spec import open_reader

pytestmark = pytest.mark.integration


@pytest.fixture
def pty() -> Iterator[PtyPort]:
    with PtyPort() as port:
        yield port


def test_spec_pipeline_converts_the_number(pty: PtyPort) -> None:
    # EM4100 gives the 10-digit decimal of the tag; the directory here holds it in hex.
    reader = open_reader(f"serial:{pty.device}?family=em4100&pipeline=strip-zeros|dec2hex")
    reads: queue.Queue[CardRead] = queue.Queue()
    reader.start(reads.put)  # the port is open when start returns: nothing to wait for
    try:
        Em4100Stub(pty).present(0x0012D687)
        read = reads.get(timeout=3)
        assert read.number == "12D687"
    finally:
        reader.stop()


def test_a_read_the_pipeline_cannot_take_is_a_bad_frame_not_a_login(pty: PtyPort) -> None:
    reader = open_reader(f"serial:{pty.device}?pipeline=wiegand:h10301")
    reads: queue.Queue[CardRead] = queue.Queue()
    reader.start(reads.put)  # the port is open when start returns: nothing to wait for
    try:
        Em4100Stub(pty).present(0x0012D687)
        deadline = time.monotonic() + 3
        while reader.health.bad_frames == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader.health.bad_frames == 1 and reads.empty()
    finally:
        reader.stop()


def test_bad_pipelines_are_config_errors_naming_the_step() -> None:
    with pytest.raises(ConfigError, match="hexx2dec"):
        open_reader("serial:/dev/ttyUSB0?pipeline=hexx2dec")
    with pytest.raises(ConfigError, match="twice"):
        open_reader("serial:/dev/ttyUSB0?pipeline=hex2dec&pipeline=dec2hex")


def test_watch_records_converts_and_the_recording_replays(
        pty: PtyPort, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = tmp_path / "front.jsonl"
    args = argparse.Namespace(spec=f"serial:{pty.device}?family=em4100", seconds=1.5,
                              pipeline="strip-zeros|dec2hex", record=str(record))
    stub = Em4100Stub(pty)
    threading.Timer(0.4, stub.present, args=(0x00BC614E,)).start()
    assert cli.cmd_watch(args) == 0
    out = capsys.readouterr()
    assert "number=0012345678" in out.out and "converted=BC614E" in out.out
    assert "recorded" in out.err and record.stat().st_mode & 0o777 == 0o600
    replay = open_reader(f"replay:{record}?speed=0&pipeline=strip-zeros|dec2hex")
    reads: queue.Queue[CardRead] = queue.Queue()
    replay.start(reads.put)
    try:
        assert reads.get(timeout=5).number == "BC614E"
    finally:
        replay.stop()


def test_only_serial_readers_record() -> None:
    with pytest.raises(ConfigError, match="only serial"):
        open_reader("sim:front", on_raw=lambda data, t: None)


def test_watch_records_a_spec_with_a_pipeline_and_a_replay_watch_ends(
        pty: PtyPort, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = tmp_path / "r.jsonl"
    args = argparse.Namespace(spec=f"serial:{pty.device}?pipeline=strip-zeros", seconds=1.0,
                              pipeline=None, record=str(record))
    threading.Timer(0.3, Em4100Stub(pty).present, args=(0x0012D687,)).start()
    assert cli.cmd_watch(args) == 0
    assert "number=1234567" in capsys.readouterr().out
    started = time.monotonic()
    replay = argparse.Namespace(spec=f"replay:{record}?speed=0", seconds=None, pipeline=None,
                                record=None)
    assert cli.cmd_watch(replay) == 0  # returns when the recording is over, not never
    assert time.monotonic() - started < 5
    assert "number=0001234567" in capsys.readouterr().out
