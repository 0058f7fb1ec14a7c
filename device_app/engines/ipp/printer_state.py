"""How a printer's state becomes the engine's: printer-state and printer-state-reasons map to
:class:`~protocol.engine.EngineState` through the tables below (:func:`engine_state`).

A reason counts when its severity suffix is ``-error`` or absent (RFC 8011 5.4.12: no suffix
means error), or, when the printer is stopped, whatever its suffix: a ``-report`` is history
(ippeveprinter leaves ``media-jam-report`` behind after a job), a ``-warning`` does not stop
printing. Reasons we do not know are returned, for the engine to log once each.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from device_app.engines.ipp.model import PrinterState
from protocol.engine import EngineState

__all__ = ["INFORMATIONAL_REASONS", "REASON_STATES", "STATE_PRIORITY", "engine_state",
           "split_reason"]

#: printer-state-reasons keywords (severity suffix removed) that decide the engine state.
REASON_STATES: Final[dict[str, EngineState]] = {
    "media-jam": EngineState.JAM,
    "media-empty": EngineState.NO_PAPER,
    "media-needed": EngineState.NO_PAPER,
    "door-open": EngineState.DOOR_OPEN,
    "cover-open": EngineState.DOOR_OPEN,
    "interlock-open": EngineState.DOOR_OPEN,
    "offline": EngineState.OFFLINE,
    "shutdown": EngineState.OFFLINE,
    "paused": EngineState.OFFLINE,
    "moving-to-paused": EngineState.OFFLINE,
    "timed-out": EngineState.OFFLINE,
    "connecting-to-device": EngineState.OFFLINE,
}

#: When several reasons apply, the one a person at the copier must act on first wins: a jam
#: usually needs a door opened, and "load paper" is pointless while either is there.
STATE_PRIORITY: Final = (EngineState.JAM, EngineState.DOOR_OPEN, EngineState.NO_PAPER,
                         EngineState.OFFLINE)

#: Reasons we know and deliberately ignore (supplies running low, informational), so that they
#: are not logged as unknown.
INFORMATIONAL_REASONS: Final = frozenset({
    "none", "other", "media-low", "toner-low", "marker-supply-low", "marker-waste-almost-full",
    "developer-low", "opc-near-eol", "fuser-near-eol", "printer-restarted",
    "identify-printer-requested", "deactivated", "spool-area-full",
})

_SEVERITIES: Final = ("-error", "-warning", "-report")

_PRINTER_STATES: Final[dict[int, EngineState]] = {
    PrinterState.IDLE: EngineState.READY,
    PrinterState.PROCESSING: EngineState.PRINTING,
    PrinterState.STOPPED: EngineState.OFFLINE,
}


def split_reason(reason: str) -> tuple[str, str]:
    """``media-jam-error`` → (``media-jam``, ``error``); no suffix → (reason, ``error``)."""
    for suffix in _SEVERITIES:
        if reason.endswith(suffix):
            return reason[: -len(suffix)], suffix[1:]
    return reason, "error"


def engine_state(printer_state: int | None, reasons: Iterable[str],
                 accepting: bool | None = True) -> tuple[EngineState, tuple[str, ...]]:
    """The engine state for a printer's state attributes, and the reasons we do not know."""
    stopped = printer_state == PrinterState.STOPPED
    found: set[EngineState] = set()
    unknown: list[str] = []
    for reason in reasons:
        keyword, severity = split_reason(reason)
        state = REASON_STATES.get(keyword)
        if state is None:
            if keyword not in INFORMATIONAL_REASONS:
                unknown.append(reason)
        elif severity == "error" or stopped:
            found.add(state)
    for state in STATE_PRIORITY:
        if state in found:
            return state, tuple(unknown)
    if accepting is False:
        return EngineState.OFFLINE, tuple(unknown)
    if printer_state is None:
        return EngineState.OFFLINE, tuple(unknown)
    return _PRINTER_STATES.get(printer_state, EngineState.OFFLINE), tuple(unknown)
