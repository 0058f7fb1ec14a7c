"""No power cut bricks the emulated MCUboot (firmware_stubs/mcuboot), in the manner of MCUboot's
simulator: a clean upgrade (upload, test, reset, confirm, reset) is run once to count its flash
operations (every erase and every write), then the power is cut at each of them in turn; after
each cut the device is powered on again (a new Flash and Bootloader over the same file), must
boot a valid signed image, old or new, with its slots and swap state consistent, and finishing
the upgrade must end on the new image, confirmed.

What runs here, under a minute: every operation of a small upgrade (a 3-sector image, about 90
operations) for Ed25519 and ECDSA-P256, a seeded sample of 300 operations of a large one (a 47-
sector image, about 1240 operations), every operation of a revert (a test boot left
unconfirmed, then a reset), and seeded random multiple cuts (Hypothesis). The full
sweep of the large upgrade is ``python -m bench.power_cuts``.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_stubs.mcuboot import Bootloader, Flash, FlashError, PowerCut, sim
from firmware_stubs.mcuboot.layout import Layout


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> sim.Rig:
    return sim.make_rig(tmp_path_factory.mktemp("small"), payload_old=9000, payload_new=11000,
                        slot_sectors=5)


def _phases_hit(result: sim.Sweep, indices: list[int]) -> set[str]:
    """Which phases of the clean upgrade the cut indices fell in."""
    hit = set()
    bounds = [*result.phases, ("end", result.ops)]
    for k in indices:
        for (name, start), (_, end) in itertools.pairwise(bounds):
            if start < k <= end:
                hit.add(name)
    return hit


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256"])
def test_a_cut_at_every_write_of_a_small_upgrade_never_bricks(tmp_path: Path,
                                                              kind: str) -> None:
    rig = sim.make_rig(tmp_path, payload_old=9000, payload_new=11000, slot_sectors=5,
                       kind=kind)
    result = sim.sweep(rig)
    assert result.ops > 60
    assert result.cuts == result.survived == result.ops
    # Some cuts leave the old image running, later ones the new: both sides were exercised.
    assert result.ended_on.get("old", 0) > 10 and result.ended_on.get("new", 0) > 10
    # The cuts fell in every phase: upload, test, the swap at the test boot, confirm.
    assert {"upload", "test", "swap (test boot)", "confirm"} <= _phases_hit(
        result, list(range(1, result.ops + 1)))


def test_a_sample_of_cuts_in_a_large_upgrade_never_bricks(tmp_path: Path) -> None:
    rig = sim.make_rig(tmp_path, payload_old=150_000, payload_new=190_000, slot_sectors=50,
                       seed=7)
    clean = sim.clean_run(rig)
    assert clean.ops > 500
    rnd = random.Random(11)
    # The sample always takes the first and last operations and the phase boundaries.
    edges = {1, clean.ops} | {max(1, s) for _, s in clean.phases} | {
        min(clean.ops, s + 1) for _, s in clean.phases}
    indices = sorted(edges | set(rnd.sample(range(1, clean.ops + 1), 300)))
    result = sim.sweep(rig, indices)
    assert result.survived == len(indices)
    assert {"upload", "swap (test boot)", "confirm"} <= _phases_hit(clean, indices)


@settings(max_examples=40, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=1, max_value=110), min_size=1, max_size=5))
def test_random_multiple_cuts_during_upgrade_and_recovery_never_brick(
        small: sim.Rig, cuts: list[int]) -> None:
    # The first cut interrupts the clean upgrade; each further one interrupts the recovery
    # (counted from that power-on: the boot, the resumed swap, the re-upload, the confirm).
    small.restore()
    flash = small.open(cut_at=cuts[0])
    try:
        sim.finish(small, flash)
    except PowerCut:
        pass
    finally:
        flash.close()
    bl, _hits = sim.recover(small, cuts[1:])
    run = bl.running()
    assert run is not None and run.hash == small.new_hash and run.confirmed


def test_an_unconfirmed_test_image_is_reverted_at_the_next_reset(small: sim.Rig) -> None:
    small.restore()
    with small.open() as flash:
        bl = small.reset(flash)
        sim.upload(bl, small.new)
        bl.test(small.new_hash)
        bl = small.reset(flash)
        run = bl.running()
        assert run is not None and run.hash == small.new_hash and not run.confirmed
        # No confirm: the next reset brings the old image back, for good.
        bl = small.reset(flash)
        run = bl.running()
        assert run is not None and run.hash == small.old_hash and run.confirmed
        bl = small.reset(flash)
        run = bl.running()
        assert run is not None and run.hash == small.old_hash
        assert sim.check(small, bl) == "old"


def test_a_cut_at_every_write_of_a_revert_never_bricks(small: sim.Rig) -> None:
    result = sim.sweep_revert(small)
    assert result.ops > 20 and result.cuts == result.survived == result.ops


def test_a_permanent_request_swaps_without_a_test_boot(small: sim.Rig) -> None:
    small.restore()
    with small.open() as flash:
        bl = small.reset(flash)
        sim.upload(bl, small.new)
        bl.confirm(small.new_hash)
        assert [s.permanent for s in bl.slots()] == [False, True]
        bl = small.reset(flash)
        bl = small.reset(flash)
        run = bl.running()
        assert run is not None and run.hash == small.new_hash and run.confirmed


def test_an_interrupted_upload_resumes_from_the_last_whole_sector(small: sim.Rig) -> None:
    small.restore()
    with small.open(cut_at=20) as flash, pytest.raises(PowerCut):
        sim.upload(small.reset(flash), small.new)
    with small.open() as flash:
        bl = small.reset(flash)
        got = bl.upload_offset()
        assert got > 0 and got % small.sector == 0
        sha = hashlib.sha256(small.new).digest()
        # Offset 0 with the same length and hash: the device answers where it stands.
        assert bl.upload(0, small.new[:512], total=len(small.new), sha=sha) == got
        # A wrong offset changes nothing and is told the expected one.
        assert bl.upload(got + 512, small.new[got + 512:got + 1024]) == got
        before = flash.writes
        off = got
        while off < len(small.new):
            off = bl.upload(off, small.new[off:off + 512])
        assert flash.writes - before < len(small.new) // 512 + 5  # only the rest was sent
        secondary = bl.slots()[1]
        assert secondary.hash == small.new_hash


def test_the_flash_refuses_a_write_over_unerased_bytes(tmp_path: Path) -> None:
    flash = Flash.create(tmp_path / "f.bin", 4 * 4096)
    flash.write(100, b"\x00\x01")
    with pytest.raises(FlashError, match="erase"):
        flash.write(101, b"\x02")
    flash.erase(0)
    flash.write(101, b"\x02")
    assert (flash.erases, flash.writes) == (1, 2)


def test_a_torn_write_keeps_exactly_what_was_written(tmp_path: Path) -> None:
    flash = Flash.create(tmp_path / "f.bin", 4 * 4096)
    flash.cut_at, flash.tear = 2, 0.5
    flash.write(0, b"A" * 8)
    with pytest.raises(PowerCut):
        flash.write(4096, bytes(range(16)))
    with pytest.raises(PowerCut):
        flash.read(0, 1)  # no power, no reads
    reopened = Flash(tmp_path / "f.bin")
    assert reopened.read(0, 8) == b"A" * 8
    torn = reopened.read(4096, 16)
    assert torn[:8] == bytes(range(8))  # the first half programmed
    assert torn[8] not in (0xFF, 8)  # the byte being programmed: neither old nor new
    assert torn[9:] == b"\xff" * 7


def test_a_device_too_small_for_the_layout_is_refused(tmp_path: Path) -> None:
    flash = Flash.create(tmp_path / "f.bin", 6 * 4096)
    with pytest.raises(FlashError, match="2\\*S\\+3"):
        Bootloader(flash, model="m", trusted_keys=[])
    assert Layout.flash_size(5, 4096) == 13 * 4096
