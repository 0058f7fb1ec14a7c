"""A technician at the panel, through the session table (strict: a move the table does not allow
fails the test): a technician's identify answer opens DIAGNOSTICS, which holds no session and
names no one; Done, the idle timeout and any badge leave it. And the diagnostics rows, built
purely from a snapshot (device_app/session/diagnostics.py)."""

from __future__ import annotations

import itertools

from device_app.session import (
    Answered,
    CardPresented,
    CodeEntered,
    LinkChanged,
    Node,
    Policy,
    Send,
    SessionMachine,
    State,
    Tapped,
    Tick,
)
from device_app.session import diagnostics as d
from device_app.view import Action, Screen
from protocol import messages as m
from protocol.engine import EngineState

TECH = m.IdentifyResult(session="-", user_id="tech_1", display_name="Technician", expires_in=0,
                        role=m.ROLE_TECHNICIAN)


def machine(policy: Policy | None = None, **kw: float) -> SessionMachine:
    ids = itertools.count(1)
    return SessionMachine(new_id=lambda: f"id-{next(ids)}", policy=policy, strict=True,
                          **kw)  # type: ignore[arg-type]


def sent(effects: list) -> list[Send]:  # type: ignore[type-arg]
    return [e for e in effects if isinstance(e, Send)]


def technician(sm: SessionMachine, code: str = "8264019375") -> None:
    [ident] = sent(sm.handle(CodeEntered(code)))
    assert isinstance(ident.request, m.Identify) and ident.request.method == "code"
    # No job list is asked for: a technician's answer opens the diagnostics, nothing else.
    assert sent(sm.handle(Answered(ident.tag, TECH))) == []
    assert sm.node is Node.DIAGNOSTICS and sm.state is State.DIAGNOSTICS


def test_a_technician_sees_diagnostics_and_no_session_or_user() -> None:
    sm = machine()
    technician(sm)
    assert sm.session_token is None and sm.user == "" and sm.jobs == ()
    v = sm.view()
    assert v.screen is Screen.DIAGNOSTICS and v.title == "Diagnostics"
    assert v.user_name == "" and v.jobs == ()
    labels = [r.label for r in v.rows]
    assert "Last badge" in labels and "Print engine" in labels and "Print service" in labels


def test_done_leaves_without_a_logout_to_send() -> None:
    sm = machine()
    technician(sm)
    assert sm.handle(Tapped(Action.SELECT, "j1")) == [] and sm.state is State.DIAGNOSTICS
    assert sent(sm.handle(Tapped(Action.DISMISS))) == []
    assert sm.state is State.IDLE


def test_the_idle_timeout_counts_down_then_leaves() -> None:
    sm = machine(idle_timeout=60)
    sm.handle(Tick(100))
    technician(sm)
    assert sm.handle(Tick(149)) == [] and sm.state is State.DIAGNOSTICS
    assert sm.logout_in is None
    sm.handle(Tick(152))
    assert sm.logout_in == 8 and "Logging out in 8 s" in sm.view().countdown
    assert sent(sm.handle(Tick(160))) == []
    assert sm.state is State.IDLE and sm.logout_in is None


def test_any_badge_leaves_and_is_taken_as_at_an_idle_panel() -> None:
    sm = machine()
    technician(sm)
    [ident] = sent(sm.handle(CardPresented("111")))
    assert isinstance(ident.request, m.Identify) and ident.request.value == "111"
    assert sm.state is State.IDENTIFYING
    # By policy, a badge only ends it.
    sm = machine(Policy(new_badge_logs_in=False))
    technician(sm)
    assert sent(sm.handle(CardPresented("111"))) == [] and sm.state is State.IDLE


def test_the_link_going_down_changes_a_row_not_the_screen() -> None:
    sm = machine()
    technician(sm)
    sm.handle(LinkChanged(False))
    assert sm.state is State.DIAGNOSTICS
    assert ("State", "not connected") in [(r.label, r.value) for r in sm.view().rows]
    sm.handle(Tapped(Action.DISMISS))
    assert sm.state is State.OFFLINE  # leaving with the link down: the offline panel


def test_a_user_answer_still_loads_the_list() -> None:
    sm = machine()
    [ident] = sent(sm.handle(CardPresented("111")))
    [lst] = sent(sm.handle(Answered(ident.tag, m.IdentifyResult("tok", "u1", "Alice", 300))))
    assert isinstance(lst.request, m.ListJobs) and sm.state is State.LOADING


# -- the rows, from a snapshot

BADGE = d.LastBadge(raw=bytes.fromhex("0012D687"), reader_id="front", number="1234567",
                    pipeline="hex2dec")


def test_rows_show_the_badge_its_conversions_and_which_one_the_device_applies() -> None:
    snap = d.Snapshot(badge=BADGE, engine=EngineState.JAM, printed=3, failed=1, link_up=True,
                      round_trips=(0.004, 0.010, 0.002), config_version=7)
    rows = {(r.label, r.value): r for r in d.rows(snap)}
    assert ("Raw bytes", "00 12 D6 87") in rows and ("Reader", "front") in rows
    assert ("Pipeline", "hex2dec") in rows and rows[("Number sent", "1234567")].chosen
    # Every candidate conversion of the bytes, the pipeline's own among them, marked.
    assert ("Bytes in hex", "0012D687") in rows
    assert rows[("\u2192 hex2dec", "1234567")].chosen
    assert ("\u2192 reverse-bytes|hex2dec", str(0x87D61200)) in rows
    assert not rows[("Bytes in hex", "0012D687")].chosen
    assert ("State", "paper jam") in rows and ("Printed since start", "3") in rows
    assert ("Failed since start", "1") in rows and ("State", "connected") in rows
    assert ("Last round trip", "2.0 ms") in rows
    assert ("Median round trip", "4.0 ms of 3") in rows
    assert ("Version", "7") in rows


def test_an_ascii_reader_gets_conversions_of_its_text_too() -> None:
    frame = b"\x020A0012D68749\x03"
    got = {(c.text, c.pipeline): c.number for c in d.candidates(frame)}
    assert got[(True, "")] == "0A0012D68749"
    assert got[(True, "hex2dec")] == str(0x0A0012D68749)
    assert len(got) == d.MAX_CANDIDATES  # a panel's worth, the text's first
    assert d.readings(frame) == ((True, "0A0012D68749"), (False, frame.hex().upper()))
    # Numbers no simpler conversion gave, each once.
    assert len(set(got.values())) == len(got)


def test_nothing_read_and_nothing_known_say_so() -> None:
    rows = [(r.label, r.value) for r in d.rows(d.Snapshot())]
    assert ("No badge read since start", "") in rows
    assert ("State", "not known") in rows
    assert ("Last round trip", "no answer timed yet") in rows
    assert ("Version", "not known") in rows
    assert ("Version", "0 (the device's own file)") in \
        [(r.label, r.value) for r in d.rows(d.Snapshot(config_version=0))]
