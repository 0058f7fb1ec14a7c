"""OSDP reader adapter (control panel) against libosdp's own PD on a real pty; card data; specs.

What every reader does (one read per card, a held card, garbage, the RS-485 adapter unplugged
and replugged, stop, masked card numbers) is the reader contract's (test_reader_contract.py);
here is what is OSDP's own: Secure Channel, refusal, power cycles, keys, card data.

The integration tests run the adapter's real path: pyserial on the slave side of a pty,
libosdp's CP in the adapter's thread, libosdp's PD in the stub's thread on the master side.
Waiting is by condition with a deadline, never by sleeping for "long enough". Where a test
must show that something does *not* happen (a refused reader's card never arrives), it waits
for further complete attempts of the link instead: each one would have delivered the card
had the link come up.

Links retry every 0.2 s here (``retry_interval_s``) instead of the field default of 2 s.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reader_helpers import reader_threads

from firmware_stubs.osdp_pd import SCBK_D, CardFormat, OsdpPdStub, h10301
from protocol.errors import ConfigError, FrameError, ReaderError
from readers.adapters.osdp.link import LinkState, SecureChannelRefused
from readers.adapters.osdp.reader import OsdpCardReader
from readers.codecs.osdp import card_number
from readers.events import CardRead
from readers.pty import PtyPort
from readers.spec import open_reader

KEY = bytes.fromhex("8d1c2a7b5e3f40a1b2c3d4e5f6071829")
OTHER_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
ADDRESS = 3
RETRY_S = 0.2
TIMEOUT = 3.0
ALICE = h10301(2, 10482)  # the FIELD_NOTES card: 0x00451E5
BOB = h10301(2, 10483)
LOGGER = "readers.adapters.osdp"  # the package: its link logs the states


def wait_for(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@dataclass
class Rig:
    line: PtyPort
    pd: OsdpPdStub
    reader: OsdpCardReader
    reads: queue.Queue[CardRead] = field(default_factory=queue.Queue)

    def start(self) -> Rig:
        self.reader.start(self.reads.put)
        return self

    def next_read(self) -> CardRead:
        return self.reads.get(timeout=TIMEOUT)

    def wait_state(self, state: LinkState) -> None:
        wait_for(lambda: self.reader.status.state is state, f"link state {state}")


@pytest.fixture
def line() -> Iterator[PtyPort]:
    with PtyPort() as port:
        yield port


def door_adapter(line: PtyPort, scbk: bytes | None = KEY,
                 allow_plaintext: bool = False) -> OsdpCardReader:
    """The adapter as the copier has it: reader "door" at ADDRESS on ``line``, Secure Channel
    required unless ``allow_plaintext``."""
    return OsdpCardReader(line.device, scbk=scbk, reader_id="door", address=ADDRESS,
                          allow_plaintext=allow_plaintext, retry_interval_s=RETRY_S)


@contextlib.contextmanager
def door(line: PtyPort, pd: OsdpPdStub) -> Iterator[Rig]:
    """:func:`door_adapter` in front of ``pd``, started; the adapter and the PD stopped after."""
    rig = Rig(line, pd, door_adapter(line)).start()
    try:
        yield rig
    finally:
        rig.reader.stop()
        pd.stop()


@pytest.fixture
def make_rig(line: PtyPort) -> Iterator[Callable[..., Rig]]:
    """Build a started PD and a started adapter on ``line``; both are stopped afterwards."""
    rigs: list[Rig] = []

    def make(*, pd_key: bytes | None = KEY, secure_channel: bool = True,
             cp_key: bytes | None = KEY, allow_plaintext: bool = False) -> Rig:
        pd = OsdpPdStub(line, address=ADDRESS, scbk=pd_key, secure_channel=secure_channel)
        pd.start()
        rig = Rig(line, pd, door_adapter(line, cp_key, allow_plaintext=allow_plaintext))
        rigs.append(rig)
        return rig.start()

    yield make
    for rig in rigs:
        rig.reader.stop()  # before the pty closes: see PtyPort's note on pty number reuse
        rig.pd.stop()


def secrets_in(text: str) -> list[str]:
    return [k.hex() for k in (KEY, OTHER_KEY) if k.hex() in text.lower()]


# -- Secure Channel up -----------------------------------------------------------------------


@pytest.mark.integration
def test_matching_key_brings_sc_up_and_a_card_arrives(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.wait_state(LinkState.SECURE)
    assert rig.reader.secure and rig.reader.status.secure and rig.reader.status.fault is None
    assert rig.pd.secure

    data = rig.pd.present(ALICE)
    read = rig.next_read()
    assert read.number == "00451E5"
    assert read.raw == data == bytes.fromhex("01147940")  # 26 bits MSB first, 6 pad bits
    assert read.reader_id == "door"
    assert rig.reader.health.reads == 1
    assert rig.reader.status.plaintext_reads == rig.reader.status.refused_reads == 0


@pytest.mark.integration
def test_formats_and_a_held_card(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.wait_state(LinkState.SECURE)
    rig.pd.present(ALICE)
    rig.pd.present(ALICE)  # still held: a repeat inside the lockout
    rig.pd.present(0x1_2345_6789, CardFormat.RAW, bits=37)
    rig.pd.present(bytes.fromhex("000451E5"), CardFormat.RAW)  # 32 bits: another card
    numbers = [rig.next_read().number for _ in range(3)]
    assert numbers == ["00451E5", "0123456789", "000451E5"]  # 26 bits vs 32 bits
    assert rig.reader.health.suppressed == 1
    assert rig.pd.cleartext_card_replies == 0


@pytest.mark.integration
def test_card_numbers_and_keys_never_reach_the_log(
        make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    rig = make_rig()
    rig.wait_state(LinkState.SECURE)
    rig.pd.present(ALICE)
    read = rig.next_read()
    assert read.masked in caplog.text
    assert "451E5" not in caplog.text.upper() and "10482" not in caplog.text
    assert secrets_in(caplog.text + repr(rig.reader)) == []


# -- refusal ---------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("pd_key", "secure_channel"),
    [(OTHER_KEY, True), (KEY, False), (None, True)],
    ids=["mismatched-key", "reader-without-sc", "reader-in-install-mode"],
)
def test_reader_without_our_secure_channel_is_refused(
        make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture,
        pd_key: bytes | None, secure_channel: bool) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    rig = make_rig(pd_key=pd_key, secure_channel=secure_channel)
    rig.wait_state(LinkState.REFUSED)
    status = rig.reader.status
    assert not status.secure and not status.online and not rig.reader.secure
    assert isinstance(status.fault, SecureChannelRefused)
    assert status.fault.code == "osdp_sc_refused"

    rig.pd.present(ALICE)
    # Two more complete attempts after the card was presented: it was never polled for.
    failures = status.sc_failures
    wait_for(lambda: status.sc_failures >= failures + 2, "two more refused attempts")
    assert rig.reads.empty()
    assert rig.pd.cleartext_card_replies == 0  # never polled, so never sent it in clear
    assert rig.reader.health.reads == 0 and rig.reader.health.reconnects >= 2
    assert rig.reader.running  # refusing is not crashing

    # The reader's own errors: caplog also hears every other logger of the process.
    errors = [r for r in caplog.records
              if r.levelno == logging.ERROR and r.name.startswith(LOGGER)]
    assert len(errors) == 1  # once per episode, not once per retry
    assert "REFUSING card reads" in errors[0].getMessage()
    assert "address 3" in errors[0].getMessage()
    assert secrets_in(caplog.text) == []


@pytest.mark.integration
def test_plaintext_allowed_on_a_bench_delivers_with_warnings(
        make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    rig = make_rig(secure_channel=False, allow_plaintext=True)
    rig.wait_state(LinkState.PLAINTEXT)
    assert rig.reader.status.online and not rig.reader.status.secure
    rig.pd.present(ALICE)
    assert rig.next_read().number == "00451E5"
    assert rig.reader.status.plaintext_reads == 1
    assert rig.pd.cleartext_card_replies == 1  # this is what allow_plaintext costs
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("allow_plaintext is set" in m for m in warnings)
    assert any("online WITHOUT Secure Channel" in m for m in warnings)
    assert any("accepted card read card#" in m for m in warnings)


@pytest.mark.integration
def test_plaintext_allowed_still_uses_sc_when_the_reader_has_it(
        make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(allow_plaintext=True)
    rig.wait_state(LinkState.SECURE)
    rig.pd.present(BOB)
    assert rig.next_read().number == "00451E6"
    assert rig.reader.status.plaintext_reads == rig.pd.cleartext_card_replies == 0


@pytest.mark.integration
def test_bench_install_keys_a_new_reader_then_sc_is_required(line: PtyPort) -> None:
    # A reader fresh from the box is in install mode. On the bench (allow_plaintext) libosdp
    # keys it with our SCBK over the default key SCBK-D; from then on the production
    # setting (SC required) accepts it, and the reader keeps the key across a power cycle.
    pd = OsdpPdStub(line, address=ADDRESS, scbk=None)
    pd.start()
    bench = OsdpCardReader(line.device, scbk=KEY, reader_id="bench", address=ADDRESS,
                           allow_plaintext=True, retry_interval_s=RETRY_S)
    bench.start(lambda read: None)
    try:
        wait_for(lambda: bench.secure, "secure link on the bench")
        assert pd.scbk == KEY
    finally:
        bench.stop()
    pd.stop()
    pd.start()
    with door(line, pd) as rig:
        wait_for(lambda: rig.reader.secure, "secure link in production")
        pd.present(ALICE)
        assert rig.next_read().number == "00451E5"


# -- recovery --------------------------------------------------------------------------------


@pytest.mark.integration
def test_reader_power_cycle_is_noticed_and_recovered(
        make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    rig = make_rig()
    rig.wait_state(LinkState.SECURE)
    rig.pd.present(ALICE)
    rig.next_read()

    rig.pd.stop()  # power off
    rig.wait_state(LinkState.NO_ANSWER)
    assert not rig.reader.status.online and not rig.reader.secure
    assert rig.reader.status.fault is not None
    assert rig.reader.status.fault.code == "osdp_no_answer"
    reconnects = rig.reader.health.reconnects
    assert reconnects >= 1

    rig.pd.start()  # power on: fresh session, SC renegotiated
    rig.wait_state(LinkState.SECURE)
    assert rig.reader.status.fault is None
    rig.pd.present(BOB)
    assert rig.next_read().number == "00451E6"
    assert [r.getMessage() for r in caplog.records].count(
        f"reader door: online with Secure Channel ({rig.line.device}, address 3)") == 2


@pytest.mark.integration
def test_reader_that_is_off_at_start_comes_up_when_powered(line: PtyPort) -> None:
    pd = OsdpPdStub(line, address=ADDRESS, scbk=KEY)
    with door(line, pd) as rig:
        rig.wait_state(LinkState.NO_ANSWER)
        pd.start()
        wait_for(lambda: rig.reader.secure, "secure link")
        pd.present(ALICE)
        assert rig.next_read().number == "00451E5"


# -- lifecycle -------------------------------------------------------------------------------


@pytest.mark.integration
def test_start_on_a_missing_port_names_it(tmp_path: Path) -> None:
    reader = OsdpCardReader(str(tmp_path / "ttyNOPE"), scbk=KEY, reader_id="door")
    with pytest.raises(ReaderError, match="ttyNOPE"):
        reader.start(lambda read: None)
    assert reader_threads() == []


# -- reader specs ----------------------------------------------------------------------------


@pytest.mark.integration
def test_open_reader_osdp_spec_reads_a_card(line: PtyPort) -> None:
    pd = OsdpPdStub(line, address=ADDRESS, scbk=KEY)
    pd.start()
    reader = open_reader(
        f"osdp:{line.device}?address={ADDRESS}&scbk={KEY.hex().upper()}&baud=38400"
        "&plaintext=0&lockout=0.5&id=front")
    assert isinstance(reader, OsdpCardReader)
    assert (reader.address, reader.baud, reader.reader_id) == (ADDRESS, 38400, "front")
    assert not reader.allow_plaintext
    reads: queue.Queue[CardRead] = queue.Queue()
    reader.start(reads.put)
    try:
        pd.present(ALICE)  # waits in the reader until the panel polls for it
        read = reads.get(timeout=TIMEOUT)
        assert (read.number, read.reader_id) == ("00451E5", "front")
        assert reader.secure
    finally:
        reader.stop()
        pd.stop()


def test_default_reader_id_leaves_the_key_out() -> None:
    reader = open_reader(f"osdp:/dev/ttyUSB0?scbk={KEY.hex()}")
    assert reader.reader_id == "osdp:/dev/ttyUSB0?address=0"
    assert open_reader(f"osdp:/dev/ttyUSB0?scbk={KEY.hex()}", reader_id="x").reader_id == "x"
    assert secrets_in(repr(reader)) == []


def test_plaintext_spec_needs_no_key() -> None:
    reader = open_reader("osdp:/dev/ttyUSB0?plaintext=1&address=126")
    assert isinstance(reader, OsdpCardReader)
    assert reader.allow_plaintext and reader.address == 126


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("osdp:", "no port"),
        ("osdp:/dev/ttyUSB0", "needs an scbk"),
        ("osdp:/dev/ttyUSB0?plaintext=0", "needs an scbk"),
        (f"osdp:/dev/ttyUSB0?scbk={KEY.hex()[:-1]}", "'scbk' must be 32 hex digits"),
        (f"osdp:/dev/ttyUSB0?scbk={KEY.hex()[:-2]}zz", "'scbk' must be 32 hex digits"),
        (f"osdp:/dev/ttyUSB0?scbk={SCBK_D.hex()}", "SCBK-D"),
        (f"osdp:/dev/ttyUSB0?scbk={KEY.hex()}&address=127", "'address'"),
        (f"osdp:/dev/ttyUSB0?scbk={KEY.hex()}&address=-1", "'address'"),
        (f"osdp:/dev/ttyUSB0?scbk={KEY.hex()}&address=one", "'address'"),
        (f"osdp:/dev/ttyUSB0?scbk={KEY.hex()}&baud=9601", "'baud'"),
        (f"osdp:/dev/ttyUSB0?scbk={KEY.hex()}&baud=fast", "'baud'"),
        (f"osdp:/dev/ttyUSB0?scbk={KEY.hex()}&plaintext=maybe", "'plaintext'"),
        (f"osdp:/dev/ttyUSB0?scbk={KEY.hex()}&lockout=-1", "'lockout'"),
        (f"osdp:/dev/ttyUSB0?scbk={KEY.hex()}&family=em4100", "'family'"),
        # Malformed specs are the ones an error quotes whole: the key must be masked there.
        (f"osdp:/dev/ttyUSB0?scbk={KEY.hex()}&address", "cannot parse parameters"),
        (f"osdpp:/dev/ttyUSB0?scbk={KEY.hex()}", "unknown reader scheme"),
        (f"osdp/dev/ttyUSB0?scbk={KEY.hex()}", "no scheme"),
        (f"osdp:/dev/ttyUSB0&scbk={KEY.hex()}", "needs an scbk"),
        (f"osdp:/dev/ttyUSB0?address={KEY.hex()}", "'address'"),
        (f"osdp:/dev/ttyUSB0?sckb={KEY.hex().upper()}", "'sckb' is not known"),
    ],
)
def test_bad_spec_is_a_config_error_naming_the_part(spec: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named) as info:
        open_reader(spec)
    # The message and the chain a traceback would show (a library's message quotes values).
    assert secrets_in("".join(traceback.format_exception(info.value))) == []


def test_constructor_refuses_weak_or_missing_keys() -> None:
    with pytest.raises(ConfigError, match="needs an scbk"):
        OsdpCardReader("/dev/ttyUSB0", scbk=None, reader_id="x")
    with pytest.raises(ConfigError, match="16 bytes"):
        OsdpCardReader("/dev/ttyUSB0", scbk=b"short", reader_id="x")
    with pytest.raises(ConfigError, match="SCBK-D"):
        OsdpCardReader("/dev/ttyUSB0", scbk=SCBK_D, reader_id="x")
    with pytest.raises(ConfigError, match="retry interval"):
        OsdpCardReader("/dev/ttyUSB0", scbk=KEY, reader_id="x", retry_interval_s=0)


# -- card data ---------------------------------------------------------------------------------

WIEGAND, RAW, ASCII = 1, 0, 2  # libosdp's format codes


@pytest.mark.parametrize(
    ("fmt", "bits", "data", "number"),
    [
        (WIEGAND, 26, bytes.fromhex("01147940"), "00451E5"),  # H10301 2/10482
        (WIEGAND, 26, bytes.fromhex("0114797F"), "00451E5"),  # padding bits are ignored
        (RAW, 32, bytes.fromhex("000451E5"), "000451E5"),
        (WIEGAND, 35, bytes(5), "000000000"),
        (WIEGAND, 37, bytes.fromhex("091A2B3C48"), "0123456789"),
        (WIEGAND, 1, b"\x80", "1"),
        (ASCII, None, b"0001234567", "0001234567"),
        (ASCII, None, b" 10482\r\n\x00", "10482"),
    ],
)
def test_card_number(fmt: int, bits: int | None, data: bytes, number: str) -> None:
    assert card_number(fmt, bits, data) == number


@pytest.mark.parametrize(
    ("fmt", "bits", "data"),
    [
        (WIEGAND, 26, bytes(3)),  # too short for 26 bits
        (WIEGAND, 26, bytes(5)),
        (WIEGAND, 0, b""),
        (WIEGAND, None, b"\x00"),
        (ASCII, None, b""),
        (ASCII, None, b"  "),
        (ASCII, None, b"12\x0734"),
        (ASCII, None, "café".encode()),
        (7, 8, b"\x00"),
    ],
)
def test_bad_card_data_is_a_frame_error(fmt: int, bits: int | None, data: bytes) -> None:
    with pytest.raises(FrameError):
        card_number(fmt, bits, data)


@given(st.integers(min_value=1, max_value=128).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=(1 << n) - 1))))
def test_raw_bits_round_trip(bits_value: tuple[int, int]) -> None:
    bits, value = bits_value
    nbytes = (bits + 7) // 8
    data = (value << (nbytes * 8 - bits)).to_bytes(nbytes, "big")
    number = card_number(WIEGAND, bits, data)
    assert int(number, 16) == value
    assert len(number) == (bits + 3) // 4 and number == number.upper()


@given(st.binary(max_size=40), st.sampled_from([RAW, WIEGAND, ASCII, 3]),
       st.one_of(st.none(), st.integers(min_value=-2, max_value=400)))
def test_arbitrary_card_data_gives_a_number_or_a_frame_error(
        data: bytes, fmt: int, bits: int | None) -> None:
    try:
        number = card_number(fmt, bits, data)
    except FrameError:
        return
    assert number and number.isascii() and number.isprintable()
