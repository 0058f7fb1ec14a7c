"""NOTICE: a message that needs an OK: the whole glass takes its tone (info, done, error)."""

from __future__ import annotations

import pygame

from device_app.i18n import N_
from device_app.panel import icons
from device_app.panel.canvas import Canvas
from device_app.panel.theme import CARD, INK, ON_PRIMARY, TONE_STRONG, TONE_TINT, Style
from device_app.panel.widgets import button
from device_app.view import Action, PanelView, Tone


def draw(c: Canvas, view: PanelView, now: float) -> None:
    width, height = c.surface.get_size()
    strong = TONE_STRONG[view.tone]
    # The whole glass takes the tone, so "something went wrong" reads before any word does.
    c.surface.fill(TONE_TINT[view.tone])
    card = pygame.Rect(0, 0, min(width - c.px(48), c.px(660)),
                       min(height - c.px(48), c.px(380)))
    card.center = (width // 2, height // 2)
    radius = c.px(16)
    pygame.draw.rect(c.surface, CARD, card, border_radius=radius)
    band = pygame.Rect(card.left, card.top, card.width, c.px(88))
    pygame.draw.rect(c.surface, strong, band, border_top_left_radius=radius,
                     border_top_right_radius=radius)

    badge = c.px(24)
    centre = (band.left + c.px(28) + badge, band.centery)
    pygame.draw.circle(c.surface, ON_PRIMARY, centre, badge)
    icon = pygame.Rect(0, 0, 2 * badge, 2 * badge)
    icon.center = centre
    if view.tone is Tone.OK:
        icons.check(c, icon, strong)
    else:
        c.text("!" if view.tone is Tone.ERROR else "i", 56, strong, role="heading",
               bg=ON_PRIMARY, center=centre)
    title = view.title or c.tr.gettext({Tone.INFO: N_("Note"), Tone.OK: N_("Done"),
                                        Tone.ERROR: N_("Something went wrong")}[view.tone])
    title_left = centre[0] + badge + c.px(20)
    room = band.right - c.px(24) - title_left
    # A narrow card sets a long title smaller before it cuts it.
    c.text(title, c.fitting_size(title, (52, 44, 38, 32), room, bold=True), ON_PRIMARY,
           max_width=room, role="heading", bg=strong, midleft=(title_left, band.centery))

    ok = pygame.Rect(0, 0, c.px(220), c.tap(64))
    ok.midbottom = (card.centerx, card.bottom - c.px(24))
    line_h = c.font(40).get_linesize()
    room = max(1, (ok.top - band.bottom - c.px(32)) // line_h)
    c.lines(view.message, 40, INK, card.centerx, band.bottom + c.px(24),
            card.width - c.px(64), room)
    button(c, ok, c.tr.gettext("OK"), Action.DISMISS, Style(strong, ON_PRIMARY))
