"""The emulated MCUboot's image management as an SMP server sees it: the slot flags through an
upgrade, the refusals and their SMP return codes, and anti-rollback after an upgrade."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from firmware_stubs.mcuboot import BootError, Bootloader, Flash, SlotInfo, factory_flash, sim
from firmware_stubs.mcuboot.bootloader import EBADSTATE, EINVAL, ENOENT, ENOMEM
from protocol.errors import ConfigError
from provisioning import image, keys


@pytest.fixture
def rig(tmp_path: Path) -> sim.Rig:
    return sim.make_rig(tmp_path, payload_old=5000, payload_new=7000, slot_sectors=4)


def _flags(s: SlotInfo) -> str:
    return "".join(c for c, on in zip("PCAM", (s.pending, s.confirmed, s.active, s.permanent),
                                      strict=True) if on)


def test_slot_flags_through_an_upgrade_are_img_mgmt_s(rig: sim.Rig) -> None:
    with rig.open() as flash:
        bl = rig.reset(flash)
        assert [(s.slot, s.version, _flags(s)) for s in bl.slots()] == [(0, "1.0.0", "CA")]
        sim.upload(bl, rig.new)
        assert [(s.slot, _flags(s)) for s in bl.slots()] == [(0, "CA"), (1, "")]
        assert bl.slots()[1].hash == rig.new_hash and bl.slots()[1].bootable
        bl.test(rig.new_hash)
        assert [(s.slot, _flags(s)) for s in bl.slots()] == [(0, "CA"), (1, "P")]
        bl = rig.reset(flash)
        # On test: the new image runs unconfirmed; the old one, confirmed, waits in slot 1.
        assert [(s.slot, s.version, _flags(s)) for s in bl.slots()] == [
            (0, "1.1.0", "A"), (1, "1.0.0", "C")]
        bl.confirm()
        assert [(s.slot, _flags(s)) for s in bl.slots()] == [(0, "CA"), (1, "")]
        assert bl.stored_counter() == 2


def test_refusals_carry_smp_return_codes(rig: sim.Rig) -> None:
    with rig.open() as flash:
        bl = rig.reset(flash)
        with pytest.raises(BootError) as err:
            bl.test(b"\x00" * 32)
        assert err.value.rc == ENOENT and "upload it first" in err.value.message
        with pytest.raises(BootError) as err:
            bl.confirm(b"\x11" * 32)
        assert err.value.rc == ENOENT
        with pytest.raises(BootError) as err:
            bl.upload(0, b"x", total=bl.layout.image_max + 1)
        assert err.value.rc == ENOMEM
        with pytest.raises(BootError) as err:
            bl.upload(512, b"x" * 10)
        assert err.value.rc == EINVAL and "offset 0" in err.value.message
        sim.upload(bl, rig.new)
        bl.test(rig.new_hash)
        bl = rig.reset(flash)
        # While an image is on test, its predecessor in slot 1 is the way back: kept.
        for action in (bl.erase_secondary, lambda: bl.upload(0, b"y", total=1)):
            with pytest.raises(BootError) as err:
                action()
            assert err.value.rc == EBADSTATE and "confirm it" in err.value.message


def test_a_wrong_upload_sha_is_corruption(rig: sim.Rig) -> None:
    with rig.open() as flash:
        bl = rig.reset(flash)
        with pytest.raises(BootError) as err:
            bl.upload(0, rig.new, total=len(rig.new), sha=hashlib.sha256(b"other").digest())
        assert err.value.code == image.TAMPERED


def test_after_an_upgrade_the_old_image_is_a_downgrade(rig: sim.Rig) -> None:
    with rig.open() as flash:
        bl = sim.finish(rig, flash)
        assert bl.stored_counter() == 2
        sim.upload(bl, rig.old)
        with pytest.raises(BootError) as err:
            bl.test(rig.old_hash)
        assert err.value.code == image.DOWNGRADE and err.value.rc == EINVAL
        assert "security counter 2 or more" in err.value.message
        bl.erase_secondary()
        assert [s.slot for s in bl.slots()] == [0]


def test_a_factory_image_that_does_not_verify_boots_nothing(tmp_path: Path) -> None:
    key = keys.generate()
    good = image.build(b"fw" * 100, version="1.0.0", model="m", security_counter=1, key=key)
    flash = factory_flash(tmp_path / "f.bin", good, slot_sectors=3)
    other = keys.public_pem(keys.generate())
    bl = Bootloader(flash, model="m", trusted_keys=[other])
    bl.boot()
    assert bl.running() is None
    flash.close()
    with Flash(tmp_path / "f.bin") as again:
        bl = Bootloader(again, model="m", trusted_keys=[keys.public_der(key)])
        bl.boot()
        run = bl.running()
        assert run is not None and run.version == "1.0.0" and run.confirmed


def test_the_docs_show_the_swap_table_the_bootloader_uses() -> None:
    from firmware_stubs.mcuboot.layout import swap_table_markdown

    doc = (Path(__file__).resolve().parent.parent / "docs" / "firmware.md").read_text()
    assert swap_table_markdown() in doc


@pytest.mark.parametrize("kind", keys.KINDS)
def test_a_device_takes_its_trusted_keys_as_pem_der_or_raw(tmp_path: Path, kind: str) -> None:
    from cryptography.hazmat.primitives import serialization as ser

    key = keys.generate(kind)
    pub = key.key.public_key()
    raw = (pub.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw) if kind == "ed25519"
           else pub.public_bytes(ser.Encoding.X962, ser.PublicFormat.UncompressedPoint))
    data = image.build(b"fw" * 50, version="1.0.0", model="m", security_counter=0, key=key)
    for form in (keys.public_pem(key), keys.public_der(key), raw):
        flash = factory_flash(tmp_path / "f.bin", data, slot_sectors=3)
        bl = Bootloader(flash, model="m", trusted_keys=[form])
        bl.boot()
        assert bl.running() is not None, form[:20]
        flash.close()
    with Flash(tmp_path / "f.bin") as flash, pytest.raises(ConfigError, match="not a key"):
        Bootloader(flash, model="m", trusted_keys=[b"nonsense"])
