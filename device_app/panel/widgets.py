"""The pieces screens are made of: buttons (which register their taps), the header band, the
warning mark, the icon-over-word toolbar button and the idle logout's countdown band."""

from __future__ import annotations

from collections.abc import Callable

import pygame

from device_app.panel.canvas import Canvas, Target
from device_app.panel.theme import (
    CARD,
    DISABLED_BUTTON,
    DISABLED_INK,
    HEADER,
    HEADER_INK,
    HEADER_MUTED,
    INK,
    ON_PRIMARY,
    ON_WARN,
    TONE_STRONG,
    Color,
    Style,
)
from device_app.view import Action, Tone

#: Draws an icon into a box in a colour (see icons.py).
Icon = Callable[[pygame.Rect, Color], None]


def button(c: Canvas, rect: pygame.Rect, label: str, action: Action, style: Style,
           enabled: bool = True, *, subject: str | None = None, size: int = 34,
           radius: float = 10, hit: pygame.Rect | None = None, role: str = "button",
           name: str = "") -> Color:
    """Draw a button and make it tappable if enabled; returns the ink colour for icons.
    ``subject`` travels with the action (a field name, a key). A disabled button has no
    target at all, so a tap on it means nothing. ``hit`` is a larger area that answers the
    tap (a key and half the gap around it, as on a phone); ``name`` what the draw tree calls an
    icon button that has no label."""
    if not enabled:
        style = DISABLED_BUTTON
    corner = c.px(radius)
    pygame.draw.rect(c.surface, style.fill, rect, border_radius=corner)
    if style.border is not None:
        pygame.draw.rect(c.surface, style.border, rect, width=max(2, c.px(2)),
                         border_radius=corner)
    if label:
        # A key on a short keypad sets its label smaller rather than spill out of it, and a
        # narrow one ("w" on 480 px glass) smaller rather than lose it to an ellipsis.
        size = min(size, c.size_for_height(rect.height))
        room = rect.width - 2 * c.px(4 if role == "key" else 12)
        size = c.fitting_size(label, (size, size * 17 // 20, size * 7 // 10, size * 3 // 5),
                              room, bold=True)
        c.text(label, size, style.ink, max_width=room, role=role,
               bg=style.fill, box=rect, center=rect.center)
    if enabled:
        c.targets.append(Target(pygame.Rect(hit or rect), action, subject, label or name))
    return style.ink


def header(c: Canvas, title: str, right: str = "", reserve: int = 0, height: float = 72,
           shrink: bool = False) -> pygame.Rect:
    """The dark band across the top; ``reserve`` pixels at the right are left for a button.
    With ``shrink`` a long title is set smaller before it is cut (entry titles are whole
    sentences: "Badge not recognised: link it with ...")."""
    width = c.surface.get_width()
    band = pygame.Rect(0, 0, width, c.tap(height))
    pygame.draw.rect(c.surface, HEADER, band)
    pad = c.px(24)
    right_edge = width - pad - reserve
    left_limit = right_edge
    if right:
        # A status longer than a third of the band ("1 von 12 gedruckt" on portrait glass) is
        # set smaller before it is cut.
        size = c.fitting_size(right, (32, 28, 24), width // 3)
        left_limit = c.text(right, size, HEADER_MUTED, max_width=width // 3, role="status",
                            bg=HEADER, midright=(right_edge, band.centery)).left
    if title:
        room = max(0, left_limit - 2 * pad)
        # Narrow glass shrinks every title a step before it cuts it.
        sizes = (40, 36, 32, 28) if shrink or c.portrait else (40,)
        size = c.fitting_size(title, sizes, room, bold=True)
        two = 26
        line_h = c.font(two, bold=True).get_linesize()
        if (shrink and c.font(size, bold=True).size(title)[0] > room
                and 2 * line_h <= band.height):
            # A whole sentence on narrow glass: two lines of the band rather than half of it.
            c.lines(title, two, HEADER_INK, 0, band.centery - line_h, room, 2, left=pad,
                    role="title")
            return band
        c.text(title, size, HEADER_INK, max_width=room, role="title", bg=HEADER,
               midleft=(pad, band.centery))
    return band


def warning_mark(c: Canvas, box: pygame.Rect, centery: int, color: Color,
                 size: int = 30) -> pygame.Rect:
    """A filled triangle with "!" centred on ``centery``; returns where it was drawn."""
    box = pygame.Rect(box)
    box.centery = centery
    pygame.draw.polygon(c.surface, color, [box.midtop, box.bottomright, box.bottomleft])
    c.text("!", size, ON_WARN, role="heading", bg=color,
           center=(box.centerx, box.centery + box.height // 8))
    return box


def tool_button(c: Canvas, rect: pygame.Rect, label: str, action: Action, icon: Icon,
                enabled: bool, ink: Color) -> None:
    """An icon over a short word: a toolbar button that needs less width than a label."""
    button(c, rect, "", action, Style(CARD, ink, INK) if enabled else DISABLED_BUTTON, enabled,
           name=label)
    color = ink if enabled else DISABLED_INK
    box = pygame.Rect(0, 0, c.px(26), c.px(26))
    box.midtop = (rect.centerx, rect.top + c.px(7))
    icon(box, color)
    # A longer word ("Supprimer") is set smaller before it is cut.
    room = rect.width - 8
    size = c.fitting_size(label, (24, 21, 18, 16), room, bold=True)
    c.text(label, size, INK if enabled else DISABLED_INK, max_width=room, role="button",
           box=rect, bg=CARD if enabled else DISABLED_BUTTON.fill,
           midbottom=(rect.centerx, rect.bottom - c.px(6)))


def countdown_band(c: Canvas, text: str, bottom: int) -> pygame.Rect:
    """The idle logout's last seconds, in a band whose foot is at ``bottom``. Drawn last,
    with a target over the whole glass: any touch means "I am still here" and does nothing
    else (a finger on its way to Release, or to Delete on the question, must not act while the
    panel is about to log out). The same band on every screen a session can sit on."""
    width, height = c.surface.get_size()
    band = pygame.Rect(0, 0, width, c.tap(64))
    band.bottom = bottom
    pygame.draw.rect(c.surface, TONE_STRONG[Tone.INFO], band)
    c.text(text, 36, ON_PRIMARY, max_width=width - 2 * c.px(16), role="banner",
           bg=TONE_STRONG[Tone.INFO], center=band.center)
    c.targets.append(Target(pygame.Rect(0, 0, width, height), Action.STAY))
    return band
