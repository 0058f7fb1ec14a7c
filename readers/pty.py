"""A pseudo-terminal standing in for a serial reader's port: the wire of a replayed recording
(:mod:`readers.record.replay`) and of the emulated reader firmwares (:mod:`firmware_stubs`).

It lives with the readers, not with the emulated hardware, because a replay is production code:
``mfd reader watch replay:FILE`` plays a recording through the live serial path, and production
must not import emulated hardware.

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
import select
import threading
import tty
from collections.abc import Callable
from types import TracebackType

__all__ = ["PtyPort"]


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
