"""``mfd reader emulate``: the real CLI plays a reader of every serial family on a pty, and the
device's real serial reader (opened through readers.spec, as the device opens it) reports exactly
the card the technician typed. Bad input is one line and exit 2, never a traceback."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reader_helpers import reader_threads

from readers.adapters.serial_reader import SERIAL_FAMILIES
from readers.codecs.card_frames import EMULATED_FAMILIES, encode_card_frames
from readers.events import CardRead
from readers.numbers import wiegand
from readers.pty import PtyPort
from readers.spec import open_reader

REPO = Path(__file__).resolve().parents[1]

# One card per family, written as the device reports it (so "exactly that number" is literal),
# each long enough not to turn up by chance in a pty path or a masked hash.
CARDS = {
    "em4100": ("0012345678", None),
    "pcprox": ("98765432101", None),
    "twn4": ("4660123456789", None),
    "wiegand": ("2:10482", None),
}


def _mfd(*argv: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "mfdkit", *argv], cwd=REPO, env=env,
                            text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]


def _wait_for(predicate: object, timeout: float = 5.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def test_every_serial_family_the_device_reads_can_be_emulated() -> None:
    assert set(EMULATED_FAMILIES) == set(SERIAL_FAMILIES)
    assert set(CARDS) == set(SERIAL_FAMILIES)


@pytest.mark.integration
@pytest.mark.parametrize("family", sorted(SERIAL_FAMILIES))
def test_the_device_reader_reports_the_emulated_card(family: str) -> None:
    number, fmt = CARDS[family]
    argv = ["reader", "emulate", family, "--pty", "--card", number, "--repeat", "3",
            "--interval", "0.05", *(["--wiegand", fmt] if fmt else [])]
    proc = _mfd(*argv)
    assert proc.stdout and proc.stdin
    try:
        port_line = proc.stdout.readline()
        spec_line = proc.stdout.readline()
        assert port_line.startswith("port: /dev/"), port_line
        spec = spec_line.removeprefix("spec: ").strip()
        assert spec.startswith(f"serial:{port_line.split()[1]}?family={family}")
        reads: queue.Queue[CardRead] = queue.Queue()
        reader = open_reader(spec)  # the device's own path from a spec to a reader
        reader.start(reads.put)
        try:
            proc.stdin.write("\n")  # Enter: present the card (the reader is listening now)
            proc.stdin.flush()
            read = reads.get(timeout=5)
            assert read.number == number
            # The three frames of a held card are one read: the other two are suppressed.
            assert _wait_for(lambda: reader.health.suppressed == 2)
            assert reader.health.reads == 1 and reader.health.bad_frames == 0
            assert reads.empty()
        finally:
            reader.stop()
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "presented card card#" in out and "(3 frame(s))" in out
    assert number not in out + err + port_line + spec_line  # shown masked only
    assert not reader_threads()


class _LinkedPtys:
    """Two ptys joined back to back, as ``socat pty pty`` would: what is written on the slave
    of ``a`` comes out of the slave of ``b``. A USB-serial cable between two machines, here."""

    def __init__(self) -> None:
        self.a, self.b = PtyPort(), PtyPort()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            data = self.a.read(4096, timeout=0.02)
            if data:
                self.b.write(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.a.close()
        self.b.close()


@pytest.fixture
def linked() -> Iterator[_LinkedPtys]:
    pair = _LinkedPtys()
    yield pair
    pair.close()


@pytest.mark.integration
def test_port_mode_writes_a_held_card_and_exits(linked: _LinkedPtys) -> None:
    reads: queue.Queue[CardRead] = queue.Queue()
    reader = open_reader(f"serial:{linked.b.device}?family=wiegand&format=h10304&lockout=0")
    reader.start(reads.put)
    try:
        proc = _mfd("reader", "emulate", "wiegand", "--wiegand", "h10304", "--port",
                    linked.a.device, "--card", "40000:300000", "--repeat", "2",
                    "--interval", "0.05")
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert [reads.get(timeout=5).number for _ in range(2)] == ["40000:300000"] * 2
        assert "sent 2 frame(s)" in out and "300000" not in out + err
    finally:
        reader.stop()


# -- bad input: one line on stderr, exit 2 -----------------------------------------------


@pytest.mark.parametrize(("argv", "says"), [
    (["nosuch", "--port", "/dev/null", "--card", "1"],
     "unknown reader family 'nosuch'; known families: em4100, pcprox, twn4, wiegand"),
    (["em4100", "--port", "/dev/null", "--card", "4294967296"], "too big for em4100"),
    (["wiegand", "--port", "/dev/null", "--card", "256:1"], "too big for wiegand h10301"),
    (["wiegand", "--wiegand", "h10306", "--port", "/dev/null", "--card", "1:65536"],
     "too big for wiegand h10306"),
    (["twn4", "--port", "/dev/null", "--card", str(16 ** 32)], "too big for twn4"),
    (["pcprox", "--port", "/dev/null", "--card", "12ab"], "a pcprox card number is decimal"),
    (["em4100", "--port", "/dev/mfd-no-such-port", "--card", "1"],
     "cannot open port '/dev/mfd-no-such-port'"),
    (["em4100", "--wiegand", "h10301", "--port", "/dev/null", "--card", "1"],
     "carries no Wiegand bits"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], says: str) -> None:
    proc = _mfd("reader", "emulate", *argv)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert len(err.splitlines()) == 1, err
    assert says in err and "Traceback" not in err
    assert out == ""
    card = argv[argv.index("--card") + 1]
    if len(card) > 3:
        assert card not in err  # not even a wrong number is echoed


# -- the frames decode back through the family's codec -----------------------------------


def _wiegand_cards() -> st.SearchStrategy[tuple[str, str]]:
    def card_text(name: str) -> st.SearchStrategy[tuple[str, str]]:
        layout = wiegand.FORMATS[name]
        cards = st.integers(0, layout.max_card)
        if layout.facility is None:
            return cards.map(lambda c: (name, str(c)))
        return st.tuples(st.integers(0, layout.max_facility or 0), cards).map(
            lambda fc: (name, f"{fc[0]}:{fc[1]}"))

    return st.sampled_from(sorted(wiegand.FORMATS)).flatmap(card_text)


_CARDS: dict[str, st.SearchStrategy[tuple[str | None, str]]] = {
    "em4100": st.integers(0, 0xFFFF_FFFF).map(lambda n: (None, str(n))),
    "pcprox": st.integers(0, 10 ** 32 - 1).map(lambda n: (None, str(n))),
    "twn4": st.integers(0, 16 ** 32 - 1).map(lambda n: (None, str(n))),
    "wiegand": _wiegand_cards(),  # type: ignore[dict-item]
}


@given(st.sampled_from(sorted(SERIAL_FAMILIES)).flatmap(
    lambda f: _CARDS[f].map(lambda fc: (f, *fc))))
def test_emulated_frames_decode_to_the_number(case: tuple[str, str | None, str]) -> None:
    family, fmt, text = case
    card = encode_card_frames(family, text, wiegand_format=fmt)
    # The codec as the device builds it from a spec with the options the emulator names.
    decoder = SERIAL_FAMILIES[family].build(dict(card.spec_options))()
    events = list(decoder.feed(card.frame))
    assert len(events) == 1
    event = events[0]
    assert getattr(event, "number", None) == card.number
    if family == "em4100":
        assert card.number == text.zfill(10)
    elif family == "wiegand":
        assert card.number == text
    else:
        assert card.number == str(int(text))
