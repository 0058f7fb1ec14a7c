"""Ports of the device app: what it needs from the cloud and the print engine.

Adapters implement these: the cloud link (device_app/link.py); the print engines
(device_app/engines/: IPP, the engine socket; engines/registry.py opens the one the config
names) and the emulated controller (firmware_stubs/mfd_controller.py). This module imports none
of them; the simulator plugs in the same ones the copier uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from protocol import messages as m
from protocol.engine import ENGINE_REASONS, EngineDone, EngineJob, EngineOutcome, EngineState
from protocol.errors import MfdError

#: Called once per request with the result, or the error (RemoteError / LinkError / ...).
Reply = Callable[[m.Result | MfdError], None]

#: Engine progress callback: (engine id, impressions done so far, all copies counted).
EnginePages = Callable[[str, int], None]


class CloudLink(Protocol):
    connected: bool
    #: Called (on any thread) with True/False when the link comes up or goes down.
    on_connection: Callable[[bool], None] | None

    def request(self, request: m.Request, reply: Reply, timeout: float | None = None) -> None:
        """Send ``request``; ``reply`` is called exactly once, possibly on another thread."""

    def call(self, request: m.Request, timeout: float | None = None) -> m.Result:
        """Blocking form for worker threads (never the UI loop); raises the error."""

    def close(self) -> None: ...


class PrintEngine(Protocol):
    def state(self) -> EngineState: ...

    def submit(self, job: EngineJob, done: EngineDone) -> None:
        """Hand a job over (named ``job.engine_id``). Raises EngineError only if the engine
        certainly does not have it; otherwise ``done`` is called exactly once: printed, or
        failed before output."""

    def outcome(self, engine_id: str) -> EngineOutcome:
        """PRINTED, FAILED (before output), PRINTING (ask again) or UNKNOWN -- and then that
        id is refused if it arrives later. EngineError if the engine cannot be asked. Used to
        reconcile the device's journal after a crash."""


@runtime_checkable
class ReportsPages(Protocol):
    """An engine that says how far it is with a job, beside :class:`PrintEngine` (an engine
    without it is still a PrintEngine: the panel then shows a job printing, then printed).

    Whoever drives the engine sets ``on_pages``; the engine calls it on its own thread with a
    job's engine id and the impressions (sides of sheets) done so far, all copies counted, each
    time that count grows, and only before the job's ``done``. A count may be skipped (an engine
    that is asked rather than told sees what it sees), never reported lower."""

    on_pages: EnginePages | None


__all__ = ["ENGINE_REASONS", "CloudLink", "EngineDone", "EngineJob", "EngineOutcome",
           "EnginePages", "EngineState", "PrintEngine", "Reply", "ReportsPages"]
