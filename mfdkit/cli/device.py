"""``mfd device``: run the panel app on a copier, or register a new device."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mfdkit.cli.common import StopSignals, _secret
from protocol.errors import MfdError


def cmd_device(args: argparse.Namespace) -> int:
    if args.action == "register":
        from device_app.config import engine_choice
        from device_app.runner import register

        if not args.code or not args.portal:
            raise MfdError("register needs --portal URL and --code CODE (from mfd admin "
                           "device-add)", code="config_invalid")
        if not args.engine:
            # No default: a copier that falls back to the emulator prints nothing while the
            # cloud marks its jobs printed.
            raise MfdError("register needs --engine: the printer's URI (ipp://PRINTER/ipp/"
                           "print), socket:PATH, or emulator (prints nothing)",
                           code="config_invalid")
        cfg = register(args.portal, args.code, args.dir, engine=engine_choice(args.engine))
        print(f"registered as {cfg.device_id}; configuration in "
              f"{Path(args.dir) / 'device.toml'}, credentials (owner-only) beside it")
        if cfg.engine.emulated:
            print(_EMULATED.format(cfg.device_id), file=sys.stderr)
        print(f"next: add the readers to device.toml, then run: mfd device --config "
              f"{Path(args.dir) / 'device.toml'}")
        return 0
    # Before anything starts: a stop that arrives while we start up must still be clean.
    stop = StopSignals(interrupt=not args.headless)
    device = _build_device(args)
    if device.cfg.engine.emulated:
        print(_EMULATED.format(device.cfg.device_id), file=sys.stderr)
    device.start()
    app = device.app
    if not device.link.connected:
        print("mfd device: not connected to the print service yet; retrying in the background",
              file=sys.stderr)
    try:
        if args.headless:
            while not stop():
                app.step(0.1)
        else:
            from device_app.panel.window import run_window

            # [ui] brings the window's size and the panel's scale, dpi, orientation and
            # language; full screen takes the display's own size whatever [ui] size says.
            run_window(app, title=device.cfg.device_id,
                       fullscreen=args.fullscreen or (bool(args.config) and device.cfg.fullscreen),
                       should_stop=stop, ui=device.cfg.ui)
    finally:
        device.stop()
    return 0


_EMULATED = ("mfd device: WARNING: {} prints on the EMULATED engine (engine.kind = "
             "\"emulator\"): released jobs are marked printed and no paper comes out")


def _build_device(args: argparse.Namespace) -> Any:
    from device_app.config import engine_choice, parse_config
    from device_app.runner import Device, from_config_file
    from firmware_stubs.mfd_controller import register_emulator

    # `mfd device` offers the emulated engine for a bench (it warns when it runs on it);
    # device_app itself knows only real engines.
    register_emulator()
    if args.config:
        if args.engine:
            raise MfdError("--engine is for register and the options-only form; with "
                           "--config, the engine is [engine] in device.toml",
                           code="config_invalid")
        return from_config_file(args.config)
    if not args.broker or not args.device_id or not args.engine:
        raise MfdError("give --config device.toml, or --broker URL, --device-id ID and "
                       "--engine (ipp://PRINTER/ipp/print, socket:PATH, or emulator)",
                       code="config_invalid")
    engine = engine_choice(args.engine)
    password = _secret(args.password, "MFD_DEVICE_PASSWORD", "device broker password")
    cfg = parse_config({"device": {"id": args.device_id, "name": args.name or ""},
                        "broker": {"url": args.broker},
                        "readers": {"specs": list(args.reader)},
                        "policy": {"idle_timeout": args.idle_timeout},
                        "engine": {"kind": engine.kind, "uri": engine.uri}})
    return Device(cfg, password)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("device", help="run the panel app on a copier (--config device.toml), "
                       "or register a new device (register --portal URL --code CODE)")
    d.add_argument("action", nargs="?", choices=("run", "register"), default="run")
    d.add_argument("--config", metavar="FILE", help="device.toml (from mfd device register)")
    d.add_argument("--portal", metavar="URL", help="register: the cloud's portal URL")
    d.add_argument("--code", help="register: the one-time code from mfd admin device-add")
    d.add_argument("--dir", default=".", help="register: where to write device.toml and "
                   "credentials (default: here)")
    d.add_argument("--engine", metavar="URI|socket:PATH|emulator",
                   help="register (and without --config): the print engine, no default: the "
                   "printer's URI (ipp://PRINTER/ipp/print), an engine socket, or emulator "
                   "(prints nothing: a bench only)")
    d.add_argument("--broker", help="mqtt://host:port (without --config)")
    d.add_argument("--device-id", help="this device's id = its broker username")
    d.add_argument("--password", help="broker password (or set MFD_DEVICE_PASSWORD)")
    d.add_argument("--reader", action="append", default=[], metavar="SPEC",
                   help="reader spec, e.g. serial:/dev/ttyUSB0?family=em4100 (repeatable)")
    d.add_argument("--name", help="name shown on the panel")
    d.add_argument("--idle-timeout", type=float, default=60.0, metavar="S")
    d.add_argument("--fullscreen", action="store_true")
    d.add_argument("--headless", action="store_true", help="no screen (readers only)")
    d.set_defaults(func=cmd_device)
