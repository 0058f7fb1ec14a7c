"""Conformance with a tool nobody here wrote: the third-party ``smpmgr`` CLI manages the
emulated reader on its pty (issue 11): lists images, uploads one, marks it for test, resets,
confirms it, and echoes.

smpmgr runs as its own process, with its defaults (legacy serial sizing: two 128-byte lines a
message, so the device reassembles multi-line frames), exactly as a technician would run it.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_stubs.mcuboot import Bootloader, factory_flash
from firmware_stubs.smp.reader_device import ReaderDevice
from firmware_stubs.smp.server import DeviceIdentity
from provisioning import image as img
from provisioning import keys as keymod

MODEL = "reader-em4100"


def smpmgr(port: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "smpmgr", "--port", port, "--timeout", "3",
                           *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def device(tmp_path: Path) -> Iterator[tuple[ReaderDevice, bytes, Path]]:
    key = keymod.generate()
    rng = random.Random(3)
    v1 = img.build(rng.randbytes(6000), version="1.0.0", model=MODEL, security_counter=1,
                   key=key)
    v2 = img.build(rng.randbytes(9000), version="1.1.0", model=MODEL, security_counter=1,
                   key=key)
    path = tmp_path / "v2.img"
    path.write_bytes(v2)
    der = keymod.public_der(key)
    boot = Bootloader(factory_flash(tmp_path / "flash.bin", v1), model=MODEL,
                      trusted_keys=[der])
    with ReaderDevice(boot, DeviceIdentity(MODEL, (keymod.key_id(key),), (der,))) as dev:
        yield dev, v2, path


def images(listing: str) -> list[tuple[int, str, bool, bool, bool]]:
    """(slot, version, pending, confirmed, active) of each ImageState smpmgr printed."""
    out = []
    for m in re.finditer(r"ImageState\((.*?)\)\s*$", listing, re.M | re.S):
        text = " ".join(m.group(1).split())
        slot = int(re.search(r"slot=(\d+)", text).group(1))  # type: ignore[union-attr]
        version = re.search(r"version='([^']*)'", text).group(1)  # type: ignore[union-attr]
        flags = tuple(f"{name}=True" in text for name in ("pending", "confirmed", "active"))
        out.append((slot, version, *flags))
    return sorted(out)  # type: ignore[arg-type]


def test_smpmgr_lists_uploads_tests_resets_and_confirms(device) -> None:
    dev, v2, path = device
    port = dev.device
    assert "mfd" in smpmgr(port, "os", "echo", "mfd")
    assert images(smpmgr(port, "image", "state-read")) == [(0, "1.0.0", False, True, True)]

    smpmgr(port, "image", "upload", str(path))
    assert dev.upload_bytes == len(v2)
    listed = images(smpmgr(port, "image", "state-read"))
    assert listed == [(0, "1.0.0", False, True, True), (1, "1.1.0", False, False, False)]

    new_hash = img.inspect(v2).hash.hex()
    smpmgr(port, "image", "state-write", new_hash)
    assert images(smpmgr(port, "image", "state-read"))[1] == (1, "1.1.0", True, False, False)

    smpmgr(port, "os", "reset")
    deadline = time.monotonic() + 10
    while dev.boots < 2:  # the positive signal: the device has booted again
        assert time.monotonic() < deadline, "the reset did not reboot the device"
        time.sleep(0.02)
    assert images(smpmgr(port, "image", "state-read"))[0] == (0, "1.1.0", False, False, True)

    smpmgr(port, "image", "state-write", "--confirm")
    assert images(smpmgr(port, "image", "state-read"))[0] == (0, "1.1.0", False, True, True)
    slot = dev.bootloader.running()
    assert slot is not None and slot.version == "1.1.0" and slot.confirmed
