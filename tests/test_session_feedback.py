"""What a person at the copier sees of what happened and what is about to (issue 10): the result
line over the list, new jobs appearing by themselves, why a list is empty, the idle logout's
countdown, page progress and walking away from a release, "Deselect all". The session machine
alone, driven through its table (strict: a move the table does not allow raises)."""

from __future__ import annotations

from test_session import job, logged_in, machine, sent

from device_app.session import (
    Answered,
    CardPresented,
    Detach,
    Effect,
    Failed,
    JobDone,
    JobsChanged,
    KeyPressed,
    PagesPrinted,
    Send,
    SessionMachine,
    State,
    Tapped,
    Tick,
)
from device_app.view import Action, Screen, Tone
from protocol import messages as m


def released(sm: SessionMachine, *ids: str, pages: int = 1) -> str:
    """Select ``ids``, release them, and have the cloud answer; the release id."""
    for i in ids:
        sm.handle(Tapped(Action.SELECT, i))
    rel = sent(sm.handle(Tapped(Action.RELEASE)))
    sm.handle(Answered(rel.tag, m.ReleaseResult("rel-1", tuple(
        m.ReleasedJob(i, f"Job {i}", 100, "0" * 64, pages=pages) for i in ids))))
    return "rel-1"


def finish(sm: SessionMachine, outcomes: dict[str, tuple[bool, str]],
           left: int = 1) -> None:
    """The engine's outcomes, the cloud's acknowledgements, then the fresh list."""
    confirms = [sent(sm.handle(JobDone("rel-1", i, ok, why))) for i, (ok, why) in
                outcomes.items()]
    effects: list[Effect] = []
    for c in confirms:
        effects = sm.handle(Answered(c.tag, m.Ack()))
    relist = sent(effects)
    assert isinstance(relist.request, m.ListJobs) and sm.state is State.LOADING
    sm.handle(Answered(relist.tag, m.JobList(tuple(job(9 + i) for i in range(left)), left)))
    assert sm.view().screen is Screen.JOBS


# ---------------------------------------------------------------- what just happened


def test_after_a_release_the_list_says_how_many_printed_in_the_good_colour() -> None:
    sm = machine(notice_timeout=6)
    logged_in(sm)
    released(sm, "j0", "j1")
    finish(sm, {"j0": (True, ""), "j1": (True, "")})
    view = sm.view()
    assert view.message == "2 printed" and view.tone is Tone.OK


def test_a_failed_job_says_why_and_that_it_is_still_held() -> None:
    sm = machine()
    logged_in(sm)
    released(sm, "j0")
    finish(sm, {"j0": (False, "paper jam")})
    view = sm.view()
    assert view.message == "1 failed: paper jam, it is still held"
    assert view.tone is Tone.ERROR


def test_printed_and_failed_together_say_both() -> None:
    sm = machine()
    logged_in(sm)
    released(sm, "j0", "j1", "j2")
    finish(sm, {"j0": (True, ""), "j1": (False, "paper jam"), "j2": (False, "no paper")})
    assert sm.view().message == "1 printed; 2 failed: paper jam, they are still held"


def test_after_a_delete_the_list_says_how_many() -> None:
    sm = machine()
    logged_in(sm)
    sm.handle(Tapped(Action.SELECT, "j2"))
    sm.handle(Tapped(Action.DELETE))
    delete = sent(sm.handle(Tapped(Action.CONFIRM)))
    relist = sent(sm.handle(Answered(delete.tag, m.Ack())))
    sm.handle(Answered(relist.tag, m.JobList((job(0), job(1)), 2)))
    assert sm.view().message == "1 deleted" and sm.view().tone is Tone.OK


def test_a_badge_linked_by_its_holder_says_a_tap_is_enough_next_time() -> None:
    sm = machine()
    ident = sent(sm.handle(CardPresented("999")))
    sm.handle(Failed(ident.tag, "unknown_card", "not known"))
    for key in "482916":
        sm.handle(KeyPressed(key))
    assoc = sent(sm.handle(KeyPressed("ENTER")))
    assert isinstance(assoc.request, m.Associate)
    listing = sent(sm.handle(Answered(assoc.tag, m.IdentifyResult("tok", "u1", "Al", 300,
                                                                  note="linked"))))
    sm.handle(Answered(listing.tag, m.JobList((), 0)))
    assert sm.view().message == "Your card is linked: next time, just tap it"


def test_the_result_line_fades_after_the_notice_time_or_on_a_tap() -> None:
    sm = machine(notice_timeout=6, idle_timeout=600)
    logged_in(sm)
    sm.handle(Tick(100.0))
    released(sm, "j0")
    finish(sm, {"j0": (True, "")})
    sm.handle(Tick(105.9))
    assert sm.view().message == "1 printed"
    sm.handle(Tick(106.0))
    assert sm.view().message == ""
    released(sm, "j9")
    finish(sm, {"j9": (True, "")})
    assert sm.view().message == "1 printed"
    sm.handle(Tapped(Action.DISMISS))
    assert sm.view().message == "" and sm.state is State.JOBS


# ---------------------------------------------------------------- new jobs by themselves


def test_new_jobs_are_fetched_behind_the_list_and_the_selection_is_kept() -> None:
    sm = machine()
    logged_in(sm)
    sm.handle(Tapped(Action.SELECT, "j1"))
    again = sent(sm.handle(JobsChanged()))
    assert isinstance(again.request, m.ListJobs) and again.request.offset == 0
    assert sm.state is State.JOBS  # the list stays on show meanwhile: no busy screen
    assert sm.handle(JobsChanged()) == []  # one fetch at a time
    sm.handle(Answered(again.tag, m.JobList((job(7), job(0), job(1), job(2)), 4)))
    view = sm.view()
    assert [j.job_id for j in view.jobs] == ["j7", "j0", "j1", "j2"]
    assert view.selected == {"j1"} and view.screen is Screen.JOBS


def test_a_refresh_fetches_as_many_jobs_as_are_loaded() -> None:
    sm = machine()
    logged_in(sm, jobs=3)
    sm.policy = type(sm.policy)(page_size=2)
    again = sent(sm.handle(Tapped(Action.REFRESH)))
    assert isinstance(again.request, m.ListJobs) and again.request.limit == 3


def test_a_notice_of_new_jobs_with_nobody_signed_in_does_nothing() -> None:
    sm = machine()
    assert sm.handle(JobsChanged()) == [] and sm.state is State.IDLE


def test_a_refresh_the_session_lost_ends_it_and_one_unreachable_says_so() -> None:
    sm = machine()
    logged_in(sm, jobs=0)
    again = sent(sm.handle(Tapped(Action.REFRESH)))
    sm.handle(Failed(again.tag, "unreachable", "no broker"))
    view = sm.view()
    assert view.screen is Screen.JOBS  # nobody asked on this screen: no notice
    assert "Can't reach the print service: your jobs are safe" in view.empty_reasons
    again = sent(sm.handle(Tapped(Action.REFRESH)))
    sm.handle(Failed(again.tag, "invalid_session", "expired"))
    assert sm.state is State.NOTICE and sm.session_token is None


# ---------------------------------------------------------------- why the list is empty


def test_the_list_says_why_it_is_empty() -> None:
    sm = machine()
    ident = sent(sm.handle(CardPresented("111")))
    lst = sent(sm.handle(Answered(ident.tag, m.IdentifyResult("tok", "u1", "Al", 300))))
    sm.handle(Answered(lst.tag, m.JobList((), 0, expired=2, hold_hours=24.0, unlinked=1)))
    assert sm.view().empty_reasons == (
        "2 jobs expired after 24 h on hold",
        "1 job is waiting from a computer that is not linked: link it in the portal")


def test_a_list_without_reasons_says_none() -> None:
    sm = machine()
    logged_in(sm, jobs=0)
    assert sm.view().empty_reasons == ()


# ---------------------------------------------------------------- the idle logout's countdown


def test_the_last_ten_seconds_before_the_idle_logout_count_down() -> None:
    sm = machine(idle_timeout=60)
    logged_in(sm)
    sm.handle(Tick(49.9))
    assert sm.view().countdown == ""
    sm.handle(Tick(50.2))
    assert sm.view().countdown == "Logging out in 10 s \u2014 touch to stay"
    sm.handle(Tick(55.5))
    assert sm.view().countdown == "Logging out in 5 s \u2014 touch to stay"
    logout = sent(sm.handle(Tick(60.0)))
    assert isinstance(logout.request, m.Logout) and sm.state is State.IDLE
    assert sm.view().countdown == ""


def test_a_short_idle_timeout_counts_down_its_last_third() -> None:
    sm = machine(idle_timeout=15)
    logged_in(sm)
    sm.handle(Tick(9.9))
    assert sm.view().countdown == ""
    sm.handle(Tick(10.1))
    assert sm.view().countdown == "Logging out in 5 s \u2014 touch to stay"


def test_any_touch_cancels_the_countdown_and_the_logout() -> None:
    for touch in (Tapped(Action.STAY), KeyPressed("x"), CardPresented("111")):
        sm = machine(idle_timeout=60)
        logged_in(sm)
        sm.handle(Tick(55.0))
        assert sm.view().countdown
        effects = sm.handle(touch)
        assert not any(isinstance(e, Send) and isinstance(e.request, m.Logout)
                       for e in effects)
        assert sm.view().countdown == "" and sm.state is State.JOBS, touch
        sm.handle(Tick(60.0))
        assert sm.state is State.JOBS and sm.session_token == "tok", touch
        sm.handle(Tick(105.5))
        assert sm.view().countdown == "Logging out in 10 s \u2014 touch to stay", touch


# ---------------------------------------------------------------- releasing


def test_the_engine_s_page_count_shows_per_job() -> None:
    sm = machine()
    logged_in(sm)
    released(sm, "j0", pages=12)
    assert sm.view().progress[0].detail == ""  # the engine said nothing yet: its state shows
    sm.handle(PagesPrinted("rel-1", "j0", 3))
    assert sm.view().progress[0].detail == "page 3 of 12"
    sm.handle(PagesPrinted("other", "j0", 5))  # another release's: not this one
    assert sm.view().progress[0].detail == "page 3 of 12"


def test_done_log_me_out_leaves_the_jobs_printing_for_the_printer_to_report() -> None:
    sm = machine()
    logged_in(sm)
    sel = sent(sm.handle(Tapped(Action.RELEASE_ALL)))
    assert not sm.view().can_walk_away  # nothing is printing yet that could go on alone
    assert sm.handle(Tapped(Action.WALK_AWAY)) == [] and sm.state is State.RELEASING
    sm.handle(Answered(sel.tag, m.ReleaseResult("rel-1", (
        m.ReleasedJob("j0", "J", 1, "0" * 64), m.ReleasedJob("j1", "K", 1, "0" * 64)))))
    assert sm.view().can_walk_away
    effects = sm.handle(Tapped(Action.WALK_AWAY))
    assert effects[0] == Detach("rel-1")
    assert isinstance(sent(effects).request, m.Logout)
    assert sm.view().screen is Screen.IDLE and sm.session_token is None
    # The engine's outcomes now find nobody: the printer reports them, not the session.
    assert sm.handle(JobDone("rel-1", "j0", True)) == []
    assert sm.view().screen is Screen.IDLE


# ---------------------------------------------------------------- select all


def test_select_all_becomes_deselect_all_when_everything_is_selected() -> None:
    sm = machine()
    logged_in(sm)
    assert not sm.view().all_selected
    sm.handle(Tapped(Action.SELECT, "j0"))
    sm.handle(Tapped(Action.SELECT, "j1"))
    assert not sm.view().all_selected
    sm.handle(Tapped(Action.SELECT, "j2"))
    assert sm.view().all_selected
    sm.handle(Tapped(Action.SELECT_ALL))
    assert sm.view().selected == frozenset() and not sm.view().all_selected


def test_a_list_that_could_not_be_fetched_says_the_jobs_are_safe() -> None:
    sm = machine(notice_timeout=6)
    ident = sent(sm.handle(CardPresented("111")))
    lst = sent(sm.handle(Answered(ident.tag, m.IdentifyResult("tok", "u1", "Al", 300))))
    sm.handle(Failed(lst.tag, "timeout", "no answer"))
    sm.handle(Tapped(Action.DISMISS))
    view = sm.view()
    assert view.screen is Screen.JOBS and view.jobs == ()
    assert view.empty_reasons == ("Can't reach the print service: your jobs are safe",)
    again = sent(sm.handle(Tapped(Action.REFRESH)))
    sm.handle(Answered(again.tag, m.JobList((), 0)))
    assert sm.view().empty_reasons == ()


def test_new_jobs_while_choosing_options_are_fetched_and_the_options_stay() -> None:
    sm = machine()
    logged_in(sm)
    sm.handle(Tapped(Action.SELECT, "j0"))
    sm.handle(Tapped(Action.OPTIONS))
    sm.handle(Tapped(Action.TOGGLE_DUPLEX))
    again = sent(sm.handle(JobsChanged()))
    sm.handle(Answered(again.tag, m.JobList((job(5), job(0), job(1), job(2)), 4)))
    assert sm.view().screen is Screen.OPTIONS and sm.view().options.duplex  # type: ignore[union-attr]
    sm.handle(Tapped(Action.CANCEL))
    assert [j.job_id for j in sm.view().jobs][:1] == ["j5"] and sm.view().selected == {"j0"}
