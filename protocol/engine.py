"""Types shared by the device app and print-engine firmware (real or emulated): engine states,
the job handed over, and the outcome callback. Pure data, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class EngineState(StrEnum):
    READY = "ready"
    PRINTING = "printing"
    JAM = "jam"
    NO_PAPER = "no_paper"
    DOOR_OPEN = "door_open"
    OFFLINE = "offline"

    @property
    def can_print(self) -> bool:
        return self in (EngineState.READY, EngineState.PRINTING)


ENGINE_REASONS = {
    EngineState.JAM: "Paper jam: clear the jam and try again.",
    EngineState.NO_PAPER: "Out of paper: load paper and try again.",
    EngineState.DOOR_OPEN: "A door is open: close it and try again.",
    EngineState.OFFLINE: "The printer is offline.",
}


@dataclass(frozen=True, slots=True)
class EngineJob:
    job_id: str
    name: str
    document: bytes = field(repr=False)
    sha256: str
    copies: int = 1


#: Engine outcome callback: (job_id, printed?, detail).
EngineDone = Callable[[str, bool, str], None]


