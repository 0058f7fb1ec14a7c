"""What the adapters on a serial port (serial readers, OSDP on RS-485) share about pyserial."""

from __future__ import annotations

import contextlib
from typing import Any

import serial

__all__ = ["PORT_ERRORS", "close_quietly"]

#: Errors that mean "the port is not usable": pyserial's SerialException is an OSError, but
#: ValueError is what it raises for settings the driver rejects (e.g. a baud rate).
PORT_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError, ValueError)


def close_quietly(port: Any) -> None:
    """Close ``port``; one that has already vanished raises, and has nothing left to release."""
    with contextlib.suppress(*PORT_ERRORS):
        port.close()
