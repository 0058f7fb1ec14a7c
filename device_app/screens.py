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

Layout is designed at 800x480 and scaled to other sizes, but touch targets never shrink below
48 px. Text uses pygame's built-in font, so no font files have to ship with the device.
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

from device_app.view import Action, JobProgress, PanelView, Screen, Tone
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
        self._targets = []
        self.surface.fill(BG)
        painters: dict[Screen, Callable[[PanelView, float], None]] = {
            Screen.IDLE: self._draw_idle,
            Screen.BUSY: self._draw_busy,
            Screen.JOBS: self._draw_jobs,
            Screen.RELEASING: self._draw_releasing,
            Screen.NOTICE: self._draw_notice,
            Screen.OFFLINE: self._draw_offline,
        }
        painters[view.screen](view, now)

    def hit(self, pos: tuple[int, int]) -> tuple[Action, str | None] | None:
        """What a tap at ``pos`` means on the last drawn frame: the action and, for
        :attr:`Action.SELECT`, the job id; None for a tap on nothing."""
        for target in reversed(self._targets):
            if target.rect.collidepoint(pos):
                return target.action, target.job_id
        return None

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
               max_width: int, max_lines: int) -> int:
        """Centred wrapped text; returns the y below it."""
        font = self._font(size)
        y = top
        for line in wrap_text(font, text, max_width, max_lines):
            self._text(line, size, color, midtop=(center_x, y))
            y += font.get_linesize()
        return y

    def _button(self, rect: pygame.Rect, label: str, action: Action, style: _Style,
                enabled: bool = True) -> Color:
        """Draw a button and make it tappable if enabled; returns the ink colour for icons."""
        if not enabled:
            style = _DISABLED_BUTTON
        radius = self._px(10)
        pygame.draw.rect(self.surface, style.fill, rect, border_radius=radius)
        if style.border is not None:
            pygame.draw.rect(self.surface, style.border, rect, width=max(2, self._px(2)),
                             border_radius=radius)
        if label:
            self._text(label, 34, style.ink, max_width=rect.width - 2 * self._px(12),
                       center=rect.center)
        if enabled:
            self._targets.append(Target(pygame.Rect(rect), action))
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

    def _header(self, title: str, right: str = "", reserve: int = 0) -> pygame.Rect:
        """The dark band across the top; ``reserve`` pixels at the right are left for a button."""
        width = self.surface.get_width()
        band = pygame.Rect(0, 0, width, self._tap(72))
        pygame.draw.rect(self.surface, HEADER, band)
        pad = self._px(24)
        right_edge = width - pad - reserve
        left_limit = right_edge
        if right:
            left_limit = self._text(right, 32, HEADER_MUTED, max_width=width // 3,
                                    midright=(right_edge, band.centery)).left
        if title:
            self._text(title, 40, HEADER_INK, max_width=max(0, left_limit - 2 * pad),
                       midleft=(pad, band.centery))
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

        # A badge with contactless waves: recognisable without reading, from across the room.
        card = pygame.Rect(0, 0, self._px(190), self._px(124))
        card.center = (cx - self._px(36), band.bottom + round(body * 0.32))
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

        prompt_y = band.bottom + round(body * 0.64)
        self._text(view.title or "Tap your badge", 104, INK, max_width=width - self._px(48),
                   center=(cx, prompt_y))
        self._text(view.message or "or enter your access code", 36, MUTED,
                   max_width=width - self._px(48), midtop=(cx, prompt_y + self._px(46)))

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
        has_jobs = count > 0
        select_all = pygame.Rect(pad, 0, self._px(176), button_h)
        release_all = pygame.Rect(select_all.right + pad, 0, self._px(176), button_h)
        release = pygame.Rect(0, 0, self._px(330), button_h)
        release.right = width - pad
        for rect in (select_all, release_all, release):
            rect.centery = bar.centery
        self._button(select_all, "Select all", Action.SELECT_ALL, _SECONDARY_BUTTON, has_jobs)
        self._button(release_all, "Release all", Action.RELEASE_ALL, _SECONDARY_BUTTON, has_jobs)
        self._button(release, f"Release selected ({len(view.selected)})", Action.RELEASE,
                     _PRIMARY_BUTTON, bool(view.selected))

        area = pygame.Rect(0, band.bottom, width, bar.top - band.bottom)
        self._draw_job_list(view, area, now)

    def _draw_job_list(self, view: PanelView, area: pygame.Rect, now: float) -> None:
        jobs = view.jobs
        row_h = self._tap(64)
        rows = max(1, area.height // row_h)
        self._page_rows = rows
        self._max_scroll = max(0, len(jobs) - rows)
        self.scroll = min(max(self.scroll, 0), self._max_scroll)
        if not jobs:
            self._text("No jobs waiting", 56, INK, center=(area.centerx, area.centery - 20))
            self._lines("Jobs you send to secure print wait here for you.", 34, MUTED,
                        area.centerx, area.centery + self._px(16), area.width - self._px(48), 2)
            return
        rows_area = pygame.Rect(area)
        if len(jobs) > rows:
            rail = pygame.Rect(0, area.top, self._tap(96), area.height)
            rail.right = area.right
            rows_area.width -= rail.width
            self._draw_scroll_rail(rail, len(jobs), rows)
        for i, job in enumerate(jobs[self.scroll : self.scroll + rows]):
            row = pygame.Rect(rows_area.left, rows_area.top + i * row_h, rows_area.width, row_h)
            self._draw_job_row(row, job, job.job_id in view.selected, now)

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
        last = min(total, self.scroll + rows)
        self._text(f"{self.scroll + 1}\u2013{last}", 28, INK, max_width=rail.width - 4,
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


# --------------------------------------------------------------------------- demo


def _demo_views(now: float) -> list[tuple[str, PanelView]]:
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
    return [
        ("idle", PanelView(Screen.IDLE, device_name=device)),
        ("jobs", PanelView(Screen.JOBS, user_name="Ada Lovelace", jobs=jobs, total_jobs=6,
                           selected=frozenset({"j1", "j3"}), device_name=device)),
        ("releasing", PanelView(Screen.RELEASING, device_name=device, progress=(
            JobProgress("j1", jobs[0].name, "printed"),
            JobProgress("j3", jobs[2].name, "failed", "Paper jam in tray 2"),
            JobProgress("j2", jobs[1].name, "printing", "Page 1 of 1"),
            JobProgress("j4", jobs[3].name, "waiting"),
        ), message="You can log out; printing carries on.")),
        ("notice-error", PanelView(Screen.NOTICE, tone=Tone.ERROR, title="Card not recognised",
                                   message="This badge is not registered for printing. Ask the "
                                           "service desk, or use your access code.",
                                   device_name=device)),
    ]


def render_demo_screens(out_dir: Path) -> list[Path]:
    """Render sample screens (idle, jobs, releasing, an error notice) to PNG files in
    ``out_dir`` for the README and for design review; returns their paths."""
    # Off-screen surfaces and fonts need no video driver, so this runs headless as it is; the
    # fixed clock keeps the images identical from run to run.
    out_dir.mkdir(parents=True, exist_ok=True)
    now = time.mktime((2025, 3, 14, 10, 32, 0, 0, 0, -1))
    renderer = PanelRenderer(DESIGN_SIZE)
    paths = []
    for name, view in _demo_views(now):
        renderer.draw(view, now)
        path = out_dir / f"panel-{name}.png"
        pygame.image.save(renderer.surface, path)
        paths.append(path)
    return paths
