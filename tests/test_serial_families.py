"""Every serial reader family end to end on a real pty: emulated firmware -> pyserial -> codec
-> debouncer -> sink, through ``open_reader("serial:...?family=...")``. A card read once, a
held card, garbage, unplug and replug, stop and masked logs are the reader contract's, run on
every family (test_reader_contract.py); here is what differs between families.

Waiting is by event, never by sleeping for "long enough": to know that everything written
before some point has been processed, a test presents a *sentinel* card afterwards and waits
for it (the line is a FIFO and the reader thread handles bytes in order). Firmware lock-outs
run on a fake clock, so holding a card "for 5 s" takes no time.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from firmware_stubs.serial_readers import (
    Em4100Stub,
    PcProxStub,
    Twn4Stub,
    WiegandSerialStub,
)
from protocol.errors import ConfigError, ReaderError
from readers.adapters.serial_reader import (
    SERIAL_FAMILIES,
    SPEC_PARAMS,
    SerialCardReader,
    list_serial_ports,
)
from readers.codecs.ascii import (
    AsciiFormat,
    encode_line,
)
from readers.codecs.em4100 import encode_frame
from readers.codecs.pcprox import (
    AcpAssign,
    AcpErrorCode,
    AcpQuery,
)
from readers.codecs.wiegand_serial import encode_card
from readers.events import CardRead
from readers.pty import PtyPort
from readers.spec import open_reader

TIMEOUT = 2.0
SENTINEL = 4242


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Family:
    """How to drive one family: its spec, its firmware stub, and the number a card reads as."""

    name: str
    query: str
    stub: Callable[[PtyPort], Any]
    present: Callable[[Any, int], bytes | None]
    number: Callable[[int], str]
    encode: Callable[[int], bytes]  # the same frame, without a port (to garble it)


PCPROX_FMT = AsciiFormat(sep=b":")
# TWN4 set to 4-byte UIDs, 8 hex digits: a fixed width is what lets the host notice a line
# cut short and run into the next one -- without it, "0006F" + "0001E240" is just another
# valid hex number, and the wrong card would be read.
TWN4_FMT = AsciiFormat(base=16, width=8)

FAMILIES = [
    Family("em4100", "family=em4100", Em4100Stub, lambda s, n: s.present(n),
           lambda n: f"{n:010d}", lambda n: encode_frame(0x0A, n)),
    # Firmware lock-outs off here: these tests are about the line, not the lock-out.
    Family("pcprox", "family=pcprox&sep=:",
           lambda p: PcProxStub(p, PCPROX_FMT, lockout_ticks=0),
           lambda s, n: s.present(n, facility=12), lambda n: f"12:{n}",
           lambda n: encode_line(PCPROX_FMT, n, 12)),
    Family("twn4", "family=twn4&width=8", lambda p: Twn4Stub(p, TWN4_FMT, repeat_s=0),
           lambda s, n: s.present(n), str, lambda n: encode_line(TWN4_FMT, n)),
    Family("wiegand", "family=wiegand&format=h10304",
           lambda p: WiegandSerialStub(p, "h10304"), lambda s, n: s.present(7, n),
           lambda n: f"7:{n}", lambda n: encode_card("h10304", 7, n)),
]


@dataclass
class Rig:
    family: Family
    port: PtyPort
    stub: Any
    reader: SerialCardReader
    reads: queue.Queue[CardRead]

    def present(self, n: int) -> bytes | None:
        return self.family.present(self.stub, n)

    def next_read(self) -> CardRead:
        return self.reads.get(timeout=TIMEOUT)

    def reads_until_sentinel(self) -> list[CardRead]:
        """Every read up to (excluding) the sentinel card, presented now."""
        self.present(SENTINEL)
        got: list[CardRead] = []
        while (read := self.next_read()).number != self.family.number(SENTINEL):
            got.append(read)
        return got


@pytest.fixture
def pty() -> Iterator[PtyPort]:
    with PtyPort() as port:
        yield port


def start(family: Family, port: PtyPort, extra: str = "", stub: Any = None,
          on_raw: Callable[[bytes, float], None] | None = None) -> Rig:
    reader = open_reader(f"serial:{port.device}?{family.query}{extra}", reader_id="door")
    assert isinstance(reader, SerialCardReader)
    if on_raw is not None:
        reader = SerialCardReader(reader.port, reader_id="door", family=reader.family,
                                  options=reader.options, on_raw=on_raw)
    reads: queue.Queue[CardRead] = queue.Queue()
    reader.start(reads.put)
    return Rig(family, port, stub if stub is not None else family.stub(port), reader, reads)


@pytest.fixture(params=FAMILIES, ids=[f.name for f in FAMILIES])
def rig(request: pytest.FixtureRequest, pty: PtyPort) -> Iterator[Rig]:
    rig = start(request.param, pty)
    try:
        yield rig
    finally:
        rig.reader.stop()  # before the pty closes: see PtyPort's note on pty number reuse


def uart_garble(data: bytes, sent_baud: int, read_baud: int) -> bytes:
    """What a UART set to ``read_baud`` makes of ``data`` sent at ``sent_baud`` (8N1).

    A small model of the receiver: it waits for a falling edge (start bit), samples eight
    data bits in the middle of *its* bit cells, and hunts again after the stop bit -- which
    is how a baud mismatch turns a frame into plausible-looking garbage.
    """
    bits = [1] * 4
    for byte in data:
        bits += [0] + [(byte >> i) & 1 for i in range(8)] + [1]
    bits += [1] * 20
    t_bit, r_bit = 1 / sent_baud, 1 / read_baud

    def level(t: float) -> int:
        i = int(t / t_bit)
        return bits[i] if i < len(bits) else 1

    out = bytearray()
    t, end = 0.0, len(bits) * t_bit
    while t < end:
        if level(t) == 0:
            out.append(sum(level(t + (1.5 + i) * r_bit) << i for i in range(8)))
            t += 9.5 * r_bit
            while t < end and level(t) == 0:
                t += r_bit / 16
        else:
            t += r_bit / 16
    return bytes(out)


# -- each family end to end --------------------------------------------------------------


@pytest.mark.integration
def test_garbage_truncated_frames_and_noise_resync_and_count(rig: Rig) -> None:
    # Power-on junk ended by a line end, a good read, then a frame cut off by the next one.
    rig.stub.noise(b"\x00\xff junk \x1b[0m\r\n")
    rig.present(456789)
    rig.stub.noise(rig.family.encode(456789)[:5])
    # Line families without a frame-start byte lose the next line with the cut-off one; the
    # card is still on the reader and read again (the host's lock-out drops the repeat).
    rig.present(123456)
    rig.present(123456)
    rig.stub.noise(b"\r\n\xfe\xfe\r\n")  # noise between frames
    reads = rig.reads_until_sentinel()
    assert [r.number for r in reads] == [rig.family.number(n) for n in (456789, 123456)]
    # em4100 hunts for STX and skips noise silently; the line families report each bad line.
    expected = {"em4100": 1, "pcprox": 3, "twn4": 3, "wiegand": 3}[rig.family.name]
    assert rig.reader.health.bad_frames == expected


@pytest.mark.integration
@pytest.mark.parametrize("read_baud", [4800, 19200])
def test_wrong_baud_rate_garbage_then_recovery(rig: Rig, read_baud: int) -> None:
    # The reader sends at 9600 but the line is read at another rate: every frame arrives as
    # garbage. Then the rate is fixed (in the test, the bytes simply become right again).
    garbled = b"".join(uart_garble(rig.family.encode(n), 9600, read_baud)
                       for n in range(100, 120))
    rig.stub.noise(garbled)
    # The first good frame after the garbage may be swallowed with it; the second is read.
    rig.present(123456)
    rig.present(123456)
    reads = rig.reads_until_sentinel()
    assert [r.number for r in reads] == [rig.family.number(123456)]
    if rig.family.name != "em4100":  # em4100 skips non-STX noise without counting it
        assert rig.reader.health.bad_frames >= 1


@pytest.mark.integration
def test_on_raw_sees_every_byte_in_order(pty: PtyPort) -> None:
    family = FAMILIES[1]  # pcprox: card lines, noise and command replies all pass through
    chunks: list[tuple[bytes, float]] = []
    rig = start(family, pty, on_raw=lambda data, t: chunks.append((data, t)))
    try:
        written = [rig.present(n) or b"" for n in (1, 2, 3)]
        rig.stub.noise(b"\x00garbage\r")
        written.append(b"\x00garbage\r")
        rig.reader.command(AcpQuery("time.lo"))
        written.append(b"{0}\r\n")
        rig.reads_until_sentinel()
        written.append(family.encode(SENTINEL))
    finally:
        rig.reader.stop()
    assert b"".join(c for c, _ in chunks) == b"".join(written)
    times = [t for _, t in chunks]
    assert times == sorted(times)


# -- pcProx: the command protocol -------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("prompt", [False, True], ids=["plain", "console"])
def test_pcprox_command_exchange_reconfigures_reader_and_host(pty: PtyPort,
                                                             prompt: bool) -> None:
    stub = PcProxStub(pty, lockout_ticks=0, prompt=prompt)
    rig = start(FAMILIES[1], pty, stub=stub)
    # The host expects "12:n" (sep=:) but the reader prints plain decimal IDs: tell it to.
    try:
        assert rig.reader.command(AcpAssign("chr.fac", b":")).ok
        assert rig.reader.command(AcpAssign("disp.fac.send", True)).value is True
        stub.present(1234, facility=12)
        assert rig.next_read().number == "12:1234"

        # Switch the reader to hex, padded, with delimiters; the host follows each reply.
        for name, value in [("disp.id.hex", True), ("disp.id.digits", 8),
                            ("chr.1", b"#"), ("chr.2", b"/"),
                            ("chr.count.lead", 1), ("chr.count.trail", 1)]:
            result = rig.reader.command(AcpAssign(name, value))
            assert result.ok and result.value == value, name
        line = stub.present(0xABCD, facility=0x12)
        assert line == b"#12:0000ABCD/\r"
        assert rig.next_read().number == f"{0x12}:{0xABCD}"

        # Queries read back; the lock-out is in 48 ms ticks.
        lockout = rig.reader.command(AcpQuery("time.lo"))
        assert lockout.ok and lockout.value == 0
        assert rig.reader.command(AcpAssign("time.lo", 5)).value == 5
        assert stub.lockout_s == pytest.approx(0.24)  # the firmware's lock-out changed too
        assert stub.present(0x77, facility=1) is not None
        assert stub.present(0x77, facility=1) is None  # held: swallowed by the firmware
        assert rig.next_read().number == f"1:{0x77}"
        assert rig.reader.command(AcpAssign("time.lo", 0)).ok
        # A refused setting is an error reply, not an exception, and changes nothing.
        refused = rig.reader.command(AcpAssign("chr.count.lead", 3))
        assert not refused.ok and refused.reply.error is AcpErrorCode.VALUE
        stub.present(0x78, facility=1)
        assert rig.next_read().number == f"1:{0x78}"
        assert rig.reader.health.bad_frames == 0
        assert stub.commands[:2] == [b"rfid:chr.fac=':'", b"rfid:disp.fac.send=True"]
    finally:
        rig.reader.stop()


@pytest.mark.integration
def test_commands_need_a_pcprox_that_answers(pty: PtyPort) -> None:
    reader = open_reader(f"serial:{pty.device}?family=pcprox")
    assert isinstance(reader, SerialCardReader)
    with pytest.raises(ReaderError, match="not started"):
        reader.command(AcpQuery("time.lo"))
    reader.start(lambda read: None)
    try:
        with pytest.raises(ReaderError, match="no reply"):  # nothing emulates the firmware
            reader.command(AcpQuery("time.lo"), timeout_s=0.2)
    finally:
        reader.stop()
    twn4 = open_reader(f"serial:{pty.device}?family=twn4")
    assert isinstance(twn4, SerialCardReader)
    with pytest.raises(ReaderError, match="takes no commands"):
        twn4.command(AcpQuery("time.lo"))


# -- lock-outs: the firmware's and the host's --------------------------------------------


@pytest.mark.integration
def test_pcprox_held_card_is_one_read_per_lockout_and_another_card_at_once(
    pty: PtyPort,
) -> None:
    clock = FakeClock()
    stub = PcProxStub(pty, AsciiFormat(sep=b":"), lockout_ticks=5, clock=clock)  # 0.24 s
    rig = start(FAMILIES[1], pty, "&lockout=0", stub=stub)  # host passes everything on
    try:
        sent = []
        for _ in range(20):  # held for 2 s, seen every 0.1 s: one read
            sent.append(stub.present(1, facility=12))
            clock.now += 0.1
        clock.now += 0.5  # lifted for longer than the lock-out, then tapped again
        sent.append(stub.present(1, facility=12))
        sent.append(stub.present(2, facility=12))  # another card: at once
        assert sum(s is not None for s in sent) == 3
        assert [r.number for r in rig.reads_until_sentinel()] == ["12:1", "12:1", "12:2"]
    finally:
        rig.reader.stop()


@pytest.mark.integration
def test_twn4_held_tag_is_read_every_2_s_and_another_tag_at_once(pty: PtyPort) -> None:
    clock = FakeClock()
    stub = Twn4Stub(pty, TWN4_FMT, clock=clock)
    rig = start(FAMILIES[2], pty, "&lockout=0", stub=stub)
    try:
        for _ in range(10):  # held for 5 s, seen every 0.5 s: read at 0, 2 and 4 s
            stub.present(0xA1B2)
            clock.now += 0.5
        stub.present(0xC3D4)  # another tag: at once
        stub.present(0xA1B2)  # and the first again: it is no longer the last one read
        reads = [r.number for r in rig.reads_until_sentinel()]
        assert reads == [str(0xA1B2)] * 3 + [str(0xC3D4), str(0xA1B2)]
    finally:
        rig.reader.stop()


@pytest.mark.integration
def test_host_lockout_on_top_of_a_twn4_and_health_counters(pty: PtyPort) -> None:
    # TWN4 repeats a held tag every 2 s; the host's 2 s window (every read restarts it)
    # turns a held tag into one tap. All of it arrives within milliseconds here.
    clock = FakeClock()
    stub = Twn4Stub(pty, TWN4_FMT, clock=clock)
    rig = start(FAMILIES[2], pty, stub=stub)
    try:
        for _ in range(10):
            stub.present(0xA1B2)
            clock.now += 0.5
        stub.noise(b"zz\r")
        stub.present(0xC3D4)
        reads = [r.number for r in rig.reads_until_sentinel()]
        assert reads == [str(0xA1B2), str(0xC3D4)]
        health = rig.reader.health
        assert (health.reads, health.suppressed, health.bad_frames, health.reconnects) == \
            (3, 2, 1, 0)
    finally:
        rig.reader.stop()


@pytest.mark.integration
def test_pcprox_reader_reconnects_after_unplug(tmp_path: Path) -> None:
    link = tmp_path / "ttyPCPROX"
    first = PtyPort()
    link.symlink_to(first.device)
    reader = open_reader(f"serial:{link}?family=pcprox&lockout=0")
    reads: queue.Queue[CardRead] = queue.Queue()
    reader.start(reads.put)
    second: PtyPort | None = None
    try:
        PcProxStub(first, lockout_ticks=0).present(11)
        assert reads.get(timeout=TIMEOUT).number == "11"
        link.unlink()
        first.close()  # unplugged (the stub's thread is stopped with it)
        deadline = time.monotonic() + 3
        while reader.health.reconnects < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader.health.reconnects >= 1
        second = PtyPort()
        link.symlink_to(second.device)
        stub = PcProxStub(second, lockout_ticks=0)
        # pyserial flushes input on open: keep tapping until the reopened port hears it.
        read = None
        while read is None and time.monotonic() < deadline + 3:
            stub.present(22)
            try:
                read = reads.get(timeout=0.05)
            except queue.Empty:
                pass
        assert read is not None and read.number == "22"
        assert isinstance(reader, SerialCardReader)
        assert reader.command(AcpQuery("time.lo")).value == 0  # commands work again too
    finally:
        reader.stop()
        first.close()
        if second is not None:
            second.close()
    assert [t for t in threading.enumerate() if t.name.startswith("reader-")] == []


# -- specs (no pty) ----------------------------------------------------------------------


def test_families_are_registered_with_their_parameters() -> None:
    assert sorted(SERIAL_FAMILIES) == ["em4100", "pcprox", "twn4", "wiegand"]
    assert {"format", "pre", "post", "sep", "term", "base", "width"} <= set(SPEC_PARAMS)
    assert SERIAL_FAMILIES["pcprox"].commands and not SERIAL_FAMILIES["twn4"].commands


def test_family_parameters_reach_the_reader() -> None:
    reader = open_reader("serial:/dev/ttyUSB0?family=twn4&base=dec&term=crlf&pre=%02"
                         "&post=%03&width=10&baud=115200&id=front")
    assert isinstance(reader, SerialCardReader)
    assert (reader.family, reader.baud, reader.reader_id) == ("twn4", 115200, "front")
    assert reader.options == {"base": "dec", "term": "crlf", "pre": "\x02", "post": "\x03",
                              "width": "10"}
    wiegand = open_reader("serial:/dev/ttyUSB0?family=wiegand&format=h10304")
    assert isinstance(wiegand, SerialCardReader) and wiegand.options == {"format": "h10304"}


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("family=wiegand&format=hid26", "'format'"),
        ("family=twn4&term=etx", "'term'"),
        ("family=twn4&base=oct", "'base'"),
        ("family=twn4&width=wide", "'width'"),
        ("family=twn4&width=99", "'width'"),
        ("family=twn4&sep=A", "'sep'"),  # a hex digit, and twn4 is hex by default
        ("family=pcprox&sep=1", "'sep'"),
        ("family=twn4&pre=%C3%A9", "'pre'"),
        ("family=twn4&post=%0D", "'post'"),
        ("family=pcprox&pre=ab&post=cd", "'pre' and 'post'"),
        ("family=pcprox&sep=::", "'sep'"),
        ("family=pcprox&term=crlf", "'term'"),
        ("family=pcprox&pre={", "'pre'"),
        ("family=em4100&base=hex", "'base' does not apply to family 'em4100'"),
        ("family=wiegand&sep=:", "'sep' does not apply"),
        ("family=twn4&format=h10301", "'format' does not apply"),
        ("family=hid", "'family'"),
        ("family=twn4&colour=red", "'colour'"),
    ],
)
def test_bad_family_parameter_is_a_config_error_naming_it(query: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        open_reader(f"serial:/dev/ttyUSB0?{query}")


def test_list_serial_ports_gives_device_and_description() -> None:
    ports = list_serial_ports()
    assert all(isinstance(dev, str) and dev and isinstance(desc, str) for dev, desc in ports)
    assert ports == sorted(ports)


@pytest.mark.integration
def test_command_from_the_sink_is_refused_not_deadlocked(pty: PtyPort) -> None:
    errors: queue.Queue[BaseException] = queue.Queue()
    reader = open_reader(f"serial:{pty.device}?family=pcprox")
    assert isinstance(reader, SerialCardReader)

    def sink(read: CardRead) -> None:
        try:
            reader.command(AcpQuery("time.lo"))
        except ReaderError as exc:
            errors.put(exc)

    reader.start(sink)
    try:
        PcProxStub(pty).present(5)
        assert "from the sink" in str(errors.get(timeout=TIMEOUT))
    finally:
        reader.stop()
