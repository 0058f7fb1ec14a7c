"""The panel renderer, drawn off-screen with SDL's dummy video driver: what a person at the copier
would notice (distinct screens, taps that land on the right job, readable rows, colours that mean
something) rather than exact pixels."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pygame
import pytest

from device_app.screens import (
    MIN_TARGET,
    PanelRenderer,
    clean_text,
    fit_text,
    format_submitted,
    render_demo_screens,
    wrap_text,
)
from device_app.view import Action, JobProgress, PanelView, Screen, Tone
from protocol.messages import JobSummary

NOW = time.mktime((2025, 3, 14, 10, 32, 0, 0, 0, -1))
SIZE = (800, 480)


@pytest.fixture(scope="module", autouse=True)
def _headless_pygame() -> Iterator[None]:
    previous = os.environ.get("SDL_VIDEODRIVER")
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    pygame.init()
    yield
    pygame.quit()
    if previous is None:
        os.environ.pop("SDL_VIDEODRIVER", None)
    else:
        os.environ["SDL_VIDEODRIVER"] = previous


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
}


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
    assert renderer.targets == ()
    assert renderer.hit((400, 240)) is None


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


def test_an_empty_list_offers_nothing_but_logout() -> None:
    renderer = drawn(jobs_view(0))
    assert [t.action for t in renderer.targets] == [Action.LOGOUT]
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

    assert renderer.apply_scroll(Action.SCROLL_DOWN)
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
    assert [p.name for p in paths] == ["panel-idle.png", "panel-jobs.png",
                                       "panel-releasing.png", "panel-notice-error.png"]
    for path in paths:
        assert path.stat().st_size > 5000
        assert pygame.image.load(path).get_size() == SIZE
