"""A device's settings, as Zephyr's settings subsystem keeps them, served by SMP's group 3.

Theory of operation. A setting is a name (``reader/format``) and a value (bytes). The device
declares the names it knows (:class:`Setting`: default, longest value, a check), and holds each
value three times over, as a Zephyr application does:

* **runtime**: what ``write`` sets and ``read`` returns (``settings_runtime_set``/``_get``);
* **applied**: what the application acts on, copied from runtime by ``commit`` (each handler's
  ``h_commit``), so several writes take effect together;
* **stored**: what ``save`` put in the settings area of flash, which ``load`` (and every boot)
  brings back into runtime and applies. ``delete`` drops a name from storage at once (as
  ``settings_delete`` does) and puts its runtime value back to its default.

**The settings area** is two flash sectors used in turn (a ping-pong, as NVS and FCB rotate
sectors). ``save`` erases the sector not holding the current record, writes the new record
there, and writes its commit byte last: ``seq`` (u32), ``length`` (u32), CRC-32 of both and
the payload (u32), the payload (a CBOR map name -> bytes), then the commit byte. ``load``
takes the committed record with a good CRC and the highest ``seq``. A power cut anywhere in a
save leaves the old record untouched in the other sector, so a boot finds the old values or
the new ones, never a mix (tests/test_smp_settings.py cuts at every flash operation).

Refusals raise :class:`SettingsRefusal` with Zephyr's settings group code (``group_rc``,
smp's ``SETTINGS_MGMT_ERR``) where it has one, and the generic MGMT_ERR code (``rc``) every
client understands. Pure core: no I/O but the :class:`Flash` it is given.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import cbor2

from firmware_stubs.mcuboot.flash import ERASED, Flash
from protocol.errors import ConfigError, MfdError
from readers.codecs.ascii import AsciiFormat

__all__ = ["NAME_MAX", "PANEL_SETTINGS", "READER_FORMATS", "READER_SETTINGS", "VALUE_MAX",
           "Setting", "SettingsErr", "SettingsRefusal", "SettingsStore", "create_area",
           "reader_line_format"]

#: Zephyr's CONFIG_MCUMGR_GRP_SETTINGS_NAME_LEN default (the terminating NUL excluded here).
NAME_MAX: Final = 32
#: The longest value a device takes (CONFIG_MCUMGR_GRP_SETTINGS_VALUE_LEN).
VALUE_MAX: Final = 64

_RECORD: Final = struct.Struct("<III")  # seq, length, crc32
_COMMITTED: Final = b"\x01"


class SettingsErr(IntEnum):
    """Zephyr's settings group return codes (``SETTINGS_MGMT_ERR_*``)."""

    OK = 0
    UNKNOWN = 1
    KEY_TOO_LONG = 2
    KEY_NOT_FOUND = 3
    READ_NOT_SUPPORTED = 4
    ROOT_KEY_NOT_FOUND = 5
    WRITE_NOT_SUPPORTED = 6
    DELETE_NOT_SUPPORTED = 7


class SettingsRefusal(MfdError):
    """A settings request the device refuses; ``rc`` the MGMT_ERR code, ``group_rc`` the
    settings group's own code (None: the group has none for this, e.g. a value too long)."""

    code = "settings_refused"

    def __init__(self, message: str, rc: int, group_rc: SettingsErr | None = None) -> None:
        super().__init__(message)
        self.rc = rc
        self.group_rc = group_rc


@dataclass(frozen=True, slots=True)
class Setting:
    """A name the device knows. ``check`` returns None for a good value or says what is
    wrong with it."""

    name: str
    default: bytes = b""
    max_len: int = VALUE_MAX
    check: Callable[[bytes], str | None] | None = None


# MGMT_ERR codes used here (packets.MgmtErr; not imported: this core sits below the codec).
_EINVAL, _ENOENT, _EMSGSIZE, _ENOMEM = 3, 5, 7, 2


class SettingsStore:
    """The settings of one device over ``sectors`` (two sector offsets in ``flash``)."""

    def __init__(self, flash: Flash, schema: Sequence[Setting], *,
                 sectors: tuple[int, int] | None = None) -> None:
        self.flash = flash
        self.schema = {s.name: s for s in schema}
        size = flash.sector_size
        self.sectors = sectors if sectors is not None else (0, size)
        self.runtime: dict[str, bytes] = {}
        self.applied: dict[str, bytes] = {}
        self._seq = 0
        self._current: int | None = None  # the sector holding the newest record
        self.commits = 0
        self.load()

    # --- what a handler sees -----------------------------------------------------------------

    def _known(self, name: str) -> Setting:
        if len(name.encode()) > NAME_MAX:
            raise SettingsRefusal(f"setting name {name[:40]!r}... is longer than {NAME_MAX} "
                                  "bytes", _EINVAL, SettingsErr.KEY_TOO_LONG)
        setting = self.schema.get(name)
        if setting is None:
            known = ", ".join(sorted(self.schema))
            raise SettingsRefusal(f"no setting {name!r} on this device (it has: {known})",
                                  _ENOENT, SettingsErr.KEY_NOT_FOUND)
        return setting

    def read(self, name: str) -> bytes:
        setting = self._known(name)
        return self.runtime.get(name, setting.default)

    def write(self, name: str, value: bytes) -> None:
        setting = self._known(name)
        if len(value) > setting.max_len:
            raise SettingsRefusal(f"{name}: a value of {len(value)} bytes is longer than the "
                                  f"{setting.max_len} it takes", _EMSGSIZE)
        problem = setting.check(value) if setting.check is not None else None
        if problem is not None:
            raise SettingsRefusal(f"{name}: {problem}", _EINVAL)
        self.runtime[name] = value

    def delete(self, name: str) -> None:
        setting = self._known(name)
        self.runtime[name] = setting.default
        stored = self._read_stored()
        if name in stored:
            del stored[name]
            self._write_record(stored)

    def commit(self) -> None:
        self.applied = {n: self.runtime.get(n, s.default) for n, s in self.schema.items()}
        self.commits += 1

    def save(self) -> None:
        self._write_record({n: v for n, v in self.runtime.items()
                            if v != self.schema[n].default})

    def load(self) -> None:
        """Runtime values from storage (defaults for what is not stored), then commit."""
        stored = self._read_stored()
        self.runtime = {n: stored.get(n, s.default) for n, s in self.schema.items()}
        self.commit()

    def value(self, name: str) -> bytes:
        """The applied value: what the application uses now."""
        return self.applied.get(name, self.schema[name].default)

    # --- the settings area -------------------------------------------------------------------

    def _record_at(self, base: int) -> tuple[int, dict[str, bytes]] | None:
        size = self.flash.sector_size
        raw = self.flash.read(base, size)
        seq, length, crc = _RECORD.unpack_from(raw)
        end = _RECORD.size + length
        if end >= size or raw[end] == ERASED:
            return None  # never committed (or erased: all-0xFF fields give a huge length)
        payload = raw[_RECORD.size:end]
        if zlib.crc32(raw[:8] + payload) != crc:
            return None
        try:
            values = cbor2.loads(payload)
        except Exception:  # a committed record with a good CRC is ours: cannot happen
            return None
        if not isinstance(values, dict):
            return None
        # A stored value this firmware would not take (an older one's, say) is left out: the
        # default stands in for it, as for a name it does not know.
        return seq, {k: v for k, v in values.items()
                     if isinstance(k, str) and isinstance(v, bytes) and self._takes(k, v)}

    def _takes(self, name: str, value: bytes) -> bool:
        setting = self.schema.get(name)
        return setting is not None and len(value) <= setting.max_len and (
            setting.check is None or setting.check(value) is None)

    def _read_stored(self) -> dict[str, bytes]:
        best: tuple[int, dict[str, bytes]] | None = None
        self._current = None
        for base in self.sectors:
            rec = self._record_at(base)
            if rec is not None and (best is None or rec[0] > best[0]):
                best, self._current = rec, base
        self._seq = best[0] if best is not None else 0
        return dict(best[1]) if best is not None else {}

    def _write_record(self, values: Mapping[str, bytes]) -> None:
        payload = cbor2.dumps(dict(sorted(values.items())))
        size = self.flash.sector_size
        if _RECORD.size + len(payload) + 1 > size:
            raise SettingsRefusal("the settings do not fit the settings area", _ENOMEM)
        a, b = self.sectors
        target = b if self._current == a else a
        seq = self._seq + 1
        head = struct.pack("<II", seq, len(payload))
        if not self.flash.is_erased(target, size):
            self.flash.erase(target)
        self.flash.write(target, head + struct.pack("<I", zlib.crc32(head + payload))
                         + payload)
        self.flash.write(target + _RECORD.size + len(payload), _COMMITTED)  # last: the commit
        self._seq, self._current = seq, target


def create_area(path: str | os.PathLike[str], sector_size: int = 4096) -> Flash:
    """The two-sector settings area in the file ``path``: opened if it exists (a restart),
    else created erased (a new device)."""
    if os.path.exists(path):
        return Flash(path, sector_size=sector_size)
    return Flash.create(path, 2 * sector_size, sector_size=sector_size)


# --- what the emulated devices keep there ------------------------------------------------------

#: ``reader/format``: ``em4100`` sends the RDM6300 binary frame (as before any setting);
#: ``dec`` and ``hex`` send a text line, ``reader/prefix`` + the tag number + ``reader/suffix``
#: + CR, as a keyboard-style reader configured for it does.
READER_FORMATS: Final = ("em4100", "dec", "hex")


def _one_of(choices: Sequence[str]) -> Callable[[bytes], str | None]:
    def check(value: bytes) -> str | None:
        if value.decode("utf-8", "replace") in choices:
            return None
        return f"{value!r} is not one of {', '.join(choices)}"
    return check


def _delimiter(value: bytes) -> str | None:
    try:  # the ASCII reader codec's own rule for delimiters
        AsciiFormat(pre=value)
    except ConfigError as exc:
        return exc.message.replace("'pre'", "prefix/suffix")
    return None


def _printable(value: bytes) -> str | None:
    text = value.decode("utf-8", "replace")
    return None if text and text.isprintable() else "must be printable text, not empty"


READER_SETTINGS: Final = (
    Setting("reader/format", b"em4100", 8, _one_of(READER_FORMATS)),
    Setting("reader/prefix", b"", 8, _delimiter),
    Setting("reader/suffix", b"", 8, _delimiter),
)

#: The panel keeps its identity and where its broker is: applied at its next start (commit
#: records them; the panel's MQTT client is the device app's, configured from its own file).
PANEL_SETTINGS: Final = (
    Setting("panel/device_id", b"", 32, _printable),
    Setting("panel/broker", b"", VALUE_MAX, _printable),
)


def reader_line_format(store: SettingsStore) -> tuple[str, bytes, bytes]:
    """(format, prefix, suffix) as applied (committed) now."""
    return (store.value("reader/format").decode(), store.value("reader/prefix"),
            store.value("reader/suffix"))
