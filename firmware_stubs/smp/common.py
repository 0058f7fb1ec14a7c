"""What the emulated SMP devices (the reader on a pty, the panel on UDP) share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class PoweredDevice(ABC):
    """A device that is powered off when its ``with`` block ends, however it ends: a test or a
    rehearsal that fails half-way must not leave a thread serving a port behind."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None:
        """Power off: stop serving and release what the device holds. Idempotent."""
