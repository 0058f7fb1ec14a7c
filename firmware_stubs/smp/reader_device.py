"""An emulated card reader with an MCUboot bootloader, managed over SMP on a pseudo-terminal.

What a technician's tool sees is what a Zephyr reader with ``CONFIG_MCUMGR_TRANSPORT_UART``
shows on its USB-serial port: SMP serial frames (firmware_stubs/smp/serial_framing.py) carrying
SMP packets (packets.py) to the server (server.py), whose image commands go to the bootloader
(firmware_stubs/mcuboot), whose slots live in a flash file that survives restarts.

The parts that make it an honest stand-in:

* **The line is paced** at ``baud`` (8N1: 10 bit times a byte) when given: a request is not
  answered before its last byte would have arrived, and a reply's lines leave no faster than
  the line carries them. A pty by itself moves megabytes a second, which would flatter any
  throughput figure. ``baud=None`` turns pacing off, for fast tests.
* **A wrong rate is heard as garbage**: with ``baud`` given, the reader reads the speed the
  client set on the pty (firmware_stubs/smp/uart.py) and, when it is not ``baud``, garbles what
  it receives and what it sends, as a UART at the wrong rate does (:attr:`garbled_bytes`).
* **Settings** (``settings``: the flash of its settings area; firmware_stubs/smp/settings.py):
  served over SMP's group 3 and loaded at every boot; the badge output follows the committed
  ``reader/format``, ``reader/prefix`` and ``reader/suffix``.
* **A reset reboots**: the reply goes out, then the device is deaf for ``boot_s`` (bytes sent to
  a rebooting board are lost), the bootloader runs (``Bootloader.boot()``: swap, revert, or
  boot the primary) and the SMP server starts afresh (RAM state such as the upload's expected
  length is gone; what the flash holds is not).
* **It keeps reading badges**: the reader application runs whenever the bootloader has booted an
  image. Badges come out on a *second* pty (:attr:`ReaderDevice.badge_port`), as EM4100
  (RDM6300) frames written by the existing :class:`~firmware_stubs.serial_readers.Em4100Stub`,
  so the unchanged serial reader adapter reads them; a second port keeps card data out of the
  SMP line, where a tool would have to tell the two apart. While rebooting, or with no bootable
  image, it reads nothing.
* **Firmware that crashes** at start (``crashing_versions``): the board resets itself at once,
  before anything can confirm the image, so a test swap is reverted, as MCUboot does.
* **Faults on the line** for tests: ``rx_fault``/``tx_fault`` rewrite the bytes in each
  direction (flip, drop, duplicate) and :attr:`mute` makes the device deaf and silent (the
  cable pulled) until cleared.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from firmware_stubs.mcuboot.flash import Flash
from firmware_stubs.serial_readers import Em4100Stub
from firmware_stubs.smp.common import PoweredDevice
from firmware_stubs.smp.serial_framing import (
    DEFAULT_MAX_LINE,
    FrameDecoder,
    SmpFramingError,
    encode_frame,
)
from firmware_stubs.smp.server import BootloaderPort, DeviceIdentity, SmpServer
from firmware_stubs.smp.settings import READER_SETTINGS, SettingsStore, reader_line_format
from firmware_stubs.smp.uart import garble, line_baud
from readers.codecs.ascii import AsciiFormat, encode_line
from readers.pty import PtyPort

__all__ = ["BITS_PER_BYTE", "ReaderDevice"]

log = logging.getLogger(__name__)

BITS_PER_BYTE = 10  # 8N1: a start bit, 8 data bits, a stop bit
Fault = Callable[[bytes], bytes]


class ReaderDevice(PoweredDevice):
    """The emulated reader: :attr:`device` is the SMP port's path, :attr:`badge_device` the
    badge port's. Runs a thread from construction until :meth:`close`."""

    def __init__(self, bootloader: BootloaderPort, identity: DeviceIdentity, *,
                 baud: int | None = None, buf_size: int = 2048, params: bool = True,
                 max_line: int = DEFAULT_MAX_LINE, boot_s: float = 0.05,
                 rx_fault: Fault | None = None, tx_fault: Fault | None = None,
                 crashing_versions: frozenset[str] = frozenset(),
                 settings: Flash | None = None) -> None:
        self.bootloader = bootloader
        self.identity = identity
        self.baud = baud
        self.buf_size = buf_size
        self.params = params
        self.max_line = max_line
        self.boot_s = boot_s
        self.rx_fault = rx_fault
        self.tx_fault = tx_fault
        self.crashing_versions = crashing_versions
        self._settings_flash = settings
        self.settings: SettingsStore | None = None
        self.garbled_bytes = 0  # bytes in or out garbled by a client at the wrong rate
        self.mute = threading.Event()
        self.port = PtyPort()
        self.badge_port = PtyPort()
        self._badges = Em4100Stub(self.badge_port)
        self._lock = threading.Lock()  # the bootloader: the line thread and present() use it
        self._booting = False
        self.boots = 0
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.frames_refused = 0
        self.upload_bytes = 0  # image data received over the device's lifetime
        self.upload_requests = 0  # upload requests received, over the device's lifetime
        self._rx_done = 0.0  # when the last byte received would have finished arriving
        self._tx_free = 0.0  # when the line is free for the next byte out
        self._stopping = threading.Event()
        self._power_on()
        self._thread = threading.Thread(target=self._run, name="smp-reader", daemon=True)
        self._thread.start()

    @property
    def device(self) -> str:
        return self.port.device

    @property
    def badge_device(self) -> str:
        return self.badge_port.device

    def close(self) -> None:
        """Power off: stop the thread, unplug both ports. Idempotent."""
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)
        self.port.close()
        self.badge_port.close()

    def present(self, tag: int) -> bytes | None:
        """A badge on the reader: its frame on the badge port, or ``None`` when the reader
        application is not running (rebooting, or no bootable image)."""
        with self._lock:
            if self._booting or self.bootloader.running() is None:
                return None
            fmt, pre, post = (reader_line_format(self.settings) if self.settings is not None
                              else ("em4100", b"", b""))
            if fmt == "em4100":
                return self._badges.present(tag)
            line = encode_line(AsciiFormat(pre=pre, post=post, base=16 if fmt == "hex" else 10),
                               tag)
            self.badge_port.write(line)
            return line

    @property
    def running_version(self) -> str | None:
        with self._lock:
            slot = self.bootloader.running()
            return slot.version if slot is not None else None

    # --- the line ---------------------------------------------------------------------------

    def _power_on(self) -> None:
        with self._lock:
            self.bootloader.boot()
            self.boots += 1
            running = self.bootloader.running()
            if running is not None and running.version in self.crashing_versions:
                # Firmware that crashes as it starts: the watchdog resets the board before
                # the application can confirm itself, and MCUboot reverts a test image.
                log.info("%s: %s crashed at start", self.port.device, running.version)
                self.bootloader.boot()
                self.boots += 1
            if self._settings_flash is not None:
                # RAM starts afresh; the values come back from flash (load, then commit).
                self.settings = SettingsStore(self._settings_flash, READER_SETTINGS)
            self._server = SmpServer(self.bootloader, self.identity, buf_size=self.buf_size,
                                     params=self.params, settings=self.settings)
            # The reassembly buffer bounds a frame, as on the device: a longer one is dropped.
            self._decoder = FrameDecoder(max_line=max(self.max_line, 512),
                                         max_frame=self.buf_size)

    def _byte_time(self, n: int) -> float:
        return n * BITS_PER_BYTE / self.baud if self.baud else 0.0

    def _run(self) -> None:
        while not self._stopping.is_set():
            data = self.port.read(4096, timeout=0.05)
            if not data:
                if self.port.closed:
                    return
                continue
            if self.mute.is_set():
                continue  # the cable is out: nothing arrives
            if self.rx_fault is not None:
                data = self.rx_fault(data)
            if self._wrong_rate():
                data = garble(data)
                self.garbled_bytes += len(data)
            self.rx_bytes += len(data)
            self._rx_done = max(self._rx_done, time.monotonic()) + self._byte_time(len(data))
            self._decoder.receive_data(data)
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                packet = self._decoder.next_packet()
            except SmpFramingError as exc:
                self.frames_refused += 1
                log.debug("%s: %s", self.port.device, exc)
                continue
            if packet is None:
                return
            self._sleep_until(self._rx_done)
            with self._lock:
                server = self._server
                bytes_before, requests_before = server.upload_bytes, server.upload_requests
                reply = server.handle(packet)
                self.upload_bytes += server.upload_bytes - bytes_before
                self.upload_requests += server.upload_requests - requests_before
            if reply.packet is not None:
                self._send(reply.packet)
            if reply.reset:
                self._reboot()
                return

    def _send(self, packet: bytes) -> None:
        for line in encode_frame(packet, self.max_line):
            if self.mute.is_set():
                return
            out = self.tx_fault(line) if self.tx_fault is not None else line
            if self._wrong_rate():
                out = garble(out)
                self.garbled_bytes += len(out)
            self._sleep_until(self._tx_free)
            with contextlib.suppress(OSError, ValueError):
                self.port.write(out)
            self.tx_bytes += len(out)
            self._tx_free = max(self._tx_free, time.monotonic()) + self._byte_time(len(out))
        self._sleep_until(self._tx_free)  # the reply is on the wire before anything else

    def _wrong_rate(self) -> bool:
        """The client's line speed is not this UART's (never, when unpaced: ``baud`` None)."""
        return self.baud is not None and line_baud(self.port.fileno()) != self.baud

    def _sleep_until(self, when: float) -> None:
        delay = when - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _reboot(self) -> None:
        with self._lock:
            self._booting = True
        # Deaf while booting: whatever arrives now is lost, as on a board in reset.
        deadline = time.monotonic() + self.boot_s
        while (left := deadline - time.monotonic()) > 0:
            self.port.read(4096, timeout=left)
        try:
            self._power_on()
        finally:
            with self._lock:
                self._booting = False
        log.info("%s: rebooted, running %s", self.port.device, self.running_version)
