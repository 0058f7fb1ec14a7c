"""The reader contract (tests/reader_contract.py) run against every reader adapter and its
simulated twin: each serial family on a pty with its firmware stub, PC/SC on a private pcscd
with a vpcd card, OSDP against libosdp's PD, the simulated reader and a replayed recording.

Each class here only says how to build its reader (from the spec string a device's
configuration would hold) and how to act on its transport; the tests are the base's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pcscd_fixture import pcscd_fixture

from firmware_stubs.osdp_pd import OsdpPdStub, h10301
from firmware_stubs.serial_readers import Em4100Stub, PcProxStub, Twn4Stub, WiegandSerialStub
from firmware_stubs.vpcd_card import VirtualCard
from protocol.errors import ReaderError
from readers.adapters.osdp.link import LinkState
from readers.adapters.osdp.reader import OsdpCardReader
from readers.adapters.pcsc_reader import PcscCardReader, ReaderState
from readers.adapters.sim_reader import SimReader
from readers.codecs.ascii import AsciiFormat
from readers.codecs.em4100 import encode_frame
from readers.codecs.wiegand_serial import encode_card
from readers.events import CardReader
from readers.pty import PtyPort
from readers.record.recording import Recorder, RecordingHeader
from readers.spec import open_reader
from simulator.pcscd import PrivatePcscd

# The contract's asserts live in a helper module, which pytest rewrites only if told so first.
pytest.register_assert_rewrite("reader_contract")
from reader_contract import (  # noqa: E402
    GARBAGE,
    UNPLUG,
    Bench,
    Card,
    Garbage,
    ReaderContract,
    Step,
    wait_until,
)

pcscd = pcscd_fixture()

# Line noise, a power-on glitch and a frame with non-hex digits: every serial codec rejects it,
# and its line ends keep it from running into the next card's line.
SERIAL_GARBAGE = b"\x00\xff junk \x1b[0m\r\n\x02ZZ\x03\r\n"


def bad_checksum(frame: bytes) -> bytes:
    """An RDM6300 frame with its checksum digits changed (a misread)."""
    wrong = b"00" if frame[-3:-1] != b"00" else b"FF"
    return frame[:-3] + wrong + frame[-1:]


# -- serial families on a pty --------------------------------------------------------------


@dataclass(frozen=True)
class SerialFamily:
    """One serial family: its spec query, its firmware, and what its cards read as."""

    name: str
    query: str
    stub: Callable[[PtyPort], Any]
    present: Callable[[Any, int], object]
    number: Callable[[int], str]
    cards: tuple[int, int, int]
    misread: Callable[[int], bytes]  # card ``n`` as the line carries it when misread


PCPROX_FMT = AsciiFormat(sep=b":")
TWN4_FMT = AsciiFormat(base=16, width=8)
SERIAL_FAMILIES = {f.name: f for f in (
    SerialFamily("em4100", "family=em4100", Em4100Stub, lambda s, n: s.present(n),
                 lambda n: f"{n:010d}", (0x2B7E15A3, 0x3C4D5E6F, 0x1A2B3C4D),
                 lambda n: bad_checksum(encode_frame(0x0A, n))),
    # Firmware lock-outs off: the lock-out under test is the host's.
    SerialFamily("pcprox", "family=pcprox&sep=:",
                 lambda p: PcProxStub(p, PCPROX_FMT, lockout_ticks=0),
                 lambda s, n: s.present(n, facility=12), lambda n: f"12:{n}",
                 (618273, 739184, 850295), lambda n: f"12:{n}:9\r".encode()),
    SerialFamily("twn4", "family=twn4&width=8", lambda p: Twn4Stub(p, TWN4_FMT, repeat_s=0),
                 lambda s, n: s.present(n), str, (0x5C3A91D7, 0x6D4BA2E8, 0x7E5CB3F9),
                 lambda n: f"{n:08X}Z\r".encode()),
    SerialFamily("wiegand", "family=wiegand&format=h10304",
                 lambda p: WiegandSerialStub(p, "h10304"), lambda s, n: s.present(7, n),
                 lambda n: f"7:{n}", (318259, 402117, 277451),
                 lambda n: encode_card("h10304", 7, n, bad_parity=True)),
)}


class SerialBench(Bench):
    """A serial reader behind a stable name (like /dev/serial/by-id/) pointing at a pty."""

    own_threads = ("pcprox-stub",)

    def __init__(self, family: SerialFamily, tmp_path: Path) -> None:
        super().__init__(f"contract-{family.name}")
        self.family = family
        self.link = tmp_path / "ttyREADER"
        self.port = PtyPort()
        self.link.symlink_to(self.port.device)
        self.stub = family.stub(self.port)
        self.wire: dict[int, bytes] = {}

    def open(self, plan: Sequence[Step]) -> CardReader:
        return open_reader(f"serial:{self.link}?{self.family.query}&id={self.reader_id}")

    def number(self, index: int) -> str:
        return self.family.number(self.family.cards[index])

    def raw(self, index: int) -> bytes:
        return self.wire[index]

    def clear_forms(self, index: int) -> list[str]:
        tag = self.family.cards[index]
        return [self.number(index), str(tag), f"{tag:X}"]

    def present(self, index: int) -> None:
        wire = self.family.present(self.stub, self.family.cards[index])
        assert isinstance(wire, bytes), "the firmware swallowed the card"
        self.wire[index] = wire

    def garbage(self) -> None:
        # Noise, then card A misread (a codec's error must not quote its digits either).
        self.stub.noise(SERIAL_GARBAGE + self.family.misread(self.family.cards[0]))

    def unplug(self) -> None:
        self.link.unlink()
        self.port.close()  # the stub's thread, if any, ends with it

    def replug(self) -> None:
        self.port = PtyPort()
        self.stub = self.family.stub(self.port)
        self.link.symlink_to(self.port.device)

    def gone(self, reader: CardReader) -> bool:
        # Beyond its log and health (checked by the base): its thread lives on, retrying.
        return getattr(reader, "running", False) is True

    def close(self) -> None:
        self.port.close()


class SerialContract(ReaderContract):
    family: ClassVar[str]

    def make_bench(self, request: pytest.FixtureRequest, tmp_path: Path) -> Bench:
        return SerialBench(SERIAL_FAMILIES[self.family], tmp_path)


class TestEm4100Contract(SerialContract):
    family = "em4100"


class TestPcProxContract(SerialContract):
    family = "pcprox"


class TestTwn4Contract(SerialContract):
    family = "twn4"


class TestWiegandSerialContract(SerialContract):
    family = "wiegand"


# -- PC/SC: a private pcscd, vpcd, a virtual card -------------------------------------------


class PcscBench(Bench):
    """Slot 0 of the private pcscd's vpcd reader. Unplugging is pcscd going away (and the
    vpcd reader with it); pcscd polls cards every 400 ms, hence the longer deadline."""

    deadline_s = 3.0
    own_threads = ("vpcd-card-",)
    uids = (bytes.fromhex("04A1B2C3D4E5F6"), bytes.fromhex("5A6B7C8D"),
            bytes.fromhex("1122334455667788AABB"))
    # A card whose GET UID answer is only an unexpected status word: garbage, as PC/SC has it.
    garbage_status = bytes.fromhex("1234")

    def __init__(self, daemon: PrivatePcscd) -> None:
        super().__init__("contract-pcsc")
        self.daemon = daemon
        self.card = VirtualCard(daemon.slot_port(0))

    def open(self, plan: Sequence[Step]) -> CardReader:
        return open_reader(f"pcsc:?id={self.reader_id}")

    def ready(self, reader: CardReader) -> None:
        assert isinstance(reader, PcscCardReader)
        wait_until(lambda: reader.state == ReaderState.READY, "the PC/SC reader ready", 5.0)

    def number(self, index: int) -> str:
        return self.uids[index].hex().upper()

    def raw(self, index: int) -> bytes:
        return self.uids[index]

    def clear_forms(self, index: int) -> list[str]:
        uid = self.uids[index]
        return [self.number(index), uid.hex(" "), uid.hex(":")]

    def _tap(self, uid: bytes, status: bytes | None) -> None:
        self._lift()
        self.card.uid_status = status
        self.card.insert(uid)
        # Once the card has been asked for its UID the adapter has decided the read; only then
        # may the card go, or a quick lift would be a "card removed" bad read.
        assert self.card.wait_for(lambda logic: len(logic.apdus) == 1, self.deadline_s), \
            "the adapter did not ask the card for its UID"

    def _lift(self) -> None:
        if self.card.inserted:
            self.card.remove()
            assert self.daemon.wait_for_card(present=False), "pcscd did not see the card go"
            reader = self.reader
            assert isinstance(reader, PcscCardReader)
            # pcscd tells each client in turn: the adapter may not have heard it yet.
            wait_until(lambda: not reader.running or reader.state != ReaderState.CARD,
                       "the adapter to see the card go", self.deadline_s)

    def present(self, index: int) -> None:
        self._tap(self.uids[index], None)

    def garbage(self) -> None:
        self._tap(self.uids[2], self.garbage_status)

    def unplug(self) -> None:
        self.card.remove()
        self.daemon.stop()

    def replug(self) -> None:
        self.daemon.start()

    def gone(self, reader: CardReader) -> bool:
        assert isinstance(reader, PcscCardReader)
        return reader.state == ReaderState.NO_SERVICE and reader.last_error is not None

    def stopped(self, reader: CardReader) -> bool:
        assert isinstance(reader, PcscCardReader)
        return not reader.running and reader.state == ReaderState.STOPPED

    def close(self) -> None:
        self.card.remove()
        if not self.daemon.running:
            self.daemon.start()
        assert self.daemon.wait_for_card(present=False)


class TestPcscContract(ReaderContract):
    def make_bench(self, request: pytest.FixtureRequest, tmp_path: Path) -> Bench:
        return PcscBench(request.getfixturevalue("pcscd"))


# -- OSDP: libosdp's PD on a pty -------------------------------------------------------------


class OsdpBench(Bench):
    """An OSDP reader (libosdp's PD) with Secure Channel, on an RS-485 adapter's stable name.

    Garbage is line noise on the bus (libosdp drops it without a trace in ``health``) and a
    card read of zero bits (which the OSDP codec rejects: ``health.bad_frames``). Card data
    shorter than the bits it claims cannot be sent: libosdp's PD sends the bits' worth of
    bytes, reading past the data."""

    deadline_s = 3.0
    own_threads = ("osdp-pd-",)
    key = bytes.fromhex("8d1c2a7b5e3f40a1b2c3d4e5f6071829")
    address = 3
    cards = (h10301(2, 48213), h10301(2, 51796), h10301(2, 60317))

    def __init__(self, tmp_path: Path) -> None:
        super().__init__("contract-osdp")
        self.link = tmp_path / "ttyRS485"
        self.port = PtyPort()
        self.link.symlink_to(self.port.device)
        self.pd = self._power_up(self.port)

    def _power_up(self, port: PtyPort) -> OsdpPdStub:
        pd = OsdpPdStub(port, address=self.address, scbk=self.key)
        pd.start()
        return pd

    def open(self, plan: Sequence[Step]) -> CardReader:
        reader = open_reader(f"osdp:{self.link}?address={self.address}&scbk={self.key.hex()}"
                             f"&id={self.reader_id}")
        assert isinstance(reader, OsdpCardReader)
        reader.retry_interval_s = 0.2  # the field default is 2 s
        return reader

    def ready(self, reader: CardReader) -> None:
        assert isinstance(reader, OsdpCardReader)
        wait_until(lambda: reader.secure, "a secure OSDP link", 5.0)

    def number(self, index: int) -> str:
        return f"{self.cards[index]:07X}"

    def raw(self, index: int) -> bytes:
        return (self.cards[index] << 6).to_bytes(4, "big")  # 26 bits, MSB first, padded

    def clear_forms(self, index: int) -> list[str]:
        return [self.number(index), self.raw(index).hex()]

    def present(self, index: int) -> None:
        self.pd.present(self.cards[index])

    def garbage(self) -> None:
        # Noise that starts like a reply from our address (SOM, address | 0x80), then a read
        # of no bits at all.
        self.port.write(b"\x53\x83\xff\x00junk\x00\xff" * 4)
        self.pd.present(b"\x00", bits=0)

    def unplug(self) -> None:
        self.pd.stop()
        self.link.unlink()
        self.port.close()

    def replug(self) -> None:
        self.port = PtyPort()
        self.pd = self._power_up(self.port)
        self.link.symlink_to(self.port.device)

    def gone(self, reader: CardReader) -> bool:
        assert isinstance(reader, OsdpCardReader)
        fault = reader.status.fault
        return (reader.status.state is LinkState.PORT_LOST and fault is not None
                and fault.code == "reader_port_lost")

    def stopped(self, reader: CardReader) -> bool:
        assert isinstance(reader, OsdpCardReader)
        return not reader.running and reader.status.state is LinkState.STOPPED

    def close(self) -> None:
        self.pd.stop()
        self.port.close()


class TestOsdpContract(ReaderContract):
    def make_bench(self, request: pytest.FixtureRequest, tmp_path: Path) -> Bench:
        return OsdpBench(tmp_path)


# -- the simulated reader ------------------------------------------------------------------


class SimBench(Bench):
    """``sim:NAME``: cards are presented by code, straight to the sink."""

    numbers = ("0729683363", "1011703407", "0439041101")

    def __init__(self, name: str) -> None:
        super().__init__(f"contract-sim-{name}")
        self.name = name
        self.threads_at_open: set[threading.Thread] = set()

    def open(self, plan: Sequence[Step]) -> CardReader:
        self.threads_at_open = set(threading.enumerate())
        reader = open_reader(f"sim:{self.name}?id={self.reader_id}")
        assert isinstance(reader, SimReader)
        self.sim = reader
        return reader

    def number(self, index: int) -> str:
        return self.numbers[index]

    def raw(self, index: int) -> bytes:
        return self.numbers[index].encode()  # a simulated card's raw bytes default to these

    def present(self, index: int) -> None:
        self.sim.present(self.numbers[index])

    def attempt(self, capability: str, reader: CardReader) -> None:
        if capability == GARBAGE:
            # Its only input is present(number): anything that is not a card number is
            # refused to the caller, before the reader's state or sink sees it.
            for junk in ("", "\x00\xff junk", " 0729683363", "07296\n83363", "0729683363 "):
                with pytest.raises(ReaderError, match="card number"):
                    self.sim.present(junk)
        else:
            # No wire to pull: the started reader runs no thread of its own and holds no
            # port; its one read so far was delivered inside present().
            assert set(threading.enumerate()) <= self.threads_at_open
            assert self.sim.running and reader.health.reads == 1


class TestSimContract(ReaderContract):
    cannot: ClassVar[dict[str, str]] = {
        GARBAGE: "no wire: present() takes a card number and refuses anything else",
        UNPLUG: "no transport: present() calls the sink directly, no port, no thread",
    }

    def make_bench(self, request: pytest.FixtureRequest, tmp_path: Path) -> Bench:
        return SimBench(request.node.name.replace("[", "-").rstrip("]"))


# -- a replayed recording ------------------------------------------------------------------


class ReplayBench(Bench):
    """``replay:FILE``: an RDM6300 recording played through the serial adapter. The test's
    plan becomes the recording (a step every 0.1 s, well inside the 2 s lock-out); presenting
    only checks that the test follows its plan."""

    step_s = 0.1
    tags = (0x2B7E15A3, 0x3C4D5E6F, 0x1A2B3C4D)

    def __init__(self, tmp_path: Path) -> None:
        super().__init__("contract-replay")
        self.path = tmp_path / "recording.jsonl"
        self.plan: list[Step] = []

    def open(self, plan: Sequence[Step]) -> CardReader:
        self.plan = list(plan)
        with Recorder(self.path, RecordingHeader(reader=self.reader_id),
                      clock=lambda: 0.0) as rec:
            for i, step in enumerate(self.plan):
                data = (SERIAL_GARBAGE + bad_checksum(encode_frame(0x0A, self.tags[0]))
                        if isinstance(step, Garbage)
                        else encode_frame(0x0A, self.tags[step.index]))
                rec.on_raw(data, i * self.step_s)
        return open_reader(f"replay:{self.path}?speed=1&id={self.reader_id}")

    def _next(self, step: Step) -> None:
        assert self.plan and self.plan[0] == step, f"{step} is not next in the plan {self.plan}"
        self.plan.pop(0)

    def number(self, index: int) -> str:
        return f"{self.tags[index]:010d}"

    def raw(self, index: int) -> bytes:
        return encode_frame(0x0A, self.tags[index])

    def clear_forms(self, index: int) -> list[str]:
        tag = self.tags[index]
        return [self.number(index), str(tag), f"{tag:X}"]

    def present(self, index: int) -> None:
        self._next(Card(index))

    def garbage(self) -> None:
        self._next(Garbage())

    def attempt(self, capability: str, reader: CardReader) -> None:
        # The recording is read whole when the reader is built: the file going away mid-play
        # is nothing the replay can notice, let alone report.
        assert capability == UNPLUG
        self.path.unlink()


class TestReplayContract(ReaderContract):
    cannot: ClassVar[dict[str, str]] = {
        UNPLUG: "the wire is a recording, loaded whole when the reader is built",
    }

    def make_bench(self, request: pytest.FixtureRequest, tmp_path: Path) -> Bench:
        return ReplayBench(tmp_path)
