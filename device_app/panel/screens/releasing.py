"""RELEASING: each released job and where it is (waiting, printing, printed, failed; the
engine's page count where it reports one), keeping the job being printed in view when the list
is longer than the glass, and "Done, log me out" once the jobs are on their way."""

from __future__ import annotations

from collections.abc import Sequence

import pygame

from device_app.i18n import N_
from device_app.panel import icons
from device_app.panel.canvas import Canvas
from device_app.panel.theme import (
    ACTIVE_ROW,
    BAD,
    BAD_ROW,
    CARD,
    GOOD,
    INK,
    LINE,
    MUTED,
    ON_PRIMARY,
    PRIMARY,
    SECONDARY_BUTTON,
)
from device_app.panel.widgets import button, header
from device_app.view import Action, JobProgress, PanelView

_STATE_LABEL = {"waiting": N_("Waiting"), "printing": N_("Printing\u2026"),
                "printed": N_("Printed"), "failed": N_("Failed")}


def draw(c: Canvas, view: PanelView, now: float) -> None:
    width, height = c.surface.get_size()
    items = view.progress
    printed = sum(1 for p in items if p.state == "printed")
    tr = c.tr
    band = header(c, view.title or tr.gettext("Releasing your jobs"),
                  tr.gettext("{printed} of {total} printed", printed=printed,
                             total=len(items)) if items else "")
    pad = c.px(16)
    bottom = height
    if view.can_walk_away:
        # The person need not stay to watch: the jobs print on, and are reported, without them.
        bar = pygame.Rect(0, 0, width, c.tap(64) + 2 * c.px(12))
        bar.bottom = height
        pygame.draw.rect(c.surface, CARD, bar)
        pygame.draw.line(c.surface, LINE, bar.topleft, bar.topright, max(1, c.px(2)))
        done = pygame.Rect(0, 0, min(width - 2 * pad, c.px(320)), c.tap(64))
        done.center = bar.center
        button(c, done, tr.gettext("Done, log me out"), Action.WALK_AWAY, SECONDARY_BUTTON,
               size=32)
        bottom = height = bar.top
    if view.message:
        bottom = height - c.px(64)
        c.text(view.message, 34, MUTED, max_width=width - 2 * pad,
               center=(width // 2, (bottom + height) // 2))
    row_h = c.tap(64)
    capacity = max(1, (bottom - band.bottom) // row_h)
    shown: Sequence[JobProgress] = items
    if len(items) > capacity:
        # Keep the job being printed in view with the one before it, so a failure that
        # just happened is not scrolled away; the last slot says how much is hidden.
        capacity -= 1
        active = next((i for i, p in enumerate(items) if p.state in ("printing", "waiting")),
                      len(items) - 1)
        start = min(max(0, active - 1), len(items) - capacity)
        shown = items[start : start + capacity]
        note_top = band.bottom + capacity * row_h
        c.text(tr.gettext("Showing {first}\u2013{last} of {total}", first=start + 1,
                          last=start + capacity, total=len(items)), 30, MUTED,
               center=(width // 2, note_top + row_h // 2))
    for i, item in enumerate(shown):
        row = pygame.Rect(0, band.bottom + i * row_h, width, row_h)
        _draw_progress_row(c, row, item)


def _draw_progress_row(c: Canvas, row: pygame.Rect, item: JobProgress) -> None:
    state = item.state
    fill = {"failed": BAD_ROW, "printing": ACTIVE_ROW}.get(state, CARD)
    pygame.draw.rect(c.surface, fill, row)
    pygame.draw.line(c.surface, LINE, row.bottomleft, row.bottomright, max(1, c.px(1)))
    pad = c.px(16)
    color = {"printing": PRIMARY, "printed": GOOD, "failed": BAD}.get(state, MUTED)

    radius = c.px(18)
    centre = (row.left + pad + radius + c.px(4), row.centery)
    icon = pygame.Rect(0, 0, 2 * radius, 2 * radius)
    icon.center = centre
    if state == "waiting" or color is MUTED:
        pygame.draw.circle(c.surface, MUTED, centre, radius, max(2, c.px(3)))
    else:
        pygame.draw.circle(c.surface, color, centre, radius)
        if state == "printed":
            icons.check(c, icon, ON_PRIMARY)
        elif state == "failed":
            icons.cross(c, icon, ON_PRIMARY)
        else:
            for dx in (-1, 0, 1):
                pygame.draw.circle(c.surface, ON_PRIMARY,
                                   (centre[0] + dx * c.px(9), centre[1]), c.px(3))

    label = c.text(c.tr.gettext(_STATE_LABEL[state]) if state in _STATE_LABEL
                   else state.capitalize(), 34, color,
                   max_width=c.px(170), midright=(row.right - pad, row.centery))
    left = icon.right + pad
    text_width = max(0, label.left - pad - left)
    if item.detail:
        c.text(item.name, 38, INK, max_width=text_width,
               topleft=(left, row.top + c.px(8)))
        c.text(item.detail, 30, BAD if state == "failed" else MUTED,
               max_width=text_width, topleft=(left, row.top + c.px(37)))
    else:
        c.text(item.name, 38, INK, max_width=text_width, midleft=(left, row.centery))
