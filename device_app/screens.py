"""The copier's touch panel, drawn with pygame: a PanelView in, pixels and a map of taps out.

Theory of operation
-------------------
The session machine decides *what* the panel says (a :class:`PanelView`); this module decides
only how it looks. :meth:`PanelRenderer.draw` repaints the whole surface from the view every
time, so there is no widget tree that could fall out of step with the session. While it draws,
everything tappable records a :class:`Target`; :meth:`PanelRenderer.hit` looks a tap up in the
targets of the last drawn frame, so a tap means what the person saw when they tapped, and a
disabled button simply has no target.

The one piece of state kept between frames is the job list's scroll offset. Scrolling is a
matter of the glass, not of the session: the view carries the loaded jobs and the renderer shows
a window of them. Only the rows in that window are drawn, so a list of hundreds of jobs costs no
more than a list of five. The offset is reset when a new person's list appears.

The on-screen keyboards keep two more such bits: Shift, and whether the code keypad shows
letters. They change only what the keys look like, never what the session holds, so a tap on
them is answered by the renderer itself (:meth:`PanelRenderer.hit` applies it and returns None)
and both are forgotten when the entry screen goes away. Every other key is ``(Action.KEY, key)``,
the key as the session expects it: the character, or BACKSPACE, CLEAR, TAB, ENTER.

Layout is designed at 800x480 and scaled to other sizes, but touch targets never shrink below
48 px. Text uses pygame's built-in font, so no font files have to ship with the device; it has no
arrows or keyboard symbols, which is why Shift, Backspace and the toolbar icons are drawn.
"""

from __future__ import annotations

import math
import os
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import pygame

from device_app.view import (
    Action,
    EntryView,
    FieldView,
    JobProgress,
    OptionsView,
    PanelView,
    Screen,
    Tone,
)
from protocol.messages import JobSummary

Color = tuple[int, int, int]

DESIGN_SIZE = (800, 480)
#: The smallest height of anything a finger has to hit (a fingertip is 8-10 mm).
MIN_TARGET = 48
ELLIPSIS = "\u2026"

# Dark ink on a light ground: copiers stand in bright offices, and every pairing here is at least
# 7:1 (WCAG AAA) except disabled text, which is meant to recede.
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
DISABLED_INK: Color = (110, 118, 130)
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
_COLOUR_CHIP: tuple[Color, ...] = ((0, 160, 227), (228, 0, 124), (255, 214, 0))
_GREY_CHIP: tuple[Color, ...] = ((30, 30, 30), (120, 120, 120), (200, 200, 200))

# English on purpose: %b follows the C locale of whatever image the device runs.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: Keys that change only how the keyboard looks; :meth:`PanelRenderer.hit` handles them itself.
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
    (("Next", "TAB", 1.5), ("@", "@", 1.0), (".", ".", 1.0), ("space", " ", 3.0),
     ("-", "-", 1.0), ("_", "_", 1.0), ("OK", "ENTER", 1.5)),
)
#: Where each text row starts, in key units: the home row sits half a key in, as on paper.
_TEXT_INDENT = (0.0, 0.0, 0.5, 0.0, 0.0)

# Fields that hold an email get more of the row than secrets and codes, which are short.
_NARROW_FIELDS = frozenset({"password", "pin", "code"})

_STATE_LABEL = {"waiting": "Waiting", "printing": "Printing\u2026", "printed": "Printed",
                "failed": "Failed"}


class Target(NamedTuple):
    """A tappable area of the last drawn frame."""

    rect: pygame.Rect
    action: Action
    job_id: str | None = None


class _Style(NamedTuple):
    fill: Color
    ink: Color
    border: Color | None = None


_PRIMARY_BUTTON = _Style(PRIMARY, ON_PRIMARY)
_SECONDARY_BUTTON = _Style(CARD, INK, INK)
_HEADER_BUTTON = _Style(HEADER, HEADER_INK, HEADER_INK)
_DISABLED_BUTTON = _Style(DISABLED, DISABLED_INK)
_LINK_BUTTON = _Style(CARD, PRIMARY, PRIMARY)
_DANGER_BUTTON = _Style(BAD, ON_PRIMARY)
_KEY_STYLE = _Style(KEY_FILL, INK)
_FUNCTION_KEY = _Style(KEY_FUNCTION, INK)
_ENTER_KEY = _Style(PRIMARY, ON_PRIMARY)


# --------------------------------------------------------------------------- text helpers


def clean_text(text: str) -> str:
    """``text`` as pygame can draw it on one line.

    Job names are whatever people printed. pygame draws a newline as a second line and refuses
    NUL outright, and SDL cannot encode a lone surrogate (which JSON can carry), so such
    characters become a space or U+FFFD instead of taking the panel down.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("Cc", "Zl", "Zp"):
            out.append(" ")
        elif category == "Cs":
            out.append("\ufffd")
        else:
            out.append(ch)
    return "".join(out)


def fit_text(font: pygame.font.Font, text: str, max_width: int) -> str:
    """``text`` cut with an ellipsis so that it renders at most ``max_width`` pixels wide."""
    text = clean_text(text)
    if font.size(text)[0] <= max_width:
        return text
    if font.size(ELLIPSIS)[0] > max_width:
        return ""
    # Binary search on the kept prefix: names can be 256 characters and rows are redrawn often.
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.size(text[:mid].rstrip() + ELLIPSIS)[0] <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + ELLIPSIS


def fit_text_tail(font: pygame.font.Font, text: str, max_width: int) -> str:
    """``text`` cut at the *front* with an ellipsis to fit ``max_width``: what someone is typing
    is read at its end, where the next character goes."""
    text = clean_text(text)
    if font.size(text)[0] <= max_width:
        return text
    if font.size(ELLIPSIS)[0] > max_width:
        return ""
    lo, hi = 0, len(text)  # the longest kept suffix that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.size(ELLIPSIS + text[len(text) - mid :])[0] <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return ELLIPSIS + text[len(text) - lo :] if lo else ELLIPSIS


def wrap_text(font: pygame.font.Font, text: str, max_width: int, max_lines: int) -> list[str]:
    """``text`` broken at spaces into at most ``max_lines`` lines that each fit ``max_width``;
    what does not fit ends in an ellipsis."""
    lines: list[str] = []
    current = ""
    for word in clean_text(text).split():
        candidate = f"{current} {word}" if current else word
        if current and font.size(candidate)[0] > max_width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], " ".join(lines[max_lines - 1 :])]
    return [fit_text(font, line, max_width) for line in lines]


def format_submitted(submitted_at: float, now: float) -> str:
    """When a job was sent, as short as is unambiguous: "09:41" today, else "3 Mar"
    (with the year if it is not this year). Local time, because that is the clock on the wall."""
    try:
        then, today = time.localtime(submitted_at), time.localtime(now)
    except (OverflowError, OSError, ValueError):
        # The timestamp comes off the wire; a wild one must not blank the panel.
        return ""
    if (then.tm_year, then.tm_yday) == (today.tm_year, today.tm_yday):
        return f"{then.tm_hour:02d}:{then.tm_min:02d}"
    day = f"{then.tm_mday} {_MONTHS[then.tm_mon - 1]}"
    return day if then.tm_year == today.tm_year else f"{day} {then.tm_year}"


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _mix(a: Color, b: Color, t: float) -> Color:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t),
            round(a[2] + (b[2] - a[2]) * t))


# --------------------------------------------------------------------------- the renderer


class PanelRenderer:
    """Draws :class:`PanelView` s onto one surface and answers what a tap on it means.

    ``target`` is the surface to draw on (the display surface on a device) or a size for an
    off-screen one; ``font`` a TrueType file, or None for pygame's built-in font.
    """

    def __init__(self, target: pygame.Surface | tuple[int, int] = DESIGN_SIZE,
                 font: str | os.PathLike[str] | None = None) -> None:
        pygame.font.init()
        self.surface = target if isinstance(target, pygame.Surface) else pygame.Surface(target)
        width, height = self.surface.get_size()
        self._scale = min(width / DESIGN_SIZE[0], height / DESIGN_SIZE[1])
        self._font_file = None if font is None else os.fspath(font)
        self._fonts: dict[int, pygame.font.Font] = {}
        self._targets: list[Target] = []
        #: Index of the first job row shown. Clamped to the list on every draw.
        self.scroll = 0
        self._page_rows = 1
        self._max_scroll = 0
        self._list_owner: str | None = None
        # The on-screen keyboard's own state (see the module docstring), and the entry it
        # belongs to: a new entry starts on digits, unshifted.
        self._shift = False
        self._letters = False
        self._keyboard_owner: str | None = None

    # ------------------------------------------------------------------ public

    def draw(self, view: PanelView, now: float | None = None) -> None:
        """Paint the whole panel for ``view``. ``now`` (unix seconds) dates the jobs, drives the
        clock and the busy spinner; the wall clock if None."""
        now = time.time() if now is None else now
        if view.screen is Screen.JOBS:
            if view.user_name != self._list_owner:
                self.scroll = 0
                self._list_owner = view.user_name
        elif view.screen in (Screen.IDLE, Screen.OFFLINE):
            # The session is over: the next list, even the same person's, starts at the top.
            self._list_owner = None
        owner = view.entry.kind if view.screen is Screen.ENTRY and view.entry else None
        if owner != self._keyboard_owner:
            self._shift = self._letters = False
            self._keyboard_owner = owner
        self._targets = []
        self.surface.fill(BG)
        painters: dict[Screen, Callable[[PanelView, float], None]] = {
            Screen.IDLE: self._draw_idle,
            Screen.BUSY: self._draw_busy,
            Screen.JOBS: self._draw_jobs,
            Screen.RELEASING: self._draw_releasing,
            Screen.NOTICE: self._draw_notice,
            Screen.OFFLINE: self._draw_offline,
            Screen.ENTRY: self._draw_entry,
            Screen.CONFIRM: self._draw_confirm,
            Screen.OPTIONS: self._draw_options,
        }
        painters[view.screen](view, now)

    def hit(self, pos: tuple[int, int]) -> tuple[Action, str | None] | None:
        """What a tap at ``pos`` means on the last drawn frame: the action and its subject (the
        job id of SELECT, the field of FOCUS, the key of KEY); None for a tap on nothing.

        Shift and the keypad's A-Z / 0-9 keys are applied here and also answer None: they only
        change the keys of the next frame, and the session has nothing to do with them.
        """
        for target in reversed(self._targets):
            if target.rect.collidepoint(pos):
                if target.action is Action.KEY:
                    return self._press_key(target.job_id)
                return target.action, target.job_id
        return None

    def _press_key(self, key: str | None) -> tuple[Action, str | None] | None:
        if key == KEY_SHIFT:
            self._shift = not self._shift
            return None
        if key in (KEY_LETTERS, KEY_DIGITS):
            self._letters = key == KEY_LETTERS
            return None
        if key is not None and key.isalpha():
            # Shift holds for one letter, as on a phone: capitals inside addresses are rare.
            self._shift = False
        return Action.KEY, key

    def apply_scroll(self, action: Action) -> bool:
        """Move the job list a page for SCROLL_UP/SCROLL_DOWN. True if the list moved (draw
        again to show it); False for any other action or at either end."""
        # A page keeps one row of the old window in view, so the eye has an anchor.
        step = max(1, self._page_rows - 1)
        if action is Action.SCROLL_DOWN:
            wanted = min(self.scroll + step, self._max_scroll)
        elif action is Action.SCROLL_UP:
            wanted = max(0, self.scroll - step)
        else:
            return False
        moved = wanted != self.scroll
        self.scroll = wanted
        return moved

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every tappable area of the last drawn frame, in drawing order."""
        return tuple(self._targets)

    # ------------------------------------------------------------------ primitives

    def _px(self, n: float) -> int:
        return max(1, round(n * self._scale))

    def _tap(self, n: float) -> int:
        return max(MIN_TARGET, self._px(n))

    def _font(self, size: int) -> pygame.font.Font:
        px = max(8, round(size * self._scale))
        font = self._fonts.get(px)
        if font is None:
            font = self._fonts[px] = pygame.font.Font(self._font_file, px)
        return font

    def _text(self, text: str, size: int, color: Color, max_width: int | None = None,
              **anchor: tuple[int, int]) -> pygame.Rect:
        font = self._font(size)
        shown = clean_text(text) if max_width is None else fit_text(font, text, max_width)
        image = font.render(shown, True, color)
        rect = image.get_rect(**anchor)
        self.surface.blit(image, rect)
        return rect

    def _lines(self, text: str, size: int, color: Color, center_x: int, top: int,
               max_width: int, max_lines: int, left: int | None = None) -> int:
        """Wrapped text, centred on ``center_x`` or flush with ``left``; returns the y below it."""
        font = self._font(size)
        y = top
        for line in wrap_text(font, text, max_width, max_lines):
            if left is None:
                self._text(line, size, color, midtop=(center_x, y))
            else:
                self._text(line, size, color, topleft=(left, y))
            y += font.get_linesize()
        return y

    def _fitting_size(self, text: str, sizes: Sequence[int], max_width: int) -> int:
        """The largest of ``sizes`` at which ``text`` fits on one line (else the smallest, where
        it will be cut): long titles shrink a little before they lose words."""
        for size in sizes:
            if self._font(size).size(clean_text(text))[0] <= max_width:
                return size
        return sizes[-1]

    def _button(self, rect: pygame.Rect, label: str, action: Action, style: _Style,
                enabled: bool = True, *, subject: str | None = None, size: int = 34,
                radius: float = 10) -> Color:
        """Draw a button and make it tappable if enabled; returns the ink colour for icons.
        ``subject`` travels with the action (a field name, a key)."""
        if not enabled:
            style = _DISABLED_BUTTON
        corner = self._px(radius)
        pygame.draw.rect(self.surface, style.fill, rect, border_radius=corner)
        if style.border is not None:
            pygame.draw.rect(self.surface, style.border, rect, width=max(2, self._px(2)),
                             border_radius=corner)
        if label:
            self._text(label, size, style.ink, max_width=rect.width - 2 * self._px(12),
                       center=rect.center)
        if enabled:
            self._targets.append(Target(pygame.Rect(rect), action, subject))
        return style.ink

    def _check(self, box: pygame.Rect, color: Color) -> None:
        points = [(box.left + box.width * 0.22, box.top + box.height * 0.53),
                  (box.left + box.width * 0.42, box.top + box.height * 0.73),
                  (box.left + box.width * 0.78, box.top + box.height * 0.30)]
        pygame.draw.lines(self.surface, color, False, points, max(3, self._px(4)))

    def _cross(self, box: pygame.Rect, color: Color) -> None:
        inset = box.width * 0.3
        width = max(3, self._px(4))
        pygame.draw.line(self.surface, color, (box.left + inset, box.top + inset),
                         (box.right - inset, box.bottom - inset), width)
        pygame.draw.line(self.surface, color, (box.right - inset, box.top + inset),
                         (box.left + inset, box.bottom - inset), width)

    def _header(self, title: str, right: str = "", reserve: int = 0, height: float = 72,
                shrink: bool = False) -> pygame.Rect:
        """The dark band across the top; ``reserve`` pixels at the right are left for a button.
        With ``shrink`` a long title is set smaller before it is cut (entry titles are whole
        sentences: "Badge not recognised: link it with ...")."""
        width = self.surface.get_width()
        band = pygame.Rect(0, 0, width, self._tap(height))
        pygame.draw.rect(self.surface, HEADER, band)
        pad = self._px(24)
        right_edge = width - pad - reserve
        left_limit = right_edge
        if right:
            left_limit = self._text(right, 32, HEADER_MUTED, max_width=width // 3,
                                    midright=(right_edge, band.centery)).left
        if title:
            room = max(0, left_limit - 2 * pad)
            size = self._fitting_size(title, (40, 36, 32, 28), room) if shrink else 40
            self._text(title, size, HEADER_INK, max_width=room, midleft=(pad, band.centery))
        return band

    @staticmethod
    def _clock(now: float) -> str:
        try:
            local = time.localtime(now)
        except (OverflowError, OSError, ValueError):
            return ""
        return f"{local.tm_hour:02d}:{local.tm_min:02d}"

    # ------------------------------------------------------------------ IDLE

    def _draw_idle(self, view: PanelView, now: float) -> None:
        width, height = self.surface.get_size()
        band = self._header(view.device_name, self._clock(now))
        body = height - band.bottom
        cx = width // 2
        ways = [(label, action) for label, action, offered in (
            ("Enter access code", Action.ENTER_CODE, view.can_type_code),
            ("Email + password", Action.ENTER_PASSWORD, view.can_type_password),
        ) if offered]
        # The badge stays the first thing the eye finds; the typed ways in sit below it, smaller.
        icon_at, prompt_at = (0.22, 0.52) if ways else (0.32, 0.64)

        # A badge with contactless waves: recognisable without reading, from across the room.
        card = pygame.Rect(0, 0, self._px(190), self._px(124))
        card.center = (cx - self._px(36), band.bottom + round(body * icon_at))
        pygame.draw.rect(self.surface, PRIMARY, card, border_radius=self._px(14))
        photo = pygame.Rect(0, 0, self._px(52), self._px(64))
        photo.midleft = (card.left + self._px(20), card.centery)
        pygame.draw.rect(self.surface, (170, 200, 235), photo, border_radius=self._px(6))
        pygame.draw.circle(self.surface, PRIMARY, (photo.centerx, photo.top + self._px(24)),
                           self._px(12))
        pygame.draw.ellipse(self.surface, PRIMARY,
                            pygame.Rect(photo.left + self._px(8), photo.top + self._px(40),
                                        photo.width - self._px(16), self._px(30)))
        line_left = photo.right + self._px(16)
        for i, length in enumerate((86, 64, 74)):
            bar = pygame.Rect(line_left, photo.top + self._px(6 + 22 * i), self._px(length),
                              self._px(10))
            pygame.draw.rect(self.surface, (170, 200, 235), bar, border_radius=self._px(5))
        centre = (card.right + self._px(14), card.centery)
        for i in range(3):
            radius = self._px(26 + 22 * i)
            arc = pygame.Rect(0, 0, 2 * radius, 2 * radius)
            arc.center = centre
            pygame.draw.arc(self.surface, PRIMARY, arc, -0.75, 0.75, max(3, self._px(7)))

        prompt_y = band.bottom + round(body * prompt_at)
        self._text(view.title or "Tap your badge", 104, INK, max_width=width - self._px(48),
                   center=(cx, prompt_y))
        # No default line under the prompt: it used to promise an access code that the panel
        # may not accept. The buttons below say exactly which other ways in there are.
        if view.message:
            self._text(view.message, 36, MUTED, max_width=width - self._px(48),
                       midtop=(cx, prompt_y + self._px(46)))
        if not ways:
            return
        gap = self._px(24)
        button_w = min(self._px(340), (width - self._px(48) - gap) // 2)
        row_w = len(ways) * button_w + (len(ways) - 1) * gap
        top = height - self._px(28) - self._tap(76)
        for i, (label, action) in enumerate(ways):
            rect = pygame.Rect(cx - row_w // 2 + i * (button_w + gap), top, button_w,
                               self._tap(76))
            self._button(rect, label, action, _LINK_BUTTON, size=36)

    # ------------------------------------------------------------------ BUSY

    def _draw_busy(self, view: PanelView, now: float) -> None:
        width = self.surface.get_width()
        band = self._header(view.device_name, self._clock(now))
        cx = width // 2
        centre = (cx, band.bottom + self._px(120))
        # The lit dot follows ``now``, so whoever redraws a few times a second gets a spinner
        # while a single frame still reads as "working".
        dots = 12
        lit = int(now * dots) % dots
        for i in range(dots):
            angle = 2 * math.pi * i / dots - math.pi / 2
            age = (lit - i) % dots
            pos = (round(centre[0] + self._px(46) * math.cos(angle)),
                   round(centre[1] + self._px(46) * math.sin(angle)))
            pygame.draw.circle(self.surface, _mix(PRIMARY, LINE, age / dots), pos, self._px(8))
        y = self._lines(view.title or "One moment", 60, INK, cx, band.bottom + self._px(200),
                        width - self._px(64), 1)
        self._lines(view.message, 40, MUTED, cx, y + self._px(10), width - self._px(64), 2)

    # ------------------------------------------------------------------ JOBS

    def _draw_jobs(self, view: PanelView, now: float) -> None:
        width, height = self.surface.get_size()
        pad = self._px(16)

        logout = pygame.Rect(0, 0, self._px(150), self._tap(52))
        count = len(view.jobs)
        if view.total_jobs > count:
            summary = f"{count} of {view.total_jobs} jobs"
        else:
            summary = _plural(count, "job", "jobs")
        greeting = f"Hello, {view.user_name}" if view.user_name else "Hello"
        band = self._header(greeting, summary, reserve=logout.width + pad)
        logout.midright = (width - pad, band.centery)
        self._button(logout, "Log out", Action.LOGOUT, _HEADER_BUTTON)

        bar_height = self._tap(64) + 2 * self._px(12)
        bar = pygame.Rect(0, height - bar_height, width, bar_height)
        pygame.draw.rect(self.surface, CARD, bar)
        pygame.draw.line(self.surface, LINE, bar.topleft, bar.topright, max(1, self._px(2)))
        button_h = self._tap(64)
        gap = self._px(10)
        has_jobs = count > 0
        chosen = bool(view.selected)
        # Fixed places, whatever is selected: a button that moved when a row was ticked would
        # catch the finger that was heading for its old place. Delete and Options are icon
        # buttons so that "Release selected (12)" keeps room for its whole label.
        select_all = pygame.Rect(pad, 0, self._px(132), button_h)
        release_all = pygame.Rect(select_all.right + gap, 0, self._px(152), button_h)
        delete = pygame.Rect(release_all.right + gap, 0, self._px(84), button_h)
        options = pygame.Rect(delete.right + gap, 0, self._px(92), button_h)
        release = pygame.Rect((options if view.can_change else delete).right + gap, 0, 0,
                              button_h)
        release.width = width - pad - release.left
        for rect in (select_all, release_all, delete, options, release):
            rect.centery = bar.centery
        self._button(select_all, "Select all", Action.SELECT_ALL, _SECONDARY_BUTTON, has_jobs,
                     size=32)
        self._button(release_all, "Release all", Action.RELEASE_ALL, _SECONDARY_BUTTON,
                     has_jobs, size=32)
        self._tool_button(delete, "Delete", Action.DELETE, self._trash_icon, chosen, BAD)
        if view.can_change:
            self._tool_button(options, "Options", Action.OPTIONS, self._sliders_icon, chosen,
                              INK)
        self._button(release, f"Release selected ({len(view.selected)})", Action.RELEASE,
                     _PRIMARY_BUTTON, chosen, size=32)

        top = band.bottom
        if view.engine_problem:
            top = self._draw_engine_banner(view.engine_problem, top)
        area = pygame.Rect(0, top, width, bar.top - top)
        self._draw_job_list(view, area, now)

    def _draw_engine_banner(self, problem: str, top: int) -> int:
        """Why the printer can't print, across the top of the list; returns the y below it.
        The release buttons stay: a tap on them gets the same reason, which beats a button
        that is mysteriously grey."""
        width = self.surface.get_width()
        banner = pygame.Rect(0, top, width, self._px(52))
        pygame.draw.rect(self.surface, WARN_FILL, banner)
        pygame.draw.line(self.surface, WARN_MARK, banner.bottomleft, banner.bottomright,
                         max(1, self._px(2)))
        mark = self._warning_mark(pygame.Rect(self._px(16), 0, self._px(36), self._px(32)),
                                  banner.centery, WARN_MARK)
        self._text(problem, 32, INK, max_width=width - mark.right - self._px(32),
                   midleft=(mark.right + self._px(14), banner.centery))
        return banner.bottom

    def _warning_mark(self, box: pygame.Rect, centery: int, color: Color,
                      size: int = 30) -> pygame.Rect:
        """A filled triangle with "!" centred on ``centery``; returns where it was drawn."""
        box = pygame.Rect(box)
        box.centery = centery
        pygame.draw.polygon(self.surface, color,
                            [box.midtop, box.bottomright, box.bottomleft])
        self._text("!", size, ON_WARN, center=(box.centerx, box.centery + box.height // 8))
        return box

    def _tool_button(self, rect: pygame.Rect, label: str, action: Action,
                     icon: Callable[[pygame.Rect, Color], None], enabled: bool,
                     ink: Color) -> None:
        """An icon over a short word: a toolbar button that needs less width than a label."""
        self._button(rect, "", action, _Style(CARD, ink, INK) if enabled else _DISABLED_BUTTON,
                     enabled)
        color = ink if enabled else DISABLED_INK
        box = pygame.Rect(0, 0, self._px(26), self._px(26))
        box.midtop = (rect.centerx, rect.top + self._px(7))
        icon(box, color)
        self._text(label, 24, INK if enabled else DISABLED_INK, max_width=rect.width - 8,
                   midbottom=(rect.centerx, rect.bottom - self._px(6)))

    def _trash_icon(self, box: pygame.Rect, color: Color) -> None:
        line = max(2, self._px(3))
        lid_y = box.top + self._px(5)
        pygame.draw.line(self.surface, color, (box.left, lid_y), (box.right, lid_y), line)
        pygame.draw.rect(self.surface, color,
                         pygame.Rect(box.centerx - self._px(5), box.top, self._px(10),
                                     self._px(5)), max(1, self._px(2)))
        body = [(box.left + self._px(4), lid_y + self._px(4)),
                (box.right - self._px(4), lid_y + self._px(4)),
                (box.right - self._px(6), box.bottom), (box.left + self._px(6), box.bottom)]
        pygame.draw.polygon(self.surface, color, body, line)
        for dx in (-5, 0, 5):
            x = box.centerx + self._px(dx)
            pygame.draw.line(self.surface, color, (x, lid_y + self._px(9)),
                             (x, box.bottom - self._px(5)), max(1, self._px(2)))

    def _sliders_icon(self, box: pygame.Rect, color: Color) -> None:
        line = max(2, self._px(3))
        for i, knob in enumerate((0.3, 0.7, 0.45)):
            y = box.top + self._px(4) + i * self._px(9)
            pygame.draw.line(self.surface, color, (box.left, y), (box.right, y), line)
            pygame.draw.circle(self.surface, color, (box.left + round(box.width * knob), y),
                               self._px(4))

    def _draw_job_list(self, view: PanelView, area: pygame.Rect, now: float) -> None:
        jobs = view.jobs
        # "Load more" is the row after the last job: it is found where the list runs out, and
        # scrolls with it instead of taking room from every page.
        items = len(jobs) + (1 if view.can_load_more else 0)
        row_h = self._tap(64)
        rows = max(1, area.height // row_h)
        self._page_rows = rows
        self._max_scroll = max(0, items - rows)
        self.scroll = min(max(self.scroll, 0), self._max_scroll)
        if not items:
            self._text("No jobs waiting", 56, INK, center=(area.centerx, area.centery - 20))
            self._lines("Jobs you send to secure print wait here for you.", 34, MUTED,
                        area.centerx, area.centery + self._px(16), area.width - self._px(48), 2)
            return
        rows_area = pygame.Rect(area)
        if items > rows:
            rail = pygame.Rect(0, area.top, self._tap(96), area.height)
            rail.right = area.right
            rows_area.width -= rail.width
            self._draw_scroll_rail(rail, len(jobs), rows)
        for i in range(self.scroll, min(items, self.scroll + rows)):
            row = pygame.Rect(rows_area.left, rows_area.top + (i - self.scroll) * row_h,
                              rows_area.width, row_h)
            if i < len(jobs):
                self._draw_job_row(row, jobs[i], jobs[i].job_id in view.selected, now)
            else:
                self._draw_more_row(row, len(jobs), view.total_jobs)

    def _draw_more_row(self, row: pygame.Rect, shown: int, total: int) -> None:
        pygame.draw.rect(self.surface, BG, row)
        pad = self._px(16)
        button = pygame.Rect(0, 0, self._px(200), self._tap(52))
        button.midright = (row.right - pad, row.centery)
        self._text(f"Showing {shown} of {total}", 32, MUTED,
                   max_width=max(0, button.left - row.left - 2 * pad),
                   midleft=(row.left + pad, row.centery))
        self._button(button, "Load more", Action.LOAD_MORE, _LINK_BUTTON, size=32)

    def _draw_scroll_rail(self, rail: pygame.Rect, total: int, rows: int) -> None:
        pygame.draw.line(self.surface, LINE, rail.topleft, rail.bottomleft, max(1, self._px(2)))
        inset = self._px(8)
        up = pygame.Rect(rail.left + inset, rail.top + inset, rail.width - 2 * inset,
                         self._tap(96))
        down = pygame.Rect(up)
        down.bottom = rail.bottom - inset
        for rect, action, enabled, direction in (
            (up, Action.SCROLL_UP, self.scroll > 0, -1),
            (down, Action.SCROLL_DOWN, self.scroll < self._max_scroll, 1),
        ):
            ink = self._button(rect, "", action, _SECONDARY_BUTTON, enabled)
            half = self._px(16)
            tip = (rect.centerx, rect.centery + direction * half)
            base_y = rect.centery - direction * half
            pygame.draw.polygon(self.surface, ink,
                                [tip, (rect.centerx - half - self._px(4), base_y),
                                 (rect.centerx + half + self._px(4), base_y)])
        middle = (up.bottom + down.top) // 2
        # The "Load more" row has no number: the count is of jobs.
        last = min(total, self.scroll + rows)
        self._text(f"{min(self.scroll + 1, last)}\u2013{last}", 28, INK, max_width=rail.width - 4,
                   midbottom=(rail.centerx, middle))
        self._text(f"of {total}", 28, MUTED, max_width=rail.width - 4,
                   midtop=(rail.centerx, middle + self._px(2)))

    def _draw_job_row(self, row: pygame.Rect, job: JobSummary, selected: bool, now: float) -> None:
        pygame.draw.rect(self.surface, SELECTED_ROW if selected else CARD, row)
        pygame.draw.line(self.surface, LINE, row.bottomleft, row.bottomright, max(1, self._px(1)))
        pad = self._px(16)

        box = pygame.Rect(0, 0, self._px(36), self._px(36))
        box.midleft = (row.left + pad + self._px(4), row.centery)
        if selected:
            pygame.draw.rect(self.surface, PRIMARY, box, border_radius=self._px(6))
            self._check(box, ON_PRIMARY)
        else:
            pygame.draw.rect(self.surface, CARD, box, border_radius=self._px(6))
            pygame.draw.rect(self.surface, MUTED, box, width=max(2, self._px(3)),
                             border_radius=self._px(6))

        right_edge = row.right - pad
        right_width = self._px(150)
        left = box.right + pad
        text_width = max(0, right_edge - right_width - pad - left)
        top_line = row.top + self._px(8)
        second_line = row.top + self._px(37)

        self._text(job.name or "(untitled)", 38, INK, max_width=text_width,
                   topleft=(left, top_line))
        self._draw_job_details(job, left, second_line, text_width)
        self._text(format_submitted(job.submitted_at, now), 34, INK, max_width=right_width,
                   topright=(right_edge, top_line))
        if job.source:
            self._text(job.source, 28, MUTED, max_width=right_width,
                       topright=(right_edge, second_line))
        self._targets.append(Target(pygame.Rect(row), Action.SELECT, job.job_id))

    def _draw_job_details(self, job: JobSummary, left: int, top: int, width: int) -> None:
        """"12 pages · [chip] Colour · 2-sided · 3 copies", cut where the column ends."""
        # Extra copies are drawn in full ink: 50 copies of the wrong thing is the costly mistake.
        parts: list[tuple[str, tuple[Color, ...] | None, Color]] = [
            (_plural(job.pages, "page", "pages"), None, MUTED),
            ("Colour" if job.color else "B&W", _COLOUR_CHIP if job.color else _GREY_CHIP, MUTED),
            ("2-sided" if job.duplex else "1-sided", None, MUTED),
            (_plural(job.copies, "copy", "copies"), None, INK if job.copies > 1 else MUTED),
        ]
        size = 30
        line_h = self._font(size).get_height()
        limit = left + width
        x = left
        for i, (label, chip, color) in enumerate(parts):
            if i:
                x = self._text(" \u00b7 ", size, MUTED, max_width=max(0, limit - x),
                               topleft=(x, top)).right
            if chip is not None:
                stripe = self._px(6)
                chip_h = self._px(14)
                if x + stripe * len(chip) + self._px(6) > limit:
                    break
                chip_top = top + (line_h - chip_h) // 2
                for j, shade in enumerate(chip):
                    pygame.draw.rect(self.surface, shade,
                                     pygame.Rect(x + j * stripe, chip_top, stripe, chip_h))
                x += stripe * len(chip) + self._px(6)
            if x >= limit:
                break
            x = self._text(label, size, color, max_width=limit - x, topleft=(x, top)).right

    # ------------------------------------------------------------------ RELEASING

    def _draw_releasing(self, view: PanelView, now: float) -> None:
        width, height = self.surface.get_size()
        items = view.progress
        printed = sum(1 for p in items if p.state == "printed")
        band = self._header(view.title or "Releasing your jobs",
                            f"{printed} of {len(items)} printed" if items else "")
        pad = self._px(16)
        bottom = height
        if view.message:
            bottom = height - self._px(64)
            self._text(view.message, 34, MUTED, max_width=width - 2 * pad,
                       center=(width // 2, (bottom + height) // 2))
        row_h = self._tap(64)
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
            self._text(f"Showing {start + 1}\u2013{start + capacity} of {len(items)}", 30, MUTED,
                       center=(width // 2, note_top + row_h // 2))
        for i, item in enumerate(shown):
            row = pygame.Rect(0, band.bottom + i * row_h, width, row_h)
            self._draw_progress_row(row, item)

    def _draw_progress_row(self, row: pygame.Rect, item: JobProgress) -> None:
        state = item.state
        fill = {"failed": BAD_ROW, "printing": ACTIVE_ROW}.get(state, CARD)
        pygame.draw.rect(self.surface, fill, row)
        pygame.draw.line(self.surface, LINE, row.bottomleft, row.bottomright, max(1, self._px(1)))
        pad = self._px(16)
        color = {"printing": PRIMARY, "printed": GOOD, "failed": BAD}.get(state, MUTED)

        radius = self._px(18)
        centre = (row.left + pad + radius + self._px(4), row.centery)
        icon = pygame.Rect(0, 0, 2 * radius, 2 * radius)
        icon.center = centre
        if state == "waiting" or color is MUTED:
            pygame.draw.circle(self.surface, MUTED, centre, radius, max(2, self._px(3)))
        else:
            pygame.draw.circle(self.surface, color, centre, radius)
            if state == "printed":
                self._check(icon, ON_PRIMARY)
            elif state == "failed":
                self._cross(icon, ON_PRIMARY)
            else:
                for dx in (-1, 0, 1):
                    pygame.draw.circle(self.surface, ON_PRIMARY,
                                       (centre[0] + dx * self._px(9), centre[1]), self._px(3))

        label = self._text(_STATE_LABEL.get(state, state.capitalize()), 34, color,
                           max_width=self._px(170), midright=(row.right - pad, row.centery))
        left = icon.right + pad
        text_width = max(0, label.left - pad - left)
        if item.detail:
            self._text(item.name, 38, INK, max_width=text_width,
                       topleft=(left, row.top + self._px(8)))
            self._text(item.detail, 30, BAD if state == "failed" else MUTED,
                       max_width=text_width, topleft=(left, row.top + self._px(37)))
        else:
            self._text(item.name, 38, INK, max_width=text_width, midleft=(left, row.centery))

    # ------------------------------------------------------------------ NOTICE

    def _draw_notice(self, view: PanelView, now: float) -> None:
        width, height = self.surface.get_size()
        strong = TONE_STRONG[view.tone]
        # The whole glass takes the tone, so "something went wrong" reads before any word does.
        self.surface.fill(TONE_TINT[view.tone])
        card = pygame.Rect(0, 0, min(width - self._px(48), self._px(660)),
                           min(height - self._px(48), self._px(380)))
        card.center = (width // 2, height // 2)
        radius = self._px(16)
        pygame.draw.rect(self.surface, CARD, card, border_radius=radius)
        band = pygame.Rect(card.left, card.top, card.width, self._px(88))
        pygame.draw.rect(self.surface, strong, band, border_top_left_radius=radius,
                         border_top_right_radius=radius)

        badge = self._px(24)
        centre = (band.left + self._px(28) + badge, band.centery)
        pygame.draw.circle(self.surface, ON_PRIMARY, centre, badge)
        icon = pygame.Rect(0, 0, 2 * badge, 2 * badge)
        icon.center = centre
        if view.tone is Tone.OK:
            self._check(icon, strong)
        else:
            self._text("!" if view.tone is Tone.ERROR else "i", 56, strong, center=centre)
        title = view.title or {Tone.INFO: "Note", Tone.OK: "Done",
                               Tone.ERROR: "Something went wrong"}[view.tone]
        title_left = centre[0] + badge + self._px(20)
        self._text(title, 52, ON_PRIMARY, max_width=band.right - self._px(24) - title_left,
                   midleft=(title_left, band.centery))

        ok = pygame.Rect(0, 0, self._px(220), self._tap(64))
        ok.midbottom = (card.centerx, card.bottom - self._px(24))
        line_h = self._font(40).get_linesize()
        room = max(1, (ok.top - band.bottom - self._px(32)) // line_h)
        self._lines(view.message, 40, INK, card.centerx, band.bottom + self._px(24),
                    card.width - self._px(64), room)
        self._button(ok, "OK", Action.DISMISS, _Style(strong, ON_PRIMARY))

    # ------------------------------------------------------------------ OFFLINE

    def _draw_offline(self, view: PanelView, now: float) -> None:
        width, height = self.surface.get_size()
        band = self._header(view.device_name, self._clock(now))
        cx = width // 2

        # A cloud struck through: the print service, unreachable.
        base = band.bottom + self._px(96)
        cloud = (150, 158, 170)
        for dx, dy, r in ((-38, 10, 26), (-2, -8, 38), (38, 12, 24)):
            pygame.draw.circle(self.surface, cloud, (cx + self._px(dx), base + self._px(dy)),
                               self._px(r))
        pygame.draw.rect(self.surface, cloud,
                         pygame.Rect(cx - self._px(64), base + self._px(10), self._px(128),
                                     self._px(26)), border_radius=self._px(13))
        # A band of background either side of the stroke lets it read as "cut", not "crossed".
        pygame.draw.line(self.surface, BG, (cx - self._px(66), base - self._px(54)),
                         (cx + self._px(66), base + self._px(58)), max(8, self._px(20)))
        pygame.draw.line(self.surface, BAD, (cx - self._px(66), base - self._px(54)),
                         (cx + self._px(66), base + self._px(58)), max(4, self._px(8)))

        y = self._lines(view.title or "Can't reach the print service", 58, INK, cx,
                        base + self._px(76), width - self._px(48), 1)
        self._lines(view.message or "Your jobs are safe. Check the network, then try again.",
                    36, MUTED, cx, y + self._px(8), width - self._px(96), 2)
        retry = pygame.Rect(0, 0, self._px(240), self._tap(64))
        retry.midbottom = (cx, height - self._px(28))
        self._button(retry, "Retry", Action.RETRY, _PRIMARY_BUTTON)

    # ------------------------------------------------------------------ ENTRY

    def _draw_entry(self, view: PanelView, now: float) -> None:
        width = self.surface.get_width()
        entry = view.entry
        text = entry is not None and entry.keyboard == "text"
        pad = self._px(16)
        cancel = pygame.Rect(0, 0, self._px(150), self._tap(52))
        # The full keyboard needs every row of pixels it can get, so its header is lower.
        band = self._header(view.title, reserve=cancel.width + pad, height=64 if text else 72,
                            shrink=True)
        cancel.midright = (width - pad, band.centery)
        self._button(cancel, "Cancel", Action.CANCEL, _HEADER_BUTTON)
        if entry is None:
            return
        if text:
            self._draw_text_entry(entry, band.bottom)
        else:
            self._draw_code_entry(entry, band.bottom)

    @staticmethod
    def _switch_label(entry: EntryView) -> str:
        return "Use email + password" if "code" in entry.kind else "Use access code"

    def _draw_code_entry(self, entry: EntryView, top: int) -> None:
        """Field on the left, keypad on the right: a hand on the keys never covers what it
        has typed, and the field has room for a wrapped error below it."""
        width, height = self.surface.get_size()
        pad = self._px(16)
        top += self._px(12)
        bottom = height - self._px(12)
        split = self._px(320)
        left = pygame.Rect(pad, top, split - 2 * pad, bottom - top)
        keypad = pygame.Rect(split, top, width - pad - split, bottom - top)

        link_top = left.bottom
        if entry.can_switch:
            link = pygame.Rect(left.left, 0, left.width, self._tap(60))
            link.bottom = left.bottom
            self._button(link, self._switch_label(entry), Action.SWITCH_ENTRY, _LINK_BUTTON,
                         size=28)
            link_top = link.top
        y = left.top
        for item in entry.fields:
            y = self._text(item.label, 30, MUTED, max_width=left.width,
                           topleft=(left.left, y)).bottom + self._px(6)
            box = pygame.Rect(left.left, y, left.width, self._tap(76))
            self._draw_field(box, item, 56)
            y = box.bottom + self._px(14)
        if entry.error:
            room = (link_top - self._px(8) - y) // self._font(30).get_linesize()
            if room > 0:
                self._lines(entry.error, 30, BAD, 0, y, left.width, room, left=left.left)
        self._draw_keypad(keypad)

    def _draw_field(self, box: pygame.Rect, item: FieldView, size: int,
                    label_inside: bool = False) -> None:
        """A text field showing ``item.display`` (masked already, for secrets); the focused one
        has a blue frame and a caret. A tap on it moves the focus there."""
        focused = item.focused
        corner = self._px(8)
        pygame.draw.rect(self.surface, CARD, box, border_radius=corner)
        pygame.draw.rect(self.surface, PRIMARY if focused else KEY_SHADOW, box,
                         width=max(2, self._px(3 if focused else 2)), border_radius=corner)
        inner = self._px(14)
        centre_y = box.centery
        if label_inside:
            label = self._text(item.label, 24, PRIMARY if focused else MUTED,
                               max_width=box.width - 2 * inner,
                               topleft=(box.left + inner, box.top + self._px(6)))
            centre_y = (label.bottom + box.bottom) // 2
        font = self._font(size)
        caret_room = self._px(8)
        # The end of the value is kept in view: it is where the next character goes.
        shown = fit_text_tail(font, item.display, box.width - 2 * inner - caret_room)
        image = font.render(shown, True, INK)
        rect = image.get_rect(midleft=(box.left + inner, centre_y))
        self.surface.blit(image, rect)
        if focused:
            half = min(font.get_height(), box.height - self._px(16)) * 2 // 5
            x = rect.right + self._px(3)
            pygame.draw.line(self.surface, PRIMARY, (x, centre_y - half), (x, centre_y + half),
                             max(2, self._px(3)))
        self._targets.append(Target(pygame.Rect(box), Action.FOCUS, item.name))

    def _cell(self, area: pygame.Rect, cols: int, rows: int, col: int, row: int,
              gap: int, span_cols: int = 1, span_rows: int = 1) -> pygame.Rect:
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

    def _key(self, rect: pygame.Rect, label: str, key: str, style: _Style = _KEY_STYLE,
             size: int = 40, icon: Callable[[pygame.Rect, Color], None] | None = None) -> None:
        # A darker lip under each key makes a flat panel read as keys to press.
        pygame.draw.rect(self.surface, KEY_SHADOW, rect.move(0, self._px(2)),
                         border_radius=self._px(8))
        ink = self._button(rect, label, Action.KEY, style, subject=key, size=size, radius=8)
        if icon is not None:
            icon(rect, ink)

    def _draw_keypad(self, area: pygame.Rect) -> None:
        """Digits as on a calculator, or A-Z for codes with letters. The right-hand column
        (Backspace, Clear, OK) is the same in both, so OK never moves under the thumb."""
        gap = self._px(8)
        cell = self._cell
        self._key(cell(area, 4, 4, 3, 0, gap), "", "BACKSPACE", _FUNCTION_KEY,
                  icon=self._backspace_icon)
        self._key(cell(area, 4, 4, 3, 1, gap), "Clear", "CLEAR", _FUNCTION_KEY, size=32)
        self._key(cell(area, 4, 4, 3, 2, gap, span_rows=2), "OK", "ENTER", _ENTER_KEY, size=48)
        if not self._letters:
            for i, digit in enumerate("123456789"):
                self._key(cell(area, 4, 4, i % 3, i // 3, gap), digit, digit, size=56)
            self._key(cell(area, 4, 4, 0, 3, gap, span_cols=2), "0", "0", size=56)
            self._key(cell(area, 4, 4, 2, 3, gap), "A\u2013Z", KEY_LETTERS, _FUNCTION_KEY,
                      size=36)
            return
        # Alphabetical, five to a row: people who type codes rarely type anything else, and
        # A-Z in order is found faster by them than QWERTY.
        block = pygame.Rect(area.left, area.top, cell(area, 4, 4, 2, 0, gap).right - area.left,
                            area.height)
        small = self._px(6)
        for i in range(26):
            letter = chr(ord("A") + i)
            self._key(cell(block, 5, 6, i % 5, i // 5, small), letter, letter, size=40)
        self._key(cell(block, 5, 6, 1, 5, small, span_cols=4), "0\u20139", KEY_DIGITS,
                  _FUNCTION_KEY, size=36)

    def _draw_text_entry(self, entry: EntryView, top: int) -> None:
        """Fields side by side, a line for the error and the switch, then the keyboard across
        the whole width: at 800 px that makes letter keys about 72 x 50 px."""
        width, height = self.surface.get_size()
        pad = self._px(12)
        gap = self._px(6)
        row = pygame.Rect(pad, top + self._px(8), width - 2 * pad, self._tap(60))
        fields = entry.fields
        weights = [2 if f.name in _NARROW_FIELDS else 3 for f in fields]
        spacing = self._px(12)
        usable = row.width - spacing * max(0, len(fields) - 1)
        done = 0
        for i, (item, weight) in enumerate(zip(fields, weights, strict=True)):
            left = row.left + round(usable * done / sum(weights)) + i * spacing
            done += weight
            right = row.left + round(usable * done / sum(weights)) + i * spacing
            self._draw_field(pygame.Rect(left, row.top, right - left, row.height), item, 34,
                             label_inside=True)

        info = pygame.Rect(pad, row.bottom + gap, width - 2 * pad, self._tap(48))
        error_box = pygame.Rect(info)
        if entry.can_switch:
            link = pygame.Rect(0, 0, self._px(250), info.height)
            link.topright = info.topright
            self._button(link, self._switch_label(entry), Action.SWITCH_ENTRY, _LINK_BUTTON,
                         size=28)
            error_box.width = link.left - pad - info.left
        if entry.error:
            self._error_in(entry.error, error_box)

        tray = pygame.Rect(0, info.bottom + gap, width, height - info.bottom - gap)
        pygame.draw.rect(self.surface, KEY_TRAY, tray)
        keys = tray.inflate(-2 * pad, -2 * gap)
        step_x = (keys.width + gap) / 10
        for r, keys_row in enumerate(_TEXT_ROWS):
            units = _TEXT_INDENT[r]
            line = self._cell(keys, 1, len(_TEXT_ROWS), 0, r, gap)
            for label, key, span in keys_row:
                left = keys.left + round(units * step_x)
                right = keys.left + round((units + span) * step_x) - gap
                self._draw_text_key(pygame.Rect(left, line.top, right - left, line.height),
                                    label, key)
                units += span

    def _draw_text_key(self, rect: pygame.Rect, label: str, key: str) -> None:
        if key == KEY_SHIFT:
            style = _Style(SELECTED_ROW, PRIMARY, PRIMARY) if self._shift else _FUNCTION_KEY
            self._key(rect, "", key, style, icon=self._shift_icon)
        elif key == "BACKSPACE":
            self._key(rect, "", key, _FUNCTION_KEY, icon=self._backspace_icon)
        elif key == "TAB":
            self._key(rect, label, key, _FUNCTION_KEY, size=30)
        elif key == "ENTER":
            self._key(rect, label, key, _ENTER_KEY, size=36)
        elif key == " ":
            self._key(rect, label, key, size=28)
        elif self._shift and key.isalpha():
            # The key sends what it shows: with Shift lit, the capital.
            self._key(rect, label.upper(), key.upper())
        else:
            self._key(rect, label, key)

    def _error_in(self, text: str, box: pygame.Rect) -> None:
        """An entry error inside ``box``: one line if it fits, else two smaller ones, else cut;
        never over the keys."""
        size = self._fitting_size(text, (30, 26), box.width)
        font = self._font(size)
        lines = wrap_text(font, text, box.width, max(1, min(2, box.height // font.get_linesize())))
        y = box.centery - len(lines) * font.get_linesize() // 2
        for line in lines:
            self._text(line, size, BAD, max_width=box.width, topleft=(box.left, y))
            y += font.get_linesize()

    def _backspace_icon(self, key: pygame.Rect, color: Color) -> None:
        w, h = self._px(34), self._px(24)
        left, top = key.centerx - w // 2, key.centery - h // 2
        tip = self._px(10)
        outline = [(left, key.centery), (left + tip, top), (left + w, top), (left + w, top + h),
                   (left + tip, top + h)]
        line = max(2, self._px(3))
        pygame.draw.polygon(self.surface, color, outline, line)
        cx, arm = left + tip + (w - tip) // 2, self._px(5)
        for sign in (-1, 1):
            pygame.draw.line(self.surface, color, (cx - arm, key.centery - sign * arm),
                             (cx + arm, key.centery + sign * arm), line)

    def _shift_icon(self, key: pygame.Rect, color: Color) -> None:
        cx, cy = key.center
        half, stem, top, base = self._px(13), self._px(6), cy - self._px(13), cy + self._px(12)
        arrow = [(cx, top), (cx + half, cy), (cx + stem, cy), (cx + stem, base),
                 (cx - stem, base), (cx - stem, cy), (cx - half, cy)]
        # Filled when lit, like the Shift of a phone: the shape says it, not only the colour.
        pygame.draw.polygon(self.surface, color, arrow, 0 if self._shift else max(2, self._px(3)))

    # ------------------------------------------------------------------ OPTIONS

    def _draw_options(self, view: PanelView, now: float) -> None:
        width, height = self.surface.get_size()
        pad = self._px(16)
        band = self._header(view.title or "Release with changes", shrink=True)
        opts = view.options or OptionsView()

        bar_height = self._tap(64) + 2 * self._px(12)
        bar = pygame.Rect(0, height - bar_height, width, bar_height)
        pygame.draw.rect(self.surface, CARD, bar)
        pygame.draw.line(self.surface, LINE, bar.topleft, bar.topright, max(1, self._px(2)))
        cancel = pygame.Rect(pad, 0, self._px(200), self._tap(64))
        release = pygame.Rect(0, 0, self._px(300), self._tap(64))
        release.right = width - pad
        cancel.centery = release.centery = bar.centery
        self._button(cancel, "Cancel", Action.CANCEL, _SECONDARY_BUTTON)
        self._button(release, "Release", Action.RELEASE, _PRIMARY_BUTTON)

        area = pygame.Rect(0, band.bottom, width, bar.top - band.bottom)
        row_h = max(self._tap(64), area.height // 3)
        rows = [pygame.Rect(0, area.top + i * row_h, width, row_h) for i in range(3)]
        self._toggle_row(rows[0], "Black & white", opts.grayscale,
                         "Every page in shades of grey", Action.TOGGLE_GRAYSCALE)
        self._toggle_row(rows[1], "2-sided", opts.duplex, "On both sides of the paper",
                         Action.TOGGLE_DUPLEX)
        self._copies_row(rows[2], opts.copies)

    def _option_text(self, row: pygame.Rect, label: str, detail: str, right: int) -> None:
        pad = self._px(24)
        room = max(0, right - row.left - 2 * pad)
        self._text(label, 40, INK, max_width=room,
                   bottomleft=(row.left + pad, row.centery + self._px(2)))
        self._text(detail, 30, MUTED, max_width=room,
                   topleft=(row.left + pad, row.centery + self._px(6)))

    def _toggle_row(self, row: pygame.Rect, label: str, on: bool, on_detail: str,
                    action: Action) -> None:
        """The whole row toggles: a switch alone would be a small target for a big idea."""
        pygame.draw.rect(self.surface, CARD, row)
        pygame.draw.line(self.surface, LINE, row.bottomleft, row.bottomright, max(1, self._px(1)))
        pad = self._px(24)
        switch = pygame.Rect(0, 0, self._px(88), self._px(48))
        switch.midright = (row.right - pad, row.centery)
        radius = switch.height // 2
        pygame.draw.rect(self.surface, PRIMARY if on else SWITCH_OFF, switch,
                         border_radius=radius)
        knob_x = switch.right - radius if on else switch.left + radius
        pygame.draw.circle(self.surface, ON_PRIMARY, (knob_x, switch.centery),
                           radius - self._px(5))
        state = self._text("On" if on else "Off", 34, INK if on else MUTED,
                           midright=(switch.left - self._px(14), row.centery))
        self._option_text(row, label, on_detail if on else "As sent", state.left)
        self._targets.append(Target(pygame.Rect(row), action))

    def _copies_row(self, row: pygame.Rect, copies: int | None) -> None:
        pygame.draw.rect(self.surface, CARD, row)
        pygame.draw.line(self.surface, LINE, row.bottomleft, row.bottomright, max(1, self._px(1)))
        pad = self._px(24)
        gap = self._px(12)
        plus = pygame.Rect(0, 0, self._px(80), self._tap(64))
        plus.midright = (row.right - pad, row.centery)
        value = pygame.Rect(0, 0, self._px(130), plus.height)
        value.midright = (plus.left - gap, row.centery)
        minus = pygame.Rect(plus)
        minus.right = value.left - gap
        self._text("as sent" if copies is None else str(copies), 40 if copies else 34,
                   INK if copies else MUTED, max_width=value.width, center=value.center)
        # 1 goes down to "as sent" (the session's None), so - is off only there; 99 is the top.
        for rect, action, enabled, vertical in (
            (minus, Action.COPIES_DOWN, copies is not None, False),
            (plus, Action.COPIES_UP, (copies or 1) < 99, True),
        ):
            ink = self._button(rect, "", action, _SECONDARY_BUTTON, enabled)
            arm, line = self._px(14), max(3, self._px(4))
            cx, cy = rect.center
            pygame.draw.line(self.surface, ink, (cx - arm, cy), (cx + arm, cy), line)
            if vertical:
                pygame.draw.line(self.surface, ink, (cx, cy - arm), (cx, cy + arm), line)
        detail = "Each job as it was sent" if copies is None else "Of every job released"
        self._option_text(row, "Copies", detail, minus.left)

    # ------------------------------------------------------------------ CONFIRM

    def _draw_confirm(self, view: PanelView, now: float) -> None:
        width, height = self.surface.get_size()
        band = self._header(view.device_name, self._clock(now))
        card = pygame.Rect(0, 0, min(width - self._px(48), self._px(640)),
                           min(height - band.bottom - self._px(32), self._px(300)))
        card.center = (width // 2, (band.bottom + height) // 2)
        radius = self._px(16)
        pygame.draw.rect(self.surface, CARD, card, border_radius=radius)
        pygame.draw.rect(self.surface, LINE, card, width=max(1, self._px(2)),
                         border_radius=radius)
        pad = self._px(32)

        mark = self._warning_mark(pygame.Rect(card.left + pad, 0, self._px(56), self._px(50)),
                                  card.top + pad + self._px(25), BAD, size=44)
        title_left = mark.right + self._px(20)
        room = card.right - pad - title_left
        title = view.title or "Are you sure?"
        self._text(title, self._fitting_size(title, (52, 44, 38), room), INK, max_width=room,
                   midleft=(title_left, mark.centery))

        button_h = self._tap(72)
        button_w = (card.width - 3 * pad) // 2
        keep = pygame.Rect(card.left + pad, card.bottom - pad - button_h, button_w, button_h)
        delete = pygame.Rect(keep.right + pad, keep.top, button_w, button_h)
        # Keep on the left, where the eye lands first; the red one has to be looked for.
        self._button(keep, "Keep", Action.CANCEL, _SECONDARY_BUTTON, size=38)
        self._button(delete, "Delete", Action.CONFIRM, _DANGER_BUTTON, size=38)
        if view.message:
            top = mark.bottom + self._px(24)
            line_h = self._font(36).get_linesize()
            room_lines = max(1, (keep.top - self._px(16) - top) // line_h)
            self._lines(view.message, 36, MUTED, 0, top, card.width - 2 * pad, room_lines,
                        left=card.left + pad)


# --------------------------------------------------------------------------- demo


#: A demo screen: its name, the view, and the keyboard keys to tap (through :meth:`hit`, as a
#: finger would) before it is saved.
_Demo = tuple[str, PanelView, tuple[str, ...]]


def _demo_views(now: float) -> list[_Demo]:
    hour = 3600.0

    def job(job_id: str, name: str, pages: int, color: bool, duplex: bool, copies: int,
            age: float, source: str) -> JobSummary:
        return JobSummary(job_id=job_id, name=name, pages=pages, color=color, duplex=duplex,
                          copies=copies, size=pages * 48_000, submitted_at=now - age,
                          source=source)

    jobs = (
        job("j1", "Quarterly report Q3 - final version for the board meeting.pdf", 24, True,
            True, 1, 0.2 * hour, "Excel"),
        job("j2", "Boarding pass", 1, False, False, 1, 0.5 * hour, "iPhone"),
        job("j3", "Team offsite agenda.docx", 3, False, True, 12, 1.4 * hour, "Word"),
        job("j4", "Invoice 2025-0412.pdf", 2, False, False, 1, 2.5 * hour, "Outlook"),
        job("j5", "Summer party photos", 8, True, False, 1, 3.2 * hour, "Chrome"),
        job("j6", "Lease agreement (signed).pdf", 14, False, True, 2, 26 * hour, "LAPTOP-ADA"),
    )
    device = "Floor 3 \u00b7 Copier East"
    code = EntryView("code", (FieldView("code", "Access code", "\u2022" * 4, focused=True),),
                     can_switch=True)
    login = EntryView("password", (
        FieldView("username", "Email", "ada.lovelace@example.com"),
        FieldView("password", "Password", "\u2022" * 6, focused=True),
    ), keyboard="text", can_switch=True)
    return [
        ("idle", PanelView(Screen.IDLE, title="Tap your badge", device_name=device), ()),
        ("jobs", PanelView(Screen.JOBS, user_name="Ada Lovelace", jobs=jobs, total_jobs=6,
                           selected=frozenset({"j1", "j3"}), device_name=device), ()),
        ("jobs-engine", PanelView(Screen.JOBS, user_name="Ada Lovelace", jobs=jobs[:3],
                                  total_jobs=40, can_load_more=True, device_name=device,
                                  selected=frozenset({"j2"}),
                                  engine_problem="Paper jam: clear the jam and try again."), ()),
        ("keypad", PanelView(Screen.ENTRY, title="Enter your access code", entry=code,
                             device_name=device), ()),
        ("keypad-letters", PanelView(Screen.ENTRY, title="Enter your access code",
                                     entry=EntryView("code", code.fields, can_switch=True,
                                                     error="Code not recognised"),
                                     device_name=device), (KEY_LETTERS,)),
        ("keyboard", PanelView(Screen.ENTRY, title="Log in with your email and password",
                               entry=login, device_name=device), ()),
        ("keyboard-shift", PanelView(Screen.ENTRY, title="Log in with your email and password",
                                     entry=EntryView("password", login.fields, keyboard="text",
                                                     error="Wrong username or password",
                                                     can_switch=True),
                                     device_name=device), (KEY_SHIFT,)),
        ("options", PanelView(Screen.OPTIONS, title="Release 2 jobs with changes",
                              options=OptionsView(grayscale=True, copies=2),
                              selected=frozenset({"j1", "j3"}), device_name=device), ()),
        ("confirm", PanelView(Screen.CONFIRM, title="Delete 2 jobs?",
                              message="Deleted jobs cannot be printed.",
                              selected=frozenset({"j1", "j3"}), device_name=device), ()),
        ("releasing", PanelView(Screen.RELEASING, device_name=device, progress=(
            JobProgress("j1", jobs[0].name, "printed"),
            JobProgress("j3", jobs[2].name, "failed", "Paper jam in tray 2"),
            JobProgress("j2", jobs[1].name, "printing", "Page 1 of 1"),
            JobProgress("j4", jobs[3].name, "waiting"),
        ), message="You can log out; printing carries on."), ()),
        ("notice-error", PanelView(Screen.NOTICE, tone=Tone.ERROR, title="Card not recognised",
                                   message="This badge is not linked to anyone. Ask your "
                                           "administrator to add it.",
                                   device_name=device), ()),
    ]


def render_demo_screens(out_dir: Path) -> list[Path]:
    """Render sample screens (idle, jobs, the keypad and keyboard, options, a confirmation,
    releasing, an error notice) to PNG files in ``out_dir`` for the README and for design
    review; returns their paths."""
    # Off-screen surfaces and fonts need no video driver, so this runs headless as it is; the
    # fixed clock keeps the images identical from run to run.
    out_dir.mkdir(parents=True, exist_ok=True)
    now = time.mktime((2025, 3, 14, 10, 32, 0, 0, 0, -1))
    paths = []
    for name, view, keys in _demo_views(now):
        renderer = PanelRenderer(DESIGN_SIZE)
        renderer.draw(view, now)
        for key in keys:
            [target] = [t for t in renderer.targets if t.job_id == key]
            renderer.hit(target.rect.center)
            renderer.draw(view, now)
        path = out_dir / f"panel-{name}.png"
        pygame.image.save(renderer.surface, path)
        paths.append(path)
    return paths
