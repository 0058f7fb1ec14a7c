"""Run a scenario against a :class:`ScenarioWorld`: each step done to the real parts, every
device's loop driven until it settles, each screen change written to the transcript.

Waits are event-driven: after a step the runner drives the devices until every queue is empty
and no panel is busy (waiting for the cloud or the engine), with a real-time bound only as a
safety net. The simulated clock moves only at ``advance``, clock jumps, a ``wait`` with a
timeout (one second at a time, settling after each) and an engine fault (the device sees the
engine at its next poll). So the same scenario and seed give the same transcript.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from device_app.app import ENGINE_POLL_S
from device_app.view import Action
from protocol import messages as m
from protocol.engine import EngineState
from protocol.errors import MfdError, RemoteError
from simulator.netem import LinkProfile
from simulator.scenarios import run
from simulator.scenarios.model import (
    Advance,
    Expect,
    Fault,
    FaultKind,
    Press,
    Release,
    Scenario,
    Step,
    Tap,
    Type,
    Wait,
)
from simulator.scenarios.world import ScenarioWorld, SimDevice

log = logging.getLogger(__name__)

#: Real seconds a step may take to settle before the runner moves on regardless (a safety net:
#: a wedged world must not hang a run; the next wait or expect reports what is wrong).
SETTLE_LIMIT_S = 20.0
#: Real seconds a serial reader gets to deliver a tap (it reopens its port once a second).
SERIAL_READ_S = 5.0

_ENGINE_FAULTS = {FaultKind.JAM: EngineState.JAM, FaultKind.NO_PAPER: EngineState.NO_PAPER,
                  FaultKind.DOOR_OPEN: EngineState.DOOR_OPEN, FaultKind.CLEAR: EngineState.READY}


class ScenarioFailed(MfdError):
    code = "scenario_failed"


@dataclass
class Outcome:
    transcript: list[str]
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class Runner:
    scenario: Scenario
    world: ScenarioWorld
    seed: int = 0
    #: Called with each transcript line as it is written (the CLI prints them live).
    echo: Callable[[str], None] | None = None
    #: Called after every round of the devices' loops (the window draws the panel here).
    on_pump: Callable[[], None] | None = None
    transcript: list[str] = field(default_factory=list)
    _last: dict[str, run.ScreenSig] = field(default_factory=dict)
    _labelled: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.known = {u.badge for u in self.scenario.users if u.badge}

    # ------------------------------------------------------------ the run

    def run(self) -> Outcome:
        sc = self.scenario
        self.say(f"scenario {sc.name!r}: {len(sc.devices)} device(s), {len(sc.users)} users, "
                 f"{len(sc.jobs)} jobs, seed {self.seed}")
        self.settle()
        for n, step in enumerate(sc.steps, 1):
            self.say(run.describe(n, step, sc))
            try:
                self.do(step)
            except MfdError as exc:
                # A step's own failure, or one of the world's parts refusing what the step
                # asked (a reader, the engine): either way the run stops here, named.
                where = f" (line {sc.lines[n - 1]})" if sc.lines else ""
                failure = f"step {n}{where}: {exc.message}"
                self.say(f"FAILED {failure}")
                return Outcome(self.transcript, failure)
        self.say("scenario passed")
        return Outcome(self.transcript)

    def say(self, text: str) -> None:
        line = run.stamp(self.world.clock.elapsed, text)
        self.transcript.append(line)
        if self.echo is not None:
            self.echo(line)

    def dev(self, device_id: str) -> SimDevice:
        return self.world.devices[device_id]

    # ------------------------------------------------------------ driving the devices

    def observe(self) -> None:
        for dev_id, d in self.world.devices.items():
            view = d.app.view()
            sig = run.ScreenSig(d.app.machine.state.value, view.screen.value, view.title)
            if self._last.get(dev_id) != sig:
                self._last[dev_id] = sig
                self.say("  " + sig.line(dev_id))

    def pump(self) -> None:
        """Step every device once, noting what changed."""
        for d in self.world.devices.values():
            d.app.step(0.002)
            self.observe()
        if self.on_pump is not None:
            self.on_pump()

    def quiet(self) -> bool:
        return all(d.app.events.empty()
                   and d.app.view().screen.value not in run.BUSY_SCREENS
                   and self._offline_caught_up(d)
                   for d in self.world.devices.values())

    def _offline_caught_up(self, d: SimDevice) -> bool:
        """A device's offline link (device_app/offline/link.py) has looked at the simulated
        time now, and has nothing on its way: what the time allows (going offline after the
        grace, a report once the cloud is back) has happened."""
        link = d.device.offline
        return link is None or (link.caught_up(self.world.clock()) and link.idle())

    def settle(self, until: Callable[[], bool] | None = None,
               limit: float = SETTLE_LIMIT_S) -> bool:
        """Drive until ``until`` holds (if given) or everything is quiet; True if it held."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self.pump()
            if until is not None and until():
                self.drain()
                return True
            if until is None and self.quiet():
                # Twice in a row: an event a step put on a queue is handled, not in flight.
                self.pump()
                if self.quiet():
                    return True
        return until() if until is not None else self.quiet()

    def drain(self) -> None:
        while not all(d.app.events.empty() for d in self.world.devices.values()):
            self.pump()

    def advance(self, seconds: float) -> None:
        self.world.clock.advance(seconds)
        self.settle()

    # ------------------------------------------------------------ steps

    def do(self, step: Step) -> None:
        if isinstance(step, Tap):
            self.tap(step)
        elif isinstance(step, Type):
            app = self.dev(step.device).app
            for ch in step.text:
                app.key(ch)
            if step.enter:
                app.key("ENTER")
        elif isinstance(step, Press):
            self.press(step)
        elif isinstance(step, Release):
            self.release(step)
        elif isinstance(step, Wait):
            self.wait(step)
            return
        elif isinstance(step, Advance):
            self.advance(step.seconds)
            return
        elif isinstance(step, Fault):
            self.fault(step)
            return
        elif isinstance(step, Expect):
            self.expect(step)
            return
        self.settle()

    def tap(self, step: Tap) -> None:
        user = self.scenario.user(step.badge)
        if user is not None:
            number = user.badge
        elif step.badge == "unknown":
            number = run.unknown_badge(self.rng, self.known)
            self.known.add(number)
        elif step.badge.startswith("unknown:"):
            if step.badge not in self._labelled:
                self._labelled[step.badge] = run.unknown_badge(self.rng, self.known)
                self.known.add(self._labelled[step.badge])
            number = self._labelled[step.badge]
        else:
            number = step.badge
        d = self.dev(step.device)
        sim = d.sim_readers.get(step.reader)
        if sim is not None:
            sim.present(number)
            return
        badge = d.serial[step.reader]
        if not badge.plugged:
            self.say("  (the reader is unplugged: nothing reads the badge)")
            return
        reader = next(r for r in d.device.readers if r.reader_id == step.reader)
        seen = reader.health.reads + reader.health.suppressed
        deadline = time.monotonic() + SERIAL_READ_S
        while time.monotonic() < deadline:
            badge.stub.present(int(number))
            # A person taps again until the reader beeps: a reader reopening its port after
            # a replug drops what came before it was open. An open port reads a frame in
            # milliseconds, so a second try comes only for a frame that was surely lost.
            if self.settle(lambda: reader.health.reads + reader.health.suppressed > seen,
                           limit=1.0):
                return
        raise ScenarioFailed(f"reader {step.reader} did not read the badge within "
                             f"{SERIAL_READ_S:g} s")

    def press(self, step: Press) -> None:
        app = self.dev(step.device).app
        action = Action(step.action)
        arg: str | None = step.job or None
        if action is Action.SELECT:
            arg = self.job_id_listed(step.device, step.job)
        app.tap(action, arg)

    def job_id_listed(self, device: str, name: str) -> str:
        view = self.dev(device).app.view()
        for job in view.jobs:
            if job.name == name:
                return job.job_id
        raise ScenarioFailed(f"job {name!r} is not listed on {device} (listed: "
                             f"{[j.name for j in view.jobs]})")

    def release(self, step: Release) -> None:
        app = self.dev(step.device).app
        if not step.jobs:
            app.tap(Action.RELEASE_ALL)
            return
        for name in step.jobs:
            job_id = self.job_id_listed(step.device, name)
            if job_id not in app.view().selected:
                app.tap(Action.SELECT, job_id)
                self.drain()
        app.tap(Action.RELEASE)

    def wait(self, step: Wait) -> None:
        app = self.dev(step.device).app

        def there() -> bool:
            return step.state in (app.machine.state.value, app.view().screen.value)

        # Until it is there or nothing more can happen without time passing; then let time
        # pass a second at a time, settling after each.
        self.settle(lambda: there() or self.quiet())
        waited = 0.0
        while not there() and waited < step.timeout:
            tick = min(run.WAIT_TICK, step.timeout - waited)
            self.world.clock.advance(tick)
            waited += tick
            self.settle(lambda: there() or self.quiet())
        if there():
            return
        view = app.view()
        raise ScenarioFailed(f"expected state {step.state!r} within {step.timeout:g} s, saw "
                             f"{app.machine.state.value} ({view.screen.value}: {view.title!r})")

    def cloud_hears(self) -> None:
        """Until the cloud answers each device (any answer, even a refusal): its worker is
        subscribed again, so the next badge is not lost in the gap. A probe, not a sleep."""
        deadline = time.monotonic() + SETTLE_LIMIT_S
        for d in self.world.devices.values():
            while True:
                probe = m.Logout(request_id=secrets.token_hex(8), session="scenario-probe")
                try:
                    d.device.link.call(probe, timeout=0.5)
                except RemoteError:
                    pass  # refused: heard
                except MfdError:
                    if time.monotonic() < deadline:
                        continue
                    raise ScenarioFailed(f"the cloud does not answer {d.spec.id}") from None
                break

    def expect(self, step: Expect) -> None:
        d = self.dev(step.device)
        view = d.app.view()
        store = self.world.store
        cloud: dict[str, str] = {}
        if step.cloud and store is not None:
            ids = {self.world.job_ids[name]: name for name, _ in step.cloud}
            cloud = {ids[j.id]: j.state for j in store.jobs(list(ids))}
        seen = run.Seen(d.app.machine.state.value, view.screen.value, view.title, view.message,
                        view.engine_problem, view.user_name, tuple(j.name for j in view.jobs),
                        view.total_jobs, d.engine.state().value,
                        tuple(p.name for p in d.engine.printed), cloud)
        failure = run.check(step, seen)
        if failure is not None:
            raise ScenarioFailed(failure)

    def fault(self, step: Fault) -> None:
        w = self.world
        d = self.dev(step.device)
        k = step.kind
        if k in _ENGINE_FAULTS and step.after_pages is not None:
            # Armed: the next job fails after that many pages (copies count as pages).
            d.engine.core.inject(_ENGINE_FAULTS[k], after_pages=step.after_pages)
            self.settle()
        elif k in _ENGINE_FAULTS:
            d.engine.core.inject(_ENGINE_FAULTS[k])
            # The device sees its engine at its next poll.
            self.advance(ENGINE_POLL_S)
        elif k is FaultKind.UNPLUG:
            d.serial[step.reader].unplug()
            self.settle()
        elif k is FaultKind.REPLUG:
            d.serial[step.reader].replug()
            self.settle()
        elif k is FaultKind.BROKER_DOWN:
            assert w.broker is not None
            w.broker.stop()
            self.settle(lambda: not any(x.device.link.connected for x in w.devices.values()))
            self.settle()
        elif k is FaultKind.BROKER_UP:
            assert w.broker is not None
            w.broker.start()
            if not self.settle(lambda: all(x.device.link.connected
                                           for x in w.devices.values())):
                raise ScenarioFailed("the devices did not reconnect to the broker")
            self.cloud_hears()
            self.settle()
        elif k is FaultKind.CLOUD_KILL:
            w.kill_cloud()
            self.settle()
        elif k is FaultKind.CLOUD_RESTART:
            w.start_cloud()
            self.cloud_hears()
            self.settle()
        elif k is FaultKind.LATENCY:
            d.relay.set_profile(LinkProfile(step.ms, step.ms))
            self.settle()
        elif k is FaultKind.CLOCK_JUMP:
            w.cloud_offset += step.seconds
            self.advance(step.seconds)


def run_scenario(scenario: Scenario, *, seed: int = 0,
                 echo: Callable[[str], None] | None = None,
                 on_pump: Callable[[ScenarioWorld], Callable[[], None]] | None = None
                 ) -> Outcome:
    """Run ``scenario`` in a fresh world. ``on_pump`` makes the per-round hook from the world
    (the window's drawing)."""
    with ScenarioWorld(scenario) as world:
        hook = on_pump(world) if on_pump is not None else None
        return Runner(scenario, world, seed, echo, hook).run()
