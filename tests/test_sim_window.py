"""The simulator's window as a person drives it: keys and clicks posted to pygame's event
queue (SDL's dummy video driver), the window's loop turning them into badges, keypresses,
panel taps and faults; and ``--record`` writing what was done as a scenario that replays."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pygame
import pytest
from playwright.sync_api import sync_playwright
from waiting import eventually

from cloud.demo import DEMO_USERS
from device_app.panel.renderer import PanelRenderer
from device_app.session import State
from device_app.view import Action, EntryView, FieldView, PanelView, Screen
from mfdkit.cli.sim import run_scenario_file, run_window
from protocol.engine import EngineState
from simulator.scenarios import keys as simkeys
from simulator.scenarios.driver import run_scenario
from simulator.scenarios.interactive import OFFLINE_GRACE_S
from simulator.scenarios.model import Expect, Press, Tap, Type, Wait
from simulator.scenarios.parse import parse_scenario
from simulator.scenarios.run import unknown_badge
from simulator.scenarios.window import SimKeys, draw_overlay
from tests.web_helpers import CHROMIUM_ARGS, PHONE, chromium_path

pytestmark = pytest.mark.integration


def _key(key: int, text: str = "") -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, unicode=text, mod=0,
                                         scancode=0))


def _where(view: PanelView, action: Action, subject: str | None = None) -> tuple[int, int]:
    """Where on the panel a tap means ``action``: found as a finger would, by hit-testing an
    off-screen copy of the frame the window shows."""
    renderer = PanelRenderer((800, 480))
    renderer.draw(view, time.time())
    for y in range(5, 480, 10):
        for x in range(5, 800, 10):
            if renderer.hit((x, y)) == (action, subject):
                return x, y
    raise AssertionError(f"no {action} {subject} on the {view.screen} screen")


def _click(pos: tuple[int, int]) -> None:
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1))


def _in_window(person: Callable[[SimKeys], None], *, record: Path | None = None,
               http: tuple[str, int] | None = None) -> SimKeys:
    """Open the simulator's window (``mfd sim``'s code path) and let ``person`` use it."""
    done = threading.Event()
    got: list[SimKeys] = []
    errors: list[BaseException] = []

    def run(keys: SimKeys) -> None:
        try:
            # Keys posted before the window exists are lost: wait for it, not for a time.
            assert eventually(lambda: pygame.display.get_surface() is not None)
            person(keys)
        except BaseException as exc:  # handed to the test's thread below
            errors.append(exc)
        finally:
            done.set()

    def started(keys: SimKeys) -> None:
        got.append(keys)
        threading.Thread(target=run, args=(keys,), daemon=True).start()

    run_window(page_time=0.0, seed=5, record=str(record) if record else None,
               should_stop=done.is_set, on_keys=started, http=http)
    if errors:
        raise errors[0]
    return got[0]


def test_digits_type_into_a_focused_keypad_and_tap_badges_elsewhere() -> None:
    seen: list[object] = []

    def person(keys: SimKeys) -> None:
        app = keys.app
        reader = keys.dev.device.readers[0]
        _key(pygame.K_4, "4")  # a fresh unknown badge: the panel offers to link it
        assert eventually(lambda: app.machine.state is State.ENTRY)
        # "1" on a keypad with focus types a digit; it does not tap Alice's badge.
        _key(pygame.K_1, "1")
        def shown() -> str:
            entry = app.view().entry
            return entry.fields[0].display if entry is not None else ""

        assert eventually(lambda: shown() == "•")
        _key(pygame.K_BACKSPACE)
        for ch in DEMO_USERS[2].access_code:
            _key(getattr(pygame, f"K_{ch}"), ch)
        _key(pygame.K_RETURN)
        assert eventually(lambda: app.machine.state is State.JOBS)
        seen.extend([app.view().user_name, reader.health.reads])

    _in_window(person)
    assert seen == ["Chen Wei", 1]  # one badge read: the unknown one


def test_the_unknown_badge_key_taps_a_new_seeded_badge_each_time() -> None:
    def person(keys: SimKeys) -> None:
        app = keys.app
        for n in (1, 2):
            _key(pygame.K_4, "4")

            def offered(n: int = n) -> bool:
                return app.machine.state is State.ENTRY and len(keys.unknown) == n

            assert eventually(offered)
            _click(_where(app.view(), Action.CANCEL))
            assert eventually(lambda: app.machine.state is State.IDLE)

    keys = _in_window(person)
    assert len(set(keys.unknown)) == 2
    assert not set(keys.unknown) & {u.badge for u in DEMO_USERS}
    # Random but seeded (the window ran with seed 5): the same seed gives the same badges.
    rng, known = random.Random(5), {u.badge for u in DEMO_USERS}
    assert [unknown_badge(rng, known), unknown_badge(rng, known)] == keys.unknown


def test_fault_keys_jam_and_clear_the_printer_and_unplug_the_reader() -> None:
    seen: list[object] = []

    def person(keys: SimKeys) -> None:
        app, engine = keys.app, keys.dev.engine
        _key(pygame.K_1, "1")
        assert eventually(lambda: app.machine.state is State.JOBS)
        _key(pygame.K_F5)
        assert eventually(lambda: "Paper jam" in app.view().engine_problem)
        seen.append(engine.state())
        _key(pygame.K_F6)
        assert eventually(lambda: "Out of paper" in app.view().engine_problem)
        _key(pygame.K_F7)
        assert eventually(lambda: app.view().engine_problem == "")
        seen.append(engine.state())
        _click(_where(app.view(), Action.LOGOUT))
        assert eventually(lambda: app.machine.state is State.IDLE)
        reader = keys.dev.device.readers[0]
        reads = reader.health.reads
        _key(pygame.K_F8)  # unplug: a badge now reaches nothing
        assert eventually(lambda: not keys.dev.serial["front"].plugged)
        _key(pygame.K_2, "2")
        assert eventually(lambda: keys.said[-1] == "tap bob")
        _key(pygame.K_F9)  # plugged in again: the device reopens the port by itself
        assert eventually(lambda: keys.dev.serial["front"].plugged)
        seen.append(reader.health.reads - reads)
        # A person taps until the reader beeps; the reopen takes up to its retry interval.
        deadline = time.monotonic() + 10
        while app.machine.state is not State.JOBS and time.monotonic() < deadline:
            _key(pygame.K_2, "2")
            eventually(lambda: app.machine.state is State.JOBS, 1.0)
        seen.append(app.view().user_name)

    keys = _in_window(person)
    assert seen == [EngineState.JAM, EngineState.READY, 0, "Bob Okafor"]
    assert "fault jam" in keys.said and "fault unplug" in keys.said


def test_f10_takes_the_broker_away_and_the_copier_goes_offline_then_f11_brings_it_back(
        ) -> None:
    seen: list[object] = []

    def person(keys: SimKeys) -> None:
        app = keys.app
        _key(pygame.K_F10)
        assert eventually(lambda: app.machine.state is State.OFFLINE)
        # The grace time passes (the window's clock follows the wall clock; here, at once).
        keys.world.clock.advance(OFFLINE_GRACE_S + 1)
        assert eventually(lambda: app.machine.state is State.IDLE)
        seen.append("Offline mode" in " ".join((app.view().title, app.view().message)))
        _key(pygame.K_1, "1")  # Alice, signed in from the copier's own list
        assert eventually(lambda: app.machine.state is State.JOBS)
        seen.append(app.view().user_name)
        _click(_where(app.view(), Action.LOGOUT))
        assert eventually(lambda: app.machine.state is State.IDLE)
        _key(pygame.K_F11)
        assert eventually(lambda: keys.dev.device.link.connected, 20)

    keys = _in_window(person)
    assert seen == [True, "Alice Martin"]
    assert "fault broker_down" in keys.said and "fault broker_up" in keys.said


def test_f1_toggles_the_overlay_that_lists_the_keys() -> None:
    states: list[bool] = []

    def person(keys: SimKeys) -> None:
        states.append(keys.overlay)
        _key(pygame.K_F1)
        assert eventually(lambda: not keys.overlay)
        states.append(keys.overlay)
        _key(pygame.K_F1)
        assert eventually(lambda: keys.overlay)

    _in_window(person)
    assert states == [True, False]
    # What it draws: the key list, over the panel's top right corner.
    pygame.font.init()
    surface = pygame.Surface((800, 480))
    surface.fill((255, 255, 255))
    draw_overlay(surface, pygame.font.Font(None, 20))
    assert surface.get_at((790, 12))[:3] != (255, 255, 255)
    assert surface.get_at((10, 470))[:3] == (255, 255, 255)
    assert any("unknown badge" in line for line in simkeys.HELP)


def test_keys_decide_by_the_focus_not_the_state() -> None:
    focused = PanelView(Screen.ENTRY, entry=EntryView("pin", (FieldView("pin", "PIN", "",
                                                                        focused=True),)))
    unfocused = PanelView(Screen.ENTRY, entry=EntryView("pin", (FieldView("pin", "PIN", ""),)))
    idle = PanelView(Screen.IDLE)
    assert simkeys.decide("1", "1", focused) == simkeys.KeyAction("key", "1")
    assert simkeys.decide("return", "\r", focused) == simkeys.KeyAction("key", "ENTER")
    assert simkeys.decide("1", "1", unfocused) == simkeys.KeyAction("tap", "0")
    assert simkeys.decide("3", "3", idle) == simkeys.KeyAction("tap", "2")
    assert simkeys.decide("4", "4", idle) == simkeys.KeyAction("tap", "unknown")
    assert simkeys.decide("f5", "", focused) == simkeys.KeyAction("fault", "jam")
    assert simkeys.decide("f1", "", idle) == simkeys.KeyAction("overlay")
    assert simkeys.decide("x", "x", idle) == simkeys.NONE


def test_record_writes_a_scenario_that_replays(tmp_path: Path) -> None:
    path = tmp_path / "recorded.toml"

    def person(keys: SimKeys) -> None:
        app = keys.app
        _key(pygame.K_1, "1")
        assert eventually(lambda: app.machine.state is State.JOBS)
        job = next(j for j in app.view().jobs if j.name == "Boarding pass")
        _click(_where(app.view(), Action.SELECT, job.job_id))
        assert eventually(lambda: job.job_id in app.view().selected)
        _click(_where(app.view(), Action.RELEASE))
        assert eventually(lambda: keys.dev.engine.printed != []
                      and app.machine.state is State.JOBS)
        _click(_where(app.view(), Action.LOGOUT))
        assert eventually(lambda: app.machine.state is State.IDLE)
        _key(pygame.K_4, "4")
        assert eventually(lambda: app.machine.state is State.ENTRY)
        for ch in DEMO_USERS[2].access_code:
            _key(getattr(pygame, f"K_{ch}"), ch)
        _key(pygame.K_RETURN)
        assert eventually(lambda: app.machine.state is State.JOBS)

    _in_window(person, record=path)
    scenario = parse_scenario(path.read_text(encoding="utf-8"), path.name)
    # The session's end is checked by the file itself.
    assert scenario.steps[-1] == Expect("copier-1", state="jobs", user="Chen Wei")
    steps = [s for s in scenario.steps[:-1] if not isinstance(s, Wait)]
    assert steps == [Tap("alice", "copier-1", "front"),
                     Press("select", "copier-1", "Boarding pass"),
                     Press("release", "copier-1"),
                     Press("logout", "copier-1"),
                     Tap("unknown:1", "copier-1", "front"),
                     Type(DEMO_USERS[2].access_code, True, "copier-1")]
    waits = [s.state for s in scenario.steps if isinstance(s, Wait)]
    assert waits[0] == "jobs" and waits[-1] == "jobs" and "idle" in waits
    # Replayed headless, it gets where the person got, and printed what they printed.
    check = Expect("copier-1", printed=("Boarding pass",),
                   cloud=(("Boarding pass", "PRINTED"),))
    outcome = run_scenario(dataclasses.replace(scenario, steps=(*scenario.steps, check),
                                               lines=()))
    assert outcome.ok, "\n".join([outcome.failure or "", *outcome.transcript])


def test_a_scenario_runs_in_the_window_too(capsys: pytest.CaptureFixture[str]) -> None:
    # `mfd sim --scenario FILE --window`: the same run, the first device's panel shown.
    library = Path(__file__).resolve().parent.parent / "scenarios"
    assert run_scenario_file(str(library / "code-login.toml"), window=True) == 0
    assert capsys.readouterr().out.rstrip().endswith("scenario passed")
    assert pygame.display.get_init() is False  # the world closed its window


def test_with_http_a_phone_scans_the_panels_code_and_releases_there(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``mfd sim --http``: the portal beside the window, its QR code on the idle panel; a phone
    that opens the code's address signs in with the printed demo password and prints its held
    jobs at that copier, through the device's own release path."""
    def person(keys: SimKeys) -> None:
        app = keys.app
        assert eventually(lambda: bool(app.view().qr_url))
        url = app.view().qr_url
        assert url.endswith("/copier/" + keys.dev.spec.id)
        password = capsys.readouterr().out.rpartition("with the password ")[2].split()[0]
        # Playwright's sync API stays on the thread that started it: the window has the main
        # thread, so this person's phone gets a browser of its own here.
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                _phone_releases(browser, url, password, keys)
            finally:
                browser.close()

    _in_window(person, http=("127.0.0.1", 0))


def _phone_releases(browser: Any, url: str, password: str, keys: SimKeys) -> None:
    context = browser.new_context(viewport=PHONE)
    try:
        phone = context.new_page()
        phone.goto(url)  # signed out: the sign-in page, then back here
        phone.get_by_label("Email").fill(DEMO_USERS[1].email)
        phone.get_by_label("Password").fill(password)
        phone.get_by_role("button", name="Sign in").click()
        release = phone.get_by_role("button", name="Print the ticked jobs here")
        release.wait_for()
        ticked = phone.locator("input[name=job_id]:checked").count()
        assert ticked >= 1
        release.click()
        assert eventually(lambda: len(keys.dev.engine.printed) == ticked, timeout=20)
    finally:
        context.close()
