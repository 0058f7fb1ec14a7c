"""The device app's loop: one queue of events, the session machine, the effects run.

Everything that happens on another thread (a card read, a cloud answer, an engine outcome, a tap
from the UI) arrives here as an event on one queue; the loop feeds it to the machine and runs the
effects. Nothing blocks the loop: requests are asynchronous and printing has its own thread.

The app also gathers what a technician's diagnostics screen shows (:meth:`DeviceApp.snapshot`,
device_app/session/diagnostics.py): the last card read and its reader's pipeline, the engine's
state and its outcomes since start (counted here, from the JobDone events), the link's state
and round-trip times, and the applied configuration's version.
"""

from __future__ import annotations

import itertools
import logging
import queue
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

from device_app.ports import CloudLink, PrintEngine, Reply
from device_app.printing.journal import Journal
from device_app.printing.release import Printer
from device_app.session import Detach, Policy, PrintJob, Send, SessionMachine, State
from device_app.session import events as ev
from device_app.session.diagnostics import LastBadge, Snapshot
from device_app.view import Action, PanelView
from protocol import messages as m
from protocol.engine import EngineState
from protocol.errors import MfdError, ProtocolError
from readers.events import CardRead, CardReader

log = logging.getLogger(__name__)


#: How often the loop asks the engine for its state (a cheap call on every adapter).
ENGINE_POLL_S = 0.5
#: Lines ``DeviceApp.transcript`` keeps (the newest).
TRANSCRIPT_LINES = 200


class ReleaseQueue(Protocol):
    """What the loop needs of the printer (printing/release.py's Printer; a test's stand-in)."""

    def submit_all(self, effects: Iterable[PrintJob]) -> None: ...

    def journal_report(self, request: m.Request, reply: Reply) -> tuple[m.Request, Reply]: ...

    def reconcile(self) -> Iterable[object]: ...

    def link_back(self) -> None: ...

    def detach(self, release_id: str) -> None:
        """The user walked away: the release's outcomes go to the cloud without the session."""

    def close(self) -> None: ...


@runtime_checkable
class Journaled(Protocol):
    """A printer whose journal says whether a release was given to it before (release.py's):
    a release order delivered again must not print again, nor show again."""

    def journaled(self, release_id: str, job_ids: Iterable[str]) -> bool: ...


@runtime_checkable
class Notified(Protocol):
    """A link that hears the cloud's notices on the device's ``.../notify`` topic (link.py's)."""

    on_notify: Callable[[bytes], None] | None


@runtime_checkable
class Commanded(Protocol):
    """A link that hears the cloud's commands on the device's ``.../cmd`` topic (link.py's)."""

    on_command: Callable[[bytes], None] | None


@runtime_checkable
class Timed(Protocol):
    """A link that times its requests' round trips (link.py's), for the diagnostics screen."""

    def round_trips(self) -> tuple[float, ...]: ...


def random_request_id() -> str:
    return secrets.token_hex(8)


class DeviceApp:
    def __init__(self, link: CloudLink, engine: PrintEngine, *,
                 readers: tuple[CardReader, ...] = (), device_name: str = "",
                 idle_timeout: float | None = None, policy: Policy | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 new_id: Callable[[], str] = random_request_id,
                 journal: Journal | None = None,
                 make_printer: Callable[[CloudLink, PrintEngine, Callable[[ev.JobDone], None],
                                         Journal | None], ReleaseQueue] = Printer) -> None:
        self.link = link
        self.engine = engine
        self.readers = readers
        self.clock = clock
        self.events: queue.Queue[ev.Event] = queue.Queue()
        self.machine = SessionMachine(new_id=new_id, device_name=device_name, policy=policy,
                                      idle_timeout=idle_timeout, snapshot=self.snapshot)
        device_id = getattr(link, "device_id", "")
        self.machine.device_id = device_id if isinstance(device_id, str) else ""
        #: The applied managed configuration's version (0: the device's own file), for the
        #: diagnostics screen; whoever applies configuration sets it (device_app/runner.py).
        self.config_version: Callable[[], int | None] = lambda: None
        # The last card read (handed over from the reader's thread like every event), and the
        # engine's outcomes since start: the diagnostics screen's, never logged or sent.
        self._reads: queue.SimpleQueue[CardRead] = queue.SimpleQueue()
        self._last_read: CardRead | None = None
        self.printed = 0
        self.failed = 0
        #: Called on the loop's thread with each command payload from the cloud (config push).
        self.on_command: Callable[[bytes], None] | None = None
        self._commands: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        #: Release orders from the portal waiting for the panel to be idle (someone is signed
        #: in: theirs is never interrupted nor shown another person's jobs), oldest first.
        self.orders: deque[m.ReleaseOrder] = deque()
        #: Orders delivered again and dropped (they print once): what a test waits on.
        self.orders_repeated = 0
        self._engine_state: EngineState | None = None
        self._engine_polled = 0.0
        self.printer = make_printer(link, engine, self.events.put, journal)
        # What happened, a line per state change, for the simulator and a technician's look;
        # bounded, since a copier runs for months.
        self.transcript: deque[str] = deque(maxlen=TRANSCRIPT_LINES)
        self._seq = itertools.count(1)
        link.on_connection = self.on_link
        if isinstance(link, Notified):
            link.on_notify = self.notified
        if isinstance(link, Commanded) and link.on_command is None:
            # The cloud's commands (release orders; config pushes where a runner applies
            # them) reach the loop even where nobody else wired the cmd topic.
            link.on_command = self.command
        if not link.connected:
            self.events.put(ev.LinkChanged(False))

    # ------------------------------------------------------------ inputs from any thread

    def on_card(self, read: CardRead) -> None:
        log.info("card %s on reader %s", read.masked, read.reader_id)
        self._reads.put(read)
        self.events.put(ev.CardPresented(read.number))

    def command(self, payload: bytes) -> None:
        """A command from the cloud (any thread); run on the loop by ``on_command``."""
        self._commands.put(payload)

    def on_link(self, up: bool) -> None:
        if up:
            self.printer.link_back()
        self.events.put(ev.LinkChanged(up))

    def notified(self, payload: bytes) -> None:
        """A notice from the cloud on ``.../notify`` (any thread). One that does not decode is
        dropped with a log line: it names nothing, so nothing is lost but a prompt to re-list."""
        try:
            m.decode_notification(payload)
        except ProtocolError as exc:
            log.warning("dropped a malformed notice from the cloud: %s (%s)", exc.message,
                        exc.code)
            return
        self.events.put(ev.JobsChanged())

    def enter_code(self, code: str) -> None:
        self.events.put(ev.CodeEntered(code))

    def key(self, key: str) -> None:
        """A key of the panel's keypad/keyboard: a character, BACKSPACE, CLEAR, TAB or ENTER."""
        self.events.put(ev.KeyPressed(key))

    def tap(self, action: Action, job_id: str | None = None) -> None:
        self.events.put(ev.Tapped(action, job_id))

    # ------------------------------------------------------------ loop

    def start(self) -> DeviceApp:
        # Before anyone can tap: settle what a crash or power cut left half-done, with the
        # engine and the cloud, so nothing is printed twice and nothing stays RELEASING.
        for line in self.printer.reconcile():
            self.transcript.append(f"reconciled: {line}")
            log.info("reconciled: %s", line)
        for reader in self.readers:
            reader.start(self.on_card)
        return self

    def stop(self) -> None:
        for reader in self.readers:
            reader.stop()
        self.printer.close()

    def step(self, timeout: float = 0.05) -> bool:
        """Handle at most one event (or a tick); True if the view may have changed."""
        try:
            event: ev.Event = self.events.get(timeout=timeout)
        except queue.Empty:
            event = ev.Tick(self.clock())
        while not self._reads.empty():
            self._last_read = self._reads.get()
        while not self._commands.empty():
            payload = self._commands.get()
            if m.request_type_of(payload) == m.ReleaseOrder.TYPE:
                self._order(payload)
                continue
            if self.on_command is not None:
                try:
                    self.on_command(payload)
                except Exception:
                    # A command that fails must not cost the event already taken off the
                    # queue, nor stop the panel's loop: log it and carry on.
                    log.exception("a command from the cloud failed")
        now = self.clock()
        changed = self._start_order()
        if now - self._engine_polled >= ENGINE_POLL_S or self._release_on_old_news(event):
            changed |= self._poll_engine(now)
        if not isinstance(event, ev.Tick):
            # Time first: a timer that ran out (a notice, the idle timeout) acts before the
            # event, and what it asks for (a jobs.list, a logout) is sent like any other effect.
            changed |= self._feed(ev.Tick(now))
        return self._feed(event) or changed or not isinstance(event, ev.Tick)

    def _feed(self, event: ev.Event) -> bool:
        """The one place the machine is driven: every effect of every ``handle`` call runs
        here, so no request the machine counts as pending is ever left unsent."""
        sm = self.machine
        if isinstance(event, ev.JobDone):
            if event.ok:
                self.printed += 1
            else:
                self.failed += 1
        before = sm.state
        shown = (sm.logout_in, sm.flash)
        effects = sm.handle(event)
        jobs = [e for e in effects if isinstance(e, PrintJob)]
        if jobs:
            self.printer.submit_all(jobs)  # a release's jobs in one journal commit
        for effect in effects:
            if isinstance(effect, Detach):
                # Before the logout's Send below: the outcomes are the printer's to report now.
                self.printer.detach(effect.release_id)
        for effect in effects:
            if isinstance(effect, Send):
                self._send(effect)
        if sm.state != before:
            self.transcript.append(f"{before.value} -> {sm.state.value}"
                                   f" on {type(event).__name__}")
        # A countdown's second or a flash that faded changes the panel without a move.
        return bool(effects) or sm.state != before or (sm.logout_in, sm.flash) != shown

    def _order(self, payload: bytes) -> None:
        """A release order from the cloud: kept for the panel's next idle moment, unless this
        device has it already (waiting here, printing, or in the journal: a QoS 1 redelivery,
        the cloud's push again after a reconnect), which is never printed or shown twice. One
        that does not decode is dropped with a log line: the cloud pushes it again until the
        device takes it, and a malformed one would fail every time."""
        try:
            order = m.decode_command(payload)
        except ProtocolError as exc:
            log.warning("dropped a malformed release order from the cloud: %s (%s)",
                        exc.message, exc.code)
            return
        rid = order.release_id
        current = self.machine.release
        if (any(o.release_id == rid for o in self.orders)
                or (current is not None and current.release_id == rid)
                or (isinstance(self.printer, Journaled)
                    and self.printer.journaled(rid, (j.job_id for j in order.jobs)))):
            log.info("release order %s delivered again; it is printed once", rid)
            self.orders_repeated += 1
            return
        log.info("release order %s: %d job(s) for a user at the portal", rid, len(order.jobs))
        self.transcript.append(f"release order {rid}: {len(order.jobs)} job(s)")
        self.orders.append(order)

    def _start_order(self) -> bool:
        """Print the oldest waiting order if the panel is idle: no one is signed in, so it
        cannot interrupt, nor leak into, anyone's session (the machine takes it only there)."""
        if not self.orders or self.machine.state is not State.IDLE:
            return False
        return self._feed(ev.OrderArrived(self.orders.popleft()))

    def _release_on_old_news(self, event: ev.Event) -> bool:
        """A Release tapped while the panel last heard that the engine cannot print: that news
        may be ENGINE_POLL_S old, and a printer that came back (its door closed, its first
        answer after start-up) since must not be refused, so the engine is asked first."""
        return (isinstance(event, ev.Tapped)
                and event.action in (Action.RELEASE, Action.RELEASE_ALL)
                and not (self._engine_state is not None and self._engine_state.can_print))

    def _poll_engine(self, now: float) -> bool:
        # The engine's state decides whether a release may start (a jam refuses it up front).
        self._engine_polled = now
        try:
            state = self.engine.state()
        except Exception:  # an engine adapter that fails to answer is an offline engine
            log.exception("the print engine did not report its state")
            state = EngineState.OFFLINE
        if state == self._engine_state:
            return False
        self._engine_state = state
        self._feed(ev.EngineChanged(state))
        return True  # the job list's banner shows the engine's state

    def run_until(self, predicate: Callable[[DeviceApp], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            self.step(0.01)
        return predicate(self)

    def view(self) -> PanelView:
        return self.machine.view()

    def snapshot(self) -> Snapshot:
        """What the diagnostics screen shows now (called on the loop's thread when it draws)."""
        read = self._last_read
        badge = None
        if read is not None:
            # A reader with a conversion pipeline (readers.numbers.converting) says which.
            pipeline = next((getattr(r, "pipeline", None) for r in self.readers
                             if r.reader_id == read.reader_id), None)
            badge = LastBadge(read.raw, read.reader_id, read.number,
                              "" if pipeline is None else str(pipeline))
        link = self.link
        return Snapshot(badge=badge, engine=self._engine_state, printed=self.printed,
                        failed=self.failed, link_up=link.connected,
                        round_trips=link.round_trips() if isinstance(link, Timed) else (),
                        config_version=self.config_version())

    def _send(self, effect: Send) -> None:
        tag = effect.tag
        log.debug("send %s", m.redacted(effect.request))

        def reply(outcome: m.Result | MfdError) -> None:
            if isinstance(outcome, MfdError):
                self.events.put(ev.Failed(tag, outcome.code, outcome.message))
            else:
                self.events.put(ev.Answered(tag, outcome))

        # Outcome reports carry the request ids the journal keeps, so a report repeated after
        # a crash gets the cloud's stored answer instead of doing anything twice.
        sent, answered = self.printer.journal_report(effect.request, reply)
        self.link.request(sent, answered)
