"""OSDP card readers, as the control panel (CP), via libosdp. The only libosdp user.

Theory of operation
-------------------
An OSDP reader (a *peripheral device*, PD) sits on an RS-485 bus; the copier side is the
*control panel*. Here the bus is reached through a USB-RS485 adapter (``/dev/ttyUSB0``),
opened with pyserial. libosdp's CP (``osdp_sys.ControlPanel``, the thin binding; the
friendlier ``osdp`` wrapper starts its own non-daemon thread and prints callback errors to
stdout, so it is not used) does the protocol: it polls the reader, runs the Secure Channel
(SC) handshake, retries, and hands card reads to a callback. libosdp must be ``refresh()``-ed
at least every 50 ms and is not thread-safe, so this adapter owns one daemon thread that
does everything with it: refreshes, reads its status, receives its callbacks (they run
inside ``refresh()``), decides whether a read may be trusted, debounces and hands the read
to the sink.

Secure Channel is required by default
-------------------------------------
A CP that silently drops to plaintext when the keys do not match is a known weakness of OSDP
installations: card numbers then cross the wire in clear, and a reader swapped for a rogue
one is accepted. libosdp does exactly that unless told otherwise (an observed run with a
wrong key: "SC Failed. Retry with SCBK-D" ... "Online; Without SC"). So, unless
``allow_plaintext`` is set, the CP runs with libosdp's ``ENFORCE_SECURE`` flag: a reader that
cannot set up SC with our SCBK is never brought online, never polled, so it never gets to
send a card number in clear. On top of that every card read is checked against the SC
status at the moment it arrives, and a read without SC is dropped and counted
(``status.refused_reads``), should the library ever let one through.

libosdp does not say *why* a reader stays offline, so the adapter watches the wire: its
channel notes every reply header from our address (``0x53``, ``address | 0x80``; headers are
never encrypted). An attempt that ends with the reader having answered but no SC session is
a refusal -- the reader's key differs from ours, or it has SC disabled, or it is in install
mode (libosdp would key such a reader with the public default key SCBK-D, which we do not
allow outside bench setups). The adapter then reports it in every place a technician looks:
an ERROR log line (once per episode), ``status.state == LinkState.REFUSED``,
``status.secure == False``, ``status.sc_failures`` counting the failed attempts, and
``status.fault``, a :class:`SecureChannelRefused` carrying code ``osdp_sc_refused``.
It keeps retrying, so fixing the key on the reader brings it up without a restart.

``allow_plaintext=True`` is for bench setups only: libosdp may then fall back to plaintext,
reads without SC are delivered, and each such read, the link coming up without SC, and the
setting itself are logged as warnings (``status.plaintext_reads`` counts them). It is also
how a new reader is keyed: given an ``scbk``, libosdp sets up SC with a reader in install
mode using SCBK-D and sends it our key (osdp_KEYSET); after that the reader works with SC
required. Anyone listening on the bus during that exchange learns the key, hence the bench.

Recovery
--------
libosdp's own recovery is slow for a release station: it probes a silent reader for ~8 s
before declaring it offline and then waits a fixed 300 s before trying again
(``OSDP_ONLINE_RETRY_WAIT_MAX_MS``, compiled in; the Python binding has no timing knobs). So
the adapter drives recovery itself: a reader that sends nothing for :data:`SILENCE_S` while
online is declared gone and its session restarted at once; a reader that does not answer a
new session is reported after :data:`SILENCE_S` (libosdp goes on probing it about once a
second); and ``retry_interval_s`` after libosdp gives up on an attempt (a refusal, or the end
of its probing) the link is restarted. Restarts use ``disable_pd``/``enable_pd``, libosdp's
"hot-plug" calls. Each restart, and each try to reopen a vanished serial port, counts in
``health.reconnects``.

Card data to card number
------------------------
OSDP readers report a card either as raw bits (osdp_RAW, format "Wiegand" or "unspecified")
or as characters (osdp_FMT / ASCII). See :func:`card_number`:

* **Raw bits** -> the whole bit string, parity bits included and the padding at the end
  dropped, as one unsigned number in upper-case hex, zero-padded to the digits the bit count
  needs (26 bits -> 7 digits, 32 -> 8, 37 -> 10). The adapter does not guess the layout:
  the same bit count does not mean the same layout (H10301 and proprietary 26-bit formats
  differ), and a wrong guess silently merges or splits cards. Splitting out facility and
  card number, dropping parity, hex to decimal belong to the per-device conversion rules,
  applied the same way to every reader. Hex keeps the bits readable against a layout table;
  the width keeps leading zeros fixed per format and keeps a 26-bit and a 32-bit credential
  with the same value apart. It is the spelling of the bits in mfdkit's Wiegand serial line
  (``W26:00451E5``, :mod:`readers.codecs.wiegand_serial`). Worked example: the H10301 card
  facility 2 / card 10482 reads ``00451E5``; the conversion step ``wiegand:h10301`` turns
  it into ``10482`` (parity checked), as it does the ``000451E5`` a raw-mode USB reader
  shows for the same card (FIELD_NOTES).
* **ASCII** (osdp_FMT, deprecated since OSDP 2.2 and no longer sent by libosdp's PD, but
  still met on old readers) -> the characters as the reader sent them, surrounding spaces
  and NULs stripped: the reader was configured to do the decoding, so its digits are the
  number.

``CardRead.raw`` is the card data bytes as the reader sent them, in both cases.

Spec string
-----------
``osdp:PORT?address=1&scbk=HEX32&baud=115200&plaintext=0&lockout=2&id=NAME``
(see :func:`open_spec`). An SCBK on a command line is visible in ``ps`` and shell history:
put the spec in the device's configuration file (readable only by the service user) rather
than on the command line. The key is never logged, never part of ``repr`` or of the default
reader id.

libosdp's own log lines go to stdout, unstructured, without our reader id, and its debug
level may dump packets; they are turned down to critical (:data:`LIBOSDP_LOG_LEVEL`, which is
process-wide) and this module logs every state change itself.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import osdp_sys
import serial

from protocol.errors import ConfigError, FrameError, ReaderError
from readers.debounce import Debouncer
from readers.events import CardRead, CardSink, ReaderHealth

__all__ = ["BAUD_RATES", "LIBOSDP_LOG_LEVEL", "POLL_INTERVAL_S", "RETRY_INTERVAL_S",
           "SCBK_D", "SILENCE_S", "SPEC_PARAMS", "LinkState", "OsdpCardReader", "OsdpError",
           "OsdpLinkStatus", "SecureChannelRefused", "card_number", "open_spec"]

_log = logging.getLogger(__name__)

#: Baud rates OSDP defines (IEC 60839-11-5); readers ship at 9600 and are often set faster.
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400)
#: The public default install key SCBK-D. Configuring it as "the" key would be no key at all.
SCBK_D = bytes(range(0x30, 0x40))
#: libosdp's (process-wide) log level; see the module docstring.
LIBOSDP_LOG_LEVEL = osdp_sys.LOG_CRIT

# libosdp needs refresh() at least every 50 ms; 20 ms is what its own wrapper uses.
POLL_INTERVAL_S = 0.02
#: Seconds between tries to bring a link up that is down (or refused), or to reopen the port.
RETRY_INTERVAL_S = 2.0
#: An online reader that sends nothing for this long is gone. libosdp polls every few tens
#: of ms and times a reply out after 200 ms, so 1 s is several missed polls in a row.
SILENCE_S = 1.0
_JOIN_TIMEOUT_S = 2.0
# A write the driver cannot take this quickly is a stuck line, not a reason to block the
# thread that must refresh libosdp every 50 ms.
_WRITE_TIMEOUT_S = 0.1
_PD = 0  # this adapter's CP has exactly one PD, at libosdp's offset 0

# Errors that mean "the serial port is not usable" (see readers.adapters.serial_reader).
_PORT_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError, ValueError)

_SOM = 0x53
_NOTIFY_SC_STATUS = osdp_sys.EVENT_NOTIFICATION_SC_STATUS
_NOTIFY_PD_STATUS = osdp_sys.EVENT_NOTIFICATION_PD_STATUS


class OsdpError(ReaderError):
    """An OSDP reader is not usable right now; ``code`` says why."""

    code = "osdp_error"


class SecureChannelRefused(OsdpError):
    """The reader answers but no Secure Channel can be set up, so its reads are refused."""

    code = "osdp_sc_refused"


class LinkState(StrEnum):
    """Where the link to the reader stands, as ``status.state``."""

    STOPPED = "stopped"
    CONNECTING = "connecting"  # first attempt under way
    SECURE = "secure"  # online with Secure Channel: reads accepted
    PLAINTEXT = "plaintext"  # online without SC, allowed (bench): reads accepted, warned
    REFUSED = "refused"  # reader answers, SC not established: reads refused
    NO_ANSWER = "no_answer"  # nothing from the reader at our address
    PORT_LOST = "port_lost"  # the serial port itself went away


# What entering each state means to a technician: log level, fault code (None: no fault),
# and the message, formatted with the reader's details. One table, so the wording of every
# state is reviewed in one place.
_ANNOUNCE: dict[LinkState, tuple[int, str | None, str]] = {
    LinkState.SECURE: (
        logging.INFO, None,
        "reader {id}: online with Secure Channel ({where})"),
    LinkState.PLAINTEXT: (
        logging.WARNING, None,
        "reader {id}: online WITHOUT Secure Channel ({where}); card reads are accepted in "
        "plaintext because allow_plaintext is set -- for bench setups only"),
    LinkState.REFUSED: (
        logging.ERROR, SecureChannelRefused.code,
        "reader {id}: REFUSING card reads: the reader answers ({where}) but no Secure "
        "Channel can be set up with the configured SCBK. Either its key differs, it has "
        "Secure Channel disabled, or it is in install mode. Plaintext is not accepted; set "
        "the reader's SCBK to the one configured for this device (or re-key the reader)"),
    LinkState.NO_ANSWER: (
        logging.WARNING, "osdp_no_answer",
        "reader {id}: no answer from the reader ({where}); check its power and wiring "
        "(RS-485 A/B swapped?), its OSDP address and baud rate; retrying every {retry:g} s"),
    LinkState.PORT_LOST: (
        logging.WARNING, "reader_port_lost",
        "reader {id}: lost serial port {port} ({detail}); retrying every {retry:g} s"),
}


@dataclass(slots=True)
class OsdpLinkStatus:
    """The OSDP side of a reader's health, for a technician's display.

    Written by the reader's thread only; other threads read it (a field at a time). After
    :meth:`OsdpCardReader.stop` the counters and the last ``fault`` stay, for a summary.
    """

    state: LinkState = LinkState.STOPPED
    online: bool = False  # libosdp has the reader online (polling it)
    secure: bool = False  # ... with a Secure Channel session
    sc_failures: int = 0  # attempts where the reader answered but SC was not set up
    refused_reads: int = 0  # card reads dropped because they arrived without SC
    plaintext_reads: int = 0  # card reads accepted without SC (allow_plaintext)
    fault: OsdpError | None = None  # what is wrong now, for the technician; None if nothing


# -- card data (pure) --------------------------------------------------------------------

_FMT_RAW = (osdp_sys.CARD_FMT_RAW_UNSPECIFIED, osdp_sys.CARD_FMT_RAW_WIEGAND)
_FMT_ASCII = osdp_sys.CARD_FMT_ASCII
_ASCII_PAD = b" \t\r\n\x00"


def card_number(fmt: int, bits: int | None, data: bytes) -> str:
    """The canonical card number for OSDP card data (see the module docstring).

    ``fmt`` is libosdp's format code, ``bits`` the bit count for raw formats, ``data`` the
    card data bytes. Raises :class:`FrameError` for data that cannot be a card read; the
    message never contains the data.
    """
    if fmt in _FMT_RAW:
        if bits is None or bits <= 0:
            raise FrameError(f"OSDP raw card read with a bit count of {bits}")
        if len(data) != (bits + 7) // 8:
            raise FrameError(f"OSDP raw card read of {bits} bits came with {len(data)} "
                             "data bytes")
        value = int.from_bytes(data, "big") >> (len(data) * 8 - bits)
        return f"{value:0{(bits + 3) // 4}X}"
    if fmt == _FMT_ASCII:
        text = data.strip(_ASCII_PAD)
        if not text or not all(0x20 <= b < 0x7F for b in text):
            raise FrameError(f"OSDP ASCII card read of {len(data)} bytes is empty or not "
                             "printable ASCII")
        return text.decode("ascii")
    raise FrameError(f"OSDP card read in unknown format {fmt}")


# -- the wire ------------------------------------------------------------------------------


class _SerialChannel:
    """libosdp's channel (``read``/``write``/``flush``) on a pyserial port.

    libosdp calls these inside ``refresh()`` and cannot take a Python exception (it would be
    left pending and break the next call), so nothing here raises: a port error marks the
    port lost (``lost`` holds the error) for the reader thread to deal with after
    ``refresh()`` returns. It also notes reply headers from our address (``replies``,
    ``last_reply_at``): the only way to tell "the reader answers" from "nobody is there".
    """

    def __init__(self, port: Any, address: int, clock: Callable[[], float]) -> None:
        self.port: Any = port
        self.lost: Exception | None = None
        self.replies = 0
        self.last_reply_at = clock()
        self._clock = clock
        self._header = bytes([_SOM, address | 0x80])
        self._carry = b""  # the last byte read, in case a header straddles two reads

    def attach(self, port: Any) -> None:
        self.port, self.lost, self._carry = port, None, b""

    def read(self, max_bytes: int) -> bytes:
        if self.port is None or self.lost is not None:
            return b""
        try:
            data: bytes = self.port.read(min(max_bytes, self.port.in_waiting))
        except Exception as exc:  # nothing may escape into libosdp; see the class docstring
            self.lost = exc
            return b""
        if data:
            seen = self._carry + data
            count = seen.count(self._header)
            if count:
                self.replies += count
                self.last_reply_at = self._clock()
            self._carry = seen[-1:]
        return data

    def write(self, buf: bytes) -> int:
        if self.port is None or self.lost is not None:
            return -1
        try:
            written: int | None = self.port.write(buf)
        except serial.SerialTimeoutException:
            return -1  # the line is stuck for now; libosdp retries the command
        except Exception as exc:
            self.lost = exc
            return -1
        return len(buf) if written is None else written

    def flush(self) -> None:
        # libosdp flushes after a framing error: whatever half-packet is queued is garbage.
        if self.port is not None and self.lost is None:
            try:
                self.port.reset_input_buffer()
            except Exception as exc:  # termios.error, for one, is not an OSError
                self.lost = exc
        self._carry = b""


def _close_quietly(port: Any) -> None:
    # Closing a port that has already vanished raises; there is nothing left to release.
    with contextlib.suppress(*_PORT_ERRORS):
        port.close()


# -- the adapter ---------------------------------------------------------------------------


class OsdpCardReader:
    """A :class:`~readers.events.CardReader` for one OSDP reader, as its control panel.

    ``port`` is the serial device of the RS-485 adapter (anything
    :func:`serial.serial_for_url` opens), ``address`` the reader's OSDP address (0..126;
    most readers ship at 0), ``scbk`` the reader's 16-byte Secure Channel Base Key. Without
    ``allow_plaintext`` an SCBK is required and plaintext is refused; see the module
    docstring. ``lockout_s`` is the held-card window; ``retry_interval_s`` how often a link
    that is down is retried. Constructing validates everything (:class:`ConfigError`) but
    opens nothing; :meth:`start` opens the port.

    ``health`` counts reads, bad card data, suppressed repeats and reconnect attempts like
    every reader; ``status`` (:class:`OsdpLinkStatus`) holds the OSDP link: state, whether
    it is secure, refusals and the current fault.
    """

    def __init__(self, port: str, *, scbk: bytes | None, reader_id: str, address: int = 0,
                 baud: int = 115200, lockout_s: float = 2.0, allow_plaintext: bool = False,
                 retry_interval_s: float = RETRY_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not port:
            raise ConfigError("OSDP reader port is empty; expected e.g. /dev/ttyUSB0")
        if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 126:
            raise ConfigError(f"OSDP reader address must be an integer 0..126 (127 is the "
                              f"broadcast address), got {address!r}")
        if baud not in BAUD_RATES or isinstance(baud, bool):
            raise ConfigError(f"OSDP reader baud must be one of "
                              f"{', '.join(map(str, BAUD_RATES))}; got {baud!r}")
        if scbk is not None:
            # Never echo the key, not even a wrong one: it may be a typo of the real one.
            if not isinstance(scbk, bytes | bytearray) or len(scbk) != 16:
                raise ConfigError("OSDP reader scbk must be 16 bytes (32 hex digits)")
            if bytes(scbk) == SCBK_D:
                raise ConfigError("OSDP reader scbk is the public default install key "
                                  "SCBK-D; give the reader a key of its own")
        elif not allow_plaintext:
            raise ConfigError(
                "OSDP reader needs an scbk (the reader's 16-byte Secure Channel key): card "
                "reads are refused without Secure Channel. Only a bench setup may set "
                "allow_plaintext instead")
        if not (math.isfinite(retry_interval_s) and retry_interval_s > 0):
            raise ConfigError(f"OSDP reader retry interval must be > 0 s, got "
                              f"{retry_interval_s!r}")
        try:
            self._debouncer = Debouncer(lockout_s)
        except ValueError as exc:
            raise ConfigError(f"OSDP reader lockout: {exc}") from exc
        self.port = port
        self.address = address
        self.baud = baud
        self.allow_plaintext = allow_plaintext
        self.retry_interval_s = retry_interval_s
        self.reader_id = reader_id
        self.health = ReaderHealth()
        self.status = OsdpLinkStatus()
        self._scbk = None if scbk is None else bytes(scbk)
        self._clock = clock
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        if allow_plaintext:
            _log.warning("reader %s: allow_plaintext is set: card reads without Secure "
                         "Channel will be accepted. For bench setups only", reader_id)

    def __repr__(self) -> str:
        # No key here, ever: repr ends up in logs and tracebacks.
        mode = "plaintext allowed" if self.allow_plaintext else "SC required"
        return (f"OsdpCardReader({self.port!r}, reader_id={self.reader_id!r}, "
                f"address={self.address}, baud={self.baud}, {mode})")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def secure(self) -> bool:
        """The link is up with Secure Channel right now."""
        return self.status.state is LinkState.SECURE

    def start(self, sink: CardSink) -> None:
        """Open the port, start the control panel and deliver reads to ``sink``.

        The sink is called on the reader thread. Raises :class:`ReaderError` if the port
        cannot be opened or libosdp refuses the setup: at start-up those are mistakes to
        show at once. Whether the reader answers, and securely, is reported in ``status``
        as it happens (the handshake takes a few tens of ms to seconds).
        """
        if self.running:
            raise ReaderError(f"reader {self.reader_id!r} is already started")
        osdp_sys.set_loglevel(LIBOSDP_LOG_LEVEL)
        try:
            port = self._open()
        except _PORT_ERRORS as exc:
            raise ReaderError(
                f"cannot open OSDP reader port {self.port!r}: {exc}. Check that the RS-485 "
                "adapter is plugged in, that the port name is right (see /dev/serial/by-id/) "
                "and that this user may open it (usually the 'dialout' group)") from exc
        channel = _SerialChannel(port, self.address, self._clock)
        session = _Session(self, channel, sink)
        try:
            session.setup()
        except Exception as exc:
            # libosdp raises bare Exception/TypeError/ValueError; ours is a ReaderError.
            _close_quietly(port)
            raise ReaderError(f"reader {self.reader_id!r}: libosdp could not set up the "
                              f"control panel: {type(exc).__name__}") from exc
        self._stopping = stopping = threading.Event()
        self._thread = threading.Thread(target=session.run, args=(stopping,),
                                        name=f"reader-{self.reader_id}", daemon=True)
        self._thread.start()
        _log.info("reader %s: OSDP control panel on %s (address %d, %d baud, %s)",
                  self.reader_id, self.port, self.address, self.baud,
                  "plaintext allowed" if self.allow_plaintext else "Secure Channel required")

    def stop(self) -> None:
        """Stop the control panel and close the port. Idempotent; safe to call from the sink."""
        thread = self._thread
        self._stopping.set()
        if thread is None:
            return
        if thread is threading.current_thread():
            return  # called from the sink: the loop ends after this read
        thread.join(_JOIN_TIMEOUT_S)
        if thread.is_alive():
            _log.warning("reader %s: reader thread did not stop within %.1f s (blocked sink?)",
                         self.reader_id, _JOIN_TIMEOUT_S)
        self._thread = None
        _log.info("reader %s: stopped", self.reader_id)

    def _open(self) -> Any:
        return serial.serial_for_url(self.port, baudrate=self.baud, timeout=0,
                                     write_timeout=_WRITE_TIMEOUT_S)


class _Session:
    """One run of a reader: the libosdp context, the port and the link bookkeeping.

    Everything here runs on the reader thread (``setup`` on the caller's, before the thread
    exists), so nothing needs a lock; the reader object is only written through ``health``
    and ``status``.
    """

    def __init__(self, reader: OsdpCardReader, channel: _SerialChannel, sink: CardSink) -> None:
        self.r = reader
        self.channel = channel
        self.sink = sink
        self.ctx: Any = None
        self.pending: list[tuple[dict[str, Any], bool]] = []  # card reads from the callback
        self.gave_up = False  # libosdp reported the PD offline (it stopped trying)
        self.attempting = True  # libosdp is trying to bring the PD online
        self.attempt_replies = 0  # channel.replies when the attempt began
        self.attempt_started = 0.0
        self.next_try = math.inf  # when to restart the link (or reopen the port)
        self.enable_pending = False

    def setup(self) -> None:
        flags = osdp_sys.FLAG_ENABLE_NOTIFICATION
        if not self.r.allow_plaintext:
            flags |= osdp_sys.FLAG_ENFORCE_SECURE
        info: dict[str, Any] = {"name": self.r.reader_id, "address": self.r.address,
                                "flags": flags, "channel": self.channel}
        if self.r._scbk is not None:
            info["scbk"] = self.r._scbk
        self.ctx = osdp_sys.ControlPanel([info])
        self.ctx.set_event_callback(self._on_event)
        self._begin_attempt(self.r._clock())
        self._enter(LinkState.CONNECTING)

    def run(self, stopping: threading.Event) -> None:
        try:
            while not stopping.wait(POLL_INTERVAL_S):
                self.tick(self.r._clock())
        except Exception:
            # A bug, not an outage: say so loudly rather than die silently.
            _log.exception("reader %s: OSDP reader thread failed", self.r.reader_id)
            raise
        finally:
            if self.channel.port is not None:
                _close_quietly(self.channel.port)
                self.channel.port = None
            self.ctx = None  # libosdp tears the control panel down with its last reference
            self.r.status.online = self.r.status.secure = False
            self.r.status.state = LinkState.STOPPED

    # -- one step ---------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if self.channel.port is None:
            self._reopen(now)
            return
        if self.enable_pending and self.ctx.enable_pd(_PD):
            self.enable_pending = False
            self._begin_attempt(now)
        self.ctx.refresh()
        if self.channel.lost is not None:
            self._port_lost(now)
            return
        self._deliver(now)
        self._observe(now)

    def _observe(self, now: float) -> None:
        status = self.r.status
        status.online = online = bool(self.ctx.status() & 1 << _PD)
        status.secure = secure = online and bool(self.ctx.sc_status() & 1 << _PD)
        if self.enable_pending:
            return  # a restart is half done; what libosdp reports now is the old session
        up = status.state in (LinkState.SECURE, LinkState.PLAINTEXT)
        if online:
            self.attempting = False
            silent = now - self.channel.last_reply_at >= SILENCE_S
            if silent or (status.state is LinkState.SECURE and not secure):
                # Gone mid-session, or SC dropped under us: start over now rather than
                # wait for libosdp's own ~8 s of probing.
                status.online = status.secure = False
                self._enter(LinkState.NO_ANSWER)
                self._restart(now)
            elif secure:
                self._enter(LinkState.SECURE)
            elif self.r.allow_plaintext:
                self._enter(LinkState.PLAINTEXT)
            else:
                # ENFORCE_SECURE should make this impossible; if a library change ever lets
                # a reader online in plaintext, take it straight back offline.
                self._refused(now)
            return
        if up:
            # libosdp took it offline (it NAK'd after a reboot, or stopped answering).
            self._enter(LinkState.NO_ANSWER)
            self._restart(now)
            return
        if self.attempting:
            heard = self.channel.replies > self.attempt_replies
            if self.gave_up:
                self.attempting = False
                self.next_try = now + self.r.retry_interval_s
                if heard and not self.r.allow_plaintext:
                    self._refused(now, restart=False)
                else:
                    self._enter(LinkState.NO_ANSWER)
            elif not heard and now - self.attempt_started >= SILENCE_S:
                # libosdp keeps probing about once a second for a while; no need to restart,
                # but the technician should see that nobody answers.
                self._enter(LinkState.NO_ANSWER)
        elif now >= self.next_try:
            self._restart(now)

    # -- link control -------------------------------------------------------------------------

    def _begin_attempt(self, now: float) -> None:
        self.attempting = True
        self.gave_up = False
        self.attempt_started = now
        self.attempt_replies = self.channel.replies
        # A reader that just answered its way into this attempt has not gone silent yet.
        self.channel.last_reply_at = now
        self.next_try = math.inf

    def _restart(self, now: float) -> None:
        """Take the PD down and, on the next tick, up again: a fresh attempt at once."""
        self.r.health.reconnects += 1
        self.ctx.disable_pd(_PD)  # takes effect in the next refresh()
        self.enable_pending = True
        self.attempting = False
        self.next_try = math.inf
        _log.debug("reader %s: restarting the OSDP link (attempt %d)", self.r.reader_id,
                   self.r.health.reconnects)

    def _refused(self, now: float, *, restart: bool = True) -> None:
        self.r.status.sc_failures += 1
        self._enter(LinkState.REFUSED)
        if restart:
            self.ctx.disable_pd(_PD)  # stop polling a reader we will not trust
            self.attempting = False
            self.next_try = now + self.r.retry_interval_s
        _log.debug("reader %s: Secure Channel not established (failure %d)",
                   self.r.reader_id, self.r.status.sc_failures)

    def _port_lost(self, now: float) -> None:
        detail = str(self.channel.lost)
        _close_quietly(self.channel.port)
        self.channel.port = None
        self.r.status.online = self.r.status.secure = False
        self._enter(LinkState.PORT_LOST, detail=detail)
        self.next_try = now + self.r.retry_interval_s

    def _reopen(self, now: float) -> None:
        if now < self.next_try:
            return
        self.r.health.reconnects += 1
        self.next_try = now + self.r.retry_interval_s
        try:
            port = self.r._open()
        except _PORT_ERRORS as exc:
            _log.debug("reader %s: reopening %s failed: %s", self.r.reader_id, self.r.port,
                       exc)
            return
        _log.info("reader %s: port %s is back after %d attempt(s)", self.r.reader_id,
                  self.r.port, self.r.health.reconnects)
        self.channel.attach(port)
        # libosdp may be in its 300 s wait by now; start a fresh attempt on the new port.
        self.ctx.disable_pd(_PD)
        self.enable_pending = True
        self.attempting = False

    def _enter(self, state: LinkState, *, detail: str = "") -> None:
        status = self.r.status
        if status.state is state:
            return
        status.state = state
        spec = _ANNOUNCE.get(state)
        if spec is None:
            status.fault = None
            return
        level, code, template = spec
        message = template.format(
            id=self.r.reader_id, where=f"{self.r.port}, address {self.r.address}",
            port=self.r.port, retry=self.r.retry_interval_s, detail=detail)
        status.fault = None if code is None else (
            SecureChannelRefused(message) if code == SecureChannelRefused.code
            else OsdpError(message, code=code))
        _log.log(level, "%s", message)

    # -- libosdp callback and card reads ------------------------------------------------------

    def _on_event(self, pd: int, event: dict[str, Any]) -> int:
        # Runs inside ctx.refresh() on this thread. It must not raise (see _SerialChannel),
        # and it only records: the decisions are taken after refresh() returns.
        try:
            kind = event.get("event")
            if kind == osdp_sys.EVENT_CARDREAD:
                # Judge the read by the SC state it arrived under, not a later one.
                secure = bool(self.ctx.sc_status() & 1 << _PD)
                self.pending.append((event, secure))
            elif kind == osdp_sys.EVENT_NOTIFICATION:
                if event.get("type") == _NOTIFY_PD_STATUS and not event.get("arg0"):
                    self.gave_up = True
                elif event.get("type") == _NOTIFY_SC_STATUS:
                    _log.debug("reader %s: Secure Channel %s", self.r.reader_id,
                               "active" if event.get("arg0") else "inactive")
            else:
                _log.debug("reader %s: ignoring OSDP event type %s", self.r.reader_id, kind)
        except Exception:
            _log.exception("reader %s: OSDP event callback failed", self.r.reader_id)
        return 0

    def _deliver(self, now: float) -> None:
        pending, self.pending = self.pending, []
        r = self.r
        for event, secure in pending:
            if not secure and not r.allow_plaintext:
                r.status.refused_reads += 1
                _log.error("reader %s: REFUSED a card read that arrived without Secure "
                           "Channel (%d refused so far)", r.reader_id, r.status.refused_reads)
                self._refused(now)
                continue
            data = bytes(event.get("data", b""))
            try:
                number = card_number(int(event.get("format", -1)), event.get("length"), data)
            except FrameError as exc:
                r.health.bad_frames += 1
                _log.debug("reader %s: %s", r.reader_id, exc)
                continue
            if not r._debouncer.accept(number, now):
                r.health.suppressed += 1
                continue
            r.health.reads += 1
            read = CardRead(number=number, raw=data, reader_id=r.reader_id, at=now)
            if secure:
                _log.debug("reader %s: read %s", r.reader_id, read.masked)
            else:
                r.status.plaintext_reads += 1
                _log.warning("reader %s: accepted card read %s WITHOUT Secure Channel "
                             "(allow_plaintext)", r.reader_id, read.masked)
            try:
                self.sink(read)
            except Exception:
                # Losing this read beats losing the reader thread and every read after it.
                _log.exception("reader %s: card sink failed; read %s dropped",
                               r.reader_id, read.masked)


# -- reader specs ----------------------------------------------------------------------------

#: Parameters an ``osdp:`` reader spec takes (readers.spec).
SPEC_PARAMS = ("address", "scbk", "baud", "plaintext", "lockout", "id")
_EXAMPLE = "osdp:/dev/ttyUSB0?address=0&scbk=<32 hex digits>"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def open_spec(spec: str, target: str, params: dict[str, str],
              reader_id: str | None) -> OsdpCardReader:
    """``osdp:PORT?address=0&scbk=HEX32&baud=115200&plaintext=0&lockout=2&id=NAME``.

    ``address`` 0..126 (default 0), ``scbk`` the reader's key as 32 hex digits (required
    unless ``plaintext=1``), ``baud`` an OSDP rate (default 115200), ``plaintext=1`` accepts
    reads without Secure Channel (bench setups only; default 0), ``lockout`` the held-card
    window in seconds (default 2), ``id`` the reader id (default ``osdp:PORT?address=N``: the
    spec itself would put the key into every log line).

    The SCBK is a secret: keep the spec in the device's configuration file rather than on a
    command line, where ``ps`` and shell history show it.
    """
    from readers.spec import non_negative_float, positive_int

    if not target:
        raise ConfigError(f"reader spec names no port; expected e.g. {_EXAMPLE!r}")
    text = params.get("address", "0")
    try:
        address = int(text)
    except ValueError:
        address = -1
    if not 0 <= address <= 126:
        raise ConfigError(f"reader spec parameter 'address' must be an OSDP address 0..126, "
                          f"got {text!r}")
    scbk: bytes | None = None
    if "scbk" in params:
        hex_key = params["scbk"]
        try:
            scbk = bytes.fromhex(hex_key)
        except ValueError:
            scbk = None
        if scbk is None or len(scbk) != 16:
            # Length only: the value is (nearly) a secret.
            raise ConfigError(f"reader spec parameter 'scbk' must be 32 hex digits, got "
                              f"{len(hex_key)} characters")
    flag = params.get("plaintext", "0").strip().lower()
    if flag not in _TRUE + _FALSE:
        raise ConfigError(f"reader spec parameter 'plaintext' must be 0 or 1, got "
                          f"{params['plaintext']!r}")
    baud = positive_int(params, "baud", 115200)
    if baud not in BAUD_RATES:
        raise ConfigError(f"reader spec parameter 'baud' must be one of "
                          f"{', '.join(map(str, BAUD_RATES))}, got {baud}")
    lockout = non_negative_float(params, "lockout", 2.0)
    rid = reader_id or params.get("id") or f"osdp:{target}?address={address}"
    return OsdpCardReader(target, scbk=scbk, reader_id=rid, address=address, baud=baud,
                          lockout_s=lockout, allow_plaintext=flag in _TRUE)
