"""``mfd doctor [DIR]``: check a device end to end; each finding says what to fix.

``mfd doctor [DIR|device.toml] [--portal URL] [--tap S] [--smp PORT ...] [--json]``
    Runs the checks of provisioning/doctor.py: configuration, broker reachable, TLS verified,
    credentials accepted, ACL confines the device, clock skew (against the portal's Date),
    config version in sync with the cloud, readers present (and reading, with --tap), engine
    state, firmware and slots (with --smp). Exit 0 when nothing failed (warnings allowed), 1
    when a check failed, 2 on a usage error. ``--json``: one object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from protocol.engine import EngineState


class _DeviceSide:
    """The device app's loader and engine registry, as provisioning.doctor asks for them."""

    def __init__(self) -> None:
        from device_app.runner import MANAGED_FILE
        from firmware_stubs.mfd_controller import register_emulator

        # As mfd device does: a bench device on the emulated engine is asked like any other.
        register_emulator()
        self.managed_file = MANAGED_FILE

    def load_config(self, path: Path) -> Any:
        from device_app.config import load_config

        return load_config(path)

    def load_credentials(self, path: str) -> tuple[str, str]:
        from device_app.config import load_credentials

        return load_credentials(path)

    def engine_state(self, cfg: Any) -> EngineState:
        from device_app.engines.registry import open_engine

        engine = open_engine(cfg.engine)
        try:
            return engine.state()
        finally:
            close = getattr(engine, "close", None)
            if close is not None:
                close()


def cmd_doctor(args: argparse.Namespace) -> int:
    from provisioning.doctor import DoctorOptions, Status, diagnose

    options = DoctorOptions(portal=args.portal or "", tap_s=args.tap,
                            smp_ports=tuple(args.smp), timeout_s=args.timeout)
    report = diagnose(Path(args.dir), _DeviceSide(), options,
                      tap_sink=lambda text: print(text, file=sys.stderr))
    if args.json:
        print(json.dumps(report.to_json()))
        return report.exit_code
    marks = {Status.OK: "ok  ", Status.WARN: "WARN", Status.FAIL: "FAIL"}
    print(f"mfd doctor: {report.device_id or '?'} ({report.config})")
    for check in report.checks:
        print(f"  {marks[check.status]}  {check.name}: {check.finding}")
        if check.status is not Status.OK and check.fix:
            print(f"        fix: {check.fix}")
    failed = sum(c.status is Status.FAIL for c in report.checks)
    print("all checks passed" if report.ok else f"{failed} check(s) failed")
    return report.exit_code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="check a device: broker, TLS, credentials, ACL, clock, "
                       "config version, readers, engine, firmware; each finding says what to "
                       "fix", description="Check a device end to end (docs/provision.md).")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR",
                   help="the device's configuration directory or its device.toml (default: .)")
    p.add_argument("--portal", metavar="URL", help="the cloud's portal: the clock to compare "
                   "with (its Date header)")
    p.add_argument("--tap", type=float, default=0.0, metavar="S",
                   help="wait S seconds on each reader for a badge")
    p.add_argument("--smp", action="append", default=[], metavar="PORT",
                   help="the device's SMP port (serial path or udp:HOST:PORT): firmware "
                        "versions and slots, read only (repeatable)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for each answer (5)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=cmd_doctor)
