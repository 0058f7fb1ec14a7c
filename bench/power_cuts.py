"""The full power-cut sweep of the emulated MCUboot (firmware_stubs/mcuboot), MCUboot-sim style.

A clean upgrade of a large image (upload in 512-byte chunks, test, the swap at the test boot,
confirm, reset) is run once to count its flash operations (erases and writes); then, for every
one of them, the device is restored to its factory flash, the upgrade is cut at that operation,
the device is powered on again and checked (a valid signed image runs, old or new; no swap left
half done; an image on test can be reverted), and the upgrade is finished from there (resumed
upload, test, reset, confirm) and must end on the new image, confirmed. Then ``--random`` runs
of several cuts each (during the upgrade and again during the recovery), and a cut at every
operation of a revert (a test boot not confirmed, then a reset). The test suite runs a
sample of this (tests/test_power_cuts.py); this runs all of it.

    python -m bench.power_cuts [--payload 240000] [--slot-sectors 64] [--random 200]
                               [--kind ed25519] [--json]

The JSON last line has at least ``writes`` (flash operations swept: every erase and every
program of the clean upgrade, ``flash_erases`` + ``flash_programs``), ``cuts`` (cuts made),
``bricked`` (devices that broke the promise: must be 0) and ``seconds``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from bench.common import report
from firmware_stubs.mcuboot import PowerCut, sim


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.power_cuts", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--payload", type=int, default=240_000,
                    help="firmware bytes in the new image (default 240000)")
    ap.add_argument("--slot-sectors", type=int, default=64,
                    help="4 KiB sectors per slot, its trailer included (default 64)")
    ap.add_argument("--random", type=int, default=200,
                    help="runs of random multiple cuts after the sweep (default 200)")
    ap.add_argument("--kind", choices=("ed25519", "ecdsa-p256"), default="ed25519")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object last")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="mfd-powercut-") as tmp:
        rig = sim.make_rig(Path(tmp), payload_old=args.payload * 4 // 5,
                           payload_new=args.payload, slot_sectors=args.slot_sectors,
                           kind=args.kind, seed=args.seed)
        t0 = time.perf_counter()
        clean = sim.clean_run(rig)
        cuts = survived = bricked = 0
        ended = {"old": 0, "new": 0}
        failures: list[str] = []
        for k in range(1, clean.ops + 1):
            cuts += 1
            try:
                _cut_once(rig, k, ended)
                survived += 1
            except sim.Bricked as exc:
                bricked += 1
                failures.append(f"cut at {k}: {exc}")
        rnd = random.Random(args.seed)
        multi = 0
        for _ in range(args.random):
            plan = [rnd.randint(1, clean.ops) for _ in range(rnd.randint(2, 5))]
            rig.restore()
            flash = rig.open(cut_at=plan[0])
            try:
                sim.finish(rig, flash)
            except PowerCut:
                pass
            finally:
                flash.close()
            try:
                _, hits = sim.recover(rig, plan[1:])
                multi += 1 + hits
                survived += 1
            except sim.Bricked as exc:
                bricked += 1
                failures.append(f"cuts {plan}: {exc}")
        try:
            revert = sim.sweep_revert(rig)
        except sim.Bricked as exc:  # the sweep stops at the first broken promise
            bricked += 1
            failures.append(f"revert: {exc}")
            revert = sim.Sweep()
        seconds = time.perf_counter() - t0

    for line in failures[:20]:
        print("BRICKED", line)
    report("power_cuts", {
        "image_bytes": len(rig.new), "writes": clean.ops, "flash_erases": clean.erases,
        "flash_programs": clean.writes, "cuts": cuts + multi + revert.cuts,
        "sweep_cuts": cuts, "revert_writes": revert.ops,
        "revert_cuts": revert.cuts, "random_runs": args.random, "random_cuts": multi,
        "survived": survived, "bricked": bricked, "ended_old": ended["old"],
        "ended_new": ended["new"], "phases": dict(clean.phases),
        "seconds": round(seconds, 2)}, args.json)
    return 1 if bricked else 0


def _cut_once(rig: sim.Rig, k: int, ended: dict[str, int]) -> None:
    rig.restore()
    flash = rig.open(cut_at=k)
    try:
        sim.finish(rig, flash)
        raise sim.Bricked(f"the upgrade ran past operation {k} without a cut")
    except PowerCut:
        pass
    finally:
        flash.close()
    with rig.open() as flash:
        ended[sim.check(rig, rig.reset(flash))] += 1
    sim.recover(rig)


if __name__ == "__main__":
    raise SystemExit(main())
