"""``mfd flash``: put a signed MCUboot image on any number of devices at once, safely.

Library functions (the CLI in mfdkit/cli/flash.py only parses and prints). For each device, in
this order, each step only if the one before it passed:

1. **The image** (:func:`load_image`, once for all devices): whole, untampered and signed, else
   refused before any port is opened.
2. **Connect**: on a serial port, find the baud rate (the one asked for, then the fallback list
   fastest first, a short probe each; :func:`~provisioning.smp_device.baud_plan`), then
   negotiate the message size from the device's MCUmgr parameters (with a fallback for devices
   that do not tell; provisioning/smp_device.py).
3. **Skip** a device whose running image has the same hash (confirming it if it was left on
   test by an earlier run that lost the device at its reboot).
4. **Check against the device, before a byte of the image is sent** (:func:`check_for_device`):
   the model it reports, the keys it trusts (or the ``--key`` given), the signature, and no
   downgrade from the version it runs. ``dry_run`` stops here: every check, nothing sent.
5. **Upload with resume**: the first request carries the length and SHA-256 and no data, and
   the device answers with the offset it already holds for that very image (0 for a new one),
   so an interrupted upload goes on where the device's flash says, not from 0. Every lost or
   damaged exchange is retried after a reconnect; the device answers a repeated chunk with the
   offset it expects, so nothing is written twice or skipped.
6. **Verify** the hash the device reports for its upload slot, **test-boot** it (state write
   test, then reset), **wait** for the device to come back, check it runs the new image and
   answers, then **confirm** it; if it came back on its previous image, MCUboot reverted it:
   reported as ``rolled_back``, with the version it runs.

7. **Settings** (``settings``, ``mfd flash --set NAME=VALUE``), after an update or a skip:
   each written, then committed (the device acts on them) and saved (they survive a reset),
   then read back. With no image (``--settings-only``) only steps 2 and 7 run.

Outcomes: ``updated``, ``skipped``, ``ready`` (dry run), ``configured`` (settings only),
``rolled_back``, ``refused`` (the image or the device said no; nothing activated), ``failed``
(the line or the device gave out; run the same command again: it resumes).

Every device's outcome but a dry run's is appended to the fleet ledger (provisioning/ledger.py)
as soon as that device is done, when :func:`flash` is given one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.errors import MfdError
from protocol.redact import redact
from provisioning import image as img
from provisioning.keys import ImgKey, key_id, load_trusted
from provisioning.ledger import Entry, Ledger, LedgerError
from provisioning.smp_device import (
    DeviceError,
    DeviceFacts,
    SlotState,
    SmpDevice,
    baud_plan,
)

__all__ = ["OK_OUTCOMES", "DeviceResult", "FlashImage", "FlashOptions", "Progress",
           "check_for_device", "flash", "flash_device", "ledger_entry", "load_image"]

log = logging.getLogger(__name__)

OK_OUTCOMES = ("updated", "skipped", "ready", "configured")
# Refusals: the image or the device said no, nothing was activated; anything else is "failed".
_REFUSAL_CODES = (*img.REFUSALS, "image_model_unknown", "setting_unknown",
                  "setting_name_too_long", "setting_read_only")


@dataclass(frozen=True, slots=True)
class FlashOptions:
    dry_run: bool = False
    keys: tuple[ImgKey, ...] = ()  # public keys the technician trusts (--key)
    baud: int | None = None  # tried first; then BAUD_FALLBACK (smp_device), fastest first
    probe_s: float = 0.6  # how long a rate is given to answer before the next is tried
    settings: tuple[tuple[str, bytes], ...] = ()  # written, committed, saved (--set)
    timeout_s: float = 2.5  # per request
    retries: int = 4  # per request, each after a reconnect
    mtu: int | None = None  # force the message size instead of negotiating it
    boot_timeout_s: float = 30.0  # for the device to come back after its test reset


@dataclass(frozen=True, slots=True)
class FlashImage:
    path: str
    data: bytes
    info: img.ImageInfo
    sha256: bytes  # of the whole file: what SMP's upload names the transfer by


@dataclass(frozen=True, slots=True)
class Progress:
    port: str
    phase: str  # connect, check, upload, verify, test, reboot, confirm, done
    done: int  # image bytes the device holds
    total: int
    rate: float  # bytes/s of image data over this upload so far
    eta_s: float | None
    baud: int | None = None  # the serial rate in use (None: not found yet, or UDP)


@dataclass(slots=True)
class DeviceResult:
    port: str
    outcome: str = "failed"
    message: str = ""
    code: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    bytes_total: int = 0
    bytes_sent: int = 0  # image data put on the line, retransmissions included
    resumed_from: int = 0  # the offset the device already held
    upload_s: float = 0.0
    seconds: float = 0.0
    mtu: int | None = None
    mtu_negotiated: bool | None = None
    reconnects: int = 0
    late_replies: int = 0  # answers to an earlier attempt, dropped (smp_device._Sequencer)
    model: str | None = None
    slots: list[SlotState] = field(default_factory=list)
    baud: int | None = None  # the rate the device answered at (serial ports)
    bauds_tried: list[int] = field(default_factory=list)  # in order, the one used last
    settings: dict[str, str] = field(default_factory=dict)  # as read back after the save

    @property
    def rate(self) -> float:
        return self.bytes_sent / self.upload_s if self.upload_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port, "outcome": self.outcome, "message": self.message,
                "code": self.code, "from_version": self.from_version,
                "to_version": self.to_version, "bytes_total": self.bytes_total,
                "bytes_sent": self.bytes_sent, "resumed_from": self.resumed_from,
                "upload_s": round(self.upload_s, 3), "bytes_per_s": round(self.rate, 1),
                "seconds": round(self.seconds, 3), "mtu": self.mtu,
                "mtu_negotiated": self.mtu_negotiated, "reconnects": self.reconnects,
                "late_replies": self.late_replies,
                "model": self.model, "baud": self.baud, "bauds_tried": self.bauds_tried,
                "settings": self.settings,
                "slots": [{"slot": s.slot, "version": s.version, "hash": s.hash.hex(),
                           "active": s.active, "confirmed": s.confirmed,
                           "pending": s.pending} for s in self.slots]}


ProgressFn = Callable[[Progress], None]


def load_image(path: str | Path, keys: Sequence[ImgKey] = ()) -> FlashImage:
    """Read and check an image once for every device: refused (MfdError, a code of
    provisioning.image.REFUSALS) unless whole, untampered and signed, and signed by one of
    ``keys`` when keys are given."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MfdError(f"cannot read {path}: {exc.strerror}", code="config_invalid") from None
    info = img.inspect(data)
    if not info.hash_ok:
        raise MfdError("the image's bytes do not match its SHA-256: it was changed or damaged "
                       "after it was built; get the original again", code=img.TAMPERED)
    if info.signature is None:
        raise MfdError("the image is not signed, and devices boot only signed images: sign "
                       "it with `mfd image sign IMAGE --key KEY.pem` (the fleet's key)",
                       code=img.UNSIGNED)
    if keys:
        img.verify(data, list(keys))
    return FlashImage(str(path), data, img.inspect(data), hashlib.sha256(data).digest())


def _version_key(text: str) -> tuple[int, ...]:
    parts = text.replace("+", ".").split(".")
    out = []
    for p in parts[:4]:
        out.append(int(p) if p.isdigit() else 0)
    return tuple(out + [0] * (4 - len(out)))


def check_for_device(image: FlashImage, facts: DeviceFacts, running: SlotState | None,
                     keys: Sequence[ImgKey] = ()) -> None:
    """Refuse (MfdError with an image refusal code) an image this device would refuse or
    should not get: wrong model, a key it does not trust, a bad signature, a downgrade."""
    info = image.info
    if facts.model is not None and info.model != facts.model:
        raise MfdError(f"the image is built for model {info.model or 'none'!r}, the device is "
                       f"{facts.model!r}: use the image built for {facts.model!r}",
                       code=img.WRONG_MODEL)
    if facts.key_ids is not None and info.key_id not in facts.key_ids:
        raise MfdError(f"the image is signed by key {info.key_id}, the device trusts only "
                       f"{', '.join(facts.key_ids)}: sign it with the key the device trusts",
                       code=img.UNKNOWN_KEY)
    trusted = list(keys)
    if facts.public_keys:
        trusted += load_trusted(list(facts.public_keys))
    if not trusted and facts.key_ids is None:
        raise MfdError("the device does not say which keys it trusts: pass the fleet's public "
                       "key with --key KEY.pub.pem so the image's signature is checked here",
                       code=img.UNKNOWN_KEY)
    if trusted:
        if facts.key_ids is not None:
            trusted = [k for k in trusted if key_id(k) in facts.key_ids] or trusted
        img.verify(image.data, trusted, model=facts.model)
    if running is not None and _version_key(info.version) < _version_key(running.version):
        raise MfdError(f"the device runs {running.version}, the image is {info.version}: a "
                       "downgrade, refused; to go back, build that firmware again with a "
                       "higher version than the device runs", code=img.DOWNGRADE)


async def flash_device(port: str, image: FlashImage | None, opts: FlashOptions,
                       progress: ProgressFn | None = None) -> DeviceResult:
    """Flash one device (``image`` None: only its settings); never raises for a device's
    trouble: the result says what happened."""
    res = DeviceResult(port, bytes_total=len(image.data) if image else 0,
                       to_version=image.info.version if image else None)
    started = time.monotonic()
    dev = SmpDevice(port, baud=opts.baud or 115200, timeout_s=opts.timeout_s,
                    retries=opts.retries, mtu=opts.mtu)
    report = progress or (lambda p: None)
    try:
        if image is None:
            await _connect(dev, opts, res, report)
            await _apply_settings(dev, opts, res, report)
            res.outcome = "configured"
            res.message = f"{len(res.settings)} setting(s) written, committed and saved"
        else:
            await _flash(dev, image, opts, res, report)
            if opts.settings and res.outcome in ("updated", "skipped"):
                await _apply_settings(dev, opts, res, report)
                res.message += f"; {len(res.settings)} setting(s) saved"
            elif opts.settings and res.outcome == "ready":
                res.message += f"; would set {len(opts.settings)} setting(s)"
    except MfdError as exc:
        res.message, res.code = exc.message, exc.code
        refused = exc.code in _REFUSAL_CODES or exc.code.startswith("smp_rc_")
        res.outcome = "refused" if refused else "failed"
    finally:
        await dev.close()
        res.seconds = time.monotonic() - started
        res.reconnects = dev.reconnects
        res.late_replies = dev.late_replies
        res.bauds_tried = list(dev.bauds_tried)
    return res


async def _connect(dev: SmpDevice, opts: FlashOptions, res: DeviceResult,
                   progress: ProgressFn) -> None:
    total = res.bytes_total
    progress(Progress(dev.port, "connect", 0, total, 0.0, None))
    await dev.connect_baud(baud_plan(opts.baud), opts.probe_s)
    res.mtu, res.mtu_negotiated = dev.mtu, dev.negotiated
    res.baud = None if dev.port.startswith("udp:") else dev.baud
    progress(Progress(dev.port, "connect", 0, total, 0.0, None, res.baud))


async def _apply_settings(dev: SmpDevice, opts: FlashOptions, res: DeviceResult,
                          progress: ProgressFn) -> None:
    """Write every setting, then commit and save them together, then read them back: a value
    the device kept otherwise than sent is a failure, not a success."""
    progress(Progress(dev.port, "settings", res.bytes_total, res.bytes_total, 0.0, None,
                      res.baud))
    for name, value in opts.settings:
        await dev.write_setting(name, value)
    await dev.commit_settings()
    await dev.save_settings()
    for name, value in opts.settings:
        got = await dev.read_setting(name)
        if got != value:
            # Values quoted redacted: a broker URL may carry a password.
            raise MfdError(redact(f"the device keeps {name} as {got!r}, not {value!r} as "
                                  "sent: run the same command again"), code="setting_not_kept")
        # Shown in the table, the JSON and the ledger: redacted like every shown value.
        res.settings[name] = redact(got.decode("utf-8", "backslashreplace"))

async def _flash(dev: SmpDevice, image: FlashImage, opts: FlashOptions, res: DeviceResult,
                 progress: ProgressFn) -> None:
    total = len(image.data)

    def say(phase: str, done: int = 0) -> None:
        up = res.upload_s or 1e-9
        rate = res.bytes_sent / up if res.bytes_sent else 0.0
        eta = (total - done) / rate if rate > 0 and phase == "upload" else None
        progress(Progress(dev.port, phase, done, total, rate, eta, res.baud))

    await _connect(dev, opts, res, progress)
    say("check")
    facts = await dev.facts()
    res.model = facts.model
    res.slots = await dev.slots()
    running = next((s for s in res.slots if s.active), None)
    res.from_version = running.version if running else None
    if running is not None and running.hash == image.info.hash:
        if running.confirmed:
            res.outcome, res.message = "skipped", f"already runs {running.version}"
        elif opts.dry_run:
            res.outcome, res.message = "ready", "runs this image on test: would confirm it"
        else:
            res.slots = await dev.confirm_running()
            res.outcome = "updated"
            res.message = f"was running {running.version} on test: confirmed"
        say("done", total)
        return
    check_for_device(image, facts, running, opts.keys)
    if opts.dry_run:
        res.outcome = "ready"
        res.message = f"checks passed: would send {total} bytes ({res.from_version} -> " \
                      f"{image.info.version})"
        say("done")
        return
    await _upload(dev, image, res, say)
    say("verify", total)
    res.slots = await dev.slots()
    uploaded = next((s for s in res.slots if not s.active and s.hash == image.info.hash), None)
    if uploaded is None:
        raise MfdError("after the upload the device does not list the image's hash in its "
                       "upload slot: the image did not arrive whole; run the same command "
                       "again", code="hash_mismatch")
    say("test", total)
    slots = await dev.test(image.info.hash)
    if not any(s.pending and s.hash == image.info.hash for s in slots):
        raise MfdError("the device did not mark the image for a test boot: run the same "
                       "command again", code="test_not_pending")
    say("reboot", total)
    for _ in range(3):
        # A reset is never retried blindly: a second reset after the test boot would revert
        # it. Only when the device still lists the image as pending did the reset not arrive.
        await dev.reset()
        await dev.wait_back(opts.boot_timeout_s)
        res.slots = await dev.slots()
        if not any(s.pending and not s.active and s.hash == image.info.hash
                   for s in res.slots):
            break
    running = next((s for s in res.slots if s.active), None)
    if running is None or running.hash != image.info.hash:
        res.outcome = "rolled_back"
        res.code = "rolled_back"
        back = running.version if running else "no image"
        # A reader's MCUboot reverts a test boot nobody confirmed; a panel decides by its own
        # health check (docs/panel-updates.md). Either way the device chose, not the tool.
        res.message = (f"the new image was not confirmed after its test boot: the device went "
                       f"back to {back} by itself, and the previous image runs. Check the "
                       "firmware on one device before the fleet")
        say("done", total)
        return
    say("confirm", total)
    # The new firmware answers, so it may stay. Retried like any request: one damaged answer
    # is line noise, and failing here would leave the image on test for a reset to revert.
    await dev.echo("health")
    res.slots = await dev.confirm_running()
    if not any(s.active and s.confirmed and s.hash == image.info.hash for s in res.slots):
        raise MfdError("the device did not confirm the new image; a reset would revert it: "
                       "run the same command again to confirm", code="not_confirmed")
    res.outcome, res.message = "updated", f"{res.from_version} -> {image.info.version}"
    say("done", total)


async def _upload(dev: SmpDevice, image: FlashImage, res: DeviceResult,
                  say: Callable[[str, int], None]) -> None:
    data, total = image.data, len(image.data)
    t0 = time.monotonic()
    # The probe: length and SHA-256, no data. The device answers with what it already holds
    # of this very image (a resume) or 0, and has written nothing for it.
    try:
        offset = await dev.upload_probe(total, image.sha256)
    except DeviceError as exc:
        if not exc.code.startswith("smp_rc_"):
            raise
        offset = 0  # a device that wants data with its first chunk: start with one
    res.resumed_from = offset
    say("upload", offset)
    sent_before = dev.data_sent
    stalled = 0
    while offset < total:
        ack = await dev.upload_chunk(data, offset, image.sha256)
        res.bytes_sent = dev.data_sent - sent_before
        # The device's offset is the truth (it may have rebooted and kept only whole sectors),
        # but one that never moves forward would keep us here for ever.
        stalled = stalled + 1 if ack.off is not None and ack.off <= offset else 0
        if ack.off is None or not 0 <= ack.off <= total or stalled > 3:
            raise MfdError(f"the device answered offset {ack.off} to a chunk at {offset}: run "
                           "the same command again", code="bad_offset")
        offset = ack.off
        res.upload_s = time.monotonic() - t0
        say("upload", offset)
        if ack.match is False:
            raise MfdError("the device says the uploaded bytes do not match the image's "
                           "SHA-256: run the same command again", code="hash_mismatch")
    res.upload_s = time.monotonic() - t0


# The ledger's word for each outcome; a dry run ("ready") changed nothing and is not recorded.
_LEDGER_RESULTS = {"updated": "ok", "skipped": "skipped", "refused": "refused",
                   "rolled_back": "rolled_back", "failed": "failed"}


def ledger_entry(res: DeviceResult, image: FlashImage, who: str = "") -> Entry | None:
    """The ledger's line for one device's result (None for a dry run's)."""
    result = _LEDGER_RESULTS.get(res.outcome)
    if result is None:
        return None
    device = {"port": res.port}
    if res.model:
        device["model"] = res.model
    slots = tuple({"slot": s.slot, "version": s.version, "hash": s.hash.hex(),
                   "active": s.active, "confirmed": s.confirmed, "pending": s.pending}
                  for s in res.slots)
    return Entry(action="flash", device=device, result=result,
                 code=None if result == "ok" else (res.code or res.outcome),
                 message=res.message, image_hash=image.info.hash.hex(),
                 key_id=image.info.key_id, version=image.info.version,
                 from_version=res.from_version, slots=slots, who=who,
                 details={"image": Path(image.path).name, "bytes_sent": res.bytes_sent,
                          "resumed_from": res.resumed_from, "seconds": round(res.seconds, 3),
                          "reconnects": res.reconnects,
                          "late_replies": res.late_replies})


def flash(ports: Sequence[str], image: FlashImage | None, opts: FlashOptions,
          progress: ProgressFn | None = None, *, ledger: Ledger | None = None,
          who: str = "") -> list[DeviceResult]:
    """Flash every port at once (one asyncio task each); results in the order of ``ports``.
    ``image`` None: only the settings (nothing goes to the ledger then). With ``ledger``,
    each device's result is appended to it as soon as that device is done (``who``: the
    technician; the OS user when empty)."""
    if len(set(ports)) != len(ports):
        raise MfdError("a port is given twice: give each device once", code="config_invalid")

    async def one(port: str) -> DeviceResult:
        res = await flash_device(port, image, opts, progress)
        entry = ledger_entry(res, image, who) if ledger is not None and image else None
        if ledger is not None and entry is not None:
            try:
                # fsync under a lock: in a thread, so the other devices' lines keep moving.
                await asyncio.to_thread(ledger.append, entry)
            except LedgerError as exc:
                log.error("%s: %s", port, exc.message)
                res.message += f" (not in the ledger: {exc.message})"
        return res

    async def run() -> list[DeviceResult]:
        return list(await asyncio.gather(*(one(p) for p in ports)))

    return asyncio.run(run())
