"""The panel loop's frame pacing (window.py): a frame as soon as the view changed, no spinner
for a wait too short to see, animation capped at the frame rate, the idle clock once a second;
and run_window itself under SDL's dummy driver."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import pygame
import pytest
from panel_helpers import dummy_video

from device_app.panel.renderer import PanelRenderer
from device_app.panel.window import (
    BUSY_GRACE_S,
    FRAME_S,
    IDLE_REDRAW_S,
    FramePacer,
    run_window,
)
from device_app.view import Action, PanelView, Screen
from protocol.messages import JobSummary

IDLE = PanelView(Screen.IDLE, title="Tap your badge")
BUSY = PanelView(Screen.BUSY, title="One moment")
JOBS = PanelView(Screen.JOBS, user_name="Ada", total_jobs=1, jobs=(JobSummary(
    job_id="j1", name="Report.pdf", pages=1, color=False, duplex=False, copies=1, size=1,
    submitted_at=0.0),))
RELEASING = PanelView(Screen.RELEASING)


def drawn_idle(at: float = 100.0) -> FramePacer:
    pacer = FramePacer()
    assert pacer.should_draw(IDLE, False, at), "the first frame is always drawn"
    pacer.drew(IDLE, at)
    return pacer


def test_a_changed_view_is_drawn_at_once_and_an_unchanged_one_waits_for_the_clock() -> None:
    pacer = drawn_idle()
    assert pacer.should_draw(JOBS, False, 100.001)
    pacer.drew(JOBS, 100.001)
    assert not pacer.should_draw(JOBS, False, 100.5)
    assert not pacer.should_draw(None, False, 100.5)
    assert pacer.should_draw(None, False, 100.001 + IDLE_REDRAW_S), "the idle clock ticks"
    assert pacer.should_draw(JOBS, True, 100.5), "a touch (a scroll) redraws"


def test_a_wait_too_short_to_see_shows_no_spinner() -> None:
    pacer = drawn_idle()
    assert not pacer.should_draw(BUSY, False, 100.002)
    assert not pacer.should_draw(BUSY, False, 100.030)
    # The list arrives 40 ms after the badge: it is drawn straight away, and BUSY never was.
    assert pacer.should_draw(JOBS, False, 100.040)
    pacer.drew(JOBS, 100.040)
    assert pacer.last_view is JOBS


def test_a_longer_wait_shows_the_spinner_once_the_grace_is_over() -> None:
    pacer = drawn_idle()
    assert not pacer.should_draw(BUSY, False, 100.0)
    # The loop must wake for it even if no event comes: the wait ends at the grace.
    left = 0.01
    assert pacer.wait(100.0 + BUSY_GRACE_S - left) == pytest.approx(left)
    assert not pacer.due(100.0 + BUSY_GRACE_S / 2)
    assert pacer.due(100.0 + BUSY_GRACE_S)
    assert pacer.should_draw(BUSY, False, 100.0 + BUSY_GRACE_S)
    pacer.drew(BUSY, 100.0 + BUSY_GRACE_S)
    # Then it turns: an animated screen redraws every frame, and no faster.
    t = 100.0 + BUSY_GRACE_S
    assert not pacer.should_draw(BUSY, False, t + FRAME_S / 2)
    assert pacer.should_draw(BUSY, False, t + FRAME_S)


def test_animation_is_capped_at_the_frame_rate_but_a_change_is_not() -> None:
    pacer = drawn_idle()
    pacer.drew(RELEASING, 100.0)
    assert not pacer.should_draw(RELEASING, False, 100.0 + FRAME_S / 3)
    assert pacer.wait(100.0 + FRAME_S / 3) == pytest.approx(FRAME_S * 2 / 3)
    # A job printed 5 ms after the last frame: shown now, not at the next frame's turn.
    assert pacer.should_draw(JOBS, False, 100.005)


def test_the_loop_never_waits_more_than_a_frame_for_an_event() -> None:
    pacer = drawn_idle()
    assert 0 < pacer.wait(100.001) <= FRAME_S  # taps are read between steps


class _Scripted:
    """A panel app that shows IDLE, and when told, goes BUSY and then JOBS a few ms later,
    as a badge with a quick cloud does (each change arrives as an event that wakes step)."""

    def __init__(self) -> None:
        self._view = IDLE
        self.events: queue.Queue[PanelView] = queue.Queue()
        self.changed_at: dict[Screen, float] = {}

    def tap(self, action: Action, job_id: str | None = None) -> None:
        return None

    def step(self, timeout: float = 0.05) -> bool:
        try:
            self._view = self.events.get(timeout=timeout)
        except queue.Empty:
            return False
        self.changed_at[self._view.screen] = time.monotonic()
        return True

    def view(self) -> PanelView:
        return self._view


@pytest.fixture()
def _dummy_video() -> Iterator[None]:
    with dummy_video():
        yield
        pygame.display.quit()


@pytest.mark.usefixtures("_dummy_video")
def test_run_window_draws_the_list_when_it_arrives_and_skips_a_spinner_it_would_replace(
) -> None:
    app = _Scripted()
    frames: list[tuple[Screen, float]] = []
    done = threading.Event()

    def on_frame(renderer: PanelRenderer) -> None:
        screen = app.view().screen
        frames.append((screen, time.monotonic()))
        if screen is Screen.JOBS:
            done.set()

    def badge() -> None:
        # After the idle screen is up: a badge, and its list 5 ms later.
        while not frames:
            time.sleep(0.001)
        app.events.put(BUSY)
        time.sleep(0.005)
        app.events.put(JOBS)

    threading.Thread(target=badge, daemon=True).start()
    run_window(app, size=(800, 480), on_frame=on_frame, should_stop=done.is_set)
    screens = [s for s, _ in frames]
    assert screens[0] is Screen.IDLE and screens[-1] is Screen.JOBS
    assert Screen.BUSY not in screens, screens
    # Drawn on the step that brought it, not at the end of a frame (a generous bound: a
    # frame of this size takes a few ms; waiting out the frame would take up to 33).
    shown = frames[-1][1] - app.changed_at[Screen.JOBS]
    assert shown < FRAME_S, shown
