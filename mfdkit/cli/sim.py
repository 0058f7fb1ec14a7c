"""``mfd sim``: the whole world on this machine, in a window or as the headless demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mfdkit.cli.common import StopSignals


def sim_keys(app: Any, badge: Any) -> Any:
    """The simulator's keyboard: 1-3 tap the demo users' badges, 4 an unknown one; on a keypad
    screen the laptop keyboard stands in for the panel's keypad and keyboard."""
    from cloud.demo import DEMO_USERS, UNKNOWN_BADGE_TAG
    from device_app.session import State

    tags = [u.badge_tag for u in DEMO_USERS] + [UNKNOWN_BADGE_TAG]

    def on_key(key: int, text: str) -> None:
        import pygame

        if app.machine.state is State.ENTRY:
            named = {pygame.K_RETURN: "ENTER", pygame.K_KP_ENTER: "ENTER",
                     pygame.K_BACKSPACE: "BACKSPACE", pygame.K_TAB: "TAB"}
            if key in named:
                app.key(named[key])
            elif text and text.isprintable():
                app.key(text)
            return
        index = key - pygame.K_1
        if 0 <= index < len(tags):
            badge.present(tags[index])

    return on_key


def cmd_sim(args: argparse.Namespace) -> int:
    stop = StopSignals()
    if args.headless:
        from simulator.scenario import run_demo

        return run_demo(sys.stdout, Path(args.screenshots) if args.screenshots else None,
                        page_time=args.page_time)
    from cloud.demo import DEMO_USERS
    from device_app.panel.window import run_window
    from simulator.world import SimWorld

    with SimWorld(page_time=args.page_time) as world:
        assert world.app and world.badge
        badge = world.badge
        print("mfd sim: panel window open. Keys: 1-3 tap the demo users' badges "
              f"({', '.join(u.name for u in DEMO_USERS)}), 4 an unknown badge, Esc quits; "
              "on a keypad screen the keyboard types (demo access codes: "
              f"{', '.join(u.access_code for u in DEMO_USERS)}).")
        on_key = sim_keys(world.app, badge)
        run_window(world.app, title="mfdkit simulator", on_key=on_key, should_stop=stop)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("sim", help="run everything on this machine: broker, cloud, demo org and "
                       "the panel (a window, or --headless for the scripted demo)")
    s.add_argument("--headless", action="store_true",
                   help="no window: run the built-in demo scenario, print a transcript, exit")
    s.add_argument("--screenshots", metavar="DIR", help="with --headless: save a PNG per step")
    s.add_argument("--page-time", type=float, default=0.2, metavar="S",
                   help="seconds the emulated engine takes per copy (default 0.2)")
    s.set_defaults(func=cmd_sim)
