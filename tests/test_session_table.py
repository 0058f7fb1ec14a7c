"""The session machine's table (device_app/session/machine.py): it decides where each handler may
lead, the diagram in the docs is drawn from it, and a move it does not allow is caught.

That every handler, in every run, leads only where its entry says is checked at every step of
tests/test_app_stateful.py (its machine is strict); here are the table's own properties."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from device_app.session import (
    TRANSITIONS,
    Answered,
    CardPresented,
    Failed,
    Kind,
    Next,
    Node,
    Rule,
    Send,
    SessionMachine,
    State,
    Tapped,
    Tick,
    TransitionError,
)
from device_app.session.diagram import markdown
from device_app.view import Action
from protocol import messages as m

DOC = Path(__file__).resolve().parent.parent / "docs" / "session-states.md"


def machine(strict: bool) -> SessionMachine:
    ids = itertools.count(1)
    return SessionMachine(new_id=lambda: f"id-{next(ids)}", strict=strict)


def test_the_diagram_in_the_docs_is_the_table() -> None:
    assert DOC.read_text(encoding="utf-8") == markdown(), (
        "docs/session-states.md is not what the table draws: run "
        "python -m device_app.session.diagram > docs/session-states.md")


def test_every_handler_is_a_method_of_the_machine() -> None:
    for key, rule in TRANSITIONS.items():
        # Handlers live in the phases' mixins (device_app/session/ways_in.py, jobs.py, ...):
        # each is an on_* method the machine inherits, dispatched as the machine's own.
        assert rule.handler.__name__.startswith("on_"), key
        assert getattr(SessionMachine, rule.handler.__name__) is rule.handler, key
        assert rule.to, f"{key} leads nowhere"


def test_only_answers_are_keyed_by_what_the_request_was_for() -> None:
    for node, event, kind in TRANSITIONS:
        assert (kind is not None) == (event in (Answered, Failed)), (node, event, kind)
        assert kind is not Kind.LOGOUT  # a logout's answer is dropped before the table


def test_every_node_is_reachable_from_idle_and_has_a_way_out() -> None:
    arrows: dict[Node, set[Node]] = {}
    for (node, _event, _kind), rule in TRANSITIONS.items():
        arrows.setdefault(node, set()).update(rule.to - {node})
    assert set(arrows) == set(Node), f"nodes without entries: {set(Node) - set(arrows)}"
    seen, todo = {Node.IDLE}, [Node.IDLE]
    while todo:
        for to in arrows[todo.pop()] - seen:
            seen.add(to)
            todo.append(to)
    assert seen == set(Node), f"unreachable: {set(Node) - seen}"
    assert {node.state for node in Node} == set(State)


def test_notices_lead_back_only_where_their_node_says() -> None:
    back = {Node.NOTICE_THEN_IDLE: {Node.IDLE, Node.OFFLINE}, Node.NOTICE_THEN_JOBS: {Node.JOBS},
            Node.NOTICE_THEN_LOADING: {Node.LOADING}}
    for notice, places in back.items():
        assert notice.state is State.NOTICE
        for event in (Tapped, Tick):
            assert TRANSITIONS[notice, event, None].to == {notice} | places, notice


def _narrowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # The badge at an idle panel declares only ENTRY: identifying then is a move not allowed.
    key = (Node.IDLE, CardPresented, None)
    monkeypatch.setitem(TRANSITIONS, key, Rule(TRANSITIONS[key].handler,
                                               frozenset({Node.ENTRY})))


def test_a_move_the_table_does_not_allow_raises_when_strict(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _narrowed(monkeypatch)
    sm = machine(strict=True)
    with pytest.raises(TransitionError, match="CardPresented in idle led to identifying"):
        sm.handle(CardPresented("111"))


def test_in_service_a_move_not_allowed_is_logged_and_ends_the_session(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    sm = machine(strict=False)
    [ident] = sm.handle(CardPresented("111"))
    assert isinstance(ident, Send)
    [listing] = sm.handle(Answered(ident.tag, m.IdentifyResult("tok", "u1", "Alice", 300)))
    assert isinstance(listing, Send)
    sm.handle(Answered(listing.tag, m.JobList((), 0)))
    assert sm.state is State.JOBS
    key = (Node.JOBS, Tapped, None)
    monkeypatch.setitem(TRANSITIONS, key, Rule(TRANSITIONS[key].handler, frozenset({Node.JOBS})))
    with caplog.at_level(logging.ERROR, logger="device_app.session.machine"):
        effects = sm.handle(Tapped(Action.RETRY))
    # The jobs.list the handler asked for goes out (it is pending), then the logout.
    assert [type(e.request) for e in effects if isinstance(e, Send)] == [m.ListJobs, m.Logout]
    assert sm.state is State.IDLE and sm.session_token is None
    assert "Tapped in jobs led to loading" in caplog.text and "tok" not in caplog.text


def test_a_handler_returns_where_it_goes_and_the_machine_goes_there() -> None:
    sm = machine(strict=True)
    out = SessionMachine.on_tap_idle(sm, Tapped(Action.ENTER_CODE))
    assert isinstance(out, Next) and out.node is Node.ENTRY
    assert sm.node is Node.IDLE  # a handler decides; only handle() moves the machine
    sm.handle(Tapped(Action.ENTER_CODE))
    assert sm.node is Node.ENTRY and sm.state is State.ENTRY


def test_a_failed_request_answer_is_dispatched_on_what_it_was_for() -> None:
    sm = machine(strict=True)
    [ident] = sm.handle(CardPresented("111"))
    assert isinstance(ident, Send)
    sm.handle(Failed(ident.tag, "busy", "the print service is busy"))
    assert sm.node is Node.NOTICE_THEN_IDLE and sm.view().title == "The print service is busy"
