"""The panel renderer, drawn off-screen with SDL's dummy video driver: what a person at the copier
would notice (distinct screens, taps that land on the right job, readable rows, colours that mean
something) rather than exact pixels."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from pathlib import Path

import pygame
import pytest
from panel_helpers import headless_pygame  # noqa: F401 (autouse: pygame headless)

from device_app.panel import MIN_TARGET, PanelRenderer
from device_app.panel.demo import render_demo_screens
from device_app.panel.keyboard import KEY_DIGITS, KEY_LETTERS, KEY_SHIFT
from device_app.panel.text import clean_text, fit_text, fit_text_tail, format_submitted, wrap_text
from device_app.panel.tree import TextNode
from device_app.session import (
    Answered,
    CodeEntered,
    EngineChanged,
    Event,
    Failed,
    LinkChanged,
    Send,
    SessionMachine,
    Tapped,
)
from device_app.view import (
    Action,
    EntryView,
    FieldView,
    InfoRow,
    JobProgress,
    OptionsView,
    PanelView,
    Screen,
    Tone,
)
from protocol import messages as m
from protocol.engine import EngineState
from protocol.messages import JobSummary

NOW = time.mktime((2025, 3, 14, 10, 32, 0, 0, 0, -1))
SIZE = (800, 480)


def job(i: int, name: str | None = None, **kw: object) -> JobSummary:
    fields: dict[str, object] = dict(job_id=f"j{i}", name=name or f"Document {i}.pdf", pages=3,
                                     color=False, duplex=True, copies=1, size=1000,
                                     submitted_at=NOW - 600 * i, source="Laptop")
    fields.update(kw)
    return JobSummary(**fields)  # type: ignore[arg-type]


def jobs_view(n: int = 3, selected: frozenset[str] = frozenset(), total: int | None = None,
              user: str = "Ada Lovelace", jobs: tuple[JobSummary, ...] | None = None) -> PanelView:
    listed = jobs if jobs is not None else tuple(job(i) for i in range(n))
    return PanelView(Screen.JOBS, user_name=user, jobs=listed,
                     total_jobs=len(listed) if total is None else total, selected=selected,
                     device_name="Floor 3")


def code_entry(error: str = "", can_switch: bool = True, display: str = "\u2022\u2022\u2022",
               kind: str = "code") -> PanelView:
    return PanelView(Screen.ENTRY, title="Enter your access code", entry=EntryView(
        kind, (FieldView("code", "Access code", display, focused=True),), error=error,
        can_switch=can_switch))


def text_entry(email: str = "ada@example.com", error: str = "", can_switch: bool = True,
               focus: str = "username") -> PanelView:
    return PanelView(Screen.ENTRY, title="Log in with your email and password", entry=EntryView(
        "password", (FieldView("username", "Email", email, focused=focus == "username"),
                     FieldView("password", "Password", "\u2022" * 4,
                               focused=focus == "password")),
        keyboard="text", error=error, can_switch=can_switch))


def options_view(copies: int | None = 2, **kw: bool) -> PanelView:
    return PanelView(Screen.OPTIONS, title="Release 1 job with changes",
                     options=OptionsView(copies=copies, **kw), selected=frozenset({"j0"}))


ALL_SCREENS = {
    Screen.IDLE: PanelView(Screen.IDLE, device_name="Floor 3"),
    Screen.BUSY: PanelView(Screen.BUSY, title="One moment", message="Checking your badge\u2026",
                           device_name="Floor 3"),
    Screen.JOBS: jobs_view(3, selected=frozenset({"j1"})),
    Screen.RELEASING: PanelView(Screen.RELEASING, progress=(
        JobProgress("j0", "Document 0.pdf", "printed"),
        JobProgress("j1", "Document 1.pdf", "failed", "Paper jam"),
        JobProgress("j2", "Document 2.pdf", "printing"),
        JobProgress("j3", "Document 3.pdf", "waiting"),
    )),
    Screen.NOTICE: PanelView(Screen.NOTICE, tone=Tone.ERROR, title="Card not recognised",
                             message="Ask the service desk."),
    Screen.OFFLINE: PanelView(Screen.OFFLINE, message="The network is down.",
                              device_name="Floor 3"),
    Screen.ENTRY: code_entry(),
    Screen.CONFIRM: PanelView(Screen.CONFIRM, title="Delete 2 jobs?",
                              message="Deleted jobs cannot be printed.", device_name="Floor 3"),
    Screen.OPTIONS: options_view(),
    Screen.DIAGNOSTICS: PanelView(Screen.DIAGNOSTICS, title="Diagnostics",
                                  rows=(InfoRow("Last badge", heading=True),
                                        InfoRow("Raw bytes", "00 12 D6 87"))),
}


def test_the_sample_views_cover_every_screen() -> None:
    assert set(ALL_SCREENS) == set(Screen)


def pixels(surface: pygame.Surface, rect: pygame.Rect | None = None) -> bytes:
    part = surface if rect is None else surface.subsurface(rect)
    return pygame.image.tobytes(part, "RGB")


def target_rect(renderer: PanelRenderer, action: Action, job_id: str | None = None) -> pygame.Rect:
    found = [t.rect for t in renderer.targets if t.action is action and t.job_id == job_id]
    assert len(found) == 1, (action, job_id, renderer.targets)
    return found[0]


def action_at(renderer: PanelRenderer, pos: tuple[int, int]) -> Action | None:
    hit = renderer.hit(pos)
    return None if hit is None else hit[0]


def drawn(view: PanelView, size: tuple[int, int] = SIZE) -> PanelRenderer:
    renderer = PanelRenderer(size)
    renderer.draw(view, NOW)
    return renderer


# --------------------------------------------------------------------------- every screen


def test_every_screen_renders_distinctly_and_saves_as_png(tmp_path: Path) -> None:
    renderer = PanelRenderer(SIZE)
    images = {}
    for screen, view in ALL_SCREENS.items():
        renderer.draw(view, NOW)
        images[screen] = pixels(renderer.surface)
        path = tmp_path / f"{screen}.png"
        pygame.image.save(renderer.surface, path)
        assert path.stat().st_size > 3000, f"{screen} looks blank"
    for a, b in itertools.combinations(images, 2):
        assert images[a] != images[b], f"{a} and {b} look the same"


@pytest.mark.parametrize("size", [SIZE, (1024, 600), (480, 272)])
def test_every_target_is_finger_sized_on_screen_and_alone(size: tuple[int, int]) -> None:
    views = [*ALL_SCREENS.values(), jobs_view(250, selected=frozenset({"j0"}))]
    for view in views:
        renderer = drawn(view, size)
        screen_rect = renderer.surface.get_rect()
        for target in renderer.targets:
            assert target.rect.height >= MIN_TARGET, (view.screen, target)
            assert screen_rect.contains(target.rect), (view.screen, target)
        for a, b in itertools.combinations(renderer.targets, 2):
            assert not a.rect.colliderect(b.rect), (view.screen, a, b)


def test_a_tap_on_nothing_means_nothing() -> None:
    renderer = drawn(ALL_SCREENS[Screen.IDLE])
    assert renderer.hit((400, 240)) is None, "the prompt is not a button"
    badge_only = PanelView(Screen.IDLE, can_type_code=False, can_type_password=False)
    assert drawn(badge_only).targets == ()


def test_a_spinner_moves_with_time() -> None:
    renderer = PanelRenderer(SIZE)
    renderer.draw(ALL_SCREENS[Screen.BUSY], NOW)
    first = pixels(renderer.surface)
    renderer.draw(ALL_SCREENS[Screen.BUSY], NOW + 0.25)
    assert pixels(renderer.surface) != first


# --------------------------------------------------------------------------- jobs


def test_a_tap_on_a_row_selects_that_job() -> None:
    renderer = drawn(jobs_view(3))
    rows = [target_rect(renderer, Action.SELECT, f"j{i}") for i in range(3)]
    assert rows[0].top < rows[1].top < rows[2].top, "rows are in list order, top down"
    for i, row in enumerate(rows):
        assert renderer.hit(row.center) == (Action.SELECT, f"j{i}")
        assert renderer.hit((row.left + 5, row.bottom - 2)) == (Action.SELECT, f"j{i}")


def test_release_acts_on_a_selection_only() -> None:
    renderer = drawn(jobs_view(3, selected=frozenset({"j0", "j2"})))
    assert renderer.hit(target_rect(renderer, Action.RELEASE).center) == (Action.RELEASE, None)
    for action in (Action.RELEASE_ALL, Action.SELECT_ALL, Action.LOGOUT):
        assert action_at(renderer, target_rect(renderer, action).center) is action

    # Nothing selected: the button is drawn greyed and a tap on it does nothing.
    release = target_rect(renderer, Action.RELEASE)
    renderer.draw(jobs_view(3), NOW)
    assert renderer.hit(release.center) is None


def test_an_empty_list_offers_nothing_but_refresh_and_logout() -> None:
    # Refresh: a job sent a moment ago may be on its way (screens/jobs.py).
    renderer = drawn(jobs_view(0))
    assert [t.action for t in renderer.targets] == [Action.REFRESH, Action.LOGOUT]
    assert pixels(renderer.surface) != pixels(drawn(jobs_view(3)).surface)


def test_a_selected_job_has_a_ticked_box() -> None:
    plain = drawn(jobs_view(3))
    ticked = drawn(jobs_view(3, selected=frozenset({"j0"})))
    for i, expect_change in ((0, True), (1, False)):
        row = target_rect(plain, Action.SELECT, f"j{i}")
        checkbox = pygame.Rect(row.left, row.top, 72, row.height)
        changed = pixels(plain.surface, checkbox) != pixels(ticked.surface, checkbox)
        assert changed is expect_change, f"row {i}"


def test_a_partial_list_says_how_many_there_are() -> None:
    complete = drawn(jobs_view(3, total=3))
    partial = drawn(jobs_view(3, total=40))
    header = pygame.Rect(0, 0, SIZE[0], target_rect(complete, Action.SELECT, "j0").top)
    assert pixels(complete.surface, header) != pixels(partial.surface, header)


def test_a_long_name_stays_inside_its_column() -> None:
    long_name = "Quarterly report " + "very " * 60 + "final.pdf"
    short = drawn(jobs_view(jobs=(job(0, "Q.pdf"),)))
    long = drawn(jobs_view(jobs=(job(0, long_name),)))
    row = target_rect(short, Action.SELECT, "j0")
    # The right of the row holds the time and source; a name that overflowed would show there.
    right = pygame.Rect(row.right - 170, row.top, 170, row.height)
    assert pixels(short.surface, right) == pixels(long.surface, right)
    assert pixels(short.surface, row) != pixels(long.surface, row)


def test_names_from_the_wire_cannot_break_the_panel() -> None:
    for name in ("a\x00b", "two\nlines", "lone \ud800 surrogate", "\U0001f5a8 printer", ""):
        renderer = drawn(jobs_view(jobs=(job(0, name),)))
        assert renderer.hit(target_rect(renderer, Action.SELECT, "j0").center) == (
            Action.SELECT, "j0")


# --------------------------------------------------------------------------- a long list


def test_a_long_list_draws_only_what_fits_and_scrolls() -> None:
    view = jobs_view(250, total=400)
    renderer = PanelRenderer(SIZE)
    renderer.draw(view, NOW)
    started = time.perf_counter()
    for _ in range(5):
        renderer.draw(view, NOW)
    assert (time.perf_counter() - started) / 5 < 0.1

    rows = [t for t in renderer.targets if t.action is Action.SELECT]
    assert 3 <= len(rows) <= 10
    first_row = rows[0].rect.center
    assert renderer.hit(first_row) == (Action.SELECT, "j0")
    down = target_rect(renderer, Action.SCROLL_DOWN).center
    assert action_at(renderer, down) is Action.SCROLL_DOWN
    assert not any(t.action is Action.SCROLL_UP for t in renderer.targets), "already at the top"

    # A click on the arrow scrolls on the glass and tells the session nothing; a click on a row
    # is the tap the session hears.
    assert renderer.click(first_row) == (Action.SELECT, "j0")
    assert renderer.click(down) is None
    renderer.draw(view, NOW)
    hit = renderer.hit(first_row)
    assert hit is not None and hit[0] is Action.SELECT
    below = int(hit[1].removeprefix("j"))  # type: ignore[union-attr]
    assert 0 < below < len(rows), "a page down keeps the last row in view"

    while renderer.apply_scroll(Action.SCROLL_DOWN):
        pass
    renderer.draw(view, NOW)
    last = [t for t in renderer.targets if t.action is Action.SELECT][-1]
    assert last.job_id == "j249"
    assert not any(t.action is Action.SCROLL_DOWN for t in renderer.targets), "at the bottom"

    while renderer.apply_scroll(Action.SCROLL_UP):
        pass
    renderer.draw(view, NOW)
    assert renderer.hit(first_row) == (Action.SELECT, "j0")
    assert not renderer.apply_scroll(Action.RELEASE)


def test_the_next_person_starts_at_the_top() -> None:
    renderer = PanelRenderer(SIZE)
    renderer.draw(jobs_view(50), NOW)
    first_row = target_rect(renderer, Action.SELECT, "j0").center
    renderer.apply_scroll(Action.SCROLL_DOWN)
    renderer.draw(jobs_view(50), NOW)
    assert renderer.hit(first_row) != (Action.SELECT, "j0")

    renderer.draw(ALL_SCREENS[Screen.IDLE], NOW)
    renderer.draw(jobs_view(50), NOW)
    assert renderer.hit(first_row) == (Action.SELECT, "j0")


def test_a_shrinking_list_keeps_the_scroll_in_range() -> None:
    renderer = PanelRenderer(SIZE)
    renderer.draw(jobs_view(50), NOW)
    renderer.scroll = 45
    renderer.draw(jobs_view(2), NOW)
    assert renderer.scroll == 0
    assert {t.job_id for t in renderer.targets if t.action is Action.SELECT} == {"j0", "j1"}


# --------------------------------------------------------------------------- other screens


def test_an_error_notice_is_red_and_a_success_green() -> None:
    error = drawn(PanelView(Screen.NOTICE, tone=Tone.ERROR, title="Card not recognised"))
    ok = drawn(PanelView(Screen.NOTICE, tone=Tone.OK, title="Sent to the printer"))
    er, eg, _eb, _ = pygame.transform.average_color(error.surface)
    okr, okg, _okb, _ = pygame.transform.average_color(ok.surface)
    assert er > eg + 20
    assert okg > okr + 20


def test_a_notice_is_dismissed_with_ok() -> None:
    renderer = drawn(ALL_SCREENS[Screen.NOTICE])
    assert renderer.hit(target_rect(renderer, Action.DISMISS).center) == (Action.DISMISS, None)


def test_offline_offers_retry() -> None:
    renderer = drawn(ALL_SCREENS[Screen.OFFLINE])
    assert [t.action for t in renderer.targets] == [Action.RETRY]
    assert renderer.hit(target_rect(renderer, Action.RETRY).center) == (Action.RETRY, None)


def test_release_progress_is_colour_coded() -> None:
    def row_colour(state: str) -> tuple[int, int, int]:
        renderer = drawn(PanelView(Screen.RELEASING, progress=(
            JobProgress("j0", "Document.pdf", state, "detail"),)))
        row = pygame.Rect(0, 72, SIZE[0], 64)
        r, g, b, _ = pygame.transform.average_color(renderer.surface, row)
        return r, g, b

    failed, printed = row_colour("failed"), row_colour("printed")
    assert failed[0] - failed[1] > printed[0] - printed[1] + 10


def test_release_progress_copes_with_many_jobs() -> None:
    progress = tuple(JobProgress(f"j{i}", f"Doc {i}", "printed" if i < 30 else "waiting")
                     for i in range(60))
    renderer = drawn(PanelView(Screen.RELEASING, progress=progress, message="Printing"))
    assert renderer.targets == ()


# --------------------------------------------------------------------------- every button


def selected_with_more(engine_problem: str = "") -> PanelView:
    return replace(jobs_view(2, selected=frozenset({"j0"}), total=40), can_load_more=True,
                   engine_problem=engine_problem)


#: Each screen, drawn as the session would send it, and every action its buttons must offer.
BUTTONS: list[tuple[str, PanelView, set[Action]]] = [
    ("idle", ALL_SCREENS[Screen.IDLE], {Action.ENTER_CODE, Action.ENTER_PASSWORD}),
    ("keypad", code_entry(), {Action.CANCEL, Action.FOCUS, Action.KEY, Action.SWITCH_ENTRY}),
    ("keyboard", text_entry(), {Action.CANCEL, Action.FOCUS, Action.KEY, Action.SWITCH_ENTRY}),
    ("jobs", selected_with_more(engine_problem="Paper jam: clear the jam and try again."),
     {Action.LOGOUT, Action.REFRESH, Action.SELECT, Action.SELECT_ALL, Action.RELEASE,
      Action.RELEASE_ALL, Action.DELETE, Action.OPTIONS, Action.LOAD_MORE}),
    ("long jobs", jobs_view(40, selected=frozenset({"j0"})),
     {Action.LOGOUT, Action.REFRESH, Action.SELECT, Action.SELECT_ALL, Action.RELEASE,
      Action.RELEASE_ALL, Action.DELETE, Action.OPTIONS, Action.SCROLL_DOWN}),
    ("options", options_view(), {Action.TOGGLE_GRAYSCALE, Action.TOGGLE_DUPLEX,
                                 Action.COPIES_UP, Action.COPIES_DOWN, Action.CANCEL,
                                 Action.RELEASE}),
    ("confirm", ALL_SCREENS[Screen.CONFIRM], {Action.CONFIRM, Action.CANCEL}),
    ("notice", ALL_SCREENS[Screen.NOTICE], {Action.DISMISS}),
    ("offline", ALL_SCREENS[Screen.OFFLINE], {Action.RETRY}),
]


@pytest.mark.parametrize(("name", "view", "actions"), BUTTONS, ids=[b[0] for b in BUTTONS])
def test_every_button_a_screen_needs_answers_its_action(name: str, view: PanelView,
                                                        actions: set[Action]) -> None:
    renderer = drawn(view)
    assert {t.action for t in renderer.targets} == actions
    for target in renderer.targets:
        if target.job_id in (KEY_SHIFT, KEY_LETTERS, KEY_DIGITS):
            continue  # the renderer's own keys: see the keyboard tests
        assert renderer.hit(target.rect.center) == (target.action, target.job_id)


def test_the_confirm_delete_button_is_red() -> None:
    renderer = drawn(ALL_SCREENS[Screen.CONFIRM])
    red = pygame.transform.average_color(renderer.surface, target_rect(renderer, Action.CONFIRM))
    keep = pygame.transform.average_color(renderer.surface, target_rect(renderer, Action.CANCEL))
    assert red[0] > red[1] + 60 and abs(keep[0] - keep[1]) < 20


BIG_VIEWS = [view for _name, view, _actions in BUTTONS] + [
    code_entry(error="Code not recognised " * 20), text_entry(error="x " * 200),
    options_view(None), options_view(99, grayscale=True, duplex=True),
    replace(selected_with_more(), can_change=False), jobs_view(250, selected=frozenset({"j0"})),
]


@pytest.mark.parametrize("size", [SIZE, (1024, 600)])
def test_every_new_target_is_finger_sized_both_ways_and_alone(size: tuple[int, int]) -> None:
    for view in BIG_VIEWS:
        for keys in ((), (KEY_LETTERS,), (KEY_SHIFT,)):
            renderer = drawn(view, size)
            for key in keys:
                if any(t.job_id == key for t in renderer.targets):
                    renderer.hit(target_rect(renderer, Action.KEY, key).center)
                    renderer.draw(view, NOW)
            screen_rect = renderer.surface.get_rect()
            for target in renderer.targets:
                assert min(target.rect.size) >= 44, (view.screen, target)
                assert target.rect.height >= MIN_TARGET, (view.screen, target)
                assert screen_rect.contains(target.rect), (view.screen, target)
            for a, b in itertools.combinations(renderer.targets, 2):
                assert not a.rect.colliderect(b.rect), (view.screen, a, b)


# --------------------------------------------------------------------------- buttons hidden


def actions_of(view: PanelView) -> set[Action]:
    return {t.action for t in drawn(view).targets}


def test_idle_offers_only_the_ways_in_the_device_allows() -> None:
    both = ALL_SCREENS[Screen.IDLE]
    assert {Action.ENTER_CODE, Action.ENTER_PASSWORD} <= actions_of(both)
    assert actions_of(replace(both, can_type_code=False)) == {Action.ENTER_PASSWORD}
    assert actions_of(replace(both, can_type_password=False)) == {Action.ENTER_CODE}


def test_jobs_offer_changes_and_more_only_when_the_view_says_so() -> None:
    assert Action.OPTIONS not in actions_of(replace(selected_with_more(), can_change=False))
    assert Action.DELETE in actions_of(replace(selected_with_more(), can_change=False))
    assert Action.LOAD_MORE not in actions_of(replace(selected_with_more(),
                                                      can_load_more=False))
    nothing_chosen = actions_of(replace(selected_with_more(), selected=frozenset()))
    assert not nothing_chosen & {Action.DELETE, Action.OPTIONS, Action.RELEASE}


def test_load_more_is_the_row_after_the_last_job() -> None:
    view = replace(jobs_view(40, total=400), can_load_more=True)
    renderer = drawn(view)
    assert Action.LOAD_MORE not in {t.action for t in renderer.targets}
    while renderer.apply_scroll(Action.SCROLL_DOWN):
        pass
    renderer.draw(view, NOW)
    more = target_rect(renderer, Action.LOAD_MORE)
    assert more.top > target_rect(renderer, Action.SELECT, "j39").bottom


def test_an_engine_problem_is_a_banner_and_release_stays() -> None:
    plain = drawn(jobs_view(3, selected=frozenset({"j0"})))
    jammed = drawn(replace(jobs_view(3, selected=frozenset({"j0"})),
                           engine_problem="Paper jam: clear the jam and try again."))
    first = target_rect(plain, Action.SELECT, "j0")
    assert target_rect(jammed, Action.SELECT, "j0").top >= first.top + 44, "room for the banner"
    banner = pygame.Rect(0, first.top, SIZE[0], 44)
    r, _g, b, _ = pygame.transform.average_color(jammed.surface, banner)
    assert r > b + 40, "amber"
    for action in (Action.RELEASE, Action.RELEASE_ALL):
        assert target_rect(jammed, action) == target_rect(plain, action)


def test_entry_offers_the_other_way_in_only_when_it_can() -> None:
    for view in (code_entry(can_switch=False), text_entry(can_switch=False)):
        assert Action.SWITCH_ENTRY not in actions_of(view)


def test_copies_cannot_go_below_as_sent() -> None:
    assert Action.COPIES_DOWN not in actions_of(options_view(None))
    assert Action.COPIES_UP not in actions_of(options_view(99))


def test_an_entry_without_fields_still_offers_cancel() -> None:
    assert actions_of(PanelView(Screen.ENTRY, title="Enter your PIN")) == {Action.CANCEL}


# --------------------------------------------------------------------------- keyboards


def press(renderer: PanelRenderer, key: str, view: PanelView) -> tuple[Action, str | None] | None:
    """Tap the key labelled ``key`` as a finger would, then draw the next frame."""
    result = renderer.hit(target_rect(renderer, Action.KEY, key).center)
    renderer.draw(view, NOW)
    return result


def test_the_keypad_types_digits_and_edits() -> None:
    view = code_entry()
    renderer = drawn(view)
    for key in "0123456789":
        assert press(renderer, key, view) == (Action.KEY, key)
    for key in ("BACKSPACE", "CLEAR", "ENTER"):
        assert press(renderer, key, view) == (Action.KEY, key)
    seven, eight = target_rect(renderer, Action.KEY, "7"), target_rect(renderer, Action.KEY, "8")
    # <=: keys answer for half the gap around them, so their areas touch (keyboard.py).
    assert seven.right <= eight.left and seven.top == eight.top, "in calculator order"


def test_the_keypad_shows_letters_on_demand() -> None:
    view = code_entry()
    renderer = drawn(view)
    assert press(renderer, KEY_LETTERS, view) is None, "a matter for the glass only"
    letters = {t.job_id for t in renderer.targets if t.action is Action.KEY}
    assert {chr(c) for c in range(ord("A"), ord("Z") + 1)} <= letters
    assert {"BACKSPACE", "CLEAR", "ENTER", KEY_DIGITS} <= letters
    assert press(renderer, "Q", view) == (Action.KEY, "Q")
    assert press(renderer, KEY_DIGITS, view) is None
    assert press(renderer, "7", view) == (Action.KEY, "7")


def test_the_keypad_forgets_letters_when_the_entry_ends() -> None:
    view = code_entry()
    renderer = drawn(view)
    press(renderer, KEY_LETTERS, view)
    renderer.draw(ALL_SCREENS[Screen.BUSY], NOW)
    renderer.draw(view, NOW)
    assert renderer.hit(target_rect(renderer, Action.KEY, "7").center) == (Action.KEY, "7")


def test_the_keyboard_types_an_address() -> None:
    view = text_entry()
    renderer = drawn(view)
    for key in ("a", "z", "5", "@", ".", "-", "_", " ", "ENTER", "BACKSPACE", "TAB"):
        assert press(renderer, key, view) == (Action.KEY, key)


def test_shift_gives_one_capital() -> None:
    view = text_entry()
    renderer = drawn(view)
    plain = pixels(renderer.surface)
    assert press(renderer, KEY_SHIFT, view) is None
    assert pixels(renderer.surface) != plain, "the keys show capitals"
    assert press(renderer, "A", view) == (Action.KEY, "A")
    assert press(renderer, "a", view) == (Action.KEY, "a"), "Shift held for one letter"
    press(renderer, KEY_SHIFT, view)
    press(renderer, KEY_SHIFT, view)
    assert press(renderer, "b", view) == (Action.KEY, "b"), "Shift twice is off again"


def test_a_tap_on_a_field_focuses_it() -> None:
    renderer = drawn(text_entry(focus="username"))
    password = target_rect(renderer, Action.FOCUS, "password")
    assert renderer.hit(password.center) == (Action.FOCUS, "password")
    email = target_rect(renderer, Action.FOCUS, "username")
    assert email.right < password.left and email.width > password.width


def test_the_focused_field_is_marked() -> None:
    one, other = drawn(text_entry(focus="username")), drawn(text_entry(focus="password"))
    email = target_rect(one, Action.FOCUS, "username")
    assert pixels(one.surface, email) != pixels(other.surface, email)


def changed_area(a: pygame.Surface, b: pygame.Surface) -> pygame.Rect | None:
    """The smallest rectangle holding every pixel that differs between two frames."""
    diff, back = a.copy(), b.copy()
    diff.blit(b, (0, 0), special_flags=pygame.BLEND_RGB_SUB)
    back.blit(a, (0, 0), special_flags=pygame.BLEND_RGB_SUB)
    diff.blit(back, (0, 0), special_flags=pygame.BLEND_RGB_ADD)
    mask = pygame.mask.from_threshold(diff, (0, 0, 0), (1, 1, 1, 255))
    mask.invert()
    rects = mask.get_bounding_rects()
    return rects[0].unionall(rects[1:]) if rects else None


def test_a_long_email_stays_in_its_field() -> None:
    short = drawn(text_entry("a@b.c"))
    long = drawn(text_entry("ada.augusta.king.countess.of.lovelace@" + "analytical" * 20
                            + ".example.com"))
    field = target_rect(short, Action.FOCUS, "username")
    area = changed_area(short.surface, long.surface)
    assert area is not None and field.contains(area)


def test_a_long_error_stays_in_its_box() -> None:
    for make in (code_entry, text_entry):
        clean = drawn(make())
        noisy = drawn(make(error="Something went wrong with a very long explanation " * 12))
        area = changed_area(clean.surface, noisy.surface)
        assert area is not None
        for target in clean.targets:
            assert not area.colliderect(target.rect), (make.__name__, target)
        assert noisy.targets == clean.targets


def test_fit_text_tail_keeps_the_end() -> None:
    font = pygame.font.Font(None, 36)
    cut = fit_text_tail(font, "someone@" + "x" * 200 + ".example.com", 300)
    assert cut.startswith("\u2026") and cut.endswith(".example.com")
    assert font.size(cut)[0] <= 300
    assert fit_text_tail(font, "short", 300) == "short"


# --------------------------------------------------------------------------- a real session


def test_a_session_drawn_at_every_step() -> None:
    """A SessionMachine driven through taps on the drawn panel: each tap is taken from the
    last frame with hit(), so the screens and the session agree on what buttons mean."""
    ids = itertools.count()
    sm = SessionMachine(new_id=lambda: f"r{next(ids)}", device_name="Floor 3")
    renderer = PanelRenderer(SIZE)
    seen: set[Screen] = set()
    sent: list[Send] = []

    def draw() -> PanelView:
        view = sm.view()
        renderer.draw(view, NOW)
        seen.add(view.screen)
        return view

    def feed(event: Event) -> None:
        sent.extend(e for e in sm.handle(event) if isinstance(e, Send))
        draw()

    def tap(action: Action, subject: str | None = None) -> None:
        result = renderer.hit(target_rect(renderer, action, subject).center)
        if result is not None:  # None: Shift or A-Z, the renderer's own
            feed(Tapped(*result))
        else:
            draw()

    def answer(result: m.Result) -> None:
        feed(Answered(sent.pop().tag, result))

    draw()
    tap(Action.ENTER_CODE)
    assert sm.view().screen is Screen.ENTRY
    for key in ("1", "2", KEY_LETTERS, "B", "BACKSPACE", KEY_DIGITS, "3", "ENTER"):
        tap(Action.KEY, key)
    assert sm.view().screen is Screen.BUSY
    feed(Failed(sent.pop().tag, "unknown_code", "no such code"))
    entry = sm.view().entry
    assert entry is not None and entry.error, "a wrong code is typed again in place"

    tap(Action.SWITCH_ENTRY)
    entry = sm.view().entry
    assert entry is not None and entry.keyboard == "text"
    for key in ("a", "@", "b", ".", "c", "TAB", KEY_SHIFT, "P", "w", "ENTER"):
        tap(Action.KEY, key)
    request = sent[-1].request
    assert isinstance(request, m.Identify) and request.username == "a@b.c"
    assert request.value == "Pw"
    answer(m.IdentifyResult("tok", "u1", "Ada Lovelace", 300))
    answer(m.JobList(tuple(job(i) for i in range(3)), 5))
    tap(Action.LOAD_MORE)
    answer(m.JobList((job(3),), 5, offset=3))

    tap(Action.SELECT, "j0")
    tap(Action.OPTIONS)
    tap(Action.TOGGLE_GRAYSCALE)
    tap(Action.COPIES_UP)
    tap(Action.COPIES_DOWN)
    tap(Action.CANCEL)
    tap(Action.DELETE)
    assert sm.view().screen is Screen.CONFIRM
    tap(Action.CANCEL)
    feed(EngineChanged(EngineState.JAM))
    assert sm.view().engine_problem
    tap(Action.RELEASE)
    assert sm.view().screen is Screen.NOTICE
    tap(Action.DISMISS)
    feed(EngineChanged(EngineState.READY))
    tap(Action.RELEASE)
    answer(m.ReleaseResult("rel-1", (m.ReleasedJob("j0", "Document 0.pdf", 1, "0" * 64),)))
    assert sm.view().screen is Screen.RELEASING

    offline = SessionMachine(new_id=lambda: "x")
    offline.handle(LinkChanged(up=False))
    renderer.draw(offline.view(), NOW)
    seen.add(offline.view().screen)

    # A technician's code opens the diagnostics, drawn like any screen.
    tech = SessionMachine(new_id=lambda: "t")
    effects = tech.handle(CodeEntered("5550123456"))
    request = next(e for e in effects if isinstance(e, Send))
    tech.handle(Answered(request.tag, m.IdentifyResult("-", "t1", "", 300,
                                                       role=m.ROLE_TECHNICIAN)))
    assert tech.view().screen is Screen.DIAGNOSTICS
    renderer.draw(tech.view(), NOW)
    seen.add(tech.view().screen)
    assert seen == set(Screen)


# --------------------------------------------------------------------------- helpers


def test_fit_text_keeps_what_fits_and_cuts_the_rest() -> None:
    font = pygame.font.Font(None, 36)
    assert fit_text(font, "Short", 300) == "Short"
    cut = fit_text(font, "A very long document name " * 10, 300)
    assert cut.endswith("\u2026") and cut.startswith("A very")
    assert font.size(cut)[0] <= 300
    assert fit_text(font, "anything", 2) == ""


def test_wrap_text_fits_lines_and_marks_what_is_left_out() -> None:
    font = pygame.font.Font(None, 36)
    text = "This badge is not registered for printing. Ask the service desk for help."
    lines = wrap_text(font, text, 260, 2)
    assert len(lines) == 2 and lines[-1].endswith("\u2026")
    assert all(font.size(line)[0] <= 260 for line in lines)
    assert " ".join(wrap_text(font, text, 2000, 3)) == text


def test_clean_text_makes_anything_drawable() -> None:
    assert clean_text("plain name.pdf") == "plain name.pdf"
    assert clean_text("a\nb\x00c\ud800") == "a b c\ufffd"


def test_submission_time_is_a_clock_today_and_a_date_before() -> None:
    today = time.mktime((2025, 3, 14, 9, 5, 0, 0, 0, -1))
    yesterday = time.mktime((2025, 3, 13, 23, 59, 0, 0, 0, -1))
    last_year = time.mktime((2024, 12, 31, 12, 0, 0, 0, 0, -1))
    assert format_submitted(today, NOW) == "09:05"
    assert format_submitted(yesterday, NOW) == "13 Mar"
    assert format_submitted(last_year, NOW) == "31 Dec 2024"
    assert format_submitted(1e300, NOW) == ""


def test_demo_screens_are_written(tmp_path: Path) -> None:
    paths = render_demo_screens(tmp_path / "shots")
    assert [p.name for p in paths] == [
        "panel-idle.png", "panel-busy.png", "panel-jobs.png", "panel-jobs-result.png",
        "panel-jobs-engine.png", "panel-keypad.png", "panel-keypad-letters.png",
        "panel-keyboard.png", "panel-keyboard-shift.png", "panel-options.png",
        "panel-confirm.png", "panel-releasing.png", "panel-offline.png",
        "panel-notice-error.png"]
    for path in paths:
        assert path.stat().st_size > 5000
        assert pygame.image.load(path).get_size() == SIZE
    # In German every picture differs: its words are German (the layout tests check which).
    german = render_demo_screens(tmp_path / "de", language="de")
    for en, de in zip(paths, german, strict=True):
        assert pixels(pygame.image.load(en)) != pixels(pygame.image.load(de)), en.name


@pytest.mark.parametrize("size", [SIZE, (480, 800), (1280, 800)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_each_option_says_what_it_does_and_what_as_sent_keeps(size: tuple[int, int]) -> None:
    def lines_in_row(view: PanelView, action: Action) -> str:
        renderer = drawn(view, size)
        row = next(t.rect for t in renderer.targets if t.action is action)
        words = [n.text for n in renderer.tree if isinstance(n, TextNode)
                 and row.contains(pygame.Rect(n.rect))]
        return " ".join(words)

    changed = options_view(3, grayscale=True, duplex=True)
    assert "saves colour toner" in lines_in_row(changed, Action.TOGGLE_GRAYSCALE)
    assert "both sides of the paper" in lines_in_row(changed, Action.TOGGLE_DUPLEX)
    as_sent = options_view(None)
    assert "keeps its own colours" in lines_in_row(as_sent, Action.TOGGLE_GRAYSCALE)
    assert "keeps its own sides" in lines_in_row(as_sent, Action.TOGGLE_DUPLEX)
    # Copies has no whole-row target (its - and + are); its words sit left of -.
    for view, words in ((changed, "How many of each job"), (as_sent, "each keeps its own")):
        renderer = drawn(view, size)
        assert any(words in n.source for n in renderer.tree if isinstance(n, TextNode)), words


@pytest.mark.parametrize("size", [SIZE, (480, 800)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_extra_copies_are_the_detail_narrow_glass_keeps(size: tuple[int, int]) -> None:
    many = JobSummary(job_id="j9", name="Team offsite agenda.docx", pages=3, color=False,
                      duplex=True, copies=12, size=1000, submitted_at=NOW - 60)
    renderer = drawn(PanelView(Screen.JOBS, user_name="Ada", jobs=(many,), total_jobs=1), size)
    shown = [n.text for n in renderer.tree if isinstance(n, TextNode)]
    assert "12 copies" in shown, shown
