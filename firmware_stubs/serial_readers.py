"""Emulated serial card-reader firmware on a pseudo-terminal, for tests and demos.

A pty is a real tty: pyserial opens the slave by its path exactly as it would open
``/dev/ttyUSB0``, sets termios, selects and reads, so the adapter under test runs its real
code path. The "firmware" writes the master side.

Two tty details matter and are handled here:

* **Raw mode on both ends.** In the default cooked mode the line discipline would swallow
  0x03 (ETX is ^C, the interrupt character), hold bytes until a newline and echo input back
  into the master, where nobody reads it and it would eventually block our writes.
* **The slave stays open for the PtyPort's lifetime.** What a pty does when nobody holds
  its slave open is up to the kernel's hang-up handling: reads on the master fail with EIO,
  and writes may fail or be dropped depending on kernel and OS. (On the Linux box this was
  written on, master writes with the slave closed were kept and delivered later, but that
  is not something to build a test on.) Holding our own slave fd keeps the line "up"
  whether or not pyserial has it open -- before start(), and while the adapter closes and
  reopens the port -- and keeps the raw mode set below in force. We never read that fd, so
  it takes nothing away from pyserial. Note that pyserial flushes the input queue when it
  opens a port, so, just as with a real reader, bytes written before the adapter's
  ``start()`` are lost; tests present cards after ``start()``.

Closing the PtyPort is pulling the reader's USB plug: the slave path disappears, reads on
the adapter's side fail, and reopening the path fails. Beware that the kernel reuses pty
numbers: the next ``os.openpty()`` may get the same path, so stop an adapter that is
retrying a closed PtyPort before creating another one, or it will reconnect to the new one.

The reader firmwares emulated here:

* :class:`Em4100Stub` -- an RDM6300: no commands, a frame per read, repeated while held.
* :class:`PcProxStub` -- an RF IDeas pcProx on a serial line: card lines in its configured
  layout, and a thread that reads the host's side of the pty and answers the command subset
  of :mod:`readers.ascii_reader` (queries and assignments of ``chr.*``, ``disp.*``,
  ``time.lo``), so a host can reconfigure it live. Its lock-out (``time.lo``) works like the
  real one: a card is read again only after it has been *away* for the lock-out; a
  different card is read at once.
* :class:`Twn4Stub` -- an Elatec TWN4 with its standard firmware behaviour: the same tag is
  ignored for 2 s after it was read (a held tag is read again every 2 s), a different tag is
  read at once.
* :class:`WiegandSerialStub` -- a Wiegand-to-serial bridge emitting ``W<bits>:<hex>`` lines
  (:mod:`readers.wiegand_serial`), optionally with a wrong parity bit.

The lock-outs run on an injectable clock, so tests hold a card "for 3 s" without waiting.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from types import TracebackType

from readers.ascii_reader import (
    ACP_PROMPT,
    ACP_TICK_S,
    AcpAssign,
    AcpError,
    AcpErrorCode,
    AcpValue,
    AsciiFormat,
    encode_line,
    encode_reply,
    format_to_acp,
    format_value,
    parse_command,
)
from readers.em4100 import encode_frame
from readers.wiegand_serial import encode_card
from readers.wiegand_serial import encode_frame as encode_wiegand_frame

__all__ = ["Em4100Stub", "PcProxStub", "PtyPort", "Twn4Stub", "WiegandSerialStub"]

Clock = Callable[[], float]


class PtyPort:
    """A pseudo-terminal pair: ``device`` is the path to hand to pyserial."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.device: str = os.ttyname(self._slave)
        self._closed = False
        # Firmware threads write replies while a test writes card frames: one write at a
        # time, so a line is never interleaved with another.
        self._write_lock = threading.Lock()
        # Called (and so finished) before the fds close: a firmware thread must not be left
        # selecting on a closed fd number that the next openpty() may reuse.
        self._on_close: list[Callable[[], None]] = []

    def __enter__(self) -> PtyPort:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"PtyPort({self.device!r}, {state})"

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        """The master fd (the reader's side), for select()."""
        return self._master

    def write(self, data: bytes) -> None:
        """Send bytes as the reader would (blocking until the kernel takes them all)."""
        with self._write_lock:
            if self._closed:
                raise ValueError(f"{self!r}: write after close")
            view = memoryview(data)
            while view:
                written = os.write(self._master, view)
                view = view[written:]

    def read(self, max_bytes: int = 4096, timeout: float | None = None) -> bytes:
        """What the host wrote to the reader, up to ``max_bytes``; ``b""`` if nothing came
        within ``timeout`` seconds (``None``: wait), or if the port is closed."""
        if self._closed:
            return b""
        try:
            ready, _, _ = select.select([self._master], [], [], timeout)
            return os.read(self._master, max_bytes) if ready else b""
        except (OSError, ValueError):
            return b""  # closed under us, or the line hung up: nothing to read

    def close(self) -> None:
        """Unplug: close both ends. Idempotent."""
        if self._closed:
            return
        for hook in self._on_close:
            hook()
        self._closed = True
        # Not under the write lock: a write blocked on a full pty must not block the unplug.
        os.close(self._slave)
        os.close(self._master)


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
    :func:`readers.ascii_reader.encode_line`, as the firmware would: that keeps tests of the
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
