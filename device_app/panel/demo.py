"""A gallery of sample screens, rendered to PNG files for the README, the technician guide and
design review: every screen, with the keyboard states a finger would reach.

``python -m device_app.panel.demo --shots docs/img/panel`` writes every screen at 800x480 and
480x800 (``--size`` to choose; ``--language de`` for every word in German). ``--window`` shows one
screen in a real window through window.py instead (full screen with ``--fullscreen``), and with
``--ready FILE`` saves the first frame's display surface and draw tree beside FILE, then writes
FILE and waits for ``--stop FILE``: how the Xvfb test drives a real display.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import pygame

from device_app.i18n import translator
from device_app.panel.keyboard import KEY_LETTERS, KEY_SHIFT
from device_app.panel.renderer import PanelRenderer
from device_app.panel.theme import DESIGN_SIZE
from device_app.view import EntryView, FieldView, JobProgress, OptionsView, PanelView, Screen, Tone
from protocol.messages import JobSummary

#: A demo screen: its name, the view, and the keyboard keys to tap (through :meth:`hit`, as a
#: finger would) before it is saved.
_Demo = tuple[str, PanelView, tuple[str, ...]]


def _demo_views(now: float, language: str = "") -> list[_Demo]:
    """The gallery's views, their words in ``language`` as the session's presenter would give
    them (the same catalogue entries), so a screenshot shows one language throughout."""
    tr = translator(language or "en")
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
    base = PanelView(Screen.IDLE, device_name=device, language=tr.language)
    code = EntryView("code", (FieldView("code", tr.gettext("Access code"), "\u2022" * 4,
                                        focused=True),), can_switch=True)
    login = EntryView("password", (
        FieldView("username", tr.gettext("Email"), "ada.lovelace@example.com"),
        FieldView("password", tr.gettext("Password"), "\u2022" * 6, focused=True),
    ), keyboard="text", can_switch=True)
    code_title = tr.gettext("Enter your access code")
    login_title = tr.gettext("Log in with your email and password")
    listing = replace(base, screen=Screen.JOBS, user_name="Ada Lovelace", jobs=jobs,
                      total_jobs=6)
    result = (tr.ngettext("{n} printed", "{n} printed", 1) + "; "
              + tr.ngettext("{n} failed: {reason}, it is still held",
                            "{n} failed: {reason}, they are still held", 1,
                            reason=tr.gettext("paper jam")))
    return [
        ("idle", replace(base, title=tr.gettext("Tap your badge")), ()),
        ("busy", replace(base, screen=Screen.BUSY, title=tr.gettext("One moment")), ()),
        ("jobs", replace(listing, selected=frozenset({"j1", "j3"})), ()),
        ("jobs-result", replace(listing, message=result, tone=Tone.ERROR,
                                countdown=tr.gettext(
                                    "Logging out in {seconds} s \u2014 touch to stay",
                                    seconds=9)), ()),
        ("jobs-engine", replace(listing, jobs=jobs[:3], total_jobs=40, can_load_more=True,
                                selected=frozenset({"j2"}),
                                engine_problem=tr.gettext(
                                    "Paper jam: clear the jam and try again.")), ()),
        ("keypad", replace(base, screen=Screen.ENTRY, title=code_title, entry=code), ()),
        ("keypad-letters", replace(base, screen=Screen.ENTRY, title=code_title,
                                   entry=EntryView("code", code.fields, can_switch=True,
                                                   error=tr.gettext("Code not recognised"))),
         (KEY_LETTERS,)),
        ("keyboard", replace(base, screen=Screen.ENTRY, title=login_title, entry=login), ()),
        ("keyboard-shift", replace(base, screen=Screen.ENTRY, title=login_title,
                                   entry=EntryView("password", login.fields, keyboard="text",
                                                   error=tr.gettext(
                                                       "Wrong username or password"),
                                                   can_switch=True)), (KEY_SHIFT,)),
        ("options", replace(base, screen=Screen.OPTIONS,
                            title=tr.ngettext("Release {n} job with changes",
                                              "Release {n} jobs with changes", 2),
                            options=OptionsView(grayscale=True, copies=2),
                            selected=frozenset({"j1", "j3"})), ()),
        ("confirm", replace(base, screen=Screen.CONFIRM,
                            title=tr.ngettext("Delete {n} job?", "Delete {n} jobs?", 2),
                            message=tr.gettext("Deleted jobs cannot be printed."),
                            selected=frozenset({"j1", "j3"})), ()),
        ("releasing", replace(base, screen=Screen.RELEASING, can_walk_away=True, progress=(
            JobProgress("j1", jobs[0].name, "printed"),
            JobProgress("j3", jobs[2].name, "failed", tr.gettext("paper jam")),
            JobProgress("j2", jobs[1].name, "printing",
                        tr.gettext("page {done} of {pages}", done=1, pages=1)),
            JobProgress("j4", jobs[3].name, "waiting"),
        )), ()),
        ("offline", replace(base, screen=Screen.OFFLINE), ()),
        ("notice-error", replace(base, screen=Screen.NOTICE, tone=Tone.ERROR,
                                 title=tr.gettext("Card not recognised"),
                                 message=tr.gettext("This badge is not linked to anyone. Ask "
                                                    "your administrator to add it.")), ()),
    ]


def render_demo_screens(out_dir: Path, size: tuple[int, int] = DESIGN_SIZE,
                        language: str = "") -> list[Path]:
    """Render sample screens (idle, busy, jobs, the keypad and keyboard, options, a
    confirmation, releasing, offline, an error notice) to PNG files in ``out_dir`` for the
    README and for design review, in ``language`` (English if empty); returns their paths."""
    # Off-screen surfaces and fonts need no video driver, so this runs headless as it is; the
    # fixed clock keeps the images identical from run to run.
    out_dir.mkdir(parents=True, exist_ok=True)
    now = time.mktime((2025, 3, 14, 10, 32, 0, 0, 0, -1))
    paths = []
    for name, view, keys in _demo_views(now, language):
        renderer = PanelRenderer(size, language=language)
        renderer.draw(view, now)
        for key in keys:
            [target] = [t for t in renderer.targets if t.job_id == key]
            renderer.hit(target.rect.center)
            renderer.draw(view, now)
        path = out_dir / f"panel-{name}.png"
        pygame.image.save(renderer.surface, path)
        paths.append(path)
    return paths


class _Still:
    """A panel app that shows one view and ignores taps: for --window."""

    def __init__(self, view: PanelView) -> None:
        self._view = view

    def tap(self, action: object, job_id: str | None = None) -> None:
        return None

    def step(self, timeout: float = 0.05) -> bool:
        time.sleep(timeout)
        return False

    def view(self) -> PanelView:
        return self._view


def _show(args: argparse.Namespace, now: float) -> None:
    from device_app.config import UiConfig
    from device_app.panel.window import run_window

    views = {name: view for name, view, _keys in _demo_views(now, args.language)}
    ready = Path(args.ready) if args.ready else None
    stop = Path(args.stop) if args.stop else None

    def on_frame(renderer: PanelRenderer) -> None:
        if ready is None or ready.exists():
            return
        pygame.image.save(renderer.surface, ready.with_suffix(".png"))
        tree = [{"kind": type(n).__name__, **asdict(n)} for n in renderer.tree]
        ready.with_suffix(".json").write_text(json.dumps(
            {"size": renderer.surface.get_size(), "tree": tree}), encoding="utf-8")
        ready.write_text("ready\n", encoding="utf-8")

    run_window(_Still(views[args.screen]), title="mfdkit panel demo",
               fullscreen=args.fullscreen, size=args.size, ui=UiConfig(language=args.language),
               on_frame=on_frame, should_stop=lambda: stop is not None and stop.exists())


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device_app.panel.demo")
    parser.add_argument("--shots", metavar="DIR", help="write every screen as PNG files here")
    parser.add_argument("--size", type=_size, action="append",
                        help="WxH; repeat for several (default 800x480 and 480x800)")
    parser.add_argument("--language", default="",
                        help="BCP-47 tag: the screens' words in that language (de, fr, ja)")
    parser.add_argument("--window", action="store_true", help="show one screen in a window")
    parser.add_argument("--fullscreen", action="store_true")
    parser.add_argument("--screen", default="idle")
    parser.add_argument("--ready", help="--window: save the first frame, then write this file")
    parser.add_argument("--stop", help="--window: close when this file appears")
    args = parser.parse_args(argv)
    now = time.mktime((2025, 3, 14, 10, 32, 0, 0, 0, -1))
    if args.window:
        args.size = args.size[0] if args.size else None
        _show(args, now)
        return 0
    if not args.shots:
        parser.error("give --shots DIR or --window")
    for size in args.size or [DESIGN_SIZE, (480, 800)]:
        out = Path(args.shots) / f"{size[0]}x{size[1]}"
        for path in render_demo_screens(out, size, args.language):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
