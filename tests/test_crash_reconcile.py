"""Exactly-once release across power cuts, on the real stack: Mosquitto, the cloud worker (on
SQLite and on PostgreSQL), the engine server in its own process, and the real device
(device_app.runner: ``from_config_file``, ``Device.start``, the app's loop) in another process
(tests/crash_device.py), built from a device.toml as a technician writes it. A person taps a
badge on its reader and releases three jobs; the process is SIGKILLed at a hook-chosen point.
The device started again reconciles. Whatever the point: every job ends PRINTED in the cloud or
back in HELD, none is RELEASING (lost), none is printed twice, the cloud records each outcome
once (audit rows counted); and releasing what went back to HELD prints each job exactly once
overall."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import World
from device_process import ROOT, Device, audited, held_jobs, states

from cloud.demo import DEMO_USERS
from cloud.directory import submit_job
from device_app.printing.journal import Journal
from firmware_stubs.engine_server import EngineControl, EngineProcess
from firmware_stubs.mfd_controller import printed_log

pytestmark = pytest.mark.integration

ALICE = DEMO_USERS[0]

#: kill point -> what the job being worked on when the device died must end as.
SCENARIOS = {
    "fetch": "HELD",  # died mid-fetch: never handed over, so back to HELD
    "handed": "HELD",  # HANDED journaled, the engine never got it: fenced, back to HELD
    "engine-has-it": "PRINTED",  # the engine had it queued: waited for, then reported printed
    "printed-unjournaled": "PRINTED",  # the engine printed, the journal never heard
    "printed-untold": "PRINTED",  # journaled PRINTED, the cloud never heard
    "told-unconfirmed": "PRINTED",  # the cloud heard; the journal never heard it did
}


@pytest.mark.parametrize("die_at", list(SCENARIOS))
def test_a_device_killed_mid_release_reconciles_to_exactly_once(world: World, tmp_path: Path,
                                                                 die_at: str) -> None:
    # A document of three chunks, so "mid-fetch" is really in the middle of one.
    big = bytes(range(256)) * (600 * 1024 // 256)
    big_id = submit_job(world.store, ALICE.email, "Big scan.pdf", big, pages=3)
    first, *_, last = [j for j in held_jobs(world) if j != big_id]
    jobs = [first, big_id, last]
    state_dir = tmp_path / "engine"
    with EngineProcess(state_dir) as engine:
        control = EngineControl(engine.socket_path)
        device = Device(world, tmp_path / "device", "socket", engine.socket_path)
        if die_at == "engine-has-it":
            control.hold(True)

        crashed = device.run("--jobs", ",".join(jobs), "--die-at", die_at, "--die-job", big_id)
        assert crashed.returncode == -9, crashed.stdout + crashed.stderr
        assert f"RELEASED {','.join(jobs)}" in crashed.stdout, crashed.stdout
        assert f"DYING {die_at}" in crashed.stdout
        # The cut left the job undone in the cloud (or, last point, told but not journaled).
        at_cut = "PRINTED" if die_at == "told-unconfirmed" else "RELEASING"
        assert states(world, [big_id])[big_id] == at_cut
        # The document being fetched or handed over when the device died is still spooled.
        spool = device.journal.parent / "spool"
        if die_at in ("fetch", "handed"):
            assert list(spool.iterdir()), die_at

        # The device started again reconciles its journal with the engine and the cloud.
        log = tmp_path / "reconcile.log"  # a file, not a pipe nobody drains while we read
        with open(log, "w") as err:
            proc = subprocess.Popen(device.cmd(), cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=err, text=True, env=device.env)
        assert proc.stdout is not None
        lines = []
        try:
            for line in proc.stdout:
                lines.append(line.strip())
                if line.startswith("WAITING") and die_at == "engine-has-it":
                    # Reconciliation saw the engine still printing; now let it print.
                    control.hold(False)
            assert proc.wait(timeout=60) == 0, "\n".join(lines) + log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
        print("\n".join(lines))
        assert lines[-1] == "DONE", lines
        assert "NOTHING" not in lines and any(x.startswith("RECONCILED") for x in lines), lines

        after = states(world, jobs)
        assert after[big_id] == SCENARIOS[die_at], (lines, after)
        assert set(after.values()) <= {"PRINTED", "HELD"}, after  # none lost in RELEASING
        printed = Counter(p.job_id for p in printed_log(state_dir))
        assert all(n == 1 for n in printed.values()), printed  # none printed twice
        for job_id in jobs:  # the cloud's record and the paper agree
            assert (after[job_id] == "PRINTED") == (printed[job_id] == 1), (job_id, after)
            # Told once per outcome, also where a report was repeated after the cut.
            assert audited(world, "printed", job_id) == printed[job_id], job_id
            assert audited(world, "print.failed", job_id) == (after[job_id] == "HELD"), job_id
        journal = Journal.open(device.journal)
        assert journal.unconfirmed() == []
        journal.close()
        assert list(spool.iterdir()) == []  # a spool file never outlives its run

        # Starting again finds nothing to reconcile and sends nothing.
        again = device.run()
        assert again.returncode == 0 and "NOTHING" in again.stdout, again.stdout
        assert "RECONCILED" not in again.stdout, again.stdout

        # What went back to HELD is released again, and now every job is on paper once.
        back = [j for j in jobs if after[j] == "HELD"]
        if back:
            rerun = device.run("--jobs", ",".join(back))
            assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert set(states(world, jobs).values()) == {"PRINTED"}
        printed = Counter(p.job_id for p in printed_log(state_dir))
        assert {j: printed[j] for j in jobs} == dict.fromkeys(jobs, 1)
        assert {j: audited(world, "printed", j) for j in jobs} == dict.fromkeys(jobs, 1)


def test_a_repeated_release_answer_never_prints_twice(world: World, tmp_path: Path) -> None:
    """The same release delivered again after a restart (a QoS 1 redelivery): the journal the
    real device wrote refuses the second hand-over."""
    jobs = held_jobs(world)[:2]
    state_dir = tmp_path / "engine"
    with EngineProcess(state_dir) as engine:
        device = Device(world, tmp_path / "device", "socket", engine.socket_path)
        first = device.run("--jobs", ",".join(jobs))
        assert first.returncode == 0, first.stdout + first.stderr
        journal = Journal.open(device.journal)
        rows = journal.entries()
        assert {r.job_id for r in rows} == set(jobs)
        release_id = rows[0].release_id
        journal.close()
        # Replaying the exact release into a fresh printer on the same journal.
        replay = subprocess.run(
            [sys.executable, "-c", _REPLAY, str(device.journal), engine.socket_path,
             release_id, *jobs], cwd=ROOT, capture_output=True, text=True, timeout=60,
            check=False)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert replay.stderr.count("not printed twice") == len(jobs), replay.stderr
    assert Counter(p.job_id for p in printed_log(state_dir)) == dict.fromkeys(jobs, 1)
    assert {j: audited(world, "printed", j) for j in jobs} == dict.fromkeys(jobs, 1)


# close() is the proof the printer did nothing with the replay: it queues its stop behind
# everything submitted and joins the printer thread, so any print would have happened (and
# reported to done) before it returns. No sleep-and-hope.
_REPLAY = """
import logging, sys
from device_app.engines.socket import EngineClient
from device_app.printing.journal import Journal
from device_app.printing.release import Printer
from device_app.session import PrintJob
from protocol import messages as m

logging.basicConfig(level=logging.WARNING)
journal_path, socket_path, release_id, *jobs = sys.argv[1:]
journal = Journal.open(journal_path)
done = []
printer = Printer(None, EngineClient(socket_path), done.append, journal)
for job_id in jobs:
    row = journal.get(release_id, job_id)
    printer.submit(PrintJob(release_id, m.ReleasedJob(job_id=job_id, name=row.name,
                                                      size=row.size, sha256=row.sha256)))
printer.close()
assert not printer._thread.is_alive(), "the printer thread did not finish"
assert done == [], done
"""
