"""BUSY: the panel waiting on the print service; a spinner that turns with the clock."""

from __future__ import annotations

import math

import pygame

from device_app.panel.canvas import Canvas
from device_app.panel.text import format_clock
from device_app.panel.theme import INK, LINE, MUTED, PRIMARY, mix
from device_app.panel.widgets import header
from device_app.view import PanelView


def draw(c: Canvas, view: PanelView, now: float) -> None:
    width = c.surface.get_width()
    band = header(c, view.device_name, format_clock(now))
    cx = width // 2
    centre = (cx, band.bottom + c.px(120))
    # The lit dot follows ``now``, so whoever redraws a few times a second gets a spinner
    # while a single frame still reads as "working".
    dots = 12
    lit = int(now * dots) % dots
    for i in range(dots):
        angle = 2 * math.pi * i / dots - math.pi / 2
        age = (lit - i) % dots
        pos = (round(centre[0] + c.px(46) * math.cos(angle)),
               round(centre[1] + c.px(46) * math.sin(angle)))
        pygame.draw.circle(c.surface, mix(PRIMARY, LINE, age / dots), pos, c.px(8))
    y = c.lines(view.title or c.tr.gettext("One moment"), 60, INK, cx, band.bottom + c.px(200),
                width - c.px(64), 1, role="heading")
    c.lines(view.message, 40, MUTED, cx, y + c.px(10), width - c.px(64), 2)
