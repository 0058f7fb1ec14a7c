"""The power-cut simulator, in the manner of MCUboot's sim/: an upgrade driven to its end from
whatever state a device is in, the invariants a device must hold after any power cut, and the
sweep that cuts at every flash operation of a clean upgrade.

:func:`finish` is what a technician's tool does with a device it finds in any state: if the new
image runs unconfirmed, confirm it and reset; if the secondary slot holds it, test it and reset;
else upload it (resuming where the device says) and go on. From a factory device that is the
clean upgrade: upload, test, reset (the swap), confirm, reset. It counts the device's flash
operations, so a run with ``cut_at=k`` stops at the k-th.

:func:`check` is the promise: after any cut and a reset, the device runs a valid signed image,
the old or the new one, never nothing and never a half-copied one; no swap is left half done;
an image on test has its predecessor whole in the secondary slot to revert to; an image pending
in the secondary slot verifies.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from firmware_stubs.mcuboot.bootloader import PRIMARY, SECONDARY, Bootloader
from firmware_stubs.mcuboot.factory import factory_flash
from firmware_stubs.mcuboot.flash import Flash, PowerCut
from firmware_stubs.mcuboot.layout import Layout, read_status
from protocol.errors import MfdError
from provisioning import image as img
from provisioning import keys as keymod

#: Upload chunk: what one SMP image-upload request carries on a small MTU.
CHUNK = 512


class Bricked(AssertionError):
    """A device state that breaks the promise (see the module note)."""


@dataclass
class Rig:
    """One emulated device on the bench: its flash file and a pristine copy to start from."""

    path: Path
    pristine: Path
    model: str
    keys: Sequence[bytes]
    old: bytes
    new: bytes
    sector: int = 4096
    chunk: int = CHUNK

    @property
    def old_hash(self) -> bytes:
        return img.inspect(self.old).hash

    @property
    def new_hash(self) -> bytes:
        return img.inspect(self.new).hash

    def restore(self) -> None:
        shutil.copyfile(self.pristine, self.path)

    def open(self, cut_at: int | None = None) -> Flash:
        return Flash(self.path, sector_size=self.sector, cut_at=cut_at)

    def reset(self, flash: Flash) -> Bootloader:
        bl = Bootloader(flash, model=self.model, trusted_keys=self.keys)
        bl.boot()
        return bl


def upload(bl: Bootloader, image: bytes, chunk: int = CHUNK) -> None:
    """What an SMP client does: offset 0 with the length and hash (the device answers where
    an interrupted upload of the same image stands), then the rest from there."""
    sha = hashlib.sha256(image).digest()
    off = bl.upload(0, image[:chunk], total=len(image), sha=sha)
    while off < len(image):
        off = bl.upload(off, image[off:off + chunk])


def finish(rig: Rig, flash: Flash, trace: list[tuple[str, int]] | None = None) -> Bootloader:
    """Drive the device to run ``rig.new`` confirmed (see the module note)."""
    def mark(phase: str) -> None:
        if trace is not None:
            trace.append((phase, flash.ops))

    mark("boot")
    bl = rig.reset(flash)
    for _ in range(8):
        run = bl.running()
        if run is None:
            raise Bricked("nothing bootable")
        if run.hash == rig.new_hash:
            if run.confirmed:
                return bl
            mark("confirm")
            bl.confirm()
            mark("reset after confirm")
            bl = rig.reset(flash)
            continue
        secondary = next((s for s in bl.slots() if s.slot == SECONDARY), None)
        if secondary is None or secondary.hash != rig.new_hash:
            mark("upload")
            upload(bl, rig.new, rig.chunk)
            continue
        if not secondary.pending:
            mark("test")
            bl.test(rig.new_hash)
        mark("swap (test boot)")
        bl = rig.reset(flash)
    raise Bricked("the upgrade did not converge in 8 steps")


def check(rig: Rig, bl: Bootloader) -> str:
    """Raise :class:`Bricked` unless the freshly booted device keeps the promise; return which
    image runs ("old" or "new")."""
    run = bl.running()
    if run is None:
        raise Bricked("nothing bootable after a reset")
    if run.hash not in (rig.old_hash, rig.new_hash):
        raise Bricked(f"running an image that is neither old nor new: {run.hash.hex()}")
    lay, flash = bl.layout, bl.flash
    try:
        img.verify(flash.read(lay.slot(PRIMARY), lay.image_max),
                   keymod.load_trusted(rig.keys), model=rig.model)
    except MfdError as exc:
        raise Bricked(f"the running image does not verify: {exc}") from None
    status = read_status(flash, lay)
    if status is not None and not status.done:
        raise Bricked(f"a {status.swap.name} swap left half done after boot")
    slots = bl.slots()
    if sum(s.active for s in slots) != 1 or not slots[0].active:
        raise Bricked(f"not exactly the primary slot active: {slots}")
    secondary = next((s for s in slots if s.slot == SECONDARY), None)
    if not run.confirmed:
        if secondary is None or not secondary.confirmed or secondary.hash != rig.old_hash:
            raise Bricked("an image on test without its predecessor to revert to")
    if not run.confirmed or (secondary is not None and secondary.pending):
        try:
            img.verify(flash.read(lay.slot(SECONDARY), lay.image_max),
                       keymod.load_trusted(rig.keys), model=rig.model)
        except MfdError as exc:
            raise Bricked(f"the secondary image a reset would boot does not verify: {exc}") \
                from None
    return "new" if run.hash == rig.new_hash else "old"


def recover(rig: Rig, cuts: Iterable[int | None] = ()) -> tuple[Bootloader, int]:
    """Power on after a cut, check, and finish the upgrade; each of ``cuts`` cuts the power
    again during that (counted from that power-on). Return the device and the cuts that hit."""
    hits = 0
    for cut in [*cuts, None]:
        flash = rig.open(cut_at=cut)
        try:
            bl = rig.reset(flash)
            check(rig, bl)
            bl = finish(rig, flash)
        except PowerCut:
            hits += 1
            flash.close()
            continue
        check(rig, bl)
        run = bl.running()
        if run is None or run.hash != rig.new_hash or not run.confirmed:
            raise Bricked("the finished upgrade does not run the new image confirmed")
        flash.close()
        return bl, hits
    raise AssertionError("unreachable: the last power-on has no cut")


def make_rig(directory: Path, *, payload_old: int, payload_new: int, slot_sectors: int,
             kind: str = "ed25519", model: str = "reader-sim", seed: int = 1,
             sector: int = 4096) -> Rig:
    """A factory device with an old image and a new one for it, both signed."""
    key = keymod.generate(kind)
    rnd = random.Random(seed)
    old = img.build(rnd.randbytes(payload_old), version="1.0.0", model=model,
                    security_counter=1, key=key)
    new = img.build(rnd.randbytes(payload_new), version="1.1.0", model=model,
                    security_counter=2, key=key)
    path, pristine = directory / "flash.bin", directory / "factory.bin"
    factory_flash(pristine, old, slot_sectors=slot_sectors, sector_size=sector).close()
    rig = Rig(path, pristine, model, [keymod.public_pem(key)], old, new, sector=sector)
    rig.restore()
    return rig


@dataclass
class Sweep:
    ops: int = 0  # flash operations in the clean upgrade (erases + writes)
    erases: int = 0
    writes: int = 0
    cuts: int = 0  # cuts made (one per operation index swept, plus any repeats)
    survived: int = 0
    ended_on: dict[str, int] = field(default_factory=dict)  # old/new after the first reset
    phases: list[tuple[str, int]] = field(default_factory=list)
    seconds: float = 0.0


def clean_run(rig: Rig) -> Sweep:
    rig.restore()
    sweep = Sweep()
    flash = rig.open()
    finish(rig, flash, sweep.phases)
    sweep.ops, sweep.erases, sweep.writes = flash.ops, flash.erases, flash.writes
    flash.close()
    return sweep


def sweep(rig: Rig, indices: Iterable[int] | None = None) -> Sweep:
    """Cut at each of ``indices`` (default: every operation of the clean upgrade), then
    recover; raise :class:`Bricked` at the first broken promise."""
    t0 = time.perf_counter()
    result = clean_run(rig)
    for k in indices if indices is not None else range(1, result.ops + 1):
        rig.restore()
        flash = rig.open(cut_at=k)
        try:
            finish(rig, flash)
        except PowerCut:
            pass
        else:
            raise AssertionError(f"no cut at operation {k} of {result.ops}")
        finally:
            flash.close()
        result.cuts += 1
        flash = rig.open()
        where = check(rig, rig.reset(flash))
        flash.close()
        result.ended_on[where] = result.ended_on.get(where, 0) + 1
        recover(rig)
        result.survived += 1
    result.seconds = time.perf_counter() - t0
    return result


def to_test_boot(rig: Rig) -> None:
    """From the factory flash: upload the new image, test it, reset: it runs on test."""
    rig.restore()
    with rig.open() as flash:
        bl = rig.reset(flash)
        upload(bl, rig.new, rig.chunk)
        bl.test(rig.new_hash)
        rig.reset(flash)


def sweep_revert(rig: Rig) -> Sweep:
    """Cut at every operation of a revert (the reset after a test boot with no confirm); after
    each, a reset must bring the old image back, confirmed."""
    t0 = time.perf_counter()
    to_test_boot(rig)
    result = Sweep()
    with rig.open() as flash:
        rig.reset(flash)
        result.ops, result.erases, result.writes = flash.ops, flash.erases, flash.writes
    for k in range(1, result.ops + 1):
        to_test_boot(rig)
        with rig.open(cut_at=k) as flash:
            try:
                rig.reset(flash)
                raise AssertionError(f"no cut at operation {k} of the revert")
            except PowerCut:
                result.cuts += 1
        with rig.open() as flash:
            bl = rig.reset(flash)
            run = bl.running()
            if check(rig, bl) != "old" or run is None or not run.confirmed:
                raise Bricked(f"cut at {k} of a revert: the old image is not back for good")
        result.survived += 1
    result.seconds = time.perf_counter() - t0
    return result


def layout_of(rig: Rig) -> Layout:
    with rig.open() as flash:
        return Layout.of(flash)


__all__ = ["CHUNK", "Bricked", "Rig", "Sweep", "check", "clean_run", "finish", "layout_of",
           "make_rig", "recover", "sweep", "sweep_revert", "to_test_boot", "upload"]
