"""PC/SC reader adapter on the real stack: a private pcscd, vpcd, and a virtual card; reader
specs; the virtual card's framing. What every reader does (one read per card, a re-tap within
the lock-out, garbage, pcscd going and coming back, stop, masked logs) is the reader contract's
(test_reader_contract.py); here is what is PC/SC's own.

pcscd looks for cards every 400 ms, so nothing here waits "long enough": a test waits for the
event it needs (a read on the queue, pcscd reporting the slot empty, the card having answered
N presence polls, a health counter) with a deadline. Each test starts from an empty slot 0:
the rig's teardown waits until pcscd has seen the card go, or the next adapter would find a
stale "present" that is no longer there.
"""

from __future__ import annotations

import logging
import queue
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from pcscd_fixture import pcscd_fixture
from reader_helpers import reader_threads

# No importorskip of pyscard: it is a dependency, and readers.adapters.pcsc_reader imports it, so
# without it this module fails to import, naming it, instead of skipping whole.
from firmware_stubs.vpcd_card import (
    GET_ATR,
    MIFARE_CLASSIC_1K_ATR,
    POWER_ON,
    MessageBuffer,
    VirtualCard,
    encode_message,
)
from protocol.errors import ConfigError, ReaderError
from readers.adapters.pcsc_reader import (
    PcscCardReader,
    ReaderState,
    choose_reader,
    list_readers,
    uid_from_response,
)
from readers.events import CardRead
from readers.spec import open_reader

# Sets PCSCLITE_CSOCK_NAME on import; tests/conftest.py imports it first of all, before any
# module here can make a PC/SC call.
from simulator.pcscd import PrivatePcscd

ALICE = bytes.fromhex("04A1B2C3D4E5F6")  # a 7-byte NXP UID
BOB = bytes.fromhex("5A6B7C8D")  # a 4-byte UID
CAROL = bytes.fromhex("1122334455667788AABB")  # a 10-byte UID
TAP_S = 1.0  # a tap is seen within one 400 ms poll; the rest is margin for a loaded machine
TIMEOUT = 3.0

pcscd = pcscd_fixture()


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@dataclass
class Rig:
    daemon: PrivatePcscd
    reader: PcscCardReader
    card: VirtualCard
    reads: queue.Queue[CardRead]

    def next_read(self, timeout: float = TIMEOUT) -> CardRead:
        return self.reads.get(timeout=timeout)

    def tap(self, uid: bytes) -> None:
        """Put a card on slot 0 (replacing one there, after pcscd has seen it go)."""
        if self.card.inserted:
            self.lift()
        self.card.insert(uid)

    def lift(self) -> None:
        self.card.remove()
        assert self.daemon.wait_for_card(present=False), "pcscd did not see the card go"
        # pcscd tells every client in turn: the adapter may not have heard it yet.
        assert wait_until(lambda: not self.reader.running
                          or self.reader.state != ReaderState.CARD), self.reader.state

    def no_read(self) -> bool:
        return self.reads.empty()


def make_rig(daemon: PrivatePcscd, reader: PcscCardReader) -> Rig:
    reads: queue.Queue[CardRead] = queue.Queue()
    reader.start(reads.put)
    # READY means the adapter holds a context and waits on the reader: taps from now are seen.
    assert wait_until(lambda: reader.state == ReaderState.READY), reader.state
    return Rig(daemon, reader, VirtualCard(daemon.slot_port(0)), reads)


@pytest.fixture
def rig(pcscd: PrivatePcscd) -> Iterator[Rig]:
    rig = make_rig(pcscd, PcscCardReader(reader_id="door", clock=time.perf_counter))
    try:
        yield rig
    finally:
        settle(rig)


def settle(rig: Rig) -> None:
    rig.reader.stop()
    rig.card.remove()
    if not rig.daemon.running:
        rig.daemon.start()
    assert rig.daemon.wait_for_card(present=False)


# -- the adapter on the real stack -------------------------------------------------------


@pytest.mark.integration
def test_tap_gives_the_uid_within_a_second(rig: Rig) -> None:
    rig.tap(ALICE)
    read = rig.next_read()
    assert read.number == "04A1B2C3D4E5F6"
    assert read.raw == ALICE
    assert read.reader_id == "door"
    assert rig.card.inserted_at is not None and read.at - rig.card.inserted_at < TAP_S
    assert rig.reader.state == ReaderState.CARD
    assert rig.reader.reader == rig.daemon.readers[0]
    assert (rig.reader.health.reads, rig.reader.health.bad_frames) == (1, 0)


@pytest.mark.integration
def test_held_card_is_read_once(rig: Rig) -> None:
    rig.tap(BOB)
    assert rig.next_read().number == "5A6B7C8D"
    logic = rig.card.logic
    assert logic is not None
    polls = logic.atr_requests
    # pcscd asks a present card for its ATR at every presence poll: three more polls is
    # three more chances to report the card again.
    assert rig.card.wait_for(lambda card: card.atr_requests >= polls + 3, timeout=TIMEOUT)
    assert rig.no_read()
    assert logic.apdus == [bytes.fromhex("FFCA000000")]  # asked for the UID exactly once
    assert rig.reader.health.reads == 1


@pytest.mark.integration
def test_unsupported_uid_read_is_a_bad_read_and_the_reader_carries_on(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="readers.adapters.pcsc_reader")
    rig.card.uid_status = bytes.fromhex("6A81")
    rig.tap(ALICE)
    assert wait_until(lambda: rig.reader.health.bad_frames == 1)
    assert rig.no_read()
    assert "does not support UID read (6A 81" in caplog.text
    error = rig.reader.last_error
    assert isinstance(error, ReaderError) and error.code == "uid_not_supported"

    rig.card.uid_status = bytes.fromhex("6300")
    rig.tap(BOB)
    assert wait_until(lambda: rig.reader.health.bad_frames == 2)
    assert "could not read the UID (63 00" in caplog.text

    rig.card.uid_status = None
    rig.tap(CAROL)
    assert rig.next_read().raw == CAROL
    assert rig.reader.running and rig.reader.last_error is None


@pytest.mark.integration
def test_silent_card_hangs_the_read_until_it_is_taken_away(rig: Rig) -> None:
    rig.card.silent = True
    rig.tap(ALICE)
    logic = rig.card.logic
    assert logic is not None
    assert rig.card.wait_for(lambda card: len(card.apdus) == 1, timeout=TIMEOUT)
    rig.lift()  # vpcd has no timeout: only taking the card away ends the transmit
    assert wait_until(lambda: rig.reader.health.bad_frames == 1)
    assert rig.reader.last_error is not None
    rig.card.silent = False
    rig.tap(BOB)
    assert rig.next_read().raw == BOB


@pytest.mark.integration
def test_card_already_on_the_reader_at_start_is_read_once(pcscd: PrivatePcscd) -> None:
    card = VirtualCard(pcscd.slot_port(0))
    card.insert(BOB)
    assert pcscd.wait_for_card(present=True)
    reader = PcscCardReader(reader_id="door")
    reads: queue.Queue[CardRead] = queue.Queue()
    reader.start(reads.put)
    rig = Rig(pcscd, reader, card, reads)
    try:
        assert rig.next_read().raw == BOB
        assert card.wait_for(lambda c: c.atr_requests >= 3, timeout=TIMEOUT)
        assert rig.no_read()
    finally:
        settle(rig)


@pytest.mark.integration
def test_reader_recovers_when_pcscd_is_killed_and_comes_back(rig: Rig) -> None:
    # pcscd stopped cleanly is the reader contract's unplug (test_reader_contract.py); here it
    # crashes (SIGKILL: no goodbye to its clients, which only see their next call fail).
    rig.tap(ALICE)
    assert rig.next_read().raw == ALICE

    rig.daemon.stop(kill=True)
    assert wait_until(lambda: rig.reader.state == ReaderState.NO_SERVICE)
    assert list_readers() == []  # no pcscd: an empty list, not an exception
    assert wait_until(lambda: rig.reader.health.reconnects >= 1)  # it keeps trying
    assert not rig.card.inserted  # vpcd went with pcscd: the card is off the reader

    rig.daemon.start()  # same socket path, same port: clients find it again
    assert wait_until(lambda: rig.reader.state == ReaderState.READY)
    rig.tap(BOB)
    read = rig.next_read()
    assert read.raw == BOB
    assert rig.reader.running
    assert rig.reader.health.reconnects >= 1


@pytest.mark.integration
def test_reader_recovers_when_its_reader_goes_and_comes_back(pcscd: PrivatePcscd) -> None:
    # vpcd's readers come from reader.conf and pcscd 1.9.9 keeps them on a rescan (SIGUSR1),
    # so "unplugging" the reader is pcscd coming back with another reader in its place.
    ours = pcscd.friendly_name
    rig = make_rig(pcscd, PcscCardReader(ours, reader_id="door"))
    try:
        pcscd.friendly_name = "Other PCD"
        pcscd.restart()
        assert wait_until(lambda: rig.reader.state == ReaderState.NO_READER)
        assert "Other PCD 00 00" in str(rig.reader.last_error)  # says what is there instead
        pcscd.friendly_name = ours
        pcscd.restart()
        assert wait_until(lambda: rig.reader.state == ReaderState.READY)
        rig.tap(CAROL)
        assert rig.next_read().raw == CAROL
        assert rig.reader.health.reconnects >= 1
    finally:
        pcscd.friendly_name = ours
        if not set(pcscd.readers) <= set(list_readers()):
            pcscd.restart()
        settle(rig)


@pytest.mark.integration
def test_reader_that_is_not_there_is_waited_for(pcscd: PrivatePcscd,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="readers.adapters.pcsc_reader")
    reader = PcscCardReader("ACR122U", reader_id="door")
    reader.start(lambda read: None)
    try:
        assert wait_until(lambda: reader.state == ReaderState.NO_READER)
        assert reader.last_error is not None and reader.last_error.code == "pcsc_no_reader"
        assert pcscd.readers[0] in str(reader.last_error)  # names what *is* there
        assert "no reader matching 'ACR122U'" in caplog.text
    finally:
        started = time.monotonic()
        reader.stop()
        assert time.monotonic() - started < 0.5  # stop cancels the wait; it does not sit it out
    assert reader_threads() == []


@pytest.mark.integration
def test_list_readers_names_the_vpcd_reader(pcscd: PrivatePcscd) -> None:
    assert list_readers() == pcscd.readers


@pytest.mark.integration
def test_pcsc_spec_opens_a_working_reader(pcscd: PrivatePcscd) -> None:
    reader = open_reader("pcsc:")
    assert isinstance(reader, PcscCardReader) and reader.reader_id == "pcsc:"
    rig = make_rig(pcscd, reader)
    try:
        rig.tap(ALICE)
        assert rig.next_read().raw == ALICE
    finally:
        settle(rig)
    # A name picks the reader by substring: slot 1 is the second reader, on port + 1.
    second = open_reader("pcsc:?reader=pcd 00 01&lockout=0&id=side")
    assert isinstance(second, PcscCardReader)
    rig = make_rig(pcscd, second)
    rig.card = VirtualCard(pcscd.slot_port(1))
    try:
        rig.card.insert(CAROL)
        read = rig.next_read()
        assert (read.raw, read.reader_id) == (CAROL, "side")
        assert second.reader == pcscd.readers[1]
    finally:
        second.stop()
        rig.card.remove()
        assert pcscd.wait_for_card(present=False, slot=1)


# -- reader specs --------------------------------------------------------------------------


def test_spec_forms() -> None:
    first = open_reader("pcsc:")
    assert isinstance(first, PcscCardReader) and first.reader_name is None
    named = open_reader("pcsc:ACS ACR122U", reader_id="front")
    assert isinstance(named, PcscCardReader)
    assert (named.reader_name, named.reader_id) == ("ACS ACR122U", "front")
    query = open_reader("pcsc:?reader=ACR122U&lockout=0.5&id=side")
    assert isinstance(query, PcscCardReader)
    assert (query.reader_name, query.reader_id) == ("ACR122U", "side")
    assert query._debouncer.window_s == 0.5


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("pcsc:ACR122U?reader=ACR122U", "twice"),
        ("pcsc:?reader=", "'reader' is empty"),
        ("pcsc:?lockout=-1", "'lockout'"),
        ("pcsc:?lockout=soon", "'lockout'"),
        ("pcsc:?baud=9600", "'baud'"),
        ("pcsc:?reader=a&reader=b", "twice"),
    ],
)
def test_bad_pcsc_spec_is_a_config_error_naming_the_part(spec: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        open_reader(spec)


def test_blank_reader_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="empty"):
        PcscCardReader("  ", reader_id="x")


def test_choose_reader() -> None:
    readers = ["ACS ACR122U PICC Interface 00 00", "Identiv uTrust 3700 F 01 00"]
    assert choose_reader(readers, None) == readers[0]
    assert choose_reader(readers, "utrust") == readers[1]
    assert choose_reader(readers, readers[1]) == readers[1]
    assert choose_reader(readers, "OMNIKEY") is None
    assert choose_reader([], None) is None


# -- status words --------------------------------------------------------------------------


def test_uid_from_a_good_response() -> None:
    assert uid_from_response(ALICE + b"\x90\x00") == ALICE


@pytest.mark.parametrize(
    ("response", "code", "says"),
    [
        ("6A81", "uid_not_supported", "does not support UID read"),
        ("6300", "uid_read_failed", "could not read the UID"),
        ("6D00", "uid_not_supported", "PC/SC part 3"),
        ("6E00", "uid_not_supported", "class FF"),
        ("6C07", "bad_response", "6C 07"),
        ("9000", "bad_response", "empty UID"),
        ("90", "bad_response", "not even a status word"),
        ("", "bad_response", "not even a status word"),
        ("04A1B2C36282", "bad_response", "62 82"),
        ("1234", "bad_response", "unexpected status word 12 34"),
    ],
)
def test_status_words_are_explained(response: str, code: str, says: str) -> None:
    with pytest.raises(ReaderError, match=says) as info:
        uid_from_response(bytes.fromhex(response))
    assert info.value.code == code
    assert "04A1B2C3" not in str(info.value)  # an error never carries the UID


# -- the virtual card's framing ----------------------------------------------------------


def test_message_buffer_whole_and_one_byte_at_a_time() -> None:
    stream = encode_message(b"\x04") + encode_message(bytes(300)) + encode_message(b"")
    assert MessageBuffer().feed(stream) == [b"\x04", bytes(300), b""]
    buffer = MessageBuffer()
    out: list[bytes] = []
    for i in range(len(stream)):
        out += buffer.feed(stream[i:i + 1])
    assert out == [b"\x04", bytes(300), b""] and buffer.pending == 0
    assert MessageBuffer().feed(b"\x00\x05abc") == []


def read_message(sock: socket.socket) -> bytes:
    head = sock.recv(2, socket.MSG_WAITALL)
    (size,) = struct.unpack(">H", head)
    return sock.recv(size, socket.MSG_WAITALL) if size else b""


def test_virtual_card_answers_vpcd_on_a_socketpair() -> None:
    ours, theirs = socket.socketpair()
    theirs.settimeout(TIMEOUT)
    card = VirtualCard()
    card.attach(ours, ALICE)
    try:
        theirs.sendall(encode_message(bytes([POWER_ON])))  # not answered
        theirs.sendall(encode_message(bytes([GET_ATR])))
        assert read_message(theirs) == MIFARE_CLASSIC_1K_ATR
        # An APDU cut into single bytes, then two in one write.
        for byte in encode_message(bytes.fromhex("FFCA000000")):
            theirs.sendall(bytes([byte]))
        assert read_message(theirs) == ALICE + b"\x90\x00"
        theirs.sendall(encode_message(bytes.fromhex("FFCA000004"))
                       + encode_message(bytes.fromhex("00A4040000")))
        assert read_message(theirs) == b"\x6c\x07"  # Le too short: "ask for 7"
        assert read_message(theirs) == b"\x6e\x00"  # no ISO applications on a Classic
        card.uid_status = bytes.fromhex("6A81")
        theirs.sendall(encode_message(bytes.fromhex("FFCA000000")))
        assert read_message(theirs) == b"\x6a\x81"
        logic = card.logic
        assert logic is not None and logic.powered and logic.atr_requests == 1
        assert len(logic.apdus) == 4
    finally:
        theirs.close()  # vpcd going away ends the card's thread
    assert wait_until(lambda: not card.inserted, timeout=TIMEOUT)
    card.remove()
