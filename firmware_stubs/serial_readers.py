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
"""

from __future__ import annotations

import os
import time
import tty
from types import TracebackType

from readers.em4100 import encode_frame

__all__ = ["Em4100Stub", "PtyPort"]


class PtyPort:
    """A pseudo-terminal pair: ``device`` is the path to hand to pyserial."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.device: str = os.ttyname(self._slave)
        self._closed = False

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

    def write(self, data: bytes) -> None:
        """Send bytes as the reader would (blocking until the kernel takes them all)."""
        if self._closed:
            raise ValueError(f"{self!r}: write after close")
        view = memoryview(data)
        while view:
            written = os.write(self._master, view)
            view = view[written:]

    def close(self) -> None:
        """Unplug: close both ends. Idempotent."""
        if self._closed:
            return
        self._closed = True
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
