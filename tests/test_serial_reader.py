"""Serial reader adapter on a real pty with emulated RDM6300 firmware; reader specs; CLI.

What every reader does (one read per card, a held card, garbage, unplug and replug, stop,
masked logs) is tested once for all of them by the reader contract (test_reader_contract.py);
here is what is the serial adapter's own.

Waiting is by event, never by sleeping for "long enough": to know that everything written
before some point has been processed, the tests present a *sentinel* card afterwards and wait
for it -- the line is a FIFO and the reader thread handles bytes in order.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from reader_helpers import reader_threads, run_cli

from firmware_stubs.serial_readers import Em4100Stub
from protocol.errors import ConfigError, ReaderError
from readers.adapters.serial_reader import SerialCardReader
from readers.codecs.em4100 import encode_frame
from readers.events import CardRead
from readers.pty import PtyPort
from readers.spec import open_reader

TIMEOUT = 2.0
ALICE = 1234567  # prints as 0001234567
BOB = 7654321
SENTINEL = 42


@dataclass
class Rig:
    port: PtyPort
    stub: Em4100Stub
    reader: SerialCardReader
    reads: queue.Queue[CardRead]

    def next_read(self) -> CardRead:
        return self.reads.get(timeout=TIMEOUT)

    def reads_until_sentinel(self) -> list[CardRead]:
        """Every read up to (excluding) the sentinel card, presented now."""
        self.stub.present(SENTINEL)
        got: list[CardRead] = []
        while (read := self.next_read()).number != f"{SENTINEL:010d}":
            got.append(read)
        return got


def start_rig(port: PtyPort, query: str = "family=em4100") -> Rig:
    reader = open_reader(f"serial:{port.device}?{query}", reader_id="door")
    assert isinstance(reader, SerialCardReader)
    reads: queue.Queue[CardRead] = queue.Queue()
    reader.start(reads.put)
    return Rig(port, Em4100Stub(port), reader, reads)


@pytest.fixture
def pty() -> Iterator[PtyPort]:
    with PtyPort() as port:
        yield port


@pytest.fixture
def rig(pty: PtyPort) -> Iterator[Rig]:
    rig = start_rig(pty)
    try:
        yield rig
    finally:
        rig.reader.stop()  # before the pty closes: see PtyPort's note on pty number reuse


# -- the adapter on a pty ----------------------------------------------------------------


@pytest.mark.integration
def test_garbage_then_good_frame_gives_one_read(rig: Rig) -> None:
    rig.stub.noise(b"\x00\xff\r\n\x02ZZ\x03 power-on junk \x020A00")
    frame = rig.stub.present(ALICE)
    assert [r.raw for r in rig.reads_until_sentinel()] == [frame]
    # "\x02ZZ" is a frame with a non-hex digit; "\x020A00" is cut off by the good frame's STX.
    assert rig.reader.health.bad_frames == 2


@pytest.mark.integration
def test_same_card_is_read_again_after_the_lockout(pty: PtyPort) -> None:
    rig = start_rig(pty, "family=em4100&lockout=0.1")
    try:
        rig.stub.present(ALICE)
        first = rig.next_read()
        time.sleep(0.15)  # lifted and tapped again after the lockout
        rig.stub.present(ALICE)
        second = rig.next_read()
        assert second.number == first.number and second.at - first.at >= 0.1
    finally:
        rig.reader.stop()


@pytest.mark.integration
def test_failing_sink_does_not_kill_the_reader(pty: PtyPort) -> None:
    reads: queue.Queue[CardRead] = queue.Queue()

    def sink(read: CardRead) -> None:
        if read.number == f"{ALICE:010d}":
            raise RuntimeError("sink bug")
        reads.put(read)

    reader = SerialCardReader(pty.device, reader_id="door")
    reader.start(sink)
    try:
        Em4100Stub(pty).present(ALICE)
        Em4100Stub(pty).present(BOB)
        assert reads.get(timeout=TIMEOUT).number == f"{BOB:010d}"
    finally:
        reader.stop()


@pytest.mark.integration
def test_start_on_a_missing_port_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "ttyNOPE"
    reader = open_reader(f"serial:{missing}")
    with pytest.raises(ReaderError, match="ttyNOPE") as info:
        reader.start(lambda read: None)
    assert "plugged in" in str(info.value)
    assert reader_threads() == []


def test_loop_url_opens_and_stops() -> None:
    reader = open_reader("serial:loop://?family=em4100")
    reader.start(lambda read: None)
    reader.stop()
    assert reader_threads() == []


# -- reader specs ------------------------------------------------------------------------


def test_spec_parameters_reach_the_reader() -> None:
    reader = open_reader("serial:/dev/ttyUSB0?family=em4100&baud=19200&lockout=1.5&id=front")
    assert isinstance(reader, SerialCardReader)
    assert (reader.port, reader.family, reader.baud) == ("/dev/ttyUSB0", "em4100", 19200)
    assert reader.reader_id == "front"
    assert open_reader("serial:/dev/ttyUSB0", reader_id="side").reader_id == "side"
    assert open_reader("serial:/dev/ttyUSB0").reader_id == "serial:/dev/ttyUSB0"


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("/dev/ttyUSB0", "no scheme"),
        ("usb:/dev/ttyUSB0", "'usb'"),
        ("serial:", "no port"),
        ("serial:/dev/ttyUSB0?family=hidprox", "'hidprox'"),
        ("serial:/dev/ttyUSB0?baud=fast", "'baud'"),
        ("serial:/dev/ttyUSB0?baud=0", "'baud'"),
        ("serial:/dev/ttyUSB0?lockout=-1", "'lockout'"),
        ("serial:/dev/ttyUSB0?lockout=nan", "'lockout'"),
        ("serial:/dev/ttyUSB0?parity=N", "'parity'"),
        ("serial:/dev/ttyUSB0?baud=9600&baud=19200", "twice"),
        ("serial:/dev/ttyUSB0?baud", "parameters"),
    ],
)
def test_bad_spec_is_a_config_error_naming_the_part(spec: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        open_reader(spec)


def test_unknown_family_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"'hid'.*em4100"):
        SerialCardReader("loop://", reader_id="x", family="hid")


# -- mfd reader ... ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "0A0012D68749",
        "0a0012d68749",
        "\x020A0012D68749\x03",
        "02 30 41 30 30 31 32 44 36 38 37 34 39 03",
        "30:41:30:30:31:32:44:36:38:37:34:39",
    ],
)
def test_cli_decode_json(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "decode", "--format", "em4100", value, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"format": "em4100", "version": 10, "tag": 1234567, "number": "0001234567",
                   "checksum_ok": True}


def test_cli_decode_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "decode", "--format", "em4100", "62E3086CED08") == 0
    out = capsys.readouterr().out
    assert "0x62" in out and "0xE3086CED" in out and "3808980205" in out


def test_cli_decode_bad_checksum(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "decode", "--format", "em4100", "0A0012D68748") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "checksum" in captured.err


def test_cli_decode_bad_checksum_json_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "decode", "--format", "em4100", "0A0012D68748", "--json") == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["checksum_ok"] is False
    assert "checksum" in captured.err


@pytest.mark.parametrize("value", ["0A0012D6874", "0A0012D6874Z", "hello"])
def test_cli_decode_bad_value(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "decode", "--format", "em4100", value) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_a_scheme_whose_backend_is_missing_is_not_supported_yet(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import readers.spec

    monkeypatch.setitem(readers.spec.BACKENDS, "nfc", "readers.no_such_backend")
    with pytest.raises(ConfigError, match="not supported yet"):
        open_reader("nfc:usb")


def test_cli_watch_bad_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("reader", "watch", "usb:reader0") == 2
    assert "unknown reader scheme" in capsys.readouterr().err


@pytest.mark.integration
def test_cli_watch_prints_one_line_per_tap(pty: PtyPort,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    done = threading.Event()

    def hold_card() -> None:
        # Start writing at once: frames sent before watch opens the port are flushed, the
        # first one after is the tap, the rest are a held card.
        while not done.wait(0.03):
            Em4100Stub(pty).present(ALICE)

    holder = threading.Thread(target=hold_card, daemon=True)
    holder.start()
    try:
        assert run_cli("reader", "watch", f"serial:{pty.device}", "--seconds", "0.5") == 0
    finally:
        done.set()
        holder.join()
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1
    assert "number=0001234567" in lines[0] and encode_frame(10, ALICE).hex() in lines[0]
    assert "1 read(s)" in captured.err
    assert reader_threads() == []
