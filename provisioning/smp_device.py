"""One device managed over SMP, through smpclient: the session that ``mfd flash`` drives
(provisioning/flash.py). The port string picks the transport: a serial port's path (the serial
transport: framed, base64, CRC), or ``udp:HOST:PORT`` (SMP's UDP transport: one packet per
datagram, as Zephyr's ``CONFIG_MCUMGR_TRANSPORT_UDP`` and the emulated panel speak; an IPv6 host
in brackets, ``udp:[::1]:1337``).

smpclient does the framing and the message models; this module adds what a technician's tool
needs on a real line:

* **MTU negotiation with fallback.** smpclient's ``Auto`` strategy reads the device's MCUmgr
  parameters on connect and fills its reassembly buffer; a device that does not answer them
  gets one 128-byte line buffer's worth per message (:attr:`SmpDevice.mtu` says which).
  ``mtu=N`` forces a size instead. Over UDP a message is one datagram: at most a 1500-byte
  link less the IP and UDP headers (1472 bytes over IPv4), and never more than the
  buffer the device reports or ``mtu=N`` (smpclient's UDP transport ignores that buffer; a
  Zephyr device's is often 384 bytes and it drops a larger datagram whole).
* **Retries that re-synchronise.** A request whose reply is lost (timeout) or damaged (bad CRC,
  bad delimiter, unparseable) is sent again after a reconnect, which empties both smpclient's
  buffers and the port's, so a broken reply cannot be taken for the next one; a reply that
  arrives after its request timed out (its sequence number is an earlier request's) is
  dropped and the request goes on waiting for its own, within its timeout. SMP's upload is
  idempotent by offset, so a repeated chunk is harmless: the device answers with the offset
  it expects. Every request gets these retries, the health echo
  after a test boot and the device's account of itself included (on a noisy line one
  damaged answer is not a dead device); only a reset and the probes that read silence as an
  answer (baud rate, back from a reset) ask once. A reconnect whose parameters' answer the
  line damaged keeps the buffer size the device told before: the device has not changed,
  and the request being retried was sized for that buffer (smpclient's fallback of one
  128-byte line would refuse it before it left, spending the attempt for nothing).
* **Baud negotiation with fallback** (:meth:`SmpDevice.connect_baud`, serial only): open the
  port at each rate in turn and take the first at which the device answers (its MCUmgr
  parameters, else an echo) within a short probe; a UART at the wrong rate hears only garbage
  and answers nothing, so silence at one rate means "try the next". :attr:`SmpDevice.bauds_tried`
  lists the rates tried, in order.
* **Settings** (SMP group 3, through smpclient's own request models for it): read, write,
  delete, commit, save. A refusal names the setting and says what was wrong with it.
* **Device identity.** The emulated reader reports ``model=``, ``keys=`` and ``pubkeys=`` words
  in its application info (firmware_stubs/smp/server.py); a device that does not is simply
  unknown on those points, and the caller decides.

Errors become :class:`DeviceError` (an :class:`~protocol.errors.MfdError`) with a message that
says what to check; smpclient's own exceptions never leave this module.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import os
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from smp.exceptions import SMPException
from smpclient import SMPClient
from smpclient.exceptions import SMPClientException
from smpclient.generics import error, success
from smpclient.requests.image_management import (
    ImageStatesRead,
    ImageStatesWrite,
    ImageUploadWrite,
)
from smpclient.requests.os_management import EchoWrite, OSApplicationInfoRead, ResetWrite
from smpclient.requests.settings_management import (
    CommitSettings,
    DeleteSetting,
    ReadSetting,
    SaveSettings,
    WriteSetting,
)
from smpclient.transport import SMPTransportDisconnected
from smpclient.transport.serial import Auto, BufferSize, SMPSerialTransport
from smpclient.transport.udp import SMPUDPTransport

from protocol.errors import MfdError

__all__ = ["BAUD_FALLBACK", "DeviceError", "DeviceFacts", "SlotState", "SmpDevice",
           "UploadAck", "baud_plan", "cbor_len_overhead", "parse_udp_port"]

log = logging.getLogger(__name__)

# What a damaged, lost or stale reply looks like from smpclient: retry after a reconnect.
_LINE_TROUBLE: Final = (TimeoutError, asyncio.TimeoutError, SMPException, SMPClientException,
                        SMPTransportDisconnected, binascii.Error, struct.error,
                        ValueError, IndexError, OSError)  # pydantic's ValidationError: ValueError


#: The rates tried, fastest first, when the technician names none (or the named one is silent):
#: the common rates of USB-serial bridges and Zephyr boards' ``current-speed``.
BAUD_FALLBACK: Final = (921600, 460800, 230400, 115200)

# Settings group return codes (smp's SETTINGS_MGMT_ERR) -> our code and what it means.
_SETTINGS_RC: Final = {
    2: ("setting_name_too_long", "the name is longer than the device takes"),
    3: ("setting_unknown", "the device has no setting by that name"),
    4: ("setting_unreadable", "the device does not let that setting be read"),
    5: ("setting_unknown", "the device has no settings under that name's first part"),
    6: ("setting_read_only", "the device does not let that setting be written"),
    7: ("setting_read_only", "the device does not let that setting be deleted"),
}


def baud_plan(requested: int | None) -> list[int]:
    """The rates to try, in order: ``requested`` first (when given), then the fallback list."""
    first = [requested] if requested is not None else []
    return first + [b for b in BAUD_FALLBACK if b != requested]


class DeviceError(MfdError):
    """A device could not be reached, stopped answering or answered an error."""

    code = "device_error"


@dataclass(frozen=True, slots=True)
class SlotState:
    slot: int
    version: str
    hash: bytes
    bootable: bool
    pending: bool
    confirmed: bool
    active: bool
    permanent: bool


@dataclass(frozen=True, slots=True)
class UploadAck:
    sent: int  # image bytes in the chunk
    off: int | None  # the offset the device expects next
    match: bool | None  # on the last chunk: whether the device found the SHA-256 right


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What the device says about itself (``None``: it does not say)."""

    model: str | None
    key_ids: tuple[str, ...] | None
    public_keys: tuple[bytes, ...] | None
    info: str | None


def parse_udp_port(port: str) -> tuple[str, int] | None:
    """``udp:HOST:PORT`` as (host, port); None for anything else (a serial port's name)."""
    if not port.startswith("udp:"):
        return None
    host, sep, num = port[4:].rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        value = int(num)
    except ValueError:
        value = -1
    if not sep or not host or not 0 < value < 65536:
        raise DeviceError(f"{port}: a UDP device is udp:HOST:PORT, e.g. udp:192.0.2.7:1337",
                          code="config_invalid")
    return host, value


#: Where an SMP header holds its sequence number (op, flags, length, group, *sequence*, id).
_SEQUENCE_AT: Final = 6


class _Sequencer:
    """The sequence number of the request on the line, and the replies that did not carry it.

    A reply that comes after its request timed out (a slow USB-serial bridge, a loaded host)
    arrives while the next attempt waits: smpclient would take it for that attempt's answer and
    refuse it (bad sequence), spending the attempt, and the next attempt would meet the late
    answer of this one, and so on until the retries ran out. Dropped here instead, the attempt
    goes on waiting, within its own timeout, for the answer that is its own."""

    def __init__(self, port: str) -> None:
        self.port = port
        self.expected: int | None = None
        self.dropped = 0

    async def send(self, send: Callable[[bytes], Awaitable[None]], data: bytes) -> None:
        """Send ``data`` (a whole SMP message) with the transport's own ``send``."""
        self.expected = data[_SEQUENCE_AT] if len(data) > _SEQUENCE_AT else None
        await send(data)

    async def receive(self, receive: Callable[[], Awaitable[bytes]]) -> bytes:
        """The next frame the transport's own ``receive`` reads that answers the request."""
        while not self.wanted(frame := await receive()):
            pass
        return frame

    def wanted(self, frame: bytes) -> bool:
        """Whether ``frame`` goes to smpclient (a frame too short to say is smpclient's to
        refuse)."""
        if self.expected is None or len(frame) <= _SEQUENCE_AT or (
                frame[_SEQUENCE_AT] == self.expected):
            return True
        self.dropped += 1
        log.info("%s: dropped a late reply (sequence %d; waiting for %d)", self.port,
                 frame[_SEQUENCE_AT], self.expected)
        return False


class _SerialTransport(SMPSerialTransport):
    """smpclient's serial transport, dropping late replies (:class:`_Sequencer`)."""

    def __init__(self, sequencer: _Sequencer, strategy: Auto | BufferSize, baud: int) -> None:
        super().__init__(strategy, baudrate=baud)
        self._sequencer = sequencer

    async def send(self, data: bytes) -> None:
        await self._sequencer.send(super().send, data)

    async def receive(self) -> bytes:
        return await self._sequencer.receive(super().receive)


class _UdpTransport(SMPUDPTransport):
    """smpclient's UDP transport on any port (it connects to 1337 unless told), with messages
    no larger than the device's reported buffer, dropping late replies (:class:`_Sequencer`:
    a datagram can be late too)."""

    def __init__(self, sequencer: _Sequencer, port: int, buf_size: int | None = None) -> None:
        super().__init__(mtu=1500)  # Ethernet's; the device's buffer is what bounds a message
        self._port = port
        self._forced = buf_size
        self._sequencer = sequencer

    async def send(self, data: bytes) -> None:
        await self._sequencer.send(super().send, data)

    async def receive(self) -> bytes:
        return await self._sequencer.receive(super().receive)

    async def connect(self, address: str, timeout_s: float, port: int = 0) -> None:
        await super().connect(address, timeout_s, port=self._port)

    @property
    def max_unencoded_size(self) -> int:
        room = int(super().max_unencoded_size)
        buf = self._forced or self._smp_server_transport_buffer_size
        return min(room, buf) if buf else room


def cbor_len_overhead(n: int) -> int:
    """Bytes CBOR spends on the length of a byte string of ``n`` bytes, beyond its first."""
    return 0 if n < 24 else 1 if n < 0x100 else 2 if n < 0x10000 else 4


def parse_app_info(text: str) -> DeviceFacts:
    words = dict(w.split("=", 1) for w in text.split() if "=" in w)
    keys = words.get("keys")
    pubs = words.get("pubkeys")
    try:
        public = tuple(bytes.fromhex(p) for p in pubs.split(",")) if pubs else None
    except ValueError:
        public = None
    return DeviceFacts(model=words.get("model"),
                       key_ids=tuple(keys.split(",")) if keys else None,
                       public_keys=public, info=text)


class SmpDevice:
    """An SMP session with one device on a serial port (``port``: a path such as
    ``/dev/ttyACM0`` or a pty) or over UDP (``udp:HOST:PORT``). Use as ``async with``."""

    def __init__(self, port: str, *, baud: int = 115200, timeout_s: float = 2.5,
                 retries: int = 4, mtu: int | None = None) -> None:
        self.port = port
        self.baud = baud
        self.timeout_s = timeout_s
        self.retries = retries
        self.forced_mtu = mtu
        self.reconnects = 0
        self.bauds_tried: list[int] = []
        self.data_sent = 0  # upload data put on the line, every attempt counted
        self._had_params = False  # the device told its buffer size at the first connect
        self._buf_size: int | None = None  # the buffer size it told last (None: never)
        self._client: SMPClient | None = None
        self._transport: _SerialTransport | _UdpTransport | None = None
        self._udp = parse_udp_port(port)
        self._sequencer = _Sequencer(port)  # one for every connection: a late reply may come
        # on the connection after its request's (a reconnect empties the buffers, not the wire)

    @property
    def late_replies(self) -> int:
        """Replies dropped because they answered an earlier request (:class:`_Sequencer`)."""
        return self._sequencer.dropped

    async def __aenter__(self) -> SmpDevice:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, timeout_s: float | None = None, *,
                      first_reply_s: float | None = None) -> None:
        """Open the port and read the MCUmgr parameters (waiting ``first_reply_s`` for them,
        the request timeout by default)."""
        if self.port.startswith("/") and not os.path.exists(self.port):
            # smpclient would retry opening it until its timeout; nothing will appear there.
            raise DeviceError(f"{self.port}: no such port: check the port name (a reader on "
                              "USB is usually /dev/ttyACM* or /dev/ttyUSB*) and the cable")
        if self._udp is not None:
            # No handshake on UDP: a device that is not there shows as requests timing out.
            self._transport = _UdpTransport(self._sequencer, self._udp[1], self.forced_mtu)
            self._client = SMPClient(self._transport, self._udp[0], timeout_s=self.timeout_s)
        else:
            strategy = Auto() if self.forced_mtu is None else BufferSize(self.forced_mtu)
            self._transport = _SerialTransport(self._sequencer, strategy, self.baud)
            self._client = SMPClient(self._transport, self.port, timeout_s=self.timeout_s)
        if first_reply_s is not None:
            self._client._timeout_s = first_reply_s  # smpclient reads it for the parameters
        try:
            await self._client.connect(timeout_s if timeout_s is not None else self.timeout_s)
        except _LINE_TROUBLE as exc:
            if self._udp is not None:
                raise DeviceError(f"{self.port}: cannot reach the device ({_what(exc)}): "
                                  "check the host name or address and the network") from None
            raise DeviceError(f"{self.port}: cannot open the port ({_what(exc)}): check the "
                              "cable and the port name, and that no other program has the "
                              "port open") from None
        finally:
            self._client._timeout_s = self.timeout_s
        told = self._transport._smp_server_transport_buffer_size
        if told is not None:
            self._buf_size = int(told)
        if self.reconnects == 0 and first_reply_s is None:
            self._had_params = self._had_params or (
                self._transport._smp_server_transport_buffer_size is not None)

    async def connect_baud(self, rates: Sequence[int], probe_s: float = 0.6) -> int:
        """Connect at the first of ``rates`` at which the device answers within ``probe_s``
        (its MCUmgr parameters, else an echo); :attr:`baud` is then that rate. Raises
        :class:`DeviceError` (``baud_unknown``) when it answers at none."""
        if self._udp is not None:
            await self.connect()
            return self.baud
        for rate in rates:
            self.baud = rate
            self.bauds_tried.append(rate)
            try:
                await self.connect(first_reply_s=probe_s)
                if self.negotiated and self.forced_mtu is None:
                    self._had_params = True  # it answered its parameters: the rate is right
                    return rate
                if await self._echo_within(probe_s):
                    return rate  # a device without parameters, or --mtu: the echo says
            except DeviceError as exc:
                if exc.code != "device_silent" and "cannot open" not in exc.message:
                    raise
            await self.close()
        tried = ", ".join(str(r) for r in rates)
        raise DeviceError(f"{self.port}: no answer at {tried} baud: the device's UART runs "
                          "at another rate. Look it up (the board's documentation, or its "
                          "Zephyr devicetree's current-speed) and give it with --baud RATE; "
                          "check the cable too", code="baud_unknown")

    async def _echo_within(self, probe_s: float) -> bool:
        try:
            r = await self.request(EchoWrite(d="baud"), what="echo", retries=0,
                                   timeout_s=probe_s)
        except DeviceError as exc:
            if exc.code == "device_silent":
                return False
            raise
        return bool(r.r == "baud")

    async def close(self) -> None:
        if self._client is not None:
            try:
                await self._client.disconnect()
            except _LINE_TROUBLE:
                pass
            self._client = None

    @property
    def mtu(self) -> int:
        """The largest SMP message this session sends (negotiated, or the fallback)."""
        assert self._transport is not None
        return int(self._transport.max_unencoded_size)

    @property
    def negotiated(self) -> bool:
        """Whether the device told its buffer size (False: the 128-byte fallback)."""
        assert self._transport is not None
        return self.forced_mtu is not None or (
            self._transport._smp_server_transport_buffer_size is not None)

    async def request(self, request: Any, *, what: str, retries: int | None = None,
                      timeout_s: float | None = None) -> Any:
        """Send ``request`` and return the success response; retry line trouble, raise
        :class:`DeviceError` on an error response or when retries are spent."""
        last: BaseException | None = None
        dropped = self._sequencer.dropped
        for attempt in range((self.retries if retries is None else retries) + 1):
            if attempt:
                await self._reconnect()
            assert self._client is not None
            data = getattr(request, "data", None)
            if isinstance(data, bytes):
                self.data_sent += len(data)
            try:
                response = await self._client.request(request, timeout_s=timeout_s)
            except _LINE_TROUBLE as exc:
                last = exc
                log.info("%s: %s: %s (attempt %d)", self.port, what, _what(exc), attempt + 1)
                request = type(request)(**_fields(request))  # a fresh sequence number
                continue
            if error(response):
                raise DeviceError(f"{self.port}: the device refused to {what}: "
                                  f"{_reason(response)}", code=_code(response))
            assert success(response)
            return response
        late = self._sequencer.dropped - dropped
        # A device that answers but never with the request's sequence number looks silent
        # here (each answer dropped as late): say so, it is not the cable.
        other = (f"; {late} answer(s) carried another request's sequence number (does the "
                 "device's SMP server echo it?)") if late else ""
        raise DeviceError(f"{self.port}: the device stopped answering ({what}: "
                          f"{_what(last)}{other}): check the cable and power, then run the "
                          "same command again (an upload resumes where it stopped)",
                          code="device_silent")

    async def _reconnect(self) -> None:
        self.reconnects += 1
        await self.close()
        try:
            await self.connect()
        except DeviceError:
            await asyncio.sleep(0.2)  # the next attempt tries again
        if (self._transport is not None and self._buf_size is not None
                and self.forced_mtu is None and not self.negotiated):
            # Its parameters' reply was lost or damaged (smpclient then assumes one 128-byte
            # line, and would refuse the retried request, sized for the real buffer, before
            # sending it: an attempt spent for nothing). The buffer is the one it told.
            self._transport.initialize(self._buf_size)

    async def echo(self, text: str = "mfd", *, retries: int | None = None) -> bool:
        """Whether the device echoes ``text`` (retried like any request unless ``retries``)."""
        r = await self.request(EchoWrite(d=text), what="echo", retries=retries)
        return bool(r.r == text)

    async def facts(self) -> DeviceFacts:
        """The device's own account of itself, when it gives one."""
        try:
            r = await self.request(OSApplicationInfoRead(format="a"), what="report itself")
        except DeviceError as exc:
            if exc.code == "device_silent":
                raise
            return DeviceFacts(None, None, None, None)
        return parse_app_info(str(r.output))

    async def read_setting(self, name: str) -> bytes:
        r = await self._setting(ReadSetting(name=name), name, "read setting")
        return bytes(r.val)

    async def write_setting(self, name: str, value: bytes) -> None:
        await self._setting(WriteSetting(name=name, val=value), name, "write setting")

    async def delete_setting(self, name: str) -> None:
        await self._setting(DeleteSetting(name=name), name, "delete setting")

    async def commit_settings(self) -> None:
        """Apply the settings written (the device acts on them from now on)."""
        await self.request(CommitSettings(), what="commit its settings")

    async def save_settings(self) -> None:
        """Keep the settings in the device's flash (they survive a reset)."""
        await self.request(SaveSettings(), what="save its settings")

    async def _setting(self, request: Any, name: str, what: str) -> Any:
        try:
            return await self.request(request, what=f"{what} {name}")
        except DeviceError as exc:
            if exc.code == "setting_unknown":
                raise DeviceError(f"{self.port}: the device has no setting named {name}: check "
                                  "the name (docs/flash.md lists a reader's and a panel's)",
                                  code=exc.code) from None
            raise

    async def slots(self) -> list[SlotState]:
        r = await self.request(ImageStatesRead(), what="list its images")
        return [_slot(s) for s in r.images]

    async def test(self, image_hash: bytes) -> list[SlotState]:
        r = await self.request(ImageStatesWrite(hash=image_hash, confirm=False),
                               what="mark the image for a test boot")
        return [_slot(s) for s in r.images]

    async def confirm_running(self) -> list[SlotState]:
        r = await self.request(ImageStatesWrite(confirm=True), what="confirm the running image")
        return [_slot(s) for s in r.images]

    async def reset(self) -> None:
        """Ask for a reset. The reply may be lost as the device goes down: not an error."""
        try:
            await self.request(ResetWrite(), what="reset", retries=0)
        except DeviceError as exc:
            if exc.code != "device_silent":
                raise

    async def wait_back(self, timeout_s: float) -> None:
        """Reconnect until the device answers again after a reset: its MCUmgr parameters, so
        the session is sized as before, then an echo."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        await self.close()
        await asyncio.sleep(0.05)  # a device that has just been told to reset is not back yet
        while True:
            try:
                await self.connect(timeout_s=max(0.1, min(1.0, deadline - loop.time())),
                                   first_reply_s=0.5)
                if self._had_params and not self.negotiated:
                    raise DeviceError("no parameters yet")  # still booting: try again
                # Once: this loop reconnects and asks again until the deadline.
                if await self.echo("back", retries=0):
                    return
            except DeviceError:
                pass
            if loop.time() >= deadline:
                raise DeviceError(f"{self.port}: the device did not come back within "
                                  f"{timeout_s:.0f} s of its reset: power-cycle it and run the "
                                  "same command again; it reports its slots then",
                                  code="device_not_back")
            await self.close()
            await asyncio.sleep(0.1)

    async def upload_probe(self, total: int, sha: bytes) -> int:
        """Name the upload (length and SHA-256 of the whole file) with no data: the device
        answers with how much of this very upload it holds already (0 for a new one)."""
        r = await self.request(ImageUploadWrite(off=0, data=b"", len=total, sha=sha, image=0),
                               what="start the upload")
        return int(r.off or 0)

    async def upload_chunk(self, image: bytes, offset: int, sha: bytes) -> UploadAck:
        """Send the largest chunk of ``image`` at ``offset`` that one message carries."""
        def make(chunk: bytes) -> ImageUploadWrite:
            if offset == 0:  # the first chunk names the upload again, as SMP asks
                return ImageUploadWrite(off=0, data=chunk, len=len(image), sha=sha, image=0)
            return ImageUploadWrite(off=offset, data=chunk)

        room = self.mtu - len(make(b"").BYTES)
        size = min(len(image) - offset, room - cbor_len_overhead(room))
        if size <= 0:
            raise DeviceError(f"{self.port}: a message of {self.mtu} bytes leaves no room for "
                              "image data: the device's buffer is too small, or --mtu is",
                              code="mtu_too_small")
        r = await self.request(make(image[offset:offset + size]), what="take the image")
        return UploadAck(size, None if r.off is None else int(r.off),
                         None if r.match is None else bool(r.match))


def _slot(s: Any) -> SlotState:
    return SlotState(slot=int(s.slot), version=str(s.version), hash=bytes(s.hash or b""),
                     bootable=bool(s.bootable), pending=bool(s.pending),
                     confirmed=bool(s.confirmed), active=bool(s.active),
                     permanent=bool(s.permanent))


def _fields(request: Any) -> dict[str, Any]:
    names: Sequence[str] = [n for n in type(request).model_fields
                            if n not in ("header", "version", "sequence", "smp_data")]
    return {n: getattr(request, n) for n in names if getattr(request, n) is not None}


def _what(exc: BaseException | None) -> str:
    if exc is None:
        return "no reply"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "no reply in time"
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:120]


def _reason(response: Any) -> str:
    rsn = getattr(response, "rsn", None)
    if rsn:
        return str(rsn)
    err = getattr(response, "err", None)
    if err is not None:
        if int(err.group) == 3 and int(err.rc) in _SETTINGS_RC:
            return _SETTINGS_RC[int(err.rc)][1]
        return f"group {err.group} error {int(err.rc)}"
    return f"error {int(getattr(response, 'rc', 1))}"


def _code(response: Any) -> str:
    rc = getattr(response, "rc", None)
    err = getattr(response, "err", None)
    if rc is None and err is not None:
        if int(err.group) == 3 and int(err.rc) in _SETTINGS_RC:
            return _SETTINGS_RC[int(err.rc)][0]
        rc = err.rc
    return f"smp_rc_{int(rc) if rc is not None else 1}"
