"""The panel's drawn symbols. pygame's built-in font has no arrows or keyboard symbols, so the
tick, the cross, the toolbar icons and the keyboard's Shift and Backspace are drawn as shapes,
scaled with the panel. Each draws into ``box`` in ``color``."""

from __future__ import annotations

import pygame

from device_app.panel.canvas import Canvas
from device_app.panel.theme import Color


def check(c: Canvas, box: pygame.Rect, color: Color) -> None:
    points = [(box.left + box.width * 0.22, box.top + box.height * 0.53),
              (box.left + box.width * 0.42, box.top + box.height * 0.73),
              (box.left + box.width * 0.78, box.top + box.height * 0.30)]
    pygame.draw.lines(c.surface, color, False, points, max(3, c.px(4)))


def cross(c: Canvas, box: pygame.Rect, color: Color) -> None:
    inset = box.width * 0.3
    width = max(3, c.px(4))
    pygame.draw.line(c.surface, color, (box.left + inset, box.top + inset),
                     (box.right - inset, box.bottom - inset), width)
    pygame.draw.line(c.surface, color, (box.right - inset, box.top + inset),
                     (box.left + inset, box.bottom - inset), width)


def trash(c: Canvas, box: pygame.Rect, color: Color) -> None:
    line = max(2, c.px(3))
    lid_y = box.top + c.px(5)
    pygame.draw.line(c.surface, color, (box.left, lid_y), (box.right, lid_y), line)
    pygame.draw.rect(c.surface, color,
                     pygame.Rect(box.centerx - c.px(5), box.top, c.px(10), c.px(5)),
                     max(1, c.px(2)))
    body = [(box.left + c.px(4), lid_y + c.px(4)),
            (box.right - c.px(4), lid_y + c.px(4)),
            (box.right - c.px(6), box.bottom), (box.left + c.px(6), box.bottom)]
    pygame.draw.polygon(c.surface, color, body, line)
    for dx in (-5, 0, 5):
        x = box.centerx + c.px(dx)
        pygame.draw.line(c.surface, color, (x, lid_y + c.px(9)),
                         (x, box.bottom - c.px(5)), max(1, c.px(2)))


def sliders(c: Canvas, box: pygame.Rect, color: Color) -> None:
    line = max(2, c.px(3))
    for i, knob in enumerate((0.3, 0.7, 0.45)):
        y = box.top + c.px(4) + i * c.px(9)
        pygame.draw.line(c.surface, color, (box.left, y), (box.right, y), line)
        pygame.draw.circle(c.surface, color, (box.left + round(box.width * knob), y), c.px(4))


def backspace(c: Canvas, key: pygame.Rect, color: Color) -> None:
    w, h = c.px(34), c.px(24)
    left, top = key.centerx - w // 2, key.centery - h // 2
    tip = c.px(10)
    outline = [(left, key.centery), (left + tip, top), (left + w, top), (left + w, top + h),
               (left + tip, top + h)]
    line = max(2, c.px(3))
    pygame.draw.polygon(c.surface, color, outline, line)
    cx, arm = left + tip + (w - tip) // 2, c.px(5)
    for sign in (-1, 1):
        pygame.draw.line(c.surface, color, (cx - arm, key.centery - sign * arm),
                         (cx + arm, key.centery + sign * arm), line)


def shift_arrow(c: Canvas, key: pygame.Rect, color: Color, lit: bool) -> None:
    cx, cy = key.center
    half, stem, top, base = c.px(13), c.px(6), cy - c.px(13), cy + c.px(12)
    arrow = [(cx, top), (cx + half, cy), (cx + stem, cy), (cx + stem, base),
             (cx - stem, base), (cx - stem, cy), (cx - half, cy)]
    # Filled when lit, like the Shift of a phone: the shape says it, not only the colour.
    pygame.draw.polygon(c.surface, color, arrow, 0 if lit else max(2, c.px(3)))
