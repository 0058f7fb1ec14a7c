"""Start-up reconciliation: what a previous run left unfinished, settled from the engine's word.

A journal row the cloud has not acknowledged is one of three things. Before HANDED, the job was
never given to the engine: it failed, and goes back to HELD. HANDED, it may have printed: the
engine is asked (its ``outcome``) and nothing is guessed: printed -> ``jobs.printed``; failed, or
unknown (the engine never got it, and now never will: it fences the id) -> ``jobs.failed``;
still printing -> waited for a while, then left to the printer thread, which reports it when the
engine is done; an engine that does not answer -> asked again until it does. PRINTED or FAILED
already, only the report is missing: it is sent again with the journaled request id, so the
cloud gives its stored answer instead of acting twice.

These reports go straight to the cloud through the link (the caller's ``tell_now``): the session
machine tracks only releases of its own session. The printer (release.py) runs this at start-up
and for rows left HANDED later on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from device_app.ports import PrintEngine
from device_app.printing.journal import Journal, JournalEntry, JournalState
from protocol.engine import EngineOutcome
from protocol.errors import EngineError


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What start-up reconciliation did with one journal row."""

    release_id: str
    job_id: str
    #: "printed" / "failed" (reported), "printing" (the engine still has it: reported when it
    #: finishes), "pending" (engine or cloud not reachable: tried again)
    outcome: str
    #: The cloud answered the report (the job is PRINTED, or back to HELD).
    told: bool
    line: str

    def __str__(self) -> str:
        return self.line


def ask_outcome(engine: PrintEngine, eid: str) -> EngineOutcome:
    """What the engine did with hand-over ``eid``; EngineError if it cannot say."""
    # Every engine adapter here answers ``outcome`` (the PrintEngine port asks for it); one
    # that does not cannot say what it printed, so its hand-overs stay pending, never
    # guessed at.
    ask = getattr(engine, "outcome", None)
    if ask is None:
        raise EngineError("this print engine cannot say what it printed",
                          code="engine_no_outcome")
    outcome: EngineOutcome = ask(eid)
    return outcome


def settle(journal: Journal, entry: JournalEntry, outcome: EngineOutcome) -> JournalEntry:
    """Journal the engine's final word on a HANDED row (not PRINTING: ask again then)."""
    key = entry.key
    if outcome is EngineOutcome.PRINTED:
        return journal.printed(*key)
    if outcome is EngineOutcome.UNKNOWN:
        return journal.failed(*key, "the engine never received the job; not printed")
    return journal.failed(*key, "the engine failed the job before output")


def reconcile_row(entry: JournalEntry, deadline: float, *, journal: Journal,
                  engine: PrintEngine, clock: Callable[[], float], settle_interval: float,
                  tell_now: Callable[[JournalEntry], tuple[bool, str]]) -> Reconciled:
    """Settle one unacknowledged row and report it (``tell_now``: blocking, (acknowledged?,
    what the cloud said)). A row whose outcome is "printing" or "pending" is the caller's to
    ask about again."""
    key = entry.key
    if entry.state in (JournalState.RECEIVED, JournalState.FETCHED):
        entry = journal.failed(*key, "the device restarted before handing the job to the "
                                     "engine; not printed")
    elif entry.state is JournalState.HANDED:
        try:
            outcome = ask_outcome(engine, entry.engine_id)
            while outcome is EngineOutcome.PRINTING and clock() < deadline:
                time.sleep(settle_interval)
                outcome = ask_outcome(engine, entry.engine_id)
        except EngineError as exc:
            return Reconciled(*key, "pending", False,
                              f"{_name(entry)}: engine not answering ({exc.message}); "
                              "asked again until it does")
        if outcome is EngineOutcome.PRINTING:
            return Reconciled(*key, "printing", False,
                              f"{_name(entry)}: still printing; reported when done")
        entry = settle(journal, entry, outcome)
    told, said = tell_now(entry)
    word = "printed" if entry.result == "printed" else "failed"
    return Reconciled(*key, word, told, f"{_name(entry)}: {word}; cloud {said}")


def _name(entry: JournalEntry) -> str:
    return f"job {entry.job_id} ({entry.name}) of {entry.release_id}"
