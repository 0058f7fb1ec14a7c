"""CONFIRM: are you sure? Keep on the left, the red Delete to be looked for."""

from __future__ import annotations

import pygame

from device_app.panel.canvas import Canvas
from device_app.panel.text import format_clock
from device_app.panel.theme import BAD, CARD, DANGER_BUTTON, INK, LINE, MUTED, SECONDARY_BUTTON
from device_app.panel.widgets import button, countdown_band, header, warning_mark
from device_app.view import Action, PanelView


def draw(c: Canvas, view: PanelView, now: float) -> None:
    width, height = c.surface.get_size()
    band = header(c, view.device_name, format_clock(now))
    # The idle logout's band takes the foot of the glass; the question sits above it.
    foot = height - (c.tap(64) if view.countdown else 0)
    card = pygame.Rect(0, 0, min(width - c.px(48), c.px(640)),
                       min(foot - band.bottom - c.px(32), c.px(300)))
    card.center = (width // 2, (band.bottom + foot) // 2)
    radius = c.px(16)
    pygame.draw.rect(c.surface, CARD, card, border_radius=radius)
    pygame.draw.rect(c.surface, LINE, card, width=max(1, c.px(2)),
                     border_radius=radius)
    pad = c.px(32)

    mark = warning_mark(c, pygame.Rect(card.left + pad, 0, c.px(56), c.px(50)),
                        card.top + pad + c.px(25), BAD, size=44)
    title_left = mark.right + c.px(20)
    room = card.right - pad - title_left
    title = view.title or c.tr.gettext("Are you sure?")
    c.text(title, c.fitting_size(title, (52, 44, 38, 32), room, bold=True), INK, max_width=room,
           role="heading", midleft=(title_left, mark.centery))

    button_h = c.tap(72)
    button_w = (card.width - 3 * pad) // 2
    keep = pygame.Rect(card.left + pad, card.bottom - pad - button_h, button_w, button_h)
    delete = pygame.Rect(keep.right + pad, keep.top, button_w, button_h)
    # Keep on the left, where the eye lands first; the red one has to be looked for.
    button(c, keep, c.tr.gettext("Keep"), Action.CANCEL, SECONDARY_BUTTON, size=38)
    button(c, delete, c.tr.gettext("Delete"), Action.CONFIRM, DANGER_BUTTON, size=38)
    if view.message:
        top = mark.bottom + c.px(24)
        line_h = c.font(36).get_linesize()
        room_lines = max(1, (keep.top - c.px(16) - top) // line_h)
        c.lines(view.message, 36, MUTED, 0, top, card.width - 2 * pad, room_lines,
                left=card.left + pad)
    if view.countdown:
        countdown_band(c, view.countdown, height)
