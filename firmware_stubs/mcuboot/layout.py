"""Where the emulated MCUboot keeps what, and the table that decides the next swap.

The flash is cut into areas of whole sectors::

    primary slot   : S sectors  (S-1 for the image, the last one its trailer)
    secondary slot : S sectors  (the same)
    scratch        : 1 sector   (swap-using-scratch: one sector in transit)
    swap status    : 1 sector   (the swap in progress, step by step)
    counter        : 1 sector   (the stored security counter, an append-only log)

so a device of ``2S + 3`` sectors has slots of ``S`` sectors. MCUboot keeps a slot's trailer in
the slot's last bytes and moves it with the image; here each slot's trailer has a sector of its
own that is never swapped, and the swap status lives in its own sector rather than in the
primary trailer or scratch. That costs two sectors and keeps the resumable part small enough to
check write by write; the semantics (test, permanent, revert, resume) are MCUboot's.

**Slot trailer** (offsets in the trailer sector): the boot magic (16 bytes, MCUboot's), the
``image_ok`` and ``copy_done`` flags, and, in the secondary's, the upload record (total size,
SHA-256, commit byte) and one progress byte per image sector uploaded. A flag is *set* when its
byte is not erased: a flag write torn by a power cut reads as set, which is right, since a flag
is only written after what it vouches for is done. Multi-byte fields are vouched for by a byte
or a magic written after them (magic last is the commit: a torn magic is not a good magic).

**Swap status sector**: magic, swap type, swap size (sectors), ``done``, then one byte per swap
step (three per sector: secondary->scratch, primary->secondary, scratch->primary).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from firmware_stubs.mcuboot.flash import ERASED, Flash, FlashError

#: MCUboot's boot magic (bootutil: BOOT_IMG_MAGIC, for an 8-byte max alignment).
BOOT_MAGIC = bytes.fromhex("77c295f360d2ef7f3552500f2cb67980")

# Slot trailer sector.
T_MAGIC = 0
T_IMAGE_OK = 16
T_COPY_DONE = 24
T_FLAGS_END = 32
T_UP_TOTAL = 32  # u32
T_UP_SHA = 36  # 32 bytes, erased if the client gave none
T_UP_COMMIT = 68
T_UP_PROGRESS = 72  # one byte per image sector

# Swap status sector.
S_MAGIC = 0
S_TYPE = 16
S_SIZE = 20  # u32, sectors swapped
S_DONE = 24
S_STEPS = 32

# Counter sector: 8-byte entries, u32 value then a commit byte.
C_ENTRY = 8

SET_BYTE = b"\x01"


class SwapType(enum.IntEnum):
    """MCUboot's swap types (bootutil BOOT_SWAP_TYPE_*)."""

    NONE = 1
    TEST = 2
    PERM = 3
    REVERT = 4


class Magic(enum.Enum):
    GOOD = "good"
    UNSET = "unset"  # erased
    BAD = "bad"  # neither: a torn or foreign magic


class Flag(enum.Enum):
    SET = "set"
    UNSET = "unset"


ANY = None

# MCUboot's boot_swap_tables, as data: the first row that matches decides the next boot.
# (secondary magic, secondary image_ok, primary magic, primary image_ok, primary copy_done)
SWAP_TABLE: tuple[tuple[tuple[Magic | Flag | None, ...], SwapType], ...] = (
    ((Magic.GOOD, Flag.UNSET, ANY, ANY, ANY), SwapType.TEST),
    ((Magic.GOOD, Flag.SET, ANY, ANY, ANY), SwapType.PERM),
    ((ANY, ANY, Magic.GOOD, Flag.UNSET, Flag.SET), SwapType.REVERT),
)


@dataclass(frozen=True, slots=True)
class TrailerState:
    magic: Magic
    image_ok: Flag
    copy_done: Flag


def decide(secondary: TrailerState, primary: TrailerState) -> SwapType:
    state = (secondary.magic, secondary.image_ok, primary.magic, primary.image_ok,
             primary.copy_done)
    for pattern, swap in SWAP_TABLE:
        if all(p is ANY or p == s for p, s in zip(pattern, state, strict=True)):
            return swap
    return SwapType.NONE


def swap_table_markdown() -> str:
    """SWAP_TABLE as the Markdown table docs/firmware.md shows (a test keeps them equal)."""
    head = ("secondary magic", "secondary image_ok", "primary magic", "primary image_ok",
            "primary copy_done", "next boot")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for pattern, swap in SWAP_TABLE:
        cells = ["any" if p is ANY else p.value for p in pattern]
        rows.append("| " + " | ".join([*cells, swap.name]) + " |")
    rows.append("| " + " | ".join(["(anything else)", *[""] * 4, SwapType.NONE.name]) + " |")
    return "\n".join(rows)


@dataclass(frozen=True, slots=True)
class Layout:
    sector: int
    slot_sectors: int  # per slot, its trailer sector included

    @classmethod
    def of(cls, flash: Flash) -> Layout:
        total = flash.sectors
        slot = (total - 3) // 2
        if slot < 2 or 2 * slot + 3 != total:
            raise FlashError(f"a flash of {total} sectors cannot hold two slots, scratch, "
                             "status and counter (2*S+3 sectors, S >= 2)")
        return cls(flash.sector_size, slot)

    @staticmethod
    def flash_size(slot_sectors: int, sector: int) -> int:
        return (2 * slot_sectors + 3) * sector

    @property
    def image_sectors(self) -> int:
        return self.slot_sectors - 1

    @property
    def image_max(self) -> int:
        return self.image_sectors * self.sector

    def slot(self, n: int) -> int:
        return n * self.slot_sectors * self.sector

    def trailer(self, n: int) -> int:
        return self.slot(n) + self.image_max

    @property
    def scratch(self) -> int:
        return 2 * self.slot_sectors * self.sector

    @property
    def status(self) -> int:
        return self.scratch + self.sector

    @property
    def counter(self) -> int:
        return self.status + self.sector


def read_magic(flash: Flash, offset: int) -> Magic:
    raw = flash.read(offset, len(BOOT_MAGIC))
    if raw == BOOT_MAGIC:
        return Magic.GOOD
    if raw.count(ERASED) == len(raw):
        return Magic.UNSET
    return Magic.BAD


def read_flag(flash: Flash, offset: int) -> Flag:
    return Flag.UNSET if flash.read(offset, 1)[0] == ERASED else Flag.SET


def read_trailer(flash: Flash, layout: Layout, slot: int) -> TrailerState:
    base = layout.trailer(slot)
    return TrailerState(read_magic(flash, base + T_MAGIC), read_flag(flash, base + T_IMAGE_OK),
                        read_flag(flash, base + T_COPY_DONE))


@dataclass(frozen=True, slots=True)
class SwapStatus:
    swap: SwapType
    size: int  # sectors
    steps_done: int  # how many of the 3*size steps are recorded
    done: bool


def read_status(flash: Flash, layout: Layout) -> SwapStatus | None:
    """The swap recorded in the status sector, or None if none was committed."""
    base = layout.status
    if read_magic(flash, base + S_MAGIC) is not Magic.GOOD:
        return None
    raw_type = flash.read(base + S_TYPE, 1)[0]
    (size,) = struct.unpack("<I", flash.read(base + S_SIZE, 4))
    if raw_type not in (SwapType.TEST, SwapType.PERM, SwapType.REVERT) or not (
            0 < size <= layout.image_sectors):
        # Written before the magic, so a good magic vouches for them: this is a bug.
        raise FlashError(f"swap status with type {raw_type} and size {size} under a good magic")
    steps = flash.read(base + S_STEPS, 3 * size)
    done_steps = next((i for i, b in enumerate(steps) if b == ERASED), 3 * size)
    return SwapStatus(SwapType(raw_type), size, done_steps,
                      read_flag(flash, base + S_DONE) is Flag.SET)


def read_counter(flash: Flash, layout: Layout) -> tuple[int, int | None]:
    """(stored security counter, offset of the next free entry or None if the log is full)."""
    raw = flash.read(layout.counter, layout.sector)
    value, free = 0, None
    for off in range(0, layout.sector - C_ENTRY + 1, C_ENTRY):
        entry = raw[off:off + C_ENTRY]
        if entry.count(ERASED) == C_ENTRY:
            free = layout.counter + off
            break
        if entry[4] != ERASED:  # committed: the value before it was written whole
            value = max(value, struct.unpack("<I", entry[:4])[0])
    return value, free
