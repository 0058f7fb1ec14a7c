"""The simulator's window: the panel of one device of a :class:`ScenarioWorld`, driven by a
person (keys and clicks), with the simulator's own keys (badges, faults) and an overlay that
lists them (F1). Optionally records what the person did as a scenario (``StepRecorder``).

This is the simulator's pygame loop, beside device_app/panel/window.py (the copier's), because
the simulator draws an overlay, advances the world's clock with the wall clock, and reports
each action to the recorder; the panel itself is the same renderer.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

import pygame

from device_app.app import DeviceApp
from device_app.panel.renderer import PanelRenderer
from device_app.view import Action
from protocol.engine import EngineState
from simulator.scenarios import keys as simkeys
from simulator.scenarios.model import Fault, FaultKind, Press, Tap
from simulator.scenarios.record import StepRecorder
from simulator.scenarios.run import unknown_badge
from simulator.scenarios.world import ScenarioWorld, SimDevice

FRAME_S = 1 / 30
_ENGINE = {FaultKind.JAM: EngineState.JAM, FaultKind.NO_PAPER: EngineState.NO_PAPER,
           FaultKind.CLEAR: EngineState.READY}
#: Actions whose subject names something a replay must find by name, not by id.
_SUBJECT_KEY = {Action.SELECT: "job", Action.FOCUS: "field", Action.KEY: "key"}


class SimKeys:
    """What the simulator's keys do to one device of the world."""

    def __init__(self, world: ScenarioWorld, device: SimDevice, *, seed: int = 0,
                 recorder: StepRecorder | None = None) -> None:
        self.world = world
        self.dev = device
        self.recorder = recorder
        self.rng = random.Random(seed)
        self.overlay = True
        self.users = [u for u in world.scenario.users if u.badge][:3]
        self.known = {u.badge for u in world.scenario.users if u.badge}
        self.unknown: list[str] = []  # the fresh badges tapped, oldest first
        self.reader = device.spec.readers[0].name
        self.said: list[str] = []  # what the keys did, for the window's status line and tests
        self.broker_down = False

    @property
    def app(self) -> DeviceApp:
        return self.dev.app

    def on_key(self, name: str, text: str) -> None:
        act = simkeys.decide(name, text, self.app.view(), len(self.users))
        state = self.app.machine.state.value
        now = self.world.clock()
        if act.kind == "overlay":
            self.overlay = not self.overlay
        elif act.kind == "key":
            self.app.key(act.arg)
            if self.recorder is not None:
                if act.arg == "ENTER" or len(act.arg) == 1:
                    self.recorder.typed(act.arg, now, state)
                else:
                    self.recorder.action(Press("key", self.dev.spec.id, act.arg), now, state)
        elif act.kind == "tap":
            self.tap(act.arg, now, state)
        elif act.kind == "fault":
            self.fault(FaultKind(act.arg), now, state)

    def tap(self, which: str, now: float, state: str) -> None:
        if which == "unknown" or (which == "unknown-again" and not self.unknown):
            number = unknown_badge(self.rng, self.known)
            self.known.add(number)
            self.unknown.append(number)
            label = f"unknown:{len(self.unknown)}"
        elif which == "unknown-again":
            number, label = self.unknown[-1], f"unknown:{len(self.unknown)}"
        else:
            user = self.users[int(which)]
            number, label = user.badge, user.key
        self.said.append(f"tap {label}")
        if self.recorder is not None:
            self.recorder.action(Tap(label, self.dev.spec.id, self.reader), now, state)
        sim = self.dev.sim_readers.get(self.reader)
        if sim is not None:
            sim.present(number)
            return
        badge = self.dev.serial[self.reader]
        if badge.plugged:
            badge.stub.present(int(number))

    def fault(self, kind: FaultKind, now: float, state: str) -> None:
        broker = self.world.broker
        if kind in (FaultKind.BROKER_DOWN, FaultKind.BROKER_UP):
            down = kind is FaultKind.BROKER_DOWN
            if broker is None or self.broker_down == down:
                return
            (broker.stop if down else broker.start)()
            self.broker_down = down
        elif kind in _ENGINE:
            self.dev.engine.core.inject(_ENGINE[kind])
        elif self.reader in self.dev.serial:
            badge = self.dev.serial[self.reader]
            if kind is FaultKind.UNPLUG and badge.plugged:
                badge.unplug()
            elif kind is FaultKind.REPLUG and not badge.plugged:
                badge.replug()
            else:
                return
        else:
            return  # a simulated reader has no plug
        self.said.append(f"fault {kind.value}")
        if self.recorder is not None:
            self.recorder.action(Fault(kind, self.dev.spec.id, self.reader), now, state)

    def on_tap(self, action: Action, subject: str | None) -> None:
        """A tap on the panel, passed on to the app (and recorded by what it names)."""
        now, state = self.world.clock(), self.app.machine.state.value
        if self.recorder is not None:
            arg = subject or ""
            if action is Action.SELECT:
                arg = next((j.name for j in self.app.view().jobs if j.job_id == subject), "")
            if action is Action.KEY and subject == "ENTER":
                self.recorder.typed("ENTER", now, state)
            elif action is Action.KEY and subject and len(subject) == 1:
                self.recorder.typed(subject, now, state)
            else:
                self.recorder.action(Press(action.value, self.dev.spec.id,
                                           arg if action in _SUBJECT_KEY else ""), now, state)
        self.app.tap(action, subject)


def draw_overlay(surface: pygame.Surface, font: pygame.font.Font) -> None:
    lines = simkeys.HELP
    h = font.get_linesize()
    box = pygame.Surface((max(font.size(s)[0] for s in lines) + 16, h * len(lines) + 12),
                         pygame.SRCALPHA)
    box.fill((0, 0, 0, 190))
    for i, text in enumerate(lines):
        box.blit(font.render(text, True, (255, 255, 255)), (8, 6 + i * h))
    surface.blit(box, (surface.get_width() - box.get_width() - 8, 8))


def run_sim_window(world: ScenarioWorld, *, seed: int = 0, recorder: StepRecorder | None = None,
                   should_stop: Callable[[], bool] = lambda: False,
                   on_keys: Callable[[SimKeys], None] | None = None,
                   size: tuple[int, int] = (800, 480)) -> SimKeys:
    """Run the window until Esc, the window's close button or ``should_stop``. The world's
    clock follows the wall clock here: a person waits in real seconds."""
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    dev = next(iter(world.devices.values()))
    keys = SimKeys(world, dev, seed=seed, recorder=recorder)
    if on_keys is not None:
        on_keys(keys)
    pygame.display.init()
    pygame.display.set_caption("mfdkit simulator")
    screen = pygame.display.set_mode(size)
    renderer = PanelRenderer(screen)
    font = pygame.font.Font(None, 20)
    last = time.monotonic()
    try:
        while not should_stop():
            for ev in pygame.event.get():
                if ev.type == pygame.QUIT:
                    return keys
                if ev.type == pygame.MOUSEBUTTONDOWN and ev.button == 1:
                    tap = renderer.click(ev.pos)
                    if tap is not None:
                        keys.on_tap(*tap)
                elif ev.type == pygame.KEYDOWN:
                    if ev.key == pygame.K_ESCAPE:
                        return keys
                    keys.on_key(pygame.key.name(ev.key), ev.unicode)
            deadline = time.monotonic() + FRAME_S
            while time.monotonic() < deadline:
                for d in world.devices.values():
                    d.app.step(0.002)
            now = time.monotonic()
            world.clock.advance(now - last)
            last = now
            if recorder is not None:
                recorder.state_seen(dev.app.machine.state.value, world.clock())
            renderer.draw(dev.app.view(), time.time())
            if keys.overlay:
                draw_overlay(screen, font)
            pygame.display.flip()
    finally:
        pygame.display.quit()
    return keys


class WindowClosed(Exception):
    """The person closed the window of a scenario run."""


def scenario_painter(world: ScenarioWorld) -> Callable[[], None]:
    """For ``mfd sim --scenario FILE --window``: a hook that shows the first device's panel as
    the scenario runs (at most a frame per 1/30 s; the run never waits for it)."""
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    pygame.display.init()
    pygame.display.set_caption(f"mfdkit simulator: {world.scenario.name}")
    screen = pygame.display.set_mode((800, 480))
    renderer = PanelRenderer(screen)
    dev = next(iter(world.devices.values()))
    last = [0.0]
    world.on_stop(pygame.display.quit)  # the world's end closes its window

    def paint() -> None:
        now = time.monotonic()
        if now - last[0] < FRAME_S:
            return
        last[0] = now
        for ev in pygame.event.get():
            if ev.type == pygame.QUIT or (ev.type == pygame.KEYDOWN
                                          and ev.key == pygame.K_ESCAPE):
                raise WindowClosed
        renderer.draw(dev.app.view(), time.time())
        pygame.display.flip()

    return paint
