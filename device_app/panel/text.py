"""Text that fits: what a person printed, or typed, made drawable and cut to the room it has.

Job names are whatever people printed (256 characters, newlines, a lone surrogate off JSON), and
the panel must draw every one of them on one line without falling over; dates are as short as
is unambiguous. Only measuring needs pygame: a font's ``size``.
"""

from __future__ import annotations

import time
import unicodedata

import pygame

ELLIPSIS = "\u2026"

# English on purpose: %b follows the C locale of whatever image the device runs.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


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


def fit_text_middle(font: pygame.font.Font, text: str, max_width: int) -> str:
    """``text`` cut in the *middle* to fit ``max_width``: the start and the end are kept, so
    "Report 2026-Q3 final.pdf" and "Report 2026-Q4 final.pdf" stay apart and the extension
    stays in view. Two thirds of what fits is the end: names differ at their ends ("final",
    "v2", "(1)", a date) more often than at their starts."""
    text = clean_text(text)
    if font.size(text)[0] <= max_width:
        return text
    if font.size(ELLIPSIS)[0] > max_width:
        return ""

    def cut(kept: int) -> str:
        tail = (2 * kept + 2) // 3
        head = kept - tail
        return text[:head].rstrip() + ELLIPSIS + (text[len(text) - tail:].lstrip() if tail
                                                   else "")

    lo, hi = 0, len(text) - 1  # the most characters kept that still fit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.size(cut(mid))[0] <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return cut(lo)


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


def format_clock(now: float) -> str:
    """The wall clock for a header, "10:32"; empty for a time the platform cannot convert."""
    try:
        local = time.localtime(now)
    except (OverflowError, OSError, ValueError):
        return ""
    return f"{local.tm_hour:02d}:{local.tm_min:02d}"


def plural(n: int, one: str, many: str) -> str:
    """``n`` and the noun that goes with it: "1 page", "3 pages"."""
    return f"{n} {one if n == 1 else many}"
