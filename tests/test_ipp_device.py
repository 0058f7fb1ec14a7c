"""The IPP engine driven through the real device, end to end, against CUPS' ``ippeveprinter``:
copier-1 built from a device.toml whose ``[engine]`` is ``kind = "ipp"`` (device_app.runner), a
badge on its reader, a release on its panel, the document on the printer byte for byte and the
job PRINTED in the cloud (SQLite and PostgreSQL). Then the same device killed at points of a
release and started again: reconciliation asks the printer what became of each job, and every
job is printed exactly once, recorded once. The device runs in its own process
(tests/crash_device.py, tests/device_process.py); the printer is tests/ipp_printer.py's."""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import World
from device_process import ALICE, ROOT, Device, audited, held_jobs, states
from ipp_printer import HOLD, DnsSd, IppEvePrinter

from cloud.directory import submit_job
from device_app.engines.ipp.codec import GroupTag
from device_app.engines.ipp.engine import job_name
from device_app.printing.journal import Journal, JournalEntry

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.4\n% mfdkit ipp device test\n" + bytes(range(256)) * 64



@pytest.fixture
def printer(dnssd: DnsSd, tmp_path: Path) -> Iterator[IppEvePrinter]:
    printer = IppEvePrinter(tmp_path / "printer", "mfdkit device test printer")
    printer.workdir.mkdir()
    printer.start()
    yield printer
    printer.stop()


def spooled_for(printer: IppEvePrinter, entry: JournalEntry) -> list[Path]:
    """The documents the printer kept for this hand-over: ippeveprinter -k names the file
    <job-id>-<job-name>.pdf, lowercased, each run of other than letters, digits and "-" one
    "_"; the job-name carries the journal's engine id."""
    name = job_name(entry.name, entry.engine_id)
    assert name is not None
    want = re.sub(r"[^a-z0-9-]+", "_", name.lower()) + ".pdf"
    return [p for p in printer.spooled() if p.name.split("-", 1)[1] == want]


def handed(device: Device) -> list[JournalEntry]:
    journal = Journal.open(device.journal)
    try:
        return [e for e in journal.entries() if e.engine_id]
    finally:
        journal.close()


def documents(world: World, jobs: list[str]) -> dict[str, bytes]:
    """The jobs' documents, read before release (the cloud drops a document once printed)."""
    return {j.id: world.store.document(j.id, 0, j.size) for j in world.store.jobs(jobs)}


def on_paper(printer: IppEvePrinter, device: Device, docs: dict[str, bytes]) -> Counter[str]:
    """How many times the printer holds each job's document, checked byte for byte."""
    count: Counter[str] = Counter()
    for entry in handed(device):
        for path in spooled_for(printer, entry):
            kept = path.read_bytes()
            assert kept == docs[entry.job_id], path
            assert hashlib.sha256(kept).hexdigest() == entry.sha256
            count[entry.job_id] += 1
    return count


def test_a_badge_releases_jobs_to_the_printer_byte_for_byte(world: World, tmp_path: Path,
                                                            printer: IppEvePrinter) -> None:
    jobs = [submit_job(world.store, ALICE.email, f"IPP {i}.pdf", PDF + bytes([i]), pages=1)
            for i in range(2)]
    docs = documents(world, jobs)
    device = Device(world, tmp_path / "device", "ipp", printer.uri)
    out = device.run("--jobs", ",".join(jobs))
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "DONE", out.stdout + out.stderr
    assert states(world, jobs) == dict.fromkeys(jobs, "PRINTED")
    assert on_paper(printer, device, docs) == Counter(jobs)
    assert {j: audited(world, "printed", j) for j in jobs} == dict.fromkeys(jobs, 1)
    # The printer saw the job as the device sent it: named after the document, for mfdkit.
    entry = next(e for e in handed(device) if e.job_id == jobs[0])
    printer_job = int(spooled_for(printer, entry)[0].name.split("-", 1)[0])
    seen = printer.job_attributes(printer_job)
    assert seen is not None
    assert seen.first(GroupTag.JOB, "job-name") == job_name("IPP 0.pdf", entry.engine_id)
    assert seen.first(GroupTag.JOB, "job-state") == 9  # completed


#: kill point -> what the job being worked on when the device died must end as.
SCENARIOS = {
    "handed": "HELD",  # journaled HANDED, never sent: the printer has no such job, fenced
    "printer-holds-it": "PRINTED",  # on the printer, processing: waited for, then reported
    "printed-unjournaled": "PRINTED",  # the printer completed it, the journal never heard
}


@pytest.mark.parametrize("die_at", list(SCENARIOS))
def test_a_device_killed_mid_release_reconciles_with_the_printer(
        world: World, tmp_path: Path, printer: IppEvePrinter, die_at: str) -> None:
    first = held_jobs(world)[0]
    # The printer's script keeps a job whose name holds HOLD processing while the hold file
    # exists (tests/ipp_printer.py).
    doomed = submit_job(world.store, ALICE.email, f"{HOLD} scan.pdf", PDF, pages=1)
    jobs = [first, doomed]
    docs = documents(world, jobs)
    device = Device(world, tmp_path / "device", "ipp", printer.uri)

    if die_at == "printer-holds-it":
        # The power cut comes while the printer is printing the job: the test kills the
        # device once the printer reports the job processing, a state, not a moment.
        printer.hold_file.touch()
        proc = subprocess.Popen(device.cmd("--jobs", ",".join(jobs)), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=device.env)
        try:
            assert wait_for_processing(printer, HOLD), printer.log()[-2000:]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    else:
        crashed = device.run("--jobs", ",".join(jobs), "--die-at", die_at, "--die-job", doomed)
        assert crashed.returncode == -9, crashed.stdout + crashed.stderr
        assert f"DYING {die_at}" in crashed.stdout
    assert states(world, [doomed])[doomed] == "RELEASING"

    # Started again, the device asks the printer what became of the job.
    log = tmp_path / "reconcile.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(device.cmd(), cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
                                text=True, env=device.env)
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("WAITING"):
                # Reconciliation found the printer still printing it; now let it finish.
                printer.hold_file.unlink(missing_ok=True)
        assert proc.wait(timeout=60) == 0, "\n".join(lines) + log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert lines[-1] == "DONE", lines
    assert ("WAITING" in lines) == (die_at == "printer-holds-it"), lines

    after = states(world, jobs)
    assert after[doomed] == SCENARIOS[die_at], (lines, after)
    assert set(after.values()) <= {"PRINTED", "HELD"}, after
    paper = on_paper(printer, device, docs)
    for job_id in jobs:  # the cloud's record, the paper and the audit agree
        assert paper[job_id] == (after[job_id] == "PRINTED"), (job_id, after, paper)
        assert audited(world, "printed", job_id) == paper[job_id], job_id

    # What went back to HELD is released again: every job on paper once, recorded once.
    back = [j for j in jobs if after[j] == "HELD"]
    if back:
        rerun = device.run("--jobs", ",".join(back))
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert states(world, jobs) == dict.fromkeys(jobs, "PRINTED")
    assert on_paper(printer, device, docs) == Counter(jobs)
    assert {j: audited(world, "printed", j) for j in jobs} == dict.fromkeys(jobs, 1)


def wait_for_processing(printer: IppEvePrinter, marker: str, timeout: float = 30.0) -> bool:
    """Until the printer reports a job whose name holds ``marker`` as processing (state 5)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in printer.spooled("*"):
            if marker in path.name:
                attrs = printer.job_attributes(int(path.name.split("-", 1)[0]))
                if attrs is not None and attrs.first(GroupTag.JOB, "job-state") == 5:
                    return True
        time.sleep(0.02)
    return False
