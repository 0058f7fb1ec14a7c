"""IDLE: the panel waiting for someone: a badge to tap, big enough to read from across the room,
and a button for each other way in the device accepts (access code, email + password)."""

from __future__ import annotations

import pygame

from device_app.panel.canvas import Canvas
from device_app.panel.qr import draw_qr
from device_app.panel.text import format_clock
from device_app.panel.theme import INK, LINK_BUTTON, MUTED, PRIMARY
from device_app.panel.widgets import button, header
from device_app.view import Action, PanelView

#: Design units of the right-hand column the portal's QR code takes on wide glass.
QR_COLUMN = 200


def draw(c: Canvas, view: PanelView, now: float) -> None:
    full_width, height = c.surface.get_size()
    band = header(c, view.device_name, format_clock(now))
    body = height - band.bottom
    # With the portal's QR code, wide glass gives it a column at the right and lays the rest
    # out in what is left; narrow glass sets it between the prompt and the buttons.
    column = c.px(QR_COLUMN) if view.qr_url and not c.portrait else 0
    width = full_width - column
    cx = width // 2
    ways = [(label, action) for label, action, offered in (
        (c.tr.gettext("Enter access code"), Action.ENTER_CODE, view.can_type_code),
        (c.tr.gettext("Email + password"), Action.ENTER_PASSWORD, view.can_type_password),
    ) if offered]
    # The badge stays the first thing the eye finds; the typed ways in sit below it, smaller.
    icon_at, prompt_at = (0.22, 0.52) if ways else (0.32, 0.64)
    if ways and c.portrait:
        icon_at, prompt_at = (0.18, 0.42)  # the stacked buttons take the lower third
    if c.portrait and view.qr_url:
        icon_at, prompt_at = (0.12, 0.30)  # the QR code takes the room above the buttons

    # A badge with contactless waves: recognisable without reading, from across the room.
    card = pygame.Rect(0, 0, c.px(190), c.px(124))
    card.center = (cx - c.px(36), band.bottom + round(body * icon_at))
    pygame.draw.rect(c.surface, PRIMARY, card, border_radius=c.px(14))
    photo = pygame.Rect(0, 0, c.px(52), c.px(64))
    photo.midleft = (card.left + c.px(20), card.centery)
    pygame.draw.rect(c.surface, (170, 200, 235), photo, border_radius=c.px(6))
    pygame.draw.circle(c.surface, PRIMARY, (photo.centerx, photo.top + c.px(24)),
                       c.px(12))
    pygame.draw.ellipse(c.surface, PRIMARY,
                        pygame.Rect(photo.left + c.px(8), photo.top + c.px(40),
                                    photo.width - c.px(16), c.px(30)))
    line_left = photo.right + c.px(16)
    for i, length in enumerate((86, 64, 74)):
        bar = pygame.Rect(line_left, photo.top + c.px(6 + 22 * i), c.px(length),
                          c.px(10))
        pygame.draw.rect(c.surface, (170, 200, 235), bar, border_radius=c.px(5))
    centre = (card.right + c.px(14), card.centery)
    for i in range(3):
        radius = c.px(26 + 22 * i)
        arc = pygame.Rect(0, 0, 2 * radius, 2 * radius)
        arc.center = centre
        pygame.draw.arc(c.surface, PRIMARY, arc, -0.75, 0.75, max(3, c.px(7)))

    prompt_y = band.bottom + round(body * prompt_at)
    prompt = view.title or c.tr.gettext("Tap your badge")
    room = width - c.px(48)
    # Narrow (portrait) glass sets the prompt smaller before it would lose a word, and a
    # prompt too long even then ("Karte an den Leser halten") takes two lines.
    size = c.fitting_size(prompt, (104, 92, 80, 68), room, bold=True)
    if c.font(size, bold=True).size(prompt)[0] > room:
        line_h = c.font(size, bold=True).get_linesize()
        c.lines(prompt, size, INK, cx, prompt_y - line_h, room, 2, role="prompt")
    else:
        c.text(prompt, size, INK, max_width=room, role="prompt", center=(cx, prompt_y))
    # No default line under the prompt: it used to promise an access code that the panel
    # may not accept. The buttons below say exactly which other ways in there are.
    below = prompt_y + c.px(60)
    if view.message:
        c.text(view.message, 36, MUTED, max_width=width - c.px(48),
               midtop=(cx, prompt_y + c.px(50)))
        below += c.px(40)
    gap = c.px(24)
    button_h = c.tap(76)
    if column:
        margin = c.px(16)
        _portal_code(c, view.qr_url, pygame.Rect(width, band.bottom + margin, column - margin,
                                                 body - 2 * margin))
    elif view.qr_url:
        top = height - c.px(28) - len(ways) * button_h - max(0, len(ways) - 1) * gap
        _portal_code(c, view.qr_url, pygame.Rect(0, below, width, top - below))
    if not ways:
        return
    if c.portrait:
        # Narrow glass: the ways in stack, each as wide as the glass allows, the first on top.
        button_w = min(c.px(400), width - c.px(48))
        top = height - c.px(28) - len(ways) * button_h - (len(ways) - 1) * gap
        for i, (label, action) in enumerate(ways):
            rect = pygame.Rect(cx - button_w // 2, top + i * (button_h + gap), button_w,
                               button_h)
            button(c, rect, label, action, LINK_BUTTON, size=36)
        return
    button_w = min(c.px(340), (width - c.px(48) - gap) // 2)
    row_w = len(ways) * button_w + (len(ways) - 1) * gap
    top = height - c.px(28) - button_h
    for i, (label, action) in enumerate(ways):
        rect = pygame.Rect(cx - row_w // 2 + i * (button_w + gap), top, button_w, button_h)
        button(c, rect, label, action, LINK_BUTTON, size=36)


def _portal_code(c: Canvas, url: str, room: pygame.Rect) -> None:
    """The portal's page for this copier as a QR code in ``room``, with what it is for under
    it: a phone that scans it releases the user's jobs here, without the badge."""
    caption = c.tr.gettext("Scan to release from your phone")
    size = 20
    caption_h = c.font(size).get_linesize() * 2 + c.px(8)
    code_room = pygame.Rect(room.left, room.top, room.width, room.height - caption_h)
    square = draw_qr(c.surface, url, code_room)
    if square is None:
        return  # too little glass for a code a phone could read
    c.lines(caption, size, MUTED, square.centerx, square.bottom + c.px(8),
            max(square.width, min(room.width, c.px(180))), 2, role="caption")
