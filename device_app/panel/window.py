"""The pygame loop of a panel: draw the app's view, turn taps into actions, pump the app.

Shared by ``mfd device`` (full screen on a copier) and ``mfd sim`` (a window on a laptop). The
loop never blocks on the network: ``DeviceApp.step`` waits at most one frame for an event.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pygame

from device_app.app import DeviceApp
from device_app.panel.renderer import PanelRenderer
from device_app.view import Action, Screen

FRAME_S = 1 / 30
#: Screens with motion (the busy spinner, job progress) redraw every frame.
ANIMATED = frozenset({Screen.BUSY, Screen.RELEASING})


def run_window(app: DeviceApp, *, title: str = "mfdkit panel", size: tuple[int, int] = (800, 480),
               fullscreen: bool = False,
               on_key: Callable[[int, str], None] | None = None,
               should_stop: Callable[[], bool] = lambda: False) -> None:
    # SDL would turn SIGINT/SIGTERM into a QUIT event only once its video is up, and swallow a
    # signal that lands mid-initialisation; leave signals to Python so Ctrl-C always unwinds.
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    pygame.display.init()
    pygame.display.set_caption(title)
    flags = pygame.FULLSCREEN if fullscreen else 0
    screen = pygame.display.set_mode(size, flags)
    renderer = PanelRenderer(screen)
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
    finally:
        pygame.display.quit()
