"""The surface a frame is drawn on, at the panel's scale, and the taps it records.

Layout is designed at 800x480 (theme.DESIGN_SIZE) and scaled to the real glass; :meth:`Canvas.px`
scales a design length, :meth:`Canvas.tap` also keeps touch targets at least MIN_TARGET high.
Text uses pygame's built-in font unless a TrueType file is given, so no font files have to ship
with the device. Everything tappable drawn in a frame appends a :class:`Target`; the renderer
looks taps up in them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import pygame

from device_app.panel.text import clean_text, fit_text, wrap_text
from device_app.panel.theme import DESIGN_SIZE, MIN_TARGET, Color
from device_app.view import Action


class Target(NamedTuple):
    """A tappable area of the last drawn frame."""

    rect: pygame.Rect
    action: Action
    job_id: str | None = None


class Canvas:
    """One surface, its scale from the design size, a cache of fonts, and the frame's targets."""

    def __init__(self, surface: pygame.Surface, font: str | os.PathLike[str] | None) -> None:
        self.surface = surface
        width, height = surface.get_size()
        self.scale = min(width / DESIGN_SIZE[0], height / DESIGN_SIZE[1])
        self._font_file = None if font is None else os.fspath(font)
        self._fonts: dict[int, pygame.font.Font] = {}
        #: Everything tappable in the frame being drawn, in drawing order.
        self.targets: list[Target] = []

    def px(self, n: float) -> int:
        """A design length in pixels of this surface, never zero."""
        return max(1, round(n * self.scale))

    def tap(self, n: float) -> int:
        """A design length for something a finger hits: scaled, but never below MIN_TARGET."""
        return max(MIN_TARGET, self.px(n))

    def font(self, size: int) -> pygame.font.Font:
        px = max(8, round(size * self.scale))
        font = self._fonts.get(px)
        if font is None:
            font = self._fonts[px] = pygame.font.Font(self._font_file, px)
        return font

    def text(self, text: str, size: int, color: Color, max_width: int | None = None,
             **anchor: tuple[int, int]) -> pygame.Rect:
        """One line of text placed by a pygame.Rect anchor (``center=``, ``topleft=``...), cut
        with an ellipsis to ``max_width``; returns where it was drawn."""
        font = self.font(size)
        shown = clean_text(text) if max_width is None else fit_text(font, text, max_width)
        image = font.render(shown, True, color)
        rect = image.get_rect(**anchor)
        self.surface.blit(image, rect)
        return rect

    def lines(self, text: str, size: int, color: Color, center_x: int, top: int,
              max_width: int, max_lines: int, left: int | None = None) -> int:
        """Wrapped text, centred on ``center_x`` or flush with ``left``; returns the y below it."""
        font = self.font(size)
        y = top
        for line in wrap_text(font, text, max_width, max_lines):
            if left is None:
                self.text(line, size, color, midtop=(center_x, y))
            else:
                self.text(line, size, color, topleft=(left, y))
            y += font.get_linesize()
        return y

    def fitting_size(self, text: str, sizes: Sequence[int], max_width: int) -> int:
        """The largest of ``sizes`` at which ``text`` fits on one line (else the smallest, where
        it will be cut): long titles shrink a little before they lose words."""
        for size in sizes:
            if self.font(size).size(clean_text(text))[0] <= max_width:
                return size
        return sizes[-1]
