"""Card readers on a serial line (USB-serial, UART, pty), via pyserial. The only pyserial user.

The adapter owns the port and one daemon thread. The thread reads whatever has arrived,
feeds the family's sans-I/O codec (``readers.em4100`` for RDM6300-style readers), drops the
repeats of a held card (``readers.debounce``) and hands each remaining read to the sink.
Everything that decides *what* a read is lives in those pure modules; this file only moves
bytes and survives the port going away.

Port loss: USB-serial adapters vanish when unplugged and come back (often under the same
name) when plugged in again. The thread treats any pyserial/OS error as "port gone": it logs
one warning, then tries to reopen every :data:`RETRY_INTERVAL_S` until it succeeds or
:meth:`SerialCardReader.stop` is called, counting each attempt in ``health.reconnects``.
The codec starts afresh on a reopened port (a half frame from before the outage is
meaningless); the debouncer does not, so a card still held across a glitch is not
mistaken for a new tap.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import serial

from protocol.errors import ConfigError, FrameError, ReaderError
from readers.debounce import Debouncer
from readers.em4100 import Em4100Decoder
from readers.events import CardRead, CardSink, ReaderHealth

__all__ = ["POLL_TIMEOUT_S", "RETRY_INTERVAL_S", "SERIAL_FAMILIES", "SPEC_PARAMS",
           "SerialCardReader", "open_spec"]

_log = logging.getLogger(__name__)

# Short enough that stop() returns promptly and a frame is handed on within a UART frame
# time or two (a 14-byte frame takes 14.6 ms at 9600 baud); long enough not to spin.
POLL_TIMEOUT_S = 0.05
RETRY_INTERVAL_S = 0.5
_JOIN_TIMEOUT_S = 2.0

# Errors that mean "the port is not usable": pyserial's SerialException is an OSError, but
# ValueError is what it raises for settings the driver rejects (e.g. a baud rate).
_PORT_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError, ValueError)


class _Frame(Protocol):
    @property
    def number(self) -> str: ...

    @property
    def raw(self) -> bytes: ...


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Sequence[_Frame | FrameError]: ...


# Family name (as in the reader spec's ``family=``) -> codec factory. A new serial family is
# a new codec module plus one line here.
SERIAL_FAMILIES: dict[str, Callable[[], _Decoder]] = {
    "em4100": Em4100Decoder,
}


class SerialCardReader:
    """A :class:`~readers.events.CardReader` on a serial port or pyserial URL.

    ``port`` is anything :func:`serial.serial_for_url` opens: ``/dev/ttyUSB0``, a pty path,
    ``loop://``. ``lockout_s`` is the held-card window. Constructing validates the settings
    (:class:`ConfigError`) but opens nothing; :meth:`start` opens the port.
    """

    def __init__(self, port: str, *, reader_id: str, family: str = "em4100", baud: int = 9600,
                 lockout_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        factory = SERIAL_FAMILIES.get(family)
        if factory is None:
            known = ", ".join(sorted(SERIAL_FAMILIES))
            raise ConfigError(f"unknown serial reader family {family!r}; known families: {known}")
        if not port:
            raise ConfigError("serial reader port is empty; expected e.g. /dev/ttyUSB0")
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise ConfigError(f"serial reader baud must be a positive integer, got {baud!r}")
        try:
            self._debouncer = Debouncer(lockout_s)
        except ValueError as exc:
            raise ConfigError(f"serial reader lockout: {exc}") from exc
        self.port = port
        self.family = family
        self.baud = baud
        self.reader_id = reader_id
        self.health = ReaderHealth()
        self._new_decoder = factory
        self._clock = clock
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def __repr__(self) -> str:
        return (f"SerialCardReader({self.port!r}, reader_id={self.reader_id!r}, "
                f"family={self.family!r}, baud={self.baud})")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, sink: CardSink) -> None:
        """Open the port and start delivering reads to ``sink`` (called on the reader thread).

        Raises :class:`ReaderError` if the port cannot be opened now: at start-up a wrong
        path or a missing permission is a configuration mistake to show at once, not an
        outage to wait out.
        """
        if self.running:
            raise ReaderError(f"reader {self.reader_id!r} is already started")
        try:
            port = self._open()
        except _PORT_ERRORS as exc:
            raise ReaderError(
                f"cannot open card reader port {self.port!r}: {exc}. Check that the reader is "
                "plugged in, that the port name is right (see /dev/serial/by-id/) and that this "
                "user may open it (usually the 'dialout' group)") from exc
        # A fresh Event per run: a thread from an earlier run that is still winding down
        # keeps its own (set) event and cannot be revived by this start().
        self._stopping = stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(port, sink, stopping),
            name=f"reader-{self.reader_id}", daemon=True)
        self._thread.start()
        _log.info("reader %s: listening on %s (%s, %d baud)",
                  self.reader_id, self.port, self.family, self.baud)

    def stop(self) -> None:
        """Stop reading and close the port. Idempotent; safe to call from the sink."""
        thread = self._thread
        self._stopping.set()
        if thread is None:
            return
        if thread is threading.current_thread():
            return  # called from the sink: the loop sees the event and ends after this read
        thread.join(_JOIN_TIMEOUT_S)
        if thread.is_alive():
            # Only a sink that blocks can get here; the thread is a daemon, so it cannot keep
            # the process alive, and it will exit as soon as the sink returns.
            _log.warning("reader %s: reader thread did not stop within %.1f s (blocked sink?)",
                         self.reader_id, _JOIN_TIMEOUT_S)
        self._thread = None
        _log.info("reader %s: stopped", self.reader_id)

    # -- reader thread -------------------------------------------------------------------

    def _open(self) -> Any:
        return serial.serial_for_url(self.port, baudrate=self.baud, timeout=POLL_TIMEOUT_S)

    def _run(self, port: Any, sink: CardSink, stopping: threading.Event) -> None:
        decoder = self._new_decoder()
        try:
            while not stopping.is_set():
                if port is None:
                    port = self._reopen(stopping)
                    if port is None:
                        break
                    decoder = self._new_decoder()
                try:
                    # Block for one byte (up to the timeout), then take the rest of what the
                    # driver already holds, so a burst costs one call rather than one per byte.
                    data = port.read(max(1, port.in_waiting))
                except _PORT_ERRORS as exc:
                    _log.warning("reader %s: lost port %s (%s); retrying every %.1f s",
                                 self.reader_id, self.port, exc, RETRY_INTERVAL_S)
                    _close_quietly(port)
                    port = None
                    continue
                if data:
                    self._deliver(decoder.feed(data), sink)
        finally:
            if port is not None:
                _close_quietly(port)

    def _reopen(self, stopping: threading.Event) -> Any:
        """Retry until the port opens (returned) or stop() is called (None)."""
        while not stopping.wait(RETRY_INTERVAL_S):
            self.health.reconnects += 1
            try:
                port = self._open()
            except _PORT_ERRORS as exc:
                _log.debug("reader %s: reopening %s failed: %s", self.reader_id, self.port, exc)
                continue
            _log.info("reader %s: port %s is back after %d attempt(s)",
                      self.reader_id, self.port, self.health.reconnects)
            return port
        return None

    def _deliver(self, events: Sequence[_Frame | FrameError], sink: CardSink) -> None:
        for event in events:
            if isinstance(event, FrameError):
                self.health.bad_frames += 1
                # The codec's messages say what failed without the digits: safe to log.
                _log.debug("reader %s: %s", self.reader_id, event)
                continue
            now = self._clock()
            if not self._debouncer.accept(event.number, now):
                self.health.suppressed += 1
                continue
            self.health.reads += 1
            read = CardRead(number=event.number, raw=event.raw, reader_id=self.reader_id, at=now)
            _log.debug("reader %s: read %s", self.reader_id, read.masked)
            try:
                sink(read)
            except Exception:
                # A sink should only enqueue; if it fails anyway, losing this read is better
                # than losing the reader thread and every read after it.
                _log.exception("reader %s: card sink failed; read %s dropped",
                               self.reader_id, read.masked)


def _close_quietly(port: Any) -> None:
    # Closing a port that has already vanished raises; there is nothing left to release.
    with contextlib.suppress(*_PORT_ERRORS):
        port.close()


#: Parameters a ``serial:`` reader spec takes (readers.spec).
SPEC_PARAMS = ("family", "baud", "lockout", "id")
_EXAMPLE = "serial:/dev/ttyUSB0?family=em4100"


def open_spec(spec: str, target: str, params: dict[str, str],
              reader_id: str | None) -> SerialCardReader:
    """``serial:PORT?family=em4100&baud=9600&lockout=2&id=NAME`` (see readers.spec)."""
    from readers.spec import non_negative_float, positive_int

    if not target:
        raise ConfigError(f"reader spec {spec!r} names no port; expected e.g. {_EXAMPLE!r}")
    family = params.get("family", "em4100")
    if family not in SERIAL_FAMILIES:
        raise ConfigError(f"reader spec parameter 'family': unknown family {family!r}; "
                          "known families: " + ", ".join(sorted(SERIAL_FAMILIES)))
    baud = positive_int(params, "baud", 9600)
    lockout = non_negative_float(params, "lockout", 2.0)
    rid = reader_id or params.get("id") or spec
    return SerialCardReader(target, reader_id=rid, family=family, baud=baud, lockout_s=lockout)
