"""``mfd sim --fleet N`` as a developer runs it: a small fleet of simulated copiers on private
brokers, cloud workers and a private PostgreSQL, figures while it runs, Ctrl-C, then the
tallies: everything answered, nothing lost or doubled, exit status 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

MFD = [sys.executable, "-m", "mfdkit"]


def test_a_fleet_runs_shows_its_figures_and_stops_cleanly_on_ctrl_c() -> None:
    proc = subprocess.Popen([*MFD, "sim", "--fleet", "40", "--brokers", "2", "--workers", "1",
                             "--badge-period", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        # Figures every 5 s: wait until requests are being answered.
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if "answered" in line and line.split("answered")[1].split()[0] not in ("0",):
                break
        assert any("all 40 copiers connected" in x for x in lines), lines
        assert lines and "answered" in lines[-1], lines
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in its terminal
        rest, err = proc.communicate(timeout=120)
        lines += rest.splitlines()
        assert proc.returncode == 0, lines + err.splitlines()
        summary = "\n".join(lines)
        assert " 0 unanswered" in summary, summary
        assert "lost 0, doubled 0" in summary, summary
        assert "CPU seconds:" in summary and "postgresql" in summary
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_fleet_options_that_mean_nothing_together_are_refused() -> None:
    for args in (["--fleet", "0"], ["--fleet", "10", "--headless"],
                 ["--fleet", "10", "--badge-period", "0"]):
        out = subprocess.run([*MFD, "sim", *args], capture_output=True, text=True, timeout=60,
                             check=False)
        assert out.returncode == 1, (args, out.stderr)
        message = out.stderr.strip()
        assert message.count("\n") == 0, message  # one line
        assert "--fleet" in message or "--badge-period" in message, (args, message)
