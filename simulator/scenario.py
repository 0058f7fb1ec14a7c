"""The built-in headless demo: a badge lists and releases a job; an unknown badge is refused.

Each step prints one transcript line; with a screenshot directory every step also saves what the
panel showed. A step that does not reach its expected state fails the run (exit status 1), so the
demo doubles as a smoke test of the whole world.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from cloud.demo import DEMO_USERS, UNKNOWN_BADGE_TAG
from device_app.app import DeviceApp
from device_app.session import State
from device_app.view import Action
from protocol.errors import MfdError
from simulator.world import SimWorld


class ScenarioFailed(MfdError):
    code = "scenario_failed"


class Recorder:
    def __init__(self, app: DeviceApp, out: TextIO, shots: Path | None) -> None:
        self.app = app
        self.out = out
        self.shots = shots
        self.started = time.monotonic()
        self.n = 0
        self.renderer = None
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            from device_app.panel import PanelRenderer  # pygame only when screenshots are asked

            self.renderer = PanelRenderer((800, 480))

    def step(self, text: str, shot: str | None = None) -> None:
        self.n += 1
        ms = (time.monotonic() - self.started) * 1000
        line = f"[{self.n:02d}] {ms:8.1f} ms  {text}"
        if shot and self.renderer is not None and self.shots is not None:
            import pygame

            self.renderer.draw(self.app.view(), time.time())
            path = self.shots / f"{self.n:02d}-{shot}.png"
            pygame.image.save(self.renderer.surface, str(path))
            line += f"  [{path.name}]"
        print(line, file=self.out, flush=True)

    def wait(self, what: str, predicate: Callable[[DeviceApp], bool], timeout: float = 5) -> None:
        if not self.app.run_until(predicate, timeout):
            view = self.app.view()
            raise ScenarioFailed(f"step {self.n + 1}: {what} did not happen within {timeout:g} s "
                                 f"(panel shows {view.screen.value}: {view.title!r})")


def run_demo(out: TextIO, screenshots: Path | None = None, page_time: float = 0.2) -> int:
    with SimWorld(page_time=page_time) as world:
        assert world.app and world.badge and world.engine
        app, badge, engine = world.app, world.badge, world.engine
        rec = Recorder(app, out, screenshots)
        assert world.broker is not None
        kind = ("Mosquitto" if world.broker.confined
                else "embedded rumqttd (no ACLs: demo only)")
        rec.step(f"world up: {kind} on 127.0.0.1:{world.broker.port}, cloud with "
                 f"{len(DEMO_USERS)} demo users, device {world.device_id}", "idle")
        alice = DEMO_USERS[0]
        badge.present(alice.badge_tag)
        rec.step(f"{alice.name} taps badge {alice.badge_tag:#010x} on the serial reader")
        rec.wait("listing Alice's jobs", lambda a: a.machine.state is State.JOBS)
        view = app.view()
        rec.step(f"identified as {view.user_name}; {view.total_jobs} held jobs listed", "jobs")
        job = view.jobs[0]
        app.tap(Action.SELECT, job.job_id)
        app.tap(Action.RELEASE)
        rec.wait("the release starting", lambda a: a.machine.state is State.RELEASING)
        rec.step(f"release of {job.name!r} ({job.pages} pages) requested", "releasing")
        rec.wait("the job printing", lambda a: len(engine.printed) == 1
                 and a.machine.state is State.JOBS, 10)
        printed = engine.printed[0]
        if printed.job_id != job.job_id:
            raise ScenarioFailed(f"the engine printed {printed.job_id}, not {job.job_id}")
        rec.step(f"engine printed {job.name!r}: {printed.size} bytes, "
                 f"sha256 {printed.sha256[:12]}… verified", "printed")
        state = world.store.jobs([job.job_id])[0].state if world.store else "?"
        rec.step(f"cloud marks the job {state}; {app.view().total_jobs} jobs remain")
        if state != "PRINTED":
            raise ScenarioFailed(f"the cloud has the job as {state}, not PRINTED")
        app.tap(Action.LOGOUT)
        rec.wait("logging out", lambda a: a.machine.state is State.IDLE)
        rec.step("Alice logs out; panel idle")
        badge.present(UNKNOWN_BADGE_TAG)
        rec.step(f"an unknown badge {UNKNOWN_BADGE_TAG:#010x} is tapped")
        rec.wait("refusing the unknown badge", lambda a: a.machine.state is State.ENTRY)
        rec.step(f"cloud answers unknown_card; panel says: {app.view().title}", "unknown-badge")
        app.tap(Action.CANCEL)
        rec.wait("going back to idle", lambda a: a.machine.state is State.IDLE)
        rec.step("the holder cancels; panel idle")
        if len(engine.printed) != 1:
            raise ScenarioFailed("the engine printed more than the one released job")
        rec.step("demo complete: 1 job released and printed once, unknown badge refused")
    return 0
