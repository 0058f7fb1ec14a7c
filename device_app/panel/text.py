"""Text that fits: what a person printed, or typed, made drawable and cut to the room it has.

Job names are whatever people printed (256 characters, newlines, a lone surrogate off JSON), and
the panel must draw every one of them on one line without falling over; dates are as short as
is unambiguous. Only measuring needs pygame: a font's ``size``.
"""

from __future__ import annotations

import datetime as dt
import time
import unicodedata

import pygame

from device_app.i18n import Translator, translator

ELLIPSIS = "\u2026"


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


def _pieces(font: pygame.font.Font, word: str, max_width: int) -> list[str]:
    """``word`` as pieces that each fit ``max_width``: itself if it fits, else cut between
    characters. Japanese and Chinese put no spaces between words, so a sentence is one "word"
    and may be broken after any character; so may a Latin word too long for a line."""
    if font.size(word)[0] <= max_width:
        return [word]
    pieces, current = [], ""
    for ch in word:
        if current and font.size(current + ch)[0] > max_width:
            pieces.append(current)
            current = ch
        else:
            current += ch
    return [*pieces, current] if current else pieces


def wrap_text(font: pygame.font.Font, text: str, max_width: int, max_lines: int) -> list[str]:
    """``text`` broken at spaces (or, for a word longer than a line and for scripts written
    without spaces, between characters) into at most ``max_lines`` lines that each fit
    ``max_width``; what does not fit ends in an ellipsis."""
    lines: list[str] = []
    current = ""
    # Each piece, and what went before it in the text: a space, or nothing (a word cut).
    pieces = [(piece, " " if i == 0 else "") for word in clean_text(text).split()
              for i, piece in enumerate(_pieces(font, word, max_width))]
    tail = ""  # everything from the last line on, as it was written
    for piece, before in pieces:
        if len(lines) == max_lines - 1:
            tail = f"{tail}{before}{piece}" if tail else piece
            continue
        candidate = f"{current}{before}{piece}" if current else piece
        if current and font.size(candidate)[0] > max_width:
            lines.append(current)
            current = piece
            if len(lines) == max_lines - 1:
                tail, current = piece, ""
        else:
            current = candidate
    if tail:
        lines.append(tail)
    elif current:
        lines.append(current)
    return [fit_text(font, line, max_width) for line in lines]


def format_submitted(submitted_at: float, now: float, tr: Translator | None = None) -> str:
    """When a job was sent, as short as is unambiguous: "09:41" today, else "3 Mar"
    (with the year if it is not this year), as ``tr``'s language writes them ("3. März",
    "3月3日"); English without one. Local time, because that is the clock on the wall. (Not
    strftime: %b follows the C locale of whatever image the device runs.)"""
    tr = tr or translator("en")
    try:
        then = dt.datetime.fromtimestamp(submitted_at)
        today = dt.datetime.fromtimestamp(now)
    except (OverflowError, OSError, ValueError):
        # The timestamp comes off the wire; a wild one must not blank the panel.
        return ""
    if then.date() == today.date():
        return tr.time(then)
    return tr.date(then.date(), with_year=then.year != today.year)


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
