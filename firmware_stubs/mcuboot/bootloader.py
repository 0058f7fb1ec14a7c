"""An emulated MCUboot bootloader, with the image-management side an SMP server needs.

Theory of operation (MCUboot docs/design.md, swap-using-scratch):

* The device runs the image in the **primary** slot; new images are uploaded to the
  **secondary** slot (:meth:`Bootloader.upload`, resumable: the secondary trailer records the
  upload's size and hash and which sectors are complete, so after a power cut
  :meth:`upload_offset` says where to go on).
* :meth:`test` asks for one test boot of the uploaded image (the secondary trailer gets the boot
  magic); :meth:`confirm` with the secondary's hash asks for a permanent swap (magic and
  ``image_ok``). At the next reset, :meth:`boot` swaps the slots, sector by sector through the
  scratch sector, but only if the secondary image verifies: its hash, a signature by a key this
  device trusts, the device's model, and a security counter no lower than the stored one.
* After a test swap the primary trailer reads magic, ``copy_done`` set, ``image_ok`` unset: if
  the running image does not :meth:`confirm` itself before the next reset, that reset swaps the
  old image back (**revert**), and a reverted image is permanent.
* Every swap is written to the swap status sector before its first step and after each step
  (see layout.py), so a boot after a power cut at any flash write finishes the swap it finds
  there, then finalises both trailers; only then is the status marked done. Each step starts by
  erasing its destination and reads a source that no earlier unrecorded step has touched, so
  redoing a step is always safe.
* The stored security counter is raised to the running image's counter when that image is
  confirmed (at :meth:`confirm`, and at boot for a confirmed image).

Pure core: no threads, no clock, no I/O but the :class:`~firmware_stubs.mcuboot.flash.Flash`
it is given; every refusal is a :class:`BootError` with an SMP return code.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from firmware_stubs.mcuboot.flash import ERASED, Flash
from firmware_stubs.mcuboot.layout import (
    BOOT_MAGIC,
    C_ENTRY,
    S_DONE,
    S_MAGIC,
    S_SIZE,
    S_STEPS,
    S_TYPE,
    SET_BYTE,
    T_COPY_DONE,
    T_FLAGS_END,
    T_IMAGE_OK,
    T_MAGIC,
    T_UP_COMMIT,
    T_UP_PROGRESS,
    T_UP_SHA,
    T_UP_TOTAL,
    Flag,
    Layout,
    Magic,
    SwapType,
    decide,
    read_counter,
    read_status,
    read_trailer,
)
from protocol.errors import MfdError
from provisioning import image as img
from provisioning import keys as keymod

log = logging.getLogger(__name__)

PRIMARY, SECONDARY = 0, 1
#: Bytes per flash write when copying a sector (a driver's page program size).
COPY_CHUNK = 1024

# SMP (MCUmgr) return codes, MGMT_ERR_* in Zephyr's mgmt.h.
EOK, EUNKNOWN, ENOMEM, EINVAL, ENOENT, EBADSTATE, ECORRUPT = 0, 1, 2, 3, 5, 6, 9


class BootError(MfdError):
    """A refused image-management request. ``rc`` is the SMP return code to answer with;
    ``code`` names the reason (an image refusal's code from provisioning.image when the image
    itself is refused)."""

    code = "boot_refused"

    def __init__(self, rc: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.rc = rc


@dataclass(frozen=True, slots=True)
class SlotInfo:
    """One slot as SMP's "image state" lists it."""

    slot: int
    version: str
    hash: bytes  # the image's SHA-256 TLV (32 bytes)
    bootable: bool
    pending: bool
    confirmed: bool
    active: bool
    permanent: bool


@dataclass(frozen=True, slots=True)
class _Upload:
    total: int
    sha: bytes | None
    sectors_done: int


class Bootloader:
    def __init__(self, flash: Flash, *, model: str, trusted_keys: Sequence[bytes]) -> None:
        self.flash = flash
        self.model = model
        self.layout = Layout.of(flash)
        self._keys = keymod.load_trusted(trusted_keys)
        self._booted = False
        # The upload this session is receiving: (total, sha), and the next offset expected.
        self._up: tuple[int, bytes | None] | None = None
        self._offset = 0

    # -- reading the flash ---------------------------------------------------------------

    def _slot_bytes(self, slot: int) -> bytes:
        return self.flash.read(self.layout.slot(slot), self.layout.image_max)

    def _info(self, slot: int) -> img.ImageInfo | None:
        """The image in ``slot`` as its header and TLVs describe it (not verified)."""
        if slot == SECONDARY:
            up = self._upload_record()
            if up is not None and up.sectors_done * self.layout.sector < up.total:
                return None  # an upload in progress is not an image yet
        try:
            return img.inspect(self._slot_bytes(slot))
        except MfdError:
            return None

    def _verify(self, slot: int) -> img.ImageInfo:
        """Raise the image refusal (MfdError) unless ``slot`` holds a bootable image."""
        return img.verify(self._slot_bytes(slot), self._keys, model=self.model,
                          min_counter=self.stored_counter())

    def _valid(self, slot: int) -> bool:
        try:
            self._verify(slot)
        except MfdError as exc:
            log.info("slot %d not bootable: %s", slot, exc.code)
            return False
        return True

    def stored_counter(self) -> int:
        return read_counter(self.flash, self.layout)[0]

    def _upload_record(self) -> _Upload | None:
        base = self.layout.trailer(SECONDARY)
        if self.flash.read(base + T_UP_COMMIT, 1)[0] == ERASED:
            return None
        (total,) = struct.unpack("<I", self.flash.read(base + T_UP_TOTAL, 4))
        sha = self.flash.read(base + T_UP_SHA, 32)
        marks = self.flash.read(base + T_UP_PROGRESS, self.layout.image_sectors)
        done = next((i for i, b in enumerate(marks) if b == ERASED), len(marks))
        return _Upload(total, None if sha.count(ERASED) == 32 else sha, done)

    def _revert_pending(self) -> bool:
        t = read_trailer(self.flash, self.layout, PRIMARY)
        return t.magic is Magic.GOOD and t.copy_done is Flag.SET and t.image_ok is Flag.UNSET

    # -- the SMP-facing interface --------------------------------------------------------

    def running(self) -> SlotInfo | None:
        """The image running now, None before :meth:`boot` or if nothing verified."""
        if not self._booted:
            return None
        return next((s for s in self.slots() if s.active), None)

    def slots(self) -> list[SlotInfo]:
        """Each slot holding an image, with Zephyr img_mgmt's flags."""
        next_swap = decide(read_trailer(self.flash, self.layout, SECONDARY),
                           read_trailer(self.flash, self.layout, PRIMARY))
        out = []
        for slot in (PRIMARY, SECONDARY):
            info = self._info(slot)
            if info is None:
                continue
            pending = confirmed = permanent = False
            if slot == PRIMARY:
                confirmed = next_swap is not SwapType.REVERT
            elif next_swap is SwapType.TEST:
                pending = True
            elif next_swap is SwapType.PERM:
                pending = permanent = True
            elif next_swap is SwapType.REVERT:
                confirmed = True  # the image a reset brings back
            out.append(SlotInfo(slot, info.version.replace("+", "."), info.hash, info.bootable,
                                pending, confirmed, slot == PRIMARY and self._booted,
                                permanent))
        return out

    def upload_offset(self) -> int:
        """Where the current upload goes on: the next offset in this session, else (after a
        reset) the end of the last whole sector recorded; 0 if no upload is recorded."""
        if self._up is not None:
            return self._offset
        up = self._upload_record()
        if up is None:
            return 0
        return min(up.sectors_done * self.layout.sector, up.total)

    def upload(self, offset: int, data: bytes, *, total: int | None = None,
               sha: bytes | None = None) -> int:
        """Write ``data`` at ``offset`` of the image being uploaded; return the next offset
        expected. Offset 0 with ``total`` starts an upload, or resumes the interrupted one with
        the same ``total`` and ``sha`` (returning where it stands); any other offset than the
        expected one changes nothing and returns the expected one."""
        self._refuse_if_revert_pending("upload")
        lay = self.layout
        if offset == 0 and total is not None:
            if not 0 < total <= lay.image_max:
                raise BootError(ENOMEM if total > 0 else EINVAL,
                                f"an image of {total} bytes does not fit the {lay.image_max}-"
                                "byte slot", code="image_too_large")
            if sha is not None and len(sha) != 32:
                raise BootError(EINVAL, "sha must be the 32-byte SHA-256 of the whole image")
            up = self._upload_record()
            if up is not None and sha is not None and up.sha == sha and up.total == total:
                self._up, self._offset = (total, sha), self.upload_offset()
                if self._offset > 0:
                    return self._offset
            self._start_upload(total, sha)
        elif self._up is None:
            up = self._upload_record()
            if up is None:
                raise BootError(EINVAL, "no upload in progress: start one at offset 0 with the "
                                "image's total length")
            self._up, self._offset = (up.total, up.sha), self.upload_offset()
        assert self._up is not None
        total_now, want_sha = self._up
        if offset != self._offset:
            return self._offset
        if offset + len(data) > total_now:
            raise BootError(EINVAL, f"{offset + len(data)} bytes is past the announced "
                            f"{total_now}")
        if not data:
            return self._offset
        base = lay.slot(SECONDARY)
        end = offset + len(data)
        # Erase as needed: a sector whose first byte this chunk writes may hold an old image or
        # a chunk torn by a power cut.
        for s in range(offset // lay.sector, (end - 1) // lay.sector + 1):
            start = s * lay.sector
            if start >= offset and not self.flash.is_erased(base + start, lay.sector):
                self.flash.erase(base + start)
        self.flash.write(base + offset, data)
        before = offset // lay.sector
        after = lay.image_sectors if end == total_now else end // lay.sector
        after = min(after, -(-total_now // lay.sector))
        if after > before:
            # Progress marks: written after the data they vouch for.
            self.flash.write(lay.trailer(SECONDARY) + T_UP_PROGRESS + before,
                             SET_BYTE * (after - before))
        self._offset = end
        if end == total_now and want_sha is not None:
            got = hashlib.sha256(self.flash.read(base, total_now)).digest()
            if got != want_sha:
                raise BootError(ECORRUPT, "the uploaded image's SHA-256 differs from the one "
                                "announced: upload it again", code=img.TAMPERED)
        return end

    def _start_upload(self, total: int, sha: bytes | None) -> None:
        lay = self.layout
        trailer = lay.trailer(SECONDARY)
        if not self.flash.is_erased(trailer, lay.sector):
            self.flash.erase(trailer)
        self.flash.write(trailer + T_UP_TOTAL, struct.pack("<I", total))
        if sha is not None:
            self.flash.write(trailer + T_UP_SHA, sha)
        self.flash.write(trailer + T_UP_COMMIT, SET_BYTE)
        self._up, self._offset = (total, sha), 0

    def erase_secondary(self) -> None:
        """Erase the upload slot (refused while the running image is on test: that slot
        holds the image a reset goes back to)."""
        self._refuse_if_revert_pending("erase the upload slot")
        lay = self.layout
        # The trailer first: a pending request must never outlive its image.
        for start in (lay.trailer(SECONDARY),
                      *(lay.slot(SECONDARY) + i * lay.sector for i in range(lay.image_sectors))):
            if not self.flash.is_erased(start, lay.sector):
                self.flash.erase(start)
        self._up, self._offset = None, 0

    def test(self, sha: bytes) -> None:
        """Ask for one test boot of the uploaded image with hash ``sha``, after checking it
        as the boot will (BootError EINVAL with the image refusal's code if it fails)."""
        self._request(sha, permanent=False)

    def confirm(self, sha: bytes | None = None) -> None:
        """Confirm the running image (no ``sha``, or its hash): it stays after resets and
        the stored security counter rises to its own. With the uploaded image's hash: swap it
        in for good at the next reset, without a test boot."""
        primary = self._info(PRIMARY)
        if sha is not None and (primary is None or sha != primary.hash):
            self._request(sha, permanent=True)
            return
        if primary is None or not self._booted or self.running() is None:
            raise BootError(EBADSTATE, "no image is running to confirm")
        if self._revert_pending():
            self.flash.write(self.layout.trailer(PRIMARY) + T_IMAGE_OK, SET_BYTE)
        self._raise_counter(primary.security_counter or 0)

    def _request(self, sha: bytes, *, permanent: bool) -> None:
        primary = self._info(PRIMARY)
        if primary is not None and sha == primary.hash and not permanent:
            return  # testing the running image: nothing to do (as img_mgmt)
        self._refuse_if_revert_pending("test or confirm another image")
        secondary = self._info(SECONDARY)
        if secondary is None or secondary.hash != sha:
            raise BootError(ENOENT, "no image with that hash in the upload slot: upload it "
                            "first", code="image_not_found")
        try:
            self._verify(SECONDARY)
        except MfdError as exc:
            raise BootError(EINVAL, exc.message, code=exc.code) from None
        trailer = self.layout.trailer(SECONDARY)
        if not self.flash.is_erased(trailer, T_FLAGS_END):
            self.flash.erase(trailer)  # a torn earlier request; the upload is complete
        if permanent:
            self.flash.write(trailer + T_IMAGE_OK, SET_BYTE)
        self.flash.write(trailer + T_MAGIC, BOOT_MAGIC)  # last: the commit

    def _refuse_if_revert_pending(self, what: str) -> None:
        if self._revert_pending():
            raise BootError(EBADSTATE, f"cannot {what} while the running image is on test: "
                            "confirm it, or reset to go back to the previous one",
                            code="test_in_progress")

    def _raise_counter(self, value: int) -> None:
        stored, free = read_counter(self.flash, self.layout)
        if value <= stored:
            return
        if free is None:
            # Full log: rewritten in place. Not cut-proof; 500 upgrades per device first.
            self.flash.erase(self.layout.counter)
            free = self.layout.counter
        self.flash.write(free, struct.pack("<I", value))
        self.flash.write(free + 4, SET_BYTE)  # the commit: after the value
        assert C_ENTRY >= 5

    # -- boot ----------------------------------------------------------------------------

    def boot(self) -> None:
        """What a reset runs: finish an interrupted swap, or start the one the trailers ask
        for (if its image verifies), then validate the primary image and run it."""
        self._booted = False
        self._up, self._offset = None, 0
        status = read_status(self.flash, self.layout)
        if status is not None and not status.done:
            log.info("resuming %s swap at step %d of %d", status.swap.name, status.steps_done,
                     3 * status.size)
            self._swap(status.swap, status.size, status.steps_done)
        else:
            swap = decide(read_trailer(self.flash, self.layout, SECONDARY),
                          read_trailer(self.flash, self.layout, PRIMARY))
            if swap in (SwapType.TEST, SwapType.PERM) and not self._valid(SECONDARY):
                # MCUboot erases an image that fails validation; the request goes with it.
                self.flash.erase(self.layout.trailer(SECONDARY))
                swap = SwapType.NONE
            if swap is not SwapType.NONE:
                self._start_swap(swap)
        if not self._valid(PRIMARY):
            log.error("no bootable image in the primary slot")
            return
        self._booted = True
        if not self._revert_pending():
            info = self._info(PRIMARY)
            assert info is not None
            self._raise_counter(info.security_counter or 0)

    def _sectors_of(self, slot: int) -> int:
        try:
            size = img.image_size(self._slot_bytes(slot))
        except MfdError:
            return self.layout.image_sectors
        return min(-(-size // self.layout.sector), self.layout.image_sectors)

    def _start_swap(self, swap: SwapType) -> None:
        size = max(self._sectors_of(PRIMARY), self._sectors_of(SECONDARY))
        base = self.layout.status
        self.flash.erase(base)
        self.flash.write(base + S_TYPE, bytes([swap]))
        self.flash.write(base + S_SIZE, struct.pack("<I", size))
        self.flash.write(base + S_MAGIC, BOOT_MAGIC)  # last: the swap is now committed
        self._swap(swap, size, 0)

    def _copy(self, src: int, dst: int) -> None:
        """Erase the sector at ``dst`` and program it with the sector at ``src``."""
        data = self.flash.read(src, self.layout.sector)
        self.flash.erase(dst)
        for off in range(0, len(data), COPY_CHUNK):
            chunk = data[off:off + COPY_CHUNK]
            if chunk.count(ERASED) != len(chunk):  # an erased page needs no programming
                self.flash.write(dst + off, chunk)

    def _swap(self, swap: SwapType, size: int, steps_done: int) -> None:
        lay = self.layout
        for i in range(size):
            prim = lay.slot(PRIMARY) + i * lay.sector
            sec = lay.slot(SECONDARY) + i * lay.sector
            moves = ((sec, lay.scratch), (prim, sec), (lay.scratch, prim))
            for k, (src, dst) in enumerate(moves):
                step = 3 * i + k
                if step < steps_done:
                    continue
                self._copy(src, dst)
                self.flash.write(lay.status + S_STEPS + step, SET_BYTE)
        # Both trailers, then the status is done. Redone whole if cut: each begins with erase.
        trailer = lay.trailer(PRIMARY)
        self.flash.erase(trailer)
        if swap in (SwapType.PERM, SwapType.REVERT):
            self.flash.write(trailer + T_IMAGE_OK, SET_BYTE)
        self.flash.write(trailer + T_COPY_DONE, SET_BYTE)
        self.flash.write(trailer + T_MAGIC, BOOT_MAGIC)
        self.flash.erase(lay.trailer(SECONDARY))
        self.flash.write(lay.status + S_DONE, SET_BYTE)
