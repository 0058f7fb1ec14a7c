"""The job list and releasing screens of issue 10, through the real renderer (pygame, headless):
the result line in its tone's colour and dismissed by a tap, the idle countdown that catches any
touch, why a list is empty, Refresh, "Deselect all", page progress and "Done, log me out". At the
design size and on the other glass a copier may have (full HD, portrait)."""

from __future__ import annotations

import time
from dataclasses import replace

import pygame
import pytest
from panel_helpers import headless_pygame  # noqa: F401 (autouse: pygame headless)
from test_session import logged_in, machine, sent

from device_app.panel import PanelRenderer
from device_app.panel.theme import TONE_STRONG, TONE_TINT
from device_app.panel.tree import TextNode
from device_app.session import Answered, Tapped, Tick
from device_app.view import Action, JobProgress, OptionsView, PanelView, Screen, Tone
from protocol import messages as m
from protocol.messages import JobSummary

NOW = time.mktime((2025, 3, 14, 10, 32, 0, 0, 0, -1))
SIZES = [(800, 480), (1920, 1080), (480, 800)]


def job(i: int) -> JobSummary:
    return JobSummary(job_id=f"j{i}", name=f"Document {i}.pdf", pages=3, color=False,
                      duplex=True, copies=1, size=1000, submitted_at=NOW - 600 * i)


def jobs_view(n: int = 3, **kw: object) -> PanelView:
    listed = tuple(job(i) for i in range(n))
    return PanelView(Screen.JOBS, user_name="Ada", jobs=listed, total_jobs=n,
                     **kw)  # type: ignore[arg-type]


def drawn(view: PanelView, size: tuple[int, int] = (800, 480)) -> PanelRenderer:
    renderer = PanelRenderer(size)
    renderer.draw(view, NOW)
    return renderer


def texts(renderer: PanelRenderer) -> list[TextNode]:
    return [n for n in renderer.tree if isinstance(n, TextNode)]


def said(renderer: PanelRenderer, words: str) -> TextNode:
    """The text node that shows ``words`` (whole, or the message a wrapped line is from)."""
    found = [n for n in texts(renderer) if words in (n.text, n.source)]
    assert found, f"{words!r} not drawn; drawn: {[n.text for n in texts(renderer)]}"
    return found[0]


def target(renderer: PanelRenderer, action: Action) -> pygame.Rect:
    [rect] = [t.rect for t in renderer.targets if t.action is action]
    return rect


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(("tone", "message"), [(Tone.OK, "2 printed"), (
    Tone.ERROR, "1 failed: paper jam, it is still held")])
def test_the_result_line_shows_in_its_tone_and_a_tap_dismisses_it(
        size: tuple[int, int], tone: Tone, message: str) -> None:
    renderer = drawn(jobs_view(message=message, tone=tone), size)
    line = said(renderer, message)
    assert line.bg == TONE_TINT[tone]
    banner = target(renderer, Action.DISMISS)
    assert banner.width == size[0]  # across the glass, at any size
    # The tone's strong colour marks its left edge: an error reads as one before it is read.
    assert renderer.surface.get_at((1, banner.centery))[:3] == TONE_STRONG[tone]
    assert renderer.hit(banner.center) == (Action.DISMISS, None)


def test_no_result_line_no_banner() -> None:
    renderer = drawn(jobs_view())
    assert all(t.action is not Action.DISMISS for t in renderer.targets)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_countdown_shows_and_any_touch_anywhere_only_stays(size: tuple[int, int]) -> None:
    view = jobs_view(countdown="Logging out in 7 s \u2014 touch to stay",
                     selected=frozenset({"j0"}))
    renderer = drawn(view, size)
    said(renderer, view.countdown)
    # A finger heading for Release, a job row or Log out only says "I am still here".
    calm = drawn(jobs_view(selected=frozenset({"j0"})), size)
    glass = renderer.surface.get_rect()
    for action in (Action.RELEASE, Action.SELECT, Action.LOGOUT):
        spot = next(t.rect for t in calm.targets if t.action is action).center
        assert glass.collidepoint(spot), action
        assert renderer.hit(spot) == (Action.STAY, None), action
    assert renderer.hit((0, 0)) == (Action.STAY, None)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_an_empty_list_says_why(size: tuple[int, int]) -> None:
    reasons = ("2 jobs expired after 24 h on hold",
               "1 job is waiting from a computer that is not linked: link it in the portal")
    renderer = drawn(jobs_view(0, empty_reasons=reasons), size)
    said(renderer, "No jobs waiting")
    for reason in reasons:
        line = said(renderer, reason)
        assert line.rect[0] >= 0 and line.rect[0] + line.rect[2] <= size[0]
    plain = drawn(jobs_view(0), size)
    said(plain, "Jobs you send to secure print wait here for you.")


def test_refresh_is_offered_and_select_all_turns_into_deselect_all() -> None:
    renderer = drawn(jobs_view())
    assert renderer.hit(target(renderer, Action.REFRESH).center) == (Action.REFRESH, None)
    said(renderer, "Select all")
    every = drawn(jobs_view(selected=frozenset({"j0", "j1", "j2"}), all_selected=True))
    said(every, "Deselect all")
    assert every.hit(target(every, Action.SELECT_ALL).center) == (Action.SELECT_ALL, None)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_releasing_shows_pages_and_offers_to_walk_away(size: tuple[int, int]) -> None:
    view = PanelView(Screen.RELEASING, title="Releasing", can_walk_away=True, progress=(
        JobProgress("j0", "Report.pdf", "printing", "page 3 of 12", pages=12, pages_done=3),
        JobProgress("j1", "Memo.pdf", "waiting")))
    renderer = drawn(view, size)
    said(renderer, "page 3 of 12")
    said(renderer, "Done, log me out")
    done = target(renderer, Action.WALK_AWAY)
    assert done.bottom <= size[1] and renderer.hit(done.center) == (Action.WALK_AWAY, None)
    early = drawn(PanelView(Screen.RELEASING, progress=view.progress), size)
    assert all(t.action is not Action.WALK_AWAY for t in early.targets)


def test_the_session_s_result_line_is_drawn_and_a_tap_on_it_clears_it() -> None:
    # The machine's view, drawn; the tap the renderer finds goes back into the machine.
    sm = machine(notice_timeout=6, idle_timeout=600)
    logged_in(sm)
    sm.handle(Tapped(Action.SELECT, "j0"))
    sm.handle(Tapped(Action.DELETE))
    delete = sent(sm.handle(Tapped(Action.CONFIRM)))
    relist = sent(sm.handle(Answered(delete.tag, m.Ack())))
    sm.handle(Answered(relist.tag, m.JobList((job(1), job(2)), 2)))
    renderer = drawn(sm.view())
    said(renderer, "1 deleted")
    hit = renderer.hit(target(renderer, Action.DISMISS).center)
    assert hit is not None
    sm.handle(Tapped(*hit))
    renderer = drawn(sm.view())
    assert all(n.text != "1 deleted" for n in texts(renderer))
    # The countdown the machine shows is the one the screen draws.
    sm.handle(Tick(595.0))
    said(drawn(sm.view()), "Logging out in 5 s \u2014 touch to stay")


COUNTDOWN = "Logging out in 7 s \u2014 touch to stay"
#: Every other screen a session can sit on while the idle logout counts, with the words on
#: its buttons that must stay readable above the band.
SITTING = {
    "options": (PanelView(Screen.OPTIONS, title="Release 1 job with changes",
                          options=OptionsView(grayscale=True), selected=frozenset({"j0"}),
                          countdown=COUNTDOWN), ("Release", "Cancel")),
    "confirm": (PanelView(Screen.CONFIRM, title="Delete 1 job?",
                          message="Deleted jobs cannot be printed.",
                          selected=frozenset({"j0"}), countdown=COUNTDOWN), ("Keep", "Delete")),
    "offline": (PanelView(Screen.OFFLINE, device_name="Floor 3", countdown=COUNTDOWN),
                ("Retry",)),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", SITTING)
def test_the_countdown_shows_on_every_screen_and_a_touch_only_stays(
        name: str, size: tuple[int, int]) -> None:
    view, buttons = SITTING[name]
    renderer = drawn(view, size)
    band = said(renderer, COUNTDOWN)
    glass = renderer.surface.get_rect()
    assert glass.contains(pygame.Rect(band.rect))
    # Where the screen's buttons are without the countdown, a touch now only stays: Delete on
    # the question must not delete while the panel is about to log out.
    calm = drawn(replace(view, countdown=""), size)
    assert calm.targets
    for t in calm.targets:
        assert renderer.hit(t.rect.center) == (Action.STAY, None), t.action
    # The buttons are still there to be read, beside the band, not under it (the band is a
    # 9 mm strip centred on its words).
    strip = renderer.canvas.tap(64)
    top = band.rect[1] + band.rect[3] // 2 - strip // 2
    for label in buttons:
        word = said(renderer, label)
        assert (word.rect[1] + word.rect[3] <= top or word.rect[1] >= top + strip), (
            label, word.rect, band.rect)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_long_result_line_is_shown_whole(size: tuple[int, int]) -> None:
    """"..., it is still held" is the part a person must not lose: narrow glass takes two
    lines rather than cut it."""
    message = "1 printed; 1 failed: paper jam, it is still held"
    renderer = drawn(jobs_view(message=message, tone=Tone.ERROR), size)
    lines = [n for n in texts(renderer) if n.source == message]
    assert " ".join(n.text for n in lines) == message, [n.text for n in lines]
    banner = target(renderer, Action.DISMISS)
    for line in lines:
        assert banner.contains(pygame.Rect(line.rect)), (line, banner)
