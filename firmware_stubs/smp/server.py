"""The emulated reader's SMP server: a packet in, a response packet out (sans-I/O).

Theory of operation. The server serves the groups a technician's tools use on a reader:

* OS (group 0): echo, reset (the reply goes out first, then the caller reboots the device),
  MCUmgr parameters (the reassembly buffer a client may fill: how the MTU is negotiated) and
  application info (what this device is: its model and the keys its bootloader trusts, so a
  tool can refuse a wrong image before it sends a byte);
* image (group 1): state read and write (test, confirm), upload with resume, erase;
* settings (group 3), when the device has a :class:`SettingsPort`
  (firmware_stubs/smp/settings.py): read, write, delete, commit, load and save by name. Its
  refusals for a name (unknown, too long) answer with the settings group's own code in a
  version 1 request (``{"err": {"group": 3, "rc": ...}}``, as Zephyr does), else the generic
  code with its reason.

It owns no flash and no image logic: the :class:`BootloaderPort` (MCUboot's semantics, in
firmware_stubs/mcuboot) decides everything, and refuses with an exception carrying the image
group's return code ``rc``, which the server answers with. The server adds only what SMP itself
defines: an upload chunk at another offset than the one expected is answered with the expected
offset and not written (so a client whose reply was lost re-synchronises, as with Zephyr's
img_mgmt), and the last chunk's reply carries ``match`` when the client gave a SHA-256.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from firmware_stubs.smp.packets import (
    AppInfoRead,
    Echo,
    ImageErase,
    ImageStateRead,
    ImageStateWrite,
    ImageUpload,
    MgmtErr,
    ParamsRead,
    Reset,
    SettingDelete,
    SettingRead,
    SettingsCommit,
    SettingsLoad,
    SettingsSave,
    SettingWrite,
    SmpPacketError,
    SmpRequestError,
    decode_packet,
    encode_error,
    encode_response,
    parse_request,
)
from protocol.errors import MfdError

__all__ = ["BootloaderPort", "DeviceIdentity", "Reply", "SettingsPort", "SlotView",
           "SmpServer"]

log = logging.getLogger(__name__)



class SlotView(Protocol):
    """One slot as the bootloader reports it (``SlotInfo`` in firmware_stubs/mcuboot)."""

    @property
    def slot(self) -> int: ...
    @property
    def version(self) -> str: ...
    @property
    def hash(self) -> bytes: ...
    @property
    def bootable(self) -> bool: ...
    @property
    def pending(self) -> bool: ...
    @property
    def confirmed(self) -> bool: ...
    @property
    def active(self) -> bool: ...
    @property
    def permanent(self) -> bool: ...


class BootloaderPort(Protocol):
    """What the server needs of the bootloader (firmware_stubs/mcuboot's ``Bootloader``)."""

    def boot(self) -> None: ...
    def running(self) -> SlotView | None: ...
    def slots(self) -> Sequence[SlotView]: ...
    def upload(self, offset: int, data: bytes, *, total: int | None = None,
               sha: bytes | None = None) -> int: ...
    def upload_offset(self) -> int: ...
    def test(self, sha: bytes) -> None: ...
    def confirm(self, sha: bytes | None = None) -> None: ...
    def erase_secondary(self) -> None: ...


class SettingsPort(Protocol):
    """What the server needs of the device's settings (``SettingsStore`` in settings.py); a
    refusal raises an MfdError with ``rc`` (MGMT_ERR) and ``group_rc`` (settings group code
    or None)."""

    def read(self, name: str) -> bytes: ...
    def write(self, name: str, value: bytes) -> None: ...
    def delete(self, name: str) -> None: ...
    def commit(self) -> None: ...
    def save(self) -> None: ...
    def load(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What application info reports: ``model`` and the key ids (provisioning.keys.key_id)
    and public keys (DER) the bootloader trusts."""

    model: str
    key_ids: tuple[str, ...] = ()
    public_keys: tuple[bytes, ...] = ()
    name: str = "mfd-reader"
    firmware: str = "mfdkit-reader"


def app_info_text(identity: DeviceIdentity, running: str | None) -> str:
    """The application info line: space-separated ``key=value`` words after the name, so a
    person reads it in smpmgr and a tool parses it (provisioning/smp_device.py)."""
    words = [identity.firmware, identity.name, f"version={running or 'none'}",
             f"model={identity.model}"]
    if identity.key_ids:
        words.append("keys=" + ",".join(identity.key_ids))
    if identity.public_keys:
        words.append("pubkeys=" + ",".join(k.hex() for k in identity.public_keys))
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class Reply:
    """The response packet (``None``: nothing to answer) and whether to reboot after it."""

    packet: bytes | None
    reset: bool = False


class SmpServer:
    """Serve SMP packets for one device. ``buf_size`` is the reassembly buffer advertised by
    the MCUmgr parameters (``params=False`` answers that command "not supported", like an
    older Zephyr, so clients fall back to their defaults)."""

    def __init__(self, bootloader: BootloaderPort, identity: DeviceIdentity, *,
                 buf_size: int = 2048, buf_count: int = 4, params: bool = True,
                 settings: SettingsPort | None = None) -> None:
        self.bootloader = bootloader
        self.settings = settings
        self.identity = identity
        self.buf_size = buf_size
        self.buf_count = buf_count
        self.params = params
        self._total: int | None = None  # the upload in progress, as its first chunk said
        self._sha: bytes | None = None
        self.requests = 0
        self.upload_bytes = 0  # upload data received (written or not), for tests and benches
        self.upload_requests = 0  # upload requests received, the empty probe included

    def handle(self, data: bytes) -> Reply:
        try:
            packet = decode_packet(data)
        except SmpPacketError as exc:
            # A packet that passed its frame's CRC but is not SMP: nothing to answer to (no
            # sequence number to trust), as a device drops it.
            log.debug("dropped: %s", exc)
            return Reply(None)
        self.requests += 1
        try:
            request = parse_request(packet)
        except SmpRequestError as exc:
            return Reply(encode_error(packet.header, exc.rc, reason=exc.message))
        try:
            if isinstance(request, ImageUpload):
                self.upload_requests += 1
                self.upload_bytes += len(request.data)
            body, reset = self._serve(request)
        except SmpRequestError as exc:
            return Reply(encode_error(packet.header, exc.rc, reason=exc.message))
        except MfdError as exc:  # the bootloader's refusal
            rc = getattr(exc, "rc", MgmtErr.EUNKNOWN)
            log.info("refused %s: %s", type(request).__name__, exc.message)
            group_rc = getattr(exc, "group_rc", None)
            if group_rc is not None:
                return Reply(encode_error(packet.header, int(rc), group_rc=int(group_rc),
                                          reason=exc.message))
            # The generic code with the reason: the bootloader's codes are MGMT_ERR ones,
            # and its reasons say what to do, which a technician's tool can show.
            return Reply(encode_error(packet.header, int(rc), reason=exc.message))
        return Reply(encode_response(packet.header, body), reset)

    def _serve(self, request: object) -> tuple[dict[str, object], bool]:
        bl = self.bootloader
        if isinstance(request, Echo):
            return {"r": request.d}, False
        if isinstance(request, Reset):
            return {}, True
        if isinstance(request, ParamsRead):
            if not self.params:
                raise SmpRequestError("MCUmgr parameters not supported", MgmtErr.ENOTSUP)
            return {"buf_size": self.buf_size, "buf_count": self.buf_count}, False
        if isinstance(request, AppInfoRead):
            running = bl.running()
            return {"output": app_info_text(self.identity,
                                            running.version if running else None)}, False
        if isinstance(request, ImageStateRead):
            return self._images(), False
        if isinstance(request, (SettingRead, SettingWrite, SettingDelete, SettingsCommit,
                                SettingsLoad, SettingsSave)):
            return self._settings(request), False
        if isinstance(request, ImageStateWrite):
            if request.confirm:
                bl.confirm(request.hash)
            elif request.hash is None:
                raise SmpRequestError("a test needs the image's hash", MgmtErr.EINVAL)
            else:
                bl.test(request.hash)
            return self._images(), False
        if isinstance(request, ImageErase):
            if request.slot != 1:
                raise _img_error("only the secondary slot (1) can be erased", MgmtErr.EINVAL)
            bl.erase_secondary()
            self._total = self._sha = None
            return {}, False
        assert isinstance(request, ImageUpload)
        return self._upload(request), False

    def _settings(self, request: object) -> dict[str, object]:
        store = self.settings
        if store is None:
            raise SmpRequestError("this device has no settings", MgmtErr.ENOTSUP)
        if isinstance(request, SettingRead):
            value = store.read(request.name)
            body: dict[str, object] = {"val": value}
            if request.max_size is not None and len(value) > request.max_size:
                # Zephyr cuts the value to what the client takes and says how long it is.
                body = {"val": value[:request.max_size], "max_size": len(value)}
            return body
        if isinstance(request, SettingWrite):
            store.write(request.name, request.val)
        elif isinstance(request, SettingDelete):
            store.delete(request.name)
        elif isinstance(request, SettingsCommit):
            store.commit()
        elif isinstance(request, SettingsLoad):
            store.load()
        else:
            store.save()
        return {}

    def _upload(self, req: ImageUpload) -> dict[str, object]:
        bl = self.bootloader
        if req.image != 0:
            raise _img_error(f"image {req.image}: this device has one image pair",
                             MgmtErr.EINVAL)
        if req.off == 0:
            if req.len is None:
                raise SmpRequestError("the first chunk must give 'len'", MgmtErr.EINVAL)
            nxt = bl.upload(0, req.data, total=req.len, sha=req.sha)
            self._total, self._sha = req.len, req.sha
        else:
            expected = bl.upload_offset()
            if req.off != expected:
                # A repeated or early chunk (its reply, or an earlier chunk, was lost): say
                # where to go on from, write nothing.
                return {"off": expected}
            nxt = bl.upload(req.off, req.data)
        body: dict[str, object] = {"off": nxt}
        if self._total is not None and nxt == self._total and self._sha is not None:
            body["match"] = True  # the bootloader checked the SHA-256 or refused above
        return body

    def _images(self) -> dict[str, object]:
        images = []
        for s in self.bootloader.slots():
            images.append({"image": 0, "slot": s.slot, "version": s.version, "hash": s.hash,
                           "bootable": s.bootable, "pending": s.pending,
                           "confirmed": s.confirmed, "active": s.active,
                           "permanent": s.permanent})
        return {"images": images}


class ImageRefusal(MfdError):
    """A refusal of the server's own, with an MGMT_ERR code (like the bootloader's)."""

    code = "smp_refused"

    def __init__(self, message: str, rc: int) -> None:
        super().__init__(message)
        self.rc = rc


def _img_error(message: str, rc: int) -> MfdError:
    return ImageRefusal(message, rc)
