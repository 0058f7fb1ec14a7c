"""Contactless card readers through PC/SC (pcscd), via pyscard. The only pyscard user.

Theory of operation
-------------------
A PC/SC reader does not send card numbers: the application waits for a card to *arrive*
and then asks for its UID. The adapter owns one daemon thread and one PC/SC context:

1. ``SCardGetStatusChange`` on the chosen reader blocks until pcscd reports a change (pcscd
   polls card presence every 400 ms, so an arrival is seen 0-400 ms after the tap; that wait
   is pcscd's, not ours). The moment it returns is the read's timestamp (``CardRead.at``).
2. A card that arrived (absent before, or present under a new event counter, which means it
   was swapped between two waits) is read with the PC/SC part 3 pseudo-APDU GET DATA UID
   ``FF CA 00 00 00``, connecting in shared mode and leaving the card powered on disconnect.
3. ``UID 90 00`` becomes a :class:`~readers.events.CardRead` whose number is the UID in
   upper-case hex; any other answer is a bad read (``health.bad_frames``) with the status
   word explained (:func:`uid_from_response`) and logged, and the thread carries on.
4. Removals are logged (DEBUG) and end the "card present" state; there is nothing to send.

Why the low-level ``smartcard.scard`` API rather than pyscard's ``CardMonitor``: the monitor
is a process-wide singleton thread with a 60 s wait that prints tracebacks, swallows errors
and stops for good when pcscd goes away; it cannot be cancelled promptly or recovered. With
``SCardGetStatusChange`` we see each edge as pcscd reports it, ``SCardCancel`` (the one
call pcsc-lite allows from another thread) wakes the wait so :meth:`stop` is prompt, and
every failure is a return code we map ourselves. pyscard releases the GIL while it waits.

Recovery: pcscd stopping kills the context (``SCARD_F_COMM_ERROR`` at once during a wait,
``SCARD_E_NO_SERVICE`` afterwards; ``SCardIsValidContext`` keeps saying "valid", so it is
no use). The thread releases the context and establishes a new one every
:data:`RETRY_INTERVAL_S`, counting each attempt in ``health.reconnects``, until pcscd is
back. A reader that vanishes (USB unplugged, reported as an unknown or unavailable reader) is
looked for again whenever pcscd's reader list changes (the ``\\?PnP?\\Notification``
pseudo-reader) and at least every :data:`RETRY_INTERVAL_S`; its return counts as one
reconnect. The debouncer survives both, so a card held across a glitch is not a new tap.
A card present when the adapter starts (or when pcscd comes back) is read like a new tap.

Reader specs (readers.spec): ``pcsc:`` (the first reader), ``pcsc:NAME`` or
``pcsc:?reader=NAME&lockout=2&id=ID``. NAME is a case-insensitive part of a reader name as
:func:`list_readers` (``mfd reader list``) shows it, e.g. ``pcsc:ACR122U``; ``lockout`` is the
held-card window in seconds (default 2); ``id`` the reader id (default the spec itself).

The client library reads ``PCSCLITE_CSOCK_NAME`` (pcscd's socket) once per process, at the
first PC/SC call: set it before anything uses PC/SC, never later.

Card numbers never reach the log: only :func:`~readers.events.mask_card` stand-ins, status
words and PC/SC codes do (a UID is the card number, so APDU responses are never traced).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from smartcard import scard

from protocol.errors import ConfigError, ReaderError
from readers.adapters.lifecycle import ReaderThread, hand_over
from readers.debounce import Debouncer
from readers.events import CardRead, CardSink, ReaderHealth

__all__ = ["GET_UID_APDU", "RETRY_INTERVAL_S", "SPEC_PARAMS", "PcscCardReader",
           "ReaderState", "choose_reader", "list_readers", "open_spec", "uid_from_response"]

_log = logging.getLogger(__name__)

#: GET DATA, UID of the card in the field, whole length (PC/SC part 3, 3.2.2.1.3).
GET_UID_APDU = (0xFF, 0xCA, 0x00, 0x00, 0x00)

RETRY_INTERVAL_S = 0.5
# Upper bound of one status wait. stop() cancels the wait at once; this only bounds how long
# a cancel that raced the start of a wait can go unnoticed.
_WAIT_TIMEOUT_MS = 1000
_CANCEL_EVERY_S = 0.05
# A pseudo-reader whose wait returns when pcscd's list of readers changes (pcsc-lite).
_PNP_NOTIFICATION = "\\\\?PnP?\\Notification"

# ReaderError codes this adapter uses (ReaderError.code; "reader_error" is the base code).
CODE_NO_SERVICE = "pcsc_no_service"  # pcscd not running / gone
CODE_NO_READER = "pcsc_no_reader"  # the reader is not (or no longer) there
CODE_UID_NOT_SUPPORTED = "uid_not_supported"
CODE_UID_READ_FAILED = "uid_read_failed"
CODE_BAD_RESPONSE = "bad_response"
CODE_CARD_REMOVED = "card_removed"
CODE_CARD_UNRESPONSIVE = "card_unresponsive"
CODE_READER_BUSY = "reader_busy"
CODE_PCSC = "pcsc_error"

_OK = scard.SCARD_S_SUCCESS
_SERVICE_GONE = frozenset({scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED,
                           scard.SCARD_F_COMM_ERROR, scard.SCARD_E_INVALID_HANDLE})
_READER_GONE = frozenset({scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE,
                          scard.SCARD_E_NO_READERS_AVAILABLE})
_CARD_GONE = frozenset({scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD,
                        scard.SCARD_W_RESET_CARD})
_CARD_MUTE = frozenset({scard.SCARD_W_UNRESPONSIVE_CARD, scard.SCARD_W_UNPOWERED_CARD,
                        scard.SCARD_E_PROTO_MISMATCH, scard.SCARD_E_NOT_TRANSACTED})
_PCI = {scard.SCARD_PROTOCOL_T0: scard.SCARD_PCI_T0, scard.SCARD_PROTOCOL_T1: scard.SCARD_PCI_T1,
        scard.SCARD_PROTOCOL_RAW: scard.SCARD_PCI_RAW}
_READER_LOST_STATES = (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_IGNORE
                       | scard.SCARD_STATE_UNAVAILABLE)

# Status words of GET DATA UID (PC/SC part 3 and ISO 7816-4) -> (error code, explanation).
# Status words carry no card data, so the explanations are safe to log.
_STATUS_WORDS: dict[tuple[int, int], tuple[str, str]] = {
    (0x6A, 0x81): (CODE_UID_NOT_SUPPORTED,
                   "reader/card does not support UID read (6A 81: function not supported)"),
    (0x63, 0x00): (CODE_UID_READ_FAILED,
                   "reader could not read the UID (63 00: operation failed; "
                   "card taken away during the read?)"),
    (0x6F, 0x00): (CODE_UID_READ_FAILED,
                   "reader could not read the UID (6F 00: no precise diagnosis)"),
    (0x6D, 0x00): (CODE_UID_NOT_SUPPORTED,
                   "reader does not know GET DATA (6D 00: instruction not supported); "
                   "it may not implement PC/SC part 3"),
    (0x6E, 0x00): (CODE_UID_NOT_SUPPORTED,
                   "reader does not accept PC/SC pseudo-APDUs (6E 00: class FF not "
                   "supported); it may not implement PC/SC part 3"),
    (0x68, 0x00): (CODE_UID_NOT_SUPPORTED,
                   "reader does not accept PC/SC pseudo-APDUs (68 00: class functions "
                   "not supported); it may not implement PC/SC part 3"),
    (0x6B, 0x00): (CODE_UID_NOT_SUPPORTED,
                   "reader rejected GET DATA's parameters (6B 00: wrong P1 P2)"),
    (0x67, 0x00): (CODE_BAD_RESPONSE, "reader rejected GET DATA's length (67 00)"),
    (0x62, 0x82): (CODE_BAD_RESPONSE,
                   "reader returned less than the whole UID (62 82: end of data)"),
}


class ReaderState(StrEnum):
    """What the adapter is doing, for health displays and tests."""

    STOPPED = "stopped"
    NO_SERVICE = "no_service"  # waiting for pcscd
    NO_READER = "no_reader"  # pcscd runs, the reader is not there
    READY = "ready"  # reader there, no card on it
    CARD = "card"  # a card is on the reader


def uid_from_response(response: bytes) -> bytes:
    """The UID in an answer to GET DATA UID, or a :class:`ReaderError` that explains why not.

    ``6C XX`` (wrong length, XX the right one) is the caller's to retry; here it is an error.
    """
    if len(response) < 2:
        raise ReaderError(f"reader answered GET UID with {len(response)} byte(s), not even a "
                          "status word", code=CODE_BAD_RESPONSE)
    data, sw1, sw2 = response[:-2], response[-2], response[-1]
    if (sw1, sw2) == (0x90, 0x00):
        if not data:
            raise ReaderError("reader answered GET UID with an empty UID (90 00)",
                              code=CODE_BAD_RESPONSE)
        return bytes(data)
    if sw1 == 0x6C:
        raise ReaderError(f"reader keeps asking for another length (6C {sw2:02X})",
                          code=CODE_BAD_RESPONSE)
    code, text = _STATUS_WORDS.get(
        (sw1, sw2), (CODE_BAD_RESPONSE, f"unexpected status word {sw1:02X} {sw2:02X} to GET UID"))
    raise ReaderError(text, code=code)


def choose_reader(readers: Sequence[str], wanted: str | None) -> str | None:
    """The reader to use: the first if ``wanted`` is None, else the first whose name
    contains ``wanted`` (case-insensitive), an exact match first. None if none fits."""
    if not readers:
        return None
    if wanted is None:
        return readers[0]
    if wanted in readers:
        return wanted
    needle = wanted.casefold()
    return next((r for r in readers if needle in r.casefold()), None)


def _hex(rc: int) -> str:
    return f"0x{rc & 0xFFFFFFFF:08X}"


def _pcsc_error(what: str, rc: int) -> ReaderError:
    """Translate a PC/SC return code into our error tree, with a code a technician can act on."""
    if rc in _SERVICE_GONE:
        code, hint = CODE_NO_SERVICE, "is pcscd running?"
    elif rc in _READER_GONE:
        code, hint = CODE_NO_READER, "reader unplugged?"
    elif rc in _CARD_GONE:
        code, hint = CODE_CARD_REMOVED, "card left the reader before its UID was read"
    elif rc in _CARD_MUTE:
        code, hint = CODE_CARD_UNRESPONSIVE, "card does not answer; held too far or too briefly?"
    elif rc == scard.SCARD_E_SHARING_VIOLATION:
        code, hint = CODE_READER_BUSY, "another program holds the reader exclusively"
    else:
        code, hint = CODE_PCSC, ""
    message = f"{what} failed: {scard.SCardGetErrorMessage(rc)} ({_hex(rc)})"
    return ReaderError(f"{message}; {hint}" if hint else message, code=code)


def list_readers() -> list[str]:
    """Names of the readers pcscd knows; an empty list if pcscd is not running or has none."""
    try:
        rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    except (scard.error, TypeError, OSError) as exc:  # a broken client library, not "no pcscd"
        _log.debug("PC/SC unavailable: %s", exc)
        return []
    if rc != _OK:
        _log.debug("PC/SC unavailable: %s (%s)", scard.SCardGetErrorMessage(rc), _hex(rc))
        return []
    try:
        rc, readers = scard.SCardListReaders(ctx, [])
        return [str(r) for r in readers] if rc == _OK else []
    finally:
        scard.SCardReleaseContext(ctx)


class PcscCardReader:
    """A :class:`~readers.events.CardReader` on a PC/SC reader (through pcscd).

    ``reader_name`` None uses the first reader pcscd lists; otherwise the first whose name
    contains it (case-insensitive). ``lockout_s`` is the held-card window of the debouncer.
    ``clock`` stamps reads (monotonic seconds). Constructing validates settings
    (:class:`ConfigError`) and touches no PC/SC state.

    :meth:`start` does not fail when pcscd or the reader is missing: a USB reader enumerated
    after the app started, or pcscd started after it, is normal at boot. The thread logs a
    warning naming what is missing and waits; :attr:`state` and :attr:`last_error` say why
    nothing is read.
    """

    def __init__(self, reader_name: str | None = None, *, reader_id: str,
                 lockout_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        if reader_name is not None and not reader_name.strip():
            raise ConfigError("PC/SC reader name is empty; leave it out to use the first reader")
        self._debouncer = Debouncer.for_lockout(lockout_s, "PC/SC reader")
        self.reader_name = reader_name.strip() if reader_name is not None else None
        self.reader_id = reader_id
        self.health = ReaderHealth()
        #: The reader in use (its full PC/SC name), once found.
        self.reader: str | None = None
        #: Why the last read or connection failed; None after a good read.
        self.last_error: ReaderError | None = None
        self._clock = clock
        self._state = ReaderState.STOPPED
        self._thread = ReaderThread(reader_id, _log)
        self._ctx: int | None = None
        self._ctx_lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"PcscCardReader({self.reader_name!r}, reader_id={self.reader_id!r}, "
                f"state={self._state.value})")

    @property
    def running(self) -> bool:
        return self._thread.running

    @property
    def state(self) -> ReaderState:
        return self._state

    def start(self, sink: CardSink) -> None:
        """Start delivering reads to ``sink`` (called on the reader thread)."""
        self._thread.refuse_if_running()
        self._thread.start(lambda stopping: self._run(sink, stopping))
        _log.info("reader %s: watching PC/SC reader %s", self.reader_id,
                  repr(self.reader_name) if self.reader_name else "(first one)")

    def stop(self) -> None:
        """Stop watching and release the PC/SC context. Idempotent; safe to call from the sink.

        A transmit to a card that never answers cannot be cancelled (vpcd and some drivers
        wait without a timeout); the daemon thread then ends when the card is taken away.
        """
        if self._thread.stop(wake=self._cancel_wait, wake_every_s=_CANCEL_EVERY_S,
                             blocked_by="blocked sink or a card that does not answer?"):
            _log.info("reader %s: stopped", self.reader_id)

    def _cancel_wait(self) -> None:
        # Under the lock the thread clears _ctx with before releasing it, so we never cancel
        # a released handle (which pcsc-lite could have given to another context by now).
        with self._ctx_lock:
            if self._ctx is not None:
                scard.SCardCancel(self._ctx)

    # -- reader thread -------------------------------------------------------------------

    def _run(self, sink: CardSink, stopping: threading.Event) -> None:
        outage = False
        try:
            while not stopping.is_set():
                try:
                    ctx = self._establish()
                except ReaderError as exc:
                    self.last_error = exc
                    if not outage:
                        _log.warning("reader %s: %s; retrying every %.1f s",
                                     self.reader_id, exc, RETRY_INTERVAL_S)
                        outage = True
                    self._state = ReaderState.NO_SERVICE
                    if stopping.wait(RETRY_INTERVAL_S):
                        break
                    self.health.reconnects += 1
                    continue
                if outage:
                    _log.info("reader %s: pcscd is back (%d reconnect attempt(s) so far)",
                              self.reader_id, self.health.reconnects)
                    outage = False
                try:
                    self._watch(ctx, sink, stopping)
                except ReaderError as exc:
                    self.last_error = exc
                    _log.warning("reader %s: PC/SC session lost: %s; reconnecting every %.1f s",
                                 self.reader_id, exc, RETRY_INTERVAL_S)
                    outage = True
                except Exception:
                    # A bug or a library surprise: never let it end the thread. Start a
                    # fresh session after the usual pause rather than spin.
                    _log.exception("reader %s: unexpected error; restarting the PC/SC session",
                                   self.reader_id)
                    outage = True
                finally:
                    self._release(ctx)
                if outage:
                    self._state = ReaderState.NO_SERVICE
                    if stopping.wait(RETRY_INTERVAL_S):
                        break
                    self.health.reconnects += 1
        finally:
            self._state = ReaderState.STOPPED

    def _establish(self) -> int:
        try:
            rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        except (scard.error, TypeError, OSError) as exc:
            # pyscard raises only for a client library it cannot load or call: still an
            # outage to wait out (and report), never a reason to end the thread.
            raise ReaderError(f"PC/SC client library failed: {exc}", code=CODE_PCSC) from exc
        if rc != _OK:
            raise _pcsc_error("connecting to pcscd", rc)
        with self._ctx_lock:
            self._ctx = ctx
        return int(ctx)

    def _release(self, ctx: int) -> None:
        with self._ctx_lock:
            self._ctx = None
        # Fails if pcscd is gone, which releases everything anyway.
        scard.SCardReleaseContext(ctx)

    def _watch(self, ctx: int, sink: CardSink, stopping: threading.Event) -> None:
        """Follow one reader within one context. Returns when stopping; raises
        :class:`ReaderError` when the context is lost (the caller reconnects)."""
        reader: str | None = None
        lost_reader = False  # reader vanished within this session: its return is a reconnect
        state = scard.SCARD_STATE_UNAWARE
        pnp_state = scard.SCARD_STATE_UNAWARE
        while not stopping.is_set():
            if reader is None:
                reader = self._find_reader(ctx, warn=self._state != ReaderState.NO_READER)
                if reader is None:
                    self._state = ReaderState.NO_READER
                    pnp_state = self._wait_for_reader_list(ctx, pnp_state, stopping)
                    continue
                if lost_reader:
                    self.health.reconnects += 1
                    lost_reader = False
                state = scard.SCARD_STATE_UNAWARE
                self._state = ReaderState.READY
            rc, states = scard.SCardGetStatusChange(ctx, _WAIT_TIMEOUT_MS, [(reader, state)])
            now = self._clock()
            if rc in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                continue
            event = states[0][1] if rc == _OK and states else 0
            if rc in _READER_GONE or (rc == _OK and event & _READER_LOST_STATES):
                self._reader_lost(reader, rc)
                reader, lost_reader = None, True
                continue
            if rc != _OK:
                raise _pcsc_error("waiting for a card", rc)
            state = self._on_change(ctx, reader, state, event, now, sink)

    def _on_change(self, ctx: int, reader: str, old: int, event: int, now: float,
                   sink: CardSink) -> int:
        """Act on one reported change; returns the state to wait from next."""
        was_present = bool(old & scard.SCARD_STATE_PRESENT)
        present = bool(event & scard.SCARD_STATE_PRESENT)
        # The high 16 bits count insertions and removals: present before and after with a
        # different count means the card was swapped between two waits.
        swapped = was_present and present and (old >> 16) != (event >> 16)
        if present and (not was_present or swapped):
            self._state = ReaderState.CARD
            if event & scard.SCARD_STATE_MUTE:
                self._bad_read(ReaderError("card on the reader does not answer (mute); held "
                                           "too far or too briefly?",
                                           code=CODE_CARD_UNRESPONSIVE))
            else:
                self._read(ctx, reader, now, sink)
        elif was_present and not present:
            _log.debug("reader %s: card removed", self.reader_id)
            self._state = ReaderState.READY  # last: watchers of the state see a handled event
        return int(event & ~scard.SCARD_STATE_CHANGED)

    def _find_reader(self, ctx: int, *, warn: bool) -> str | None:
        rc, readers = scard.SCardListReaders(ctx, [])
        if rc in _READER_GONE:
            readers = []  # pcsc-lite says "no readers" with an error code
        elif rc != _OK:
            raise _pcsc_error("listing readers", rc)
        chosen = choose_reader([str(r) for r in readers], self.reader_name)
        if chosen is None:
            what = f"no reader matching {self.reader_name!r}" if self.reader_name else "no reader"
            self.last_error = ReaderError(f"{what}; readers present: "
                                          + (", ".join(readers) or "none"),
                                          code=CODE_NO_READER)
            if warn:
                _log.warning("reader %s: %s; waiting for it", self.reader_id, self.last_error)
            return None
        if chosen != self.reader:
            _log.info("reader %s: using PC/SC reader %r", self.reader_id, chosen)
        elif self._state == ReaderState.NO_READER:
            _log.info("reader %s: PC/SC reader %r is back", self.reader_id, chosen)
        self.reader = chosen
        return chosen

    def _wait_for_reader_list(self, ctx: int, pnp_state: int, stopping: threading.Event) -> int:
        """Wait for pcscd's reader list to change (or the retry interval); new PnP state."""
        rc, states = scard.SCardGetStatusChange(ctx, int(RETRY_INTERVAL_S * 1000),
                                                [(_PNP_NOTIFICATION, pnp_state)])
        if rc == _OK and states:
            return int(states[0][1] & ~scard.SCARD_STATE_CHANGED)
        if rc in _SERVICE_GONE:
            raise _pcsc_error("waiting for a reader", rc)
        if rc not in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
            # A pcscd without reader-list notifications: fall back to polling.
            stopping.wait(RETRY_INTERVAL_S)
        return pnp_state

    def _reader_lost(self, reader: str, rc: int) -> None:
        self.last_error = (_pcsc_error("watching the reader", rc) if rc != _OK else
                           ReaderError(f"reader {reader!r} went away", code=CODE_NO_READER))
        _log.warning("reader %s: PC/SC reader %r went away; waiting for it to come back",
                     self.reader_id, reader)
        self._state = ReaderState.NO_READER

    def _read(self, ctx: int, reader: str, now: float, sink: CardSink) -> None:
        try:
            uid = self._read_uid(ctx, reader)
        except ReaderError as exc:
            if exc.code == CODE_NO_SERVICE:
                raise
            self._bad_read(exc)
            return
        number = uid.hex().upper()
        if not self._debouncer.accept(number, now):
            _log.debug("reader %s: %s again within the lockout; ignored", self.reader_id,
                       CardRead(number, uid, self.reader_id, now).masked)
            self.health.suppressed += 1
            return
        self.health.reads += 1
        self.last_error = None
        read = CardRead(number=number, raw=uid, reader_id=self.reader_id, at=now)
        if len(uid) == 4 and uid[0] == 0x08:
            _log.warning("reader %s: %s has a random UID (ISO 14443-3 RID, first byte 08): it "
                         "reads differently at every tap and cannot identify anyone",
                         self.reader_id, read.masked)
        _log.debug("reader %s: read %s", self.reader_id, read.masked)
        hand_over(sink, read, _log)

    def _bad_read(self, exc: ReaderError) -> None:
        _log.warning("reader %s: card not read: %s", self.reader_id, exc)
        self.last_error = exc
        self.health.bad_frames += 1  # last, as with the state: a watcher sees it all done

    def _read_uid(self, ctx: int, reader: str) -> bytes:
        rc, hcard, protocol = scard.SCardConnect(
            ctx, reader, scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        if rc != _OK:
            raise _pcsc_error("connecting to the card", rc)
        try:
            pci = _PCI.get(protocol)
            if pci is None:
                raise ReaderError(f"card connected with unknown protocol {protocol}",
                                  code=CODE_PCSC)
            apdu: list[int] = list(GET_UID_APDU)
            response = self._transmit(hcard, pci, apdu)
            if len(response) == 2 and response[0] == 0x6C and response[1]:
                # "Wrong length, ask for XX": some readers want the exact Le. Ask once more.
                apdu[4] = response[1]
                response = self._transmit(hcard, pci, apdu)
            return uid_from_response(response)
        finally:
            # LEAVE_CARD: no reset or power cycle, which would cost time for nothing.
            scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)

    @staticmethod
    def _transmit(hcard: Any, pci: Any, apdu: list[int]) -> bytes:
        rc, response = scard.SCardTransmit(hcard, pci, apdu)
        if rc != _OK:
            raise _pcsc_error("reading the UID", rc)
        return bytes(response)


#: Parameters a ``pcsc:`` reader spec takes (readers.spec).
SPEC_PARAMS = ("reader", "lockout", "id")


def open_spec(spec: str, target: str, params: dict[str, str],
              reader_id: str | None) -> PcscCardReader:
    """``pcsc:``, ``pcsc:NAME`` or ``pcsc:?reader=NAME&lockout=2&id=ID`` (see readers.spec).

    NAME is matched as a case-insensitive substring of pcscd's reader names (see
    ``mfd reader list``); without one, the first reader is used.
    """
    from readers.spec import non_negative_float, redact_spec

    name: str | None = target.strip() or None
    if "reader" in params:
        if name is not None:
            raise ConfigError(f"reader spec {redact_spec(spec)!r} names the reader twice "
                              "(after 'pcsc:' "
                              "and in 'reader=')")
        name = params["reader"].strip()
        if not name:
            raise ConfigError("reader spec parameter 'reader' is empty; leave it out to use "
                              "the first reader")
    lockout = non_negative_float(params, "lockout", 2.0)
    rid = reader_id or params.get("id") or spec
    return PcscCardReader(name, reader_id=rid, lockout_s=lockout)
