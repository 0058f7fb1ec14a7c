"""The recorder's rules (pure): what a person did becomes steps, each followed by a wait for
the state it led to, with a timeout only when getting there took simulated time."""

from __future__ import annotations

from simulator.scenarios.interactive import interactive_scenario
from simulator.scenarios.model import Expect, Fault, FaultKind, Press, Tap, Type, Wait
from simulator.scenarios.record import StepRecorder

DEV = "copier-1"


def test_actions_become_steps_with_waits_for_where_they_led() -> None:
    rec = StepRecorder(interactive_scenario(), DEV)
    rec.state_seen("idle", 0.0)  # nothing done yet: nothing to wait for
    rec.action(Tap("alice", DEV, "front"), 1.0, "idle")
    for state, t in (("identifying", 1.01), ("loading", 1.02), ("jobs", 1.05)):
        rec.state_seen(state, t)
    rec.action(Press("select", DEV, "Boarding pass"), 3.0, "jobs")
    rec.state_seen("jobs", 3.02)  # nothing changed: no wait
    rec.action(Fault(FaultKind.JAM, DEV, "front"), 4.0, "jobs")
    # Left alone: the idle timeout ends the session 60 s later.
    rec.state_seen("idle", 64.0)
    steps = rec.scenario().steps
    assert steps == (Tap("alice", DEV, "front"), Wait("jobs", 0.0, DEV),
                     Press("select", DEV, "Boarding pass"),
                     Fault(FaultKind.JAM, DEV, "front"), Wait("idle", 61.0, DEV))


def test_typed_characters_gather_into_one_type_step() -> None:
    rec = StepRecorder(interactive_scenario(), DEV)
    rec.action(Tap("unknown:1", DEV, "front"), 0.0, "idle")
    rec.state_seen("entry", 0.1)
    for ch in "2650":
        rec.typed(ch, 1.0, "entry")
    rec.action(Press("key", DEV, "BACKSPACE"), 2.0, "entry")
    for ch in "093":
        rec.typed(ch, 3.0, "entry")
    rec.typed("ENTER", 3.5, "entry")
    rec.state_seen("jobs", 3.6)
    rec.typed("7", 5.0, "jobs")  # typed where nothing listens: kept, without ENTER
    assert rec.scenario().steps == (
        Tap("unknown:1", DEV, "front"), Wait("entry", 0.0, DEV), Type("2650", False, DEV),
        Press("key", DEV, "BACKSPACE"), Type("093", True, DEV), Wait("jobs", 0.0, DEV),
        Type("7", False, DEV))


def test_the_end_of_the_session_is_checked() -> None:
    rec = StepRecorder(interactive_scenario(), DEV)
    rec.finish("idle", "")
    assert rec.scenario().steps == ()  # nothing done: nothing to check
    rec.action(Tap("bob", DEV, "front"), 0.0, "idle")
    rec.state_seen("jobs", 0.2)
    rec.finish("jobs", "Bob Okafor")
    assert rec.scenario().steps[-2:] == (Wait("jobs", 0.0, DEV),
                                         Expect(DEV, state="jobs", user="Bob Okafor"))
