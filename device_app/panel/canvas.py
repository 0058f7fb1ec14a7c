"""The surface a frame is drawn on, at the panel's scale, and what the frame drew.

Layout is designed in *design units*: 800x480 of them is the 7-inch panel the screens were first
drawn for, and a screen of any other size is laid out to its real width and height in the same
units (:attr:`Canvas.width`, :attr:`Canvas.height` in pixels; :attr:`Canvas.portrait` when a
side-by-side layout would not fit). :func:`panel_scale` says how many pixels a design unit is:
from the glass's density when ``dpi`` is known (a finger is the same size on every panel),
else so that the design's 480 units fill the short side; never so large that a 640x480 box
(480x640 on portrait glass) does not fit. :meth:`Canvas.px` scales a length,
:meth:`Canvas.tap` also keeps a touch target at least 9 mm at the panel's dpi (and never below
MIN_TARGET pixels).

Text is set in the Noto chain of fonts.py (every script), or pygame's built-in font if no Noto
is installed, or one TrueType file if given. Everything drawn records itself: each text a
:class:`~device_app.panel.tree.TextNode` (as shown, its role, rectangle, colours and container)
and each tappable area a :class:`Target` and a :class:`~device_app.panel.tree.TargetNode`, in
drawing order. The renderer looks taps up in the targets; tests read the tree.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import pygame

from device_app.i18n import Translator, translator
from device_app.panel.fonts import ChainFont, Face, system_chain
from device_app.panel.text import clean_text, fit_text, fit_text_middle, wrap_text
from device_app.panel.theme import DESIGN_DPI, DESIGN_SIZE, MIN_TARGET, Color
from device_app.panel.tree import Box, Node, TargetNode, TextNode
from device_app.view import Action

#: Roles set in the bold face: what the eye looks for first, and what a finger presses.
BOLD_ROLES = frozenset({"title", "prompt", "heading", "button", "key", "banner"})
#: The least design box a layout gets: 640x480 landscape, 480x640 portrait. The scale is capped
#: so that the glass holds it (a square screen gets 640x640, not a cramped 480x480).
LEAST_LONG_SIDE = 640


class Target(NamedTuple):
    """A tappable area of the last drawn frame."""

    rect: pygame.Rect
    action: Action
    job_id: str | None = None
    label: str = ""


def panel_scale(size: tuple[int, int], *, dpi: float | None = None,
                scale: float | None = None) -> float:
    """Pixels per design unit on a surface of ``size``: ``scale`` if set, else from ``dpi``,
    else what fills the short side; capped where the least design box still fits."""
    w, h = size
    short, long_ = DESIGN_SIZE[1], LEAST_LONG_SIDE
    fit = max(min(w / long_, h / short), min(w / short, h / long_))
    if scale is None:
        scale = dpi / DESIGN_DPI if dpi else fit
    return max(0.1, min(scale, fit))


def min_target_px(dpi: float | None) -> int:
    """The least width and height of a touch target: 9 mm at ``dpi``, never below
    MIN_TARGET pixels (the floor when the density is not known)."""
    if not dpi:
        return MIN_TARGET
    return max(MIN_TARGET, math.ceil(dpi * 9 / 25.4))


def _box(rect: pygame.Rect) -> Box:
    return (rect.x, rect.y, rect.width, rect.height)


class _Targets(list[Target]):
    """The frame's targets. Appending one grows it to the 9 mm floor (centred, kept on the
    glass) and records it in the tree, so a screen cannot add a target too small for a
    finger even by appending to the list directly."""

    def __init__(self, canvas: Canvas) -> None:
        super().__init__()
        self._canvas = canvas

    def append(self, target: Target) -> None:
        c = self._canvas
        rect = pygame.Rect(target.rect)
        need = c.min_target
        if rect.width < need or rect.height < need:
            grown = rect.inflate(max(0, need - rect.width), max(0, need - rect.height))
            rect = grown.clamp(c.surface.get_rect())
            target = target._replace(rect=rect)
        super().append(target)
        c.tree.append(TargetNode(target.action.value, target.job_id, _box(rect), target.label))


class Canvas:
    """One surface, its scale, a cache of fonts, and the frame's targets and tree."""

    def __init__(self, surface: pygame.Surface, font: str | os.PathLike[str] | None = None,
                 *, scale: float | None = None, dpi: float | None = None,
                 orientation: str = "auto", language: str = "",
                 chain: tuple[Face, ...] | None = None) -> None:
        self.surface = surface
        self.width, self.height = surface.get_size()
        self.dpi = dpi
        self.scale = panel_scale((self.width, self.height), dpi=dpi, scale=scale)
        #: The BCP-47 tag the panel speaks ("" for the built-in English).
        self.language = language
        if orientation == "auto":
            self.portrait = self.height > self.width
        else:
            self.portrait = orientation == "portrait"
        self.min_target = min_target_px(dpi)
        self._font_file = None if font is None else os.fspath(font)
        self._chains = (chain, chain) if chain is not None else None
        self._fonts: dict[tuple[int, bool], pygame.font.Font] = {}
        self._bitmap_fonts: dict[str, pygame.font.Font] = {}
        self._fits: dict[tuple[str, int, bool, int, str], str] = {}
        self._images: dict[tuple[int, bool, str, Color], pygame.Surface] = {}
        #: Everything tappable in the frame being drawn, in drawing order.
        self.targets: list[Target] = _Targets(self)
        #: Everything the frame drew, in drawing order (texts and targets).
        self.tree: list[Node] = []
        #: Strings that are names (job names), shortened in the middle wherever drawn.
        self.names: frozenset[str] = frozenset()
        #: The frame's language: the panel's own labels go through it (device_app.i18n).
        self.tr: Translator = translator(language)

    def begin_frame(self, names: frozenset[str] = frozenset(), language: str | None = None
                    ) -> None:
        """Forget the last frame's targets and tree; the frame speaks ``language`` (the
        view's, so the panel's own labels match the session's words), else the canvas's."""
        self.tree = []
        self.targets = _Targets(self)
        self.names = names
        self.tr = translator(language or self.language)

    @property
    def effective_dpi(self) -> float:
        """The density the glass is taken to have: as configured, else the design's."""
        return self.dpi or DESIGN_DPI * self.scale

    def px(self, n: float) -> int:
        """A design length in pixels of this surface, never zero."""
        return max(1, round(n * self.scale))

    def tap(self, n: float) -> int:
        """A design length for something a finger hits: scaled, but never below 9 mm."""
        return max(self.min_target, self.px(n))

    def font(self, size: int, bold: bool = False) -> pygame.font.Font:
        px = max(8, round(size * self.scale))
        font = self._fonts.get((px, bold))
        if font is None:
            if self._font_file is not None:
                font = pygame.font.Font(self._font_file, round(px * 0.6875))
            else:
                if self._chains is None:
                    self._chains = (system_chain(False), system_chain(True))
                font = ChainFont(self._chains[1 if bold else 0], px, self._bitmap_fonts)
            self._fonts[(px, bold)] = font
        return font

    def shorten(self, text: str, size: int, max_width: int, *, bold: bool = False,
                middle: bool = False) -> str:
        """``text`` cut to ``max_width`` (cached: rows redraw every frame): at the end, or in
        the middle for names."""
        key = (text, size, bold, max_width, "m" if middle else "e")
        shown = self._fits.get(key)
        if shown is None:
            font = self.font(size, bold)
            shown = (fit_text_middle if middle else fit_text)(font, text, max_width)
            if len(self._fits) > 4096:
                self._fits.clear()
            self._fits[key] = shown
        return shown

    def text(self, text: str, size: int, color: Color, max_width: int | None = None, *,
             role: str | None = None, bold: bool | None = None, middle: bool | None = None,
             box: pygame.Rect | None = None, bg: Color | None = None, source: str | None = None,
             **anchor: tuple[int, int]) -> pygame.Rect:
        """One line of text placed by a pygame.Rect anchor (``center=``, ``topleft=``...), cut
        with an ellipsis to ``max_width`` (in the middle for names); returns where it was
        drawn. ``role`` (tree.ROLES) names what it is for, ``box`` the container it must stay
        in (default: its ``max_width`` column), ``bg`` the colour under it (default: read off
        the surface)."""
        is_name = text in self.names
        role = role or ("row" if is_name else "body")
        bold = role in BOLD_ROLES if bold is None else bold
        middle = is_name if middle is None else middle
        font = self.font(size, bold)
        if max_width is None:
            shown = clean_text(text)
        else:
            shown = self.shorten(text, size, max(0, max_width), bold=bold, middle=middle)
        image = self._image(font, size, bold, shown, color)
        rect = image.get_rect(**anchor)
        if bg is None:
            bg = self._ground(rect)
        if shown:
            self.surface.blit(image, rect)
        else:
            rect.width = 0  # nothing fitted: nothing drawn (pygame's empty image is 1 px wide)
        self.tree.append(TextNode(shown, text if source is None else source, role, _box(rect),
                                  tuple(color)[:3],  # type: ignore[arg-type]
                                  bg, self._container(rect, max_width, box, anchor),
                                  round(size * self.scale * 0.6875), bold))
        return rect

    def _image(self, font: pygame.font.Font, size: int, bold: bool, shown: str,
               color: Color) -> pygame.Surface:
        """``shown`` rendered in ``color``, from the cache when it was drawn before: a panel
        redraws the same words every frame (and every second when idle), and rendering them
        is most of a frame's cost. (The chain font caches too; a font file given does not.)"""
        key = (round(size * self.scale), bold, shown, (color[0], color[1], color[2]))
        image = self._images.get(key)
        if image is None:
            image = font.render(shown, True, color)
            if len(self._images) > 1024:
                self._images.clear()
            self._images[key] = image
        return image

    def _ground(self, rect: pygame.Rect) -> Color:
        """The colour most of ``rect`` is painted in before the text goes on: three samples
        across its middle, two more only when those disagree (text on a stripe or a border).
        Not cached: what lies under a text is whatever this frame painted there."""
        area = rect.clip(self.surface.get_rect())
        get = self.surface.get_at
        if area.width <= 0 or area.height <= 0:
            return tuple(get((0, 0)))[:3]  # type: ignore[return-value]
        y = area.centery
        first = tuple(get(area.center))[:3]
        left = tuple(get((area.left + area.width // 5, y)))[:3]
        if left == first:
            return first  # type: ignore[return-value]
        right = tuple(get((area.right - 1 - area.width // 5, y)))[:3]
        if right in (first, left):
            return right  # type: ignore[return-value]
        points = [(area.centerx, area.top + area.height // 5),
                  (area.centerx, area.bottom - 1 - area.height // 5)]
        seen = Counter([first, left, right, *(tuple(get(p))[:3] for p in points)])
        return seen.most_common(1)[0][0]  # type: ignore[return-value]

    def _container(self, rect: pygame.Rect, max_width: int | None, box: pygame.Rect | None,
                   anchor: dict[str, tuple[int, int]]) -> Box:
        if box is not None:
            return _box(pygame.Rect(box))
        if max_width is None:
            return (0, 0, self.width, self.height)
        (name, (x, _y)), = anchor.items() if len(anchor) == 1 else (("center", rect.center),)
        if name in ("topleft", "midleft", "bottomleft", "left"):
            left = x
        elif name in ("topright", "midright", "bottomright", "right"):
            left = x - max_width
        else:
            left = x - max_width // 2
        return (left, 0, max_width, self.height)

    def lines(self, text: str, size: int, color: Color, center_x: int, top: int,
              max_width: int, max_lines: int, left: int | None = None, *,
              role: str = "body", bold: bool | None = None) -> int:
        """Wrapped text, centred on ``center_x`` or flush with ``left``; returns the y below it."""
        bold = role in BOLD_ROLES if bold is None else bold
        font = self.font(size, bold)
        y = top
        for line in wrap_text(font, text, max_width, max_lines):
            if left is None:
                self.text(line, size, color, max_width, role=role, bold=bold, source=text,
                          midtop=(center_x, y))
            else:
                self.text(line, size, color, max_width, role=role, bold=bold, source=text,
                          topleft=(left, y))
            y += font.get_linesize()
        return y

    def size_for_height(self, height: int) -> int:
        """The largest design text size whose line fits ``height`` pixels."""
        per_unit = self.font(100).get_height() / 100
        return max(1, int(height / per_unit))

    def fitting_size(self, text: str, sizes: Sequence[int], max_width: int,
                     bold: bool = False) -> int:
        """The largest of ``sizes`` at which ``text`` fits on one line (else the smallest, where
        it will be cut): long titles shrink a little before they lose words."""
        for size in sizes:
            if self.font(size, bold).size(clean_text(text))[0] <= max_width:
                return size
        return sizes[-1]
