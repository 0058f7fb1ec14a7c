"""ENTRY: typing an access code on the keypad, or an email and password on the full keyboard.

The fields show what the session gives them (secrets masked already); a tap on a field moves the
focus there. The keyboards themselves, and the Shift and A-Z state they keep, are keyboard.py's.
"""

from __future__ import annotations

import pygame

from device_app.panel.canvas import Canvas, Target
from device_app.panel.keyboard import (
    Keyboard,
    draw_keypad,
    draw_text_keyboard,
    text_keyboard_rows,
)
from device_app.panel.text import fit_text_tail, wrap_text
from device_app.panel.theme import (
    BAD,
    CARD,
    HEADER_BUTTON,
    INK,
    KEY_SHADOW,
    LINK_BUTTON,
    MUTED,
    PRIMARY,
)
from device_app.panel.widgets import button, header
from device_app.view import Action, EntryView, FieldView, PanelView

# Fields that hold an email get more of the row than secrets and codes, which are short.
_NARROW_FIELDS = frozenset({"password", "pin", "code"})


def draw(c: Canvas, view: PanelView, now: float, kb: Keyboard) -> None:
    width = c.surface.get_width()
    entry = view.entry
    text = entry is not None and entry.keyboard == "text"
    pad = c.px(16)
    cancel = pygame.Rect(0, 0, c.px(150), c.tap(52))
    # The full keyboard needs every row of pixels it can get, so its header is lower.
    band = header(c, view.title, reserve=cancel.width + pad, height=64 if text else 72,
                  shrink=True)
    cancel.midright = (width - pad, band.centery)
    button(c, cancel, c.tr.gettext("Cancel"), Action.CANCEL, HEADER_BUTTON)
    if entry is None:
        return
    if text:
        _draw_text_entry(c, entry, band.bottom, kb)
    else:
        _draw_code_entry(c, entry, band.bottom, kb)


def _switch_label(c: Canvas, entry: EntryView) -> str:
    return (c.tr.gettext("Use email + password") if "code" in entry.kind
            else c.tr.gettext("Use access code"))


def _draw_code_entry(c: Canvas, entry: EntryView, top: int, kb: Keyboard) -> None:
    """Field on the left, keypad on the right: a hand on the keys never covers what it
    has typed, and the field has room for a wrapped error below it. On narrow (portrait)
    glass the field, its error and the switch stack above a keypad as wide as the glass."""
    width, height = c.width, c.height
    pad = c.px(16)
    top += c.px(12)
    bottom = height - c.px(12)
    label_h = c.font(30).get_linesize()
    field_h = c.tap(76)
    link_h = c.tap(60) if entry.can_switch else 0
    if c.portrait:
        error_h = 2 * label_h if entry.error else 0
        column_h = (len(entry.fields) * (label_h + c.px(6) + field_h + c.px(14)) + error_h
                    + (link_h + c.px(8) if link_h else 0))
        left = pygame.Rect(pad, top, width - 2 * pad, column_h)
        keypad = pygame.Rect(pad, left.bottom + c.px(12), width - 2 * pad,
                             bottom - left.bottom - c.px(12))
    else:
        # Wide glass keeps the pair together in the middle: a keypad a metre wide is no
        # easier to type on.
        column_w = c.px(320) - 2 * pad
        keypad_w = min(width - 3 * pad - column_w, c.px(640))
        x = (width - (column_w + pad + keypad_w)) // 2
        left = pygame.Rect(x, top, column_w, bottom - top)
        keypad = pygame.Rect(left.right + pad, top, keypad_w, bottom - top)

    link_top = left.bottom
    if entry.can_switch:
        link = pygame.Rect(left.left, 0, left.width, link_h)
        link.bottom = left.bottom
        button(c, link, _switch_label(c, entry), Action.SWITCH_ENTRY, LINK_BUTTON,
               size=28)
        link_top = link.top
    y = left.top
    for item in entry.fields:
        y = c.text(item.label, 30, MUTED, max_width=left.width, role="label",
                   topleft=(left.left, y)).bottom + c.px(6)
        box = pygame.Rect(left.left, y, left.width, field_h)
        _draw_field(c, box, item, 56)
        y = box.bottom + c.px(14)
    if entry.error:
        room = (link_top - c.px(8) - y) // c.font(30).get_linesize()
        if room > 0:
            c.lines(entry.error, 30, BAD, 0, y, left.width, room, left=left.left)
    draw_keypad(c, keypad, kb)


def _draw_field(c: Canvas, box: pygame.Rect, item: FieldView, size: int,
                label_inside: bool = False) -> None:
    """A text field showing ``item.display`` (masked already, for secrets); the focused one
    has a blue frame and a caret. A tap on it moves the focus there."""
    focused = item.focused
    corner = c.px(8)
    pygame.draw.rect(c.surface, CARD, box, border_radius=corner)
    pygame.draw.rect(c.surface, PRIMARY if focused else KEY_SHADOW, box,
                     width=max(2, c.px(3 if focused else 2)), border_radius=corner)
    inner = c.px(14)
    centre_y = box.centery
    if label_inside:
        label = c.text(item.label, 24, PRIMARY if focused else MUTED,
                       max_width=box.width - 2 * inner, role="label", bg=CARD,
                       topleft=(box.left + inner, box.top + c.px(4)))
        centre_y = (label.bottom + box.bottom) // 2
    font = c.font(size)
    caret_room = c.px(8)
    # The end of the value is kept in view: it is where the next character goes.
    shown = fit_text_tail(font, item.display, box.width - 2 * inner - caret_room)
    rect = c.text(shown, size, INK, box.width - 2 * inner - caret_room, role="field", bg=CARD,
                  source=item.display, box=box, midleft=(box.left + inner, centre_y))
    if focused:
        half = min(font.get_height(), box.height - c.px(16)) * 2 // 5
        x = rect.right + c.px(3)
        pygame.draw.line(c.surface, PRIMARY, (x, centre_y - half), (x, centre_y + half),
                         max(2, c.px(3)))
    c.targets.append(Target(pygame.Rect(box), Action.FOCUS, item.name))


def _draw_text_entry(c: Canvas, entry: EntryView, top: int, kb: Keyboard) -> None:
    """Fields side by side (one above the other on portrait glass), a line for the error and
    the switch, then the keyboard across the whole width."""
    width, height = c.surface.get_size()
    pad = c.px(12)
    gap = c.px(6)
    row = pygame.Rect(pad, top + c.px(8), width - 2 * pad, c.tap(60))
    fields = entry.fields
    weights = [2 if f.name in _NARROW_FIELDS else 3 for f in fields]
    spacing = c.px(12)
    usable = row.width - spacing * max(0, len(fields) - 1)
    done = 0
    # Stacked only where the glass is tall enough for it: fields one a row, the switch and
    # the error each a line, and the keyboard's rows of finger-sized keys under them. Glass
    # barely taller than wide (480x481) keeps the fields side by side, or the keys overlap.
    keys_h = text_keyboard_rows() * (c.min_target + max(2, gap - gap % 2))
    stacked_h = (len(fields) * (row.height + spacing) + 2 * (c.tap(48) + gap) + gap
                 + keys_h)
    stacked = c.portrait and height - row.top >= stacked_h
    if stacked:
        # Tall glass: one field a row, each as wide as the glass, so an address is seen whole.
        for i, item in enumerate(fields):
            box = row.move(0, i * (row.height + spacing))
            _draw_field(c, box, item, 30, label_inside=True)
        row.height += (len(fields) - 1) * (row.height + spacing)
    else:
        for i, (item, weight) in enumerate(zip(fields, weights, strict=True)):
            left = row.left + round(usable * done / sum(weights)) + i * spacing
            done += weight
            right = row.left + round(usable * done / sum(weights)) + i * spacing
            _draw_field(c, pygame.Rect(left, row.top, right - left, row.height), item, 30,
                        label_inside=True)

    info = pygame.Rect(pad, row.bottom + gap, width - 2 * pad, c.tap(48))
    error_box = pygame.Rect(info)
    link_at = info.topright
    if stacked:
        # Tall glass has the rows to spare: the error gets a whole line under the switch.
        if entry.can_switch:
            error_box.top = info.bottom + gap
        info.height = error_box.bottom - info.top
    if entry.can_switch:
        link = pygame.Rect(0, 0, c.px(250), c.tap(48))
        link.topright = link_at
        button(c, link, _switch_label(c, entry), Action.SWITCH_ENTRY, LINK_BUTTON,
               size=28)
        if not stacked:
            error_box.width = link.left - pad - info.left
    if entry.error:
        _error_in(c, entry.error, error_box)

    tray = pygame.Rect(0, info.bottom + gap, width, height - info.bottom - gap)
    if stacked:
        # Tall glass: the keyboard sits at the foot, where thumbs are, no taller than keys
        # need; its keys take the tray's margins, for ten keys across have to be a finger each.
        tray.height = min(tray.height, c.px(400))
        tray.bottom = height
    # An even gap halves exactly: each key answers for half of it, and the tray's margin is the
    # other half, so ten keys share the whole width (48 px each on 480 px glass).
    key_gap = max(2, gap - gap % 2)
    tight = c.portrait or (width - 2 * pad + gap) / 10 < c.min_target + gap
    # Wide glass keeps the keyboard a keyboard's width (1100 units), centred on its tray.
    margin = key_gap // 2 if tight else max(pad, (width - c.px(1100)) // 2)
    draw_text_keyboard(c, tray, margin, key_gap, kb)


def _error_in(c: Canvas, text: str, box: pygame.Rect) -> None:
    """An entry error inside ``box``: one line if it fits, else two smaller ones, else cut;
    never over the keys."""
    size = c.fitting_size(text, (30, 26), box.width)
    font = c.font(size)
    lines = wrap_text(font, text, box.width, max(1, min(2, box.height // font.get_linesize())))
    y = box.centery - len(lines) * font.get_linesize() // 2
    for line in lines:
        c.text(line, size, BAD, max_width=box.width, source=text, topleft=(box.left, y))
        y += font.get_linesize()
