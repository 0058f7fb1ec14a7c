"""The device app at rest: CPU and resident memory of the device process, panel drawn at a size.

The simulator's world (a private Mosquitto, the cloud worker, an emulated EM4100 reader on a
pty) runs in this process; the device runs in a process of its own, built by its composition
root (device_app.runner.from_config_file) from the device.toml and credentials the world wrote,
with the pygame panel (device_app.panel.window.run_window) on SDL's dummy video driver at
``--size``. A demo user badges in and out once (so the job list has been drawn), then the panel
sits idle on "Tap your badge"; over ``--seconds`` this process reads the device process's CPU
time (/proc/PID/stat) and, at the end, its resident set size (/proc/PID/status, VmRSS; VmHWM is
the peak). Nothing of the broker or the cloud is counted.

    python -m bench.device_idle [--seconds 20] [--size 800x480] [--json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from bench.common import parse_size, report

ROOT = Path(__file__).resolve().parent.parent


def _proc_status(pid: int, key: str) -> float:
    """A ``kB`` line of /proc/PID/status, in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
        fields = f.read().rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _child(config: str, size: tuple[int, int]) -> int:
    """The device process: the real composition root and the panel loop, until stdin closes.

    Prints ``ready`` once its reader listens and ``idle`` once it is back on the idle screen
    after one sign-in (the parent presents the badge in between)."""
    from device_app.panel.window import run_window
    from device_app.runner import from_config_file
    from device_app.session import State
    from device_app.view import Action
    from firmware_stubs.mfd_controller import register_emulator

    register_emulator()  # device.toml names the emulated engine, as `mfd device` allows
    device = from_config_file(config)
    device.start()
    app = device.app
    stop = threading.Event()

    def scenario() -> None:
        print("ready", flush=True)
        deadline = time.monotonic() + 10
        while app.machine.state is not State.JOBS and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # let the list be drawn
        app.tap(Action.LOGOUT)
        while app.machine.state is not State.IDLE and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(2.0)  # settle on the idle screen
        print("idle" if time.monotonic() < deadline else "no sign-in", flush=True)
        sys.stdin.read()  # the parent closes it to end the run
        stop.set()

    threading.Thread(target=scenario, daemon=True).start()
    try:
        run_window(app, title="bench", size=size, should_stop=stop.is_set)
    finally:
        device.stop()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.device_idle", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--size", type=parse_size, default=(800, 480), metavar="WxH",
                    help="display size of the panel (default 800x480)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", metavar="DEVICE_TOML", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(args.child, args.size)

    from cloud.demo import DEMO_USERS
    from simulator.world import SimWorld

    size = f"{args.size[0]}x{args.size[1]}"
    with SimWorld() as world:
        assert world.device and world.badge and world.workdir
        # The world's own device steps aside: the measured one uses its config and identity.
        world.device.stop()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.device_idle", "--child",
             str(world.workdir / "device" / "device.toml"), "--size", size],
            cwd=ROOT, env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert child.stdin and child.stdout
        try:
            if child.stdout.readline().strip() != "ready":
                raise SystemExit("device_idle: the device process did not start")
            time.sleep(0.5)  # its reader opened the port (pyserial drops what came before)
            world.badge.present(DEMO_USERS[0].badge_tag)
            if child.stdout.readline().strip() != "idle":
                raise SystemExit("device_idle: the device did not sign in and out")
            t0, c0 = time.monotonic(), _cpu_seconds(child.pid)
            time.sleep(args.seconds)
            t1, c1 = time.monotonic(), _cpu_seconds(child.pid)
            figures = {
                "size": size,
                "cpu_percent": round(100 * (c1 - c0) / (t1 - t0), 2),
                "rss_mb": round(_proc_status(child.pid, "VmRSS"), 1),
                "peak_rss_mb": round(_proc_status(child.pid, "VmHWM"), 1),
                "seconds": round(t1 - t0, 1),
            }
            child.stdin.close()
            child.wait(15)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    report("device_idle", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
