"""Conformance with a tool nobody here wrote: the third-party ``smpmgr`` CLI manages the
emulated reader on its pty (issue 11): lists images, uploads one, marks it for test, resets,
confirms it, and echoes; and the emulated panel over UDP (``mfd emulate panel`` in its own
process), where after the reset the panel confirms the new bundle itself.

smpmgr (0.19.1) has no settings command (its commands: os, image, file, shell, statistics,
enum, ic (Intercreate's user group), upgrade, terminal, interactive), so SMP's settings group is
checked with smpclient's own request models for it in tests/test_smp_settings.py instead.

smpmgr runs as its own process, with its defaults (legacy serial sizing: two 128-byte lines a
message, so the device reassembles multi-line frames), exactly as a technician would run it.
"""

from __future__ import annotations

import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
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


def smpmgr(port: str, *args: str, ip: str | None = None) -> str:
    where = ["--ip", ip] if ip is not None else ["--port", port]
    done = subprocess.run([sys.executable, "-m", "smpmgr", *where, "--timeout", "3",
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


def _pump(src: object, dst: queue.Queue[str]) -> None:
    for line in src:  # type: ignore[attr-defined]
        dst.put(line)


def _start_panel(tmp_path: Path, *argv: str) -> tuple[subprocess.Popen[str], dict[str, str],
                                                       queue.Queue[str]]:
    """``mfd emulate panel`` on port 1337 of a loopback address of its own (smpmgr --ip can
    reach no other port; 127/8 is all loopback on Linux, so tests running at once do not
    collide); returns the process, what it printed, and its stderr lines as they come."""
    rng = random.Random()
    for _ in range(5):
        host = f"127.{rng.randint(1, 254)}.{rng.randint(1, 254)}.{rng.randint(2, 254)}"
        proc = subprocess.Popen([sys.executable, "-m", "mfdkit", "emulate", "panel", "--host",
                                 host, "--port", "1337", *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        said: dict[str, str] = {}
        while "flash" not in said:
            line = proc.stdout.readline()
            if not line:
                break
            name, _, value = line.partition(": ")
            said[name] = value.strip()
        if "flash" in said:
            lines: queue.Queue[str] = queue.Queue()
            threading.Thread(target=_pump, args=(proc.stderr, lines), daemon=True).start()
            return proc, said, lines
        message = proc.stderr.read()
        proc.wait(10)
        assert "cannot listen" in message, message  # taken: another address
    raise AssertionError("no free loopback address for port 1337 in 5 tries")


def _until(lines: queue.Queue[str], text: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"the panel never said {text!r}"
        line = lines.get(timeout=left)
        if text in line:
            return line


def test_smpmgr_over_udp_lists_uploads_and_tests_and_the_panel_confirms_itself(
        tmp_path: Path) -> None:
    key, pub = keymod.write_new(tmp_path / "panel.key")
    rng = random.Random(4)
    v1 = img.build(rng.randbytes(20_000), version="1.0.0", model="panel-mfd",
                   security_counter=1, key=key)
    v2 = img.build(rng.randbytes(60_000), version="1.1.0", model="panel-mfd",
                   security_counter=1, key=key)
    (tmp_path / "v1.img").write_bytes(v1)
    (tmp_path / "v2.img").write_bytes(v2)
    proc, said, lines = _start_panel(tmp_path, "--image", str(tmp_path / "v1.img"), "--flash",
                                     str(tmp_path / "panel.bin"), "--trust", str(pub),
                                     "--health-timeout", "2")
    try:
        assert said["address"].startswith("udp:127.") and said["address"].endswith(":1337")
        assert said["model"] == "panel-mfd" and said["trusts"] == keymod.key_id(key)
        assert said["running"] == "1.0.0"
        ip = said["address"].split(":")[1]
        assert "mfd" in smpmgr("", "os", "echo", "mfd", ip=ip)
        assert images(smpmgr("", "image", "state-read", ip=ip)) == \
            [(0, "1.0.0", False, True, True)]

        smpmgr("", "image", "upload", str(tmp_path / "v2.img"), ip=ip)
        assert images(smpmgr("", "image", "state-read", ip=ip)) == \
            [(0, "1.0.0", False, True, True), (1, "1.1.0", False, False, False)]
        smpmgr("", "image", "state-write", img.inspect(v2).hash.hex(), ip=ip)
        assert images(smpmgr("", "image", "state-read", ip=ip))[1] == \
            (1, "1.1.0", True, False, False)

        smpmgr("", "os", "reset", ip=ip)
        # The positive signal: the panel says it confirmed the new bundle, nobody asked it to.
        _until(lines, "confirmed 1.1.0 after 1 start(s)", 20)
        assert images(smpmgr("", "image", "state-read", ip=ip))[0] == \
            (0, "1.1.0", False, True, True)
        # smpmgr's own confirm of the running image is accepted and changes nothing.
        smpmgr("", "image", "state-write", "--confirm", ip=ip)
        assert images(smpmgr("", "image", "state-read", ip=ip))[0] == \
            (0, "1.1.0", False, True, True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0
    assert "stopped (2 boot(s), running 1.1.0)" in _until(lines, "stopped", 5)
