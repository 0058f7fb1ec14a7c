"""The identify answer brings the user's first page of jobs (issue 13): the session machine shows
the list at once, with no ``jobs.list`` sent; an answer without one (an older cloud) is
answered as before, through LOADING. Everything the list does after it loaded its own way (the
flash, why it is empty, the user's language, the countdown, Refresh, more) it does the same."""

from __future__ import annotations

from test_session import job, machine, sent

from device_app.session import (
    Answered,
    CardPresented,
    Effect,
    Failed,
    KeyPressed,
    Policy,
    Send,
    SessionMachine,
    State,
    Tapped,
    Tick,
)
from device_app.session.base import FIRST_PAGE
from device_app.view import Action, Screen
from protocol import messages as m


def sends(effects: list[Effect]) -> list[m.Request]:
    return [e.request for e in effects if isinstance(e, Send)]


def page(jobs: int, total: int | None = None, **why: float) -> m.JobList:
    return m.JobList(tuple(job(i) for i in range(jobs)), jobs if total is None else total,
                     **why)  # type: ignore[arg-type]


def badge_in(sm: SessionMachine, answer: m.IdentifyResult) -> list[Effect]:
    ident = sent(sm.handle(CardPresented("111")))
    assert isinstance(ident.request, m.Identify)
    # The device asks for a screenful (at most its page), so that the cloud brings it.
    assert ident.request.page_size == min(sm.policy.page_size, FIRST_PAGE)
    return sm.handle(Answered(ident.tag, answer))


ALICE = m.IdentifyResult("tok", "u1", "Alice", 300)


def test_a_page_in_the_answer_shows_the_list_at_once_without_asking_for_it() -> None:
    sm = machine(Policy(page_size=25))
    effects = badge_in(sm, ALICE.with_first_page(page(25, total=40)))
    assert sends(effects) == []  # the whole page came: nothing to ask
    assert sm.state is State.JOBS
    view = sm.view()
    assert view.screen is Screen.JOBS and view.user_name == "Alice"
    assert [j.job_id for j in view.jobs] == [f"j{i}" for i in range(25)]
    # The rest is a tap on "more" away, from where the page ends.
    more = sent(sm.handle(Tapped(Action.LOAD_MORE)))
    assert isinstance(more.request, m.ListJobs)
    assert (more.request.offset, more.request.limit, more.request.session) == (25, 25, "tok")


def test_a_screenful_shows_first_and_the_rest_of_the_page_follows_behind_it() -> None:
    sm = machine(Policy(page_size=100))
    effects = badge_in(sm, ALICE.with_first_page(page(FIRST_PAGE, total=200)))
    assert sm.state is State.JOBS and len(sm.view().jobs) == FIRST_PAGE  # on show at once
    [rest] = [e for e in effects if isinstance(e, Send)]
    assert isinstance(rest.request, m.ListJobs)
    assert (rest.request.offset, rest.request.limit) == (0, 100)
    sm.handle(Tapped(Action.SELECT, "j3"))  # a tap meanwhile is kept
    sm.handle(Answered(rest.tag, page(100, total=200)))
    view = sm.view()
    assert len(view.jobs) == 100 and view.total_jobs == 200 and view.selected == {"j3"}


def test_an_answer_without_a_page_loads_the_list_as_before() -> None:
    sm = machine()
    effects = badge_in(sm, ALICE)
    [listing] = sends(effects)
    assert isinstance(listing, m.ListJobs) and listing.session == "tok" and listing.offset == 0
    assert sm.state is State.LOADING


def test_an_empty_page_says_why_it_is_empty() -> None:
    sm = machine()
    assert badge_in(sm, ALICE.with_first_page(
        page(0, expired=2, hold_hours=24.0, unlinked=1))) == []
    assert sm.state is State.JOBS
    assert sm.view().empty_reasons == (
        "2 jobs expired after 24 h on hold",
        "1 job is waiting from a computer that is not linked: link it in the portal")


def test_the_cloud_note_shows_over_the_list_and_fades() -> None:
    sm = machine(notice_timeout=6, idle_timeout=600)
    badge_in(sm, m.IdentifyResult("tok", "u1", "Alice", 300, note="Welcome back")
             .with_first_page(page(1)))
    assert sm.view().message == "Welcome back"
    sm.handle(Tick(5.9))
    assert sm.view().message == "Welcome back"
    sm.handle(Tick(6.1))
    assert sm.view().message == "" and sm.state is State.JOBS


def test_a_linked_badge_says_so_over_the_list_the_answer_brought() -> None:
    sm = machine(notice_timeout=6, idle_timeout=600)
    ident = sent(sm.handle(CardPresented("999")))
    sm.handle(Failed(ident.tag, "unknown_card", "not known"))
    for key in "482916":
        sm.handle(KeyPressed(key))
    assoc = sent(sm.handle(KeyPressed("ENTER")))
    assert isinstance(assoc.request, m.Associate)
    assert assoc.request.page_size == min(sm.policy.page_size, FIRST_PAGE)
    effects = sm.handle(Answered(assoc.tag, m.IdentifyResult(
        "tok", "u1", "Al", 300, note="Your card is linked: next time, just tap it.")
        .with_first_page(page(2))))
    assert sends(effects) == [] and sm.state is State.JOBS
    assert sm.view().message == "Your card is linked: next time, just tap it"
    assert len(sm.view().jobs) == 2
    sm.handle(Tick(6.1))
    assert sm.view().message == ""


def test_the_users_language_the_countdown_and_refresh_work_on_the_list_it_brought() -> None:
    sm = machine(idle_timeout=60)
    badge_in(sm, m.IdentifyResult("tok", "u1", "Aiko", 300, language="ja")
             .with_first_page(page(2)))
    assert sm.view().language == "ja"
    sm.handle(Tick(50.2))
    assert sm.view().countdown.startswith("10 秒後にログアウト")  # in her language
    again = sent(sm.handle(Tapped(Action.REFRESH)))
    assert sm.view().countdown == ""  # a touch puts it off
    assert isinstance(again.request, m.ListJobs) and again.request.offset == 0
    sm.handle(Answered(again.tag, page(3)))
    assert len(sm.view().jobs) == 3 and sm.state is State.JOBS
    logout = sent(sm.handle(Tick(200.0)))
    assert isinstance(logout.request, m.Logout) and sm.state is State.IDLE
    assert sm.view().language != "ja" and sm.view().jobs == ()


def test_a_technicians_answer_opens_the_diagnostics_whatever_it_carries() -> None:
    sm = machine()
    tech = m.IdentifyResult("-", "tech_1", "Technician", 0, role=m.ROLE_TECHNICIAN)
    assert sends(badge_in(sm, tech.with_first_page(page(2)))) == []
    assert sm.state is State.DIAGNOSTICS
    assert sm.view().jobs == () and sm.session_token is None
