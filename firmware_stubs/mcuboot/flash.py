"""An emulated NOR flash in a file, with the power cut MCUboot's simulator cuts at.

The rules of the part it emulates, enforced so that the bootloader above cannot cheat:

* Memory is divided into sectors (4 KiB by default); **erase** sets a whole sector to 0xFF.
* **Write** (program) may only go to bytes that are erased: writing over a byte that is not 0xFF
  raises :class:`FlashError`, as programming can only clear bits and a driver must erase first.
  A bootloader that breaks this rule has a bug, and the power-cut suite finds it.
* Every erase and every write is one **operation**, counted (``erases``, ``writes``, ``ops``).
  ``cut_at=N`` makes the N-th operation (1-based, counted from when this object was opened) the
  last: it is torn and :class:`PowerCut` is raised. A torn write programs a prefix of its
  bytes, plus some bits of the next one (a byte caught mid-program reads as neither old nor
  new); a torn erase leaves a prefix of the sector erased and the rest as it was. How much
  (``tear``, a fraction) is fixed if given, else varies with the operation's number, so that a
  sweep over every operation also sweeps how far the torn one got.
  After a cut the object is dead: every further call raises PowerCut, as a board without power
  does nothing. Reopen the file for the next "boot".

The file is written through on every operation (``os.pwrite``), so it holds exactly what the
flash holds at any moment: a cut loses nothing that was written before it, and a new
:class:`Flash` over the same file sees the same bytes, as a restarted device does.
"""

from __future__ import annotations

import os
from pathlib import Path

from protocol.errors import MfdError

ERASED = 0xFF
DEFAULT_SECTOR = 4096


class FlashError(MfdError):
    """An operation the part itself would refuse (out of range, write over unerased bytes)."""

    code = "flash_error"


class PowerCut(Exception):
    # Not an MfdError on purpose: no handler of ours may catch the power going away.
    """The power was cut in the middle of an operation (see the module note)."""


class Flash:
    """A flash device backed by ``path`` (the file's size is the device's size)."""

    def __init__(self, path: str | os.PathLike[str], *, sector_size: int = DEFAULT_SECTOR,
                 cut_at: int | None = None, tear: float | None = None) -> None:
        self.path = Path(path)
        self.sector_size = sector_size
        self._fd = os.open(self.path, os.O_RDWR)
        size = os.fstat(self._fd).st_size
        if size == 0 or size % sector_size:
            os.close(self._fd)
            raise FlashError(f"{self.path}: {size} bytes is not a whole number of "
                             f"{sector_size}-byte sectors")
        self.size = size
        self._mem = bytearray(os.pread(self._fd, size, 0))
        self.erases = 0
        self.writes = 0
        self.cut_at = cut_at
        self.tear = tear
        self.dead = False

    @classmethod
    def create(cls, path: str | os.PathLike[str], size: int, *,
               sector_size: int = DEFAULT_SECTOR) -> Flash:
        """A new, fully erased device in a new file."""
        if size <= 0 or size % sector_size:
            raise FlashError(f"size {size} is not a whole number of {sector_size}-byte sectors")
        Path(path).write_bytes(bytes([ERASED]) * size)
        return cls(path, sector_size=sector_size)

    @property
    def ops(self) -> int:
        return self.erases + self.writes

    @property
    def sectors(self) -> int:
        return self.size // self.sector_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Flash:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, offset: int, length: int) -> None:
        if self.dead:
            raise PowerCut("the flash has no power")
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FlashError(f"{offset:#x}+{length} is outside the {self.size}-byte flash")

    def _next_op_is_cut(self) -> bool:
        return self.cut_at is not None and self.ops + 1 >= self.cut_at

    def _frac(self) -> float:
        if self.tear is not None:
            return self.tear
        return ((self.ops * 2654435761) % 65536) / 65536  # Knuth's multiplicative hash

    def _torn(self, length: int) -> int:
        """How many of ``length`` bytes the cut operation got through (0 .. length-1)."""
        return min(length - 1, int(length * self._frac())) if length else 0

    def read(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        return bytes(self._mem[offset:offset + length])

    def is_erased(self, offset: int, length: int) -> bool:
        self._check(offset, length)
        return self._mem[offset:offset + length].count(ERASED) == length

    def write(self, offset: int, data: bytes) -> None:
        self._check(offset, len(data))
        if not data:
            return
        if not self.is_erased(offset, len(data)):
            bad = next(i for i in range(len(data)) if self._mem[offset + i] != ERASED)
            raise FlashError(f"write over unerased byte at {offset + bad:#x}: erase the "
                             "sector first")
        if self._next_op_is_cut():
            half, frac = self._torn(len(data)), self._frac()
            self.writes += 1
            torn = bytearray(data[:half])
            # The byte being programmed when the power went: none, some or most of its bits
            # cleared (a one-byte flag may read as written, or not at all).
            torn.append(data[half] | (0xFF if frac < 0.25 else 0x0F if frac < 0.6 else 0xC0))
            self._store(offset, bytes(torn))
            self.dead = True
            raise PowerCut(f"power cut during write {self.writes} at {offset:#x}")
        self.writes += 1
        self._store(offset, bytes(data))

    def erase(self, offset: int, length: int | None = None) -> None:
        """Erase the sectors covering ``offset`` .. ``offset + length`` (one sector if no
        length), both sector aligned. Each sector is one operation."""
        length = self.sector_size if length is None else length
        if offset % self.sector_size or length % self.sector_size:
            raise FlashError(f"erase {offset:#x}+{length} is not sector aligned")
        self._check(offset, length)
        for start in range(offset, offset + length, self.sector_size):
            if self._next_op_is_cut():
                done = self._torn(self.sector_size)
                self.erases += 1
                self._store(start, bytes([ERASED]) * done)
                self.dead = True
                raise PowerCut(f"power cut during erase {self.erases} at {start:#x}")
            self.erases += 1
            self._store(start, bytes([ERASED]) * self.sector_size)

    def _store(self, offset: int, data: bytes) -> None:
        self._mem[offset:offset + len(data)] = data
        os.pwrite(self._fd, data, offset)
