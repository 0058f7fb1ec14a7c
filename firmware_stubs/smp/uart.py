"""A UART's view of the line speed, for the emulated reader on a pty.

A pty has no baud rate of its own, but it keeps the termios a client sets, and on Linux the
terminal ioctls on the master act on the slave's settings: ``termios.tcgetattr(master)``
returns the speed pyserial set when the technician's tool opened the slave (checked in
tests/test_flash_baud.py). So the emulated reader knows the rate the client chose and, like a
real UART, hears nothing sensible when it is not its own.

What a real UART makes of a wrong rate is framing errors and wrong bytes, the same wrong bytes
for the same input. :func:`garble` stands in for that: a fixed permutation of the byte values
in which no byte of an SMP serial frame (its delimiters, base64) maps to itself or to a
delimiter, so no frame survives, the damage is the same every run, and a test can tell a wrong
rate from silence by the byte counts. The newline alone is kept: it stands for the idle line
between messages, which a UART at any rate sees, so the receiver drops each garbled line as
noise and is in step again as soon as the rate is right (a real one would resynchronise on
its next frame delimiter just the same).
"""

from __future__ import annotations

import termios
from typing import Final

__all__ = ["garble", "line_baud"]

_SPEEDS: Final = {getattr(termios, f"B{n}"): n for n in (
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000,
    921600, 1000000, 1152000, 1500000, 2000000) if hasattr(termios, f"B{n}")}

# x -> 159*x + 0xD4 mod 256: a permutation (159 is odd) that fixes the newline (and 0x8A) and
# sends no frame byte to itself or to a delimiter (tests/test_flash_baud.py checks both).
_TABLE: Final = bytes((159 * x + 0xD4) & 0xFF for x in range(256))


def line_baud(fd: int) -> int | None:
    """The output speed set on the terminal of ``fd`` (a pty master: its slave's), in bit/s;
    None when it cannot be read or is not a standard rate."""
    try:
        speed = termios.tcgetattr(fd)[5]
    except (termios.error, OSError, ValueError):
        return None
    return _SPEEDS.get(speed)


def garble(data: bytes) -> bytes:
    """``data`` as a UART at the wrong rate reads it (see the module note)."""
    return data.translate(_TABLE)
