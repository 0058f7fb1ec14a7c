"""``mfd emulate``: emulated devices to rehearse on, without hardware (issue 11).

``mfd emulate reader [--flash FILE] [--image IMG] [--model M] --trust KEY.pub [--baud N]``
    A card reader with an MCUboot bootloader (firmware_stubs/mcuboot) on a new pseudo-terminal,
    managed over SMP's serial transport (firmware_stubs/smp). Prints where to reach it
    (``port:``, the SMP line; ``badges:``, the pty its badge reads come out on, as EM4100
    frames), its model, the key ids it trusts and the image it runs, then runs until Ctrl-C or
    SIGTERM. ``--flash`` keeps the flash in FILE across runs (created erased if missing, or
    with ``--image`` in its primary slot); without it the flash is a temporary file.
    ``--baud`` paces the line as a UART at that rate would (0: as fast as the pty goes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from mfdkit.cli.common import StopSignals
from protocol.errors import ConfigError

_PROG = "mfd emulate reader"
DEFAULT_MODEL = "reader-em4100"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("emulate", help="run an emulated device to rehearse on (a reader with "
                       "a bootloader, managed over SMP)",
                       description="Emulated devices that any SMP tool can manage.")
    kinds = p.add_subparsers(dest="kind", metavar="DEVICE", required=True)
    r = kinds.add_parser("reader", help="a card reader with MCUboot on a pty, over SMP",
                         description="A card reader with an MCUboot bootloader on a new "
                                     "pseudo-terminal, speaking SMP over the serial transport.")
    r.add_argument("--flash", metavar="FILE", type=Path,
                   help="the flash, kept across runs (created if missing); default: a "
                        "temporary file")
    r.add_argument("--image", metavar="IMG", type=Path,
                   help="a signed image for the primary slot of a new flash file")
    r.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"the model the reader is, as images name it (default {DEFAULT_MODEL})")
    r.add_argument("--trust", metavar="KEY.pub", action="append", type=Path, required=True,
                   help="a public key the bootloader trusts (repeat for several)")
    r.add_argument("--baud", type=int, default=115200,
                   help="pace the line at this baud rate, 8N1 (default 115200; 0: no pacing)")
    r.add_argument("--buf-size", type=int, default=2048, metavar="BYTES",
                   help="the SMP reassembly buffer it advertises (default 2048)")
    r.set_defaults(func=cmd_reader)


def cmd_reader(args: argparse.Namespace) -> int:
    from firmware_stubs.mcuboot import Bootloader, Flash, FlashError, factory_flash
    from firmware_stubs.mcuboot.factory import DEFAULT_SLOT_SECTORS
    from firmware_stubs.mcuboot.flash import DEFAULT_SECTOR
    from firmware_stubs.mcuboot.layout import Layout
    from firmware_stubs.smp.reader_device import ReaderDevice
    from firmware_stubs.smp.server import DeviceIdentity
    from provisioning import keys as keymod

    if args.baud < 0 or args.buf_size < 64:
        raise ConfigError("--baud must be 0 or more and --buf-size at least 64")
    trusted = keymod.load_trusted([str(p) for p in args.trust])
    ders = [keymod.public_der(k) for k in trusted]
    identity = DeviceIdentity(args.model, tuple(keymod.key_id(k) for k in trusted),
                              tuple(ders))
    temp_dir = None
    path = args.flash
    if path is None:
        temp_dir = tempfile.TemporaryDirectory(prefix="mfd-reader-")
        path = Path(temp_dir.name) / "flash.bin"
    try:
        if args.image is not None and path.exists():
            raise ConfigError(f"{path} exists: --image writes a new flash file only; remove "
                              "it or leave --image out to boot what it holds")
        if args.image is not None:
            try:
                image = args.image.read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read {args.image}: {exc.strerror}") from None
            flash = factory_flash(path, image)
        elif path.exists():
            flash = Flash(path)
        else:
            flash = Flash.create(path, Layout.flash_size(DEFAULT_SLOT_SECTORS, DEFAULT_SECTOR))
    except (FlashError, OSError) as exc:
        raise ConfigError(f"{_PROG}: cannot use {path} as the flash: {exc}") from None
    stop = StopSignals(interrupt=False)
    bootloader = Bootloader(flash, model=args.model, trusted_keys=ders)
    with ReaderDevice(bootloader, identity, baud=args.baud or None,
                      buf_size=args.buf_size) as device:
        print(f"port: {device.device}", flush=True)
        print(f"badges: {device.badge_device}", flush=True)
        print(f"model: {args.model}", flush=True)
        print(f"trusts: {', '.join(identity.key_ids)}", flush=True)
        print(f"running: {device.running_version or 'no bootable image'}", flush=True)
        print(f"flash: {path if temp_dir is None else 'temporary'}", flush=True)
        print(f"{_PROG}: baud {args.baud or 'unpaced'}; Ctrl-C to stop", file=sys.stderr,
              flush=True)
        while not stop():
            time.sleep(0.2)  # a signal sets the flag; the loop sees it within a tick
        running = device.running_version
    flash.close()
    if temp_dir is not None:
        temp_dir.cleanup()
    print(f"{_PROG}: stopped ({device.boots} boot(s), running {running or 'nothing'})",
          file=sys.stderr)
    return 0
