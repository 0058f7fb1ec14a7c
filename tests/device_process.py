"""The real device in a process of its own, for tests that kill it and start it again
(test_crash_reconcile.py, test_ipp_device.py): its installation, and what the cloud says about
Alice's jobs afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import World

from cloud.demo import DEMO_USERS
from device_app.config import save_credentials

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "crash_device.py"
ALICE = DEMO_USERS[0]


class Device:
    """copier-1 as installed: device.toml naming the broker, a sim reader and the print engine
    (``socket``: the engine server; ``ipp``: a printer), its credentials file, and its journal
    beside them. :meth:`run` runs it (tests/crash_device.py) until its work is done."""

    def __init__(self, world: World, directory: Path, engine_kind: str, engine_uri: str) -> None:
        addr = world.broker.address("copier-1")
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "device.toml"
        self.config.write_text(
            '[device]\nid = "copier-1"\nname = "Copier 1"\n\n'
            f'[broker]\nurl = "mqtt://{addr.host}:{addr.port}"\n\n'
            '[readers]\nspecs = ["sim:badge?lockout=0"]\n\n'
            f'[engine]\nkind = "{engine_kind}"\nuri = "{engine_uri}"\n\n'
            '[files]\ncredentials = "credentials"\njournal = "journal.db"\n')
        save_credentials(directory / "credentials", "copier-1", addr.password or "")
        self.journal = directory / "journal.db"

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, str(RUNNER), str(self.config), *args]

    @property
    def env(self) -> dict[str, str]:
        # The badge by environment, not on a command line others can read.
        # PYTHONPATH: the device imports the checkout under test, whatever an editable
        # install elsewhere points at (as pytest itself does, pyproject's pythonpath).
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, "MFD_CRASH_BADGE": ALICE.badge, "PYTHONPATH": path}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(*args), cwd=ROOT, capture_output=True, text=True,
                              timeout=90, check=False, env=self.env)


def held_jobs(world: World) -> list[str]:
    user = world.store.user_by_email(ALICE.email)
    assert user is not None
    return [j.id for j in world.store.all_jobs("HELD") if j.owner_id == user.id]


def states(world: World, job_ids: list[str]) -> dict[str, str]:
    return {j.id: j.state for j in world.store.jobs(job_ids)}


def audited(world: World, action: str, job_id: str) -> int:
    """How many times the cloud recorded ``action`` for the job."""
    rows = world.store.query_all("SELECT actor FROM audit WHERE action = ? AND subject = ?",
                                 action, f"job:{job_id}")
    assert all(actor == "device:copier-1" for (actor,) in rows), rows
    return len(rows)
