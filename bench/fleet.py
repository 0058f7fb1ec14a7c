"""A fleet of copiers through a steady state and failures (issue 14):
``python -m bench.fleet --devices N --brokers K [--json]``.

The world (simulator/fleet/): N simulated copiers in processes of ``--per-process`` devices
each (gmqtt on asyncio), spread over K private Mosquittos by ``broker_for`` (rendezvous hash
of the device id), ``--workers`` cloud worker processes each on every broker (shared
subscriptions), a private PostgreSQL (initdb in a temporary directory, fsync on).

Phases, one after the other, the load never stopping:

0. **warmup**: ``--warmup-s`` seconds of the same load, not counted in ``p99_ms``: right after
   N devices connect, every worker takes every device's retained status (written in batches),
   each worker's caches are cold and every device's first badge comes at once; the issue's
   figure is the *steady state*. Its window is still reported (``phases.warmup``).
1. **steady**: ``--steady-s`` seconds; each device badges after an exponential pause of mean
   ``--badge-period`` s (60: one badge per device per minute, the issue's load; a shorter period
   brings the load of a bigger fleet: the cloud sees N / period badges a second). A badge is
   identify (first page in the answer), jobs.list, with chance ``--release-chance`` a release of
   one job (chunks fetched and verified, jobs.printed), logout.
2. **storm**: the broker carrying the most devices (a third) is stopped and started again;
   every device on it reconnects (jittered, doubling waits, as the real device) and badges at
   once; the phase ends when every one of them has been served (or after 90 s).
3. **kill**: ``--kills`` times, a worker gets SIGKILL, the others carry the load for
   ``--kill-every-s`` s, and it is started again.
4. **database**: the private PostgreSQL is stopped (immediate: a crash to its clients) and
   started ``--pg-down-s`` s later; then ``--after-s`` s more.

At the end the devices settle what they have in flight and the tallies are made: latencies,
every unanswered request by id, releases lost or doubled from the devices' engine records and
from the cloud's store, and CPU seconds per process (fleet processes, each broker, each worker
over its incarnations, PostgreSQL with its backends), overall and per phase, with the whole
machine's busy cores and steal share per phase (``machine_by_phase``: on a virtual machine the
same work costs more CPU seconds in a phase where another tenant took the cores).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import percentile, report
from cloud.broker_accounts import DynsecAccounts
from cloud.worker import default_lanes
from simulator.fleet.cluster import Fleet
from simulator.stats import machine_cpu


def _p(samples: list[float], q: float) -> float:
    return round(percentile(samples, q), 1) if samples else float("nan")


def _window(t: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    b2l = [ms for at, ms in t["badge_to_list"] if start <= at < end]
    reqs = [ms for _, at, ms in t["latencies"] if start <= at < end]
    # The simulator's own stops (a device process collecting garbage): its devices' requests
    # in flight waited through them, so they are in the latencies above.
    pauses = [ms for at, ms in t["gc_pauses"] if start <= at < end]
    return {"badges": len(b2l), "requests": len(reqs),
            "requests_per_s": round(len(reqs) / max(end - start, 1e-9), 1),
            "badge_to_list_p50_ms": _p(b2l, 0.5), "badge_to_list_p99_ms": _p(b2l, 0.99),
            "request_p99_ms": _p(reqs, 0.99), "sim_gc_pauses": len(pauses),
            "sim_gc_pause_max_ms": max(pauses, default=0.0)}


def _steps(start: float, end: float, step: float) -> list[float]:
    return [start + i * step for i in range(int((end - start) // step))]


def _dynsec_rate(fleet: Fleet, sample: int) -> float:
    """Accounts a second that the account writer (one dynsec command per device, as
    registration makes them) adds to a running broker of this fleet."""
    if sample <= 0:
        return 0.0
    writer = DynsecAccounts(fleet.brokers[0].admin_address)
    t = time.monotonic()
    for i in range(sample):
        writer.set_password(f"probe-{i:05d}", f"probe-password-{i}")
    return round(sample / (time.monotonic() - t), 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="mfdkit-fleet."))
    fleet = Fleet(workdir, devices=args.devices, brokers=args.brokers, workers=args.workers,
                  per_process=args.per_process, badge_period_s=args.badge_period,
                  release_chance=args.release_chance, ramp_s=args.ramp_s, seed=args.seed,
                  worker_stats_s=args.worker_stats_s, lanes=args.lanes)
    phases: dict[str, tuple[float, float]] = {}
    cpu: dict[str, dict[str, float]] = {}
    # The whole machine at each phase's end (busy and stolen CPU seconds, when): a phase whose
    # processes all cost more per badge than another's ran on a slower machine, not code.
    machine: dict[str, tuple[float, float, float]] = {}
    try:
        fleet.start()
        dynsec_per_s = _dynsec_rate(fleet, args.dynsec_sample)

        def phase(name: str, start: float) -> None:
            phases[name] = (start, time.time())
            cpu[name] = fleet.cpu()
            machine[name] = (*machine_cpu(), time.monotonic())

        cpu["start"] = fleet.cpu()
        machine["start"] = (*machine_cpu(), time.monotonic())
        if args.warmup_s > 0:
            t = time.time()
            time.sleep(args.warmup_s)
            phase("warmup", t)
        t = time.time()
        time.sleep(args.steady_s)
        phase("steady", t)

        busiest = max(range(args.brokers), key=fleet.devices_on)
        on_it = {d for d, b in fleet.assignment.items() if b == fleet.broker_names[busiest]}
        before = fleet.served()
        t = time.time()
        went = fleet.restart_broker(busiest, down_s=1.0)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not on_it <= fleet.served() - before:
            time.sleep(0.5)
        time.sleep(2.0)  # the badges those devices started settle under the storm's load
        phase("storm", t)

        t = time.time()
        for i in range(args.kills):
            victim = fleet.cloud_users[i % len(fleet.cloud_users)]
            fleet.kill_worker(victim)
            time.sleep(args.kill_every_s)
            fleet.respawn_worker(victim)
            time.sleep(args.kill_every_s)
        phase("kill", t)

        t = time.time()
        fleet.pg.restart(down_s=args.pg_down_s)
        time.sleep(args.after_s)
        phase("database", t)

        tally = fleet.finish()
    finally:
        fleet.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    back = [(dev, at) for dev, lost, at in tally["served_again"]
            if lost >= went - 0.5 and dev in on_it]
    served_devices = {dev for dev, _ in back}
    recovery = round(max(at for _, at in back) - went, 2) if back else float("nan")
    reconnects = [at - went for _, lost, at in tally["reconnects"] if lost >= went - 0.5]
    histogram = dict(sorted(Counter(int(s) for s in reconnects).items()))
    steady = _window(tally, *phases["steady"])
    prints = tally["prints"]
    figures: dict[str, Any] = {
        "devices": args.devices, "brokers": args.brokers, "workers": args.workers,
        "lanes": default_lanes(fleet.pg.url) if args.lanes is None else args.lanes,
        "warmup_s": args.warmup_s, "fleet_processes": len(fleet.fleet),
        "badge_period_s": args.badge_period,
        "p99_ms": steady["badge_to_list_p99_ms"], "p50_ms": steady["badge_to_list_p50_ms"],
        "unanswered": len(tally["unanswered"]),
        "unanswered_ids": tally["unanswered"][:50],
        "storm_devices": len(on_it), "storm_served": len(served_devices & on_it),
        "storm_recovery_s": recovery,
        "reconnect_histogram_s": {str(k): v for k, v in histogram.items()},
        "lost": prints["lost"], "doubled": prints["doubled"], "prints": prints,
        "timeouts": tally["timeouts"], "retried": tally["retried"],
        "errors": tally["errors"],
        "phases": {name: _window(tally, a, b) | {"seconds": round(b - a, 1)}
                   for name, (a, b) in phases.items()},
        # The steady phase 15 s at a time: whether a backlog drains or grows.
        "steady_series": [
            {"from_s": round(a - phases["steady"][0]), "requests": w["requests"],
             "request_p99_ms": w["request_p99_ms"]}
            for a in _steps(*phases["steady"], 15.0)
            for w in [_window(tally, a, a + 15.0)]],
        "cpu_s": tally["cpu_s"],
        "cpu_s_by_phase": _cpu_by_phase(cpu),
        "machine_by_phase": _machine_by_phase(machine),
        "setup_s": {k: round(v, 1) for k, v in fleet.timings.items()},
        "dynsec_accounts_per_s": dynsec_per_s,
    }
    return figures


def _cpu_by_phase(cpu: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    names = list(cpu)
    for prev, name in itertools.pairwise(names):
        out[name] = {k: round(cpu[name].get(k, 0.0) - cpu[prev].get(k, 0.0), 2)
                     for k in cpu[name]}
    return out


def _machine_by_phase(machine: dict[str, tuple[float, float, float]]) -> dict[str, Any]:
    """Each phase's busy cores and steal share (of all cores' time: a VM's cores running
    another tenant) over the whole machine, from /proc/stat."""
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {}
    for prev, name in itertools.pairwise(machine):
        (busy0, steal0, t0), (busy1, steal1, t1) = machine[prev], machine[name]
        wall = max(t1 - t0, 1e-9)
        out[name] = {"busy_cores": round((busy1 - busy0) / wall, 2),
                     "steal_share": round((steal1 - steal0) / (wall * cores), 3)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--brokers", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--per-process", type=int, default=2500)
    p.add_argument("--lanes", type=int,
                   help="request threads per worker (mfd cloud --lanes; default: its default "
                   "on PostgreSQL, 4; 0: on paho's thread)")
    p.add_argument("--badge-period", type=float, default=60.0,
                   help="mean seconds between two badges of one device (60: one a minute)")
    p.add_argument("--release-chance", type=float, default=0.3)
    p.add_argument("--ramp-s", type=float, default=20.0)
    # 90 s: at 10,000 devices with 30 s the steady phase was still settling (its 15 s windows'
    # request p99 fell 52.6, 41.1, 28.5, 18.8 ms); with 90 s one run was flat (33.8-26.6 ms),
    # another still fell (76.6 to 34.0 ms): BENCHMARKS.md, Fleet, seventh session.
    p.add_argument("--warmup-s", type=float, default=90.0,
                   help="load before the steady phase, not counted in p99_ms (0: none)")
    p.add_argument("--steady-s", type=float, default=60.0)
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--kill-every-s", type=float, default=5.0)
    p.add_argument("--pg-down-s", type=float, default=2.0)
    p.add_argument("--after-s", type=float, default=15.0)
    p.add_argument("--dynsec-sample", type=int, default=200)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--worker-stats-s", type=float, default=0.0,
                   help="each worker prints its counters (requests, busy, longest broker wait, "
                   "statuses, batches) on stderr this often; 0: never")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    report("fleet", run(args), args.json)


if __name__ == "__main__":
    main()
