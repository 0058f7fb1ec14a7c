"""Every language's names on the panel: system fonts for every script (not boxes), a built-in
fallback when there are none, and long names shortened in the middle so they stay apart."""

from __future__ import annotations

import time

import pygame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from panel_helpers import headless_pygame  # noqa: F401 (autouse: pygame headless)

from device_app.i18n import translator
from device_app.panel.canvas import Canvas
from device_app.panel.fonts import ChainFont, face_for, parse_charset, system_chain
from device_app.panel.text import ELLIPSIS, fit_text_middle, format_submitted, wrap_text
from device_app.panel.tree import TextNode

#: The faces the panel needs and the Debian package that brings each (scripts/setup.sh).
NEEDED = {"Noto Sans": "fonts-noto-core", "Noto Sans Arabic": "fonts-noto-core",
          "Noto Sans CJK JP": "fonts-noto-cjk", "Noto Color Emoji": "fonts-noto-color-emoji"}
SAMPLES = {"Noto Sans CJK JP": "\u5831\u544a\u66f8", "Noto Sans Arabic": "\u062a\u0642\u0631",
           "Noto Color Emoji": "\U0001f389", "Noto Sans": "Report"}


@pytest.fixture(scope="module")
def font() -> ChainFont:
    families = {face.family for face in system_chain()}
    missing = sorted({pkg for family, pkg in NEEDED.items() if family not in families})
    # A missing font fails by name, never skips: scripts/setup.sh installs these packages.
    assert not missing, f"install the Debian package(s) {', '.join(missing)} (scripts/setup.sh)"
    return ChainFont(system_chain(), 40)


def ink(image: pygame.Surface) -> bytes:
    return pygame.image.tobytes(image, "RGBA")


@pytest.mark.parametrize("family", sorted(SAMPLES))
def test_each_script_is_set_in_a_face_that_has_its_glyphs(font: ChainFont, family: str) -> None:
    text = SAMPLES[family]
    for ch in text:
        face = face_for(font, ch)
        assert face is not None and face.family == family, (ch, face)
        assert face.has(ch)
    # Not tofu: the chain draws other pixels than the Latin face alone, which has no such
    # glyph and draws its "missing" box for each.
    chained = font.render(text, True, (0, 0, 0))
    latin_only = pygame.font.Font(system_chain()[0].path, round(40 * 0.6875)).render(
        text, True, (0, 0, 0))
    if family != "Noto Sans":
        assert ink(chained) != ink(latin_only)
    assert chained.get_bounding_rect().width > 0, "something was drawn"


def test_a_mixed_name_is_split_into_runs_by_face(font: ChainFont) -> None:
    runs = font.runs("Report \u5831\u544a \u062a\u0642\u0631\u064a\u0631 \U0001f389.pdf")
    families = [font.chain[i].family for i, _ in runs]
    assert families == ["Noto Sans", "Noto Sans CJK JP", "Noto Sans", "Noto Sans Arabic",
                        "Noto Sans", "Noto Color Emoji", "Noto Sans"]
    assert "".join(run for _, run in runs) == ("Report \u5831\u544a \u062a\u0642\u0631\u064a"
                                               "\u0631 \U0001f389.pdf")
    width = font.size("Report \u5831\u544a \U0001f389")[0]
    assert width == font.render("Report \u5831\u544a \U0001f389", True, (0, 0, 0)).get_width()


def test_without_noto_the_built_in_font_draws_everything() -> None:
    canvas = Canvas(pygame.Surface((800, 480)), chain=())
    rect = canvas.text("\u5831\u544a\u66f8 \U0001f389 report.pdf", 38, (0, 0, 0), 300,
                       topleft=(10, 10))
    assert rect.width > 0
    [node] = [n for n in canvas.tree if isinstance(n, TextNode)]
    assert node.source.startswith("\u5831") and face_for(canvas.font(38), "\u5831") is None


def test_fontconfig_charsets_parse() -> None:
    assert parse_charset("20-7e a0 4e00-9fff") == ((0x20, 0x7E), (0xA0, 0xA0), (0x4E00, 0x9FFF))
    assert parse_charset("") == ()


def test_two_reports_stay_apart_when_cut(font: ChainFont) -> None:
    a = fit_text_middle(font, "Report 2026-Q3 final.pdf", 250)
    b = fit_text_middle(font, "Report 2026-Q4 final.pdf", 250)
    assert ELLIPSIS in a and a != b
    assert a.endswith(".pdf") and a.startswith("Rep")


NAME_CHARS = st.characters(codec="utf-8", categories=("L", "N", "P", "Zs"))


@settings(max_examples=80, deadline=None)
@given(text=st.text(NAME_CHARS, min_size=1, max_size=120), width=st.integers(0, 700))
def test_a_name_shortened_in_the_middle_fits_its_width(font: ChainFont, text: str,
                                                       width: int) -> None:
    shown = fit_text_middle(font, text, width)
    assert font.size(shown)[0] <= width or shown == ""
    if shown and ELLIPSIS not in shown:
        assert shown == text


ENDINGS = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789-_"),
                  min_size=1, max_size=3)


@settings(max_examples=80, deadline=None)
@given(start=st.text(NAME_CHARS, min_size=10, max_size=100), a=ENDINGS, b=ENDINGS,
       n=st.integers(16, 40))
def test_names_that_differ_near_the_end_stay_different(font: ChainFont, start: str, a: str,
                                                       b: str, n: int) -> None:
    """Cut to a width that shows at least ``n`` characters, two names that differ only in
    their last few (an up-to-3-character tag before the extension) are still told apart."""
    if a == b:
        b = a + "z"
    width = font.size("W" * n)[0]  # room for n of the widest letter
    one, two = f"{start} {a}.pdf", f"{start} {b}.pdf"
    assert fit_text_middle(font, one, width) != fit_text_middle(font, two, width)


def test_the_job_list_cuts_long_names_in_the_middle() -> None:
    """What a person sees in the list: two long reports, told apart, extension in view."""
    from device_app.panel import PanelRenderer
    from device_app.view import PanelView, Screen
    from protocol.messages import JobSummary

    base = "Quarterly report for the board meeting with all the appendices 2026-Q{}.pdf"
    jobs = tuple(JobSummary(job_id=f"j{q}", name=base.format(q), pages=1, color=False,
                            duplex=False, copies=1, size=1, submitted_at=0.0, source="")
                 for q in (3, 4))
    renderer = PanelRenderer((800, 480))
    renderer.draw(PanelView(Screen.JOBS, user_name="Ada", jobs=jobs, total_jobs=2), 0.0)
    shown = [n.text for n in renderer.tree
             if isinstance(n, TextNode) and n.source in {j.name for j in jobs}]
    assert len(shown) == 2 and shown[0] != shown[1]
    for text in shown:
        assert text.startswith("Quarterly") and text.endswith(".pdf")
        assert ELLIPSIS in text.strip(ELLIPSIS)


def test_japanese_wraps_between_characters_and_loses_nothing(font: ChainFont) -> None:
    """Japanese writes no spaces between words: a sentence is one "word" to a space-splitter,
    which used to cut it to one line and an ellipsis."""
    sentence = "ジョブは安全に保管されています。ネットワークを確認して、もう一度お試しください。"
    width = font.size(sentence)[0] * 6 // 10
    lines = wrap_text(font, sentence, width, 2)
    assert len(lines) == 2 and "".join(lines) == sentence, lines
    assert all(font.size(line)[0] <= width for line in lines)


def test_a_word_longer_than_a_line_is_broken_not_cut(font: ChainFont) -> None:
    width = font.size("Aktualisier")[0]
    lines = wrap_text(font, "Aktualisierungsschwierigkeiten sind selten", width, 9)
    assert len(lines) > 2 and not any(ELLIPSIS in line for line in lines), lines
    assert "".join(lines).replace(" ", "") == "Aktualisierungsschwierigkeitensindselten"
    assert all(font.size(line)[0] <= width for line in lines)


@pytest.mark.parametrize(("language", "today", "this_year", "last_year"), [
    ("en", "09:32", "13 Mar", "14 Nov 2024"),
    ("de", "09:32", "13. März", "14. Nov. 2024"),
    ("fr", "09:32", "13 mars", "14 nov. 2024"),
    ("ja", "9:32", "3月13日", "2024年11月14日"),
])
def test_a_jobs_time_and_date_as_its_language_writes_them(language: str, today: str,
                                                           this_year: str, last_year: str) -> None:
    now = time.mktime((2025, 3, 14, 10, 32, 0, 0, 0, -1))
    tr = translator(language)
    assert format_submitted(now - 3600, now, tr) == today
    assert format_submitted(now - 86400, now, tr) == this_year
    assert format_submitted(now - 86400 * 120, now, tr) == last_year
