"""``mfd sim``: the whole world on this machine: a window for a person, a scenario file run
headless (or in a window), or the built-in headless demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mfdkit.cli.common import StopSignals, host_port
from protocol.errors import ConfigError

if TYPE_CHECKING:
    from simulator.scenarios.model import Scenario
    from simulator.scenarios.window import SimKeys


def load_scenario(path: str) -> Scenario:
    from simulator.scenarios.parse import parse_scenario

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read scenario {path}: {exc}") from None
    return parse_scenario(text, Path(path).name)


def run_scenario_file(path: str, *, seed: int = 0, transcript: str | None = None,
                      window: bool = False, out: TextIO | None = None) -> int:
    """Run a scenario file; 0 if every expectation held, 1 naming the first that did not."""
    from simulator.scenarios.driver import run_scenario

    stream = out or sys.stdout
    scenario = load_scenario(path)
    painter = None
    if window:
        from simulator.scenarios.window import scenario_painter

        painter = scenario_painter
    outcome = run_scenario(scenario, seed=seed, on_pump=painter,
                           echo=lambda line: print(line, file=stream, flush=True))
    if transcript:
        Path(transcript).write_text("\n".join(outcome.transcript) + "\n", encoding="utf-8")
    if outcome.failure is not None:
        print(f"mfd sim: scenario {scenario.name!r} failed at {outcome.failure}",
              file=sys.stderr)
        return 1
    return 0


def run_window(*, page_time: float, seed: int, record: str | None,
               should_stop: Callable[[], bool] = lambda: False,
               on_keys: Callable[[SimKeys], None] | None = None,
               http: tuple[str, int] | None = None) -> int:
    """The window for a person (``mfd sim``), writing what they did to ``record`` if given.
    ``on_keys`` gets the window's keys (and through them the device) once it is built."""
    from simulator.scenarios.dump import dump_scenario
    from simulator.scenarios.interactive import interactive_scenario
    from simulator.scenarios.keys import HELP
    from simulator.scenarios.record import StepRecorder
    from simulator.scenarios.window import run_sim_window
    from simulator.scenarios.world import ScenarioWorld

    base = interactive_scenario(page_time)
    recorder = StepRecorder(base, base.devices[0].id) if record else None
    with ScenarioWorld(base, http=http) as world:
        codes = ", ".join(f"{u.name} {u.code}" for u in base.users)
        print("mfd sim: panel window open (F1 shows/hides the keys). On a keypad screen the "
              f"keyboard types; demo access codes: {codes}.")
        if world.portal is not None:
            emails = ", ".join(u.email for u in base.users)
            print(f"mfd sim: User Portal on {world.portal.public_url}/portal/ (the panel's QR "
                  f"code opens its copier page): sign in as {emails} with the password "
                  f"{world.portal_password}")
        for line in HELP:
            print("  " + line)
        try:
            run_sim_window(world, seed=seed, recorder=recorder, should_stop=should_stop,
                           on_keys=on_keys)
        finally:
            # Also after Ctrl-C: what was done so far is worth keeping.
            if recorder is not None and record:
                app = world.devices[base.devices[0].id].app
                recorder.finish(app.machine.state.value, app.view().user_name)
                # Owner-only: what was typed (a demo user's code or password) is in it.
                from device_app.config import write_private

                write_private(record, dump_scenario(recorder.scenario()))
                print(f"mfd sim: recorded {len(recorder.steps)} steps to {record}; replay "
                      f"with: mfd sim --scenario {record}")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    # Options that mean nothing together are refused rather than ignored.
    if not args.scenario and (args.window or args.transcript):
        raise ConfigError("--window and --transcript go with --scenario FILE")
    if args.record and (args.scenario or args.headless):
        raise ConfigError("--record records the window: leave out --scenario and --headless")
    if args.http and (args.scenario or args.headless):
        raise ConfigError("--http serves the portal beside the window: leave out --scenario "
                          "and --headless")
    if args.scenario and (args.headless or args.screenshots):
        raise ConfigError("--headless and --screenshots are the built-in demo's; a scenario "
                          "runs headless unless --window")
    if args.fleet is not None:
        if args.scenario or args.headless or args.record or args.http or args.window:
            raise ConfigError("--fleet runs a fleet of simulated copiers without a panel: "
                              "leave out the panel's options")
        if not 1 <= args.fleet <= 100_000 or args.brokers < 1 or args.workers < 1:
            raise ConfigError("--fleet N takes 1 to 100,000 copiers, --brokers and --workers "
                              "at least 1")
        if args.badge_period <= 0:
            raise ConfigError("--badge-period is a number of seconds above 0")
        from simulator.fleet.live import run_live

        stop = StopSignals(interrupt=False)  # polled: the fleet is stopped and counted
        return run_live(args.fleet, brokers=args.brokers, workers=args.workers,
                        badge_period_s=args.badge_period, should_stop=stop, out=sys.stdout)
    stop = StopSignals()
    if args.scenario:
        return run_scenario_file(args.scenario, seed=args.seed, transcript=args.transcript,
                                 window=args.window)
    if args.headless:
        from simulator.scenario import run_demo

        return run_demo(sys.stdout, Path(args.screenshots) if args.screenshots else None,
                        page_time=args.page_time)
    return run_window(page_time=args.page_time, seed=args.seed, record=args.record,
                      should_stop=lambda: stop.requested,
                      http=host_port(args.http) if args.http else None)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("sim", help="run everything on this machine: broker, cloud, demo org and "
                       "the panel (a window; --scenario FILE runs a scripted scenario; "
                       "--headless the built-in demo)")
    s.add_argument("--scenario", metavar="FILE",
                   help="run a scenario file (TOML, see docs/simulator.md) headless; exit 1 "
                   "naming the first expectation that failed")
    s.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the random parts (fresh unknown badges); the same seed gives "
                   "the same transcript")
    s.add_argument("--transcript", metavar="OUT", help="with --scenario: write the transcript")
    s.add_argument("--window", action="store_true",
                   help="with --scenario: show the panel while the scenario runs")
    s.add_argument("--record", metavar="FILE",
                   help="window: write what you did as a scenario file, to replay with "
                   "--scenario")
    s.add_argument("--headless", action="store_true",
                   help="no window: run the built-in demo scenario, print a transcript, exit")
    s.add_argument("--screenshots", metavar="DIR", help="with --headless: save a PNG per step")
    s.add_argument("--page-time", type=float, default=0.2, metavar="S",
                   help="seconds the emulated engine takes per copy (default 0.2)")
    s.add_argument("--http", metavar="HOST:PORT",
                   help="window: also serve the User Portal and admin console there (e.g. "
                   "0.0.0.0:8631 for a phone on this network); the panel shows its QR code")
    s.add_argument("--fleet", type=int, metavar="N",
                   help="no panel: N simulated copiers on private brokers, cloud workers and a "
                   "private PostgreSQL, with figures every 5 s until Ctrl-C, then what was "
                   "answered, lost or doubled (docs/simulator.md)")
    s.add_argument("--brokers", type=int, default=3, help="with --fleet: Mosquittos (3)")
    s.add_argument("--workers", type=int, default=2, help="with --fleet: cloud workers (2)")
    s.add_argument("--badge-period", type=float, default=60.0, metavar="S",
                   help="with --fleet: mean seconds between two badges at one copier (60)")
    s.set_defaults(func=cmd_sim)
