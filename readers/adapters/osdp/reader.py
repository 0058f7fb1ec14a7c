"""OSDP card readers, as the control panel (CP), via libosdp (this package its only user).

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
Raw bits or ASCII as the reader sent them become the canonical number in the OSDP codec,
:func:`readers.codecs.osdp.card_number` (its docstring has the rules and a worked example).

Where it lives
--------------
This module is the adapter (the :class:`OsdpCardReader` port, its thread, the spec); the
link's state machine, libosdp's callbacks and the state a technician sees are in
:mod:`.link`, libosdp's byte channel on the serial port in :mod:`.channel`.

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

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import osdp_sys
import serial

from protocol.errors import ConfigError, ReaderError
from readers.adapters.lifecycle import ReaderThread
from readers.adapters.osdp.channel import SerialChannel
from readers.adapters.osdp.link import LinkSession, LinkState, OsdpLinkStatus
from readers.adapters.serial_port import PORT_ERRORS, close_quietly
from readers.codecs import osdp as osdp_codec
from readers.debounce import Debouncer
from readers.events import CardSink, ReaderHealth

__all__ = ["BAUD_RATES", "LIBOSDP_LOG_LEVEL", "RETRY_INTERVAL_S", "SCBK_D", "SPEC_PARAMS",
           "OsdpCardReader", "open_spec"]

_log = logging.getLogger(__name__)

#: Baud rates OSDP defines (IEC 60839-11-5); readers ship at 9600 and are often set faster.
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400)
#: The public default install key SCBK-D. Configuring it as "the" key would be no key at all.
SCBK_D = bytes(range(0x30, 0x40))
#: libosdp's (process-wide) log level; see the module docstring.
LIBOSDP_LOG_LEVEL = osdp_sys.LOG_CRIT
#: Seconds between tries to bring a link up that is down (or refused), or to reopen the port.
RETRY_INTERVAL_S = 2.0
# A write the driver cannot take this quickly is a stuck line, not a reason to block the
# thread that must refresh libosdp every 50 ms.
_WRITE_TIMEOUT_S = 0.1

# The codec numbers card formats as libosdp does without importing it; a libosdp that
# renumbered them would turn every read into "unknown format", so refuse to load instead.
if (osdp_codec.FMT_RAW_UNSPECIFIED, osdp_codec.FMT_RAW_WIEGAND, osdp_codec.FMT_ASCII) != (
        osdp_sys.CARD_FMT_RAW_UNSPECIFIED, osdp_sys.CARD_FMT_RAW_WIEGAND,
        osdp_sys.CARD_FMT_ASCII):
    raise ImportError("libosdp's card format codes differ from readers.codecs.osdp's")


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
        self._debouncer = Debouncer.for_lockout(lockout_s, "OSDP reader")
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
        self._thread = ReaderThread(reader_id, _log)
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
        return self._thread.running

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
        self._thread.refuse_if_running()
        osdp_sys.set_loglevel(LIBOSDP_LOG_LEVEL)
        try:
            port = self._open()
        except PORT_ERRORS as exc:
            raise ReaderError(
                f"cannot open OSDP reader port {self.port!r}: {exc}. Check that the RS-485 "
                "adapter is plugged in, that the port name is right (see /dev/serial/by-id/) "
                "and that this user may open it (usually the 'dialout' group)") from exc
        channel = SerialChannel(port, self.address, self._clock)
        session = LinkSession(self, channel, sink)
        try:
            session.setup()
        except Exception as exc:
            # libosdp raises bare Exception/TypeError/ValueError; ours is a ReaderError.
            close_quietly(port)
            raise ReaderError(f"reader {self.reader_id!r}: libosdp could not set up the "
                              f"control panel: {type(exc).__name__}") from exc
        self._thread.start(session.run)
        _log.info("reader %s: OSDP control panel on %s (address %d, %d baud, %s)",
                  self.reader_id, self.port, self.address, self.baud,
                  "plaintext allowed" if self.allow_plaintext else "Secure Channel required")

    def stop(self) -> None:
        """Stop the control panel and close the port. Idempotent; safe to call from the sink."""
        if self._thread.stop():
            _log.info("reader %s: stopped", self.reader_id)

    def _open(self) -> Any:
        return serial.serial_for_url(self.port, baudrate=self.baud, timeout=0,
                                     write_timeout=_WRITE_TIMEOUT_S)


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
