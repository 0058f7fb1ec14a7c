"""The `mfd` command as a user runs it: subprocesses, exit codes, stderr, files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

MFD = [sys.executable, "-m", "mfdkit"]
ENV = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MFD, *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV, check=False)


def test_help_lists_every_role() -> None:
    out = run("--help")
    assert out.returncode == 0
    for role in ("sim", "device", "cloud", "admin", "client", "reader"):
        assert role in out.stdout
        sub = run(role, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "usage: mfd " + role in sub.stdout


def test_headless_sim_releases_a_job_and_saves_screenshots(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    out = run("sim", "--headless", "--screenshots", str(shots), "--page-time", "0.05")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert any("held jobs listed" in line for line in lines)
    assert any("engine printed" in line and "verified" in line for line in lines)
    assert any("cloud marks the job PRINTED" in line for line in lines)
    assert any("unknown_card" in line and "Badge not recognised" in line for line in lines)
    assert lines[-1].endswith("unknown badge refused")
    pngs = sorted(shots.glob("*.png"))
    assert len(pngs) >= 5
    assert all(p.stat().st_size > 5_000 for p in pngs)
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and int(entry.name) not in found:
                found.add(int(entry.name))
                frontier.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_the_sim_leaves_no_process_behind(sig: signal.Signals) -> None:
    proc = subprocess.Popen([*MFD, "sim"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "panel window open" in line, line + proc.stderr.read() if proc.stderr else ""
        children = _descendants(proc.pid)
        assert children, "the sim should have started a broker"
        proc.send_signal(sig)
        assert proc.wait(timeout=15) in (0, 130)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(c) for c in children):
            time.sleep(0.05)
        assert not [c for c in children if _alive(c)]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_errors_are_one_line_on_stderr_with_a_non_zero_status(tmp_path: Path) -> None:
    out = run("cloud", "--broker", "http://nowhere", "--store", f"sqlite:///{tmp_path}/c.db",
              "--password", "x")
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0
    assert "mqtt://host:1883" in out.stderr
    out = run("cloud", "--broker", "mqtt://127.0.0.1:1", "--store", "postgres://x")
    assert out.returncode == 1
    assert "MFD_CLOUD_PASSWORD" in out.stderr
    out = run("cloud", "--broker", "mqtt://127.0.0.1:1", "--store", f"sqlite:///{tmp_path}/c.db",
              "--password", "x", "--lanes", "99")
    assert out.returncode == 1
    assert out.stderr.strip() == "mfd cloud: error: --lanes must be between 0 and 64", out.stderr
    out = run("bogus")
    assert out.returncode == 2


def test_admin_and_client_manage_a_store(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/c.db"
    assert run("admin", "--store", store, "init").returncode == 0
    org = run("admin", "--store", store, "org-add", "Acme").stdout.strip()
    assert org.startswith("org_")
    assert run("admin", "--store", store, "user-add", "--org", org, "dana@acme.test",
               "Dana").returncode == 0
    assert run("admin", "--store", store, "card-add", "dana@acme.test", "0001234567"
               ).returncode == 0
    trivial = run("admin", "--store", store, "code-set", "dana@acme.test", "123456")
    assert trivial.returncode == 1 and "too easy to guess" in trivial.stderr
    assert run("admin", "--store", store, "code-set", "dana@acme.test", "840271").returncode == 0
    doc = tmp_path / "memo.pdf"
    doc.write_bytes(b"%PDF-1.4 memo")
    out = run("client", "--store", store, "--user", "dana@acme.test", str(doc), "--pages", "2")
    assert out.returncode == 0, out.stderr
    jobs = run("admin", "--store", store, "jobs").stdout
    assert "memo.pdf" in jobs and "HELD" in jobs
    audit = run("admin", "--store", store, "audit").stdout
    assert "card.add" in audit and "job.submit" in audit
    assert "0001234567" not in audit and "840271" not in audit
    missing = run("client", "--store", store, "--user", "dana@acme.test", str(tmp_path / "no"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_headless_sim_runs_on_the_pip_installed_broker_without_mosquitto() -> None:
    # The test command installs it (extra embedded-broker): missing is a failure, not a skip.
    import iotcore  # noqa: F401
    out = subprocess.run([*MFD, "sim", "--headless", "--page-time", "0.05"], capture_output=True,
                         text=True, timeout=60, check=False, env={**ENV, "MFD_BROKER": "iotcore"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "embedded rumqttd (no ACLs: demo only)" in out.stdout
    assert "cloud marks the job PRINTED" in out.stdout
    assert "no ACLs" in out.stderr


def test_admin_sets_org_policy_and_lifts_locks(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path}/c.db"
    assert run("admin", "--store", store_url, "demo").returncode == 0
    out = run("admin", "--store", store_url, "org-settings", "--org", "org_demo",
              "--hold-hours", "24", "--release-changes", "no")
    assert out.returncode == 0
    assert "hold_hours\t24.0" in out.stdout and "release_changes\tFalse" in out.stdout
    bad = run("admin", "--store", store_url, "org-settings", "--org", "org_demo",
              "--hold-hours", "100")
    assert bad.returncode == 1 and "0.5 to 72 hours" in bad.stderr
    from cloud.storage.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "c.db")
    with store.transaction():
        store.lock("device", "copier-1", time.time() + 900)
    assert store.locked_until("device", "copier-1", time.time()) is not None
    assert run("admin", "--store", store_url, "unlock", "--device", "copier-1").returncode == 0
    assert store.locked_until("device", "copier-1", time.time()) is None
    assert "unlock" in run("admin", "--store", store_url, "audit").stdout
