"""The pygame loop of a panel: draw the app's view, turn taps into actions, pump the app.

Shared by ``mfd device`` (full screen on a copier) and ``mfd sim`` (a window on a laptop). The
loop never blocks on the network: ``DeviceApp.step`` waits at most one frame for an event, and
a frame is drawn as soon as a step has changed the view (:class:`FramePacer` decides when).

Full screen takes the display's own size (``set_mode((0, 0), FULLSCREEN)``: on a copier with
no window manager that is the glass), and the renderer lays out to whatever size it gets; a
window is ``[ui] size``. ``[ui]`` also brings the scale, dpi, orientation and language.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Protocol

import pygame

from device_app.config import UiConfig
from device_app.panel.renderer import PanelRenderer
from device_app.view import Action, PanelView, Screen

FRAME_S = 1 / 30
#: Screens with motion (the busy spinner, job progress) redraw every frame.
ANIMATED = frozenset({Screen.BUSY, Screen.RELEASING})
#: An idle panel redraws this often (its clock) even when nothing changed.
IDLE_REDRAW_S = 1.0
#: A BUSY screen is shown only once the wait has lasted this long. A badge whose jobs are on
#: the glass 10 ms later needs no spinner in between, and drawing one (several ms on a large
#: panel) would only delay the list; a wait under 0.1 s reads as immediate anyway.
BUSY_GRACE_S = 0.08


class FramePacer:
    """When the loop draws: at once when the view changed or the glass was touched; animated
    screens at most every FRAME_S; otherwise every IDLE_REDRAW_S; a BUSY screen only after
    BUSY_GRACE_S. Pure: the loop passes the time in."""

    def __init__(self) -> None:
        self.last_view: PanelView | None = None
        self.last_draw = -1e9
        self._busy_since: float | None = None

    def _next(self) -> float:
        """When the next frame is due if nothing changes."""
        due = self.last_draw + IDLE_REDRAW_S
        if self.last_view is not None and self.last_view.screen in ANIMATED:
            due = min(due, self.last_draw + FRAME_S)
        if self._busy_since is not None:
            due = min(due, self._busy_since + BUSY_GRACE_S)
        return due

    def due(self, now: float) -> bool:
        """A frame is due by the clock alone (animation, the idle clock, a BUSY grace over)."""
        return now >= self._next()

    def wait(self, now: float) -> float:
        """How long the app may wait for an event: until the next frame is due, at most a
        frame (taps are polled between steps)."""
        return min(FRAME_S, max(0.0, self._next() - now))

    def should_draw(self, view: PanelView | None, touched: bool, now: float) -> bool:
        """``view`` is the app's view now (None: not asked, nothing changed)."""
        if view is not None and view.screen is Screen.BUSY and (
                self.last_view is None or self.last_view.screen is not Screen.BUSY):
            # Not yet: the wait may be over before a person could see a spinner.
            if self._busy_since is None:
                self._busy_since = now
            return now >= self._busy_since + BUSY_GRACE_S
        if view is not None and view.screen is not Screen.BUSY:
            self._busy_since = None
        if touched or (view is not None and view != self.last_view):
            return True
        return self.due(now)

    def drew(self, view: PanelView, now: float) -> None:
        self.last_view, self.last_draw = view, now
        self._busy_since = None


class PanelApp(Protocol):
    """What the loop needs of the app (DeviceApp is one; the demo's still screens another)."""

    def tap(self, action: Action, job_id: str | None = None) -> None: ...

    def step(self, timeout: float = 0.05) -> bool: ...

    def view(self) -> PanelView: ...


def window_size(ui: UiConfig) -> tuple[int, int]:
    """``[ui] size`` with its sides in the order ``orientation`` asks for."""
    w, h = ui.size
    if (ui.orientation == "portrait" and w > h) or (ui.orientation == "landscape" and h > w):
        return h, w
    return w, h


def open_display(title: str, size: tuple[int, int], fullscreen: bool) -> pygame.Surface:
    """The display surface: full screen at the display's own size, else a window of ``size``."""
    # SDL would turn SIGINT/SIGTERM into a QUIT event only once its video is up, and swallow a
    # signal that lands mid-initialisation; leave signals to Python so Ctrl-C always unwinds.
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    pygame.display.init()
    pygame.display.set_caption(title)
    if fullscreen:
        # (0, 0): the desktop's size. A fixed 800x480 here is what cropped "Tap your badge"
        # inside a 1280x800 panel.
        return pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
    return pygame.display.set_mode(size)


def run_window(app: PanelApp, *, title: str = "mfdkit panel",
               size: tuple[int, int] | None = None, fullscreen: bool = False,
               on_key: Callable[[int, str], None] | None = None,
               should_stop: Callable[[], bool] = lambda: False, ui: UiConfig | None = None,
               on_frame: Callable[[PanelRenderer], None] | None = None) -> None:
    """Run the panel until QUIT (or Esc in a window) or ``should_stop``. ``size`` overrides
    ``ui.size`` for a window; ``on_frame`` is called after each frame is shown."""
    ui = ui or UiConfig()
    screen = open_display(title, size or window_size(ui), fullscreen)
    renderer = PanelRenderer(screen, scale=ui.scale, dpi=ui.dpi, orientation=ui.orientation,
                             language=ui.language)
    pacer = FramePacer()
    try:
        while not should_stop():
            touched = False
            for ev in pygame.event.get():
                touched = True
                if ev.type == pygame.QUIT:
                    return
                if ev.type == pygame.MOUSEBUTTONDOWN and ev.button == 1:
                    tap = renderer.click(ev.pos)
                    if tap is not None:
                        app.tap(*tap)
                elif ev.type == pygame.KEYDOWN:
                    if ev.key == pygame.K_ESCAPE and not fullscreen:
                        return
                    if on_key is not None:
                        on_key(ev.key, ev.unicode)
            # One event, or as long as nothing has to be drawn: the app wakes the loop the
            # moment an event arrives, and the loop draws right then (below), not at the end
            # of a fixed frame. The wait is at most a frame so that taps are read promptly.
            changed = app.step(pacer.wait(time.monotonic()))
            view = app.view() if changed or touched or pacer.due(time.monotonic()) else None
            if pacer.should_draw(view, touched, time.monotonic()):
                drawn = view if view is not None else pacer.last_view
                assert drawn is not None  # the first frame is always due
                renderer.draw(drawn, time.time())
                pygame.display.flip()
                pacer.drew(drawn, time.monotonic())
                if on_frame is not None:
                    on_frame(renderer)
    finally:
        pygame.display.quit()
