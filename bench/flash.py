"""Flashing readers over SMP's serial transport at a real baud rate: ``mfd flash`` against the
line's own ceiling, against the third-party ``smpmgr`` with its defaults, and eight readers
at once against one.

Every device is an emulated reader with MCUboot (firmware_stubs/smp/reader_device.py) pacing
its pty as a UART at ``--baud`` (8N1: 10 bit times a byte), so no figure is flattered by a pty
that moves megabytes a second. The image is incompressible (random payload), signed. In one run:

1. **one device**: ``mfd flash IMAGE --port P --json`` (the real command, its own process):
   ``bytes_per_s`` is its upload rate as it reports it (image data over upload time);
   ``one_device_s`` the command's wall time (start-up, check, upload, test boot, confirm).
2. **smpmgr**: ``smpmgr --port P image upload IMAGE`` with smpmgr's defaults, on a fresh
   device: ``smpmgr_bytes_per_s`` is its upload rate measured on the device's side (first to
   last image byte received, so smpmgr's own start-up does not count against it), with its
   chunking (messages, lines per message, bytes on the wire) counted on the line.
3. **eight devices**: ``mfd flash IMAGE --port P1 ... --port P8``: ``eight_devices_s`` its wall
   time.

``ceiling_bytes_per_s``: what the transport can carry of image data at this baud rate:
``baud / 10 * 3/4 * (L - 3) / L`` with ``L`` = 127, the longest line (base64 carries 3 bytes in
4 characters; each line spends 2 bytes on its start marker and 1 on its newline). The SMP
header, CBOR and the 4 bytes of length and CRC of each frame come on top, so no upload
reaches it.

    python -m bench.flash [--baud 115200] [--size 131072] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import report
from firmware_stubs.mcuboot import Bootloader, factory_flash
from firmware_stubs.smp.reader_device import BITS_PER_BYTE, ReaderDevice
from firmware_stubs.smp.serial_framing import DEFAULT_MAX_LINE
from firmware_stubs.smp.server import DeviceIdentity
from provisioning import image as img
from provisioning import keys as keymod

MODEL = "reader-em4100"


class LineTap:
    """Counts lines and bytes going each way on a reader's line (its fault hooks, which return
    the bytes unchanged)."""

    def __init__(self) -> None:
        self.rx_lines = self.tx_lines = self.rx_bytes = self.tx_bytes = 0

    def rx(self, data: bytes) -> bytes:
        self.rx_lines += data.count(b"\n")
        self.rx_bytes += len(data)
        return data

    def tx(self, data: bytes) -> bytes:
        self.tx_lines += data.count(b"\n")
        self.tx_bytes += len(data)
        return data


class Rig:
    def __init__(self, tmp: Path, size: int, baud: int) -> None:
        self.tmp = tmp
        self.baud = baud
        self.key = keymod.generate()
        self.der = keymod.public_der(self.key)
        rng = random.Random(11)
        self.v1 = img.build(rng.randbytes(8_000), version="1.0.0", model=MODEL,
                            security_counter=1, key=self.key)
        self.v2 = img.build(rng.randbytes(size), version="1.1.0", model=MODEL,
                            security_counter=1, key=self.key)
        self.v2_path = tmp / "reader-1.1.0.img"
        self.v2_path.write_bytes(self.v2)
        # Room for the image in a slot (4 KiB sectors, one for the trailer).
        self.slot_sectors = max(64, math.ceil(len(self.v2) / 4096) + 2)
        self.made = 0

    def device(self, tap: LineTap | None = None) -> ReaderDevice:
        self.made += 1
        flash = factory_flash(self.tmp / f"flash{self.made}.bin", self.v1,
                              slot_sectors=self.slot_sectors)
        boot = Bootloader(flash, model=MODEL, trusted_keys=[self.der])
        identity = DeviceIdentity(MODEL, (keymod.key_id(self.key),), (self.der,))
        return ReaderDevice(boot, identity, baud=self.baud,
                            rx_fault=tap.rx if tap else None, tx_fault=tap.tx if tap else None)


@contextmanager
def devices(rig: Rig, n: int) -> Iterator[list[ReaderDevice]]:
    made = [rig.device() for _ in range(n)]
    try:
        yield made
    finally:
        for d in made:
            d.close()


def mfd_flash(rig: Rig, ports: list[str]) -> tuple[float, dict[str, Any]]:
    """Run ``mfd flash`` as a technician does; (wall seconds, its JSON)."""
    argv = [sys.executable, "-m", "mfdkit", "flash", str(rig.v2_path), "--json",
            "--baud", str(rig.baud), "--ledger", str(rig.tmp / "ledger.jsonl")]
    for p in ports:
        argv += ["--port", p]
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - t0
    out: dict[str, Any] = json.loads(done.stdout.splitlines()[-1]) if done.stdout else {}
    if done.returncode != 0 or not out.get("ok"):
        raise SystemExit(f"mfd flash failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return wall, out


def smpmgr_upload(rig: Rig) -> dict[str, Any]:
    """smpmgr's own upload, with its defaults, to a fresh device; timed on the device's side."""
    tap = LineTap()
    dev = rig.device(tap)
    total = len(rig.v2)
    first: list[float] = []
    last: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        # The device's counters, polled: when the first and the last image byte arrived.
        while not stop.is_set():
            now, got = time.perf_counter(), dev.upload_bytes
            if got and not first:
                first.append(now)
            if got >= total:
                last.append(now)
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        rx0, tx0, lines0, req0 = tap.rx_bytes, tap.tx_bytes, tap.rx_lines, dev.upload_requests
        watcher.start()
        t0 = time.perf_counter()
        smpmgr = Path(sys.executable).with_name("smpmgr")
        done = subprocess.run([str(smpmgr), "--port", dev.device, "--baudrate", str(rig.baud),
                               "image", "upload",
                               str(rig.v2_path)], capture_output=True, text=True, timeout=900,
                              check=False, env={**os.environ, "COLUMNS": "200"})
        wall = time.perf_counter() - t0
        stop.set()
        watcher.join(5)
        if done.returncode != 0 or not last:
            raise SystemExit(f"smpmgr upload failed ({done.returncode}): {done.stdout[-2000:]} "
                             f"{done.stderr[-2000:]}")
        requests = dev.upload_requests - req0
        rx, lines = tap.rx_bytes - rx0, tap.rx_lines - lines0
        # (the few other requests of its session, e.g. the parameters, count in too: < 1 %)
        return {"rate": total / (last[0] - first[0]), "wall_s": wall, "requests": requests,
                "data_per_message": total / requests, "wire_per_message": rx / requests,
                "lines_per_message": lines / requests,
                "reply_wire_per_message": (tap.tx_bytes - tx0) / requests}
    finally:
        stop.set()
        dev.close()


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.flash", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baud", type=int, default=115200, help="the readers' line (115200)")
    ap.add_argument("--size", type=int, default=131072,
                    help="random payload bytes in the image (131072)")
    ap.add_argument("--json", action="store_true", help="print one JSON object last")
    args = ap.parse_args()
    if args.baud <= 0 or args.size <= 0:
        ap.error("--baud and --size must be above 0")

    line_bytes_per_s = args.baud / BITS_PER_BYTE
    line = DEFAULT_MAX_LINE
    ceiling = line_bytes_per_s * 3 / 4 * (line - 3) / line
    with tempfile.TemporaryDirectory(prefix="mfd-bench-flash-") as tmp:
        rig = Rig(Path(tmp), args.size, args.baud)
        with devices(rig, 1) as one:
            one_wall, one_out = mfd_flash(rig, [one[0].device])
        [dev1] = one_out["devices"]
        sm = smpmgr_upload(rig)
        with devices(rig, 8) as eight:
            eight_wall, eight_out = mfd_flash(rig, [d.device for d in eight])
    eight_rates = [d["bytes_per_s"] for d in eight_out["devices"]]
    # What smpmgr's chunking allows at best: each message waits for its reply, so a message's
    # request and reply both cross the line before the next one starts.
    sm_best = sm["data_per_message"] / (
        (sm["wire_per_message"] + sm["reply_wire_per_message"]) / line_bytes_per_s)
    rate = float(dev1["bytes_per_s"])
    report("flash", {
        "baud": args.baud,
        "image_bytes": len(rig.v2),
        "ceiling_formula": f"baud/10 * 3/4 * ({line}-3)/{line} (base64; 2-byte marker and "
                           f"newline per {line}-byte line)",
        "ceiling_bytes_per_s": round(ceiling, 1),
        "bytes_per_s": round(rate, 1),
        "of_ceiling": round(rate / ceiling, 3),
        "mtu": dev1["mtu"],
        "smpmgr_bytes_per_s": round(sm["rate"], 1),
        "smpmgr_of_ceiling": round(sm["rate"] / ceiling, 3),
        "vs_smpmgr": round(rate / sm["rate"], 2),
        "smpmgr_upload_messages": sm["requests"],
        "smpmgr_data_per_message": round(sm["data_per_message"], 1),
        "smpmgr_wire_per_message": round(sm["wire_per_message"], 1),
        "smpmgr_lines_per_message": round(sm["lines_per_message"], 2),
        "smpmgr_reply_wire_per_message": round(sm["reply_wire_per_message"], 1),
        "smpmgr_best_bytes_per_s": round(sm_best, 1),
        "smpmgr_wall_s": round(sm["wall_s"], 2),
        "two_x_smpmgr_of_ceiling": round(2 * sm["rate"] / ceiling, 3),
        "one_device_s": round(one_wall, 2),
        "one_device_flash_s": one_out["seconds"],
        "eight_devices_s": round(eight_wall, 2),
        "eight_devices_flash_s": eight_out["seconds"],
        "eight_vs_one": round(eight_wall / one_wall, 3),
        "eight_rate_min_bytes_per_s": min(eight_rates),
        "eight_rate_max_bytes_per_s": max(eight_rates),
    }, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
