"""Card readers on a serial line (USB-serial, UART, pty), via pyserial.

The adapter owns the port and one daemon thread (``readers.adapters.lifecycle``). The thread
reads whatever has arrived, feeds the family's sans-I/O codec (:data:`SERIAL_FAMILIES`:
``readers.codecs.em4100`` for RDM6300-style readers, ``readers.codecs.ascii`` for TWN4 line
readers, ``readers.codecs.pcprox`` for pcProx ones and their commands,
``readers.codecs.wiegand_serial`` for Wiegand bridged onto serial), drops the repeats of a
held card (``readers.debounce``) and hands each remaining read to the sink. Everything that decides
*what* a read is lives in those pure modules; this file only moves bytes and survives the
port going away.

Latency: the thread blocks in ``read(1)`` until a byte arrives (pyserial returns as soon as
the one byte is there), then takes everything else the driver holds with one
``read(in_waiting)``. A frame is therefore decoded as soon as its last byte arrives, not at
the next poll tick; :data:`POLL_TIMEOUT_S` only bounds how long ``stop()`` and a queued
command wait when the line is idle (a command also interrupts the read, where pyserial can).

Commands: a family whose codec speaks a command protocol (``pcprox``) takes commands through
:meth:`SerialCardReader.command`. The caller's thread only queues the command and waits; the
reader thread encodes it with the codec, writes it, and pairs the codec's reply event with
it -- the codec and the port stay on one thread.

Port loss: USB-serial adapters vanish when unplugged and come back (often under the same
name) when plugged in again. The thread treats any pyserial/OS error as "port gone": it logs
one warning, then tries to reopen every :data:`RETRY_INTERVAL_S` until it succeeds or
:meth:`SerialCardReader.stop` is called, counting each attempt in ``health.reconnects``.
The codec starts afresh on a reopened port (a half frame from before the outage is
meaningless, and so is a command that was waiting for its reply); the debouncer does not, so
a card still held across a glitch is not mistaken for a new tap.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import serial

from protocol.errors import ConfigError, FrameError, ReaderError
from readers.adapters.lifecycle import ReaderThread, hand_over
from readers.adapters.serial_port import PORT_ERRORS, close_quietly
from readers.codecs.ascii import (
    TERMINATORS,
    AsciiDecoder,
    AsciiFormat,
)
from readers.codecs.em4100 import Em4100Decoder
from readers.codecs.pcprox import (
    AcpCommand,
    AcpResult,
    PcProxDecoder,
)
from readers.codecs.wiegand_serial import WiegandSerialDecoder
from readers.debounce import Debouncer
from readers.events import CardRead, CardSink, ReaderHealth

__all__ = ["POLL_TIMEOUT_S", "RETRY_INTERVAL_S", "SERIAL_FAMILIES", "SPEC_PARAMS", "RawSink",
           "SerialCardReader", "SerialFamily", "list_serial_ports", "open_spec"]

_log = logging.getLogger(__name__)

# Short enough that stop() returns promptly; long enough not to spin on an idle line. Frames
# do not wait for it (see the module docstring).
POLL_TIMEOUT_S = 0.05
RETRY_INTERVAL_S = 0.5

#: ``on_raw(chunk, t)``: every chunk read from the port, before decoding, with the reader
#: clock's (monotonic) time it was read -- for ``mfd reader watch --record`` and wire traces.
#: Called on the reader thread, like the sink, so it must only hand the bytes off.
RawSink = Callable[[bytes, float], None]


@runtime_checkable
class _Frame(Protocol):
    @property
    def number(self) -> str: ...

    @property
    def raw(self) -> bytes: ...


class _Decoder(Protocol):
    # Events are frames (number + raw), FrameErrors, or -- for command-speaking families --
    # AcpResults; the adapter tells them apart.
    def feed(self, data: bytes) -> Sequence[object]: ...


class _CommandDecoder(_Decoder, Protocol):
    def send(self, command: AcpCommand) -> bytes: ...


DecoderFactory = Callable[[], _Decoder]


@dataclass(frozen=True)
class SerialFamily:
    """One serial reader family: its spec options and how to build its codec from them.

    ``build(options)`` validates the family's options (strings, as in a reader spec; a
    :class:`ConfigError` names the parameter) and returns a factory making a fresh codec --
    one per (re)opened port. ``commands``: the codec speaks a command protocol.
    """

    name: str
    summary: str
    options: tuple[str, ...]
    build: Callable[[Mapping[str, str]], DecoderFactory]
    commands: bool = False


# -- family option parsing ---------------------------------------------------------------

_ASCII_OPTIONS = ("pre", "post", "sep", "term", "base", "width")
_BASES = {"dec": 10, "hex": 16}


def _ascii_text(options: Mapping[str, str], key: str) -> bytes:
    text = options.get(key, "")
    # Delimiters are bytes on the wire; non-ASCII text has no single encoding a reader uses.
    if not text.isascii():
        raise ConfigError(f"reader spec parameter {key!r} must be ASCII (write control "
                          f"characters percent-encoded, e.g. %02 for STX), got {text!r}")
    return text.encode("ascii")


def _ascii_format(options: Mapping[str, str], default_base: str) -> AsciiFormat:
    term_name = options.get("term", "cr").lower()
    if term_name not in TERMINATORS:
        raise ConfigError(f"reader spec parameter 'term' must be one of "
                          f"{', '.join(TERMINATORS)}, got {options['term']!r}")
    base_name = options.get("base", default_base).lower()
    if base_name not in _BASES:
        raise ConfigError(f"reader spec parameter 'base' must be hex or dec, "
                          f"got {options['base']!r}")
    width_text = options.get("width", "0")
    try:
        width = int(width_text)
    except ValueError:
        width = -1
    if width < 0:
        raise ConfigError(f"reader spec parameter 'width' must be a number of digits (0 for "
                          f"unpadded), got {width_text!r}")
    try:
        return AsciiFormat(pre=_ascii_text(options, "pre"), post=_ascii_text(options, "post"),
                           sep=_ascii_text(options, "sep"), term=TERMINATORS[term_name],
                           base=_BASES[base_name], width=width)
    except ConfigError as exc:
        # AsciiFormat names its field, which is also the spec parameter's name.
        raise ConfigError(f"reader spec: {exc}") from None


def _build_em4100(options: Mapping[str, str]) -> DecoderFactory:
    return Em4100Decoder


def _build_pcprox(options: Mapping[str, str]) -> DecoderFactory:
    fmt = _ascii_format(options, "dec")
    try:
        PcProxDecoder(fmt)  # a layout the reader's own settings can express, and unambiguous
    except ConfigError as exc:
        raise ConfigError(f"reader spec, family pcprox: {exc}") from None
    return lambda: PcProxDecoder(fmt)


def _build_twn4(options: Mapping[str, str]) -> DecoderFactory:
    fmt = _ascii_format(options, "hex")
    return lambda: AsciiDecoder(fmt)


def _build_wiegand(options: Mapping[str, str]) -> DecoderFactory:
    fmt = options.get("format")
    try:
        WiegandSerialDecoder(fmt)
    except ConfigError as exc:
        raise ConfigError(f"reader spec parameter 'format': {exc}") from None
    return lambda: WiegandSerialDecoder(fmt)


# Family name (as in the reader spec's ``family=``) -> the family. A new serial family is a
# new codec module plus one entry here.
SERIAL_FAMILIES: dict[str, SerialFamily] = {f.name: f for f in (
    SerialFamily("em4100", "RDM6300-style 125 kHz EM4100 modules (STX, 12 hex, ETX)", (),
                 _build_em4100),
    SerialFamily("pcprox", "RF IDeas pcProx serial / virtual COM (ASCII lines; commands)",
                 _ASCII_OPTIONS, _build_pcprox, commands=True),
    SerialFamily("twn4", "Elatec TWN4 and other ASCII line readers (hex by default)",
                 _ASCII_OPTIONS, _build_twn4),
    SerialFamily("wiegand", "Wiegand bridged onto serial: W<bits>:<hex> lines",
                 ("format",), _build_wiegand),
)}


class _Pending:
    """A command waiting for its reply: the caller waits on ``done``, the thread sets it."""

    __slots__ = ("command", "done", "result")

    def __init__(self, command: AcpCommand) -> None:
        self.command = command
        self.done = threading.Event()
        self.result: AcpResult | None = None

    def finish(self, result: AcpResult | None) -> None:
        self.result = result
        self.done.set()


class SerialCardReader:
    """A :class:`~readers.events.CardReader` on a serial port or pyserial URL.

    ``port`` is anything :func:`serial.serial_for_url` opens: ``/dev/ttyUSB0``, a pty path,
    ``loop://``. ``family`` picks the codec (:data:`SERIAL_FAMILIES`) and ``options`` are its
    settings, as strings like in a reader spec (``{"base": "hex", "sep": ":"}``).
    ``lockout_s`` is the held-card window. ``on_raw`` (optional) sees every chunk of raw
    bytes and its time (:data:`RawSink`). Constructing validates everything
    (:class:`ConfigError`) but opens nothing; :meth:`start` opens the port.
    """

    def __init__(self, port: str, *, reader_id: str, family: str = "em4100", baud: int = 9600,
                 lockout_s: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 on_raw: RawSink | None = None,
                 options: Mapping[str, str] | None = None) -> None:
        fam = SERIAL_FAMILIES.get(family)
        if fam is None:
            known = ", ".join(sorted(SERIAL_FAMILIES))
            raise ConfigError(f"unknown serial reader family {family!r}; known families: {known}")
        if not port:
            raise ConfigError("serial reader port is empty; expected e.g. /dev/ttyUSB0")
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise ConfigError(f"serial reader baud must be a positive integer, got {baud!r}")
        options = dict(options or {})
        for key in options:
            if key not in fam.options:
                takes = ", ".join(fam.options) or "none"
                raise ConfigError(f"reader spec parameter {key!r} does not apply to family "
                                  f"{family!r}; its parameters: {takes}")
        self._new_decoder = fam.build(options)
        self._debouncer = Debouncer.for_lockout(lockout_s, "serial reader")
        self.port = port
        self.family = family
        self.options = options
        self.baud = baud
        self.reader_id = reader_id
        self.health = ReaderHealth()
        self._family = fam
        self._clock = clock
        self._on_raw = on_raw
        self._outbox: queue.Queue[_Pending] = queue.Queue()
        self._live_port: Any = None  # the open port, only to interrupt its read for a command
        self._warned: set[str] = set()
        self._thread = ReaderThread(reader_id, _log)

    def __repr__(self) -> str:
        return (f"SerialCardReader({self.port!r}, reader_id={self.reader_id!r}, "
                f"family={self.family!r}, baud={self.baud})")

    @property
    def running(self) -> bool:
        return self._thread.running

    def tap_raw(self, on_raw: RawSink) -> None:
        """See every raw chunk (for ``mfd reader watch --record``); before :meth:`start`."""
        if self._thread.started:
            raise ReaderError(f"reader {self.reader_id}: tap its raw bytes before starting it")
        self._on_raw = on_raw

    def start(self, sink: CardSink) -> None:
        """Open the port and start delivering reads to ``sink`` (called on the reader thread).

        Raises :class:`ReaderError` if the port cannot be opened now: at start-up a wrong
        path or a missing permission is a configuration mistake to show at once, not an
        outage to wait out.
        """
        self._thread.refuse_if_running()
        try:
            port = self._open()
        except PORT_ERRORS as exc:
            raise ReaderError(
                f"cannot open card reader port {self.port!r}: {exc}. Check that the reader is "
                "plugged in, that the port name is right (see /dev/serial/by-id/) and that this "
                "user may open it (usually the 'dialout' group)") from exc
        self._thread.start(lambda stopping: self._run(port, sink, stopping))
        _log.info("reader %s: listening on %s (%s, %d baud)",
                  self.reader_id, self.port, self.family, self.baud)

    def stop(self) -> None:
        """Stop reading and close the port. Idempotent; safe to call from the sink."""
        if self._thread.stop():
            _log.info("reader %s: stopped", self.reader_id)

    def command(self, command: AcpCommand, timeout_s: float = 1.0) -> AcpResult:
        """Send a command to the reader and wait for its reply (pcProx family only).

        Returns the :class:`~readers.codecs.pcprox.AcpResult` (check ``ok``: an error reply is
        a result, not an exception). A successful reply also updates the layout the reader
        decodes card lines with. Raises :class:`ReaderError` if the family takes no commands,
        the reader is not running, or no reply comes within ``timeout_s``. Must not be
        called from the sink (the reply is read by the thread the sink runs on).
        """
        if not self._family.commands:
            raise ReaderError(f"reader {self.reader_id!r}: family {self.family!r} takes no "
                              "commands")
        if not self.running:
            raise ReaderError(f"reader {self.reader_id!r} is not started")
        if self._thread.on_thread():
            # The reply would be read by this very thread, which is busy waiting for it.
            raise ReaderError(f"reader {self.reader_id!r}: command() called from the sink")
        pending = _Pending(command)
        self._outbox.put(pending)
        self._interrupt_read()
        if not pending.done.wait(timeout_s):
            raise ReaderError(f"reader {self.reader_id!r}: no reply to {command.name!r} within "
                              f"{timeout_s:g} s; is the reader a pcProx, and the baud rate "
                              "right?")
        if pending.result is None:
            raise ReaderError(f"reader {self.reader_id!r}: port lost before the reply to "
                              f"{command.name!r}")
        return pending.result

    # -- reader thread -------------------------------------------------------------------

    def _open(self) -> Any:
        return serial.serial_for_url(self.port, baudrate=self.baud, timeout=POLL_TIMEOUT_S)

    def _interrupt_read(self) -> None:
        port = self._live_port
        cancel = getattr(port, "cancel_read", None)
        if cancel is not None:
            # The port may be closing under us; then the command waits for the next poll.
            with contextlib.suppress(*PORT_ERRORS, AttributeError, TypeError):
                cancel()

    def _run(self, port: Any, sink: CardSink, stopping: threading.Event) -> None:
        decoder = self._new_decoder()
        awaiting: deque[_Pending] = deque()
        try:
            while not stopping.is_set():
                if port is None:
                    self._live_port = None
                    _fail_all(awaiting)
                    port = self._reopen(stopping)
                    if port is None:
                        break
                    decoder = self._new_decoder()
                self._live_port = port
                try:
                    self._send_commands(port, decoder, awaiting)
                    # Block for one byte (up to the timeout), then take the rest of what the
                    # driver already holds, so a burst costs one call rather than one per byte.
                    data = port.read(1)
                    if data and port.in_waiting:
                        data += port.read(port.in_waiting)
                except PORT_ERRORS as exc:
                    _log.warning("reader %s: lost port %s (%s); retrying every %.1f s",
                                 self.reader_id, self.port, exc, RETRY_INTERVAL_S)
                    close_quietly(port)
                    port = None
                    continue
                if data:
                    if self._on_raw is not None:
                        self._record_raw(data)
                    self._deliver(decoder.feed(data), sink, awaiting)
        finally:
            self._live_port = None
            _fail_all(awaiting)
            while True:
                try:
                    self._outbox.get_nowait().finish(None)
                except queue.Empty:
                    break
            if port is not None:
                close_quietly(port)

    def _send_commands(self, port: Any, decoder: _Decoder,
                       awaiting: deque[_Pending]) -> None:
        while True:
            try:
                pending = self._outbox.get_nowait()
            except queue.Empty:
                return
            send = getattr(decoder, "send", None)
            if send is None:  # not reachable: command() checks the family
                pending.finish(None)
                continue
            data = send(pending.command)
            awaiting.append(pending)
            _log.log(5, "reader %s: command %r", self.reader_id, data)
            port.write(data)
            port.flush()

    def _reopen(self, stopping: threading.Event) -> Any:
        """Retry until the port opens (returned) or stop() is called (None)."""
        while not stopping.wait(RETRY_INTERVAL_S):
            self.health.reconnects += 1
            try:
                port = self._open()
            except PORT_ERRORS as exc:
                _log.debug("reader %s: reopening %s failed: %s", self.reader_id, self.port, exc)
                continue
            _log.info("reader %s: port %s is back after %d attempt(s)",
                      self.reader_id, self.port, self.health.reconnects)
            return port
        return None

    def _record_raw(self, data: bytes) -> None:
        assert self._on_raw is not None
        try:
            self._on_raw(data, self._clock())
        except Exception:
            # A recorder is a diagnostic; its failure must not cost the reads themselves.
            _log.exception("reader %s: raw-bytes callback failed", self.reader_id)

    def _deliver(self, events: Sequence[object], sink: CardSink,
                 awaiting: deque[_Pending]) -> None:
        for event in events:
            if isinstance(event, FrameError):
                self._bad_frame(event)
            elif isinstance(event, AcpResult):
                if event.command is not None and awaiting:
                    awaiting.popleft().finish(event)
                else:
                    _log.debug("reader %s: unsolicited reply ignored", self.reader_id)
            elif isinstance(event, _Frame):
                self._card(event, sink)
            else:  # a codec bug: say so rather than drop reads silently
                _log.error("reader %s: codec produced %r", self.reader_id, type(event))

    def _bad_frame(self, error: FrameError) -> None:
        self.health.bad_frames += 1
        # The codecs' messages say what failed without the digits: safe to log. The first of
        # each kind is a warning, so a misconfigured reader (wrong base, ambiguous format,
        # wrong baud rate) shows up in the log without a flood from a noisy line.
        kind = str(getattr(error, "fault", type(error).__name__))
        if kind not in self._warned:
            self._warned.add(kind)
            _log.warning("reader %s: %s (further '%s' errors are logged at DEBUG)",
                         self.reader_id, error, kind)
        else:
            _log.debug("reader %s: %s", self.reader_id, error)

    def _card(self, frame: _Frame, sink: CardSink) -> None:
        now = self._clock()
        if not self._debouncer.accept(frame.number, now):
            self.health.suppressed += 1
            return
        self.health.reads += 1
        read = CardRead(number=frame.number, raw=frame.raw, reader_id=self.reader_id, at=now)
        _log.debug("reader %s: read %s", self.reader_id, read.masked)
        hand_over(sink, read, _log)


def _fail_all(awaiting: deque[_Pending]) -> None:
    while awaiting:
        awaiting.popleft().finish(None)


def list_serial_ports() -> list[tuple[str, str]]:
    """``(device, description)`` of every serial port the OS reports, sorted by device.

    For ``mfd reader list``. The description is pyserial's (USB product string where there is
    one, else "n/a"), which is what tells a technician which ``/dev/ttyUSB*`` is the reader.
    """
    from serial.tools import list_ports

    return sorted((info.device, info.description or "n/a") for info in list_ports.comports())


_COMMON_PARAMS = ("family", "baud", "lockout", "id")
#: Parameters a ``serial:`` reader spec takes (readers.spec); each family takes the common
#: ones and its own (:attr:`SerialFamily.options`).
SPEC_PARAMS = _COMMON_PARAMS + tuple(dict.fromkeys(
    opt for fam in SERIAL_FAMILIES.values() for opt in fam.options))
_EXAMPLE = "serial:/dev/ttyUSB0?family=em4100"


def open_spec(spec: str, target: str, params: dict[str, str],
              reader_id: str | None) -> SerialCardReader:
    """``serial:PORT?family=em4100&baud=9600&lockout=2&id=NAME`` plus the family's own
    parameters, e.g. ``family=pcprox&base=hex&sep=:`` or ``family=wiegand&format=h10301``
    (see readers.spec)."""
    from readers.spec import non_negative_float, positive_int, redact_spec

    if not target:
        raise ConfigError(f"reader spec {redact_spec(spec)!r} names no port; expected e.g. "
                          f"{_EXAMPLE!r}")
    family = params.get("family", "em4100")
    if family not in SERIAL_FAMILIES:
        raise ConfigError(f"reader spec parameter 'family': unknown family {family!r}; "
                          "known families: " + ", ".join(sorted(SERIAL_FAMILIES)))
    baud = positive_int(params, "baud", 9600)
    lockout = non_negative_float(params, "lockout", 2.0)
    rid = reader_id or params.get("id") or spec
    options = {k: v for k, v in params.items() if k not in _COMMON_PARAMS}
    return SerialCardReader(target, reader_id=rid, family=family, baud=baud, lockout_s=lockout,
                            options=options)
