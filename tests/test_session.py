"""The session machine alone: pure, so every path is driven with plain events."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_app.session import (
    TRANSITIONS,
    Answered,
    CardPresented,
    Failed,
    JobDone,
    PrintJob,
    Send,
    SessionMachine,
    State,
    Tapped,
    Tick,
)
from device_app.view import Action, Screen
from protocol import messages as m


def machine(**kw: float) -> SessionMachine:
    ids = itertools.count(1)
    return SessionMachine(new_id=lambda: f"id-{next(ids)}", **kw)  # type: ignore[arg-type]


def job(i: int) -> m.JobSummary:
    return m.JobSummary(job_id=f"j{i}", name=f"Job {i}", pages=1, color=False, duplex=False,
                        copies=1, size=100, submitted_at=1000.0 - i)


def sent(effects: list) -> Send:  # type: ignore[type-arg]
    [effect] = [e for e in effects if isinstance(e, Send)]
    return effect


def logged_in(sm: SessionMachine, jobs: int = 3) -> None:
    ident = sent(sm.handle(CardPresented("111")))
    assert isinstance(ident.request, m.Identify) and ident.request.value == "111"
    lst = sent(sm.handle(Answered(ident.tag, m.IdentifyResult("tok", "u1", "Alice", 300))))
    assert isinstance(lst.request, m.ListJobs) and lst.request.session == "tok"
    sm.handle(Answered(lst.tag, m.JobList(tuple(job(i) for i in range(jobs)), jobs)))
    assert sm.state is State.JOBS


def test_badge_to_job_list() -> None:
    sm = machine()
    logged_in(sm)
    v = sm.view()
    assert v.screen is Screen.JOBS and v.user_name == "Alice" and len(v.jobs) == 3


def test_release_prints_confirms_and_refreshes() -> None:
    sm = machine()
    logged_in(sm)
    sm.handle(Tapped(Action.SELECT, "j1"))
    rel = sent(sm.handle(Tapped(Action.RELEASE)))
    assert isinstance(rel.request, m.Release) and rel.request.job_ids == ("j1",)
    assert sm.state is State.RELEASING
    released = m.ReleasedJob("j1", "Job 1", 100, "0" * 64)
    effects = sm.handle(Answered(rel.tag, m.ReleaseResult("rel-1", (released,))))
    assert effects == [PrintJob("rel-1", released)]
    assert sm.view().progress[0].state == "printing"
    confirm = sent(sm.handle(JobDone("rel-1", "j1", True)))
    assert isinstance(confirm.request, m.JobPrinted)
    refresh = sent(sm.handle(Answered(confirm.tag, m.Ack())))
    assert isinstance(refresh.request, m.ListJobs) and sm.state is State.LOADING


def test_engine_failure_is_reported_so_the_job_returns_to_held() -> None:
    sm = machine()
    logged_in(sm)
    rel = sent(sm.handle(Tapped(Action.RELEASE_ALL)))
    assert isinstance(rel.request, m.Release) and len(rel.request.job_ids) == 3
    sm.handle(Answered(rel.tag, m.ReleaseResult("r", (m.ReleasedJob("j0", "J", 1, "0" * 64),))))
    failed = sent(sm.handle(JobDone("r", "j0", False, "engine jam")))
    assert isinstance(failed.request, m.JobFailed) and failed.request.reason == "engine jam"


def test_release_with_nothing_selected_does_nothing() -> None:
    sm = machine()
    logged_in(sm)
    assert sm.handle(Tapped(Action.RELEASE)) == []
    assert sm.state is State.JOBS


def test_select_all_toggles() -> None:
    sm = machine()
    logged_in(sm)
    sm.handle(Tapped(Action.SELECT_ALL))
    assert sm.view().selected == {"j0", "j1", "j2"}
    sm.handle(Tapped(Action.SELECT_ALL))
    assert sm.view().selected == frozenset()


def test_unknown_card_shows_a_notice_then_returns_to_idle() -> None:
    sm = machine(notice_timeout=5)
    ident = sent(sm.handle(CardPresented("999")))
    sm.handle(Failed(ident.tag, "unknown_card", "not known"))
    assert sm.view().screen is Screen.NOTICE and sm.view().title == "Card not recognised"
    sm.handle(Tick(4.9))
    assert sm.state is State.NOTICE
    sm.handle(Tick(5.0))
    assert sm.state is State.IDLE


def test_idle_timeout_logs_out_and_ends_the_cloud_session() -> None:
    sm = machine(idle_timeout=60)
    logged_in(sm)
    assert sm.handle(Tick(59)) == []
    out = sent(sm.handle(Tick(60)))
    assert isinstance(out.request, m.Logout) and out.request.session == "tok"
    assert sm.state is State.IDLE and sm.session_token is None


def test_a_tap_restarts_the_idle_timer() -> None:
    sm = machine(idle_timeout=60)
    logged_in(sm)
    sm.handle(Tick(50))
    sm.handle(Tapped(Action.SELECT, "j0"))
    assert sm.handle(Tick(100)) == []
    assert sm.state is State.JOBS


def test_another_badge_logs_the_first_user_out_and_the_second_in() -> None:
    sm = machine()
    logged_in(sm)
    effects = sm.handle(CardPresented("222"))
    kinds = [type(e.request) for e in effects if isinstance(e, Send)]
    assert kinds == [m.Logout, m.Identify]
    assert sm.state is State.IDENTIFYING


def test_the_same_badge_again_keeps_the_session() -> None:
    sm = machine()
    logged_in(sm)
    assert sm.handle(CardPresented("111")) == []
    assert sm.state is State.JOBS


def test_a_badge_while_printing_is_ignored() -> None:
    sm = machine()
    logged_in(sm)
    sm.handle(Tapped(Action.RELEASE_ALL))
    assert sm.handle(CardPresented("222")) == []
    assert sm.state is State.RELEASING


def test_a_late_answer_from_an_ended_session_is_dropped() -> None:
    sm = machine()
    ident = sent(sm.handle(CardPresented("111")))
    lst = sent(sm.handle(Answered(ident.tag, m.IdentifyResult("tok", "u1", "Alice", 300))))
    sm.handle(Failed(lst.tag, "timeout", "slow"))  # notice, session kept
    sm.handle(Tapped(Action.DISMISS))
    # The old list answer arrives after all: it must not act.
    before = sm.state
    assert sm.handle(Answered(lst.tag, m.JobList((job(1),), 1))) == []
    assert sm.state is before


def test_unreachable_cloud_says_so() -> None:
    sm = machine()
    ident = sent(sm.handle(CardPresented("111")))
    sm.handle(Failed(ident.tag, "unreachable", "no broker"))
    assert sm.view().title == "Can't reach the print service"


def test_every_transition_handler_exists() -> None:
    for handler in TRANSITIONS.values():
        assert callable(getattr(SessionMachine, handler))


events = st.one_of(
    st.builds(CardPresented, st.sampled_from(["111", "222"])),
    st.builds(Tapped, st.sampled_from(list(Action)), st.sampled_from([None, "j0", "j1"])),
    st.builds(Tick, st.floats(0, 1000)),
    st.builds(JobDone, st.just("r"), st.sampled_from(["j0", "j1"]), st.booleans()),
    st.builds(Failed, st.sampled_from(["identify#1", "jobs.list#2", "x"]),
              st.sampled_from(["timeout", "unknown_card", "invalid_session"]), st.just("m")),
)


@settings(max_examples=200)
@given(st.lists(events, max_size=30))
def test_any_event_sequence_keeps_the_machine_consistent(seq: list) -> None:  # type: ignore[type-arg]
    sm = machine()
    for event in seq:
        for effect in sm.handle(event):
            assert isinstance(effect, Send | PrintJob)
        view = sm.view()
        assert view.screen in Screen
        if sm.state is State.IDLE:
            assert sm.session_token is None


@pytest.mark.parametrize("code", ["invalid_session", "wrong_device"])
def test_a_dead_session_while_listing_returns_to_idle(code: str) -> None:
    sm = machine()
    ident = sent(sm.handle(CardPresented("111")))
    lst = sent(sm.handle(Answered(ident.tag, m.IdentifyResult("tok", "u1", "Alice", 300))))
    sm.handle(Failed(lst.tag, code, "gone"))
    sm.handle(Tapped(Action.DISMISS))
    assert sm.state is State.IDLE and sm.session_token is None


def test_access_code_logs_in_like_a_badge() -> None:
    from device_app.session import CodeEntered

    sm = machine()
    ident = sent(sm.handle(CodeEntered("482916")))
    assert ident.request == m.Identify(method="code", value="482916")
    sm.handle(Failed(ident.tag, "unknown_code", "no"))
    assert sm.view().title == "Code not recognised"


def test_losing_the_link_while_idle_shows_offline_and_recovers() -> None:
    from device_app.session import LinkChanged

    sm = machine()
    sm.handle(LinkChanged(False))
    assert sm.view().screen is Screen.OFFLINE
    assert sm.view().title == "Can't reach the print service"
    sm.handle(LinkChanged(True))
    assert sm.state is State.IDLE


def test_a_badge_while_offline_is_tried_and_a_failure_returns_to_offline() -> None:
    from device_app.session import LinkChanged

    sm = machine(notice_timeout=1)
    sm.handle(LinkChanged(False))
    ident = sent(sm.handle(CardPresented("111")))
    sm.handle(Failed(ident.tag, "unreachable", "down"))
    assert sm.state is State.NOTICE
    sm.handle(Tick(2))
    assert sm.state is State.OFFLINE
