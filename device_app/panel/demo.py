"""A gallery of sample screens, rendered to PNG files for the README, the technician guide and
design review: every screen, with the keyboard states a finger would reach.

``python -m device_app.panel.demo --shots docs/img/panel`` writes every screen at 800x480 and
480x800 (``--size`` to choose, ``--language`` passed to the renderer). ``--window`` shows one
screen in a real window through window.py instead (full screen with ``--fullscreen``), and with
``--ready FILE`` saves the first frame's display surface and draw tree beside FILE, then writes
FILE and waits for ``--stop FILE``: how the Xvfb test drives a real display.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import pygame

from device_app.panel.keyboard import KEY_LETTERS, KEY_SHIFT
from device_app.panel.renderer import PanelRenderer
from device_app.panel.theme import DESIGN_SIZE
from device_app.view import EntryView, FieldView, JobProgress, OptionsView, PanelView, Screen, Tone
from protocol.messages import JobSummary

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


def render_demo_screens(out_dir: Path, size: tuple[int, int] = DESIGN_SIZE,
                        language: str = "") -> list[Path]:
    """Render sample screens (idle, jobs, the keypad and keyboard, options, a confirmation,
    releasing, an error notice) to PNG files in ``out_dir`` for the README and for design
    review; returns their paths."""
    # Off-screen surfaces and fonts need no video driver, so this runs headless as it is; the
    # fixed clock keeps the images identical from run to run.
    out_dir.mkdir(parents=True, exist_ok=True)
    now = time.mktime((2025, 3, 14, 10, 32, 0, 0, 0, -1))
    paths = []
    for name, view, keys in _demo_views(now):
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

    views = {name: view for name, view, _keys in _demo_views(now)}
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
    parser.add_argument("--language", default="", help="BCP-47 tag passed to the renderer")
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
