"""Baud negotiation with fallback (issue 11): ``mfd flash`` finds the rate an emulated reader's
UART runs at, and a reader at a rate nobody tries is reported with what to do.

The reader (firmware_stubs/smp/reader_device.py) reads the speed smpclient's pyserial set on the
pty and garbles both directions when it is not its own, as a UART at the wrong rate does; so a
rate counts as found only when SMP really got through at it. Lines are paced at the reader's
rate, so the images are small.
"""

from __future__ import annotations

import json
import os
import random
import string
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from firmware_stubs.mcuboot import Bootloader, factory_flash
from firmware_stubs.smp.reader_device import ReaderDevice
from firmware_stubs.smp.serial_framing import encode_frame
from firmware_stubs.smp.server import DeviceIdentity
from firmware_stubs.smp.uart import garble, line_baud
from mfdkit.cli import main
from provisioning import image as img
from provisioning import keys as keymod
from provisioning.flash import FlashOptions, flash, load_image
from provisioning.smp_device import BAUD_FALLBACK, baud_plan
from readers.pty import PtyPort

MODEL = "reader-em4100"
_KEY = keymod.generate()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    rng = random.Random(21)
    v1 = img.build(rng.randbytes(3000), version="1.0.0", model=MODEL, security_counter=1,
                   key=_KEY)
    v2 = img.build(rng.randbytes(5000), version="1.1.0", model=MODEL, security_counter=1,
                   key=_KEY)
    path = tmp_path_factory.mktemp("baud") / "v2.img"
    path.write_bytes(v2)
    return v1, path


@pytest.fixture
def make(tmp_path: Path, images: tuple[bytes, Path]) -> Iterator[object]:
    made: list[ReaderDevice] = []

    def reader(baud: int) -> ReaderDevice:
        der = keymod.public_der(_KEY)
        boot = Bootloader(factory_flash(tmp_path / f"flash{len(made)}.bin", images[0]),
                          model=MODEL, trusted_keys=[der])
        dev = ReaderDevice(boot, DeviceIdentity(MODEL, (keymod.key_id(_KEY),), (der,)),
                           baud=baud)
        made.append(dev)
        return dev

    yield reader
    for d in made:
        d.close()


@pytest.fixture(autouse=True)
def _ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MFD_LEDGER", str(tmp_path / "ledger.jsonl"))


OPTS = FlashOptions(timeout_s=1.0, retries=2, boot_timeout_s=10, probe_s=0.4)


def test_the_pty_master_reports_the_speed_the_client_set() -> None:
    # What the emulated UART relies on: on Linux the termios ioctls on a pty master act on its
    # slave, so tcgetattr(master) returns the rate pyserial set when the client opened it.
    with PtyPort() as port:
        for rate in (921600, 230400, 115200, 57600):
            with serial.Serial(port.device, rate):
                assert line_baud(port.fileno()) == rate
                assert termios.tcgetattr(port.fileno())[5] == getattr(termios, f"B{rate}")
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        assert line_baud(fd) is None  # not a terminal
    finally:
        os.close(fd)


def test_garbling_keeps_no_frame_byte_and_no_delimiter() -> None:
    frame_bytes = set((string.ascii_letters + string.digits + "+/=").encode()) | {4, 6, 9, 20}
    table = garble(bytes(range(256)))
    assert sorted(table) == list(range(256))  # a permutation: deterministic, nothing lost
    assert all(table[b] != b and table[b] not in (4, 6, 9, 20, 10) for b in frame_bytes)
    line = encode_frame(b"\x02\x00\x00\x05\x00\x00\x01\x00" + b"\xa1ad\x63mfd", 127)[0]
    assert garble(line).endswith(b"\n") and b"\x06\x09" not in garble(line)


def test_baud_plan() -> None:
    assert baud_plan(None) == list(BAUD_FALLBACK) == [921600, 460800, 230400, 115200]
    assert baud_plan(230400) == [230400, 921600, 460800, 115200]
    assert baud_plan(57600) == [57600, *BAUD_FALLBACK]


def test_a_reader_at_230400_is_found_by_fallback_from_921600_and_flashed(make, images,
                                                                         capsys) -> None:
    dev = make(230400)
    assert main(["flash", str(images[1]), "--port", dev.device, "--json", "--timeout", "1"]) == 0
    captured = capsys.readouterr()
    [d] = json.loads(captured.out)["devices"]
    assert d["outcome"] == "updated", d["message"]
    assert d["baud"] == 230400 and d["bauds_tried"] == [921600, 460800, 230400]
    assert f"{dev.device}: upload" in captured.err and "230400 baud" in captured.err
    assert dev.garbled_bytes > 0  # the two wrong rates reached it, as garbage
    slot = dev.bootloader.running()
    assert slot is not None and (slot.version, slot.confirmed) == ("1.1.0", True)


def test_115200_asked_on_a_115200_reader_goes_straight_there(make, images) -> None:
    dev = make(115200)
    [res] = flash([dev.device], load_image(images[1]),
                  FlashOptions(baud=115200, timeout_s=1.0, retries=2, boot_timeout_s=10))
    assert res.outcome == "updated", res.message
    assert res.bauds_tried == [115200] and res.baud == 115200  # no fallback attempt
    assert dev.garbled_bytes == 0  # and nothing ever reached it at another rate


def test_a_reader_at_a_rate_not_in_the_list_is_reported_with_what_to_do(make, images,
                                                                        capsys) -> None:
    dev = make(57600)
    assert main(["flash", str(images[1]), "--port", dev.device, "--json", "--timeout", "1"]) == 1
    [d] = json.loads(capsys.readouterr().out)["devices"]
    assert d["outcome"] == "failed" and d["code"] == "baud_unknown"
    assert d["bauds_tried"] == [921600, 460800, 230400, 115200] and d["baud"] is None
    assert "no answer at 921600, 460800, 230400, 115200 baud" in d["message"]
    assert "--baud RATE" in d["message"]
    assert dev.upload_bytes == 0 and dev.running_version == "1.0.0"
    # Doing what it says works.
    [res] = flash([dev.device], load_image(images[1]),
                  FlashOptions(baud=57600, timeout_s=1.0, retries=2, boot_timeout_s=10))
    assert res.outcome == "updated" and res.bauds_tried == [57600]


def test_settings_only_finds_the_rate_too(make, capsys, tmp_path) -> None:
    # A reader without a settings area: the rate is found, then the device says it has none.
    dev = make(460800)
    assert main(["flash", "--settings-only", "--port", dev.device, "--json", "--timeout", "1",
                 "--set", "reader/format=hex"]) == 1
    [d] = json.loads(capsys.readouterr().out)["devices"]
    assert d["baud"] == 460800 and d["bauds_tried"] == [921600, 460800]
    assert d["outcome"] == "refused" and "no settings" in d["message"]
