"""``mfd emulate``: emulated devices to rehearse on, without hardware (issue 11).

``mfd emulate reader [--flash FILE] [--image IMG] [--model M] --trust KEY.pub [--baud N]``
    A card reader with an MCUboot bootloader (firmware_stubs/mcuboot) on a new pseudo-terminal,
    managed over SMP's serial transport (firmware_stubs/smp). Prints where to reach it
    (``port:``, the SMP line; ``badges:``, the pty its badge reads come out on, as EM4100
    frames), its model, the key ids it trusts and the image it runs, then runs until Ctrl-C or
    SIGTERM. ``--flash`` keeps the flash in FILE across runs (created erased if missing, or
    with ``--image`` in its primary slot); without it the flash is a temporary file.
    ``--baud`` paces the line as a UART at that rate would (0: as fast as the pty goes).

``mfd emulate panel [--host H] [--port 1337] [--flash FILE] [--image IMG] [--model M]
--trust KEY.pub [--broker URL] [--device-id ID]``
    A copier panel whose app bundle sits in MCUboot's A/B slots, managed over SMP's UDP
    transport (firmware_stubs/smp/panel_device.py). After a test boot the panel starts the new
    app and confirms it *itself* once the app is healthy (with ``--broker``: the real device app,
    connected to that broker), or rolls back by itself after ``--attempts`` failed starts or
    ``--trial-deadline`` seconds. Prints ``address: udp:HOST:PORT`` (what ``mfd flash --port``
    takes; ``smpmgr --ip HOST`` reaches port 1337 only), model, trusted key ids and the running
    bundle, then runs until Ctrl-C or SIGTERM. The boot counter is kept in FILE.bootcount
    beside ``--flash``. Without ``--broker`` the app is a stand-in, healthy once started.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mfdkit.cli.common import StopSignals
from protocol.errors import ConfigError

if TYPE_CHECKING:
    from firmware_stubs.mcuboot import Flash
    from firmware_stubs.smp.panel_device import AppHandle

_PROG = "mfd emulate reader"
_PANEL = "mfd emulate panel"
DEFAULT_MODEL = "reader-em4100"
PANEL_MODEL = "panel-mfd"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("emulate", help="run an emulated device to rehearse on (a reader with "
                       "a bootloader, managed over SMP)",
                       description="Emulated devices that any SMP tool can manage.")
    kinds = p.add_subparsers(dest="kind", metavar="DEVICE", required=True)
    r = kinds.add_parser("reader", help="a card reader with MCUboot on a pty, over SMP",
                         description="A card reader with an MCUboot bootloader on a new "
                                     "pseudo-terminal, speaking SMP over the serial transport.")
    _add_flash_options(r, device="reader", image="image", images="images",
                       model=DEFAULT_MODEL,
                       flash="the flash, kept across runs (created if missing); default: a "
                             "temporary file")
    r.add_argument("--baud", type=int, default=115200,
                   help="pace the line at this baud rate, 8N1 (default 115200; 0: no pacing)")
    r.add_argument("--buf-size", type=int, default=2048, metavar="BYTES",
                   help="the SMP reassembly buffer it advertises (default 2048)")
    r.set_defaults(func=cmd_reader)

    p = kinds.add_parser("panel", help="a copier panel with A/B app slots, over SMP on UDP",
                         description="A copier panel whose app bundle is an MCUboot image in "
                                     "A/B slots, speaking SMP over UDP; it confirms an update "
                                     "itself once the new app is healthy, or rolls back.")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=1337,
                   help="the UDP port (default 1337, the only one smpmgr --ip reaches; 0: any)")
    _add_flash_options(p, device="panel", image="app bundle", images="bundles",
                       model=PANEL_MODEL,
                       flash="the flash, kept across runs with FILE.bootcount beside it "
                             "(created if missing); default: temporary files")
    p.add_argument("--broker", metavar="URL",
                   help="run the real device app against this broker, mqtt://USER:PASS@HOST:PORT "
                        "(its health check: connected); default: a stand-in app")
    p.add_argument("--device-id", metavar="ID",
                   help="the device app's id (default: the broker URL's user, else copier-1)")
    p.add_argument("--attempts", type=int, default=3,
                   help="starts of a new bundle before it is rolled back (3)")
    p.add_argument("--health-timeout", type=float, default=10.0, metavar="S",
                   help="seconds for one start to pass its health check (10)")
    # Below mfd flash's --boot-timeout default (30 s), so the tool sees the decision.
    p.add_argument("--trial-deadline", type=float, default=25.0, metavar="S",
                   help="seconds for the whole trial, all starts together (25)")
    p.set_defaults(func=cmd_panel)


def _add_flash_options(p: argparse.ArgumentParser, *, device: str, image: str, images: str,
                       model: str, flash: str) -> None:
    """The options every emulated device with a bootloader takes: its flash, the image a new
    flash starts with, its model and the keys it trusts (``device`` and ``image`` name what it
    is and what it boots, in the help)."""
    p.add_argument("--flash", metavar="FILE", type=Path, help=flash)
    p.add_argument("--image", metavar="IMG", type=Path,
                   help=f"a signed {image} for the primary slot of a new flash file")
    p.add_argument("--model", default=model,
                   help=f"the model the {device} is, as {images} name it (default {model})")
    p.add_argument("--trust", metavar="KEY.pub", action="append", type=Path, required=True,
                   help="a public key the bootloader trusts (repeat for several)")


def _trusted(args: argparse.Namespace) -> tuple[list[bytes], tuple[str, ...]]:
    """The ``--trust`` keys as the bootloader takes them (DER) and their key ids."""
    from provisioning import keys as keymod

    trusted = keymod.load_trusted([str(p) for p in args.trust])
    return [keymod.public_der(k) for k in trusted], tuple(keymod.key_id(k) for k in trusted)


def _flash_path(args: argparse.Namespace, prefix: str
                ) -> tuple[Path, tempfile.TemporaryDirectory[str] | None]:
    """Where the flash lives: ``--flash``, else a file in a new temporary directory (also
    returned, for the caller to clean up once the device is off)."""
    if args.flash is not None:
        return args.flash, None
    temp_dir = tempfile.TemporaryDirectory(prefix=prefix)
    return Path(temp_dir.name) / "flash.bin", temp_dir


def _print_device(model: str, key_ids: tuple[str, ...], running: str | None, path: Path,
                  temp_dir: tempfile.TemporaryDirectory[str] | None) -> None:
    """What every emulated device says about itself on start, one ``key: value`` a line (tools
    and the docs read them)."""
    print(f"model: {model}", flush=True)
    print(f"trusts: {', '.join(key_ids)}", flush=True)
    print(f"running: {running or 'no bootable image'}", flush=True)
    print(f"flash: {path if temp_dir is None else 'temporary'}", flush=True)


def _powered_off(prog: str, boots: int, running: str | None,
                 temp_dir: tempfile.TemporaryDirectory[str] | None, *files: Flash) -> int:
    """Once the device is off: its flash files closed, a temporary flash removed, and its last
    word on stderr (how often it booted, what it ran last). The command's exit status."""
    for file in files:
        file.close()
    if temp_dir is not None:
        temp_dir.cleanup()
    print(f"{prog}: stopped ({boots} boot(s), running {running or 'nothing'})", file=sys.stderr)
    return 0


def _open_flash(path: Path, image_path: Path | None, prog: str) -> Flash:
    """The flash file at ``path``: new with ``image_path`` in its primary slot, as it is, or
    new and erased."""
    from firmware_stubs.mcuboot import Flash, FlashError, factory_flash
    from firmware_stubs.mcuboot.factory import DEFAULT_SLOT_SECTORS
    from firmware_stubs.mcuboot.flash import DEFAULT_SECTOR
    from firmware_stubs.mcuboot.layout import Layout

    try:
        if image_path is not None and path.exists():
            raise ConfigError(f"{path} exists: --image writes a new flash file only; remove "
                              "it or leave --image out to boot what it holds")
        if image_path is not None:
            try:
                image = image_path.read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read {image_path}: {exc.strerror}") from None
            return factory_flash(path, image)
        if path.exists():
            return Flash(path)
        return Flash.create(path, Layout.flash_size(DEFAULT_SLOT_SECTORS, DEFAULT_SECTOR))
    except (FlashError, OSError) as exc:
        raise ConfigError(f"{prog}: cannot use {path} as the flash: {exc}") from None


class _StandIn:
    """The app without a broker: healthy from its start."""

    def healthy(self) -> bool:
        return True

    def stop(self) -> None:
        pass


class _Offline:
    """The stand-in of a bundle that never reaches its broker."""

    def healthy(self) -> bool:
        return False

    def stop(self) -> None:
        pass


def cmd_panel(args: argparse.Namespace) -> int:
    from firmware_stubs.mcuboot import Bootloader, Flash
    from firmware_stubs.smp import panel_device as pd
    from firmware_stubs.smp.server import DeviceIdentity

    if not 0 <= args.port < 65536 or args.attempts < 1 or args.health_timeout <= 0 \
            or args.trial_deadline <= 0:
        raise ConfigError("--port must be 0..65535, --attempts 1 or more, the timeouts above 0")
    ders, key_ids = _trusted(args)
    identity = DeviceIdentity(args.model, key_ids, tuple(ders), name="mfd-panel",
                              firmware="mfdkit-panel")
    start = _app_for(args)
    path, temp_dir = _flash_path(args, "mfd-panel-")
    flash = _open_flash(path, args.image, _PANEL)
    counter_path = path.with_name(path.name + ".bootcount")
    try:
        counter = Flash(counter_path) if counter_path.exists() else \
            Flash.create(counter_path, flash.sector_size)
    except OSError as exc:
        raise ConfigError(f"{_PANEL}: cannot use {counter_path}: {exc}") from None
    stop = StopSignals(interrupt=False)
    bootloader = Bootloader(flash, model=args.model, trusted_keys=ders)
    try:
        device = pd.PanelDevice(bootloader, identity, pd.marked_app(start), counter,
                                host=args.host, port=args.port, attempts=args.attempts,
                                health_timeout_s=args.health_timeout,
                                trial_deadline_s=args.trial_deadline,
                                settings=_settings_area(path))
    except OSError as exc:
        raise ConfigError(f"{_PANEL}: cannot listen on UDP {args.host}:{args.port}: "
                          f"{exc.strerror}; is another device there? try --port 0") from None
    with device:
        while not device.serving.wait(0.2) and not stop():
            pass  # the first boot may be a trial: its decision comes first
        print(f"address: {device.address}", flush=True)
        _print_device(args.model, key_ids, device.running_version, path, temp_dir)
        app = "the device app" if args.broker else "a stand-in app (no --broker)"
        print(f"{_PANEL}: runs {app}; Ctrl-C to stop", file=sys.stderr, flush=True)
        seen = 0
        while not stop():
            time.sleep(0.2)
            for event in device.events[seen:]:
                print(f"{_PANEL}: {event}", file=sys.stderr, flush=True)
            seen = len(device.events)
        running = device.running_version
    return _powered_off(_PANEL, device.boots, running, temp_dir, flash, counter)


def _app_for(args: argparse.Namespace) -> Callable[[bool], AppHandle]:
    """What the panel starts: the real device app on ``--broker``, else the stand-in."""
    if not args.broker:
        return lambda reachable: _StandIn() if reachable else _Offline()
    from device_app.config import parse_config
    from firmware_stubs.mfd_controller import register_emulator
    from firmware_stubs.smp.panel_device import device_app_starter
    from mqtt_client.endpoint import endpoint

    addr = endpoint(args.broker, key="--broker")
    device_id = args.device_id or addr.username or "copier-1"
    register_emulator()  # the panel's app prints on the emulated engine
    cfg = parse_config({"device": {"id": device_id},
                        "broker": {"url": f"mqtt://{addr.host}:{addr.port}"},
                        "engine": {"kind": "emulator"}})
    return device_app_starter(cfg, addr.password or "")


def cmd_reader(args: argparse.Namespace) -> int:
    from firmware_stubs.mcuboot import Bootloader
    from firmware_stubs.smp.reader_device import ReaderDevice
    from firmware_stubs.smp.server import DeviceIdentity

    if args.baud < 0 or args.buf_size < 64:
        raise ConfigError("--baud must be 0 or more and --buf-size at least 64")
    ders, key_ids = _trusted(args)
    identity = DeviceIdentity(args.model, key_ids, tuple(ders))
    path, temp_dir = _flash_path(args, "mfd-reader-")
    flash = _open_flash(path, args.image, _PROG)
    stop = StopSignals(interrupt=False)
    bootloader = Bootloader(flash, model=args.model, trusted_keys=ders)
    with ReaderDevice(bootloader, identity, baud=args.baud or None,
                      buf_size=args.buf_size, settings=_settings_area(path)) as device:
        print(f"port: {device.device}", flush=True)
        print(f"badges: {device.badge_device}", flush=True)
        _print_device(args.model, key_ids, device.running_version, path, temp_dir)
        print(f"{_PROG}: baud {args.baud or 'unpaced'}; Ctrl-C to stop", file=sys.stderr,
              flush=True)
        while not stop():
            time.sleep(0.2)  # a signal sets the flag; the loop sees it within a tick
        running = device.running_version
    return _powered_off(_PROG, device.boots, running, temp_dir, flash)


def _settings_area(flash_path: Path) -> Flash:
    """The device's settings (SMP group 3) beside its flash file, kept across restarts like
    the images: MCUboot's layout fills the flash file exactly, so they have a file of their own."""
    from firmware_stubs.smp.settings import create_area

    path = flash_path.with_name(flash_path.name + ".settings")
    try:
        return create_area(path)
    except OSError as exc:
        raise ConfigError(f"mfd emulate: cannot use {path}: {exc.strerror or exc}") from None
