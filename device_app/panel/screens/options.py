"""OPTIONS: release with changes: black & white, 2-sided and copies, each a whole row to tap,
each with a line under it that says what the choice does (and what "as sent" keeps)."""

from __future__ import annotations

import pygame

from device_app.panel.canvas import Canvas, Target
from device_app.panel.theme import (
    CARD,
    INK,
    LINE,
    MUTED,
    ON_PRIMARY,
    PRIMARY,
    PRIMARY_BUTTON,
    SECONDARY_BUTTON,
    SWITCH_OFF,
)
from device_app.panel.widgets import button, countdown_band, header
from device_app.view import Action, OptionsView, PanelView


def draw(c: Canvas, view: PanelView, now: float) -> None:
    width, height = c.surface.get_size()
    pad = c.px(16)
    tr = c.tr
    band = header(c, view.title or tr.gettext("Release with changes"), shrink=True)
    opts = view.options or OptionsView()

    bar_height = c.tap(64) + 2 * c.px(12)
    bar = pygame.Rect(0, height - bar_height, width, bar_height)
    pygame.draw.rect(c.surface, CARD, bar)
    pygame.draw.line(c.surface, LINE, bar.topleft, bar.topright, max(1, c.px(2)))
    # 200 and 300 design units where they fit; narrow glass shares its width 2:3.
    room = width - 3 * pad
    cancel = pygame.Rect(pad, 0, min(c.px(200), room * 2 // 5), c.tap(64))
    release = pygame.Rect(0, 0, min(c.px(300), room * 3 // 5), c.tap(64))
    release.right = width - pad
    cancel.centery = release.centery = bar.centery
    button(c, cancel, tr.gettext("Cancel"), Action.CANCEL, SECONDARY_BUTTON)
    button(c, release, tr.gettext("Release"), Action.RELEASE, PRIMARY_BUTTON)

    area = pygame.Rect(0, band.bottom, width, bar.top - band.bottom)
    row_h = max(c.tap(64), area.height // 3)
    rows = [pygame.Rect(0, area.top + i * row_h, width, row_h) for i in range(3)]
    _toggle_row(c, rows[0], tr.gettext("Black & white"), opts.grayscale,
                tr.gettext("Black and white: saves colour toner"),
                tr.gettext("As sent: each job keeps its own colours"), Action.TOGGLE_GRAYSCALE)
    _toggle_row(c, rows[1], tr.gettext("2-sided"), opts.duplex,
                tr.gettext("Prints on both sides of the paper"),
                tr.gettext("As sent: each job keeps its own sides"), Action.TOGGLE_DUPLEX)
    _copies_row(c, rows[2], opts.copies)
    if view.countdown:
        countdown_band(c, view.countdown, bar.top)


def _option_text(c: Canvas, row: pygame.Rect, label: str, detail: str, right: int) -> None:
    """The choice's name and, under it, what it does: on one line where it fits, else on two
    where the row is tall enough, else cut. The pair is centred in the row."""
    pad = c.px(24)
    room = max(0, right - row.left - 2 * pad)
    label_h = c.font(40).get_height()
    size, lines = 30, 1
    if c.font(size).size(detail)[0] > room:
        size = 28
        if label_h + 2 * c.font(size).get_linesize() + c.px(4) <= row.height - c.px(8):
            lines = 2
    block = label_h + c.px(4) + lines * c.font(size).get_linesize()
    top = row.top + max(0, (row.height - block) // 2)
    c.text(label, 40, INK, max_width=room, topleft=(row.left + pad, top))
    c.lines(detail, size, MUTED, 0, top + label_h + c.px(4), room, lines, left=row.left + pad)


def _toggle_row(c: Canvas, row: pygame.Rect, label: str, on: bool, on_detail: str,
                off_detail: str, action: Action) -> None:
    """The whole row toggles: a switch alone would be a small target for a big idea."""
    pygame.draw.rect(c.surface, CARD, row)
    pygame.draw.line(c.surface, LINE, row.bottomleft, row.bottomright, max(1, c.px(1)))
    pad = c.px(24)
    switch = pygame.Rect(0, 0, c.px(88), c.px(48))
    switch.midright = (row.right - pad, row.centery)
    radius = switch.height // 2
    pygame.draw.rect(c.surface, PRIMARY if on else SWITCH_OFF, switch,
                     border_radius=radius)
    knob_x = switch.right - radius if on else switch.left + radius
    pygame.draw.circle(c.surface, ON_PRIMARY, (knob_x, switch.centery),
                       radius - c.px(5))
    state = c.text(c.tr.gettext("On") if on else c.tr.gettext("Off"), 34, INK if on else MUTED,
                   midright=(switch.left - c.px(14), row.centery))
    _option_text(c, row, label, on_detail if on else off_detail, state.left)
    c.targets.append(Target(pygame.Rect(row), action))


def _copies_row(c: Canvas, row: pygame.Rect, copies: int | None) -> None:
    pygame.draw.rect(c.surface, CARD, row)
    pygame.draw.line(c.surface, LINE, row.bottomleft, row.bottomright, max(1, c.px(1)))
    pad = c.px(24)
    gap = c.px(12)
    plus = pygame.Rect(0, 0, c.px(80), c.tap(64))
    words_h = c.font(40).get_height() + c.px(4) + 2 * c.font(28).get_linesize()
    # Tall narrow rows (portrait) stack the words over the - value + stepper, so that
    # neither is squeezed to a few letters beside the other.
    stacked = c.portrait and row.height >= words_h + plus.height + c.px(40)
    text_row = pygame.Rect(row)
    if stacked:
        text_row.height = words_h + c.px(16)
        plus.bottomright = (row.right - pad, row.bottom - c.px(16))
    else:
        plus.midright = (row.right - pad, row.centery)
    value = pygame.Rect(0, 0, c.px(130 if stacked or not c.portrait else 72), plus.height)
    value.midright = (plus.left - gap, plus.centery)
    minus = pygame.Rect(plus)
    minus.right = value.left - gap
    c.text(c.tr.gettext("as sent") if copies is None else str(copies), 40 if copies else 34,
           INK if copies else MUTED, max_width=value.width, center=value.center)
    # 1 goes down to "as sent" (the session's None), so - is off only there; 99 is the top.
    for rect, action, enabled, vertical in (
        (minus, Action.COPIES_DOWN, copies is not None, False),
        (plus, Action.COPIES_UP, (copies or 1) < 99, True),
    ):
        ink = button(c, rect, "", action, SECONDARY_BUTTON, enabled)
        arm, line = c.px(14), max(3, c.px(4))
        cx, cy = rect.center
        pygame.draw.line(c.surface, ink, (cx - arm, cy), (cx + arm, cy), line)
        if vertical:
            pygame.draw.line(c.surface, ink, (cx, cy - arm), (cx, cy + arm), line)
    detail = (c.tr.gettext("How many of each job; as sent, each keeps its own")
              if copies is None else c.tr.gettext("How many of each job"))
    _option_text(c, text_row, c.tr.gettext("Copies"), detail, row.right if stacked else minus.left)
