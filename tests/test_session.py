"""The session machine alone: pure, so every path is driven with plain events."""

from __future__ import annotations

import itertools

import pytest

from device_app.session import (
    TRANSITIONS,
    Answered,
    CardPresented,
    EngineChanged,
    Failed,
    JobDone,
    KeyPressed,
    Policy,
    PrintJob,
    Send,
    SessionMachine,
    State,
    Tapped,
    Tick,
)
from device_app.session.base import FIRST_PAGE
from device_app.view import Action, OptionsView, Screen
from protocol import messages as m


def machine(policy: Policy | None = None, **kw: float) -> SessionMachine:
    ids = itertools.count(1)
    return SessionMachine(new_id=lambda: f"id-{next(ids)}", policy=policy, strict=True,
                          **kw)  # type: ignore[arg-type]


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
    assert isinstance(rel.request, m.Release) and rel.request.all_held
    assert rel.request.job_ids == ()
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
    sm = machine(Policy(self_association=False), notice_timeout=5)
    ident = sent(sm.handle(CardPresented("999")))
    sm.handle(Failed(ident.tag, "unknown_card", "not known"))
    assert sm.view().screen is Screen.NOTICE and sm.view().title == "Card not recognised"
    sm.handle(Tick(4.9))
    assert sm.state is State.NOTICE
    sm.handle(Tick(5.0))
    assert sm.state is State.IDLE


def test_a_throttled_copier_says_badges_are_paused_and_until_when() -> None:
    # The cloud refuses every badge alike while a copier is throttled; the person at the
    # copier reads why and until when, not "Something went wrong".
    sm = machine(notice_timeout=5)
    ident = sent(sm.handle(CardPresented("999")))
    sm.handle(Failed(ident.tag, "throttled", "too many badge attempts at this copier: badge "
                                             "sign-in is paused until 14:35"))
    view = sm.view()
    assert view.screen is Screen.NOTICE and view.title == "Badge sign-in paused"
    assert view.message == ("Too many badge attempts at this copier: badge sign-in is paused "
                            "until 14:35.")
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


def test_the_same_badge_again_keeps_the_session_and_refreshes_the_list() -> None:
    sm = machine()
    logged_in(sm)
    sm.handle(Tapped(Action.SELECT, "j1"))
    again = sent(sm.handle(CardPresented("111")))
    assert isinstance(again.request, m.ListJobs) and again.request.session == "tok"
    assert sm.state is State.JOBS  # no logout, no busy screen: the list stays on show
    sm.handle(Answered(again.tag, m.JobList((job(9), job(1)), 2)))
    v = sm.view()
    assert [j.job_id for j in v.jobs] == ["j9", "j1"] and v.selected == {"j1"}


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


def type_keys(sm: SessionMachine, text: str) -> None:
    for ch in text:
        assert sm.handle(KeyPressed(ch)) == []


def test_access_code_typed_on_the_panel_logs_in() -> None:
    sm = machine()
    sm.handle(Tapped(Action.ENTER_CODE))
    assert sm.view().screen is Screen.ENTRY and sm.view().entry is not None
    type_keys(sm, "48291")
    sm.handle(KeyPressed("BACKSPACE"))
    type_keys(sm, "16")
    view = sm.view()
    assert view.entry is not None and view.entry.fields[0].display == "••••••"
    ident = sent(sm.handle(KeyPressed("ENTER")))
    assert ident.request == m.Identify(method="code", value="482916", page_size=FIRST_PAGE)


def test_a_wrong_code_keeps_the_keypad_with_the_reason() -> None:
    sm = machine()
    sm.handle(Tapped(Action.ENTER_CODE))
    type_keys(sm, "111111")
    ident = sent(sm.handle(KeyPressed("ENTER")))
    sm.handle(Failed(ident.tag, "unknown_code", "no"))
    view = sm.view()
    assert view.screen is Screen.ENTRY and view.entry is not None
    assert view.entry.error == "Code not recognised" and view.entry.fields[0].display == ""


def test_username_and_password_on_the_on_screen_keyboard() -> None:
    sm = machine()
    sm.handle(Tapped(Action.ENTER_PASSWORD))
    view = sm.view()
    assert view.entry is not None and view.entry.keyboard == "text"
    type_keys(sm, "alice@example.org")
    assert sm.handle(KeyPressed("ENTER")) == []  # the password is missing: nothing sent
    assert sm.view().entry.error == "Enter your password"  # type: ignore[union-attr]
    sm.handle(Tapped(Action.FOCUS, "password"))
    type_keys(sm, "pa ss")
    view = sm.view()
    assert view.entry is not None and view.entry.fields[1].display == "•••••"
    assert view.entry.fields[0].display == "alice@example.org"
    ident = sent(sm.handle(Tapped(Action.KEY, "ENTER")))
    assert ident.request == m.Identify(method="password", value="pa ss",
                                       username="alice@example.org", page_size=FIRST_PAGE)


def test_card_and_pin_policy_asks_for_the_pin_after_the_badge() -> None:
    sm = machine(Policy(card_pin=True))
    assert sm.handle(CardPresented("111")) == []
    assert sm.view().entry is not None and sm.view().entry.kind == "pin"  # type: ignore[union-attr]
    type_keys(sm, "4829")
    ident = sent(sm.handle(KeyPressed("ENTER")))
    assert ident.request == m.Identify(method="card", value="111", pin="4829", page_size=FIRST_PAGE)
    sm.handle(Failed(ident.tag, "wrong_pin", "no"))
    assert sm.view().entry.error == "Wrong PIN"  # type: ignore[union-attr]
    type_keys(sm, "4830")
    again = sent(sm.handle(KeyPressed("ENTER")))
    assert again.request == m.Identify(method="card", value="111", pin="4830", page_size=FIRST_PAGE)


def test_an_unknown_badge_is_linked_by_its_holder() -> None:
    sm = machine()
    ident = sent(sm.handle(CardPresented("999")))
    sm.handle(Failed(ident.tag, "unknown_card", "no"))
    view = sm.view()
    assert view.screen is Screen.ENTRY and view.title.startswith("Badge not recognised")
    assert view.entry is not None and view.entry.can_switch
    type_keys(sm, "730158")
    assoc = sent(sm.handle(KeyPressed("ENTER")))
    assert isinstance(assoc.request, m.Associate)
    assert (assoc.request.card, assoc.request.method, assoc.request.value) == (
        "999", "code", "730158")
    lst = sent(sm.handle(Answered(assoc.tag, m.IdentifyResult(
        "tok", "u2", "Bob", 300, note="Your card is linked: next time, just tap it."))))
    assert isinstance(lst.request, m.ListJobs)
    sm.handle(Answered(lst.tag, m.JobList((job(1),), 1)))
    assert sm.view().message.startswith("Your card is linked")


def test_self_association_by_password_after_switching() -> None:
    sm = machine()
    ident = sent(sm.handle(CardPresented("999")))
    sm.handle(Failed(ident.tag, "unknown_card", "no"))
    sm.handle(Tapped(Action.SWITCH_ENTRY))
    assert sm.view().entry.kind == "associate_password"  # type: ignore[union-attr]
    type_keys(sm, "bob@example.org")
    sm.handle(KeyPressed("TAB"))
    type_keys(sm, "secret-password")
    assoc = sent(sm.handle(KeyPressed("ENTER")))
    assert isinstance(assoc.request, m.Associate) and assoc.request.method == "password"
    assert assoc.request.username == "bob@example.org"


def test_an_abandoned_keypad_returns_to_idle() -> None:
    sm = machine()
    sm.handle(Tapped(Action.ENTER_CODE))
    type_keys(sm, "12")
    sm.handle(Tick(29))
    assert sm.state is State.ENTRY
    sm.handle(Tick(30))
    assert sm.state is State.IDLE


def test_release_is_refused_up_front_when_the_engine_cannot_print() -> None:
    from protocol.engine import EngineState

    sm = machine()
    logged_in(sm)
    sm.handle(EngineChanged(EngineState.JAM))
    assert "jam" in sm.view().engine_problem.lower()
    sm.handle(Tapped(Action.SELECT, "j1"))
    assert sm.handle(Tapped(Action.RELEASE)) == []  # nothing is sent: nothing leaves HELD
    assert sm.view().screen is Screen.NOTICE and "jam" in sm.view().message.lower()
    sm.handle(Tapped(Action.DISMISS))
    sm.handle(EngineChanged(EngineState.READY))
    assert isinstance(sent(sm.handle(Tapped(Action.RELEASE))).request, m.Release)


def test_changes_at_release() -> None:
    sm = machine()
    logged_in(sm)
    sm.handle(Tapped(Action.SELECT, "j1"))
    sm.handle(Tapped(Action.OPTIONS))
    assert sm.view().screen is Screen.OPTIONS
    sm.handle(Tapped(Action.TOGGLE_GRAYSCALE))
    sm.handle(Tapped(Action.TOGGLE_DUPLEX))
    sm.handle(Tapped(Action.COPIES_UP))
    sm.handle(Tapped(Action.COPIES_UP))
    assert sm.view().options == OptionsView(grayscale=True, duplex=True, copies=3)
    rel = sent(sm.handle(Tapped(Action.RELEASE)))
    assert isinstance(rel.request, m.Release)
    assert (rel.request.grayscale, rel.request.duplex, rel.request.copies) == (True, True, 3)


def test_no_changes_offered_where_the_org_forbids_them() -> None:
    sm = machine(Policy(release_changes=False))
    logged_in(sm)
    sm.handle(Tapped(Action.SELECT, "j1"))
    sm.handle(Tapped(Action.OPTIONS))
    assert sm.state is State.JOBS and not sm.view().can_change


def test_delete_asks_first_then_deletes_and_refreshes() -> None:
    sm = machine()
    logged_in(sm)
    sm.handle(Tapped(Action.SELECT, "j0"))
    sm.handle(Tapped(Action.SELECT, "j2"))
    assert sm.handle(Tapped(Action.DELETE)) == []
    assert sm.view().screen is Screen.CONFIRM and sm.view().title == "Delete 2 jobs?"
    sm.handle(Tapped(Action.CANCEL))
    assert sm.state is State.JOBS
    sm.handle(Tapped(Action.DELETE))
    delete = sent(sm.handle(Tapped(Action.CONFIRM)))
    assert isinstance(delete.request, m.DeleteJobs)
    assert set(delete.request.job_ids) == {"j0", "j2"}
    refresh = sent(sm.handle(Answered(delete.tag, m.Ack())))
    assert isinstance(refresh.request, m.ListJobs)
    sm.handle(Answered(refresh.tag, m.JobList((job(1),), 1)))
    assert sm.view().message == "2 deleted"


def test_long_lists_load_more_pages() -> None:
    sm = machine(Policy(page_size=100))
    ident = sent(sm.handle(CardPresented("111")))
    lst = sent(sm.handle(Answered(ident.tag, m.IdentifyResult("tok", "u1", "Alice", 300))))
    sm.handle(Answered(lst.tag, m.JobList(tuple(job(i) for i in range(100)), 250)))
    assert sm.view().can_load_more
    more = sent(sm.handle(Tapped(Action.LOAD_MORE)))
    assert isinstance(more.request, m.ListJobs) and more.request.offset == 100
    assert sm.handle(Tapped(Action.LOAD_MORE)) == []  # one page at a time
    sm.handle(Answered(more.tag, m.JobList(tuple(job(i) for i in range(100, 200)), 250)))
    assert len(sm.view().jobs) == 200 and sm.state is State.JOBS


def test_logout_after_release_all_by_policy() -> None:
    sm = machine(Policy(logout_after_release_all=True))
    logged_in(sm, jobs=1)
    rel = sent(sm.handle(Tapped(Action.RELEASE_ALL)))
    released = m.ReleasedJob("j0", "J", 1, "0" * 64)
    sm.handle(Answered(rel.tag, m.ReleaseResult("r", (released,))))
    confirm = sent(sm.handle(JobDone("r", "j0", True)))
    out = sent(sm.handle(Answered(confirm.tag, m.Ack())))
    assert isinstance(out.request, m.Logout) and sm.state is State.IDLE


def test_another_badge_only_logs_out_when_policy_says_so() -> None:
    sm = machine(Policy(new_badge_logs_in=False))
    logged_in(sm)
    effects = sm.handle(CardPresented("222"))
    assert [type(e.request) for e in effects if isinstance(e, Send)] == [m.Logout]
    assert sm.state is State.IDLE


def test_unreachable_cloud_says_so() -> None:
    sm = machine()
    ident = sent(sm.handle(CardPresented("111")))
    sm.handle(Failed(ident.tag, "unreachable", "no broker"))
    assert sm.view().title == "Can't reach the print service"


def test_every_transition_handler_exists() -> None:
    for rule in TRANSITIONS.values():
        assert callable(getattr(SessionMachine, rule.handler.__name__))


# The property test of the whole session, in any order and through the app's loop, is
# tests/test_app_stateful.py (the one here never logged anyone in, so it could not fail).


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
    assert ident.request == m.Identify(method="code", value="482916", page_size=FIRST_PAGE)
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


def test_an_outage_while_logged_in_keeps_the_session_and_shows_the_jobs_again() -> None:
    from device_app.session import LinkChanged

    sm = machine()
    logged_in(sm)
    assert sm.handle(LinkChanged(False)) == []
    assert sm.view().screen is Screen.OFFLINE and sm.session_token == "tok"
    refresh = sent(sm.handle(LinkChanged(True)))
    assert isinstance(refresh.request, m.ListJobs) and sm.state is State.LOADING
    sm.handle(Answered(refresh.tag, m.JobList((job(1),), 1)))
    assert sm.state is State.JOBS and len(sm.view().jobs) == 1


def test_a_user_who_walks_away_during_an_outage_is_logged_out() -> None:
    from device_app.session import LinkChanged

    sm = machine(idle_timeout=60)
    logged_in(sm)
    sm.handle(LinkChanged(False))
    out = sent(sm.handle(Tick(60)))
    assert isinstance(out.request, m.Logout) and sm.state is State.OFFLINE
    assert sm.session_token is None


def test_reconnect_backoff_is_jittered_per_device() -> None:
    """A fleet must not reconnect in lock-step after a broker restart (FIELD_NOTES)."""
    from device_app.link import MqttCloudLink
    from protocol.address import BrokerAddress

    links = [MqttCloudLink(BrokerAddress("127.0.0.1", 1, f"d{i}", "pw"), f"d{i}")
             for i in range(8)]
    delays = {link.client._reconnect_min_delay for link in links}  # paho's backoff start
    assert len(delays) > 1 and all(0.5 <= d <= 1.5 for d in delays)


def test_a_release_in_flight_when_the_link_drops_waits_and_says_it_is_checking() -> None:
    from device_app.session import LinkChanged

    sm = machine()
    logged_in(sm)
    rel = sent(sm.handle(Tapped(Action.RELEASE_ALL)))
    assert sm.handle(LinkChanged(False)) == []
    view = sm.view()
    assert (view.screen, sm.state) == (Screen.RELEASING, State.RELEASING)
    assert view.message.startswith("Connection lost: reconnecting to check")
    sm.handle(LinkChanged(True))
    released = m.ReleasedJob("j0", "Job 0", 100, "0" * 64)
    assert sm.handle(Answered(rel.tag, m.ReleaseResult("rel-1", (released,)))) == [
        PrintJob("rel-1", released)]
    assert sm.view().message == ""


def test_an_unknown_outcome_is_not_confirmed_never_failed() -> None:
    sm = machine()
    logged_in(sm)
    rel = sent(sm.handle(Tapped(Action.RELEASE_ALL)))
    sm.handle(Failed(rel.tag, "unknown_outcome", "no answer within 20 s"))
    view = sm.view()
    assert view.title == "Not confirmed" and "nothing was printed" in view.message
    refresh = sent(sm.handle(Tapped(Action.DISMISS)))
    assert isinstance(refresh.request, m.ListJobs)  # the list is fetched again: what is left
    sm2 = machine()
    logged_in(sm2)
    sm2.handle(Tapped(Action.SELECT, "j1"))
    sm2.handle(Tapped(Action.DELETE))
    delete = sent(sm2.handle(Tapped(Action.CONFIRM)))
    sm2.handle(Failed(delete.tag, "unknown_outcome", "no answer within 20 s"))
    assert sm2.view().title == "Not confirmed"
    assert "may have been deleted" in sm2.view().message


def test_a_badge_link_with_an_unknown_outcome_says_the_badge_may_be_linked() -> None:
    sm = machine()
    ident = sent(sm.handle(CardPresented("999")))
    sm.handle(Failed(ident.tag, "unknown_card", "no"))
    type_keys(sm, "730158")
    assoc = sent(sm.handle(KeyPressed("ENTER")))
    assert isinstance(assoc.request, m.Associate)
    sm.handle(Failed(assoc.tag, "unknown_outcome", "no answer within 20 s"))
    view = sm.view()
    assert (view.title, sm.session_token) == ("Not confirmed", None)
    assert "your badge may be linked" in view.message
