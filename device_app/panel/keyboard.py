"""The on-screen keyboards: the code keypad (digits, or A-Z for codes with letters) and the full
text keyboard, and the little state they keep.

The keyboards keep two bits between frames: Shift, and whether the code keypad shows letters.
They change only what the keys look like, never what the session holds, so a tap on them is
answered here (:meth:`Keyboard.press` applies it and returns None) and both are forgotten when
the entry screen goes away. Every other key is ``(Action.KEY, key)``, the key as the session
expects it: the character, or BACKSPACE, CLEAR, TAB, ENTER.
"""

from __future__ import annotations

from functools import partial

import pygame

from device_app.i18n import N_
from device_app.panel import icons
from device_app.panel.canvas import Canvas
from device_app.panel.theme import (
    ENTER_KEY,
    FUNCTION_KEY,
    KEY_SHADOW,
    KEY_STYLE,
    KEY_TRAY,
    PRIMARY,
    SELECTED_ROW,
    Style,
)
from device_app.panel.widgets import Icon, button
from device_app.view import Action

#: Keys that change only how the keyboard looks; :meth:`Keyboard.press` handles them itself.
KEY_SHIFT = "SHIFT"
KEY_LETTERS = "LETTERS"
KEY_DIGITS = "DIGITS"

# The text keyboard, row by row: (label, key sent, width in key units). Ten units a row, so the
# letter keys are as wide as the panel allows; an empty label is a drawn icon.
_Key = tuple[str, str, float]
_TEXT_ROWS: tuple[tuple[_Key, ...], ...] = (
    tuple((c, c, 1.0) for c in "1234567890"),
    tuple((c, c, 1.0) for c in "qwertyuiop"),
    tuple((c, c, 1.0) for c in "asdfghjkl"),
    (("", KEY_SHIFT, 1.5), *((c, c, 1.0) for c in "zxcvbnm"), ("", "BACKSPACE", 1.5)),
    ((N_("Next"), "TAB", 1.5), ("@", "@", 1.0), (".", ".", 1.0), (N_("space"), " ", 3.0),
     ("-", "-", 1.0), ("_", "_", 1.0), (N_("OK"), "ENTER", 1.5)),
)
def text_keyboard_rows() -> int:
    """How many rows of keys the text keyboard has (a screen plans its height on it)."""
    return len(_TEXT_ROWS)


#: What the draw tree calls the keys drawn as icons.
_KEY_NAMES = {KEY_SHIFT: N_("Shift"), "BACKSPACE": N_("Backspace")}
#: Where each text row starts, in key units: the home row sits half a key in, as on paper.
_TEXT_INDENT = (0.0, 0.0, 0.5, 0.0, 0.0)


class Keyboard:
    """Shift and letters, for the entry they belong to: a new entry starts on digits, unshifted."""

    def __init__(self) -> None:
        self.shift = False
        self.letters = False
        self._owner: str | None = None

    def belongs_to(self, owner: str | None) -> None:
        """Forget Shift and letters when the entry on screen (its kind, None for none) changes."""
        if owner != self._owner:
            self.shift = self.letters = False
            self._owner = owner

    def press(self, key: str | None) -> tuple[Action, str | None] | None:
        """A tapped key: None for the keys that only change the keyboard, else what it sends."""
        if key == KEY_SHIFT:
            self.shift = not self.shift
            return None
        if key in (KEY_LETTERS, KEY_DIGITS):
            self.letters = key == KEY_LETTERS
            return None
        if key is not None and key.isalpha():
            # Shift holds for one letter, as on a phone: capitals inside addresses are rare.
            self.shift = False
        return Action.KEY, key


def cell(area: pygame.Rect, cols: int, rows: int, col: int, row: int, gap: int,
         span_cols: int = 1, span_rows: int = 1) -> pygame.Rect:
    """One cell of a grid over ``area`` with ``gap`` between cells. Edges are rounded
    from the grid, not summed from widths, so cells never overlap and the grid ends
    exactly at the area's edge."""
    step_x = (area.width + gap) / cols
    step_y = (area.height + gap) / rows
    left = area.left + round(col * step_x)
    top = area.top + round(row * step_y)
    right = area.left + round((col + span_cols) * step_x) - gap
    bottom = area.top + round((row + span_rows) * step_y) - gap
    return pygame.Rect(left, top, right - left, bottom - top)


def _key(c: Canvas, rect: pygame.Rect, label: str, key: str, style: Style = KEY_STYLE,
         size: int = 40, icon: Icon | None = None, gap: int = 0) -> None:
    # A darker lip under each key makes a flat panel read as keys to press.
    pygame.draw.rect(c.surface, KEY_SHADOW, rect.move(0, c.px(2)), border_radius=c.px(8))
    # The key answers for half the gap around it, as on a phone: the cells of the grid touch,
    # so a finger between two keys still hits one, and a key is as wide as its cell.
    name = _KEY_NAMES.get(key)
    ink = button(c, rect, label, Action.KEY, style, subject=key, size=size, radius=8,
                 hit=rect.inflate(gap, gap), role="key",
                 name=c.tr.gettext(name) if name else "")
    if icon is not None:
        icon(rect, ink)


def draw_keypad(c: Canvas, area: pygame.Rect, kb: Keyboard) -> None:
    """Digits as on a calculator, or A-Z for codes with letters. The right-hand column
    (Backspace, Clear, OK) is the same in both, so OK never moves under the thumb."""
    gap = c.px(8)
    _key(c, cell(area, 4, 4, 3, 0, gap), "", "BACKSPACE", FUNCTION_KEY,
         icon=partial(icons.backspace, c), gap=gap)
    _key(c, cell(area, 4, 4, 3, 1, gap), c.tr.gettext("Clear"), "CLEAR", FUNCTION_KEY, size=32,
         gap=gap)
    _key(c, cell(area, 4, 4, 3, 2, gap, span_rows=2), c.tr.gettext("OK"), "ENTER", ENTER_KEY,
         size=48, gap=gap)
    if not kb.letters:
        for i, digit in enumerate("123456789"):
            _key(c, cell(area, 4, 4, i % 3, i // 3, gap), digit, digit, size=56, gap=gap)
        _key(c, cell(area, 4, 4, 0, 3, gap, span_cols=2), "0", "0", size=56, gap=gap)
        _key(c, cell(area, 4, 4, 2, 3, gap), "A\u2013Z", KEY_LETTERS, FUNCTION_KEY, size=36,
             gap=gap)
        return
    # Alphabetical, five to a row: people who type codes rarely type anything else, and
    # A-Z in order is found faster by them than QWERTY.
    block = pygame.Rect(area.left, area.top, cell(area, 4, 4, 2, 0, gap).right - area.left,
                        area.height)
    small = c.px(6)
    for i in range(26):
        letter = chr(ord("A") + i)
        _key(c, cell(block, 5, 6, i % 5, i // 5, small), letter, letter, size=40, gap=small)
    _key(c, cell(block, 5, 6, 1, 5, small, span_cols=4), "0\u20139", KEY_DIGITS, FUNCTION_KEY,
         size=36, gap=small)


def draw_text_keyboard(c: Canvas, tray: pygame.Rect, pad: int, gap: int, kb: Keyboard) -> None:
    """The full keyboard on its tray, across the whole width: at 800 px that makes letter keys
    about 72 x 50 px."""
    pygame.draw.rect(c.surface, KEY_TRAY, tray)
    keys = tray.inflate(-2 * pad, -2 * gap)
    step_x = (keys.width + gap) / 10
    for r, keys_row in enumerate(_TEXT_ROWS):
        units = _TEXT_INDENT[r]
        line = cell(keys, 1, len(_TEXT_ROWS), 0, r, gap)
        for label, key, span in keys_row:
            left = keys.left + round(units * step_x)
            right = keys.left + round((units + span) * step_x) - gap
            _text_key(c, pygame.Rect(left, line.top, right - left, line.height), label, key, kb,
                      gap)
            units += span


def _text_key(c: Canvas, rect: pygame.Rect, label: str, key: str, kb: Keyboard,
              gap: int) -> None:
    if key == KEY_SHIFT:
        style = Style(SELECTED_ROW, PRIMARY, PRIMARY) if kb.shift else FUNCTION_KEY
        _key(c, rect, "", key, style, icon=partial(icons.shift_arrow, c, lit=kb.shift), gap=gap)
    elif key == "BACKSPACE":
        _key(c, rect, "", key, FUNCTION_KEY, icon=partial(icons.backspace, c), gap=gap)
    elif key == "TAB":
        _key(c, rect, c.tr.gettext(label), key, FUNCTION_KEY, size=30, gap=gap)
    elif key == "ENTER":
        _key(c, rect, c.tr.gettext(label), key, ENTER_KEY, size=36, gap=gap)
    elif key == " ":
        _key(c, rect, c.tr.gettext(label), key, size=28, gap=gap)
    elif kb.shift and key.isalpha():
        # The key sends what it shows: with Shift lit, the capital.
        _key(c, rect, label.upper(), key.upper(), gap=gap)
    else:
        _key(c, rect, label, key, gap=gap)
