"""An emulated MCUboot: a NOR flash in a file with power cuts (flash.py), the slot layout and
swap table (layout.py), the bootloader with its image-management interface (bootloader.py) and
the factory flash (factory.py)."""

from firmware_stubs.mcuboot.bootloader import BootError, Bootloader, SlotInfo
from firmware_stubs.mcuboot.factory import factory_flash
from firmware_stubs.mcuboot.flash import Flash, FlashError, PowerCut

__all__ = ["BootError", "Bootloader", "Flash", "FlashError", "PowerCut", "SlotInfo",
           "factory_flash"]
