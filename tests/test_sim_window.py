"""The simulator's window as a person drives it: keys and clicks posted to pygame's event
queue (SDL's dummy video driver), the panel loop turning them into taps and keypresses."""

from __future__ import annotations

import threading
import time

import pygame
import pytest

from cloud.demo import DEMO_USERS
from device_app.panel.window import run_window
from device_app.session import State
from mfdkit.cli.sim import sim_keys
from simulator.world import SimWorld

pytestmark = pytest.mark.integration


def _key(key: int, text: str = "") -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, unicode=text, mod=0,
                                         scancode=0))


def test_keyboard_taps_badges_and_types_codes_in_the_window() -> None:
    seen: list[str] = []
    stop = threading.Event()
    with SimWorld(page_time=0.0) as world:
        assert world.app and world.badge
        app = world.app

        def person() -> None:
            try:
                # Keys posted before the window exists are lost: wait for it, not for a time.
                deadline = time.monotonic() + 10
                while pygame.display.get_surface() is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                _key(pygame.K_4, "4")  # an unknown badge: the panel offers to link it
                deadline = time.monotonic() + 5
                while app.machine.state is not State.ENTRY and time.monotonic() < deadline:
                    time.sleep(0.02)
                seen.append(app.machine.state.value)
                for ch in DEMO_USERS[2].access_code:
                    _key(getattr(pygame, f"K_{ch}"), ch)
                _key(pygame.K_RETURN)
                deadline = time.monotonic() + 5
                while app.machine.state is not State.JOBS and time.monotonic() < deadline:
                    time.sleep(0.02)
                seen.append(app.view().user_name)
            finally:
                stop.set()

        threading.Thread(target=person, daemon=True).start()
        run_window(app, title="test", on_key=sim_keys(app, world.badge),
                   should_stop=stop.is_set)
    assert seen == ["entry", "Chen Wei"]
