"""OFFLINE: the print service cannot be reached; jobs are safe, and Retry asks again."""

from __future__ import annotations

import pygame

from device_app.panel.canvas import Canvas
from device_app.panel.text import format_clock
from device_app.panel.theme import BAD, BG, INK, MUTED, PRIMARY_BUTTON
from device_app.panel.widgets import button, countdown_band, header
from device_app.view import Action, PanelView


def draw(c: Canvas, view: PanelView, now: float) -> None:
    width, height = c.surface.get_size()
    band = header(c, view.device_name, format_clock(now))
    cx = width // 2

    # The idle logout's band takes the foot of the glass; Retry and the rest move up above it.
    foot = height - (c.tap(64) if view.countdown else 0)
    retry = pygame.Rect(0, 0, c.px(240), c.tap(64))
    retry.midbottom = (cx, foot - c.px(28))

    # A cloud struck through: the print service, unreachable.
    base = band.bottom + c.px(56 if view.countdown else 96)
    cloud = (150, 158, 170)
    for dx, dy, r in ((-38, 10, 26), (-2, -8, 38), (38, 12, 24)):
        pygame.draw.circle(c.surface, cloud, (cx + c.px(dx), base + c.px(dy)),
                           c.px(r))
    pygame.draw.rect(c.surface, cloud,
                     pygame.Rect(cx - c.px(64), base + c.px(10), c.px(128),
                                 c.px(26)), border_radius=c.px(13))
    # A band of background either side of the stroke lets it read as "cut", not "crossed".
    pygame.draw.line(c.surface, BG, (cx - c.px(66), base - c.px(54)),
                     (cx + c.px(66), base + c.px(58)), max(8, c.px(20)))
    pygame.draw.line(c.surface, BAD, (cx - c.px(66), base - c.px(54)),
                     (cx + c.px(66), base + c.px(58)), max(4, c.px(8)))

    y = c.lines(view.title or c.tr.gettext("Can't reach the print service"), 58, INK, cx,
                base + c.px(76), width - c.px(48), 2 if c.portrait else 1, role="heading")
    room = (retry.top - c.px(8) - y - c.px(8)) // c.font(36).get_linesize()
    c.lines(view.message
            or c.tr.gettext("Your jobs are safe. Check the network, then try again."),
            36, MUTED, cx, y + c.px(8), width - c.px(96), max(1, min(2, room)))
    button(c, retry, c.tr.gettext("Retry"), Action.RETRY, PRIMARY_BUTTON)
    if view.countdown:
        countdown_band(c, view.countdown, height)
