"""How the panel looks: its design size, colours and button styles, in one place.

Every screen module takes its colours from here, so a change of palette is one edit, and the
contrast promises below hold for every screen at once.
"""

from __future__ import annotations

from typing import NamedTuple

from device_app.view import Tone

Color = tuple[int, int, int]

DESIGN_SIZE = (800, 480)
#: The pixel density the design was drawn at (a 7-inch 800x480 panel): at this dpi one design
#: unit is one pixel, and 48 units are 9 mm, a fingertip.
DESIGN_DPI = 135.0
#: The smallest height of anything a finger has to hit (a fingertip is 8-10 mm).
MIN_TARGET = 48

# Dark ink on a light ground: copiers stand in bright offices. Every text pairing is at least
# 4.5:1 (WCAG AA), most 7:1 (AAA); TEXT_PAIRS below lists them and a test measures each.
BG: Color = (241, 243, 246)
CARD: Color = (255, 255, 255)
INK: Color = (17, 24, 39)
MUTED: Color = (68, 76, 90)
LINE: Color = (200, 205, 213)
HEADER: Color = (16, 42, 67)
HEADER_INK: Color = (255, 255, 255)
HEADER_MUTED: Color = (196, 210, 225)
PRIMARY: Color = (0, 82, 170)
ON_PRIMARY: Color = (255, 255, 255)
SELECTED_ROW: Color = (219, 233, 252)
DISABLED: Color = (218, 222, 228)
# Greyed, and still 4.7:1 on DISABLED: WCAG exempts disabled controls, but a person still
# has to read what the button would do once a job is chosen (it was 3.4:1).
DISABLED_INK: Color = (88, 95, 106)
GOOD: Color = (21, 115, 55)
BAD: Color = (180, 25, 25)
BAD_ROW: Color = (253, 236, 236)
ACTIVE_ROW: Color = (232, 241, 253)
# Amber says "the machine needs a hand" without the alarm of red; the words stay in full ink.
WARN_FILL: Color = (255, 236, 179)
WARN_MARK: Color = (176, 96, 0)
ON_WARN: Color = (255, 255, 255)
# Keys sit on a darker tray so that 40-odd of them read as one keyboard, not as 40 buttons.
KEY_TRAY: Color = (222, 226, 232)
KEY_FILL: Color = (255, 255, 255)
KEY_FUNCTION: Color = (196, 203, 213)
KEY_SHADOW: Color = (160, 167, 178)
SWITCH_OFF: Color = (120, 128, 140)

TONE_STRONG: dict[Tone, Color] = {Tone.INFO: PRIMARY, Tone.OK: GOOD, Tone.ERROR: BAD}
TONE_TINT: dict[Tone, Color] = {
    Tone.INFO: (219, 233, 252),
    Tone.OK: (218, 244, 226),
    Tone.ERROR: (252, 222, 222),
}

# Process colours read as "colour" to anyone who has changed a toner cartridge.
COLOUR_CHIP: tuple[Color, ...] = ((0, 160, 227), (228, 0, 124), (255, 214, 0))
GREY_CHIP: tuple[Color, ...] = ((30, 30, 30), (120, 120, 120), (200, 200, 200))


class Style(NamedTuple):
    """A button's fill, its ink (label and icon), and an optional border."""

    fill: Color
    ink: Color
    border: Color | None = None


PRIMARY_BUTTON = Style(PRIMARY, ON_PRIMARY)
SECONDARY_BUTTON = Style(CARD, INK, INK)
HEADER_BUTTON = Style(HEADER, HEADER_INK, HEADER_INK)
DISABLED_BUTTON = Style(DISABLED, DISABLED_INK)
LINK_BUTTON = Style(CARD, PRIMARY, PRIMARY)
DANGER_BUTTON = Style(BAD, ON_PRIMARY)
KEY_STYLE = Style(KEY_FILL, INK)
FUNCTION_KEY = Style(KEY_FUNCTION, INK)
ENTER_KEY = Style(PRIMARY, ON_PRIMARY)


def mix(a: Color, b: Color, t: float) -> Color:
    """The colour ``t`` of the way from ``a`` to ``b``."""
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t),
            round(a[2] + (b[2] - a[2]) * t))


#: Every (ink, ground) pair the screens set text in, by name: the contrast test measures each
#: (tests/test_panel_a11y.py) besides every pair that actually appears in a drawn frame.
TEXT_PAIRS: dict[str, tuple[Color, Color]] = {
    "ink on background": (INK, BG),
    "muted on background": (MUTED, BG),
    "ink on card": (INK, CARD),
    "muted on card": (MUTED, CARD),
    "header title": (HEADER_INK, HEADER),
    "header status": (HEADER_MUTED, HEADER),
    "link": (PRIMARY, CARD),
    "error on card": (BAD, CARD),
    "good on card": (GOOD, CARD),
    "ink on selected row": (INK, SELECTED_ROW),
    "muted on selected row": (MUTED, SELECTED_ROW),
    "error on failed row": (BAD, BAD_ROW),
    "printing on active row": (PRIMARY, ACTIVE_ROW),
    "ink on active row": (INK, ACTIVE_ROW),
    "ink on warning": (INK, WARN_FILL),
    "warning mark": (ON_WARN, WARN_MARK),
    "ink on key tray": (INK, KEY_TRAY),
    "ink on function key": (INK, KEY_FUNCTION),
    "disabled": (DISABLED_INK, DISABLED),
    **{f"{style} button": (ink, fill) for style, (fill, ink, _border) in (
        ("primary", PRIMARY_BUTTON), ("secondary", SECONDARY_BUTTON), ("header", HEADER_BUTTON),
        ("link", LINK_BUTTON), ("danger", DANGER_BUTTON), ("key", KEY_STYLE),
        ("enter", ENTER_KEY))},
    **{f"{tone.value} notice": (INK, tint) for tone, tint in TONE_TINT.items()},
    **{f"{tone.value} notice title": (ON_PRIMARY, strong) for tone, strong in TONE_STRONG.items()},
}
