"""libosdp's byte channel on a pyserial port, and who answered on it (the OSDP adapter's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import serial

__all__ = ["SerialChannel"]

_SOM = 0x53  # OSDP's start of message; a reply header is SOM, then address | 0x80


class SerialChannel:
    """libosdp's channel (``read``/``write``/``flush``) on a pyserial port.

    libosdp calls these inside ``refresh()`` and cannot take a Python exception (it would be
    left pending and break the next call), so nothing here raises: a port error marks the
    port lost (``lost`` holds the error) for the reader thread to deal with after
    ``refresh()`` returns. It also notes reply headers from our address (``replies``,
    ``last_reply_at``): the only way to tell "the reader answers" from "nobody is there".
    """

    def __init__(self, port: Any, address: int, clock: Callable[[], float]) -> None:
        self.port: Any = port
        self.lost: Exception | None = None
        self.replies = 0
        self.last_reply_at = clock()
        self._clock = clock
        self._header = bytes([_SOM, address | 0x80])
        self._carry = b""  # the last byte read, in case a header straddles two reads

    def attach(self, port: Any) -> None:
        self.port, self.lost, self._carry = port, None, b""

    def read(self, max_bytes: int) -> bytes:
        if self.port is None or self.lost is not None:
            return b""
        try:
            data: bytes = self.port.read(min(max_bytes, self.port.in_waiting))
        except Exception as exc:  # nothing may escape into libosdp; see the class docstring
            self.lost = exc
            return b""
        if data:
            seen = self._carry + data
            count = seen.count(self._header)
            if count:
                self.replies += count
                self.last_reply_at = self._clock()
            self._carry = seen[-1:]
        return data

    def write(self, buf: bytes) -> int:
        if self.port is None or self.lost is not None:
            return -1
        try:
            written: int | None = self.port.write(buf)
        except serial.SerialTimeoutException:
            return -1  # the line is stuck for now; libosdp retries the command
        except Exception as exc:
            self.lost = exc
            return -1
        return len(buf) if written is None else written

    def flush(self) -> None:
        # libosdp flushes after a framing error: whatever half-packet is queued is garbage.
        if self.port is not None and self.lost is None:
            try:
                self.port.reset_input_buffer()
            except Exception as exc:  # termios.error, for one, is not an OSError
                self.lost = exc
        self._carry = b""
