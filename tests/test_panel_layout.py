"""Every screen on every screen size: read from the renderer's draw tree, not from pixels.

For each supported panel (landscape and portrait, at its real density) and for arbitrary sizes
between 480x320 and 2560x1600, every screen is drawn and its tree must show what a person would
notice: no text cut off by its box or the glass, nothing tappable off the glass or under
another target, targets at least 9 mm, and the view's own words on screen.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from panel_helpers import headless_pygame  # noqa: F401 (autouse: pygame headless)

from device_app.i18n import translator
from device_app.panel import PanelRenderer
from device_app.panel.canvas import min_target_px
from device_app.panel.text import clean_text
from device_app.panel.tree import TargetNode, TextNode, inside, overlap
from device_app.view import (
    EntryView,
    FieldView,
    JobProgress,
    OptionsView,
    PanelView,
    Screen,
    Tone,
)
from protocol.messages import JobSummary

NOW = time.mktime((2025, 3, 14, 10, 32, 0, 0, 0, -1))

#: The panels the device ships on, with the density of a real panel of that size.
PANELS: list[tuple[tuple[int, int], float]] = [
    ((800, 480), 133.0),  # 7 inch
    ((1024, 600), 170.0),  # 7 inch
    ((1280, 800), 149.0),  # 10.1 inch
    ((1920, 1080), 141.0),  # 15.6 inch
    ((480, 800), 133.0),  # 7 inch, portrait
    # 8 inch: at 7 inches (170 dpi) the glass is under 90 mm wide, and ten keys of a text
    # keyboard cannot each be 9 mm; no layout can keep that promise there.
    ((600, 1024), 150.0),  # 8 inch, portrait
    ((800, 1280), 149.0),  # 10.1 inch, portrait
]

LONG = "Quarterly report Q3 - final version for the board meeting, with appendices.pdf"
NAMES = [LONG, "\u5e74\u5ea6\u5831\u544a\u66f8\uff08\u6700\u7d42\u7248\uff09\u2014"
         "\u53d6\u7de0\u5f79\u4f1a\u7528\u306e\u8cc7\u6599\u3068\u6dfb\u4ed8\u66f8\u985e.pdf",
         "\u062a\u0642\u0631\u064a\u0631 \u0627\u0644\u0631\u0628\u0639 \u0627\u0644\u062b"
         "\u0627\u0644\u062b \u0627\u0644\u0646\u0647\u0627\u0626\u064a.pdf",
         "Party photos \U0001f389\U0001f37e\U0001f973 " * 4, "x" * 256]


def job(i: int, name: str | None = None) -> JobSummary:
    return JobSummary(job_id=f"j{i}", name=name or f"Document {i}.pdf", pages=1 + i % 40,
                      color=i % 2 == 0, duplex=i % 3 == 0, copies=1 + i % 4, size=1000,
                      submitted_at=NOW - 600 * i, source="LAPTOP-ADA-LOVELACE-2025")


def _jobs(jobs: tuple[JobSummary, ...], **kw: object) -> PanelView:
    fields: dict[str, object] = dict(user_name="Ada Lovelace", jobs=jobs, total_jobs=len(jobs),
                                     device_name="Floor 3 \u00b7 Copier East")
    fields.update(kw)
    return PanelView(Screen.JOBS, **fields)  # type: ignore[arg-type]


def _entry(kind: str) -> PanelView:
    if "password" in kind:
        entry = EntryView(kind, (FieldView("username", "Email", "ada.lovelace@example.com"),
                                 FieldView("password", "Password", "\u2022" * 9,
                                           focused=True)),
                          keyboard="text", can_switch=True, error="Wrong username or password")
        title = "Log in with your email and password"
    else:
        entry = EntryView(kind, (FieldView(kind, "Access code" if "code" in kind else "PIN",
                                           "\u2022" * 4, focused=True),),
                          can_switch="code" in kind, error="Code not recognised")
        title = ("Badge not recognised: link it with your access code"
                 if kind.startswith("associate") else "Enter your access code")
    return PanelView(Screen.ENTRY, title=title, entry=entry, device_name="Floor 3")


def all_views() -> dict[str, PanelView]:
    """Every screen, with the contents that stretch it: no jobs, one, 200, names in every
    script, each entry kind, each notice tone."""
    device = "Floor 3 \u00b7 Copier East"
    many = tuple(job(i, NAMES[i % len(NAMES)] if i % 7 == 0 else None) for i in range(200))
    views = {
        "idle": PanelView(Screen.IDLE, title="Tap your badge", device_name=device),
        "idle-message": PanelView(Screen.IDLE, title="Tap your badge",
                                  message="Or use your access code", device_name=device),
        "busy": PanelView(Screen.BUSY, title="Looking you up", message="One moment",
                          device_name=device),
        "jobs-0": _jobs(()),
        "jobs-1": _jobs((job(0),), selected=frozenset({"j0"})),
        "jobs-200": _jobs(many, total_jobs=400, can_load_more=True,
                          selected=frozenset({"j0", "j7"})),
        "jobs-names": _jobs(tuple(job(i, name) for i, name in enumerate(NAMES)),
                            selected=frozenset({"j1"}),
                            engine_problem="Paper jam: open the front door, clear the jam in "
                                           "tray 2 and close the door again."),
        "releasing": PanelView(Screen.RELEASING, device_name=device, progress=tuple(
            JobProgress(f"j{i}", NAMES[i % len(NAMES)],
                        ("printed", "failed", "printing", "waiting")[min(i, 3)],
                        "Paper jam in tray 2" if i == 1 else "")
            for i in range(12)), message="You can log out; printing carries on."),
        "offline": PanelView(Screen.OFFLINE, device_name=device),
        "confirm": PanelView(Screen.CONFIRM, title="Delete 2 jobs?",
                             message="Deleted jobs cannot be printed.",
                             selected=frozenset({"j1", "j3"}), device_name=device),
        "options": PanelView(Screen.OPTIONS, title="Release 2 jobs with changes",
                             options=OptionsView(grayscale=True, copies=2),
                             selected=frozenset({"j1", "j3"}), device_name=device),
    }
    for tone in Tone:
        views[f"notice-{tone.value}"] = PanelView(
            Screen.NOTICE, tone=tone, title="Card not recognised",
            message="This badge is not linked to anyone. Ask your administrator to add it.",
            device_name=device)
    for kind in ("code", "pin", "password", "associate_code", "associate_password"):
        views[f"entry-{kind}"] = _entry(kind)
    return views


VIEWS = all_views()


def problems(renderer: PanelRenderer, view: PanelView, dpi: float | None) -> list[str]:
    """Everything wrong with the last frame's tree, as sentences (empty: all good)."""
    screen = (0, 0, *renderer.surface.get_size())
    tree = renderer.tree
    texts = [n for n in tree if isinstance(n, TextNode)]
    targets = [n for n in tree if isinstance(n, TargetNode)]
    found = []
    for t in texts:
        if t.source.strip() and not t.text.strip():
            found.append(f"text {t.source!r} {t.rect} was cut to nothing")
        if not inside(t.rect, screen):
            found.append(f"text {t.text!r} {t.rect} is off the screen {screen}")
        elif not inside(t.rect, t.container):
            found.append(f"text {t.text!r} {t.rect} overflows its box {t.container}")
        for g in targets:
            # A text on a labelled button is its label: wholly inside it. Half on, half off is
            # something drawn across the button. (Rows are not held to it: a row's second line
            # may reach into the next row's padding by its descent.)
            if (g.label and t.text.strip() and overlap(t.rect, g.rect)
                    and not inside(t.rect, g.rect)):
                found.append(f"text {t.text!r} {t.rect} runs across target {g.action} "
                             f"{g.rect}")
    least = min_target_px(dpi)
    for g in targets:
        if not inside(g.rect, screen):
            found.append(f"target {g.action} {g.rect} is off the screen")
        if min(g.rect[2], g.rect[3]) < least:
            found.append(f"target {g.action} {g.rect} is under 9 mm ({least} px)")
    for a, b in itertools.combinations(targets, 2):
        if overlap(a.rect, b.rect):
            found.append(f"targets {a.action}/{a.subject} {a.rect} and {b.action}/{b.subject} "
                         f"{b.rect} overlap")
    sources = {t.source for t in texts}
    for words in (view.title, view.message):
        if words and words not in sources:
            found.append(f"{words!r} is not on screen")
    return found


#: A full text keyboard is seven rows of 9 mm targets with its fields and header: on glass less
#: tall than this it cannot keep that promise, whatever the layout.
TEXT_ENTRY_MIN_HEIGHT = 420


def check(size: tuple[int, int], dpi: float | None) -> dict[str, list[str]]:
    renderer = PanelRenderer(size, dpi=dpi)
    bad = {}
    for name, view in VIEWS.items():
        if "password" in name and size[1] < TEXT_ENTRY_MIN_HEIGHT:
            continue
        renderer.draw(view, NOW)
        found = problems(renderer, view, dpi)
        if found:
            bad[name] = found
    return bad


@pytest.mark.parametrize(("size", "dpi"), PANELS, ids=[f"{w}x{h}" for (w, h), _ in PANELS])
def test_every_screen_fits_every_panel_at_its_density(size: tuple[int, int], dpi: float) -> None:
    assert check(size, dpi) == {}


@pytest.mark.parametrize("size", [s for s, _ in PANELS], ids=[f"{w}x{h}" for (w, h), _ in PANELS])
def test_every_screen_fits_every_panel_when_the_density_is_not_known(
        size: tuple[int, int]) -> None:
    assert check(size, None) == {}


@pytest.mark.parametrize(("size", "dpi"), PANELS, ids=[f"{w}x{h}" for (w, h), _ in PANELS])
def test_a_job_rows_two_lines_stay_inside_the_row(size: tuple[int, int], dpi: float) -> None:
    """Name and details one above the other, both within the row a tap selects: with Noto's
    taller lines the details used to reach 2 px into the next row."""
    renderer = PanelRenderer(size, dpi=dpi)
    renderer.draw(VIEWS["jobs-names"], NOW)
    rows = [n for n in renderer.tree if isinstance(n, TargetNode) and n.action == "select"]
    assert rows
    for row in rows:
        left, top, width, height = row.rect
        drawn = [t for t in renderer.tree if isinstance(t, TextNode)
                 and top <= t.rect[1] + t.rect[3] // 2 < top + height
                 and left <= t.rect[0] < left + width]  # not the scroll rail's
        assert len(drawn) >= 3, drawn  # name, details, time
        for t in drawn:
            assert top <= t.rect[1] and t.rect[1] + t.rect[3] <= top + height, (t, row)


def test_portrait_puts_the_job_lists_toolbar_in_two_rows_with_both_releases_below() -> None:
    renderer = PanelRenderer((480, 800), dpi=133.0)
    renderer.draw(VIEWS["jobs-1"], NOW)
    where = {n.action: n.rect for n in renderer.tree if isinstance(n, TargetNode)}
    release, release_all = where["release"], where["release_all"]
    assert release[1] == release_all[1], "Release and Release all side by side"
    for upper in ("select_all", "delete", "options"):
        assert where[upper][1] + where[upper][3] <= release[1], upper
    # Release (the one a person came for) is the wider of the two.
    assert release[2] > release_all[2]


def test_a_text_keyboard_is_only_refused_the_rule_where_it_cannot_fit() -> None:
    """The one exception above is real: at 420 px tall the keyboard keeps the rule."""
    assert check((480, TEXT_ENTRY_MIN_HEIGHT), None) == {}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(480, 2560), st.integers(320, 1600))
def test_every_screen_fits_any_size(width: int, height: int) -> None:
    assert check((width, height), None) == {}


@pytest.mark.parametrize(("size", "dpi"), PANELS, ids=[f"{w}x{h}" for (w, h), _ in PANELS])
def test_the_idle_prompt_is_whole_and_the_layout_uses_the_whole_glass(
        size: tuple[int, int], dpi: float) -> None:
    """The bug that started this: "Tap your b..." cut inside an 800x480 box on 1280x800."""
    renderer = PanelRenderer(size, dpi=dpi)
    renderer.draw(VIEWS["idle"], NOW)
    [prompt] = [n for n in renderer.tree if isinstance(n, TextNode) and n.source ==
                "Tap your badge"]
    assert prompt.text == "Tap your badge"
    targets = [n for n in renderer.tree if isinstance(n, TargetNode)]
    nodes: list[TextNode | TargetNode] = [*renderer.tree]
    right = max(n.rect[0] + n.rect[2] for n in nodes)
    bottom = max(n.rect[1] + n.rect[3] for n in nodes)
    # The header spans the glass and the buttons sit near its foot, whatever its size.
    assert right > size[0] * 0.9 and bottom > size[1] * 0.85, (right, bottom)
    assert targets


def test_portrait_stacks_what_landscape_puts_side_by_side() -> None:
    def field_and_keypad(size: tuple[int, int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        renderer = PanelRenderer(size)
        renderer.draw(VIEWS["entry-code"], NOW)
        field = next(n.rect for n in renderer.tree
                     if isinstance(n, TargetNode) and n.action == "focus")
        key = next(n.rect for n in renderer.tree
                   if isinstance(n, TargetNode) and n.subject == "1")
        return field, key

    field, key = field_and_keypad((800, 480))
    assert field[0] + field[2] <= key[0], "landscape: field left of the keypad"
    field, key = field_and_keypad((480, 800))
    assert field[1] + field[3] <= key[1], "portrait: field above the keypad"


@pytest.mark.parametrize(("size", "dpi"), PANELS, ids=[f"{w}x{h}" for (w, h), _ in PANELS])
def test_the_idle_countdown_leaves_every_screen_it_covers_in_order(
        size: tuple[int, int], dpi: float) -> None:
    """With the countdown band drawn, each screen still fits; only the band's own target
    (the whole glass: any touch stays) lies over the others, on purpose."""
    renderer = PanelRenderer(size, dpi=dpi)
    bad = {}
    for name in ("jobs-1", "jobs-200", "options", "confirm", "offline"):
        view = replace(VIEWS[name], countdown="Logging out in 7 s \u2014 touch to stay")
        renderer.draw(view, NOW)
        assert renderer.tree[-1] == TargetNode("stay", None, (0, 0, *size), "")
        found = [p for p in problems(renderer, view, dpi) if "stay/" not in p]
        if found:
            bad[name] = found
    assert bad == {}


def in_language(view: PanelView, language: str) -> PanelView:
    """``view`` as the presenter would hand it over in ``language``: its title and message in
    that language where the catalogue has them, and the panel's own labels follow
    ``view.language``."""
    tr = translator(language)
    return replace(view, language=language,
                   title=tr.gettext(view.title) if view.title else "",
                   message=tr.gettext(view.message) if view.message else "")


#: German runs longest; Japanese draws from the CJK face of the font chain.
LANGUAGE_PANELS = [((800, 480), 133.0), ((480, 800), 133.0)]


@pytest.mark.parametrize("language", ["de", "ja", "fr"])
@pytest.mark.parametrize(("size", "dpi"), LANGUAGE_PANELS,
                         ids=[f"{w}x{h}" for (w, h), _ in LANGUAGE_PANELS])
def test_every_screen_fits_in_the_longest_and_the_widest_language(
        language: str, size: tuple[int, int], dpi: float) -> None:
    renderer = PanelRenderer(size, dpi=dpi)
    bad = {}
    for name, view in VIEWS.items():
        shown = in_language(view, language)
        renderer.draw(shown, NOW)
        found = problems(renderer, shown, dpi)
        # The panel's own words are in the language, not English: a label left out of the
        # catalogue would show here.
        english = {"Log out", "Select all", "Release all", "Cancel", "Retry", "Keep", "Refresh",
                   "Load more", "Enter access code", "Done, log me out", "OK", "Clear"}
        found += [f"{t.text!r} is English" for t in renderer.tree
                  if isinstance(t, TextNode) and t.text in english - {"OK"}]
        # A button or key says all of what it does: set smaller, never cut.
        found += [f"button {t.source!r} cut to {t.text!r}" for t in renderer.tree
                  if isinstance(t, TextNode) and t.role in ("button", "key")
                  and t.text != clean_text(t.source)]
        if found:
            bad[name] = found
    assert bad == {}


@pytest.mark.parametrize("size", [(480, 481), (480, 500), (500, 520), (600, 610)])
def test_nearly_square_glass_keeps_the_text_keyboards_keys_apart(size: tuple[int, int]) -> None:
    """Found by the random sweep: on glass barely taller than wide the stacked (portrait)
    entry left the keyboard too little height and its rows overlapped."""
    assert check(size, None) == {}
