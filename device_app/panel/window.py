"""The pygame loop of a panel: draw the app's view, turn taps into actions, pump the app.

Shared by ``mfd device`` (full screen on a copier) and ``mfd sim`` (a window on a laptop). The
loop never blocks on the network: ``DeviceApp.step`` waits at most one frame for an event.

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
    last_view = None
    last_draw = 0.0
    try:
        while not should_stop():
            touched = False
            for ev in pygame.event.get():
                touched = True
                if ev.type == pygame.QUIT:
                    return
                if ev.type == pygame.MOUSEBUTTONDOWN and ev.button == 1:
                    hit = renderer.hit(ev.pos)
                    if hit is not None:
                        action, job_id = hit
                        if action in (Action.SCROLL_UP, Action.SCROLL_DOWN):
                            renderer.apply_scroll(action)
                        else:
                            app.tap(action, job_id)
                elif ev.type == pygame.KEYDOWN:
                    if ev.key == pygame.K_ESCAPE and not fullscreen:
                        return
                    if on_key is not None:
                        on_key(ev.key, ev.unicode)
            deadline = time.monotonic() + FRAME_S
            while time.monotonic() < deadline:
                app.step(max(0.0, deadline - time.monotonic()))
            # Draw only what changed: an idle panel redraws once a second (its clock), so a
            # copier's panel costs next to no CPU; busy screens animate at the frame rate.
            view = app.view()
            now = time.monotonic()
            if (touched or view != last_view or view.screen in ANIMATED
                    or now - last_draw >= 1.0):
                renderer.draw(view, time.time())
                pygame.display.flip()
                last_view, last_draw = view, now
                if on_frame is not None:
                    on_frame(renderer)
    finally:
        pygame.display.quit()
