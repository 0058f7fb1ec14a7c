"""The device app's loop: one queue of events, the session machine, the effects run.

Everything that happens on another thread (a card read, a cloud answer, an engine outcome, a tap
from the UI) arrives here as an event on one queue; the loop feeds it to the machine and runs the
effects. Nothing blocks the loop: requests are asynchronous and printing has its own thread.
"""

from __future__ import annotations

import itertools
import logging
import queue
import secrets
import time
from collections.abc import Callable

from device_app.ports import CloudLink, PrintEngine
from device_app.printing import Printer
from device_app.session import (
    Answered,
    CardPresented,
    CodeEntered,
    Effect,
    Event,
    Failed,
    LinkChanged,
    PrintJob,
    Send,
    SessionMachine,
    Tapped,
    Tick,
)
from device_app.view import Action, PanelView
from protocol import messages as m
from protocol.errors import MfdError
from readers.events import CardRead, CardReader

log = logging.getLogger(__name__)


def random_request_id() -> str:
    return secrets.token_hex(8)


class DeviceApp:
    def __init__(self, link: CloudLink, engine: PrintEngine, *,
                 readers: tuple[CardReader, ...] = (), device_name: str = "",
                 idle_timeout: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 new_id: Callable[[], str] = random_request_id) -> None:
        self.link = link
        self.engine = engine
        self.readers = readers
        self.clock = clock
        self.events: queue.Queue[Event] = queue.Queue()
        self.machine = SessionMachine(new_id=new_id, device_name=device_name,
                                      idle_timeout=idle_timeout)
        self.printer = Printer(link, engine, self.events.put)
        self.transcript: list[str] = []  # what happened, a line per step, for the simulator
        self._seq = itertools.count(1)
        link.on_connection = self.on_link
        if not link.connected:
            self.events.put(LinkChanged(False))

    # ------------------------------------------------------------ inputs from any thread

    def on_card(self, read: CardRead) -> None:
        log.info("card %s on reader %s", read.masked, read.reader_id)
        self.events.put(CardPresented(read.number))

    def on_link(self, up: bool) -> None:
        self.events.put(LinkChanged(up))

    def enter_code(self, code: str) -> None:
        self.events.put(CodeEntered(code))

    def tap(self, action: Action, job_id: str | None = None) -> None:
        self.events.put(Tapped(action, job_id))

    # ------------------------------------------------------------ loop

    def start(self) -> DeviceApp:
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
            event: Event = self.events.get(timeout=timeout)
        except queue.Empty:
            event = Tick(self.clock())
        before = self.machine.state
        if not isinstance(event, Tick):
            self.machine.handle(Tick(self.clock()))
        effects = self.machine.handle(event)
        for effect in effects:
            self._run(effect)
        if self.machine.state != before:
            self.transcript.append(f"{before.value} -> {self.machine.state.value}"
                                   f" on {type(event).__name__}")
        return bool(effects) or self.machine.state != before or not isinstance(event, Tick)

    def run_until(self, predicate: Callable[[DeviceApp], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            self.step(0.01)
        return predicate(self)

    def view(self) -> PanelView:
        return self.machine.view()

    def _run(self, effect: Effect) -> None:
        if isinstance(effect, Send):
            tag = effect.tag
            log.debug("send %s", m.redacted(effect.request))

            def reply(outcome: m.Result | MfdError) -> None:
                if isinstance(outcome, MfdError):
                    self.events.put(Failed(tag, outcome.code, outcome.message))
                else:
                    self.events.put(Answered(tag, outcome))

            self.link.request(effect.request, reply)
        elif isinstance(effect, PrintJob):
            self.printer.submit(effect)
