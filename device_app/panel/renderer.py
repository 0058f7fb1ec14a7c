"""The copier's touch panel, drawn with pygame: a PanelView in, pixels and a map of taps out.

Theory of operation
-------------------
The session machine decides *what* the panel says (a :class:`PanelView`); the panel package
decides only how it looks. :meth:`PanelRenderer.draw` repaints the whole surface from the view
every time, so there is no widget tree that could fall out of step with the session. While a
screen draws (one module per screen, in screens/), everything tappable records a
:class:`Target`; :meth:`PanelRenderer.hit` looks a tap up in the targets of the last drawn frame,
so a tap means what the person saw when they tapped, and a disabled button simply has no target.

Between frames the renderer keeps only what belongs to the glass, not to the session: the job
list's scroll offset (screens/jobs.py) and the keyboards' Shift and A-Z (keyboard.py). A tap on
those is answered here and never reaches the session.

Layout is designed in 800x480 design units and laid out to the surface's real width and height
(stacked where side by side does not fit); touch targets never shrink below 9 mm at the panel's
dpi (canvas.py). Each frame also leaves a draw tree (:attr:`PanelRenderer.tree`): every text as
shown with its role, rectangle, colours and container, and every target, as plain data.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pygame

from device_app.panel.canvas import Canvas, Target
from device_app.panel.keyboard import Keyboard
from device_app.panel.screens import (
    busy,
    confirm,
    diagnostics,
    entry,
    idle,
    jobs,
    notice,
    offline,
    options,
    releasing,
)
from device_app.panel.theme import BG, DESIGN_SIZE
from device_app.panel.tree import Node
from device_app.view import Action, PanelView, Screen


class PanelRenderer:
    """Draws :class:`PanelView` s onto one surface and answers what a tap on it means.

    ``target`` is the surface to draw on (the display surface on a device) or a size for an
    off-screen one; ``font`` a TrueType file, or None for pygame's built-in font.
    """

    def __init__(self, target: pygame.Surface | tuple[int, int] = DESIGN_SIZE,
                 font: str | os.PathLike[str] | None = None, *, scale: float | None = None,
                 dpi: float | None = None, orientation: str = "auto",
                 language: str = "") -> None:
        pygame.font.init()
        self.surface = target if isinstance(target, pygame.Surface) else pygame.Surface(target)
        self._canvas = Canvas(self.surface, font, scale=scale, dpi=dpi, orientation=orientation,
                              language=language)
        self._jobs = jobs.JobList()
        self._keyboard = Keyboard()
        painters: dict[Screen, Callable[[Canvas, PanelView, float], None]] = {
            Screen.IDLE: idle.draw,
            Screen.BUSY: busy.draw,
            Screen.JOBS: lambda c, view, now: jobs.draw(c, view, now, self._jobs),
            Screen.RELEASING: releasing.draw,
            Screen.NOTICE: notice.draw,
            Screen.OFFLINE: offline.draw,
            Screen.ENTRY: lambda c, view, now: entry.draw(c, view, now, self._keyboard),
            Screen.CONFIRM: confirm.draw,
            Screen.DIAGNOSTICS: diagnostics.draw,
            Screen.OPTIONS: options.draw,
        }
        self._painters = painters

    @property
    def scroll(self) -> int:
        """Index of the first job row shown. Clamped to the list on every draw."""
        return self._jobs.scroll

    @scroll.setter
    def scroll(self, value: int) -> None:
        self._jobs.scroll = value

    def draw(self, view: PanelView, now: float | None = None) -> None:
        """Paint the whole panel for ``view``. ``now`` (unix seconds) dates the jobs, drives the
        clock and the busy spinner; the wall clock if None."""
        now = time.time() if now is None else now
        self._jobs.follow(view)
        self._keyboard.belongs_to(
            view.entry.kind if view.screen is Screen.ENTRY and view.entry else None)
        # Job names are shortened in the middle wherever a screen draws them (canvas.py).
        names = frozenset(j.name for j in view.jobs) | frozenset(p.name for p in view.progress)
        self._canvas.begin_frame(names, view.language)
        self.surface.fill(BG)
        self._painters[view.screen](self._canvas, view, now)

    def hit(self, pos: tuple[int, int]) -> tuple[Action, str | None] | None:
        """What a tap at ``pos`` means on the last drawn frame: the action and its subject (the
        job id of SELECT, the field of FOCUS, the key of KEY); None for a tap on nothing.

        Shift and the keypad's A-Z / 0-9 keys are applied here and also answer None: they only
        change the keys of the next frame, and the session has nothing to do with them.
        """
        for target in reversed(self._canvas.targets):
            if target.rect.collidepoint(pos):
                if target.action is Action.KEY:
                    return self._keyboard.press(target.job_id)
                return target.action, target.job_id
        return None

    def click(self, pos: tuple[int, int]) -> tuple[Action, str | None] | None:
        """A finger at ``pos``: what the session must hear of it, or None. The job list's
        scroll arrows, like the keyboards' own keys, are the glass's and end here."""
        hit = self.hit(pos)
        if hit is not None and hit[0] in (Action.SCROLL_UP, Action.SCROLL_DOWN):
            self.apply_scroll(hit[0])
            return None
        return hit

    def apply_scroll(self, action: Action) -> bool:
        """Move the job list a page for SCROLL_UP/SCROLL_DOWN. True if the list moved (draw
        again to show it); False for any other action or at either end."""
        return self._jobs.page(action)

    @property
    def canvas(self) -> Canvas:
        """The canvas frames are drawn with: its scale, dpi and whether it lays out portrait."""
        return self._canvas

    @property
    def tree(self) -> list[Node]:
        """What the last frame drew, in drawing order: texts and targets as plain data."""
        return list(self._canvas.tree)

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every tappable area of the last drawn frame, in drawing order."""
        return tuple(self._canvas.targets)
