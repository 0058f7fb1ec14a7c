"""``mfd flash``: put a signed image on readers and panels over SMP, many at once (issue 11).

``mfd flash IMAGE --port P [--port P2 ...] [--key KEY.pub] [--baud B] [--set NAME=VALUE ...]
[--dry-run] [--json]``; ``mfd flash --settings-only --port P --set NAME=VALUE ...``
    Checks the image (whole, untampered, signed), then on every port at once: connects,
    negotiates the message size, skips a device that runs this image already, refuses a wrong
    model, an untrusted key or a downgrade before sending a byte, uploads (resuming what the
    device already holds), verifies the hash the device reports, test-boots, waits for the
    device, and confirms, or reports the rollback. What each step does: provisioning/flash.py.
    On a serial port the baud rate is found first: ``--baud`` (if given), then 921600, 460800,
    230400, 115200, a short probe each; the rate used is in the progress line and the JSON.
    ``--set NAME=VALUE`` (repeat) writes settings after the update (or a skip), commits and
    saves them; with ``--settings-only`` no image is given and only the settings are written.

    Progress goes to stderr, one line per device (bytes, rate, ETA); the summary table, or with
    ``--json`` one JSON object, to stdout. Each device's outcome (not a dry run's) is appended
    to the fleet ledger (``--ledger PATH``, ``--who NAME``; ``mfd ledger`` shows it). Exit 0
    when every device is updated, skipped or (dry run) ready; 1 otherwise, or when the image
    itself is refused (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mfdkit.cli.common import EXIT_FAILED
from protocol.errors import ConfigError, MfdError

if TYPE_CHECKING:  # smpclient is imported when the command runs, not when mfd starts
    from provisioning.flash import DeviceResult, Progress

_PROG = "mfd flash"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("flash", help="flash a signed image onto devices over SMP, many at once",
                       description="Upload a signed MCUboot image to every --port at once, "
                                   "test-boot it and confirm it, or report the rollback.")
    p.add_argument("image", metavar="IMAGE", type=Path, nargs="?",
                   help="the signed image (mfd image sign); none with --settings-only")
    p.add_argument("--port", action="append", required=True, metavar="PORT",
                   help="a device's serial port, e.g. /dev/ttyACM0, or udp:HOST:PORT for a "
                        "device on the network (repeat for more devices)")
    p.add_argument("--key", action="append", default=[], metavar="KEY.pub", type=Path,
                   help="a public key the image must be signed by (repeat for several); "
                        "needed for devices that do not report the keys they trust")
    p.add_argument("--baud", type=int, metavar="RATE",
                   help="the serial ports' baud rate, tried first; if the device does not "
                        "answer at it, 921600, 460800, 230400 and 115200 are tried (default: "
                        "that list, fastest first)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="set",
                   help="a setting to write, commit and save after the update, e.g. "
                        "reader/format=hex (repeat for more; docs/flash.md lists them)")
    p.add_argument("--settings-only", action="store_true",
                   help="no image: only write, commit and save the --set settings")
    p.add_argument("--mtu", type=int, metavar="BYTES",
                   help="the device's SMP buffer size, when it does not report it")
    p.add_argument("--timeout", type=float, default=2.5, metavar="S",
                   help="seconds to wait for each reply before retrying (2.5)")
    p.add_argument("--retries", type=int, default=4, help="retries per request (4)")
    p.add_argument("--boot-timeout", type=float, default=30.0, metavar="S",
                   help="seconds for a device to come back after its test reset (30)")
    p.add_argument("--dry-run", action="store_true",
                   help="connect and do every check, send nothing")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--ledger", type=Path, metavar="PATH",
                   help="the fleet ledger to append each device's outcome to (default: "
                        "$MFD_LEDGER, else $XDG_DATA_HOME/mfdkit/ledger.jsonl)")
    p.add_argument("--who", metavar="NAME",
                   help="who flashes, for the ledger (default: the OS user)")
    p.set_defaults(func=cmd_flash)


def cmd_flash(args: argparse.Namespace) -> int:
    from provisioning import flash as fl
    from provisioning import keys as keymod
    from provisioning.ledger import Ledger

    settings = _parse_settings(args.set)
    if args.settings_only:
        if args.image is not None or not settings:
            raise ConfigError("--settings-only takes no IMAGE and needs at least one --set "
                              "NAME=VALUE")
    elif args.image is None:
        raise ConfigError("give the IMAGE to flash, or --settings-only with --set NAME=VALUE")
    if not getattr(args, "debug", False):
        # smpclient logs every timeout it meets; ours are retried and summed up per device.
        logging.getLogger("smpclient").setLevel(logging.CRITICAL)
    if args.timeout <= 0 or args.retries < 0 or (args.baud is not None and args.baud <= 0) \
            or args.boot_timeout <= 0:
        raise ConfigError("--timeout, --baud and --boot-timeout must be above 0, --retries 0 "
                          "or more")
    if args.settings_only:
        return _settings_only(args, settings)
    image_path: Path = vars(args)["image"]  # given: checked above
    try:
        keys = tuple(keymod.load_trusted([str(k) for k in args.key]))
        image = fl.load_image(image_path, keys)
    except MfdError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": {"code": exc.code,
                                                     "message": exc.message}}))
            return EXIT_FAILED
        raise
    opts = fl.FlashOptions(dry_run=args.dry_run, keys=keys, baud=args.baud,
                           timeout_s=args.timeout, retries=args.retries, mtu=args.mtu,
                           boot_timeout_s=args.boot_timeout, settings=settings)
    info = image.info
    if not args.json:
        print(f"{_PROG}: {image_path.name}: {info.model} {info.version}, {len(image.data)} "
              f"bytes, key {info.key_id}, hash {info.hash.hex()[:16]}; "
              f"{len(args.port)} device(s){' (dry run)' if args.dry_run else ''}",
              file=sys.stderr)
    ledger = Ledger(args.ledger)
    if not args.dry_run:
        ledger.check_writable()  # before a device is touched, not after it was flashed
    board = ProgressBoard(args.port, sys.stderr)
    started = time.monotonic()
    results = fl.flash(args.port, image, opts, board.update, ledger=ledger,
                       who=args.who or "")
    board.finish()
    ok = all(r.outcome in fl.OK_OUTCOMES for r in results)
    if args.json:
        print(json.dumps({"ok": ok, "image": {"path": str(args.image), **info.to_json()},
                          "dry_run": args.dry_run,
                          "seconds": round(time.monotonic() - started, 3),
                          "ledger": str(ledger.path),
                          "devices": [r.to_json() for r in results]}))
    else:
        print_table(results, sys.stdout)
    return 0 if ok else EXIT_FAILED


def _parse_settings(items: list[str]) -> tuple[tuple[str, bytes], ...]:
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--set {item!r}: write it as NAME=VALUE, e.g. reader/format=hex")
        out.append((name, value.encode()))
    return tuple(out)


def _settings_only(args: argparse.Namespace, settings: tuple[tuple[str, bytes], ...]) -> int:
    from provisioning import flash as fl

    opts = fl.FlashOptions(baud=args.baud, timeout_s=args.timeout, retries=args.retries,
                           mtu=args.mtu, settings=settings)
    board = ProgressBoard(args.port, sys.stderr)
    started = time.monotonic()
    results = fl.flash(args.port, None, opts, board.update)
    ok = all(r.outcome in fl.OK_OUTCOMES for r in results)
    if args.json:
        print(json.dumps({"ok": ok, "image": None, "dry_run": False,
                          "seconds": round(time.monotonic() - started, 3),
                          "devices": [r.to_json() for r in results]}))
    else:
        print_table(results, sys.stdout)
    return 0 if ok else EXIT_FAILED


def _size(n: float) -> str:
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n:.0f} B"


class ProgressBoard:
    """One line per device on stderr. On a terminal the lines are redrawn in place; elsewhere
    (a log, a pipe) a line is printed when a device changes phase and every quarter of its
    upload, so the log stays short."""

    def __init__(self, ports: list[str], out: TextIO) -> None:
        self.ports = ports
        self.out = out
        self.tty = out.isatty()
        self.lines = {p: f"{p}: waiting" for p in ports}
        self._last: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()  # asyncio calls it from one thread; a library may not
        self._drawn = False

    def update(self, p: Progress) -> None:
        pct = 100 * p.done // p.total if p.total else 0
        text = f"{p.port}: {p.phase:<7} {_size(p.done):>10} / {_size(p.total)} {pct:3d}%"
        if p.rate:
            text += f"  {_size(p.rate)}/s"
        if p.eta_s is not None:
            text += f"  ETA {p.eta_s:4.0f} s"
        if p.baud:
            text += f"  {p.baud} baud"
        with self._lock:
            self.lines[p.port] = text
            if self.tty:
                self._redraw()
                return
            key = (p.phase, pct // 25)
            if self._last.get(p.port) != key:
                self._last[p.port] = key
                print(text, file=self.out, flush=True)

    def _redraw(self) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{len(self.ports)}F")  # back to the first line
        for port in self.ports:
            self.out.write("\x1b[2K" + self.lines[port] + "\n")
        self.out.flush()
        self._drawn = True

    def finish(self) -> None:
        pass


def print_table(results: list[DeviceResult], out: TextIO) -> None:
    rows = [("PORT", "OUTCOME", "VERSION", "SENT", "RATE", "BAUD", "TIME", "DETAIL")]
    for r in results:
        version = f"{r.from_version or '-'} -> {r.to_version or '-'}"
        rate = f"{_size(r.rate)}/s" if r.rate else "-"
        sent = _size(r.bytes_sent) + (f" (resumed at {_size(r.resumed_from)})"
                                      if r.resumed_from else "")
        baud = str(r.baud) if r.baud else "-"
        rows.append((r.port, r.outcome, version, sent, rate, baud, f"{r.seconds:.1f} s",
                     r.message))
    widths = [max(len(row[i]) for row in rows) for i in range(7)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:7], widths, strict=True)) + "  "
              + row[7], file=out)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    print(", ".join(f"{n} {o}" for o, n in sorted(counts.items())), file=out)
