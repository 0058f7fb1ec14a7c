"""A device's factory flash: what the production line writes before the first boot."""

from __future__ import annotations

import os
from pathlib import Path

from firmware_stubs.mcuboot.flash import DEFAULT_SECTOR, Flash, FlashError
from firmware_stubs.mcuboot.layout import BOOT_MAGIC, SET_BYTE, T_IMAGE_OK, T_MAGIC, Layout
from provisioning import image as img

#: Slots of 64 sectors (252 KiB of image at 4 KiB sectors): room for a reader's firmware.
DEFAULT_SLOT_SECTORS = 64


def factory_flash(path: str | os.PathLike[str], image_bytes: bytes, *,
                  slot_sectors: int = DEFAULT_SLOT_SECTORS,
                  sector_size: int = DEFAULT_SECTOR) -> Flash:
    """Create the flash file at ``path`` (replacing any) with ``image_bytes`` (a signed MCUboot
    image) in the primary slot, confirmed, and everything else erased; return it open.

    The image is not verified here (the bootloader does that at every boot), only checked to be
    an image that fits, so a test can also make a device whose factory image is bad."""
    layout = Layout(sector_size, slot_sectors)
    size = img.image_size(image_bytes)
    if size > layout.image_max:
        raise FlashError(f"a {size}-byte image does not fit a slot of {layout.image_max} bytes")
    Path(path).unlink(missing_ok=True)
    flash = Flash.create(path, Layout.flash_size(slot_sectors, sector_size),
                         sector_size=sector_size)
    flash.write(layout.slot(0), image_bytes[:size])
    trailer = layout.trailer(0)
    flash.write(trailer + T_IMAGE_OK, SET_BYTE)
    flash.write(trailer + T_MAGIC, BOOT_MAGIC)
    return flash
