"""Emulated serial card-reader firmware on a pseudo-terminal, for tests and demos.

Each firmware writes the master side of a :class:`readers.pty.PtyPort` (which explains the tty
details); the adapter under test opens the slave by its path, as it would ``/dev/ttyUSB0``.

The reader firmwares emulated here:

* :class:`Em4100Stub` -- an RDM6300: no commands, a frame per read, repeated while held.
* :class:`PcProxStub` -- an RF IDeas pcProx on a serial line: card lines in its configured
  layout, and a thread that reads the host's side of the pty and answers the command subset
  of :mod:`readers.codecs.pcprox` (queries and assignments of ``chr.*``, ``disp.*``,
  ``time.lo``), so a host can reconfigure it live. Its lock-out (``time.lo``) works like the
  real one: a card is read again only after it has been *away* for the lock-out; a
  different card is read at once.
* :class:`Twn4Stub` -- an Elatec TWN4 with its standard firmware behaviour: the same tag is
  ignored for 2 s after it was read (a held tag is read again every 2 s), a different tag is
  read at once.
* :class:`WiegandSerialStub` -- a Wiegand-to-serial bridge emitting ``W<bits>:<hex>`` lines
  (:mod:`readers.wiegand_serial`), optionally with a wrong parity bit.
* :class:`EmulatedReader` -- any serial family with its default layout, on a pty *or a real
  serial port* (:func:`open_serial_line`): what ``mfd reader emulate`` drives, so a technician
  can test a copier's reader input without a badge. Its frames come from
  :mod:`readers.codecs.card_frames`.

The lock-outs run on an injectable clock, so tests hold a card "for 3 s" without waiting.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

import serial

from readers.codecs.ascii import (
    AsciiFormat,
    encode_line,
)
from readers.codecs.card_frames import CardFrames
from readers.codecs.em4100 import encode_frame
from readers.codecs.pcprox import (
    ACP_PROMPT,
    ACP_TICK_S,
    AcpAssign,
    AcpError,
    AcpErrorCode,
    AcpValue,
    encode_reply,
    format_to_acp,
    format_value,
    parse_command,
)
from readers.codecs.wiegand_serial import encode_card
from readers.codecs.wiegand_serial import encode_frame as encode_wiegand_frame
from readers.pty import PtyPort

__all__ = [
    "Em4100Stub",
    "EmulatedReader",
    "LineWriter",
    "PcProxStub",
    "SerialLine",
    "Twn4Stub",
    "WiegandSerialStub",
    "open_serial_line",
]

Clock = Callable[[], float]


class Em4100Stub:
    """An RDM6300: no commands, one frame per read, frames repeated while a card is held."""

    def __init__(self, port: PtyPort) -> None:
        self.port = port

    def present(self, tag: int, version: int = 0x0A) -> bytes:
        """One read of ``tag``; returns the frame written."""
        frame = encode_frame(version, tag)
        self.port.write(frame)
        return frame

    def hold(self, tag: int, times: int, interval_s: float, version: int = 0x0A) -> bytes:
        """``times`` reads of a card left on the reader, ``interval_s`` apart; returns the
        frame (the same for every read)."""
        frame = encode_frame(version, tag)
        for i in range(times):
            if i:
                time.sleep(interval_s)
            self.port.write(frame)
        return frame

    def noise(self, data: bytes) -> None:
        """Line noise, a glitch at power-up, a frame cut short: whatever bytes are given."""
        self.port.write(data)


class PcProxStub:
    """An RF IDeas pcProx on a serial line, with its command protocol (the subset).

    ``fmt`` is the layout it starts with, ``lockout_ticks`` its ``time.lo`` (48 ms ticks).
    ``prompt=True`` behaves like the real firmware's console: it echoes each command and
    prints the ``RF IDeas>`` prompt after each reply. A thread reads the host's commands from
    the pty until :meth:`close` (or the PtyPort's close). :attr:`commands` lists the command
    lines received, in order.

    The card lines are rendered here from the variables, independently of
    :func:`readers.codecs.ascii.encode_line`, as the firmware would: that keeps tests of the
    host's decoder against this stub from checking the codec against itself.
    """

    def __init__(self, port: PtyPort, fmt: AsciiFormat | None = None, *,
                 lockout_ticks: int = 24, clock: Clock = time.monotonic,
                 prompt: bool = False) -> None:
        self.port = port
        self.variables: dict[str, AcpValue] = format_to_acp(fmt or AsciiFormat(),
                                                            lockout_ticks=lockout_ticks)
        self.commands: list[bytes] = []
        self.prompt = prompt
        self._clock = clock
        self._last_seen: dict[tuple[int, int], float] = {}
        self._state = threading.Lock()  # variables: changed by the thread, read by present()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="pcprox-stub", daemon=True)
        port._on_close.append(self.close)
        self._thread.start()

    def __enter__(self) -> PcProxStub:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def lockout_s(self) -> float:
        ticks = self.variables["time.lo"]
        assert isinstance(ticks, int)
        return ticks * ACP_TICK_S

    def present(self, card: int, facility: int = 0) -> bytes | None:
        """The card is in the field now. Returns the line sent, or ``None`` when the lock-out
        swallows it (the same card seen less than ``time.lo`` ago)."""
        key = (facility, card)
        with self._state:
            now = self._clock()
            last = self._last_seen.get(key)
            self._last_seen[key] = now  # every sighting restarts the card's lock-out
            if last is not None and now - last < self.lockout_s:
                return None
            line = self._render(card, facility)
            self.port.write(line)  # under _state: a reply cannot change the layout mid-line
        return line

    def noise(self, data: bytes) -> None:
        self.port.write(data)

    def close(self) -> None:
        """Stop answering commands. Idempotent."""
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def _render(self, card: int, facility: int) -> bytes:
        v = self.variables
        lead, trail = v["chr.count.lead"], v["chr.count.trail"]
        assert isinstance(lead, int) and isinstance(trail, int)
        chars = b"".join(_char(v[f"chr.{i}"]) for i in (1, 2, 3))
        spec = "X" if v["disp.id.hex"] else "d"
        digits = format(card, spec)
        width = v["disp.id.digits"]
        assert isinstance(width, int)
        # Assumed, not documented by RF IDeas: a fixed-width field keeps the low digits.
        digits = digits.zfill(width)[-width:] if width else digits
        fac = b""
        if v["disp.fac.send"]:
            fac = format(facility, spec).encode("ascii") + _char(v["chr.fac"])
        return (chars[:lead] + fac + digits.encode("ascii") + chars[lead:lead + trail]
                + _char(v["chr.eol"]))

    def _serve(self) -> None:
        pending = b""
        while not self._stopping.is_set():
            data = self.port.read(4096, timeout=0.02)
            if not data:
                if self.port.closed:
                    return
                continue
            pending += data
            # The real reader takes CR or LF as the end of a command; CR LF is one end.
            while True:
                cut = min((i for i in (pending.find(b"\r"), pending.find(b"\n")) if i >= 0),
                          default=-1)
                if cut < 0:
                    break
                line, pending = pending[:cut], pending[cut + 1:]
                if line.strip():
                    self._answer(line)
            if len(pending) > 256:  # an input buffer overflow on the real thing: drop it
                pending = b""

    def _answer(self, line: bytes) -> None:
        self.commands.append(line)
        with self._state:
            try:
                command = parse_command(line)
                if isinstance(command, AcpAssign):
                    self._assign(command)
                text = format_value(command.name, self.variables[command.name])
                reply = encode_reply(text)
            except AcpError as exc:
                reply = encode_reply(exc.acp_code)
            if self.prompt:
                reply = line + b"\r\n" + reply + ACP_PROMPT
            with contextlib.suppress(OSError, ValueError):
                self.port.write(reply)

    def _assign(self, command: AcpAssign) -> None:
        new = {**self.variables, command.name: command.value}
        lead, trail = new["chr.count.lead"], new["chr.count.trail"]
        assert isinstance(lead, int) and isinstance(trail, int)
        # Settings the emulated firmware refuses: more delimiters than it has, or a line end
        # this subset does not do.
        if lead + trail > 3 or new["chr.eol"] not in (b"\r", b"\n"):
            raise AcpError(AcpErrorCode.VALUE, f"{command.name} refused")
        self.variables = new


def _char(value: AcpValue) -> bytes:
    assert isinstance(value, bytes)
    return value


class Twn4Stub:
    """An Elatec TWN4 (standard firmware) printing tag numbers as ASCII lines.

    ``fmt`` is its output layout (default: hex, CR, as TWN4's default ``SimpleProto`` output
    is hex). The firmware ignores the tag it read last for ``repeat_s`` (2 s) and reads any
    other tag at once; unlike pcProx, a held tag is read again every ``repeat_s``.
    """

    def __init__(self, port: PtyPort, fmt: AsciiFormat | None = None, *,
                 repeat_s: float = 2.0, clock: Clock = time.monotonic) -> None:
        self.port = port
        self.format = fmt or AsciiFormat(base=16)
        self.repeat_s = repeat_s
        self._clock = clock
        self._last: tuple[int, float] | None = None

    def present(self, tag: int) -> bytes | None:
        """The tag is in the field now; the line sent, or ``None`` if the firmware ignores it."""
        now = self._clock()
        if self._last is not None and self._last[0] == tag and now - self._last[1] < self.repeat_s:
            return None
        self._last = (tag, now)
        line = encode_line(self.format, tag)
        self.port.write(line)
        return line

    def noise(self, data: bytes) -> None:
        self.port.write(data)


class WiegandSerialStub:
    """A Wiegand-to-serial bridge: one ``W<bits>:<hex>`` line per card read."""

    def __init__(self, port: PtyPort, fmt: str = "h10301") -> None:
        self.port = port
        self.format = fmt

    def present(self, facility: int | None, card: int, *, fmt: str | None = None,
                bad_parity: bool = False) -> bytes:
        """One read; ``bad_parity`` flips a parity bit (a misread). Returns the line sent."""
        line = encode_card(fmt or self.format, facility, card, bad_parity=bad_parity)
        self.port.write(line)
        return line

    def frame(self, bit_count: int, bits: int) -> bytes:
        """Any frame, e.g. a length no format has; returns the line sent."""
        line = encode_wiegand_frame(bit_count, bits)
        self.port.write(line)
        return line

    def noise(self, data: bytes) -> None:
        self.port.write(data)


class LineWriter(Protocol):
    """The reader's end of a line: a :class:`PtyPort` or a :class:`SerialLine`."""

    def write(self, data: bytes) -> None: ...


class SerialLine:
    """The reader's end of a real serial port (a USB-serial cable to the copier, or one end of
    a linked pty pair): opened with pyserial at the reader's baud rate, written whole."""

    def __init__(self, port: Any) -> None:
        self._port = port
        self.device: str = str(port.port)

    def write(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()  # a frame must be on the wire before the next one is timed

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()


def open_serial_line(device: str, baud: int = 9600) -> SerialLine:
    """Open ``device`` (``/dev/ttyUSB0``, a pty path) as a reader would drive it.

    Raises ``OSError`` (pyserial's ``SerialException`` is one) if it cannot be opened, and
    ``ValueError`` for a baud rate the driver refuses; the caller says what to check.
    """
    # No read timeout is needed: the emulated reader only writes. write_timeout bounds a write
    # to a port whose other end never drains (flow control held off), so Ctrl-C still works.
    return SerialLine(serial.serial_for_url(device, baudrate=baud, write_timeout=5))


class EmulatedReader:
    """A reader of any serial family presenting one card: :meth:`present` writes the family's
    frame ``repeat`` times, ``interval_s`` apart, as a real reader does while the card is held
    (the host's lock-out turns those repeats into one read).

    ``sleep`` waits between frames (``stopping.wait`` in the CLI, so Ctrl-C or a signal ends a
    long hold at once); it returns True to stop early.
    """

    def __init__(self, line: LineWriter, card: CardFrames) -> None:
        self.line = line
        self.card = card

    def present(self, repeat: int = 1, interval_s: float = 0.5, *,
                sleep: Callable[[float], bool] | None = None) -> int:
        """Send the card; returns the number of frames written."""
        wait = sleep or _sleep
        sent = 0
        for i in range(repeat):
            if i and wait(interval_s):
                break
            self.line.write(self.card.frame)
            sent += 1
        return sent


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False
