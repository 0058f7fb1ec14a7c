"""An emulated copier panel (the controller running the device app), managed over SMP on UDP,
that commits an update only once the new app has proven itself.

What a technician's tool sees is a Zephyr-style SMP server on UDP (firmware_stubs/smp/udp.py)
with the same groups as the reader (OS echo/reset/params/info, image state/upload/test/confirm:
server.py). What is different is who says an update is good:

* **A/B slots.** The app bundle is an MCUboot image (``mfd image build`` of the bundle) and the
  two slots are MCUboot's primary and secondary, run by the same emulated bootloader as the
  reader (firmware_stubs/mcuboot). Its swap-with-revert *is* an A/B scheme in the way that
  matters here: the previous bundle stays whole in the other slot until the new one is
  confirmed, and any reset before that brings it back. Reusing it (instead of a pointer-flip A/B
  loader) keeps one bootloader whose power-cut safety is already swept write by write; what it
  lacks, a boot counter and a health check, is added above it, here.
* **The trial.** When a boot finds the running image on test (MCUboot's "revert pending"), the
  panel does not wait for anyone to confirm it: it starts the app (the :data:`AppStarter` hook:
  in tests a real ``device_app.runner.Device`` on a private Mosquitto) and gives it
  ``health_timeout_s`` to pass *its own* health check (for the device app: connected to the
  broker, its link says up). Healthy: the **device confirms itself** (``Bootloader.confirm``).
  Crashed or never healthy: the app is stopped and started again, up to ``attempts`` starts
  within ``trial_deadline_s``; then the panel resets itself and MCUboot reverts to the previous
  slot. "Mark good" runs only after the health check passed, and "roll back" needs nobody. The
  rule is one table (:data:`TRIAL`) that decides each next step; the loop only carries it out.
* **The boot counter** (:class:`BootCounter`) records each start of the image on trial, in its
  own flash (a file, with the same power-cut injector) *before* the start, so the count
  survives whatever the app does to the board. A reset during a trial reverts (MCUboot's rule);
  the boot after it finds the record of a trial that did not finish, reports it and clears it.
* **Deaf while deciding.** SMP is served only between boots: from a reset until the trial is
  decided (confirmed, or rolled back) the panel answers nothing, as a device whose management
  agent starts after its boot-health check. A tool that resets the panel and waits for it
  (``mfd flash``) therefore finds it either on the new bundle, already confirmed, or back on
  the old one: the tool's own confirm afterwards is a no-op, never the decision.

Payload markers (:func:`marked_app`): a bundle whose payload starts with :data:`CRASH_MARK`
crashes as it starts, one that starts with :data:`OFFLINE_MARK` runs but never reaches the
broker; ``mfd image build`` of a file holding either rehearses a rollback.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from firmware_stubs.mcuboot.bootloader import PRIMARY, Bootloader
from firmware_stubs.mcuboot.flash import ERASED, Flash, PowerCut
from firmware_stubs.smp.common import PoweredDevice
from firmware_stubs.smp.packets import (
    ImageStateWrite,
    SmpPacketError,
    SmpRequestError,
    decode_packet,
    parse_request,
)
from firmware_stubs.smp.server import DeviceIdentity, Reply, SmpServer
from firmware_stubs.smp.settings import PANEL_SETTINGS, SettingsStore
from firmware_stubs.smp.udp import DEFAULT_PORT, UdpEndpoint
from provisioning import image as img

if TYPE_CHECKING:
    from device_app.config import DeviceConfig
    from device_app.runner import Device

__all__ = ["CRASH_MARK", "OFFLINE_MARK", "TRIAL", "UNREACHABLE_BROKER", "AppHandle",
           "AppStarter", "BootCounter", "Last", "PanelDevice", "Step", "TrialRecord", "decide",
           "device_app_starter", "marked_app"]

log = logging.getLogger(__name__)

CRASH_MARK = b"mfd-app:crash-at-start"
OFFLINE_MARK = b"mfd-app:never-connects"


class AppHandle(Protocol):
    """The app the panel runs: ``healthy`` is its own health check (raising = it crashed)."""

    def healthy(self) -> bool: ...
    def stop(self) -> None: ...


#: Starts the app in a bundle's payload; raising means the app crashed as it started.
AppStarter = Callable[[bytes], AppHandle]


def marked_app(start: Callable[[bool], AppHandle]) -> AppStarter:
    """The emulation's app: ``start(True)`` starts the real app, ``start(False)`` the same app
    pointed where no broker answers (:data:`OFFLINE_MARK`); :data:`CRASH_MARK` crashes."""

    def starter(payload: bytes) -> AppHandle:
        if payload.startswith(CRASH_MARK):
            raise RuntimeError("the app crashed at start (its bundle says so)")
        return start(not payload.startswith(OFFLINE_MARK))

    return starter


class _DeviceAppHandle:
    """A running ``device_app.runner.Device``: healthy once its MQTT link is up."""

    def __init__(self, device: Device) -> None:
        self.device = device

    def healthy(self) -> bool:
        return bool(self.device.link.connected)

    def stop(self) -> None:
        self.device.stop()


#: Where the offline bundle's app looks for its broker: a port nothing listens on.
UNREACHABLE_BROKER = "mqtt://127.0.0.1:1"


def device_app_starter(cfg: DeviceConfig, password: str) -> Callable[[bool], AppHandle]:
    """Start the real device app (``device_app.runner.Device``) with ``cfg``; ``False``: the
    same app with its broker URL pointing where nothing answers."""
    from device_app.runner import Device

    def start(reachable: bool) -> AppHandle:
        use = cfg if reachable else replace(cfg, broker_url=UNREACHABLE_BROKER,
                                            broker_fallbacks=())
        # wait=0: the panel's health check does the waiting, against its own deadline.
        return _DeviceAppHandle(Device(use, password).start(wait=0))

    return start


# --- the boot counter ----------------------------------------------------------------------

_ENTRY = 16  # hash prefix (8) | attempts (1) | unused | commit byte (last)
_HASH = 8
_COMMIT_AT = _ENTRY - 1
_COMMITTED = 0x00


@dataclass(frozen=True, slots=True)
class TrialRecord:
    hash8: bytes  # the first 8 bytes of the image's SHA-256
    attempts: int


class BootCounter:
    """Starts of the image on trial, as an append-only log in the first sector of ``flash``.

    Each entry is written, then committed by a last one-byte write, so a cut leaves either the
    previous count or the new one: a torn entry or a torn commit byte (a flag caught
    mid-program reads as neither 0xFF nor 0x00) is not committed and does not count. A full or
    torn sector (written bytes after an erased gap: an erase the power cut short) is erased
    before the next entry; clearing is an erase. A cut during an erase loses the count, which
    can only give the image on trial more starts, never confirm it: the trial's deadline still
    bounds it, and a reset reverts it anyway."""

    def __init__(self, flash: Flash) -> None:
        self.flash = flash
        self.size = flash.sector_size
        self.capacity = self.size // _ENTRY

    def _scan(self) -> tuple[TrialRecord | None, int, bool]:
        mem = self.flash.read(0, self.size)
        latest: TrialRecord | None = None
        free: int | None = None
        torn = False
        for i in range(self.capacity):
            e = mem[i * _ENTRY:(i + 1) * _ENTRY]
            if e.count(ERASED) == _ENTRY:
                if free is None:
                    free = i
                continue
            if free is not None:
                torn = True  # written bytes after a gap: an erase that did not finish
                break
            if e[_COMMIT_AT] == _COMMITTED:
                latest = TrialRecord(bytes(e[:_HASH]), e[_HASH])
        return latest, self.capacity if free is None else free, torn

    def read(self) -> TrialRecord | None:
        """The last committed record, None when there is no trial on record."""
        return self._scan()[0]

    def record(self, image_hash: bytes, attempts: int) -> None:
        """Record ``attempts`` starts of the image with SHA-256 ``image_hash``."""
        _, free, torn = self._scan()
        if torn or free >= self.capacity:
            self.flash.erase(0)
            free = 0
        at = free * _ENTRY
        self.flash.write(at, image_hash[:_HASH] + bytes([min(attempts, 0xFE)]))
        self.flash.write(at + _COMMIT_AT, bytes([_COMMITTED]))  # last: the commit

    def clear(self) -> None:
        if not self.flash.is_erased(0, self.size):
            self.flash.erase(0)


# --- the decision ---------------------------------------------------------------------------

class Step(enum.Enum):
    """What the panel does next in a boot."""

    RUN = "run the confirmed app"
    START = "start the app on trial (one more start, recorded first)"
    CONFIRM = "confirm the bundle on trial"
    ROLL_BACK = "reset, so MCUboot reverts to the previous slot"


class Last(enum.Enum):
    """How the last start on trial went (NONE: no start yet in this boot)."""

    NONE = "none"
    HEALTHY = "healthy"
    FAILED = "failed"  # crashed, or not healthy in time


def _rule(on_trial: bool, last: Last, starts_left: bool, time_left: bool) -> Step:
    if not on_trial:
        return Step.RUN
    if last is Last.HEALTHY:
        return Step.CONFIRM
    return Step.START if starts_left and time_left else Step.ROLL_BACK


#: The trial's rule, whole: (on trial, last start, any start left, any time left) -> the next
#: step. "Mark good" follows a healthy start and nothing else; a failed start with starts and
#: time left starts again; nothing left rolls back.
TRIAL: dict[tuple[bool, Last, bool, bool], Step] = {
    (on, last, left, t): _rule(on, last, left, t)
    for on in (True, False) for last in Last for left in (True, False) for t in (True, False)}


def decide(*, on_trial: bool, last: Last, starts: int, attempts: int,
           time_left: float) -> Step:
    return TRIAL[(on_trial, last, starts < attempts, time_left > 0)]


# --- the panel -----------------------------------------------------------------------------

class PanelDevice(PoweredDevice):
    """The emulated panel: :attr:`address` is ``udp:HOST:PORT`` (``port=0``: a free one).
    Boots in its own thread from construction (the first boot may be a trial) until
    :meth:`close`. :attr:`events` tells what it decided, in order, for tests and the CLI:
    ``booted VERSION``, ``attempt N failed: WHY``, ``confirmed VERSION``, ``rolled_back
    VERSION``, ``trial_interrupted``, ``power_cut``."""

    def __init__(self, bootloader: Bootloader, identity: DeviceIdentity, app: AppStarter,
                 counter_flash: Flash, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 attempts: int = 3, health_timeout_s: float = 10.0,
                 trial_deadline_s: float = 25.0, buf_size: int = 2048,
                 settings: Flash | None = None) -> None:
        if attempts < 1 or health_timeout_s <= 0 or trial_deadline_s <= 0:
            raise ValueError("attempts must be 1 or more and the timeouts above 0")
        self.bootloader = bootloader
        self.identity = identity
        self.app = app
        self.counter = BootCounter(counter_flash)
        self.attempts = attempts
        self.health_timeout_s = health_timeout_s
        self.trial_deadline_s = trial_deadline_s
        self.buf_size = buf_size
        self.boots = 0
        self.oversize = 0  # datagrams dropped for being longer than buf_size
        #: For each confirm a tool sent: whether the running image was confirmed already.
        self.tool_confirms: list[bool] = []
        self.events: list[str] = []
        self.dead = False  # the power was cut; reopen the flash files for the next boot
        #: Set while the boot is decided and SMP is served; clear while (re)booting.
        self.serving = threading.Event()
        self._cond = threading.Condition()
        self._running_app: AppHandle | None = None
        self._stopping = threading.Event()
        # panel/device_id and panel/broker (settings.py), served over SMP's group 3 when given
        # a settings area; loaded again at every power-on.
        self._settings_flash = settings
        self.settings: SettingsStore | None = None
        self._server = SmpServer(bootloader, identity, buf_size=buf_size)
        self.endpoint = UdpEndpoint(self._handle, host=host, port=port, on_reset=self._reboot)
        self.endpoint.start(boot=self._power_on)

    @property
    def address(self) -> str:
        return self.endpoint.address

    def close(self) -> None:
        """Power off: stop serving and stop the app. Idempotent."""
        self._stopping.set()
        self.endpoint.close()
        self._stop_app()

    def app_healthy(self) -> bool:
        """Whether an app runs and passes its health check now."""
        app = self._running_app
        return app is not None and app.healthy()

    @property
    def running_version(self) -> str | None:
        slot = self.bootloader.running() if not self.dead else None
        return slot.version if slot is not None else None

    def wait_for(self, event: str, timeout_s: float, *, count: int = 1) -> bool:
        """Wait until ``count`` events start with ``event``; False at the timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(e.startswith(event) for e in self.events) >= count, timeout_s)

    def _note(self, event: str) -> None:
        log.info("panel %s: %s", self.address, event)
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    # --- SMP ---------------------------------------------------------------------------------

    def _handle(self, data: bytes) -> Reply:
        if len(data) > self.buf_size:
            # Longer than the buffer it advertised: a device's network buffer cannot hold it,
            # and the datagram is lost whole (there is no partial datagram to answer).
            self.oversize += 1
            return Reply(None)
        try:
            request = parse_request(decode_packet(data))
        except (SmpPacketError, SmpRequestError):
            request = None
        if isinstance(request, ImageStateWrite) and request.confirm:
            # Whether the image was already confirmed when a tool asked: the device decides.
            running = self.bootloader.running()
            self.tool_confirms.append(running is not None and running.confirmed)
        try:
            return self._server.handle(data)
        except PowerCut:
            # Cut while writing an upload or a request: the board is off.
            self.dead = True
            self._stop_app()
            self._note("power_cut")
            self.endpoint.stop_serving()
            return Reply(None)

    # --- boots -------------------------------------------------------------------------------

    def _reboot(self) -> None:
        self._power_on()

    def _power_on(self) -> None:
        self.serving.clear()
        self._stop_app()
        try:
            self._boot()
        except PowerCut:
            # The board is off: nothing more happens until someone reopens the flash files.
            self.dead = True
            self._stop_app()
            self._note("power_cut")
            self.endpoint.stop_serving()
            return
        # The server starts afresh: what RAM held (an upload's announced length) is gone.
        if self._settings_flash is not None:
            self.settings = SettingsStore(self._settings_flash, PANEL_SETTINGS)
        self._server = SmpServer(self.bootloader, self.identity, buf_size=self.buf_size,
                                 settings=self.settings)
        self.serving.set()

    def _boot(self) -> None:
        bl = self.bootloader
        bl.boot()
        self.boots += 1
        running = bl.running()
        stale = self.counter.read()
        if running is None:
            self._note("booted nothing: no bootable image")
            return
        self._note(f"booted {running.version}")
        if decide(on_trial=not running.confirmed, last=Last.NONE, starts=0,
                  attempts=self.attempts, time_left=self.trial_deadline_s) is Step.RUN:
            if stale is not None:
                # A trial that a reset ended (MCUboot reverted it, or it was confirmed just
                # before the cut): it is over either way.
                self._note(f"trial_interrupted after {stale.attempts} start(s)")
            self.counter.clear()  # no trial: no record, nor the remains of a torn one
            self._start_quietly()
            return
        self._trial(running.hash, running.version)

    def _payload(self) -> bytes:
        data = self.bootloader.flash.read(self.bootloader.layout.slot(PRIMARY),
                                          self.bootloader.layout.image_max)
        p = img.parse(data)
        return data[p.header_size:p.header_size + p.payload_size]

    def _trial(self, image_hash: bytes, version: str) -> None:
        # Under MCUboot a reset ends a trial (it reverts), so this is 0 in practice; read
        # anyway, so the count would hold under a loader whose trial survives a reset.
        record = self.counter.read()
        starts = record.attempts if record is not None and record.hash8 == image_hash[:_HASH] \
            else 0
        deadline = time.monotonic() + self.trial_deadline_s
        payload = self._payload()
        last = Last.NONE
        while not self._stopping.is_set():
            step = decide(on_trial=True, last=last, starts=starts, attempts=self.attempts,
                          time_left=deadline - time.monotonic())
            if step is Step.CONFIRM:
                self.bootloader.confirm()  # the device's own "mark good", after the check
                self.counter.clear()
                self._note(f"confirmed {version} after {starts} start(s)")
                return
            if step is Step.ROLL_BACK:
                break
            starts += 1
            self.counter.record(image_hash, starts)  # before the start: a crash still counts
            why = self._attempt(payload, min(deadline, time.monotonic()
                                             + self.health_timeout_s))
            last = Last.HEALTHY if why is None else Last.FAILED
            if why is not None:
                self._note(f"attempt {starts} failed: {why}")
        if self._stopping.is_set():
            return
        # Give up: the reset MCUboot reverts on, then the count is over.
        self.bootloader.boot()
        self.boots += 1
        self.counter.clear()
        back = self.bootloader.running()
        self._note(f"rolled_back {version} -> {back.version if back else 'nothing'}")
        self._start_quietly()

    def _attempt(self, payload: bytes, until: float) -> str | None:
        """Start the app and wait for its health; None when healthy, else why not."""
        try:
            app = self.app(payload)
        except Exception as exc:  # the app is foreign code: whatever it raises is its crash
            return f"crashed at start: {exc}"
        self._running_app = app
        try:
            while time.monotonic() < until:
                if app.healthy():
                    return None
                if self._stopping.wait(0.02):
                    break
        except Exception as exc:  # its health check blew up: a crash too
            self._stop_app()
            return f"crashed: {exc}"
        self._stop_app()
        return "not healthy in time (no broker connection)"

    def _start_quietly(self) -> None:
        """Run the confirmed app; it crashing changes nothing (there is nothing to go back to)."""
        try:
            self._running_app = self.app(self._payload())
        except Exception as exc:  # foreign code: a crash of the confirmed app stops no boot
            log.warning("panel %s: the confirmed app does not start: %s", self.address, exc)

    def _stop_app(self) -> None:
        app, self._running_app = self._running_app, None
        if app is not None:
            try:
                app.stop()
            except Exception as exc:  # foreign code again: stopping must not stop the board
                log.warning("panel: stopping the app: %s", exc)
