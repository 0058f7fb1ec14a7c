"""The OSDP link to one reader: libosdp's control panel driven tick by tick, and its state.

:class:`LinkSession` is one run of a reader on its thread: each :meth:`~LinkSession.tick`
refreshes libosdp, hands on the card reads its callback recorded (judged by the Secure
Channel state they arrived under) and moves the link's :class:`LinkState`; entering a state
says so once, in the words of :data:`_ANNOUNCE`. Why the link is driven this way (Secure
Channel required, recovery faster than libosdp's own) is in :mod:`.reader`.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import osdp_sys

from protocol.errors import FrameError, ReaderError
from readers.adapters.lifecycle import hand_over
from readers.adapters.osdp.channel import SerialChannel
from readers.adapters.serial_port import PORT_ERRORS, close_quietly
from readers.codecs.osdp import card_number
from readers.events import CardRead, CardSink

if TYPE_CHECKING:
    from readers.adapters.osdp.reader import OsdpCardReader

__all__ = ["POLL_INTERVAL_S", "SILENCE_S", "LinkSession", "LinkState", "OsdpError",
           "OsdpLinkStatus", "SecureChannelRefused"]

_log = logging.getLogger(__name__)

# libosdp needs refresh() at least every 50 ms; 20 ms is what its own wrapper uses.
POLL_INTERVAL_S = 0.02
#: An online reader that sends nothing for this long is gone. libosdp polls every few tens
#: of ms and times a reply out after 200 ms, so 1 s is several missed polls in a row.
SILENCE_S = 1.0
_PD = 0  # this adapter's CP has exactly one PD, at libosdp's offset 0

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


class LinkSession:
    """One run of a reader: the libosdp context, the port and the link bookkeeping.

    Everything here runs on the reader thread (``setup`` on the caller's, before the thread
    exists), so nothing needs a lock; the reader object is only written through ``health``
    and ``status``.
    """

    def __init__(self, reader: OsdpCardReader, channel: SerialChannel, sink: CardSink) -> None:
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
                close_quietly(self.channel.port)
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
        close_quietly(self.channel.port)
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
        except PORT_ERRORS as exc:
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
        # Runs inside ctx.refresh() on this thread. It must not raise (see SerialChannel),
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
            hand_over(self.sink, read, _log)
