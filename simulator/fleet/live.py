"""``mfd sim --fleet N``: a fleet on this machine, with a line of figures every few seconds until
it is stopped, then the tallies (docs/simulator.md). The world is bench.fleet's (Fleet: private
Mosquittos, a private PostgreSQL, cloud worker processes, simulated copiers); nothing is
restarted or killed here: it is for watching a fleet run and trying the cloud against it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from simulator.fleet.cluster import Fleet
from simulator.stats import percentile

#: How often a line of figures is printed (s).
EVERY_S = 5.0


def run_live(devices: int, *, brokers: int, workers: int, badge_period_s: float,
             should_stop: Callable[[], bool], out: TextIO, every_s: float = EVERY_S) -> int:
    """Start the fleet, print figures until ``should_stop()``, stop it and print the tallies.
    Exit status 0 if every request was answered and no print was lost or doubled."""
    with tempfile.TemporaryDirectory(prefix="mfdkit-sim-fleet.") as tmp:
        fleet = Fleet(Path(tmp), devices=devices, brokers=brokers, workers=workers,
                      per_process=min(2500, max(1, devices)), badge_period_s=badge_period_s,
                      ramp_s=min(20.0, max(1.0, devices / 500)))
        print(f"mfd sim: a fleet of {devices} copiers on {brokers} broker(s), {workers} cloud "
              f"worker(s), PostgreSQL; starting (seeding {devices} users takes a while)",
              file=out, flush=True)
        try:
            fleet.start()
            print(f"mfd sim: all {devices} copiers connected in "
                  f"{fleet.timings['devices_connect_s']:.1f} s; a badge per copier every "
                  f"{badge_period_s:g} s on average; Ctrl-C stops", file=out, flush=True)
            started = last_t = time.monotonic()
            last_n = 0
            while not should_stop():
                time.sleep(0.2)
                now = time.monotonic()
                if now - last_t < every_s:
                    continue
                answered = fleet.answered()
                rate = (answered - last_n) / (now - last_t)
                print(f"mfd sim: {now - started:5.0f} s  answered {answered:7d}  "
                      f"{rate:6.1f}/s", file=out, flush=True)
                last_t, last_n = now, answered
            print("mfd sim: stopping: every copier settles what it has in flight", file=out,
                  flush=True)
            tally = fleet.finish()
        finally:
            fleet.stop()
    return _summary(tally, out)


def _summary(t: dict[str, Any], out: TextIO) -> int:
    badge = [ms for _, ms in t["badge_to_list"]]
    prints = t["prints"]
    print(f"mfd sim: {len(t['latencies'])} requests answered, {len(t['unanswered'])} "
          f"unanswered; badge -> job list p50 {percentile(badge, 0.5):.1f} ms, p99 "
          f"{percentile(badge, 0.99):.1f} ms over {len(badge)} badges", file=out)
    print(f"mfd sim: {prints['released']} releases, {prints['printed']} printed by the "
          f"copiers' engines, {prints['cloud_printed']} PRINTED in the cloud; lost "
          f"{prints['lost']}, doubled {prints['doubled']}", file=out)
    cpu = ", ".join(f"{k} {v:.1f}" for k, v in sorted(t["cpu_s"].items()))
    print(f"mfd sim: CPU seconds: {cpu}", file=out, flush=True)
    ok = not t["unanswered"] and prints["lost"] == 0 and prints["doubled"] == 0
    return 0 if ok else 1
