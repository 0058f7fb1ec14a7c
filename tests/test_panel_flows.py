"""The panel's whole session through real Mosquitto and the cloud on SQLite: every way in,
the job actions, every way out, lockout and engine refusal. A device app with the sim reader
(readers.adapters.sim_reader, the same CardReader port as real readers) and the engine stub."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import World
from e2e_helpers import SimPanel, running_app, sim_reader

from cloud.demo import DEMO_USERS
from cloud.directory import set_password
from device_app.link import MqttCloudLink
from device_app.panel import PanelRenderer
from device_app.session import Policy, State
from device_app.view import Action, Screen
from protocol.engine import EngineState

pytestmark = pytest.mark.integration

@dataclass
class Panel(SimPanel):
    world: World

    def tap_badge(self, user: int) -> None:
        self.reader.present(DEMO_USERS[user].badge)

    def type(self, text: str, enter: bool = True) -> None:
        for key in text:
            self.app.key(key)
        if enter:
            self.app.key("ENTER")

    def until(self, state: State, timeout: float = 5) -> None:
        assert self.app.run_until(lambda a: a.machine.state is state, timeout), (
            f"wanted {state}, panel at {self.app.machine.state}: {self.app.view().title!r} "
            f"{self.app.view().message!r}")


@contextlib.contextmanager
def make_panel(world: World, policy: Policy | None = None) -> Iterator[Panel]:
    reader = sim_reader("panel")
    link = MqttCloudLink(world.broker.address("copier-1"), "copier-1").start()
    with running_app(link, reader, policy=policy) as (app, engine):
        yield Panel(app, reader, engine, world)


@pytest.fixture
def panel(world: World) -> Iterator[Panel]:
    with make_panel(world) as p:
        yield p


def test_email_and_password_on_the_panel(panel: Panel, world: World) -> None:
    set_password(world.store, DEMO_USERS[1].email, "correct horse battery")
    panel.app.tap(Action.ENTER_PASSWORD)
    panel.until(State.ENTRY)
    panel.type(DEMO_USERS[1].email, enter=False)
    panel.app.key("TAB")
    panel.type("correct horse battery")
    panel.until(State.JOBS)
    assert panel.app.view().user_name == "Bob Okafor"


def test_badge_and_pin_policy(world: World) -> None:
    with make_panel(world, Policy(card_pin=True)) as p:
        p.tap_badge(0)
        p.until(State.ENTRY)
        p.type("999999")  # wrong PIN: stays, says so
        p.until(State.ENTRY)
        assert p.app.run_until(lambda a: (a.view().entry is not None
                                          and a.view().entry.error == "Wrong PIN"), 5)
        p.type(DEMO_USERS[0].access_code)  # the PIN is the user's access code
        p.until(State.JOBS)
        assert p.app.view().user_name == "Alice Martin"


def test_wrong_codes_lock_the_copier_and_the_panel_says_until_when(panel: Panel) -> None:
    for code in ("111222", "111223", "111224", "111225"):
        panel.app.tap(Action.ENTER_CODE)
        panel.until(State.ENTRY)
        panel.type(code)
        assert panel.app.run_until(lambda a: a.view().entry is not None
                                   and a.view().entry.error == "Code not recognised", 5)
        panel.app.tap(Action.CANCEL)
        panel.until(State.IDLE)
    panel.app.tap(Action.ENTER_CODE)
    panel.type("111226")
    panel.until(State.NOTICE)
    view = panel.app.view()
    assert view.title == "Too many wrong attempts" and "locked until" in view.message


def test_delete_and_release_with_changes(panel: Panel, world: World) -> None:
    panel.tap_badge(0)
    panel.until(State.JOBS)
    jobs = panel.app.view().jobs
    doomed, wanted = jobs[0].job_id, jobs[1].job_id
    panel.app.tap(Action.SELECT, doomed)
    panel.app.tap(Action.DELETE)
    panel.until(State.CONFIRM_DELETE)
    panel.app.tap(Action.CONFIRM)
    panel.until(State.JOBS)
    assert world.store.jobs([doomed])[0].state == "DELETED"
    assert panel.app.view().total_jobs == 4
    panel.app.tap(Action.SELECT, wanted)
    panel.app.tap(Action.OPTIONS)
    panel.until(State.OPTIONS)
    panel.app.tap(Action.TOGGLE_GRAYSCALE)
    panel.app.tap(Action.TOGGLE_DUPLEX)
    panel.app.tap(Action.COPIES_UP)
    panel.app.tap(Action.RELEASE)
    assert panel.app.run_until(lambda a: len(panel.engine.printed) == 1
                               and a.machine.state is State.JOBS, 5)
    printed = panel.engine.printed[0]
    assert printed.job_id == wanted and printed.copies == 2


def test_release_all_then_logout_by_policy(world: World) -> None:
    with make_panel(world, Policy(logout_after_release_all=True)) as p:
        p.tap_badge(2)
        p.until(State.JOBS)
        held = p.app.view().total_jobs
        p.app.tap(Action.RELEASE_ALL)
        assert p.app.run_until(lambda a: len(p.engine.printed) == held
                               and a.machine.state is State.IDLE, 10)
        assert {j.state for j in world.store.all_jobs() if j.id in
                {x.job_id for x in p.engine.printed}} == {"PRINTED"}


def test_engine_fault_refuses_the_release_up_front(panel: Panel, world: World) -> None:
    panel.engine.inject(EngineState.DOOR_OPEN)
    panel.tap_badge(1)
    panel.until(State.JOBS)
    assert panel.app.run_until(lambda a: "door" in a.view().engine_problem.lower(), 3)
    job = panel.app.view().jobs[0].job_id
    panel.app.tap(Action.SELECT, job)
    panel.app.tap(Action.RELEASE)
    panel.until(State.NOTICE)
    assert "door is open" in panel.app.view().message.lower()
    assert world.store.jobs([job])[0].state == "HELD"  # nothing left HELD
    assert panel.engine.printed == []


def test_idle_timeout_and_another_badge_log_out(world: World) -> None:
    with make_panel(world, Policy(idle_timeout=5)) as p:
        p.tap_badge(0)
        p.until(State.JOBS)
        token = p.app.machine.session_token
        p.tap_badge(1)  # another badge: Alice out, Bob in
        assert p.app.run_until(lambda a: a.machine.state is State.JOBS
                               and a.view().user_name == "Bob Okafor", 5)
        assert token != p.app.machine.session_token
        p.until(State.IDLE, timeout=8)  # nobody touches the panel for 5 s
        assert p.app.view().screen is Screen.IDLE
        # The cloud ended both sessions (logging out is fire-and-forget: give it a moment).
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            ended = [e for (e,) in world.store.query_all("SELECT ended FROM sessions")]
            if ended and all(ended):
                break
            time.sleep(0.05)
        assert len(ended) == 2 and all(ended)


def test_the_idle_countdown_on_the_glass_and_a_touch_to_stay(world: World) -> None:
    # A 6 s idle timeout counts down its last 2 s (a third of it).
    with make_panel(world, Policy(idle_timeout=6)) as panel:
        panel.tap_badge(0)
        panel.until(State.JOBS)
        assert panel.app.run_until(lambda a: a.view().countdown != "", 8)
        assert panel.app.view().countdown.startswith("Logging out in ")
        glass = PanelRenderer((800, 480))
        glass.draw(panel.app.view())
        row = next(t.rect for t in glass.targets if t.action is Action.SELECT)
        hit = glass.hit(row.center)
        assert hit == (Action.STAY, None)  # the touch stays; it does not tick a job
        panel.app.tap(*hit)
        assert panel.app.run_until(lambda a: a.view().countdown == "", 1)
        assert panel.app.machine.state is State.JOBS and not panel.app.view().selected
        # The same badge again keeps the session too (and fetches the list again)...
        panel.tap_badge(0)
        assert panel.app.run_until(lambda a: a.machine.session_token is not None
                                   and not a.machine._pending, 2)
        assert panel.app.machine.state is State.JOBS
        # ...and left alone, the panel logs out by itself.
        panel.until(State.IDLE, 10)
