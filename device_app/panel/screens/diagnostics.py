"""DIAGNOSTICS: a technician's rows of label and value (device_app/session/diagnostics.py says
what they are): the last badge and its conversions, the engine, the link, the configuration.

Laid out from the glass's size: on landscape the badge's group fills the left column and the
rest the right, on portrait one column holds them all; rows share the height left under the
header, so every row shows on every panel size, set smaller where there are many. A value the
device itself uses (the pipeline's number, and the candidate that gives the same) is in bold
and the primary colour, so a technician sees at once which conversion is in force.
"""

from __future__ import annotations

import pygame

from device_app.i18n import N_, translator
from device_app.panel.canvas import Canvas
from device_app.panel.text import format_clock
from device_app.panel.theme import CARD, HEADER_BUTTON, INK, LINE, MUTED, PRIMARY
from device_app.panel.widgets import button, header
from device_app.view import Action, InfoRow, PanelView

DONE = N_("Done")
#: The tallest a row is set (design units), and its largest text: a short list reads at the
#: body's size, a long one is set smaller rather than cut.
ROW_MAX = 36
ROW_SIZE = 28


def draw(c: Canvas, view: PanelView, now: float) -> None:
    width, height = c.surface.get_size()
    tr = translator(view.language)
    done = pygame.Rect(0, 0, c.px(150), c.tap(52))
    reserve = done.width + c.px(16)
    band = header(c, view.title, "" if c.portrait else view.device_name or format_clock(now),
                  reserve=reserve)
    done.midright = (width - c.px(16), band.centery)
    button(c, done, tr.gettext(DONE), Action.DISMISS, HEADER_BUTTON, size=32)

    pad = c.px(16)
    top = band.bottom + pad
    bottom = height - pad
    if view.countdown:
        # The idle logout's last seconds, along the bottom (any touch stays).
        line = c.font(28).get_linesize()
        c.text(view.countdown, 28, MUTED, width - 2 * pad, role="status",
               midbottom=(width // 2, bottom))
        bottom -= line + c.px(8)
    columns = _columns(view.rows, 1 if c.portrait or width < c.px(700) else 2)
    gap = c.px(16)
    col_w = (width - 2 * pad - gap * (len(columns) - 1)) // len(columns)
    # Rows share the height; a value too wide beside its label takes a line of its own under
    # it (raw bytes of a long frame), so the digits a technician compares are never cut.
    room = bottom - top
    for size in range(ROW_SIZE, 7, -1):  # the largest text at which every row fits
        label_ws = [_label_width(c, col, col_w, size) for col in columns]
        splits = [[_split(c, r, col_w, size, w) for r in col]
                  for col, w in zip(columns, label_ws, strict=True)]
        units = max(len(col) + sum(split) for col, split in zip(columns, splits, strict=True))
        row_h = max(1, min(c.px(ROW_MAX), room // max(1, units)))
        if c.size_for_height(row_h) >= size:
            break
    for index, (col, split, label_w) in enumerate(zip(columns, splits, label_ws, strict=True)):
        left = pad + index * (col_w + gap)
        y = top
        pygame.draw.rect(c.surface, CARD,
                         pygame.Rect(left, top, col_w, row_h * (len(col) + sum(split))),
                         border_radius=c.px(8))
        for row, two in zip(col, split, strict=True):
            h = row_h * (2 if two else 1)
            _row(c, row, pygame.Rect(left, y, col_w, h), size, label_w, two)
            y += h


def _columns(rows: tuple[InfoRow, ...], count: int) -> list[tuple[InfoRow, ...]]:
    """One column, or two: the first group (the last badge) on the left, the others right."""
    if count == 1 or not rows:
        return [rows]
    second = next((i for i, r in enumerate(rows) if r.heading and i > 0), len(rows))
    return [rows[:second], rows[second:]] if rows[second:] else [rows]


def _inner(c: Canvas, col_w: int) -> int:
    return col_w - 2 * c.px(10)


def _label_width(c: Canvas, rows: tuple[InfoRow, ...], col_w: int, size: int) -> int:
    """As wide as the column's widest label, within a third to three fifths of the column."""
    inner = _inner(c, col_w)
    font = c.font(size)
    widest = max((font.size(r.label)[0] for r in rows if r.value and not r.heading), default=0)
    return max(inner // 3, min(inner * 3 // 5, widest))


def _split(c: Canvas, row: InfoRow, col_w: int, size: int, label_w: int) -> bool:
    """Whether ``row``'s value does not fit beside its label (it then goes under it)."""
    if row.heading or not row.value:
        return False
    return c.font(size, bold=row.chosen).size(row.value)[0] > \
        _inner(c, col_w) - label_w - c.px(8)


def _row(c: Canvas, row: InfoRow, rect: pygame.Rect, size: int, label_w: int,
         two: bool) -> None:
    inset = c.px(10)
    inner = rect.width - 2 * inset
    if row.heading:
        c.text(row.label, size, PRIMARY, inner, role="heading", bg=CARD,
               midleft=(rect.left + inset, rect.centery))
        pygame.draw.line(c.surface, LINE, (rect.left + inset, rect.bottom - 1),
                         (rect.right - inset, rect.bottom - 1), max(1, c.px(1)))
        return
    if not row.value:
        c.text(row.label, size, MUTED, inner, role="label", bg=CARD,
               midleft=(rect.left + inset, rect.centery))
        return
    ink = PRIMARY if row.chosen else INK
    if two:
        # The label on one line, the value on the next, the row's whole width.
        half = rect.height // 2
        c.text(row.label, size, MUTED, inner, role="label", bg=CARD,
               midleft=(rect.left + inset, rect.top + half // 2))
        c.text(row.value, size, ink, inner, role="detail", bold=row.chosen, bg=CARD,
               midleft=(rect.left + inset, rect.top + half + half // 2))
        return
    value_left = rect.left + inset + label_w + c.px(8)
    c.text(row.label, size, MUTED, label_w, role="label", bg=CARD,
           midleft=(rect.left + inset, rect.centery))
    c.text(row.value, size, ink, rect.right - inset - value_left, role="detail",
           bold=row.chosen, bg=CARD, midleft=(value_left, rect.centery))
