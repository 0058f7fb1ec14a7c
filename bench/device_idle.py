"""The device app at rest: CPU and resident memory of a panel with its UI.

A device process (the app, its MQTT link to a private Mosquitto, an emulated serial reader on
a pty, the engine stub, and the pygame panel on SDL's dummy video driver) logs a demo user in
and out once, then sits idle on "Tap your badge"; over ``--seconds`` the bench reads the
process's CPU time and resident set size from /proc.

    python -m bench.device_idle [--seconds 20] [--json]
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from bench.common import report
from cloud.demo import DEMO_USERS
from device_app.panel.window import run_window
from device_app.session import State
from device_app.view import Action
from simulator.world import SimWorld


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.device_idle", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    figures: dict[str, float] = {}
    stop = threading.Event()
    with SimWorld() as world:
        assert world.app and world.badge
        app, badge = world.app, world.badge

        def scenario() -> None:
            time.sleep(1.0)
            badge.present(DEMO_USERS[0].badge_tag)
            deadline = time.monotonic() + 5
            while app.machine.state is not State.JOBS and time.monotonic() < deadline:
                time.sleep(0.05)
            app.tap(Action.LOGOUT)
            time.sleep(2.0)  # settle on the idle screen
            # The broker and cloud worker of the embedded world run in this process too; the
            # device's own share is what the panel loop and link cost, measured as this
            # process's CPU while everything is idle (the cloud's idle cost included).
            t0 = time.monotonic()
            c0 = resource.getrusage(resource.RUSAGE_SELF)
            time.sleep(args.seconds)
            c1 = resource.getrusage(resource.RUSAGE_SELF)
            wall = time.monotonic() - t0
            cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
            figures["idle_cpu_percent_of_a_core"] = round(100 * cpu / wall, 2)
            figures["rss_mb"] = round(_rss_mb(), 1)
            figures["seconds"] = round(wall, 1)
            stop.set()

        threading.Thread(target=scenario, daemon=True).start()
        run_window(app, title="bench", should_stop=stop.is_set)
    report("device_idle", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
